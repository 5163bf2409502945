//! The harness's Kong mode (`Host::kong_quirks`): Kong 3.9's ngx_wasm_module where it differs
//! from Envoy. Each rule is a behaviour observed on a real build of that commit (nginx 1.25.3 +
//! ngx_wasm_module `9136e463` + wasmtime 26, December 2026), numbered as the "Kong host facts" of
//! docs/KONG.md ("The model of Kong's host"); rules read from its sources instead say so.

use crate::maps::{normalize_name, HeaderMap};
use crate::state::RequestState;

/// Fact 1: ngx_wasm_module "removes" a request header by zeroing its hash; the filter no longer
/// sees it, and nginx's proxy module forwards it anyway.
pub(crate) fn remove_request_header(req: &mut RequestState, name: &[u8]) {
    let key = normalize_name(name);
    let gone = req.req_headers.entries().iter().filter(|(n, _)| *n == key).cloned();
    req.zeroed.extend(gone);
    req.req_headers.remove(name);
}

/// Facts 1 and 2: a header carried once is overwritten in place. Carried twice or more, the first
/// copy takes the new value and every copy is zeroed: the filter sees none (the new value
/// neither), nginx forwards them all.
pub(crate) fn replace_request_header(req: &mut RequestState, name: &[u8], value: &[u8]) {
    if req.req_headers.get_all(name).len() < 2 {
        req.req_headers.replace(name, value);
        if normalize_name(name) == ":path" {
            // Fact 3: a new `:path` refreshes the cached path and `$args` with it.
            req.args = None;
            req.path_set = true;
        }
        return;
    }
    let key = normalize_name(name);
    let mut first = true;
    for (n, v) in req.req_headers.entries() {
        if *n == key {
            let v = if first { value.to_vec() } else { v.clone() };
            req.zeroed.push((n.clone(), v));
            first = false;
        }
    }
    req.req_headers.remove(name);
}

/// Fact 1: replacing the whole map zeroes every header it had (all still forwarded); the
/// pseudo-headers stay (they are not nginx headers).
pub(crate) fn set_request_headers(req: &mut RequestState, new: HeaderMap) {
    let old = std::mem::replace(&mut req.req_headers, HeaderMap::new());
    for (n, v) in old.entries() {
        if n.starts_with(':') {
            if new.get(n.as_bytes()).is_none() {
                req.req_headers.add(n.as_bytes(), v);
            }
        } else {
            req.zeroed.push((n.clone(), v.clone()));
        }
    }
    if new.get(b":path").is_some() {
        req.args = None;
        req.path_set = true;
    }
    for (n, v) in new.entries() {
        req.req_headers.add(n.as_bytes(), v);
    }
}

/// The headers that go upstream: those the filter sees, then the zeroed ones nginx forwards too.
/// (Envoy: nothing is ever zeroed.)
pub(crate) fn forwarded_headers(req: &RequestState) -> Vec<(String, Vec<u8>)> {
    let mut headers = req.req_headers.entries().to_vec();
    headers.extend(req.zeroed.iter().cloned());
    headers
}

/// The query the filter reads back as `request.query`: `$args` once set, else `:path`'s.
pub(crate) fn query(req: &RequestState) -> Option<Vec<u8>> {
    if let Some(args) = &req.args {
        return Some(args.clone());
    }
    let p = req.req_headers.get(b":path")?;
    Some(match p.iter().position(|b| *b == b'?') {
        Some(i) => p[i + 1..].to_vec(),
        None => Vec::new(),
    })
}

/// nginx's `$uri` for a request target, which is what Kong's `:path` shows (read from nginx and
/// ngx_wasm_module): the path percent-decoded, its `.` and `..` segments resolved and its
/// slashes merged; the query as sent.
pub(crate) fn nginx_path(raw: &str) -> String {
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut uri = format!("/{}", segments.join("/"));
    if decoded.len() > 1 && decoded.ends_with('/') {
        uri.push('/');
    }
    match query {
        Some(q) => format!("{uri}?{q}"),
        None => uri,
    }
}

/// The path that goes upstream: `:path`, with `$args` as its query once the filter set
/// `request.query` (Kong builds the upstream URI from `$args`; fact 3). Kong: the path as the
/// client sent it (Kong's `$upstream_uri`), unless the filter set a new `:path`.
pub(crate) fn upstream_path(req: &RequestState, kong: bool) -> String {
    let path = if kong && !req.path_set {
        req.raw_path.clone()
    } else {
        String::from_utf8_lossy(req.req_headers.get(b":path").unwrap_or_default()).into_owned()
    };
    match &req.args {
        None => path,
        Some(args) => {
            let base = path.split('?').next().unwrap_or_default();
            if args.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", String::from_utf8_lossy(args))
            }
        }
    }
}

/// Fact 6: a `proxy_http_call` target is `host:port` (ngx_wasm_module has no cluster names).
pub(crate) fn is_host_port(upstream: &str) -> bool {
    match upstream.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Fact 6: the callbacks `proxy_http_call` is allowed from.
pub(crate) const HTTP_CALL_CALLBACKS: [&str; 4] =
    ["proxy_on_request_headers", "proxy_on_request_body", "proxy_on_tick", "proxy_on_http_call_response"];

/// Kong's own request id (`ngx.kong_request_id`, 32 hex digits: Kong 3.5+ sets it per request;
/// read from Kong's sources). Derived from the harness's request number.
pub(crate) fn kong_request_id(request: u64) -> Vec<u8> {
    format!("{:016x}{:016x}", request.wrapping_mul(0x9e37_79b9_7f4a_7c15), request).into_bytes()
}

/// Properties a filter may set on this host: the host namespace (`kong.*`, Kong's build flag),
/// nginx variables (`ngx.*`) and `request.query` (`$args`). Any other name is refused (read from
/// its sources: "a plain name is refused").
pub(crate) fn settable_property(dotted: &str) -> bool {
    dotted.starts_with("kong.") || dotted.starts_with("ngx.") || dotted == "request.query"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestState {
        RequestState { req_headers: HeaderMap::from_pairs(headers.iter().copied()), ..RequestState::default() }
    }

    /// (what the filter reads, what nginx forwards) for `name`.
    fn seen_and_sent(req: &RequestState, name: &str) -> (Vec<String>, Vec<String>) {
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let seen = req.req_headers.get_all(name.as_bytes()).into_iter().map(text).collect();
        let sent = forwarded_headers(req).into_iter().filter(|(n, _)| n == name).map(|(_, v)| text(&v)).collect();
        (seen, sent)
    }

    #[test]
    fn fact_1_a_removed_header_is_still_forwarded() {
        let mut req = request(&[("x-consumer-id", "evil"), ("x-kept", "1")]);
        remove_request_header(&mut req, b"X-Consumer-ID");
        assert_eq!(seen_and_sent(&req, "x-consumer-id"), (vec![], vec!["evil".into()]));
        assert_eq!(seen_and_sent(&req, "x-kept"), (vec!["1".into()], vec!["1".into()]));
    }

    #[test]
    fn fact_1_replacing_the_whole_map_leaves_the_old_headers_forwarded() {
        let mut req = request(&[(":path", "/p"), ("x-consumer-id", "evil")]);
        set_request_headers(&mut req, HeaderMap::from_pairs([("x-kept", "1")]));
        assert_eq!(seen_and_sent(&req, "x-consumer-id"), (vec![], vec!["evil".into()]));
        assert_eq!(seen_and_sent(&req, "x-kept"), (vec!["1".into()], vec!["1".into()]));
        assert_eq!(req.req_headers.get(b":path"), Some(&b"/p"[..]), "pseudo-headers are not nginx headers");
    }

    #[test]
    fn fact_1_a_single_header_is_replaced_in_place() {
        let mut req = request(&[("x-consumer-id", "evil")]);
        replace_request_header(&mut req, b"x-consumer-id", b"replaced");
        assert_eq!(seen_and_sent(&req, "x-consumer-id"), (vec!["replaced".into()], vec!["replaced".into()]));
    }

    #[test]
    fn fact_2_replacing_a_duplicated_header_zeroes_every_copy() {
        let mut req = request(&[("x-consumer-id", "evil-1"), ("x-consumer-id", "evil-2")]);
        replace_request_header(&mut req, b"X-Consumer-ID", b"replaced");
        assert_eq!(seen_and_sent(&req, "x-consumer-id"), (vec![], vec!["replaced".into(), "evil-2".into()]));
    }

    #[test]
    fn fact_3_request_query_sets_the_args_and_a_new_path_refreshes_them() {
        let mut req = request(&[(":path", "/p?apikey=k&a=1")]);
        req.args = Some(b"a=1".to_vec());
        assert_eq!(req.req_headers.get(b":path"), Some(&b"/p?apikey=k&a=1"[..]), "the cached :path is stale");
        assert_eq!(query(&req), Some(b"a=1".to_vec()));
        assert_eq!(upstream_path(&req, false), "/p?a=1");
        req.args = Some(Vec::new());
        assert_eq!(upstream_path(&req, false), "/p");
        replace_request_header(&mut req, b":path", b"/q?b=2");
        assert_eq!((query(&req), upstream_path(&req, true)), (Some(b"b=2".to_vec()), "/q?b=2".to_string()));
    }

    #[test]
    fn kongs_path_is_nginxs_uri() {
        assert_eq!(nginx_path("/hmac/a%2Fb/../c%20d?q=a%20b"), "/hmac/a/c d?q=a%20b");
        assert_eq!(nginx_path("//a/./b/"), "/a/b/");
        assert_eq!(nginx_path("/a/%zz/%+1/%4"), "/a/%zz/%+1/%4");
        assert_eq!(nginx_path("/"), "/");
        let mut req = request(&[(":path", "/a%20b")]);
        req.raw_path = "/a%20b?x=1".into();
        assert_eq!(upstream_path(&req, true), "/a%20b?x=1", "Kong forwards the path as sent");
    }

    #[test]
    fn fact_6_a_call_goes_to_host_and_port() {
        assert!(is_host_port("127.0.0.1:9000") && is_host_port("consumers.internal:80") && is_host_port("[::1]:80"));
        assert!(!is_host_port("consumer_store") && !is_host_port("127.0.0.1") && !is_host_port(":80"));
        assert!(!is_host_port("host:http"));
    }
}

//! The two proxy-wasm hosts this filter runs in, Envoy and Kong's ngx_wasm_module, and every
//! decision that depends on which one it is (docs/KONG.md). [`HostKind`] is decided once per
//! configuration; the glue (`host/`) asks it what to do and only carries that out, so these
//! decisions are plain functions with native tests.

use crate::identity::HeaderOp;
use crate::identity_headers::is_spoofable;
use crate::request::Header;
use crate::response;
use crate::MAX_BODY_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Envoy,
    /// Kong's ngx_wasm_module (nginx).
    Kong,
}

/// Where the glue reads a pseudo-header (`:method`, `:path`) from, in order: the first that
/// answers wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoSource {
    /// The request property (`request.method`, `request.path`).
    Property,
    /// The header map read at the start of the request.
    HeaderMap,
    /// The host, asked for that one header by name.
    Header,
}

/// Where the request id comes from, in order; the first that is present and not empty wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestIdSource {
    /// Kong's own id (3.5+, the one its error bodies carry): the `ngx.kong_request_id` property.
    KongRequestId,
    /// The `request.id` property (Envoy's id; on Kong only the client's `X-Request-Id`).
    RequestIdProperty,
    /// The client's `X-Request-Id` header.
    XRequestIdHeader,
}

/// One host call that changes a request header (name, value), borrowed from the operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderCall<'a> {
    Add(&'a str, &'a str),
    Replace(&'a str, &'a str),
    Remove(&'a str),
}

/// How a rewritten `:path` (a hidden query argument) reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replace the `:path` pseudo-header.
    ReplacePath(String),
    /// Set the `request.query` property (nginx's `$args`, appended by Kong to the upstream URI),
    /// then read it back: ngx_wasm_module before Kong 3.9 cannot set a `:path` with a query
    /// string (it traps).
    SetQuery(String),
}

/// What to do with a request whose plugins need the body before they can judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// The declared body is larger than `MAX_BODY_BYTES`: 413.
    TooLarge,
    /// Hold the request and judge it when the whole body has come.
    Pause,
    /// Let the headers go on and judge in the body callback, which comes, whole, before the
    /// request is proxied (Kong: ngx_wasm_module reads the body in the content phase, after the
    /// access phase the headers are judged in, so a pause would wait for ever).
    JudgeInBodyCallback,
    /// Refuse the request (fail closed), with the reason to log.
    Refuse(&'static str),
}

impl HostKind {
    /// Envoy exposes its node description (the `xds.node` property); Kong does not.
    pub fn detect(has_xds_node: bool) -> HostKind {
        if has_xds_node {
            HostKind::Envoy
        } else {
            HostKind::Kong
        }
    }

    /// The property several instances of the filter use to hand the identity on. Envoy: a single
    /// path segment (what Envoy lets a later wasm filter read back). Kong: ngx_wasm_module sets
    /// only host-namespace properties, and Kong (3.6+) keeps `kong.ctx.shared.*` for the request.
    pub fn handoff_property(self) -> &'static [&'static str] {
        match self {
            HostKind::Envoy => &crate::identity::HANDOFF_PROPERTY_ENVOY,
            HostKind::Kong => &crate::identity::HANDOFF_PROPERTY_KONG,
        }
    }

    /// Whether Kong before 3.6, which has no `kong.ctx.shared` property, may run on: a single
    /// instance works, a later one cannot see this identity and runs as if it were first (it
    /// strips the identity headers and authenticates on its own: never more access). Envoy always
    /// takes the property, so a refusal there fails the request.
    pub fn handoff_refusal_is_fatal(self) -> bool {
        self == HostKind::Envoy
    }

    /// Whether a request whose headers did not end the stream has a body to wait for. Envoy's
    /// `end_of_stream` is reliable (and its HTTP/1 codec drops `Transfer-Encoding`, so the
    /// framing headers cannot tell a chunked body there); Kong's is always false, so look at the
    /// framing. `protocol` (the `request.protocol` property) is asked only when needed: HTTP/2
    /// and HTTP/3 bodies need no framing header.
    pub fn body_follows(
        self,
        end_of_stream: bool,
        headers: &[Header],
        protocol: impl FnOnce() -> Option<Vec<u8>>,
    ) -> bool {
        if end_of_stream {
            return false;
        }
        if self == HostKind::Envoy {
            return true;
        }
        match first(headers, "content-length") {
            Some(len) => len != b"0",
            None if first(headers, "transfer-encoding").is_some() => true,
            None => protocol().is_none_or(|p| !p.starts_with(b"HTTP/1")),
        }
    }

    /// Where `:method` / `:path` are read. Kong leaves pseudo-headers out of the header map, and
    /// its `:path` is nginx's decoded, normalised URI, while `request.path` is the raw one the
    /// client sent (what hmac-auth signs).
    pub fn pseudo_sources(self, header: &str) -> &'static [PseudoSource] {
        const USUAL: &[PseudoSource] = &[PseudoSource::HeaderMap, PseudoSource::Header, PseudoSource::Property];
        const RAW_PATH_FIRST: &[PseudoSource] =
            &[PseudoSource::Property, PseudoSource::HeaderMap, PseudoSource::Header, PseudoSource::Property];
        match (self, header) {
            (HostKind::Kong, ":path") => RAW_PATH_FIRST,
            _ => USUAL,
        }
    }

    /// Where the request id is read, in order. Envoy's id (`request.id`) is the `x-request-id`
    /// request header, which Envoy sets (generated, or the client's when it keeps it) before any
    /// filter runs: read from the header map the request already read, the property asked only
    /// when the header is absent (a host call saved on every refusal). Kong's own id first
    /// (Kong's `request.id` property is only the client's `X-Request-Id`).
    pub fn request_id_sources(self) -> &'static [RequestIdSource] {
        match self {
            HostKind::Envoy => &[RequestIdSource::XRequestIdHeader, RequestIdSource::RequestIdProperty],
            HostKind::Kong => {
                &[RequestIdSource::KongRequestId, RequestIdSource::RequestIdProperty, RequestIdSource::XRequestIdHeader]
            }
        }
    }

    /// The `details` of a local response: Envoy logs them as the response code details; Kong's
    /// ngx_wasm_module puts them in the status line, where the reason phrase belongs.
    pub fn local_response_details(self, status: u16) -> &'static str {
        match self {
            HostKind::Envoy => "consumer_auth",
            HostKind::Kong => response::reason_phrase(status),
        }
    }

    /// The host calls that carry out `ops` on a request that arrived with `headers`.
    ///
    /// Envoy: removing removes; setting adds when the header is absent (cheaper for the host than
    /// replacing, ~0.7 vs ~1 µs) and replaces otherwise.
    ///
    /// Kong (docs/KONG.md, "Identity headers on Kong"): ngx_wasm_module "removes" a header by
    /// zeroing its hash, which nginx's proxy module ignores (the header is forwarded with its
    /// value), and replacing a header the request carries twice zeroes every copy, the new value
    /// too. So a header to change or remove must be there at most once; a client-supplied
    /// identity header (which must go) refuses the request; a hidden credential or an identity
    /// header an earlier instance wrote is blanked in place. Checked before any change: a refusal
    /// (`Err`, the reason to log) leaves the request as it came.
    pub fn header_calls<'o>(
        self,
        ops: &'o [HeaderOp],
        headers: &[Header],
        first_instance: bool,
    ) -> Result<Vec<HeaderCall<'o>>, String> {
        if self == HostKind::Kong {
            for op in ops {
                let (name, removing) = match op {
                    HeaderOp::Remove(name) => (name.as_str(), true),
                    HeaderOp::Set(name, _) => (*name, false),
                };
                let copies = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count();
                if copies > 1 {
                    return Err(format!(
                        "the request carries {copies} {name} headers, which Kong's ngx_wasm_module cannot \
                         {} (nginx would forward them); see docs/KONG.md",
                        if removing { "remove" } else { "replace" }
                    ));
                }
                if removing && copies == 1 && first_instance && is_spoofable(name) {
                    return Err(format!(
                        "the request carries the identity header {name}, which Kong's ngx_wasm_module cannot \
                         remove (nginx would forward it); remove it before the filter chain, see docs/KONG.md"
                    ));
                }
            }
        }
        let mut calls = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                HeaderOp::Remove(name) if self == HostKind::Envoy => calls.push(HeaderCall::Remove(name)),
                // Kong: the one copy (checked above) is blanked in place: the value never leaves.
                HeaderOp::Remove(name) => {
                    if first(headers, name).is_some() {
                        calls.push(HeaderCall::Replace(name, ""));
                    }
                }
                HeaderOp::Set(name, value) if first(headers, name).is_none() => {
                    calls.push(HeaderCall::Add(name, value))
                }
                HeaderOp::Set(name, value) => calls.push(HeaderCall::Replace(name, value)),
            }
        }
        Ok(calls)
    }

    /// How a new `:path` reaches the upstream.
    pub fn path_rewrite(self, path: &str) -> PathRewrite {
        match self {
            HostKind::Envoy => PathRewrite::ReplacePath(path.to_string()),
            HostKind::Kong => PathRewrite::SetQuery(path.split_once('?').map_or("", |(_, q)| q).to_string()),
        }
    }

    /// What to do when the plugins need the body; `declared` is the request's `Content-Length`.
    pub fn body_plan(self, declared: Option<usize>) -> BodyPlan {
        if declared.is_some_and(|l| l > MAX_BODY_BYTES) {
            return BodyPlan::TooLarge;
        }
        match self {
            HostKind::Envoy => BodyPlan::Pause,
            // A body of unknown length may be empty (no callback: the request would go through
            // unjudged), so it is refused.
            HostKind::Kong if declared.is_none_or(|l| l == 0) => BodyPlan::Refuse(
                "a request body without Content-Length cannot be judged on Kong's ngx_wasm_module (see docs/KONG.md)",
            ),
            HostKind::Kong => BodyPlan::JudgeInBodyCallback,
        }
    }

    /// Whether a paused request may wait for a body that never comes (Envoy without
    /// `allow_on_headers_stop_iteration`), so that the root's tick must answer it.
    pub fn body_may_never_come(self) -> bool {
        self == HostKind::Envoy
    }

    /// The engine's `cas == 0` means "no check", which is Envoy's; Kong's ngx_wasm_module reads
    /// it as "only if absent", so there an unconditional write uses the entry's current CAS.
    pub fn unconditional_write_needs_current_cas(self) -> bool {
        self == HostKind::Kong
    }

    /// Proxy metrics: Kong's ngx_wasm_module before proxy-wasm metrics (Kong 3.4–3.7, maybe 3.8)
    /// traps on any metric call, and Kong's Prometheus export of wasm metrics rejects these
    /// names: none there.
    pub fn has_metrics(self) -> bool {
        self == HostKind::Envoy
    }

    /// Whether a store's inline consumers are written on the first request or tick rather than
    /// at configure time (Kong: shared data is not ready while configuring).
    pub fn defers_store_write(self) -> bool {
        self == HostKind::Kong
    }

    /// Whether an HTTP call's response body can be read in chunks (Envoy); Kong hands it over
    /// whole.
    pub fn reads_call_body_in_chunks(self) -> bool {
        self == HostKind::Envoy
    }
}

fn first<'h>(headers: &'h [Header], name: &str) -> Option<&'h [u8]> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CONSUMER_ID, CONSUMER_USERNAME};

    fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn a_body_follows_by_end_of_stream_on_envoy_by_framing_on_kong() {
        let none = headers(&[]);
        let never = || -> Option<Vec<u8>> { panic!("protocol asked") };
        assert!(HostKind::Envoy.body_follows(false, &none, never));
        assert!(!HostKind::Envoy.body_follows(true, &none, never));
        assert!(!HostKind::Kong.body_follows(true, &none, never));
        assert!(HostKind::Kong.body_follows(false, &headers(&[("Content-Length", "5")]), never));
        assert!(!HostKind::Kong.body_follows(false, &headers(&[("content-length", "0")]), never));
        assert!(HostKind::Kong.body_follows(false, &headers(&[("transfer-encoding", "chunked")]), never));
        assert!(!HostKind::Kong.body_follows(false, &none, || Some(b"HTTP/1.1".to_vec())));
        assert!(HostKind::Kong.body_follows(false, &none, || Some(b"HTTP/2".to_vec())));
        assert!(HostKind::Kong.body_follows(false, &none, || None));
    }

    #[test]
    fn kong_reads_the_raw_path_first() {
        assert_eq!(HostKind::Kong.pseudo_sources(":path")[0], PseudoSource::Property);
        assert_eq!(HostKind::Kong.pseudo_sources(":method")[0], PseudoSource::HeaderMap);
        assert_eq!(HostKind::Envoy.pseudo_sources(":path")[0], PseudoSource::HeaderMap);
    }

    #[test]
    fn request_ids_and_details() {
        assert_eq!(HostKind::Kong.request_id_sources()[0], RequestIdSource::KongRequestId);
        assert!(!HostKind::Envoy.request_id_sources().contains(&RequestIdSource::KongRequestId));
        // Envoy's `request.id` is its x-request-id header: the header map first, no host call
        assert_eq!(HostKind::Envoy.request_id_sources()[0], RequestIdSource::XRequestIdHeader);
        assert_eq!(HostKind::Envoy.local_response_details(401), "consumer_auth");
        assert_eq!(HostKind::Kong.local_response_details(401), "Unauthorized");
    }

    #[test]
    fn header_ops_become_calls_each_host_can_do() {
        let sent = headers(&[("x-consumer-id", "forged"), ("apikey", "k")]);
        let ops = vec![
            HeaderOp::Remove("apikey".into()),
            HeaderOp::Set(CONSUMER_ID, "id".into()),
            HeaderOp::Set(CONSUMER_USERNAME, "alice".into()),
        ];
        assert_eq!(
            HostKind::Envoy.header_calls(&ops, &sent, true).unwrap(),
            vec![
                HeaderCall::Remove("apikey"),
                HeaderCall::Replace(CONSUMER_ID, "id"),
                HeaderCall::Add(CONSUMER_USERNAME, "alice"),
            ]
        );
        assert_eq!(
            HostKind::Kong.header_calls(&ops, &sent, true).unwrap(),
            vec![
                HeaderCall::Replace("apikey", ""),
                HeaderCall::Replace(CONSUMER_ID, "id"),
                HeaderCall::Add(CONSUMER_USERNAME, "alice"),
            ]
        );
        // Kong cannot remove a client's identity header, nor change a header sent twice
        let forged = headers(&[("x-authenticated-groups", "admins")]);
        let remove = vec![HeaderOp::Remove("x-authenticated-groups".into())];
        assert!(HostKind::Kong.header_calls(&remove, &forged, true).unwrap_err().contains("identity header"));
        assert!(HostKind::Kong.header_calls(&remove, &forged, false).is_ok());
        assert!(HostKind::Envoy.header_calls(&remove, &forged, true).is_ok());
        let twice = headers(&[("x-consumer-id", "a"), ("X-Consumer-ID", "b")]);
        let set = vec![HeaderOp::Set(CONSUMER_ID, "id".into())];
        assert!(HostKind::Kong.header_calls(&set, &twice, false).unwrap_err().contains("2 x-consumer-id headers"));
        assert!(HostKind::Envoy.header_calls(&set, &twice, false).is_ok());
    }

    #[test]
    fn a_hidden_query_argument_reaches_the_upstream_per_host() {
        assert_eq!(HostKind::Envoy.path_rewrite("/p?a=1"), PathRewrite::ReplacePath("/p?a=1".into()));
        assert_eq!(HostKind::Kong.path_rewrite("/p?a=1"), PathRewrite::SetQuery("a=1".into()));
        assert_eq!(HostKind::Kong.path_rewrite("/p"), PathRewrite::SetQuery(String::new()));
    }

    #[test]
    fn waiting_for_a_body() {
        assert_eq!(HostKind::Envoy.body_plan(Some(MAX_BODY_BYTES + 1)), BodyPlan::TooLarge);
        assert_eq!(HostKind::Envoy.body_plan(None), BodyPlan::Pause);
        assert_eq!(HostKind::Kong.body_plan(Some(10)), BodyPlan::JudgeInBodyCallback);
        assert!(matches!(HostKind::Kong.body_plan(None), BodyPlan::Refuse(_)));
        assert!(matches!(HostKind::Kong.body_plan(Some(0)), BodyPlan::Refuse(_)));
    }
}

//! `consumer-auth from-deck`, second half: the Envoy bootstrap for a [`Translation`].
//!
//! The shape is the one the project's own bootstraps use (e2e/src/bootstrap.rs, envoy/demo.yaml):
//! every consumer-auth document is one Wasm filter in the connection manager's `http_filters`,
//! `disabled: true`, and each route enables its own with `typed_per_filter_config` (an empty
//! `FilterConfig`); `failure_policy: FAIL_CLOSED`, `allow_on_headers_stop_iteration: true`, V8,
//! one `vm_id` for all of them.
//!
//! Routing follows Kong's router: a plain path is a prefix match, a regex path is anchored at the
//! start; `headers` header matchers (case-insensitive, `~*` a regex); `hosts` become virtual hosts (a route without hosts is in every one, after the routes
//! that name the host); `methods` a `:method` header matcher; routes are tried in Kong's order
//! (more matching attributes first, plain hosts before wildcards, more headers, regex paths by
//! `regex_priority`, then the longest plain path). The upstream path is Kong's (`path_handling`
//! v0): the service path joined with what is left of the request path after `strip_path`.

// Indexing here is serde_json `Value` indexing (a missing key reads as `Null`; assignments are
// into objects this file built) and indices into the lists this file built and enumerates.
#![allow(clippy::indexing_slicing)]

use serde_json::{json, Value};

use crate::deck::{Route, RoutePath, Service, Translation};

pub const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
pub const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

#[derive(Debug, Clone)]
pub struct Options {
    /// The listener, `HOST:PORT` (Kong's proxy port by default).
    pub listen: (String, u16),
    /// The admin interface, `HOST:PORT`.
    pub admin: (String, u16),
    /// The filter's `.wasm` as Envoy will open it.
    pub wasm: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: ("0.0.0.0".into(), 8000),
            admin: ("127.0.0.1".into(), 9901),
            wasm: "filters/consumer_auth.wasm".into(),
        }
    }
}

/// `HOST:PORT` (`[v6]:PORT` too).
pub fn parse_address(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// The name of the Wasm filter that runs document `i`.
pub fn filter_name(i: usize) -> String {
    format!("consumer_auth_{i}")
}

fn duration(ms: u64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

/// RE2 text matching `s` literally.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_punctuation() && c != '/' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

/// Does a Kong host pattern (`a.example.com`, `*.example.com`, `example.*`) match `host`?
fn host_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('*') {
        host.len() > suffix.len() && host.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        host.len() > prefix.len() && host.starts_with(prefix)
    } else {
        pattern == host
    }
}

/// One Envoy route with Kong's ordering key (higher first, then file order).
struct Entry {
    key: (u8, u8, usize, u8, i64, usize),
    order: usize,
    value: Value,
}

/// The match and rewrite of each Envoy route a Kong route's path becomes (an exact-match route
/// first where Kong's path join treats "nothing left" apart).
fn path_rules(path: &RoutePath, strip: bool, service_path: &str) -> Vec<(Value, Option<Value>)> {
    let base = service_path.trim_end_matches('/');
    let joined = |rest: &str| -> String {
        let p = format!("{base}{rest}");
        if p.is_empty() {
            "/".into()
        } else {
            p
        }
    };
    let rewrite = |pattern: String, substitution: String| json!({ "regex_rewrite": { "pattern": { "regex": pattern }, "substitution": substitution } });
    // Not stripped: the service path in front of the whole request path.
    let prepend = || if service_path == "/" { None } else { Some(rewrite("^/".into(), joined("/"))) };
    match (path, strip) {
        (RoutePath::Prefix(p), true) => {
            // Nothing left after the prefix: the service path, with the request's trailing slash.
            let exact =
                if p == "/" { service_path.to_string() } else { joined(if p.ends_with('/') { "/" } else { "" }) };
            vec![
                (json!({ "path": p }), Some(json!({ "prefix_rewrite": exact }))),
                (json!({ "prefix": p }), Some(rewrite(format!("^{}/?", regex_escape(p)), joined("/")))),
            ]
        }
        (RoutePath::Prefix(p), false) => {
            let mut rules = Vec::new();
            if p == "/" && service_path != "/" && !service_path.ends_with('/') {
                rules.push((json!({ "path": "/" }), Some(json!({ "prefix_rewrite": service_path }))));
            }
            rules.push((json!({ "prefix": p }), prepend()));
            rules
        }
        (RoutePath::Regex(re), true) => {
            let re = re.strip_prefix('^').unwrap_or(re);
            let whole = if base.is_empty() {
                rewrite("^.*$".into(), "/".into())
            } else {
                rewrite("^.*?(/?)$".into(), format!("{base}\\1"))
            };
            vec![
                (json!({ "safe_regex": { "regex": re } }), Some(whole)),
                (
                    json!({ "safe_regex": { "regex": format!("(?:{re}).*") } }),
                    Some(rewrite(format!("^(?:{re})/?"), joined("/"))),
                ),
            ]
        }
        (RoutePath::Regex(re), false) => {
            let re = re.strip_prefix('^').unwrap_or(re);
            vec![(json!({ "safe_regex": { "regex": format!("(?:{re}).*") } }), prepend())]
        }
    }
}

/// The Envoy routes of one Kong route.
fn route_entries(route: &Route, order: usize, service: &Service, cluster: &str) -> Vec<Entry> {
    // Kong's priority of a route (its router's "traditional_compatible" flavour): the number of
    // matching attributes, hosts all plain (no wildcard), the number of headers, a regex path and
    // its regex_priority,
    // the longest plain path; then file order.
    let categories = u8::from(!route.hosts.is_empty())
        + u8::from(!route.methods.is_empty())
        + u8::from(!route.paths.is_empty())
        + u8::from(!route.headers.is_empty());
    let plain_hosts = u8::from(!route.hosts.is_empty() && route.hosts.iter().all(|h| !h.contains('*')));
    let regex = u8::from(route.paths.iter().any(|p| matches!(p, RoutePath::Regex(_))));
    let regex_priority = if regex == 1 { route.regex_priority } else { 0 };
    let longest = route.paths.iter().map(|p| if let RoutePath::Prefix(p) = p { p.len() } else { 0 }).max().unwrap_or(0);
    let key = (categories, plain_hosts, route.headers.len(), regex, regex_priority, longest);
    let paths = if route.paths.is_empty() { vec![RoutePath::Prefix("/".into())] } else { route.paths.clone() };
    let strip = route.strip_path && !route.paths.is_empty();
    let mut out = Vec::new();
    for path in &paths {
        for (matcher, rewrite) in path_rules(path, strip, &service.path) {
            let mut m = matcher;
            if !route.methods.is_empty() {
                let string_match = if route.methods.len() == 1 {
                    json!({ "exact": route.methods[0] })
                } else {
                    json!({ "safe_regex": { "regex": route.methods.join("|") } })
                };
                m["headers"] = json!([{ "name": ":method", "string_match": string_match }]);
            }
            for (name, values) in &route.headers {
                let alternatives: Vec<String> = values
                    .iter()
                    .map(|v| match v.strip_prefix("~*") {
                        Some(re) => format!(".*(?:{re}).*"),
                        None => regex_escape(v),
                    })
                    .collect();
                let matcher = json!({ "name": name, "string_match": { "safe_regex": {
                    "regex": format!("(?i)(?:{})", alternatives.join("|")) } } });
                match m.get_mut("headers").and_then(Value::as_array_mut) {
                    Some(list) => list.push(matcher),
                    None => m["headers"] = json!([matcher]),
                }
            }
            let mut action = json!({ "cluster": cluster, "timeout": duration(service.read_timeout_ms) });
            if !route.preserve_host {
                action["host_rewrite_literal"] = Value::String(service.upstream_host());
            }
            if let Some(Value::Object(rw)) = rewrite {
                for (k, v) in rw {
                    action[k] = v;
                }
            }
            if service.retries > 0 {
                action["retry_policy"] = json!({ "retry_on": "connect-failure", "num_retries": service.retries });
            }
            let path_text = match path {
                RoutePath::Prefix(p) => p.clone(),
                RoutePath::Regex(r) => format!("~{r}"),
            };
            let mut value = json!({ "name": format!("{} {}", route.at, path_text), "match": m, "route": action });
            if let Some(d) = route.document {
                value["typed_per_filter_config"] = json!({ filter_name(d): { "@type": FILTER_CONFIG, "config": {} } });
            }
            out.push(Entry { key, order: order * 1000 + out.len(), value });
        }
    }
    out
}

/// Kong's answer when no route matches.
fn no_route() -> Value {
    json!({
        "name": "no route matched",
        "match": { "prefix": "/" },
        "direct_response": { "status": 404, "body": { "inline_string": "{\"message\":\"no Route matched with those values\"}" } },
        "response_headers_to_add": [ { "header": { "key": "content-type", "value": "application/json; charset=utf-8" } } ]
    })
}

/// The Envoy bootstrap (as JSON) for `t`.
pub fn bootstrap(t: &Translation, o: &Options) -> Value {
    let emitted: Vec<(usize, &Route)> = t.routes.iter().enumerate().filter(|(_, r)| r.left_out.is_none()).collect();
    let cluster_of = |r: &Route| t.services[r.service].cluster_name(r.service);

    // Virtual hosts: one per host named by a route (the routes that match it, then the routes
    // without hosts), and `*` with the routes without hosts.
    let mut domains: Vec<String> = Vec::new();
    for (_, r) in &emitted {
        for h in &r.hosts {
            if !domains.contains(h) {
                domains.push(h.clone());
            }
        }
    }
    let mut groups: Vec<(Vec<String>, Vec<Value>)> = Vec::new();
    let mut add = |domain: Option<&str>| {
        let mut entries = Vec::new();
        for (i, r) in &emitted {
            let applies = match domain {
                None => r.hosts.is_empty(),
                Some(d) if d.contains('*') => r.hosts.is_empty() || r.hosts.iter().any(|h| h == d),
                Some(d) => r.hosts.is_empty() || r.hosts.iter().any(|h| host_matches(h, d)),
            };
            if applies {
                let service = &t.services[r.service];
                entries.extend(route_entries(r, *i, service, &cluster_of(r)));
            }
        }
        entries.sort_by(|a, b| b.key.cmp(&a.key).then(a.order.cmp(&b.order)));
        let mut routes: Vec<Value> = entries.into_iter().map(|e| e.value).collect();
        routes.push(no_route());
        let name = domain.unwrap_or("*").to_string();
        match groups.iter_mut().find(|(_, rs)| *rs == routes) {
            Some((names, _)) => names.push(name),
            None => groups.push((vec![name], routes)),
        }
    };
    for d in &domains {
        add(Some(d));
    }
    add(None);
    let virtual_hosts: Vec<Value> = groups
        .into_iter()
        .enumerate()
        .map(|(i, (domains, routes))| {
            let name = if domains.iter().any(|d| d == "*") { "default".to_string() } else { format!("hosts_{i}") };
            json!({ "name": name, "domains": domains, "routes": routes })
        })
        .collect();

    let mut http_filters: Vec<Value> =
        t.documents.iter().enumerate().map(|(i, doc)| wasm_filter(&filter_name(i), doc, &o.wasm)).collect();
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));

    let mut clusters = Vec::new();
    let mut used: Vec<usize> = emitted.iter().map(|(_, r)| r.service).collect();
    used.sort_unstable();
    used.dedup();
    for si in used {
        clusters.push(cluster(&t.services[si], &t.services[si].cluster_name(si)));
    }

    let mut b = json!({
        "admin": { "address": { "socket_address": { "address": o.admin.0, "port_value": o.admin.1 } } },
        "stats_config": stats_config(),
        "static_resources": {
            "listeners": [{
                "name": "kong_proxy",
                "address": { "socket_address": { "address": o.listen.0, "port_value": o.listen.1 } },
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            // Kong matches a host without its port.
                            "strip_any_host_port": true,
                            "normalize_path": true,
                            "route_config": { "name": "kong_routes", "virtual_hosts": virtual_hosts },
                            "http_filters": http_filters
                        }
                    }]
                }]
            }],
            "clusters": clusters
        }
    });
    if let Some(doc) = &t.store_document {
        // The consumer store's writer: a singleton service on the main thread with the filters'
        // vm_id (shared data is per vm_id), written once before the workers serve.
        b["bootstrap_extensions"] = json!([{
            "name": "envoy.bootstrap.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
                "singleton": true,
                "config": {
                    "name": "consumer_auth_store",
                    "root_id": "consumer_auth",
                    "configuration": { "@type": STRING_VALUE, "value": doc },
                    "vm_config": {
                        "vm_id": "consumer_auth",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": o.wasm } }
                    }
                }
            }
        }]);
    }
    b
}

/// One consumer-auth instance: disabled here, enabled by the routes that run it.
fn wasm_filter(name: &str, document: &str, wasm: &str) -> Value {
    json!({
        "name": name,
        "disabled": true,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": "consumer_auth",
                // Never FAIL_OPEN: a crashed filter would let everything through.
                "failure_policy": "FAIL_CLOSED",
                // Envoy 1.35+: key_in_body / validate_request_body read the body before the headers go on.
                "allow_on_headers_stop_iteration": true,
                "configuration": { "@type": STRING_VALUE, "value": document },
                "vm_config": {
                    "vm_id": "consumer_auth",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": wasm } }
                }
            }
        }
    })
}

fn cluster(s: &Service, name: &str) -> Value {
    let mut c = json!({
        "name": name,
        "type": if is_ip(&s.host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": duration(s.connect_timeout_ms),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": { "socket_address": {
                "address": s.host, "port_value": s.port } } } }] }]
        }
    });
    if !is_ip(&s.host) {
        c["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if s.scheme == "https" {
        let mut tls =
            json!({ "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext" });
        if !is_ip(&s.host) {
            tls["sni"] = Value::String(s.host.clone());
        }
        c["transport_socket"] = json!({ "name": "envoy.transport_sockets.tls", "typed_config": tls });
    }
    c
}

/// consumer-auth's metrics as Prometheus labels (as in envoy/demo.yaml).
fn stats_config() -> Value {
    json!({
        "stats_tags": [
            { "tag_name": "plugin", "regex": "^wasmcustom\\.consumer_auth_requests_total(\\.plugin\\.([^.]+))" },
            { "tag_name": "outcome",
              "regex": "^wasmcustom\\.consumer_auth_\\w+_total(?:\\.plugin\\.[^.]+)?(?:\\.store\\.[^.]+)?(\\.outcome\\.([^.]+))$" },
            { "tag_name": "store", "regex": "^wasmcustom\\.consumer_auth_store_\\w+(\\.store\\.([^.]+))" }
        ]
    })
}

/// The bootstrap as YAML, after a comment saying where it came from and what was left out.
pub fn to_yaml(t: &Translation, bootstrap: &Value, source: &str) -> Result<String, String> {
    let body = serde_norway::to_string(bootstrap).map_err(|e| e.to_string())?;
    let emitted = t.routes.iter().filter(|r| r.left_out.is_none()).count();
    let mut head = format!(
        "# Envoy bootstrap generated by `consumer-auth from-deck` from {source} (decK format {}):\n\
         # {emitted} of {} routes, {} consumer-auth filter configurations.\n",
        t.format_version,
        t.routes.len(),
        t.documents.len()
    );
    if t.store_document.is_some() {
        head.push_str("# The consumers are in a consumer store filled by the envoy.bootstrap.wasm service.\n");
    }
    for r in t.routes.iter().filter(|r| r.left_out.is_some()) {
        head.push_str(&format!("# left out: {} ({})\n", r.at, r.left_out.as_deref().unwrap_or_default()));
    }
    Ok(format!("{head}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deck::{translate, Options as DeckOptions};

    fn bootstrap_of(deck: &str) -> (Translation, Value) {
        let t = translate(deck, &DeckOptions::default()).unwrap_or_else(|e| panic!("{e:?}"));
        let b = bootstrap(&t, &Options { wasm: "/w/consumer_auth.wasm".into(), ..Options::default() });
        (t, b)
    }

    fn hcm(b: &Value) -> &Value {
        &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    }

    const DECK: &str = r#"_format_version: "3.0"
services:
- name: api
  url: https://api.example.com:8443/v1
  read_timeout: 1500
  routes:
  - name: keyed
    hosts: [shop.example.com, "*.example.org"]
    methods: [get, POST]
    paths: [/keyed, "~/items/\\d+$"]
    plugins: [{ name: key-auth }]
  - name: open
    paths: [/open]
    preserve_host: true
- name: local
  url: http://10.1.2.3
  routes: [{ name: local, paths: [/local] }]
consumers:
- { username: alice, keyauth_credentials: [{ key: k }] }
"#;

    #[test]
    fn filters_are_fail_closed_disabled_and_enabled_per_route() {
        let (t, b) = bootstrap_of(DECK);
        let filters = hcm(&b)["http_filters"].as_array().unwrap();
        assert_eq!(filters.len(), 2);
        let f = &filters[0];
        assert_eq!(f["name"], "consumer_auth_0");
        assert_eq!(f["disabled"], true);
        let c = &f["typed_config"]["config"];
        assert_eq!(c["failure_policy"], "FAIL_CLOSED");
        assert_eq!(c["allow_on_headers_stop_iteration"], true);
        assert_eq!(c["root_id"], "consumer_auth");
        assert_eq!(c["vm_config"]["vm_id"], "consumer_auth");
        assert_eq!(c["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(c["vm_config"]["code"]["local"]["filename"], "/w/consumer_auth.wasm");
        assert_eq!(c["configuration"]["value"].as_str().unwrap(), t.documents[0]);
        assert_eq!(filters[1]["name"], "envoy.filters.http.router");
        // Every route of `keyed` enables it; the others run no filter.
        for vh in hcm(&b)["route_config"]["virtual_hosts"].as_array().unwrap() {
            for r in vh["routes"].as_array().unwrap() {
                let name = r["name"].as_str().unwrap();
                let enabled = r.get("typed_per_filter_config").is_some();
                assert_eq!(enabled, name.starts_with("services[0].routes[0]"), "{name}");
                if enabled {
                    assert_eq!(r["typed_per_filter_config"]["consumer_auth_0"]["@type"], FILTER_CONFIG);
                }
            }
        }
    }

    #[test]
    fn hosts_methods_and_paths_become_envoy_matches() {
        let (_, b) = bootstrap_of(DECK);
        let vhosts = hcm(&b)["route_config"]["virtual_hosts"].as_array().unwrap();
        let domains: Vec<&Value> = vhosts.iter().map(|v| &v["domains"]).collect();
        // Both hosts have the same routes: one virtual host.
        assert_eq!(domains, [&json!(["shop.example.com", "*.example.org"]), &json!(["*"])]);
        let shop = vhosts[0]["routes"].as_array().unwrap();
        let names: Vec<&str> = shop.iter().map(|r| r["name"].as_str().unwrap()).collect();
        // keyed first (three attributes), its exact and prefix routes, its regex's two; then the
        // routes without hosts; Kong's 404 last.
        assert_eq!(
            names,
            [
                "services[0].routes[0] /keyed",
                "services[0].routes[0] /keyed",
                "services[0].routes[0] ~/items/\\d+$",
                "services[0].routes[0] ~/items/\\d+$",
                "services[1].routes[0] /local",
                "services[1].routes[0] /local",
                "services[0].routes[1] /open",
                "services[0].routes[1] /open",
                "no route matched",
            ]
        );
        assert_eq!(shop[0]["match"]["path"], "/keyed");
        assert_eq!(shop[0]["match"]["headers"][0]["name"], ":method");
        assert_eq!(shop[0]["match"]["headers"][0]["string_match"]["safe_regex"]["regex"], "GET|POST");
        assert_eq!(shop[0]["route"]["prefix_rewrite"], "/v1");
        assert_eq!(shop[0]["route"]["host_rewrite_literal"], "api.example.com:8443");
        assert_eq!(shop[0]["route"]["timeout"], "1.5s");
        assert_eq!(shop[1]["match"]["prefix"], "/keyed");
        assert_eq!(shop[1]["route"]["regex_rewrite"]["pattern"]["regex"], "^/keyed/?");
        assert_eq!(shop[1]["route"]["regex_rewrite"]["substitution"], "/v1/");
        assert_eq!(shop[2]["match"]["safe_regex"]["regex"], "/items/\\d+$");
        assert_eq!(shop[3]["match"]["safe_regex"]["regex"], "(?:/items/\\d+$).*");
        assert_eq!(shop[3]["route"]["regex_rewrite"]["pattern"]["regex"], "^(?:/items/\\d+$)/?");
        // preserve_host: no Host rewrite.
        assert!(shop[6]["route"].get("host_rewrite_literal").is_none());
        assert_eq!(shop[8]["direct_response"]["status"], 404);
        assert_eq!(hcm(&b)["strip_any_host_port"], true);
    }

    #[test]
    fn a_cluster_per_service_with_its_scheme() {
        let (_, b) = bootstrap_of(DECK);
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        let api = &clusters[0];
        assert_eq!(api["name"], "service_0_api");
        assert_eq!(api["type"], "STRICT_DNS");
        let addr = &api["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!((addr["address"].as_str(), addr["port_value"].as_u64()), (Some("api.example.com"), Some(8443)));
        assert_eq!(api["transport_socket"]["name"], "envoy.transport_sockets.tls");
        assert_eq!(api["transport_socket"]["typed_config"]["sni"], "api.example.com");
        let local = &clusters[1];
        assert_eq!(local["type"], "STATIC");
        assert!(local.get("transport_socket").is_none());
        assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 9901);
        let listen = &b["static_resources"]["listeners"][0]["address"]["socket_address"];
        assert_eq!((listen["address"].as_str(), listen["port_value"].as_u64()), (Some("0.0.0.0"), Some(8000)));
    }

    #[test]
    fn rewrites_join_paths_as_kong_does() {
        let rules = |p: RoutePath, strip: bool, s: &str| -> Vec<String> {
            path_rules(&p, strip, s).into_iter().map(|(m, r)| format!("{m} {}", r.unwrap_or(Value::Null))).collect()
        };
        assert_eq!(
            rules(RoutePath::Prefix("/a".into()), true, "/"),
            [
                r#"{"path":"/a"} {"prefix_rewrite":"/"}"#,
                r#"{"prefix":"/a"} {"regex_rewrite":{"pattern":{"regex":"^/a/?"},"substitution":"/"}}"#
            ]
        );
        assert_eq!(rules(RoutePath::Prefix("/".into()), false, "/"), [r#"{"prefix":"/"} null"#]);
        assert_eq!(
            rules(RoutePath::Prefix("/".into()), false, "/s"),
            [
                r#"{"path":"/"} {"prefix_rewrite":"/s"}"#,
                r#"{"prefix":"/"} {"regex_rewrite":{"pattern":{"regex":"^/"},"substitution":"/s/"}}"#
            ]
        );
        assert_eq!(regex_escape("/a.b+c-d_e/(x)"), r"/a\.b\+c\-d_e/\(x\)");
        assert_eq!(parse_address("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(parse_address("0.0.0.0:8000"), Some(("0.0.0.0".into(), 8000)));
        assert_eq!(parse_address("8000"), None);
    }
}

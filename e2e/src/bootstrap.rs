//! Envoy bootstraps, rendered from data: one listener, one route per path prefix, and for each
//! route its own chain of consumer-auth filter instances (each instance = one configuration
//! document).
//!
//! How per-route chains work in Envoy (verified with 1.40): every instance of every route is
//! listed once in the connection manager's `http_filters`, marked `disabled: true`; a route
//! enables exactly its own instances with `typed_per_filter_config: { <name>:
//! envoy.config.route.v3.FilterConfig { config: {} } }`. (`disabled: false` alone is refused as
//! "Empty route/virtual host per filter configuration".) The chain order of a route is the order
//! of its instances in `http_filters`.

use serde_json::{json, Map, Value};

pub const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
pub const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// One route: requests whose path is `prefix` or starts with `prefix/` (or `prefix?`) go
/// through `chain` (in order) and then to the upstream.
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    /// Each element is the configuration document of one filter instance.
    pub chain: Vec<Value>,
}

impl Route {
    pub fn new(prefix: &str, chain: impl IntoIterator<Item = Value>) -> Route {
        assert!(prefix.starts_with('/'), "route prefix {prefix:?} must start with '/'");
        Route { prefix: prefix.to_string(), chain: chain.into_iter().collect() }
    }

    /// The name of the `i`th filter instance of this route (unique in the bootstrap).
    pub fn filter_name(&self, i: usize) -> String {
        let slug: String =
            self.prefix.trim_matches('/').chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("consumer_auth_{}_{i}", if slug.is_empty() { "root" } else { &slug })
    }
}

#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// 0: Envoy picks a free port (the runner reads it back from the admin API).
    pub listener_port: u16,
    /// 0: a free port, written to `--admin-address-path`.
    pub admin_port: u16,
    pub upstream_port: u16,
    /// The .wasm, absolute or relative to Envoy's working directory.
    pub wasm: String,
    /// `FAIL_CLOSED` (never `FAIL_OPEN`).
    pub failure_policy: &'static str,
    /// The wasm filters' `allow_on_headers_stop_iteration` (Envoy 1.35+; true unless a test
    /// plays an older Envoy or a control plane that does not expose it).
    pub allow_on_headers_stop_iteration: bool,
    /// HTTP/1 clients may send trailers after a chunked body (Envoy drops them by default).
    pub http1_trailers: bool,
    /// Pretty-print the filter configurations (for human-read files).
    pub pretty_configs: bool,
    pub routes: Vec<Route>,
    /// The configuration document of a singleton `envoy.bootstrap.wasm` service (one VM on the
    /// main thread, same `vm_id` as the http filters, so it shares their shared data): the
    /// consumer store's writer (`{"store": {...}}`).
    pub store_service: Option<Value>,
    /// Extra clusters (e.g. a consumer store's remote source), rendered as given.
    pub clusters: Vec<Value>,
}

impl Bootstrap {
    /// Free ports, the filter under test (which must exist), FAIL_CLOSED.
    pub fn new(upstream_port: u16) -> Bootstrap {
        Bootstrap::new_unchecked(upstream_port, &crate::filter_wasm().display().to_string())
    }

    /// Free ports, FAIL_CLOSED, `wasm` as given (not checked: it may be relative to where Envoy
    /// will run).
    pub fn new_unchecked(upstream_port: u16, wasm: &str) -> Bootstrap {
        Bootstrap {
            listener_port: 0,
            admin_port: 0,
            upstream_port,
            wasm: wasm.to_string(),
            failure_policy: "FAIL_CLOSED",
            allow_on_headers_stop_iteration: true,
            http1_trailers: false,
            pretty_configs: false,
            routes: Vec::new(),
            store_service: None,
            clusters: Vec::new(),
        }
    }

    /// Fill a consumer store from a singleton bootstrap wasm service with this configuration
    /// document (`{"store": {"name": …, "consumers": […] | "source": {…}}}`).
    pub fn store_service(mut self, config: Value) -> Self {
        self.store_service = Some(config);
        self
    }

    /// An extra STATIC cluster `name` with one endpoint, `127.0.0.1:port` (HTTP/1.1).
    pub fn static_cluster(mut self, name: &str, port: u16) -> Self {
        assert!(name != "echo" && self.clusters.iter().all(|c| c["name"] != name), "duplicate cluster {name}");
        self.clusters.push(static_cluster(name, port));
        self
    }

    pub fn wasm(mut self, wasm: &str) -> Self {
        self.wasm = wasm.to_string();
        self
    }

    pub fn route(mut self, prefix: &str, chain: impl IntoIterator<Item = Value>) -> Self {
        let route = Route::new(prefix, chain);
        assert!(self.routes.iter().all(|r| r.prefix != route.prefix), "duplicate route {prefix}");
        self.routes.push(route);
        self
    }

    fn wasm_filter(&self, name: &str, config: &Value) -> Value {
        let text = if self.pretty_configs {
            serde_json::to_string_pretty(config).unwrap()
        } else {
            serde_json::to_string(config).unwrap()
        };
        let mut entry = wasm_filter_entry(name, &text, self.failure_policy, &self.wasm);
        if !self.allow_on_headers_stop_iteration {
            if let Some(config) = entry["typed_config"]["config"].as_object_mut() {
                config.remove("allow_on_headers_stop_iteration");
            }
        }
        entry
    }

    /// Leave `allow_on_headers_stop_iteration` out, as Envoy before 1.35 and control planes that
    /// do not expose it (Istio's WasmPlugin, Envoy Gateway) run the filter.
    pub fn without_stop_iteration(mut self) -> Self {
        self.allow_on_headers_stop_iteration = false;
        self
    }

    /// Accept and pass on HTTP/1 request trailers (`http_protocol_options.enable_trailers`).
    pub fn http1_trailers(mut self) -> Self {
        self.http1_trailers = true;
        self
    }

    /// The singleton bootstrap service that runs `config` (see [`Bootstrap::store_service`]).
    fn wasm_service(&self, config: &Value) -> Value {
        json!({
            "name": "envoy.bootstrap.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
                "singleton": true,
                "config": {
                    "name": "consumer_auth_store",
                    "root_id": "consumer_auth",
                    "configuration": { "@type": STRING_VALUE, "value": serde_json::to_string(config).unwrap() },
                    "vm_config": {
                        "vm_id": "consumer_auth",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": self.wasm } }
                    }
                }
            }
        })
    }

    pub fn to_json(&self) -> Value {
        assert!(self.failure_policy != "FAIL_OPEN", "FAIL_OPEN lets requests through unauthenticated");
        let mut http_filters = Vec::new();
        let mut routes = Vec::new();
        for route in &self.routes {
            let mut per_filter = Map::new();
            for (i, config) in route.chain.iter().enumerate() {
                let name = route.filter_name(i);
                http_filters.push(self.wasm_filter(&name, config));
                per_filter.insert(name, json!({ "@type": FILTER_CONFIG, "config": {} }));
            }
            let matcher = if route.prefix == "/" {
                json!({ "prefix": "/" })
            } else {
                json!({ "path_separated_prefix": route.prefix.trim_end_matches('/') })
            };
            let mut r = json!({ "match": matcher, "route": { "cluster": "echo" } });
            if !per_filter.is_empty() {
                r["typed_per_filter_config"] = Value::Object(per_filter);
            }
            routes.push(r);
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
        }));
        let mut clusters = vec![static_cluster("echo", self.upstream_port)];
        clusters.extend(self.clusters.iter().cloned());
        let mut bootstrap = json!({
            "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": self.admin_port } } },
            "stats_config": stats_config(),
            "static_resources": {
                "listeners": [{
                    "name": "main",
                    "address": { "socket_address": { "address": "127.0.0.1", "port_value": self.listener_port } },
                    "filter_chains": [{
                        "filters": [{
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                "stat_prefix": "ingress",
                                "always_set_request_id_in_response": true,
                                "route_config": {
                                    "name": "routes",
                                    "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }]
                                },
                                "http_filters": http_filters
                            }
                        }]
                    }]
                }],
                "clusters": clusters
            }
        });
        if self.http1_trailers {
            bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
                ["http_protocol_options"] = json!({ "enable_trailers": true });
        }
        if let Some(config) = &self.store_service {
            bootstrap["bootstrap_extensions"] = json!([self.wasm_service(config)]);
        }
        bootstrap
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_json())
    }
}

/// A STATIC cluster with one endpoint, `127.0.0.1:port`.
pub fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": { "socket_address": {
                "address": "127.0.0.1", "port_value": port } } } }] }]
        }
    })
}

/// One consumer-auth instance in the connection manager's `http_filters`: disabled, enabled by
/// the routes that use it (`FilterConfig`). `allow_on_headers_stop_iteration` (Envoy 1.35+) lets
/// the body plugins hold the request headers while the body arrives.
pub fn wasm_filter_entry(name: &str, configuration: &str, failure_policy: &str, wasm: &str) -> Value {
    json!({
        "name": name,
        "disabled": true,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": "consumer_auth",
                "failure_policy": failure_policy,
                "allow_on_headers_stop_iteration": true,
                "configuration": { "@type": STRING_VALUE, "value": configuration },
                "vm_config": {
                    "vm_id": "consumer_auth",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": wasm } }
                }
            }
        }
    })
}

/// consumer-auth's counters carry their label values in the stat name (the proxy-wasm ABI has no
/// labels); these tag extractors turn them into Prometheus labels:
/// `consumer_auth_requests_total{plugin="key-auth",outcome="authenticated"}`.
pub fn stats_config() -> Value {
    json!({
        "stats_tags": [
            { "tag_name": "plugin", "regex": "^wasmcustom\\.consumer_auth_requests_total(\\.plugin\\.([^.]+))" },
            { "tag_name": "outcome",
              "regex": "^wasmcustom\\.consumer_auth_\\w+_total(?:\\.plugin\\.[^.]+)?(?:\\.store\\.[^.]+)?(\\.outcome\\.([^.]+))$" },
            { "tag_name": "store", "regex": "^wasmcustom\\.consumer_auth_store_\\w+(\\.store\\.([^.]+))" }
        ]
    })
}

/// Block-style YAML for a JSON value. Strings are JSON-quoted (valid YAML double-quoted
/// scalars), except multi-line strings, which become `|-` literal blocks.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(_) | Value::Array(_) => None,
        Value::String(_) => Some(v.to_string()),
        other => Some(other.to_string()),
    }
}

fn key(k: &str) -> String {
    let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn literal_block(s: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::from("|-\n");
    for line in s.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Emit `value` (an object or array) at `indent`; the caller already wrote the line prefix.
fn emit(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (i, (k, v)) in map.iter().enumerate() {
                // The first key of an array item continues the `- ` line.
                if i > 0 || !out.ends_with("- ") {
                    out.push_str(&pad);
                }
                out.push_str(&key(k));
                out.push(':');
                emit_value(v, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match scalar(item) {
                    Some(s) => {
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => emit(item, indent + 2, out),
                }
            }
        }
        other => {
            out.push_str(&scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

fn emit_value(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::String(s) if s.contains('\n') => {
            out.push(' ');
            out.push_str(&literal_block(s, indent + 2));
        }
        _ => match scalar(v) {
            Some(s) => {
                out.push(' ');
                out.push_str(&s);
                out.push('\n');
            }
            None => {
                out.push('\n');
                let child = if v.is_array() { indent } else { indent + 2 };
                emit(v, child, out);
            }
        },
    }
}

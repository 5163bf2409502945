//! Fixture filter for proxy-wasm-harness tests. Behaviour is driven by request headers:
//! x-deny, x-set-path, x-remove, x-echo, x-bin, x-prop-set, x-prop-get, x-shared, x-panic,
//! x-call, x-buffer. Config is a tiny JSON object: {"name": "...", "fail": true, "tick": true}.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { name: String::new(), config: String::new(), metric: 0, ticks: 0 })
    });
}}

fn info(msg: &str) {
    let _ = hostcalls::log(LogLevel::Info, msg);
}

fn json_str(cfg: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let at = cfg.find(&pat)? + pat.len();
    let rest = cfg[at..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Increments the shared counter `key` with a CAS loop; returns the new value.
fn shared_increment(key: &str) -> u64 {
    loop {
        let (value, cas) = hostcalls::get_shared_data(key).unwrap();
        let n: u64 = value.map(|v| String::from_utf8(v).unwrap().parse().unwrap()).unwrap_or(0) + 1;
        match hostcalls::set_shared_data(key, Some(n.to_string().as_bytes()), cas) {
            Ok(()) => return n,
            Err(Status::CasMismatch) => continue,
            Err(e) => panic!("set_shared_data: {e:?}"),
        }
    }
}

struct Root {
    name: String,
    config: String,
    metric: u32,
    ticks: u32,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _nh: usize, body_size: usize, _nt: usize) {
        let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
        info(&format!("{} root call {token} answered: {}", self.name, String::from_utf8_lossy(&body)));
        hostcalls::set_shared_data("root-call", Some(&body), None).unwrap();
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let cfg = String::from_utf8(self.get_plugin_configuration().unwrap_or_default()).unwrap_or_default();
        if cfg.contains("\"fail\"") {
            let _ = hostcalls::log(LogLevel::Error, "invalid configuration: fail requested");
            return false;
        }
        self.name = json_str(&cfg, "name").unwrap_or_else(|| "anon".to_string());
        if cfg.contains("\"tick\"") {
            self.set_tick_period(Duration::from_millis(500));
        }
        self.metric = hostcalls::define_metric(MetricType::Counter, "fixture_requests").unwrap();
        let gauge = hostcalls::define_metric(MetricType::Gauge, "fixture_instances").unwrap();
        hostcalls::increment_metric(gauge, 1).unwrap();
        self.config = cfg;
        info(&format!("configured {}", self.name));
        true
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let n = shared_increment("ticks");
        let now = self.get_current_time().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        info(&format!("{} tick {} shared={n} now={now}", self.name, self.ticks));
        if self.config.contains("\"tick_call\"") {
            self.dispatch_http_call(
                "keys",
                vec![(":method", "GET"), (":path", "/keys"), (":authority", "keys.local")],
                None,
                vec![],
                Duration::from_secs(5),
            )
            .unwrap();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { name: self.name.clone(), metric: self.metric, ctx: context_id, buffer: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    name: String,
    metric: u32,
    ctx: u32,
    buffer: bool,
}

impl Context for Http {
    fn on_http_call_response(&mut self, _token: u32, _nh: usize, body_size: usize, _nt: usize) {
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size).unwrap_or_default();
        if status.as_deref() == Some("200") {
            self.add_http_request_header("x-auth", &String::from_utf8_lossy(&body));
            self.resume_http_request();
        } else {
            self.send_http_response(401, vec![("x-by", &self.name)], Some(b"unauthorized"));
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, num_headers: usize, eos: bool) -> Action {
        hostcalls::increment_metric(self.metric, 1).unwrap();
        info(&format!("{} request headers n={num_headers} eos={eos} ctx={}", self.name, self.ctx));
        self.add_http_request_header("x-seen-by", &self.name.clone());
        let h = |s: &Self, n: &str| s.get_http_request_header(n);
        if h(self, "x-deny").is_some() {
            let body = format!("denied by {}", self.name);
            self.send_http_response(403, vec![("x-reason", "denied"), ("x-by", &self.name)], Some(body.as_bytes()));
            return Action::Pause;
        }
        if let Some(p) = h(self, "x-set-path") {
            self.set_http_request_header(":path", Some(&p));
        }
        if let Some(name) = h(self, "x-remove") {
            self.set_http_request_header(&name, None);
        }
        if let Some(v) = h(self, "x-echo") {
            self.set_http_request_header("x-echoed", Some(&v));
        }
        if let Some(v) = self.get_http_request_header_bytes("x-bin") {
            self.set_http_request_header("x-bin-len", Some(&v.len().to_string()));
            self.set_http_request_header_bytes("x-bin-copy", Some(&v));
        }
        if let Some(v) = h(self, "x-prop-set") {
            self.set_property(vec!["fixture", "value"], Some(v.as_bytes()));
        }
        if h(self, "x-prop-get").is_some() {
            let prop = |path: Vec<&str>| {
                self.get_property(path).map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or("none".into())
            };
            let value = prop(vec!["fixture", "value"]);
            let rid = prop(vec!["request", "id"]);
            let path = prop(vec!["request", "path"]);
            let proto = prop(vec!["request", "protocol"]);
            let root_id = prop(vec!["plugin_root_id"]);
            let custom = prop(vec!["source", "address"]);
            self.set_http_request_header("x-prop", Some(&value));
            self.set_http_request_header("x-rid", Some(&rid));
            self.set_http_request_header("x-props", Some(&format!("{path}|{proto}|{root_id}|{custom}")));
        }
        if h(self, "x-shared").is_some() {
            let n = shared_increment("counter");
            self.set_http_request_header("x-shared-count", Some(&n.to_string()));
        }
        if h(self, "x-panic").is_some() {
            panic!("boom requested by {}", self.name);
        }
        if let Some(token) = h(self, "x-call") {
            self.dispatch_http_call(
                "auth",
                vec![(":method", "POST"), (":path", "/check"), (":authority", "auth.local"), ("x-token", &token)],
                Some(b"check"),
                vec![],
                Duration::from_secs(2),
            )
            .unwrap();
            return Action::Pause;
        }
        if h(self, "x-buffer").is_some() {
            self.buffer = true;
            if !eos {
                return Action::Pause;
            }
        }
        if h(self, "x-count").is_some() {
            let n = self.get_http_request_headers_bytes().len();
            self.set_http_request_header("x-count", Some(&n.to_string()));
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, eos: bool) -> Action {
        info(&format!("{} request body size={body_size} eos={eos}", self.name));
        if self.buffer {
            if !eos {
                return Action::Pause;
            }
            let body = self.get_http_request_body(0, body_size).unwrap_or_default();
            self.set_http_request_header("x-body-len", Some(&body.len().to_string()));
            self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let order = self.get_http_response_header("x-order").unwrap_or_default();
        self.set_http_response_header("x-order", Some(&format!("{order}{};", self.name)));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, eos: bool) -> Action {
        if !eos {
            return Action::Pause;
        }
        let body = self.get_http_response_body(0, body_size).unwrap_or_default();
        let mut new = body.clone();
        new.extend_from_slice(format!("+{}", self.name).as_bytes());
        self.set_http_response_body(0, body_size, &new);
        Action::Continue
    }

    fn on_log(&mut self) {
        info(&format!("{} on_log", self.name));
    }
}

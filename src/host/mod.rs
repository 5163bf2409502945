//! The thin glue between the proxy-wasm SDK and the engine: one root context per filter
//! instance (parses the configuration once), one http context per request (reads only what it
//! needs, runs the pipeline, applies the outcome). Any host failure fails closed.

mod abi;
mod body_wait;
mod metrics;
mod store_loader;

use std::borrow::Cow;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::config::Config;
use crate::identity::{self, HeaderOp, HANDOFF_PROPERTY_ENVOY, HANDOFF_PROPERTY_KONG};
use crate::pipeline::{self, Forward, LogLevel, Outcome, SharedError, Verdict};
use crate::request::{Body, Header, Request};
use crate::response::{self, LocalResponse, Reason, Rejection};
use crate::MAX_BODY_BYTES;
use body_wait::BodyWaits;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(FilterRoot { context_id, config: None, loader: None, body_waits: Rc::default() })
    });
}}

fn level_code(level: LogLevel) -> u32 {
    match level {
        LogLevel::Trace => 0,
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
    }
}

fn log(level: LogLevel, message: &str) {
    abi::log(level_code(level), message);
}

/// The engine's view of the proxy.
struct ProxyHost;

impl pipeline::Host for ProxyHost {
    fn now_unix_seconds(&mut self) -> u64 {
        // A host without a clock makes every expiring key look expired (fail closed).
        abi::now_nanos().map_or(u64::MAX, |ns| ns / 1_000_000_000)
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn count(&mut self, counter: crate::proxy::Counter) {
        metrics::count(counter);
    }

    fn request_protocol(&mut self) -> Option<String> {
        abi::get_property(&["request", "protocol"]).ok().flatten().map(|p| String::from_utf8_lossy(&p).into_owned())
    }

    fn shared_get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, SharedError> {
        abi::get_shared_data(key).map_err(|_| SharedError::Unavailable)
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedError> {
        let set = |cas: u32| {
            abi::set_shared_data(key, value, cas).map_err(|e| {
                if abi::is_cas_mismatch(e) {
                    SharedError::CasMismatch
                } else {
                    SharedError::Unavailable
                }
            })
        };
        if cas != 0 || on_envoy() {
            return set(cas);
        }
        // The engine's `cas == 0` is Envoy's "no check". Kong's ngx_wasm_module reads it as
        // "only if absent", so write with the entry's current CAS instead.
        for _ in 0..16 {
            let current = abi::get_shared_data(key).map_err(|_| SharedError::Unavailable)?.map_or(0, |(_, c)| c);
            match set(current) {
                Err(SharedError::CasMismatch) => continue,
                other => return other,
            }
        }
        Err(SharedError::Unavailable)
    }

    fn client_ip(&mut self) -> Option<String> {
        let address = abi::get_property(&["source", "address"]).ok().flatten()?;
        let address = String::from_utf8_lossy(&address).into_owned();
        Some(strip_port(&address).to_string())
    }
}

/// `1.2.3.4:5678` -> `1.2.3.4`; `[::1]:5678` -> `::1`; an address without a port is kept.
fn strip_port(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => address,
    }
}

/// Envoy exposes its node description as a property; Kong does not. Asked once per VM: Kong's
/// ngx_wasm_module differs from Envoy in ways the glue has to follow (docs/KONG.md).
fn on_envoy() -> bool {
    thread_local!(static ON_ENVOY: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) });
    ON_ENVOY.with(|cached| match cached.get() {
        Some(envoy) => envoy,
        None => {
            let envoy = matches!(abi::get_property(&["xds", "node"]), Ok(Some(_)));
            cached.set(Some(envoy));
            envoy
        }
    })
}

struct FilterRoot {
    context_id: u32,
    config: Option<Rc<Config>>,
    /// The consumer store this root fills, if its configuration has a `store` section.
    loader: Option<store_loader::Loader>,
    /// Requests paused for a body that may never come (Envoy without
    /// `allow_on_headers_stop_iteration`; see `body_wait`).
    body_waits: Rc<BodyWaits>,
}

impl Context for FilterRoot {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        if let Some(loader) = &mut self.loader {
            loader.on_http_call_response(token_id, body_size);
        }
    }
}

impl RootContext for FilterRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let on_envoy = on_envoy();
        let loaded = abi::get_buffer(abi::BUFFER_PLUGIN_CONFIGURATION, 0, plugin_configuration_size)
            .map_err(|e| format!("cannot read it (host status {})", e.0))
            .and_then(|bytes| Config::parse(&bytes).map_err(|e| e.to_string()))
            .and_then(|config| match &config.store {
                Some(def) => store_loader::Loader::start(def, self.context_id, !on_envoy).map(|l| (config, Some(l))),
                None => Ok((config, None)),
            });
        metrics::configuration(loaded.is_ok());
        match loaded {
            Ok((config, loader)) => {
                self.loader = loader;
                // The tick that answers requests whose body never comes (the loader, if any,
                // ticks at the same period).
                if on_envoy && config.body_needed_by.is_some() && abi::set_tick_period_ms(body_wait::TICK_MS).is_err() {
                    log(LogLevel::Warn, "consumer-auth: the host refused a tick period");
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "consumer-auth: configuration loaded: {} consumers, {} plugins",
                        config.inline_consumers(),
                        config.slots.len()
                    ),
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(reason) => {
                log(LogLevel::Error, &format!("consumer-auth: configuration refused: {reason}"));
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Kong: a store's consumers are written before the first request that could read them.
        if let Some(loader) = &self.loader {
            loader.write_pending(self.config.as_ref().and_then(|c| c.store.as_ref()));
        }
        // Always a context (the SDK traps on None); without a configuration it fails closed.
        Some(Box::new(FilterRequest {
            context_id,
            body_waits: Rc::clone(&self.body_waits),
            waiting_for_body: false,
            config: self.config.clone(),
            headers: Vec::new(),
            handoff: None,
            awaiting_body: false,
            response_headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        if let Some(loader) = &mut self.loader {
            loader.write_pending(self.config.as_ref().and_then(|c| c.store.as_ref()));
            loader.on_tick();
            // Kong's deferred inline store is written: no more ticks (Envoy never defers).
            if !on_envoy() && loader.idle() {
                let _ = abi::set_tick_period_ms(0);
            }
        }
        self.answer_bodiless_requests();
    }
}

impl FilterRoot {
    /// Answers the requests whose body has not come in time (see `body_wait`); stops the tick
    /// once the body callbacks are known to come and nothing waits.
    fn answer_bodiless_requests(&mut self) {
        if self.body_waits.is_empty() {
            if self.body_waits.body_seen() && self.loader.is_none() {
                let _ = abi::set_tick_period_ms(0);
            }
            return;
        }
        let now = abi::now_nanos().unwrap_or(u64::MAX);
        for waiting in self.body_waits.expired(now) {
            // A context that is gone (the client left) has nothing to answer.
            if abi::set_effective_context(waiting.context_id).is_ok() {
                log(LogLevel::Error, body_wait::NO_BODY_LINE);
                waiting.refusal.send();
            }
        }
        let _ = abi::set_effective_context(self.context_id);
    }
}

/// A refusal ready to send: the line to log, the counter, the local response.
pub struct Refusal {
    line: Option<(LogLevel, String)>,
    plugin: &'static str,
    reason: Reason,
    local: LocalResponse,
    details: &'static str,
}

impl Refusal {
    fn send(&self) {
        if let Some((level, line)) = &self.line {
            log(*level, line);
        }
        metrics::request(self.plugin, self.reason.as_str());
        let local = &self.local;
        if abi::send_local_response(local.status, &local.headers, &local.body, self.details).is_err() {
            log(LogLevel::Error, "consumer-auth: could not send the local response");
        }
    }
}

struct FilterRequest {
    context_id: u32,
    body_waits: Rc<BodyWaits>,
    /// Registered in `body_waits`.
    waiting_for_body: bool,
    config: Option<Rc<Config>>,
    headers: Vec<Header>,
    handoff: Option<Vec<u8>>,
    awaiting_body: bool,
    /// Headers for the upstream's response (rate-limiting's).
    response_headers: Vec<(String, String)>,
}

impl Context for FilterRequest {}

impl Drop for FilterRequest {
    fn drop(&mut self) {
        if self.waiting_for_body {
            self.body_waits.forget(self.context_id);
        }
    }
}

impl HttpContext for FilterRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.fail_closed("no valid configuration");
        };
        self.headers = match abi::request_headers() {
            Ok(h) => h,
            Err(_) => return self.fail_closed("cannot read the request headers"),
        };
        self.handoff = abi::get_property(self.handoff_property()).ok().flatten();
        // Envoy's `end_of_stream` is reliable (and its HTTP/1 codec drops `Transfer-Encoding`, so
        // the framing headers cannot tell a chunked body there); Kong's needs the framing.
        let body = if config.body_needed_by.is_some() && !end_of_stream && (on_envoy() || self.body_expected()) {
            Body::Pending
        } else {
            Body::Empty
        };
        self.decide(&config, body)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        self.body_came();
        if body_size > MAX_BODY_BYTES {
            return self.too_large();
        }
        // Continue before the decision would release the held headers: keep buffering.
        if !end_of_stream {
            return Action::Pause;
        }
        self.judge_body(body_size)
    }

    /// A body followed by trailers ends here, not in a body callback with `end_of_stream`:
    /// judge it now (the SDK's default, Continue, would let the held request through unjudged).
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        self.body_came();
        // The size is not passed here: read one byte past the bound to tell.
        match abi::get_buffer(abi::BUFFER_REQUEST_BODY, 0, MAX_BODY_BYTES + 1) {
            Ok(b) if b.len() > MAX_BODY_BYTES => self.too_large(),
            Ok(b) => self.judge_body(b.len()),
            Err(_) => self.fail_closed("cannot read the request body"),
        }
    }
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            if abi::add_response_header(&name, value.as_bytes()).is_err() {
                log(LogLevel::Warn, "consumer-auth: could not add a response header");
            }
        }
        Action::Continue
    }
}

/// Kong's answer to a request the filter could not judge.
fn internal_error() -> Rejection {
    Rejection::kong(500, "An unexpected error occurred", Reason::InternalError)
}

/// Logged once per VM: a host that refuses the handoff property.
fn warn_once_no_handoff() {
    thread_local!(static WARNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !WARNED.with(|w| w.replace(true)) {
        log(
            LogLevel::Warn,
            "consumer-auth: the host refused the kong.ctx.shared property (Kong before 3.6): \
             several filter instances in one chain cannot hand the identity on",
        );
    }
}

impl FilterRequest {
    /// The body came for a request paused for it: the body callbacks do come on this root.
    fn body_came(&mut self) {
        self.waiting_for_body = false;
        self.body_waits.saw_body(self.context_id);
    }

    /// The whole body (`body_size` bytes) is buffered: run the pipeline with it.
    fn judge_body(&mut self, body_size: usize) -> Action {
        self.awaiting_body = false;
        let Some(config) = self.config.clone() else {
            return self.fail_closed("no valid configuration");
        };
        let body = match abi::get_buffer(abi::BUFFER_REQUEST_BODY, 0, body_size) {
            // Kong cannot hand over a body nginx buffered to a file: never judge it as empty
            Ok(b) if b.len() < body_size => {
                return self.fail_closed("the host gave less of the request body than it announced")
            }
            Ok(b) => b,
            Err(_) => return self.fail_closed("cannot read the request body"),
        };
        self.decide(&config, Body::Complete(&body))
    }

    /// How many times the request carries header `name` (any casing).
    fn copies(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    /// What Kong's ngx_wasm_module cannot do to the request headers (docs/KONG.md, "Identity
    /// headers on Kong"): it "removes" a header by zeroing its hash, which nginx's proxy module
    /// ignores (the header is forwarded with its value), and replacing a header the request
    /// carries twice zeroes every copy, the new value too. So on Kong: a header to change or
    /// remove must be there at most once; a client-supplied identity header (which must go)
    /// refuses the request; a hidden credential or an identity header an earlier instance wrote
    /// is blanked in place.
    fn check_kong_header_ops(&self, ops: &[HeaderOp], first_instance: bool) -> Result<(), Cow<'static, str>> {
        for op in ops {
            let (name, removing) = match op {
                HeaderOp::Remove(name) => (name.as_str(), true),
                HeaderOp::Set(name, _) => (*name, false),
            };
            let copies = self.copies(name);
            if copies > 1 {
                return Err(format!(
                    "the request carries {copies} {name} headers, which Kong's ngx_wasm_module cannot \
                     {} (nginx would forward them); see docs/KONG.md",
                    if removing { "remove" } else { "replace" }
                )
                .into());
            }
            if removing && copies == 1 && first_instance && identity::is_spoofable(name) {
                return Err(format!(
                    "the request carries the identity header {name}, which Kong's ngx_wasm_module cannot \
                     remove (nginx would forward it); remove it before the filter chain, see docs/KONG.md"
                )
                .into());
            }
        }
        Ok(())
    }

    fn handoff_property(&self) -> &'static [&'static str] {
        if on_envoy() {
            &HANDOFF_PROPERTY_ENVOY
        } else {
            &HANDOFF_PROPERTY_KONG
        }
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// A pseudo-header from the map; hosts that leave pseudo-headers out of the map (Kong) are
    /// asked for it by name, then for the request property.
    fn pseudo(&self, header: &str, property: &[&str]) -> String {
        // Kong's `:path` is nginx's decoded, normalised URI; `request.path` is the raw one the
        // client sent (what hmac-auth signs).
        if header == ":path" && !on_envoy() {
            if let Ok(Some(raw)) = abi::get_property(property) {
                return String::from_utf8_lossy(&raw).into_owned();
            }
        }
        if let Some(v) = self.header(header) {
            return String::from_utf8_lossy(v).into_owned();
        }
        abi::request_header(header)
            .ok()
            .flatten()
            .or_else(|| abi::get_property(property).ok().flatten())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    /// Whether a request whose headers did not end the stream really has a body (Kong: its
    /// `end_of_stream` is always false, so look at the framing).
    fn body_expected(&self) -> bool {
        match self.header("content-length") {
            Some(len) => len != b"0",
            None if self.header("transfer-encoding").is_some() => true,
            // HTTP/2 and HTTP/3 bodies need no framing header.
            None => {
                abi::get_property(&["request", "protocol"]).ok().flatten().is_none_or(|p| !p.starts_with(b"HTTP/1"))
            }
        }
    }

    fn decide(&mut self, config: &Config, body: Body<'_>) -> Action {
        let method = self.pseudo(":method", &["request", "method"]);
        let path = self.pseudo(":path", &["request", "path"]);
        let request = Request::new(&method, &path, &self.headers, body);
        let outcome = pipeline::run(config, &request, self.handoff.as_deref(), &mut ProxyHost);
        drop(request);
        match outcome {
            Outcome::Forward(forward) => {
                let verdict = forward.verdict;
                match self.apply(forward, body) {
                    Ok(()) => {
                        match verdict {
                            Verdict::Passed => metrics::request("none", "passed"),
                            Verdict::Authenticated(plugin) => metrics::request(plugin, "authenticated"),
                            Verdict::Anonymous(plugin) => metrics::request(plugin, "anonymous"),
                        }
                        Action::Continue
                    }
                    Err(what) => self.fail_closed(&what),
                }
            }
            Outcome::Reject(rejection) => self.reject(&rejection),
            Outcome::NeedBody => {
                let declared = self
                    .header("content-length")
                    .and_then(|l| std::str::from_utf8(l).ok()?.trim().parse::<usize>().ok());
                if declared.is_some_and(|l| l > MAX_BODY_BYTES) {
                    return self.too_large();
                }
                if !on_envoy() {
                    // ngx_wasm_module reads the body in the content phase, after the access
                    // phase these headers are judged in: a pause here would wait for ever. So
                    // carry on, and judge (refuse, or set the identity) in the body callback,
                    // which comes, whole, before nginx proxies the request — when the body is
                    // not empty. A body of unknown length may be empty (no callback: the request
                    // would go through unjudged), so it is refused.
                    if declared.is_none_or(|l| l == 0) {
                        return self.fail_closed(
                            "a request body without Content-Length cannot be judged on Kong's ngx_wasm_module \
                             (see docs/KONG.md)",
                        );
                    }
                    self.awaiting_body = true;
                    return Action::Continue;
                }
                self.awaiting_body = true;
                // Until a body callback has come on this root, the body may never come (Envoy
                // without allow_on_headers_stop_iteration): answer from the tick if it does not.
                if on_envoy() && !self.body_waits.body_seen() && !self.waiting_for_body {
                    let refusal = self.refusal(&internal_error());
                    let now = abi::now_nanos().unwrap_or(0);
                    self.body_waits.wait(self.context_id, now, refusal);
                    self.waiting_for_body = true;
                }
                Action::Pause
            }
        }
    }

    fn apply(&mut self, forward: Forward, body: Body<'_>) -> Result<(), Cow<'static, str>> {
        self.response_headers = forward.response_headers;
        const FAILED: &str = "cannot update the request headers";
        if !on_envoy() {
            // Checked before any change: a refusal leaves the request as it came.
            self.check_kong_header_ops(&forward.header_ops, forward.first_instance)?;
        }
        for op in &forward.header_ops {
            match op {
                HeaderOp::Remove(name) if on_envoy() => abi::remove_request_header(name).map_err(|_| FAILED)?,
                // Kong: nginx forwards a header ngx_wasm_module "removed" (it only zeroes its hash),
                // so the one copy (checked above) is blanked in place: the value never leaves.
                HeaderOp::Remove(name) => {
                    if self.header(name).is_some() {
                        abi::replace_request_header(name, b"").map_err(|_| FAILED)?
                    }
                }
                // Adding costs the host less than replacing (Envoy: ~0.7 vs ~1 µs); the headers
                // read at the start say whether there is one to replace.
                HeaderOp::Set(name, value) if self.header(name).is_none() => {
                    abi::add_request_header(name, value.as_bytes()).map_err(|_| FAILED)?
                }
                HeaderOp::Set(name, value) => {
                    abi::replace_request_header(name, value.as_bytes()).map_err(|_| FAILED)?
                }
            }
        }
        if let Some(path) = &forward.path {
            if on_envoy() {
                abi::replace_request_header(":path", path.as_bytes()).map_err(|_| FAILED)?;
            } else {
                // ngx_wasm_module cannot set a `:path` with a query string (it traps); the query
                // is nginx's `$args`, which Kong appends to the upstream URI.
                let query = path.split_once('?').map_or("", |(_, q)| q);
                abi::set_property(&["request", "query"], query.as_bytes()).map_err(|_| FAILED)?;
                // A host that took the property for something else must not forward the
                // credential: check, and fail closed rather than let it through.
                // (`request.query` is nginx's `$args` itself; ngx_wasm_module's `:path` is cached
                // per request and still shows the old query.)
                let now_query = abi::get_property(&["request", "query"]).map_err(|_| FAILED)?.unwrap_or_default();
                if now_query != query.as_bytes() {
                    return Err("the host did not take the new query string".into());
                }
            }
        }
        if let (Some(new_body), Body::Complete(old)) = (&forward.body, body) {
            abi::set_buffer(abi::BUFFER_REQUEST_BODY, 0, old.len(), new_body)
                .map_err(|_| "cannot update the request body")?;
            if self.header("content-length").is_some() {
                abi::replace_request_header("content-length", new_body.len().to_string().as_bytes())
                    .map_err(|_| FAILED)?;
            }
        }
        if let Some(handoff) = &forward.handoff {
            if abi::set_property(self.handoff_property(), handoff).is_err() {
                if on_envoy() {
                    return Err("cannot hand the identity on".into());
                }
                // Kong before 3.6 has no `kong.ctx.shared` property: a single instance works, a
                // later one cannot see this identity and runs as if it were first (it strips the
                // identity headers and authenticates on its own: never more access).
                warn_once_no_handoff();
            }
        }
        Ok(())
    }

    /// The id the host gives the request: Envoy's `request.id`; Kong's own id (3.5+, the one its
    /// error bodies carry; Kong's `request.id` property is only the client's `X-Request-Id`).
    fn request_id(&self) -> Option<String> {
        let kong_id = || if on_envoy() { None } else { abi::get_property(&["ngx", "kong_request_id"]).ok().flatten() };
        kong_id()
            .or_else(|| abi::get_property(&["request", "id"]).ok().flatten())
            .or_else(|| self.header("x-request-id").map(<[u8]>::to_vec))
            .filter(|id| !id.is_empty())
            .map(|id| String::from_utf8_lossy(&id).into_owned())
    }

    fn reject(&self, rejection: &Rejection) -> Action {
        self.refusal(rejection).send();
        Action::Pause
    }

    /// What refusing this request with `rejection` logs, counts and answers.
    fn refusal(&self, rejection: &Rejection) -> Refusal {
        let request_id = self.request_id();
        let plugin = if rejection.plugin.is_empty() { "consumer-auth" } else { rejection.plugin };
        // Without a configuration (fail closed) the line is always written, as an error.
        let level = match &self.config {
            Some(config) => config.refusal_log_level,
            None => Some(LogLevel::Error),
        };
        // Never a secret: the message is one of the fixed texts, the consumer its name.
        let line = level.map(|level| {
            let line = format!(
                "consumer-auth: refused request_id={} plugin={plugin} reason={} status={} consumer={} message={:?}",
                request_id.as_deref().unwrap_or("-"),
                rejection.reason.as_str(),
                rejection.status,
                rejection.consumer.as_deref().unwrap_or("-"),
                rejection.message()
            );
            (level, line)
        });
        let local = response::render(rejection, self.header("accept"), request_id.as_deref());
        // Envoy logs the details as the response code details; Kong's ngx_wasm_module puts them
        // in the status line, where the reason phrase belongs.
        let details = if on_envoy() { "consumer_auth" } else { response::reason_phrase(local.status) };
        Refusal { line, plugin, reason: rejection.reason, local, details }
    }

    fn too_large(&mut self) -> Action {
        self.awaiting_body = false;
        self.reject(&Rejection::kong(413, "Payload too large", Reason::BodyTooLarge))
    }

    /// Never let a request through that the filter could not judge.
    fn fail_closed(&self, why: &str) -> Action {
        log(LogLevel::Error, &format!("consumer-auth: refusing request: {why}"));
        self.reject(&internal_error())
    }
}

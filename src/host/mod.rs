//! The thin glue between the proxy-wasm SDK and the engine: one root context per filter
//! instance (parses the configuration once), one http context per request (reads only what it
//! needs, runs the pipeline, applies the outcome). Any host failure fails closed.

mod abi;
mod body_wait;
mod counter_calls;
mod metrics;
mod store_loader;

use std::borrow::Cow;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::config::Config;
use crate::host_kind::{BodyPlan, HeaderCall, HostKind, PathRewrite, PseudoSource, RequestIdSource};
use crate::pipeline::{self, Forward, LogLevel, Outcome, SharedError, Verdict};
use crate::request::{Body, Header, Request};
use crate::response::{self, LocalResponse, Reason, Rejection};
use crate::MAX_BODY_BYTES;
use body_wait::BodyWaits;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(FilterRoot {
            context_id,
            config: None,
            loader: None,
            body_waits: Rc::default(),
            flushes: counter_calls::Flushes::default(),
        })
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

thread_local!(static HOST_LOG_LEVEL: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) });

/// Whether the host writes lines at `level` (Envoy: its `wasm` logger's level, which the admin
/// `/logging` endpoint changes at run time). Asked once, then again after each tick (so a change
/// shows within a tick of traffic): a refusal line the host would drop is neither built nor sent.
/// A host that does not tell (Kong's ngx_wasm_module answers nothing) gets every line.
fn log_enabled(level: LogLevel) -> bool {
    let host_level = HOST_LOG_LEVEL.with(|cached| match cached.get() {
        Some(l) => l,
        None => {
            let l = abi::log_level().unwrap_or(0);
            cached.set(Some(l));
            l
        }
    });
    level_code(level) >= host_level
}

/// The host's log level is asked again on the next line.
fn forget_log_level() {
    HOST_LOG_LEVEL.with(|cached| cached.set(None));
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
        metrics::jwt_cache(counter);
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
        if cas != 0 || !kind().unconditional_write_needs_current_cas() {
            return set(cas);
        }
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

thread_local!(static HOST_KIND: std::cell::Cell<Option<HostKind>> = const { std::cell::Cell::new(None) });

/// Which host this is (Kong's ngx_wasm_module differs from Envoy in ways the glue has to follow,
/// see `host_kind`): decided by each `on_configure`, asked of the host here only should a context
/// run before any.
fn kind() -> HostKind {
    HOST_KIND.with(|cached| match cached.get() {
        Some(kind) => kind,
        None => decide_kind(),
    })
}

fn decide_kind() -> HostKind {
    let kind = HostKind::detect(matches!(abi::get_property(&["xds", "node"]), Ok(Some(_))));
    HOST_KIND.with(|cached| cached.set(Some(kind)));
    kind
}

struct FilterRoot {
    context_id: u32,
    config: Option<Rc<Config>>,
    /// The consumer store this root fills, if its configuration has a `store` section.
    loader: Option<store_loader::Loader>,
    /// Requests paused for a body that may never come (Envoy without
    /// `allow_on_headers_stop_iteration`; see `body_wait`).
    body_waits: Rc<BodyWaits>,
    /// rate-limiting's `sync_rate` flushes (`counter_calls`).
    flushes: counter_calls::Flushes,
}

impl Context for FilterRoot {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        if let Some(config) = &self.config {
            if self.flushes.on_http_call_response(config, token_id, body_size) {
                return;
            }
        }
        if let Some(loader) = &mut self.loader {
            loader.on_http_call_response(token_id, body_size);
        }
    }

    /// The end of this filter instance: its VM's counts are handed over now.
    fn on_done(&mut self) -> bool {
        metrics::flush();
        true
    }
}

impl RootContext for FilterRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let kind = decide_kind();
        let loaded = abi::get_buffer(abi::BUFFER_PLUGIN_CONFIGURATION, 0, plugin_configuration_size)
            .map_err(|e| format!("cannot read it (host status {})", e.0))
            .and_then(|bytes| Config::parse(&bytes).map_err(|e| e.to_string()))
            .and_then(|config| match &config.store {
                Some(def) => store_loader::Loader::start(def, self.context_id, kind.defers_store_write())
                    .map(|l| (config, Some(l))),
                None => Ok((config, None)),
            });
        metrics::configuration(loaded.is_ok());
        match loaded {
            Ok((config, loader)) => {
                self.loader = loader;
                // The tick that answers requests whose body never comes (the loader, if any,
                // ticks at the same period).
                if kind.body_may_never_come()
                    && config.body_needed_by.is_some()
                    && abi::set_tick_period_ms(body_wait::TICK_MS).is_err()
                {
                    log(LogLevel::Warn, "consumer-auth: the host refused a tick period");
                }
                if let Some(ms) = counter_calls::tick_ms(&config) {
                    if abi::set_tick_period_ms(ms.min(body_wait::TICK_MS)).is_err() {
                        log(LogLevel::Warn, "consumer-auth: the host refused a tick period");
                    }
                    // This tick runs for good: a metric count must not re-arm it slower.
                    metrics::tick_held();
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
            counters: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        if let Some(loader) = &mut self.loader {
            loader.write_pending(self.config.as_ref().and_then(|c| c.store.as_ref()));
            loader.on_tick();
        }
        self.answer_bodiless_requests();
        if let Some(config) = &self.config {
            self.flushes.on_tick(config);
        }
        metrics::flush();
        if self.flushes_counters() {
            metrics::tick_held();
        }
        forget_log_level();
        if !self.needs_tick() {
            let _ = abi::set_tick_period_ms(0);
        }
    }
}

impl FilterRoot {
    /// Whether this root still needs its tick after this one (the metrics re-arm it when they
    /// count again): a store loader (Kong's deferred inline store only until it is written;
    /// Envoy never defers), rate-limiting counters to flush (`sync_rate`), or requests that may
    /// wait for a body that never comes (until a body callback has come and nothing waits).
    fn needs_tick(&self) -> bool {
        let loader = self.loader.as_ref().is_some_and(|l| !(kind().defers_store_write() && l.idle()));
        let bodies = !self.body_waits.is_empty()
            || (kind().body_may_never_come()
                && self.config.as_ref().is_some_and(|c| c.body_needed_by.is_some())
                && !self.body_waits.body_seen());
        loader || bodies || self.flushes_counters()
    }

    /// The tick also flushes rate-limiting counters (`sync_rate`), at their own period.
    fn flushes_counters(&self) -> bool {
        self.config.as_deref().is_some_and(|c| counter_calls::tick_ms(c).is_some())
    }

    /// Answers the requests whose body has not come in time (see `body_wait`).
    fn answer_bodiless_requests(&mut self) {
        if self.body_waits.is_empty() {
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
    /// Paused for rate-limiting's counters (`counter_calls`).
    counters: Option<counter_calls::Pending>,
}

impl Context for FilterRequest {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        if self.counters.as_ref().is_some_and(|p| p.token == token_id) {
            self.counters_came(body_size);
        }
    }
}

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
        self.handoff = if crate::identity::may_carry_handoff(&self.headers) {
            abi::get_property(kind().handoff_property()).ok().flatten()
        } else {
            None
        };
        let protocol = || abi::get_property(&["request", "protocol"]).ok().flatten();
        let body = if config.body_needed_by.is_some() && kind().body_follows(end_of_stream, &self.headers, protocol) {
            Body::Pending
        } else {
            Body::Empty
        };
        self.decide(&config, body)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.counters.is_some() {
            return Action::Pause;
        }
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
        if self.counters.is_some() {
            return Action::Pause;
        }
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

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// A pseudo-header, from where this host has it (see `HostKind::pseudo_sources`); borrowed
    /// from the header map when it is there (Envoy: always).
    fn pseudo(&self, header: &str, property: &[&str]) -> Cow<'_, str> {
        kind()
            .pseudo_sources(header)
            .iter()
            .find_map(|source| match source {
                PseudoSource::Property => abi::get_property(property).ok().flatten().map(Cow::Owned),
                PseudoSource::HeaderMap => self.header(header).map(Cow::Borrowed),
                PseudoSource::Header => abi::request_header(header).ok().flatten().map(Cow::Owned),
            })
            .map(|v| match v {
                Cow::Borrowed(b) => String::from_utf8_lossy(b),
                Cow::Owned(o) => Cow::Owned(String::from_utf8_lossy(&o).into_owned()),
            })
            .unwrap_or_default()
    }

    fn decide(&mut self, config: &Config, body: Body<'_>) -> Action {
        self.decide_with(config, body, None)
    }

    /// `counter_reply`: the counters' answer, when this run resumes a request paused for it.
    fn decide_with(
        &mut self,
        config: &Config,
        body: Body<'_>,
        counter_reply: Option<Rc<pipeline::CounterReply>>,
    ) -> Action {
        let resumed = counter_reply.is_some();
        let outcome = {
            let method = self.pseudo(":method", &["request", "method"]);
            let path = self.pseudo(":path", &["request", "path"]);
            let request = Request::new(&method, &path, &self.headers, body);
            pipeline::run_with_counters(config, &request, self.handoff.as_deref(), counter_reply, &mut ProxyHost)
        };
        match outcome {
            Outcome::NeedCounters(_) if resumed => self.fail_closed("the counters were asked for twice"),
            Outcome::NeedCounters(call) => self.ask_counters(call, body),
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
                match kind().body_plan(declared) {
                    BodyPlan::TooLarge => self.too_large(),
                    BodyPlan::Refuse(why) => self.fail_closed(why),
                    BodyPlan::JudgeInBodyCallback => {
                        self.awaiting_body = true;
                        Action::Continue
                    }
                    BodyPlan::Pause => {
                        self.awaiting_body = true;
                        // Until a body callback has come on this root, the body may never come
                        // (Envoy without allow_on_headers_stop_iteration): answer from the tick if
                        // it does not.
                        if kind().body_may_never_come() && !self.body_waits.body_seen() && !self.waiting_for_body {
                            let refusal = self.refusal(&internal_error());
                            let now = abi::now_nanos().unwrap_or(0);
                            self.body_waits.wait(self.context_id, now, refusal);
                            self.waiting_for_body = true;
                        }
                        Action::Pause
                    }
                }
            }
        }
    }

    fn apply(&mut self, forward: Forward, body: Body<'_>) -> Result<(), Cow<'static, str>> {
        self.response_headers = forward.response_headers;
        const FAILED: &str = "cannot update the request headers";
        for call in kind().header_calls(&forward.header_ops, &self.headers, forward.first_instance)? {
            match call {
                HeaderCall::Add(name, value) => abi::add_request_header(name, value.as_bytes()),
                HeaderCall::Replace(name, value) => abi::replace_request_header(name, value.as_bytes()),
                HeaderCall::Remove(name) => abi::remove_request_header(name),
            }
            .map_err(|_| FAILED)?;
        }
        match forward.path.as_deref().map(|path| kind().path_rewrite(path)) {
            None => {}
            Some(PathRewrite::ReplacePath(path)) => {
                abi::replace_request_header(":path", path.as_bytes()).map_err(|_| FAILED)?;
            }
            Some(PathRewrite::SetQuery(query)) => {
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
            if abi::set_property(kind().handoff_property(), handoff).is_err() {
                if kind().handoff_refusal_is_fatal() {
                    return Err("cannot hand the identity on".into());
                }
                warn_once_no_handoff();
            }
        }
        Ok(())
    }

    /// The id the host gives the request, from where this host has it (see
    /// `HostKind::request_id_sources`); the first present one is the id (an empty one: none).
    fn request_id(&self) -> Option<String> {
        kind()
            .request_id_sources()
            .iter()
            .find_map(|source| match source {
                RequestIdSource::KongRequestId => abi::get_property(&["ngx", "kong_request_id"]).ok().flatten(),
                RequestIdSource::RequestIdProperty => abi::get_property(&["request", "id"]).ok().flatten(),
                RequestIdSource::XRequestIdHeader => self.header("x-request-id").map(<[u8]>::to_vec),
            })
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
        // Without a configuration (fail closed) the line is always written, as an error.
        let level = match &self.config {
            Some(config) => config.refusal_log_level,
            None => Some(LogLevel::Error),
        };
        let line = level.filter(|l| log_enabled(*l)).map(|level| (level, rejection.log_line(request_id.as_deref())));
        let local = response::render(rejection, self.header("accept"), request_id.as_deref());
        let details = kind().local_response_details(local.status);
        Refusal { line, plugin: rejection.plugin_or_filter(), reason: rejection.reason, local, details }
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

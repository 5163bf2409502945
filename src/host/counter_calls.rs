//! rate-limiting's `policy: redis` calls to the counters' front (see
//! `plugins/rate_limiting/redis.rs`, which builds them and reads the answers): a request paused
//! for its counters, and the root's `sync_rate` flushes.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::types::Action;

use super::{abi, log, FilterRequest, ProxyHost};
use crate::config::Config;
use crate::pipeline::{CounterCall, CounterReply, LogLevel};
use crate::request::Body;

/// Dispatches `call` from the current context (an http context for a request's counters, the
/// root for a flush); the answer comes to that context's `on_http_call_response`.
pub fn dispatch(call: &CounterCall) -> Result<u32, String> {
    let front = &call.front;
    let authorization = format!("Bearer {}", front.token);
    let length = call.body.len().to_string();
    let headers = vec![
        (":method", "POST"),
        (":path", call.path.as_str()),
        (":authority", front.upstream.as_str()),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let timeout = Duration::from_millis(u64::from(front.timeout_ms));
    proxy_wasm::hostcalls::dispatch_http_call(&front.upstream, headers, Some(&call.body), vec![], timeout)
        .map_err(|e| format!("cannot dispatch the call to {} ({e:?})", front.upstream))
}

/// Inside `on_http_call_response`: the front's counts for `keys` keys, or why there are none.
pub fn read(body_size: usize, keys: usize) -> Result<Vec<u64>, String> {
    let headers = abi::http_call_response_headers().unwrap_or_default();
    let header = |name: &str| {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    // Envoy reports a failed call with no headers at all; Kong with `:dispatch_status`.
    let body = if body_size == 0 {
        Vec::new()
    } else {
        abi::get_buffer(abi::BUFFER_HTTP_CALL_RESPONSE_BODY, 0, body_size).unwrap_or_default()
    };
    crate::plugins::rate_limiting::redis::read_answer(
        header(":status").as_deref(),
        header(":dispatch_status").as_deref(),
        &body,
        keys,
    )
}

/// A request paused for its counters.
pub struct Pending {
    pub token: u32,
    call: Box<CounterCall>,
    /// The body the run had, to run again with.
    body: Kept,
}

/// A request body as the paused run had it.
enum Kept {
    Empty,
    Pending,
    Complete(Vec<u8>),
}

impl Kept {
    fn of(body: Body<'_>) -> Kept {
        match body {
            Body::Empty => Kept::Empty,
            Body::Pending => Kept::Pending,
            Body::Complete(b) => Kept::Complete(b.to_vec()),
        }
    }

    fn body(&self) -> Body<'_> {
        match self {
            Kept::Empty => Body::Empty,
            Kept::Pending => Body::Pending,
            Kept::Complete(b) => Body::Complete(b),
        }
    }
}

impl FilterRequest {
    /// The run needs the counters: ask the front and pause (a call that cannot even be
    /// dispatched is a failed call: the run goes on with that at once).
    pub(super) fn ask_counters(&mut self, call: Box<CounterCall>, body: Body<'_>) -> Action {
        match dispatch(&call) {
            Ok(token) => {
                self.counters = Some(Pending { token, call, body: Kept::of(body) });
                Action::Pause
            }
            Err(why) => {
                let reply = Rc::new(CounterReply {
                    scope: call.scope.clone(),
                    windows: call.windows.clone(),
                    result: Err(why),
                });
                match self.config.clone() {
                    Some(config) => self.decide_with(&config, body, Some(reply)),
                    None => self.fail_closed("no valid configuration"),
                }
            }
        }
    }

    /// The front answered (or the call failed): judge the request and let it go on.
    pub(super) fn counters_came(&mut self, body_size: usize) {
        let Some(pending) = self.counters.take() else { return };
        let reply = pending.reply(body_size);
        let action = match self.config.clone() {
            Some(config) => self.decide_with(&config, pending.body.body(), Some(reply)),
            None => self.fail_closed("no valid configuration"),
        };
        // A refusal was sent as a local response; a request let through goes on.
        if matches!(action, Action::Continue) && proxy_wasm::hostcalls::resume_http_request().is_err() {
            log(LogLevel::Error, "consumer-auth: could not resume the request");
        }
    }
}

impl Pending {
    /// The answer to this request's call, ready for the run that resumes it.
    pub fn reply(&self, body_size: usize) -> Rc<CounterReply> {
        Rc::new(CounterReply {
            scope: self.call.scope.clone(),
            windows: self.call.windows.clone(),
            result: read(body_size, self.call.windows.len()),
        })
    }
}

/// The root's `sync_rate` flushes in flight: token -> (plugin's counter scope, shared keys).
#[derive(Default)]
pub struct Flushes {
    in_flight: HashMap<u32, (String, Vec<String>)>,
    /// Plugin entry's counter scope -> when it was last flushed (ms): the tick may be faster
    /// than an entry's `sync_rate` (another entry's, or the store loader's).
    last_ms: HashMap<String, u64>,
}

/// The tick period (ms) the configuration's `sync_rate` flushes need, if any.
pub fn tick_ms(config: &Config) -> Option<u32> {
    config.counter_policies().filter_map(|(policy, _)| policy.tick_ms()).min()
}

impl Flushes {
    /// The root's tick: one flush call per `sync_rate` plugin entry with pending increments.
    pub fn on_tick(&mut self, config: &Config) {
        let now_ms = abi::now_nanos().unwrap_or(0) / 1_000_000;
        for (policy, scope) in config.counter_policies() {
            let rate = u64::from(policy.tick_ms().unwrap_or(0));
            // Ticks come within a few ms of their period: a flush due within 5 ms is due.
            if self.last_ms.get(scope).is_some_and(|last| now_ms.saturating_add(5) < last.saturating_add(rate)) {
                continue;
            }
            self.last_ms.insert(scope.to_string(), now_ms);
            let Some((call, shared_keys)) = policy.flush_call(&mut ProxyHost, scope, now_ms / 1000) else { continue };
            match dispatch(&call) {
                Ok(token) => {
                    self.in_flight.insert(token, (scope.to_string(), shared_keys));
                }
                Err(why) => policy.flushed(&mut ProxyHost, &shared_keys, Err(why)),
            }
        }
    }

    /// A flush's answer; `false` if `token` is not one of ours.
    pub fn on_http_call_response(&mut self, config: &Config, token: u32, body_size: usize) -> bool {
        let Some((scope, shared_keys)) = self.in_flight.remove(&token) else { return false };
        let result = read(body_size, shared_keys.len());
        match config.counter_policies().find(|(_, s)| *s == scope) {
            Some((policy, _)) => policy.flushed(&mut ProxyHost, &shared_keys, result),
            None => log(LogLevel::Warn, "consumer-auth: rate-limiting: a flush answered for an unknown plugin entry"),
        }
        true
    }
}

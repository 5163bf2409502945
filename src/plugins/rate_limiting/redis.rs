//! rate-limiting's `policy: redis` (Kong's semantics, counters in Redis shared by every proxy and
//! by Kong nodes on the same Redis). The filter cannot open a TCP connection, so it reaches Redis
//! over HTTP/1.1 through "the front" (`consumer-auth-ratelimit`, docs/RATE_LIMITING.md): one call
//! per request carries every period of the plugin.
//!
//! Pure: this file builds the calls (keys, TTLs, increments as JSON), reads the answers and keeps
//! the `sync_rate` bookkeeping in shared data; the glue (`host/counter_calls.rs`) only dispatches
//! and hands the answers back.
//!
//! - `sync_rate = -1`: every request is one `incr` call (Kong's script: `incr`, `expire` when 1,
//!   return r - 1: the usage before this request); the request waits for the answer.
//! - `sync_rate > 0`: the first request of a window (per proxy) is such a call, which also seeds
//!   the proxy's shared data with Redis's count; later ones count locally (`start:base:pending`
//!   in shared data, every worker) and the root flushes the pending increments every `sync_rate`
//!   seconds (`incrby` + `expireat`), reading back Redis's totals.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::Period;
use crate::error::{ConfigError, ErrorKind};
use crate::proxy::{Host, LogLevel, SharedError};

/// Kong's id when a plugin has no route (or service).
pub const NO_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The front's default base path: calls go to `<path>/incr` and `<path>/flush`.
pub const DEFAULT_PATH: &str = "/v1/ratelimit";

/// Kong's `redis.timeout` default (ms).
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;

/// `config.redis` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFront {
    upstream: String,
    #[serde(default = "default_path")]
    path: String,
    token: String,
    #[serde(default = "default_timeout")]
    timeout: f64,
}

fn default_path() -> String {
    DEFAULT_PATH.into()
}

fn default_timeout() -> f64 {
    f64::from(DEFAULT_TIMEOUT_MS)
}

/// Where and how the filter reaches the front.
#[derive(Debug, PartialEq, Eq)]
pub struct Front {
    /// Envoy: the cluster's name; Kong: `host:port`.
    pub upstream: String,
    /// Base path of the front's endpoints.
    pub path: String,
    /// Sent as `Authorization: Bearer <token>`; never logged.
    pub token: String,
    pub timeout_ms: u32,
}

impl Front {
    pub(super) fn build(raw: RawFront, path: &str) -> Result<Front, ConfigError> {
        let at = |field: &str| format!("{path}.{field}");
        if raw.upstream.is_empty() || raw.upstream.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(ConfigError::new(
                at("upstream"),
                ErrorKind::Rule("must be an Envoy cluster name or host:port"),
            ));
        }
        if !raw.path.starts_with('/')
            || raw.path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'?')
        {
            return Err(ConfigError::new(
                at("path"),
                ErrorKind::Rule("must be a path starting with '/', without a query"),
            ));
        }
        if raw.token.is_empty() || raw.token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(ConfigError::new(at("token"), ErrorKind::Rule("must be non-empty visible ASCII")));
        }
        if raw.timeout.fract() != 0.0 || !(1.0..=60_000.0).contains(&raw.timeout) {
            return Err(ConfigError::new(at("timeout"), ErrorKind::Between(1, 60_000)));
        }
        Ok(Front {
            upstream: raw.upstream,
            path: raw.path.trim_end_matches('/').to_string(),
            token: raw.token,
            timeout_ms: raw.timeout as u32,
        })
    }
}

/// Kong's `route_id` / `service_id`: a UUID, or absent (Kong's zero UUID in the key).
pub(super) fn kong_id(value: Option<String>, path: &str) -> Result<String, ConfigError> {
    match value {
        None => Ok(NO_ID.to_string()),
        Some(id) if uuid::Uuid::try_parse(&id).is_ok() => Ok(id.to_ascii_lowercase()),
        Some(_) => Err(ConfigError::new(path, ErrorKind::InvalidUuid)),
    }
}

/// Kong's `EXPIRATION` (seconds): the TTL Kong's script sets on a new key.
pub fn ttl(period: Period) -> u64 {
    match period {
        Period::Second => 1,
        Period::Minute => 60,
        Period::Hour => 3600,
        Period::Day => 86_400,
        Period::Month => 2_592_000,
        Period::Year => 31_536_000,
    }
}

/// Kong's Redis key: `ratelimit:<route_id>:<service_id>:<identifier>:<period_start_ms>:<period>`.
pub fn kong_key(route_id: &str, service_id: &str, identifier: &str, start_seconds: u64, period: Period) -> String {
    format!("ratelimit:{route_id}:{service_id}:{identifier}:{}:{}", start_seconds.saturating_mul(1000), period.name())
}

/// What one call to the front does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Kong's script per key (`incr`, `expire` when 1): answers the usages before this request.
    Incr,
    /// `incrby` + `expireat` per key (the sync_rate flush): answers the totals after it.
    Flush,
}

/// One HTTP call to the front, ready for the glue to dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCall {
    pub front: Rc<Front>,
    pub kind: CallKind,
    /// `:path`.
    pub path: String,
    /// JSON.
    pub body: Vec<u8>,
    /// Which plugin entry asked (its counter scope) and, for an `Incr`, the windows the keys are
    /// for: the answer is read against these, not against the clock when it arrives.
    pub scope: String,
    pub windows: Vec<(Period, u64)>,
}

/// The front's answer to a [`CounterCall`], as the glue got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterReply {
    pub scope: String,
    pub windows: Vec<(Period, u64)>,
    /// One number per key, in the call's order; `Err`: why the call failed (for the log).
    pub result: Result<Vec<u64>, String>,
}

#[derive(Serialize)]
struct IncrBody<'a> {
    keys: Vec<IncrKey<'a>>,
}

#[derive(Serialize)]
struct IncrKey<'a> {
    key: &'a str,
    ttl: u64,
}

#[derive(Serialize)]
struct FlushBody<'a> {
    keys: Vec<FlushKey<'a>>,
}

#[derive(Serialize)]
struct FlushKey<'a> {
    key: &'a str,
    by: u64,
    expire_at: u64,
}

#[derive(Deserialize)]
struct Answer {
    counts: Vec<u64>,
}

/// Reads the front's answer: status 200 and `{"counts": [n, ...]}` with one count per key.
/// `dispatch_status`: Kong's host's reason for a failed call (`:dispatch_status`), if any.
pub fn read_answer(
    status: Option<&str>,
    dispatch_status: Option<&str>,
    body: &[u8],
    keys: usize,
) -> Result<Vec<u64>, String> {
    if let Some(reason) = dispatch_status {
        return Err(format!("call failed: {reason}"));
    }
    match status {
        None => return Err("call failed (no response: timeout, reset or no such upstream)".into()),
        Some("200") => {}
        Some(other) => return Err(format!("the front answered {other}")),
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| "the front's answer is not {\"counts\":[...]}")?;
    if answer.counts.len() != keys {
        return Err(format!("the front answered {} counts for {keys} keys", answer.counts.len()));
    }
    Ok(answer.counts)
}

/// One key counted locally in sync_rate mode, flushed by the root.
#[derive(Debug, Clone)]
struct Touched {
    redis_key: String,
    window_start: u64,
    expire_at: u64,
}

/// `config.policy = redis`: where the counters are and how they are kept.
pub struct RedisPolicy {
    pub(super) front: Rc<Front>,
    pub(super) route_id: String,
    pub(super) service_id: String,
    pub(super) fault_tolerant: bool,
    /// `None`: synchronous (Kong's -1); `Some(ms)`: flushed every `ms`.
    pub(super) sync_rate_ms: Option<u32>,
    /// The last call failed: a failure burst is logged once.
    failing: Cell<bool>,
    /// sync_rate: shared-data key -> what to flush there (keys this worker counted).
    touched: RefCell<BTreeMap<String, Touched>>,
}

/// How the plugin's periods stand for this request.
pub(super) enum Counts {
    /// The usage before this request, per period (in the plugin's period order).
    Known(Vec<u64>),
    /// The front must be asked first.
    Ask(Box<CounterCall>),
    /// The counters cannot be reached (fault_tolerant decides).
    Failed,
}

impl RedisPolicy {
    pub(super) fn new(
        front: Front,
        route_id: String,
        service_id: String,
        fault_tolerant: bool,
        sync_rate_ms: Option<u32>,
    ) -> Self {
        RedisPolicy {
            front: Rc::new(front),
            route_id,
            service_id,
            fault_tolerant,
            sync_rate_ms,
            failing: Cell::new(false),
            touched: RefCell::new(BTreeMap::new()),
        }
    }

    fn key(&self, identifier: &str, period: Period, start: u64) -> String {
        kong_key(&self.route_id, &self.service_id, identifier, start, period)
    }

    fn incr_call(&self, scope: &str, identifier: &str, windows: Vec<(Period, u64)>) -> Box<CounterCall> {
        let keys: Vec<String> = windows.iter().map(|&(p, start)| self.key(identifier, p, start)).collect();
        let body =
            IncrBody { keys: keys.iter().zip(&windows).map(|(key, &(p, _))| IncrKey { key, ttl: ttl(p) }).collect() };
        Box::new(CounterCall {
            front: Rc::clone(&self.front),
            kind: CallKind::Incr,
            path: format!("{}/incr", self.front.path),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            scope: scope.to_string(),
            windows,
        })
    }

    /// A failed call: logged once per burst of failures.
    fn failed(&self, host: &mut dyn Host, why: &str) {
        if !self.failing.replace(true) {
            let policy =
                if self.fault_tolerant { "requests pass without rate-limit headers" } else { "requests get 500" };
            host.log(
                LogLevel::Error,
                &format!(
                    "consumer-auth: rate-limiting: the Redis front ({}) failed: {why}; {policy} until it answers",
                    self.front.upstream
                ),
            );
        }
    }

    fn succeeded(&self, host: &mut dyn Host) {
        if self.failing.replace(false) {
            host.log(
                LogLevel::Info,
                &format!("consumer-auth: rate-limiting: the Redis front ({}) answers again", self.front.upstream),
            );
        }
    }

    /// The usages before this request for `windows` (the plugin's periods, window starts at
    /// `now`), counting this request (every request counts, refused ones too, as Kong's redis
    /// policy). `reply`: the front's answer when this is the run resumed after a call.
    pub(super) fn counts(
        &self,
        host: &mut dyn Host,
        scope: &str,
        identifier: &str,
        windows: Vec<(Period, u64)>,
        reply: Option<&CounterReply>,
    ) -> (Vec<(Period, u64)>, Counts) {
        if let Some(reply) = reply.filter(|r| r.scope == scope) {
            // The resumed run: judge on the windows the call was for.
            let windows = reply.windows.clone();
            return match &reply.result {
                Ok(counts) => {
                    self.succeeded(host);
                    if self.sync_rate_ms.is_some() {
                        self.seed(host, scope, identifier, &windows, counts);
                    }
                    (windows, Counts::Known(counts.clone()))
                }
                Err(why) => {
                    self.failed(host, why);
                    (windows, Counts::Failed)
                }
            };
        }
        if self.sync_rate_ms.is_none() {
            let call = self.incr_call(scope, identifier, windows.clone());
            return (windows, Counts::Ask(call));
        }
        // sync_rate: known windows count locally; one unknown window asks the front for all.
        let mut usages = Vec::with_capacity(windows.len());
        for &(period, start) in &windows {
            match local_get(host, &local_key(scope, period, identifier)) {
                Ok(Some((state, _))) if state.start == start => usages.push(state.base.saturating_add(state.pending)),
                Ok(_) => {
                    let call = self.incr_call(scope, identifier, windows.clone());
                    return (windows, Counts::Ask(call));
                }
                Err(_) => return (windows, Counts::Failed),
            }
        }
        for &(period, start) in &windows {
            let shared = local_key(scope, period, identifier);
            if add_pending(host, &shared, start).is_ok() {
                self.touched.borrow_mut().entry(shared).or_insert_with(|| Touched {
                    redis_key: self.key(identifier, period, start),
                    window_start: start,
                    expire_at: start.saturating_add(ttl(period)),
                });
            }
        }
        (windows, Counts::Known(usages))
    }

    /// sync_rate: the front counted this request and told the totals: the proxy's shared data
    /// learns them (the larger base wins: another worker may have seeded meanwhile).
    fn seed(&self, host: &mut dyn Host, scope: &str, identifier: &str, windows: &[(Period, u64)], before: &[u64]) {
        for (&(period, start), &usage) in windows.iter().zip(before) {
            let total = usage.saturating_add(1);
            let _ = update(host, &local_key(scope, period, identifier), |state| match state {
                Some(s) if s.start == start => Some(LocalState { base: s.base.max(total), ..s }),
                _ => Some(LocalState { start, base: total, pending: 0 }),
            });
        }
    }

    /// The root's tick: the pending increments this worker counted, taken out of shared data
    /// (moved into the local base, so this proxy's view does not drop) as one flush call.
    pub fn flush_call(&self, host: &mut dyn Host, scope: &str, now: u64) -> Option<(Box<CounterCall>, Vec<String>)> {
        let mut keys = Vec::new();
        let mut shared_keys = Vec::new();
        let mut touched = self.touched.borrow_mut();
        let mut done = Vec::new();
        for (shared, t) in touched.iter() {
            let mut taken = 0;
            let _ = update(host, shared, |state| match state {
                Some(s) if s.start == t.window_start && s.pending > 0 => {
                    taken = s.pending;
                    Some(LocalState { base: s.base.saturating_add(s.pending), pending: 0, ..s })
                }
                _ => None,
            });
            if taken > 0 {
                keys.push((t.redis_key.clone(), taken, t.expire_at));
                shared_keys.push(shared.clone());
            } else if t.expire_at <= now
                || local_get(host, shared).map_or(true, |s| s.is_none_or(|(s, _)| s.start != t.window_start))
            {
                done.push(shared.clone());
            }
        }
        for shared in done {
            touched.remove(&shared);
        }
        if keys.is_empty() {
            return None;
        }
        let body =
            FlushBody { keys: keys.iter().map(|(key, by, at)| FlushKey { key, by: *by, expire_at: *at }).collect() };
        let call = Box::new(CounterCall {
            front: Rc::clone(&self.front),
            kind: CallKind::Flush,
            path: format!("{}/flush", self.front.path),
            body: serde_json::to_vec(&body).unwrap_or_default(),
            scope: scope.to_string(),
            windows: Vec::new(),
        });
        Some((call, shared_keys))
    }

    /// The flush's answer: Redis's totals (every proxy's) become the local base; on failure the
    /// increments are dropped (as Kong's).
    pub fn flushed(&self, host: &mut dyn Host, shared_keys: &[String], result: Result<Vec<u64>, String>) {
        match result {
            Ok(totals) => {
                self.succeeded(host);
                let touched = self.touched.borrow();
                for (shared, total) in shared_keys.iter().zip(totals) {
                    let Some(t) = touched.get(shared) else { continue };
                    let _ = update(host, shared, |state| match state {
                        Some(s) if s.start == t.window_start && total > s.base => Some(LocalState { base: total, ..s }),
                        _ => None,
                    });
                }
            }
            Err(why) => self.failed(host, &why),
        }
    }

    /// The tick period this policy needs, if any.
    pub fn tick_ms(&self) -> Option<u32> {
        self.sync_rate_ms
    }
}

/// sync_rate: one window's local view, in shared data as `start:base:pending`: `base` is the
/// last total Redis told (plus what this proxy flushed since), `pending` what the proxy's workers
/// counted and nobody flushed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalState {
    start: u64,
    base: u64,
    pending: u64,
}

fn local_key(scope: &str, period: Period, identifier: &str) -> String {
    format!("{}rlr:{scope}:{}:{identifier}", crate::SHARED_DATA_PREFIX, period.name())
}

fn decode(value: &[u8]) -> Option<LocalState> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.splitn(3, ':');
    Some(LocalState {
        start: parts.next()?.parse().ok()?,
        base: parts.next()?.parse().ok()?,
        pending: parts.next()?.parse().ok()?,
    })
}

type Shared = Result<Option<(LocalState, u32)>, SharedError>;

fn local_get(host: &mut dyn Host, key: &str) -> Shared {
    Ok(host.shared_get(key)?.and_then(|(value, cas)| decode(&value).map(|s| (s, cas))))
}

/// Compare-and-swap attempts before an update gives up.
const CAS_ATTEMPTS: usize = 64;

/// Rewrites a key with compare-and-swap: `change` returns the new state, or `None` to leave it.
fn update(
    host: &mut dyn Host,
    key: &str,
    mut change: impl FnMut(Option<LocalState>) -> Option<LocalState>,
) -> Result<(), SharedError> {
    for _ in 0..CAS_ATTEMPTS {
        let (current, cas) = match host.shared_get(key)? {
            Some((value, cas)) => (decode(&value), cas),
            None => (None, 0),
        };
        let Some(new) = change(current) else { return Ok(()) };
        let value = format!("{}:{}:{}", new.start, new.base, new.pending);
        match host.shared_set(key, value.as_bytes(), cas) {
            Ok(()) => return Ok(()),
            Err(SharedError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(SharedError::Unavailable)
}

fn add_pending(host: &mut dyn Host, key: &str, start: u64) -> Result<(), SharedError> {
    update(host, key, |state| match state {
        Some(s) if s.start == start => Some(LocalState { pending: s.pending.saturating_add(1), ..s }),
        // Seeded by a call for this window before this point, so absent only if evicted:
        // start over from this request.
        _ => Some(LocalState { start, base: 0, pending: 1 }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kongs() {
        // 2026-03-15T10:20:30Z, minute window
        let key = kong_key(NO_ID, "7d2c1b3a-0000-4000-8000-000000000001", "alice-id", 1_773_570_000, Period::Minute);
        assert_eq!(
            key,
            "ratelimit:00000000-0000-0000-0000-000000000000:7d2c1b3a-0000-4000-8000-000000000001:alice-id:1773570000000:minute"
        );
        assert_eq!(ttl(Period::Month), 2_592_000);
    }

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(read_answer(Some("200"), None, br#"{"counts":[3,4]}"#, 2), Ok(vec![3, 4]));
        assert!(read_answer(Some("200"), None, br#"{"counts":[3]}"#, 2).is_err());
        assert!(read_answer(Some("503"), None, br#"{"counts":[3,4]}"#, 2).is_err());
        assert!(read_answer(None, None, b"", 1).is_err());
        assert!(read_answer(Some("200"), Some("timeout"), br#"{"counts":[1]}"#, 1).is_err());
        assert!(read_answer(Some("200"), None, br#"{"counts":[-1]}"#, 1).is_err());
        assert!(read_answer(Some("200"), None, b"not json", 1).is_err());
    }

    #[test]
    fn local_state_round_trips() {
        assert_eq!(decode(b"60:7:2"), Some(LocalState { start: 60, base: 7, pending: 2 }));
        assert_eq!(decode(b"60:7"), None);
        assert_eq!(decode(b"x:1:2"), None);
    }
}

//! Counters operators scrape (Envoy: `/stats/prometheus`). The proxy-wasm ABI has no labels, so
//! the label values are segments of the name, which Envoy's `stats_tags` turn back into labels
//! (see `docs/OBSERVABILITY.md` and `envoy/demo.yaml`):
//!
//! - `consumer_auth_requests_total.plugin.<plugin>.outcome.<outcome>`: one per request and
//!   filter instance; outcome `authenticated`, `anonymous`, `passed` (plugin `none`), or the
//!   refusal reason (`no_credentials`, `invalid_credentials`, `duplicate_credentials`,
//!   `acl_denied`, `terminated`, `rate_limited`, `anonymous_missing`, `body_too_large`,
//!   `internal_error`).
//! - `consumer_auth_jwt_cache_total.outcome.<hit|miss>`.
//! - `consumer_auth_configurations_total.outcome.<loaded|refused>`, and the store's.
//!
//! Ids are defined on first use and cached per VM. The per-request counters cost no host call on
//! the request path: they are counted in the VM and handed to the host on a root context's tick
//! ([`flush`], at most [`TICK_MS`] later). The first count after a flush arms the tick of the
//! counting request's root (one host call per tick period, not per request); the tick that
//! flushes stops itself unless its root ticks for something else.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::abi;

/// How long a per-request count may wait in the VM before the host has it.
pub const TICK_MS: u32 = 1000;

/// A per-request counter: the segments of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counter {
    Request { plugin: &'static str, outcome: &'static str },
    JwtCache { outcome: &'static str },
}

impl Counter {
    fn name(self) -> String {
        match self {
            Counter::Request { plugin, outcome } => {
                format!("consumer_auth_requests_total.plugin.{plugin}.outcome.{outcome}")
            }
            Counter::JwtCache { outcome } => format!("consumer_auth_jwt_cache_total.outcome.{outcome}"),
        }
    }
}

thread_local! {
    static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// Counts not yet handed to the host (a handful of distinct counters: a list).
    static PENDING: RefCell<Vec<(Counter, u64)>> = const { RefCell::new(Vec::new()) };
    /// A root context's tick is due that will flush [`PENDING`].
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn id(kind: u32, name: String) -> Option<u32> {
    // Kong has none (see `HostKind::has_metrics`).
    if !super::kind().has_metrics() {
        return None;
    }
    if let Some(id) = IDS.with(|ids| ids.borrow().get(&name).copied()) {
        return Some(id);
    }
    // metrics are best effort: never fail a request for them
    let id = abi::define_metric(kind, &name).ok()?;
    IDS.with(|ids| ids.borrow_mut().insert(name, id));
    Some(id)
}

fn increment(name: String, by: u64) {
    if let Some(id) = id(abi::METRIC_COUNTER, name) {
        let _ = abi::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}

/// One more of a per-request counter, kept in the VM until the next [`flush`].
fn count(counter: Counter) {
    if !super::kind().has_metrics() {
        return;
    }
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        match pending.iter_mut().find(|(c, _)| *c == counter) {
            Some((_, n)) => *n += 1,
            None => pending.push((counter, 1)),
        }
    });
    // From a request context the host arms its root's tick.
    if !ARMED.with(Cell::get) && abi::set_tick_period_ms(TICK_MS).is_ok() {
        ARMED.with(|armed| armed.set(true));
    }
}

/// A root ticks for good at its own (faster) period (rate-limiting's `sync_rate` flushes): the
/// counts ride on that tick, and a count must not re-arm it at [`TICK_MS`].
pub fn tick_held() {
    ARMED.with(|armed| armed.set(true));
}

/// Hands the VM's per-request counts to the host (a root context's tick, or its end). The next
/// count arms a tick again.
pub fn flush() {
    ARMED.with(|armed| armed.set(false));
    let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
    for (counter, n) in pending {
        increment(counter.name(), n);
    }
}

/// `consumer_auth_store_generation.store.<name>`: the generation readers use.
pub fn store_generation(store: &str, gen: u64) {
    if let Some(id) = id(abi::METRIC_GAUGE, format!("consumer_auth_store_generation.store.{store}")) {
        let _ = abi::record_metric(id, gen);
    }
}

/// `consumer_auth_store_fetches_total.store.<name>.outcome.<outcome>`: `updated`, `unchanged`
/// (304, or the same content), `failed` (no answer, an error status), `invalid` (a document that
/// does not validate).
pub fn store_fetch(store: &str, outcome: &str) {
    increment(format!("consumer_auth_store_fetches_total.store.{store}.outcome.{outcome}"), 1);
}

pub fn request(plugin: &'static str, outcome: &'static str) {
    count(Counter::Request { plugin, outcome });
}

/// `consumer_auth_jwt_cache_total.outcome.<hit|miss>`: jwt tokens answered from the verified-token
/// cache, and verified in full.
pub fn jwt_cache(counter: crate::proxy::Counter) {
    let outcome = match counter {
        crate::proxy::Counter::JwtCacheHit => "hit",
        crate::proxy::Counter::JwtCacheMiss => "miss",
    };
    count(Counter::JwtCache { outcome });
}

pub fn configuration(loaded: bool) {
    increment(format!("consumer_auth_configurations_total.outcome.{}", if loaded { "loaded" } else { "refused" }), 1);
}

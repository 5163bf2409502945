//! Counters operators scrape (Envoy: `/stats/prometheus`). The proxy-wasm ABI has no labels, so
//! the label values are segments of the name, which Envoy's `stats_tags` turn back into labels
//! (see `docs/OBSERVABILITY.md` and `envoy/demo.yaml`):
//!
//! - `consumer_auth_requests_total.plugin.<plugin>.outcome.<outcome>`: one per request and
//!   filter instance; outcome `authenticated`, `anonymous`, `passed` (plugin `none`), or the
//!   refusal reason (`no_credentials`, `invalid_credentials`, `duplicate_credentials`,
//!   `acl_denied`, `terminated`, `rate_limited`, `anonymous_missing`, `body_too_large`,
//!   `internal_error`).
//! - `consumer_auth_configurations_total.outcome.<loaded|refused>`.
//!
//! Ids are defined on first use and cached per VM: one `increment` host call per request.

use std::cell::RefCell;
use std::collections::HashMap;

use super::abi;

thread_local! {
    static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
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

fn increment(name: String) {
    if let Some(id) = id(abi::METRIC_COUNTER, name) {
        let _ = abi::increment_metric(id, 1);
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
    increment(format!("consumer_auth_store_fetches_total.store.{store}.outcome.{outcome}"));
}

pub fn request(plugin: &str, outcome: &str) {
    increment(format!("consumer_auth_requests_total.plugin.{plugin}.outcome.{outcome}"));
}

/// `consumer_auth_jwt_cache_total.outcome.<hit|miss>`: jwt tokens answered from the verified-token
/// cache, and verified in full.
pub fn count(counter: crate::proxy::Counter) {
    let outcome = match counter {
        crate::proxy::Counter::JwtCacheHit => "hit",
        crate::proxy::Counter::JwtCacheMiss => "miss",
    };
    increment(format!("consumer_auth_jwt_cache_total.outcome.{outcome}"));
}

pub fn configuration(loaded: bool) {
    increment(format!("consumer_auth_configurations_total.outcome.{}", if loaded { "loaded" } else { "refused" }));
}

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

fn increment(name: String) {
    let known = IDS.with(|ids| ids.borrow().get(&name).copied());
    let id = match known {
        Some(id) => id,
        None => match abi::define_counter(&name) {
            Ok(id) => {
                IDS.with(|ids| ids.borrow_mut().insert(name, id));
                id
            }
            Err(_) => return, // metrics are best effort; never fail a request for them
        },
    };
    let _ = abi::increment_metric(id, 1);
}

pub fn request(plugin: &str, outcome: &str) {
    increment(format!("consumer_auth_requests_total.plugin.{plugin}.outcome.{outcome}"));
}

pub fn configuration(loaded: bool) {
    increment(format!("consumer_auth_configurations_total.outcome.{}", if loaded { "loaded" } else { "refused" }));
}

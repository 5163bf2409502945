//! The host calls each path makes per request on Envoy, pinned: host calls are what a request
//! costs in Envoy/V8 (docs/ARCHITECTURE.md, "Cost model"; `make bench` measures the paths), so a
//! call added to a path fails here. The host is Envoy as a request reaches the filter there: its
//! `x-request-id` header set (Envoy's `request.id`), its default log level (info).

use std::collections::BTreeMap;

use crate::support::*;
use proxy_wasm_harness::LogLevel;
use serde_json::Value;

const DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

fn config() -> Value {
    json!([
        {
            "username": "alice",
            "keyauth_credentials": [{"key": "alice-key"}],
            "basicauth_credentials": [{"username": "alice-basic", "password": "alice-pw"}],
            "hmacauth_credentials": [{"username": "alice-hmac", "secret": "hmac-secret"}],
            "jwt_secrets": [{"key": "alice-issuer", "algorithm": "HS256", "secret": "jwt-secret"}],
            "acls": [{"group": "blocked"}]
        }
    ])
}

fn document(plugins: Value) -> String {
    json!({ "consumers": config(), "plugins": plugins }).to_string()
}

fn hs256() -> String {
    let head = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64url(br#"{"iss":"alice-issuer"}"#);
    let signature = b64url(&hmac_sha256("jwt-secret", &format!("{head}.{claims}")));
    format!("{head}.{claims}.{signature}")
}

fn hmac_authorization() -> String {
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        hmac_sha256("hmac-secret", &format!("date: {DATE}")),
    );
    format!(r#"hmac username="alice-hmac", algorithm="hmac-sha256", headers="date", signature="{signature}""#)
}

/// The host calls of the third of three equal requests (the first ones may do one-time work: the
/// jwt cache, the year's one request rate-limiting lets through, the host's log level asked once
/// per tick), with the status it got.
fn calls(plugins: Value, request: impl Fn() -> Request) -> (u16, BTreeMap<String, u32>) {
    let mut h = envoy_host();
    h.set_log_level(LogLevel::Info);
    let f = h.configure(&document(plugins)).unwrap();
    checked(h.send(&[f], request()));
    checked(h.send(&[f], request()));
    let ex = checked(h.send(&[f], request()));
    let calls = ex.host_calls.iter().map(|(n, c)| (n.trim_start_matches("proxy_").to_string(), *c)).collect();
    (ex.status(), calls)
}

fn get() -> Request {
    Request::get("/").header("x-request-id", "rid-1").request_id(Some("rid-1"))
}

fn expect(status: u16, calls: &[(&str, u32)]) -> (u16, BTreeMap<String, u32>) {
    (status, calls.iter().map(|(n, c)| (n.to_string(), *c)).collect())
}

/// Accepted: the header map read, the three identity headers added, the identity handed on.
const ACCEPTED: [(&str, u32); 3] = [("add_header_map_value", 3), ("get_header_map_pairs", 1), ("set_property", 1)];
/// Refused: the header map read and the local response; the request id comes from the header
/// map, the refusal line is at debug (below the host's level: not built, not sent), the counter
/// is counted in the VM.
const REFUSED: [(&str, u32); 2] = [("get_header_map_pairs", 1), ("send_local_response", 1)];

#[test]
fn key_auth_and_basic_auth_accepted() {
    let key = calls(json!([{"name": "key-auth"}]), || get().header("apikey", "alice-key"));
    assert_eq!(key, expect(200, &ACCEPTED));
    let basic =
        calls(json!([{"name": "basic-auth"}]), || get().header("authorization", &basic("alice-basic", "alice-pw")));
    assert_eq!(basic, expect(200, &ACCEPTED));
}

#[test]
fn jwt_with_a_repeated_token() {
    let token = hs256();
    let jwt = calls(json!([{"name": "jwt"}]), || get().header("authorization", &format!("Bearer {token}")));
    assert_eq!(jwt, expect(200, &ACCEPTED));
}

#[test]
fn hmac_auth_reads_the_clock_once() {
    let hmac = calls(json!([{"name": "hmac-auth", "config": {"clock_skew": 1e9}}]), || {
        get().header("date", DATE).header("authorization", &hmac_authorization())
    });
    let mut expected = ACCEPTED.to_vec();
    expected.push(("get_current_time_nanoseconds", 1));
    assert_eq!(hmac, expect(200, &expected));
}

#[test]
fn refusals_cost_no_more_than_an_accepted_request() {
    let key_auth = json!([{"name": "key-auth"}]);
    assert_eq!(calls(key_auth.clone(), get), expect(401, &REFUSED), "no key");
    assert_eq!(calls(key_auth, || get().header("apikey", "wrong")), expect(401, &REFUSED), "wrong key");
    let acl = json!([{"name": "key-auth"}, {"name": "acl", "config": {"deny": ["blocked"]}}]);
    assert_eq!(calls(acl, || get().header("apikey", "alice-key")), expect(403, &REFUSED), "acl");
    assert!(REFUSED.iter().map(|(_, c)| c).sum::<u32>() <= ACCEPTED.iter().map(|(_, c)| c).sum::<u32>());
}

#[test]
fn rate_limited() {
    let rl = json!([{"name": "key-auth"}, {"name": "rate-limiting", "config": {"year": 1}}]);
    let mut expected = REFUSED.to_vec();
    expected.extend([("get_shared_data", 1), ("get_current_time_nanoseconds", 1)]);
    assert_eq!(calls(rl, || get().header("apikey", "alice-key")), expect(429, &expected));
}

/// Where the counted calls went: one tick hands the VM's counts to the host, and the tick stops
/// when nothing else needs it (the next count arms it again, once).
#[test]
fn counters_reach_the_host_on_the_tick() {
    let mut h = envoy_host();
    let f = h.configure(&document(json!([{"name": "key-auth"}]))).unwrap();
    let name = "consumer_auth_requests_total.plugin.key-auth.outcome.authenticated";
    for _ in 0..3 {
        checked(h.send(&[f], get().header("apikey", "alice-key")));
    }
    assert_eq!(h.tick_period(f), 1000, "the first count armed the tick");
    assert_eq!(h.metric(name), None, "counted in the VM until the tick");
    h.tick();
    assert_eq!(h.metric(name), Some(3));
    assert_eq!(h.tick_period(f), 0, "nothing else needs the tick");
    checked(h.send(&[f], get()));
    assert_eq!(h.tick_period(f), 1000);
    h.tick();
    assert_eq!(h.metric("consumer_auth_requests_total.plugin.key-auth.outcome.no_credentials"), Some(1));
    assert_eq!(h.metric(name), Some(3));
}

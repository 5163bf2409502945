//! rate-limiting (BEHAVIOUR.md §B10) through the real .wasm: Kong's headers, windows on the
//! controllable clock, consumer-scoped limits for the anonymous consumer, and exact counting
//! across several VMs (workers) sharing the proxy's shared data.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

fn key_and_limit(limit: Value) -> Value {
    json!([
        {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
        {"name": "rate-limiting", "config": limit}
    ])
}

fn as_alice() -> Request {
    Request::get("/").header("apikey", "alice-key")
}

#[test]
fn limits_with_kongs_headers_then_429() {
    let (mut h, f) = one(&doc(key_and_limit(json!({"minute": 3}))));
    for remaining in [2, 1, 0] {
        let ex = checked(h.send(&[f], as_alice()));
        assert_eq!(ex.status(), 200);
        assert_eq!(ex.response_header("x-ratelimit-limit-minute").as_deref(), Some("3"));
        assert_eq!(ex.response_header("x-ratelimit-remaining-minute"), Some(remaining.to_string()));
        assert_eq!(ex.response_header("ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(ex.response_header("ratelimit-remaining"), Some(remaining.to_string()));
        assert_eq!(ex.response_header("ratelimit-reset").as_deref(), Some("60"), "2026-01-01T00:00:00Z");
        assert_eq!(ex.response_header("retry-after"), None);
    }
    h.advance(Duration::from_secs(10));
    let ex = checked(h.send(&[f], as_alice().request_id(Some("rid"))));
    assert_refused(&ex, 429, "API rate limit exceeded");
    assert_eq!(ex.body_str(), r#"{"message":"API rate limit exceeded","request_id":"rid"}"#);
    assert_eq!(ex.local_header("x-ratelimit-remaining-minute").as_deref(), Some("0"));
    assert_eq!(ex.local_header("ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(ex.local_header("retry-after").as_deref(), Some("50"));
    assert_eq!(ex.local_header("ratelimit-reset").as_deref(), Some("50"));
}

#[test]
fn a_new_window_starts_from_zero() {
    let (mut h, f) = one(&doc(key_and_limit(json!({"second": 2}))));
    assert_eq!(checked(h.send(&[f], as_alice())).status(), 200);
    assert_eq!(checked(h.send(&[f], as_alice())).status(), 200);
    assert_eq!(checked(h.send(&[f], as_alice())).status(), 429);
    h.advance(Duration::from_secs(1));
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.response_header("x-ratelimit-remaining-second").as_deref(), Some("1"));
}

#[test]
fn several_windows_the_tightest_drives_the_ratelimit_headers() {
    let (mut h, f) = one(&doc(key_and_limit(json!({"minute": 2, "hour": 10}))));
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.response_header("x-ratelimit-remaining-minute").as_deref(), Some("1"));
    assert_eq!(ex.response_header("x-ratelimit-remaining-hour").as_deref(), Some("9"));
    assert_eq!(ex.response_header("ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(ex.response_header("ratelimit-remaining").as_deref(), Some("1"));
    checked(h.send(&[f], as_alice()));
    let refused = checked(h.send(&[f], as_alice()));
    assert_eq!(refused.status(), 429);
    // a refused request counts in no window
    h.advance(Duration::from_secs(60));
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.response_header("x-ratelimit-remaining-hour").as_deref(), Some("7"));
}

#[test]
fn anonymous_gets_its_own_lower_limit() {
    let plugins = json!([
        {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
        {"name": "rate-limiting", "config": {"minute": 100}},
        {"name": "rate-limiting", "consumer": "anonymous_users", "config": {"minute": 5}}
    ]);
    let (mut h, f) = one(&doc(plugins));
    for _ in 0..5 {
        let ex = checked(h.send(&[f], Request::get("/")));
        assert_upstream_as(&ex, "anonymous_users", None);
        assert_eq!(ex.response_header("x-ratelimit-limit-minute").as_deref(), Some("5"));
    }
    assert_refused(&checked(h.send(&[f], Request::get("/"))), 429, "API rate limit exceeded");
    let ex = checked(h.send(&[f], as_alice()));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.response_header("x-ratelimit-limit-minute").as_deref(), Some("100"));
    assert_eq!(ex.response_header("x-ratelimit-remaining-minute").as_deref(), Some("99"));
}

#[test]
fn limit_by_consumer_credential_and_ip() {
    let from = |ip: &str, req: Request| req.property("source.address", format!("{ip}:40000").as_bytes());
    // consumer: alice and bob are counted apart; no consumer falls back to the client address
    let (mut h, f) = one(&doc(
        json!([{"name": "key-auth", "config": {"anonymous": "anonymous_users"}}, {"name": "rate-limiting", "config": {"minute": 1}}]),
    ));
    assert_eq!(checked(h.send(&[f], as_alice())).status(), 200);
    assert_eq!(checked(h.send(&[f], as_alice())).status(), 429);
    assert_eq!(checked(h.send(&[f], Request::get("/").header("apikey", "bob-key"))).status(), 200);

    let (mut h, f) = one(&doc(json!([{"name": "rate-limiting", "config": {"minute": 1}}])));
    assert_eq!(checked(h.send(&[f], from("10.0.0.1", Request::get("/")))).status(), 200);
    assert_eq!(checked(h.send(&[f], from("10.0.0.1", Request::get("/")))).status(), 429);
    assert_eq!(checked(h.send(&[f], from("10.0.0.2", Request::get("/")))).status(), 200);

    // ip: two consumers behind one address share the limit
    let (mut h, f) =
        one(&doc(json!([{"name": "key-auth"}, {"name": "rate-limiting", "config": {"minute": 1, "limit_by": "ip"}}])));
    assert_eq!(checked(h.send(&[f], from("10.0.0.3", as_alice()))).status(), 200);
    assert_eq!(checked(h.send(&[f], from("10.0.0.3", Request::get("/").header("apikey", "bob-key")))).status(), 429);
    assert_eq!(checked(h.send(&[f], from("[2001:db8::1]", as_alice()))).status(), 200);

    // credential: the anonymous consumer has none, so it is limited by address
    let (mut h, f) = one(&doc(
        json!([{"name": "key-auth", "config": {"anonymous": "anonymous_users"}}, {"name": "rate-limiting", "config": {"minute": 1, "limit_by": "credential"}}]),
    ));
    assert_eq!(checked(h.send(&[f], from("10.0.0.4", Request::get("/")))).status(), 200);
    assert_eq!(checked(h.send(&[f], from("10.0.0.5", Request::get("/")))).status(), 200);
    assert_eq!(checked(h.send(&[f], from("10.0.0.4", Request::get("/")))).status(), 429);
}

#[test]
fn hide_client_headers_and_custom_error() {
    let limit = json!({"minute": 1, "hide_client_headers": true, "error_code": 503, "error_message": "slow down"});
    let (mut h, f) = one(&doc(key_and_limit(limit)));
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.response_header("x-ratelimit-limit-minute"), None);
    assert_eq!(ex.response_header("ratelimit-limit"), None);
    let ex = checked(h.send(&[f], as_alice().header("accept", "text/plain").request_id(Some("r"))));
    assert_eq!(ex.status(), 503);
    assert_eq!(ex.body_str(), "slow down\nrequest_id: r\n");
    assert_eq!(ex.local_header("retry-after"), None);
    assert_eq!(ex.local_header("x-ratelimit-remaining-minute"), None);
}

/// Workers are separate VMs sharing the proxy's shared data: requests spread over them are
/// counted exactly once each.
#[test]
fn several_workers_share_exact_counters() {
    let config = doc(key_and_limit(json!({"minute": 7})));
    let mut h = host();
    let workers: Vec<FilterId> = (0..3).map(|_| h.configure_isolated(&config).unwrap()).collect();
    let mut passed = 0;
    for i in 0..20 {
        let ex = checked(h.send(&[workers[i % 3]], as_alice()));
        match ex.status() {
            200 => passed += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(passed, 7);
}

#[test]
fn counters_are_kept_per_plugin_entry() {
    let mut h = host();
    let a = h.configure(&doc(key_and_limit(json!({"minute": 1})))).unwrap();
    let b = h.configure(&doc(key_and_limit(json!({"minute": 2})))).unwrap();
    assert_eq!(checked(h.send(&[a], as_alice())).status(), 200);
    assert_eq!(checked(h.send(&[a], as_alice())).status(), 429);
    assert_eq!(checked(h.send(&[b], as_alice())).status(), 200);
    // old windows do not accumulate: one key per identity and period
    h.advance(Duration::from_secs(3600));
    checked(h.send(&[a], as_alice()));
    let keys = h.shared_data_keys();
    let ours: Vec<_> = keys.iter().filter(|k| k.starts_with("consumer_auth/rl:")).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
}

#[test]
fn rate_limiting_runs_after_acl_and_before_termination() {
    let plugins = json!([
        {"name": "request-termination", "consumer": "anonymous_users", "config": {"status_code": 401}},
        {"name": "rate-limiting", "config": {"minute": 2}},
        {"name": "acl", "config": {"deny": ["admins"]}},
        {"name": "key-auth", "config": {"anonymous": "anonymous_users"}}
    ]);
    let (mut h, f) = one(&doc(plugins));
    // the first anonymous request passes the limit, then is terminated: 401, with the
    // rate-limit headers (they are on every response rate-limiting handled, as in Kong)
    let ex = checked(h.send(&[f], Request::get("/")));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.local_header("x-ratelimit-remaining-minute").as_deref(), Some("1"));
    assert_eq!(ex.local_header("ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(ex.local_header("retry-after"), None);
    checked(h.send(&[f], Request::get("/")));
    // the third is over the limit: rate-limiting (910) answers before request-termination (2)
    let ex = checked(h.send(&[f], Request::get("/")));
    assert_eq!(ex.status(), 429);
    assert_eq!(ex.local_header("x-ratelimit-remaining-minute").as_deref(), Some("0"));
    // acl (950) refuses alice before rate-limiting counts her: no rate-limit headers, and her
    // refusals use none of her limit
    for _ in 0..3 {
        let ex = checked(h.send(&[f], as_alice()));
        assert_eq!(ex.status(), 403);
        assert_eq!(ex.local_header("x-ratelimit-remaining-minute"), None);
    }
}

/// limit_by credential counts per credential, and credentials of different plugins may share an
/// identifier (here a basic-auth username and a jwt key are both "shared"): counted apart.
#[test]
fn limit_by_credential_tells_plugins_apart() {
    use base64::Engine;
    let mut c = consumers();
    c[0]["basicauth_credentials"] = json!([{"username": "shared", "password": "alice-pw"}]);
    c[1]["jwt_secrets"] = json!([{"key": "shared", "secret": "bob-jwt-secret"}]);
    let plugins = json!([
        {"name": "basic-auth", "config": {"anonymous": "anonymous_users"}},
        {"name": "jwt", "config": {"anonymous": "anonymous_users"}},
        {"name": "rate-limiting", "config": {"minute": 1, "limit_by": "credential"}}
    ]);
    let (mut h, f) = one(&json!({"consumers": c, "plugins": plugins}).to_string());
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let (head, claims) = (b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(br#"{"iss":"shared"}"#));
    let signature = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"bob-jwt-secret").unwrap();
        m.update(format!("{head}.{claims}").as_bytes());
        b64(&m.finalize().into_bytes())
    };
    let as_bob = || Request::get("/").header("authorization", &format!("Bearer {head}.{claims}.{signature}"));
    let as_alice = || Request::get("/").header("authorization", &basic("shared", "alice-pw"));
    let ex = checked(h.send(&[f], as_alice()));
    assert_upstream_as(&ex, "alice", Some("shared"));
    let ex = checked(h.send(&[f], as_bob()));
    assert_upstream_as(&ex, "bob", Some("shared"));
    assert_eq!(checked(h.send(&[f], as_alice())).status(), 429);
    assert_eq!(checked(h.send(&[f], as_bob())).status(), 429);
}

#[test]
fn configuration_refusals() {
    let refusal = |limit: Value| {
        let mut h = host();
        h.configure(&doc(json!([{"name": "rate-limiting", "config": limit}]))).expect_err("refused").to_string()
    };
    assert!(refusal(json!({}))
        .contains("plugins[0].config: at least one of these fields must be non-empty: 'config.second'"));
    assert!(
        refusal(json!({"minute": 0})).contains("plugins[0].config.minute: value must be a whole number greater than 0")
    );
    assert!(refusal(json!({"minute": -1}))
        .contains("plugins[0].config.minute: value must be a whole number greater than 0"));
    assert!(refusal(json!({"minute": "5"})).contains("plugins[0].config.minute: expected a number"));
    assert!(refusal(json!({"minute": 10, "hour": 5}))
        .contains("plugins[0].config.hour: The limit for hour(5.0) cannot be lower than the limit for minute(10.0)"));
    // Kong's order: each period against every longer one, the shortest first
    assert!(refusal(json!({"second": 10, "minute": 20, "hour": 5}))
        .contains("plugins[0].config.hour: The limit for hour(5.0) cannot be lower than the limit for second(10.0)"));
    assert!(refusal(json!({"minute": 1, "limit_by": "service"}))
        .contains("plugins[0].config.limit_by: expected one of: consumer, credential, ip"));
    assert!(refusal(json!({"minute": 1, "policy": "cluster"}))
        .contains("plugins[0].config.policy: expected one of: local, redis"));
    assert!(refusal(json!({"minute": 1, "error_code": 700}))
        .contains("plugins[0].config.error_code: value should be between 100 and 599"));
    assert!(refusal(json!({"minute": 1, "limit": 5})).contains("plugins[0].config.limit: unknown field"));
}

/// Every period has its pair of headers, named as Kong names them (names are case-insensitive).
#[test]
fn headers_for_every_period() {
    let limits = json!({"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 50, "year": 60});
    let (mut h, f) = one(&doc(key_and_limit(limits)));
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.status(), 200);
    for (period, limit) in [("second", 10), ("minute", 20), ("hour", 30), ("day", 40), ("month", 50), ("year", 60)] {
        assert_eq!(ex.response_header(&format!("x-ratelimit-limit-{period}")), Some(limit.to_string()), "{period}");
        assert_eq!(ex.response_header(&format!("x-ratelimit-remaining-{period}")), Some((limit - 1).to_string()));
    }
    assert_eq!(ex.response_header("ratelimit-limit").as_deref(), Some("10"), "the tightest: second");
    assert_eq!(ex.response_header("ratelimit-reset").as_deref(), Some("1"));
}

//! rate-limiting's `policy: redis` (issue 21), the filter's side through the real .wasm: the call
//! to the counters' front (Kong's keys, TTLs, the token), the request paused until it answers,
//! Kong's verdict and headers from the answer, `fault_tolerant`, `sync_rate`'s local counting and
//! flush on the tick, Kong's host (host:port, `:dispatch_status`), refused configurations. The
//! front itself, with a real Redis, is tested in `ratelimit/` and through Envoy in
//! `e2e/tests/rate_limiting_redis.rs`; here the test answers the calls, counting as Kong's script.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use proxy_wasm_harness::HttpCall;
use serde_json::Value;

const ROUTE: &str = "5e8f2a11-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
// 2026-01-01T00:00:00Z in ms: the harness clock's start (support::NOW)
const START_MS: u64 = NOW * 1000;

fn front(upstream: &str) -> Value {
    json!({"upstream": upstream, "token": "s3cret-token", "timeout": 300})
}

fn redis_limits(limits: Value, upstream: &str) -> String {
    let mut config = limits;
    config["policy"] = json!("redis");
    config["redis"] = front(upstream);
    config["route_id"] = json!(ROUTE);
    doc(json!([
        {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
        {"name": "rate-limiting", "config": config}
    ]))
}

fn as_alice() -> Request {
    Request::get("/").header("apikey", "alice-key")
}

fn body(call: &HttpCall) -> Value {
    serde_json::from_slice(&call.body).unwrap()
}

/// Redis as the front runs it: Kong's script for `incr`, `incrby` for `flush`.
#[derive(Default)]
struct FakeRedis {
    counts: HashMap<String, u64>,
}

impl FakeRedis {
    /// Answers every pending call; returns how many.
    fn serve(&mut self, h: &mut Host) -> usize {
        let calls = h.pending_http_calls();
        for call in &calls {
            let body = body(call);
            let keys = body["keys"].as_array().unwrap();
            let path = call.header(":path").unwrap();
            let counts: Vec<u64> = keys
                .iter()
                .map(|k| {
                    let counter = self.counts.entry(k["key"].as_str().unwrap().to_string()).or_default();
                    if path.ends_with("/incr") {
                        *counter += 1;
                        *counter - 1
                    } else {
                        *counter += k["by"].as_u64().unwrap();
                        *counter
                    }
                })
                .collect();
            h.reply_http_call(call.token, 200, &[], json!({"counts": counts}).to_string().as_bytes());
        }
        calls.len()
    }
}

/// Sends a request, lets the fake Redis answer its call (if any), and returns its exchange.
fn through(h: &mut Host, f: FilterId, redis: &mut FakeRedis, req: Request) -> Exchange {
    let ex = checked(h.send(&[f], req));
    if !ex.paused {
        return ex;
    }
    redis.serve(h);
    checked(h.exchange(ex.id).unwrap())
}

#[test]
fn a_call_per_request_with_kongs_keys_then_kongs_verdict() {
    let (mut h, f) = one(&redis_limits(json!({"minute": 2, "hour": 10}), "ratelimit_front"));
    let ex = checked(h.send(&[f], as_alice()));
    assert!(ex.paused, "the request waits for its counters");
    assert!(ex.upstream.is_none());
    let calls = h.pending_http_calls();
    assert_eq!(calls.len(), 1, "one call carries every period");
    let call = &calls[0];
    assert_eq!(call.upstream, "ratelimit_front");
    assert_eq!(call.header(":method").as_deref(), Some("POST"));
    assert_eq!(call.header(":path").as_deref(), Some("/v1/ratelimit/incr"));
    assert_eq!(call.header("authorization").as_deref(), Some("Bearer s3cret-token"));
    assert_eq!(call.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(call.timeout_ms, 300);
    let zero = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        body(call),
        json!({"keys": [
            {"key": format!("ratelimit:{ROUTE}:{zero}:{ALICE_ID}:{START_MS}:minute"), "ttl": 60},
            {"key": format!("ratelimit:{ROUTE}:{zero}:{ALICE_ID}:{START_MS}:hour"), "ttl": 3600},
        ]})
    );
    // usages before this request: 0 and 3
    h.reply_http_call(call.token, 200, &[], br#"{"counts":[0,3]}"#);
    let ex = checked(h.exchange(ex.id).unwrap());
    assert!(!ex.paused);
    assert_eq!(ex.status(), 200);
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.response_header("x-ratelimit-limit-minute").as_deref(), Some("2"));
    assert_eq!(ex.response_header("x-ratelimit-remaining-minute").as_deref(), Some("1"));
    assert_eq!(ex.response_header("x-ratelimit-remaining-hour").as_deref(), Some("6"));
    assert_eq!(ex.response_header("ratelimit-remaining").as_deref(), Some("1"));
    assert_eq!(ex.response_header("ratelimit-reset").as_deref(), Some("60"));

    // the minute is used up (2 before this one): Kong's 429 with its headers
    h.advance(Duration::from_secs(15));
    let ex = checked(h.send(&[f], as_alice().request_id(Some("rid"))));
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 200, &[], br#"{"counts":[2,5]}"#);
    let ex = checked(h.exchange(ex.id).unwrap());
    assert_refused(&ex, 429, "API rate limit exceeded");
    assert_eq!(ex.local_header("x-ratelimit-remaining-minute").as_deref(), Some("0"));
    assert_eq!(ex.local_header("x-ratelimit-remaining-hour").as_deref(), Some("4"));
    assert_eq!(ex.local_header("retry-after").as_deref(), Some("45"));
}

#[test]
fn every_request_counts_refused_ones_too_and_windows_roll_over() {
    let (mut h, f) = one(&redis_limits(json!({"second": 2}), "ratelimit_front"));
    let mut redis = FakeRedis::default();
    let statuses: Vec<u16> = (0..4).map(|_| through(&mut h, f, &mut redis, as_alice()).status()).collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    let key = format!("ratelimit:{ROUTE}:00000000-0000-0000-0000-000000000000:{ALICE_ID}:{START_MS}:second");
    assert_eq!(redis.counts.get(&key), Some(&4), "Kong's redis policy counts refused requests: {:?}", redis.counts);
    h.advance(Duration::from_secs(1));
    let ex = through(&mut h, f, &mut redis, as_alice());
    assert_eq!(ex.status(), 200, "a new window: a new key");
    assert_eq!(ex.response_header("x-ratelimit-remaining-second").as_deref(), Some("1"));
    // the anonymous consumer and a request without a consumer are counted by their ids / address
    let ex = through(&mut h, f, &mut redis, Request::get("/"));
    assert_eq!(ex.status(), 200);
    assert!(redis.counts.keys().any(|k| k.contains(&format!(":{ANON_ID}:"))), "{:?}", redis.counts);
}

#[test]
fn fault_tolerant_forwards_without_headers_and_logs_once_per_burst() {
    let (mut h, f) = one(&redis_limits(json!({"minute": 5}), "ratelimit_front"));
    let failure = "rate-limiting: the Redis front (ratelimit_front) failed";
    for _ in 0..3 {
        let ex = checked(h.send(&[f], as_alice()));
        let call = h.pending_http_calls().remove(0);
        h.fail_http_call(call.token);
        let ex = checked(h.exchange(ex.id).unwrap());
        assert_eq!(ex.status(), 200);
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
        assert_eq!(ex.response_header("x-ratelimit-limit-minute"), None, "no rate-limit headers");
        assert_eq!(ex.response_header("ratelimit-limit"), None);
    }
    assert_eq!(h.logs().iter().filter(|l| l.message.contains(failure)).count(), 1, "{:?}", h.logs());
    assert!(!h.logs().iter().any(|l| l.message.contains("s3cret-token")), "the token is never logged");
    // the front answers again (a 503 from it is a failure too)
    let mut redis = FakeRedis::default();
    assert_eq!(through(&mut h, f, &mut redis, as_alice()).response_header("ratelimit-limit").as_deref(), Some("5"));
    assert!(h.logs().iter().any(|l| l.message.contains("answers again")));
    let ex = checked(h.send(&[f], as_alice()));
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 503, &[], b"redis down");
    assert_eq!(checked(h.exchange(ex.id).unwrap()).status(), 200);
    assert_eq!(h.logs().iter().filter(|l| l.message.contains(failure)).count(), 2, "a new burst is logged");
    assert!(h.logs().iter().any(|l| l.message.contains("answered 503")));
}

#[test]
fn not_fault_tolerant_is_kongs_500() {
    let (mut h, f) = one(&redis_limits(json!({"minute": 5, "fault_tolerant": false}), "ratelimit_front"));
    for answer in ["fail", "garbage", "short"] {
        let ex = checked(h.send(&[f], as_alice()));
        let call = h.pending_http_calls().remove(0);
        match answer {
            "fail" => h.fail_http_call(call.token),
            "garbage" => h.reply_http_call(call.token, 200, &[], b"{"),
            _ => h.reply_http_call(call.token, 200, &[], br#"{"counts":[]}"#),
        }
        let ex = checked(h.exchange(ex.id).unwrap());
        assert_refused(&ex, 500, "An unexpected error occurred");
    }
}

#[test]
fn kongs_host_dispatches_to_host_port_and_reports_failures_with_dispatch_status() {
    let mut h = kong_like_host();
    h.kong_quirks();
    let strict = json!({"minute": 5, "fault_tolerant": false});
    let f = h.configure(&redis_limits(strict.clone(), "127.0.0.1:8090")).unwrap();
    let ex = checked(h.send(&[f], as_alice()));
    let call = h.pending_http_calls().remove(0);
    assert_eq!(call.upstream, "127.0.0.1:8090");
    assert_eq!(call.header(":authority").as_deref(), Some("127.0.0.1:8090"));
    h.fail_http_call(call.token);
    let ex = checked(h.exchange(ex.id).unwrap());
    assert_refused(&ex, 500, "An unexpected error occurred");
    assert!(h.logs().iter().any(|l| l.message.contains("call failed: timeout")), "{:?}", h.logs());
    // answered: counted as on Envoy
    let mut redis = FakeRedis::default();
    let ex = through(&mut h, f, &mut redis, as_alice());
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.response_header("x-ratelimit-remaining-minute").as_deref(), Some("4"));

    // an Envoy cluster name on Kong's host: the call cannot be dispatched, which is a failure
    let mut h = kong_like_host();
    h.kong_quirks();
    let f = h.configure(&redis_limits(json!({"minute": 5}), "ratelimit_front")).unwrap();
    let ex = checked(h.send(&[f], as_alice()));
    assert!(!ex.paused);
    assert_eq!(ex.status(), 200, "fault_tolerant (the default): through");
    assert!(h.logs().iter().any(|l| l.message.contains("cannot dispatch the call to ratelimit_front")));
    let f = h.configure(&redis_limits(strict, "ratelimit_front")).unwrap();
    assert_refused(&checked(h.send(&[f], as_alice())), 500, "An unexpected error occurred");
}

#[test]
fn sync_rate_counts_locally_and_flushes_on_the_tick() {
    let config = redis_limits(json!({"minute": 10, "sync_rate": 0.1}), "ratelimit_front");
    let (mut h, f) = one(&config);
    assert_eq!(h.tick_period(f), 100);
    let mut redis = FakeRedis::default();
    let key = format!("ratelimit:{ROUTE}:00000000-0000-0000-0000-000000000000:{ALICE_ID}:{START_MS}:minute");
    // another proxy already counted 4 in this window
    redis.counts.insert(key.clone(), 4);
    // the first request of the window asks Redis (and is counted there)
    let ex = through(&mut h, f, &mut redis, as_alice());
    assert_eq!(ex.response_header("x-ratelimit-remaining-minute").as_deref(), Some("5"));
    assert_eq!(redis.counts[&key], 5);
    // the next ones are counted in shared data, no call
    for remaining in [4, 3] {
        let ex = checked(h.send(&[f], as_alice()));
        assert!(!ex.paused);
        assert!(h.pending_http_calls().is_empty());
        assert_eq!(ex.response_header("x-ratelimit-remaining-minute"), Some(remaining.to_string()));
    }
    // the other proxy counted 2 more meanwhile; the tick flushes our 2 and learns the total
    *redis.counts.get_mut(&key).unwrap() += 2;
    h.tick();
    let calls = h.pending_http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header(":path").as_deref(), Some("/v1/ratelimit/flush"));
    assert_eq!(body(&calls[0]), json!({"keys": [{"key": key, "by": 2, "expire_at": NOW + 60}]}));
    redis.serve(&mut h);
    assert_eq!(redis.counts[&key], 9);
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.response_header("x-ratelimit-remaining-minute").as_deref(), Some("0"), "9 before it");
    let ex = checked(h.send(&[f], as_alice()));
    assert_eq!(ex.status(), 429);
    // nothing new: the next tick sends nothing but what was counted (both, the refused one too)
    h.advance(Duration::from_millis(100));
    h.tick();
    let calls = h.pending_http_calls();
    assert_eq!(body(&calls[0])["keys"][0]["by"], 2);
    redis.serve(&mut h);
    h.advance(Duration::from_millis(100));
    h.tick();
    assert!(h.pending_http_calls().is_empty());
    // a failed flush drops its increments (as Kong's) and is logged
    let _ = checked(h.send(&[f], as_alice()));
    h.advance(Duration::from_millis(100));
    h.tick();
    let call = h.pending_http_calls().remove(0);
    h.fail_http_call(call.token);
    assert!(h.logs().iter().any(|l| l.message.contains("the Redis front (ratelimit_front) failed")));
}

#[test]
fn policy_redis_configurations_are_checked_whole() {
    let with = |config: Value| doc(json!([{"name": "rate-limiting", "config": config}]));
    let cases = [
        (json!({"minute": 1, "policy": "redis"}), "plugins[0].config.redis"),
        (json!({"minute": 1, "policy": "cluster"}), "plugins[0].config.policy"),
        (json!({"minute": 1, "policy": "redis", "redis": {"token": "t"}}), "plugins[0].config.redis"),
        (
            json!({"minute": 1, "policy": "redis", "redis": {"upstream": "u", "token": ""}}),
            "plugins[0].config.redis.token",
        ),
        (
            json!({"minute": 1, "policy": "redis", "redis": {"upstream": "u", "token": "t", "timeout": 0}}),
            "plugins[0].config.redis.timeout",
        ),
        (
            json!({"minute": 1, "policy": "redis", "redis": {"upstream": "u", "token": "t", "path": "v1"}}),
            "plugins[0].config.redis.path",
        ),
        (
            json!({"minute": 1, "policy": "redis", "redis": {"upstream": "u", "token": "t", "host": "h"}}),
            "plugins[0].config.redis.host",
        ),
        (
            json!({"minute": 1, "policy": "redis", "sync_rate": 0.01, "redis": {"upstream": "u", "token": "t"}}),
            "plugins[0].config.sync_rate",
        ),
        (json!({"minute": 1, "sync_rate": 1}), "plugins[0].config.sync_rate"),
        (json!({"minute": 1, "redis": {"upstream": "u", "token": "t"}}), "plugins[0].config.redis"),
        (json!({"minute": 1, "route_id": "not-a-uuid"}), "plugins[0].config.route_id"),
        (json!({"minute": 1, "service_id": 7}), "plugins[0].config.service_id"),
    ];
    for (config, path) in cases {
        let line = refusal(&with(config.clone()));
        assert!(line.starts_with(path), "{config}: {line}");
        assert!(!line.contains("s3cret"), "{line}");
    }
    // Kong's defaults: fault_tolerant true, sync_rate -1, timeout 2000, path /v1/ratelimit
    let (mut h, f) = one(&with(json!({"minute": 1, "policy": "redis", "redis": {"upstream": "u", "token": "t"}})));
    assert_eq!(h.tick_period(f), 0, "synchronous: no tick");
    let ex = checked(h.send(&[f], Request::get("/")));
    let call = h.pending_http_calls().remove(0);
    assert_eq!(call.timeout_ms, 2000);
    assert_eq!(call.header(":path").as_deref(), Some("/v1/ratelimit/incr"));
    h.fail_http_call(call.token);
    assert_eq!(checked(h.exchange(ex.id).unwrap()).status(), 200);
}

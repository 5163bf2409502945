//! rate-limiting's `policy: redis` through real Envoy (issue 21): three Envoy processes sharing one
//! limit through the counters' front (in-process) and a real Redis; Kong's keys; a Kong node's own
//! script counting toward the same limit; window rollover; sync_rate's overshoot; a dead Redis or
//! front with fault_tolerant true and false, never holding a request past the timeout; Redis back.
//!
//! Needs `CONSUMER_AUTH_REDIS_URL` (`make test` / `make redis-server`), `redis-server` and
//! `redis-cli` on the PATH.

// The helpers below set up real processes: a failure there is the test failing, loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE};
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::redis_front::{redis_cli, shared_redis_url, start_front, PrivateRedis, TOKEN};
use consumer_auth_ratelimit::{Config, KONG_SCRIPT};
use serde_json::{json, Value};

const ZERO: &str = "00000000-0000-0000-0000-000000000000";

/// A route id no earlier run used: every test counts on keys of its own.
fn fresh_route_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let hex = format!("{:032x}", nanos ^ (u128::from(std::process::id()) << 64));
    format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An Envoy (one worker) whose `/` runs key-auth + rate-limiting with `limits` against the front
/// at `front_port`.
fn envoy(upstream: u16, front_port: u16, routes: &[(&str, Value)]) -> Envoy {
    let mut bootstrap = Bootstrap::new(upstream).static_cluster("ratelimit_front", front_port);
    for (prefix, limits) in routes {
        bootstrap = bootstrap
            .route(prefix, [instance(json!([plugin("key-auth", json!({})), plugin("rate-limiting", limits.clone())]))]);
    }
    Envoy::try_start_with_workers(&bootstrap, 1).unwrap_or_else(|f| panic!("Envoy: {}", f.log))
}

fn redis_limits(limits: Value, route_id: &str, timeout_ms: u32) -> Value {
    let mut config = limits;
    config["policy"] = json!("redis");
    config["route_id"] = json!(route_id);
    config["redis"] = json!({"upstream": "ratelimit_front", "token": TOKEN, "timeout": timeout_ms});
    config
}

/// `total` requests as alice from `clients` threads, spread over the proxies' ports in turn:
/// (passed, refused, other).
fn burst(ports: &[u16], path: &str, total: u32, clients: u32) -> (u32, u32, u32) {
    let counts = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
    let next = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (counts, next, ports, path) = (counts.clone(), next.clone(), ports.to_vec(), path.to_string());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let port = ports[i as usize % ports.len()];
                let slot = match Request::get(&path).header("apikey", ALICE.key()).send(port).status {
                    200 => 0,
                    429 => 1,
                    _ => 2,
                };
                counts[slot].fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (counts[0].load(Ordering::SeqCst), counts[1].load(Ordering::SeqCst), counts[2].load(Ordering::SeqCst))
}

#[test]
fn three_envoys_share_one_limit_exactly_with_kongs_keys() {
    const LIMIT: u32 = 100;
    const BURST: u32 = 300;
    const BY_KONG: u32 = 10;
    let redis = shared_redis_url();
    let front = start_front(Config::new(&redis, TOKEN));
    let upstream = EchoServer::start();
    let route = fresh_route_id();
    // A day window: the burst falls into one window unless it runs across midnight UTC.
    let limits = redis_limits(json!({"day": LIMIT}), &route, 2000);
    let proxies: Vec<Envoy> = (0..3).map(|_| envoy(upstream.port, front, &[("/", limits.clone())])).collect();
    let ports: Vec<u16> = proxies.iter().map(|e| e.port).collect();

    // A Kong node on the same Redis counts alice 10 times first, with its own script.
    let day_start_ms = (now_secs() - now_secs() % 86_400) * 1000;
    let key = format!("ratelimit:{route}:{ZERO}:{}:{day_start_ms}:day", ALICE.id);
    for i in 0..BY_KONG {
        assert_eq!(redis_cli(&redis, &["EVAL", KONG_SCRIPT, "1", &key, "86400"]), i.to_string());
    }

    let (passed, refused, other) = burst(&ports, "/", BURST, 30);
    assert_eq!(other, 0, "only 200 and 429");
    assert_eq!(passed, LIMIT - BY_KONG, "exactly the limit passes across three proxies (Kong's 10 included)");
    assert_eq!(refused, BURST - passed);

    // Kong's key, counting every request (refused ones too), with Kong's TTL
    let keys = redis_cli(&redis, &["KEYS", &format!("ratelimit:{route}:*")]);
    assert_eq!(keys, key, "one key, Kong's format");
    assert_eq!(redis_cli(&redis, &["GET", &key]), (BURST + BY_KONG).to_string());
    let ttl: u64 = redis_cli(&redis, &["TTL", &key]).parse().unwrap();
    assert!(ttl > 86_000 && ttl <= 86_400, "Kong's TTL: {ttl}");
    // Kong's headers on a refused request
    let refused = Request::get("/").header("apikey", ALICE.key()).send(ports[0]);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-ratelimit-limit-day"), Some("100"));
    assert_eq!(refused.header("x-ratelimit-remaining-day"), Some("0"));
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn a_new_window_is_a_new_key() {
    let redis = shared_redis_url();
    let front = start_front(Config::new(&redis, TOKEN));
    let upstream = EchoServer::start();
    let route = fresh_route_id();
    let proxy = envoy(upstream.port, front, &[("/", redis_limits(json!({"second": 3}), &route, 2000))]);
    // Start just after a second begins, so that 5 quick requests fall in one window.
    let attempt = |proxy: &Envoy| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        std::thread::sleep(Duration::from_millis(1000 - u64::from(now.subsec_millis())) + Duration::from_millis(20));
        let window = now_secs();
        let statuses: Vec<u16> =
            (0..5).map(|_| Request::get("/").header("apikey", ALICE.key()).send(proxy.port).status).collect();
        (window == now_secs(), window, statuses)
    };
    // a loaded machine may spill 5 requests over a second: try again then (at most 3 times)
    let mut last = None;
    for _ in 0..3 {
        let (one_window, window, statuses) = attempt(&proxy);
        if one_window {
            last = Some((window, statuses));
            break;
        }
    }
    let (window, statuses) = last.expect("5 requests within one second, in 3 attempts");
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (_, _, next) = attempt(&proxy);
    assert_eq!(&next[..3], [200, 200, 200], "the next second is a new window");
    // the first window's key is gone with Kong's 1 s TTL; the last one's is there
    let first = format!("ratelimit:{route}:{ZERO}:{}:{}:second", ALICE.id, window * 1000);
    assert_eq!(redis_cli(&redis, &["EXISTS", &first]), "0", "Kong's TTL of 1 s");
}

#[test]
fn sync_rate_overshoot_is_bounded() {
    const LIMIT: u32 = 100;
    const BURST: u32 = 300;
    let redis = shared_redis_url();
    let front = start_front(Config::new(&redis, TOKEN));
    let upstream = EchoServer::start();
    let route = fresh_route_id();
    let limits = redis_limits(json!({"day": LIMIT, "sync_rate": 0.1}), &route, 2000);
    let proxies: Vec<Envoy> = (0..3).map(|_| envoy(upstream.port, front, &[("/", limits.clone())])).collect();
    let ports: Vec<u16> = proxies.iter().map(|e| e.port).collect();
    let started = Instant::now();
    let (passed, _, other) = burst(&ports, "/", BURST, 30);
    let took = started.elapsed();
    assert_eq!(other, 0);
    println!("sync_rate 0.1, 3 proxies, limit {LIMIT}, {BURST} requests in {took:?}: {passed} passed");
    assert!(passed >= LIMIT, "{passed}: never fewer than the limit");
    // docs/RATE_LIMITING.md: over the limit at most min((N - 1) x limit, R x 2 x sync_rate), R the
    // burst's rate (requests/s)
    let rate = f64::from(BURST) / took.as_secs_f64();
    let bound = (2 * LIMIT).min((rate * 2.0 * 0.1).ceil() as u32);
    println!("over the limit: {} (bound {bound}, at {rate:.0} requests/s)", passed - LIMIT);
    assert!(passed - LIMIT <= bound, "{passed} passed: over the bound {bound}");
    // after the flushes every request counted reaches Redis
    std::thread::sleep(Duration::from_millis(500));
    let day_start_ms = (now_secs() - now_secs() % 86_400) * 1000;
    let key = format!("ratelimit:{route}:{ZERO}:{}:{day_start_ms}:day", ALICE.id);
    assert_eq!(redis_cli(&redis, &["GET", &key]), BURST.to_string(), "every request counted once in Redis");
}

/// Time one request; (status, rate-limit header present, elapsed).
fn timed(port: u16, path: &str) -> (u16, bool, Duration) {
    let started = Instant::now();
    let response = Request::get(path).header("apikey", ALICE.key()).send(port);
    (response.status, response.header("ratelimit-limit").is_some(), started.elapsed())
}

#[test]
fn a_dead_redis_or_front_follows_fault_tolerant_within_the_timeout() {
    const TIMEOUT_MS: u32 = 300;
    let bound = Duration::from_millis(u64::from(TIMEOUT_MS) + 50);
    let mut redis = PrivateRedis::start();
    let mut config = Config::new(redis.url(), TOKEN);
    config.redis_timeout = Duration::from_millis(100);
    let front = start_front(config);
    let upstream = EchoServer::start();
    let route = fresh_route_id();
    let tolerant = redis_limits(json!({"hour": 1000}), &route, TIMEOUT_MS);
    let mut strict = redis_limits(json!({"hour": 1000}), &route, TIMEOUT_MS);
    strict["fault_tolerant"] = json!(false);
    let proxy = envoy(upstream.port, front, &[("/tolerant", tolerant), ("/strict", strict)]);
    assert_eq!(timed(proxy.port, "/tolerant").0, 200);
    assert!(timed(proxy.port, "/strict").1, "counted: Kong's headers");

    // Redis stopped: the front answers 503 quickly; Kong's fault_tolerant
    redis.stop();
    for _ in 0..5 {
        let (status, headers, took) = timed(proxy.port, "/tolerant");
        assert_eq!((status, headers), (200, false), "through, without rate-limit headers");
        assert!(took < bound, "{took:?}");
        let (status, _, took) = timed(proxy.port, "/strict");
        assert_eq!(status, 500);
        assert!(took < bound, "{took:?}");
    }
    let log = proxy.log();
    assert_eq!(
        log.matches("rate-limiting: the Redis front (ratelimit_front) failed").count(),
        2,
        "once per entry and burst"
    );

    // Redis back: counting resumes (the front reconnects)
    redis.restart();
    let resumed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        timed(proxy.port, "/strict").0 == 200
    });
    assert!(resumed, "counting resumes once Redis is back");
    assert!(timed(proxy.port, "/tolerant").1, "headers again");
}

#[test]
fn a_front_that_never_answers_holds_no_request_past_the_timeout() {
    const TIMEOUT_MS: u32 = 300;
    let bound = Duration::from_millis(u64::from(TIMEOUT_MS) + 50);
    // accepts connections, never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let upstream = EchoServer::start();
    let route = fresh_route_id();
    let tolerant = redis_limits(json!({"minute": 5}), &route, TIMEOUT_MS);
    let mut strict = tolerant.clone();
    strict["fault_tolerant"] = json!(false);
    let proxy = envoy(upstream.port, silent_port, &[("/tolerant", tolerant), ("/strict", strict)]);
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let (status, headers, took) = timed(proxy.port, "/tolerant");
        assert_eq!((status, headers), (200, false));
        assert!(took >= Duration::from_millis(u64::from(TIMEOUT_MS) - 10), "it did wait for the front: {took:?}");
        worst = worst.max(took);
        let (status, _, took) = timed(proxy.port, "/strict");
        assert_eq!(status, 500);
        worst = worst.max(took);
    }
    println!("timeout {TIMEOUT_MS} ms: the slowest request took {worst:?}");
    assert!(worst < bound, "{worst:?}");
}

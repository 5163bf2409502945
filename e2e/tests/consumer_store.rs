//! The shared consumer store through real Envoy (two workers): a singleton `envoy.bootstrap.wasm`
//! service with the filter's `vm_id` fills the store (from its configuration, or from a remote
//! source it polls), and the http filter instances on the workers read it
//! (`"consumer_store": "main"`). That the workers authenticate consumers their own documents do
//! not hold shows that the service VM and the worker VMs share one shared-data namespace.

// clippy.toml covers the `#[test]` functions; this file's helpers (outside them) fail their test
// the same way.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{consumers_json, plugin, ALICE, ALL, ANONYMOUS, BOB, CAROL};
use consumer_auth_e2e::http::{Request, Response};
use consumer_auth_e2e::source::DocumentServer;
use serde_json::{json, Value};

const WORKERS: u32 = 2;
const NOT_LOADED: &str = "consumer store 'main' is not loaded yet";

fn reader(plugins: Value) -> Value {
    json!({ "consumer_store": "main", "plugins": plugins })
}

/// `/or`: key-auth OR basic-auth, anonymous fallback; `/key`: key-auth alone (401 without a key).
fn with_routes(bootstrap: Bootstrap) -> Bootstrap {
    let anonymous = json!({ "anonymous": ANONYMOUS.username });
    bootstrap
        .route("/or", [reader(json!([plugin("key-auth", anonymous.clone()), plugin("basic-auth", anonymous)]))])
        .route("/key", [reader(json!([plugin("key-auth", json!({}))]))])
        .route("/acl", [reader(json!([plugin("key-auth", json!({})), plugin("acl", json!({ "allow": ["admins"] }))]))])
}

fn start(bootstrap: &Bootstrap) -> Envoy {
    Envoy::try_start_with_workers(bootstrap, WORKERS).unwrap_or_else(|f| panic!("Envoy did not start:\n{}", f.log))
}

fn key(path: &str, key: &str) -> Request {
    Request::get(path).header("apikey", key)
}

/// The consumer the upstream saw, or the refusal.
fn outcome(response: &Response) -> String {
    match response.upstream() {
        Some(up) => format!("{} {}", response.status, up.header("x-consumer-username").unwrap_or("-")),
        None => format!("{} {}", response.status, response.text()),
    }
}

fn fetch_stat(envoy: &Envoy, outcome: &str) -> u64 {
    envoy.stat(&format!("wasmcustom.consumer_auth_store_fetches_total.store.main.outcome.{outcome}"))
}

#[test]
fn a_store_from_configuration_serves_every_worker() {
    let upstream = EchoServer::start();
    let bootstrap = with_routes(
        Bootstrap::new(upstream.port)
            .store_service(json!({ "store": { "name": "main", "consumers": consumers_json(&ALL) } })),
    );
    let envoy = start(&bootstrap);
    let port = envoy.port;
    // new connection per request: both workers answer
    for _ in 0..10 {
        let r = key("/or", ALICE.key()).send(port);
        let up = r.expect_upstream();
        assert_eq!(up.header("x-consumer-username"), Some(ALICE.username));
        assert_eq!(up.header("x-consumer-id"), Some(ALICE.id));
        assert_eq!(up.header("x-consumer-custom-id"), ALICE.custom_id);
        assert_eq!(up.header("x-credential-identifier"), Some(ALICE.key_id()));
        assert!(!up.has("x-anonymous-consumer"));
        let r = Request::get("/or").basic(BOB.basic_user(), BOB.basic_password()).send(port);
        let up = r.expect_upstream();
        assert_eq!(up.header("x-consumer-username"), Some(BOB.username));
        assert_eq!(up.header("x-credential-identifier"), Some(BOB.basic_user()));
        // anonymous, from the store
        let up = Request::get("/or").send(port).expect_upstream();
        assert_eq!(up.header("x-consumer-username"), Some(ANONYMOUS.username));
        assert_eq!(up.header("x-consumer-id"), Some(ANONYMOUS.id));
        assert_eq!(up.header("x-anonymous-consumer"), Some("true"));
        let up = Request::get("/or").basic(BOB.basic_user(), "wrong").send(port).expect_upstream();
        assert_eq!(up.header("x-consumer-username"), Some(ANONYMOUS.username));
        // without anonymous: the plugin's own refusals
        assert_eq!(outcome(&key("/key", CAROL.key()).send(port)), "200 carol");
        let r = key("/key", "nobody's key").send(port);
        assert_eq!((r.status, r.message()), (401, "Unauthorized".to_string()));
        let r = Request::get("/key").send(port);
        assert_eq!((r.status, r.message()), (401, "No API key found in request".to_string()));
        // groups come from the store too
        let up = key("/acl", ALICE.key()).send(port).expect_upstream();
        assert_eq!(up.header("x-consumer-groups"), Some("admins, ops"));
        let r = key("/acl", BOB.key()).send(port);
        assert_eq!((r.status, r.message()), (403, "You cannot consume this service".to_string()));
    }
    let stats = envoy.admin("/stats?filter=worker_.*downstream_cx_total").text();
    let busy = stats.lines().filter(|l| l.contains(".worker_") && !l.trim_end().ends_with(": 0")).count();
    assert_eq!(busy, WORKERS as usize, "every worker must have served requests:\n{stats}");
    let log = envoy.log();
    let loads = log.matches("consumer-auth: store 'main': generation 1 loaded (").count();
    assert_eq!(loads, 1, "the store is written once, by the service:\n{log}");
    assert_eq!(envoy.stat("wasmcustom.consumer_auth_store_generation.store.main"), 1);
}

fn remote_bootstrap(upstream: u16, source: u16) -> Bootstrap {
    with_routes(Bootstrap::new(upstream).static_cluster("consumer_source", source).store_service(
        json!({ "store": { "name": "main", "source": {
                "upstream": "consumer_source", "authority": "consumers.internal", "path": "/consumers.json",
                "refresh_seconds": 1, "timeout_ms": 5000
            } } }),
    ))
}

/// One refresh period (1 s) plus the tick's granularity (1 s) and a margin for a loaded machine.
const WITHIN_A_PERIOD: Duration = Duration::from_millis(3500);

#[test]
fn a_remote_source_is_polled_and_changes_take_effect_within_a_period() {
    let upstream = EchoServer::start();
    let source = DocumentServer::start();
    let envoy = start(&remote_bootstrap(upstream.port, source.port));
    let port = envoy.port;

    // before the first good load (the source answers 503): 503 on every route, even anonymous
    for path in ["/or", "/key"] {
        let r = key(path, ALICE.key()).send(port);
        assert_eq!((r.status, r.message()), (503, NOT_LOADED.to_string()), "{path}");
        assert!(r.upstream().is_none());
    }
    assert_eq!(Request::get("/or").send(port).status, 503);
    envoy.wait_until(&Request::get("/or"), WITHIN_A_PERIOD, |_| fetch_stat(&envoy, "failed") >= 1);
    assert_eq!(key("/or", ALICE.key()).send(port).status, 503);

    let v1 = source.set_consumers(&consumers_json(&ALL));
    let took = envoy.wait_until(&key("/key", ALICE.key()), WITHIN_A_PERIOD, |r| r.status == 200);
    eprintln!("first load served after {took:?}");
    assert_eq!(outcome(&key("/key", BOB.key()).send(port)), "200 bob");
    assert_eq!(outcome(&Request::get("/or").send(port)), format!("200 {}", ANONYMOUS.username));

    // unchanged: If-None-Match with the ETag, 304
    envoy.wait_until(&Request::get("/or"), WITHIN_A_PERIOD, |_| {
        source.fetches().iter().any(|f| f.if_none_match.as_deref() == Some(v1.as_str()) && f.status == 304)
    });
    assert!(fetch_stat(&envoy, "unchanged") >= 1);
    assert!(source.fetches().iter().all(|f| f.path == "/consumers.json"));

    // bob's key revoked, erin added, while Envoy runs
    let mut next = consumers_json(&ALL);
    let bob = next.as_array_mut().unwrap().iter_mut().find(|c| c["username"] == BOB.username).unwrap();
    bob.as_object_mut().unwrap().remove("keyauth_credentials");
    next.as_array_mut().unwrap().push(json!({ "username": "erin", "keyauth_credentials": [{ "key": "erin-key" }] }));
    source.set_consumers(&next);
    let took = envoy.wait_until(&key("/key", "erin-key"), WITHIN_A_PERIOD, |r| r.status == 200);
    eprintln!("a new generation served after {took:?}");
    assert_eq!(outcome(&key("/key", "erin-key").send(port)), "200 erin");
    let r = key("/key", BOB.key()).send(port);
    assert_eq!((r.status, r.message()), (401, "Unauthorized".to_string()), "bob's key is revoked");
    assert_eq!(outcome(&Request::get("/or").basic(BOB.basic_user(), BOB.basic_password()).send(port)), "200 bob");
    assert_eq!(envoy.stat("wasmcustom.consumer_auth_store_generation.store.main"), 2);

    // a failing source keeps the last generation: an error status, then a document that is not
    // JSON, then one that does not validate
    let failing: [(&str, &dyn Fn()); 3] = [
        ("failed", &|| source.fail_with(500)),
        ("invalid", &|| drop(source.set_document("{not json"))),
        ("invalid", &|| drop(source.set_consumers(&json!([{ "username": "a" }, { "username": "a" }])))),
    ];
    for (what, make_it_fail) in failing {
        let before = fetch_stat(&envoy, what);
        make_it_fail();
        envoy.wait_until(&Request::get("/or"), WITHIN_A_PERIOD * 2, |_| fetch_stat(&envoy, what) >= before + 2);
        assert_eq!(outcome(&key("/key", "erin-key").send(port)), "200 erin", "{what}");
        assert_eq!(key("/key", BOB.key()).send(port).status, 401, "{what}");
        assert_eq!(envoy.stat("wasmcustom.consumer_auth_store_generation.store.main"), 2);
    }
    let log = envoy.log();
    assert!(log.contains("fetch failed: status 500; keeping generation 2"), "{log}");
    assert!(log.contains("fetch failed: invalid document: "), "{log}");

    // a good document again: the next generation
    source.set_consumers(&consumers_json(&ALL));
    envoy.wait_until(&key("/key", BOB.key()), WITHIN_A_PERIOD, |r| r.status == 200);
    assert_eq!(key("/key", "erin-key").send(port).status, 401);
    assert_eq!(envoy.stat("wasmcustom.consumer_auth_store_generation.store.main"), 3);
    assert!(envoy.log().contains("consumer-auth: store 'main': generation 3 loaded"));
}

/// `n` filler consumers (a key and a basic credential each) plus the test consumers plus one
/// consumer whose key is `marker`: a document large enough that writing a generation takes a
/// while (readers race the writer).
fn big_population(n: usize, marker: &str) -> Value {
    let mut consumers = consumers_json(&ALL);
    let all = consumers.as_array_mut().unwrap();
    for i in 0..n {
        all.push(json!({
            "username": format!("filler-{i}"),
            "keyauth_credentials": [{ "key": format!("filler-key-{i}") }],
            "basicauth_credentials": [{ "username": format!("filler-basic-{i}"), "password": format!("pw-{i}") }]
        }));
    }
    all.push(json!({ "username": format!("marker-{marker}"), "keyauth_credentials": [{ "key": marker }] }));
    consumers
}

#[test]
fn swapping_generations_under_load_never_fails_a_request() {
    const CLIENTS: usize = 6;
    const SWAPS: usize = 6;
    let upstream = EchoServer::start();
    let source = DocumentServer::start();
    source.set_consumers(&big_population(5_000, "marker-0"));
    let envoy = start(&remote_bootstrap(upstream.port, source.port));
    let port = envoy.port;
    envoy.wait_until(&key("/key", "marker-0"), Duration::from_secs(10), |r| r.status == 200);

    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, statuses) = (Arc::clone(&stop), Arc::clone(&statuses));
            std::thread::spawn(move || {
                let mut mine = BTreeMap::<String, u64>::new();
                while !stop.load(Ordering::SeqCst) {
                    // alice's key (every generation has it) and bob's password, alternately
                    let request = if i % 2 == 0 {
                        key("/key", ALICE.key())
                    } else {
                        Request::get("/or").basic(BOB.basic_user(), BOB.basic_password())
                    };
                    let seen = match request.try_send(port) {
                        Ok(r) => outcome(&r),
                        Err(e) => format!("error {e}"),
                    };
                    *mine.entry(seen).or_default() += 1;
                }
                let mut all = statuses.lock().unwrap();
                for (k, v) in mine {
                    *all.entry(k).or_default() += v;
                }
            })
        })
        .collect();
    let mut swap_times = Vec::new();
    for swap in 1..=SWAPS {
        let marker = format!("marker-{swap}");
        // every generation differs (a new marker, and the filler count changes)
        source.set_consumers(&big_population(5_000 + swap * 100, &marker));
        swap_times.push(envoy.wait_until(&key("/key", &marker), Duration::from_secs(10), |r| r.status == 200));
        let old = format!("marker-{}", swap - 1);
        assert_eq!(key("/key", &old).send(port).status, 401, "the previous generation's marker is gone");
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread");
    }
    let statuses = statuses.lock().unwrap().clone();
    let total: u64 = statuses.values().sum();
    eprintln!("{total} requests during {SWAPS} swaps (each served after {swap_times:?}): {statuses:?}");
    let expected = [format!("200 {}", ALICE.username), format!("200 {}", BOB.username)];
    let unexpected: Vec<_> = statuses.iter().filter(|(k, _)| !expected.contains(k)).collect();
    assert!(unexpected.is_empty(), "unexpected answers during swaps: {unexpected:?} (all: {statuses:?})");
    assert!(statuses.values().all(|n| *n > 100), "too few requests to mean anything: {statuses:?}");
    assert_eq!(envoy.stat("wasmcustom.consumer_auth_store_generation.store.main"), 1 + SWAPS as u64);
}

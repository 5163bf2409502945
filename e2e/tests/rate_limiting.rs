//! rate-limiting through real Envoy with two workers: parallel clients send exactly N + k
//! requests within one window and exactly N pass (the counters live in shared data and are
//! updated with compare-and-swap, so no worker loses an increment).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE};
use consumer_auth_e2e::http::Request;
use serde_json::json;

const LIMIT: u32 = 150;
const EXTRA: u32 = 90;
const CLIENTS: u32 = 8;

#[test]
fn exactly_the_limit_passes_under_parallel_load_on_two_workers() {
    let upstream = EchoServer::start();
    // An hour window: the whole burst falls into one window whatever the wall clock does.
    let bootstrap = Bootstrap::new(upstream.port).route(
        "/",
        [instance(json!([plugin("key-auth", json!({})), plugin("rate-limiting", json!({ "hour": LIMIT }))]))],
    );
    let envoy = Envoy::try_start_with_workers(&bootstrap, 2).unwrap_or_else(|f| panic!("Envoy: {}", f.log));
    let port = envoy.port;
    let (passed, limited, other) =
        (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let total = LIMIT + EXTRA;
    let next = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (passed, limited, other, next) = (passed.clone(), limited.clone(), other.clone(), next.clone());
            std::thread::spawn(move || {
                // each request on a new connection, so both workers serve the burst
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    match Request::get("/").header("apikey", ALICE.key()).send(port).status {
                        200 => passed.fetch_add(1, Ordering::SeqCst),
                        429 => limited.fetch_add(1, Ordering::SeqCst),
                        _ => other.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(other.load(Ordering::SeqCst), 0, "unexpected statuses");
    assert_eq!(passed.load(Ordering::SeqCst), LIMIT, "exactly the limit passes");
    assert_eq!(limited.load(Ordering::SeqCst), EXTRA);
    // both workers really served part of the burst
    let stats = envoy.admin("/stats?filter=worker_.*downstream_cx_total").text();
    let busy = stats.lines().filter(|l| l.contains(".worker_") && !l.trim_end().ends_with(": 0")).count();
    assert_eq!(busy, 2, "both workers must have served connections:\n{stats}");
}

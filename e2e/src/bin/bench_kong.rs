//! `make bench-kong`: consumer-auth through Kong's proxy-wasm host (nginx 1.25.3 + ngx_wasm_module
//! at Kong 3.9's commit, `make kong-host`), one nginx worker, wrk on loopback: a location without
//! the filter, key-auth, basic-auth, and a 401 (key-auth without a key), each as a ratio to the
//! no-filter location measured in the same run (alternated runs, median req/s). The echo
//! upstream is this process (a thread per connection), so absolute numbers are low; the ratios
//! say what the filter costs. BENCH_SECONDS (default 5) and BENCH_RUNS (default 3) override.

use std::process::ExitCode;

use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE};
use consumer_auth_e2e::kong::{Kong, KongConfig};
use consumer_auth_e2e::measure::{env_or, median, Load};
use serde_json::json;

/// (name, path, request headers, whether every answer must be a 2xx).
type Case = (&'static str, &'static str, Vec<(&'static str, String)>, bool);

/// wrk's `Requests/sec` and the count of non-2xx/3xx answers.
fn wrk(port: u16, path: &str, headers: &[(&str, String)], seconds: u64) -> (f64, u64) {
    let mut load = Load::new(port, path, seconds);
    load.headers = headers.iter().map(|(name, value)| (name.to_string(), value.clone())).collect();
    load.connections = 16;
    load.pin = false;
    let run = consumer_auth_e2e::measure::wrk(&load);
    (run.rps, run.non_2xx)
}

fn main() -> ExitCode {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let runs: u64 = env_or("BENCH_RUNS", 3);
    let echo = EchoServer::start();
    let config = KongConfig::new(echo.port)
        .workers(1)
        .raw_location("/none", "")
        .route("/key", [instance(json!([plugin("key-auth", json!({}))]))])
        .route("/basic", [instance(json!([plugin("basic-auth", json!({}))]))]);
    let kong = Kong::start(&config);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", ALICE.basic_user(), ALICE.basic_password())
        )
    );
    let cases: [Case; 4] = [
        ("no filter", "/none", vec![], true),
        ("key-auth", "/key", vec![("apikey", ALICE.key().to_string())], true),
        ("basic-auth", "/basic", vec![("authorization", basic)], true),
        ("key-auth 401", "/key", vec![], false),
    ];
    // warm-up
    for (_, path, headers, _) in &cases {
        wrk(kong.port, path, headers, 1);
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (name, path, headers, ok)) in cases.iter().enumerate() {
            let (rps, non_2xx) = wrk(kong.port, path, headers, seconds);
            if *ok && non_2xx > 0 {
                eprintln!("bench-kong: {name}: {non_2xx} unexpected non-2xx answers");
                return ExitCode::FAILURE;
            }
            if let Some(r) = results.get_mut(i) {
                r.push(rps);
            }
        }
    }
    let base = median(results.first().cloned().unwrap_or_default());
    println!("Kong's host (nginx 1.25.3 + ngx_wasm_module 9136e463, 1 worker), wrk -t1 -c16, {runs} x {seconds} s:");
    println!("| case | req/s (median) | ratio to no filter |");
    println!("|---|---|---|");
    for ((name, ..), r) in cases.iter().zip(results) {
        let m = median(r);
        println!("| {name} | {m:.0} | {:.2} |", if base > 0.0 { m / base } else { 0.0 });
    }
    drop(kong);
    ExitCode::SUCCESS
}

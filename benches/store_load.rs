//! Loading a remote consumers document into the shared store, through the real .wasm (the
//! wasmtime harness): how long the loader takes per phase (the filter's own "loaded" log line:
//! read and validated, written) for N consumers with one key and one password each — the
//! shape `make bench-store` serves to Envoy. Not a test: `make bench-store-load` (`N`, default
//! 1,000,000; `RUNS`, default 3; the median is quoted).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

// The harness tests' helpers (one copy for tests and benches); a bench uses only some of them.
#[allow(dead_code)]
#[path = "../tests/harness/support.rs"]
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use support::*;

fn document(n: usize, generation: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 170 + 64);
    out.push_str("{\"consumers\":[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"username\":\"consumer-{i:07}\",\"keyauth_credentials\":[{{\"key\":\"store-key-{i:07}-g{generation}\"}}],\
             \"basicauth_credentials\":[{{\"username\":\"store-user-{i:07}\",\"password\":\"pw-{i:07}\"}}]}}"
        );
    }
    out.push_str("]}");
    out.into_bytes()
}

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let mut h = host();
    let loader = json!({"store": {"name": "main", "source": {
        "upstream": "consumer_source", "path": "/consumers.json", "refresh_seconds": 1, "timeout_ms": 60000
    }}})
    .to_string();
    h.configure(&loader).unwrap();
    let mut totals = Vec::new();
    for generation in 1..=runs {
        let body = document(n, generation);
        h.advance(Duration::from_secs(1));
        h.tick();
        let call = h.pending_http_calls().remove(0);
        let started = Instant::now();
        h.reply_http_call(call.token, 200, &[], &body);
        let took = started.elapsed();
        let line = h
            .logs()
            .iter()
            .rev()
            .find(|l| l.message.contains(&format!("generation {generation} loaded")))
            .map(|l| l.message.clone())
            .unwrap_or_else(|| panic!("generation {generation} not loaded: {:?}", h.logs().last()));
        let memory = h.memory_sizes().into_iter().max().unwrap_or(0);
        println!(
            "{n} consumers, {:.1} MB: {took:.2?}, loader VM memory {} MiB ({} bytes per consumer) — {line}",
            body.len() as f64 / 1e6,
            memory >> 20,
            memory / n
        );
        totals.push(took);
    }
    totals.sort();
    println!(
        "median {:.2?} ({:.2} µs per consumer)",
        totals[totals.len() / 2],
        totals[totals.len() / 2].as_secs_f64() * 1e6 / n as f64
    );
}

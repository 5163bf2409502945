//! Per-algorithm cost of jwt verification through the real .wasm (the wasmtime harness), as a
//! ratio to HS256. Not a test: run with `make bench-algorithms` (N requests per algorithm,
//! median time per request). `baseline` is a request refused before any signature is checked
//! (unknown key), so `median - baseline` is roughly the verification itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

// The harness tests' helpers (one copy for tests and benches); a bench uses only some of them.
#[allow(dead_code)]
#[path = "../tests/harness/support.rs"]
mod support;

use std::time::Instant;

use support::*;

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let k = keys();
    let rsa_pem = rsa_pem(&k.rsa);
    let (p256_pem, p384_pem, ed_pem) = (p256_pem(), p384_pem(), ed25519_pem());
    let algorithms = ALGORITHMS;
    let secrets: Vec<serde_json::Value> = algorithms
        .iter()
        .map(|alg| {
            let mut s = json!({"key": format!("k-{alg}"), "algorithm": alg});
            match &alg[..2] {
                "HS" => s["secret"] = json!("bench-secret"),
                "RS" | "PS" => s["rsa_public_key"] = json!(rsa_pem),
                _ if *alg == "ES256" => s["rsa_public_key"] = json!(p256_pem),
                _ if *alg == "ES384" => s["rsa_public_key"] = json!(p384_pem),
                _ => s["rsa_public_key"] = json!(ed_pem),
            }
            s
        })
        .collect();
    let config = json!({
        "consumers": [{"username": "bench", "jwt_secrets": secrets}],
        "plugins": [{"name": "jwt"}]
    })
    .to_string();
    let mut h = host();
    let f = h.configure(&config).unwrap();

    let token = |alg: &str, key: &str| jws(&json!({"alg": alg}), &json!({"iss": key}), alg, b"bench-secret");

    let mut median_of = |t: &str, expect: u16| -> f64 {
        let req = Request::get("/").header("authorization", &format!("Bearer {t}"));
        for _ in 0..20 {
            assert_eq!(h.send(&[f], req.clone()).status(), expect);
        }
        let mut times: Vec<f64> = (0..n)
            .map(|_| {
                let start = Instant::now();
                let ex = h.send(&[f], req.clone());
                let elapsed = start.elapsed().as_secs_f64() * 1e6;
                assert_eq!(ex.status(), expect);
                elapsed
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        times[times.len() / 2]
    };

    let baseline = median_of(&token("HS256", "unknown-key"), 401);
    let results: Vec<(&str, f64)> =
        algorithms.iter().map(|alg| (*alg, median_of(&token(alg, &format!("k-{alg}")), 200))).collect();
    let hs256 = results[0].1;
    println!("jwt verification through the harness, {n} requests per algorithm, median per request");
    println!("{:<8} {:>12} {:>10} {:>18} {:>16}", "alg", "median µs", "÷ HS256", "minus baseline µs", "÷ HS256 (net)");
    println!("{:<8} {:>12.1} {:>10} {:>18} {:>16}", "baseline", baseline, "", "", "");
    for (alg, t) in &results {
        println!(
            "{:<8} {:>12.1} {:>10.2} {:>18.1} {:>16.1}",
            alg,
            t,
            t / hs256,
            t - baseline,
            (t - baseline) / (hs256 - baseline).max(0.1)
        );
    }
}

//! `make bench` in a tiny mode (10 consumers, one 1-second run per case, no warm-up): the bench
//! binary starts Envoy, drives every case with wrk, checks every status, counts host calls
//! through the harness and writes its table; with this build as its own `BENCH_BASELINE_WASM`, the
//! baseline rows and the comparison table are there too. Needs `wrk` (`make e2e` installs it).

use std::process::Command;

#[test]
fn bench_runs_in_tiny_mode() {
    let wrk = Command::new("wrk").arg("--version").output();
    assert!(wrk.is_ok(), "wrk is not installed: run `make e2e` (or `apt-get install -y wrk`)");
    let dir = std::env::temp_dir().join(format!("consumer-auth-bench-smoke-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .env("BENCH_SECONDS", "1")
        .env("BENCH_RUNS", "1")
        .env("BENCH_WARMUP", "0")
        .env("BENCH_CONSUMERS", "10")
        .env("BENCH_BASELINE_WASM", consumer_auth_e2e::filter_wasm())
        .env("BENCH_RESULTS_DIR", &dir)
        .output()
        .expect("run the bench binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.contains("work-in-progress")).collect();
    assert!(output.status.success(), "bench failed ({}):\n{stdout}\n{}", output.status, tail.join("\n"));
    for case in [
        "| 10 | no filter |",
        "| 10 | empty wasm filter (floor) |",
        "| 10 | Envoy api_key_auth |",
        "| 10 | Envoy basic_auth |",
        "| 10 | consumer-auth key-auth |",
        "| 10 | consumer-auth basic-auth |",
        "| 10 | consumer-auth key OR basic (basic) |",
        "| 10 | consumer-auth 401 (no key) |",
        "| 10 | consumer-auth jwt (repeated token) |",
        "| 10 | consumer-auth hmac-auth |",
        "| 10 | consumer-auth 401 (wrong key) |",
        "| 10 | consumer-auth 403 (acl) |",
        "| 10 | consumer-auth 429 (rate-limiting) |",
        "| 10 | baseline build key-auth |",
        "| 10 | baseline build basic-auth |",
        "| 10 | baseline build 429 (rate-limiting) |",
    ] {
        let row = stdout.lines().find(|l| l.starts_with(case)).unwrap_or_else(|| panic!("no row {case}:\n{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let rps: f64 = cells[3].parse().unwrap_or_else(|_| panic!("req/s in {row}"));
        assert!(rps > 0.0, "{row}");
        if case.contains("consumer-auth") {
            let calls: u32 = cells[9].parse().unwrap_or_else(|_| panic!("host calls in {row}"));
            assert!(calls > 0 && cells[10].contains("get_header_map_pairs"), "{row}");
        }
    }
    // This build against itself as the baseline: both +CPU figures and their ratio.
    let comparison = stdout.split_once("against the baseline build").map(|(_, t)| t).unwrap_or_default();
    for case in ["| 10 | consumer-auth key-auth |", "| 10 | consumer-auth basic-auth |"] {
        let row = comparison.lines().find(|l| l.starts_with(case)).unwrap_or_else(|| panic!("no {case}:\n{stdout}"));
        let ratio: f64 = row.split('|').map(str::trim).nth(5).and_then(|c| c.parse().ok()).expect("ratio");
        assert!(ratio > 0.0, "{row}");
    }
    let written: Vec<_> = std::fs::read_dir(&dir).expect("results directory").flatten().collect();
    assert_eq!(written.len(), 1, "one results file in {}", dir.display());
    assert_eq!(std::fs::read_to_string(written[0].path()).unwrap(), stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `make bench-jwt` in a tiny mode (a small token pool minted into a temporary cache, one
/// 1-second run per case): every route is checked (200 with a token, 401 without one or with a
/// forged signature) before it is measured, jwt_authn included; the repeated-token rows of
/// consumer-auth show cache hits read from Envoy's stats, and the target comparisons are printed.
#[test]
fn bench_jwt_runs_in_tiny_mode() {
    let dir = std::env::temp_dir().join(format!("consumer-auth-bench-jwt-smoke-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_bench_jwt"))
        .env("BENCH_SECONDS", "1")
        .env("BENCH_FRESH_SECONDS", "1")
        .env("BENCH_RUNS", "1")
        .env("BENCH_WARMUP", "0")
        .env("BENCH_JWT_TOKENS", "200")
        .env("CONSUMER_AUTH_CACHE", dir.join("cache"))
        .env("BENCH_RESULTS_DIR", dir.join("results"))
        .output()
        .expect("run the bench_jwt binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench_jwt failed ({}):\n{stdout}\n{stderr}", output.status);
    for alg in ["HS256", "RS256", "ES256", "EdDSA"] {
        for case in [
            format!("consumer-auth {alg} repeated"),
            format!("consumer-auth {alg} fresh"),
            format!("jwt_authn {alg} fresh"),
        ] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(&format!("| {case} |")))
                .unwrap_or_else(|| panic!("no row {case}:\n{stdout}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let rps: f64 = cells[2].parse().unwrap_or_else(|_| panic!("req/s in {row}"));
            assert!(rps > 0.0, "{row}");
            if case.ends_with("repeated") {
                let hits: u64 = cells[7].split('/').next().unwrap().trim().parse().unwrap_or(0);
                assert!(hits > 0, "a repeated token is answered from the cache: {row}");
            }
        }
    }
    assert!(stdout.contains("| fresh RS256: consumer-auth / jwt_authn (target +CPU ≤ 3) |"), "{stdout}");
    assert!(stdout.contains("| repeated ES256 / repeated HS256, consumer-auth (target req/s ≥ 0.9) |"), "{stdout}");
    let minted = std::fs::read_dir(dir.join("cache/bench-jwt")).expect("the minted tokens").count();
    assert_eq!(minted, 4, "one pool per algorithm");
    let _ = std::fs::remove_dir_all(&dir);
}

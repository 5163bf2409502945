//! `make bench` in a tiny mode (10 consumers, one 1-second run per case, no warm-up): the bench
//! binary starts Envoy, drives every case with wrk, checks every status, counts host calls
//! through the harness and writes its table. Needs `wrk` (`make e2e` installs it).

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
    let written: Vec<_> = std::fs::read_dir(&dir).expect("results directory").flatten().collect();
    assert_eq!(written.len(), 1, "one results file in {}", dir.display());
    assert_eq!(std::fs::read_to_string(written[0].path()).unwrap(), stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

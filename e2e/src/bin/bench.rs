//! `make bench`: requests per second and latency through the real Envoy (V8), side by side:
//! no filter, Envoy's native `api_key_auth` and `basic_auth`, and consumer-auth (key-auth,
//! basic-auth, key-auth OR basic-auth, and the 401 path), with 10 and with 100,000 consumers.
//!
//! - One Envoy per consumer count, `--concurrency 1`, pinned to CPU 0; wrk pinned to CPU 1
//!   (both with `sched_setaffinity`, what `taskset -c` does); loopback; `direct_response` routes
//!   (no upstream), one route per case, so cases are interleaved: a warm-up run per case, then
//!   `BENCH_RUNS` rounds over all cases.
//! - Each case's requests/s is the median of its runs, and is also given as a ratio to the
//!   no-filter route of the same Envoy in the same invocation.
//! - Host calls per request: the same request with the same configuration through the wasmtime
//!   proxy-wasm host (`proxy_wasm_harness`), which counts every host call.
//!
//! Environment: `BENCH_SECONDS` (per run, default 5), `BENCH_RUNS` (default 3), `BENCH_WARMUP`
//! (seconds, default 1; 0 = none), `BENCH_CONNECTIONS` (default 10), `BENCH_CONSUMERS` (comma
//! list, default `10,100000`), `BENCH_RESULTS_DIR` (default `bench-results/` in the workspace),
//! `BENCH_BASELINE_WASM` (another build of the filter, e.g. the previous commit's: its key-auth and
//! basic-auth run in the same Envoy, in their own VM, interleaved with this build's; the report
//! gives this build's +CPU over the baseline's).
//! Needs `wrk` on the PATH (`make bench` installs it), `ENVOY_BIN` and `CONSUMER_AUTH_WASM` (as
//! the e2e tests).

// a benchmark driver, not the filter: a failed setup or an answer it cannot read ends the run with
// its message.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use consumer_auth_e2e::bootstrap::FILTER_CONFIG;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::measure::{
    bench_bootstrap, can_pin, env_or, latency, loadavg, machine, median, save_report, timestamp, Load, Run,
    PROXY_CPU as ENVOY_CPU, WRK_CPU,
};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

struct Settings {
    seconds: u64,
    runs: usize,
    warmup: u64,
    connections: u32,
    consumer_counts: Vec<usize>,
    results_dir: std::path::PathBuf,
    pin: bool,
    baseline: Option<std::path::PathBuf>,
}

impl Settings {
    fn from_env() -> Settings {
        let consumer_counts = std::env::var("BENCH_CONSUMERS")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.split(',')
                    .map(|n| n.trim().parse().unwrap_or_else(|_| panic!("BENCH_CONSUMERS: bad count {n:?}")))
                    .collect()
            })
            .unwrap_or_else(|| vec![10, 100_000]);
        let results_dir = std::env::var_os("BENCH_RESULTS_DIR")
            .filter(|d| !d.is_empty())
            .map(Into::into)
            .unwrap_or_else(|| consumer_auth_e2e::workspace_root().join("bench-results"));
        Settings {
            seconds: env_or("BENCH_SECONDS", 5).max(1),
            runs: env_or("BENCH_RUNS", 3).max(1),
            warmup: env_or("BENCH_WARMUP", 1),
            connections: env_or("BENCH_CONNECTIONS", 10).max(1),
            consumer_counts,
            results_dir,
            pin: can_pin(),
            baseline: baseline_wasm(),
        }
    }
}

fn baseline_wasm() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(std::env::var_os("BENCH_BASELINE_WASM").filter(|v| !v.is_empty())?);
    assert!(path.is_file(), "BENCH_BASELINE_WASM={} does not exist", path.display());
    Some(path)
}

// ---------------------------------------------------------------------------------------------
// The configurations, generated: consumer i has the key `bench-key-<i>` and the basic-auth user
// `bench-user-<i>` with the password `bench-password-<i>`; the native filters get the same
// credentials. Requests use the last consumer.

fn key(i: usize) -> String {
    format!("bench-key-{i:06}")
}

fn basic_user(i: usize) -> String {
    format!("bench-user-{i:06}")
}

fn password(i: usize) -> String {
    format!("bench-password-{i:06}")
}

fn authorization(i: usize) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", basic_user(i), password(i)));
    format!("Basic {token}")
}

/// The consumers array of a consumer-auth document, as JSON text (built once per count: with
/// 100,000 consumers it is ~17 MB).
fn consumers_json(n: usize) -> String {
    let mut consumers: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "username": format!("consumer-{i:06}"),
                "keyauth_credentials": [{ "key": key(i) }],
                "basicauth_credentials": [{ "username": basic_user(i), "password": password(i) }]
            })
        })
        .collect();
    consumers.push(json!({ "username": "anonymous" }));
    serde_json::to_string(&consumers).expect("serialise")
}

fn document(consumers: &str, plugins: &Value) -> String {
    format!("{{\"consumers\":{consumers},\"plugins\":{plugins}}}")
}

/// The consumer-auth filter instances of one Envoy: (filter name, configuration document).
fn consumer_auth_instances(n: usize) -> Vec<(&'static str, String)> {
    let consumers = consumers_json(n);
    let anonymous = json!({ "anonymous": "anonymous" });
    vec![
        ("ca_key", document(&consumers, &json!([{ "name": "key-auth" }]))),
        ("ca_basic", document(&consumers, &json!([{ "name": "basic-auth" }]))),
        (
            "ca_or",
            document(
                &consumers,
                &json!([{ "name": "key-auth", "config": anonymous }, { "name": "basic-auth", "config": anonymous }]),
            ),
        ),
    ]
}

fn htpasswd(n: usize) -> String {
    let mut out = String::with_capacity(n * 48);
    for i in 0..n {
        let digest = Sha1::digest(password(i).as_bytes());
        let _ = writeln!(out, "{}:{{SHA}}{}", basic_user(i), base64::engine::general_purpose::STANDARD.encode(digest));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    path: &'static str,
    /// The filter instance that serves the route (`None`: no filter).
    filter: Option<&'static str>,
    /// The consumer-auth instance (for host calls through the harness).
    consumer_auth: Option<&'static str>,
    credential: Credential,
    status: u16,
    /// The status without a credential (proves the filter is on the route; OR mode falls back to
    /// the anonymous consumer).
    without_credential: u16,
}

#[derive(Clone, Copy)]
enum Credential {
    None,
    Key,
    Basic,
}

const BUILD_CASES: [Case; 8] = [
    Case {
        name: "no filter",
        path: "/none",
        filter: None,
        consumer_auth: None,
        credential: Credential::None,
        status: 200,
        without_credential: 200,
    },
    Case {
        name: "empty wasm filter (floor)",
        path: "/wasm-noop",
        filter: Some("wasm_noop"),
        consumer_auth: None,
        credential: Credential::None,
        status: 200,
        without_credential: 200,
    },
    Case {
        name: "Envoy api_key_auth",
        path: "/native-key",
        filter: Some("native_api_key_auth"),
        consumer_auth: None,
        credential: Credential::Key,
        status: 200,
        without_credential: 401,
    },
    Case {
        name: "Envoy basic_auth",
        path: "/native-basic",
        filter: Some("native_basic_auth"),
        consumer_auth: None,
        credential: Credential::Basic,
        status: 200,
        without_credential: 401,
    },
    Case {
        name: "consumer-auth key-auth",
        path: "/ca-key",
        filter: Some("ca_key"),
        consumer_auth: Some("ca_key"),
        credential: Credential::Key,
        status: 200,
        without_credential: 401,
    },
    Case {
        name: "consumer-auth basic-auth",
        path: "/ca-basic",
        filter: Some("ca_basic"),
        consumer_auth: Some("ca_basic"),
        credential: Credential::Basic,
        status: 200,
        without_credential: 401,
    },
    Case {
        name: "consumer-auth key OR basic (basic)",
        path: "/ca-or",
        filter: Some("ca_or"),
        consumer_auth: Some("ca_or"),
        credential: Credential::Basic,
        status: 200,
        without_credential: 200,
    },
    Case {
        name: "consumer-auth 401 (no key)",
        path: "/ca-key-401",
        filter: Some("ca_key"),
        consumer_auth: Some("ca_key"),
        credential: Credential::None,
        status: 401,
        without_credential: 401,
    },
];

/// The baseline build's cases (`BENCH_BASELINE_WASM`): its instances serve these routes with the
/// configurations of `ca_key` and `ca_basic` (host calls are counted for this build only).
const BASELINE_CASES: [Case; 2] = [
    Case {
        name: "baseline build key-auth",
        path: "/base-key",
        filter: Some("base_key"),
        consumer_auth: None,
        credential: Credential::Key,
        status: 200,
        without_credential: 401,
    },
    Case {
        name: "baseline build basic-auth",
        path: "/base-basic",
        filter: Some("base_basic"),
        consumer_auth: None,
        credential: Credential::Basic,
        status: 200,
        without_credential: 401,
    },
];

/// The baseline case of this build's case of that name.
const BASELINE_OF: [(&str, &str); 2] =
    [("baseline build key-auth", "consumer-auth key-auth"), ("baseline build basic-auth", "consumer-auth basic-auth")];

/// Every case of this invocation: this build's, then the baseline's when there is one.
fn cases() -> &'static [Case] {
    static ALL: std::sync::OnceLock<Vec<Case>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let baseline: &[Case] = if baseline_wasm().is_some() { &BASELINE_CASES } else { &[] };
        BUILD_CASES.iter().chain(baseline).copied().collect()
    })
}

impl Case {
    fn headers(&self, n: usize) -> Vec<(&'static str, String)> {
        match self.credential {
            Credential::None => vec![],
            Credential::Key => vec![("apikey", key(n - 1))],
            Credential::Basic => vec![("authorization", authorization(n - 1))],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bootstrap: every filter listed once, disabled; each route enables its own.

fn wasm_filter(name: &str, config: &str, wasm: &str) -> Value {
    consumer_auth_e2e::bootstrap::wasm_filter_entry(name, config, "FAIL_CLOSED", wasm)
}

fn bootstrap(
    n: usize,
    instances: &[(&'static str, String)],
    wasm: &str,
    noop_wasm: &str,
    baseline: Option<&str>,
) -> Value {
    let mut http_filters = vec![
        json!({
            "name": "wasm_noop",
            "disabled": true,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "wasm_noop",
                    "failure_policy": "FAIL_CLOSED",
                    "vm_config": {
                        "vm_id": "noop",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": noop_wasm } }
                    }
                }
            }
        }),
        json!({
            "name": "native_api_key_auth",
            "disabled": true,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
                "credentials": (0..n).map(|i| json!({ "key": key(i), "client": format!("consumer-{i:06}") }))
                    .collect::<Vec<_>>(),
                "key_sources": [{ "header": "apikey" }],
                "forwarding": { "header": "x-consumer-username" }
            }
        }),
        json!({
            "name": "native_basic_auth",
            "disabled": true,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
                "users": { "inline_string": htpasswd(n) },
                "forward_username_header": "x-consumer-username"
            }
        }),
    ];
    for (name, config) in instances {
        http_filters.push(wasm_filter(name, config, wasm));
    }
    if let Some(baseline) = baseline {
        for (name, of) in [("base_key", "ca_key"), ("base_basic", "ca_basic")] {
            let config = &instances.iter().find(|(n, _)| *n == of).expect("instance").1;
            let mut entry = wasm_filter(name, config, baseline);
            entry["typed_config"]["config"]["vm_config"]["vm_id"] = json!("consumer_auth_baseline");
            http_filters.push(entry);
        }
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    let routes: Vec<Value> = cases()
        .iter()
        .map(|case| {
            let mut route = json!({
                "match": { "path": case.path },
                "direct_response": { "status": 200, "body": { "inline_string": "ok\n" } }
            });
            if let Some(filter) = case.filter {
                route["typed_per_filter_config"] = json!({ filter: { "@type": FILTER_CONFIG, "config": {} } });
            }
            route
        })
        .collect();
    bench_bootstrap(routes, http_filters)
}

// ---------------------------------------------------------------------------------------------
// wrk

fn wrk(settings: &Settings, seconds: u64, envoy: &Envoy, case: &Case, n: usize) -> Run {
    let mut load = Load::new(envoy.port, case.path, seconds);
    load.headers = case.headers(n).into_iter().map(|(name, value)| (name.to_string(), value)).collect();
    load.connections = settings.connections;
    load.pin = settings.pin;
    load.proxy_pid = Some(envoy.pid());
    let run = consumer_auth_e2e::measure::wrk(&load);
    let expected_non_2xx = if case.status == 200 { 0 } else { run.requests };
    assert_eq!(
        run.non_2xx, expected_non_2xx,
        "{} ({n} consumers): {} of {} responses were not 2xx/3xx (expected {expected_non_2xx})",
        case.name, run.non_2xx, run.requests
    );
    run
}

// ---------------------------------------------------------------------------------------------
// Host calls through the harness.

struct HostCalls {
    total: u32,
    breakdown: BTreeMap<String, u32>,
}

fn host_calls(instances: &[(&'static str, String)], n: usize) -> (BTreeMap<&'static str, HostCalls>, Duration) {
    let wasm = consumer_auth_e2e::filter_wasm();
    let mut out = BTreeMap::new();
    let mut configure_time = Duration::ZERO;
    for case in cases() {
        let Some(instance) = case.consumer_auth else { continue };
        let config = &instances.iter().find(|(name, _)| *name == instance).expect("instance").1;
        let mut host = proxy_wasm_harness::Host::load(&wasm).expect("load the filter into the harness");
        // Count what the filter does on Envoy (it tells Envoy from Kong by this property).
        host.set_property("xds.node", b"\x0a\x04node");
        let start = Instant::now();
        let filter = host.configure(config).unwrap_or_else(|e| panic!("the harness refused {instance}: {e}"));
        configure_time = configure_time.max(start.elapsed());
        let mut request = proxy_wasm_harness::Request::get(case.path);
        for (name, value) in case.headers(n) {
            request = request.header(name, &value);
        }
        // The first request of an instance may do one-time work; count the second.
        let _ = host.send(&[filter], request.clone());
        let exchange = host.send(&[filter], request);
        assert!(exchange.trap.is_none(), "{}: trap {:?}", case.name, exchange.trap);
        assert_eq!(exchange.status(), case.status, "{} through the harness", case.name);
        let breakdown: BTreeMap<String, u32> = exchange
            .host_calls
            .iter()
            .map(|(name, count)| (name.strip_prefix("proxy_").unwrap_or(name).to_string(), *count))
            .collect();
        out.insert(case.name, HostCalls { total: breakdown.values().sum(), breakdown });
    }
    (out, configure_time)
}

// ---------------------------------------------------------------------------------------------

struct Set {
    consumers: usize,
    envoy: Envoy,
    bootstrap_bytes: usize,
    start_to_ready: Duration,
    rss_kib: Option<u64>,
    harness_configure: Duration,
    host_calls: BTreeMap<&'static str, HostCalls>,
    runs: Vec<Vec<Run>>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn start_set(n: usize, settings: &Settings) -> Set {
    let wasm = consumer_auth_e2e::filter_wasm().display().to_string();
    let instances = consumer_auth_instances(n);
    let noop = std::env::temp_dir().join(format!("consumer-auth-bench-noop-{}.wasm", std::process::id()));
    std::fs::write(&noop, consumer_auth_e2e::wasm_fixture::noop_filter()).expect("write the no-op filter");
    let baseline = settings.baseline.as_ref().map(|p| p.display().to_string());
    let config = bootstrap(n, &instances, &wasm, &noop.display().to_string(), baseline.as_deref());
    let bootstrap_bytes = serde_json::to_vec(&config).map(|v| v.len()).unwrap_or(0);
    let start = Instant::now();
    let envoy = Envoy::start_json(&config, settings.pin.then_some(ENVOY_CPU), Duration::from_secs(600))
        .unwrap_or_else(|f| panic!("Envoy ({n} consumers) did not start ({:?}); its log:\n{}", f.status, f.log));
    let start_to_ready = start.elapsed();
    let _ = std::fs::remove_file(&noop);
    eprintln!("bench: Envoy with {n} consumers ready in {:.2} s on port {}", start_to_ready.as_secs_f64(), envoy.port);
    // Every route answers as expected, and every filtered route refuses a request without a
    // credential (the filter really is on the route).
    for case in cases() {
        let mut req = Request::get(case.path);
        for (name, value) in case.headers(n) {
            req = req.header(name, &value);
        }
        let r = req.send(envoy.port);
        assert_eq!(r.status, case.status, "{} ({n} consumers): {}", case.name, r.text());
        let r = Request::get(case.path).send(envoy.port);
        assert_eq!(
            r.status,
            case.without_credential,
            "{} ({n} consumers) without a credential: {}",
            case.name,
            r.text()
        );
    }
    let (host_calls, harness_configure) = host_calls(&instances, n);
    Set {
        consumers: n,
        rss_kib: rss_kib(envoy.pid()),
        envoy,
        bootstrap_bytes,
        start_to_ready,
        harness_configure,
        host_calls,
        runs: cases().iter().map(|_| Vec::new()).collect(),
    }
}

fn report(
    sets: &[Set],
    settings: &Settings,
    started: SystemTime,
    elapsed: Duration,
    loadavg: (String, String),
) -> String {
    let mut out = String::new();
    let when = timestamp(started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
    let _ = writeln!(out, "# consumer-auth benchmark, {when}\n");
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(
        out,
        "- Envoy `--concurrency 1` {}; wrk `-t1 -c{}` {}; loopback; `direct_response` routes",
        if settings.pin { format!("pinned to CPU {ENVOY_CPU}") } else { "(not pinned: one CPU)".into() },
        settings.connections,
        if settings.pin { format!("pinned to CPU {WRK_CPU}") } else { String::new() },
    );
    let _ = writeln!(
        out,
        "- {} run(s) of {} s per case, interleaved, after a {} s warm-up per case; total {:.0} s",
        settings.runs,
        settings.seconds,
        settings.warmup,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "- req/s: median of the runs; p50/p99: medians of the runs' wrk `--latency` percentiles");
    let _ = writeln!(out, "- vs none: the case's req/s over the no-filter route's, same Envoy, same invocation");
    let _ = writeln!(
        out,
        "- CPU/req: Envoy's CPU time (all threads, /proc schedstat) per request, median of the runs; \
         +CPU: minus the no-filter route's"
    );
    let _ = writeln!(out, "- host calls: per request, counted by the wasmtime proxy-wasm host for the same request");
    let _ = writeln!(out, "- load average (1 min) at start {} and at end {}\n", loadavg.0, loadavg.1);
    let _ = writeln!(
        out,
        "| consumers | case | req/s | vs none | p50 | p99 | CPU/req | +CPU | host calls | host calls by name |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for set in sets {
        let none_rps = median(set.runs[0].iter().map(|r| r.rps).collect());
        let none_cpu = median(set.runs[0].iter().map(|r| r.cpu_us).collect());
        for (i, case) in cases().iter().enumerate() {
            let runs = &set.runs[i];
            let rps = median(runs.iter().map(|r| r.rps).collect());
            let p50 = median(runs.iter().map(|r| r.p50_us).collect());
            let p99 = median(runs.iter().map(|r| r.p99_us).collect());
            let cpu = median(runs.iter().map(|r| r.cpu_us).collect());
            let (calls, by_name) = match set.host_calls.get(case.name) {
                Some(h) => (
                    h.total.to_string(),
                    h.breakdown.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", "),
                ),
                None => ("–".to_string(), String::new()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {} | {} | {:.1} µs | {:+.1} µs | {calls} | {by_name} |",
                set.consumers,
                case.name,
                rps,
                if none_rps > 0.0 { rps / none_rps } else { 0.0 },
                latency(p50),
                latency(p99),
                cpu,
                cpu - none_cpu,
            );
        }
    }
    if let Some(baseline) = &settings.baseline {
        let _ = writeln!(
            out,
            "\nThis build against the baseline build ({}), same Envoy, same requests:\n",
            baseline.display()
        );
        let _ = writeln!(out, "| consumers | case | +CPU this build | +CPU baseline | ratio | req/s ratio |");
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
        for set in sets {
            let none_cpu = median(set.runs[0].iter().map(|r| r.cpu_us).collect());
            let of = |name: &str| {
                let i = cases().iter().position(|c| c.name == name).expect("case");
                let runs = &set.runs[i];
                (
                    median(runs.iter().map(|r| r.cpu_us).collect()) - none_cpu,
                    median(runs.iter().map(|r| r.rps).collect()),
                )
            };
            for (base, this) in BASELINE_OF {
                let ((cpu, rps), (base_cpu, base_rps)) = (of(this), of(base));
                let _ = writeln!(
                    out,
                    "| {} | {this} | {cpu:+.1} µs | {base_cpu:+.1} µs | {:.2} | {:.2} |",
                    set.consumers,
                    if base_cpu > 0.0 { cpu / base_cpu } else { 0.0 },
                    if base_rps > 0.0 { rps / base_rps } else { 0.0 },
                );
            }
        }
    }
    let _ = writeln!(out, "\nPer-run req/s and Envoy CPU per request (in run order):\n");
    for set in sets {
        for (i, case) in cases().iter().enumerate() {
            let runs: Vec<String> =
                set.runs[i].iter().map(|r| format!("{:.0} ({:.1} µs CPU)", r.rps, r.cpu_us)).collect();
            let _ = writeln!(out, "- {} consumers, {}: {}", set.consumers, case.name, runs.join(", "));
        }
    }
    let _ = writeln!(out, "\nConfiguration cost:\n");
    let _ = writeln!(
        out,
        "| consumers | bootstrap | Envoy start to ready | Envoy RSS | harness configure (one instance) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    for set in sets {
        let _ = writeln!(
            out,
            "| {} | {:.1} MB | {:.2} s | {} | {:.2} s |",
            set.consumers,
            set.bootstrap_bytes as f64 / 1e6,
            set.start_to_ready.as_secs_f64(),
            set.rss_kib.map_or("?".to_string(), |k| format!("{:.0} MB", k as f64 / 1024.0)),
            set.harness_configure.as_secs_f64()
        );
    }
    out
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    let started = SystemTime::now();
    let clock = Instant::now();
    let load_at_start = loadavg();
    if !settings.pin {
        eprintln!("bench: fewer than 2 CPUs: Envoy and wrk are not pinned, numbers are only indicative");
    }
    let mut sets: Vec<Set> = settings.consumer_counts.iter().map(|&n| start_set(n, &settings)).collect();
    if settings.warmup > 0 {
        for set in &sets {
            for case in cases() {
                eprintln!("bench: warm-up {} consumers, {}", set.consumers, case.name);
                wrk(&settings, settings.warmup, &set.envoy, case, set.consumers);
            }
        }
    }
    for round in 0..settings.runs {
        for set in &mut sets {
            for (i, case) in cases().iter().enumerate() {
                let run = wrk(&settings, settings.seconds, &set.envoy, case, set.consumers);
                eprintln!(
                    "bench: run {}/{} {} consumers, {}: {:.0} req/s, Envoy CPU {:.1} µs/req, p50 {}, p99 {}{}",
                    round + 1,
                    settings.runs,
                    set.consumers,
                    case.name,
                    run.rps,
                    run.cpu_us,
                    latency(run.p50_us),
                    latency(run.p99_us),
                    if run.socket_errors.is_empty() { String::new() } else { format!(" ({})", run.socket_errors) }
                );
                set.runs[i].push(run);
            }
        }
    }
    for set in &mut sets {
        if !set.envoy.is_running() {
            eprintln!("bench: Envoy ({} consumers) is no longer running", set.consumers);
            return ExitCode::FAILURE;
        }
    }
    let text = report(&sets, &settings, started, clock.elapsed(), (load_at_start, loadavg()));
    print!("{text}");
    let name = timestamp(started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
    match save_report(&settings.results_dir, &name, &text) {
        Ok(file) => eprintln!("bench: results in {}", file.display()),
        Err(e) => {
            eprintln!("bench: cannot write the report under {}: {e}", settings.results_dir.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

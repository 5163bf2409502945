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
//! list, default `10,100000`), `BENCH_RESULTS_DIR` (default `bench-results/` in the workspace).
//! Needs `wrk` on the PATH (`make bench` installs it), `ENVOY_BIN` and `CONSUMER_AUTH_WASM` (as
//! the e2e tests).

// a benchmark driver, not the filter: a failed setup or an answer it cannot read ends the run with
// its message.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use consumer_auth_e2e::bootstrap::FILTER_CONFIG;
use consumer_auth_e2e::envoy::{pin_to_cpu, Envoy};
use consumer_auth_e2e::http::Request;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const ENVOY_CPU: usize = 0;
const WRK_CPU: usize = 1;

struct Settings {
    seconds: u64,
    runs: usize,
    warmup: u64,
    connections: u32,
    consumer_counts: Vec<usize>,
    results_dir: std::path::PathBuf,
    pin: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value"))
        }
        _ => default,
    }
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
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Settings {
            seconds: env_or("BENCH_SECONDS", 5).max(1),
            runs: env_or("BENCH_RUNS", 3).max(1),
            warmup: env_or("BENCH_WARMUP", 1),
            connections: env_or("BENCH_CONNECTIONS", 10).max(1),
            consumer_counts,
            results_dir,
            pin: cpus >= 2,
        }
    }
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

const CASES: [Case; 8] = [
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

fn bootstrap(n: usize, instances: &[(&'static str, String)], wasm: &str, noop_wasm: &str) -> Value {
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
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    let routes: Vec<Value> = CASES
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
    json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "route_config": {
                            "name": "bench",
                            "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }]
                        },
                        "http_filters": http_filters
                    }
                }] }]
            }]
        }
    })
}

// ---------------------------------------------------------------------------------------------
// wrk

#[derive(Debug, Clone)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: String,
    /// Envoy's CPU time (all its threads) per request during the run, in microseconds.
    cpu_us: f64,
}

/// `123.45us`, `1.20ms`, `2.00s` in microseconds.
fn micros(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(v) = text.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1_000.0)
    } else if let Some(v) = text.strip_suffix('m') {
        (v, 60_000_000.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1_000_000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(out: &str) -> Option<Run> {
    let mut run =
        Run { rps: 0.0, p50_us: 0.0, p99_us: 0.0, requests: 0, non_2xx: 0, socket_errors: String::new(), cpu_us: 0.0 };
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = micros(v),
            ["99%", v] => p99 = micros(v),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => run.non_2xx = n.parse().unwrap_or(u64::MAX),
            ["Socket", "errors:", ..] => run.socket_errors = line.to_string(),
            _ => {}
        }
    }
    run.rps = rps?;
    run.p50_us = p50?;
    run.p99_us = p99?;
    run.requests = requests?;
    Some(run)
}

/// CPU time of every thread of process `pid` so far, in nanoseconds (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn wrk(settings: &Settings, seconds: u64, envoy: &Envoy, case: &Case, n: usize) -> Run {
    let port = envoy.port;
    let mut cmd = Command::new("wrk");
    cmd.arg("-t1").arg(format!("-c{}", settings.connections)).arg(format!("-d{seconds}s")).arg("--latency");
    for (name, value) in case.headers(n) {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    cmd.arg(format!("http://127.0.0.1:{port}{}", case.path));
    if settings.pin {
        // SAFETY: pin_to_cpu only calls sched_setaffinity (async-signal-safe).
        unsafe {
            cmd.pre_exec(|| pin_to_cpu(WRK_CPU));
        }
    }
    let cpu_before = cpu_ns(envoy.pid());
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk ({e}): install it (`make bench` does: apt-get install -y wrk)"));
    let cpu = cpu_ns(envoy.pid()).saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut run = parse_wrk(&stdout).unwrap_or_else(|| panic!("cannot parse wrk's output:\n{stdout}"));
    run.cpu_us = cpu as f64 / 1000.0 / run.requests.max(1) as f64;
    let expected_non_2xx = if case.status == 200 { 0 } else { run.requests };
    assert_eq!(
        run.non_2xx, expected_non_2xx,
        "{} ({n} consumers): {} of {} responses were not 2xx/3xx (expected {expected_non_2xx}):\n{stdout}",
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
    for case in &CASES {
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
    let config = bootstrap(n, &instances, &wasm, &noop.display().to_string());
    let bootstrap_bytes = serde_json::to_vec(&config).map(|v| v.len()).unwrap_or(0);
    let start = Instant::now();
    let envoy = Envoy::start_json(&config, settings.pin.then_some(ENVOY_CPU), Duration::from_secs(600))
        .unwrap_or_else(|f| panic!("Envoy ({n} consumers) did not start ({:?}); its log:\n{}", f.status, f.log));
    let start_to_ready = start.elapsed();
    let _ = std::fs::remove_file(&noop);
    eprintln!("bench: Envoy with {n} consumers ready in {:.2} s on port {}", start_to_ready.as_secs_f64(), envoy.port);
    // Every route answers as expected, and every filtered route refuses a request without a
    // credential (the filter really is on the route).
    for case in &CASES {
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
        runs: CASES.iter().map(|_| Vec::new()).collect(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn latency(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn command_output(cmd: &mut Command) -> String {
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_string();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let envoy = command_output(Command::new(consumer_auth_e2e::envoy_bin()).arg("--version"));
    let envoy = envoy.split("version:").nth(1).unwrap_or(&envoy).trim().to_string();
    let wrk = command_output(Command::new("wrk").arg("--version"));
    let wrk = wrk.lines().next().unwrap_or("").split(" [").next().unwrap_or("").to_string();
    format!("{nproc} CPUs ({model}); Envoy {envoy}; {wrk}")
}

/// `YYYY-MM-DDTHH-MM-SSZ` (UTC) for `secs` since the epoch.
fn timestamp(secs: u64) -> String {
    let rem = secs % 86_400;
    let (year, month, day) = consumer_auth_e2e::clients::civil_from_days((secs / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
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
        for (i, case) in CASES.iter().enumerate() {
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
    let _ = writeln!(out, "\nPer-run req/s and Envoy CPU per request (in run order):\n");
    for set in sets {
        for (i, case) in CASES.iter().enumerate() {
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
            for case in &CASES {
                eprintln!("bench: warm-up {} consumers, {}", set.consumers, case.name);
                wrk(&settings, settings.warmup, &set.envoy, case, set.consumers);
            }
        }
    }
    for round in 0..settings.runs {
        for set in &mut sets {
            for (i, case) in CASES.iter().enumerate() {
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
    let file = settings
        .results_dir
        .join(format!("{}.md", timestamp(started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())));
    match std::fs::create_dir_all(&settings.results_dir).and_then(|()| std::fs::write(&file, &text)) {
        Ok(()) => eprintln!("bench: results in {}", file.display()),
        Err(e) => {
            eprintln!("bench: cannot write {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let out = "Running 1s test @ http://127.0.0.1:1/x\n  1 threads and 10 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   302.00us  100.00us   4.00ms   90.00%\n  Latency Distribution\n     50%  280.00us\n     75%  300.00us\n     90%  350.00us\n     99%    1.20ms\n  12345 requests in 1.00s, 1.00MB read\n  Non-2xx or 3xx responses: 12345\nRequests/sec:  12345.67\nTransfer/sec:      1.00MB\n";
        let run = parse_wrk(out).expect("parsed");
        assert_eq!((run.requests, run.non_2xx), (12345, 12345));
        assert!((run.rps - 12345.67).abs() < 1e-6);
        assert!((run.p50_us - 280.0).abs() < 1e-6 && (run.p99_us - 1200.0).abs() < 1e-6);
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01T00-00-00Z");
        assert_eq!(timestamp(1_709_210_096), "2024-02-29T12-34-56Z");
    }
}

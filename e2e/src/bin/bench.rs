//! `make bench`: requests per second and latency through the real Envoy (V8), side by side:
//! no filter, an empty wasm filter (the floor), Envoy's native `api_key_auth` and `basic_auth`, and
//! consumer-auth on every path a request takes (key-auth, basic-auth, key-auth OR basic-auth, jwt
//! with a repeated token, hmac-auth, 401 without a key and with a wrong one, 403 from acl, 429
//! from rate-limiting), with 10 and with 100,000 consumers.
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
//! `BENCH_BASELINE_WASM` (another build of the filter, e.g. the previous commit's: every
//! consumer-auth case runs in the same Envoy with that build too, in its own VM, interleaved with
//! this build's; the report gives both builds' host calls and +CPU per case, as ratios to the
//! empty wasm filter's +CPU of the same run).
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
            let mut consumer = json!({
                "username": format!("consumer-{i:06}"),
                "keyauth_credentials": [{ "key": key(i) }],
                "basicauth_credentials": [{ "username": basic_user(i), "password": password(i) }]
            });
            // the consumer requests use also has a jwt secret, an hmac-auth user and a group
            if i + 1 == n {
                consumer["jwt_secrets"] = json!([{ "key": JWT_KEY, "algorithm": "HS256", "secret": JWT_SECRET }]);
                consumer["hmacauth_credentials"] = json!([{ "username": HMAC_USER, "secret": HMAC_SECRET }]);
                consumer["acls"] = json!([{ "group": "blocked" }]);
            }
            consumer
        })
        .collect();
    consumers.push(json!({ "username": "anonymous" }));
    serde_json::to_string(&consumers).expect("serialise")
}

const JWT_KEY: &str = "bench-issuer";
const JWT_SECRET: &str = "bench-jwt-secret";
const HMAC_USER: &str = "bench-hmac-user";
const HMAC_SECRET: &str = "bench-hmac-secret";

/// One HS256 token for the whole run (the jwt case repeats it: the verified-token cache's path).
fn jwt_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| consumer_auth_e2e::clients::hs256_jwt(JWT_KEY, JWT_SECRET, now() + 10 * 365 * 86_400))
}

/// The `Date` and `Authorization` of the hmac-auth case, signed once (the plugin's `clock_skew`
/// is set wide enough for the whole run).
fn hmac_headers() -> &'static (String, String) {
    static HEADERS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    HEADERS.get_or_init(|| {
        let date = consumer_auth_e2e::clients::http_date(now());
        let signature = base64::engine::general_purpose::STANDARD
            .encode(consumer_auth_e2e::clients::hmac_sha256(HMAC_SECRET, format!("date: {date}")));
        let authorization =
            format!(r#"hmac username="{HMAC_USER}", algorithm="hmac-sha256", headers="date", signature="{signature}""#);
        (date, authorization)
    })
}

fn now() -> u64 {
    consumer_auth_e2e::clients::now()
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
        ("ca_jwt", document(&consumers, &json!([{ "name": "jwt" }]))),
        ("ca_hmac", document(&consumers, &json!([{ "name": "hmac-auth", "config": { "clock_skew": 1e9 } }]))),
        (
            "ca_acl",
            document(
                &consumers,
                &json!([{ "name": "key-auth" }, { "name": "acl", "config": { "deny": ["blocked"] } }]),
            ),
        ),
        // one request a year: every request after the first is refused, whatever the clock does
        (
            "ca_rl",
            document(
                &consumers,
                &json!([{ "name": "key-auth" }, { "name": "rate-limiting", "config": { "year": 1 } }]),
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
    /// One request before the checks (the 429 case: the year's one allowed request).
    prime: bool,
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
    WrongKey,
    Basic,
    Jwt,
    Hmac,
}

const BUILD_CASES: [Case; 13] = [
    Case {
        prime: false,
        name: "no filter",
        path: "/none",
        filter: None,
        consumer_auth: None,
        credential: Credential::None,
        status: 200,
        without_credential: 200,
    },
    Case {
        prime: false,
        name: FLOOR,
        path: "/wasm-noop",
        filter: Some("wasm_noop"),
        consumer_auth: None,
        credential: Credential::None,
        status: 200,
        without_credential: 200,
    },
    Case {
        prime: false,
        name: "Envoy api_key_auth",
        path: "/native-key",
        filter: Some("native_api_key_auth"),
        consumer_auth: None,
        credential: Credential::Key,
        status: 200,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "Envoy basic_auth",
        path: "/native-basic",
        filter: Some("native_basic_auth"),
        consumer_auth: None,
        credential: Credential::Basic,
        status: 200,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth key-auth",
        path: "/ca-key",
        filter: Some("ca_key"),
        consumer_auth: Some("ca_key"),
        credential: Credential::Key,
        status: 200,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth basic-auth",
        path: "/ca-basic",
        filter: Some("ca_basic"),
        consumer_auth: Some("ca_basic"),
        credential: Credential::Basic,
        status: 200,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth key OR basic (basic)",
        path: "/ca-or",
        filter: Some("ca_or"),
        consumer_auth: Some("ca_or"),
        credential: Credential::Basic,
        status: 200,
        without_credential: 200,
    },
    Case {
        prime: false,
        name: "consumer-auth jwt (repeated token)",
        path: "/ca-jwt",
        filter: Some("ca_jwt"),
        consumer_auth: Some("ca_jwt"),
        credential: Credential::Jwt,
        status: 200,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth hmac-auth",
        path: "/ca-hmac",
        filter: Some("ca_hmac"),
        consumer_auth: Some("ca_hmac"),
        credential: Credential::Hmac,
        status: 200,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth 401 (no key)",
        path: "/ca-key-401",
        filter: Some("ca_key"),
        consumer_auth: Some("ca_key"),
        credential: Credential::None,
        status: 401,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth 401 (wrong key)",
        path: "/ca-key-401-wrong",
        filter: Some("ca_key"),
        consumer_auth: Some("ca_key"),
        credential: Credential::WrongKey,
        status: 401,
        without_credential: 401,
    },
    Case {
        prime: false,
        name: "consumer-auth 403 (acl)",
        path: "/ca-acl",
        filter: Some("ca_acl"),
        consumer_auth: Some("ca_acl"),
        credential: Credential::Key,
        status: 403,
        without_credential: 401,
    },
    Case {
        prime: true,
        name: "consumer-auth 429 (rate-limiting)",
        path: "/ca-rl",
        filter: Some("ca_rl"),
        consumer_auth: Some("ca_rl"),
        credential: Credential::Key,
        status: 429,
        without_credential: 401,
    },
];

/// The baseline build's twin of each consumer-auth case (`BENCH_BASELINE_WASM`): the same
/// configuration and requests, served by that build's instance `base_<instance>` in a VM of its
/// own, on `/base<path>`.
fn baseline_twin(case: &Case) -> Option<Case> {
    let instance = case.consumer_auth?;
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    Some(Case {
        name: leak(format!("baseline build {}", case.name.trim_start_matches("consumer-auth "))),
        path: leak(format!("/base{}", case.path)),
        filter: Some(leak(format!("base_{instance}"))),
        ..*case
    })
}

/// The empty wasm filter's case: what any wasm filter costs per request.
const FLOOR: &str = "empty wasm filter (floor)";

/// Every case of this invocation: this build's, then the baseline's twins when there is one.
fn cases() -> &'static [Case] {
    static ALL: std::sync::OnceLock<Vec<Case>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let baseline: Vec<Case> =
            if baseline_wasm().is_some() { BUILD_CASES.iter().filter_map(baseline_twin).collect() } else { vec![] };
        BUILD_CASES.iter().copied().chain(baseline).collect()
    })
}

/// Whether `case` is a baseline twin (served by the baseline build).
fn is_baseline(case: &Case) -> bool {
    case.filter.is_some_and(|f| f.starts_with("base_"))
}

impl Case {
    fn headers(&self, n: usize) -> Vec<(&'static str, String)> {
        match self.credential {
            Credential::None => vec![],
            Credential::Key => vec![("apikey", key(n - 1))],
            Credential::WrongKey => vec![("apikey", format!("{}-wrong", key(n - 1)))],
            Credential::Basic => vec![("authorization", authorization(n - 1))],
            Credential::Jwt => vec![("authorization", format!("Bearer {}", jwt_token()))],
            Credential::Hmac => {
                let (date, authorization) = hmac_headers();
                vec![("date", date.clone()), ("authorization", authorization.clone())]
            }
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
        for (name, config) in instances {
            let mut entry = wasm_filter(&format!("base_{name}"), config, baseline);
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

fn host_calls(
    instances: &[(&'static str, String)],
    n: usize,
    baseline: Option<&std::path::Path>,
) -> (BTreeMap<&'static str, HostCalls>, Duration) {
    let wasm = consumer_auth_e2e::filter_wasm();
    let mut out = BTreeMap::new();
    let mut configure_time = Duration::ZERO;
    for case in cases() {
        let Some(instance) = case.consumer_auth else { continue };
        let config = &instances.iter().find(|(name, _)| *name == instance).expect("instance").1;
        let wasm = match (is_baseline(case), baseline) {
            (true, Some(baseline)) => baseline,
            _ => wasm.as_path(),
        };
        let mut host = proxy_wasm_harness::Host::load(wasm).expect("load the filter into the harness");
        // Count what the filter does on Envoy (it tells Envoy from Kong by this property).
        host.set_property("xds.node", b"\x0a\x04node");
        let start = Instant::now();
        let filter = host.configure(config).unwrap_or_else(|e| panic!("the harness refused {instance}: {e}"));
        configure_time = configure_time.max(start.elapsed());
        // As Envoy hands it over: with the `x-request-id` it generated (its `request.id`).
        let mut request = proxy_wasm_harness::Request::get(case.path)
            .header("x-request-id", "bench-request-id")
            .request_id(Some("bench-request-id"));
        for (name, value) in case.headers(n) {
            request = request.header(name, &value);
        }
        // As Envoy at its default log level.
        host.set_log_level(proxy_wasm_harness::LogLevel::Info);
        // The first requests of an instance may do one-time work (the 429 case: the year's one
        // request; the host's log level, asked once per tick); count the third.
        let _ = host.send(&[filter], request.clone());
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
        if case.prime {
            let _ = req.clone().send(envoy.port);
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
    let (host_calls, harness_configure) = host_calls(&instances, n, settings.baseline.as_deref());
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
    let _ = writeln!(
        out,
        "\nPer path: host calls per request and +CPU, and +CPU as a multiple of the empty wasm filter's \
         (the floor) in the same run{}:\n",
        match &settings.baseline {
            Some(b) => format!("; this build against the baseline build ({}), same Envoy, same requests", b.display()),
            None => String::new(),
        }
    );
    let _ = writeln!(
        out,
        "| consumers | path | host calls | +CPU | × floor | baseline host calls | baseline +CPU | baseline × floor | +CPU / baseline |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for set in sets {
        let none_cpu = median(set.runs[0].iter().map(|r| r.cpu_us).collect());
        let plus_cpu = |name: &str| {
            let i = cases().iter().position(|c| c.name == name).expect("case");
            median(set.runs[i].iter().map(|r| r.cpu_us).collect()) - none_cpu
        };
        let floor = plus_cpu(FLOOR);
        let times = |cpu: f64| if floor > 0.0 { format!("{:.2}", cpu / floor) } else { "–".into() };
        let calls = |name: &str| set.host_calls.get(name).map_or("–".to_string(), |h| h.total.to_string());
        for case in BUILD_CASES.iter().filter(|c| c.consumer_auth.is_some()) {
            let cpu = plus_cpu(case.name);
            let (base_calls, base_cpu, base_times, ratio) =
                match baseline_twin(case).and_then(|twin| cases().iter().find(|c| c.path == twin.path)) {
                    Some(twin) => {
                        let base = plus_cpu(twin.name);
                        (
                            calls(twin.name),
                            format!("{base:+.1} µs"),
                            times(base),
                            if base > 0.0 { format!("{:.2}", cpu / base) } else { "–".into() },
                        )
                    }
                    None => ("–".into(), "–".into(), "–".into(), "–".into()),
                };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {cpu:+.1} µs | {} | {base_calls} | {base_cpu} | {base_times} | {ratio} |",
                set.consumers,
                case.name,
                calls(case.name),
                times(cpu),
            );
        }
        let _ =
            writeln!(out, "| {} | (the floor: empty wasm filter) | – | {floor:+.1} µs | 1.00 | | | | |", set.consumers);
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

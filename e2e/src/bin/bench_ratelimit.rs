//! `make bench-ratelimit`: what rate-limiting's `policy: redis` costs, in one run.
//!
//! 1. **The filter through Envoy**: Envoy's CPU per request (all its threads) for key-auth +
//!    rate-limiting with `policy: local`, `policy: redis` synchronous (one call to the front per
//!    request) and `policy: redis` with `sync_rate: 0.1`, as ratios to `local`. One Envoy
//!    (`--concurrency 1`, pinned to CPU 0 when there are two), wrk `-t1` pinned to CPU 1,
//!    `direct_response` routes, limits high enough that nothing is refused; the front
//!    (`consumer-auth-ratelimit`, a process of its own) and Redis run unpinned. A warm-up per
//!    case, then `BENCH_RUNS` rounds over all cases; medians.
//! 2. **The front against Debian's `webdis`** on the same Redis: the same two-key count (Kong's
//!    script per key; for webdis one `EVALSHA` of a multi-key form of it, webdis runs one
//!    command per request) straight from wrk: requests/s, latency, and CPU per request of the
//!    front process and of webdis, and of Redis behind each.
//!
//! Environment: `BENCH_SECONDS` (per run, default 5), `BENCH_RUNS` (default 3),
//! `BENCH_CONNECTIONS` (default 10), `BENCH_RESULTS_DIR`; needs `CONSUMER_AUTH_REDIS_URL` (`make
//! redis-server`), `CONSUMER_AUTH_RATELIMIT_BIN` (the front's binary), `wrk`, `webdis`,
//! `redis-cli`, `ENVOY_BIN`, `CONSUMER_AUTH_WASM`.

// a benchmark driver, not the filter: a failed setup or an answer it cannot read ends the run with
// its message.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consumer_auth_e2e::bootstrap::{static_cluster, FILTER_CONFIG};
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE};
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::measure::{
    bench_bootstrap, can_pin, cpu_ns, env_or, latency, loadavg, machine, median, save_report, timestamp, Load, Run,
    PROXY_CPU,
};
use consumer_auth_e2e::redis_front::{free_port, redis_cli, shared_redis_url, TOKEN};
use serde_json::{json, Value};

/// A count for every request of the bench: nothing is refused.
const HIGH: u64 = 1_000_000_000_000;

struct Case {
    name: &'static str,
    path: &'static str,
    limits: Value,
}

fn cases() -> Vec<Case> {
    let front = json!({"upstream": "ratelimit_front", "token": TOKEN, "timeout": 2000});
    vec![
        Case { name: "local", path: "/local", limits: json!({"hour": HIGH}) },
        Case {
            name: "redis (sync)",
            path: "/redis",
            limits: json!({"hour": HIGH, "policy": "redis", "redis": front.clone()}),
        },
        Case {
            name: "redis (sync_rate 0.1)",
            path: "/redis-sync-rate",
            limits: json!({"hour": HIGH, "policy": "redis", "sync_rate": 0.1, "redis": front}),
        },
    ]
}

/// A child process stopped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on {port}");
}

fn start_front(redis: &str, dir: &std::path::Path) -> (Process, u16) {
    let bin = std::env::var("CONSUMER_AUTH_RATELIMIT_BIN")
        .expect("CONSUMER_AUTH_RATELIMIT_BIN: the front's binary (make bench-ratelimit builds it)");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .env("CONSUMER_AUTH_RATELIMIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("CONSUMER_AUTH_REDIS_URL", redis)
        .env("CONSUMER_AUTH_RATELIMIT_TOKEN_FILE", &token_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("start the front");
    wait_for_port(port, "the front");
    (Process(child), port)
}

fn start_webdis(redis_port: u16, dir: &std::path::Path) -> (Process, u16) {
    let port = free_port();
    let config = dir.join("webdis.json");
    // Only EVALSHA, only with the credentials: the closest webdis comes to the front's token.
    let settings = json!({
        "redis_host": "127.0.0.1", "redis_port": redis_port, "http_host": "127.0.0.1", "http_port": port,
        "threads": 2, "pool_size": 10, "daemonize": false, "database": 0, "verbosity": 1,
        "logfile": dir.join("webdis.log"),
        "acl": [{"disabled": ["*"]}, {"http_basic_auth": "bench:secret", "enabled": ["EVALSHA"]}]
    });
    std::fs::write(&config, settings.to_string()).unwrap();
    let child =
        Command::new("webdis").arg(&config).spawn().expect("webdis (Debian's; make bench-ratelimit installs it)");
    wait_for_port(port, "webdis");
    (Process(child), port)
}

fn redis_pid(url: &str) -> u32 {
    let info = redis_cli(url, &["INFO", "server"]);
    info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse().ok()).expect("redis pid")
}

fn envoy_bootstrap(front_port: u16) -> Value {
    let wasm = consumer_auth_e2e::filter_wasm().display().to_string();
    let mut filters = Vec::new();
    let mut routes = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let name = format!("rl_{i}");
        let doc = instance(json!([plugin("key-auth", json!({})), plugin("rate-limiting", case.limits.clone())]));
        filters.push(consumer_auth_e2e::bootstrap::wasm_filter_entry(&name, &doc.to_string(), "FAIL_CLOSED", &wasm));
        routes.push(json!({
            "match": { "path": case.path },
            "direct_response": { "status": 200, "body": { "inline_string": "ok\n" } },
            "typed_per_filter_config": { name: { "@type": FILTER_CONFIG, "config": {} } }
        }));
    }
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    let mut bootstrap = bench_bootstrap(routes, filters);
    bootstrap["static_resources"]["clusters"] = json!([static_cluster("ratelimit_front", front_port)]);
    bootstrap
}

fn lua(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5).max(1);
    let runs: usize = env_or("BENCH_RUNS", 3).max(1);
    let connections: u32 = env_or("BENCH_CONNECTIONS", 10).max(1);
    let pin = can_pin();
    let redis = shared_redis_url();
    let redis_port: u16 = redis.rsplit(':').next().and_then(|p| p.parse().ok()).expect("redis://host:port");
    let dir = std::env::temp_dir().join(format!("consumer-auth-bench-ratelimit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let load_before = loadavg();
    let (front, front_port) = start_front(&redis, &dir);

    // 1. the filter through Envoy
    let envoy = Envoy::start_json(&envoy_bootstrap(front_port), pin.then_some(PROXY_CPU), Duration::from_secs(120))
        .unwrap_or_else(|f| panic!("Envoy did not start ({:?}):\n{}", f.status, f.log));
    for case in cases() {
        let r = Request::get(case.path).header("apikey", ALICE.key()).send(envoy.port);
        assert_eq!(r.status, 200, "{}: {}", case.name, r.text());
        assert!(r.header("ratelimit-limit").is_some(), "{}: counted", case.name);
    }
    let run = |case: &Case, seconds: u64| -> Run {
        let mut load = Load::new(envoy.port, case.path, seconds);
        load.headers = vec![("apikey".into(), ALICE.key().to_string())];
        load.connections = connections;
        load.pin = pin;
        load.proxy_pid = Some(envoy.pid());
        let run = consumer_auth_e2e::measure::wrk(&load);
        assert_eq!(run.non_2xx, 0, "{}: {} refused or failed", case.name, run.non_2xx);
        run
    };
    for case in cases() {
        run(&case, 1);
    }
    let mut results: Vec<Vec<Run>> = cases().iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        for (i, case) in cases().iter().enumerate() {
            let r = run(case, seconds);
            eprintln!("round {round}: {}: {:.0} req/s, {:.1} us CPU/request", case.name, r.rps, r.cpu_us);
            results[i].push(r);
        }
    }
    drop(envoy);

    // 2. the front against webdis, the same two-key count on the same Redis
    let (webdis, webdis_port) = start_webdis(redis_port, &dir);
    let script = "local out = {} for i, k in ipairs(KEYS) do local r = redis.call('incr', k) \
                  if r == 1 then redis.call('expire', k, ARGV[i]) end out[i] = r - 1 end return out";
    let sha = redis_cli(&redis, &["SCRIPT", "LOAD", script]);
    let keys = ["ratelimit:bench:front:minute", "ratelimit:bench:front:hour"];
    let front_lua = lua(
        &dir,
        "front.lua",
        &format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {TOKEN}\"\n\
             wrk.body = '{{\"keys\":[{{\"key\":\"{}\",\"ttl\":60}},{{\"key\":\"{}\",\"ttl\":3600}}]}}'\n",
            keys[0], keys[1]
        ),
    );
    let webdis_path = format!("/EVALSHA/{sha}/2/{}/{}/60/3600", keys[0], keys[1]);
    let redis_pid = redis_pid(&redis);
    let mut fronts: Vec<(f64, f64, f64, f64)> = Vec::new(); // rps, p50, cpu/req, redis cpu/req
    let mut webdises: Vec<(f64, f64, f64, f64)> = Vec::new();
    for round in 0..=runs {
        let secs = if round == 0 { 1 } else { seconds };
        for (which, port, out) in [("front", front_port, &mut fronts), ("webdis", webdis_port, &mut webdises)] {
            let pid = if which == "front" { front.0.id() } else { webdis.0.id() };
            let mut load =
                Load::new(port, if which == "front" { "/v1/ratelimit/incr" } else { webdis_path.as_str() }, secs);
            load.connections = connections;
            load.pin = false;
            load.proxy_pid = Some(pid);
            if which == "front" {
                load.script = Some((front_lua.clone(), Vec::new()));
            } else {
                load.headers = vec![("authorization".into(), "Basic YmVuY2g6c2VjcmV0".into())];
            }
            let redis_before = cpu_ns(redis_pid);
            let r = consumer_auth_e2e::measure::wrk(&load);
            let redis_us = cpu_ns(redis_pid).saturating_sub(redis_before) as f64 / 1000.0 / r.requests.max(1) as f64;
            assert_eq!(r.non_2xx, 0, "{which}: {} failed", r.non_2xx);
            if round > 0 {
                eprintln!(
                    "round {round}: {which}: {:.0} req/s, {:.1} us CPU/request (Redis {redis_us:.1})",
                    r.rps, r.cpu_us
                );
                out.push((r.rps, r.p50_us, r.cpu_us, redis_us));
            }
        }
    }
    let load_after = loadavg();
    drop(webdis);
    drop(front);
    let _ = std::fs::remove_dir_all(&dir);

    // the report
    let mut text = String::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let _ = writeln!(text, "# bench-ratelimit {}\n", timestamp(now));
    let _ =
        writeln!(text, "{}; load average {load_before} before, {load_after} after (the machine is shared).", machine());
    let _ = writeln!(
        text,
        "Envoy `--concurrency 1`{}; wrk `-t1 -c{connections}`; {runs} rounds of {seconds} s; medians.\n",
        if pin { " pinned to CPU 0, wrk to CPU 1" } else { "" }
    );
    let _ = writeln!(text, "| rate-limiting | req/s | p50 | Envoy CPU/request | × local |");
    let _ = writeln!(text, "|---|---|---|---|---|");
    let local_cpu = median(results[0].iter().map(|r| r.cpu_us).collect());
    for (case, runs) in cases().iter().zip(&results) {
        let cpu = median(runs.iter().map(|r| r.cpu_us).collect());
        let _ = writeln!(
            text,
            "| {} | {:.0} | {} | {cpu:.1} µs | {:.2} |",
            case.name,
            median(runs.iter().map(|r| r.rps).collect()),
            latency(median(runs.iter().map(|r| r.p50_us).collect())),
            cpu / local_cpu
        );
    }
    let _ = writeln!(text, "\n| front (2 keys per call) | req/s | p50 | its CPU/request | Redis CPU/request |");
    let _ = writeln!(text, "|---|---|---|---|---|");
    for (name, rows) in [("consumer-auth-ratelimit", &fronts), ("webdis (EVALSHA)", &webdises)] {
        let _ = writeln!(
            text,
            "| {name} | {:.0} | {} | {:.1} µs | {:.1} µs |",
            median(rows.iter().map(|r| r.0).collect()),
            latency(median(rows.iter().map(|r| r.1).collect())),
            median(rows.iter().map(|r| r.2).collect()),
            median(rows.iter().map(|r| r.3).collect()),
        );
    }
    print!("{text}");
    let results_dir = std::env::var_os("BENCH_RESULTS_DIR")
        .filter(|d| !d.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| consumer_auth_e2e::workspace_root().join("bench-results"));
    if let Ok(file) = save_report(&results_dir, &format!("{}-ratelimit", timestamp(now)), &text) {
        eprintln!("report: {}", file.display());
    }
}

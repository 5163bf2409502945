//! `make bench-store`: the shared consumer store at scale, through the real Envoy (V8).
//!
//! For each consumer count N (one key-auth and one basic-auth credential per consumer), one Envoy
//! (`--concurrency 1`, pinned to CPU 0; wrk pinned to CPU 1) whose singleton bootstrap service
//! polls a remote source every second (`e2e/src/source.rs`, the realistic path for a large
//! population), and whose routes (`direct_response`, no upstream) read the store:
//!
//! - load time: from the moment the source serves the document to the first request that
//!   authenticates with a key of it (and from the fetch that got the document, which leaves out
//!   up to one refresh period of waiting for the next tick); the same for a second document (a
//!   new generation while the first one is served);
//! - memory: Envoy's VmRSS over the same Envoy's RSS before anything was loaded, divided by N,
//!   after the first and after the second generation, and the part of it that is Envoy's own heap
//!   (`/memory` `allocated`: shared data included, the wasm VMs' linear memory not); VmHWM (peak);
//! - throughput: wrk on key-auth and basic-auth, requests rotating over 1,000 consumers spread
//!   over the population, median of `BENCH_RUNS` runs, as a ratio to the same case with 10
//!   consumers in the same invocation: that reference Envoy keeps serving, and its runs alternate
//!   with each population's (key, reference key, basic, reference basic, …), so that the drift of
//!   a shared machine cancels out of the ratio.
//!
//! Environment: `BENCH_STORE_CONSUMERS` (comma list, default `10,100000,1000000`; the first is
//! the reference for the ratios), `BENCH_SECONDS` (default 5), `BENCH_RUNS` (default 3),
//! `BENCH_CONNECTIONS` (default 10), `BENCH_RESULTS_DIR` (default `bench-results/`). Needs `wrk`,
//! `ENVOY_BIN` and `CONSUMER_AUTH_WASM` (as the e2e tests).

// a benchmark driver, not the filter: a failed setup or an answer it cannot read ends the run with
// its message.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::measure::{env_or, median, Load, PROXY_CPU as ENVOY_CPU};
use consumer_auth_e2e::source::DocumentServer;
use serde_json::{json, Value};

/// Distinct consumers the wrk requests rotate over.
const ROTATION: usize = 1000;
/// `http.async_response_buffer_limit` (Envoy's default: 32 MiB).
const RESPONSE_LIMIT: u64 = 1 << 30;
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

fn key(i: usize) -> String {
    format!("store-key-{i:07}")
}

fn basic_user(i: usize) -> String {
    format!("store-user-{i:07}")
}

fn authorization(i: usize) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:pw-{i:07}", basic_user(i)));
    format!("Basic {token}")
}

/// The key of generation `generation`'s marker consumer (the last one): only that generation
/// has it.
fn marker(generation: u32) -> String {
    format!("store-marker-g{generation}")
}

/// `{"consumers": [...]}` with `n` consumers (the last one is the generation's marker), as text.
fn document(n: usize, generation: u32) -> Vec<u8> {
    let mut out = String::with_capacity(n * 170 + 64);
    out.push_str("{\"consumers\":[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let k = if i + 1 == n { marker(generation) } else { key(i) };
        let _ = write!(
            out,
            "{{\"username\":\"consumer-{i:07}\",\"keyauth_credentials\":[{{\"key\":\"{k}\"}}],\
             \"basicauth_credentials\":[{{\"username\":\"{}\",\"password\":\"pw-{i:07}\"}}]}}",
            basic_user(i)
        );
    }
    out.push_str("]}");
    out.into_bytes()
}

fn bootstrap(source_port: u16) -> Value {
    let reader = |plugin: &str| json!({ "consumer_store": "main", "plugins": [{ "name": plugin }] });
    let mut b = Bootstrap::new(9) // no upstream: direct_response below
        .route("/key", [reader("key-auth")])
        .route("/basic", [reader("basic-auth")])
        .static_cluster("consumer_source", source_port)
        .store_service(json!({ "store": { "name": "main", "source": {
            "upstream": "consumer_source", "path": "/consumers.json", "refresh_seconds": 1, "timeout_ms": 120000
        } } }))
        .to_json();
    let routes = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes");
    for r in routes {
        let r = r.as_object_mut().expect("route");
        r.remove("route");
        r.insert("direct_response".into(), json!({ "status": 200, "body": { "inline_string": "ok" } }));
    }
    // Envoy drops an http call's response beyond 32 MiB (the call fails); 1,000,000 consumers are
    // ~170 MB of JSON.
    b["layered_runtime"] = json!({ "layers": [{ "name": "static", "static_layer": {
        "http.async_response_buffer_limit": RESPONSE_LIMIT
    } }] });
    // Return memory Envoy's allocator has freed (the fetched document, a replaced generation) to
    // the system, as an operator of a large store would (docs/CONSUMER_STORE.md).
    b["memory_allocator_manager"] = json!({ "bytes_to_release": 1u64 << 30, "memory_release_interval": "1s" });
    b
}

/// Bytes Envoy's allocator has handed out (`/memory` `allocated`): Envoy's own heap, shared data
/// included, but not the wasm VMs' linear memory (V8 maps that itself).
fn heap_kib(envoy: &Envoy) -> u64 {
    let memory = envoy.admin("/memory").json();
    eprintln!("   /memory: {memory}");
    memory["allocated"].as_str().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Serve generation `generation` and wait until a request with its marker key authenticates:
/// (from the document being served, from the fetch that got it); `Err` with the filter's error
/// lines if it is not served within `LOAD_TIMEOUT`.
fn load(envoy: &Envoy, source: &DocumentServer, n: usize, generation: u32) -> Result<(Duration, Duration), String> {
    let body = document(n, generation);
    let fetches_before = source.fetches().len();
    let start = Instant::now();
    source.set_document(body);
    let probe = Request::get("/key").header("apikey", &marker(generation));
    loop {
        let status = probe.try_send_within(envoy.port, Duration::from_secs(120)).map(|r| r.status).unwrap_or(0);
        if status == 200 {
            break;
        }
        if start.elapsed() > LOAD_TIMEOUT {
            let log = envoy.log();
            // the filter's error lines, without Envoy's prefixes
            let errors: String = log
                .lines()
                .filter(|l| l.contains("][error][") || l.contains("fetch failed") && !l.contains("status 503"))
                .take(8)
                .map(|l| l.rsplit_once("consumer_auth: ").or_else(|| l.rsplit_once("] ")).map_or(l, |(_, m)| m))
                .collect();
            return Err(format!("not served after {LOAD_TIMEOUT:?} (last status {status}): {errors}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let served = Instant::now();
    let fetched = source.fetches()[fetches_before..]
        .iter()
        .find(|f| f.status == 200)
        .map(|f| served.duration_since(f.at))
        .unwrap_or_default();
    Ok((served.duration_since(start), fetched))
}

/// A wrk Lua script rotating requests over `ROTATION` consumers spread over the population.
fn script(path: &str, n: usize, header: &str, value: impl Fn(usize) -> String) -> std::path::PathBuf {
    let step = (n.saturating_sub(1) / ROTATION).max(1);
    let values: Vec<String> =
        (0..n.saturating_sub(1)).step_by(step).take(ROTATION).map(|i| format!("{:?}", value(i))).collect();
    let lua = format!(
        "local values = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  \
         return wrk.format(\"GET\", \"{path}\", {{[\"{header}\"] = values[(i % #values) + 1]}})\nend\n",
        values.join(",")
    );
    let file = std::env::temp_dir().join(format!("bench-store-{}-{}-{n}.lua", std::process::id(), &path[1..]));
    std::fs::write(&file, lua).expect("write the wrk script");
    file
}

/// Requests per second of one wrk run; every answer must be a 200.
fn wrk(port: u16, script: &std::path::Path, seconds: u64, connections: u32, pin: bool) -> f64 {
    let mut load = Load::new(port, "/", seconds);
    load.script = Some((script.to_path_buf(), Vec::new()));
    load.connections = connections;
    load.pin = pin;
    let run = consumer_auth_e2e::measure::wrk(&load);
    assert_eq!(run.non_2xx, 0, "not every answer was a 200 ({} of {})", run.non_2xx, run.requests);
    run.rps
}

struct Row {
    n: usize,
    doc_mb: f64,
    records: String,
    first: (Duration, Duration),
    second: (Duration, Duration),
    base_kib: u64,
    rss1_kib: u64,
    rss2_kib: u64,
    hwm_kib: u64,
    heap_base_kib: u64,
    heap1_kib: u64,
    heap2_kib: u64,
    key_rps: f64,
    basic_rps: f64,
    /// The reference store's req/s in runs alternated with this row's (the ratio's baseline).
    paired: Option<(f64, f64)>,
    /// Why the first generation was not served.
    failure: Option<String>,
}

impl Row {
    fn failed(n: usize, doc_mb: f64, base_kib: u64, rss_kib: u64, hwm_kib: u64, why: String) -> Row {
        Row {
            n,
            doc_mb,
            records: String::new(),
            first: (Duration::ZERO, Duration::ZERO),
            second: (Duration::ZERO, Duration::ZERO),
            base_kib,
            rss1_kib: rss_kib,
            rss2_kib: rss_kib,
            hwm_kib,
            heap_base_kib: 0,
            heap1_kib: 0,
            heap2_kib: 0,
            key_rps: 0.0,
            basic_rps: 0.0,
            paired: None,
            failure: Some(why),
        }
    }
}

/// The reference store's Envoy, kept serving so that every other population's runs alternate
/// with runs against it (drift of a shared machine cancels out of the ratios).
struct Live {
    envoy: Envoy,
    _source: DocumentServer,
    key_script: std::path::PathBuf,
    basic_script: std::path::PathBuf,
}

fn measure(
    n: usize,
    reference: Option<&Live>,
    seconds: u64,
    runs: usize,
    connections: u32,
    pin: bool,
) -> (Row, Option<Live>) {
    eprintln!("== {n} consumers");
    let source = DocumentServer::start();
    let envoy = Envoy::start_json(&bootstrap(source.port), pin.then_some(ENVOY_CPU), Duration::from_secs(60))
        .unwrap_or_else(|f| panic!("Envoy did not start:\n{}", f.log));
    // the empty store's baseline: after the first (failed: no document yet) fetch
    std::thread::sleep(Duration::from_secs(2));
    let (base_kib, _) = memory_kib(envoy.pid());
    let heap_base_kib = heap_kib(&envoy);
    let doc_mb = document(n, 1).len() as f64 / 1e6;
    let first = match load(&envoy, &source, n, 1) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("   generation 1 {e}");
            let (rss, hwm) = memory_kib(envoy.pid());
            return (Row::failed(n, doc_mb, base_kib, rss, hwm, e), None);
        }
    };
    eprintln!("   generation 1 served {:?} after the document, {:?} after its fetch", first.0, first.1);
    std::thread::sleep(Duration::from_secs(2));
    let (rss1_kib, _) = memory_kib(envoy.pid());
    let heap1_kib = heap_kib(&envoy);
    let key_script = script("/key", n, "apikey", key);
    let basic_script = script("/basic", n, "authorization", authorization);
    let (mut key_runs, mut basic_runs) = (Vec::new(), Vec::new());
    let (mut ref_key_runs, mut ref_basic_runs) = (Vec::new(), Vec::new());
    // warm-up: the first seconds after a load are slower (fresh pages, the allocator releasing)
    wrk(envoy.port, &key_script, 3, connections, pin);
    wrk(envoy.port, &basic_script, 3, connections, pin);
    for _ in 0..runs {
        if let Some(r) = reference {
            ref_key_runs.push(wrk(r.envoy.port, &r.key_script, seconds, connections, pin));
        }
        key_runs.push(wrk(envoy.port, &key_script, seconds, connections, pin));
        if let Some(r) = reference {
            ref_basic_runs.push(wrk(r.envoy.port, &r.basic_script, seconds, connections, pin));
        }
        basic_runs.push(wrk(envoy.port, &basic_script, seconds, connections, pin));
    }
    eprintln!("   key-auth {key_runs:?} req/s, basic-auth {basic_runs:?} req/s");
    if reference.is_some() {
        eprintln!(
            "   alternated with the reference: key-auth {ref_key_runs:?} req/s, basic-auth {ref_basic_runs:?} req/s"
        );
    }
    let second = load(&envoy, &source, n, 2).unwrap_or_else(|e| panic!("generation 2 of {n}: {e}"));
    eprintln!("   generation 2 served {:?} after the document, {:?} after its fetch", second.0, second.1);
    std::thread::sleep(Duration::from_secs(2));
    let (rss2_kib, hwm_kib) = memory_kib(envoy.pid());
    let heap2_kib = heap_kib(&envoy);
    let records = envoy
        .log()
        .lines()
        .find_map(|l| l.split("generation 1 loaded (").nth(1)?.split(')').next().map(str::to_string))
        .unwrap_or_default();
    let row = Row {
        n,
        doc_mb,
        records,
        first,
        second,
        base_kib,
        rss1_kib,
        rss2_kib,
        hwm_kib,
        heap_base_kib,
        heap1_kib,
        heap2_kib,
        key_rps: median(key_runs),
        basic_rps: median(basic_runs),
        paired: reference.map(|_| (median(ref_key_runs), median(ref_basic_runs))),
        failure: None,
    };
    if reference.is_some() {
        let _ = std::fs::remove_file(key_script);
        let _ = std::fs::remove_file(basic_script);
        return (row, None);
    }
    (row, Some(Live { envoy, _source: source, key_script, basic_script }))
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn per_consumer(kib: u64, base: u64, n: usize) -> String {
    format!("{:.0}", kib.saturating_sub(base) as f64 * 1024.0 / n as f64)
}

fn main() -> ExitCode {
    let counts: Vec<usize> = std::env::var("BENCH_STORE_CONSUMERS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|n| n.trim().parse().expect("BENCH_STORE_CONSUMERS: a count")).collect())
        .unwrap_or_else(|| vec![10, 100_000, 1_000_000]);
    let seconds = env_or("BENCH_SECONDS", 5u64).max(1);
    let runs = env_or("BENCH_RUNS", 3usize).max(1);
    let connections = env_or("BENCH_CONNECTIONS", 10u32).max(1);
    let pin = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) >= 2;
    let mut rows = Vec::new();
    let mut live: Option<Live> = None;
    for &n in &counts {
        let (row, kept) = measure(n.max(2), live.as_ref(), seconds, runs, connections, pin);
        rows.push(row);
        if live.is_none() {
            live = kept;
        }
    }
    if let Some(l) = &live {
        let _ = std::fs::remove_file(&l.key_script);
        let _ = std::fs::remove_file(&l.basic_script);
    }
    drop(live);
    let reference = &rows[0];

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Consumer store at scale: Envoy `--concurrency 1`{}, remote source polled every 1 s, {runs} run(s) of \
         {seconds} s per case, wrk -t1 -c{connections} rotating over {ROTATION} consumers; ratios to the \
         {}-consumer store of the same invocation, kept serving and measured in runs alternated with each \
         population's.\n",
        if pin { " pinned to CPU 0 (wrk on CPU 1)" } else { "" },
        reference.n
    );
    let _ = writeln!(
        out,
        "| consumers | document MB | records | load s (from fetch) | reload s (from fetch) | RSS empty MiB | \
         RSS gen 1 MiB | bytes/consumer gen 1 | of which Envoy heap | RSS gen 2 MiB | bytes/consumer gen 2 | of which Envoy heap | peak RSS MiB | \
         key-auth req/s | ratio | basic-auth req/s | ratio |"
    );
    let _ = writeln!(out, "|{}", "---|".repeat(17));
    for r in &rows {
        if let Some(why) = &r.failure {
            let _ = writeln!(
                out,
                "| {} | {:.1} | not loaded: {why} | | | {:.0} | | | | | | | {:.0} | | | | |",
                r.n,
                r.doc_mb,
                r.base_kib as f64 / 1024.0,
                r.hwm_kib as f64 / 1024.0
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} ({}) | {} ({}) | {:.0} | {:.0} | {} | {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.3} | {:.0} | {:.3} |",
            r.n,
            r.doc_mb,
            r.records,
            secs(r.first.0),
            secs(r.first.1),
            secs(r.second.0),
            secs(r.second.1),
            r.base_kib as f64 / 1024.0,
            r.rss1_kib as f64 / 1024.0,
            per_consumer(r.rss1_kib, r.base_kib, r.n),
            per_consumer(r.heap1_kib, r.heap_base_kib, r.n),
            r.rss2_kib as f64 / 1024.0,
            per_consumer(r.rss2_kib, r.base_kib, r.n),
            per_consumer(r.heap2_kib, r.heap_base_kib, r.n),
            r.hwm_kib as f64 / 1024.0,
            r.key_rps,
            r.key_rps / r.paired.map_or(reference.key_rps, |p| p.0),
            r.basic_rps,
            r.basic_rps / r.paired.map_or(reference.basic_rps, |p| p.1),
        );
    }
    print!("{out}");
    let dir = std::env::var_os("BENCH_RESULTS_DIR")
        .filter(|d| !d.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| consumer_auth_e2e::workspace_root().join("bench-results"));
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let _ = std::fs::create_dir_all(&dir);
    let file = std::path::Path::new(&dir).join(format!("store-{stamp}.md"));
    match std::fs::write(&file, &out) {
        Ok(()) => eprintln!("written to {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
    ExitCode::SUCCESS
}

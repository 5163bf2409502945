//! What the benchmarks share: wrk runs (pinned, with the proxy's CPU time per request), medians,
//! the machine description and the report's timestamp. `make bench`, `make bench-jwt` and
//! `make bench-store` measure through this one runner.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::envoy::pin_to_cpu;

/// The proxy under test runs on this CPU (when the machine has two or more) ...
pub const PROXY_CPU: usize = 0;
/// ... and wrk on this one.
pub const WRK_CPU: usize = 1;

/// `$name` parsed, `default` when unset or empty; panics on a value that does not parse (a
/// benchmark with a setting it did not understand is not run).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value"))
        }
        _ => default,
    }
}

/// Whether this machine can pin the proxy and wrk to CPUs of their own.
pub fn can_pin() -> bool {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) >= 2
}

/// The median (the mean of the middle two for an even count; 0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let middle = |i: usize| values.get(i).copied().unwrap_or(0.0);
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        middle(n / 2)
    } else {
        (middle(n / 2 - 1) + middle(n / 2)) / 2.0
    }
}

/// One wrk run: `-t1`, `connections` connections, `seconds` long, `--latency`.
pub struct Load {
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// A Lua script and its arguments (`wrk -s script URL -- args`), e.g. a request per token.
    pub script: Option<(PathBuf, Vec<String>)>,
    pub connections: u32,
    pub seconds: u64,
    /// Pin wrk to [`WRK_CPU`].
    pub pin: bool,
    /// The proxy's pid: its CPU time over the run is divided by the requests.
    pub proxy_pid: Option<u32>,
}

impl Load {
    pub fn new(port: u16, path: impl Into<String>, seconds: u64) -> Load {
        Load {
            port,
            path: path.into(),
            headers: Vec::new(),
            script: None,
            connections: 10,
            seconds,
            pin: can_pin(),
            proxy_pid: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub requests: u64,
    pub non_2xx: u64,
    pub socket_errors: String,
    /// The proxy's CPU time (all its threads) per request during the run, in microseconds (0
    /// without `proxy_pid`).
    pub cpu_us: f64,
}

/// Runs wrk; panics when it cannot run, fails or prints what cannot be parsed.
pub fn wrk(load: &Load) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t1").arg(format!("-c{}", load.connections)).arg(format!("-d{}s", load.seconds)).arg("--latency");
    for (name, value) in &load.headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    if let Some((script, _)) = &load.script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(format!("http://127.0.0.1:{}{}", load.port, load.path));
    if let Some((_, args)) = &load.script {
        cmd.arg("--").args(args);
    }
    if load.pin {
        // SAFETY: pin_to_cpu only calls sched_setaffinity (async-signal-safe).
        unsafe {
            cmd.pre_exec(|| pin_to_cpu(WRK_CPU));
        }
    }
    let cpu_before = load.proxy_pid.map(cpu_ns);
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run wrk ({e}): install it (apt-get install -y wrk)"));
    let cpu = match (load.proxy_pid, cpu_before) {
        (Some(pid), Some(before)) => cpu_ns(pid).saturating_sub(before),
        _ => 0,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut run = parse_wrk(&stdout).unwrap_or_else(|| panic!("cannot parse wrk's output:\n{stdout}"));
    run.cpu_us = cpu as f64 / 1000.0 / run.requests.max(1) as f64;
    run
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

pub fn parse_wrk(out: &str) -> Option<Run> {
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
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `812 µs` or `1.20 ms`.
pub fn latency(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn command_output(cmd: &mut Command) -> String {
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// CPUs, CPU model, Envoy's version and wrk's, for a report's header.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_string();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let envoy = command_output(Command::new(crate::envoy_bin()).arg("--version"));
    let envoy = envoy.split("version:").nth(1).unwrap_or(&envoy).trim().to_string();
    let wrk = command_output(Command::new("wrk").arg("--version"));
    let wrk = wrk.lines().next().unwrap_or("").split(" [").next().unwrap_or("").to_string();
    format!("{nproc} CPUs ({model}); Envoy {envoy}; {wrk}")
}

/// `YYYY-MM-DDTHH-MM-SSZ` (UTC) for `secs` since the epoch.
pub fn timestamp(secs: u64) -> String {
    let rem = secs % 86_400;
    let (year, month, day) = crate::clients::civil_from_days((secs / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A benchmark's Envoy bootstrap: admin and one listener on free ports, `http_filters` (the router
/// last) in front of `routes` (usually `direct_response` ones, no upstream), and consumer-auth's
/// stat tags.
pub fn bench_bootstrap(routes: Vec<serde_json::Value>, http_filters: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "stats_config": crate::bootstrap::stats_config(),
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

/// Writes a report to `dir/<timestamp>[-suffix].md`, returning the path.
pub fn save_report(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("{name}.md"));
    std::fs::write(&file, text)?;
    Ok(file)
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

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}

//! Runs the real Envoy: writes the bootstrap into a fresh temporary directory, starts the binary
//! (admin and listener on free ports unless the bootstrap fixes them), waits for `/ready`, keeps
//! its log, and always kills it on drop (also when a test panics; and, via `PR_SET_PDEATHSIG`,
//! when the test process itself dies).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bootstrap::Bootstrap;
use crate::http::Request;

const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Envoy {
    child: Child,
    dir: PathBuf,
    /// The (first) listener's port.
    pub port: u16,
    pub admin_port: u16,
}

/// Envoy did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// `None`: still running at the deadline (then killed).
    pub status: Option<ExitStatus>,
    pub log: String,
}

/// A fresh temporary directory `consumer-auth-<what>-<pid>-<n>-<nanos>` (Envoy's, nginx's).
pub(crate) fn temp_dir_for(what: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "consumer-auth-{what}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn temp_dir() -> PathBuf {
    temp_dir_for("e2e")
}

/// Write `bootstrap` as `envoy.json` in a new temporary directory.
fn write_bootstrap(bootstrap: &Bootstrap) -> (PathBuf, PathBuf) {
    let dir = temp_dir();
    let config = dir.join("envoy.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&bootstrap.to_json()).unwrap()).expect("write the bootstrap");
    (dir, config)
}

fn command(config: &Path, dir: &Path, cwd: &Path, concurrency: u32, cpu: Option<usize>) -> Command {
    let mut cmd = Command::new(crate::envoy_bin());
    cmd.arg("-c")
        .arg(config)
        .args(["--concurrency", &concurrency.to_string(), "--disable-hot-restart", "--log-level"])
        // E2E_ENVOY_LOG_LEVEL=debug (or trace) to see what Envoy and the filter do.
        .arg(std::env::var("E2E_ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".into()))
        .arg("--admin-address-path")
        .arg(dir.join("admin-address"))
        .current_dir(cwd)
        .stdin(Stdio::null());
    let log = File::create(dir.join("envoy.log")).expect("create the Envoy log");
    cmd.stdout(log.try_clone().expect("log handle")).stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(cpu) = cpu {
                pin_to_cpu(cpu)?;
            }
            Ok(())
        });
    }
    cmd
}

/// Pin the calling process (and what it execs and spawns) to one CPU, as `taskset -c <cpu>` does.
/// Async-signal-safe (usable between fork and exec).
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET bounds-checks nothing, so `cpu`
    // is checked against the set's capacity first.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default()
}

impl Envoy {
    /// Start with `bootstrap`; panics with Envoy's log if it does not become ready.
    pub fn start(bootstrap: &Bootstrap) -> Envoy {
        Envoy::try_start(bootstrap)
            .unwrap_or_else(|f| panic!("Envoy did not start (exit status {:?}); its log:\n{}", f.status, f.log))
    }

    pub fn try_start(bootstrap: &Bootstrap) -> Result<Envoy, StartFailure> {
        Envoy::try_start_with_workers(bootstrap, 1)
    }

    /// Start with `workers` worker threads (`--concurrency`).
    pub fn try_start_with_workers(bootstrap: &Bootstrap, workers: u32) -> Result<Envoy, StartFailure> {
        let (dir, config) = write_bootstrap(bootstrap);
        Envoy::spawn(&config, dir, &crate::workspace_root(), workers, None, START_TIMEOUT)
    }

    /// Start with a bootstrap given as JSON (one [`Bootstrap`] cannot express), one worker, the
    /// process pinned to `cpu` if given (like `taskset -c`), waiting up to `timeout` for `/ready`.
    pub fn start_json(bootstrap: &Value, cpu: Option<usize>, timeout: Duration) -> Result<Envoy, StartFailure> {
        let dir = temp_dir();
        let config = dir.join("envoy.json");
        std::fs::write(&config, serde_json::to_vec(bootstrap).expect("serialise")).expect("write the bootstrap");
        Envoy::spawn(&config, dir, &crate::workspace_root(), 1, cpu, timeout)
    }

    /// Start with a bootstrap file as is (e.g. `envoy/demo.yaml`), from working directory `cwd`.
    pub fn start_file(config: &Path, cwd: &Path) -> Result<Envoy, StartFailure> {
        Envoy::spawn(config, temp_dir(), cwd, 1, None, START_TIMEOUT)
    }

    fn spawn(
        config: &Path,
        dir: PathBuf,
        cwd: &Path,
        workers: u32,
        cpu: Option<usize>,
        timeout: Duration,
    ) -> Result<Envoy, StartFailure> {
        let child =
            command(config, &dir, cwd, workers, cpu).spawn().unwrap_or_else(|e| panic!("cannot run Envoy: {e}"));
        let mut envoy = Envoy { child, dir, port: 0, admin_port: 0 };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = envoy.child.try_wait().expect("wait for Envoy") {
                return Err(StartFailure { status: Some(status), log: envoy.log() });
            }
            if Instant::now() > deadline {
                return Err(StartFailure { status: None, log: envoy.log() });
            }
            if envoy.admin_port == 0 {
                envoy.admin_port = std::fs::read_to_string(envoy.dir.join("admin-address"))
                    .ok()
                    .and_then(|a| a.trim().rsplit(':').next()?.parse().ok())
                    .unwrap_or(0);
            }
            if envoy.admin_port != 0 {
                let ready = Request::get("/ready").try_send(envoy.admin_port);
                if ready.is_ok_and(|r| r.status == 200) {
                    envoy.port = envoy.listener_port().expect("the listener's port from /listeners");
                    return Ok(envoy);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn listener_port(&self) -> Option<u16> {
        let listeners = Request::get("/listeners?format=json").try_send(self.admin_port).ok()?.json();
        let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64()?;
        u16::try_from(port).ok()
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    /// The Envoy process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether Envoy is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A GET on the admin API.
    pub fn admin(&self, path: &str) -> crate::http::Response {
        Request::get(path).send(self.admin_port)
    }

    /// Waits until the filter has handed Envoy the per-request counts of the requests sent so
    /// far: it counts them in its VM and flushes them on a tick at most one second after the
    /// first count (docs/OBSERVABILITY.md); two seconds leave a margin for a busy machine.
    pub fn await_metrics_flush(&self) {
        std::thread::sleep(Duration::from_secs(2));
    }

    /// A counter or gauge by its full name (e.g. `wasmcustom.consumer_auth_...`); 0 when Envoy
    /// does not have it (yet).
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.admin(&format!("/stats?filter={name}")).text();
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Polls `request` until `done` holds for its answer; the time it took. Panics (with the
    /// last answer) after `within`.
    pub fn wait_until(
        &self,
        request: &Request,
        within: std::time::Duration,
        done: impl Fn(&crate::http::Response) -> bool,
    ) -> std::time::Duration {
        let start = std::time::Instant::now();
        loop {
            let response = request.send(self.port);
            if done(&response) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "still {} {} after {within:?}", response.status, response.text());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("--- last lines of the Envoy log ({}) ---\n{}", self.dir.display(), tail.join("\n"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `envoy --mode validate` on `bootstrap`: exit status and output.
pub fn validate(bootstrap: &Bootstrap) -> (ExitStatus, String) {
    let (dir, config) = write_bootstrap(bootstrap);
    let mut cmd = command(&config, &dir, &crate::workspace_root(), 1, None);
    cmd.args(["--mode", "validate"]);
    let status = run_with_timeout(cmd, START_TIMEOUT);
    let log = read_log(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    (status.unwrap_or_else(|| panic!("envoy --mode validate did not finish; log:\n{log}")), log)
}

/// `envoy --mode validate` on a bootstrap file (from the workspace root).
pub fn validate_file(config: &Path) -> (ExitStatus, String) {
    let dir = temp_dir();
    let mut cmd = command(config, &dir, &crate::workspace_root(), 1, None);
    cmd.args(["--mode", "validate"]);
    let status = run_with_timeout(cmd, START_TIMEOUT);
    let log = read_log(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    (status.unwrap_or_else(|| panic!("envoy --mode validate did not finish; log:\n{log}")), log)
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Option<ExitStatus> {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run Envoy: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for Envoy") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! Runs Kong's proxy-wasm host for real: nginx 1.25.3 + ngx_wasm_module at the commit Kong 3.9
//! bundles (`make kong-host`, `$KONG_NGINX_BIN`), as Kong runs it: `master_process on`, two
//! workers (so shared data really is shared), the filter's `shm_kv consumer_auth` zone,
//! `proxy_wasm_request_headers_in_access on`. Each [`Route`] (the Envoy bootstrap's type) becomes
//! a location whose `proxy_wasm` lines are its chain, in order; the upstream is the echo server.
//!
//! What plain nginx does not reproduce of Kong (its Lua layer) is stood in for: Kong's
//! `$kong_request_id` by a `map` of nginx's `$request_id`, Kong's upstream URI (`$upstream_uri`:
//! the raw path plus the current `$args`) by a `map` of `$request_uri`.
//!
//! Free ports, a fresh temporary directory, the error log readable by tests ([`Kong::log`]);
//! nginx and its workers are always stopped on drop (one process group).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bootstrap::Route;
use crate::http::Request;

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx reads its configuration in 4 KiB buffers: a longer quoted argument is refused.
const MAX_ARGUMENT: usize = 4000;

/// The nginx of Kong's host: `$KONG_NGINX_BIN` (`make kong-host` writes it to
/// `target/kong-host.path`, which is read when the variable is unset). Panics (never skips).
pub fn nginx_bin() -> PathBuf {
    let from_env = std::env::var_os("KONG_NGINX_BIN").filter(|b| !b.is_empty()).map(PathBuf::from);
    let stamp = crate::workspace_root().join("target/kong-host.path");
    let bin = from_env.or_else(|| std::fs::read_to_string(&stamp).ok().map(|s| PathBuf::from(s.trim())));
    match bin {
        Some(bin) if bin.is_file() => bin,
        Some(bin) => panic!("KONG_NGINX_BIN={} does not exist; run `make kong-host`", bin.display()),
        None => panic!(
            "Kong's proxy-wasm host (nginx + ngx_wasm_module) was not found: no $KONG_NGINX_BIN and no {}; \
             run `make kong-host` (or `make test`) first",
            stamp.display()
        ),
    }
}

/// The nginx configuration of one Kong host: routes (each with its chain of filter instances)
/// in front of one upstream.
#[derive(Debug, Clone)]
pub struct KongConfig {
    pub upstream_port: u16,
    /// The .wasm (absolute path).
    pub wasm: String,
    pub routes: Vec<Route>,
    /// Declare the `shm_kv consumer_auth` zone (Kong: `nginx_wasm_shm_kv_consumer_auth`).
    pub shm_kv: bool,
    pub workers: u32,
    /// Extra directives in every location (e.g. `client_body_buffer_size 1m;`).
    pub location_extra: String,
    /// Other Wasm modules (name, path of a .wasm or .wat), for probes of the host itself.
    pub modules: Vec<(String, String)>,
    /// Locations written as given: (exact path, directives); proxied to the upstream.
    pub raw_locations: Vec<(String, String)>,
    /// 0: a free port.
    pub listen_port: u16,
}

impl KongConfig {
    pub fn new(upstream_port: u16) -> KongConfig {
        KongConfig {
            upstream_port,
            wasm: crate::filter_wasm().display().to_string(),
            routes: Vec::new(),
            shm_kv: true,
            workers: 2,
            location_extra: String::new(),
            modules: Vec::new(),
            raw_locations: Vec::new(),
            listen_port: 0,
        }
    }

    /// Requests whose path is `prefix` or starts with `prefix/` go through `chain`, in order.
    pub fn route(mut self, prefix: &str, chain: impl IntoIterator<Item = Value>) -> Self {
        let route = Route::new(prefix, chain);
        assert!(!self.routes.iter().any(|r| r.prefix == route.prefix), "two routes with the prefix {:?}", route.prefix);
        self.routes.push(route);
        self
    }

    /// The same routes as an Envoy bootstrap (one case written once, run on both hosts).
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        for r in routes {
            self = self.route(&r.prefix, r.chain);
        }
        self
    }

    /// No `shm_kv` zone (a Kong without `nginx_wasm_shm_kv_consumer_auth`).
    pub fn without_shm_kv(mut self) -> Self {
        self.shm_kv = false;
        self
    }

    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// Load another Wasm module (`module <name> <path>;` in the `wasm` block).
    pub fn module(mut self, name: &str, path: &str) -> Self {
        self.modules.push((name.to_string(), path.to_string()));
        self
    }

    /// `location = <path> { <directives> proxy_pass <upstream>; }`.
    pub fn raw_location(mut self, path: &str, directives: &str) -> Self {
        self.raw_locations.push((path.to_string(), directives.to_string()));
        self
    }

    pub fn location_extra(mut self, directives: &str) -> Self {
        self.location_extra = directives.to_string();
        self
    }

    /// nginx.conf, listening on `port`, with its files under `dir`.
    pub fn to_nginx_conf(&self, port: u16, dir: &std::path::Path) -> String {
        let dir = dir.display();
        let mut locations = String::new();
        let mut has_root = false;
        for route in &self.routes {
            let mut body = String::new();
            for doc in &route.chain {
                let json = serde_json::to_string(doc).expect("serialise a configuration document");
                assert!(
                    json.len() <= MAX_ARGUMENT,
                    "a configuration document of {} bytes does not fit in an nginx.conf argument ({MAX_ARGUMENT} max); \
                     use a smaller one on the Kong host",
                    json.len()
                );
                body.push_str(&format!("            proxy_wasm consumer_auth {};\n", quote(&json)));
            }
            body.push_str(&format!(
                "            proxy_wasm_request_headers_in_access on;\n            {}\n            \
                 proxy_pass http://127.0.0.1:{}$kong_upstream_path$is_args$args;\n",
                self.location_extra, self.upstream_port
            ));
            let prefix = route.prefix.trim_end_matches('/');
            if prefix.is_empty() {
                has_root = true;
                locations.push_str(&format!("        location / {{\n{body}        }}\n"));
            } else {
                locations.push_str(&format!("        location = {prefix} {{\n{body}        }}\n"));
                locations.push_str(&format!("        location {prefix}/ {{\n{body}        }}\n"));
            }
        }
        for (path, directives) in &self.raw_locations {
            locations.push_str(&format!(
                "        location = {path} {{\n            {directives}\n            \
                 proxy_pass http://127.0.0.1:{}$kong_upstream_path$is_args$args;\n        }}\n",
                self.upstream_port
            ));
        }
        if !has_root {
            locations.push_str("        location / {\n            return 404;\n        }\n");
        }
        let mut shm = if self.shm_kv { "    shm_kv consumer_auth 16m;\n".to_string() } else { String::new() };
        for (name, path) in &self.modules {
            shm.push_str(&format!("    module {name} {path};\n"));
        }
        format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\n\n\
             events {{\n    worker_connections 512;\n}}\n\n\
             wasm {{\n    module consumer_auth {wasm};\n{shm}}}\n\n\
             http {{\n    access_log off;\n\
             \x20   client_body_temp_path {dir}/client_body;\n    proxy_temp_path {dir}/proxy;\n\
             \x20   fastcgi_temp_path {dir}/fastcgi;\n    uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;\n\
             \x20   # Kong's request id (Kong 3.5+ sets $kong_request_id in Lua)\n\
             \x20   map $request_id $kong_request_id {{\n        default $request_id;\n    }}\n\
             \x20   # Kong's upstream URI: the raw path and the current query ($args, which a filter may change)\n\
             \x20   map $request_uri $kong_upstream_path {{\n        \"~^(?<p>[^?]*)\" $p;\n    }}\n\
             \x20   proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n\n\
             \x20   server {{\n        listen 127.0.0.1:{port};\n\
             \x20       location = /__ready {{\n            return 200 \"ready\\n\";\n        }}\n{locations}    }}\n}}\n",
            workers = self.workers,
            wasm = self.wasm,
        )
    }
}

/// An nginx.conf single-quoted argument.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub struct Kong {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub workers: u32,
}

/// nginx did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// `None`: still running at the deadline (then stopped).
    pub status: Option<ExitStatus>,
    pub log: String,
}

fn temp_dir() -> PathBuf {
    crate::envoy::temp_dir_for("kong")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Kong {
    /// Start with `config`; panics with nginx's error log if it does not become ready.
    pub fn start(config: &KongConfig) -> Kong {
        Kong::try_start(config)
            .unwrap_or_else(|f| panic!("the Kong host did not start (exit status {:?}); its log:\n{}", f.status, f.log))
    }

    /// Start and wait until every worker has started its filters (each compiles the module,
    /// ~1.2 s) and the server answers.
    pub fn try_start(config: &KongConfig) -> Result<Kong, StartFailure> {
        Kong::try_start_within(config, START_TIMEOUT)
    }

    pub fn try_start_within(config: &KongConfig, timeout: Duration) -> Result<Kong, StartFailure> {
        let bin = nginx_bin();
        let dir = temp_dir();
        let port = if config.listen_port == 0 { free_port() } else { config.listen_port };
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config.to_nginx_conf(port, &dir)).expect("write nginx.conf");
        let out = File::create(dir.join("stderr.log")).expect("create nginx's stderr log");
        let mut cmd = Command::new(&bin);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            // master and workers in a group of their own: stopped together
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut kong = Kong { child, dir, port, workers: config.workers };
        let instances: usize = config
            .routes
            .iter()
            .map(|r| r.chain.len() * if r.prefix.trim_end_matches('/').is_empty() { 1 } else { 2 })
            .sum();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = kong.child.try_wait().expect("wait for nginx") {
                return Err(StartFailure { status: Some(status), log: kong.log() });
            }
            if Instant::now() > deadline {
                return Err(StartFailure { status: None, log: kong.log() });
            }
            // Every worker has run on_configure for every instance (or refused it).
            let log = kong.log();
            let configured = log.matches("consumer-auth: configuration loaded").count()
                + log.matches("consumer-auth: configuration refused").count();
            if configured >= instances * config.workers as usize {
                let ready = Request::get("/__ready").try_send_within(port, Duration::from_secs(2));
                if ready.is_ok_and(|r| r.status == 200) {
                    return Ok(kong);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// nginx's error log so far (the filter logs there).
    pub fn log(&self) -> String {
        let mut log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let stderr = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        if !stderr.is_empty() {
            log.push_str("\n--- stderr ---\n");
            log.push_str(&stderr);
        }
        log
    }

    /// The lines of the error log written since `mark` (a length of [`Kong::log`] earlier).
    pub fn log_since(&self, mark: usize) -> String {
        self.log().get(mark..).unwrap_or_default().to_string()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The ids of the master's live worker processes.
    pub fn worker_pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
        children.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}

impl Drop for Kong {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signals to the process group this runner created.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever is left of the group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("--- last lines of the Kong host's error log ({}) ---\n{}", self.dir.display(), tail.join("\n"));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

//! What the scenarios share: a fresh database on either engine, the router driven in process,
//! a real `consumer-auth serve` process, a small HTTP/1.1 client, and a private PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use consumer_auth_service::{app, AppState, Store, StoreOptions};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server `make test` starts (`make postgres`): a URL to its `postgres` database.
pub const POSTGRES_ENV: &str = "CONSUMER_AUTH_TEST_POSTGRES";
/// The folder of PostgreSQL's server binaries (initdb, pg_ctl), for the tests that need a server
/// of their own to stop and start.
pub const POSTGRES_BIN_ENV: &str = "CONSUMER_AUTH_TEST_POSTGRES_BIN";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let r: u32 = rand::random();
    format!("{prefix}_{}_{n}_{r:08x}", std::process::id())
}

/// A fresh temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique_name("consumer_auth_service"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The URL of the shared test server's `postgres` database. Missing: the test fails, loudly.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_ENV} is not set: the PostgreSQL tests need a server. Run `make postgres` \
             (or `make service-tests`), or point {POSTGRES_ENV} at postgres://USER@HOST:PORT/postgres"
        )
    })
}

/// A database URL nobody else uses: a new SQLite file, or a new database on the test server.
pub async fn fresh_database(engine: Engine, dir: &TempDir) -> String {
    match engine {
        Engine::Sqlite => format!("sqlite://{}", dir.0.join("test.db").display()),
        Engine::Postgres => {
            let admin = postgres_admin_url();
            let name = unique_name("t");
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("CREATE DATABASE");
            let _ = conn.close().await;
            replace_database(&admin, &name)
        }
    }
}

/// `url` with its database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The Admin API in process, on a fresh migrated database.
pub struct Api {
    pub router: Router,
    pub store: Store,
    /// The database's URL.
    pub url: String,
    _dir: TempDir,
}

impl Api {
    pub async fn new(engine: Engine) -> Api {
        Api::with(engine, None, consumer_auth_service::DEFAULT_BODY_LIMIT).await
    }

    pub async fn with(engine: Engine, token: Option<&str>, body_limit: usize) -> Api {
        let dir = TempDir::new();
        let url = fresh_database(engine, &dir).await;
        let store = consumer_auth_service::serve::open_migrated(&url, StoreOptions::default()).await.expect("open");
        let state = AppState { store: store.clone(), body_limit, admin_token: token.map(Into::into) };
        Api { router: app(state), store, url, _dir: dir }
    }

    pub async fn raw(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{status}: not JSON: {:?}", String::from_utf8_lossy(&bytes)))
        };
        (status, body)
    }

    /// A JSON request (`body` None: no body).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let builder = Request::builder().method(method).uri(path);
        let request = match body {
            Some(b) => builder.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => builder.body(Body::empty()),
        };
        self.raw(request.expect("request")).await
    }

    pub async fn form(&self, method: &str, path: &str, form: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .expect("request");
        self.raw(request).await
    }

    /// Call and check the status; answer the body.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>, expect: u16) -> Value {
        let (status, b) = self.call(method, path, body.clone()).await;
        assert_eq!(status.as_u16(), expect, "{method} {path} {body:?} -> {b}");
        b
    }
}

/// Run a scenario on SQLite and on PostgreSQL: `both!(name)` makes `name::sqlite` and
/// `name::postgres` from `async fn name(api: Api)`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::support::{Api, Engine};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Api::new(Engine::Sqlite).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Api::new(Engine::Postgres).await).await
                }
            }
        )*
    };
}

/// The `consumer-auth` binary (the CLI package's; `cargo test --workspace` builds it, and the
/// Makefile's `service-tests` builds it first). Missing: the test fails, loudly.
pub fn cli_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CONSUMER_AUTH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/service-<hash> -> target/debug/consumer-auth
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("consumer-auth");
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p consumer-auth-cli`", bin.display());
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A `consumer-auth serve` process, killed on drop.
pub struct Service {
    pub child: Child,
}

impl Service {
    /// Start `consumer-auth serve ARGS` in `cwd` with `env`, and wait until it answers.
    pub async fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)], port: u16) -> Service {
        let mut cmd = Command::new(cli_binary());
        cmd.arg("serve").args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn consumer-auth serve");
        let mut service = Service { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http(port, "GET", "/status", None, &[]).await {
                if r.0 == 200 {
                    return service;
                }
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("consumer-auth serve exited: {status}");
            }
            assert!(Instant::now() < deadline, "consumer-auth serve did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`): status and body.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    json: Option<&Value>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if json.is_some() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let value = serde_json::from_str(body).unwrap_or(Value::Null);
    Ok((status, value))
}

/// A PostgreSQL server of the test's own (initdb in a temporary folder, a free port, run as the
/// `postgres` user: it refuses to run as root), for tests that stop and start it.
pub struct PrivatePostgres {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bin = PathBuf::from(std::env::var(POSTGRES_BIN_ENV).unwrap_or_else(|_| {
            panic!("{POSTGRES_BIN_ENV} is not set: it names PostgreSQL's bin folder (`make postgres` sets it)")
        }));
        let dir = std::env::temp_dir().join(unique_name("consumer_auth_pg"));
        std::fs::create_dir_all(&dir).expect("pg dir");
        let pg = PrivatePostgres { dir, port: free_port(), bin };
        if is_root() {
            pg.as_postgres(&["chown", "postgres", "."], true);
        }
        let initdb = pg.bin.join("initdb");
        pg.as_postgres(&[initdb.to_str().unwrap_or("initdb"), "-D", "data", "-A", "trust", "-U", "postgres"], false);
        pg.ctl("start");
        pg
    }

    fn as_postgres(&self, args: &[&str], as_root: bool) {
        let mut cmd = if as_root || !is_root() {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        } else {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        };
        let out = cmd.current_dir(&self.dir).stdout(Stdio::null()).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn ctl(&self, what: &str) {
        let pg_ctl = self.bin.join("pg_ctl");
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let log = self.dir.join("log");
        let args: Vec<&str> = match what {
            "start" => vec![
                pg_ctl.to_str().unwrap_or("pg_ctl"),
                "-D",
                "data",
                "-o",
                &options,
                "-l",
                log.to_str().unwrap_or("log"),
                "-w",
                "start",
            ],
            _ => vec![pg_ctl.to_str().unwrap_or("pg_ctl"), "-D", "data", "-m", "fast", "-w", "stop"],
        };
        self.as_postgres(&args, false);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let _ = self.as_postgres_quiet(&[pg_ctl.to_str().unwrap_or("pg_ctl"), "-D", "data", "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PrivatePostgres {
    fn as_postgres_quiet(&self, args: &[&str]) -> std::io::Result<()> {
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        c.current_dir(&self.dir).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|_| ())
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

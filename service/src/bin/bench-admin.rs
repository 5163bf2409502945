//! `make bench-admin`: the Admin API measured through a real `consumer-auth serve` (release
//! build) on SQLite and on PostgreSQL: 16 clients on keep-alive connections creating key-auth
//! credentials for BENCH_ADMIN_SECONDS (default 10) while one more client GETs existing keys;
//! then a BENCH_ADMIN_IMPORT-consumer (default 1,000,000) decK file, one key each, imported
//! into each database. Prints a Markdown table with the load average.
//!
//! A bench tool, not the service: it fails loudly (unwrap / expect / panic) on a broken setup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CLIENTS: usize = 16;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        Conn { stream: BufReader::new(s) }
    }

    async fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let b = self.stream.read_u8().await.unwrap();
            head.push(b);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.unwrap();
        (status, body)
    }
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary() -> PathBuf {
    PathBuf::from(std::env::var("CONSUMER_AUTH_BIN").unwrap_or_else(|_| "target/service/consumer-auth".into()))
}

async fn start(database: &str, dir: &Path) -> (Service, u16) {
    let port = free_port();
    let child = Command::new(binary())
        .args(["serve", "--admin-listen", &format!("127.0.0.1:{port}"), "--database", database])
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("consumer-auth serve");
    let service = Service(child);
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            drop(s);
            return (service, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("consumer-auth serve did not start");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Load {
    creations_per_s: f64,
    get_p50_ms: f64,
    get_p99_ms: f64,
    gets: usize,
    errors: u64,
}

async fn api_load(database: &str, dir: &Path, seconds: u64) -> Load {
    let (_service, port) = start(database, dir).await;
    let mut c = Conn::open(port).await;
    let (s, _) = c.request("POST", "/consumers", r#"{"username":"bench"}"#).await;
    assert_eq!(s, 201, "create the bench consumer");
    for i in 0..100 {
        let (s, _) = c.request("POST", "/consumers/bench/key-auth", &format!(r#"{{"key":"seed-{i}"}}"#)).await;
        assert_eq!(s, 201);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, created, errors) = (stop.clone(), created.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            while !stop.load(Ordering::Relaxed) {
                let (s, _) = c.request("POST", "/consumers/bench/key-auth", "").await;
                if s == 201 {
                    created.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let getter = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            let mut samples = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let t = Instant::now();
                let (s, _) = c.request("GET", &format!("/key-auths/seed-{}", i % 100), "").await;
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(s, 200);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };
    let warmup = Duration::from_secs(1);
    tokio::time::sleep(warmup).await;
    let start_count = created.load(Ordering::Relaxed);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let made = created.load(Ordering::Relaxed) - start_count;
    let elapsed = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let mut samples = getter.await.unwrap();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Load {
        creations_per_s: made as f64 / elapsed,
        get_p50_ms: percentile(&samples, 0.5),
        get_p99_ms: percentile(&samples, 0.99),
        gets: samples.len(),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// A decK file of `n` consumers with one key each.
fn deck_file(path: &Path, n: u64) {
    if path.exists() {
        return;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "_format_version: \"3.0\"\nconsumers:").unwrap();
    for i in 0..n {
        writeln!(f, "- username: user-{i}\n  custom_id: cid-{i}\n  keyauth_credentials:\n  - key: key-{i:016x}-bench")
            .unwrap();
    }
    f.flush().unwrap();
}

fn import(database: &str, file: &Path, dir: &Path) -> (f64, String) {
    let t = Instant::now();
    let out = Command::new(binary())
        .args(["import"])
        .arg(file)
        .args(["--database", database])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    (t.elapsed().as_secs_f64(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn fresh_postgres(admin: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut c).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

#[tokio::main]
async fn main() {
    let seconds = env_or("BENCH_ADMIN_SECONDS", 10);
    let n = env_or("BENCH_ADMIN_IMPORT", 1_000_000);
    let pg_admin = std::env::var("CONSUMER_AUTH_TEST_POSTGRES").expect("CONSUMER_AUTH_TEST_POSTGRES (make postgres)");
    let work = PathBuf::from("target/bench-admin");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let mut rows = Vec::new();
    for engine in ["sqlite", "postgres"] {
        let db = match engine {
            "sqlite" => format!("sqlite://{}", work.join("api.db").display()),
            _ => fresh_postgres(&pg_admin, "bench_admin_api").await,
        };
        let before = load_average();
        let l = api_load(&db, &work, seconds).await;
        rows.push(format!(
            "| {engine} | {:.0} | {:.2} | {:.2} | {} | {} | {before} → {} |",
            l.creations_per_s,
            l.get_p50_ms,
            l.get_p99_ms,
            l.gets,
            l.errors,
            load_average()
        ));
        eprintln!("{}", rows.last().unwrap());
    }
    let deck = std::env::temp_dir().join(format!("consumer-auth-bench-deck-{n}.yaml"));
    deck_file(&deck, n);
    let mut imports = Vec::new();
    for engine in ["sqlite", "postgres"] {
        let db = match engine {
            "sqlite" => format!("sqlite://{}", work.join("import.db").display()),
            _ => fresh_postgres(&pg_admin, "bench_admin_import").await,
        };
        let before = load_average();
        let (first, report) = import(&db, &deck, &work);
        let (again, again_report) = import(&db, &deck, &work);
        imports.push(format!("| {engine} | {n} | {first:.1} | {again:.1} | {before} → {} |", load_average()));
        eprintln!("{} / {report} / again: {again_report}", imports.last().unwrap());
    }
    println!("\n{CLIENTS} clients creating key-auth credentials for {seconds} s, one client GETting keys meanwhile:\n");
    println!("| database | creations/s | GET p50 ms | GET p99 ms | GETs | non-201 | load average (1/5/15 min) before → after |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!("\n`consumer-auth import` of a decK file with one key per consumer (then the same file again):\n");
    println!("| database | consumers | import s | again s | load average before → after |");
    println!("|---|---|---|---|---|");
    for r in imports {
        println!("{r}");
    }
}

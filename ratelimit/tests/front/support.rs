//! A real Redis (from the environment: fails loudly without it), a front serving on a free port,
//! and a minimal HTTP/1.1 client.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use consumer_auth_ratelimit::{serve, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "front-test-token";

/// `CONSUMER_AUTH_REDIS_URL` (`redis://127.0.0.1:<port>`), set by `make test`.
pub fn redis_url() -> String {
    std::env::var("CONSUMER_AUTH_REDIS_URL").unwrap_or_else(|_| {
        panic!("CONSUMER_AUTH_REDIS_URL is not set: these tests need a real Redis (`make redis-server` starts one)")
    })
}

/// `redis-cli -u <url> <args>`, trimmed stdout; fails loudly if redis-cli is missing.
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(redis_url())
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools) is needed");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A key no other test (or earlier run) uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!(
        "ratelimit:00000000-0000-0000-0000-000000000000:00000000-0000-0000-0000-000000000000:{name}-{nanos}:0:minute"
    )
}

/// A front on a free port in this runtime.
pub async fn front(config: Config) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, config));
    addr
}

pub fn config() -> Config {
    Config::new(redis_url(), TOKEN)
}

/// One `POST` with `Connection: close` (as Kong's host sends them): (status, body).
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: front\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{auth}connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

//! rate-limiting's `policy: redis` parts for the tests and the bench: the counters' front
//! (`consumer-auth-ratelimit`) served in-process on a free port, a real Redis (the one `make test`
//! started, or a private `redis-server` a test may stop and start), and `redis-cli`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consumer_auth_ratelimit::{serve, Config};

/// The token the tests' filters and fronts share.
pub const TOKEN: &str = "e2e-front-token";

/// `CONSUMER_AUTH_REDIS_URL`, set by `make test` (`make redis-server`). Panics without it.
pub fn shared_redis_url() -> String {
    std::env::var("CONSUMER_AUTH_REDIS_URL").unwrap_or_else(|_| {
        panic!("CONSUMER_AUTH_REDIS_URL is not set: these tests need a real Redis (`make redis-server` starts one)")
    })
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The front serving `config` on a free port, in a runtime of its own (two worker threads) that
/// lives as long as the process. Returns the port.
pub fn start_front(config: Config) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, config).await.unwrap();
        });
    });
    port
}

/// `redis-cli -u <url> <args>`: trimmed stdout.
pub fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools; `make redis-server` installs it)");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `redis-server` of this test's own (so it can be stopped and started again on its port).
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("consumer-auth-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis { port, child: None, dir };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's; `make redis-server` installs it)");
        self.child = Some(child);
        let started = Instant::now();
        let answers = |port: u16| {
            let out = Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output();
            matches!(out, Ok(o) if o.stdout.starts_with(b"PONG"))
        };
        while !answers(self.port) {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! `consumer-auth-ratelimit`: the front alone, as a process (the consumer service will serve the
//! same routes under `consumer-auth serve --redis`). Configured from the environment:
//!
//! - `CONSUMER_AUTH_RATELIMIT_LISTEN`: address to serve on (default `127.0.0.1:8090`);
//! - `CONSUMER_AUTH_REDIS_URL`: `redis://[user:password@]host:port[/db]` (required);
//! - `CONSUMER_AUTH_RATELIMIT_TOKEN_FILE`: a file holding the shared token (required; a file,
//!   so the secret is not in the process list or the environment of children);
//! - `CONSUMER_AUTH_RATELIMIT_PATH` (default `/v1/ratelimit`),
//!   `CONSUMER_AUTH_RATELIMIT_REDIS_TIMEOUT_MS` (default 500).

use std::process::ExitCode;
use std::time::Duration;

use consumer_auth_ratelimit::{serve, Config};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn config() -> Result<(String, Config), String> {
    let listen = var("CONSUMER_AUTH_RATELIMIT_LISTEN").unwrap_or_else(|| "127.0.0.1:8090".into());
    let url = var("CONSUMER_AUTH_REDIS_URL").ok_or("CONSUMER_AUTH_REDIS_URL is required")?;
    let token_file =
        var("CONSUMER_AUTH_RATELIMIT_TOKEN_FILE").ok_or("CONSUMER_AUTH_RATELIMIT_TOKEN_FILE is required")?;
    let token = std::fs::read_to_string(&token_file).map_err(|e| format!("{token_file}: {e}"))?.trim().to_string();
    if token.is_empty() {
        return Err(format!("{token_file}: empty token"));
    }
    let mut config = Config::new(url, token);
    if let Some(path) = var("CONSUMER_AUTH_RATELIMIT_PATH") {
        config.path = path;
    }
    if let Some(ms) = var("CONSUMER_AUTH_RATELIMIT_REDIS_TIMEOUT_MS") {
        let ms: u64 = ms.parse().map_err(|_| "CONSUMER_AUTH_RATELIMIT_REDIS_TIMEOUT_MS: milliseconds")?;
        config.redis_timeout = Duration::from_millis(ms.max(1));
    }
    Ok((listen, config))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, config) = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("consumer-auth-ratelimit: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("consumer-auth-ratelimit: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("consumer-auth-ratelimit: serving {} on {listen}", config.path);
    match serve(listener, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumer-auth-ratelimit: {e}");
            ExitCode::FAILURE
        }
    }
}

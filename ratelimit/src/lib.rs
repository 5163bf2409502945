//! The front that rate-limiting's `policy: redis` calls (docs/RATE_LIMITING.md): the filter
//! cannot open a TCP connection to Redis, and Kong's Wasm host has no gRPC calls, so every proxy
//! reaches the counters over HTTP/1.1 through this stateless front, which any number of replicas
//! can serve.
//!
//! Two endpoints under a base path (default `/v1/ratelimit`), JSON in and out, one call per
//! request carrying every period of a plugin:
//!
//! - `POST <path>/incr` `{"keys":[{"key":"ratelimit:…","ttl":60},…]}` runs Kong's script per key
//!   (`incr`; `expire` when the count is 1; return count - 1), so a Kong node on the same Redis
//!   counts the same keys the same way, and answers `{"counts":[usage before this request,…]}`.
//! - `POST <path>/flush` `{"keys":[{"key":…,"by":7,"expire_at":<unix s>},…]}` (the `sync_rate`
//!   flush): `incrby` + `expireat` per key, answers `{"counts":[total after it,…]}`.
//!
//! Every call carries `Authorization: Bearer <token>` (compared in constant time; 401 otherwise).
//! Redis is reached through one multiplexed, auto-reconnecting connection (redis-rs's
//! `ConnectionManager`: every request's commands are pipelined on it, no pool to size); every
//! Redis round trip is bounded by `redis_timeout` (503 past it), so a dead Redis answers fast
//! and the filter applies its `fault_tolerant`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Kong's script (`kong/plugins/rate-limiting/policies/init.lua`, redis policy), verbatim.
pub const KONG_SCRIPT: &str =
    "local r = redis.call('incr', KEYS[1]); if r == 1 then redis.call('expire', KEYS[1], ARGV[1]) end; return r - 1";

/// Most keys one call may carry (a plugin has at most six periods; a flush batches keys).
pub const MAX_KEYS: usize = 4096;

/// The front's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://[user:password@]host:port[/db]` (a standalone Redis or a managed one).
    pub redis_url: String,
    /// The shared token the filters send (`Authorization: Bearer <token>`).
    pub token: String,
    /// Base path of the endpoints.
    pub path: String,
    /// Bound on each Redis round trip (and on connecting).
    pub redis_timeout: Duration,
}

impl Config {
    /// `path` `/v1/ratelimit`, `redis_timeout` 500 ms.
    pub fn new(redis_url: impl Into<String>, token: impl Into<String>) -> Config {
        Config {
            redis_url: redis_url.into(),
            token: token.into(),
            path: "/v1/ratelimit".into(),
            redis_timeout: Duration::from_millis(500),
        }
    }
}

struct Front {
    redis: ConnectionManager,
    token: Vec<u8>,
    timeout: Duration,
}

/// The front's routes, to serve alone ([`serve`]) or merged into another router (the consumer
/// service's `serve --redis`). Does not wait for Redis: the connection is made on first use and
/// remade after a failure.
pub fn router(config: &Config) -> redis::RedisResult<Router> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(Some(config.redis_timeout))
        // a reconnect is retried on the next request rather than inside this one
        .set_number_of_retries(1)
        .set_max_delay(config.redis_timeout);
    let redis = ConnectionManager::new_lazy_with_config(client, manager_config)?;
    let front = Arc::new(Front { redis, token: config.token.as_bytes().to_vec(), timeout: config.redis_timeout });
    let base = config.path.trim_end_matches('/');
    Ok(Router::new()
        .route(&format!("{base}/incr"), post(incr))
        .route(&format!("{base}/flush"), post(flush))
        .with_state(front))
}

/// Serves the front on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<()> {
    let app = router(&config).map_err(std::io::Error::other)?;
    axum::serve(listener, app).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrBody {
    keys: Vec<IncrKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrKey {
    key: String,
    ttl: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlushBody {
    keys: Vec<FlushKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlushKey {
    key: String,
    by: u64,
    expire_at: u64,
}

#[derive(Serialize)]
struct Counts {
    counts: Vec<u64>,
}

#[derive(Serialize)]
struct Message {
    message: String,
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(Message { message: message.into() })).into_response()
}

impl Front {
    /// `Authorization: Bearer <token>`, compared in constant time.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers.get("authorization").and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")) else {
            return false;
        };
        bool::from(given.ct_eq(&self.token))
    }

    /// One pipelined round trip, bounded by the timeout.
    async fn run(&self, pipe: redis::Pipeline) -> Result<Vec<i64>, Response> {
        let mut redis = self.redis.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async::<Vec<i64>>(&mut redis)).await {
            Ok(Ok(counts)) => Ok(counts),
            Ok(Err(e)) => Err(refuse(StatusCode::SERVICE_UNAVAILABLE, &format!("redis: {:?}", e.kind()))),
            Err(_) => Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "redis: timeout")),
        }
    }
}

/// A JSON body or the reason it is not one (400).
type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn counts(values: Vec<i64>) -> Response {
    Json(Counts { counts: values.into_iter().map(|v| u64::try_from(v).unwrap_or(0)).collect() }).into_response()
}

/// The token, then the body (`shape` names it in the 400), then 1..=MAX_KEYS keys.
fn admit<T>(
    front: &Front,
    headers: &HeaderMap,
    body: Body<T>,
    keys: impl Fn(&T) -> usize,
    shape: &str,
) -> Result<T, Response> {
    if !front.authorized(headers) {
        return Err(refuse(StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    let Ok(Json(body)) = body else { return Err(refuse(StatusCode::BAD_REQUEST, &format!("expected {shape}"))) };
    if !(1..=MAX_KEYS).contains(&keys(&body)) {
        return Err(refuse(StatusCode::BAD_REQUEST, "1 to 4096 keys"));
    }
    Ok(body)
}

async fn incr(State(front): State<Arc<Front>>, headers: HeaderMap, body: Body<IncrBody>) -> Response {
    let body = match admit(&front, &headers, body, |b| b.keys.len(), "{\"keys\":[{\"key\",\"ttl\"}]}") {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut pipe = redis::pipe();
    for k in &body.keys {
        pipe.cmd("EVAL").arg(KONG_SCRIPT).arg(1).arg(&k.key).arg(k.ttl);
    }
    front.run(pipe).await.map_or_else(|response| response, counts)
}

async fn flush(State(front): State<Arc<Front>>, headers: HeaderMap, body: Body<FlushBody>) -> Response {
    let shape = "{\"keys\":[{\"key\",\"by\",\"expire_at\"}]}";
    let body = match admit(&front, &headers, body, |b| b.keys.len(), shape) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut pipe = redis::pipe();
    for k in &body.keys {
        pipe.cmd("INCRBY").arg(&k.key).arg(k.by);
        pipe.cmd("EXPIREAT").arg(&k.key).arg(k.expire_at).ignore();
    }
    front.run(pipe).await.map_or_else(|response| response, counts)
}

//! Kong's counting on a real Redis, the token, bounded failures.

use std::time::{Duration, Instant};

use crate::support::*;
use consumer_auth_ratelimit::{Config, KONG_SCRIPT};
use serde_json::json;

fn incr_body(keys: &[(&str, u64)]) -> String {
    json!({"keys": keys.iter().map(|(k, ttl)| json!({"key": k, "ttl": ttl})).collect::<Vec<_>>()}).to_string()
}

#[tokio::test]
async fn incr_is_kongs_script_and_shares_kongs_keys() {
    let addr = front(config()).await;
    let (minute, hour) = (unique("incr"), unique("incr-hour"));
    let body = incr_body(&[(&minute, 60), (&hour, 3600)]);
    assert_eq!(post(addr, "/v1/ratelimit/incr", Some(TOKEN), &body).await, (200, r#"{"counts":[0,0]}"#.into()));
    assert_eq!(post(addr, "/v1/ratelimit/incr", Some(TOKEN), &body).await, (200, r#"{"counts":[1,1]}"#.into()));
    // the keys as Kong leaves them: a count and Kong's TTL
    assert_eq!(redis_cli(&["GET", &minute]), "2");
    let ttl: u64 = redis_cli(&["TTL", &hour]).parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    // a Kong node running its own script on the same key counts toward the same limit
    assert_eq!(redis_cli(&["EVAL", KONG_SCRIPT, "1", &minute, "60"]), "2");
    let (status, body) = post(addr, "/v1/ratelimit/incr", Some(TOKEN), &incr_body(&[(&minute, 60)])).await;
    assert_eq!((status, body.as_str()), (200, r#"{"counts":[3]}"#));
}

#[tokio::test]
async fn flush_adds_and_sets_the_expiry() {
    let addr = front(config()).await;
    let key = unique("flush");
    redis_cli(&["SET", &key, "5"]);
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 120;
    let body = json!({"keys": [{"key": key, "by": 7, "expire_at": at}]}).to_string();
    assert_eq!(post(addr, "/v1/ratelimit/flush", Some(TOKEN), &body).await, (200, r#"{"counts":[12]}"#.into()));
    let ttl: u64 = redis_cli(&["TTL", &key]).parse().unwrap();
    assert!((110..=120).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn the_token_is_required_and_bodies_are_checked() {
    let addr = front(config()).await;
    let body = incr_body(&[(&unique("auth"), 60)]);
    assert_eq!(post(addr, "/v1/ratelimit/incr", None, &body).await.0, 401);
    assert_eq!(post(addr, "/v1/ratelimit/incr", Some("front-test-tokeN"), &body).await.0, 401);
    assert_eq!(post(addr, "/v1/ratelimit/incr", Some("front-test-token-longer"), &body).await.0, 401);
    for bad in ["", "{", r#"{"keys":[]}"#, r#"{"keys":[{"key":"k"}]}"#, r#"{"keys":[{"key":"k","ttl":-1}]}"#] {
        assert_eq!(post(addr, "/v1/ratelimit/incr", Some(TOKEN), bad).await.0, 400, "{bad}");
    }
    assert_eq!(post(addr, "/v1/ratelimit/flush", Some(TOKEN), r#"{"keys":[{"key":"k","by":1}]}"#).await.0, 400);
    // a key holding something else than a count: Redis refuses, the front says 503
    let key = unique("text");
    redis_cli(&["SET", &key, "not a number"]);
    assert_eq!(post(addr, "/v1/ratelimit/incr", Some(TOKEN), &incr_body(&[(&key, 60)])).await.0, 503);
}

#[tokio::test]
async fn a_dead_redis_is_a_prompt_503() {
    // a port nobody listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = Config::new(format!("redis://{closed}"), TOKEN);
    config.redis_timeout = Duration::from_millis(200);
    let addr = front(config).await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = post(addr, "/v1/ratelimit/incr", Some(TOKEN), &incr_body(&[("k", 60)])).await;
        assert_eq!(status, 503, "{body}");
        assert!(started.elapsed() < Duration::from_millis(450), "{:?}", started.elapsed());
    }
}

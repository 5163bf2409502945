//! Metrics through real Envoy: after a known mix of requests, `/stats/prometheus` shows
//! `consumer_auth_requests_total{plugin,outcome}` with exactly those counts (handed to Envoy on the
//! filter's tick), and `consumer_auth_configurations_total{outcome="loaded"}`. Also the refusal
//! log line: written at `info` when configured so, not at all at Envoy's default level with the
//! default `debug`.

use std::collections::BTreeMap;

use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE, BOB};
use consumer_auth_e2e::http::Request;
use serde_json::json;

/// `name{labels} value` lines of the Prometheus text format, for one metric family.
fn family(text: &str, name: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?.to_string();
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// A filter instance that logs each refusal at `info`.
fn logging(plugins: serde_json::Value) -> serde_json::Value {
    let mut doc = instance(plugins);
    if let Some(fields) = doc.as_object_mut() {
        fields.insert("refusal_log_level".into(), json!("info"));
    }
    doc
}

#[test]
fn request_mix_is_counted_by_plugin_and_outcome() {
    let upstream = EchoServer::start();
    let bootstrap = Bootstrap::new(upstream.port)
        .route("/auth", [logging(json!([plugin("key-auth", json!({}))]))])
        .route(
            "/anon",
            [logging(json!([
                plugin("key-auth", json!({ "anonymous": "anonymous_users" })),
                { "name": "rate-limiting", "consumer": "anonymous_users", "config": { "minute": 2 } }
            ]))],
        )
        .route("/acl", [logging(json!([plugin("key-auth", json!({})), plugin("acl", json!({ "allow": ["admins"] }))]))])
        .route("/quiet", [instance(json!([plugin("key-auth", json!({}))]))]);
    let envoy = Envoy::start(&bootstrap);
    let key = |c: &consumer_auth_e2e::fixtures::Consumer, path: &str| {
        Request::get(path).header("apikey", c.key()).send(envoy.port).status
    };
    for _ in 0..3 {
        assert_eq!(key(&ALICE, "/auth"), 200);
    }
    for _ in 0..2 {
        assert_eq!(Request::get("/auth").send(envoy.port).status, 401);
    }
    assert_eq!(Request::get("/auth").header("apikey", "wrong").send(envoy.port).status, 401);
    let anonymous: Vec<u16> = (0..4).map(|_| Request::get("/anon").send(envoy.port).status).collect();
    assert_eq!(anonymous, [200, 200, 429, 429]);
    assert_eq!(key(&ALICE, "/acl"), 200);
    assert_eq!(key(&BOB, "/acl"), 403);
    // the default refusal level (debug) is below Envoy's (info): no line
    assert_eq!(Request::get("/quiet").send(envoy.port).status, 401);

    envoy.await_metrics_flush();
    let text = envoy.admin("/stats/prometheus").text();
    let requests = family(&text, "consumer_auth_requests_total");
    let expected: BTreeMap<String, u64> = [
        (r#"{plugin="key-auth",outcome="authenticated"}"#, 4),
        (r#"{plugin="key-auth",outcome="no_credentials"}"#, 3),
        (r#"{plugin="key-auth",outcome="invalid_credentials"}"#, 1),
        (r#"{plugin="key-auth",outcome="anonymous"}"#, 2),
        (r#"{plugin="rate-limiting",outcome="rate_limited"}"#, 2),
        (r#"{plugin="acl",outcome="acl_denied"}"#, 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(requests, expected, "Prometheus output:\n{text}");
    let configurations = family(&text, "consumer_auth_configurations_total");
    let loaded = configurations.get(r#"{outcome="loaded"}"#).copied().unwrap_or(0);
    // one per VM that configured each filter instance: the main thread's and each worker's
    assert!(loaded >= 3, "{configurations:?}");
    assert!(!configurations.contains_key(r#"{outcome="refused"}"#), "{configurations:?}");

    // one refusal line per refused request of the routes that log them at info, without the key
    let log = envoy.log();
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("consumer-auth: refused request_id=")).collect();
    assert_eq!(refusals.len(), 2 + 1 + 2 + 1, "{log}");
    assert!(refusals.iter().all(|l| !l.contains("wrong") && !l.contains(ALICE.key()) && !l.contains(BOB.key())));
    assert!(
        refusals.iter().any(|l| l.contains("plugin=acl reason=acl_denied status=403 consumer=bob")),
        "{refusals:?}"
    );
}

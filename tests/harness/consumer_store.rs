//! The shared consumer store (one copy in the proxy's shared data, read by every filter
//! instance on every worker): filled from configuration or from a remote source, switched
//! atomically between generations.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// The generation readers use (`gen` is "<generation> <buckets>").
fn live_generation(h: &Host) -> u64 {
    let gen = h.shared_data("consumer_auth/store:main:gen").expect("a generation").0;
    String::from_utf8(gen).unwrap().split(' ').next().unwrap().parse().unwrap()
}

fn population(extra: Value) -> Value {
    let mut consumers = consumers();
    if let Value::Array(more) = extra {
        consumers.as_array_mut().unwrap().extend(more);
    }
    consumers
}

fn loader(consumers: Value) -> String {
    json!({"store": {"name": "main", "consumers": consumers}}).to_string()
}

fn reader(plugins: Value) -> String {
    json!({"consumer_store": "main", "plugins": plugins}).to_string()
}

fn key_auth_or() -> Value {
    json!([{"name": "key-auth", "config": {"anonymous": "anonymous_users"}}])
}

#[test]
fn readers_get_503_until_the_store_is_loaded() {
    let mut h = host();
    let r = h.configure(&reader(key_auth_or())).unwrap();
    let ex = checked(h.send(&[r], Request::get("/").header("apikey", "alice-key").request_id(Some("x"))));
    assert_refused(&ex, 503, "consumer store 'main' is not loaded yet");
    h.configure(&loader(consumers())).unwrap();
    assert!(
        h.logs().iter().any(|l| l.message == "consumer-auth: store 'main': generation 1 loaded (15 records)"),
        "{:?}",
        h.logs()
    );
    assert_upstream_as(
        &checked(h.send(&[r], Request::get("/").header("apikey", "alice-key"))),
        "alice",
        Some(ALICE_KEY_ID),
    );
}

#[test]
fn every_credential_kind_and_the_anonymous_consumer_come_from_the_store() {
    let mut h = host();
    let extra = json!([{
        "username": "dora",
        "hmacauth_credentials": [{"username": "dora-hmac", "secret": "hmac-secret"}],
        "jwt_secrets": [{"key": "dora-issuer", "secret": "jwt-secret"}],
        "acls": [{"group": "admins"}]
    }]);
    h.configure(&loader(population(extra))).unwrap();
    let r = h
        .configure(&reader(json!([
            {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
            {"name": "basic-auth", "config": {"anonymous": "anonymous_users"}},
            {"name": "request-termination", "consumer": "other_anonymous", "config": {"status_code": 418}}
        ])))
        .unwrap();
    assert_upstream_as(
        &checked(h.send(&[r], Request::get("/").header("apikey", "alice-key"))),
        "alice",
        Some(ALICE_KEY_ID),
    );
    assert_eq!(
        checked(h.send(&[r], Request::get("/").header("apikey", "alice-key")))
            .upstream_header("x-consumer-custom-id")
            .as_deref(),
        Some("crm-1042")
    );
    let ex = checked(h.send(&[r], Request::get("/").header("authorization", &basic("bob-basic", "bob-pw"))));
    assert_upstream_as(&ex, "bob", Some("bob-basic"));
    assert_eq!(
        checked(h.send(&[r], Request::get("/").header("authorization", &basic("bob-basic", "nope"))))
            .upstream_header("x-anonymous-consumer")
            .as_deref(),
        Some("true")
    );
    let ex = checked(h.send(&[r], Request::get("/")));
    assert_upstream_as(&ex, "anonymous_users", None);
    assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ANON_ID));

    // jwt and hmac secrets too
    let rj = h.configure(&reader(json!([{"name": "jwt"}]))).unwrap();
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let (head, claims) = (b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(br#"{"iss":"dora-issuer"}"#));
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"jwt-secret").unwrap();
    mac.update(format!("{head}.{claims}").as_bytes());
    let token = format!("{head}.{claims}.{}", b64(&mac.finalize().into_bytes()));
    let ex = checked(h.send(&[rj], Request::get("/").header("authorization", &format!("Bearer {token}"))));
    assert_upstream_as(&ex, "dora", Some("dora-issuer"));

    let rh = h.configure(&reader(json!([{"name": "hmac-auth"}]))).unwrap();
    let date = consumer_auth::time::http_date(1_767_225_600);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hmac-secret").unwrap();
    mac.update(format!("date: {date}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let auth =
        format!(r#"hmac username="dora-hmac", algorithm="hmac-sha256", headers="date", signature="{signature}""#);
    let ex = checked(h.send(&[rh], Request::get("/").header("date", &date).header("authorization", &auth)));
    assert_upstream_as(&ex, "dora", Some("dora-hmac"));
}

#[test]
fn consumer_scoped_entries_match_store_consumers_by_username() {
    let mut h = host();
    h.configure(&loader(consumers())).unwrap();
    let r = h
        .configure(&reader(json!([
            {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
            {"name": "request-termination", "consumer": "anonymous_users", "config": {"status_code": 401, "message": "Authentication required"}}
        ])))
        .unwrap();
    let ex = checked(h.send(&[r], Request::get("/")));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.body_str(), r#"{"message":"Authentication required"}"#);
    assert_eq!(checked(h.send(&[r], Request::get("/").header("apikey", "bob-key"))).status(), 200);
}

#[test]
fn a_missing_anonymous_consumer_is_a_500() {
    let mut h = host();
    h.configure(&loader(json!([{"username": "x"}]))).unwrap();
    let r = h.configure(&reader(json!([{"name": "key-auth", "config": {"anonymous": "ghost"}}]))).unwrap();
    assert_refused(
        &checked(h.send(&[r], Request::get("/"))),
        500,
        "anonymous consumer ghost is configured but doesn't exist",
    );
}

#[test]
fn a_new_generation_revokes_rotates_and_adds() {
    let mut h = host();
    h.configure(&loader(consumers())).unwrap();
    let r = h
        .configure(&reader(
            json!([{"name": "key-auth"}, {"name": "basic-auth", "config": {"anonymous": "anonymous_users"}}]),
        ))
        .unwrap();
    let req = |k: &str| Request::get("/").header("apikey", k);
    assert_eq!(checked(h.send(&[r], req("bob-key"))).status(), 200);
    // bob's key revoked, alice's password rotated, erin added
    let mut next = consumers();
    next[1]["keyauth_credentials"] = json!([]);
    next[0]["basicauth_credentials"] = json!([{"username": "alice-basic", "password": "rotated"}]);
    next.as_array_mut().unwrap().push(json!({"username": "erin", "keyauth_credentials": [{"key": "erin-key"}]}));
    h.configure(&loader(next)).unwrap();
    assert_eq!(live_generation(&h), 2);
    assert_refused(&checked(h.send(&[r], req("bob-key"))), 401, "Unauthorized");
    assert_upstream_as(
        &checked(h.send(&[r], req("erin-key"))),
        "erin",
        h.send(&[r], req("erin-key")).upstream_header("x-credential-identifier").as_deref(),
    );
    let rb = h.configure(&reader(json!([{"name": "basic-auth"}]))).unwrap();
    let old_pw = Request::get("/").header("authorization", &basic("alice-basic", "alice-pw"));
    assert_refused(&checked(h.send(&[rb], old_pw)), 401, "Unauthorized");
    let new_pw = Request::get("/").header("authorization", &basic("alice-basic", "rotated"));
    assert_upstream_as(&checked(h.send(&[rb], new_pw)), "alice", Some("alice-basic"));
}

/// Workers are separate VMs sharing the proxy's shared data: the store is written once, and
/// every worker reads that one copy.
#[test]
fn one_copy_written_once_for_all_workers() {
    let mut h = host();
    let config = loader(consumers());
    h.configure_isolated(&config).unwrap();
    h.configure_isolated(&config).unwrap();
    let loads = h.logs().iter().filter(|l| l.message.contains("generation 1 loaded")).count();
    assert_eq!(loads, 1, "{:?}", h.logs());
    assert_eq!(live_generation(&h), 1);
    let workers: Vec<FilterId> = (0..3).map(|_| h.configure_isolated(&reader(key_auth_or())).unwrap()).collect();
    for w in workers {
        assert_upstream_as(
            &checked(h.send(&[w], Request::get("/").header("apikey", "alice-key"))),
            "alice",
            Some(ALICE_KEY_ID),
        );
    }
    // no shared-data key or value holds an API key or a password
    for key in h.shared_data_keys() {
        let value = h.shared_data(&key).unwrap().0;
        for secret in ["alice-key", "bob-key", "alice-pw", "bob-pw"] {
            assert!(!key.contains(secret), "{key}");
            assert!(!value.windows(secret.len()).any(|w| w == secret.as_bytes()), "{key} holds {secret}");
        }
    }
}

fn remote_loader(refresh: u64) -> String {
    json!({"store": {"name": "main", "source": {
        "upstream": "consumer_source", "authority": "consumers.internal", "path": "/consumers.json",
        "refresh_seconds": refresh, "timeout_ms": 2000
    }}})
    .to_string()
}

fn doc_body(consumers: Value) -> Vec<u8> {
    json!({"_format_version": "3.0", "consumers": consumers}).to_string().into_bytes()
}

#[test]
fn a_remote_source_is_polled_with_etags_and_failures_keep_the_last_good_generation() {
    // Envoy: the store's metrics are asserted (Kong gets none: docs/KONG.md)
    let mut h = envoy_host();
    h.configure(&remote_loader(30)).unwrap();
    let r = h.configure(&reader(key_auth_or())).unwrap();
    // nothing fetched yet: 503
    assert_eq!(checked(h.send(&[r], Request::get("/"))).status(), 503);
    h.tick();
    let calls = h.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "consumer_source");
    assert_eq!(call.header(":path").as_deref(), Some("/consumers.json"));
    assert_eq!(call.header(":authority").as_deref(), Some("consumers.internal"));
    assert_eq!(call.header("if-none-match"), None);
    assert_eq!(call.timeout_ms, 2000);
    assert_eq!(call.header(":scheme").as_deref(), Some("http"), "the default scheme");
    h.reply_http_call(call.token, 200, &[("etag", "\"v1\"")], &doc_body(consumers()));
    assert_upstream_as(
        &checked(h.send(&[r], Request::get("/").header("apikey", "alice-key"))),
        "alice",
        Some(ALICE_KEY_ID),
    );
    // the same period: no second fetch
    h.tick();
    assert!(h.pending_http_calls().is_empty());

    // next period: If-None-Match, 304 keeps everything
    h.advance(Duration::from_secs(30));
    h.tick();
    let call = h.pending_http_calls().remove(0);
    assert_eq!(call.header("if-none-match").as_deref(), Some("\"v1\""));
    h.reply_http_call(call.token, 304, &[], b"");
    assert_eq!(h.metric("consumer_auth_store_fetches_total.store.main.outcome.unchanged"), Some(1));

    // failures of every kind keep generation 1 and are logged once each
    for (i, reply) in ["500", "invalid", "garbage", "timeout"].into_iter().enumerate() {
        h.advance(Duration::from_secs(30));
        h.tick();
        let call = h.pending_http_calls().remove(0);
        match reply {
            "500" => h.reply_http_call(call.token, 500, &[], b"oops"),
            "invalid" => {
                h.reply_http_call(call.token, 200, &[], &doc_body(json!([{"username": "a"}, {"username": "a"}])))
            }
            "garbage" => h.reply_http_call(call.token, 200, &[], b"{not json"),
            _ => h.fail_http_call(call.token),
        }
        let failures = h.logs().iter().filter(|l| l.message.contains("store 'main': fetch failed:")).count();
        assert_eq!(failures, i + 1);
        assert_eq!(live_generation(&h), 1);
        assert_eq!(checked(h.send(&[r], Request::get("/").header("apikey", "alice-key"))).status(), 200);
    }
    assert!(h
        .logs()
        .iter()
        .any(|l| l.message.contains("fetch failed: invalid document: consumers[1].username: duplicate username 'a'")));
    assert!(h.logs().iter().any(|l| l.message.contains("fetch failed: status 500; keeping generation 1")));
    assert_eq!(h.metric("consumer_auth_store_fetches_total.store.main.outcome.failed"), Some(2));
    assert_eq!(h.metric("consumer_auth_store_fetches_total.store.main.outcome.invalid"), Some(2));

    // a changed document: generation 2, bob revoked
    h.advance(Duration::from_secs(30));
    h.tick();
    let call = h.pending_http_calls().remove(0);
    let mut next = consumers();
    next[1]["keyauth_credentials"] = json!([]);
    h.reply_http_call(call.token, 200, &[("etag", "\"v2\"")], &doc_body(next));
    assert_eq!(live_generation(&h), 2);
    assert_eq!(h.metric("consumer_auth_store_generation.store.main"), Some(2));
    let ex = checked(h.send(&[r], Request::get("/").header("apikey", "bob-key")));
    assert_upstream_as(&ex, "anonymous_users", None);
}

#[test]
fn one_fetch_per_proxy_per_period() {
    let mut h = host();
    for _ in 0..3 {
        h.configure_isolated(&remote_loader(60)).unwrap();
    }
    h.tick();
    assert_eq!(h.pending_http_calls().len(), 1, "one leader for the period");
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 200, &[], &doc_body(consumers()));
    h.advance(Duration::from_secs(10));
    h.tick();
    assert!(h.pending_http_calls().is_empty(), "still the same period");
    h.advance(Duration::from_secs(60));
    h.tick();
    assert_eq!(h.pending_http_calls().len(), 1);
}

#[test]
fn store_configuration_refusals() {
    assert_eq!(
        refusal(&json!({"consumers": [], "consumer_store": "main"}).to_string()),
        "only one of these fields must be non-empty: 'consumers', 'consumer_store'"
    );
    assert_eq!(
        refusal(&json!({"consumer_store": "a:b"}).to_string()),
        "consumer_store: a store name is made of A-Z, a-z, 0-9, '_' and '-'"
    );
    assert_eq!(
        refusal(&json!({"store": {"name": "main"}}).to_string()),
        "store: exactly one of these fields must be non-empty: 'consumers', 'source'"
    );
    assert_eq!(
        refusal(
            &json!({"store": {"name": "main", "consumers": [{"username": "a", "keyauth_credentials": [{}]}]}})
                .to_string()
        ),
        "store.consumers[0].keyauth_credentials[0]: exactly one of these fields must be non-empty: 'key', 'key_hash'"
    );
    assert_eq!(
        refusal(&json!({"store": {"name": "main", "source": {"upstream": "c", "refresh_seconds": 0}}}).to_string()),
        "store.source.refresh_seconds: value must be greater than 0"
    );
    assert_eq!(
        refusal(&json!({"store": {"name": "main", "source": {"path": "/x"}}}).to_string()),
        "store.source.upstream: required field missing"
    );
    assert_eq!(refusal(&json!({"store": {"name": "main", "sauce": {}}}).to_string()), "store.sauce: unknown field");
    assert_eq!(
        refusal(&json!({"store": {"name": "main", "source": {"upstream": "c", "scheme": "ftp"}}}).to_string()),
        "store.source.scheme: expected one of: http, https"
    );
}

/// A document of several MiB is read from the host in chunks (a consumer may straddle two):
/// every consumer, from the first to the last, is found, and a duplicate near the end refuses
/// the whole document with its path, keeping the last good generation.
#[test]
fn a_large_remote_document_is_read_in_chunks() {
    let mut h = host();
    h.configure(&remote_loader(1)).unwrap();
    let r = h.configure(&reader(json!([{"name": "key-auth"}]))).unwrap();
    let n = 30_000;
    let many = |last_key: &str| -> Value {
        let mut c: Vec<Value> = (0..n)
            .map(|i| {
                json!({"username": format!("user-{i}"), "custom_id": format!("crm-{i}"),
                "keyauth_credentials": [{"key": format!("key-{i}")}],
                "acls": [{"group": "g"}]})
            })
            .collect();
        c.push(json!({"username": "last", "keyauth_credentials": [{"key": last_key}]}));
        Value::Array(c)
    };
    let body = doc_body(many("key-last"));
    assert!(body.len() > 3 << 20, "several 1 MiB chunks: {}", body.len());
    h.tick();
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 200, &[], &body);
    assert_eq!(live_generation(&h), 1, "{:?}", h.logs().last());
    for i in [0, 1, 6_000, 12_345, 29_999] {
        let ex = checked(h.send(&[r], Request::get("/").header("apikey", &format!("key-{i}"))));
        assert_eq!(ex.status(), 200);
        assert_eq!(ex.upstream_header("x-consumer-username"), Some(format!("user-{i}")));
        assert_eq!(ex.upstream_header("x-consumer-custom-id").as_deref(), Some(format!("crm-{i}").as_str()));
    }
    let last = checked(h.send(&[r], Request::get("/").header("apikey", "key-last")));
    assert_eq!(last.upstream_header("x-consumer-username").as_deref(), Some("last"));

    // the last consumer reuses the first one's key: the whole document is refused
    h.advance(Duration::from_secs(1));
    h.tick();
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 200, &[], &doc_body(many("key-0")));
    let line = &h.logs().last().unwrap().message;
    assert_eq!(
        line,
        &format!(
            "consumer-auth: store 'main': fetch failed: invalid document: consumers[{n}].keyauth_credentials[0].key: \
             duplicate key (also used by consumers[0]); keeping generation 1"
        )
    );
    assert_eq!(live_generation(&h), 1);
    let last = checked(h.send(&[r], Request::get("/").header("apikey", "key-last")));
    assert_eq!(last.upstream_header("x-consumer-username").as_deref(), Some("last"));
}

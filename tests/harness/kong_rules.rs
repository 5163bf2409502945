//! The filter under the rules of the Kong model (`kong_model()`) that were read from
//! ngx_wasm_module's sources rather than observed (those are in `kong_facts.rs`): CAS 0 only
//! creates, a read of the HTTP call's response body ignores its offset, and before Kong 3.9 a
//! `:path` with a query string cannot be set and metric calls trap. Each test failed before the
//! filter followed these rules (docs/KONG.md).

use crate::support::*;
use std::time::Duration;

fn key_auth() -> serde_json::Value {
    json!([{"name": "key-auth"}])
}

/// An inline store is written and rewritten (its `meta` and `gen` entries exist after the first
/// generation: a CAS-0 write of them is refused by ngx_wasm_module), and rate-limiting counts.
#[test]
fn the_store_and_rate_limiting_write_shared_data() {
    let mut h = kong_model();
    h.configure(&json!({"store": {"name": "main", "consumers": consumers()}}).to_string()).unwrap();
    // On Kong the document's consumers are written on the first tick or request, never in
    // on_configure (a trap there, without the shm_kv zone, would stop the worker for good).
    h.tick();
    let reader = h.configure(&json!({"consumer_store": "main", "plugins": key_auth()}).to_string()).unwrap();
    let alice = || Request::get("/").header("apikey", "alice-key");
    assert_upstream_as(&checked(h.send(&[reader], alice())), "alice", Some(ALICE_KEY_ID));
    // new content: generation 2 overwrites `gen` and `meta`
    let mut next = consumers();
    next[0]["keyauth_credentials"] = json!([{"key": "alice-new-key"}]);
    h.configure(&json!({"store": {"name": "main", "consumers": next}}).to_string()).unwrap();
    h.tick();
    assert!(h.logs().iter().any(|l| l.message.contains("generation 2 loaded")), "{:?}", h.logs());
    assert_eq!(checked(h.send(&[reader], alice())).status(), 401);
    let ex = checked(h.send(&[reader], Request::get("/").header("apikey", "alice-new-key")));
    assert_eq!(ex.status(), 200);

    let limited =
        h.configure(&doc(json!([{"name": "key-auth"}, {"name": "rate-limiting", "config": {"minute": 2}}]))).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| checked(h.send(&[limited], alice())).status()).collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert!(h.vm_failure().is_none(), "{:?}", h.vm_failure());
}

/// A remote document of several MiB (read in 1 MiB pieces on Envoy) loads whole.
#[test]
fn a_large_remote_document_loads() {
    let mut h = kong_model();
    let loader = json!({"store": {"name": "main", "source": {
        "upstream": "127.0.0.1:9000", "path": "/consumers.json", "refresh_seconds": 10
    }}});
    h.configure(&loader.to_string()).unwrap();
    let reader = h.configure(&json!({"consumer_store": "main", "plugins": key_auth()}).to_string()).unwrap();
    let consumers: Vec<_> = (0..40_000)
        .map(|i| json!({"username": format!("user-{i:05}"), "keyauth_credentials": [{"key": format!("key-{i:05}-padding-padding-padding-padding")}]}))
        .collect();
    let body = json!({"consumers": consumers}).to_string().into_bytes();
    assert!(body.len() > 3 << 20, "{} bytes", body.len());
    h.advance(Duration::from_secs(10));
    h.tick();
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 200, &[], &body);
    assert!(h.logs().iter().any(|l| l.message.contains("generation 1 loaded (120000 records")), "{:?}", h.logs());
    for i in [0, 19_999, 39_999] {
        let ex = checked(h.send(
            &[reader],
            Request::get("/").header("apikey", &format!("key-{i:05}-padding-padding-padding-padding")),
        ));
        assert_eq!(ex.upstream_header("x-consumer-username"), Some(format!("user-{i:05}")));
    }
}

/// hide_credentials in the query sets nginx's `$args` instead of a `:path` with a query string,
/// and nothing calls the metric functions: both trap before Kong 3.9.
#[test]
fn requests_never_call_what_kong_cannot_do() {
    let mut h = kong_model();
    h.kong_before_3_9();
    let f = h.configure(&doc(json!([{"name": "key-auth", "config": {"hide_credentials": true}}]))).unwrap();
    let ex = checked(h.send(&[f], Request::get("/p?z=9&apikey=alice-key&a=1")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?z=9&a=1");
    let ex = checked(h.send(&[f], Request::get("/p?apikey=wrong")));
    assert_refused(&ex, 401, "Unauthorized");
    assert!(h.metrics().is_empty(), "{:?}", h.metrics());
    assert!(h.vm_failure().is_none(), "{:?}", h.vm_failure());
}

/// A host that refuses the new query string never gets the credential forwarded: the request is
/// refused (500) instead. (A host that accepts it but does not apply it takes the check after
/// the write, which the harness cannot stage.)
#[test]
fn a_query_the_host_does_not_take_fails_closed() {
    let mut h = kong_model();
    h.refuse_property_set("request.query");
    let f = h.configure(&doc(json!([{"name": "key-auth", "config": {"hide_credentials": true}}]))).unwrap();
    let ex = checked(h.send(&[f], Request::get("/p?apikey=alice-key&a=1")));
    assert_refused(&ex, 500, "An unexpected error occurred");
    assert!(ex.upstream.is_none());
}

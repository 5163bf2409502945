//! The model of Kong 3.9's ngx_wasm_module (the harness's Kong mode, `kong_model()`): one test
//! per behaviour observed on a real build of that host in December 2026 (the "Kong host facts"
//! of docs/KONG.md, "The model of Kong's host"), each showing what the model does and that the
//! filter, taking the host for Kong, copes with it. Where the model's behaviour shows only
//! through a filter that does what Kong cannot take, the filter is made to take the host for
//! Envoy (`envoy_minded`: Envoy's `xds.node` property set), as it did before it knew the host.
//! The model's rules alone are unit-tested in `test-harness/src/kong.rs`.

use std::time::Duration;

use crate::support::*;
use proxy_wasm_harness::LogLevel;
use serde_json::Value;

const FAIL_CLOSED: &str = "An unexpected error occurred";

/// The Kong model with a filter that takes it for Envoy.
fn envoy_minded() -> Host {
    let mut h = kong_model();
    h.set_property("xds.node", b"\x0a\x04node");
    h
}

fn key_auth(config: Value) -> Value {
    json!([{"name": "key-auth", "config": config}])
}

fn alice() -> Request {
    Request::get("/").header("apikey", "alice-key")
}

/// Models Kong host fact 1: a request header cannot be removed (its hash is zeroed and nginx
/// forwards it anyway); a single header can be overwritten in place.
#[test]
fn fact_01_a_request_header_cannot_be_removed() {
    // The model: a filter that removes the forged headers (on a route without authentication, so
    // that no identity is handed on) still lets them reach the upstream.
    let mut h = envoy_minded();
    let f = h.configure(&doc(json!([{"name": "rate-limiting", "config": {"minute": 100}}]))).unwrap();
    let ex = checked(h.send(&[f], Request::get("/").header("X-Consumer-Groups", "admins")));
    assert!(ex.host_call_count("proxy_remove_header_map_value") > 0, "{:?}", ex.host_calls);
    assert_eq!(ex.upstream_headers("x-consumer-groups"), ["admins"]);

    // The filter on Kong never removes: it blanks the hidden key in place, overwrites a single
    // header it sets, and refuses a request carrying an identity header it would have to remove.
    let mut h = kong_model();
    let f = h.configure(&doc(key_auth(json!({"hide_credentials": true})))).unwrap();
    let ex = checked(h.send(&[f], alice().header("X-Consumer-Username", "mallory")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_headers("apikey"), [""]);
    assert_eq!(ex.upstream_headers("x-consumer-username"), ["alice"]);
    assert_eq!(ex.host_call_count("proxy_remove_header_map_value"), 0);
    let ex = checked(h.send(&[f], alice().header("X-Consumer-Groups", "sekrit-admins")));
    assert_refused(&ex, 500, FAIL_CLOSED);
    let line = ex.logs.iter().find(|l| l.message.contains("refusing request")).expect("a refusal line");
    assert!(line.message.to_ascii_lowercase().contains("x-consumer-groups"), "{line:?}");
    assert!(!ex.logs.iter().any(|l| l.message.contains("sekrit")), "the forged value is never logged");
}

/// Models Kong host fact 2: replacing a header the request carries twice clears every copy, the
/// new value too (the filter then sees none; nginx forwards them all).
#[test]
fn fact_02_replacing_a_duplicated_header_clears_every_copy() {
    // The filter checks the copies before any change: a header it would replace (X-Consumer-ID
    // for an authenticated request) or blank (the hidden key) carried twice refuses the request.
    let mut h = kong_model();
    let f = h.configure(&doc(key_auth(json!({"hide_credentials": true})))).unwrap();
    for twice in [
        alice().header("X-Consumer-ID", "evil-1").header("x-consumer-id", "evil-2"),
        alice().header("X-Consumer-Username", "m1").header("x-consumer-username", "m2"),
    ] {
        let ex = checked(h.send(&[f], twice));
        assert_refused(&ex, 500, FAIL_CLOSED);
        assert_eq!(ex.host_call_count("proxy_replace_header_map_value"), 0, "nothing changed before refusing");
        assert!(ex.logged("headers, which Kong's ngx_wasm_module cannot"), "{:?}", ex.logs);
    }
}

/// Models Kong host fact 3: setting `:path` with a query string works (it refreshes the host's
/// cached path); setting `request.query` alone does not refresh the cached `:path`, but sets
/// nginx's `$args`, which Kong builds the upstream URI from.
#[test]
fn fact_03_path_with_a_query_and_request_query() {
    let plugins = key_auth(json!({"hide_credentials": true}));
    // The filter on Kong sets `request.query` and checks it there, where the new value shows.
    let mut h = kong_model();
    let f = h.configure(&doc(plugins.clone())).unwrap();
    let ex = checked(h.send(&[f], Request::get("/p?z=9&apikey=alice-key&a=1")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?z=9&a=1");
    assert_eq!(ex.properties.get("request.query").map(Vec::as_slice), Some(&b"z=9&a=1"[..]));
    assert_eq!(ex.host_call_count("proxy_replace_header_map_value"), 0, "no `:path` set");
    // Kong before 3.9 (from its sources) traps on a `:path` with a query: the filter never sets one.
    let mut h = kong_model();
    h.kong_before_3_9();
    let f = h.configure(&doc(plugins)).unwrap();
    let ex = checked(h.send(&[f], Request::get("/p?apikey=alice-key&a=1")));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?a=1");
}

/// Models Kong host fact 4: without the `shm_kv` zone the first shared-data call traps and nginx
/// answers its 500 page; a trap in `on_configure` would make the workers exit.
#[test]
fn fact_04_without_the_shm_kv_zone_shared_data_traps() {
    let store = json!({"store": {"name": "main", "consumers": consumers()}}).to_string();
    let reader = json!({"consumer_store": "main", "plugins": [{"name": "key-auth"}]}).to_string();
    let limited = doc(json!([{"name": "key-auth"}, {"name": "rate-limiting", "config": {"minute": 5}}]));
    // Each route in a host of its own: the harness never calls a VM again after a trap.
    let no_zone = || {
        let mut h = kong_model();
        h.kong_without_shm_kv();
        h
    };
    // The filter makes no shared-data call while configuring on Kong: every instance starts.
    let mut h = no_zone();
    let plain = h.configure(&doc(key_auth(json!({})))).unwrap();
    h.configure(&store).expect("a store's consumers are written later on Kong");
    h.configure(&reader).unwrap();
    h.configure(&limited).unwrap();
    assert_upstream_as(&checked(h.send(&[plain], alice())), "alice", Some(ALICE_KEY_ID));
    // Requests that need shared data: nginx's 500, never forwarded, never waiting.
    let mut h = no_zone();
    let f = h.configure(&limited).unwrap();
    let mut h2 = no_zone();
    let chain = [h2.configure(&store).unwrap(), h2.configure(&reader).unwrap()];
    for ex in [h.send(&[f], alice()), h2.send(&chain, alice())] {
        assert_eq!(ex.status(), 500);
        assert!(ex.upstream.is_none() && !ex.paused);
        assert!(ex.trap.as_deref().unwrap_or_default().contains("could not resolve namespace"), "{:?}", ex.trap);
    }
    // A filter that writes its store while configuring (as on Envoy) would stop the workers.
    let mut h = envoy_minded();
    h.kong_without_shm_kv();
    let refused = h.configure(&store).expect_err("a trap in on_configure");
    assert!(refused.message.contains("could not resolve namespace"), "{}", refused.message);
}

/// The Kong model with a store loading from `upstream`, once its first period has come (ticked).
fn fetching_from(upstream: &str) -> Host {
    let mut h = kong_model();
    let loader = json!({"store": {"name": "main", "source": {
        "upstream": upstream, "path": "/consumers.json", "refresh_seconds": 10, "timeout_ms": 5000
    }}});
    h.configure(&loader.to_string()).unwrap();
    h.advance(Duration::from_secs(10));
    h.tick();
    h
}

/// Models Kong host fact 5: `on_http_call_response` is called when a dispatch fails (zero
/// headers, body and trailers, a `:dispatch_status` pseudo-header saying why).
#[test]
fn fact_05_a_failed_dispatch_is_reported() {
    let mut h = fetching_from("127.0.0.1:9000");
    let call = h.pending_http_calls().remove(0);
    h.fail_http_call_because(call.token, "broken connection");
    // reported at once, not after the loader's own deadline (timeout_ms + 5 s)
    let failed = h.logs().iter().filter(|l| l.message.contains("store 'main': fetch failed: no answer (")).count();
    assert_eq!(failed, 1, "{:?}", h.logs());
    assert!(!h.logs().iter().any(|l| l.message.contains("no answer within the timeout")));
    assert!(h.pending_http_calls().is_empty());
    // the next period fetches again
    h.advance(Duration::from_secs(10));
    h.tick();
    assert_eq!(h.pending_http_calls().len(), 1);
    assert!(h.vm_failure().is_none(), "{:?}", h.vm_failure());
}

/// Models Kong host fact 6: `dispatch_http_call` goes to `host:port` (no cluster names), over
/// HTTP/1.1, from the request, tick and call-response callbacks.
#[test]
fn fact_06_dispatch_goes_to_host_and_port() {
    let h = fetching_from("127.0.0.1:9000");
    let call = h.pending_http_calls().remove(0);
    assert_eq!(call.upstream, "127.0.0.1:9000");
    assert_eq!(call.header(":method").as_deref(), Some("GET"));
    assert!(
        call.headers.iter().all(|(n, _)| !n.starts_with("grpc") && n != "te"),
        "plain HTTP/1.1: {:?}",
        call.headers
    );
    // An Envoy cluster name is not a target there: the loader says so, and keeps its store.
    let h = fetching_from("consumer_store");
    assert!(h.pending_http_calls().is_empty());
    let line = h.logs().iter().find(|l| l.message.contains("store 'main': fetch failed: cannot dispatch"));
    assert!(line.is_some_and(|l| l.level == LogLevel::Warn), "{:?}", h.logs());
}

/// Models Kong host fact 7: `proxy_dispatch_grpc_call` is not implemented and traps the
/// instance. The filter makes no gRPC call, whatever it does.
#[test]
fn fact_07_no_grpc_calls() {
    let mut h = fetching_from("127.0.0.1:9000");
    let reader =
        h.configure(&json!({"consumer_store": "main", "plugins": [{"name": "key-auth"}]}).to_string()).unwrap();
    let limited =
        h.configure(&doc(json!([{"name": "key-auth"}, {"name": "rate-limiting", "config": {"second": 1}}]))).unwrap();
    let call = h.pending_http_calls().remove(0);
    h.reply_http_call(call.token, 200, &[], json!({"consumers": consumers()}).to_string().as_bytes());
    assert_upstream_as(&checked(h.send(&[reader], alice())), "alice", Some(ALICE_KEY_ID));
    for _ in 0..2 {
        checked(h.send(&[limited], alice()));
    }
    let grpc: Vec<String> = h.host_calls().into_keys().filter(|name| name.contains("grpc")).collect();
    assert!(grpc.is_empty(), "{grpc:?}");
    assert!(h.vm_failure().is_none(), "{:?}", h.vm_failure());
}

fn form(body: &str) -> Request {
    Request::post("/").header("content-type", "application/x-www-form-urlencoded").body(body)
}

/// Models Kong host fact 8: the request body is read after the access phase: the header
/// callback never sees end_of_stream, the body comes whole in one callback after every header
/// callback, a filter paused in its header callback waits for ever, a chunked body cannot be
/// re-framed.
#[test]
fn fact_08_the_body_comes_after_the_access_phase() {
    let plugins = key_auth(json!({"key_in_body": true, "hide_credentials": true}));
    let mut h = kong_model();
    let f = h.configure(&doc(plugins.clone())).unwrap();
    // judged in the body callback; the key leaves the body, Content-Length follows
    let ex = checked(h.send(&[f], form("a=1&apikey=alice-key&b=2")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"a=1&b=2");
    assert_eq!(ex.upstream_header("content-length").as_deref(), Some("7"));
    // sent in pieces, it still comes whole
    let pieces = form("").body_chunks(vec![b"apikey=ali".to_vec(), b"ce-key".to_vec()]);
    assert_upstream_as(&checked(h.send(&[f], pieces)), "alice", Some(ALICE_KEY_ID));
    // refused in the body callback: never forwarded
    assert_refused(&checked(h.send(&[f], form("apikey=nope"))), 401, "Unauthorized");
    // no body: judged in the header callback although end_of_stream never comes
    assert_upstream_as(&checked(h.send(&[f], alice())), "alice", Some(ALICE_KEY_ID));
    assert_refused(&checked(h.send(&[f], Request::get("/"))), 401, "No API key found in request");
    // chunked (no Content-Length): refused, never judged as empty
    let chunked = form("apikey=alice-key").header("transfer-encoding", "chunked");
    assert_refused(&checked(h.send(&[f], chunked)), 500, FAIL_CLOSED);

    // A filter that pauses in the header callback for the body (as on Envoy) waits for ever.
    let mut h = envoy_minded();
    let f = h.configure(&doc(plugins)).unwrap();
    let ex = checked(h.send(&[f], form("apikey=alice-key")));
    assert!(ex.paused && ex.upstream.is_none() && ex.local.is_none());
}

/// Models Kong host fact 9: SIMD128 is on in Kong's wasmtime, and a runtime without it refuses
/// the module at start (nginx's `[emerg] ... SIMD support is not enabled`), never per request.
#[test]
fn fact_09_simd_is_required() {
    let refused = Host::compile_without_simd(wasm()).expect_err("the filter uses SIMD128");
    assert!(refused.to_string().contains("SIMD support is not enabled"), "{refused}");
    // With SIMD (the model's runtime), the RSA arithmetic that uses it verifies an RS256 token.
    let mut h = kong_model();
    let doc = json!({"consumers": crate::jwt::consumers_with_jwt(), "plugins": [{"name": "jwt"}]}).to_string();
    let f = h.configure(&doc).unwrap();
    let key = crate::jwt::key_for("RS256");
    let token = crate::jwt::token("RS256", &key, json!({"exp": NOW + 600}));
    let ex = checked(h.send(&[f], Request::get("/").header("authorization", &format!("Bearer {token}"))));
    assert_upstream_as(&ex, "alice", Some(&key));
}

/// Models Kong host fact 10: metrics a filter defines are not exported by plain nginx (and
/// Kong 3.4–3.7's ngx_wasm_module traps on the metric calls, `kong_before_3_9`). On Kong the
/// filter defines none; its refusal log line is what remains.
#[test]
fn fact_10_no_metrics_on_kong() {
    let mut h = kong_model();
    h.kong_before_3_9();
    let f =
        h.configure(&doc(json!([{"name": "key-auth"}, {"name": "rate-limiting", "config": {"minute": 1}}]))).unwrap();
    checked(h.send(&[f], alice()));
    let limited = checked(h.send(&[f], alice()));
    assert_refused(&limited, 429, "API rate limit exceeded");
    assert!(limited.logged("consumer-auth: refused request_id="), "{:?}", limited.logs);
    checked(h.send(&[f], Request::get("/")));
    assert!(h.metrics().is_empty(), "{:?}", h.metrics());
    let metric_calls: Vec<String> = h.host_calls().into_keys().filter(|name| name.contains("metric")).collect();
    assert!(metric_calls.is_empty(), "{metric_calls:?}");
}

// clippy.toml lets `#[test]` functions expect; this binary's helpers (loading the fixture filter,
// configuring it) expect too: a helper that cannot set a test up fails that test.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use proxy_wasm_harness::*;

fn host() -> Host {
    Host::load(common::fixture_wasm()).expect("load fixture")
}

fn one(name: &str) -> (Host, FilterId) {
    let mut h = host();
    let f = h.configure(&format!(r#"{{"name":"{name}"}}"#)).expect("configure");
    (h, f)
}

#[test]
fn passes_request_upstream_with_added_header() {
    let (mut h, f) = one("a");
    let ex = h.send(&[f], Request::get("/hello?x=1").header("X-Echo", "hi"));
    ex.assert_no_trap();
    assert!(!ex.paused);
    assert!(ex.local.is_none());
    let up = ex.upstream.as_ref().expect("went upstream");
    assert_eq!(up.method, "GET");
    assert_eq!(up.path, "/hello?x=1");
    assert_eq!(ex.upstream_header("x-seen-by").as_deref(), Some("a"));
    assert_eq!(ex.upstream_header("X-ECHOED").as_deref(), Some("hi"));
    assert_eq!(ex.upstream_header(":authority").as_deref(), Some("example.com"));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.response_header("x-order").as_deref(), Some("a;"));
    assert!(ex.logged("a on_log"));
    assert!(ex.host_call_count("proxy_add_header_map_value") >= 1);
    assert!(ex.host_call_total() > 3);
    assert_eq!(h.metric("fixture_requests"), Some(1));
}

#[test]
fn chain_order_and_duplicates() {
    let mut h = host();
    let a = h.configure(r#"{"name":"a"}"#).unwrap();
    let b = h.configure(r#"{"name":"b"}"#).unwrap();
    let ex = h.send(&[a, b], Request::get("/"));
    ex.assert_no_trap();
    assert_eq!(ex.upstream_headers("x-seen-by"), vec!["a", "b"]);
    // response filters run in reverse order
    assert_eq!(ex.response_header("x-order").as_deref(), Some("b;a;"));
    assert_eq!(h.metric("fixture_requests"), Some(2));
    assert_eq!(h.metric("fixture_instances"), Some(2));
}

#[test]
fn isolated_vms_share_host_state() {
    let mut h = host();
    let a = h.configure_isolated(r#"{"name":"a"}"#).unwrap();
    let b = h.configure_isolated(r#"{"name":"b"}"#).unwrap();
    assert_ne!(a.vm_index(), b.vm_index());
    let ex = h.send(&[a, b], Request::get("/").header("x-shared", "1"));
    ex.assert_no_trap();
    // b replaced a's header: the counter went 1 (a) then 2 (b)
    assert_eq!(ex.upstream_headers("x-shared-count"), vec!["2"]);
    assert_eq!(h.shared_data("counter").unwrap().0, b"2");
}

#[test]
fn local_response_stops_chain() {
    let mut h = host();
    let a = h.configure(r#"{"name":"a"}"#).unwrap();
    let b = h.configure(r#"{"name":"b"}"#).unwrap();
    let ex = h.send(&[a, b], Request::get("/").header("x-deny", "1"));
    ex.assert_no_trap();
    assert_eq!(ex.status(), 403);
    assert_eq!(ex.body_str(), "denied by a");
    assert_eq!(ex.local_header("X-Reason").as_deref(), Some("denied"));
    assert!(ex.upstream.is_none());
    assert!(!ex.paused);
    assert!(!ex.logged("b request headers"));
    assert!(ex.logged("a on_log") && ex.logged("b on_log"));
}

#[test]
fn path_rewrite_and_header_removal() {
    let (mut h, f) = one("a");
    let ex = h.send(
        &[f],
        Request::get("/old").header("x-set-path", "/new?q").header("x-remove", "x-secret").header("x-secret", "s"),
    );
    ex.assert_no_trap();
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/new?q");
    assert_eq!(ex.upstream_header("x-secret"), None);
}

#[test]
fn binary_and_duplicate_header_values() {
    let (mut h, f) = one("a");
    let ex = h.send(
        &[f],
        Request::get("/")
            .header_bytes("x-bin", b"\xff\x00\xfe")
            .header("x-dup", "1")
            .header("x-dup", "")
            .header("x-count", "?"),
    );
    ex.assert_no_trap();
    assert_eq!(ex.upstream_header("x-bin-len").as_deref(), Some("3"));
    let up = ex.upstream.as_ref().unwrap();
    let copy = up.headers.iter().find(|(n, _)| n == "x-bin-copy").unwrap();
    assert_eq!(copy.1, b"\xff\x00\xfe");
    assert_eq!(ex.upstream_headers("x-dup"), vec!["1", ""]);
    // 4 pseudo + x-bin + 2 x-dup + x-count + x-seen-by + x-bin-len + x-bin-copy
    assert_eq!(ex.upstream_header("x-count").as_deref(), Some("11"));
}

#[test]
fn properties_builtin_per_request_and_shared_along_chain() {
    let mut h = host();
    let a = h.configure_with_root_id("root-a", r#"{"name":"a"}"#).unwrap();
    let b = h.configure(r#"{"name":"b"}"#).unwrap();
    let ex = h.send(
        &[a, b],
        Request::get("/p?x")
            .header("x-prop-get", "1")
            .request_id(Some("abc"))
            .property("source.address", b"10.0.0.1:5"),
    );
    ex.assert_no_trap();
    assert_eq!(ex.upstream_headers("x-rid"), vec!["abc"]); // replaced by b (set = replace)
    assert_eq!(ex.upstream_header("x-props").as_deref(), Some("/p?x|HTTP/1.1|none|10.0.0.1:5")); // b has an empty root id (empty = None in the SDK)
    assert_eq!(ex.upstream_header("x-prop").as_deref(), Some("none"));

    // a sets, b (later in the chain) reads it
    let ex = h.send(&[a, b], Request::get("/").header("x-prop-set", "v1").header("x-prop-get", "1"));
    assert_eq!(ex.upstream_header("x-prop").as_deref(), Some("v1"));
    assert_eq!(ex.properties.get("fixture.value").map(Vec::as_slice), Some(&b"v1"[..]));
    assert!(ex.upstream_header("x-rid").unwrap().starts_with("req-"));

    // not visible to the next request; absent request id
    let ex = h.send(&[a], Request::get("/").header("x-prop-get", "1").request_id(None));
    assert_eq!(ex.upstream_header("x-prop").as_deref(), Some("none"));
    assert_eq!(ex.upstream_header("x-rid").as_deref(), Some("none"));
    let ex = h.send(&[a], Request::get("/q").header("x-prop-get", "1"));
    assert_eq!(ex.upstream_header("x-props").as_deref(), Some("/q|HTTP/1.1|root-a|none"));
}

#[test]
fn buffered_body_is_whole_and_replaceable() {
    let (mut h, f) = one("a");
    let ex = h.send(
        &[f],
        Request::post("/").header("x-buffer", "1").body_chunks(vec![b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()]),
    );
    ex.assert_no_trap();
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"ABCDE");
    // header mutation while headers were paused is visible upstream
    assert_eq!(ex.upstream_header("x-body-len").as_deref(), Some("5"));
    assert!(ex.logged("request body size=2 eos=false"));
    assert!(ex.logged("request body size=4 eos=false"));
    assert!(ex.logged("request body size=5 eos=true"));
}

#[test]
fn streaming_body_chunks_and_empty_final_chunk() {
    let (mut h, f) = one("a");
    let ex = h.send(&[f], Request::post("/").body_chunks(vec![b"ab".to_vec(), b"cd".to_vec()]));
    ex.assert_no_trap();
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"abcd");
    assert!(ex.logged("request body size=2 eos=false"));
    assert!(ex.logged("request body size=2 eos=true"));
    let ex = h.send(&[f], Request::post("/").body(""));
    assert!(ex.logged("request headers n=4 eos=false"));
    assert!(ex.logged("request body size=0 eos=true"));
    let ex = h.send(&[f], Request::get("/"));
    assert!(ex.logged("eos=true"));
}

#[test]
fn upstream_response_goes_through_response_filters() {
    let mut h = host();
    let a = h.configure(r#"{"name":"a"}"#).unwrap();
    let b = h.configure(r#"{"name":"b"}"#).unwrap();
    let ex = h.send(&[a, b], Request::get("/").upstream_response(404, &[("x-up", "1")], b"nope"));
    ex.assert_no_trap();
    assert_eq!(ex.status(), 404);
    let r = ex.response.as_ref().unwrap();
    assert_eq!(r.body, b"nope+b+a");
    assert_eq!(ex.response_header("x-up").as_deref(), Some("1"));
}

#[test]
fn trap_is_captured_and_vm_fails_closed() {
    let (mut h, f) = one("a");
    let ex = h.send(&[f], Request::get("/").header("x-panic", "1"));
    assert!(ex.trap.is_some());
    assert_eq!(ex.status(), 503);
    assert!(ex.logs.iter().any(|l| l.level == LogLevel::Critical && l.message.contains("boom requested by a")));
    let r = std::panic::catch_unwind(|| ex.assert_no_trap());
    assert!(r.is_err());
    // like Envoy, the crashed VM is not used again
    let ex = h.send(&[f], Request::get("/"));
    assert_eq!(ex.status(), 503);
    assert!(h.vm_failure().is_some());
}

#[test]
fn configure_failure_reports_logs() {
    let mut h = host();
    let err = h.configure(r#"{"fail": true}"#).unwrap_err();
    assert!(err.message.contains("proxy_on_configure"), "{err}");
    assert!(err.logs.iter().any(|l| l.level == LogLevel::Error && l.message.contains("fail requested")));
    assert!(format!("{err}").contains("fail requested"));
    // the host is still usable
    let f = h.configure(r#"{"name":"ok"}"#).unwrap();
    h.send(&[f], Request::get("/")).assert_no_trap();
}

#[test]
fn http_call_pauses_then_resumes() {
    let (mut h, f) = one("a");
    let ex = h.send(&[f], Request::get("/x").header("x-call", "tok"));
    ex.assert_no_trap();
    assert!(ex.paused);
    assert!(ex.upstream.is_none());
    let calls = h.pending_http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].upstream, "auth");
    assert_eq!(calls[0].header(":path").as_deref(), Some("/check"));
    assert_eq!(calls[0].header("x-token").as_deref(), Some("tok"));
    assert_eq!(calls[0].body, b"check");
    assert_eq!(calls[0].timeout_ms, 2000);
    h.reply_http_call(calls[0].token, 200, &[("x-a", "b")], b"alice");
    let ex = h.resume(ex.id);
    ex.assert_no_trap();
    assert!(!ex.paused);
    assert_eq!(ex.upstream_header("x-auth").as_deref(), Some("alice"));
    assert_eq!(ex.status(), 200);
    assert!(ex.host_calls.contains_key("proxy_continue_stream"));
    assert!(h.pending_http_calls().is_empty());
}

#[test]
fn http_call_failure_and_denial() {
    let (mut h, f) = one("a");
    let ex = h.send(&[f], Request::get("/").header("x-call", "t"));
    let token = h.pending_http_calls()[0].token;
    h.fail_http_call(token);
    let ex = h.resume(ex.id);
    ex.assert_no_trap();
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.local_header("x-by").as_deref(), Some("a"));

    let ex = h.send(&[f], Request::get("/").header("x-call", "t"));
    let token = h.pending_http_calls()[0].token;
    h.reply_http_call(token, 403, &[], b"");
    assert_eq!(h.resume(ex.id).status(), 401);
}

#[test]
fn shared_data_cas() {
    let (mut h, f) = one("a");
    for i in 1..=3 {
        let ex = h.send(&[f], Request::get("/").header("x-shared", "1"));
        assert_eq!(ex.upstream_header("x-shared-count"), Some(i.to_string()));
    }
    let (v, cas) = h.shared_data("counter").unwrap();
    assert_eq!(v, b"3");
    assert_eq!(cas, 3);
    h.set_shared_data("counter", b"10");
    let ex = h.send(&[f], Request::get("/").header("x-shared", "1"));
    assert_eq!(ex.upstream_header("x-shared-count").as_deref(), Some("11"));
}

#[test]
fn tick_clock_and_root_http_call() {
    let mut h = host();
    let f = h.configure(r#"{"name":"t","tick":true,"tick_call":true}"#).unwrap();
    assert_eq!(h.tick_period(f), 500);
    h.tick();
    assert!(h.logs().iter().any(|l| l.message.contains("t tick 1 shared=1 now=1767225600")));
    h.advance(Duration::from_secs(60));
    h.tick();
    assert!(h.logs().iter().any(|l| l.message.contains("t tick 2 shared=2 now=1767225660")));
    let calls = h.pending_http_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].context_id, f.root_context_id());
    h.reply_http_call(calls[0].token, 200, &[], b"keys!");
    assert_eq!(h.shared_data("root-call").unwrap().0, b"keys!");
    h.set_time(std::time::UNIX_EPOCH + Duration::from_secs(5));
    h.tick();
    assert!(h.logs().iter().any(|l| l.message.contains("now=5")));
}

#[test]
fn missing_module_is_an_error() {
    assert!(Host::load("/nonexistent.wasm").is_err());
}

#[test]
fn unknown_import_is_named_in_the_error() {
    // (module (import "env" "proxy_bogus" (func)))
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
    let mut import = vec![0x01, 0x03];
    import.extend_from_slice(b"env");
    import.push(11);
    import.extend_from_slice(b"proxy_bogus");
    import.extend_from_slice(&[0x00, 0x00]);
    wasm.push(0x02);
    wasm.push(import.len() as u8);
    wasm.extend_from_slice(&import);
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bogus-import.wasm");
    std::fs::write(&path, wasm).unwrap();
    let err = Host::load(&path).err().expect("must fail").to_string();
    assert!(err.contains("env::proxy_bogus"), "{err}");
}

#[test]
fn host_call_counts_are_per_request() {
    let (mut h, f) = one("a");
    let plain = h.send(&[f], Request::get("/"));
    let more = h.send(&[f], Request::get("/").header("x-echo", "1"));
    assert!(more.host_call_total() > plain.host_call_total());
    assert_eq!(plain.host_call_count("proxy_increment_metric"), 1);
    assert_eq!(more.host_call_count("proxy_increment_metric"), 1);
    assert!(h.host_calls()["proxy_increment_metric"] >= 2);
}

//! Configurations Envoy must refuse, and filters that cannot run: never a request through
//! unauthenticated (FAIL_CLOSED).

mod common;

use common::Cases;
use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::{self, Envoy};
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE};
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::wasm_fixture;
use serde_json::{json, Value};

fn with_chain(upstream: u16, chain: Value) -> Bootstrap {
    Bootstrap::new(upstream).route("/", [chain])
}

/// (configuration, the line the filter must log)
fn bad_configs() -> Vec<(Value, &'static str)> {
    vec![
        (
            instance(json!([plugin("key-auth", json!({ "key_names": ["apikey", "hello\\world"] }))])),
            "plugins[0].config.key_names[1]: bad header name 'hello\\world', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
        ),
        (
            instance(json!([plugin("key-auth", json!({})), plugin("key-authz", json!({}))])),
            "plugins[1].name: unknown plugin 'key-authz'",
        ),
        (
            json!({ "consumers": [{ "username": "a", "keyauth_credentials": [{ "key": "k" }] },
                                  { "username": "b", "keyauth_credentials": [{ "key": "k" }] }],
                    "plugins": [{ "name": "key-auth" }] }),
            "consumers[1].keyauth_credentials[0].key: duplicate key",
        ),
    ]
}

#[test]
fn bad_configuration_is_refused_by_validate_and_at_start() {
    let upstream = EchoServer::start();
    let mut cases = Cases::new();
    for (config, expected) in bad_configs() {
        cases.run(&format!("envoy --mode validate refuses: {expected}"), || {
            let (status, log) = envoy::validate(&with_chain(upstream.port, config.clone()));
            assert!(!status.success(), "validate accepted a bad configuration; log:\n{log}");
            assert!(log.contains(&format!("configuration refused: {expected}")), "no `{expected}` in the log:\n{log}");
        });
    }
    cases.run("a real start with a bad configuration exits non-zero, naming the JSON path", || {
        let (config, expected) = bad_configs().remove(0);
        match Envoy::try_start(&with_chain(upstream.port, config)) {
            Ok(envoy) => panic!("Envoy started with a bad configuration on port {}", envoy.port),
            Err(failure) => {
                let status = failure.status.expect("Envoy exits by itself");
                assert!(!status.success(), "exit status {status}");
                assert!(failure.log.contains(expected), "no `{expected}` in the log:\n{}", failure.log);
            }
        }
    });
    cases.run("the same bootstrap with a good configuration validates", || {
        let good = instance(json!([plugin("key-auth", json!({}))]));
        let (status, log) = envoy::validate(&with_chain(upstream.port, good));
        assert!(status.success(), "{log}");
    });
    cases.finish();
}

/// (configuration, the JSON path of the field that makes it read the request body).
fn body_configs() -> Vec<(Value, &'static str)> {
    vec![
        (instance(json!([plugin("key-auth", json!({ "key_in_body": true }))])), "plugins[0].config.key_in_body"),
        (
            instance(json!([plugin("basic-auth", json!({})), plugin("key-auth", json!({ "key_in_body": true }))])),
            "plugins[1].config.key_in_body",
        ),
        (
            json!({ "consumers": [{ "username": "h", "hmacauth_credentials": [{ "username": "h", "secret": "s" }] }],
                    "plugins": [{ "name": "hmac-auth", "config": { "validate_request_body": true } }] }),
            "plugins[0].config.validate_request_body",
        ),
    ]
}

/// Plugins that read the request body are configurations like any other on Envoy (they need
/// `allow_on_headers_stop_iteration` at run time, which e2e/tests/request_body.rs exercises): they
/// validate with and without the setting, and Envoy starts with them.
#[test]
fn plugins_reading_the_body_are_accepted_on_envoy() {
    let upstream = EchoServer::start();
    let mut cases = Cases::new();
    for (config, path) in body_configs() {
        cases.run(&format!("envoy --mode validate accepts {path}"), || {
            let (status, log) = envoy::validate(&with_chain(upstream.port, config.clone()));
            assert!(status.success(), "validate refused {path}; log:\n{log}");
            let (status, log) = envoy::validate(&with_chain(upstream.port, config.clone()).without_stop_iteration());
            assert!(status.success(), "validate refused {path} without the setting; log:\n{log}");
        });
        cases.run(&format!("a real start with {path} serves"), || {
            let envoy = Envoy::start(&with_chain(upstream.port, config.clone()));
            let r = Request::get("/").send(envoy.port);
            assert_eq!(r.status, 401, "{}", r.text());
        });
    }
    cases.finish();
}

#[test]
fn fail_closed_when_the_filter_cannot_run() {
    let upstream = EchoServer::start();
    let dir = std::env::temp_dir().join(format!("consumer-auth-e2e-wasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trapping = dir.join("trapping.wasm");
    std::fs::write(&trapping, wasm_fixture::trapping_filter()).unwrap();
    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x01\0\0\0 this is not a module").unwrap();
    let chain = instance(json!([plugin("key-auth", json!({}))]));
    let mut cases = Cases::new();

    cases.run("a filter that traps on every request: 5xx, never forwarded (FAIL_CLOSED)", || {
        let bootstrap = with_chain(upstream.port, chain.clone()).wasm(&trapping.display().to_string());
        let envoy = Envoy::start(&bootstrap);
        for i in 0..4 {
            let req = if i % 2 == 0 { Request::get("/x") } else { Request::get("/x").header("apikey", ALICE.key()) };
            let r = req.send(envoy.port);
            eprintln!("trapping filter, request {i}: {} {:?}", r.status, r.text());
            assert!(r.upstream().is_none(), "request {i} reached the upstream: {} {}", r.status, r.text());
            assert!((500..600).contains(&r.status), "request {i}: expected 5xx, got {} {}", r.status, r.text());
        }
    });
    cases.run("a .wasm that does not load: Envoy refuses to start (FAIL_CLOSED)", || {
        let bootstrap = with_chain(upstream.port, chain.clone()).wasm(&corrupt.display().to_string());
        if let Ok(envoy) = Envoy::try_start(&bootstrap) {
            let r = Request::get("/x").send(envoy.port);
            panic!(
                "Envoy started with a broken filter and answered {} (forwarded: {})",
                r.status,
                r.upstream().is_some()
            );
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    cases.finish();
}

//! basic-auth (BEHAVIOUR.md §B6) through the real .wasm.

use crate::support::*;

fn basic_auth(config: serde_json::Value) -> serde_json::Value {
    json!([{"name": "basic-auth", "config": config}])
}

fn assert_basic_401(ex: &Exchange, realm: &str) {
    assert_refused(ex, 401, "Unauthorized");
    assert_eq!(ex.local_header("www-authenticate"), Some(format!("Basic realm=\"{realm}\"")));
}

#[test]
fn missing_header_is_401_with_the_default_realm() {
    assert_basic_401(&send(basic_auth(json!({})), Request::get("/")), "service");
    assert_basic_401(&send(basic_auth(json!({"realm": "api"})), Request::get("/")), "api");
}

#[test]
fn valid_credentials_identify_by_credential_username() {
    let ex = send(basic_auth(json!({})), Request::get("/").header("authorization", &basic("alice-basic", "alice-pw")));
    assert_upstream_as(&ex, "alice", Some("alice-basic"));
    assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ALICE_ID));
    assert!(ex.upstream_header("authorization").is_some(), "forwarded without hide_credentials");
}

#[test]
fn wrong_password_and_unknown_user() {
    assert_basic_401(
        &send(basic_auth(json!({})), Request::get("/").header("authorization", &basic("alice-basic", "nope"))),
        "service",
    );
    assert_basic_401(
        &send(basic_auth(json!({})), Request::get("/").header("authorization", &basic("nobody", "x"))),
        "service",
    );
}

#[test]
fn proxy_authorization_is_tried_first() {
    let req = Request::get("/")
        .header("proxy-authorization", &basic("bob-basic", "bob-pw"))
        .header("authorization", &basic("alice-basic", "alice-pw"));
    assert_upstream_as(&send(basic_auth(json!({})), req), "bob", Some("bob-basic"));
}

#[test]
fn unknown_proxy_user_falls_back_to_authorization() {
    let req = Request::get("/")
        .header("proxy-authorization", &basic("nobody", "x"))
        .header("authorization", &basic("alice-basic", "alice-pw"));
    assert_upstream_as(&send(basic_auth(json!({})), req), "alice", Some("alice-basic"));
    // an unparsable Proxy-Authorization also falls back
    let req = Request::get("/")
        .header("proxy-authorization", "Bearer x")
        .header("authorization", &basic("alice-basic", "alice-pw"));
    assert_upstream_as(&send(basic_auth(json!({})), req), "alice", Some("alice-basic"));
}

#[test]
fn known_proxy_user_with_wrong_password_does_not_fall_back() {
    let req = Request::get("/")
        .header("proxy-authorization", &basic("bob-basic", "wrong"))
        .header("authorization", &basic("alice-basic", "alice-pw"));
    assert_basic_401(&send(basic_auth(json!({})), req), "service");
}

#[test]
fn scheme_word_and_password_shapes() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ok = |v: String| send(basic_auth(json!({})), Request::get("/").header("authorization", &v));
    assert_eq!(ok(format!("basic {}", b64("alice-basic:alice-pw"))).status(), 200);
    assert_eq!(ok(format!("Basic {}", b64("alice-basic:alice-pw").trim_end_matches('='))).status(), 200);
    assert_eq!(ok(format!("BASIC {}", b64("alice-basic:alice-pw"))).status(), 401);
    assert_eq!(ok(format!("Basic {}", b64("alice-basic:alice-pw:"))).status(), 401, "':' belongs to the password");
    assert_eq!(ok(format!("Basic {}", b64(":alice-pw"))).status(), 401, "empty username");
    assert_eq!(ok(format!("Basic {}", b64("alice-basic"))).status(), 401, "no colon");
    assert_eq!(ok("Basic %%%not-base64%%%".to_string()).status(), 401);
    assert_eq!(ok("Basic".to_string()).status(), 401);
    assert_eq!(ok(String::new()).status(), 401);

    let config = json!({
        "consumers": [
            {"username": "c", "basicauth_credentials": [{"username": "colon", "password": "a:b:c"}]},
            {"username": "e", "basicauth_credentials": [{"username": "empty", "password": ""}]}
        ],
        "plugins": [{"name": "basic-auth"}]
    })
    .to_string();
    let (mut h, f) = one(&config);
    assert_upstream_as(
        &checked(h.send(&[f], Request::get("/").header("authorization", &basic("colon", "a:b:c")))),
        "c",
        Some("colon"),
    );
    assert_upstream_as(
        &checked(h.send(&[f], Request::get("/").header("authorization", &basic("empty", "")))),
        "e",
        Some("empty"),
    );
    assert_eq!(checked(h.send(&[f], Request::get("/").header("authorization", &basic("empty", "x")))).status(), 401);
}

#[test]
fn hide_credentials_removes_the_parsed_headers() {
    let plugins = basic_auth(json!({"hide_credentials": true}));
    let ex = send(plugins.clone(), Request::get("/").header("authorization", &basic("alice-basic", "alice-pw")));
    assert_upstream_as(&ex, "alice", Some("alice-basic"));
    assert_eq!(ex.upstream_header("authorization"), None);
    // Proxy-Authorization valid: only it was parsed, Authorization stays
    let ex = send(
        plugins.clone(),
        Request::get("/")
            .header("proxy-authorization", &basic("bob-basic", "bob-pw"))
            .header("authorization", "Bearer t"),
    );
    assert_eq!(ex.upstream_header("proxy-authorization"), None);
    assert_eq!(ex.upstream_header("authorization").as_deref(), Some("Bearer t"));
    // OR mode: a failed attempt still strips the credential
    let ex = send(
        basic_auth(json!({"hide_credentials": true, "anonymous": "anonymous_users"})),
        Request::get("/").header("authorization", &basic("alice-basic", "bad")),
    );
    assert_upstream_as(&ex, "anonymous_users", None);
    assert_eq!(ex.upstream_header("authorization"), None);
}

#[test]
fn hashed_passwords() {
    use sha1::Digest as _;
    let id = "11111111-2222-4333-8444-555555555555";
    let kong_hash = hex::encode(sha1::Sha1::digest(format!("kong-pw{id}").as_bytes()));
    let sha256 = hex::encode(sha2::Sha256::digest(b"sha-pw"));
    let config = json!({
        "consumers": [
            {"id": id, "username": "k", "basicauth_credentials": [{"username": "kong-user", "password_hash": kong_hash}]},
            {"username": "s", "basicauth_credentials": [{"username": "sha-user", "password_hash": format!("sha256:{sha256}")}]}
        ],
        "plugins": [{"name": "basic-auth"}]
    })
    .to_string();
    let (mut h, f) = one(&config);
    let mut try_ =
        |u: &str, p: &str| checked(h.send(&[f], Request::get("/").header("authorization", &basic(u, p)))).status();
    assert_eq!(try_("kong-user", "kong-pw"), 200);
    assert_eq!(try_("kong-user", "kong-pw2"), 401);
    assert_eq!(try_("sha-user", "sha-pw"), 200);
    assert_eq!(try_("sha-user", "SHA-pw"), 401);
}

/// basic-auth has no preflight bypass (Kong's has no `run_on_preflight`): an OPTIONS request
/// needs credentials like any other, and the field is refused as unknown.
#[test]
fn no_preflight_bypass() {
    assert_basic_401(&send(basic_auth(json!({})), Request::new("OPTIONS", "/")), "service");
    let ex = send(
        basic_auth(json!({})),
        Request::new("OPTIONS", "/").header("authorization", &basic("alice-basic", "alice-pw")),
    );
    assert_upstream_as(&ex, "alice", Some("alice-basic"));
    assert!(refusal(&doc(basic_auth(json!({"run_on_preflight": false})))).contains("run_on_preflight: unknown field"));
}

/// A consumer with only a custom_id: no X-Consumer-Username upstream (a forged one is removed),
/// X-Consumer-Custom-ID set, and an id derived from the custom_id, the same on every load.
#[test]
fn a_consumer_without_username() {
    let config = json!({
        "consumers": [{"custom_id": "crm-7", "basicauth_credentials": [{"username": "svc", "password": "pw"}]}],
        "plugins": basic_auth(json!({}))
    })
    .to_string();
    let request =
        || Request::get("/").header("authorization", &basic("svc", "pw")).header("x-consumer-username", "forged");
    let (mut h, f) = one(&config);
    let ex = checked(h.send(&[f], request()));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.upstream_header("x-consumer-username"), None);
    assert_eq!(ex.upstream_header("x-consumer-custom-id").as_deref(), Some("crm-7"));
    assert_eq!(ex.upstream_header("x-credential-identifier").as_deref(), Some("svc"));
    let id = ex.upstream_header("x-consumer-id").expect("an id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let (mut again, f2) = one(&config);
    assert_eq!(checked(again.send(&[f2], request())).upstream_header("x-consumer-id"), Some(id));
}

//! Bad configuration is refused as a whole (`on_configure` returns false) with one log line
//! naming the JSON path and the reason. One case per refusal.

use crate::support::*;
use serde_json::Value;

fn with_consumers(consumers: Value) -> String {
    json!({"consumers": consumers, "plugins": []}).to_string()
}

fn with_plugins(plugins: Value) -> String {
    doc(plugins)
}

#[test]
fn syntax_and_shape() {
    assert!(refusal("{").starts_with("invalid JSON: "));
    assert!(refusal("").starts_with("invalid JSON: "));
    assert_eq!(refusal(r#"{"consumer": []}"#), "consumer: unknown field");
    assert_eq!(refusal(r#"{"consumers": {}}"#), "consumers: expected an array");
    assert_eq!(
        refusal(r#"{"plugins": [{"name": "key-auth", "config": {"key_in_header": "yes"}}]}"#),
        "plugins[0].config.key_in_header: expected a boolean"
    );
    assert_eq!(
        refusal(r#"{"plugins": [{"name": "key-auth", "config": {"hide_credential": true}}]}"#),
        "plugins[0].config.hide_credential: unknown field"
    );
    assert_eq!(refusal(r#"{"plugins": [{"config": {}}]}"#), "plugins[0].name: required field missing");
    assert_eq!(refusal(r#"{"plugins": [{"name": "key-auth", "config": []}]}"#), "plugins[0].config: expected a record");
}

#[test]
fn consumers() {
    assert_eq!(
        refusal(&with_consumers(json!([{"tags": []}]))),
        "consumers[0]: at least one of these fields must be non-empty: 'custom_id', 'username'"
    );
    assert_eq!(refusal(&with_consumers(json!([{"username": "a", "foo": 1}]))), "consumers[0].foo: unknown field");
    assert_eq!(
        refusal(&with_consumers(json!([{"username": "a", "id": "123"}]))),
        "consumers[0].id: expected a valid UUID"
    );
    assert_eq!(
        refusal(&with_consumers(json!([{"username": "a"}, {"username": "a"}]))),
        "consumers[1].username: duplicate username 'a' (also used by consumers[0])"
    );
    assert_eq!(
        refusal(&with_consumers(json!([{"username": "a", "custom_id": "c"}, {"custom_id": "c"}]))),
        "consumers[1].custom_id: duplicate custom_id 'c' (also used by consumers[0])"
    );
    assert_eq!(
        refusal(&with_consumers(json!([{"username": "a", "id": ALICE_ID}, {"username": "b", "id": ALICE_ID}]))),
        format!("consumers[1].id: duplicate id '{ALICE_ID}' (also used by consumers[0])")
    );
    assert_eq!(
        refusal(&with_consumers(json!([{"username": "a", "acls": [{"group": ""}]}]))),
        "consumers[0].acls[0].group: length must be at least 1"
    );
}

#[test]
fn key_credentials() {
    let c = |cred: Value| with_consumers(json!([{"username": "a", "keyauth_credentials": [cred]}]));
    assert_eq!(
        refusal(&c(json!({}))),
        "consumers[0].keyauth_credentials[0]: exactly one of these fields must be non-empty: 'key', 'key_hash'"
    );
    assert_eq!(
        refusal(&c(json!({"key": "k", "key_hash": "sha256:00"}))),
        "consumers[0].keyauth_credentials[0]: exactly one of these fields must be non-empty: 'key', 'key_hash'"
    );
    assert_eq!(refusal(&c(json!({"key": ""}))), "consumers[0].keyauth_credentials[0].key: length must be at least 1");
    assert_eq!(
        refusal(&c(json!({"key_hash": "md5:abc"}))),
        "consumers[0].keyauth_credentials[0].key_hash: invalid hash, expected 'sha256:' followed by 64 hex digits"
    );
    assert_eq!(
        refusal(&c(json!({"key": "k", "id": "x"}))),
        "consumers[0].keyauth_credentials[0].id: expected a valid UUID"
    );
    assert_eq!(
        refusal(&c(json!({"key": "k", "expires_at": "soon"}))),
        "consumers[0].keyauth_credentials[0].expires_at: expected an integer"
    );
}

#[test]
fn duplicate_keys_never_show_the_key() {
    let msg = refusal(&with_consumers(json!([
        {"username": "a", "keyauth_credentials": [{"key": "SECRET-KEY-1"}]},
        {"username": "b", "keyauth_credentials": [{"key": "SECRET-KEY-1"}]}
    ])));
    assert_eq!(msg, "consumers[1].keyauth_credentials[0].key: duplicate key (also used by consumers[0])");
    // a plain key and the hash of the same key are duplicates too
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(b"SECRET-KEY-1"));
    let msg = refusal(&with_consumers(json!([
        {"username": "a", "keyauth_credentials": [{"key": "SECRET-KEY-1"}]},
        {"username": "b", "keyauth_credentials": [{"key_hash": format!("sha256:{hash}")}]}
    ])));
    assert_eq!(msg, "consumers[1].keyauth_credentials[0].key_hash: duplicate key (also used by consumers[0])");
}

#[test]
fn basic_credentials() {
    let c = |cred: Value| with_consumers(json!([{"username": "a", "basicauth_credentials": [cred]}]));
    assert_eq!(
        refusal(&c(json!({"password": "p"}))),
        "consumers[0].basicauth_credentials[0].username: required field missing"
    );
    assert_eq!(
        refusal(&c(json!({"username": "", "password": "p"}))),
        "consumers[0].basicauth_credentials[0].username: length must be at least 1"
    );
    assert_eq!(
        refusal(&c(json!({"username": "a:b", "password": "p"}))),
        "consumers[0].basicauth_credentials[0].username: must not contain ':'"
    );
    assert_eq!(
        refusal(&c(json!({"username": "u"}))),
        "consumers[0].basicauth_credentials[0]: exactly one of these fields must be non-empty: 'password', 'password_hash'"
    );
    assert_eq!(
        refusal(&c(json!({"username": "u", "password_hash": "xyz"}))),
        "consumers[0].basicauth_credentials[0].password_hash: invalid hash, expected 40 hex digits (Kong's salted SHA-1) or 'sha256:' followed by 64 hex digits"
    );
    let msg = refusal(&with_consumers(json!([
        {"username": "a", "basicauth_credentials": [{"username": "u", "password": "SECRET-PW"}]},
        {"username": "b", "basicauth_credentials": [{"username": "u", "password": "SECRET-PW"}]}
    ])));
    assert_eq!(
        msg,
        "consumers[1].basicauth_credentials[0].username: duplicate username 'u' (also used by consumers[0])"
    );
}

#[test]
fn hmac_and_jwt_credentials() {
    assert_eq!(
        refusal(&with_consumers(json!([
            {"username": "a", "hmacauth_credentials": [{"username": "h", "secret": "s1"}]},
            {"username": "b", "hmacauth_credentials": [{"username": "h", "secret": "s2"}]}
        ]))),
        "consumers[1].hmacauth_credentials[0].username: duplicate username 'h' (also used by consumers[0])"
    );
    assert_eq!(
        refusal(&with_consumers(json!([
            {"username": "a", "jwt_secrets": [{"key": "iss", "secret": "s1"}]},
            {"username": "b", "jwt_secrets": [{"key": "iss", "secret": "s2"}]}
        ]))),
        "consumers[1].jwt_secrets[0].key: duplicate key 'iss' (also used by consumers[0])"
    );
    assert!(refusal(&with_consumers(json!([{"username": "a", "jwt_secrets": [{"key": "k", "algorithm": "none"}]}])))
        .starts_with("consumers[0].jwt_secrets[0].algorithm: expected one of: HS256"));
}

#[test]
fn plugin_entries() {
    assert_eq!(refusal(&with_plugins(json!([{"name": "key-authz"}]))), "plugins[0].name: unknown plugin 'key-authz'");
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "consumer": "alice"}]))),
        "plugins[0].consumer: value must be null ('key-auth' cannot be scoped to a consumer)"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "request-termination", "consumer": "nobody"}]))),
        "plugins[0].consumer: consumer 'nobody' not found"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "config": {"anonymous": "nobody"}}]))),
        "plugins[0].config.anonymous: anonymous consumer 'nobody' not found"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "basic-auth", "config": {"anonymous": "crm-1042"}}]))),
        "plugins[0].config.anonymous: anonymous consumer 'crm-1042' not found",
        "anonymous never matches a custom_id"
    );
    assert_eq!(
        refusal(&with_plugins(
            json!([{"name": "acl", "config": {"allow": ["a"]}}, {"name": "acl", "config": {"deny": ["b"]}}])
        )),
        "plugins[1]: duplicate plugin 'acl' (also at plugins[0])"
    );
    assert_eq!(
        refusal(&with_plugins(json!([
            {"name": "request-termination", "consumer": "alice"},
            {"name": "request-termination", "consumer": ALICE_ID}
        ]))),
        "plugins[1]: duplicate plugin 'request-termination' (also at plugins[0])"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "enabled": "no"}]))),
        "plugins[0].enabled: expected a boolean"
    );
    assert_eq!(refusal(&with_plugins(json!([{"name": "key-auth", "route": "x"}]))), "plugins[0].route: unknown field");
    // a disabled entry is still validated
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "enabled": false, "config": {"key_names": ["a b"]}}]))),
        "plugins[0].config.key_names[0]: bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    );
}

#[test]
fn key_auth_config() {
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "config": {"key_names": ["apikey", "hello\\world"]}}]))),
        "plugins[0].config.key_names[1]: bad header name 'hello\\world', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "config": {"key_names": [""]}}]))),
        "plugins[0].config.key_names[0]: bad header name '', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "key-auth", "config": {"key_names": "apikey"}}]))),
        "plugins[0].config.key_names: expected an array"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "basic-auth", "config": {"realm": 5}}]))),
        "plugins[0].config.realm: expected a string"
    );
}

#[test]
fn acl_config() {
    let fields = "'config.allow', 'config.deny'";
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "acl"}]))),
        format!("plugins[0].config: at least one of these fields must be non-empty: {fields}")
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "acl", "config": {"allow": []}}]))),
        format!("plugins[0].config: at least one of these fields must be non-empty: {fields}")
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "acl", "config": {"allow": ["a"], "deny": ["b"]}}]))),
        format!("plugins[0].config: only one of these fields must be non-empty: {fields}")
    );
}

#[test]
fn request_termination_config() {
    let rt = |config: Value| with_plugins(json!([{"name": "request-termination", "config": config}]));
    assert_eq!(
        refusal(&rt(json!({"status_code": 600}))),
        "plugins[0].config.status_code: value should be between 100 and 599"
    );
    assert_eq!(
        refusal(&rt(json!({"status_code": 99}))),
        "plugins[0].config.status_code: value should be between 100 and 599"
    );
    assert_eq!(refusal(&rt(json!({"status_code": "401"}))), "plugins[0].config.status_code: expected an integer");
    assert_eq!(refusal(&rt(json!({"status_code": 401.5}))), "plugins[0].config.status_code: expected an integer");
    assert_eq!(
        refusal(&rt(json!({"message": "m", "body": "b"}))),
        "plugins[0].config: message cannot be used with content_type or body"
    );
    assert_eq!(
        refusal(&rt(json!({"message": "m", "content_type": "text/plain"}))),
        "plugins[0].config: message cannot be used with content_type or body"
    );
    assert_eq!(refusal(&rt(json!({"content_type": "text/plain"}))), "plugins[0].config: content_type requires a body");
    assert_eq!(
        refusal(&rt(json!({"trigger": "x y"}))),
        "plugins[0].config.trigger: bad header name 'x y', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    );
    assert_eq!(refusal(&rt(json!({"echo": true}))), "plugins[0].config.echo: unknown field");
}

#[test]
fn a_refused_configuration_serves_nothing_and_a_good_one_loads() {
    let mut h = host();
    assert!(h.configure("{").is_err());
    let ok = h.configure(&doc(json!([{"name": "key-auth"}]))).unwrap();
    assert!(h
        .logs()
        .iter()
        .any(|l| l.message.starts_with("consumer-auth: configuration loaded: 5 consumers, 1 plugins")));
    assert_eq!(checked(h.send(&[ok], Request::get("/"))).status(), 401);
}

#[test]
fn only_request_termination_may_be_scoped() {
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "acl", "consumer": "alice", "config": {"allow": ["a"]}}]))),
        "plugins[0].consumer: value must be null ('acl' cannot be scoped to a consumer)"
    );
    assert_eq!(
        refusal(&with_plugins(json!([{"name": "basic-auth", "consumer": "alice"}]))),
        "plugins[0].consumer: value must be null ('basic-auth' cannot be scoped to a consumer)"
    );
}

#[test]
fn ids_must_be_canonical_uuids_and_realms_header_safe() {
    for id in [
        "{0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77}",
        "0d4e8c5a6b3f4f7e9d513f0c8a1e2b77",
        "urn:uuid:0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77",
    ] {
        assert_eq!(
            refusal(&with_consumers(json!([{"username": "a", "id": id}]))),
            "consumers[0].id: expected a valid UUID"
        );
    }
    for realm in ["a\"b", "a\r\nX-Injected: 1", "back\\slash"] {
        assert_eq!(
            refusal(&with_plugins(json!([{"name": "key-auth", "config": {"realm": realm}}]))),
            "plugins[0].config.realm: must not contain '\"', '\\' or control characters"
        );
        assert_eq!(
            refusal(&with_plugins(json!([{"name": "basic-auth", "config": {"realm": realm}}]))),
            "plugins[0].config.realm: must not contain '\"', '\\' or control characters"
        );
    }
}

//! `consumer-auth import`: a decK file into each database, twice (the second changes nothing),
//! read back through the Admin API; a refused file writes nothing.

use consumer_auth_service::import::import_file;
use serde_json::json;

use crate::both;
use crate::support::Api;

both!(import_a_deck_file_twice, a_refused_file_writes_nothing);

const DECK: &str = r#"
_format_version: "3.0"
services:
- name: s
  url: http://example.com
consumers:
- username: alice
  custom_id: A1
  tags: [gold]
  keyauth_credentials:
  - key: alice-key
  basicauth_credentials:
  - username: alice
    password: 0123456789abcdef0123456789abcdef01234567
  hmacauth_credentials:
  - username: alice-hmac
    secret: hmac-secret
  jwt_secrets:
  - key: alice-iss
    secret: jwt-secret
  acls:
  - group: admins
- id: 5a7c2e1d-3b4f-4c6a-8d9e-0f1a2b3c4d5e
  username: bob
  keyauth_credentials:
  - id: 6b8d3f2e-4c5a-4d7b-9eaf-1a2b3c4d5e6f
    key: bob-key
  basicauth_credentials:
  - username: bob
    password: plain-pw
"#;

async fn import_a_deck_file_twice(api: Api) {
    let report = import_file(&api.url, DECK.as_bytes()).await.unwrap();
    assert!(report.contains("2 consumers and 7 credentials read"), "{report}");
    assert!(report.contains("2 consumers written"), "{report}");
    let version = api.store.current_version().await.unwrap();
    assert_eq!(version, 2, "one change per consumer");

    let alice = api.ok("GET", "/consumers/alice", None, 200).await;
    assert_eq!(alice["id"], consumer_auth::consumers::derived_id("consumer", "alice").as_str());
    assert_eq!((&alice["custom_id"], &alice["tags"]), (&json!("A1"), &json!(["gold"])));
    assert_eq!(api.ok("GET", "/key-auths/alice-key", None, 200).await["consumer"]["id"], alice["id"]);
    let bob_key = api.ok("GET", "/consumers/bob/key-auth/6b8d3f2e-4c5a-4d7b-9eaf-1a2b3c4d5e6f", None, 200).await;
    assert_eq!(bob_key["key"], "bob-key");
    let basic = api.ok("GET", "/basic-auths/alice", None, 200).await;
    assert_eq!(basic["password"], "0123456789abcdef0123456789abcdef01234567", "a dump's hash is kept");
    let bob_basic = api.ok("GET", "/basic-auths/bob", None, 200).await;
    let hashed =
        consumer_auth::consumers::kong_password_hash_value(b"plain-pw", "5a7c2e1d-3b4f-4c6a-8d9e-0f1a2b3c4d5e");
    assert_eq!(bob_basic["password"], hashed.as_str());
    assert_eq!(api.ok("GET", "/consumers/alice/acls/admins", None, 200).await["group"], "admins");
    assert_eq!(api.ok("GET", "/jwts/alice-iss", None, 200).await["algorithm"], "HS256");

    // the same file again: nothing changes, nothing is logged
    let again = import_file(&api.url, DECK.as_bytes()).await.unwrap();
    assert!(again.contains("0 consumers written"), "{again}");
    assert_eq!(api.store.current_version().await.unwrap(), version);
    assert_eq!(api.ok("GET", "/consumers/alice", None, 200).await, alice);

    // one changed value: that consumer alone
    let changed = DECK.replace("key: bob-key", "key: bob-key-2");
    let report = import_file(&api.url, changed.as_bytes()).await.unwrap();
    assert!(report.contains("1 consumers written"), "{report}");
    assert_eq!(api.ok("GET", "/key-auths/bob-key-2", None, 200).await["id"], "6b8d3f2e-4c5a-4d7b-9eaf-1a2b3c4d5e6f");
    let changes = api.store.changes_since(version, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].op.as_str(), changes[0].entity_id.as_str()),
        ("import", "5a7c2e1d-3b4f-4c6a-8d9e-0f1a2b3c4d5e")
    );
}

async fn a_refused_file_writes_nothing(api: Api) {
    let bad = DECK.replace("- group: admins", "- group: admins\n  - group: 5");
    let e = import_file(&api.url, bad.as_bytes()).await.unwrap_err();
    assert_eq!(e, "consumers[0].acls[1].group: expected a string");
    let bad = DECK.replace("key: bob-key", "key: alice-key");
    let e = import_file(&api.url, bad.as_bytes()).await.unwrap_err();
    assert!(e.starts_with("consumers[1].keyauth_credentials[0].key: duplicate key"), "{e}");
    // a username held by a consumer with another id: the whole file is refused
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let version = api.store.current_version().await.unwrap();
    let e = import_file(&api.url, DECK.as_bytes()).await.unwrap_err();
    assert!(e.contains("nothing imported"), "{e}");
    assert_eq!(api.store.current_version().await.unwrap(), version);
    assert_eq!(api.call("GET", "/consumers/alice", None).await.0, 404);
}

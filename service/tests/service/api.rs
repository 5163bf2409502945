//! The Admin API through the router, each scenario on SQLite and on PostgreSQL.

use serde_json::{json, Value};

use crate::both;
use crate::support::Api;

both!(
    seed_form_post,
    consumers_crud,
    consumer_needs_a_name,
    key_auth,
    key_auth_ttl,
    basic_auth_password_hashed_as_kong,
    hmac_and_jwt_generated,
    jwt_keys_the_filter_refuses,
    acls_by_group,
    cascade_on_delete,
    pagination,
    tags_and_custom_id,
    change_log,
    top_level_credential_routes,
);

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 36 && uuid::Uuid::try_parse(s).is_ok())
}

fn alnum32(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

async fn seed_form_post(api: Api) {
    let (status, body) = api.form("POST", "/consumers/", "username=anonymous_users").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["username"], "anonymous_users");
    assert!(is_uuid(&body["id"]), "{body}");
    let created = body["created_at"].as_i64().unwrap_or_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - 5..=now + 1).contains(&created), "created_at in seconds: {created}");
    assert_eq!(body["custom_id"], Value::Null);
    assert_eq!(body["tags"], Value::Null);
}

async fn consumers_crud(api: Api) {
    let bob = api
        .ok("POST", "/consumers", Some(json!({"username": "bob", "custom_id": "c1", "tags": ["a", "a", "b"]})), 201)
        .await;
    assert_eq!(bob["tags"], json!(["a", "b"]), "tags are a set");
    let id = bob["id"].as_str().unwrap().to_string();
    assert_eq!(api.ok("GET", &format!("/consumers/{id}"), None, 200).await, bob);
    assert_eq!(api.ok("GET", "/consumers/bob", None, 200).await["id"], id.as_str());

    let (status, dup) = api.call("POST", "/consumers", Some(json!({"username": "bob"}))).await;
    assert_eq!(status, 409);
    assert_eq!(
        dup,
        json!({"code": 5, "name": "unique constraint violation",
               "message": "UNIQUE violation detected on '{username=\"bob\"}'", "fields": {"username": "bob"}})
    );
    let (status, dup) = api.call("POST", "/consumers", Some(json!({"username": "other", "custom_id": "c1"}))).await;
    assert_eq!((status.as_u16(), &dup["fields"]), (409, &json!({"custom_id": "c1"})));

    // PUT replaces the whole entity: the id is kept, custom_id reset
    let put = api.ok("PUT", "/consumers/bob", Some(json!({})), 200).await;
    assert_eq!((put["id"].as_str(), &put["custom_id"], &put["tags"]), (Some(id.as_str()), &Value::Null, &Value::Null));
    assert_eq!(put["created_at"], bob["created_at"]);

    let patched = api.ok("PATCH", &format!("/consumers/{id}"), Some(json!({"custom_id": "c2"})), 200).await;
    assert_eq!((patched["username"].as_str(), patched["custom_id"].as_str()), (Some("bob"), Some("c2")));
    assert_eq!(
        api.ok("PATCH", "/consumers/nobody", Some(json!({"custom_id": "x"})), 404).await,
        json!({"message": "Not found"})
    );

    // PUT by a new username creates it
    let alice = api.ok("PUT", "/consumers/alice", Some(json!({"custom_id": "c3"})), 200).await;
    assert_eq!(alice["username"], "alice");
    assert!(is_uuid(&alice["id"]));

    assert_eq!(api.call("DELETE", "/consumers/bob", None).await.0, 204);
    assert_eq!(api.ok("GET", "/consumers/bob", None, 404).await, json!({"message": "Not found"}));
    // Kong: deleting what is not there is a 204 too
    assert_eq!(api.call("DELETE", "/consumers/bob", None).await.0, 204);
    assert_eq!(api.call("DELETE", "/consumers/4b1d2c3e-0000-4000-8000-000000000000", None).await.0, 204);
}

async fn consumer_needs_a_name(api: Api) {
    let (status, body) = api.call("POST", "/consumers", Some(json!({"tags": ["x"]}))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 2, "name": "schema violation",
               "message": "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
               "fields": {"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]}})
    );
    let (status, body) = api.call("POST", "/consumers", Some(json!({"username": 1, "nick": "x"}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["fields"], json!({"username": "expected a string", "nick": "unknown field"}), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("2 schema violations"), "{body}");
}

async fn key_auth(api: Api) {
    let c = api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let generated = api.ok("POST", "/consumers/bob/key-auth", None, 201).await;
    assert!(alnum32(&generated["key"]), "{generated}");
    assert_eq!(generated["consumer"], json!({"id": c["id"]}));
    assert_eq!(generated["ttl"], Value::Null);
    let given = api.ok("POST", "/consumers/bob/key-auth", Some(json!({"key": "secret-1"})), 201).await;
    let (status, dup) = api.call("POST", "/consumers/bob/key-auth", Some(json!({"key": "secret-1"}))).await;
    assert_eq!((status.as_u16(), &dup["fields"]), (409, &json!({"key": "secret-1"})));

    assert_eq!(api.ok("GET", "/consumers/bob/key-auth/secret-1", None, 200).await, given);
    assert_eq!(api.ok("GET", "/key-auths/secret-1", None, 200).await, given);
    let owner = api.ok("GET", &format!("/key-auths/{}/consumer", given["id"].as_str().unwrap()), None, 200).await;
    assert_eq!(owner, c);
    let list = api.ok("GET", "/consumers/bob/key-auth", None, 200).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));

    // rotate: PUT by id replaces the key
    let id = given["id"].as_str().unwrap();
    let rotated = api.ok("PUT", &format!("/consumers/bob/key-auth/{id}"), Some(json!({"key": "secret-2"})), 200).await;
    assert_eq!((rotated["id"].as_str(), rotated["key"].as_str()), (Some(id), Some("secret-2")));
    assert_eq!(api.call("GET", "/key-auths/secret-1", None).await.0, 404);

    // nested missing: 404 for GET and DELETE; top-level DELETE of a missing one: 204
    assert_eq!(api.call("GET", "/consumers/bob/key-auth/nope", None).await.0, 404);
    assert_eq!(api.call("DELETE", "/consumers/bob/key-auth/nope", None).await.0, 404);
    assert_eq!(api.call("DELETE", "/key-auths/nope", None).await.0, 204);
    assert_eq!(api.call("POST", "/consumers/nobody/key-auth", None).await.0, 404);
    assert_eq!(api.call("DELETE", &format!("/consumers/bob/key-auth/{id}"), None).await.0, 204);
    assert_eq!(api.call("GET", &format!("/key-auths/{id}"), None).await.0, 404);
}

async fn key_auth_ttl(api: Api) {
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let k = api.ok("POST", "/consumers/bob/key-auth", Some(json!({"key": "short", "ttl": 1})), 201).await;
    assert!((0..=1).contains(&k["ttl"].as_i64().unwrap_or(-1)), "{k}");
    let long = api.form("POST", "/consumers/bob/key-auth", "key=long&ttl=1000").await;
    assert_eq!(long.0, 201);
    assert!((990..=1000).contains(&long.1["ttl"].as_i64().unwrap_or(-1)), "{}", long.1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(api.call("GET", "/key-auths/short", None).await.0, 404, "expired");
    let list = api.ok("GET", "/key-auths", None, 200).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    // the expired key no longer holds its value
    api.ok("POST", "/consumers/bob/key-auth", Some(json!({"key": "short"})), 201).await;
    let (status, body) = api.call("POST", "/consumers/bob/key-auth", Some(json!({"ttl": "10"}))).await;
    assert_eq!((status.as_u16(), &body["fields"]["ttl"]), (400, &json!("expected an integer")));
}

async fn basic_auth_password_hashed_as_kong(api: Api) {
    let c = api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let cid = c["id"].as_str().unwrap();
    let b = api
        .ok("POST", "/consumers/bob/basic-auth", Some(json!({"username": "bob-basic", "password": "pw"})), 201)
        .await;
    let expected = consumer_auth::consumers::kong_password_hash_value(b"pw", cid);
    assert_eq!(b["password"], expected.as_str());
    let (status, body) =
        api.call("POST", "/consumers/bob/basic-auth", Some(json!({"username": "a:b", "password": "x"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["fields"]["username"].is_string(), "the filter's rule names the field: {body}");
    let (status, body) = api.call("POST", "/consumers/bob/basic-auth", Some(json!({"username": "u2"}))).await;
    assert_eq!((status.as_u16(), &body["fields"]), (400, &json!({"password": "required field missing"})));
    // PATCH without a password keeps the hash; with one, hashes it again
    let id = b["id"].as_str().unwrap();
    let p = api.ok("PATCH", &format!("/basic-auths/{id}"), Some(json!({"tags": ["t"]})), 200).await;
    assert_eq!(p["password"], expected.as_str());
    let p = api.ok("PATCH", &format!("/basic-auths/{id}"), Some(json!({"password": "pw2"})), 200).await;
    assert_eq!(p["password"], consumer_auth::consumers::kong_password_hash_value(b"pw2", cid).as_str());
    let (status, body) = api
        .call("POST", "/basic-auths", Some(json!({"username": "bob-basic", "password": "x", "consumer": {"id": cid}})))
        .await;
    assert_eq!((status.as_u16(), &body["fields"]), (409, &json!({"username": "bob-basic"})));
}

async fn hmac_and_jwt_generated(api: Api) {
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let h = api.ok("POST", "/consumers/bob/hmac-auth", Some(json!({"username": "bob-hmac"})), 201).await;
    assert!(alnum32(&h["secret"]), "{h}");
    let j = api.ok("POST", "/consumers/bob/jwt", None, 201).await;
    assert!(alnum32(&j["key"]) && alnum32(&j["secret"]), "{j}");
    assert_eq!(j["algorithm"], "HS256");
    assert_eq!(j["rsa_public_key"], Value::Null);
    assert_eq!(api.ok("GET", &format!("/jwts/{}", j["key"].as_str().unwrap()), None, 200).await, j);
    let (status, body) = api.call("POST", "/consumers/bob/jwt", Some(json!({"algorithm": "none"}))).await;
    assert_eq!(status, 400);
    assert!(body["fields"]["algorithm"].as_str().unwrap().starts_with("expected one of: HS256"), "{body}");
}

async fn jwt_keys_the_filter_refuses(api: Api) {
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let (status, body) = api.call("POST", "/consumers/bob/jwt", Some(json!({"algorithm": "RS256"}))).await;
    assert_eq!(
        (status.as_u16(), &body["fields"]),
        (400, &json!({"rsa_public_key": "required field missing"})),
        "{body}"
    );
    let bad = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    let (status, body) =
        api.call("POST", "/consumers/bob/jwt", Some(json!({"algorithm": "ES256", "rsa_public_key": bad}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["fields"]["rsa_public_key"].is_string(), "{body}");
    let list = api.ok("GET", "/jwts", None, 200).await;
    assert_eq!(list["data"], json!([]), "nothing was written");
}

async fn acls_by_group(api: Api) {
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    api.ok("POST", "/consumers", Some(json!({"username": "eve"})), 201).await;
    let a = api.ok("POST", "/consumers/bob/acls", Some(json!({"group": "admins"})), 201).await;
    let (status, dup) = api.call("POST", "/consumers/bob/acls", Some(json!({"group": "admins"}))).await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(dup["fields"]["group"], "admins");
    api.ok("POST", "/consumers/eve/acls", Some(json!({"group": "admins"})), 201).await;
    assert_eq!(api.ok("GET", "/consumers/bob/acls/admins", None, 200).await, a);
    // the by-group override: PUT upserts by group
    let put = api.ok("PUT", "/consumers/bob/acls/admins", Some(json!({"tags": ["x"]})), 200).await;
    assert_eq!((put["id"].as_str(), &put["tags"]), (a["id"].as_str(), &json!(["x"])));
    let new = api.ok("PUT", "/consumers/bob/acls/ops", Some(json!({})), 200).await;
    assert_eq!(new["group"], "ops");
    // acls have no endpoint key at the top level
    assert_eq!(api.call("GET", "/acls/admins", None).await.0, 404);
    assert_eq!(api.ok("GET", "/acls", None, 200).await["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(api.call("DELETE", "/consumers/bob/acls/ops", None).await.0, 204);
    assert_eq!(api.call("GET", "/consumers/bob/acls/ops", None).await.0, 404);
}

async fn cascade_on_delete(api: Api) {
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let k = api.ok("POST", "/consumers/bob/key-auth", None, 201).await;
    let acl = api.ok("POST", "/consumers/bob/acls", Some(json!({"group": "g"})), 201).await;
    assert_eq!(api.call("DELETE", "/consumers/bob", None).await.0, 204);
    assert_eq!(api.call("GET", &format!("/key-auths/{}", k["id"].as_str().unwrap()), None).await.0, 404);
    assert_eq!(api.call("GET", &format!("/acls/{}", acl["id"].as_str().unwrap()), None).await.0, 404);
    let (status, body) =
        api.call("POST", "/key-auths", Some(json!({"consumer": {"id": "4b1d2c3e-0000-4000-8000-000000000000"}}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["code"].as_i64(), &body["fields"]),
        (Some(4), &json!({"consumer": {"id": "4b1d2c3e-0000-4000-8000-000000000000"}}))
    );
}

async fn pagination(api: Api) {
    for i in 0..25 {
        api.ok("POST", "/consumers", Some(json!({"username": format!("u{i:02}")})), 201).await;
    }
    let mut seen = Vec::new();
    let mut next = Some("/consumers?size=10".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let page = api.ok("GET", &path, None, 200).await;
        pages += 1;
        for c in page["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        next = page["next"].as_str().map(str::to_string);
        assert_eq!(page.get("offset").is_some(), next.is_some(), "{page}");
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted), (25, seen.clone()), "every consumer once, in id order");
    let (status, body) = api.call("GET", "/consumers?offset=bm9wZQ", None).await;
    assert_eq!((status.as_u16(), body["code"].as_i64(), body["name"].as_str()), (400, Some(7), Some("invalid offset")));
    let (status, body) = api.call("GET", "/consumers?size=1001", None).await;
    assert_eq!((status.as_u16(), body["message"].as_str()), (400, Some("size must be an integer between 1 and 1000")));
}

async fn tags_and_custom_id(api: Api) {
    api.ok("POST", "/consumers", Some(json!({"username": "ab", "tags": ["a", "b"]})), 201).await;
    api.ok("POST", "/consumers", Some(json!({"username": "a", "tags": ["a"], "custom_id": "CID"})), 201).await;
    api.ok("POST", "/consumers", Some(json!({"username": "c", "tags": ["c"]})), 201).await;
    api.ok("POST", "/consumers", Some(json!({"username": "A", "tags": ["A"]})), 201).await;
    let names = |v: &Value| {
        let mut n: Vec<String> =
            v["data"].as_array().unwrap().iter().map(|c| c["username"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&api.ok("GET", "/consumers?tags=a,b", None, 200).await), ["ab"]);
    assert_eq!(names(&api.ok("GET", "/consumers?tags=a", None, 200).await), ["a", "ab"], "case-sensitive");
    assert_eq!(names(&api.ok("GET", "/consumers?tags=b/c", None, 200).await), ["ab", "c"]);
    assert_eq!(names(&api.ok("GET", "/consumers?custom_id=CID", None, 200).await), ["a"]);
    assert_eq!(api.ok("GET", "/consumers?custom_id=nope", None, 200).await, json!({"data": [], "next": null}));
    assert_eq!(api.call("GET", "/consumers?custom_id=", None).await.0, 400);
    assert_eq!(api.call("GET", "/consumers?tags=a,b/c", None).await.0, 400);
    let (status, body) = api.call("POST", "/consumers", Some(json!({"username": "t", "tags": ["x,y"]}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["fields"]["tags"].as_str().unwrap().starts_with("invalid tag 'x,y'"), "{body}");
}

async fn change_log(api: Api) {
    let mut versions = api.store.versions();
    let start = *versions.borrow_and_update();
    api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let k = api.ok("POST", "/consumers/bob/key-auth", None, 201).await;
    api.ok("PATCH", &format!("/key-auths/{}", k["id"].as_str().unwrap()), Some(json!({"tags": ["t"]})), 200).await;
    api.call("POST", "/consumers", Some(json!({"username": "bob"}))).await; // refused: no change
    assert_eq!(api.call("DELETE", "/consumers/bob", None).await.0, 204);
    assert_eq!(api.call("DELETE", "/consumers/bob", None).await.0, 204); // nothing to delete: no change
    assert!(versions.has_changed().unwrap());
    assert_eq!(*versions.borrow(), start + 4);
    let changes = api.store.changes_since(start, 100).await.unwrap();
    let ops: Vec<(i64, &str, &str)> = changes.iter().map(|c| (c.version, c.entity.as_str(), c.op.as_str())).collect();
    assert_eq!(
        ops,
        [
            (start + 1, "consumers", "insert"),
            (start + 2, "keyauth_credentials", "insert"),
            (start + 3, "keyauth_credentials", "update"),
            (start + 4, "consumers", "delete"),
        ]
    );
    let consumer = changes[0].entity_id.clone();
    assert!(changes.iter().all(|c| c.consumer_id.as_deref() == Some(consumer.as_str())));
    assert_eq!(api.store.current_version().await.unwrap(), start + 4);
}

async fn top_level_credential_routes(api: Api) {
    let c = api.ok("POST", "/consumers", Some(json!({"username": "bob"})), 201).await;
    let cid = c["id"].as_str().unwrap();
    let form = format!("consumer.id={cid}&key=k-form&tags[]=x&tags[]=y");
    let (status, k) = api.form("POST", "/key-auths", &form).await;
    assert_eq!(status, 201, "{k}");
    assert_eq!((k["consumer"]["id"].as_str(), &k["tags"]), (Some(cid), &json!(["x", "y"])));
    for (collection, body) in [
        ("basic-auths", json!({"username": "u", "password": "p", "consumer": {"id": cid}})),
        ("hmac-auths", json!({"username": "h", "consumer": {"id": cid}})),
        ("jwts", json!({"consumer": {"id": cid}})),
        ("acls", json!({"group": "g", "consumer": {"id": cid}})),
    ] {
        let made = api.ok("POST", &format!("/{collection}"), Some(body), 201).await;
        let id = made["id"].as_str().unwrap();
        assert_eq!(api.ok("GET", &format!("/{collection}/{id}/consumer"), None, 200).await["id"], cid);
        assert_eq!(api.ok("GET", &format!("/{collection}"), None, 200).await["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(api.call("DELETE", &format!("/{collection}/{id}"), None).await.0, 204);
    }
    let (status, body) = api.call("POST", "/key-auths", Some(json!({"key": "x"}))).await;
    assert_eq!((status.as_u16(), &body["fields"]), (400, &json!({"consumer": "required field missing"})));
}

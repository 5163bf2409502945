//! Malformed input of every kind gets the documented answer and never traps the VM.

use crate::support::*;

fn all_plugins() -> serde_json::Value {
    json!([
        {"name": "key-auth", "config": {"key_in_body": true, "hide_credentials": true, "anonymous": "anonymous_users"}},
        {"name": "basic-auth", "config": {"hide_credentials": true, "anonymous": "anonymous_users"}},
        {"name": "acl", "config": {"deny": ["blocked"]}}
    ])
}

#[test]
fn binary_and_odd_header_values() {
    let (mut h, f) = one(&doc(all_plugins()));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("apikey", b"\xff\xfe\x00bad".to_vec()),
        ("authorization", b"Basic \xff\xff\xff".to_vec()),
        ("authorization", b"Basic \x00\x01".to_vec()),
        ("proxy-authorization", b"basic".to_vec()),
        ("accept", b"\xff/\xfe;q=\xff".to_vec()),
        ("content-type", b"multipart/form-data; boundary=\xff".to_vec()),
        ("x-consumer-username", b"\xff".to_vec()),
        ("apikey", vec![]),
        ("authorization", vec![]),
    ];
    for (name, value) in cases {
        let ex = h.send(&[f], Request::post("/?apikey=%ff%fe%").header_bytes(name, &value).body(b"\xff\xfe".to_vec()));
        ex.assert_no_trap();
        assert_upstream_as(&ex, "anonymous_users", None);
        assert_eq!(ex.upstream_header("x-consumer-username").as_deref(), Some("anonymous_users"));
    }
}

#[test]
fn bad_base64_and_broken_basic_values_are_401_in_and_mode() {
    let (mut h, f) = one(&doc(json!([{"name": "basic-auth"}])));
    for value in
        ["Basic ====", "Basic YWxpY2U", "Basic YWxp Y2U6cHc=", "Basic\tYWxpY2U6cHc", "Digest abc", "Basic Og=="]
    {
        let ex = checked(h.send(&[f], Request::get("/").header("authorization", value)));
        assert_refused(&ex, 401, "Unauthorized");
    }
}

#[test]
fn huge_and_repeated_headers() {
    let (mut h, f) =
        one(&doc(json!([{"name": "key-auth"}, {"name": "basic-auth", "config": {"anonymous": "anonymous_users"}}])));
    let huge = "k".repeat(1 << 20);
    let ex = checked(h.send(&[f], Request::get("/").header("apikey", &huge)));
    assert_refused(&ex, 401, "Unauthorized");
    let ex = checked(h.send(&[f], Request::get("/").header("authorization", &format!("Basic {huge}"))));
    assert_refused(&ex, 401, "No API key found in request");
    let mut req = Request::get("/");
    for i in 0..2000 {
        req = req.header("x-many", &i.to_string()).header("x-consumer-id", "forged");
    }
    let ex = checked(h.send(&[f], req.header("apikey", "alice-key")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_headers("x-many").len(), 2000);
    assert_eq!(ex.upstream_headers("x-consumer-id"), vec![ALICE_ID.to_string()]);
    let long_query = format!("/?{}apikey=alice-key", "a=1&".repeat(50_000));
    let ex = checked(h.send(&[f], Request::get(&long_query)));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

#[test]
fn malformed_bodies() {
    let (mut h, f) =
        one(&doc(json!([{"name": "key-auth", "config": {"key_in_body": true, "hide_credentials": true}}])));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{\"apikey\": \"alice-key\"".to_vec()),
        ("application/json", b"[\"alice-key\"]".to_vec()),
        ("application/json", b"\xff\xfe".to_vec()),
        ("application/x-www-form-urlencoded", b"apikey=\xff\xfe".to_vec()),
        ("application/x-www-form-urlencoded", b"&&&=&=".to_vec()),
        ("multipart/form-data; boundary=B", b"--B\r\nno headers end".to_vec()),
        ("multipart/form-data; boundary=B", b"--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--".to_vec()),
        ("multipart/form-data; boundary=", b"--\r\n".to_vec()),
        ("multipart/form-data", b"".to_vec()),
    ];
    for (ct, body) in cases {
        let ex = checked(h.send(&[f], Request::post("/").header("content-type", ct).body(body)));
        assert_eq!(ex.status(), 401, "{ct}");
    }
    // a form value that is not UTF-8 is just an unknown key
    let ex = checked(h.send(
        &[f],
        Request::post("/").header("content-type", "application/x-www-form-urlencoded").body(b"apikey=%ff".to_vec()),
    ));
    assert_refused(&ex, 401, "Unauthorized");
}

#[test]
fn odd_paths_and_methods() {
    let (mut h, f) = one(&doc(json!([{"name": "key-auth", "config": {"hide_credentials": true}}])));
    for path in
        ["/?", "/??apikey=alice-key", "/?&&apikey=alice-key&&", "/%zz?apikey=alice-key%", "*", "/?=x&apikey=alice-key"]
    {
        let ex = checked(h.send(&[f], Request::get(path)));
        assert!(matches!(ex.status(), 200 | 401), "{path}: {}", ex.status());
    }
    let ex = checked(h.send(&[f], Request::get("/?&&apikey=alice-key&&")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    let ex = checked(h.send(&[f], Request::new("BREW", "/").header("apikey", "alice-key")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

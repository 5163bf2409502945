//! key-auth (BEHAVIOUR.md §B5) through the real .wasm.

use crate::support::*;

fn key_auth(config: serde_json::Value) -> serde_json::Value {
    json!([{"name": "key-auth", "config": config}])
}

#[test]
fn no_key_is_401_with_challenge_and_request_id() {
    let ex = send(key_auth(json!({})), Request::get("/").request_id(Some("req-42")));
    assert_refused(&ex, 401, "No API key found in request");
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("Key"));
    assert_eq!(ex.local_header("content-type").as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(ex.body_str(), r#"{"message":"No API key found in request","request_id":"req-42"}"#);
}

#[test]
fn realm_is_in_the_challenge() {
    let ex = send(key_auth(json!({"realm": "kong"})), Request::get("/"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"Key realm="kong""#));
    let ex = send(key_auth(json!({"realm": "kong"})), Request::get("/").header("apikey", "wrong"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"Key realm="kong""#));
}

#[test]
fn valid_key_sets_the_identity_headers() {
    let ex = send(key_auth(json!({})), Request::get("/x").header("apikey", "alice-key"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ALICE_ID));
    assert_eq!(ex.upstream_header("x-consumer-custom-id").as_deref(), Some("crm-1042"));
    assert_eq!(ex.upstream_header("x-credential-username"), None);
    // hide_credentials=false forwards the key unchanged
    assert_eq!(ex.upstream_header("apikey").as_deref(), Some("alice-key"));
}

#[test]
fn derived_credential_id_never_reveals_the_key() {
    let ex = send(key_auth(json!({})), Request::get("/").header("apikey", "bob-key"));
    assert_upstream_as(&ex, "bob", ex.upstream_header("x-credential-identifier").as_deref());
    let cred = ex.upstream_header("x-credential-identifier").unwrap();
    assert!(!cred.contains("bob-key"));
    assert_eq!(cred.len(), 36, "a UUID: {cred}");
    assert_eq!(ex.upstream_header("x-consumer-custom-id"), None, "bob has no custom_id");
    // deterministic: the same on another VM
    let again = send(key_auth(json!({})), Request::get("/").header("apikey", "bob-key"));
    assert_eq!(again.upstream_header("x-credential-identifier"), Some(cred));
}

#[test]
fn unknown_key_is_unauthorized() {
    let ex = send(key_auth(json!({})), Request::get("/").header("apikey", "nope"));
    assert_refused(&ex, 401, "Unauthorized");
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("Key"));
}

#[test]
fn header_name_is_case_insensitive_and_underscore_matches_dash() {
    let ex = send(key_auth(json!({})), Request::get("/").header("ApiKey", "alice-key"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    for header in ["api_key", "api-key", "API-Key"] {
        let ex = send(key_auth(json!({"key_names": ["api_key"]})), Request::get("/").header(header, "alice-key"));
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    }
    // the query argument name is exact
    let ex = send(key_auth(json!({"key_names": ["api_key"]})), Request::get("/?api-key=alice-key"));
    assert_refused(&ex, 401, "No API key found in request");
}

/// The full lookup matrix: header / query / body each absent, right or wrong, for every set of
/// enabled locations. The first enabled location holding a value decides, even if wrong.
#[test]
fn lookup_matrix() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum V {
        Absent,
        Right,
        Wrong,
    }
    let values = [V::Absent, V::Right, V::Wrong];
    let key = |v: V| match v {
        V::Right => Some("alice-key"),
        V::Wrong => Some("wrong-key"),
        V::Absent => None,
    };
    let mut cases = 0;
    for enabled in 0..8u8 {
        let (in_header, in_query, in_body) = (enabled & 1 != 0, enabled & 2 != 0, enabled & 4 != 0);
        let (mut h, f) = one(&doc(key_auth(json!({
            "key_in_header": in_header, "key_in_query": in_query, "key_in_body": in_body
        }))));
        for hv in values {
            for qv in values {
                for bv in values {
                    let mut path = "/m?x=1".to_string();
                    if let Some(k) = key(qv) {
                        path.push_str(&format!("&apikey={k}"));
                    }
                    let mut req = Request::post(&path).header("content-type", "application/x-www-form-urlencoded");
                    if let Some(k) = key(hv) {
                        req = req.header("apikey", k);
                    }
                    let body = match key(bv) {
                        Some(k) => format!("a=1&apikey={k}"),
                        None => "a=1".to_string(),
                    };
                    let ex = checked(h.send(&[f], req.body(body)));
                    let decisive = [(in_header, hv), (in_query, qv), (in_body, bv)]
                        .into_iter()
                        .find(|(on, v)| *on && *v != V::Absent)
                        .map(|(_, v)| v);
                    let what =
                        format!("enabled={in_header}/{in_query}/{in_body} header={hv:?} query={qv:?} body={bv:?}");
                    match decisive {
                        Some(V::Right) => {
                            assert_eq!(ex.status(), 200, "{what}: {}", ex.body_str());
                            assert_eq!(ex.upstream_header("x-consumer-username").as_deref(), Some("alice"), "{what}");
                        }
                        Some(_) => {
                            assert_eq!(ex.status(), 401, "{what}");
                            assert_eq!(message(&ex), "Unauthorized", "{what}");
                        }
                        None => {
                            assert_eq!(ex.status(), 401, "{what}");
                            assert_eq!(message(&ex), "No API key found in request", "{what}");
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 216);
}

#[test]
fn key_names_are_tried_in_order_and_the_first_value_decides() {
    let plugins = key_auth(json!({"key_names": ["first", "second"]}));
    // `first` holds a wrong key in the query: it decides although `second` is right
    let ex = send(plugins.clone(), Request::get("/?first=wrong").header("second", "alice-key"));
    assert_refused(&ex, 401, "Unauthorized");
    let ex = send(plugins.clone(), Request::get("/").header("second", "alice-key"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    // a bare flag is not a value: the next key name is looked at (Kong's behaviour)
    let ex = send(plugins, Request::get("/?first").header("second", "alice-key"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

#[test]
fn duplicate_keys_are_refused() {
    let form = |body: &str| {
        Request::post("/").header("content-type", "application/x-www-form-urlencoded").body(body.to_string())
    };
    let json_body = |body: &str| Request::post("/").header("content-type", "application/json").body(body.to_string());
    let cases = vec![
        ("repeated header", Request::get("/").header("apikey", "alice-key").header("apikey", "alice-key")),
        ("repeated header, other case", Request::get("/").header("apikey", "alice-key").header("APIKEY", "x")),
        ("repeated query", Request::get("/?apikey=alice-key&apikey=alice-key")),
        ("repeated form field", form("apikey=alice-key&apikey=bob-key")),
        ("JSON array", json_body(r#"{"apikey":["alice-key"]}"#)),
        ("JSON object", json_body(r#"{"apikey":{"k":"alice-key"}}"#)),
        (
            "repeated multipart field",
            Request::post("/").header("content-type", "multipart/form-data; boundary=B").body(
                "--B\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nalice-key\r\n\
                 --B\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nbob-key\r\n--B--\r\n",
            ),
        ),
    ];
    for (what, req) in cases {
        let ex = send(key_auth(json!({"key_in_body": true})), req);
        assert_refused(&ex, 401, "Duplicate API key found");
        assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("Key"), "{what}");
    }
}

#[test]
fn empty_or_shapeless_keys_are_no_key() {
    let cases = vec![
        Request::get("/").header("apikey", ""),
        Request::get("/?apikey="),
        Request::get("/?apikey"),
        Request::get("/?apikey[]=alice-key"),
        Request::get("/?apikey[1]=alice-key"),
        Request::get("/?apikey%5B%5D=alice-key"),
        Request::post("/").header("content-type", "text/plain").body("apikey=alice-key"),
        Request::post("/").body("apikey=alice-key"),
        Request::post("/").header("content-type", "application/json").body(r#"{"apikey":""}"#),
        Request::post("/").header("content-type", "application/json").body(r#"{"apikey":12}"#),
        Request::post("/").header("content-type", "application/json").body("not json"),
    ];
    for req in cases {
        let what = format!("{} {}", req.method, req.path);
        let ex = send(key_auth(json!({"key_in_body": true})), req);
        assert_eq!(ex.status(), 401, "{what}");
        assert_eq!(message(&ex), "No API key found in request", "{what}");
    }
    // an empty header value decides: no fallback to the query
    let ex = send(key_auth(json!({})), Request::get("/?apikey=alice-key").header("apikey", ""));
    assert_refused(&ex, 401, "No API key found in request");
}

#[test]
fn keys_in_every_body_type() {
    let plugins = key_auth(json!({"key_in_body": true}));
    let multipart =
        "--BOUNDARY\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nalice-key\r\n--BOUNDARY--\r\n";
    let cases = vec![
        ("application/x-www-form-urlencoded", "apikey=alice-key".to_string()),
        ("application/json", r#"{"apikey":"alice-key"}"#.to_string()),
        ("application/json; charset=utf-8", r#"{"x":1,"apikey":"alice-key"}"#.to_string()),
        ("multipart/form-data; boundary=BOUNDARY", multipart.to_string()),
        ("multipart/form-data; boundary=\"BOUNDARY\"", multipart.to_string()),
    ];
    for (ct, body) in cases {
        let ex = send(plugins.clone(), Request::post("/").header("content-type", ct).body(body));
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    }
    // the body arriving in many chunks
    let chunks: Vec<Vec<u8>> = b"x=1&apikey=alice-key&y=2".chunks(3).map(<[u8]>::to_vec).collect();
    let req = Request::post("/").header("content-type", "application/x-www-form-urlencoded").body_chunks(chunks);
    assert_upstream_as(&send(plugins, req), "alice", Some(ALICE_KEY_ID));
}

#[test]
fn body_is_not_read_unless_needed() {
    let plugins = key_auth(json!({"key_in_body": true}));
    let req = Request::post("/")
        .header("apikey", "alice-key")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("apikey=bob-key");
    let ex = send(plugins.clone(), req);
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.host_calls.get("proxy_get_buffer_bytes"), None, "body was read: {:?}", ex.host_calls);
    // without key_in_body the body is never buffered
    let ex = send(key_auth(json!({})), Request::post("/").header("apikey", "alice-key").body("x"));
    assert_eq!(ex.host_calls.get("proxy_get_buffer_bytes"), None);
}

#[test]
fn oversized_bodies_get_413_not_a_trap() {
    let plugins = key_auth(json!({"key_in_body": true}));
    let big = vec![b'a'; consumer_auth::MAX_BODY_BYTES + 1];
    let chunks: Vec<Vec<u8>> = big.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let ex = send(
        plugins.clone(),
        Request::post("/").header("content-type", "application/x-www-form-urlencoded").body_chunks(chunks),
    );
    assert_refused(&ex, 413, "Payload too large");
    // a declared Content-Length over the bound is refused before buffering
    let ex = send(
        plugins.clone(),
        Request::post("/").header("content-length", &(consumer_auth::MAX_BODY_BYTES + 1).to_string()).body("apikey=x"),
    );
    assert_refused(&ex, 413, "Payload too large");
    // at the bound it is read
    let mut body = b"apikey=alice-key&pad=".to_vec();
    body.resize(consumer_auth::MAX_BODY_BYTES, b'p');
    let ex = send(plugins, Request::post("/").header("content-type", "application/x-www-form-urlencoded").body(body));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

#[test]
fn expired_keys_are_unauthorized() {
    let expires = 1_767_225_600u64 + 3600; // one hour after 2026-01-01T00:00:00Z
    let config = json!({
        "consumers": [{"username": "eve", "keyauth_credentials": [{"key": "eve-key", "expires_at": expires}]}],
        "plugins": [{"name": "key-auth"}]
    })
    .to_string();
    let (mut h, f) = one(&config);
    h.set_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires - 1));
    assert_eq!(checked(h.send(&[f], Request::get("/").header("apikey", "eve-key"))).status(), 200);
    h.set_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires));
    assert_refused(&checked(h.send(&[f], Request::get("/").header("apikey", "eve-key"))), 401, "Unauthorized");
}

#[test]
fn hashed_keys_authenticate() {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(b"hashed-key"));
    let config = json!({
        "consumers": [{"username": "h", "keyauth_credentials": [{"key_hash": format!("sha256:{hash}")}]}],
        "plugins": [{"name": "key-auth"}]
    })
    .to_string();
    let (mut h, f) = one(&config);
    assert_eq!(checked(h.send(&[f], Request::get("/").header("apikey", "hashed-key"))).status(), 200);
    assert_eq!(checked(h.send(&[f], Request::get("/").header("apikey", "hashed-keyX"))).status(), 401);
}

#[test]
fn preflight_bypass() {
    let ex = send(key_auth(json!({"run_on_preflight": false})), Request::new("OPTIONS", "/"));
    assert_eq!(ex.status(), 200);
    assert!(ex.upstream.is_some());
    assert_eq!(identity(&ex), [None, None, None, None, None, None]);
    let ex = send(key_auth(json!({})), Request::new("OPTIONS", "/"));
    assert_refused(&ex, 401, "No API key found in request");
    // only OPTIONS is bypassed
    let ex = send(key_auth(json!({"run_on_preflight": false})), Request::get("/"));
    assert_refused(&ex, 401, "No API key found in request");
}

#[test]
fn hide_credentials_header_and_query() {
    let plugins = key_auth(json!({"hide_credentials": true}));
    let ex = send(plugins.clone(), Request::get("/p?a=1").header("apikey", "alice-key").header("other", "x"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_header("apikey"), None);
    assert_eq!(ex.upstream_header("other").as_deref(), Some("x"));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?a=1");

    let ex = send(plugins.clone(), Request::get("/p?z=9&apikey=alice-key&a=1&b"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?z=9&a=1&b");
    let ex = send(plugins.clone(), Request::get("/p?apikey=alice-key"));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p");

    // hidden even when the key is wrong and the plugin falls back to anonymous (OR mode)
    let anon = key_auth(json!({"hide_credentials": true, "anonymous": "anonymous_users"}));
    let ex = send(anon, Request::get("/p?apikey=wrong&a=1").header("x", "1"));
    assert_upstream_as(&ex, "anonymous_users", None);
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?a=1");

    // with hide_credentials=false everything is forwarded as sent
    let ex = send(key_auth(json!({})), Request::get("/p?z=9&apikey=alice-key&a=1"));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?z=9&apikey=alice-key&a=1");
}

#[test]
fn hide_credentials_body_for_each_body_type() {
    let plugins = key_auth(json!({"hide_credentials": true, "key_in_body": true}));
    let multipart = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nalice-key\r\n--B\r\nContent-Disposition: form-data; name=\"z\"\r\n\r\n2\r\n--B--\r\n";
    let multipart_out = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B\r\nContent-Disposition: form-data; name=\"z\"\r\n\r\n2\r\n--B--\r\n";
    let cases = [
        ("application/x-www-form-urlencoded", "z=9&apikey=alice-key&a=1".to_string(), "z=9&a=1".to_string()),
        ("application/json", r#"{"z":9,"apikey":"alice-key","a":[1]}"#.to_string(), r#"{"z":9,"a":[1]}"#.to_string()),
        ("multipart/form-data; boundary=B", multipart.to_string(), multipart_out.to_string()),
    ];
    for (ct, body, expected) in cases {
        let req =
            Request::post("/").header("content-type", ct).header("content-length", &body.len().to_string()).body(body);
        let ex = send(plugins.clone(), req);
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
        let up = ex.upstream.as_ref().unwrap();
        assert_eq!(String::from_utf8_lossy(&up.body), expected, "{ct}");
        assert_eq!(ex.upstream_header("content-length"), Some(expected.len().to_string()), "{ct}");
    }
    // found in the header: still removed from the body (Kong re-encodes the body too)
    let req = Request::post("/")
        .header("apikey", "alice-key")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("apikey=alice-key&a=1");
    let ex = send(plugins, req);
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"a=1");
    assert_eq!(ex.upstream_header("apikey"), None);
}

#[test]
fn http2_bodies_without_framing_headers_are_read() {
    let req = Request::post("/")
        .protocol("HTTP/2")
        .header("content-type", "application/json")
        .body(r#"{"apikey":"alice-key"}"#);
    assert_upstream_as(&send(key_auth(json!({"key_in_body": true})), req), "alice", Some(ALICE_KEY_ID));
}

const FORM: &str = "application/x-www-form-urlencoded";

/// On Envoy with `allow_on_headers_stop_iteration` (the harness's default, as Envoy 1.35+ with
/// the setting) the body plugins load and work as on Kong: the key is read from the body, hidden
/// from it, and Content-Length follows.
#[test]
fn body_plugins_work_on_envoy() {
    let mut h = envoy_host();
    let f = h.configure(&doc(key_auth(json!({"key_in_body": true, "hide_credentials": true})))).unwrap();
    assert_eq!(h.tick_period(f), 1000, "the tick that answers a body that never comes");
    let req = Request::post("/")
        .header("content-type", FORM)
        .body_chunks(vec![b"a=1&apikey=ali".to_vec(), b"ce-key&b=2".to_vec()]);
    let ex = checked(h.send(&[f], req));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    let upstream = ex.upstream.as_ref().unwrap();
    assert_eq!(upstream.body, b"a=1&b=2");
    assert_eq!(ex.upstream_header("content-length").as_deref(), Some("7"));
    // a body callback came: the tick is no longer needed
    h.tick();
    assert_eq!(h.tick_period(f), 0);
    let hmac = json!([{"name": "hmac-auth", "config": {"validate_request_body": true}}]);
    assert!(h.configure(&doc(hmac)).is_ok(), "validate_request_body loads on Envoy");
}

/// Envoy's HTTP/1 codec hands a chunked body's headers over without `Transfer-Encoding` (and
/// without `Content-Length`): the body is still waited for and read (the headers did not end
/// the stream), not judged as absent.
#[test]
fn a_chunked_body_on_envoy_is_read_without_framing_headers() {
    let mut h = envoy_host();
    let f = h.configure(&doc(key_auth(json!({"key_in_body": true, "hide_credentials": true})))).unwrap();
    let req = Request::post("/").header("content-type", FORM).header("transfer-encoding", "chunked").body_chunks(vec![
        b"a=1&api".to_vec(),
        b"key=alice-key".to_vec(),
        b"&b=2".to_vec(),
    ]);
    let ex = checked(h.send(&[f], req));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"a=1&b=2");
}

/// A body followed by trailers ends in the trailers callback, not in a body callback with
/// end_of_stream: it is judged there (the SDK's default would let the held request through).
#[test]
fn a_body_that_ends_in_trailers_is_judged() {
    // Envoy only: on Kong the filter lets the headers go on and judges the body in the body
    // callback, before nginx proxies the request (the Kong model: tests/harness/kong_facts.rs, fact 8).
    let mut h = envoy_host();
    let f = h.configure(&doc(key_auth(json!({"key_in_body": true, "hide_credentials": true})))).unwrap();
    let with_trailer =
        |body: &str| Request::post("/").header("content-type", FORM).body(body).trailer("x-checksum", "1");
    let ex = checked(h.send(&[f], with_trailer("apikey=alice-key&b=2")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"b=2");
    let ex = checked(h.send(&[f], with_trailer("apikey=wrong")));
    assert_refused(&ex, 401, "Unauthorized");
    let ex = checked(h.send(&[f], with_trailer("b=2")));
    assert_refused(&ex, 401, "No API key found in request");
}

/// Envoy without `allow_on_headers_stop_iteration` never calls the body callback of a request
/// whose headers paused: such a request is answered 500 (Kong's body) from the tick within 2–3 s
/// of its headers, with one error line naming the setting; requests that need no body are not
/// affected.
#[test]
fn without_stop_iteration_a_request_waiting_for_its_body_is_answered_500() {
    let mut h = envoy_host();
    h.without_stop_iteration();
    let f = h.configure(&doc(key_auth(json!({"key_in_body": true})))).unwrap();
    let form = |body: &str| Request::post("/").header("content-type", FORM).body(body).request_id(Some("r-7"));
    let waiting = checked(h.send(&[f], form("apikey=alice-key")));
    assert!(waiting.paused && waiting.local.is_none() && waiting.upstream.is_none());
    // requests that need no body go on at once
    assert_upstream_as(&checked(h.send(&[f], form("x=1").header("apikey", "alice-key"))), "alice", Some(ALICE_KEY_ID));
    assert_refused(&checked(h.send(&[f], Request::get("/"))), 401, "No API key found in request");
    h.advance(std::time::Duration::from_millis(1900));
    h.tick();
    let still = h.exchange(waiting.id).unwrap();
    assert!(still.paused && still.local.is_none(), "answered before 2 s");
    h.advance(std::time::Duration::from_millis(1000));
    h.tick();
    let answered = h.exchange(waiting.id).unwrap();
    assert!(answered.upstream.is_none(), "nothing reaches the upstream");
    assert_eq!(answered.status(), 500);
    assert_eq!(answered.body_str(), r#"{"message":"An unexpected error occurred","request_id":"r-7"}"#);
    let named: Vec<_> = h.logs().iter().filter(|l| l.message.contains("allow_on_headers_stop_iteration")).collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].level, proxy_wasm_harness::LogLevel::Error);
    assert!(!named[0].message.contains("alice-key"));
    assert!(h.logs().iter().any(|l| l.message.contains("refused request_id=r-7") && l.message.contains("status=500")));
    assert_eq!(h.tick_period(f), 1000, "no body has come: keep watching");
    // on Kong the body always comes: nothing waits, no tick
    let mut kong = kong_like_host();
    let f = kong.configure(&doc(key_auth(json!({"key_in_body": true})))).unwrap();
    assert_eq!(kong.tick_period(f), 0);
}

/// hide_credentials in the query per host: Envoy rewrites `:path`; on Kong ngx_wasm_module before
/// 3.9 cannot set a `:path` with a query string (it traps), so the filter sets `request.query`
/// (nginx's `$args`, which Kong appends to the upstream URI).
#[test]
fn hide_credentials_in_the_query_per_host() {
    let plugins = key_auth(json!({"hide_credentials": true}));
    for envoy in [true, false] {
        let mut h = if envoy { envoy_host() } else { kong_like_host() };
        let f = h.configure(&doc(plugins.clone())).unwrap();
        let ex = checked(h.send(&[f], Request::get("/p?z=9&apikey=alice-key&a=1")));
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
        assert_eq!(ex.upstream.as_ref().unwrap().path, "/p?z=9&a=1", "envoy: {envoy}");
        let path_replaced = ex.host_call_count("proxy_replace_header_map_value") == 1;
        let query_set = ex.properties.get("request.query").map(Vec::as_slice) == Some(&b"z=9&a=1"[..]);
        assert_eq!((path_replaced, query_set), (envoy, !envoy), "envoy: {envoy}: {:?}", ex.host_calls);
    }
}

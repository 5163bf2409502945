//! Malformed bodies, fields, types, paths and queries: each gets Kong's 4xx, never a 5xx, and
//! nothing is written. The list below is the one docs/ADMIN_API.md refers to.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::both;
use crate::support::{Api, Engine};

both!(bad_inputs_are_4xx_and_write_nothing, admin_token, body_limit);

/// method, path, content type, body, expected status
type Case = (&'static str, String, Option<&'static str>, Vec<u8>, u16);

fn cases(cid: &str) -> Vec<Case> {
    let j = Some("application/json");
    let f = Some("application/x-www-form-urlencoded");
    let s = |x: &str| x.as_bytes().to_vec();
    vec![
        // bodies
        ("POST", "/consumers".into(), j, s("{"), 400),
        ("POST", "/consumers".into(), j, s("[1,2]"), 400),
        ("POST", "/consumers".into(), j, s("\"x\""), 400),
        ("POST", "/consumers".into(), j, s("null"), 400),
        ("POST", "/consumers".into(), j, vec![0xff, 0xfe, b'{'], 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\"} trailing"), 400),
        ("POST", "/consumers".into(), Some("text/plain"), s("username=x"), 415),
        ("POST", "/consumers".into(), Some("multipart/form-data; boundary=x"), s("--x--"), 415),
        ("POST", "/consumers".into(), f, vec![b'u', b'=', 0xff, 0xfe], 400),
        ("POST", "/consumers".into(), f, s("%%%=%%%"), 400),
        // fields and types
        ("POST", "/consumers".into(), j, s("{}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"\"}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":[\"a\"]}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":{\"a\":1}}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"id\":\"not-a-uuid\"}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"id\":5}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"created_at\":\"yesterday\"}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"created_at\":1.5}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"tags\":\"x\"}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"tags\":[1]}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"tags\":[\"a/b\"]}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"tags\":[\"\"]}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"tags\":[\"\\u0000\"]}"), 400),
        ("POST", "/consumers".into(), j, s("{\"username\":\"a\",\"extra\":1}"), 400),
        ("POST", format!("/consumers/{cid}/key-auth"), j, s("{\"key\":\"\"}"), 400),
        ("POST", format!("/consumers/{cid}/key-auth"), j, s("{\"key\":123}"), 400),
        ("POST", format!("/consumers/{cid}/key-auth"), j, s("{\"ttl\":-1}"), 400),
        ("POST", format!("/consumers/{cid}/key-auth"), j, s("{\"ttl\":1e30}"), 400),
        ("POST", format!("/consumers/{cid}/key-auth"), j, s("{\"ttl\":99999999999999999999}"), 400),
        ("POST", format!("/consumers/{cid}/key-auth"), j, s("{\"consumer\":\"x\"}"), 400),
        ("POST", "/key-auths".into(), j, s("{\"consumer\":{\"id\":\"x\"}}"), 400),
        ("POST", "/key-auths".into(), j, s("{\"consumer\":{\"name\":\"x\"}}"), 400),
        ("POST", format!("/consumers/{cid}/basic-auth"), j, s("{\"username\":\"a:b\",\"password\":\"p\"}"), 400),
        ("POST", format!("/consumers/{cid}/basic-auth"), j, s("{\"username\":\"u\",\"password\":\"\"}"), 400),
        ("POST", format!("/consumers/{cid}/hmac-auth"), j, s("{\"username\":\"u\",\"secret\":\"\"}"), 400),
        ("POST", format!("/consumers/{cid}/jwt"), j, s("{\"algorithm\":\"HS1\"}"), 400),
        ("POST", format!("/consumers/{cid}/jwt"), j, s("{\"algorithm\":\"RS256\",\"rsa_public_key\":\"x\"}"), 400),
        ("POST", format!("/consumers/{cid}/jwt"), j, s("{\"algorithm\":\"EdDSA\"}"), 400),
        ("POST", format!("/consumers/{cid}/acls"), j, s("{}"), 400),
        ("POST", format!("/consumers/{cid}/acls"), j, s("{\"group\":null}"), 400),
        ("PATCH", format!("/consumers/{cid}"), j, s("{\"username\":null,\"custom_id\":null}"), 400),
        ("PATCH", format!("/consumers/{cid}"), j, s("{\"id\":\"zz\"}"), 400),
        ("PUT", "/consumers/4b1d2c3e-0000-4000-8000-000000000000".into(), j, s("{}"), 400),
        // paths
        ("GET", "/consumers/%ff%fe".into(), None, vec![], 404),
        ("GET", "/consumers/%00".into(), None, vec![], 404),
        ("GET", "/consumers/a/b/c/d".into(), None, vec![], 404),
        ("GET", "/nothing-here".into(), None, vec![], 404),
        ("GET", "/consumers/nobody/key-auth".into(), None, vec![], 404),
        ("GET", "/acls/not-a-uuid/consumer".into(), None, vec![], 404),
        ("POST", "/consumers/bob/key-auth/x/y".into(), None, vec![], 404),
        ("DELETE", "/consumers".into(), None, vec![], 405),
        ("POST", "/services".into(), None, vec![], 405),
        ("TRACE", "/consumers".into(), None, vec![], 405),
        // queries
        ("GET", "/consumers?size=0".into(), None, vec![], 400),
        ("GET", "/consumers?size=-1".into(), None, vec![], 400),
        ("GET", "/consumers?size=abc".into(), None, vec![], 400),
        ("GET", "/consumers?size=99999999999999999999999".into(), None, vec![], 400),
        ("GET", "/consumers?offset=".into(), None, vec![], 400),
        ("GET", "/consumers?offset=!!!".into(), None, vec![], 400),
        ("GET", "/consumers?offset=%ff".into(), None, vec![], 400),
        ("GET", "/consumers?tags=a,b/c".into(), None, vec![], 400),
        ("GET", "/consumers?tags=".into(), None, vec![], 400),
        ("GET", "/consumers?tags=1,2,3,4,5,6".into(), None, vec![], 400),
        ("GET", "/consumers?custom_id=".into(), None, vec![], 400),
        ("GET", "/key-auths?size=1001".into(), None, vec![], 400),
        ("GET", "/services?size=0".into(), None, vec![], 400),
    ]
}

async fn bad_inputs_are_4xx_and_write_nothing(api: Api) {
    let c = api.ok("POST", "/consumers", serde_json::json!({"username": "bob"}).into(), 201).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let version = api.store.current_version().await.unwrap();
    let mut wrong = Vec::new();
    for (method, path, content_type, body, expected) in cases(&cid) {
        let mut request = Request::builder().method(method).uri(&path);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, answer) = api.raw(request.body(Body::from(body.clone())).unwrap()).await;
        assert!(status.as_u16() < 500, "{method} {path} {:?}: {status} {answer}", String::from_utf8_lossy(&body));
        if status.as_u16() != expected {
            wrong.push(format!(
                "{method} {path} {:?}: {status} (expected {expected}) {answer}",
                String::from_utf8_lossy(&body)
            ));
        }
        if status.as_u16() == 400 {
            assert!(answer["message"].is_string(), "{method} {path}: {answer}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(api.store.current_version().await.unwrap(), version, "a refused request wrote nothing");
    let all = api.ok("GET", "/consumers", None, 200).await;
    assert_eq!(all["data"], json!([c]));
}

async fn admin_token(api: Api) {
    // a second app with a token on the same kind of database
    let engine = if api.store.engine() == "sqlite" { Engine::Sqlite } else { Engine::Postgres };
    let guarded = Api::with(engine, Some("s3cret"), consumer_auth_service::DEFAULT_BODY_LIMIT).await;
    assert_eq!(guarded.call("GET", "/consumers", None).await.0, 401);
    let wrong = Request::builder().uri("/consumers").header("kong-admin-token", "s3crex").body(Body::empty()).unwrap();
    let (status, body) = guarded.raw(wrong).await;
    assert_eq!(
        (status.as_u16(), body["message"].as_str()),
        (401, Some("Invalid credentials. Token or User credentials required"))
    );
    let right = Request::builder().uri("/consumers").header("Kong-Admin-Token", "s3cret").body(Body::empty()).unwrap();
    assert_eq!(guarded.raw(right).await.0, 200);
    // no token configured: open
    assert_eq!(api.call("GET", "/consumers", None).await.0, 200);
}

async fn body_limit(api: Api) {
    let engine = if api.store.engine() == "sqlite" { Engine::Sqlite } else { Engine::Postgres };
    let small = Api::with(engine, None, 64).await;
    let big = json!({"username": "x".repeat(100)});
    let (status, body) = small.call("POST", "/consumers", Some(big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(small.ok("POST", "/consumers", Some(json!({"username": "ok"})), 201).await["username"], "ok");
}

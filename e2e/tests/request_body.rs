//! The plugins that read the request body (key-auth `key_in_body`, hmac-auth
//! `validate_request_body`) through the real Envoy: with `allow_on_headers_stop_iteration` (every
//! bootstrap the project ships sets it) they answer as on Kong, over HTTP/1.1 and HTTP/2, in one
//! chunk or many; without it (Envoy before 1.35, Istio's WasmPlugin, Envoy Gateway) a request
//! waiting for its body is answered 500 within 3 s, never forwarded.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{assert_seen, Cases, Seen};
use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::clients::{hmac_signed, now};
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE};
use consumer_auth_e2e::http::{Request, Response};
use serde_json::json;
use sha2::Digest;

const FORM: &str = "application/x-www-form-urlencoded";
const NO_KEY: &str = "No API key found in request";
const NO_MATCH: &str = "HMAC signature does not match";
/// Kong's answer to a request the filter could not judge.
const UNEXPECTED: &str = "An unexpected error occurred";
const ONE_MIB: usize = 1024 * 1024;

fn alice_by_key() -> Seen {
    Seen::authenticated(&ALICE, ALICE.key_id())
}

fn assert_refused(r: &Response, status: u16, message: &str) {
    assert!(r.upstream().is_none(), "must not reach the upstream: {}", r.text());
    assert_eq!((r.status, r.message().as_str()), (status, message), "{}", r.text());
}

fn form(path: &str, body: &str) -> Request {
    Request::new("POST", path).body(FORM, body)
}

/// `body` sent with `Transfer-Encoding: chunked` in pieces of `piece` bytes, and `trailer`
/// (`name: value`) after the last chunk if given.
fn chunked(path: &str, content_type: &str, body: &[u8], piece: usize, trailer: Option<&str>) -> Request {
    let mut wire = Vec::new();
    for part in body.chunks(piece) {
        wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n");
    if let Some(t) = trailer {
        wire.extend_from_slice(format!("{t}\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    let mut r = Request::new("POST", path).header("Content-Type", content_type).header("Transfer-Encoding", "chunked");
    r.body = wire;
    r
}

fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = "----consumer-auth-e2e";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn digest_of(body: &[u8]) -> String {
    format!("SHA-256={}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)))
}

/// Alice's hmac-signed POST of `body` to `path` with `digest` (signed with the date).
fn hmac_post(path: &str, body: &str, digest: Option<&str>) -> Request {
    let mut r = Request::new("POST", path).body("application/json", body);
    let names = if let Some(d) = digest {
        r = r.header("Digest", d);
        "date digest"
    } else {
        "date"
    };
    hmac_signed(r, ALICE.hmac_user(), ALICE.hmac_secret(), names, now())
}

fn body_bootstrap(upstream: u16) -> Bootstrap {
    Bootstrap::new(upstream)
        .route(
            "/key-body",
            [{
                // refusal lines at info: the HTTP/2 413 case tells the filter's answer by its line
                let mut doc = instance(json!([plugin("key-auth", json!({ "key_in_body": true }))]));
                if let Some(doc) = doc.as_object_mut() {
                    doc.insert("refusal_log_level".into(), json!("info"));
                }
                doc
            }],
        )
        .route(
            "/key-body-hide",
            [instance(json!([plugin("key-auth", json!({ "key_in_body": true, "hide_credentials": true }))]))],
        )
        .route("/hmac-body", [instance(json!([plugin("hmac-auth", json!({ "validate_request_body": true }))]))])
}

#[test]
fn body_plugins_through_envoy_with_stop_iteration() {
    let upstream = EchoServer::start();
    let envoy = Envoy::start(&body_bootstrap(upstream.port).http1_trailers());
    let port = envoy.port;
    let key = ALICE.key();
    let mut cases = Cases::new();

    // -- key_in_body --------------------------------------------------------------------------
    cases.run("form body with the key -> 200, body forwarded untouched", || {
        let body = format!("a=1&apikey={key}&b=2");
        let up = form("/key-body", &body).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), body);
    });
    cases.run("form body: hide_credentials removes the key from the body, content-length follows", || {
        let up = form("/key-body-hide", &format!("a=1&apikey={key}&b=2")).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), "a=1&b=2");
        assert_eq!(up.header("content-length"), Some("7"));
    });
    cases.run("JSON body with the key -> 200; hide_credentials drops the field", || {
        let body = format!(r#"{{"apikey":"{key}","order":7}}"#);
        let up = Request::new("POST", "/key-body").body("application/json", body.clone()).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), body);
        let up = Request::new("POST", "/key-body-hide").body("application/json", body).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&up.body).unwrap_or_default(), json!({ "order": 7 }));
    });
    cases.run("multipart body with the key -> 200; hide_credentials drops the part", || {
        let (ct, body) = multipart(&[("apikey", key), ("note", "hi")]);
        let up = Request::new("POST", "/key-body").body(&ct, body.clone()).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), body);
        let up = Request::new("POST", "/key-body-hide").body(&ct, body).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert!(!up.text().contains(key), "the key reached the upstream: {}", up.text());
        assert!(up.text().contains("name=\"note\"\r\n\r\nhi\r\n"), "{}", up.text());
    });
    cases.run("a wrong key in the body -> 401 Unauthorized", || {
        assert_refused(&form("/key-body", "apikey=nope").send(port), 401, "Unauthorized");
    });
    cases.run("the key in a header still works with key_in_body", || {
        let up = form("/key-body", "x=1").header("apikey", key).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), "x=1");
    });
    cases.run("an empty body and no body -> 401 no key, nothing waits", || {
        let start = Instant::now();
        assert_refused(&form("/key-body", "").header("Content-Length", "0").send(port), 401, NO_KEY);
        assert_refused(&Request::get("/key-body").send(port), 401, NO_KEY);
        assert_refused(&Request::new("POST", "/key-body").send(port), 401, NO_KEY);
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    });
    cases.run("a body in many chunks (1-byte and 7-byte pieces) -> 200, hidden", || {
        let body = format!("a=1&apikey={key}&b=2");
        for piece in [1, 7] {
            let up = chunked("/key-body-hide", FORM, body.as_bytes(), piece, None).send(port).expect_upstream();
            assert_seen(&up, &alice_by_key());
            assert_eq!(up.text(), "a=1&b=2", "pieces of {piece}");
        }
    });
    cases.run("a chunked body followed by trailers -> judged: 200 hidden, 401 without the key", || {
        let body = format!("a=1&apikey={key}&b=2");
        let r = chunked("/key-body-hide", FORM, body.as_bytes(), 5, Some("x-checksum: 1")).send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), "a=1&b=2");
        let r = chunked("/key-body", FORM, b"a=1&b=2", 3, Some("x-checksum: 1")).send(port);
        assert_refused(&r, 401, NO_KEY);
    });
    cases.run("a 1 MiB body with the key -> 200; one byte more -> 413 (Kong's body)", || {
        let mut body = format!("apikey={key}&pad=").into_bytes();
        body.resize(ONE_MIB, b'x');
        let up = Request::new("POST", "/key-body").body(FORM, body.clone()).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.body.len(), ONE_MIB);
        body.push(b'x');
        let r = Request::new("POST", "/key-body").body(FORM, body.clone()).send(port);
        assert_refused(&r, 413, "Payload too large");
        // Chunked, the size is known only while buffering: Envoy's own buffer limit (1 MiB by
        // default, `per_connection_buffer_limit_bytes`) may answer first with its plain-text 413
        // (seen in one CI run); either way it is refused and never forwarded.
        let r = chunked("/key-body", FORM, &body, 64 * 1024, None).send(port);
        assert!(r.upstream().is_none(), "must not reach the upstream: {}", r.text());
        assert_eq!(r.status, 413, "{}", r.text());
        if r.header("content-type").is_some_and(|t| t.starts_with("application/json")) {
            assert_eq!(r.message(), "Payload too large");
        } else {
            assert_eq!(r.text(), "Payload Too Large", "neither the filter's nor Envoy's 413");
        }
    });

    // -- HTTP/2 -------------------------------------------------------------------------------
    cases.run("HTTP/2: form body with the key -> 200, hidden; without -> 401", || {
        let r = form("/key-body-hide", &format!("a=1&apikey={key}&b=2")).send_h2(port);
        let up = r.expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), "a=1&b=2");
        assert_refused(&form("/key-body", "a=1").send_h2(port), 401, NO_KEY);
        assert_refused(&Request::get("/key-body").send_h2(port), 401, NO_KEY);
    });
    cases.run("HTTP/2: a 200 KiB body in many DATA frames -> 200", || {
        let mut body = format!("apikey={key}&pad=").into_bytes();
        body.resize(200 * 1024, b'x');
        let up = Request::new("POST", "/key-body").body(FORM, body).send_h2(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.body.len(), 200 * 1024);
    });
    // Envoy answers while curl is still sending: it may reset the stream before curl reads the
    // 413 (seen with curl 7.88 over h2c). Either way nothing reaches the upstream.
    cases.run("HTTP/2: a body over 1 MiB -> 413 or a reset stream, never forwarded", || {
        let before = upstream.requests_received();
        let refusals = || envoy.log().matches("reason=body_too_large status=413").count();
        let refused_before = refusals();
        let mut big = format!("apikey={key}&pad=").into_bytes();
        big.resize(ONE_MIB + 1, b'x');
        match Request::new("POST", "/key-body").body(FORM, big).try_send_h2(port) {
            Ok(r) => assert_refused(&r, 413, "Payload too large"),
            Err(e) => assert!(e.contains("(92)"), "not a reset stream: {e}"),
        }
        assert_eq!(upstream.requests_received(), before, "the upstream saw the request");
        assert_eq!(refusals(), refused_before + 1, "the filter's 413 line");
    });

    // -- hmac validate_request_body -----------------------------------------------------------
    let body = r#"{"amount":10}"#;
    cases.run("hmac: the right digest -> 200, body forwarded", || {
        let up = hmac_post("/hmac-body", body, Some(&digest_of(body.as_bytes()))).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.hmac_user()));
        assert_eq!(up.text(), body);
    });
    cases.run("hmac: the body tampered with -> 401 does not match", || {
        let r = hmac_post("/hmac-body", r#"{"amount":1000}"#, Some(&digest_of(body.as_bytes()))).send(port);
        assert_refused(&r, 401, NO_MATCH);
    });
    cases.run("hmac: a body without a digest -> 401; no body and no digest -> 200", || {
        assert_refused(&hmac_post("/hmac-body", body, None).send(port), 401, NO_MATCH);
        let up = hmac_signed(Request::get("/hmac-body"), ALICE.hmac_user(), ALICE.hmac_secret(), "date", now())
            .send(port)
            .expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.hmac_user()));
    });
    cases.run("hmac over HTTP/2: the right digest -> 200, tampered -> 401", || {
        let up = hmac_post("/hmac-body", body, Some(&digest_of(body.as_bytes()))).send_h2(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.hmac_user()));
        let r = hmac_post("/hmac-body", r#"{"amount":1}"#, Some(&digest_of(body.as_bytes()))).send_h2(port);
        assert_refused(&r, 401, NO_MATCH);
    });
    cases.run("no line about allow_on_headers_stop_iteration was logged", || {
        assert!(!envoy.log().contains("allow_on_headers_stop_iteration"), "{}", envoy.log());
    });
    cases.finish();
}

/// Without the setting Envoy never calls the body callback of a request whose headers paused:
/// the filter answers it 500 from its tick, 2–3 s after the headers, with one error line naming
/// the setting, and the upstream never sees it. Requests that need no body are unaffected.
#[test]
fn without_stop_iteration_a_request_waiting_for_its_body_is_answered_500() {
    let upstream = EchoServer::start();
    let envoy = Envoy::start(&body_bootstrap(upstream.port).without_stop_iteration());
    let port = envoy.port;
    let key = ALICE.key();
    let mut cases = Cases::new();

    cases.run("requests that need no body go on at once", || {
        let start = Instant::now();
        let up = form("/key-body", "x=1").header("apikey", key).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.text(), "x=1");
        assert_refused(&Request::get("/key-body").send(port), 401, NO_KEY);
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    });
    for (name, request) in [
        ("key_in_body, HTTP/1.1", form("/key-body", &format!("apikey={key}"))),
        ("validate_request_body, HTTP/1.1", hmac_post("/hmac-body", "{}", Some(&digest_of(b"{}")))),
    ] {
        cases.run(&format!("{name}: answered 500 within 2-3 s, never forwarded, one line naming the setting"), || {
            let before = upstream.requests_received();
            let lines_before = envoy.log().matches("allow_on_headers_stop_iteration").count();
            let start = Instant::now();
            let r = request.try_send_within(port, Duration::from_secs(10)).expect("an answer within 10 s");
            let took = start.elapsed();
            assert_refused(&r, 500, UNEXPECTED);
            assert!(r.json()["request_id"].is_string(), "{}", r.text());
            assert!(
                took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
                "answered after {took:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(upstream.requests_received(), before, "the upstream saw the request");
            let log = envoy.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("allow_on_headers_stop_iteration")).collect();
            assert_eq!(lines.len(), lines_before + 1, "{lines:#?}");
            let line = lines.last().copied().unwrap_or_default();
            assert!(line.contains("[error]") || line.contains("[critical]"), "not an error line: {line}");
            assert!(!line.contains(key) && !line.contains(ALICE.hmac_secret()), "a secret in the log: {line}");
        });
    }
    cases.run("HTTP/2: answered 500 within 2-3 s", || {
        let start = Instant::now();
        let r = form("/key-body", &format!("apikey={key}")).send_h2(port);
        let took = start.elapsed();
        assert_refused(&r, 500, UNEXPECTED);
        assert!(took < Duration::from_millis(3500), "answered after {took:?}");
    });
    cases.run("Envoy is still serving afterwards", || {
        let up = Request::get("/key-body").header("apikey", key).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
    });
    cases.finish();
}

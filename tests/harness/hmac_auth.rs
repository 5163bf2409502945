//! hmac-auth (BEHAVIOUR.md §B7) through the real .wasm: Kong's checks in order, every signing-string
//! form, every algorithm, clock skew, digest validation, hide_credentials, and AND/OR with
//! key-auth.

use std::time::{Duration, UNIX_EPOCH};

use crate::support::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Digest;

pub(crate) const ALICE_SECRET: &str = "alice-hmac-secret";
const BOB_SECRET: &str = "bob-hmac-secret";

/// The standard consumers, with alice-hmac on alice and bob-hmac on bob.
pub(crate) fn consumers_with_hmac() -> Value {
    let mut c = consumers();
    c[0]["hmacauth_credentials"] = json!([{"username": "alice-hmac", "secret": ALICE_SECRET}]);
    c[1]["hmacauth_credentials"] = json!([{"username": "bob-hmac", "secret": BOB_SECRET}]);
    c
}

fn hdoc(plugins: Value) -> String {
    json!({"consumers": consumers_with_hmac(), "plugins": plugins}).to_string()
}

fn hmac_auth(config: Value) -> Value {
    json!([{"name": "hmac-auth", "config": config}])
}

fn run(plugins: Value, req: Request) -> Exchange {
    let mut h = host();
    let f = h.configure(&hdoc(plugins)).unwrap_or_else(|e| panic!("configuration refused: {e}"));
    checked(h.send(&[f], req))
}

use consumer_auth::time::http_date;

#[test]
fn http_date_helper() {
    assert_eq!(http_date(NOW), "Thu, 01 Jan 2026 00:00:00 GMT");
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
}

/// base64(HMAC(secret, signing string)) computed here, independently of the filter.
pub(crate) fn sign(algorithm: &str, secret: &str, signing_string: &str) -> String {
    let bytes = match algorithm {
        "hmac-sha1" => {
            let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(signing_string.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "hmac-sha256" => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(signing_string.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "hmac-sha384" => {
            let mut m = Hmac::<sha2::Sha384>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(signing_string.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "hmac-sha512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(signing_string.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        other => panic!("{other}"),
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn authorization(user: &str, algorithm: &str, headers: &str, signature: &str) -> String {
    format!(r#"hmac username="{user}", algorithm="{algorithm}", headers="{headers}", signature="{signature}""#)
}

/// A GET signed by alice over `date` with hmac-sha256.
pub(crate) fn alice_get(path: &str) -> Request {
    let date = http_date(NOW);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}"));
    Request::get(path)
        .header("date", &date)
        .header("authorization", &authorization("alice-hmac", "hmac-sha256", "date", &sig))
}

fn refused_with(ex: &Exchange, msg: &str) {
    assert_refused(ex, 401, msg);
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("hmac"), "{msg}");
}

const CANNOT_VERIFY: &str = "HMAC signature cannot be verified";
const NO_MATCH: &str = "HMAC signature does not match";
const DATE_REQUIRED: &str =
    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication";

#[test]
fn valid_signature_sets_the_identity() {
    let ex = run(hmac_auth(json!({})), alice_get("/hmac"));
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
    assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ALICE_ID));
    assert_eq!(ex.upstream_header("x-consumer-custom-id").as_deref(), Some("crm-1042"));
    // hide_credentials=false forwards the header
    assert!(ex.upstream_header("authorization").unwrap().starts_with("hmac username=\"alice-hmac\""));
}

#[test]
fn no_authorization_is_unauthorized_with_challenge() {
    let ex = run(hmac_auth(json!({})), Request::get("/").header("date", &http_date(NOW)).request_id(Some("r-1")));
    refused_with(&ex, "Unauthorized");
    assert_eq!(ex.body_str(), r#"{"message":"Unauthorized","request_id":"r-1"}"#);
    assert_eq!(ex.local_header("content-type").as_deref(), Some("application/json; charset=utf-8"));
    let ex = run(hmac_auth(json!({"realm": "kong"})), Request::get("/"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"hmac realm="kong""#));
    let ex = run(hmac_auth(json!({"realm": "kong"})), Request::get("/").header("authorization", "hmac x"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"hmac realm="kong""#));
}

#[test]
fn the_date_check_comes_before_the_header_is_parsed() {
    // garbage Authorization and no date: the date message, not the parse one
    let ex = run(hmac_auth(json!({})), Request::get("/").header("authorization", "garbage"));
    refused_with(&ex, DATE_REQUIRED);
    for bad in ["", "yesterday", "2026-01-01T00:00:00Z", "1767225600", "Thu, 01 Jan 2026 25:00:00 GMT"] {
        let ex = run(hmac_auth(json!({})), Request::get("/").header("date", bad).header("authorization", "garbage"));
        refused_with(&ex, DATE_REQUIRED);
    }
}

#[test]
fn clock_skew_on_both_sides_with_date_and_x_date() {
    let plugins = hmac_auth(json!({}));
    let mut h = host();
    let f = h.configure(&hdoc(plugins)).unwrap();
    let signed = |date_header: &str, t: u64| {
        let date = http_date(t);
        let sig = sign("hmac-sha256", ALICE_SECRET, &format!("{date_header}: {date}"));
        Request::get("/")
            .header(date_header, &date)
            .header("authorization", &authorization("alice-hmac", "hmac-sha256", date_header, &sig))
    };
    for date_header in ["date", "x-date"] {
        for (offset, ok) in [(-301i64, false), (-300, true), (0, true), (300, true), (301, false)] {
            let t = (NOW as i64 + offset) as u64;
            let ex = checked(h.send(&[f], signed(date_header, t)));
            if ok {
                assert_upstream_as(&ex, "alice", Some("alice-hmac"));
            } else {
                refused_with(&ex, DATE_REQUIRED);
            }
        }
    }
    // the clock is the host's: move it and the same request is out of skew
    h.set_time(UNIX_EPOCH + Duration::from_secs(NOW + 301));
    refused_with(&checked(h.send(&[f], signed("date", NOW))), DATE_REQUIRED);
    h.set_time(UNIX_EPOCH + Duration::from_secs(NOW - 200));
    assert_upstream_as(&checked(h.send(&[f], signed("date", NOW))), "alice", Some("alice-hmac"));
}

#[test]
fn either_date_header_may_satisfy_the_skew() {
    let good = http_date(NOW);
    let stale = http_date(NOW - 10_000);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {stale}\nx-date: {good}"));
    let auth = authorization("alice-hmac", "hmac-sha256", "date x-date", &sig);
    // a stale Date with a fresh X-Date passes the skew check, and the signature covers both
    let ex = run(
        hmac_auth(json!({})),
        Request::get("/").header("date", &stale).header("x-date", &good).header("authorization", &auth),
    );
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {good}\nx-date: {stale}"));
    let auth = authorization("alice-hmac", "hmac-sha256", "date x-date", &sig);
    let ex = run(
        hmac_auth(json!({})),
        Request::get("/").header("date", &good).header("x-date", &stale).header("authorization", &auth),
    );
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
}

#[test]
fn a_custom_clock_skew() {
    let date = http_date(NOW - 20);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}"));
    let req = || {
        Request::get("/")
            .header("date", &date)
            .header("authorization", &authorization("alice-hmac", "hmac-sha256", "date", &sig))
    };
    refused_with(&run(hmac_auth(json!({"clock_skew": 10})), req()), DATE_REQUIRED);
    assert_upstream_as(&run(hmac_auth(json!({"clock_skew": 20.5})), req()), "alice", Some("alice-hmac"));
}

#[test]
fn the_other_http_date_formats() {
    // RFC 850 and asctime, as nginx parses them
    for date in ["Thursday, 01-Jan-26 00:00:00 GMT", "Thu Jan  1 00:00:00 2026"] {
        let sig = sign("hmac-sha1", ALICE_SECRET, &format!("date: {date}"));
        let req = Request::get("/")
            .header("date", date)
            .header("authorization", &authorization("alice-hmac", "hmac-sha1", "date", &sig));
        assert_upstream_as(&run(hmac_auth(json!({})), req), "alice", Some("alice-hmac"));
    }
}

#[test]
fn unparsable_or_unacceptable_parameters_cannot_be_verified() {
    let date = http_date(NOW);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}"));
    let cases: Vec<(&str, Value, String)> = vec![
        ("not hmac", json!({}), "Basic YWxpY2U6cHc=".to_string()),
        (
            "scheme HMAC",
            json!({}),
            authorization("alice-hmac", "hmac-sha256", "date", &sig).replacen("hmac", "HMAC", 1),
        ),
        (
            "fields out of order",
            json!({}),
            format!(r#"hmac algorithm="hmac-sha256", username="alice-hmac", headers="date", signature="{sig}""#),
        ),
        (
            "no comma",
            json!({}),
            format!(r#"hmac username="alice-hmac" algorithm="hmac-sha256", headers="date", signature="{sig}""#),
        ),
        (
            "no signature",
            json!({}),
            r#"hmac username="alice-hmac", algorithm="hmac-sha256", headers="date""#.to_string(),
        ),
        ("empty username", json!({}), authorization("", "hmac-sha256", "date", &sig)),
        ("unknown username", json!({}), authorization("mallory", "hmac-sha256", "date", &sig)),
        ("unknown algorithm", json!({}), authorization("alice-hmac", "hmac-md5", "date", &sig)),
        (
            "algorithm not allowed",
            json!({"algorithms": ["hmac-sha512"]}),
            authorization("alice-hmac", "hmac-sha256", "date", &sig),
        ),
        (
            "enforced header not signed",
            json!({"enforce_headers": ["date", "content-md5"]}),
            authorization("alice-hmac", "hmac-sha256", "date", &sig),
        ),
        ("algorithm case", json!({}), authorization("alice-hmac", "HMAC-SHA256", "date", &sig)),
    ];
    for (what, config, auth) in cases {
        let ex = run(hmac_auth(config), Request::get("/").header("date", &date).header("authorization", &auth));
        assert_eq!(ex.status(), 401, "{what}");
        assert_eq!(message(&ex), CANNOT_VERIFY, "{what}");
        assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("hmac"), "{what}");
    }
}

#[test]
fn enforced_headers_that_are_signed_pass() {
    let date = http_date(NOW);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}\ncontent-md5: abc"));
    let req = Request::get("/")
        .header("date", &date)
        .header("content-md5", "abc")
        .header("authorization", &authorization("alice-hmac", "hmac-sha256", "date content-md5", &sig));
    assert_upstream_as(
        &run(hmac_auth(json!({"enforce_headers": ["content-md5", "date"]})), req),
        "alice",
        Some("alice-hmac"),
    );
}

#[test]
fn signatures_that_do_not_match() {
    let date = http_date(NOW);
    let good = sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}"));
    let cases = vec![
        (
            "wrong secret",
            authorization(
                "alice-hmac",
                "hmac-sha256",
                "date",
                &sign("hmac-sha256", BOB_SECRET, &format!("date: {date}")),
            ),
        ),
        ("bob's signature under alice's name", authorization("bob-hmac", "hmac-sha256", "date", &good)),
        ("wrong algorithm claimed", authorization("alice-hmac", "hmac-sha512", "date", &good)),
        ("signature not base64", authorization("alice-hmac", "hmac-sha256", "date", "!!!not base64!!!")),
        ("truncated signature", authorization("alice-hmac", "hmac-sha256", "date", &good[..20])),
        ("other headers signed", authorization("alice-hmac", "hmac-sha256", "date x-foo", &good)),
    ];
    for (what, auth) in cases {
        let ex = run(hmac_auth(json!({})), Request::get("/").header("date", &date).header("authorization", &auth));
        assert_eq!(ex.status(), 401, "{what}");
        assert_eq!(message(&ex), NO_MATCH, "{what}");
    }
    // a tampered signed header
    let auth = authorization(
        "alice-hmac",
        "hmac-sha256",
        "date x-amount",
        &sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}\nx-amount: 10")),
    );
    let ex = run(
        hmac_auth(json!({})),
        Request::get("/").header("date", &date).header("x-amount", "1000").header("authorization", &auth),
    );
    refused_with(&ex, NO_MATCH);
}

#[test]
fn every_algorithm() {
    let date = http_date(NOW);
    for algorithm in ["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"] {
        let sig = sign(algorithm, ALICE_SECRET, &format!("date: {date}"));
        let req = Request::get("/")
            .header("date", &date)
            .header("authorization", &authorization("alice-hmac", algorithm, "date", &sig));
        assert_upstream_as(&run(hmac_auth(json!({})), req.clone()), "alice", Some("alice-hmac"));
        // restricted to this algorithm alone: still fine; restricted to another: refused
        assert_upstream_as(
            &run(hmac_auth(json!({"algorithms": [algorithm]})), req.clone()),
            "alice",
            Some("alice-hmac"),
        );
        let other = if algorithm == "hmac-sha1" { "hmac-sha256" } else { "hmac-sha1" };
        refused_with(&run(hmac_auth(json!({"algorithms": [other]})), req), CANNOT_VERIFY);
    }
}

#[test]
fn signing_string_forms() {
    let date = http_date(NOW);
    let path = "/hmac/a%20b/../c?z=1&a=%2F&b";
    struct Case {
        what: &'static str,
        headers: &'static str,
        signing: String,
        protocol: &'static str,
    }
    let cases = vec![
        Case { what: "date", headers: "date", signing: format!("date: {date}"), protocol: "HTTP/1.1" },
        Case { what: "x-date", headers: "x-date", signing: format!("x-date: {date}"), protocol: "HTTP/1.1" },
        Case {
            what: "@request-target",
            headers: "date @request-target",
            signing: format!("date: {date}\n@request-target: post {path}"),
            protocol: "HTTP/1.1",
        },
        Case {
            what: "request-line HTTP/1.1",
            headers: "request-line date",
            signing: format!("POST {path} HTTP/1.1\ndate: {date}"),
            protocol: "HTTP/1.1",
        },
        Case {
            what: "request-line HTTP/1.0",
            headers: "date request-line",
            signing: format!("date: {date}\nPOST {path} HTTP/1.0"),
            protocol: "HTTP/1.0",
        },
        Case {
            what: "request-line HTTP/2",
            headers: "date request-line",
            signing: format!("date: {date}\nPOST {path} HTTP/2.0"),
            protocol: "HTTP/2",
        },
        Case {
            what: "absent header",
            headers: "date x-absent",
            signing: format!("date: {date}\nx-absent:"),
            protocol: "HTTP/1.1",
        },
        Case {
            what: "repeated header: first value, name as listed",
            headers: "date X-Multi",
            signing: format!("date: {date}\nX-Multi: one"),
            protocol: "HTTP/1.1",
        },
        Case {
            what: "underscore name matches the dashed header",
            headers: "date x_multi",
            signing: format!("date: {date}\nx_multi: one"),
            protocol: "HTTP/1.1",
        },
        Case {
            what: "empty name from two spaces",
            headers: "date  x-absent",
            signing: format!("date: {date}\n:\nx-absent:"),
            protocol: "HTTP/1.1",
        },
    ];
    for c in cases {
        let sig = sign("hmac-sha256", ALICE_SECRET, &c.signing);
        let req = || {
            Request::post(path)
                .protocol(c.protocol)
                .header("date", &date)
                .header("x-date", &date)
                .header("x-multi", "one")
                .header("x-multi", "two")
                .header("authorization", &authorization("alice-hmac", "hmac-sha256", c.headers, &sig))
        };
        let ex = run(hmac_auth(json!({})), req());
        assert_eq!(ex.status(), 200, "{}: {}", c.what, ex.body_str());
        assert_upstream_as(&ex, "alice", Some("alice-hmac"));
        // the same signature with another protocol or path does not match
        if c.headers.contains("request-line") {
            let other = if c.protocol == "HTTP/2" { "HTTP/1.1" } else { "HTTP/2" };
            refused_with(&run(hmac_auth(json!({})), req().protocol(other)), NO_MATCH);
        }
    }
    // the raw path is signed: a normalised spelling does not match
    let sig = sign("hmac-sha256", ALICE_SECRET, "@request-target: get /a/b?x=%41");
    let auth = authorization("alice-hmac", "hmac-sha256", "@request-target", &sig);
    assert_upstream_as(
        &run(hmac_auth(json!({})), Request::get("/a/b?x=%41").header("date", &date).header("authorization", &auth)),
        "alice",
        Some("alice-hmac"),
    );
    refused_with(
        &run(hmac_auth(json!({})), Request::get("/a/b?x=A").header("date", &date).header("authorization", &auth)),
        NO_MATCH,
    );
}

#[test]
fn the_protocol_is_asked_only_for_a_request_line() {
    let ex = run(hmac_auth(json!({})), alice_get("/"));
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
    let date = http_date(NOW);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("GET / HTTP/1.1\ndate: {date}"));
    let with_line = Request::get("/")
        .header("date", &date)
        .header("authorization", &authorization("alice-hmac", "hmac-sha256", "request-line date", &sig));
    let ex2 = run(hmac_auth(json!({})), with_line);
    assert_upstream_as(&ex2, "alice", Some("alice-hmac"));
    assert_eq!(
        ex2.host_call_count("proxy_get_property"),
        ex.host_call_count("proxy_get_property") + 1,
        "one more property read (request.protocol) for a request-line"
    );
}

#[test]
fn proxy_authorization_first_then_authorization() {
    let date = http_date(NOW);
    let alice = authorization(
        "alice-hmac",
        "hmac-sha256",
        "date",
        &sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}")),
    );
    let bob =
        authorization("bob-hmac", "hmac-sha256", "date", &sign("hmac-sha256", BOB_SECRET, &format!("date: {date}")));
    let req =
        Request::get("/").header("date", &date).header("proxy-authorization", &bob).header("authorization", &alice);
    assert_upstream_as(&run(hmac_auth(json!({})), req), "bob", Some("bob-hmac"));
    // a Proxy-Authorization that does not parse falls back to Authorization
    let req = Request::get("/")
        .header("date", &date)
        .header("proxy-authorization", "Basic eA==")
        .header("authorization", &alice);
    assert_upstream_as(&run(hmac_auth(json!({})), req), "alice", Some("alice-hmac"));
    // Proxy-Authorization alone
    let req = Request::get("/").header("date", &date).header("proxy-authorization", &alice);
    assert_upstream_as(&run(hmac_auth(json!({})), req), "alice", Some("alice-hmac"));
    // a parsed Proxy-Authorization decides even when it is wrong
    let wrong = authorization("bob-hmac", "hmac-sha256", "date", "d3Jvbmc=");
    let req =
        Request::get("/").header("date", &date).header("proxy-authorization", &wrong).header("authorization", &alice);
    refused_with(&run(hmac_auth(json!({})), req), NO_MATCH);
}

#[test]
fn hide_credentials_removes_the_parsed_header() {
    let date = http_date(NOW);
    let alice = authorization(
        "alice-hmac",
        "hmac-sha256",
        "date",
        &sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}")),
    );
    let ex = run(
        hmac_auth(json!({"hide_credentials": true})),
        Request::get("/").header("date", &date).header("authorization", &alice),
    );
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
    assert_eq!(ex.upstream_header("authorization"), None);
    // Proxy-Authorization used: only it goes
    let ex = run(
        hmac_auth(json!({"hide_credentials": true})),
        Request::get("/")
            .header("date", &date)
            .header("proxy-authorization", &alice)
            .header("authorization", "Bearer other"),
    );
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
    assert_eq!(ex.upstream_header("proxy-authorization"), None);
    assert_eq!(ex.upstream_header("authorization").as_deref(), Some("Bearer other"));
    // a failed OR attempt still strips the credential (the side effect precedes validation)
    let bad = authorization("alice-hmac", "hmac-sha256", "date", "d3Jvbmc=");
    let ex = run(
        hmac_auth(json!({"hide_credentials": true, "anonymous": "anonymous_users"})),
        Request::get("/").header("date", &date).header("authorization", &bad),
    );
    assert_upstream_as(&ex, "anonymous_users", None);
    assert_eq!(ex.upstream_header("authorization"), None);
}

pub(crate) fn body_request(body: &str, digest: Option<&str>) -> Request {
    let date = http_date(NOW);
    let signed_headers = if digest.is_some() { "date digest" } else { "date" };
    let signing = match digest {
        Some(d) => format!("date: {date}\ndigest: {d}"),
        None => format!("date: {date}"),
    };
    let sig = sign("hmac-sha256", ALICE_SECRET, &signing);
    let mut r = Request::post("/")
        .header("date", &date)
        .header("content-type", "application/json")
        .header("authorization", &authorization("alice-hmac", "hmac-sha256", signed_headers, &sig));
    if let Some(d) = digest {
        r = r.header("digest", d);
    }
    if !body.is_empty() {
        r = r.header("content-length", &body.len().to_string()).body(body.to_string());
    }
    r
}

pub(crate) fn digest_of(body: &str) -> String {
    format!("SHA-256={}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes())))
}

#[test]
fn request_body_digest() {
    let plugins = || hmac_auth(json!({"validate_request_body": true}));
    let body = r#"{"amount":10}"#;
    // no digest, no body
    assert_upstream_as(&run(plugins(), body_request("", None)), "alice", Some("alice-hmac"));
    // no digest with a body
    refused_with(&run(plugins(), body_request(body, None)), NO_MATCH);
    // the right digest
    let ex = run(plugins(), body_request(body, Some(&digest_of(body))));
    assert_upstream_as(&ex, "alice", Some("alice-hmac"));
    assert_eq!(ex.upstream.as_ref().unwrap().body, body.as_bytes());
    // the body tampered with (the digest is of another body)
    refused_with(&run(plugins(), body_request(r#"{"amount":1000}"#, Some(&digest_of(body)))), NO_MATCH);
    // the digest tampered with
    refused_with(&run(plugins(), body_request(body, Some("SHA-256=AAAA"))), NO_MATCH);
    refused_with(&run(plugins(), body_request(body, Some(&digest_of(body).to_lowercase()))), NO_MATCH);
    // a digest with an empty body must be the digest of nothing
    assert_upstream_as(&run(plugins(), body_request("", Some(&digest_of("")))), "alice", Some("alice-hmac"));
    // the body arriving in chunks
    let chunked =
        body_request(body, Some(&digest_of(body))).body_chunks(vec![b"{\"amount\"".to_vec(), b":10}".to_vec()]);
    assert_upstream_as(&run(plugins(), chunked), "alice", Some("alice-hmac"));
    // without validate_request_body the body is not looked at
    assert_upstream_as(&run(hmac_auth(json!({})), body_request(body, None)), "alice", Some("alice-hmac"));
}

#[test]
fn the_body_is_read_only_with_validate_request_body() {
    let body = r#"{"amount":10}"#;
    let ex = run(hmac_auth(json!({})), body_request(body, None));
    assert_eq!(ex.host_call_count("proxy_get_buffer_bytes"), 0, "the body was not read: {:?}", ex.host_calls);
    let ex = run(hmac_auth(json!({"validate_request_body": true})), body_request(body, Some(&digest_of(body))));
    assert_eq!(ex.host_call_count("proxy_get_buffer_bytes"), 1, "the body was read once: {:?}", ex.host_calls);
}

#[test]
fn a_body_too_large_is_413() {
    let body = "x".repeat(1024 * 1024 + 1);
    let ex = run(hmac_auth(json!({"validate_request_body": true})), body_request(&body, Some(&digest_of(&body))));
    assert_eq!(ex.status(), 413);
}

#[test]
fn malformed_input_never_traps() {
    let date = http_date(NOW);
    let long = "\"".repeat(20_000) + &r#"", algorithm=""#.repeat(2000);
    let values: Vec<Vec<u8>> = vec![
        b"hmac username=\"\xff\xfe\", algorithm=\"hmac-sha1\", headers=\"date\", signature=\"c2ln\"".to_vec(),
        b"hmac username=\"alice-hmac\", algorithm=\"hmac-sha1\", headers=\"\xff\", signature=\"\xff\"".to_vec(),
        format!("hmac username=\"{long}\"").into_bytes(),
        br#"hmac username="a", algorithm="b", headers="c", signature="""#.repeat(500),
        vec![b'"'; 50_000],
        Vec::new(),
    ];
    for v in values {
        let ex = run(hmac_auth(json!({})), Request::get("/").header("date", &date).header_bytes("authorization", &v));
        assert_eq!(ex.status(), 401);
    }
    let ex =
        run(hmac_auth(json!({})), Request::get("/").header_bytes("date", b"\xff\xff").header("authorization", "x"));
    refused_with(&ex, DATE_REQUIRED);
}

#[test]
fn secrets_and_signatures_are_never_logged() {
    let ex = run(hmac_auth(json!({})), alice_get("/"));
    let date = http_date(NOW);
    let sig = sign("hmac-sha256", ALICE_SECRET, &format!("date: {date}"));
    let bad = run(
        hmac_auth(json!({})),
        Request::get("/")
            .header("date", &date)
            .header("authorization", &authorization("alice-hmac", "hmac-sha256", "date", &sig[..10])),
    );
    for e in [ex, bad] {
        for line in &e.logs {
            assert!(!line.message.contains(ALICE_SECRET), "{}", line.message);
            assert!(!line.message.contains(&sig[..10]), "{}", line.message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AND / OR with key-auth (key-auth 1250 runs before hmac-auth 1030).

/// key-auth: alice's key; hmac: bob's credential.
fn mixed(key: Cred, hmac: Cred) -> Request {
    let date = http_date(NOW);
    let mut r = Request::get("/").header("date", &date);
    match key {
        Cred::Good => r = r.header("apikey", "alice-key"),
        Cred::Bad => r = r.header("apikey", "nope"),
        Cred::None => {}
    }
    let sig = sign("hmac-sha256", BOB_SECRET, &format!("date: {date}"));
    match hmac {
        Cred::Good => r = r.header("authorization", &authorization("bob-hmac", "hmac-sha256", "date", &sig)),
        Cred::Bad => r = r.header("authorization", &authorization("bob-hmac", "hmac-sha256", "date", "d3Jvbmc=")),
        Cred::None => {}
    }
    r
}

#[test]
fn and_table_with_key_auth() {
    let plugins = [plugin_entry("key-auth", None), plugin_entry("hmac-auth", None)];
    // (key, hmac) -> expected: Ok(username, credential) or Err(message, challenge)
    type Expected<'a> = Result<(&'a str, &'a str), (&'a str, &'a str)>;
    let table: Vec<(Cred, Cred, Expected)> = vec![
        (Cred::Good, Cred::Good, Ok(("bob", "bob-hmac"))), // the last in priority sets the identity
        (Cred::Good, Cred::None, Err(("Unauthorized", "hmac"))),
        (Cred::Good, Cred::Bad, Err((NO_MATCH, "hmac"))),
        (Cred::None, Cred::Good, Err(("No API key found in request", "Key"))),
        (Cred::Bad, Cred::Good, Err(("Unauthorized", "Key"))),
        (Cred::None, Cred::None, Err(("No API key found in request", "Key"))),
        (Cred::Bad, Cred::Bad, Err(("Unauthorized", "Key"))),
    ];
    for (key, hmac, expected) in table {
        let ex = both_ways(hdoc, &plugins, || mixed(key, hmac));
        match expected {
            Ok((user, cred)) => assert_upstream_as(&ex, user, Some(cred)),
            Err((msg, challenge)) => {
                assert_refused(&ex, 401, msg);
                assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(challenge), "{key:?} {hmac:?}");
            }
        }
    }
}

#[test]
fn or_table_with_key_auth() {
    let plugins =
        [plugin_entry("key-auth", Some("anonymous_users")), plugin_entry("hmac-auth", Some("anonymous_users"))];
    type Winner<'a> = (&'a str, Option<&'a str>);
    let table: Vec<(Cred, Cred, Winner)> = vec![
        (Cred::Good, Cred::Good, ("alice", Some(ALICE_KEY_ID))), // the first in priority wins
        (Cred::Good, Cred::None, ("alice", Some(ALICE_KEY_ID))),
        (Cred::Good, Cred::Bad, ("alice", Some(ALICE_KEY_ID))),
        (Cred::None, Cred::Good, ("bob", Some("bob-hmac"))),
        (Cred::Bad, Cred::Good, ("bob", Some("bob-hmac"))), // replaces key-auth's anonymous
        (Cred::None, Cred::None, ("anonymous_users", None)),
        (Cred::Bad, Cred::Bad, ("anonymous_users", None)),
    ];
    for (key, hmac, (user, cred)) in table {
        let ex = both_ways(hdoc, &plugins, || mixed(key, hmac));
        assert_upstream_as(&ex, user, cred);
        assert_eq!(ex.local_header("www-authenticate"), None);
    }
}

#[test]
fn mixed_and_or_with_key_auth() {
    // key-auth optional, hmac-auth mandatory: an AND plugin after a successful OR plugin still
    // runs and its identity wins
    let plugins = [plugin_entry("key-auth", Some("anonymous_users")), plugin_entry("hmac-auth", None)];
    assert_upstream_as(&both_ways(hdoc, &plugins, || mixed(Cred::Good, Cred::Good)), "bob", Some("bob-hmac"));
    assert_upstream_as(&both_ways(hdoc, &plugins, || mixed(Cred::None, Cred::Good)), "bob", Some("bob-hmac"));
    refused_with(&both_ways(hdoc, &plugins, || mixed(Cred::Good, Cred::None)), "Unauthorized");
    // key-auth mandatory, hmac-auth optional: skips after key-auth established a credential
    let plugins = [plugin_entry("key-auth", None), plugin_entry("hmac-auth", Some("anonymous_users"))];
    assert_upstream_as(&both_ways(hdoc, &plugins, || mixed(Cred::Good, Cred::Bad)), "alice", Some(ALICE_KEY_ID));
    assert_upstream_as(&both_ways(hdoc, &plugins, || mixed(Cred::Good, Cred::Good)), "alice", Some(ALICE_KEY_ID));
    assert_refused(&both_ways(hdoc, &plugins, || mixed(Cred::None, Cred::Good)), 401, "No API key found in request");
}

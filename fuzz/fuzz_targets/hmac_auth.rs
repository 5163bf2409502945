//! hmac-auth: the `Authorization` (or `Proxy-Authorization`) header's fields, the `Date` /
//! `X-Date` parser, the body digest and the signing string, directly and through the pipeline
//! (two documents: `@doc 1` enforces headers and takes hmac-sha1 too). Properties: a parsed date
//! prints back to the same time; the fields parsed are non-empty.
#![no_main]

use consumer_auth::plugins::hmac_auth::{body_digest, http_version, parse_authorization, signing_string};
use consumer_auth::time::{http_date, parse_http_date};
use consumer_auth_fuzz::{document, run_checked, FakeHost, FuzzRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

thread_local! {
    static CONFIGS: [consumer_auth::config::Config; 2] = [
        document(json!([{"name": "hmac-auth", "config": {"validate_request_body": true, "hide_credentials": true}}])),
        document(json!([{"name": "hmac-auth", "config": {
            "enforce_headers": ["date", "request-line", "content-md5"],
            "algorithms": ["hmac-sha1", "hmac-sha256", "hmac-sha512"], "clock_skew": 1
        }}])),
    ];
}

fuzz_target!(|data: &[u8]| {
    let req = FuzzRequest::parse(data);
    for (_, value) in &req.headers {
        if let Some(params) = parse_authorization(value) {
            assert!(!params.username.is_empty() && !params.signature.is_empty());
            let view = req.view();
            let _ = signing_string(&view, &params.headers(), req.protocol.as_deref().and_then(http_version));
        }
        if let Some(t) = parse_http_date(value) {
            assert_eq!(parse_http_date(http_date(t).as_bytes()), Some(t), "{:?}", String::from_utf8_lossy(value));
        }
    }
    if let Some(body) = &req.body {
        let _ = body_digest(body);
    }
    let doc = if data.starts_with(b"@doc 1") { 1 } else { 0 };
    CONFIGS.with(|configs| run_checked(&configs[doc], &req, &mut FakeHost::default()));
});

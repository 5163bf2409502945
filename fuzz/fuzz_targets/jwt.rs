//! jwt: the token found in a header (`Bearer`), a query argument or a cookie, decoded (three
//! base64url segments, JSON header and claims), its key claim looked up, its registered claims
//! checked against the clock and its signature verified, through the pipeline over a document
//! with one secret per algorithm (`consumer_auth_fuzz::consumers`). Each input runs twice on the
//! same instance: the second run goes through the verified-token cache.
#![no_main]

use consumer_auth_fuzz::{document, run_checked, FakeHost, FuzzRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let req = FuzzRequest::parse(data);
    // a fresh instance per input (the token cache is per instance): a finding replays alone
    let config = if data.starts_with(b"@doc 1") {
        document(json!([{"name": "jwt", "config": {"secret_is_base64": true, "key_claim_name": "kid",
            "header_names": ["x-token"], "uri_param_names": [], "token_cache_entries": 0}}]))
    } else {
        document(json!([{"name": "jwt", "config": {"cookie_names": ["jwt", "token"],
            "claims_to_verify": ["exp", "nbf"], "maximum_expiration": 86400}}]))
    };
    let mut host = FakeHost::default();
    let first = format!("{:?}", run_checked(&config, &req, &mut host));
    let second = format!("{:?}", run_checked(&config, &req, &mut host));
    assert_eq!(first, second, "the cached verdict differs from the first");
});

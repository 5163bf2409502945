//! jwt: the token found in a header (`Bearer`), a query argument or a cookie, decoded (three
//! base64url segments, JSON header and claims), its key claim looked up, its registered claims
//! checked against the clock and its signature verified, through the pipeline over a document
//! with one secret per algorithm (`consumer_auth_fuzz::consumers`); `@doc 1`: base64 secrets,
//! the key in `kid`, the token in `x-token` only.
//!
//! The verified-token cache: every input runs twice on an instance whose cache lives for the
//! whole fuzzing run (so it also holds earlier inputs' tokens), and once on the same document
//! without a cache; the three outcomes must be the same. (Building the instances per input, 12
//! keys parsed each time, ran at 10 inputs/s.) A finding of this check may need the inputs before
//! it: replay it with the run's corpus.
#![no_main]

use consumer_auth::config::Config;
use consumer_auth_fuzz::{document, run_checked, FakeHost, FuzzRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn plugin(cache_entries: u64) -> serde_json::Value {
    json!([{"name": "jwt", "config": {"cookie_names": ["jwt", "token"], "claims_to_verify": ["exp", "nbf"],
        "maximum_expiration": 86400, "token_cache_entries": cache_entries}}])
}

thread_local! {
    static CONFIGS: (Config, Config, Config) = (
        document(plugin(64)),
        document(plugin(0)),
        document(json!([{"name": "jwt", "config": {"secret_is_base64": true, "key_claim_name": "kid",
            "header_names": ["x-token"], "uri_param_names": [], "token_cache_entries": 0}}]))
    );
}

fuzz_target!(|data: &[u8]| {
    let req = FuzzRequest::parse(data);
    CONFIGS.with(|(cached, uncached, base64)| {
        if data.starts_with(b"@doc 1") {
            run_checked(base64, &req, &mut FakeHost::default());
            return;
        }
        let want = format!("{:?}", run_checked(uncached, &req, &mut FakeHost::default()));
        for _ in 0..2 {
            let got = format!("{:?}", run_checked(cached, &req, &mut FakeHost::default()));
            assert_eq!(got, want, "the cached instance decides differently");
        }
    });
});

//! key-auth's credential lookup: the key in a header, the query or the body (form, JSON,
//! multipart), with hide_credentials rewriting the path or the body, through the pipeline over a
//! document of the harness's consumers. Checks: `consumer_auth_fuzz::run_checked`.
#![no_main]

use consumer_auth_fuzz::{document, run_checked, FakeHost, FuzzRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

thread_local! {
    static CONFIG: consumer_auth::config::Config = document(json!([{"name": "key-auth", "config": {
        "key_names": ["apikey", "X-Api-Key"], "key_in_body": true, "hide_credentials": true
    }}]));
}

fuzz_target!(|data: &[u8]| {
    let req = FuzzRequest::parse(data);
    CONFIG.with(|config| run_checked(config, &req, &mut FakeHost::default()));
});

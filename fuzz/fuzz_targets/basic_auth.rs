//! basic-auth's `Authorization` / `Proxy-Authorization` parsing (Kong's `\s*[Bb]asic\s*(.+)`,
//! base64, the first ':'), directly and through the pipeline. Property: a username parsed from a
//! header is never empty and never holds ':'.
#![no_main]

use consumer_auth::plugins::basic_auth::parse_basic;
use consumer_auth_fuzz::{document, run_checked, FakeHost, FuzzRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

thread_local! {
    static CONFIG: consumer_auth::config::Config =
        document(json!([{"name": "basic-auth", "config": {"hide_credentials": true}}]));
}

fuzz_target!(|data: &[u8]| {
    let req = FuzzRequest::parse(data);
    for (_, value) in &req.headers {
        if let Some((user, _password)) = parse_basic(value) {
            assert!(!user.is_empty() && !user.contains(&b':'), "username {user:?}");
        }
    }
    CONFIG.with(|config| run_checked(config, &req, &mut FakeHost::default()));
});

//! One whole request through the engine's pipeline over fixed documents in which every plugin
//! is configured, as the glue runs it (again with the body when a plugin asks for it):
//! - `@doc 0` (default): every authentication plugin in OR mode (anonymous), acl, rate-limiting,
//!   request-termination scoped to a consumer, over the consumers inline;
//! - `@doc 1`: the same plugins over a consumer store, read back from shared data;
//! - `@doc 2`: AND mode (key-auth and basic-auth, no anonymous), hide_credentials, key_in_body,
//!   acl allowing only admins, rate-limiting by ip.
//! The jwt token cache is off here (the `jwt` target covers it), so an input replays alone.
//! Checks: `consumer_auth_fuzz::run_checked`; the same input gives the same outcome twice.
#![no_main]

use consumer_auth::config::Config;
use consumer_auth_fuzz::{document, run_checked, store_document, FakeHost, FuzzRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn or_mode() -> Value {
    json!([
        {"name": "jwt", "config": {"anonymous": "anonymous_users", "cookie_names": ["jwt"],
            "claims_to_verify": ["exp"], "token_cache_entries": 0}},
        {"name": "key-auth", "config": {"anonymous": "anonymous_users", "key_in_body": true}},
        {"name": "basic-auth", "config": {"anonymous": "anonymous_users"}},
        {"name": "hmac-auth", "config": {"anonymous": "anonymous_users", "validate_request_body": true}},
        {"name": "acl", "config": {"deny": ["ops"]}},
        {"name": "rate-limiting", "config": {"minute": 1000, "limit_by": "credential"}},
        {"name": "rate-limiting", "consumer": "anonymous_users", "config": {"second": 1, "limit_by": "ip"}},
        {"name": "request-termination", "consumer": "bob", "config": {"status_code": 418, "message": "bob"}}
    ])
}

fn and_mode() -> Value {
    json!([
        {"name": "key-auth", "config": {"key_in_body": true, "hide_credentials": true, "run_on_preflight": false}},
        {"name": "basic-auth", "config": {"hide_credentials": true}},
        {"name": "acl", "config": {"allow": ["admins"], "hide_groups_header": true}},
        {"name": "rate-limiting", "config": {"hour": 2, "limit_by": "ip", "hide_client_headers": true}}
    ])
}

thread_local! {
    static SETUP: (Config, Config, Config, FakeHost) = {
        let mut store_host = FakeHost::default();
        let store = store_document(&mut store_host, "main", or_mode());
        (document(or_mode()), store, document(and_mode()), store_host)
    };
}

fuzz_target!(|data: &[u8]| {
    let req = FuzzRequest::parse(data);
    SETUP.with(|(inline, store, and, store_host)| {
        let config = if data.starts_with(b"@doc 1") {
            store
        } else if data.starts_with(b"@doc 2") {
            and
        } else {
            inline
        };
        let fresh = || FakeHost::with_data(&store_host.data);
        let first = format!("{:?}", run_checked(config, &req, &mut fresh()));
        let again = format!("{:?}", run_checked(config, &req, &mut fresh()));
        assert_eq!(first, again, "the same request decided twice differently");
    });
});

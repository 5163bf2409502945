//! The harness tests: the real `consumer_auth.wasm` through the wasmtime proxy-wasm host of
//! `test-harness/`, one module per area. One test binary (not one per file): each binary links
//! wasmtime, which cost CI disk and link time.
//!
//! Select a module or a test as usual: `cargo test -p consumer-auth --test harness jwt::`.
//!
//! Every module is `#[cfg(test)]` (always true in a test binary): that is how clippy knows this
//! is test code, so clippy.toml's `allow-*-in-tests` cover the helpers too, not only the
//! `#[test]` functions, and no file needs its own `#![allow(clippy::unwrap_used, ...)]`.

#[cfg(test)]
mod support;

#[cfg(test)]
mod acl_and_termination;
#[cfg(test)]
mod and_or;
#[cfg(test)]
mod basic_auth;
#[cfg(test)]
mod config_refusals;
#[cfg(test)]
mod config_refusals_hmac_jwt;
#[cfg(test)]
mod consumer_store;
#[cfg(test)]
mod deploy;
#[cfg(test)]
mod hmac_auth;
#[cfg(test)]
mod host_calls;
#[cfg(test)]
mod jwt;
#[cfg(test)]
mod key_auth;
#[cfg(test)]
mod kong_cases;
#[cfg(test)]
mod kong_facts;
#[cfg(test)]
mod kong_rules;
#[cfg(test)]
mod malformed_input;
#[cfg(test)]
mod observability;
#[cfg(test)]
mod packaging;
#[cfg(test)]
mod random_input;
#[cfg(test)]
mod rate_limiting;
#[cfg(test)]
mod rate_limiting_redis;
#[cfg(test)]
mod responses_and_spoofing;

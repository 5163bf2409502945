//! The consumer service's integration tests: one binary, a module per area. Every Admin API
//! scenario runs on SQLite and on a real PostgreSQL (`CONSUMER_AUTH_TEST_POSTGRES`, which
//! `make postgres` sets up; without it the PostgreSQL tests fail, they are never skipped).
//!
//! Every module is `#[cfg(test)]` (always true in a test binary), so clippy.toml's
//! `allow-*-in-tests` cover the helpers as well as the `#[test]` functions.

#[cfg(test)]
mod api;
#[cfg(test)]
mod bad_input;
#[cfg(test)]
mod import;
#[cfg(test)]
mod processes;
#[cfg(test)]
mod support;

//! The consumer service's integration tests: one binary, a module per area. Every Admin API
//! scenario runs on SQLite and on a real PostgreSQL (`CONSUMER_AUTH_TEST_POSTGRES`, which
//! `make postgres` sets up; without it the PostgreSQL tests fail, they are never skipped).

mod api;
mod bad_input;
mod processes;
mod support;

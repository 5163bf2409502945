//! End-to-end support for consumer-auth through the real Envoy binary (V8 runtime):
//!
//! - [`echo`]: an upstream that answers with a JSON description of what it received;
//! - [`http`]: a raw HTTP/1.1 client (raw paths, duplicate headers, exact bytes);
//! - [`bootstrap`]: Envoy bootstraps rendered from a list of routes, each with its own chain of
//!   filter instances;
//! - [`envoy`]: runs the real Envoy on free ports and always stops it;
//! - [`fixtures`]: the consumers the tests use; [`demo`]: the `make demo` walkthrough;
//! - [`clients`]: what an hmac-auth or jwt client sends (signed headers, HS256 tokens);
//! - [`source`]: a consumer store's remote source (a document with an ETag, swappable);
//! - [`redis_front`]: rate-limiting's Redis front in-process, a private Redis, `redis-cli`;
//! - [`measure`]: what the benchmarks share (wrk runs with the proxy's CPU per request, medians).
//!
//! Nothing here skips: a missing Envoy binary or filter .wasm is a loud failure.

// Test fixtures (the Envoy runner, the echo upstream, a raw HTTP client): when one cannot
// start a proxy or read an answer, the test using it must stop there, loudly. The workspace's
// no-panic lints are for the filter and the tools, not for these.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod bootstrap;
pub mod clients;
pub mod demo;
pub mod echo;
pub mod envoy;
pub mod fixtures;
pub mod http;
pub mod measure;
pub mod redis_front;
pub mod source;
pub mod wasm_fixture;

use std::path::{Path, PathBuf};

/// The cargo workspace root (the repository).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ lives in the workspace").to_path_buf()
}

/// The real Envoy binary: `$ENVOY_BIN`, else the one `make envoy` installed in `.venv`.
/// Panics (never skips) when there is none.
pub fn envoy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "ENVOY_BIN={} does not exist; run `make envoy`", bin.display());
        return bin;
    }
    let lib = workspace_root().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        let mut candidates: Vec<PathBuf> =
            dirs.flatten().map(|d| d.path().join("site-packages/envoy/_bin/envoy")).filter(|p| p.is_file()).collect();
        candidates.sort();
        candidates.pop()
    });
    found.unwrap_or_else(|| {
        panic!(
            "the real Envoy binary was not found (no $ENVOY_BIN, nothing in {}/python3*/site-packages/envoy/_bin/); \
             run `make envoy` (or `make e2e`) first",
            lib.display()
        )
    })
}

/// The filter under test: `$CONSUMER_AUTH_WASM`, else `filters/consumer_auth.wasm` (`make build`).
/// Panics (never skips) when it is missing.
pub fn filter_wasm() -> PathBuf {
    let path = std::env::var_os("CONSUMER_AUTH_WASM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("filters/consumer_auth.wasm"));
    assert!(path.is_file(), "the filter {} does not exist; run `make build` first", path.display());
    path
}

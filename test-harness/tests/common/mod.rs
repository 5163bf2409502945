//! Builds the fixture filter (tests/fixture-filter) for wasm32-wasip1, once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn fixture_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixture-filter/Cargo.toml");
        let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixture-filter");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let out = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip1", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .expect("failed to run cargo to build the fixture filter");
        assert!(
            out.status.success(),
            "building the fixture filter failed (is the wasm32-wasip1 target installed? `rustup target add wasm32-wasip1`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let wasm = target_dir.join("wasm32-wasip1/release/fixture_filter.wasm");
        assert!(wasm.exists(), "fixture build succeeded but {} is missing", wasm.display());
        wasm
    })
    .clone()
}

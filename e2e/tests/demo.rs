//! `envoy/demo.yaml` is what e2e/src/demo.rs renders, Envoy accepts it, and the walkthrough
//! passes (on free ports, so it can run beside `make demo`).

use consumer_auth_e2e::demo::{self, DEMO_YAML};
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::{self, Envoy};
use consumer_auth_e2e::workspace_root;

#[test]
fn demo_yaml_is_up_to_date_and_valid() {
    let path = workspace_root().join(DEMO_YAML);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text == demo::demo_yaml(),
        "{DEMO_YAML} is out of date; regenerate it:\n  cargo run -q -p consumer-auth-e2e --bin demo -- --print-config > {DEMO_YAML}"
    );
    consumer_auth_e2e::filter_wasm(); // its relative path must resolve from the workspace root
    let (status, log) = envoy::validate_file(&path);
    assert!(status.success(), "envoy --mode validate {DEMO_YAML} failed:\n{log}");
}

#[test]
fn demo_walkthrough_passes() {
    let upstream = EchoServer::start();
    let wasm = consumer_auth_e2e::filter_wasm().display().to_string();
    let envoy = Envoy::start(&demo::bootstrap(0, 0, upstream.port, &wasm));
    let mut out = Vec::new();
    let ok = demo::walkthrough(envoy.port, &mut out);
    assert!(ok, "the walkthrough did not pass:\n{}", String::from_utf8_lossy(&out));
}

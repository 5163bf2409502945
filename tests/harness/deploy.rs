//! Deployment artifacts (docs/DEPLOY.md) checked with the real parts:
//!
//! - the OCI image `make oci` builds, read back with `docker save` (the image named by
//!   `CONSUMER_AUTH_OCI_IMAGE`, which the Makefile exports; the test fails without it or without
//!   Docker): one layer holding exactly the built `.wasm` as `plugin.wasm`;
//! - `filters/consumer_auth.wasm.sha256` (`make build`) is the built `.wasm`'s;
//! - the Istio and Envoy Gateway examples under `deploy/`: the Wasm filter each makes Envoy run
//!   is rebuilt from the example and loaded by the real Envoy (`envoy --mode validate` with the
//!   built `.wasm`, `ENVOY_BIN`), and its configuration passes the schema and the filter;
//! - the Kong 3.4 example (string config) is `kong/kong.yml` (object config, Kong 3.5+, checked
//!   in packaging.rs) with the same document as a string.

use crate::packaging::{
    envoy_validate, filter_verdict, json_file, kong_filter_configs, read, schema_errors, validator, yaml_file, KONG_YML,
};
use crate::support::*;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const ISTIO_WASMPLUGIN: &str = "deploy/istio/wasmplugin.yaml";
const ISTIO_ENVOYFILTER: &str = "deploy/istio/envoyfilter.yaml";
const EG_EXTENSION_POLICY: &str = "deploy/envoy-gateway/envoyextensionpolicy.yaml";
const EG_PATCH_POLICY: &str = "deploy/envoy-gateway/envoypatchpolicy.yaml";
const KONG_34_YML: &str = "deploy/kong/kong-3.4.yml";
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// The plugin options that read the request body: on Envoy they need
/// `allow_on_headers_stop_iteration: true` in the Wasm filter's config.
const BODY_OPTIONS: [&str; 2] = ["key_in_body", "validate_request_body"];

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The built filter's bytes.
fn built_wasm() -> Vec<u8> {
    fs::read(wasm()).unwrap()
}

/// Whether a filter configuration turns on an option that reads the request body.
fn reads_body(config: &Value) -> bool {
    config["plugins"].as_array().into_iter().flatten().any(|p| BODY_OPTIONS.iter().any(|o| p["config"][o] == true))
}

/// The configuration passes meta.json's schema and the filter's own parser.
fn assert_accepted(what: &str, config: &Value) {
    let errors = schema_errors(&validator(), config);
    assert!(errors.is_empty(), "{what}: the schema refuses the filter configuration: {errors:?}");
    filter_verdict(&mut host(), &config.to_string())
        .unwrap_or_else(|e| panic!("{what}: the filter refuses its configuration: {e}"));
}

/// Load `filters` (HTTP filters, each an Envoy Wasm filter whose code is replaced by the built
/// `.wasm` as a local file) into the real Envoy in `--mode validate`, in front of the router on
/// one listener; every instance must load its configuration. The log.
fn validate_in_envoy(what: &str, filters: &[Value]) -> String {
    let wasm = wasm().canonicalize().unwrap();
    let mut chain: Vec<Value> = filters
        .iter()
        .map(|f| {
            let mut f = f.clone();
            let config = &mut f["typed_config"]["config"];
            assert!(config["vm_config"].is_object(), "{what}: no vm_config in {f}");
            config["vm_config"]["code"] = json!({ "local": { "filename": wasm.display().to_string() } });
            f
        })
        .collect();
    chain.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    let bootstrap = json!({
        "static_resources": {
            "listeners": [{
                "name": "deploy",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 10000 } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "deploy",
                        "route_config": { "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "backend" } }]
                        }] },
                        "http_filters": chain
                    }
                }] }]
            }],
            "clusters": [{
                "name": "backend", "type": "STATIC",
                "load_assignment": { "cluster_name": "backend", "endpoints": [{ "lb_endpoints": [{
                    "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 10001 } } }
                }] }] }
            }]
        }
    });
    let dir =
        std::env::temp_dir().join(format!("consumer-auth-deploy-{}-{}", std::process::id(), what.replace('/', "_")));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bootstrap.json");
    fs::write(&path, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();
    let log = envoy_validate(&path, &dir);
    let _ = fs::remove_dir_all(&dir);
    let loaded = log.matches("consumer-auth: configuration loaded").count();
    assert!(loaded >= filters.len(), "{what}: {} filter(s), {loaded} configuration(s) loaded:\n{log}", filters.len());
    log
}

/// A Kubernetes resource of deploy/: the YAML, after checking its apiVersion and kind.
fn resource(path: &str, api_version: &str, kind: &str) -> Value {
    let r = yaml_file(path);
    assert_eq!((r["apiVersion"].as_str(), r["kind"].as_str()), (Some(api_version), Some(kind)), "{path}");
    r
}

/// The Envoy Wasm filter a control plane generates from a plugin resource: `config` JSON-encoded
/// into the StringValue, `root_id` as given, V8, the code left to [`validate_in_envoy`].
fn generated_wasm_filter(filter_name: &str, plugin_name: &Value, root_id: &Value, config: &Value) -> Value {
    json!({
        "name": filter_name,
        "typed_config": { "@type": WASM_TYPE, "config": {
            "name": plugin_name,
            "root_id": root_id,
            "configuration": { "@type": "type.googleapis.com/google.protobuf.StringValue", "value": config.to_string() },
            "vm_config": { "runtime": "envoy.wasm.runtime.v8", "code": {} }
        } }
    })
}

// ---------------------------------------------------------------------------------------------
// Release artifacts

/// `make build` writes `filters/consumer_auth.wasm.sha256` in sha256sum's format: what an Istio
/// http(s) `url` and Envoy Gateway's `code.http.sha256` pin.
#[test]
fn wasm_sha256_file_is_the_built_wasms() {
    let path = wasm().with_extension("wasm.sha256");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}: run `make build`", path.display()));
    assert_eq!(text, format!("{}  consumer_auth.wasm\n", sha256_hex(&built_wasm())), "{}", path.display());
}

/// The files of a tar archive, by path.
fn untar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    files
}

/// `make oci`'s image as `docker save` writes it: one image, one layer, and that layer (a tar)
/// holds one file, `plugin.wasm`, byte for byte the built filter (what Istio's "compat" image
/// variant is). Prints the image id and the layer's digest; the manifest digest the policies
/// pin is the registry's, printed by `docker push`.
#[test]
fn oci_image_is_one_layer_holding_exactly_the_built_wasm() {
    let image = std::env::var("CONSUMER_AUTH_OCI_IMAGE")
        .unwrap_or_else(|_| panic!("CONSUMER_AUTH_OCI_IMAGE is not set: run `make oci` (the Makefile exports it)"));
    let out = Command::new("docker")
        .args(["save", &image])
        .output()
        .unwrap_or_else(|e| panic!("running docker save {image}: {e} (make oci installs Docker)"));
    assert!(out.status.success(), "docker save {image} failed: {}", String::from_utf8_lossy(&out.stderr));
    let files = untar(&out.stdout);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let images = manifest.as_array().expect("manifest.json is an array");
    assert_eq!(images.len(), 1, "{manifest}");
    let layers = images[0]["Layers"].as_array().expect("Layers");
    assert_eq!(layers.len(), 1, "the compat image has exactly one layer: {manifest}");
    let layer = &files[layers[0].as_str().unwrap()];
    let config_bytes = &files[images[0]["Config"].as_str().unwrap()];
    let config: Value = serde_json::from_slice(config_bytes).unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(layer));
    assert_eq!(config["rootfs"]["diff_ids"], json!([diff_id]), "the config names the layer");
    assert_eq!(config["os"], "linux");

    let content = untar(layer);
    assert_eq!(content.keys().collect::<Vec<_>>(), ["plugin.wasm"], "the layer holds plugin.wasm and nothing else");
    let built = built_wasm();
    assert!(content["plugin.wasm"] == built, "plugin.wasm in {image} is not the built {}", wasm().display());
    println!(
        "{image}: image id sha256:{}, one layer {diff_id} = plugin.wasm ({} bytes, sha256 {})",
        sha256_hex(config_bytes),
        built.len(),
        sha256_hex(&built)
    );
}

// ---------------------------------------------------------------------------------------------
// Istio

/// deploy/istio/wasmplugin.yaml: an OCI WasmPlugin, fail-closed, before Istio's authn, for
/// plugins that never read the body (a WasmPlugin cannot set `allow_on_headers_stop_iteration`).
/// The filter Istio generates from it (pluginConfig JSON-encoded into the StringValue, pluginName
/// as root id) loads in the real Envoy.
#[test]
fn istio_wasmplugin_loads_in_envoy() {
    let w = resource(ISTIO_WASMPLUGIN, "extensions.istio.io/v1alpha1", "WasmPlugin");
    let spec = &w["spec"];
    assert!(spec["url"].as_str().is_some_and(|u| u.starts_with("oci://")), "{ISTIO_WASMPLUGIN}: url: the OCI image");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert_eq!(spec["phase"], "AUTHN");
    let config = &spec["pluginConfig"];
    assert_accepted(ISTIO_WASMPLUGIN, config);
    assert!(!reads_body(config), "{ISTIO_WASMPLUGIN}: {BODY_OPTIONS:?} need envoyfilter.yaml (the knob)");
    let name = &spec["pluginName"];
    assert!(name.is_string(), "pluginName");
    let mut filter = generated_wasm_filter("istio.wasmplugin.consumer-auth", name, name, config);
    filter["typed_config"]["config"]["failure_policy"] = json!("FAIL_CLOSED");
    validate_in_envoy("istio-wasmplugin", &[filter]);
}

/// deploy/istio/envoyfilter.yaml: the EnvoyFilter pair for plugins that read the body: an
/// EXTENSION_CONFIG with the full Wasm config (the knob, FAIL_CLOSED, remote code with a sha256)
/// and an HTTP_FILTER before the router taking it by name. The Wasm config loads in the real
/// Envoy with the code as the local file istio-agent hands Envoy.
#[test]
fn istio_envoyfilter_pair_loads_in_envoy() {
    let f = resource(ISTIO_ENVOYFILTER, "networking.istio.io/v1alpha3", "EnvoyFilter");
    let patches = f["spec"]["configPatches"].as_array().expect("configPatches");
    assert_eq!(patches.len(), 2, "{ISTIO_ENVOYFILTER}: the pair");
    let (ext, http) = (&patches[0], &patches[1]);
    assert_eq!(ext["applyTo"], "EXTENSION_CONFIG");
    assert_eq!(ext["patch"]["operation"], "ADD");
    let value = &ext["patch"]["value"];
    let typed = &value["typed_config"];
    assert_eq!(typed["@type"], WASM_TYPE);
    let config = &typed["config"];
    assert_eq!(config["failure_policy"], "FAIL_CLOSED");
    assert_eq!(config["allow_on_headers_stop_iteration"], true);
    let remote = &config["vm_config"]["code"]["remote"];
    assert!(remote["http_uri"]["uri"].as_str().is_some_and(|u| u.starts_with("https://")), "remote code over https");
    assert!(remote["sha256"].as_str().is_some_and(|s| !s.is_empty()), "remote code pinned by sha256");
    let configuration = &config["configuration"];
    assert_eq!(configuration["@type"], "type.googleapis.com/google.protobuf.StringValue");
    let doc: Value = serde_json::from_str(configuration["value"].as_str().unwrap()).unwrap();
    assert_accepted(ISTIO_ENVOYFILTER, &doc);
    assert!(reads_body(&doc), "{ISTIO_ENVOYFILTER}: the example is the one for {BODY_OPTIONS:?}");

    assert_eq!(http["applyTo"], "HTTP_FILTER");
    assert_eq!(http["patch"]["operation"], "INSERT_BEFORE");
    assert_eq!(http["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"], "envoy.filters.http.router");
    let discovery = &http["patch"]["value"];
    assert_eq!(discovery["name"], value["name"], "the HTTP filter takes the extension config by its name");
    assert_eq!(discovery["config_discovery"]["type_urls"], json!([WASM_TYPE]));

    let filter = json!({ "name": value["name"], "typed_config": typed });
    validate_in_envoy("istio-envoyfilter", &[filter]);
}

// ---------------------------------------------------------------------------------------------
// Envoy Gateway

/// RFC 6901: one reference token of a JSON pointer.
fn unescape_pointer_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

/// deploy/envoy-gateway/: the EnvoyExtensionPolicy (OCI image, fail-closed) and the
/// EnvoyPatchPolicy that adds the knob to the filter Envoy Gateway generates for it. The filter is
/// rebuilt as Envoy Gateway's translator names and fills it
/// (`envoy.filters.http.wasm/envoyextensionpolicy/<ns>/<name>/wasm/<i>`, rootID as root id, the
/// JSON-encoded config), the patch applied to it, and the result loads in the real Envoy.
#[test]
fn envoy_gateway_policies_load_in_envoy() {
    let p = resource(EG_EXTENSION_POLICY, "gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy");
    let wasms = p["spec"]["wasm"].as_array().expect("spec.wasm");
    assert_eq!(wasms.len(), 1);
    let w = &wasms[0];
    assert_eq!(w["code"]["type"], "Image");
    assert!(w["code"]["image"]["url"].is_string());
    assert_eq!(w["failOpen"], false);
    let config = &w["config"];
    assert_accepted(EG_EXTENSION_POLICY, config);
    let (ns, name) = (p["metadata"]["namespace"].as_str().unwrap(), p["metadata"]["name"].as_str().unwrap());
    let filter_name = format!("envoy.filters.http.wasm/envoyextensionpolicy/{ns}/{name}/wasm/0");
    let mut filter = generated_wasm_filter(&filter_name, &w["name"], &w["rootID"], config);

    let patch = resource(EG_PATCH_POLICY, "gateway.envoyproxy.io/v1alpha1", "EnvoyPatchPolicy");
    assert_eq!(patch["spec"]["type"], "JSONPatch");
    let gateway = &patch["spec"]["targetRef"];
    assert_eq!(gateway["kind"], "Gateway");
    let patches = patch["spec"]["jsonPatches"].as_array().expect("jsonPatches");
    assert_eq!(patches.len(), 1);
    let jp = &patches[0];
    assert_eq!(jp["type"], "type.googleapis.com/envoy.config.listener.v3.Listener");
    let listener = jp["name"].as_str().unwrap();
    assert!(listener.starts_with(&format!("{ns}/{}/", gateway["name"].as_str().unwrap())), "{listener}");
    let op = &jp["operation"];
    assert_eq!(op["op"], "add");
    assert_eq!(op["jsonPath"], format!("$..http_filters[?(@.name=='{filter_name}')]"), "selects the policy's filter");
    // Apply the pointer `path` to the filter jsonPath selected.
    let path = op["path"].as_str().unwrap();
    let (parent, key) = path.rsplit_once('/').unwrap();
    let target =
        filter.pointer_mut(parent).unwrap_or_else(|| panic!("{EG_PATCH_POLICY}: {parent} is not in the filter"));
    target.as_object_mut().unwrap().insert(unescape_pointer_token(key), op["value"].clone());
    assert_eq!(filter["typed_config"]["config"]["allow_on_headers_stop_iteration"], true);
    assert!(reads_body(config), "{EG_EXTENSION_POLICY}: the example shows why the patch is there");

    validate_in_envoy("envoy-gateway", &[filter]);
}

// ---------------------------------------------------------------------------------------------
// Kong

/// deploy/kong/kong-3.4.yml is kong/kong.yml with the filter's `config` as a JSON string (Kong
/// 3.4 takes no other form; 3.5+ with meta.json refuses it), and that document passes the
/// filter and the schema.
#[test]
fn kong_34_example_is_kong_yml_with_a_string_config() {
    let k34 = yaml_file(KONG_34_YML);
    let mut configs = Vec::new();
    kong_filter_configs(&k34, &mut configs);
    assert_eq!(configs.len(), 1, "{KONG_34_YML}: one consumer_auth filter");
    let text = configs[0].as_str().unwrap_or_else(|| panic!("{KONG_34_YML}: Kong 3.4 takes config as a string"));
    let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{KONG_34_YML}: config is not JSON: {e}"));
    assert_accepted(KONG_34_YML, &doc);

    // The same file as kong/kong.yml once the string is decoded.
    let mut decoded = k34.clone();
    decoded["services"][0]["filter_chains"][0]["filters"][0]["config"] = doc;
    assert!(decoded == yaml_file(KONG_YML), "{KONG_34_YML} differs from {KONG_YML} beyond the string config");
    // 3.4 ignores meta.json; the one in filters/ is what 3.5+ validates with.
    assert!(json_file("filters/consumer_auth.meta.json")["config_schema"].is_object());
    assert!(read(KONG_34_YML).contains("nginx_wasm_shm_consumer_auth"), "{KONG_34_YML}: 3.4 spells the shm zone so");
}

//! Packaging: the JSON schema Kong validates the configuration with
//! (`filters/consumer_auth.meta.json`), the example configurations, `kong/kong.yml`,
//! `kong/kong.conf` and `docker-compose.yml` with the Envoy config it mounts.
//!
//! The schema and the filter must never drift: every example is accepted by both, and every
//! document in `tests/invalid-configs/` is refused by both (the filter with the exact message in
//! `tests/invalid-configs/expected.json`), except the ones marked `filter_only`, which need checks
//! JSON Schema cannot express (uniqueness, references to consumers): those the schema accepts.
//!
//! `compose_envoy_config_passes_envoy_validate` runs the real Envoy (`ENVOY_BIN`, set by the
//! Makefile from `make envoy`) and fails when it is not set. To rewrite `envoy/compose.yaml`
//! after `envoy/demo.yaml` changed: `CONSUMER_AUTH_BLESS=1 cargo test -p consumer-auth --test harness packaging::`.

use crate::support::*;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use consumer_auth::plugins::{scopable, Support, KNOWN};
use serde_json::Value;

const COMPOSE_FILE: &str = "docker-compose.yml";
const DEMO_YAML: &str = "envoy/demo.yaml";
const COMPOSE_ENVOY_YAML: &str = "envoy/compose.yaml";
pub(crate) const KONG_YML: &str = "kong/kong.yml";
const KONG_CONF: &str = "kong/kong.conf";
const META_JSON: &str = "filters/consumer_auth.meta.json";
/// The filter's name in Kong: the file stem of the .wasm in `wasm_filters_path`.
const FILTER_NAME: &str = "consumer_auth";
/// The upstream of the compose demo: the `echo` service (mendhak/http-https-echo, HTTP_PORT).
const COMPOSE_UPSTREAM: (&str, u64) = ("echo", 8080);

/// The plugins the filter supports (in Kong priority order), from its own table.
fn supported_plugins() -> Vec<(&'static str, Support)> {
    KNOWN.iter().map(|(n, _, s)| (*n, *s)).collect()
}

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub(crate) fn json_file(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

pub(crate) fn yaml_file(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

fn schema() -> Value {
    json_file(META_JSON)["config_schema"].clone()
}

pub(crate) fn validator() -> jsonschema::Validator {
    jsonschema::draft4::new(&schema()).unwrap_or_else(|e| panic!("{META_JSON}: config_schema does not compile: {e}"))
}

/// The schema's complaints about `doc` (empty: valid).
pub(crate) fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// The filter's verdict on `config`: Ok, or the refusal line it logged.
pub(crate) fn filter_verdict(h: &mut Host, config: &str) -> Result<(), String> {
    match h.configure(config) {
        Ok(_) => Ok(()),
        Err(e) => {
            let prefix = "consumer-auth: configuration refused: ";
            let lines: Vec<_> = e.logs.iter().filter_map(|l| l.message.strip_prefix(prefix)).collect();
            assert_eq!(lines.len(), 1, "exactly one refusal line expected: {e}");
            Err(lines[0].to_string())
        }
    }
}

/// Every `consumer_auth.wasm` filter configuration (a StringValue) in an Envoy config.
fn envoy_filter_configs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let filename = m.get("vm_config").and_then(|vm| vm["code"]["local"]["filename"].as_str());
            if filename.is_some_and(|f| f.ends_with("consumer_auth.wasm")) {
                let configuration = &m["configuration"];
                assert_eq!(configuration["@type"], "type.googleapis.com/google.protobuf.StringValue");
                out.push(configuration["value"].as_str().expect("configuration.value is a string").to_string());
            }
            m.values().for_each(|x| envoy_filter_configs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| envoy_filter_configs(x, out)),
        _ => {}
    }
}

/// Every consumer_auth filter `config` in a Kong declarative config (filter chains nested in
/// services or routes, or at the top level).
pub(crate) fn kong_filter_configs(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if let Some(chains) = m.get("filter_chains").and_then(Value::as_array) {
                for chain in chains {
                    for f in chain["filters"].as_array().expect("filter_chains[].filters is an array") {
                        if f["name"] == FILTER_NAME {
                            out.push(f["config"].clone());
                        }
                    }
                }
            }
            m.values().for_each(|x| kong_filter_configs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| kong_filter_configs(x, out)),
        _ => {}
    }
}

/// Fenced code blocks opened with "```json consumer-auth" in README.md and docs/*.md.
fn markdown_configs() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = vec![root().join("README.md")];
    if let Ok(dir) = fs::read_dir(root().join("docs")) {
        files.extend(dir.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
    }
    let mut out = Vec::new();
    for path in files.into_iter().filter(|p| p.exists()) {
        let text = fs::read_to_string(&path).unwrap();
        let mut block: Option<String> = None;
        for line in text.lines() {
            match &mut block {
                None if line.trim() == "```json consumer-auth" => block = Some(String::new()),
                Some(b) if line.trim() == "```" => {
                    out.push((path.display().to_string(), std::mem::take(b)));
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None => {}
            }
        }
    }
    out
}

/// Every example configuration document in the repository, with where it came from.
fn all_examples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut examples: Vec<PathBuf> =
        fs::read_dir(root().join("examples")).unwrap().map(|e| e.unwrap().path()).collect();
    examples.sort();
    for path in examples.into_iter().filter(|p| p.extension().is_some_and(|x| x == "json")) {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        out.push((rel.clone(), json_file(&rel)));
    }
    let mut envoy: Vec<PathBuf> = fs::read_dir(root().join("envoy")).unwrap().map(|e| e.unwrap().path()).collect();
    envoy.sort();
    for path in envoy.into_iter().filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml")) {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        let mut configs = Vec::new();
        envoy_filter_configs(&yaml_file(&rel), &mut configs);
        for (i, c) in configs.into_iter().enumerate() {
            let doc = serde_json::from_str(&c).unwrap_or_else(|e| panic!("{rel}: filter config {i} is not JSON: {e}"));
            out.push((format!("{rel} (filter {i})"), doc));
        }
    }
    let mut kong = Vec::new();
    kong_filter_configs(&yaml_file(KONG_YML), &mut kong);
    out.extend(kong.into_iter().enumerate().map(|(i, c)| (format!("{KONG_YML} (filter {i})"), c)));
    for (i, (file, block)) in markdown_configs().into_iter().enumerate() {
        let doc = serde_json::from_str(&block).unwrap_or_else(|e| panic!("{file}: config block {i} is not JSON: {e}"));
        out.push((format!("{file} (block {i})"), doc));
    }
    out
}

// ---------------------------------------------------------------------------------------------

/// meta.json is what Kong expects: `{"config_schema": <draft-04 schema>}`, and the schema itself
/// is a valid draft-04 schema.
#[test]
fn meta_json_holds_a_draft4_config_schema() {
    let meta = json_file(META_JSON);
    let keys: Vec<_> = meta.as_object().expect("meta.json is an object").keys().cloned().collect();
    assert_eq!(keys, ["config_schema"], "Kong reads config_schema; nothing else belongs in meta.json");
    let s = schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-04/schema#");
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], false);
    if let Err(e) = jsonschema::draft4::meta::validate(&s) {
        panic!("{META_JSON}: config_schema is not a valid draft-04 schema: {e}");
    }
    validator();
}

/// The plugin branches are exactly the plugins the filter supports (its `KNOWN` table), in
/// priority order; auth plugins cannot take `consumer`, the others can; each branch's minimal
/// entry is accepted by the schema and the real filter, and planned plugins by neither.
#[test]
fn schema_plugin_branches_match_the_filter() {
    let s = schema();
    let defs = &s["definitions"];
    let branches: Vec<String> = defs["plugin"]["oneOf"]
        .as_array()
        .expect("definitions.plugin.oneOf")
        .iter()
        .map(|b| b["$ref"].as_str().expect("each branch is a $ref").trim_start_matches("#/definitions/").to_string())
        .collect();
    let names: Vec<String> = branches
        .iter()
        .map(|b| {
            let name = defs[b]["properties"]["name"]["enum"].as_array().expect("branch name enum");
            assert_eq!(name.len(), 1, "{b}: one name per branch");
            name[0].as_str().unwrap().to_string()
        })
        .collect();
    let supported = supported_plugins();
    assert_eq!(names, supported.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "schema branches vs the filter's KNOWN");
    for (branch, (name, _)) in branches.iter().zip(&supported) {
        let props = &defs[branch]["properties"];
        assert_eq!(defs[branch]["additionalProperties"], false, "{branch}");
        assert_eq!(props.get("consumer").is_some(), scopable(name), "{name}: consumer field");
        assert_eq!(props["enabled"]["type"], "boolean");
        assert!(props["config"]["$ref"].is_string(), "{branch}: config");
    }

    let v = validator();
    let mut h = host();
    for (name, _) in &supported {
        let config = match *name {
            "acl" => json!({"allow": ["g"]}),
            "rate-limiting" => json!({"minute": 5}),
            _ => json!({}),
        };
        let doc = json!({"consumers": [{"username": "u"}], "plugins": [{"name": name, "config": config}]});
        assert_eq!(schema_errors(&v, &doc), Vec::<String>::new(), "schema refuses a minimal {name}");
        filter_verdict(&mut h, &doc.to_string()).unwrap_or_else(|e| panic!("filter refuses a minimal {name}: {e}"));
    }
}

/// Every example configuration in the repository (examples/*.json, the filter configs inside
/// envoy/*.yaml and kong/kong.yml, and ```json consumer-auth blocks in docs) is accepted by the
/// schema and by the real filter.
#[test]
fn every_example_is_accepted_by_schema_and_filter() {
    let examples = all_examples();
    let count = |prefix: &str| examples.iter().filter(|(w, _)| w.starts_with(prefix)).count();
    assert!(count("examples/") >= 4, "examples/*.json: {}", count("examples/"));
    assert!(count("envoy/demo.yaml") >= 5, "envoy/demo.yaml filter configs: {}", count("envoy/demo.yaml"));
    assert!(count("envoy/compose.yaml") >= 5, "envoy/compose.yaml filter configs: {}", count("envoy/compose.yaml"));
    assert!(count(KONG_YML) >= 1, "{KONG_YML} has no consumer_auth filter config");
    assert!(examples.iter().any(|(w, _)| w.contains("docs/")), "no ```json consumer-auth block in docs/");

    let v = validator();
    let mut h = host();
    let mut failures = Vec::new();
    for (what, doc) in &examples {
        let errors = schema_errors(&v, doc);
        if !errors.is_empty() {
            failures.push(format!("{what}: schema refuses it: {errors:?}"));
        }
        if let Err(e) = filter_verdict(&mut h, &doc.to_string()) {
            failures.push(format!("{what}: filter refuses it: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} examples refused:\n{}", failures.len(), examples.len(), failures.join("\n"));
}

/// Every document in tests/invalid-configs/ is refused by the filter with the expected message,
/// and by the schema too, unless it is marked `filter_only` (a check JSON Schema cannot
/// express), in which case the schema must accept it: the list of filter-only checks is exact.
#[test]
fn invalid_configs_are_refused_by_schema_and_filter() {
    let dir = "tests/invalid-configs";
    let table = json_file(&format!("{dir}/expected.json"));
    let table = table.as_object().expect("expected.json is an object");
    let files: BTreeSet<String> = fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "expected.json")
        .collect();
    let listed: BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(files, listed, "every invalid config has exactly one entry in expected.json");
    assert!(files.len() >= 40, "{} invalid configs", files.len());

    let v = validator();
    let mut h = host();
    let mut failures = Vec::new();
    for (file, expected) in table {
        let text = read(&format!("{dir}/{file}"));
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let error = expected["error"].as_str().unwrap_or_else(|| panic!("{file}: no error in expected.json"));
        let filter_only = expected.get("filter_only").and_then(Value::as_bool).unwrap_or(false);
        match filter_verdict(&mut h, &text) {
            Ok(()) => failures.push(format!("{file}: the filter accepts it")),
            Err(got) if got != error => failures.push(format!("{file}: filter says {got:?}, expected {error:?}")),
            Err(_) => {}
        }
        let errors = schema_errors(&v, &doc);
        match (filter_only, errors.is_empty()) {
            (false, true) => failures.push(format!("{file}: the schema accepts it")),
            (true, false) => failures.push(format!("{file}: filter-only check, but the schema refuses it: {errors:?}")),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml and envoy/compose.yaml

/// envoy/demo.yaml as the compose demo needs it: listener and admin on all interfaces of the
/// container, the upstream is the `echo` service (resolved by DNS).
fn compose_variant_of_demo(demo: &Value) -> Value {
    let mut v = demo.clone();
    v["admin"]["address"]["socket_address"]["address"] = json!("0.0.0.0");
    for l in v["static_resources"]["listeners"].as_array_mut().expect("listeners") {
        l["address"]["socket_address"]["address"] = json!("0.0.0.0");
    }
    let clusters = v["static_resources"]["clusters"].as_array_mut().expect("clusters");
    assert_eq!(clusters.len(), 1, "{DEMO_YAML}: expected one cluster (the echo upstream); review this transform");
    let cluster = &mut clusters[0];
    cluster["type"] = json!("STRICT_DNS");
    for group in cluster["load_assignment"]["endpoints"].as_array_mut().expect("endpoints") {
        for ep in group["lb_endpoints"].as_array_mut().expect("lb_endpoints") {
            ep["endpoint"]["address"]["socket_address"] =
                json!({"address": COMPOSE_UPSTREAM.0, "port_value": COMPOSE_UPSTREAM.1});
        }
    }
    v
}

/// envoy/compose.yaml is envoy/demo.yaml except the addresses: one source for the demo.
#[test]
fn compose_envoy_config_is_demo_yaml_with_container_addresses() {
    let want = compose_variant_of_demo(&yaml_file(DEMO_YAML));
    if std::env::var_os("CONSUMER_AUTH_BLESS").is_some() {
        let body = serde_norway::to_string(&want).unwrap();
        let text = format!(
            "# The `docker compose` variant of {DEMO_YAML}: identical except listener/admin on 0.0.0.0 and the\n\
             # upstream cluster `echo` at {}:{} (STRICT_DNS). Envoy runs with working directory /consumer-auth.\n\
             # GENERATED by tests/harness/packaging.rs, do not edit: CONSUMER_AUTH_BLESS=1 cargo test -p consumer-auth --test harness packaging::\n\
             {body}",
            COMPOSE_UPSTREAM.0, COMPOSE_UPSTREAM.1
        );
        fs::write(root().join(COMPOSE_ENVOY_YAML), text).unwrap();
    }
    assert!(
        yaml_file(COMPOSE_ENVOY_YAML) == want,
        "{COMPOSE_ENVOY_YAML} is out of date with {DEMO_YAML}: \
         CONSUMER_AUTH_BLESS=1 cargo test -p consumer-auth --test harness packaging::"
    );
}

fn compose() -> Value {
    let c = yaml_file(COMPOSE_FILE);
    assert!(c["services"].is_object(), "{COMPOSE_FILE}: no services");
    c
}

/// (host path relative to the repository, container path) of a service's bind mounts.
fn mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .map(|vols| {
            vols.iter()
                .map(|m| {
                    let m = m.as_str().expect("short volume syntax");
                    let parts: Vec<&str> = m.split(':').collect();
                    assert!(parts.len() == 2 || (parts.len() == 3 && parts[2] == "ro"), "volume {m}");
                    let host = parts[0].strip_prefix("./").unwrap_or_else(|| panic!("{m}: mount a repository path"));
                    (host.to_string(), parts[1].to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// docker-compose.yml parses; its images are pinned; every file it mounts is in the repository
/// (filters/ holds the built .wasm and the committed meta.json); Envoy and Kong are configured
/// with the files it mounts.
#[test]
fn docker_compose_parses_and_mounts_exist() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["echo", "envoy", "kong"]));
    // Parameterised as proxy-wasm projects do (`${ENVOY_IMAGE:-official}`), official defaults.
    assert_eq!(services["envoy"]["image"], "${ENVOY_IMAGE:-envoyproxy/envoy:v1.40.0}");
    assert_eq!(services["echo"]["image"], "${ECHO_IMAGE:-mendhak/http-https-echo:31}");
    assert_eq!(services["kong"]["image"], "kong:3.9");
    assert_eq!(services["kong"]["profiles"], json!(["kong"]));
    // make demo-compose publishes the listener and admin on free loopback ports.
    assert_eq!(
        services["envoy"]["ports"],
        json!(["${DEMO_LISTEN:-8000}:8000", "${DEMO_ADMIN_LISTEN:-127.0.0.1:9901}:9901"])
    );

    for (name, service) in services {
        for (host, container) in mounts(service) {
            let path = root().join(&host);
            assert!(path.exists(), "{name}: mounts ./{host}, which does not exist");
            if host == "filters" {
                assert!(path.join("consumer_auth.meta.json").is_file(), "{host}/consumer_auth.meta.json");
                assert!(path.join("consumer_auth.wasm").is_file(), "{host}/consumer_auth.wasm missing: run make build");
            }
            assert!(container.starts_with('/'), "{name}: {container}");
        }
    }

    // envoy: the config it runs is envoy/compose.yaml, and the .wasm path in it resolves from
    // its working directory to the mounted filters/.
    let envoy = &services["envoy"];
    let command: Vec<&str> = envoy["command"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    let config = command[command.iter().position(|a| *a == "-c").expect("-c") + 1];
    let envoy_mounts = mounts(envoy);
    assert!(envoy_mounts.contains(&(COMPOSE_ENVOY_YAML.to_string(), config.to_string())), "envoy runs {config}");
    let workdir = envoy["working_dir"].as_str().expect("envoy working_dir");
    assert!(envoy_mounts.contains(&("filters".to_string(), format!("{workdir}/filters"))));
    let mut wasm_paths = Vec::new();
    collect_wasm_filenames(&yaml_file(COMPOSE_ENVOY_YAML), &mut wasm_paths);
    assert!(!wasm_paths.is_empty());
    assert!(wasm_paths.iter().all(|p| p == "filters/consumer_auth.wasm"), "{wasm_paths:?}");

    // kong: dbless with kong/kong.yml and the filters directory, as kong.conf says too.
    let kong = &services["kong"];
    let env = &kong["environment"];
    let conf = kong_conf();
    let kong_mounts = mounts(kong);
    let mounted_at = |host: &str| {
        kong_mounts.iter().find(|(h, _)| h == host).map(|(_, c)| c.clone()).unwrap_or_else(|| panic!("kong: ./{host}"))
    };
    assert_eq!(mounted_at(KONG_CONF), "/etc/kong/kong.conf", "Kong reads /etc/kong/kong.conf");
    assert_eq!(env["KONG_DATABASE"], "off");
    assert_eq!(env["KONG_WASM"], "on");
    assert_eq!(env["KONG_DECLARATIVE_CONFIG"].as_str(), Some(mounted_at(KONG_YML).as_str()));
    assert_eq!(env["KONG_WASM_FILTERS_PATH"].as_str(), Some(mounted_at("filters").as_str()));
    // the shm_kv zone ngx_wasm_module files the filter's shared-data keys under
    let zone = format!("nginx_wasm_shm_kv_{}", consumer_auth::SHARED_DATA_PREFIX.trim_end_matches('/'));
    assert!(conf.iter().any(|(k, _)| *k == zone), "{KONG_CONF} has no {zone}");
    let var = format!("KONG_{}", zone.to_ascii_uppercase());
    assert!(env.get(var.as_str()).is_some(), "docker-compose.yml: kong has no {var}");
    for (key, value) in &conf {
        let var = format!("KONG_{}", key.to_ascii_uppercase());
        if let Some(e) = env.get(&var) {
            assert_eq!(e.as_str(), Some(value.as_str()), "{var} disagrees with {KONG_CONF}");
        }
    }
}

fn collect_wasm_filenames(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(f) = m.get("vm_config").and_then(|vm| vm["code"]["local"]["filename"].as_str()) {
                out.push(f.to_string());
            }
            m.values().for_each(|x| collect_wasm_filenames(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_wasm_filenames(x, out)),
        _ => {}
    }
}

/// Lay out the envoy service's mounts in a directory as the container sees them and run the
/// real `envoy --mode validate` there, from the service's working directory. Validation loads
/// the .wasm and calls on_configure for every filter instance, so a refused config fails too.
#[test]
fn compose_envoy_config_passes_envoy_validate() {
    let c = compose();
    let envoy = &c["services"]["envoy"];
    let sandbox = std::env::temp_dir().join(format!("consumer-auth-compose-{}", std::process::id()));
    let _ = fs::remove_dir_all(&sandbox);
    let inside = |container: &str| sandbox.join(container.trim_start_matches('/'));
    for (host, container) in mounts(envoy) {
        let at = inside(&container);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(root().join(&host).canonicalize().unwrap(), &at).unwrap();
    }
    let command: Vec<&str> = envoy["command"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert_eq!(command[0], "envoy");
    let config = command[command.iter().position(|a| *a == "-c").unwrap() + 1];
    let workdir = inside(envoy["working_dir"].as_str().unwrap());
    fs::create_dir_all(&workdir).unwrap();
    let log = envoy_validate(&inside(config), &workdir);
    let _ = fs::remove_dir_all(&sandbox);
    let loaded = log.matches("consumer-auth: configuration loaded").count();
    assert!(loaded >= 5, "expected every filter instance to load its configuration, saw {loaded}:\n{log}");
}

/// The real Envoy (`ENVOY_BIN`, set by the Makefile from `make envoy`; the test fails without
/// it) in `--mode validate` on `config` from `workdir`: its log, after asserting it said OK.
/// Validation loads the .wasm and calls on_configure for every filter instance, so a refused
/// filter configuration fails it too.
pub(crate) fn envoy_validate(config: &Path, workdir: &Path) -> String {
    let envoy_bin = std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| {
        panic!("ENVOY_BIN is not set: run `make envoy` and set ENVOY_BIN to the real Envoy binary (the Makefile does)")
    });
    assert!(envoy_bin.is_file(), "ENVOY_BIN={} does not exist", envoy_bin.display());
    // A base id of its own: tests validating at the same time must not share Envoy's shared memory.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base_id = std::process::id() * 16 + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 16;
    let out = Command::new(&envoy_bin)
        .args(["--mode", "validate", "-c"])
        .arg(config)
        .args(["--log-level", "info", "--base-id", &base_id.to_string()])
        .current_dir(workdir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", envoy_bin.display()));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "envoy --mode validate {} failed ({}):\n{log}", config.display(), out.status);
    assert!(log.contains(" OK"), "{log}");
    log
}

// ---------------------------------------------------------------------------------------------
// Kong

fn kong_conf() -> Vec<(String, String)> {
    read(KONG_CONF)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{KONG_CONF}: {l}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn has_empty_array(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty() || a.iter().any(has_empty_array),
        Value::Object(m) => m.values().any(has_empty_array),
        _ => false,
    }
}

/// kong/kong.yml is a 3.0-format declarative config with a service, a route and a filter chain
/// loading consumer_auth with an object config that the schema and the filter accept;
/// kong/kong.conf turns Wasm on, DB-less, with the filters directory.
#[test]
fn kong_declarative_config_and_conf() {
    let k = yaml_file(KONG_YML);
    assert_eq!(k["_format_version"], "3.0");
    let service = &k["services"][0];
    assert!(service["name"].is_string() && service["url"].is_string(), "{KONG_YML}: service");
    assert!(service["routes"][0]["paths"].is_array(), "{KONG_YML}: route");
    let chain = &service["filter_chains"][0];
    assert!(chain["name"].is_string());
    assert_eq!(chain["filters"][0]["name"], FILTER_NAME);
    assert!(root().join(format!("filters/{FILTER_NAME}.meta.json")).is_file());

    let mut configs = Vec::new();
    kong_filter_configs(&k, &mut configs);
    assert_eq!(configs.len(), 1);
    let config = &configs[0];
    assert!(config.is_object(), "with a config_schema in meta.json, Kong (>= 3.5) takes config as an object");
    assert!(!has_empty_array(config), "Kong's Lua JSON round trip can turn [] into {{}}: omit empty lists");
    let errors = schema_errors(&validator(), config);
    assert!(errors.is_empty(), "{errors:?}");
    filter_verdict(&mut host(), &config.to_string()).unwrap_or_else(|e| panic!("filter refuses {KONG_YML}: {e}"));

    let conf = kong_conf();
    let get = |key: &str| conf.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(get("wasm"), Some("on"));
    assert_eq!(get("database"), Some("off"));
    let services = compose()["services"].clone();
    let kong_mounts = mounts(&services["kong"]);
    let mounted = |host: &str| kong_mounts.iter().find(|(h, _)| h == host).map(|(_, c)| c.clone());
    assert_eq!(get("declarative_config").map(str::to_string), mounted(KONG_YML));
    assert_eq!(get("wasm_filters_path").map(str::to_string), mounted("filters"));
    assert!(Path::new(get("wasm_filters_path").unwrap()).is_absolute());
}

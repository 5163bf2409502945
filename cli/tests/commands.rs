//! The `consumer-auth` binary as an operator runs it: `check` and `hash` output and exit statuses,
//! and `check`'s refusals against what the filter itself logs in the real Envoy.

// clippy.toml covers the `#[test]` functions; this file's helpers (running the binary, Envoy) fail
// their test the same way.
#![allow(clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::http::Request;
use consumer_auth_e2e::workspace_root;
use serde_json::{json, Value};

struct Out {
    stdout: String,
    stderr: String,
    code: i32,
}

fn consumer_auth(args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_consumer-auth"))
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run consumer-auth");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait for consumer-auth");
    Out {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

#[test]
fn check_accepts_every_shipped_example() {
    let mut files: Vec<String> = std::fs::read_dir(workspace_root().join("examples"))
        .expect("examples/")
        .flatten()
        .map(|e| format!("examples/{}", e.file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let args: Vec<&str> = std::iter::once("check").chain(files.iter().map(String::as_str)).collect();
    let out = consumer_auth(&args, "");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.lines().count(), files.len());
    assert!(out.stdout.contains("examples/key-auth.json: ok (2 consumers, 1 plugins)\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("examples/store-reader.json: ok (consumers from store 'main', 2 plugins)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_exit_status_is_1_when_any_is_refused_and_2_on_usage_errors() {
    let bad = r#"{"plugins":[{"name":"key-auth","config":{"key_names":["a b"]}}]}"#;
    let out = consumer_auth(&["check", "examples/key-auth.json", "-"], bad);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "examples/key-auth.json: ok (2 consumers, 1 plugins)\n\
         <stdin>: refused: plugins[0].config.key_names[0]: bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'\n"
    );
    // A remote-source document (a decK dump as JSON): the store loader's parser.
    let dump =
        r#"{"_format_version":"3.0","services":[],"consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]}]}"#;
    let out = consumer_auth(&["check", "-"], dump);
    assert_eq!((out.code, out.stdout.as_str()), (0, "<stdin>: ok (1 consumers, remote-source document)\n"));
    let out = consumer_auth(&["check", "--as", "source", "-"], r#"{"consumers":[{"username":""}]}"#);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "<stdin>: refused: consumers[0]: at least one of these fields must be non-empty: 'custom_id', 'username'\n"
    );

    for args in [&["check"][..], &["check", "--as", "yaml", "-"], &["frobnicate"], &[], &["check", "no/such/file.json"]]
    {
        let out = consumer_auth(args, "");
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
    }
}

#[test]
fn hash_reads_the_secret_from_stdin_or_the_argument() {
    // `printf %s secret | sha256sum`
    let expected = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n";
    assert_eq!(consumer_auth(&["hash", "key"], "secret\n").stdout, expected);
    assert_eq!(consumer_auth(&["hash", "key", "secret"], "").stdout, expected);
    // Kong's salted form: `printf %s kong0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77 | sha1sum`
    let id = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
    let out = consumer_auth(&["hash", "password", "--consumer-id", id], "kong\n");
    assert_eq!((out.code, out.stdout.as_str()), (0, "3065ab47b45e72a85015651854918cc8dfbeca5a\n"));
    let out = consumer_auth(&["hash", "password", "--consumer-id", "nope", "kong"], "");
    assert_eq!((out.code, out.stderr.as_str()), (1, "consumer-auth: --consumer-id: expected a valid UUID\n"));
    assert_eq!(consumer_auth(&["hash", "key"], "\n").code, 1);
    assert_eq!(consumer_auth(&["hash", "token", "x"], "").code, 2);
}

/// The line the filter logs in Envoy when it refuses `doc`: `<path>: <reason>`.
fn envoy_refusal(doc: &Value) -> String {
    let bootstrap = Bootstrap::new(1).route("/", [doc.clone()]);
    let failure = match Envoy::try_start(&bootstrap) {
        Ok(_) => panic!("Envoy accepted {doc}"),
        Err(f) => f,
    };
    let marker = "consumer-auth: configuration refused: ";
    let line = failure.log.lines().find_map(|l| l.split_once(marker).map(|(_, r)| r.to_string()));
    line.unwrap_or_else(|| panic!("no refusal in Envoy's log:\n{}", failure.log))
}

#[test]
fn check_prints_what_the_filter_logs_in_envoy() {
    let docs = [
        json!({ "plugins": [ { "name": "key-auth", "config": { "key_names": ["apikey", "hello\\world"] } } ] }),
        json!({ "consumers": [ { "username": "a", "basicauth_credentials": [ { "username": "a", "password_hash": "abc" } ] } ] }),
        json!({ "consumers": [ { "username": "a" } ], "plugins": [ { "name": "key-auth", "config": { "anonymous": "nobody" } } ] }),
        json!({ "store": { "name": "main", "source": { "upstream": "src", "refresh_seconds": 0 } } }),
        json!({ "consumer_store": "main", "plugins": [ { "name": "rate-limiting", "config": { "minute": 10, "hour": 5 } } ] }),
    ];
    for doc in &docs {
        let out = consumer_auth(&["check", "-"], &doc.to_string());
        assert_eq!(out.code, 1, "{doc}: {}", out.stdout);
        let printed = out.stdout.trim_end().strip_prefix("<stdin>: refused: ").expect("a refusal").to_string();
        assert_eq!(printed, envoy_refusal(doc), "{doc}");
    }
    // And a document check accepts, Envoy loads.
    let ok = json!({ "consumers": [ { "username": "a", "keyauth_credentials": [ { "key_hash":
        consumer_auth(&["hash", "key", "a-key"], "").stdout.trim() } ] } ], "plugins": [ { "name": "key-auth" } ] });
    assert_eq!(consumer_auth(&["check", "-"], &ok.to_string()).code, 0);
    let echo = EchoServer::start();
    let envoy = Envoy::start(&Bootstrap::new(echo.port).route("/", [ok]));
    let r = Request::get("/").header("apikey", "a-key").send(envoy.port);
    assert_eq!(r.expect_upstream().header("x-consumer-username"), Some("a"));
    assert_eq!(Request::get("/").header("apikey", "b-key").send(envoy.port).status, 401);
}

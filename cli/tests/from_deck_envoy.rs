//! `consumer-auth from-deck` end to end: decK files (cli/tests/decks/) turned into Envoy
//! bootstraps by the built binary, loaded by the real Envoy (V8) with the release filter, and
//! requests through it: who reaches the upstream, as whom, with which path.
//!
//! Needs the filter (`make build`) and Envoy (`make envoy`, ENVOY_BIN), as the e2e suite does.

// clippy.toml covers the `#[test]` functions; this file's helpers (running the binary, Envoy) fail
// their test the same way.
#![allow(clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use consumer_auth_e2e::demo;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::http::{Request, Response, Upstream};
use consumer_auth_e2e::{filter_wasm, workspace_root};

fn deck_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/decks").join(name)
}

/// What the command printed and its exit status.
struct Run {
    yaml: String,
    stderr: String,
    code: i32,
}

/// `consumer-auth from-deck` on a deck file whose upstream (`127.0.0.1:18080`, or `port: 18080`) is
/// moved to `echo`,
/// listener and admin on free ports.
fn from_deck(name: &str, echo: &EchoServer, extra: &[&str]) -> Run {
    let text = std::fs::read_to_string(deck_path(name)).expect("read the deck file");
    let text = text
        .replace("127.0.0.1:18080", &format!("127.0.0.1:{}", echo.port))
        .replace("port: 18080", &format!("port: {}", echo.port));
    let wasm = filter_wasm().display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_consumer-auth"))
        .args(["from-deck", "-", "--wasm", &wasm, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run consumer-auth");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write the deck");
    let out = child.wait_with_output().expect("wait for consumer-auth");
    Run {
        yaml: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Envoy with a generated bootstrap.
fn envoy(name: &str, run: &Run) -> Envoy {
    assert_eq!(run.code, 0, "from-deck {name} failed:\n{}", run.stderr);
    let path = std::env::temp_dir().join(format!("consumer-auth-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, &run.yaml).expect("write the bootstrap");
    let envoy = Envoy::start_file(&path, &workspace_root())
        .unwrap_or_else(|f| panic!("Envoy refused the bootstrap of {name} ({:?}):\n{}\n{}", f.status, f.log, run.yaml));
    let _ = std::fs::remove_file(&path);
    envoy
}

/// Forwarded as `username` (credential id as given) with upstream path `path`.
#[track_caller]
fn reaches(r: &Response, username: &str, credential: Option<&str>, path: &str) -> Upstream {
    assert_eq!(r.status, 200, "expected 200, got {} {:?}", r.status, r.text());
    let up = r.expect_upstream();
    assert_eq!(up.header("x-consumer-username"), Some(username), "{up:?}");
    assert_eq!(up.header("x-credential-identifier"), credential, "{up:?}");
    assert_eq!(up.path, path);
    up
}

/// Forwarded as `username` (any credential) with upstream path `path`.
#[track_caller]
fn reaches_as(r: &Response, username: &str, path: &str) -> Upstream {
    assert_eq!(r.status, 200, "expected 200, got {} {:?}", r.text(), r.status);
    let up = r.expect_upstream();
    assert_eq!(up.header("x-consumer-username"), Some(username), "{up:?}");
    assert_eq!(up.path, path);
    up
}

/// Refused with `status` and `message`, never forwarded.
#[track_caller]
fn refused(r: &Response, status: u16, message: &str) {
    assert_eq!(r.status, status, "{:?}", r.text());
    assert!(r.upstream().is_none(), "reached the upstream: {:?}", r.text());
    assert_eq!(r.message(), message);
}

#[track_caller]
fn no_route(r: &Response) {
    refused(r, 404, "no Route matched with those values");
}

#[test]
fn the_demo_walkthrough_as_a_deck_file_behaves_as_the_demo() {
    let echo = EchoServer::start();
    let run = from_deck("walkthrough.yaml", &echo, &[]);
    let envoy = envoy("walkthrough.yaml", &run);
    let mut out = Vec::new();
    let ok = demo::walkthrough(envoy.port, &mut out);
    assert!(ok, "the walkthrough did not pass through the generated bootstrap:\n{}", String::from_utf8_lossy(&out));
    // strip_path (Kong's default): the route's path is taken off; the query stays.
    let r = Request::get("/key/items?page=2").header("apikey", "alice-key").send(envoy.port);
    reaches(&r, "alice", Some("6b2f6a4e-1c7d-4b8e-9f3a-2d5c7e9a1b01"), "/items?page=2");
    // A plain path is a plain prefix in Kong: /key also takes /keyed (and strips /key).
    let r = Request::get("/keyed").header("apikey", "alice-key").send(envoy.port);
    reaches(&r, "alice", Some("6b2f6a4e-1c7d-4b8e-9f3a-2d5c7e9a1b01"), "/ed");
    no_route(&Request::get("/nowhere").send(envoy.port));
}

#[test]
fn the_walkthrough_with_its_consumers_in_a_consumer_store() {
    let echo = EchoServer::start();
    let run = from_deck("walkthrough.yaml", &echo, &["--consumer-store", "kong"]);
    let b: serde_json::Value = serde_norway::from_str(&run.yaml).expect("YAML");
    let store = &b["bootstrap_extensions"][0]["typed_config"]["config"]["configuration"]["value"];
    let store: serde_json::Value = serde_json::from_str(store.as_str().expect("the store service")).unwrap();
    assert_eq!(store["store"]["consumers"].as_array().map(Vec::len), Some(2));
    let filters = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array()
        .unwrap();
    for f in filters.iter().filter(|f| f["name"] != "envoy.filters.http.router") {
        let doc = f["typed_config"]["config"]["configuration"]["value"].as_str().unwrap();
        let doc: serde_json::Value = serde_json::from_str(doc).unwrap();
        assert_eq!(doc["consumer_store"], "kong");
        assert!(doc.get("consumers").is_none());
    }
    let envoy = envoy("walkthrough-store.yaml", &run);
    let mut out = Vec::new();
    let ok = demo::walkthrough(envoy.port, &mut out);
    assert!(ok, "the walkthrough did not pass with a consumer store:\n{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_shop_dump_keeps_kongs_routing_precedence_and_scopes() {
    let echo = EchoServer::start();
    let run = from_deck("shop.yaml", &echo, &[]);
    assert!(run.stderr.contains("read as Kong's stored hash"), "{}", run.stderr);
    let envoy = envoy("shop.yaml", &run);
    let port = envoy.port;
    let alice = Some("6b2f6a4e-1c7d-4b8e-9f3a-2d5c7e9a1b01");

    // catalog: the service's key-auth (anonymous allowed, hide_credentials) beats the global one;
    // the service path is prepended to what strip_path leaves.
    reaches(&Request::get("/catalog/items").send(port), "anonymous", None, "/catalog/items");
    let up = reaches(
        &Request::get("/catalog/items").header("apikey", "alice-key").send(port),
        "alice",
        alice,
        "/catalog/items",
    );
    assert!(!up.has("apikey"), "hide_credentials: the key went upstream");
    // hide_credentials in the query: the filter's new path, then the route's rewrite.
    let r = Request::get("/catalog/items?apikey=alice-key&page=2").send(port);
    reaches(&r, "alice", alice, "/catalog/items?page=2");
    // methods: GET and HEAD only.
    no_route(&Request::new("POST", "/catalog/items").send(port));
    // catalog-admin: the route's acl with the service's key-auth.
    reaches(&Request::get("/catalog/admin").header("apikey", "alice-key").send(port), "alice", alice, "/catalog");
    reaches(
        &Request::get("/catalog/admin/users").header("apikey", "alice-key").send(port),
        "alice",
        alice,
        "/catalog/users",
    );
    refused(
        &Request::get("/catalog/admin").header("apikey", "bob-key").send(port),
        403,
        "You cannot consume this service",
    );
    refused(&Request::get("/catalog/admin").send(port), 401, "Unauthorized");

    // order (a 2.1 regex path, strip_path false): the global key-auth (x-api-key) AND the route's
    // basic-auth; the password is the dump's salted hash.
    refused(&Request::get("/orders/42").basic("alice", "alice-pw").send(port), 401, "No API key found in request");
    let both = Request::get("/orders/42").header("x-api-key", "alice-key").basic("alice", "alice-pw").send(port);
    reaches(&both, "alice", Some("alice"), "/api/v2/orders/42");
    let wrong = Request::get("/orders/42").header("x-api-key", "alice-key").basic("alice", "alice-pwx").send(port);
    refused(&wrong, 401, "Unauthorized");
    no_route(&Request::get("/orders/abc").header("x-api-key", "alice-key").send(port));

    // orders-list: only on its host; the route's key-auth (apikey) beats the global one.
    let on_host = |r: Request| r.header("Host", "shop.example.com");
    let up = reaches_as(&on_host(Request::get("/orders")).header("apikey", "bob-key").send(port), "bob", "/api/v2");
    assert!(up.has("x-credential-identifier"), "{up:?}");
    no_route(&Request::get("/orders").header("apikey", "bob-key").send(port));
    refused(
        &on_host(Request::get("/orders")).header("x-api-key", "bob-key").send(port),
        401,
        "No API key found in request",
    );

    // status: the global key-auth and rate-limiting; bob's own limit (2 a minute) is per route.
    for _ in 0..2 {
        let r = Request::get("/status").header("x-api-key", "bob-key").send(port);
        assert_eq!(r.header("x-ratelimit-limit-minute"), Some("2"));
        assert_eq!(r.expect_upstream().path, "/");
    }
    refused(&Request::get("/status").header("x-api-key", "bob-key").send(port), 429, "API rate limit exceeded");
    let r = Request::get("/status").header("x-api-key", "alice-key").send(port);
    assert_eq!(r.header("x-ratelimit-limit-minute"), Some("1000"));
    reaches(&r, "alice", alice, "/");
    // bob's one request on orders-list so far left him one there.
    assert_eq!(on_host(Request::get("/orders")).header("apikey", "bob-key").send(port).status, 200);
    refused(&on_host(Request::get("/orders")).header("apikey", "bob-key").send(port), 429, "API rate limit exceeded");
    refused(&Request::get("/status").header("apikey", "alice-key").send(port), 401, "No API key found in request");
}

#[test]
fn kongs_key_auth_example_works_as_in_kongs_docs() {
    let echo = EchoServer::start();
    let run = from_deck("kong-docs-key-auth.yaml", &echo, &[]);
    let envoy = envoy("kong-docs-key-auth.yaml", &run);
    refused(&Request::get("/anything").send(envoy.port), 401, "No API key found in request");
    refused(&Request::get("/anything").header("apikey", "nope").send(envoy.port), 401, "Unauthorized");
    let up =
        reaches_as(&Request::get("/anything?apikey=hello_world").send(envoy.port), "alice", "/?apikey=hello_world");
    assert!(up.has("x-credential-identifier"), "{up:?}");
}

#[test]
fn unsupported_plugins_are_refused_or_left_out_never_open() {
    let echo = EchoServer::start();
    let strict = from_deck("unsupported.yaml", &echo, &[]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(strict.yaml.is_empty(), "nothing is written when refused");
    for line in [
        "error: upstreams[0]: upstreams (load balancing over targets) are not supported",
        "error: services[0].routes[0].plugins[0]: plugin 'cors' is not supported",
        "error: services[0].routes[1].plugins[0]: plugin 'oauth2' is not supported",
        "error: services[0].routes[2].plugins[1]: plugin 'prometheus' is not supported",
        "error: services[0].routes[3].plugins[1].config.policy: redis: Kong's settings name Redis itself, the filter reaches it through its front (config.redis.upstream, token), which a decK file does not name: write this entry by hand (README, rate-limiting)",
        "error: services[0].routes[4].sources: matching on the source address is not supported",
        "error: services[1].host: 'backend.upstream' names an upstream, which is not supported",
    ] {
        assert!(strict.stderr.lines().any(|l| l == line), "missing {line:?} in:\n{}", strict.stderr);
    }

    let run = from_deck("unsupported.yaml", &echo, &["--skip-unsupported"]);
    assert!(run.stderr.contains("warning: services[0].routes[1].plugins[0]: plugin 'oauth2' is not supported; the routes it applies to are left out"), "{}", run.stderr);
    assert!(
        run.stderr.contains("warning: services[0].routes[0].plugins[0]: plugin 'cors' is not supported; dropped"),
        "{}",
        run.stderr
    );
    let envoy = envoy("unsupported.yaml", &run);
    let port = envoy.port;
    // cors decides nobody's access: the route stays, open as it is in Kong.
    assert_eq!(Request::get("/open").send(port).expect_upstream().path, "/");
    // oauth2 cannot be carried over: the route is left out, not opened.
    no_route(&Request::get("/sso").send(port));
    no_route(&Request::get("/sso").header("apikey", "carol-key").send(port));
    // prometheus dropped, key-auth kept.
    refused(&Request::get("/keyed").send(port), 401, "No API key found in request");
    reaches_as(&Request::get("/keyed").header("apikey", "carol-key").send(port), "carol", "/");
    // rate-limiting with the redis policy dropped (not an access plugin), key-auth kept.
    let r = Request::get("/redis").header("apikey", "carol-key").send(port);
    assert!(r.header("x-ratelimit-limit-minute").is_none());
    assert_eq!(r.expect_upstream().header("x-consumer-username"), Some("carol"));
    refused(&Request::get("/redis").send(port), 401, "No API key found in request");
    // A route matching on the client's address, and a service behind an upstream: left out.
    no_route(&Request::get("/by-source").send(port));
    no_route(&Request::get("/balanced").send(port));
}

#[test]
fn upstream_paths_follow_kongs_path_handling_v0() {
    let echo = EchoServer::start();
    let run = from_deck("paths.yaml", &echo, &[]);
    let envoy = envoy("paths.yaml", &run);
    let path_of = |r: Request| {
        let resp = r.send(envoy.port);
        resp.upstream().map(|u| u.path).unwrap_or_else(|| format!("{} {}", resp.status, resp.text()))
    };
    let cases = [
        // Kong's docs table: service path /s.
        ("/tv0req", "/s/req"),
        ("/tv0", "/s"),
        ("/tv0/req", "/s/req"),
        ("/tv0/", "/s/"),
        ("/fv0req", "/s/fv0req"),
        ("/fv0", "/s/fv0"),
        ("/fv0/req", "/s/fv0/req"),
        ("/fv0/", "/s/fv0/"),
        ("/tv0req?a=1&b=2", "/s/req?a=1&b=2"),
        // Regex paths: anchored at the start; strip_path takes the matched part.
        ("/r/12/abc", "/s/abc"),
        ("/r/12", "/s"),
        ("/k/7", "/s/k/7"),
        // Service path /s/.
        ("/slash/req", "/s/req"),
        ("/slash", "/s"),
        ("/slash/", "/s/"),
        ("/slash-kept/x", "/s/slash-kept/x"),
        // No service path.
        ("/base/a/b", "/a/b"),
        ("/base", "/"),
    ];
    let mut wrong = Vec::new();
    for (request, upstream) in cases {
        let got = path_of(Request::get(request));
        if got != upstream {
            wrong.push(format!("{request}: expected {upstream}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // No route matched.
    no_route(&Request::get("/k/7/more").send(envoy.port));
    no_route(&Request::get("/r/x").send(envoy.port));
    // headers: one of the values, case-insensitive; `~*`: a regex.
    assert_eq!(path_of(Request::get("/versioned/a").header("X-Version", "2")), "/s/a");
    assert_eq!(path_of(Request::get("/versioned/a").header("x-version", "V3-beta")), "/s/a");
    no_route(&Request::get("/versioned/a").header("x-version", "1").send(envoy.port));
    no_route(&Request::get("/versioned/a").send(envoy.port));
    // hosts: the route without paths takes every path on its hosts (wildcards too), and the port
    // of the Host header does not matter.
    assert_eq!(path_of(Request::get("/any/thing").header("Host", "api.example.com")), "/any/thing");
    assert_eq!(path_of(Request::get("/x").header("Host", "a.b.example.org:8000")), "/x");
    no_route(&Request::get("/any/thing").header("Host", "other.example.com").send(envoy.port));
    // Kong's route priority: hosts-only (one attribute, hosts not all plain) against base-tv0 (one
    // attribute, a 5-character plain path): the longer plain path wins.
    assert_eq!(path_of(Request::get("/base/a").header("Host", "api.example.com")), "/a");
    // by-method (methods and paths: two attributes) comes before base-tv0 for a DELETE.
    let r = Request::new("DELETE", "/base/z").send(envoy.port);
    assert!(r.expect_upstream().path == "/z");
    assert!(
        run.yaml.find("services[2].routes[2] /base").unwrap() < run.yaml.find("services[2].routes[0] /base").unwrap()
    );
}

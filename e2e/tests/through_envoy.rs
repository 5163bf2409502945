//! consumer-auth through the real Envoy (V8): one Envoy, one route per scenario, each route with
//! its own chain of filter instances; an echo upstream reports what got through.

mod common;

use common::and_or::{and_or_matrix, MODES};
use common::{assert_seen, Cases, Seen};
use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{instance, plugin, ALICE, ANONYMOUS, BOB, CAROL, GUEST, SPOOFED};
use consumer_auth_e2e::http::{Request, Response};
use serde_json::{json, Value};

const JSON_UTF8: &str = "application/json; charset=utf-8";

fn key_auth(config: Value) -> Value {
    plugin("key-auth", config)
}

fn basic_auth(config: Value) -> Value {
    plugin("basic-auth", config)
}

fn acl(config: Value) -> Value {
    plugin("acl", config)
}

fn termination_for_anonymous() -> Value {
    json!({ "name": "request-termination", "consumer": ANONYMOUS.username,
            "config": { "status_code": 401, "message": "Authentication required" } })
}

fn one(plugins: Value) -> [Value; 1] {
    [instance(plugins)]
}

// AND / OR (BEHAVIOUR.md §B3): the reference model and the matrix are in common/and_or.rs.

// ---------------------------------------------------------------------------------------------

fn bootstrap(upstream: u16) -> Bootstrap {
    let anon = json!({ "anonymous": ANONYMOUS.username });
    let mut b = Bootstrap::new(upstream)
        .route("/key", one(json!([key_auth(json!({}))])))
        .route("/key-realm", one(json!([key_auth(json!({ "realm": "shop" }))])))
        .route("/key-preflight", one(json!([key_auth(json!({ "run_on_preflight": false }))])))
        .route("/key-anon-id", one(json!([key_auth(json!({ "anonymous": ANONYMOUS.id }))])))
        .route("/key-anon-name", one(json!([key_auth(anon.clone())])))
        .route(
            "/key-anon-hide",
            one(json!([key_auth(json!({ "anonymous": ANONYMOUS.username, "hide_credentials": true }))])),
        )
        .route("/key-hide", one(json!([key_auth(json!({ "hide_credentials": true }))])))
        .route("/key-keep", one(json!([key_auth(json!({}))])))
        .route("/basic-hide", one(json!([basic_auth(json!({ "hide_credentials": true }))])))
        .route("/acl-allow", one(json!([key_auth(json!({})), acl(json!({ "allow": ["admins"] }))])))
        .route(
            "/acl-allow-split",
            [instance(json!([key_auth(json!({}))])), instance(json!([acl(json!({ "allow": ["admins"] }))]))],
        )
        .route("/acl-allow-anon", one(json!([key_auth(anon.clone()), acl(json!({ "allow": ["admins"] }))])))
        .route(
            "/acl-allow-guest",
            one(json!([
                key_auth(json!({ "anonymous": GUEST.username })),
                acl(json!({ "allow": ["admins", "guests"] }))
            ])),
        )
        .route("/acl-deny", one(json!([key_auth(json!({})), acl(json!({ "deny": ["users"] }))])))
        .route(
            "/acl-hide",
            one(json!([key_auth(json!({})), acl(json!({ "allow": ["admins"], "hide_groups_header": true }))])),
        )
        .route("/acl-only", one(json!([acl(json!({ "allow": ["admins"] }))])))
        .route(
            "/or-terminated",
            one(json!([key_auth(anon.clone()), basic_auth(anon.clone()), termination_for_anonymous()])),
        )
        .route(
            "/or-terminated-split",
            [
                instance(json!([key_auth(anon.clone())])),
                instance(json!([basic_auth(anon.clone())])),
                instance(json!([termination_for_anonymous()])),
            ],
        );
    for mode in &MODES {
        b = b
            .route(&mode.single(), one(json!([mode.key_plugin(), mode.basic_plugin()])))
            .route(&mode.split(), [instance(json!([mode.key_plugin()])), instance(json!([mode.basic_plugin()]))]);
    }
    b
}

fn assert_rejected(r: &Response, status: u16, message: &str, challenge: Option<&str>) {
    assert!(r.upstream().is_none(), "must not reach the upstream: {}", r.text());
    assert_eq!((r.status, r.message().as_str()), (status, message), "{}", r.text());
    assert_eq!(r.header("www-authenticate"), challenge, "WWW-Authenticate");
}

fn alice_by_key() -> Seen {
    Seen::authenticated(&ALICE, ALICE.key_id())
}

#[test]
fn consumer_auth_through_envoy() {
    let upstream = EchoServer::start();
    let envoy = Envoy::start(&bootstrap(upstream.port));
    let port = envoy.port;
    let alice_key = || ("apikey", ALICE.key());
    let mut cases = Cases::new();

    // -- key-auth ------------------------------------------------------------------------------
    cases.run("key-auth: no key -> 401 with WWW-Authenticate: Key", || {
        let r = Request::get("/key").send(port);
        assert_rejected(&r, 401, "No API key found in request", Some("Key"));
        assert_eq!(r.header("content-type"), Some(JSON_UTF8));
    });
    cases.run("key-auth: valid key in header -> 200, identity upstream (credential id, not key)", || {
        let (n, v) = alice_key();
        let up = Request::get("/key").header(n, v).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_ne!(up.header("x-credential-identifier"), Some(ALICE.key()));
    });
    cases.run("key-auth: valid key in query -> 200", || {
        let up = Request::get(&format!("/key?apikey={}", ALICE.key())).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
    });
    cases.run("key-auth: unknown key -> 401 Unauthorized", || {
        let r = Request::get("/key").header("apikey", "nope").send(port);
        assert_rejected(&r, 401, "Unauthorized", Some("Key"));
    });
    cases.run("key-auth: repeated header -> 401 Duplicate API key found", || {
        let r = Request::get("/key").header("apikey", ALICE.key()).header("apikey", ALICE.key()).send(port);
        assert_rejected(&r, 401, "Duplicate API key found", Some("Key"));
    });
    cases.run("key-auth: realm in the challenge", || {
        let r = Request::get("/key-realm").send(port);
        assert_rejected(&r, 401, "No API key found in request", Some("Key realm=\"shop\""));
    });

    // -- AND / OR ------------------------------------------------------------------------------
    for mode in &MODES {
        cases.run(&format!("AND/OR {}: every credential combination, one vs two instances", mode.name), || {
            and_or_matrix(port, mode)
        });
    }

    // -- anonymous -----------------------------------------------------------------------------
    for route in ["/key-anon-id", "/key-anon-name"] {
        cases.run(&format!("anonymous {route}: no key -> anonymous consumer"), || {
            let r = Request::get(route).send(port);
            assert_seen(&r.expect_upstream(), &Seen::anonymous(&ANONYMOUS));
        });
        cases.run(&format!("anonymous {route}: wrong key -> anonymous consumer"), || {
            let r = Request::get(route).header("apikey", "nope").send(port);
            assert_seen(&r.expect_upstream(), &Seen::anonymous(&ANONYMOUS));
        });
        cases.run(&format!("anonymous {route}: valid key -> alice"), || {
            let r = Request::get(route).header("apikey", ALICE.key()).send(port);
            assert_seen(&r.expect_upstream(), &alice_by_key());
        });
    }

    // -- acl -----------------------------------------------------------------------------------
    for route in ["/acl-allow", "/acl-allow-split"] {
        cases.run(&format!("acl {route}: allowed group -> 200 with X-Consumer-Groups"), || {
            let r = Request::get(route).header("apikey", ALICE.key()).headers(&SPOOFED).send(port);
            assert_seen(&r.expect_upstream(), &alice_by_key().groups("admins, ops"));
        });
        cases.run(&format!("acl {route}: other group -> 403"), || {
            let r = Request::get(route).header("apikey", BOB.key()).send(port);
            assert_rejected(&r, 403, "You cannot consume this service", None);
        });
        cases.run(&format!("acl {route}: authenticated, no groups -> 403"), || {
            let r = Request::get(route).header("apikey", CAROL.key()).send(port);
            assert_rejected(&r, 403, "You cannot consume this service", None);
        });
    }
    cases.run("acl allow + AND key-auth: no key -> key-auth's 401", || {
        let r = Request::get("/acl-allow").send(port);
        assert_rejected(&r, 401, "No API key found in request", Some("Key"));
    });
    cases.run("acl allow: anonymous consumer without groups -> 401 (not 403)", || {
        let r = Request::get("/acl-allow-anon").send(port);
        assert!(r.upstream().is_none());
        assert_eq!((r.status, r.message().as_str()), (401, "Unauthorized"));
    });
    cases.run("acl allow: anonymous consumer in an allowed group -> 200", || {
        let r = Request::get("/acl-allow-guest").send(port);
        assert_seen(&r.expect_upstream(), &Seen::anonymous(&GUEST).groups("guests"));
    });
    cases.run("acl deny: denied group -> 403", || {
        let r = Request::get("/acl-deny").header("apikey", BOB.key()).send(port);
        assert_rejected(&r, 403, "You cannot consume this service", None);
    });
    cases.run("acl deny: other groups -> 200 with X-Consumer-Groups", || {
        let r = Request::get("/acl-deny").header("apikey", ALICE.key()).send(port);
        assert_seen(&r.expect_upstream(), &alice_by_key().groups("admins, ops"));
    });
    cases.run("acl deny: no groups -> 200 with empty X-Consumer-Groups", || {
        let r = Request::get("/acl-deny").header("apikey", CAROL.key()).send(port);
        assert_seen(&r.expect_upstream(), &Seen::authenticated(&CAROL, CAROL.key_id()).groups(""));
    });
    cases.run("acl without any auth plugin -> 401", || {
        let r = Request::get("/acl-only").headers(&SPOOFED).send(port);
        assert!(r.upstream().is_none());
        assert_eq!((r.status, r.message().as_str()), (401, "Unauthorized"));
    });

    // -- request-termination scoped to the anonymous consumer ----------------------------------
    for route in ["/or-terminated", "/or-terminated-split"] {
        cases.run(&format!("request-termination {route}: anonymous -> 401"), || {
            for req in [Request::get(route), Request::get(route).header("apikey", "nope")] {
                let r = req.send(port);
                assert!(r.upstream().is_none(), "{}", r.text());
                assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"Authentication required"}"#));
            }
        });
        cases.run(&format!("request-termination {route}: either credential -> 200"), || {
            let r = Request::get(route).header("apikey", ALICE.key()).send(port);
            assert_seen(&r.expect_upstream(), &alice_by_key());
            let r = Request::get(route).basic(BOB.basic_user(), BOB.basic_password()).send(port);
            assert_seen(&r.expect_upstream(), &Seen::authenticated(&BOB, BOB.basic_user()));
        });
    }

    // -- spoofed identity headers --------------------------------------------------------------
    cases.run("spoofing: authenticated request", || {
        let r = Request::get("/key").headers(&SPOOFED).header("apikey", ALICE.key()).send(port);
        assert_seen(&r.expect_upstream(), &alice_by_key());
    });
    cases.run("spoofing: anonymous request", || {
        let r = Request::get("/key-anon-name").headers(&SPOOFED).send(port);
        assert_seen(&r.expect_upstream(), &Seen::anonymous(&ANONYMOUS));
    });
    cases.run("spoofing: OPTIONS preflight bypass (run_on_preflight=false)", || {
        let r = Request::new("OPTIONS", "/key-preflight").headers(&SPOOFED).send(port);
        let up = r.expect_upstream();
        assert_eq!(up.method, "OPTIONS");
        assert_seen(&up, &Seen::nobody());
        // Only OPTIONS bypasses.
        assert_rejected(&Request::get("/key-preflight").send(port), 401, "No API key found in request", Some("Key"));
    });
    cases.run("spoofing: acl with hide_groups_header", || {
        let r = Request::get("/acl-hide").headers(&SPOOFED).header("apikey", ALICE.key()).send(port);
        assert_seen(&r.expect_upstream(), &alice_by_key());
    });

    // -- hide_credentials ----------------------------------------------------------------------
    cases.run("hide_credentials: header removed, others kept", || {
        let r = Request::get("/key-hide")
            .header("X-Before", "1")
            .header("apikey", ALICE.key())
            .header("X-After", "2")
            .send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert!(!up.has("apikey"), "apikey reached the upstream: {:?}", up.headers);
        assert_eq!((up.header("x-before"), up.header("x-after")), (Some("1"), Some("2")));
    });
    cases.run("hide_credentials: query argument removed, the others kept in order", || {
        let r = Request::get(&format!("/key-hide?a=1&apikey={}&b=2&a=3&c", ALICE.key())).send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.path, "/key-hide?a=1&b=2&a=3&c");
    });
    cases.run("hide_credentials=false: header and query forwarded unchanged", || {
        let up = Request::get("/key-keep").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert_eq!(up.header("apikey"), Some(ALICE.key()));
        let target = format!("/key-keep?a=1&apikey={}&b=2", ALICE.key());
        assert_eq!(Request::get(&target).send(port).expect_upstream().path, target);
    });
    cases.run("a body is forwarded untouched (key_in_body is refused on Envoy, so bodies are never read)", || {
        let body = format!("a=1&apikey={}&b=2", ALICE.key());
        let r = Request::new("POST", "/key-hide")
            .header("apikey", ALICE.key())
            .body("application/x-www-form-urlencoded", body.clone())
            .send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &alice_by_key());
        assert!(!up.has("apikey"));
        assert_eq!(up.text(), body);
    });
    cases.run("hide_credentials: a failed OR attempt still strips the credential", || {
        let r = Request::get("/key-anon-hide").header("apikey", "nope").send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &Seen::anonymous(&ANONYMOUS));
        assert!(!up.has("apikey"));
    });
    cases.run("hide_credentials: basic-auth Authorization removed", || {
        let r = Request::get("/basic-hide").basic(ALICE.basic_user(), ALICE.basic_password()).send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.basic_user()));
        assert!(!up.has("authorization"));
    });

    // -- request_id ----------------------------------------------------------------------------
    cases.run("request_id: the client's x-request-id", || {
        let r = Request::get("/key").header("X-Request-Id", "e2e-request-42").send(port);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["request_id"], "e2e-request-42");
        assert_eq!(r.header("x-request-id"), Some("e2e-request-42"));
    });
    cases.run("request_id: the id Envoy generated", || {
        let r = Request::get("/key").send(port);
        let id = r.header("x-request-id").expect("Envoy returns x-request-id").to_string();
        assert!(!id.is_empty());
        assert_eq!(r.json()["request_id"], id.as_str());
        // A forwarded request carries the same kind of id upstream.
        let r = Request::get("/key").header("apikey", ALICE.key()).send(port);
        assert_eq!(r.expect_upstream().header("x-request-id"), r.header("x-request-id"));
    });
    cases.run("request_id: text/plain error body", || {
        let r = Request::get("/key").header("Accept", "text/plain").send(port);
        let id = r.header("x-request-id").expect("x-request-id").to_string();
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.text(), format!("No API key found in request\nrequest_id: {id}\n"));
    });

    drop(envoy);
    cases.finish();
}

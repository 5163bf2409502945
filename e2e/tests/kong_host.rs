//! consumer-auth through Kong's proxy-wasm host for real: nginx 1.25.3 + ngx_wasm_module at the
//! commit Kong 3.9 bundles, two workers, the `consumer_auth` shm_kv zone (`make kong-host`,
//! `$KONG_NGINX_BIN`; see e2e/src/kong.rs). The first tests are the defects the first run of the
//! filter on this host found (../shared/kong-host/README.md, docs/KONG.md "Tested on Kong's
//! host"); then the scenarios of the Envoy suite that apply to Kong, and Kong's own paths.
//!
//! On this host a header cannot be removed (ngx_wasm_module zeroes its hash; nginx's proxy
//! module forwards it anyway), so the filter refuses (500, Kong's body) a request whose
//! client-supplied identity headers it would have to remove or that carries one twice, and blanks
//! a hidden credential or an identity header an earlier instance wrote. Whatever it does, no
//! forged identity and no hidden key ever reaches the upstream: that is what these tests check.

mod common;

use std::time::Duration;

use common::{assert_seen, Cases, Seen};
use consumer_auth_e2e::bootstrap::{Bootstrap, Route};
use consumer_auth_e2e::clients::{hmac_signed, hs256_jwt, now, JwtKeys};
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{
    consumers_json, instance, plugin, ALICE, ALL, ANONYMOUS, BOB, CAROL, GUEST, IDENTITY_HEADERS, SPOOFED,
};
use consumer_auth_e2e::http::{Request, Response, Upstream};
use consumer_auth_e2e::kong::{Kong, KongConfig};
use serde_json::{json, Value};

/// What the filter answers on Kong when it cannot strip the request's identity headers.
const FAIL_CLOSED: &str = "An unexpected error occurred";

fn key_auth(config: Value) -> Value {
    plugin("key-auth", config)
}

fn basic_auth(config: Value) -> Value {
    plugin("basic-auth", config)
}

fn anonymous() -> Value {
    json!({ "anonymous": ANONYMOUS.username })
}

fn is_identity(name: &str) -> bool {
    IDENTITY_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// `up` without its blanked (empty) identity headers: a blanked header carries nothing.
fn without_blanks(up: &Upstream) -> Upstream {
    let mut up = up.clone();
    up.headers.retain(|(n, v)| !(v.is_empty() && is_identity(n)));
    up
}

/// Nothing the client forged is among the identity headers the upstream received.
fn assert_nothing_forged(up: &Upstream, forged: &[(&str, &str)]) {
    for (name, value) in &up.headers {
        assert!(
            !(is_identity(name) && forged.iter().any(|(_, bad)| value == bad)),
            "the forged {name}: {value} reached the upstream: {:?}",
            up.headers
        );
    }
}

/// The request was refused because of the identity headers it carries (Kong cannot strip them),
/// with one log line naming the header.
fn assert_failed_closed(kong: &Kong, mark: usize, r: &Response, header: Option<&str>) {
    assert!(r.upstream().is_none(), "reached the upstream: {:?}", r.text());
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.message(), FAIL_CLOSED);
    let log = kong.log_since(mark);
    assert!(
        log.lines().any(|l| l.contains("consumer-auth: refusing request")
            && header.is_none_or(|h| l.contains(&h.to_ascii_lowercase()))),
        "no refusal log line naming {header:?}:\n{log}"
    );
}

/// Forwarded with exactly `expected`, or refused (fail closed); never a forged value upstream.
fn assert_forwarded_or_failed_closed(kong: &Kong, mark: usize, r: &Response, expected: &Seen, forged: &[(&str, &str)]) {
    match r.upstream() {
        Some(up) => {
            assert_nothing_forged(&up, forged);
            assert_seen(&without_blanks(&up), expected);
        }
        None => {
            assert_eq!(r.status, 500, "{}", r.text());
            assert_eq!(r.message(), FAIL_CLOSED);
            assert!(kong.log_since(mark).contains("consumer-auth: refusing request"), "{}", kong.log_since(mark));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defect 1: client-supplied identity headers reached the upstream (every auth mode, duplicates,
// any casing).

#[test]
fn client_identity_headers_never_reach_the_upstream() {
    let echo = EchoServer::start();
    let config = KongConfig::new(echo.port)
        .route("/key", [instance(json!([key_auth(json!({}))]))])
        .route("/anon", [instance(json!([key_auth(anonymous())]))])
        .route("/open", [instance(json!([plugin("rate-limiting", json!({ "minute": 100000 }))]))]);
    let kong = Kong::start(&config);
    let port = kong.port;
    let mut cases = Cases::new();
    let alice = Seen::authenticated(&ALICE, ALICE.key_id());
    let anon = Seen::anonymous(&ANONYMOUS);
    let modes: [(&str, Request, Option<&Seen>); 4] = [
        ("authenticated", Request::get("/key").header("apikey", ALICE.key()), Some(&alice)),
        ("anonymous", Request::get("/anon"), Some(&anon)),
        ("refused", Request::get("/key").header("apikey", "wrong"), None),
        ("no auth plugin", Request::get("/open"), Some(&Seen::nobody())),
    ];
    for (mode, base, expected) in &modes {
        // every forged header alone, in three spellings
        for (name, value) in SPOOFED {
            for spelling in [name.to_string(), name.to_ascii_lowercase(), name.to_ascii_uppercase()] {
                cases.run(&format!("{mode}: {spelling}: {value}"), || {
                    let mark = kong.log().len();
                    let r = base.clone().header(&spelling, value).send(port);
                    match expected {
                        None => {
                            assert_eq!(r.status, 401);
                            assert!(r.upstream().is_none());
                        }
                        Some(seen) => assert_forwarded_or_failed_closed(&kong, mark, &r, seen, &SPOOFED),
                    }
                });
            }
        }
        // all of them at once (X-Consumer-Username twice)
        cases.run(&format!("{mode}: every forged header, one twice"), || {
            let mark = kong.log().len();
            let r = base.clone().headers(&SPOOFED).send(port);
            match expected {
                None => assert_eq!(r.status, 401),
                Some(_) => assert_failed_closed(&kong, mark, &r, None),
            }
        });
        // a header the filter sets, twice: the host cannot replace it (defect 3), so it refuses
        cases.run(&format!("{mode}: X-Consumer-ID twice"), || {
            let mark = kong.log().len();
            let r = base.clone().header("X-Consumer-ID", "evil-1").header("x-consumer-id", "evil-2").send(port);
            match expected {
                None => assert_eq!(r.status, 401),
                Some(_) => assert_failed_closed(&kong, mark, &r, Some("x-consumer-id")),
            }
        });
    }
    // What the filter can still do on Kong: a single header it sets is overwritten in place.
    cases.run("authenticated: one forged X-Consumer-ID and X-Consumer-Username are overwritten", || {
        let r = Request::get("/key")
            .header("apikey", ALICE.key())
            .header("X-Consumer-ID", "evil")
            .header("x-consumer-username", "mallory")
            .send(port);
        assert_seen(&r.expect_upstream(), &alice);
    });
    cases.run("anonymous: a forged X-Credential-Identifier is refused, not forwarded", || {
        let mark = kong.log().len();
        let r = Request::get("/anon").header("X-Credential-Identifier", "forged").send(port);
        assert_failed_closed(&kong, mark, &r, Some("x-credential-identifier"));
    });
    cases.run("authenticated: a forged X-Anonymous-Consumer is refused, not forwarded", || {
        let mark = kong.log().len();
        let r = Request::get("/key").header("apikey", ALICE.key()).header("X-Anonymous-Consumer", "evil").send(port);
        assert_failed_closed(&kong, mark, &r, Some("x-anonymous-consumer"));
    });
    cases.run("the refusal log line never carries the forged value", || {
        let mark = kong.log().len();
        let _ =
            Request::get("/key").header("apikey", ALICE.key()).header("X-Consumer-Groups", "sekrit-admins").send(port);
        assert!(!kong.log_since(mark).contains("sekrit-admins"));
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// Defects 2 and 4: hide_credentials in a header forwarded the key; in the query it answered 500.

#[test]
fn hide_credentials_never_forwards_the_key() {
    let echo = EchoServer::start();
    let hide = json!({ "hide_credentials": true });
    let config = KongConfig::new(echo.port)
        .route("/hide", [instance(json!([key_auth(hide.clone())]))])
        .route("/hide-body", [instance(json!([key_auth(json!({ "hide_credentials": true, "key_in_body": true }))]))])
        .route("/hide-basic", [instance(json!([basic_auth(hide.clone())]))])
        .route(
            "/hide-or",
            [instance(json!([key_auth(json!({ "hide_credentials": true, "anonymous": ANONYMOUS.username }))]))],
        )
        .route("/keep", [instance(json!([key_auth(json!({}))]))]);
    let kong = Kong::start(&config);
    let port = kong.port;
    let alice = Seen::authenticated(&ALICE, ALICE.key_id());
    let never_the_key = |up: &Upstream| {
        let all = format!("{} {:?} {}", up.path, up.headers, up.text());
        assert!(!all.contains(ALICE.key()), "the key reached the upstream: {all}");
    };
    let mut cases = Cases::new();
    cases.run("header: authenticated, the key header arrives empty", || {
        let up = Request::get("/hide").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &alice);
        never_the_key(&up);
        assert!(up.all("apikey").iter().all(|v| v.is_empty()), "{:?}", up.headers);
    });
    cases.run("header in another casing", || {
        let up = Request::get("/hide").header("APIKEY", ALICE.key()).send(port).expect_upstream();
        never_the_key(&up);
    });
    cases.run("header: a failed OR attempt still hides the key", || {
        let up = Request::get("/hide-or").header("apikey", "wrong-key").send(port).expect_upstream();
        assert_seen(&up, &Seen::anonymous(&ANONYMOUS));
        assert!(!format!("{:?}", up.headers).contains("wrong-key"), "{:?}", up.headers);
    });
    cases.run("header twice: refused, never forwarded", || {
        let mark = kong.log().len();
        let r = Request::get("/hide").header("apikey", ALICE.key()).header("apikey", ALICE.key()).send(port);
        match r.upstream() {
            Some(up) => never_the_key(&up),
            None => assert!(r.status == 500 || r.status == 401, "{} {}", r.status, kong.log_since(mark)),
        }
    });
    cases.run("query: the key leaves the query, the rest stays", || {
        let up = Request::get(&format!("/hide?z=9&apikey={}&a=1", ALICE.key())).send(port).expect_upstream();
        assert_seen(&up, &alice);
        assert_eq!(up.path, "/hide?z=9&a=1");
        never_the_key(&up);
    });
    cases.run("query: the key alone", || {
        let up = Request::get(&format!("/hide?apikey={}", ALICE.key())).send(port).expect_upstream();
        never_the_key(&up);
        assert_eq!(up.path, "/hide");
    });
    cases.run("body: a form key leaves the body", || {
        let r = Request::new("POST", "/hide-body")
            .body("application/x-www-form-urlencoded", format!("a=1&apikey={}&b=2", ALICE.key()))
            .send(port);
        let up = r.expect_upstream();
        assert_seen(&up, &alice);
        never_the_key(&up);
        assert_eq!(up.text(), "a=1&b=2");
    });
    cases.run("body of unknown length (chunked): refused, never judged as empty or forwarded", || {
        use std::io::{Read, Write};
        let body = format!("a=1&apikey={}", ALICE.key());
        let raw = format!(
            "POST /hide-body HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let r = Response::parse(&answer).unwrap();
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(r.message(), FAIL_CLOSED);
        assert!(r.upstream().is_none());
    });
    cases.run("basic-auth: the Authorization header never carries the credentials", || {
        let up =
            Request::get("/hide-basic").basic(ALICE.basic_user(), ALICE.basic_password()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.basic_user()));
        assert!(up.all("authorization").iter().all(|v| v.is_empty()), "{:?}", up.headers);
    });
    cases.run("without hide_credentials the key is forwarded", || {
        let up = Request::get("/keep").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_eq!(up.header("apikey"), Some(ALICE.key()));
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// Defect 3 and the kong.ctx.shared handoff: two chained instances, duplicated headers.

#[test]
fn the_chain_hands_the_identity_on() {
    let echo = EchoServer::start();
    let config = KongConfig::new(echo.port)
        .route("/chain", [instance(json!([key_auth(anonymous())])), instance(json!([basic_auth(anonymous())]))])
        .route(
            "/chain-acl",
            [instance(json!([key_auth(json!({}))])), instance(json!([plugin("acl", json!({ "allow": ["admins"] }))]))],
        )
        .route("/chain-and", [instance(json!([key_auth(json!({}))])), instance(json!([basic_auth(json!({}))]))]);
    let kong = Kong::start(&config);
    let port = kong.port;
    let mut cases = Cases::new();
    cases.run("OR across the chain: key-auth authenticates, basic-auth skips", || {
        let up = Request::get("/chain").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    cases.run("OR across the chain: anonymous, then basic-auth replaces it (X-Anonymous-Consumer blanked)", || {
        let up = Request::get("/chain").basic(BOB.basic_user(), BOB.basic_password()).send(port).expect_upstream();
        assert_seen(&without_blanks(&up), &Seen::authenticated(&BOB, BOB.basic_user()));
        assert!(up.all("x-anonymous-consumer").iter().all(|v| v.is_empty()), "{:?}", up.headers);
    });
    cases.run("OR across the chain: nobody -> anonymous", || {
        let up = Request::get("/chain").send(port).expect_upstream();
        assert_seen(&up, &Seen::anonymous(&ANONYMOUS));
    });
    cases.run("AND across the chain: the second instance's credential wins (alice's custom id blanked)", || {
        let up = Request::get("/chain-and")
            .header("apikey", ALICE.key())
            .basic(BOB.basic_user(), BOB.basic_password())
            .send(port)
            .expect_upstream();
        assert_seen(&without_blanks(&up), &Seen::authenticated(&BOB, BOB.basic_user()));
        assert_eq!(up.all("x-consumer-custom-id"), [""]);
    });
    cases.run("AND across the chain: the second fails -> 401", || {
        let r = Request::get("/chain-and").header("apikey", ALICE.key()).send(port);
        assert_eq!(r.status, 401);
    });
    cases.run("acl in the second instance sees the first one's consumer (kong.ctx.shared)", || {
        let up = Request::get("/chain-acl").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.key_id()).groups("admins, ops"));
        let r = Request::get("/chain-acl").header("apikey", BOB.key()).send(port);
        assert_eq!(r.status, 403, "{}", r.text());
    });
    for (name, a, b) in
        [("X-Consumer-ID", "evil-1", "evil-2"), ("X-Consumer-Username", "m1", "m2"), ("X-Anonymous-Consumer", "a", "b")]
    {
        cases.run(
            &format!("duplicated {name} through the chain: refused by the first instance, never forwarded"),
            || {
                for request in [
                    Request::get("/chain").header("apikey", ALICE.key()),
                    Request::get("/chain").basic(BOB.basic_user(), BOB.basic_password()),
                    Request::get("/chain"),
                ] {
                    let mark = kong.log().len();
                    let r = request.header(name, a).header(&name.to_ascii_lowercase(), b).send(port);
                    assert_failed_closed(&kong, mark, &r, Some(name));
                }
            },
        );
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// Defect 5: without the shm_kv zone the proxy hung (a store) or answered nginx's HTML 500.

#[test]
fn no_shm_kv_zone_never_hangs() {
    let echo = EchoServer::start();
    let store = json!({ "store": { "name": "main", "consumers": consumers_json(&ALL) } });
    let reader = json!({ "consumer_store": "main", "plugins": [key_auth(json!({}))] });
    let config = KongConfig::new(echo.port)
        .without_shm_kv()
        .route("/limited", [instance(json!([key_auth(json!({})), plugin("rate-limiting", json!({ "minute": 5 }))]))])
        .route("/store", [store, reader])
        .route("/plain", [instance(json!([key_auth(json!({}))]))]);
    let kong = Kong::try_start_within(&config, Duration::from_secs(30))
        .unwrap_or_else(|f| panic!("the host did not start without a shm_kv zone ({:?}):\n{}", f.status, f.log));
    let port = kong.port;
    let within = Duration::from_secs(10);
    let mut cases = Cases::new();
    cases.run("a plugin without shared data works", || {
        let r = Request::get("/plain").header("apikey", ALICE.key()).try_send_within(port, within).expect("an answer");
        assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    for path in ["/limited", "/store"] {
        cases.run(&format!("{path}: answered 500 within {within:?}, never forwarded"), || {
            for _ in 0..4 {
                let r = Request::get(path)
                    .header("apikey", ALICE.key())
                    .try_send_within(port, within)
                    .unwrap_or_else(|e| panic!("no answer within {within:?} ({e}); log:\n{}", kong.log()));
                assert_eq!(r.status, 500, "{}", r.text());
                assert!(r.upstream().is_none());
            }
        });
    }
    cases.run("the host's log names the shared-data failure", || {
        let log = kong.log();
        if std::env::var_os("KONG_HOST_SHOW_LOG").is_some() {
            eprintln!("{log}");
        }
        assert!(log.contains("could not resolve namespace"), "{log}");
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// The scenarios of the Envoy suite that apply to Kong, and Kong's own paths.

fn hmac_get(target: &str, names: &str) -> Request {
    hmac_signed(Request::get(target), ALICE.hmac_user(), ALICE.hmac_secret(), names, now())
}

#[test]
fn every_plugin_and_kongs_own_paths() {
    let echo = EchoServer::start();
    let termination = json!({ "name": "request-termination", "consumer": ANONYMOUS.username,
                              "config": { "status_code": 401, "message": "Authentication required" } });
    let store = json!({ "store": { "name": "main", "consumers": consumers_json(&ALL) } });
    // alice with an RS256 and an ES256 secret too: the public-key arithmetic (SIMD128 for RSA)
    // runs in Kong's wasmtime as it does in Envoy's V8.
    let keys = JwtKeys::generate().expect("keys");
    let mut with_public_keys = consumers_json(&ALL);
    if let Some(alice) =
        with_public_keys.as_array_mut().and_then(|a| a.iter_mut().find(|c| c["username"] == ALICE.username))
    {
        alice["jwt_secrets"] = json!([
            { "key": "alice-rs256", "algorithm": "RS256", "rsa_public_key": keys.rsa_pem() },
            { "key": "alice-es256", "algorithm": "ES256", "rsa_public_key": keys.p256_pem() }
        ]);
    }
    let config = KongConfig::new(echo.port)
        .route("/key", [instance(json!([key_auth(json!({}))]))])
        .route("/basic", [instance(json!([basic_auth(json!({}))]))])
        .route("/hmac", [instance(json!([plugin("hmac-auth", json!({ "enforce_headers": ["request-line"] }))]))])
        .route("/hmac-body", [instance(json!([plugin("hmac-auth", json!({ "validate_request_body": true }))]))])
        .route("/jwt", [instance(json!([plugin("jwt", json!({}))]))])
        .route("/jwt-pk", [json!({ "consumers": with_public_keys, "plugins": [plugin("jwt", json!({}))] })])
        .route("/or", [instance(json!([key_auth(anonymous()), basic_auth(anonymous())]))])
        .route("/or-id", [instance(json!([key_auth(json!({ "anonymous": GUEST.id }))]))])
        .route("/and", [instance(json!([key_auth(json!({})), basic_auth(json!({}))]))])
        .route("/acl", [instance(json!([key_auth(anonymous()), plugin("acl", json!({ "allow": ["admins"] }))]))])
        .route("/walkthrough", [instance(json!([key_auth(anonymous()), termination]))])
        .route("/store", [store, json!({ "consumer_store": "main", "plugins": [key_auth(json!({}))] })]);
    let kong = Kong::start(&config);
    let port = kong.port;
    let alice_key = Seen::authenticated(&ALICE, ALICE.key_id());
    let mut cases = Cases::new();
    cases.run("key-auth", || {
        assert_seen(&Request::get("/key").header("apikey", ALICE.key()).send(port).expect_upstream(), &alice_key);
        let r = Request::get("/key").send(port);
        assert_eq!((r.status, r.message()), (401, "No API key found in request".to_string()));
        assert_eq!(r.header("www-authenticate"), Some("Key"));
        let r = Request::get("/key").header("apikey", "nope").send(port);
        assert_eq!((r.status, r.message()), (401, "Unauthorized".to_string()));
    });
    cases.run("basic-auth", || {
        let up = Request::get("/basic").basic(ALICE.basic_user(), ALICE.basic_password()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.basic_user()));
        let r = Request::get("/basic").basic(ALICE.basic_user(), "wrong").send(port);
        assert_eq!(r.status, 401);
    });
    cases.run("hmac-auth signs the raw path Kong received (request.path), not nginx's decoded one", || {
        let names = "date @request-target request-line";
        for target in ["/hmac", "/hmac/orders?page=2&q=a%20b", "/hmac/a%2Fb/../c%20d"] {
            let r = hmac_get(target, names).send(port);
            assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.hmac_user()));
        }
        // a signature over nginx's decoded path does not match the raw one sent
        let mut r =
            hmac_signed(Request::get("/hmac/c d"), ALICE.hmac_user(), ALICE.hmac_secret(), "date request-line", now());
        r.target = "/hmac/c%20d".into();
        assert_eq!(r.send(port).status, 401);
    });
    cases.run("hmac-auth validate_request_body: the body is judged in Kong's body callback", || {
        use base64::Engine;
        use sha2::Digest;
        let body = r#"{"order":42}"#;
        let digest =
            format!("SHA-256={}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)));
        let post =
            |body: &str| Request::new("POST", "/hmac-body").body("application/json", body).header("digest", &digest);
        let signed = |r: Request| hmac_signed(r, ALICE.hmac_user(), ALICE.hmac_secret(), "date digest", now());
        let up = signed(post(body)).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.hmac_user()));
        assert_eq!(up.text(), body);
        let r = signed(post(r#"{"order":43}"#)).send(port);
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r.upstream().is_none());
    });
    cases.run("jwt", || {
        let token = hs256_jwt(ALICE.jwt_key(), ALICE.jwt_secret(), now() + 600);
        let up = Request::get("/jwt").header("authorization", &format!("Bearer {token}")).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.jwt_key()));
        assert_eq!(Request::get("/jwt").header("authorization", "Bearer x.y.z").send(port).status, 401);
    });
    cases.run("jwt RS256 and ES256: accepted, twice (the second from the token cache); forged refused", || {
        let bearer = |token: &str| Request::get("/jwt-pk").header("authorization", &format!("Bearer {token}"));
        for (key, token) in [
            ("alice-rs256", keys.rs256(&json!({ "iss": "alice-rs256", "exp": now() + 600 }))),
            ("alice-es256", keys.es256(&json!({ "iss": "alice-es256", "exp": now() + 600 }))),
        ] {
            for _ in 0..2 {
                assert_seen(&bearer(&token).send(port).expect_upstream(), &Seen::authenticated(&ALICE, key));
            }
            // The signature's first character changed: another signature of the same length.
            let (input, signature) = token.rsplit_once('.').expect("a JWS");
            let first = if signature.starts_with('A') { 'B' } else { 'A' };
            let forged = format!("{input}.{first}{}", &signature[1..]);
            let r = bearer(&forged).send(port);
            assert_eq!((r.status, r.message()), (401, "Invalid signature".to_string()), "{key}");
            assert!(r.upstream().is_none());
        }
    });
    cases.run("OR: key, basic, nobody (anonymous by username)", || {
        assert_seen(&Request::get("/or").header("apikey", ALICE.key()).send(port).expect_upstream(), &alice_key);
        let up = Request::get("/or").basic(BOB.basic_user(), BOB.basic_password()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&BOB, BOB.basic_user()));
        assert_seen(&Request::get("/or").send(port).expect_upstream(), &Seen::anonymous(&ANONYMOUS));
    });
    cases.run("anonymous by id", || {
        assert_seen(&Request::get("/or-id").send(port).expect_upstream(), &Seen::anonymous(&GUEST));
    });
    cases.run("AND: both, the last one's credential; one missing -> 401", || {
        let up = Request::get("/and")
            .header("apikey", ALICE.key())
            .basic(BOB.basic_user(), BOB.basic_password())
            .send(port)
            .expect_upstream();
        assert_seen(&up, &Seen::authenticated(&BOB, BOB.basic_user()));
        assert_eq!(Request::get("/and").header("apikey", ALICE.key()).send(port).status, 401);
    });
    cases.run("acl: admins pass with X-Consumer-Groups, others 403, anonymous 401", || {
        let up = Request::get("/acl").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &alice_key.clone().groups("admins, ops"));
        let r = Request::get("/acl").header("apikey", BOB.key()).send(port);
        assert_eq!((r.status, r.message()), (403, "You cannot consume this service".to_string()));
        let r = Request::get("/acl").send(port);
        assert_eq!((r.status, r.message()), (401, "Unauthorized".to_string()));
    });
    cases.run("request-termination on the anonymous consumer (the walkthrough)", || {
        let r = Request::get("/walkthrough").send(port);
        assert_eq!((r.status, r.message()), (401, "Authentication required".to_string()));
        assert!(r.upstream().is_none());
        assert_seen(
            &Request::get("/walkthrough").header("apikey", ALICE.key()).send(port).expect_upstream(),
            &alice_key,
        );
    });
    cases.run("request id: the refusal carries Kong's request id ($kong_request_id), not the client's", || {
        let r = Request::get("/key").header("x-request-id", "client-chosen").send(port);
        let id = r.json()["request_id"].as_str().unwrap_or_default().to_string();
        assert_eq!(id.len(), 32, "{}", r.text());
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(kong.log().contains(&format!("request_id={id}")), "the refusal line carries the same id");
    });
    cases.run("refusals: Kong's JSON body and content type", || {
        let r = Request::get("/key").send(port);
        assert_eq!(r.status, 401);
        assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(r.message(), "No API key found in request");
    });
    cases.run("store from configuration: the reader authenticates from shared data", || {
        let up = Request::get("/store").header("apikey", BOB.key()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&BOB, BOB.key_id()));
        assert_eq!(Request::get("/store").header("apikey", "nope").send(port).status, 401);
    });
    cases.finish();
}

#[test]
fn rate_limits_are_exact_across_both_workers() {
    let echo = EchoServer::start();
    const LIMIT: usize = 20;
    let config = KongConfig::new(echo.port)
        .location_extra("add_header X-Worker-Pid $pid always;")
        .route("/limited", [instance(json!([key_auth(json!({})), plugin("rate-limiting", json!({ "hour": LIMIT }))]))]);
    let kong = Kong::start(&config);
    // a new connection per request: both workers take some
    let mut passed = 0;
    let mut workers = std::collections::BTreeSet::new();
    let mut statuses = Vec::new();
    for _ in 0..LIMIT + 10 {
        let r = Request::get("/limited").header("apikey", ALICE.key()).send(kong.port);
        statuses.push(r.status);
        if r.status == 200 {
            passed += 1;
        } else {
            assert_eq!((r.status, r.message()), (429, "API rate limit exceeded".to_string()));
        }
        if let Some(pid) = r.header("x-worker-pid") {
            workers.insert(pid.to_string());
        }
    }
    assert_eq!(passed, LIMIT, "{statuses:?}");
    // Kong's rate-limiting headers, added to the upstream's response by on_http_response_headers
    let r = Request::get("/limited").header("apikey", CAROL.key()).send(kong.port);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-limit-hour"), Some(LIMIT.to_string().as_str()), "{:?}", r.headers);
    assert_eq!(r.header("x-ratelimit-remaining-hour"), Some((LIMIT - 1).to_string().as_str()), "{:?}", r.headers);
    assert_eq!(workers.len(), 2, "both workers served: {workers:?}");
    // another consumer has its own budget
    assert_eq!(Request::get("/limited").header("apikey", BOB.key()).send(kong.port).status, 200);
}

// ---------------------------------------------------------------------------------------------
// One case list, both hosts.

fn walkthrough_routes() -> Vec<Route> {
    let termination = json!({ "name": "request-termination", "consumer": ANONYMOUS.username,
                              "config": { "status_code": 401, "message": "Authentication required" } });
    vec![
        Route::new("/walk", [instance(json!([key_auth(anonymous()), basic_auth(anonymous()), termination]))]),
        Route::new(
            "/walk-split",
            [instance(json!([key_auth(anonymous())])), instance(json!([basic_auth(anonymous())]))],
        ),
    ]
}

/// The same requests and expectations on either host.
fn walkthrough_cases(host: &str, port: u16) {
    let mut cases = Cases::new();
    cases.run(&format!("{host}: nobody -> 401 from request-termination"), || {
        let r = Request::get("/walk").send(port);
        assert_eq!((r.status, r.message()), (401, "Authentication required".to_string()));
    });
    cases.run(&format!("{host}: key -> alice"), || {
        let up = Request::get("/walk").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    cases.run(&format!("{host}: basic -> bob"), || {
        let up = Request::get("/walk").basic(BOB.basic_user(), BOB.basic_password()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&BOB, BOB.basic_user()));
    });
    cases.run(&format!("{host}: split chain, key -> alice"), || {
        let up = Request::get("/walk-split").header("apikey", ALICE.key()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    cases.run(&format!("{host}: split chain, nobody -> anonymous"), || {
        let up = Request::get("/walk-split").send(port).expect_upstream();
        assert_seen(&up, &Seen::anonymous(&ANONYMOUS));
    });
    cases.run(&format!("{host}: a forged X-Consumer-Username never reaches the upstream as such"), || {
        let r = Request::get("/walk").header("apikey", ALICE.key()).header("X-Consumer-Username", "mallory").send(port);
        assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    cases.finish();
}

#[test]
fn the_walkthrough_runs_alike_on_envoy_and_kong() {
    let echo = EchoServer::start();
    let mut bootstrap = Bootstrap::new(echo.port);
    for route in walkthrough_routes() {
        bootstrap = bootstrap.route(&route.prefix, route.chain);
    }
    let envoy = Envoy::start(&bootstrap);
    walkthrough_cases("envoy", envoy.port);
    drop(envoy);
    let kong = Kong::start(&KongConfig::new(echo.port).routes(walkthrough_routes()));
    walkthrough_cases("kong", kong.port);
}

/// The consumer store filled from a remote source: ngx_wasm_module's `dispatch_http_call` to
/// `host:port`, the document read whole, the store shared by both workers; a new document
/// replaces the consumers.
#[test]
fn the_store_from_a_remote_source() {
    use consumer_auth_e2e::source::DocumentServer;
    let echo = EchoServer::start();
    let source = DocumentServer::start();
    source.set_consumers(&consumers_json(&[&ALICE, &ANONYMOUS]));
    let loader = json!({ "store": { "name": "main", "source": {
        "upstream": format!("127.0.0.1:{}", source.port), "authority": "consumers.internal",
        "path": "/consumers.json", "refresh_seconds": 1, "timeout_ms": 5000 } } });
    let reader = json!({ "consumer_store": "main", "plugins": [key_auth(json!({}))] });
    // a source nobody listens on: Kong 3.9's ngx_wasm_module calls back for the failed call
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let broken = json!({ "store": { "name": "broken", "source": {
        "upstream": format!("127.0.0.1:{closed}"), "path": "/consumers.json",
        "refresh_seconds": 1, "timeout_ms": 5000 } } });
    let config = KongConfig::new(echo.port).route("/store", [loader, reader]).route("/broken", [broken]);
    let started = std::time::Instant::now();
    let kong = Kong::start(&config);
    let wait_for = |key: &str, status: u16| {
        let start = std::time::Instant::now();
        loop {
            let r = Request::get("/store").header("apikey", key).send(kong.port);
            if r.status == status {
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "still {} {}:\n{}", r.status, r.text(), kong.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let r = wait_for(ALICE.key(), 200);
    assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.key_id()));
    assert_eq!(Request::get("/store").header("apikey", BOB.key()).send(kong.port).status, 401);
    assert!(source.fetches().iter().all(|f| f.path == "/consumers.json"), "{:?}", source.fetches());
    // a new document: bob in, alice out
    source.set_consumers(&consumers_json(&[&BOB, &ANONYMOUS]));
    let r = wait_for(BOB.key(), 200);
    assert_seen(&r.expect_upstream(), &Seen::authenticated(&BOB, BOB.key_id()));
    wait_for(ALICE.key(), 401);
    // the failed call was reported by the host (a callback without a status), not given up on
    // by the loader's own timeout (timeout_ms + 5 s)
    let line = "store 'broken': fetch failed: no answer (timeout, connection failure";
    while !kong.log().contains(line) {
        assert!(started.elapsed() < Duration::from_secs(9), "no '{line}' line:\n{}", kong.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!kong.log().contains("store 'broken': fetch failed: no answer within the timeout"));
}

// ---------------------------------------------------------------------------------------------
// The host itself: can any proxy-wasm call sequence really remove a request header? Two probe
// filters in WAT (ngx_wasm_module compiles .wat), each doing one thing to X-Consumer-ID in
// on_request_headers; the echo upstream tells what nginx forwarded.

/// A probe filter whose `on_request_headers` runs `body` (WAT instructions), with the name
/// `x-consumer-id` at 1024 (13 bytes) and a serialised one-pair map `x-kept: 1` at 2048 (26 bytes).
fn probe_wat(body: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "x-consumer-id")
  (data (i32.const 1100) "replaced")
  (data (i32.const 2048) "\01\00\00\00\06\00\00\00\01\00\00\00x-kept\001\00")
  (global $heap (mut i32) (i32.const 8192))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    global.get $heap local.set $p
    global.get $heap local.get $n i32.add global.set $heap
    local.get $p)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_tick") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32))
  (func (export "proxy_on_queue_ready") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {body}
    i32.const 0))
"#
    )
}

#[test]
fn the_host_cannot_remove_a_request_header() {
    let echo = EchoServer::start();
    let dir = std::env::temp_dir().join(format!("consumer-auth-probes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let probes = [
        ("probe_remove", "(drop (call $remove (i32.const 0) (i32.const 1024) (i32.const 13)))"),
        ("probe_set_map", "(drop (call $set_pairs (i32.const 0) (i32.const 2048) (i32.const 26)))"),
        (
            "probe_replace",
            "(drop (call $replace (i32.const 0) (i32.const 1024) (i32.const 13) (i32.const 1100) (i32.const 8)))",
        ),
    ];
    let mut config = KongConfig::new(echo.port);
    for (name, body) in probes {
        let path = dir.join(format!("{name}.wat"));
        std::fs::write(&path, probe_wat(body)).unwrap();
        config = config
            .module(name, &path.display().to_string())
            .raw_location(&format!("/{name}"), &format!("proxy_wasm {name}; proxy_wasm_request_headers_in_access on;"));
    }
    let kong = Kong::start(&config);
    let send = |path: &str, headers: &[(&str, &str)]| {
        let up = Request::get(path).headers(headers).send(kong.port).expect_upstream();
        up.all("x-consumer-id").into_iter().map(String::from).collect::<Vec<_>>()
    };
    let mut cases = Cases::new();
    cases.run("proxy_remove_header_map_value: the header is still forwarded", || {
        assert_eq!(send("/probe_remove", &[("X-Consumer-ID", "evil")]), ["evil"]);
    });
    cases.run("proxy_set_header_map_pairs (the whole map replaced): the old header is still forwarded", || {
        let up = Request::get("/probe_set_map").header("X-Consumer-ID", "evil").send(kong.port).expect_upstream();
        assert_eq!(up.all("x-consumer-id"), ["evil"]);
        assert_eq!(up.all("x-kept"), ["1"]);
    });
    cases.run("proxy_replace_header_map_value on one copy: replaced in place", || {
        assert_eq!(send("/probe_replace", &[("X-Consumer-ID", "evil")]), ["replaced"]);
    });
    cases.run("proxy_replace_header_map_value on two copies: every copy forwarded, the first replaced", || {
        assert_eq!(
            send("/probe_replace", &[("X-Consumer-ID", "evil-1"), ("x-consumer-id", "evil-2")]),
            ["replaced", "evil-2"]
        );
    });
    cases.finish();
    drop(kong);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed's walkthrough (`make demo`, `make demo-kong`): every step gives the answer it gives
/// on Envoy.
#[test]
fn the_demo_walkthrough_passes_on_kong() {
    let echo = EchoServer::start();
    let wasm = consumer_auth_e2e::filter_wasm().display().to_string();
    let routes = consumer_auth_e2e::demo::bootstrap(0, 0, echo.port, &wasm).routes;
    let kong = Kong::start(&KongConfig::new(echo.port).routes(routes));
    let mut out = Vec::new();
    let ok = consumer_auth_e2e::demo::walkthrough(kong.port, &mut out);
    assert!(ok, "{}", String::from_utf8_lossy(&out));
}

/// What the upstream's identity headers say on Kong (a blanked header says nothing).
fn seen_on_kong(up: &Upstream) -> Vec<(&'static str, Vec<String>)> {
    common::seen(&without_blanks(up))
}

/// AND / OR (BEHAVIOUR.md §B3), the same matrix and reference model as on Envoy
/// (common/and_or.rs): key-auth + basic-auth in every mode, one instance against the model, two
/// chained instances (the kong.ctx.shared handoff) against one. Without forged headers: on Kong
/// those are refused (see `client_identity_headers_never_reach_the_upstream`).
#[test]
fn and_or_matrix_on_kong() {
    use common::and_or::{and_or_matrix_with, MODES};
    let echo = EchoServer::start();
    let mut config = KongConfig::new(echo.port);
    for mode in &MODES {
        config = config
            .route(&mode.single(), [instance(json!([mode.key_plugin(), mode.basic_plugin()]))])
            .route(&mode.split(), [instance(json!([mode.key_plugin()])), instance(json!([mode.basic_plugin()]))]);
    }
    let kong = Kong::start(&config);
    let mut cases = Cases::new();
    for mode in &MODES {
        cases.run(&format!("kong: and/or {}", mode.name), || and_or_matrix_with(kong.port, mode, &[], seen_on_kong));
    }
    cases.finish();
}

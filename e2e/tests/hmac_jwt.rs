//! hmac-auth (BEHAVIOUR.md §B7) and jwt (§B8) through the real Envoy (V8), on Envoy's real clock:
//! signatures and tokens are computed here (the `hmac`, `sha2`, `rsa`, `p256` crates), never by
//! the filter's code; the `Date` and `exp` come from the system clock.

// clippy.toml covers the `#[test]` functions; this file's helpers (signing, key generation) fail
// their test the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{assert_seen, Cases, Seen};
use consumer_auth_e2e::bootstrap::Bootstrap;
use consumer_auth_e2e::clients::{hmac_sha256, hmac_signed, hmac_signing_string, hs256_jwt, now, JwtKeys};
use consumer_auth_e2e::echo::EchoServer;
use consumer_auth_e2e::envoy::Envoy;
use consumer_auth_e2e::fixtures::{consumers_json, instance, plugin, ALICE, ALL, ANONYMOUS};
use consumer_auth_e2e::http::{Request, Response};
use serde_json::{json, Value};

const JSON_UTF8: &str = "application/json; charset=utf-8";
const DATE_REQUIRED: &str =
    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication";

fn assert_rejected(r: &Response, message: &str, challenge: &str) {
    assert!(r.upstream().is_none(), "must not reach the upstream: {}", r.text());
    assert_eq!((r.status, r.message().as_str()), (401, message), "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some(challenge), "WWW-Authenticate");
    assert_eq!(r.header("content-type"), Some(JSON_UTF8));
}

// ---------------------------------------------------------------------------------------------
// hmac-auth

/// Alice's hmac-signed GET of `target`, signing `names`, dated `date`.
fn signed(target: &str, names: &str, date: u64) -> Request {
    hmac_signed(Request::get(target), ALICE.hmac_user(), ALICE.hmac_secret(), names, date)
}

/// The same request with another `signature="…"` in its Authorization.
fn with_signature(mut r: Request, signature: &str) -> Request {
    let auth = r.headers.iter_mut().find(|(n, _)| n == "Authorization").expect("signed request");
    let start = auth.1.find("signature=\"").expect("a signature field") + "signature=\"".len();
    auth.1.replace_range(start..auth.1.len() - 1, signature);
    r
}

#[test]
fn hmac_auth_through_envoy() {
    let upstream = EchoServer::start();
    let bootstrap =
        Bootstrap::new(upstream.port).route("/hmac", [instance(json!([plugin("hmac-auth", json!({}))]))]).route(
            "/hmac-enforced",
            [instance(json!([plugin("hmac-auth", json!({ "enforce_headers": ["request-line"] }))]))],
        );
    let envoy = Envoy::start(&bootstrap);
    let port = envoy.port;
    let all_three = "date @request-target request-line";
    let mut cases = Cases::new();

    cases.run("signed date, @request-target and request-line (HTTP/1.1 from Envoy) -> 200, hmac username", || {
        let up = signed("/hmac/orders?page=2&q=a%20b", all_three, now()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.hmac_user()));
        assert_eq!(up.path, "/hmac/orders?page=2&q=a%20b");
        assert!(up.header("authorization").is_some_and(|a| a.starts_with("hmac ")), "not hidden by default");
    });
    cases.run("request-line enforced and signed -> 200", || {
        let up = signed("/hmac-enforced", all_three, now()).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.hmac_user()));
    });
    cases.run("request-line enforced but not signed -> 401 cannot be verified", || {
        let r = signed("/hmac-enforced", "date @request-target", now()).send(port);
        assert_rejected(&r, "HMAC signature cannot be verified", "hmac");
    });
    cases.run("request-line signed as HTTP/1.0 while HTTP/1.1 is sent -> 401 does not match", || {
        // What the filter rebuilds from Envoy's request.protocol is `GET /hmac HTTP/1.1`.
        let r = signed("/hmac", "date request-line", now());
        let http_1_0 = hmac_signing_string(&r, &["date", "request-line"]).replace(" HTTP/1.1", " HTTP/1.0");
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(ALICE.hmac_secret(), &http_1_0));
        let r = with_signature(r, &sig).send(port);
        assert_rejected(&r, "HMAC signature does not match", "hmac");
    });
    cases.run("tampered signature -> 401 HMAC signature does not match, challenge hmac", || {
        let good = signed("/hmac", all_three, now());
        let r = with_signature(good, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").send(port);
        assert_rejected(&r, "HMAC signature does not match", "hmac");
    });
    cases.run("signature of another path -> 401 HMAC signature does not match", || {
        let mut r = signed("/hmac/a", all_three, now());
        r.target = "/hmac/b".into();
        assert_rejected(&r.send(port), "HMAC signature does not match", "hmac");
    });
    cases.run("stale date (10 minutes old, clock_skew 300) -> 401 with the date message", || {
        let r = signed("/hmac", all_three, now() - 600).send(port);
        assert_rejected(&r, DATE_REQUIRED, "hmac");
    });
    cases.run("date 10 minutes ahead -> 401 with the date message", || {
        let r = signed("/hmac", all_three, now() + 600).send(port);
        assert_rejected(&r, DATE_REQUIRED, "hmac");
    });
    cases.run("no Authorization -> 401 Unauthorized, challenge hmac", || {
        assert_rejected(&Request::get("/hmac").send(port), "Unauthorized", "hmac");
    });
    cases.run("unknown hmac username -> 401 cannot be verified", || {
        let r = hmac_signed(Request::get("/hmac"), "mallory", ALICE.hmac_secret(), all_three, now()).send(port);
        assert_rejected(&r, "HMAC signature cannot be verified", "hmac");
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------------
// jwt

const RS256_KEY: &str = "alice-rs256";
const ES256_KEY: &str = "alice-es256";

/// All test consumers, alice with an RS256 and an ES256 secret besides her HS256 one.
fn jwt_instance(keys: &JwtKeys, plugins: Value) -> Value {
    let mut consumers = consumers_json(&ALL);
    let alice = consumers.as_array_mut().unwrap().iter_mut().find(|c| c["username"] == ALICE.username).unwrap();
    let secrets = alice["jwt_secrets"].as_array_mut().expect("alice has a jwt secret");
    secrets.push(json!({ "key": RS256_KEY, "algorithm": "RS256", "rsa_public_key": keys.rsa_pem() }));
    secrets.push(json!({ "key": ES256_KEY, "algorithm": "ES256", "rsa_public_key": keys.p256_pem() }));
    json!({ "consumers": consumers, "plugins": plugins })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn alice_hs256() -> String {
    hs256_jwt(ALICE.jwt_key(), ALICE.jwt_secret(), now() + 600)
}

#[test]
fn jwt_through_envoy() {
    let keys = JwtKeys::generate().expect("keys");
    let upstream = EchoServer::start();
    let anon = json!({ "anonymous": ANONYMOUS.username });
    let bootstrap = Bootstrap::new(upstream.port)
        .route("/jwt", [jwt_instance(&keys, json!([plugin("jwt", json!({ "claims_to_verify": ["exp"] }))]))])
        .route("/jwt-and-key", [jwt_instance(&keys, json!([plugin("jwt", json!({})), plugin("key-auth", json!({}))]))])
        .route(
            "/jwt-or-key",
            [jwt_instance(&keys, json!([plugin("jwt", anon.clone()), plugin("key-auth", anon.clone())]))],
        );
    let envoy = Envoy::start(&bootstrap);
    let port = envoy.port;
    let get = |path: &str, token: &str| Request::get(path).header("Authorization", &bearer(token));
    let mut cases = Cases::new();

    cases.run("HS256, valid -> 200, X-Credential-Identifier = the jwt key, token forwarded", || {
        let token = alice_hs256();
        let up = get("/jwt", &token).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.jwt_key()));
        assert_eq!(up.header("authorization"), Some(bearer(&token).as_str()), "jwt never hides the token");
    });
    cases.run("HS256 in the jwt query argument -> 200", || {
        let up = Request::get(&format!("/jwt?jwt={}", alice_hs256())).send(port).expect_upstream();
        assert_seen(&up, &Seen::authenticated(&ALICE, ALICE.jwt_key()));
    });
    cases.run("RS256 with a key generated here -> 200", || {
        let token = keys.rs256(&json!({ "iss": RS256_KEY, "exp": now() + 600 }));
        assert_seen(&get("/jwt", &token).send(port).expect_upstream(), &Seen::authenticated(&ALICE, RS256_KEY));
    });
    cases.run("ES256 with a key generated here -> 200", || {
        let token = keys.es256(&json!({ "iss": ES256_KEY, "exp": now() + 600 }));
        assert_seen(&get("/jwt", &token).send(port).expect_upstream(), &Seen::authenticated(&ALICE, ES256_KEY));
    });
    cases.run("RS256 token for the ES256 secret -> 401 Invalid algorithm", || {
        let token = keys.rs256(&json!({ "iss": ES256_KEY, "exp": now() + 600 }));
        let r = get("/jwt", &token).send(port);
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"Invalid algorithm"}"#));
        assert_eq!(r.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    });
    cases.run("HS256 signed with another secret -> 401 Invalid signature", || {
        let r = get("/jwt", &hs256_jwt(ALICE.jwt_key(), "not-the-secret", now() + 600)).send(port);
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"Invalid signature"}"#));
        assert_eq!(r.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    });
    cases.run(r#"expired -> 401, body exactly {"exp":"token expired"}"#, || {
        let r = get("/jwt", &hs256_jwt(ALICE.jwt_key(), ALICE.jwt_secret(), now() - 60)).send(port);
        assert!(r.upstream().is_none(), "{}", r.text());
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"exp":"token expired"}"#));
        assert_eq!(r.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
        assert_eq!(r.header("content-type"), Some(JSON_UTF8));
    });
    cases.run(r#"no token -> 401, body exactly {"message":"Unauthorized"}, challenge Bearer"#, || {
        let r = Request::get("/jwt").send(port);
        assert!(r.upstream().is_none(), "{}", r.text());
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"Unauthorized"}"#));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.header("content-type"), Some(JSON_UTF8));
    });

    // jwt (priority 1450) runs before key-auth (1250).
    cases.run("AND jwt + key-auth, both valid -> the last (key-auth) sets the identity", || {
        let r = get("/jwt-and-key", &alice_hs256()).header("apikey", ALICE.key()).send(port);
        assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    cases.run("AND jwt + key-auth, token only -> 401 No API key found in request", || {
        let r = get("/jwt-and-key", &alice_hs256()).send(port);
        assert_rejected(&r, "No API key found in request", "Key");
    });
    cases.run("AND jwt + key-auth, key only -> 401 from jwt", || {
        let r = Request::get("/jwt-and-key").header("apikey", ALICE.key()).send(port);
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"Unauthorized"}"#));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    });
    cases.run("OR jwt + key-auth, both valid -> the first in priority order (jwt) wins", || {
        let r = get("/jwt-or-key", &alice_hs256()).header("apikey", ALICE.key()).send(port);
        assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.jwt_key()));
    });
    cases.run("OR jwt + key-auth, key only -> key-auth's identity", || {
        let r = Request::get("/jwt-or-key").header("apikey", ALICE.key()).send(port);
        assert_seen(&r.expect_upstream(), &Seen::authenticated(&ALICE, ALICE.key_id()));
    });
    cases.run("OR jwt + key-auth, bad token and no key -> anonymous", || {
        let r = get("/jwt-or-key", "not.a.token").send(port);
        assert_seen(&r.expect_upstream(), &Seen::anonymous(&ANONYMOUS));
    });
    cases.finish();
}

const CACHE_HIT: &str = "wasmcustom.consumer_auth_jwt_cache_total.outcome.hit";
const CACHE_MISS: &str = "wasmcustom.consumer_auth_jwt_cache_total.outcome.miss";

/// The verified-token cache on the real Envoy, with consumers from a store fed by a remote
/// source: repeated tokens are hits (counted in Envoy's stats); `exp` is judged on a hit by
/// Envoy's clock; a rotated or removed key stops a cached token on the first request after the
/// new generation is served.
#[test]
fn verified_tokens_are_cached_until_they_expire_or_their_key_changes() {
    let keys = JwtKeys::generate().expect("keys");
    let rotated = JwtKeys::generate().expect("keys");
    let upstream = EchoServer::start();
    let source = consumer_auth_e2e::source::DocumentServer::start();
    let consumers = |keys: &JwtKeys| jwt_instance(keys, json!([]))["consumers"].clone();
    source.set_consumers(&consumers(&keys));
    let bootstrap = Bootstrap::new(upstream.port)
        .static_cluster("consumer_source", source.port)
        .store_service(json!({ "store": { "name": "main", "source": {
            "upstream": "consumer_source", "authority": "consumers.internal", "path": "/consumers.json",
            "refresh_seconds": 1, "timeout_ms": 5000
        } } }))
        .route(
            "/jwt",
            [json!({ "consumer_store": "main", "plugins": [plugin("jwt", json!({ "claims_to_verify": ["exp"] }))] })],
        );
    let envoy = Envoy::start(&bootstrap);
    let get = |token: &str| Request::get("/jwt").header("Authorization", &bearer(token));
    let within = std::time::Duration::from_secs(10);
    let rs = keys.rs256(&json!({ "iss": RS256_KEY, "exp": now() + 600 }));
    envoy.wait_until(&get(&rs), within, |r| r.status == 200);
    let counts = || {
        envoy.await_metrics_flush();
        (envoy.stat(CACHE_HIT), envoy.stat(CACHE_MISS))
    };

    // repeated: hits, each answered as the first was
    let (hits, misses) = counts();
    for _ in 0..20 {
        assert_seen(&get(&rs).send(envoy.port).expect_upstream(), &Seen::authenticated(&ALICE, RS256_KEY));
    }
    let (hits_after, misses_after) = counts();
    // Envoy runs a worker per CPU, each with its own cache: at most one miss per worker
    assert!(hits_after - hits >= 18, "hits {hits} -> {hits_after}, misses {misses} -> {misses_after}");

    // exp judged on every hit, by Envoy's clock
    let exp = now() + 2;
    let es = keys.es256(&json!({ "iss": ES256_KEY, "exp": exp }));
    for _ in 0..3 {
        assert_seen(&get(&es).send(envoy.port).expect_upstream(), &Seen::authenticated(&ALICE, ES256_KEY));
    }
    while now() <= exp {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (hits, _) = counts();
    let r = get(&es).send(envoy.port);
    assert_eq!((r.status, r.text().as_str()), (401, r#"{"exp":"token expired"}"#));
    assert!(counts().0 > hits, "the expired token was refused on a hit");

    // the RS256 key rotated: once the new generation is served (a token of the new key passes),
    // the cached token is refused on the very next request
    let new_token = rotated.rs256(&json!({ "iss": RS256_KEY, "exp": now() + 600 }));
    let mut next = consumers(&keys);
    let alice = next.as_array_mut().unwrap().iter_mut().find(|c| c["username"] == ALICE.username).unwrap();
    for secret in alice["jwt_secrets"].as_array_mut().unwrap() {
        if secret["key"] == RS256_KEY {
            secret["rsa_public_key"] = json!(rotated.rsa_pem());
        }
    }
    source.set_consumers(&next);
    envoy.wait_until(&get(&new_token), within, |r| r.status == 200);
    for _ in 0..4 {
        let r = get(&rs).send(envoy.port);
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"Invalid signature"}"#));
    }

    // the key removed
    let alice = next.as_array_mut().unwrap().iter_mut().find(|c| c["username"] == ALICE.username).unwrap();
    alice["jwt_secrets"].as_array_mut().unwrap().retain(|s| s["key"] != RS256_KEY);
    source.set_consumers(&next);
    envoy.wait_until(&get(&new_token), within, |r| r.status == 401);
    for token in [&rs, &new_token] {
        let r = get(token).send(envoy.port);
        assert_eq!((r.status, r.text().as_str()), (401, r#"{"message":"No credentials found for given 'iss'"}"#));
    }
}

//! jwt (BEHAVIOUR.md §B8) through the real .wasm: token collection, every message in Kong's order
//! with its exact body and challenge, every algorithm (keys generated here, tokens signed here),
//! registered claims against the host clock, and AND/OR with key-auth.

use std::time::{Duration, UNIX_EPOCH};

use crate::support::b64url as b64;
use crate::support::*;
use base64::Engine;
use serde_json::Value;

const HS_SECRET: &str = "alice-jwt-secret";

/// A token for the credential `key`, signed with `alg`.
pub(crate) fn token(alg: &str, key: &str, extra: Value) -> String {
    let mut claims = json!({"iss": key});
    if let (Some(c), Value::Object(e)) = (claims.as_object_mut(), extra) {
        c.extend(e);
    }
    jws(&json!({"alg": alg, "typ": "JWT"}), &claims, alg, HS_SECRET.as_bytes())
}

/// The credential key used for `alg` in [`jdoc`].
pub(crate) fn key_for(alg: &str) -> String {
    if alg == "HS256" {
        "alice-issuer".to_string()
    } else {
        format!("alice-{alg}")
    }
}

/// The standard consumers, with one jwt secret per algorithm on alice and one HS256 on bob.
pub(crate) fn consumers_with_jwt() -> Value {
    let mut c = consumers();
    let secrets: Vec<Value> = ALGORITHMS
        .iter()
        .map(|alg| {
            let mut s = json!({"key": key_for(alg), "algorithm": alg});
            match &alg[..2] {
                "HS" => s["secret"] = json!(HS_SECRET),
                "RS" | "PS" => s["rsa_public_key"] = json!(rsa_pem(&keys().rsa)),
                _ if *alg == "ES256" => s["rsa_public_key"] = json!(p256_pem()),
                _ if *alg == "ES384" => s["rsa_public_key"] = json!(p384_pem()),
                _ => s["rsa_public_key"] = json!(ed25519_pem()),
            }
            s
        })
        .collect();
    c[0]["jwt_secrets"] = Value::Array(secrets);
    c[1]["jwt_secrets"] = json!([{"key": "bob-issuer", "secret": "bob-jwt-secret"}]);
    c
}

fn jdoc(plugins: Value) -> String {
    json!({"consumers": consumers_with_jwt(), "plugins": plugins}).to_string()
}

fn jwt(config: Value) -> Value {
    json!([{"name": "jwt", "config": config}])
}

fn run(plugins: Value, req: Request) -> Exchange {
    let mut h = host();
    let f = h.configure(&jdoc(plugins)).unwrap_or_else(|e| panic!("configuration refused: {e}"));
    checked(h.send(&[f], req))
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A refusal with exactly `body` and the invalid_token challenge.
fn refused_exactly(ex: &Exchange, body: &str) {
    assert!(ex.upstream.is_none(), "went upstream, expected {body}");
    assert_eq!(ex.status(), 401, "{}", ex.body_str());
    assert_eq!(ex.body_str(), body);
    assert_eq!(ex.local_header("content-type").as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"Bearer error="invalid_token""#), "{body}");
}

fn msg(m: &str) -> String {
    json!({"message": m}).to_string()
}

#[test]
fn no_token_is_unauthorized_with_a_bare_bearer_challenge() {
    let ex = run(jwt(json!({})), Request::get("/").request_id(Some("r-1")));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.body_str(), r#"{"message":"Unauthorized"}"#, "compact JSON, no request_id");
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("Bearer"));
    // other schemes and empty values are no token
    for req in [
        Request::get("/").header("authorization", "Basic YTpi"),
        Request::get("/").header("authorization", "BEARER x"),
        Request::get("/").header("authorization", "Bearer "),
        Request::get("/?jwt="),
        Request::get("/").header("cookie", "jwt=x"), // no cookie_names configured
    ] {
        let ex = run(jwt(json!({})), req);
        assert_eq!(ex.body_str(), r#"{"message":"Unauthorized"}"#);
    }
}

#[test]
fn realm_in_both_challenges() {
    let ex = run(jwt(json!({"realm": "api"})), Request::get("/"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"Bearer realm="api""#));
    let ex = run(jwt(json!({"realm": "api"})), Request::get("/?jwt=garbage"));
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(r#"Bearer realm="api", error="invalid_token""#));
}

#[test]
fn valid_token_sets_the_identity_and_goes_upstream_unchanged() {
    let t = token("HS256", "alice-issuer", json!({}));
    let ex = run(jwt(json!({})), Request::get("/").header("authorization", &bearer(&t)));
    assert_upstream_as(&ex, "alice", Some("alice-issuer"));
    assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ALICE_ID));
    assert_eq!(ex.upstream_header("authorization"), Some(bearer(&t)), "no hide_credentials for jwt");
    let t = jws(&json!({"alg": "HS256"}), &json!({"iss": "bob-issuer"}), "HS256", b"bob-jwt-secret");
    let ex = run(jwt(json!({})), Request::get("/").header("authorization", &bearer(&t)));
    assert_upstream_as(&ex, "bob", Some("bob-issuer"));
}

#[test]
fn tokens_from_query_cookies_and_headers() {
    let t = token("HS256", "alice-issuer", json!({}));
    let config = json!({"uri_param_names": ["jwt", "token"], "cookie_names": ["session", "jwt_cookie"], "header_names": ["authorization", "x_token"]});
    let cases = vec![
        ("query jwt", Request::get(&format!("/?a=1&jwt={t}"))),
        ("query token", Request::get(&format!("/?token={t}"))),
        ("cookie", Request::get("/").header("cookie", &format!("a=1; session={t}; b=2"))),
        (
            "second cookie name, second Cookie header",
            Request::get("/").header("cookie", "a=1").header("cookie", &format!("jwt_cookie={t}")),
        ),
        ("authorization", Request::get("/").header("authorization", &bearer(&t))),
        ("lowercase bearer", Request::get("/").header("authorization", &format!("bearer {t}"))),
        ("custom header, underscore as dash", Request::get("/").header("x-token", &bearer(&t))),
        (
            "the same token everywhere counts once",
            Request::get(&format!("/?jwt={t}&token={t}&jwt={t}"))
                .header("authorization", &bearer(&t))
                .header("cookie", &format!("session={t}")),
        ),
        ("empty values are ignored", Request::get(&format!("/?jwt=&token={t}")).header("cookie", "session=")),
    ];
    for (what, req) in cases {
        let ex = run(jwt(config.clone()), req);
        assert_eq!(ex.status(), 200, "{what}: {}", ex.body_str());
        assert_upstream_as(&ex, "alice", Some("alice-issuer"));
    }
    // a header name not configured is not looked at
    let ex = run(jwt(json!({"header_names": ["x-token"]})), Request::get("/").header("authorization", &bearer(&t)));
    assert_eq!(ex.body_str(), r#"{"message":"Unauthorized"}"#);
}

#[test]
fn distinct_tokens_are_refused() {
    let a = token("HS256", "alice-issuer", json!({}));
    let b = token("HS256", "alice-issuer", json!({"x": 1}));
    let config = json!({"cookie_names": ["jwt"]});
    for req in [
        Request::get(&format!("/?jwt={a}")).header("authorization", &bearer(&b)),
        Request::get(&format!("/?jwt={a}&jwt={b}")),
        Request::get("/").header("cookie", &format!("jwt={a}")).header("authorization", &bearer(&b)),
        Request::get(&format!("/?jwt={a}")).header("cookie", &format!("jwt={b}")),
    ] {
        refused_exactly(&run(jwt(config.clone()), req), &msg("Multiple tokens provided"));
    }
    // only the first Authorization header counts (Kong's header table)
    let ex = run(
        jwt(json!({})),
        Request::get("/").header("authorization", &bearer(&a)).header("authorization", &bearer(&b)),
    );
    assert_upstream_as(&ex, "alice", Some("alice-issuer"));
}

#[test]
fn a_bare_query_flag_is_unrecognizable() {
    refused_exactly(&run(jwt(json!({})), Request::get("/?jwt")), &msg("Unrecognizable token"));
    let t = token("HS256", "alice-issuer", json!({}));
    refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt&jwt={t}"))), &msg("Multiple tokens provided"));
}

#[test]
fn bad_tokens_in_kongs_order() {
    let h = |v: Value| b64(v.to_string().as_bytes());
    let hs = json!({"alg": "HS256"});
    let claims = json!({"iss": "alice-issuer"});
    let cases: Vec<(String, &str)> = vec![
        ("garbage".into(), "Bad token; invalid JSON"),
        ("a.b".into(), "Bad token; invalid JSON"),
        (format!("{}.{}.", b64(b"{nope"), h(claims.clone())), "Bad token; invalid JSON"),
        (format!("{}.{}.", h(hs.clone()), b64(b"[1,")), "Bad token; invalid JSON"),
        (format!("!!!.{}.", h(claims.clone())), "Bad token; invalid JSON"),
        (format!("{}.{}.", h(json!({"typ": "JWT"})), h(claims.clone())), "Bad token; invalid alg"),
        (format!("{}.{}.", h(json!({"alg": "none"})), h(claims.clone())), "Bad token; invalid alg"),
        (format!("{}.{}.", h(json!({"alg": "ES512"})), h(claims.clone())), "Bad token; invalid alg"),
        (format!("{}.{}.", h(json!({"alg": "hs256"})), h(claims.clone())), "Bad token; invalid alg"),
        (format!("{}.{}.", h(json!({"alg": ["HS256"]})), h(claims.clone())), "Bad token; invalid alg"),
        (format!("{}.{}.", h(json!("HS256")), h(claims.clone())), "Bad token; invalid alg"),
        (format!("{}.{}.", h(hs.clone()), h(json!([claims.clone()]))), "Bad token; invalid claims"),
        (format!("{}.{}.", h(hs.clone()), h(json!("claims"))), "Bad token; invalid claims"),
        (format!("{}.{}.!!", h(hs.clone()), h(claims.clone())), "Bad token; invalid signature"),
        (format!("{}.{}.a", h(hs.clone()), h(claims.clone())), "Bad token; invalid signature"),
        // `alg: none` with an empty signature never gets further
        (format!("{}.{}.", h(json!({"alg": "none"})), h(claims.clone())), "Bad token; invalid alg"),
    ];
    for (t, expected) in cases {
        refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={t}"))), &msg(expected));
    }
}

#[test]
fn the_key_claim() {
    let hs = |header: Value, claims: Value| jws(&header, &claims, "HS256", HS_SECRET.as_bytes());
    let alg = json!({"alg": "HS256"});
    let cases: Vec<(Value, String, String)> = vec![
        (json!({}), hs(alg.clone(), json!({"sub": "x"})), msg("No mandatory 'iss' in claims")),
        (json!({}), hs(alg.clone(), json!({"iss": false})), msg("No mandatory 'iss' in claims")),
        (json!({}), hs(alg.clone(), json!({"iss": ""})), msg("Invalid 'iss' in claims")),
        (json!({}), hs(alg.clone(), json!({"iss": "nobody"})), msg("No credentials found for given 'iss'")),
        (json!({}), hs(alg.clone(), json!({"iss": 42})), msg("No credentials found for given 'iss'")),
        (json!({}), hs(alg.clone(), json!({"iss": null})), msg("No credentials found for given 'iss'")),
        (
            json!({"key_claim_name": "kid"}),
            hs(alg.clone(), json!({"iss": "alice-issuer"})),
            msg("No mandatory 'kid' in claims"),
        ),
        (
            json!({"key_claim_name": "kid"}),
            hs(json!({"alg": "HS256", "kid": "nobody"}), json!({})),
            msg("No credentials found for given 'kid'"),
        ),
    ];
    for (config, t, body) in cases {
        refused_exactly(&run(jwt(config), Request::get(&format!("/?jwt={t}"))), &body);
    }
    // looked up in the claims, then in the JWT header
    let from_header = hs(json!({"alg": "HS256", "kid": "alice-issuer"}), json!({}));
    assert_upstream_as(
        &run(jwt(json!({"key_claim_name": "kid"})), Request::get(&format!("/?jwt={from_header}"))),
        "alice",
        Some("alice-issuer"),
    );
    let claims_first = hs(json!({"alg": "HS256", "kid": "nobody"}), json!({"kid": "alice-issuer"}));
    assert_upstream_as(
        &run(jwt(json!({"key_claim_name": "kid"})), Request::get(&format!("/?jwt={claims_first}"))),
        "alice",
        Some("alice-issuer"),
    );
}

#[test]
fn the_header_alg_must_be_the_credentials_algorithm() {
    // HS512 token for the HS256 credential
    let t = jws(&json!({"alg": "HS512"}), &json!({"iss": "alice-issuer"}), "HS512", HS_SECRET.as_bytes());
    refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={t}"))), &msg("Invalid algorithm"));
    // algorithm confusion: an HS256 token keyed with the RSA public key PEM, presented to the
    // RS256 credential, is refused before any HMAC is computed
    let pem = rsa_pem(&keys().rsa);
    let t = jws(&json!({"alg": "HS256"}), &json!({"iss": "alice-RS256"}), "HS256", pem.as_bytes());
    refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={t}"))), &msg("Invalid algorithm"));
    let t = jws(&json!({"alg": "HS256"}), &json!({"iss": "alice-ES256"}), "HS256", p256_pem().as_bytes());
    refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={t}"))), &msg("Invalid algorithm"));
    // RS256 token for PS256 credential (same key type, other algorithm)
    let t = jws(&json!({"alg": "RS256"}), &json!({"iss": "alice-PS256"}), "RS256", b"");
    refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={t}"))), &msg("Invalid algorithm"));
}

#[test]
fn every_algorithm_verifies_and_rejects_a_forged_signature() {
    for alg in ALGORITHMS {
        let key = key_for(alg);
        let t = token(alg, &key, json!({}));
        let ex = run(jwt(json!({})), Request::get("/").header("authorization", &bearer(&t)));
        assert_eq!(ex.status(), 200, "{alg}: {}", ex.body_str());
        assert_upstream_as(&ex, "alice", Some(&key));
        // claims changed after signing
        let (head, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let tampered = format!("{head}.{}.{sig}", b64(json!({"iss": key, "admin": true}).to_string().as_bytes()));
        refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={tampered}"))), &msg("Invalid signature"));
        // a signature of the right shape by another key
        let other = match &alg[..2] {
            "HS" => jws(&json!({"alg": alg}), &json!({"iss": key}), alg, b"another secret"),
            "RS" | "PS" => {
                use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
                let input = format!(
                    "{}.{}",
                    b64(json!({"alg": alg}).to_string().as_bytes()),
                    b64(json!({"iss": key}).to_string().as_bytes())
                );
                let k = keys().rsa_other.clone();
                let sig = match alg {
                    "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k).sign(input.as_bytes()).to_vec(),
                    "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(k).sign(input.as_bytes()).to_vec(),
                    "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(k).sign(input.as_bytes()).to_vec(),
                    "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(k)
                        .sign_with_rng(&mut rand::rngs::OsRng, input.as_bytes())
                        .to_vec(),
                    "PS384" => rsa::pss::SigningKey::<sha2::Sha384>::new(k)
                        .sign_with_rng(&mut rand::rngs::OsRng, input.as_bytes())
                        .to_vec(),
                    _ => rsa::pss::SigningKey::<sha2::Sha512>::new(k)
                        .sign_with_rng(&mut rand::rngs::OsRng, input.as_bytes())
                        .to_vec(),
                };
                format!("{input}.{}", b64(&sig))
            }
            "Ed" => {
                use ed25519_dalek::Signer as _;
                let input = format!(
                    "{}.{}",
                    b64(json!({"alg": alg}).to_string().as_bytes()),
                    b64(json!({"iss": key}).to_string().as_bytes())
                );
                format!("{input}.{}", b64(&keys().ed25519_other.sign(input.as_bytes()).to_bytes()))
            }
            _ => {
                // ES: a signature of zeroes and one of the wrong length
                let input = format!(
                    "{}.{}",
                    b64(json!({"alg": alg}).to_string().as_bytes()),
                    b64(json!({"iss": key}).to_string().as_bytes())
                );
                let len = if alg == "ES256" { 64 } else { 96 };
                refused_exactly(
                    &run(jwt(json!({})), Request::get(&format!("/?jwt={input}.{}", b64(&vec![1u8; len - 1])))),
                    &msg("Invalid signature"),
                );
                format!("{input}.{}", b64(&vec![0u8; len]))
            }
        };
        refused_exactly(&run(jwt(json!({})), Request::get(&format!("/?jwt={other}"))), &msg("Invalid signature"));
    }
}

#[test]
fn an_rsa_key_in_pkcs1_pem_works_too() {
    let mut c = consumers();
    c[2]["jwt_secrets"] =
        json!([{"key": "carol-rs", "algorithm": "RS256", "rsa_public_key": rsa_pkcs1_pem(&keys().rsa)}]);
    let mut h = host();
    let f = h.configure(&json!({"consumers": c, "plugins": jwt(json!({}))}).to_string()).unwrap();
    let t = token("RS256", "carol-rs", json!({}));
    assert_upstream_as(&checked(h.send(&[f], Request::get(&format!("/?jwt={t}")))), "carol", Some("carol-rs"));
}

/// RSA keys of other lengths than the 2048 bits above, through the .wasm (whose column sums run
/// on SIMD128, where the native unit tests run the same sums as scalar code): 1025 bits (EM one
/// octet shorter than n), 3072 and 4096. RS256 and PS256 signatures verify; each with a bit
/// flipped (at the front, middle and end) does not.
#[test]
fn rsa_keys_of_other_lengths_verify_and_refuse() {
    use rand::SeedableRng as _;
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3072);
    for bits in [1025, 3072, 4096] {
        let k = rsa::RsaPrivateKey::new(&mut rng, bits).unwrap();
        let mut c = consumers();
        c[2]["jwt_secrets"] = json!([
            {"key": "carol-rs", "algorithm": "RS256", "rsa_public_key": rsa_pem(&k)},
            {"key": "carol-ps", "algorithm": "PS256", "rsa_public_key": rsa_pkcs1_pem(&k)},
        ]);
        let mut h = host();
        let f = h.configure(&json!({"consumers": c, "plugins": jwt(json!({}))}).to_string()).unwrap();
        for (alg, key) in [("RS256", "carol-rs"), ("PS256", "carol-ps")] {
            let input = format!(
                "{}.{}",
                b64(json!({"alg": alg}).to_string().as_bytes()),
                b64(json!({"iss": key}).to_string().as_bytes())
            );
            let sig = if alg == "RS256" {
                rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.clone()).sign(input.as_bytes()).to_vec()
            } else {
                rsa::pss::SigningKey::<sha2::Sha256>::new(k.clone()).sign_with_rng(&mut rng, input.as_bytes()).to_vec()
            };
            let t = format!("{input}.{}", b64(&sig));
            assert_upstream_as(&checked(h.send(&[f], Request::get(&format!("/?jwt={t}")))), "carol", Some(key));
            for i in [0, sig.len() / 2, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[i] ^= 0x10;
                let t = format!("{input}.{}", b64(&bad));
                let ex = checked(h.send(&[f], Request::get(&format!("/?jwt={t}"))));
                refused_exactly(&ex, &msg("Invalid signature"));
            }
        }
    }
}

#[test]
fn secret_is_base64() {
    let raw_secret = b"\x00\x01binary secret\xff";
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw_secret);
    let mut c = consumers();
    c[2]["jwt_secrets"] =
        json!([{"key": "carol-b64", "secret": encoded}, {"key": "carol-plain", "secret": "not base64!"}]);
    let doc = |config: Value| json!({"consumers": c, "plugins": jwt(config)}).to_string();
    let mut h = host();
    let on = h.configure(&doc(json!({"secret_is_base64": true}))).unwrap();
    let off = h.configure(&doc(json!({}))).unwrap();
    let decoded = jws(&json!({"alg": "HS256"}), &json!({"iss": "carol-b64"}), "HS256", raw_secret);
    let literal = jws(&json!({"alg": "HS256"}), &json!({"iss": "carol-b64"}), "HS256", encoded.as_bytes());
    assert_upstream_as(&checked(h.send(&[on], Request::get(&format!("/?jwt={decoded}")))), "carol", Some("carol-b64"));
    refused_exactly(&checked(h.send(&[on], Request::get(&format!("/?jwt={literal}")))), &msg("Invalid signature"));
    assert_upstream_as(&checked(h.send(&[off], Request::get(&format!("/?jwt={literal}")))), "carol", Some("carol-b64"));
    refused_exactly(&checked(h.send(&[off], Request::get(&format!("/?jwt={decoded}")))), &msg("Invalid signature"));
    // a secret that is not base64, with secret_is_base64
    let t = jws(&json!({"alg": "HS256"}), &json!({"iss": "carol-plain"}), "HS256", b"not base64!");
    refused_exactly(&checked(h.send(&[on], Request::get(&format!("/?jwt={t}")))), &msg("Invalid key/secret"));
    // base64url secrets decode too (Kong maps - and _)
    let mut c = consumers();
    c[2]["jwt_secrets"] =
        json!([{"key": "carol-url", "secret": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw_secret)}]);
    let f =
        h.configure(&json!({"consumers": c, "plugins": jwt(json!({"secret_is_base64": true}))}).to_string()).unwrap();
    let t = jws(&json!({"alg": "HS256"}), &json!({"iss": "carol-url"}), "HS256", raw_secret);
    assert_upstream_as(&checked(h.send(&[f], Request::get(&format!("/?jwt={t}")))), "carol", Some("carol-url"));
}

#[test]
fn secret_is_base64_makes_public_keys_unusable_as_in_kong() {
    let t = token("RS256", "alice-RS256", json!({}));
    refused_exactly(
        &run(jwt(json!({"secret_is_base64": true})), Request::get(&format!("/?jwt={t}"))),
        &msg("Invalid key/secret"),
    );
}

#[test]
fn registered_claims_against_the_host_clock() {
    let config = json!({"claims_to_verify": ["exp", "nbf"]});
    let t = |claims: Value| token("HS256", "alice-issuer", claims);
    let now = NOW as i64;
    let cases: Vec<(Value, Option<Value>)> = vec![
        (json!({"exp": now + 10, "nbf": now - 10}), None),
        (json!({"exp": now + 10, "nbf": now}), None),
        (json!({"exp": now, "nbf": now - 10}), Some(json!({"exp": "token expired"}))),
        (json!({"exp": now - 1, "nbf": now - 10}), Some(json!({"exp": "token expired"}))),
        (json!({"exp": now + 10, "nbf": now + 1}), Some(json!({"nbf": "token not valid yet"}))),
        (json!({"exp": now - 1, "nbf": now + 1}), Some(json!({"exp": "token expired", "nbf": "token not valid yet"}))),
        (json!({"exp": "tomorrow", "nbf": now}), Some(json!({"exp": "must be a number"}))),
        (json!({"nbf": now}), Some(json!({"exp": "must be a number"}))),
        (json!({}), Some(json!({"exp": "must be a number", "nbf": "must be a number"}))),
        (json!({"exp": (now + 10) as f64 + 0.5, "nbf": now}), None),
    ];
    for (claims, expected) in cases {
        let ex = run(jwt(config.clone()), Request::get(&format!("/?jwt={}", t(claims.clone()))));
        match expected {
            None => assert_upstream_as(&ex, "alice", Some("alice-issuer")),
            Some(body) => refused_exactly(&ex, &body.to_string()),
        }
    }
    // without claims_to_verify nothing is checked
    assert_upstream_as(
        &run(jwt(json!({})), Request::get(&format!("/?jwt={}", t(json!({"exp": 1}))))),
        "alice",
        Some("alice-issuer"),
    );
    // the clock is the host's
    let mut h = host();
    let f = h.configure(&jdoc(jwt(json!({"claims_to_verify": ["exp"]})))).unwrap();
    let tok = t(json!({"exp": now + 60}));
    assert_upstream_as(&checked(h.send(&[f], Request::get(&format!("/?jwt={tok}")))), "alice", Some("alice-issuer"));
    h.advance(Duration::from_secs(60));
    refused_exactly(&checked(h.send(&[f], Request::get(&format!("/?jwt={tok}")))), r#"{"exp":"token expired"}"#);
    h.set_time(UNIX_EPOCH + Duration::from_secs(NOW));
    assert_upstream_as(&checked(h.send(&[f], Request::get(&format!("/?jwt={tok}")))), "alice", Some("alice-issuer"));
}

#[test]
fn maximum_expiration() {
    let config = json!({"claims_to_verify": ["exp"], "maximum_expiration": 3600});
    let t = |exp: u64| token("HS256", "alice-issuer", json!({"exp": exp}));
    assert_upstream_as(
        &run(jwt(config.clone()), Request::get(&format!("/?jwt={}", t(NOW + 3600)))),
        "alice",
        Some("alice-issuer"),
    );
    refused_exactly(
        &run(jwt(config.clone()), Request::get(&format!("/?jwt={}", t(NOW + 3601)))),
        r#"{"exp":"exceeds maximum allowed expiration"}"#,
    );
    // an expired token says expired, not exceeded
    refused_exactly(&run(jwt(config), Request::get(&format!("/?jwt={}", t(NOW - 1)))), r#"{"exp":"token expired"}"#);
}

#[test]
fn preflight() {
    let options = || Request::new("OPTIONS", "/");
    let ex = run(jwt(json!({"run_on_preflight": false})), options());
    assert_eq!(ex.status(), 200);
    assert!(ex.upstream.is_some());
    assert_eq!(run(jwt(json!({})), options()).status(), 401);
}

#[test]
fn or_mode_falls_back_to_anonymous_on_every_failure() {
    let config = json!({"anonymous": "anonymous_users", "claims_to_verify": ["exp"]});
    for req in [
        Request::get("/"),
        Request::get("/?jwt=garbage"),
        Request::get(&format!("/?jwt={}", token("HS256", "nobody", json!({"exp": NOW + 10})))),
        Request::get(&format!("/?jwt={}", token("HS256", "alice-issuer", json!({"exp": NOW - 10})))),
    ] {
        let ex = run(jwt(config.clone()), req);
        assert_upstream_as(&ex, "anonymous_users", None);
        assert_eq!(ex.local_header("www-authenticate"), None);
    }
    let ok = token("HS256", "alice-issuer", json!({"exp": NOW + 10}));
    assert_upstream_as(&run(jwt(config), Request::get(&format!("/?jwt={ok}"))), "alice", Some("alice-issuer"));
}

#[test]
fn malformed_input_never_traps() {
    let h = |v: &str| b64(v.as_bytes());
    let long = "a".repeat(100_000);
    let tokens: Vec<String> = vec![
        format!("{}.{}.{}", h(&"[".repeat(10_000)), h("{}"), ""),
        format!("{}.{}.{}", h(r#"{"alg":"RS256"}"#), h(r#"{"iss":"alice-RS256"}"#), b64(&[0xff; 256])),
        format!("{}.{}.{}", h(r#"{"alg":"RS256"}"#), h(r#"{"iss":"alice-RS256"}"#), b64(&[0xff; 4096])),
        format!("{}.{}.{}", h(r#"{"alg":"ES256"}"#), h(r#"{"iss":"alice-ES256"}"#), b64(&[0xff; 64])),
        format!("{}.{}.{}", h(r#"{"alg":"EdDSA"}"#), h(r#"{"iss":"alice-EdDSA"}"#), b64(&[0xff; 64])),
        format!("{}.{}.{}", h(r#"{"alg":"PS256"}"#), h(r#"{"iss":"alice-PS256"}"#), ""),
        format!("{}.{}.x", h(r#"{"alg":"HS256"}"#), h(&format!(r#"{{"iss":"{long}"}}"#))),
        "...".into(),
        ".".repeat(10_000),
        long.clone(),
    ];
    for t in tokens {
        let ex = run(jwt(json!({})), Request::get(&format!("/?jwt={t}")));
        assert_eq!(ex.status(), 401);
    }
    let ex = run(
        jwt(json!({"cookie_names": ["jwt"]})),
        Request::get("/")
            .header_bytes("authorization", b"Bearer \xff\xfe")
            .header_bytes("cookie", b"\xff=\xff;;;=;jwt"),
    );
    assert_eq!(ex.status(), 401);
}

#[test]
fn tokens_and_secrets_are_never_logged() {
    let t = token("HS256", "alice-issuer", json!({}));
    let sig = t.rsplit_once('.').unwrap().1.to_string();
    let ok = run(jwt(json!({})), Request::get(&format!("/?jwt={t}")));
    let bad = run(jwt(json!({})), Request::get(&format!("/?jwt={t}x")));
    for ex in [ok, bad] {
        for line in &ex.logs {
            assert!(!line.message.contains(&sig) && !line.message.contains(HS_SECRET), "{}", line.message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AND / OR with key-auth (jwt 1450 runs before key-auth 1250).

/// jwt: bob's token; key-auth: alice's key.
fn mixed(j: Cred, key: Cred) -> Request {
    let mut r = Request::get("/");
    let bob = jws(&json!({"alg": "HS256"}), &json!({"iss": "bob-issuer"}), "HS256", b"bob-jwt-secret");
    match j {
        Cred::Good => r = r.header("authorization", &bearer(&bob)),
        Cred::Bad => r = r.header("authorization", &bearer(&format!("{bob}x"))),
        Cred::None => {}
    }
    match key {
        Cred::Good => r = r.header("apikey", "alice-key"),
        Cred::Bad => r = r.header("apikey", "nope"),
        Cred::None => {}
    }
    r
}

#[test]
fn and_table_with_key_auth() {
    let plugins = [plugin_entry("jwt", None), plugin_entry("key-auth", None)];
    let kong_error = |m: &str| json!({"message": m, "request_id": "r"}).to_string();
    type Expected<'a> = Result<(&'a str, &'a str), (String, &'a str)>;
    let table: Vec<(Cred, Cred, Expected)> = vec![
        // all valid: the last in priority (key-auth) sets the identity
        (Cred::Good, Cred::Good, Ok(("alice", ALICE_KEY_ID))),
        (Cred::Good, Cred::None, Err((kong_error("No API key found in request"), "Key"))),
        (Cred::Good, Cred::Bad, Err((kong_error("Unauthorized"), "Key"))),
        (Cred::None, Cred::Good, Err((msg("Unauthorized"), "Bearer"))),
        (Cred::Bad, Cred::Good, Err((msg("Invalid signature"), r#"Bearer error="invalid_token""#))),
        (Cred::None, Cred::None, Err((msg("Unauthorized"), "Bearer"))),
        (Cred::Bad, Cred::Bad, Err((msg("Invalid signature"), r#"Bearer error="invalid_token""#))),
    ];
    for (j, key, expected) in table {
        let ex = both_ways(jdoc, &plugins, || mixed(j, key));
        match expected {
            Ok((user, cred)) => assert_upstream_as(&ex, user, Some(cred)),
            Err((body, challenge)) => {
                assert_eq!(ex.status(), 401, "{j:?} {key:?}");
                assert_eq!(ex.body_str(), body, "{j:?} {key:?}");
                assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(challenge), "{j:?} {key:?}");
            }
        }
    }
}

#[test]
fn or_table_with_key_auth() {
    let plugins = [plugin_entry("jwt", Some("anonymous_users")), plugin_entry("key-auth", Some("anonymous_users"))];
    type Winner<'a> = (&'a str, Option<&'a str>);
    let table: Vec<(Cred, Cred, Winner)> = vec![
        // all valid: the first in priority (jwt) wins
        (Cred::Good, Cred::Good, ("bob", Some("bob-issuer"))),
        (Cred::Good, Cred::None, ("bob", Some("bob-issuer"))),
        (Cred::Good, Cred::Bad, ("bob", Some("bob-issuer"))),
        (Cred::None, Cred::Good, ("alice", Some(ALICE_KEY_ID))),
        (Cred::Bad, Cred::Good, ("alice", Some(ALICE_KEY_ID))),
        (Cred::None, Cred::None, ("anonymous_users", None)),
        (Cred::Bad, Cred::Bad, ("anonymous_users", None)),
    ];
    for (j, key, (user, cred)) in table {
        let ex = both_ways(jdoc, &plugins, || mixed(j, key));
        assert_upstream_as(&ex, user, cred);
        assert_eq!(ex.local_header("www-authenticate"), None);
    }
}

#[test]
fn mixed_and_or_with_key_auth() {
    // jwt optional, key-auth mandatory: key-auth runs after a successful jwt and its identity wins
    let plugins = [plugin_entry("jwt", Some("anonymous_users")), plugin_entry("key-auth", None)];
    assert_upstream_as(&both_ways(jdoc, &plugins, || mixed(Cred::Good, Cred::Good)), "alice", Some(ALICE_KEY_ID));
    assert_refused(&both_ways(jdoc, &plugins, || mixed(Cred::Good, Cred::None)), 401, "No API key found in request");
    // jwt mandatory, key-auth optional: key-auth skips after jwt established a credential
    let plugins = [plugin_entry("jwt", None), plugin_entry("key-auth", Some("anonymous_users"))];
    assert_upstream_as(&both_ways(jdoc, &plugins, || mixed(Cred::Good, Cred::Bad)), "bob", Some("bob-issuer"));
    assert_eq!(both_ways(jdoc, &plugins, || mixed(Cred::None, Cred::Good)).body_str(), msg("Unauthorized"));
}

/// One signed token has one spelling: the same bytes re-spelled with the standard alphabet, with
/// padding, or with stray trailing bits are refused with Kong's messages (a revocation or replay
/// list keyed by the token text cannot be sidestepped).
#[test]
fn a_token_respelled_is_refused() {
    let std_spelling = |segment: &str| segment.replace('-', "+").replace('_', "/");
    // Claims whose encoding has a `-` or `_`, and a signature with one (tried until both do).
    let (t, header, claims, sig) = (0..200)
        .find_map(|i| {
            let t = token("HS256", "alice-issuer", json!({"pad": "?".repeat(i % 3 + 1), "n": i}));
            let mut parts = t.split('.').map(str::to_string);
            let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
            let differs = |p: &str| p.contains('-') || p.contains('_');
            (differs(&c) && differs(&s)).then_some((t.clone(), h, c, s))
        })
        .expect("a token with - or _ in its claims and signature");
    let ex = run(jwt(json!({})), Request::get("/").header("authorization", &bearer(&t)));
    assert_upstream_as(&ex, "alice", Some("alice-issuer"));
    let cases = [
        (format!("{header}.{claims}.{}", std_spelling(&sig)), "Bad token; invalid signature"),
        (format!("{header}.{}.{sig}", std_spelling(&claims)), "Bad token; invalid JSON"),
        (format!("{header}.{claims}.{sig}="), "Bad token; invalid signature"),
        (format!("{header}=.{claims}.{sig}"), "Bad token; invalid JSON"),
        (format!("{header}.{claims}.{}", stray_bit(&sig)), "Bad token; invalid signature"),
    ];
    for (respelled, expected) in cases {
        let ex = run(jwt(json!({})), Request::get("/").header("authorization", &bearer(&respelled)));
        refused_exactly(&ex, &msg(expected));
    }
}

/// `segment` with a bit set in its last character that decoding drops: the same bytes.
fn stray_bit(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (head, last) = segment.split_at(segment.len() - 1);
    let index = ALPHABET.iter().position(|c| *c == last.as_bytes()[0]).unwrap();
    assert_eq!(index & 1, 0, "a 32-byte signature leaves the low bits of its last character unused");
    let respelled = format!("{head}{}", ALPHABET[index | 1] as char);
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    assert_eq!(engine.decode(&respelled).unwrap(), engine.decode(segment).unwrap());
    respelled
}

// ---------------------------------------------------------------------------------------------
// The verified-token cache (a consumer-auth addition: Kong verifies every time).

const CACHE_HIT: &str = "consumer_auth_jwt_cache_total.outcome.hit";
const CACHE_MISS: &str = "consumer_auth_jwt_cache_total.outcome.miss";

/// A host on which the filter counts metrics (it does on Envoy, which it recognises by this
/// property).
fn envoy_like_host() -> Host {
    let mut h = host();
    h.set_property("xds.node", b"\x0a\x04node");
    h
}

/// `token` with the first character of its signature changed (all of its bits count).
fn forge(token: &str) -> String {
    let at = token.rfind('.').unwrap() + 1;
    let first = if token[at..].starts_with('A') { "B" } else { "A" };
    format!("{}{first}{}", &token[..at], &token[at + 1..])
}

/// The counts as the host has them after a tick (the filter hands its counts over on the tick).
fn cache_counts(h: &mut Host) -> (u64, u64) {
    h.tick();
    (h.metric(CACHE_HIT).unwrap_or(0), h.metric(CACHE_MISS).unwrap_or(0))
}

#[test]
fn a_repeated_token_is_answered_from_the_cache_exactly_as_a_fresh_one() {
    let mut h = envoy_like_host();
    let f = h.configure(&jdoc(jwt(json!({})))).unwrap();
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        let i = i as u64;
        let tok = token(alg, &key_for(alg), json!({"exp": NOW + 3600}));
        let req = || Request::get("/").header("authorization", &bearer(&tok));
        let miss = checked(h.send(&[f], req()));
        assert_eq!(cache_counts(&mut h), (i, 2 * i + 1), "{alg}: the first request is a miss");
        let hit = checked(h.send(&[f], req()));
        assert_eq!(cache_counts(&mut h), (i + 1, 2 * i + 1), "{alg}: the second is a hit");
        assert_upstream_as(&hit, "alice", Some(&key_for(alg)));
        assert_eq!(miss.upstream.as_ref().map(|u| &u.headers), hit.upstream.as_ref().map(|u| &u.headers), "{alg}");
        // the same token with another signature is not the cached token
        let forged = forge(&tok);
        let ex = checked(h.send(&[f], Request::get("/").header("authorization", &bearer(&forged))));
        refused_exactly(&ex, &msg("Invalid signature"));
        assert_eq!(cache_counts(&mut h), (i + 1, 2 * i + 2), "{alg}: a forged signature is verified (and refused)");
    }
    // failures are not remembered: the forged tokens miss again
    let forged = forge(&token("RS256", &key_for("RS256"), json!({})));
    let before = cache_counts(&mut h);
    for _ in 0..2 {
        refused_exactly(
            &checked(h.send(&[f], Request::get("/").header("authorization", &bearer(&forged)))),
            &msg("Invalid signature"),
        );
    }
    assert_eq!(cache_counts(&mut h), (before.0, before.1 + 2));
}

#[test]
fn time_is_checked_on_every_hit() {
    let mut h = envoy_like_host();
    let f = h.configure(&jdoc(jwt(json!({"claims_to_verify": ["exp", "nbf"]})))).unwrap();
    let now = NOW as i64;
    let tok = token("ES256", &key_for("ES256"), json!({"exp": now + 60, "nbf": now + 30}));
    let send = |h: &mut Host| checked(h.send(&[f], Request::get(&format!("/?jwt={tok}"))));
    // verified, but not valid yet (the signature is remembered, the refusal is not)
    refused_exactly(&send(&mut h), r#"{"nbf":"token not valid yet"}"#);
    assert_eq!(cache_counts(&mut h), (0, 1));
    refused_exactly(&send(&mut h), r#"{"nbf":"token not valid yet"}"#);
    assert_eq!(cache_counts(&mut h), (1, 1));
    h.advance(Duration::from_secs(30));
    assert_upstream_as(&send(&mut h), "alice", Some(&key_for("ES256")));
    h.advance(Duration::from_secs(30));
    refused_exactly(&send(&mut h), r#"{"exp":"token expired"}"#);
    assert_eq!(cache_counts(&mut h), (3, 1), "every answer after the first came from the cache");
    // maximum_expiration too
    let mut h = envoy_like_host();
    let f = h.configure(&jdoc(jwt(json!({"claims_to_verify": ["exp"], "maximum_expiration": 60})))).unwrap();
    let tok = token("RS256", &key_for("RS256"), json!({"exp": now + 120}));
    let send = |h: &mut Host| checked(h.send(&[f], Request::get(&format!("/?jwt={tok}"))));
    refused_exactly(&send(&mut h), r#"{"exp":"exceeds maximum allowed expiration"}"#);
    h.advance(Duration::from_secs(60));
    assert_upstream_as(&send(&mut h), "alice", Some(&key_for("RS256")));
    assert_eq!(cache_counts(&mut h), (1, 1));
}

#[test]
fn a_new_configuration_starts_with_an_empty_cache() {
    let mut h = envoy_like_host();
    let f = h.configure(&jdoc(jwt(json!({})))).unwrap();
    let tok = token("RS256", &key_for("RS256"), json!({}));
    let req = || Request::get("/").header("authorization", &bearer(&tok));
    assert_upstream_as(&checked(h.send(&[f], req())), "alice", Some(&key_for("RS256")));
    assert_upstream_as(&checked(h.send(&[f], req())), "alice", Some(&key_for("RS256")));
    assert_eq!(cache_counts(&mut h), (1, 1));
    // the key rotated: the cached token stops verifying at once
    let mut consumers = consumers_with_jwt();
    for s in consumers[0]["jwt_secrets"].as_array_mut().unwrap() {
        if s["key"] == key_for("RS256") {
            s["rsa_public_key"] = json!(rsa_pem(&keys().rsa_other));
        }
    }
    let g = h.configure(&json!({"consumers": consumers, "plugins": jwt(json!({}))}).to_string()).unwrap();
    refused_exactly(&checked(h.send(&[g], req())), &msg("Invalid signature"));
    // and removed
    let mut consumers = consumers_with_jwt();
    consumers[0]["jwt_secrets"].as_array_mut().unwrap().retain(|s| s["key"] != key_for("RS256"));
    let g = h.configure(&json!({"consumers": consumers, "plugins": jwt(json!({}))}).to_string()).unwrap();
    refused_exactly(&checked(h.send(&[g], req())), &msg("No credentials found for given 'iss'"));
}

#[test]
fn a_new_store_generation_invalidates_cached_tokens() {
    let mut h = envoy_like_host();
    let loader = |consumers: &Value| json!({"store": {"name": "main", "consumers": consumers}}).to_string();
    h.configure(&loader(&consumers_with_jwt())).unwrap();
    let r = h.configure(&json!({"consumer_store": "main", "plugins": jwt(json!({}))}).to_string()).unwrap();
    let rs = token("RS256", &key_for("RS256"), json!({}));
    let es = token("ES256", &key_for("ES256"), json!({}));
    let send = |h: &mut Host, t: &str| checked(h.send(&[r], Request::get("/").header("authorization", &bearer(t))));
    for _ in 0..2 {
        assert_upstream_as(&send(&mut h, &rs), "alice", Some(&key_for("RS256")));
        assert_upstream_as(&send(&mut h, &es), "alice", Some(&key_for("ES256")));
    }
    assert_eq!(cache_counts(&mut h), (2, 2));
    // generation 2: the RS256 key rotated, the ES256 secret removed
    let mut next = consumers_with_jwt();
    let secrets = next[0]["jwt_secrets"].as_array_mut().unwrap();
    secrets.retain(|s| s["key"] != key_for("ES256"));
    for s in secrets.iter_mut().filter(|s| s["key"] == key_for("RS256")) {
        s["rsa_public_key"] = json!(rsa_pem(&keys().rsa_other));
    }
    h.configure(&loader(&next)).unwrap();
    refused_exactly(&send(&mut h, &rs), &msg("Invalid signature"));
    refused_exactly(&send(&mut h, &es), &msg("No credentials found for given 'iss'"));
    // the entries were dropped (misses), and a token of the new key is cached again
    assert_eq!(cache_counts(&mut h), (2, 4));
    // generation 3 puts the original keys back: the old token verifies again, freshly
    h.configure(&loader(&consumers_with_jwt())).unwrap();
    assert_upstream_as(&send(&mut h, &rs), "alice", Some(&key_for("RS256")));
    assert_upstream_as(&send(&mut h, &rs), "alice", Some(&key_for("RS256")));
    assert_eq!(cache_counts(&mut h), (3, 5));
}

#[test]
fn the_cache_can_be_sized_or_turned_off() {
    let toks: Vec<String> = (0..3).map(|i| token("HS256", "alice-issuer", json!({"jti": i}))).collect();
    let mut h = envoy_like_host();
    let f = h.configure(&jdoc(jwt(json!({"token_cache_entries": 2})))).unwrap();
    let mut send = |t: &str| {
        assert_upstream_as(&checked(h.send(&[f], Request::get(&format!("/?jwt={t}")))), "alice", Some("alice-issuer"))
    };
    for t in &toks {
        send(t);
    }
    // two entries: the oldest (toks[0]) went
    send(&toks[2]);
    send(&toks[1]);
    send(&toks[0]);
    assert_eq!(cache_counts(&mut h), (2, 4));
    let mut h = envoy_like_host();
    let f = h.configure(&jdoc(jwt(json!({"token_cache_entries": 0})))).unwrap();
    for _ in 0..3 {
        assert_upstream_as(
            &checked(h.send(&[f], Request::get(&format!("/?jwt={}", toks[0])))),
            "alice",
            Some("alice-issuer"),
        );
    }
    assert_eq!(cache_counts(&mut h), (0, 0), "off: nothing looked up, nothing counted");
}

//! Shared helpers for the tests that load the real `consumer_auth.wasm` through the wasmtime
//! proxy-wasm host in `test-harness/`. The benches (`benches/*.rs`) include this file too.

use std::path::PathBuf;

pub use proxy_wasm_harness::{Exchange, FilterId, Host, Request};
pub use serde_json::json;
use serde_json::Value;

/// The built filter. `make harness-tests` sets `CONSUMER_AUTH_WASM`; otherwise the copy in
/// `filters/`. A missing file fails the test: run `make build` first.
pub fn wasm() -> PathBuf {
    let path = std::env::var_os("CONSUMER_AUTH_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("filters/consumer_auth.wasm"));
    assert!(path.exists(), "{} is missing: run `make build` first", path.display());
    path
}

/// The default host of these tests: one the filter takes for Envoy (it has Envoy's `xds.node`
/// property), whose header removal really removes. Kong's ngx_wasm_module does not (nginx
/// forwards a "removed" header), so the filter behaves differently there: see [`kong_like_host`],
/// [`kong_model`] and `tests/harness/kong_*.rs`.
pub fn host() -> Host {
    let mut h = Host::load(wasm()).expect("load consumer_auth.wasm");
    h.set_property("xds.node", b"\x0a\x04node");
    h
}

/// The same (named for the call sites that compare both hosts).
pub fn envoy_host() -> Host {
    host()
}

/// A host without Envoy's `xds.node` property: the filter takes it for Kong (`kong.ctx.shared`
/// handoff, no metrics, bodies judged in the body callback, headers blanked or the request
/// refused where Kong cannot remove them; docs/KONG.md).
pub fn kong_like_host() -> Host {
    Host::load(wasm()).expect("load consumer_auth.wasm")
}

/// The model of Kong 3.9's ngx_wasm_module (the harness's Kong mode, `Host::kong_quirks`): a
/// host the filter takes for Kong that also behaves as Kong's does (docs/KONG.md, "The model of
/// Kong's host").
pub fn kong_model() -> Host {
    let mut h = kong_like_host();
    h.kong_quirks();
    h
}

pub const ALICE_ID: &str = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
pub const ALICE_KEY_ID: &str = "6b2f4d1e-8a3c-4b5d-9e6f-7a8b9c0d1e2f";
pub const ANON_ID: &str = "a0a0a0a0-0000-4000-8000-000000000001";
pub const OTHER_ANON_ID: &str = "a0a0a0a0-0000-4000-8000-000000000002";

/// The consumers most tests use: alice (key, basic, group admins), bob (key, basic, no
/// groups), carol (groups dev and ops), and two anonymous consumers.
pub fn consumers() -> Value {
    json!([
        {
            "id": ALICE_ID, "username": "alice", "custom_id": "crm-1042",
            "keyauth_credentials": [{"id": ALICE_KEY_ID, "key": "alice-key"}],
            "basicauth_credentials": [{"username": "alice-basic", "password": "alice-pw"}],
            "acls": [{"group": "admins"}]
        },
        {
            "username": "bob",
            "keyauth_credentials": [{"key": "bob-key"}],
            "basicauth_credentials": [{"username": "bob-basic", "password": "bob-pw"}]
        },
        {
            "username": "carol",
            "keyauth_credentials": [{"key": "carol-key"}],
            "acls": [{"group": "dev"}, {"group": "ops"}]
        },
        {"id": ANON_ID, "username": "anonymous_users"},
        {"id": OTHER_ANON_ID, "username": "other_anonymous"}
    ])
}

/// A document with the standard consumers and these plugins.
pub fn doc(plugins: Value) -> String {
    json!({"consumers": consumers(), "plugins": plugins}).to_string()
}

/// A host with one filter instance configured with `config`.
pub fn one(config: &str) -> (Host, FilterId) {
    let mut h = host();
    let f = h.configure(config).unwrap_or_else(|e| panic!("configuration refused: {e}"));
    (h, f)
}

/// Send `req` through one fresh instance of `plugins` (with the standard consumers).
pub fn send(plugins: Value, req: Request) -> Exchange {
    let (mut h, f) = one(&doc(plugins));
    checked(h.send(&[f], req))
}

/// Fail on a trap: a trap turns every request on the VM into a 503 in production.
pub fn checked(ex: Exchange) -> Exchange {
    ex.assert_no_trap();
    ex
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The body of a local response as JSON.
pub fn body_json(ex: &Exchange) -> Value {
    serde_json::from_str(&ex.body_str()).unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", ex.body_str()))
}

pub fn message(ex: &Exchange) -> String {
    body_json(ex)["message"].as_str().unwrap_or_default().to_string()
}

/// The identity the upstream saw: (consumer id, username, custom id, credential, anonymous, groups).
pub fn identity(ex: &Exchange) -> [Option<String>; 6] {
    [
        "x-consumer-id",
        "x-consumer-username",
        "x-consumer-custom-id",
        "x-credential-identifier",
        "x-anonymous-consumer",
        "x-consumer-groups",
    ]
    .map(|h| {
        let all = ex.upstream_headers(h);
        assert!(all.len() <= 1, "{h} sent upstream {} times: {all:?}", all.len());
        all.into_iter().next()
    })
}

/// Assert the request went upstream as `username` with `credential` (None: anonymous).
pub fn assert_upstream_as(ex: &Exchange, username: &str, credential: Option<&str>) {
    assert_eq!(ex.status(), 200, "expected upstream, got {} {}", ex.status(), ex.body_str());
    assert!(ex.upstream.is_some(), "request did not go upstream");
    assert_eq!(ex.upstream_header("x-consumer-username").as_deref(), Some(username));
    assert_eq!(ex.upstream_header("x-credential-identifier").as_deref(), credential);
    let anonymous = ex.upstream_header("x-anonymous-consumer");
    match credential {
        Some(_) => assert_eq!(anonymous, None, "x-anonymous-consumer must be absent with a credential"),
        None => assert_eq!(anonymous.as_deref(), Some("true")),
    }
}

/// Assert a local 401/403/... with a Kong error body carrying `msg`.
pub fn assert_refused(ex: &Exchange, status: u16, msg: &str) {
    assert!(ex.upstream.is_none(), "request went upstream but should have been refused");
    assert_eq!(ex.status(), status, "body: {}", ex.body_str());
    assert_eq!(message(ex), msg);
}

/// Configure `config`, which must be refused, and return the one refusal line the filter logged
/// (without its `consumer-auth: configuration refused: ` prefix).
pub fn refusal(config: &str) -> String {
    let mut h = host();
    match h.configure(config) {
        Ok(_) => panic!("configuration accepted: {config}"),
        Err(e) => refusal_line(&e),
    }
}

/// The reason of a refused configuration: its one `configuration refused:` log line.
pub fn refusal_line(err: &proxy_wasm_harness::ConfigureError) -> String {
    let lines: Vec<_> =
        err.logs.iter().filter(|l| l.message.starts_with("consumer-auth: configuration refused: ")).collect();
    assert_eq!(lines.len(), 1, "exactly one refusal line: {:?}", err.logs);
    lines[0].message.trim_start_matches("consumer-auth: configuration refused: ").to_string()
}

/// The credential a test request carries for one plugin of an AND/OR table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cred {
    None,
    Good,
    Bad,
}

/// A plugin entry, with `anonymous` when given.
pub fn plugin_entry(name: &str, anonymous: Option<&str>) -> Value {
    match anonymous {
        Some(a) => json!({"name": name, "config": {"anonymous": a}}),
        None => json!({"name": name}),
    }
}

/// What a client and the upstream can observe of one exchange.
pub fn observed(ex: &Exchange) -> (u16, String, Option<String>, [Option<String>; 6]) {
    let body = if ex.upstream.is_some() { String::new() } else { ex.body_str() };
    (ex.status(), body, ex.local_header("www-authenticate"), identity(ex))
}

/// Run `req` through `plugins` in one filter instance configured with `doc(plugins)` and through
/// a chain of one instance per plugin (in priority order), check both agree, and return the
/// single-instance exchange (request id `r`).
pub fn both_ways(doc: impl Fn(Value) -> String, plugins: &[Value], req: impl Fn() -> Request) -> Exchange {
    let mut h = host();
    let single = h.configure(&doc(Value::Array(plugins.to_vec()))).unwrap();
    let one_instance = checked(h.send(&[single], req().request_id(Some("r"))));
    let mut h = host();
    let chain: Vec<FilterId> = plugins.iter().map(|p| h.configure(&doc(json!([p]))).unwrap()).collect();
    let split = checked(h.send(&chain, req().request_id(Some("r"))));
    assert_eq!(observed(&one_instance), observed(&split), "one instance and a chain of instances disagree");
    one_instance
}

/// The harness clock's default: 2026-01-01T00:00:00Z (unix seconds).
pub const NOW: u64 = 1_767_225_600;

/// base64url without padding (JWT segments).
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HMAC-SHA256 of `data` with `secret` (hmac-auth signatures, HS256 tokens).
pub fn hmac_sha256(secret: &str, data: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// jwt keys, generated once per test binary (the jwt tests and `benches/algorithms.rs`).
pub struct Keys {
    pub rsa: rsa::RsaPrivateKey,
    pub rsa_other: rsa::RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub p384: p384::ecdsa::SigningKey,
    pub ed25519: ed25519_dalek::SigningKey,
    pub ed25519_other: ed25519_dalek::SigningKey,
}

pub fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::rngs::OsRng;
        Keys {
            rsa: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            rsa_other: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            p256: p256::ecdsa::SigningKey::random(&mut rng),
            p384: p384::ecdsa::SigningKey::random(&mut rng),
            ed25519: ed25519_dalek::SigningKey::generate(&mut rng),
            ed25519_other: ed25519_dalek::SigningKey::generate(&mut rng),
        }
    })
}

pub fn rsa_pem(k: &rsa::RsaPrivateKey) -> String {
    use rsa::pkcs8::EncodePublicKey;
    k.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap()
}

pub fn rsa_pkcs1_pem(k: &rsa::RsaPrivateKey) -> String {
    use rsa::pkcs1::EncodeRsaPublicKey;
    k.to_public_key().to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap()
}

pub fn p256_pem() -> String {
    use p256::pkcs8::EncodePublicKey;
    keys().p256.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap()
}

pub fn p384_pem() -> String {
    use p384::pkcs8::EncodePublicKey;
    keys().p384.verifying_key().to_public_key_pem(p384::pkcs8::LineEnding::LF).unwrap()
}

pub fn ed25519_pem() -> String {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    keys().ed25519.verifying_key().to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap()
}

/// Every jwt algorithm the filter verifies.
pub const ALGORITHMS: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// The signature of `input` with `alg`, using the test keys (or `secret` for HS*).
pub fn signature(alg: &str, secret: &[u8], input: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    let k = keys();
    let mut rng = rand::rngs::OsRng;
    macro_rules! hs {
        ($d:ty) => {{
            let mut m = Hmac::<$d>::new_from_slice(secret).unwrap();
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        "HS256" => hs!(sha2::Sha256),
        "HS384" => hs!(sha2::Sha384),
        "HS512" => hs!(sha2::Sha512),
        "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.rsa.clone()).sign(input).to_vec(),
        "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(k.rsa.clone()).sign(input).to_vec(),
        "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(k.rsa.clone()).sign(input).to_vec(),
        "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(k.rsa.clone()).sign_with_rng(&mut rng, input).to_vec(),
        "PS384" => rsa::pss::SigningKey::<sha2::Sha384>::new(k.rsa.clone()).sign_with_rng(&mut rng, input).to_vec(),
        "PS512" => rsa::pss::SigningKey::<sha2::Sha512>::new(k.rsa.clone()).sign_with_rng(&mut rng, input).to_vec(),
        "ES256" => {
            let sig: p256::ecdsa::Signature = k.p256.sign(input);
            sig.to_bytes().to_vec()
        }
        "ES384" => {
            let sig: p384::ecdsa::Signature = k.p384.sign(input);
            sig.to_bytes().to_vec()
        }
        "EdDSA" => {
            use ed25519_dalek::Signer as _;
            k.ed25519.sign(input).to_bytes().to_vec()
        }
        other => panic!("{other}"),
    }
}

/// A compact JWS of `header` and `claims`, signed with `alg` (and `secret` for HS*).
pub fn jws(header: &Value, claims: &Value, alg: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let sig = signature(alg, secret, input.as_bytes());
    format!("{input}.{}", b64url(&sig))
}

//! What the fuzz targets share: the request format the corpora are written in, a proxy with
//! shared data and a clock, the fixed documents the request targets run over, and the checks
//! every pipeline run must pass.
//!
//! # The request format (`corpus/<request target>/*`)
//!
//! ```text
//! @now 1700000000          optional directives, each on its own line, before the request:
//! @protocol HTTP/1.1       the clock (Unix seconds), `request.protocol`, the client address,
//! @ip 10.0.0.1             and the identity an earlier filter instance handed over
//! @handoff {"id":…}
//! GET /path?query          method, one space, `:path` as the client sent it
//! Name: value              headers (a name may start with ':'; one space after ':' is dropped)
//!                          an empty line: a body follows (the request has one, maybe empty)
//! body bytes…
//! ```
//!
//! Lines end with `\n`; header values are raw bytes (anything but `\n`). The harness writes its
//! requests in this format when `CONSUMER_AUTH_FUZZ_SEEDS` is set (`make fuzz-seeds`).

use std::collections::HashMap;
use std::sync::OnceLock;

use consumer_auth::config::{Config, StoreContent};
use consumer_auth::host_kind::HostKind;
use consumer_auth::identity::{is_spoofable, HeaderOp, MANAGED_HEADERS};
use consumer_auth::pipeline::{self, Outcome};
use consumer_auth::proxy::{Host, LogLevel, SharedError};
use consumer_auth::request::{Body, Header, Request};
use consumer_auth::response;

/// The clock when a request does not set `@now`: the harness's default (its seeds carry theirs).
pub const DEFAULT_NOW: u64 = 1_700_000_000;

/// One request decoded from fuzz bytes.
#[derive(Debug, Default)]
pub struct FuzzRequest {
    pub now: Option<u64>,
    pub protocol: Option<String>,
    pub client_ip: Option<String>,
    pub handoff: Option<Vec<u8>>,
    pub method: String,
    pub path: String,
    /// Every header, `:method` and `:path` first (as Envoy's header map has them).
    pub headers: Vec<Header>,
    /// `None`: the request has no body.
    pub body: Option<Vec<u8>>,
}

impl FuzzRequest {
    pub fn parse(data: &[u8]) -> FuzzRequest {
        let mut req = FuzzRequest::default();
        let mut rest = data;
        let mut request_line = None;
        let mut headers = Vec::new();
        loop {
            let (line, after) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if request_line.is_none() && line.first() == Some(&b'@') {
                let (name, value) = split_once(&line[1..], b' ');
                let text = || String::from_utf8_lossy(value).into_owned();
                match name {
                    b"now" => req.now = text().trim().parse().ok(),
                    b"protocol" => req.protocol = Some(text()),
                    b"ip" => req.client_ip = Some(text()),
                    b"handoff" => req.handoff = Some(value.to_vec()),
                    _ => {}
                }
            } else if request_line.is_none() {
                request_line = Some(line);
            } else if line.is_empty() && after.is_some() {
                req.body = after.map(<[u8]>::to_vec);
                break;
            } else {
                // `:authority: x` — a pseudo-header's own ':' is part of its name
                let split = line.iter().skip(1).position(|&b| b == b':').map(|i| i + 1);
                let (name, value) = match split {
                    Some(i) => (&line[..i], &line[i + 1..]),
                    None => (line, &[][..]),
                };
                let value = value.strip_prefix(b" ").unwrap_or(value);
                headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
            }
            match after {
                Some(a) => rest = a,
                None => break,
            }
        }
        let (method, path) = split_once(request_line.unwrap_or(b"GET /"), b' ');
        // the glue reads them as text, lossily (host/mod.rs `pseudo`)
        req.method = String::from_utf8_lossy(method).into_owned();
        req.path = String::from_utf8_lossy(path).into_owned();
        req.headers.push((":method".into(), method.to_vec()));
        req.headers.push((":path".into(), path.to_vec()));
        req.headers.extend(headers);
        req
    }

    pub fn now(&self) -> u64 {
        self.now.unwrap_or(DEFAULT_NOW)
    }

    /// The request as the engine sees it before its body is read.
    pub fn view(&self) -> Request<'_> {
        let body = if self.body.is_some() { Body::Pending } else { Body::Empty };
        Request::new(&self.method, &self.path, &self.headers, body)
    }
}

fn split_once(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == sep) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// A proxy as the engine needs it: shared data with compare-and-swap, a clock, the request's
/// protocol and client address.
#[derive(Default)]
pub struct FakeHost {
    pub data: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    pub now: u64,
    pub protocol: Option<String>,
    pub client_ip: Option<String>,
}

impl FakeHost {
    /// A proxy whose shared data starts as `data` (a store written once, copied per input).
    pub fn with_data(data: &HashMap<String, (Vec<u8>, u32)>) -> FakeHost {
        FakeHost { data: data.clone(), next_cas: 1 << 20, ..FakeHost::default() }
    }
}

impl Host for FakeHost {
    fn now_unix_seconds(&mut self) -> u64 {
        self.now
    }
    fn log(&mut self, _: LogLevel, _: &str) {}
    fn request_protocol(&mut self) -> Option<String> {
        self.protocol.clone()
    }
    fn shared_get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, SharedError> {
        Ok(self.data.get(key).cloned())
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedError> {
        if let Some((_, current)) = self.data.get(key) {
            if cas != 0 && cas != *current {
                return Err(SharedError::CasMismatch);
            }
        }
        self.next_cas += 1;
        self.data.insert(key.to_string(), (value.to_vec(), self.next_cas));
        Ok(())
    }
    fn client_ip(&mut self) -> Option<String> {
        self.client_ip.clone()
    }
}

/// Statuses the filter answers with (BEHAVIOUR.md): the plugins' 401/403/429, a too-large body
/// (413), a store not loaded or a missing anonymous consumer (500, 503), and the fixed
/// documents' request-termination (418).
const DOCUMENTED_STATUSES: [u16; 8] = [400, 401, 403, 413, 418, 429, 500, 503];

/// Run `req` through `config` as the glue does (again, from the start, with the body when the
/// plugins need it) and check what every run must hold:
/// - a request without a body never waits for one, and a complete body is never asked for again;
/// - a refusal has a documented status and renders for any `Accept`;
/// - forwarded, the request carries no identity header the client sent, and no header value
///   this filter writes can break the header block (no CR, LF or NUL);
/// - both hosts' header plans can be made from the operations.
pub fn run_checked(config: &Config, req: &FuzzRequest, host: &mut FakeHost) -> Outcome {
    host.now = req.now();
    host.protocol = req.protocol.clone();
    host.client_ip = req.client_ip.clone();
    let handoff = req.handoff.as_deref();
    let first = pipeline::run(config, &req.view(), handoff, host);
    let (outcome, body) = match (first, &req.body) {
        (Outcome::NeedBody, Some(body)) => {
            let view = Request::new(&req.method, &req.path, &req.headers, Body::Complete(body));
            let again = pipeline::run(config, &view, handoff, host);
            assert!(!matches!(again, Outcome::NeedBody), "asked for the body again once it was there");
            (again, Some(body.as_slice()))
        }
        (Outcome::NeedBody, None) => panic!("a request without a body waits for one"),
        (other, _) => (other, None),
    };
    match &outcome {
        Outcome::Reject(rejection) => {
            assert!(DOCUMENTED_STATUSES.contains(&rejection.status), "undocumented status {}", rejection.status);
            let accept = req.view().first_header("accept");
            let local = response::render(rejection, accept, Some("req-1"));
            assert_eq!(local.status, rejection.status);
            for (name, value) in &local.headers {
                assert_header_safe(name, value);
            }
        }
        Outcome::Forward(forward) => {
            let incoming_identity = handoff.and_then(consumer_auth::identity::Identity::decode);
            if incoming_identity.is_none() {
                // the first instance: every identity header the client sent is removed or replaced
                // (one the filter manages may stay when it already says what the identity says:
                // the `identity` target checks those values)
                for (name, _) in &req.headers {
                    let lower = name.to_ascii_lowercase();
                    let copies = req.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count();
                    if is_spoofable(name) && !(MANAGED_HEADERS.contains(&lower.as_str()) && copies == 1) {
                        let handled = forward.header_ops.iter().any(|op| match op {
                            HeaderOp::Remove(n) => *n == lower,
                            HeaderOp::Set(n, _) => *n == lower,
                        });
                        assert!(handled, "the client's {name} header would reach the upstream");
                    }
                }
            }
            for op in &forward.header_ops {
                if let HeaderOp::Set(name, value) = op {
                    assert!(MANAGED_HEADERS.contains(name));
                    assert_header_safe(name, value);
                }
            }
            for (name, value) in &forward.response_headers {
                assert_header_safe(name, value);
            }
            for kind in [HostKind::Envoy, HostKind::Kong] {
                let _ = kind.header_calls(&forward.header_ops, &req.headers, forward.first_instance);
                if let Some(path) = &forward.path {
                    let _ = kind.path_rewrite(path);
                }
            }
            if forward.body.is_some() {
                assert!(body.is_some(), "a body rewritten that was never read");
            }
        }
        // A pause for rate-limiting's counters (`policy: redis`): the front's answer is another input.
        Outcome::NeedBody | Outcome::NeedCounters(_) => {}
    }
    outcome
}

fn assert_header_safe(name: &str, value: &str) {
    assert!(!value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0), "header {name} would carry {value:?}");
}

/// Test keys (`fuzz/keys/`, throwaway): the seed tokens are signed with them and the fixed
/// documents hold their public halves. Parsed, not generated: an RSA key generation would cost
/// the first input seconds of its time budget.
pub struct Keys {
    pub rsa: rsa::RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub p384: p384::ecdsa::SigningKey,
    pub ed25519: ed25519_dalek::SigningKey,
}

pub fn keys() -> &'static Keys {
    use p256::pkcs8::DecodePrivateKey;
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../keys/rsa.pem")).unwrap(),
        p256: p256::ecdsa::SigningKey::from_pkcs8_pem(include_str!("../keys/p256.pem")).unwrap(),
        p384: p384::ecdsa::SigningKey::from_pkcs8_pem(include_str!("../keys/p384.pem")).unwrap(),
        ed25519: ed25519_dalek::SigningKey::from_pkcs8_pem(include_str!("../keys/ed25519.pem")).unwrap(),
    })
}

pub fn rsa_pem() -> String {
    use rsa::pkcs8::EncodePublicKey;
    keys().rsa.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap()
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

pub const ALGORITHMS: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

pub const HS_SECRET: &str = "alice-jwt-secret";

/// The signature of `input` with `alg` and the test keys (`HS_SECRET` for HS*). PSS's salt comes
/// from a generator seeded with the input: the same bytes, the same signature.
pub fn sign(alg: &str, input: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    use rand_chacha::rand_core::SeedableRng;
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    let k = keys();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(input.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ b as u64));
    macro_rules! hs {
        ($d:ty) => {{
            let mut m = Hmac::<$d>::new_from_slice(HS_SECRET.as_bytes()).unwrap();
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
        _ => {
            use ed25519_dalek::Signer as _;
            k.ed25519.sign(input).to_bytes().to_vec()
        }
    }
}

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key each algorithm's credential is looked up by (`iss`) in the fixed documents (the
/// harness's jwt tests use the same).
pub fn jwt_key_for(alg: &str) -> String {
    if alg == "HS256" {
        "alice-issuer".into()
    } else {
        format!("alice-{alg}")
    }
}

/// The consumers of the fixed documents: the harness's (tests/harness/support.rs `consumers()`)
/// with the hmac and jwt credentials its hmac and jwt tests add, one jwt secret per algorithm.
pub fn consumers() -> serde_json::Value {
    use serde_json::json;
    let secrets: Vec<serde_json::Value> = ALGORITHMS
        .iter()
        .map(|alg| {
            let mut s = json!({"key": jwt_key_for(alg), "algorithm": alg});
            match &alg[..2] {
                "HS" => s["secret"] = json!(HS_SECRET),
                "RS" | "PS" => s["rsa_public_key"] = json!(rsa_pem()),
                _ if *alg == "ES256" => s["rsa_public_key"] = json!(p256_pem()),
                _ if *alg == "ES384" => s["rsa_public_key"] = json!(p384_pem()),
                _ => s["rsa_public_key"] = json!(ed25519_pem()),
            }
            s
        })
        .collect();
    json!([
        {
            "id": "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77", "username": "alice", "custom_id": "crm-1042",
            "keyauth_credentials": [{"id": "6b2f4d1e-8a3c-4b5d-9e6f-7a8b9c0d1e2f", "key": "alice-key"}],
            "basicauth_credentials": [{"username": "alice-basic", "password": "alice-pw"}],
            "hmacauth_credentials": [{"username": "alice-hmac", "secret": "alice-hmac-secret"}],
            "jwt_secrets": secrets,
            "acls": [{"group": "admins"}]
        },
        {
            "username": "bob",
            "keyauth_credentials": [{"key": "bob-key"}],
            "basicauth_credentials": [{"username": "bob-basic", "password": "bob-pw"}],
            "hmacauth_credentials": [{"username": "bob-hmac", "secret": "bob-hmac-secret"}],
            "jwt_secrets": [{"key": "bob-issuer", "secret": "bob-jwt-secret"}]
        },
        {
            "username": "carol",
            "keyauth_credentials": [{"key": "carol-key"}],
            "acls": [{"group": "dev"}, {"group": "ops"}]
        },
        {"id": "a0a0a0a0-0000-4000-8000-000000000001", "username": "anonymous_users"},
        {"id": "a0a0a0a0-0000-4000-8000-000000000002", "username": "other_anonymous"}
    ])
}

/// A document of the fixed consumers and `plugins`.
pub fn document(plugins: serde_json::Value) -> Config {
    let doc = serde_json::json!({"consumers": consumers(), "plugins": plugins});
    match Config::parse(doc.to_string().as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("a fixed document is refused: {e}"),
    }
}

/// A document that fills the consumer store `name` with the fixed consumers, written into
/// `host`'s shared data, and a document reading it with `plugins`.
pub fn store_document(host: &mut FakeHost, name: &str, plugins: serde_json::Value) -> Config {
    let filler = serde_json::json!({"store": {"name": name, "consumers": consumers()}});
    let filler = Config::parse(filler.to_string().as_bytes()).unwrap();
    let Some(StoreContent::Inline { population, digest }) = filler.store.map(|s| s.content) else {
        panic!("the store document has no inline population");
    };
    consumer_auth::store::write(host, name, &population, &digest, None).unwrap();
    let doc = serde_json::json!({"consumer_store": name, "plugins": plugins});
    Config::parse(doc.to_string().as_bytes()).unwrap()
}

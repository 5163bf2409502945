//! Consumers and their credentials, indexed once per configuration for O(1) lookup, and the one
//! interface a request looks them up through ([`ConsumerLookup`]), whether they are in the
//! configuration or in a shared consumer store.
//!
//! Secrets are never kept in the clear: API keys are indexed by their SHA-256 digest and
//! passwords are kept as verifiers (SHA-256 digest, or Kong's salted SHA-1), compared in
//! constant time.

use std::collections::HashMap;
use std::rc::Rc;

use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::jwt_key::{Algorithm, VerifyingKey};
use crate::proxy::Host;

/// A consumer as the pipeline and the identity headers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub id: String,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    /// ACL groups, in document order.
    pub groups: Vec<String>,
}

impl Consumer {
    /// True when `reference` names this consumer by id or by username.
    pub fn is_named(&self, reference: &str) -> bool {
        self.id == reference || self.username.as_deref() == Some(reference)
    }
}

/// A key-auth credential, found by the digest of its key.
#[derive(Debug)]
pub struct KeyCredential {
    /// The credential id: what `X-Credential-Identifier` carries (never the key).
    pub id: String,
    pub consumer: Rc<Consumer>,
    /// Unix seconds after which the key no longer authenticates.
    pub expires_at: Option<u64>,
}

/// How a stored password is checked.
#[derive(Debug)]
pub enum PasswordVerifier {
    /// SHA-256 of the password (plain passwords are stored this way at configure time).
    Sha256([u8; 32]),
    /// Kong's database form: `sha1(password .. consumer_id)`.
    KongSha1 { digest: [u8; 20], salt: String },
}

impl PasswordVerifier {
    pub fn from_plain(password: &[u8]) -> Self {
        PasswordVerifier::Sha256(sha256(password))
    }

    /// Constant-time with respect to the stored secret.
    pub fn verify(&self, given: &[u8]) -> bool {
        match self {
            PasswordVerifier::Sha256(expected) => bool::from(sha256(given).ct_eq(expected)),
            PasswordVerifier::KongSha1 { digest, salt } => bool::from(kong_sha1(given, salt).ct_eq(digest)),
        }
    }
}

/// A basic-auth credential, found by its username.
#[derive(Debug)]
pub struct BasicCredential {
    /// The credential's username: what `X-Credential-Identifier` carries.
    pub username: String,
    pub consumer: Rc<Consumer>,
    pub verifier: PasswordVerifier,
}

/// An hmac-auth credential, found by its username. The secret is needed in the clear to compute
/// the HMAC; it is never logged (`Debug` leaves it out).
pub struct HmacCredential {
    /// The credential's username: what `X-Credential-Identifier` carries.
    pub username: String,
    pub consumer: Rc<Consumer>,
    secret: Vec<u8>,
}

impl HmacCredential {
    pub fn new(username: String, consumer: Rc<Consumer>, secret: Vec<u8>) -> Self {
        HmacCredential { username, consumer, secret }
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl std::fmt::Debug for HmacCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacCredential").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A jwt secret, found by its `key`, with its verifying key parsed once at configure time.
#[derive(Debug)]
pub struct JwtCredential {
    /// The secret's `key`: what `X-Credential-Identifier` carries.
    pub key: String,
    pub consumer: Rc<Consumer>,
    pub algorithm: Algorithm,
    pub verifier: VerifyingKey,
    /// The secret / public key as written, for writing the credential to a consumer store.
    pub material: JwtMaterial,
}

/// What a jwt secret was built from. `Debug` shows neither.
#[derive(Clone, Default)]
pub struct JwtMaterial {
    pub secret: Option<String>,
    pub rsa_public_key: Option<String>,
}

impl std::fmt::Debug for JwtMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtMaterial { .. }")
    }
}

/// One consumer of a document with its credentials, validated on its own. Uniqueness across
/// consumers is checked by whoever collects them: the inline index (`config`) or the
/// store builder (`store::Builder`).
pub struct ValidConsumer {
    pub consumer: Rc<Consumer>,
    pub keys: Vec<ValidKey>,
    pub basic: Vec<BasicCredential>,
    pub hmac: Vec<HmacCredential>,
    pub jwt: Vec<JwtCredential>,
}

pub struct ValidKey {
    pub digest: [u8; 32],
    /// Given as `key_hash` rather than `key` (names the field in a refusal).
    pub from_hash: bool,
    /// The credential id was given (a derived one is unique whenever consumer ids are).
    pub explicit_id: bool,
    pub credential: KeyCredential,
}

/// All consumers of one configuration with their credentials.
#[derive(Debug, Default)]
pub struct ConsumerIndex {
    by_id: HashMap<String, Rc<Consumer>>,
    by_username: HashMap<String, Rc<Consumer>>,
    keys: HashMap<[u8; 32], Rc<KeyCredential>>,
    basic: HashMap<String, Rc<BasicCredential>>,
    hmac: HashMap<String, Rc<HmacCredential>>,
    jwt: HashMap<String, Rc<JwtCredential>>,
}

impl ConsumerIndex {
    pub fn insert_consumer(&mut self, consumer: Rc<Consumer>) {
        if let Some(username) = &consumer.username {
            self.by_username.insert(username.clone(), Rc::clone(&consumer));
        }
        self.by_id.insert(consumer.id.clone(), consumer);
    }

    /// `key_digest` is `sha256(key)`; see [`key_digest`].
    pub fn insert_key(&mut self, key_digest: [u8; 32], credential: KeyCredential) {
        self.keys.insert(key_digest, Rc::new(credential));
    }

    pub fn insert_basic(&mut self, credential: BasicCredential) {
        self.basic.insert(credential.username.clone(), Rc::new(credential));
    }

    pub fn insert_hmac(&mut self, credential: HmacCredential) {
        self.hmac.insert(credential.username.clone(), Rc::new(credential));
    }

    pub fn insert_jwt(&mut self, credential: JwtCredential) {
        self.jwt.insert(credential.key.clone(), Rc::new(credential));
    }

    pub fn hmac(&self, username: &str) -> Option<Rc<HmacCredential>> {
        self.hmac.get(username).cloned()
    }

    pub fn jwt(&self, key: &str) -> Option<Rc<JwtCredential>> {
        self.jwt.get(key).cloned()
    }

    pub fn by_id(&self, id: &str) -> Option<&Rc<Consumer>> {
        self.by_id.get(id)
    }

    /// Kong's `load_consumer(ref, search_by_username)`: by id first, then by username.
    pub fn by_reference(&self, reference: &str) -> Option<Rc<Consumer>> {
        self.by_id.get(reference).or_else(|| self.by_username.get(reference)).cloned()
    }

    pub fn key(&self, presented_key: &[u8]) -> Option<Rc<KeyCredential>> {
        self.keys.get(&key_digest(presented_key)).cloned()
    }

    pub fn basic(&self, username: &[u8]) -> Option<Rc<BasicCredential>> {
        std::str::from_utf8(username).ok().and_then(|u| self.basic.get(u)).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// What a lookup found: the credential or consumer, nothing, or no answer because the consumer
/// store is not loaded.
pub type Lookup<T> = Result<Option<Rc<T>>, NotLoaded>;

/// The consumer store `store` has no generation yet (or shared data is unavailable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoaded {
    pub store: String,
}

/// Where a request's consumers are found: the configuration's own [`ConsumerIndex`], or a shared
/// consumer store read through the proxy (`store::StoreReader`). Plugins ask through their
/// context and never know which.
pub trait ConsumerLookup {
    fn key(&mut self, host: &mut dyn Host, presented_key: &[u8]) -> Lookup<KeyCredential>;
    fn basic(&mut self, host: &mut dyn Host, username: &[u8]) -> Lookup<BasicCredential>;
    fn hmac(&mut self, host: &mut dyn Host, username: &str) -> Lookup<HmacCredential>;
    fn jwt(&mut self, host: &mut dyn Host, key: &str) -> Lookup<JwtCredential>;
    /// Kong's `load_consumer(ref, true)`: by id, then by username.
    fn by_reference(&mut self, host: &mut dyn Host, reference: &str) -> Lookup<Consumer>;
}

/// The index answers from memory: it never needs the proxy and is always loaded.
impl ConsumerLookup for &ConsumerIndex {
    fn key(&mut self, _: &mut dyn Host, presented_key: &[u8]) -> Lookup<KeyCredential> {
        Ok(ConsumerIndex::key(self, presented_key))
    }

    fn basic(&mut self, _: &mut dyn Host, username: &[u8]) -> Lookup<BasicCredential> {
        Ok(ConsumerIndex::basic(self, username))
    }

    fn hmac(&mut self, _: &mut dyn Host, username: &str) -> Lookup<HmacCredential> {
        Ok(ConsumerIndex::hmac(self, username))
    }

    fn jwt(&mut self, _: &mut dyn Host, key: &str) -> Lookup<JwtCredential> {
        Ok(ConsumerIndex::jwt(self, key))
    }

    fn by_reference(&mut self, _: &mut dyn Host, reference: &str) -> Lookup<Consumer> {
        Ok(ConsumerIndex::by_reference(self, reference))
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Identifies the content of a consumers document (not a secret's digest: the document is
/// trusted, and a million consumers are ~170 MB, where SHA-256 in wasm costs about a second).
#[derive(Default)]
pub struct ContentDigest(xxhash_rust::xxh3::Xxh3);

impl ContentDigest {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> String {
        format!("xxh3-128:{:032x}", self.0.digest128())
    }
}

pub fn content_digest(document: &[u8]) -> String {
    let mut d = ContentDigest::default();
    d.update(document);
    d.finish()
}

/// The index key of an API key.
pub fn key_digest(key: &[u8]) -> [u8; 32] {
    sha256(key)
}

/// Kong's stored form of a basic-auth password: `sha1(password .. consumer_id)`.
pub fn kong_sha1(password: &[u8], consumer_id: &str) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(password);
    h.update(consumer_id.as_bytes());
    h.finalize().into()
}

/// The `key_hash` value of a key-auth key: `sha256:<64 hex digits>` (what the document accepts
/// instead of `key`; the digest it indexes the key by).
pub fn key_hash_value(key: &[u8]) -> String {
    format!("sha256:{}", hex::encode(key_digest(key)))
}

/// The `password_hash` value of a basic-auth password in Kong's salted form:
/// `hex(sha1(password .. consumer_id))` (the consumer's `id` must then be given as is).
pub fn kong_password_hash_value(password: &[u8], consumer_id: &str) -> String {
    hex::encode(kong_sha1(password, consumer_id))
}

/// Namespace of the deterministic ids derived when a document leaves `id` out.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1c_9f1e_2a4d_5e0b_8c37_4f61_d2a9_e5c0);

/// A deterministic UUID (v5) for `kind` and `name`: identical on every worker and restart.
/// Callers never pass a secret as `name`.
pub fn derived_id(kind: &str, name: &str) -> String {
    // UUID v5 (RFC 9562: SHA-1 of namespace and name), hashed with the `sha1` crate: uuid's own
    // v5 uses a much slower SHA-1, and a million consumers derive two ids each.
    let mut h = Sha1::new();
    h.update(ID_NAMESPACE.as_bytes());
    h.update(kind.as_bytes());
    h.update(b":");
    h.update(name.as_bytes());
    let digest: [u8; 20] = h.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    // `encode_lower` rather than `to_string`: no formatting machinery.
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_sha1_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_sha1_verifier_matches_kongs_stored_form() {
        // Kong stores hex(sha1(password .. consumer_id)).
        let consumer_id = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
        let mut h = Sha1::new();
        h.update(b"s3cret");
        h.update(consumer_id.as_bytes());
        let digest: [u8; 20] = h.finalize().into();
        let v = PasswordVerifier::KongSha1 { digest, salt: consumer_id.to_string() };
        assert!(v.verify(b"s3cret"));
        assert!(!v.verify(b"s3cret "));
        assert!(!v.verify(b""));
    }

    #[test]
    fn sha256_verifier() {
        let v = PasswordVerifier::from_plain(b"pw");
        assert!(v.verify(b"pw"));
        assert!(!v.verify(b"pW"));
    }

    #[test]
    fn derived_ids_are_uuid_v5() {
        // the same as the uuid crate's v5 of "kind:name" in our namespace
        let expected = uuid::Uuid::new_v5(&ID_NAMESPACE, b"consumer:alice").to_string();
        assert_eq!(derived_id("consumer", "alice"), expected);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id("consumer", "alice");
        assert_eq!(a, derived_id("consumer", "alice"));
        assert_ne!(a, derived_id("consumer", "bob"));
        assert_ne!(a, derived_id("keyauth", "alice"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn reference_lookup_prefers_id() {
        let mut idx = ConsumerIndex::default();
        let a = Rc::new(Consumer { id: "x".into(), username: Some("y".into()), custom_id: None, groups: vec![] });
        let b = Rc::new(Consumer { id: "y".into(), username: Some("z".into()), custom_id: None, groups: vec![] });
        idx.insert_consumer(a);
        idx.insert_consumer(b);
        assert_eq!(idx.by_reference("y").unwrap().id, "y");
        assert_eq!(idx.by_reference("z").unwrap().id, "y");
        assert!(idx.by_reference("nobody").is_none());
    }
}

//! The shared consumer store: one copy of a consumer population in the proxy's shared data,
//! written once per proxy and read by every filter instance (`"consumer_store": "<name>"`) on
//! every worker.
//!
//! Layout (all keys under `consumer-auth:store:<name>:`):
//!
//! - `gen` — the current generation `N` (decimal). Readers read it once per request.
//! - `meta` — the writer's bookkeeping: `{"gen":N,"digest":"<content digest>","etag":…}`, updated
//!   with compare-and-swap so that one writer per content fills the store (once per proxy, not
//!   once per worker).
//! - `<N % 2>:<kind>:<lookup key>` — one record per lookup: `k:<hex sha256 of the API key>`,
//!   `b:<basic username>`, `h:<hmac username>`, `j:<jwt key>`, `c:<consumer id>`,
//!   `u:<consumer username>`. Each record carries its generation.
//!
//! Generation `N+1` is written into the slot generation `N` does not use, then `gen` is switched:
//! a reader sees all of `N` or all of `N+1`, never a mix. A record whose generation is not the
//! one the reader switched to is stale (left over from `N-1`) and counts as absent. Keys are
//! digests or names, never a secret.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::consumers::{
    BasicCredential, Consumer, ConsumerIndex, HmacCredential, JwtCredential, JwtMaterial, KeyCredential,
    PasswordVerifier,
};
use crate::pipeline::{Host, SharedError};
use crate::plugins::jwt::{Algorithm, VerifyingKey};

/// What a record is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Key,
    Basic,
    Hmac,
    Jwt,
    ConsumerId,
    ConsumerName,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Key => "k",
            Kind::Basic => "b",
            Kind::Hmac => "h",
            Kind::Jwt => "j",
            Kind::ConsumerId => "c",
            Kind::ConsumerName => "u",
        }
    }
}

fn prefix(store: &str) -> String {
    format!("consumer-auth:store:{store}:")
}

pub fn gen_key(store: &str) -> String {
    format!("{}gen", prefix(store))
}

pub fn meta_key(store: &str) -> String {
    format!("{}meta", prefix(store))
}

pub fn record_key(store: &str, gen: u64, kind: Kind, lookup: &str) -> String {
    format!("{}{}:{}:{lookup}", prefix(store), gen % 2, kind.tag())
}

/// The lookup key of an API key: the hex SHA-256 digest.
pub fn key_lookup(digest: &[u8; 32]) -> String {
    hex::encode(digest)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ConsumerRecord {
    i: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    g: Vec<String>,
}

impl ConsumerRecord {
    fn of(c: &Consumer) -> Self {
        ConsumerRecord { i: c.id.clone(), u: c.username.clone(), c: c.custom_id.clone(), g: c.groups.clone() }
    }

    fn into_consumer(self) -> Rc<Consumer> {
        Rc::new(Consumer { id: self.i, username: self.u, custom_id: self.c, groups: self.g })
    }
}

/// One stored record. Which fields are set depends on the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The generation this record belongs to.
    g: u64,
    c: ConsumerRecord,
    /// key-auth credential id, basic/hmac username, jwt key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    /// basic-auth verifier (`sha256:<hex>` or `sha1:<hex>:<salt>`), hmac secret (base64), jwt
    /// secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pem: Option<String>,
}

impl Record {
    fn new(gen: u64, consumer: &Consumer) -> Self {
        Record { g: gen, c: ConsumerRecord::of(consumer), id: None, exp: None, s: None, alg: None, pem: None }
    }
}

fn encode_verifier(v: &PasswordVerifier) -> String {
    match v {
        PasswordVerifier::Sha256(d) => format!("sha256:{}", hex::encode(d)),
        PasswordVerifier::KongSha1 { digest, salt } => format!("sha1:{}:{salt}", hex::encode(digest)),
    }
}

fn decode_verifier(s: &str) -> Option<PasswordVerifier> {
    if let Some(h) = s.strip_prefix("sha256:") {
        let mut d = [0u8; 32];
        hex::decode_to_slice(h, &mut d).ok()?;
        return Some(PasswordVerifier::Sha256(d));
    }
    let (h, salt) = s.strip_prefix("sha1:")?.split_once(':')?;
    let mut digest = [0u8; 20];
    hex::decode_to_slice(h, &mut digest).ok()?;
    Some(PasswordVerifier::KongSha1 { digest, salt: salt.to_string() })
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Hand every record of a validated consumer population, for generation `gen`, to `put` one
/// at a time (a population of a million consumers is never held as records all at once).
pub fn for_each_record<E>(
    index: &ConsumerIndex,
    gen: u64,
    mut put: impl FnMut(Kind, &str, &Record) -> Result<(), E>,
) -> Result<(), E> {
    use base64::Engine;
    for c in index.consumers() {
        let r = Record::new(gen, c);
        put(Kind::ConsumerId, &c.id, &r)?;
        if let Some(u) = &c.username {
            put(Kind::ConsumerName, u, &r)?;
        }
    }
    for (digest, k) in index.key_credentials() {
        let mut r = Record::new(gen, &k.consumer);
        r.id = Some(k.id.clone());
        r.exp = k.expires_at;
        put(Kind::Key, &key_lookup(digest), &r)?;
    }
    for b in index.basic_credentials() {
        let mut r = Record::new(gen, &b.consumer);
        r.s = Some(encode_verifier(&b.verifier));
        put(Kind::Basic, &b.username, &r)?;
    }
    for h in index.hmac_credentials() {
        let mut r = Record::new(gen, &h.consumer);
        r.s = Some(b64().encode(h.secret()));
        put(Kind::Hmac, &h.username, &r)?;
    }
    for j in index.jwt_credentials() {
        let mut r = Record::new(gen, &j.consumer);
        r.alg = Some(j.algorithm.name().to_string());
        r.s = j.material.secret.clone();
        r.pem = j.material.rsa_public_key.clone();
        put(Kind::Jwt, &j.key, &r)?;
    }
    Ok(())
}

/// Why a store lookup could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// No generation has been written yet (or shared data is unavailable).
    NotLoaded,
}

/// Reads one store for one request: the generation is read once, on the first lookup.
pub struct StoreReader<'s> {
    name: &'s str,
    gen: Option<u64>,
}

thread_local! {
    /// Parsed jwt keys (parsing a public key costs far more than a lookup), per store and
    /// generation; bounded, and emptied when the generation changes.
    static JWT_CACHE: RefCell<(String, u64, HashMap<String, Rc<JwtCredential>>)> =
        RefCell::new((String::new(), 0, HashMap::new()));
}

const JWT_CACHE_MAX: usize = 4096;

impl<'s> StoreReader<'s> {
    pub fn new(name: &'s str) -> Self {
        StoreReader { name, gen: None }
    }

    pub fn name(&self) -> &str {
        self.name
    }

    fn read_gen(&self, host: &mut dyn Host) -> Result<u64, StoreError> {
        match host.shared_get(&gen_key(self.name)) {
            Ok(Some((v, _))) => std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).ok_or(StoreError::NotLoaded),
            _ => Err(StoreError::NotLoaded),
        }
    }

    fn generation(&mut self, host: &mut dyn Host) -> Result<u64, StoreError> {
        match self.gen {
            Some(g) => Ok(g),
            None => {
                let g = self.read_gen(host)?;
                self.gen = Some(g);
                Ok(g)
            }
        }
    }

    /// The record for `lookup`, consistent with the generation this request uses.
    fn get(&mut self, host: &mut dyn Host, kind: Kind, lookup: &str) -> Result<Option<Record>, StoreError> {
        let gen = self.generation(host)?;
        let record = match host.shared_get(&record_key(self.name, gen, kind, lookup)) {
            Ok(Some((v, _))) => serde_json::from_slice::<Record>(&v).ok(),
            _ => None,
        };
        match record {
            Some(r) if r.g == gen => Ok(Some(r)),
            Some(_) => {
                // A stale record, or the slot is being rewritten for a newer generation: switch
                // to the current generation once and look again.
                let now = self.read_gen(host)?;
                if now == gen {
                    return Ok(None);
                }
                self.gen = Some(now);
                Ok(match host.shared_get(&record_key(self.name, now, kind, lookup)) {
                    Ok(Some((v, _))) => serde_json::from_slice::<Record>(&v).ok().filter(|r| r.g == now),
                    _ => None,
                })
            }
            None => Ok(None),
        }
    }

    pub fn key(&mut self, host: &mut dyn Host, presented: &[u8]) -> Result<Option<Rc<KeyCredential>>, StoreError> {
        let lookup = key_lookup(&crate::consumers::key_digest(presented));
        Ok(self.get(host, Kind::Key, &lookup)?.map(|r| {
            Rc::new(KeyCredential { id: r.id.unwrap_or_default(), consumer: r.c.into_consumer(), expires_at: r.exp })
        }))
    }

    pub fn basic(&mut self, host: &mut dyn Host, username: &[u8]) -> Result<Option<Rc<BasicCredential>>, StoreError> {
        let Ok(username) = std::str::from_utf8(username) else { return Ok(None) };
        Ok(self.get(host, Kind::Basic, username)?.and_then(|r| {
            let verifier = decode_verifier(r.s.as_deref()?)?;
            Some(Rc::new(BasicCredential { username: username.to_string(), consumer: r.c.into_consumer(), verifier }))
        }))
    }

    pub fn hmac(&mut self, host: &mut dyn Host, username: &str) -> Result<Option<Rc<HmacCredential>>, StoreError> {
        use base64::Engine;
        Ok(self.get(host, Kind::Hmac, username)?.and_then(|r| {
            let secret = b64().decode(r.s.as_deref()?).ok()?;
            Some(Rc::new(HmacCredential::new(username.to_string(), r.c.into_consumer(), secret)))
        }))
    }

    pub fn jwt(&mut self, host: &mut dyn Host, key: &str) -> Result<Option<Rc<JwtCredential>>, StoreError> {
        let gen = self.generation(host)?;
        let cached = JWT_CACHE.with(|c| {
            let c = c.borrow();
            (c.0 == self.name && c.1 == gen).then(|| c.2.get(key).cloned()).flatten()
        });
        if cached.is_some() {
            return Ok(cached);
        }
        let Some(r) = self.get(host, Kind::Jwt, key)? else { return Ok(None) };
        let gen = self.gen.unwrap_or(gen);
        let Some(algorithm) = r.alg.as_deref().and_then(Algorithm::parse) else { return Ok(None) };
        let Ok(verifier) = VerifyingKey::parse(algorithm, r.s.as_deref(), r.pem.as_deref()) else { return Ok(None) };
        let credential = Rc::new(JwtCredential {
            key: key.to_string(),
            consumer: r.c.into_consumer(),
            algorithm,
            verifier,
            material: JwtMaterial::default(),
        });
        JWT_CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != self.name || c.1 != gen || c.2.len() >= JWT_CACHE_MAX {
                *c = (self.name.to_string(), gen, HashMap::new());
            }
            c.2.insert(key.to_string(), Rc::clone(&credential));
        });
        Ok(Some(credential))
    }

    /// Kong's `load_consumer`: by id, then by username.
    pub fn by_reference(&mut self, host: &mut dyn Host, reference: &str) -> Result<Option<Rc<Consumer>>, StoreError> {
        if let Some(r) = self.get(host, Kind::ConsumerId, reference)? {
            return Ok(Some(r.c.into_consumer()));
        }
        Ok(self.get(host, Kind::ConsumerName, reference)?.map(|r| r.c.into_consumer()))
    }
}

/// The writer's bookkeeping in `meta`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub gen: u64,
    /// Digest of the content of generation `gen`.
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Set while generation `gen` is being written (unix seconds of the claim); a claim older
    /// than [`WRITER_TIMEOUT_SECONDS`] is a writer that died and may be taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writing_since: Option<u64>,
}

pub const WRITER_TIMEOUT_SECONDS: u64 = 120;

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// This content was already the current generation (written by another worker or earlier).
    AlreadyCurrent(u64),
    /// A new generation was written and switched to.
    Switched { gen: u64, records: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Shared data refused a write.
    Unavailable,
    /// Other writers kept changing the store.
    Contended,
    /// Another writer is writing a different content right now; try again later.
    Busy,
}

/// The generation readers use, if any.
pub fn current_generation(host: &mut dyn Host, store: &str) -> Option<u64> {
    match host.shared_get(&gen_key(store)) {
        Ok(Some((v, _))) => std::str::from_utf8(&v).ok()?.parse().ok(),
        _ => None,
    }
}

pub fn read_meta(host: &mut dyn Host, store: &str) -> Result<(Meta, u32), WriteError> {
    match host.shared_get(&meta_key(store)) {
        Ok(Some((v, cas))) => Ok((serde_json::from_slice(&v).unwrap_or_default(), cas)),
        Ok(None) => Ok((Meta::default(), 0)),
        Err(_) => Err(WriteError::Unavailable),
    }
}

/// Write `index` as the next generation of `store` unless its content (`digest`) is already
/// current. The claim on `meta` is a compare-and-swap, so of several writers with the same
/// content exactly one writes it.
pub fn write(
    host: &mut dyn Host,
    store: &str,
    index: &ConsumerIndex,
    digest: &str,
    etag: Option<String>,
) -> Result<Written, WriteError> {
    let now = host.now_unix_seconds();
    for _ in 0..16 {
        let (meta, cas) = read_meta(host, store)?;
        // The next generation always follows the one readers use, so its slot is never theirs
        // (whatever a writer that died half-way left in `meta`).
        let live = current_generation(host, store).unwrap_or(0);
        if live > 0 && meta.gen == live && meta.digest == digest {
            return Ok(Written::AlreadyCurrent(live));
        }
        let next_gen = live + 1;
        let writing = meta.gen == next_gen && meta.writing_since.is_some_and(|t| now < t + WRITER_TIMEOUT_SECONDS);
        if writing && meta.digest != digest {
            return Err(WriteError::Busy);
        }
        // Another writer with this very content may be at it: writing the same records again is
        // harmless, and completes the generation should that writer die.
        if !writing {
            let claim =
                Meta { gen: next_gen, digest: digest.to_string(), etag: etag.clone(), writing_since: Some(now) };
            match host.shared_set(&meta_key(store), &serde_json::to_vec(&claim).unwrap_or_default(), cas) {
                Ok(()) => {}
                Err(SharedError::CasMismatch) => continue,
                Err(SharedError::Unavailable) => return Err(WriteError::Unavailable),
            }
        }
        let mut written = 0usize;
        for_each_record(index, next_gen, |kind, lookup, record| {
            let value = serde_json::to_vec(record).unwrap_or_default();
            written += 1;
            host.shared_set(&record_key(store, next_gen, kind, lookup), &value, 0).map_err(|_| WriteError::Unavailable)
        })?;
        host.shared_set(&gen_key(store), next_gen.to_string().as_bytes(), 0).map_err(|_| WriteError::Unavailable)?;
        let done = Meta { gen: next_gen, digest: digest.to_string(), etag, writing_since: None };
        host.shared_set(&meta_key(store), &serde_json::to_vec(&done).unwrap_or_default(), 0)
            .map_err(|_| WriteError::Unavailable)?;
        return Ok(Written::Switched { gen: next_gen, records: written });
    }
    Err(WriteError::Contended)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::pipeline::LogLevel;

    /// Shared data with CAS, like the proxy's.
    #[derive(Default)]
    struct Shared {
        data: HashMap<String, (Vec<u8>, u32)>,
        next_cas: u32,
        now: u64,
    }

    impl Host for Shared {
        fn now_unix_seconds(&mut self) -> u64 {
            self.now
        }
        fn log(&mut self, _: LogLevel, _: &str) {}
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
    }

    fn index(json: &str) -> ConsumerIndex {
        crate::config::parse_consumers_document(format!(r#"{{"consumers":{json}}}"#).as_bytes()).unwrap()
    }

    #[test]
    fn a_generation_is_written_once_and_read_back() {
        let mut host = Shared::default();
        let idx = index(
            r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}],"basicauth_credentials":[{"username":"ab","password":"p"}]}]"#,
        );
        assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::Switched { gen: 1, records: 4 }));
        assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::AlreadyCurrent(1)));
        let mut r = StoreReader::new("s");
        let k = r.key(&mut host, b"k1").unwrap().unwrap();
        assert_eq!(k.consumer.username.as_deref(), Some("a"));
        assert!(r.key(&mut host, b"k2").unwrap().is_none());
        let b = r.basic(&mut host, b"ab").unwrap().unwrap();
        assert!(b.verifier.verify(b"p"));
        assert_eq!(r.by_reference(&mut host, "a").unwrap().unwrap().username.as_deref(), Some("a"));
        // no key in shared data holds the secret
        assert!(host.data.keys().all(|k| !k.contains("k1")));
    }

    #[test]
    fn readers_see_one_generation_or_the_next_never_a_mix() {
        let mut host = Shared::default();
        let one = index(r#"[{"username":"a","keyauth_credentials":[{"key":"old"}]}]"#);
        let two = index(
            r#"[{"username":"a","keyauth_credentials":[{"key":"new"}]},{"username":"b","keyauth_credentials":[{"key":"b"}]}]"#,
        );
        write(&mut host, "s", &one, "d1", None).unwrap();
        // a reader that read generation 1 ...
        let mut during = StoreReader::new("s");
        assert!(during.key(&mut host, b"old").unwrap().is_some());
        write(&mut host, "s", &two, "d2", None).unwrap();
        // ... keeps a consistent view: generation 1's slot is untouched by generation 2
        assert!(during.key(&mut host, b"old").unwrap().is_some());
        let mut after = StoreReader::new("s");
        assert!(after.key(&mut host, b"old").unwrap().is_none(), "revoked");
        assert!(after.key(&mut host, b"new").unwrap().is_some());
        assert!(after.key(&mut host, b"b").unwrap().is_some(), "added");
        // generation 3 reuses generation 1's slot: stale records there are not seen
        let three = index(r#"[{"username":"c","keyauth_credentials":[{"key":"c"}]}]"#);
        write(&mut host, "s", &three, "d3", None).unwrap();
        let mut third = StoreReader::new("s");
        assert!(third.key(&mut host, b"old").unwrap().is_none(), "generation 1's record is stale");
        assert!(third.key(&mut host, b"c").unwrap().is_some());
        // a reader still on generation 2 that finds a generation-3 record switches forward
        assert!(during.key(&mut host, b"c").unwrap().is_some());
    }

    #[test]
    fn a_writer_that_failed_half_way_is_completed_by_the_next() {
        let mut host = Shared::default();
        let idx = index(r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}]}]"#);
        // a claim for this content without the switch (the writer died before `gen`)
        let claim = serde_json::to_vec(&Meta { gen: 1, digest: "d1".into(), etag: None, writing_since: None }).unwrap();
        host.shared_set(&meta_key("s"), &claim, 0).unwrap();
        assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::Switched { gen: 1, records: 3 }));
        assert!(StoreReader::new("s").key(&mut host, b"k1").unwrap().is_some());
        assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::AlreadyCurrent(1)));
    }

    #[test]
    fn a_new_generation_never_overwrites_the_slot_readers_use() {
        let mut host = Shared::default();
        let one = index(r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}]}]"#);
        write(&mut host, "s", &one, "d1", None).unwrap();
        // a writer of another content claimed generation 2 and died before switching
        let stale = Meta { gen: 2, digest: "dx".into(), etag: None, writing_since: Some(0) };
        host.shared_set(&meta_key("s"), &serde_json::to_vec(&stale).unwrap(), 0).unwrap();
        // ... its claim is stale (now = 0 + timeout is not before it): a third content takes over
        // generation 2 (slot 0), not 3 (slot 1, the one readers of generation 1 use)
        host.now = WRITER_TIMEOUT_SECONDS;
        let two = index(r#"[{"username":"b","keyauth_credentials":[{"key":"k2"}]}]"#);
        assert_eq!(write(&mut host, "s", &two, "d2", None), Ok(Written::Switched { gen: 2, records: 3 }));
        assert!(StoreReader::new("s").key(&mut host, b"k2").unwrap().is_some());
        // a live claim of another content makes a writer back off instead of racing it
        let live = Meta { gen: 3, digest: "dy".into(), etag: None, writing_since: Some(host.now) };
        host.shared_set(&meta_key("s"), &serde_json::to_vec(&live).unwrap(), 0).unwrap();
        assert_eq!(write(&mut host, "s", &one, "d1", None), Err(WriteError::Busy));
        assert!(StoreReader::new("s").key(&mut host, b"k2").unwrap().is_some());
    }

    #[test]
    fn nothing_written_is_not_loaded() {
        let mut host = Shared::default();
        assert_eq!(StoreReader::new("s").key(&mut host, b"k").err(), Some(StoreError::NotLoaded));
    }
}

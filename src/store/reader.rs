//! Reading: one request's lookups, consistent with one generation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::codec::Dec;
use super::{bucket_key, gen_key, id_lookup, key_lookup, lookup_hash, parse_gen, Kind, FORMAT};
use crate::consumers::{
    BasicCredential, Consumer, ConsumerLookup, HmacCredential, JwtCredential, JwtMaterial, KeyCredential, Lookup,
    NotLoaded, PasswordVerifier,
};
use crate::crypto::jwt_key::{Algorithm, VerifyingKey};
use crate::proxy::Host;

/// Why a store lookup could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// No generation has been written yet (or shared data is unavailable).
    NotLoaded,
}

/// Reads one store for one request: the generation is read once, on the first lookup.
pub struct StoreReader<'s> {
    name: &'s str,
    pub(super) gen: Option<(u64, u32)>,
}

thread_local! {
    /// Parsed jwt keys (parsing a public key costs far more than a lookup), per store and
    /// generation; bounded, and emptied when the generation changes.
    static JWT_CACHE: RefCell<(String, u64, HashMap<String, Rc<JwtCredential>>)> =
        RefCell::new((String::new(), 0, HashMap::new()));
}

const JWT_CACHE_MAX: usize = 4096;

/// The value of the record (`kind`, `lookup`) in a bucket of generation `gen`; `Err` when the
/// bucket is not of that generation (stale, emptied, or missing).
fn find_in_bucket<'b>(bucket: &'b [u8], gen: u64, kind: Kind, lookup: &[u8]) -> Result<Option<&'b [u8]>, ()> {
    let mut d = Dec(bucket);
    if d.u8() != Some(FORMAT) || d.take(8).and_then(|g| g.try_into().ok()).map(u64::from_le_bytes) != Some(gen) {
        return Err(());
    }
    while !d.is_empty() {
        let (Some(k), Some(l), Some(v)) = (d.u8(), d.bytes(), d.bytes()) else { return Ok(None) };
        if k == kind as u8 && l == lookup {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

impl<'s> StoreReader<'s> {
    pub fn new(name: &'s str) -> Self {
        StoreReader { name, gen: None }
    }

    pub fn name(&self) -> &str {
        self.name
    }

    fn read_gen(&self, host: &mut dyn Host) -> Result<(u64, u32), StoreError> {
        match host.shared_get(&gen_key(self.name)) {
            Ok(Some((v, _))) => parse_gen(&v).ok_or(StoreError::NotLoaded),
            _ => Err(StoreError::NotLoaded),
        }
    }

    fn generation(&mut self, host: &mut dyn Host) -> Result<(u64, u32), StoreError> {
        match self.gen {
            Some(g) => Ok(g),
            None => {
                let g = self.read_gen(host)?;
                self.gen = Some(g);
                Ok(g)
            }
        }
    }

    fn read_bucket(&self, host: &mut dyn Host, (gen, buckets): (u64, u32), hash: u32) -> Vec<u8> {
        match host.shared_get(&bucket_key(self.name, gen, hash % buckets)) {
            Ok(Some((v, _))) => v,
            _ => Vec::new(),
        }
    }

    /// Decode the record for (`kind`, `lookup`) with `decode`, consistent with the generation
    /// this request uses.
    fn get<T>(
        &mut self,
        host: &mut dyn Host,
        kind: Kind,
        lookup: &[u8],
        decode: impl FnOnce(Dec<'_>) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let gen = self.generation(host)?;
        let hash = lookup_hash(kind, lookup);
        let bucket = self.read_bucket(host, gen, hash);
        if let Ok(found) = find_in_bucket(&bucket, gen.0, kind, lookup) {
            return Ok(found.and_then(|v| decode(Dec(v))));
        }
        // A stale bucket (a newer generation was written, or this one was emptied after a switch):
        // move to the current generation once and look again.
        let now = self.read_gen(host)?;
        if now == gen {
            return Ok(None);
        }
        self.gen = Some(now);
        let bucket = self.read_bucket(host, now, hash);
        Ok(find_in_bucket(&bucket, now.0, kind, lookup).ok().flatten().and_then(|v| decode(Dec(v))))
    }

    pub fn key(&mut self, host: &mut dyn Host, presented: &[u8]) -> Result<Option<Rc<KeyCredential>>, StoreError> {
        let digest = crate::consumers::key_digest(presented);
        self.get(host, Kind::Key, key_lookup(&digest), |mut d| {
            let consumer = d.consumer()?;
            let id = d.id()?;
            let expires_at = d.varint()?.checked_sub(1);
            Some(Rc::new(KeyCredential { id, consumer, expires_at }))
        })
    }

    pub fn basic(&mut self, host: &mut dyn Host, username: &[u8]) -> Result<Option<Rc<BasicCredential>>, StoreError> {
        let Ok(username) = std::str::from_utf8(username) else { return Ok(None) };
        self.get(host, Kind::Basic, username.as_bytes(), |mut d| {
            let consumer = d.consumer()?;
            let verifier = match d.u8()? {
                0 => PasswordVerifier::Sha256(d.take(32)?.try_into().ok()?),
                tag => {
                    let digest = d.take(20)?.try_into().ok()?;
                    let salt = if tag == 1 { consumer.id.clone() } else { d.string()? };
                    PasswordVerifier::KongSha1 { digest, salt }
                }
            };
            Some(Rc::new(BasicCredential { username: username.to_string(), consumer, verifier }))
        })
    }

    pub fn hmac(&mut self, host: &mut dyn Host, username: &str) -> Result<Option<Rc<HmacCredential>>, StoreError> {
        self.get(host, Kind::Hmac, username.as_bytes(), |mut d| {
            let consumer = d.consumer()?;
            let secret = d.bytes()?.to_vec();
            Some(Rc::new(HmacCredential::new(username.to_string(), consumer, secret)))
        })
    }

    pub fn jwt(&mut self, host: &mut dyn Host, key: &str) -> Result<Option<Rc<JwtCredential>>, StoreError> {
        let (gen, _) = self.generation(host)?;
        let cached = JWT_CACHE.with(|c| {
            let c = c.borrow();
            (c.0 == self.name && c.1 == gen).then(|| c.2.get(key).cloned()).flatten()
        });
        if cached.is_some() {
            return Ok(cached);
        }
        let found = self.get(host, Kind::Jwt, key.as_bytes(), |mut d| {
            let consumer = d.consumer()?;
            let algorithm = Algorithm::parse(std::str::from_utf8(d.bytes()?).ok()?)?;
            let secret = d.opt_string()?;
            let pem = d.opt_string()?;
            let verifier = VerifyingKey::parse(algorithm, secret.as_deref(), pem.as_deref()).ok()?;
            Some(Rc::new(JwtCredential {
                key: key.to_string(),
                consumer,
                algorithm,
                verifier,
                material: JwtMaterial::default(),
            }))
        })?;
        let Some(credential) = found else { return Ok(None) };
        let gen = self.gen.map_or(gen, |g| g.0);
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
        if let Some(c) = self.get(host, Kind::ConsumerId, &id_lookup(reference), |mut d| d.consumer())? {
            return Ok(Some(c));
        }
        self.get(host, Kind::ConsumerName, reference.as_bytes(), |mut d| d.consumer())
    }
}

/// A store answers through the proxy's shared data; until its first generation is written it
/// answers [`NotLoaded`].
impl ConsumerLookup for StoreReader<'_> {
    fn key(&mut self, host: &mut dyn Host, presented_key: &[u8]) -> Lookup<KeyCredential> {
        StoreReader::key(self, host, presented_key).map_err(|_| self.not_loaded())
    }

    fn basic(&mut self, host: &mut dyn Host, username: &[u8]) -> Lookup<BasicCredential> {
        StoreReader::basic(self, host, username).map_err(|_| self.not_loaded())
    }

    fn hmac(&mut self, host: &mut dyn Host, username: &str) -> Lookup<HmacCredential> {
        StoreReader::hmac(self, host, username).map_err(|_| self.not_loaded())
    }

    fn jwt(&mut self, host: &mut dyn Host, key: &str) -> Lookup<JwtCredential> {
        StoreReader::jwt(self, host, key).map_err(|_| self.not_loaded())
    }

    fn by_reference(&mut self, host: &mut dyn Host, reference: &str) -> Lookup<Consumer> {
        StoreReader::by_reference(self, host, reference).map_err(|_| self.not_loaded())
    }
}

impl StoreReader<'_> {
    fn not_loaded(&self) -> NotLoaded {
        NotLoaded { store: self.name.to_string() }
    }
}

//! The verified-token cache of one jwt plugin instance (per worker: each worker has its own VM).
//!
//! A token whose signature was verified is remembered under the SHA-256 digest of its exact
//! bytes, with what the time checks need (`exp`, `nbf`) and the credential that verified it. A
//! later request with the same token skips decoding and the signature (the public-key
//! arithmetic is the cost of RS*/PS*/ES*), but still looks its credential up and is a hit only
//! if the lookup yields that very credential: a consumer store's new generation parses its
//! credentials anew, and a new configuration builds new plugins with empty caches, so no entry
//! outlives the configuration or store generation that verified it (a removed or rotated key
//! stops verifying at once). Every check that depends on the clock runs on every request.
//!
//! Only successes are remembered: a failure costs an attacker our verification time either way,
//! and remembering failures would let anyone fill the cache. The digest is a cryptographic one,
//! so no other token can take a remembered token's place.
//!
//! Bounded in entries and in bytes; when full, the oldest entry goes (first in, first out).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::consumers::JwtCredential;

pub type TokenDigest = [u8; 32];

pub fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
}

/// What a verified token established, apart from the time checks' outcome.
pub struct Verified {
    /// The credential that verified the signature (compared by identity on a hit).
    pub credential: Rc<JwtCredential>,
    /// The key claim's value the credential was found by.
    pub key: Box<str>,
    /// `exp` and `nbf` as numbers (`None`: absent or not a number), as the time checks read them.
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
}

impl Verified {
    /// What an entry holds in memory, roughly: the digest twice (map and queue), the entry and
    /// its key claim.
    fn bytes(&self) -> usize {
        2 * std::mem::size_of::<TokenDigest>() + std::mem::size_of::<Self>() + ENTRY_OVERHEAD + self.key.len()
    }
}

/// Hash map and queue bookkeeping per entry (an estimate, so that the byte bound holds).
const ENTRY_OVERHEAD: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// 0: no cache.
    pub max_entries: usize,
    pub max_bytes: usize,
}

pub struct TokenCache {
    limits: Limits,
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TokenDigest, (Rc<Verified>, u64)>,
    /// Insertion order: (digest, sequence number of the entry it was pushed for).
    order: VecDeque<(TokenDigest, u64)>,
    bytes: usize,
    next_seq: u64,
}

impl Inner {
    fn remove(&mut self, digest: &TokenDigest) {
        if let Some((entry, _)) = self.entries.remove(digest) {
            self.bytes = self.bytes.saturating_sub(entry.bytes());
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((digest, seq)) = self.order.pop_front() {
            // A queue slot of a removed or replaced entry is skipped.
            if self.entries.get(&digest).is_some_and(|(_, s)| *s == seq) {
                self.remove(&digest);
                return true;
            }
        }
        false
    }
}

impl TokenCache {
    pub fn new(limits: Limits) -> TokenCache {
        TokenCache { limits, inner: RefCell::new(Inner::default()) }
    }

    pub fn enabled(&self) -> bool {
        self.limits.max_entries > 0 && self.limits.max_bytes > 0
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Rc<Verified>> {
        self.inner.borrow().entries.get(digest).map(|(entry, _)| Rc::clone(entry))
    }

    pub fn remove(&self, digest: &TokenDigest) {
        self.inner.borrow_mut().remove(digest);
    }

    pub fn insert(&self, digest: TokenDigest, verified: Verified) {
        if !self.enabled() {
            return;
        }
        let size = verified.bytes();
        if size > self.limits.max_bytes {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        inner.remove(&digest);
        while inner.entries.len() >= self.limits.max_entries || inner.bytes + size > self.limits.max_bytes {
            if !inner.evict_oldest() {
                break;
            }
        }
        let seq = inner.next_seq;
        inner.next_seq = seq.wrapping_add(1);
        inner.bytes += size;
        inner.entries.insert(digest, (Rc::new(verified), seq));
        inner.order.push_back((digest, seq));
        // Slots of replaced entries accumulate only as fast as entries are replaced; keep the
        // queue within a small multiple of the map.
        if inner.order.len() > 2 * self.limits.max_entries.max(16) {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(d, s)| entries.get(d).is_some_and(|(_, live)| live == s));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.borrow().entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::{Consumer, JwtMaterial};
    use crate::crypto::jwt_key::{Algorithm, VerifyingKey};

    fn credential(key: &str) -> Rc<JwtCredential> {
        Rc::new(JwtCredential {
            key: key.to_string(),
            consumer: Rc::new(Consumer {
                id: "alice-id".into(),
                username: Some("alice".into()),
                custom_id: None,
                groups: Vec::new(),
            }),
            algorithm: Algorithm::HS256,
            verifier: VerifyingKey::parse(Algorithm::HS256, Some("secret"), None).unwrap(),
            material: JwtMaterial::default(),
        })
    }

    fn verified(key: &str) -> Verified {
        Verified { credential: credential(key), key: key.into(), exp: Some(10.0), nbf: None }
    }

    fn cache(max_entries: usize, max_bytes: usize) -> TokenCache {
        TokenCache::new(Limits { max_entries, max_bytes })
    }

    #[test]
    fn remembers_by_the_exact_token() {
        let c = cache(10, 1 << 20);
        c.insert(digest(b"a.b.c"), verified("k"));
        let hit = c.get(&digest(b"a.b.c")).expect("hit");
        assert_eq!((&*hit.key, hit.exp, hit.nbf), ("k", Some(10.0), None));
        assert!(c.get(&digest(b"a.b.C")).is_none());
        assert!(c.get(&digest(b"a.b.c ")).is_none());
    }

    #[test]
    fn bounded_in_entries_oldest_first() {
        let c = cache(3, 1 << 20);
        for i in 0..5 {
            c.insert(digest(format!("t{i}").as_bytes()), verified("k"));
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(&digest(b"t0")).is_none() && c.get(&digest(b"t1")).is_none());
        assert!(c.get(&digest(b"t2")).is_some() && c.get(&digest(b"t4")).is_some());
    }

    #[test]
    fn bounded_in_bytes() {
        let one = verified("k").bytes();
        let c = cache(1000, 3 * one);
        for i in 0..10 {
            c.insert(digest(format!("t{i}").as_bytes()), verified("k"));
        }
        assert_eq!(c.len(), 3);
        assert!(c.bytes() <= 3 * one);
        // an entry larger than the whole budget is not kept (and evicts nothing)
        c.insert(digest(b"big"), verified(&"x".repeat(4 * one)));
        assert!(c.get(&digest(b"big")).is_none());
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn replacing_and_removing_keep_the_accounting() {
        let c = cache(2, 1 << 20);
        for _ in 0..100 {
            c.insert(digest(b"same"), verified("k"));
        }
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), verified("k").bytes());
        c.insert(digest(b"other"), verified("k"));
        c.insert(digest(b"third"), verified("k"));
        // "same" was the oldest live entry
        assert!(c.get(&digest(b"same")).is_none());
        c.remove(&digest(b"other"));
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), verified("k").bytes());
        assert!(c.inner.borrow().order.len() <= 2 * 16);
    }

    #[test]
    fn disabled_keeps_nothing() {
        let c = cache(0, 1 << 20);
        assert!(!c.enabled());
        c.insert(digest(b"t"), verified("k"));
        assert!(c.is_empty());
    }
}

//! The shared consumer store: one copy of a consumer population in the proxy's shared data,
//! written once per proxy and read by every filter instance (`"consumer_store": "<name>"`) on
//! every worker.
//!
//! Layout (all keys under `consumer_auth/store:<name>:`):
//!
//! - `gen` — `"<N> <B>"`: the current generation `N` and its number of buckets `B`. Readers read
//!   it once per request.
//! - `meta` — the writer's bookkeeping (`{"gen":N,"digest":…,"etag":…,"slots":[…]}`), updated
//!   with compare-and-swap so that one writer per content fills the store (once per proxy, not
//!   once per worker).
//! - `<N % 2>:<i>` — bucket `i` of generation `N` (`0 ≤ i < B`): a version byte, `N`, then the
//!   records whose lookup hashes to `i`, 4–8 per bucket. A record is `kind`, lookup, value (binary,
//!   length-prefixed). Lookups: the first 16 bytes of the SHA-256 of an API key (never the key),
//!   a basic/hmac username, a jwt key, a consumer id (16 bytes for a canonical lower-case UUID),
//!   a consumer username.
//!
//! Many records per entry keep Envoy's per-entry cost (two strings and a map node, ~150 bytes)
//! off the per-consumer bill, and a lookup is still two shared-data reads (`gen`, one bucket).
//! Generation `N+1` is written into the slot generation `N` does not use, then `gen` is switched,
//! then `N`'s buckets are emptied: a reader sees all of `N` or all of `N+1`. A bucket whose
//! generation is not the one the reader switched to is stale and makes the reader re-read `gen`.

mod builder;
mod codec;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use builder::{Builder, Population};
pub use reader::{StoreError, StoreReader};
pub use writer::{read_meta, write, Meta, WriteError, Written, WRITER_TIMEOUT_SECONDS};

/// The first byte of every bucket: the record format.
pub(super) const FORMAT: u8 = 2;
/// Records per bucket at most on average (4–8, the bucket count being a power of two): a bucket
/// read copies a few hundred bytes, and a shared-data entry's own cost (~150 bytes in Envoy) is
/// shared by that many records. Measured at a million consumers (docs/PERFORMANCE.md): 32 per
/// bucket slowed lookups by ~7 %; 4 per bucket was ~1 % faster than 8 but cost ~80 bytes more
/// per consumer and ~0.9 s more to load.
pub(super) const RECORDS_PER_BUCKET: usize = 8;

/// What a record is looked up by. The last two are only checked for uniqueness, never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    Key = 1,
    Basic = 2,
    Hmac = 3,
    Jwt = 4,
    ConsumerId = 5,
    ConsumerName = 6,
    CustomId = 7,
    KeyId = 8,
}

impl Kind {
    pub(super) fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Key,
            2 => Kind::Basic,
            3 => Kind::Hmac,
            4 => Kind::Jwt,
            5 => Kind::ConsumerId,
            6 => Kind::ConsumerName,
            7 => Kind::CustomId,
            8 => Kind::KeyId,
            _ => return None,
        })
    }

    pub(super) fn stored(self) -> bool {
        self <= Kind::ConsumerName
    }
}

fn prefix(store: &str) -> String {
    format!("{}store:{store}:", crate::SHARED_DATA_PREFIX)
}

pub fn gen_key(store: &str) -> String {
    format!("{}gen", prefix(store))
}

pub fn meta_key(store: &str) -> String {
    format!("{}meta", prefix(store))
}

pub fn bucket_key(store: &str, gen: u64, bucket: u32) -> String {
    format!("{}{}:{bucket}", prefix(store), gen % 2)
}

/// `"<gen> <buckets>"`.
pub(super) fn parse_gen(v: &[u8]) -> Option<(u64, u32)> {
    let (g, b) = std::str::from_utf8(v).ok()?.split_once(' ')?;
    Some((g.parse().ok()?, b.parse::<u32>().ok()?.max(1)))
}

/// A stable 32-bit hash of a lookup (the same in every VM): FNV-1a, then a 64-bit finaliser.
pub(super) fn lookup_hash(kind: Kind, lookup: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&(kind as u8)).chain(lookup) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 32) as u32
}

/// The lookup of an API key: the first half of its SHA-256 digest.
pub(super) fn key_lookup(digest: &[u8; 32]) -> &[u8] {
    digest.get(..16).unwrap_or(digest)
}

/// A consumer id as a lookup: 16 bytes for a canonical lower-case UUID, else its text.
pub(super) fn id_lookup(id: &str) -> Vec<u8> {
    match canonical_uuid(id) {
        Some(u) => u.as_bytes().to_vec(),
        None => id.as_bytes().to_vec(),
    }
}

/// The text of an [`id_lookup`].
pub(super) fn id_text(lookup: &[u8]) -> String {
    match uuid::Uuid::from_slice(lookup) {
        Ok(u) => u.hyphenated().to_string(),
        Err(_) => String::from_utf8_lossy(lookup).into_owned(),
    }
}

/// The UUID of an id written in the canonical lower-case hyphenated form (36 characters).
pub(super) fn canonical_uuid(id: &str) -> Option<uuid::Uuid> {
    if id.len() != 36 || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(id).ok()
}

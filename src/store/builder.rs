//! Building a population: records collected in one arena as consumers are validated one at a
//! time, grouped into buckets and checked for uniqueness at the end.

use super::codec::{put_bytes, put_consumer, put_id, put_opt, put_varint, Dec};
use super::{id_lookup, id_text, key_lookup, lookup_hash, Kind, FORMAT, RECORDS_PER_BUCKET};
use crate::consumers::{PasswordVerifier, ValidConsumer};
use crate::error::{consumer_path, ConfigError, ErrorKind};

/// Records in chunks of 4 MiB (a record never straddles two): growing never copies what is
/// there, and running out of wasm memory is an error, not a trap.
#[derive(Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
}

const CHUNK_BITS: u32 = 22;
const CHUNK: usize = 1 << CHUNK_BITS;

impl Arena {
    /// Append `record`; its offset, or `None` when memory is exhausted or the arena is full.
    fn append(&mut self, record: &[u8]) -> Option<u32> {
        if record.len() > CHUNK {
            return None;
        }
        let room = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= record.len());
        if !room {
            let mut chunk = Vec::new();
            chunk.try_reserve_exact(CHUNK).ok()?;
            self.chunks.try_reserve(1).ok()?;
            self.chunks.push(chunk);
        }
        let index = self.chunks.len() - 1;
        let chunk = self.chunks.last_mut()?;
        let offset = u32::try_from((index << CHUNK_BITS) | chunk.len()).ok()?;
        chunk.extend_from_slice(record);
        Some(offset)
    }

    /// The bytes from `offset` to the end of its chunk.
    fn get(&self, offset: u32) -> Option<&[u8]> {
        let offset = offset as usize;
        self.chunks.get(offset >> CHUNK_BITS)?.get(offset & (CHUNK - 1)..)
    }
}

/// Collects the records of a consumer population as its consumers are validated one at a time,
/// then groups them into buckets and checks uniqueness (equal lookups share a bucket). In the
/// arena each consumer is encoded once (`[len][consumer]`), and each record is
/// `[consumer index u32][credential index u16][flags u8][kind u8][lookup][consumer offset u32]
/// [rest]`: its stored value is the consumer followed by `rest`, assembled only when a bucket is
/// written (the population is held once in wasm memory, not once per record).
pub struct Builder {
    at_path: String,
    arena: Arena,
    /// (lookup hash, then bucket; offset in `arena`)
    index: Vec<(u32, u32)>,
    stored: usize,
    scratch: Vec<u8>,
    record: Vec<u8>,
    /// The current consumer's offset in the arena.
    consumer: u32,
}

const META_LEN: usize = 7;
/// Flag: a key given as `key_hash` (names the field of a duplicate).
const FROM_HASH: u8 = 1;
/// A record whose value has no consumer (the check-only kinds).
const NO_CONSUMER: u32 = u32::MAX;

impl Builder {
    /// `at_path`: the JSON path of the consumers array, for refusals.
    pub fn new(at_path: &str) -> Builder {
        Builder {
            at_path: at_path.to_string(),
            arena: Arena::default(),
            index: Vec::new(),
            stored: 0,
            scratch: Vec::new(),
            record: Vec::new(),
            consumer: NO_CONSUMER,
        }
    }

    fn out_of_memory(&self) -> ConfigError {
        ConfigError::new(
            self.at_path.clone(),
            ErrorKind::Rule("too large: the consumers' records do not fit in the loader's memory"),
        )
    }

    /// A record of the current consumer (`with_consumer`: its value starts with the consumer),
    /// `self.scratch` being the rest of its value.
    fn push(
        &mut self,
        (ci, sub, flags): (usize, usize, u8),
        kind: Kind,
        lookup: &[u8],
        with_consumer: bool,
    ) -> Result<(), ConfigError> {
        let r = &mut self.record;
        r.clear();
        r.extend_from_slice(&(ci as u32).to_le_bytes());
        r.extend_from_slice(&(sub.min(usize::from(u16::MAX)) as u16).to_le_bytes());
        r.push(flags);
        r.push(kind as u8);
        put_bytes(r, lookup);
        r.extend_from_slice(&if with_consumer { self.consumer } else { NO_CONSUMER }.to_le_bytes());
        put_bytes(r, &self.scratch);
        let offset = self.arena.append(&self.record).ok_or_else(|| self.out_of_memory())?;
        self.index.try_reserve(1).map_err(|_| self.out_of_memory())?;
        self.index.push((lookup_hash(kind, lookup), offset));
        if kind.stored() {
            self.stored += 1;
        }
        Ok(())
    }

    /// Add consumer `ci` (its index in the document) and its credentials.
    pub fn add(&mut self, ci: usize, v: &ValidConsumer) -> Result<(), ConfigError> {
        let c = &*v.consumer;
        self.scratch.clear();
        put_consumer(&mut self.scratch, c);
        self.record.clear();
        put_bytes(&mut self.record, &self.scratch);
        self.consumer = self.arena.append(&self.record).ok_or_else(|| self.out_of_memory())?;
        self.scratch.clear();
        self.push((ci, 0, 0), Kind::ConsumerId, &id_lookup(&c.id), true)?;
        if let Some(u) = &c.username {
            self.push((ci, 0, 0), Kind::ConsumerName, u.as_bytes(), true)?;
        }
        if let Some(cid) = &c.custom_id {
            self.push((ci, 0, 0), Kind::CustomId, cid.as_bytes(), false)?;
        }
        for (ki, k) in v.keys.iter().enumerate() {
            self.scratch.clear();
            if k.explicit_id {
                self.push((ci, ki, 0), Kind::KeyId, &id_lookup(&k.credential.id), false)?;
            }
            put_id(&mut self.scratch, &k.credential.id);
            put_varint(&mut self.scratch, k.credential.expires_at.map_or(0, |e| e.saturating_add(1)));
            let flags = if k.from_hash { FROM_HASH } else { 0 };
            self.push((ci, ki, flags), Kind::Key, key_lookup(&k.digest), true)?;
        }
        for (bi, b) in v.basic.iter().enumerate() {
            self.scratch.clear();
            match &b.verifier {
                PasswordVerifier::Sha256(d) => {
                    self.scratch.push(0);
                    self.scratch.extend_from_slice(d);
                }
                // Kong's salt is the consumer id: not repeated.
                PasswordVerifier::KongSha1 { digest, salt } if *salt == c.id => {
                    self.scratch.push(1);
                    self.scratch.extend_from_slice(digest);
                }
                PasswordVerifier::KongSha1 { digest, salt } => {
                    self.scratch.push(2);
                    self.scratch.extend_from_slice(digest);
                    put_bytes(&mut self.scratch, salt.as_bytes());
                }
            }
            self.push((ci, bi, 0), Kind::Basic, b.username.as_bytes(), true)?;
        }
        for (hi, h) in v.hmac.iter().enumerate() {
            self.scratch.clear();
            put_bytes(&mut self.scratch, h.secret());
            self.push((ci, hi, 0), Kind::Hmac, h.username.as_bytes(), true)?;
        }
        for (ji, j) in v.jwt.iter().enumerate() {
            self.scratch.clear();
            put_bytes(&mut self.scratch, j.algorithm.name().as_bytes());
            put_opt(&mut self.scratch, j.material.secret.as_deref().map(str::as_bytes));
            put_opt(&mut self.scratch, j.material.rsa_public_key.as_deref().map(str::as_bytes));
            self.push((ci, ji, 0), Kind::Jwt, j.key.as_bytes(), true)?;
        }
        Ok(())
    }

    /// Group the records into buckets and refuse duplicates (naming the later one's path).
    pub fn finish(mut self) -> Result<Population, ConfigError> {
        // A power of two: the bucket is the hash's low bits.
        let buckets =
            u32::try_from(self.stored.div_ceil(RECORDS_PER_BUCKET).max(1).next_power_of_two()).unwrap_or(1 << 31);
        let mask = u64::from(buckets - 1);
        // By bucket, then hash: equal lookups are in one run of equal hashes, and only those
        // runs need their records compared.
        self.index.sort_unstable_by_key(|&(hash, _)| ((u64::from(hash) & mask) << 32) | u64::from(hash));
        let arena = &self.arena;
        // The duplicate the inline check would report: the earliest consumer, then field order.
        let mut first_duplicate: Option<(u32, u32)> = None;
        for run in self.index.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
            for (i, a) in run.iter().enumerate() {
                for b in run.iter().skip(i + 1) {
                    // the arena only grows: the smaller offset is the earlier in the document
                    let (first, later) = if a.1 < b.1 { (a.1, b.1) } else { (b.1, a.1) };
                    if same_lookup(arena, first, later)
                        && first_duplicate.is_none_or(|(_, d)| report_order(arena, later) < report_order(arena, d))
                    {
                        first_duplicate = Some((first, later));
                    }
                }
            }
        }
        if let Some((first, later)) = first_duplicate {
            return Err(duplicate(&self.at_path, arena, first, later));
        }
        Ok(Population { arena: self.arena, index: self.index, buckets, records: self.stored })
    }
}

/// A record of the arena: (consumer index, credential index, flags, kind, lookup); its stored
/// value is `consumer` then `rest`.
struct ArenaRecord<'a> {
    ci: u32,
    sub: u16,
    flags: u8,
    kind: Kind,
    lookup: &'a [u8],
    consumer: &'a [u8],
    rest: &'a [u8],
}

fn arena_record(arena: &Arena, offset: u32) -> Option<ArenaRecord<'_>> {
    let at = arena.get(offset)?;
    let ci = u32::from_le_bytes(at.get(..4)?.try_into().ok()?);
    let sub = u16::from_le_bytes(at.get(4..6)?.try_into().ok()?);
    let flags = *at.get(6)?;
    let mut d = Dec(at.get(META_LEN..)?);
    let kind = Kind::from_u8(d.u8()?)?;
    let lookup = d.bytes()?;
    let consumer = match u32::from_le_bytes(d.take(4)?.try_into().ok()?) {
        NO_CONSUMER => &[][..],
        c => Dec(arena.get(c)?).bytes()?,
    };
    let rest = d.bytes()?;
    Some(ArenaRecord { ci, sub, flags, kind, lookup, consumer, rest })
}

/// Document order of a record's field, as the inline check meets them: consumer, then the
/// consumer's username, custom_id, id, keys (key, then id), basic, hmac, jwt credentials.
fn report_order(arena: &Arena, offset: u32) -> (u32, u8, u16, u8) {
    let Some(r) = arena_record(arena, offset) else { return (u32::MAX, 0, 0, 0) };
    let (group, within) = match r.kind {
        Kind::ConsumerName => (0, 0),
        Kind::CustomId => (1, 0),
        Kind::ConsumerId => (2, 0),
        Kind::Key => (3, 0),
        Kind::KeyId => (3, 1),
        Kind::Basic => (4, 0),
        Kind::Hmac => (5, 0),
        Kind::Jwt => (6, 0),
    };
    (r.ci, group, r.sub, within)
}

/// Two records with the same lookup: a duplicate.
fn same_lookup(arena: &Arena, a: u32, b: u32) -> bool {
    match (arena_record(arena, a), arena_record(arena, b)) {
        (Some(a), Some(b)) => (a.kind, a.lookup) == (b.kind, b.lookup),
        _ => false,
    }
}

fn duplicate(at_path: &str, arena: &Arena, first: u32, later: u32) -> ConfigError {
    let (Some(first), Some(later)) = (arena_record(arena, first), arena_record(arena, later)) else {
        return ConfigError::new(at_path, ErrorKind::Rule("duplicate"));
    };
    let text = || String::from_utf8_lossy(later.lookup).into_owned();
    let sub = later.sub;
    let (field, what, value) = match later.kind {
        Kind::Key => {
            let f = if later.flags & FROM_HASH != 0 { "key_hash" } else { "key" };
            (format!("keyauth_credentials[{sub}].{f}"), "key", None)
        }
        Kind::KeyId => (format!("keyauth_credentials[{sub}].id"), "credential id", Some(id_text(later.lookup))),
        Kind::Basic => (format!("basicauth_credentials[{sub}].username"), "username", Some(text())),
        Kind::Hmac => (format!("hmacauth_credentials[{sub}].username"), "username", Some(text())),
        Kind::Jwt => (format!("jwt_secrets[{sub}].key"), "key", Some(text())),
        Kind::ConsumerId => {
            let id =
                uuid::Uuid::from_slice(later.lookup).map(|u| u.hyphenated().to_string()).unwrap_or_else(|_| text());
            ("id".to_string(), "id", Some(id))
        }
        Kind::ConsumerName => ("username".to_string(), "username", Some(text())),
        Kind::CustomId => ("custom_id".to_string(), "custom_id", Some(text())),
    };
    ConfigError::new(
        consumer_path(at_path, later.ci as usize, &field),
        ErrorKind::Duplicate { what, value, other: consumer_path(at_path, first.ci as usize, "") },
    )
}

/// A validated population grouped into buckets, ready to be written as any generation.
pub struct Population {
    arena: Arena,
    /// (lookup hash, offset), sorted by bucket (`hash % buckets`).
    index: Vec<(u32, u32)>,
    pub(super) buckets: u32,
    pub(super) records: usize,
}

impl Population {
    pub fn records(&self) -> usize {
        self.records
    }

    /// Each bucket's stored bytes for generation `gen`, in bucket order (empty buckets too).
    pub(super) fn for_each_bucket<E>(
        &self,
        gen: u64,
        mut put: impl FnMut(u32, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut buf = Vec::with_capacity(4096);
        let mut records = self.index.iter().peekable();
        for bucket in 0..self.buckets {
            buf.clear();
            buf.push(FORMAT);
            buf.extend_from_slice(&gen.to_le_bytes());
            while let Some((_, offset)) = records.next_if(|e| e.0 % self.buckets == bucket) {
                if let Some(r) = arena_record(&self.arena, *offset) {
                    if r.kind.stored() {
                        buf.push(r.kind as u8);
                        put_bytes(&mut buf, r.lookup);
                        put_varint(&mut buf, (r.consumer.len() + r.rest.len()) as u64);
                        buf.extend_from_slice(r.consumer);
                        buf.extend_from_slice(r.rest);
                    }
                }
            }
            put(bucket, &buf)?;
        }
        Ok(())
    }
}

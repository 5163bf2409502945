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

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::config::{consumer_path, ConfigError, ErrorKind, ValidConsumer};
use crate::consumers::{
    BasicCredential, Consumer, HmacCredential, JwtCredential, JwtMaterial, KeyCredential, PasswordVerifier,
};
use crate::crypto::jwt_key::{Algorithm, VerifyingKey};
use crate::pipeline::{Host, SharedError};

/// The first byte of every bucket: the record format.
const FORMAT: u8 = 2;
/// Records per bucket at most on average (4–8, the bucket count being a power of two): a bucket
/// read copies a few hundred bytes, and a shared-data entry's own cost (~150 bytes in Envoy) is
/// shared by that many records. Measured at a million consumers (docs/PERFORMANCE.md): 32 per
/// bucket slowed lookups by ~7 %; 4 per bucket was ~1 % faster than 8 but cost ~80 bytes more
/// per consumer and ~0.9 s more to load.
const RECORDS_PER_BUCKET: usize = 8;

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
    fn from_u8(b: u8) -> Option<Kind> {
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

    fn stored(self) -> bool {
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
fn parse_gen(v: &[u8]) -> Option<(u64, u32)> {
    let (g, b) = std::str::from_utf8(v).ok()?.split_once(' ')?;
    Some((g.parse().ok()?, b.parse::<u32>().ok()?.max(1)))
}

/// A stable 32-bit hash of a lookup (the same in every VM): FNV-1a, then a 64-bit finaliser.
fn lookup_hash(kind: Kind, lookup: &[u8]) -> u32 {
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
fn key_lookup(digest: &[u8; 32]) -> &[u8] {
    digest.get(..16).unwrap_or(digest)
}

/// A consumer id as a lookup: 16 bytes for a canonical lower-case UUID, else its text.
fn id_lookup(id: &str) -> Vec<u8> {
    match canonical_uuid(id) {
        Some(u) => u.as_bytes().to_vec(),
        None => id.as_bytes().to_vec(),
    }
}

/// The text of an [`id_lookup`].
fn id_text(lookup: &[u8]) -> String {
    match uuid::Uuid::from_slice(lookup) {
        Ok(u) => u.hyphenated().to_string(),
        Err(_) => String::from_utf8_lossy(lookup).into_owned(),
    }
}

/// The UUID of an id written in the canonical lower-case hyphenated form (36 characters).
fn canonical_uuid(id: &str) -> Option<uuid::Uuid> {
    if id.len() != 36 || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(id).ok()
}

// ---------------------------------------------------------------------------------------------
// Record encoding: varint lengths, binary ids.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
        None => out.push(0),
    }
}

/// A UUID in 16 bytes when its text is the canonical lower-case form, else as text.
fn put_id(out: &mut Vec<u8>, id: &str) {
    match canonical_uuid(id) {
        Some(u) => {
            out.push(0);
            out.extend_from_slice(u.as_bytes());
        }
        None => {
            out.push(1);
            put_bytes(out, id.as_bytes());
        }
    }
}

fn put_consumer(out: &mut Vec<u8>, c: &Consumer) {
    put_id(out, &c.id);
    put_opt(out, c.username.as_deref().map(str::as_bytes));
    put_opt(out, c.custom_id.as_deref().map(str::as_bytes));
    put_varint(out, c.groups.len() as u64);
    for g in &c.groups {
        put_bytes(out, g.as_bytes());
    }
}

/// Reads what the `put_*` functions wrote; `None` on anything malformed (never a panic).
struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_string)
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            _ => self.string().map(Some),
        }
    }

    fn id(&mut self) -> Option<String> {
        match self.u8()? {
            0 => Some(uuid::Uuid::from_slice(self.take(16)?).ok()?.hyphenated().to_string()),
            _ => self.string(),
        }
    }

    fn consumer(&mut self) -> Option<Rc<Consumer>> {
        let id = self.id()?;
        let username = self.opt_string()?;
        let custom_id = self.opt_string()?;
        let n = self.varint()?;
        let mut groups = Vec::new();
        for _ in 0..n {
            groups.push(self.string()?);
        }
        Some(Rc::new(Consumer { id, username, custom_id, groups }))
    }
}

// ---------------------------------------------------------------------------------------------
// Building a population: records collected in one arena, grouped into buckets at the end.

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
    buckets: u32,
    records: usize,
}

impl Population {
    pub fn records(&self) -> usize {
        self.records
    }

    /// Each bucket's stored bytes for generation `gen`, in bucket order (empty buckets too).
    fn for_each_bucket<E>(&self, gen: u64, mut put: impl FnMut(u32, &[u8]) -> Result<(), E>) -> Result<(), E> {
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

// ---------------------------------------------------------------------------------------------
// Reading.

/// Why a store lookup could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// No generation has been written yet (or shared data is unavailable).
    NotLoaded,
}

/// Reads one store for one request: the generation is read once, on the first lookup.
pub struct StoreReader<'s> {
    name: &'s str,
    gen: Option<(u64, u32)>,
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

// ---------------------------------------------------------------------------------------------
// Writing.

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
    /// How many buckets of each slot may hold data (so that a smaller generation empties the
    /// rest).
    #[serde(default)]
    pub slots: [u32; 2],
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

/// The generation readers use and its bucket count, if any.
fn live_generation(host: &mut dyn Host, store: &str) -> Option<(u64, u32)> {
    match host.shared_get(&gen_key(store)) {
        Ok(Some((v, _))) => parse_gen(&v),
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

fn set(host: &mut dyn Host, key: &str, value: &[u8], cas: u32) -> Result<(), WriteError> {
    host.shared_set(key, value, cas).map_err(|_| WriteError::Unavailable)
}

fn slot(gen: u64) -> usize {
    (gen % 2) as usize
}

/// Write `population` as the next generation of `store` unless its content (`digest`) is
/// already current. The claim on `meta` is a compare-and-swap, so of several writers with the
/// same content exactly one writes it.
pub fn write(
    host: &mut dyn Host,
    store: &str,
    population: &Population,
    digest: &str,
    etag: Option<String>,
) -> Result<Written, WriteError> {
    let now = host.now_unix_seconds();
    for _ in 0..16 {
        let (meta, cas) = read_meta(host, store)?;
        // The next generation always follows the one readers use, so its slot is never theirs
        // (whatever a writer that died half-way left in `meta`).
        let live = live_generation(host, store);
        let live_gen = live.map_or(0, |(g, _)| g);
        if live_gen > 0 && meta.gen == live_gen && meta.digest == digest {
            return Ok(Written::AlreadyCurrent(live_gen));
        }
        let next_gen = live_gen + 1;
        let writing = meta.gen == next_gen && meta.writing_since.is_some_and(|t| now < t + WRITER_TIMEOUT_SECONDS);
        if writing && meta.digest != digest {
            return Err(WriteError::Busy);
        }
        // Buckets of the next slot that may hold data: what the last writers recorded, and the
        // buckets of the live generation's predecessor (same slot) if it was never emptied.
        let mut slots = meta.slots;
        if let Some(s) = slots.get_mut(slot(next_gen)) {
            *s = (*s).max(population.buckets);
        }
        // Another writer with this very content may be at it: writing the same records again is
        // harmless, and completes the generation should that writer die.
        if !writing {
            let claim =
                Meta { gen: next_gen, digest: digest.to_string(), etag: etag.clone(), writing_since: Some(now), slots };
            match host.shared_set(&meta_key(store), &serde_json::to_vec(&claim).unwrap_or_default(), cas) {
                Ok(()) => {}
                Err(SharedError::CasMismatch) => continue,
                Err(SharedError::Unavailable) => return Err(WriteError::Unavailable),
            }
        }
        population.for_each_bucket(next_gen, |i, bytes| set(host, &bucket_key(store, next_gen, i), bytes, 0))?;
        let next_slot = slots.get(slot(next_gen)).copied().unwrap_or(0);
        for i in population.buckets..next_slot {
            set(host, &bucket_key(store, next_gen, i), b"", 0)?;
        }
        set(host, &gen_key(store), format!("{next_gen} {}", population.buckets).as_bytes(), 0)?;
        // The previous generation's buckets are no longer read (a reader still on it finds an
        // empty bucket and moves to this one): free them.
        let previous = live.map_or(0, |(_, b)| b).max(slots.get(slot(live_gen)).copied().unwrap_or(0));
        if live_gen > 0 {
            for i in 0..previous {
                set(host, &bucket_key(store, live_gen, i), b"", 0)?;
            }
        }
        let mut slots_after = [0u32; 2];
        if let Some(s) = slots_after.get_mut(slot(next_gen)) {
            *s = population.buckets;
        }
        let done = Meta { gen: next_gen, digest: digest.to_string(), etag, writing_since: None, slots: slots_after };
        set(host, &meta_key(store), &serde_json::to_vec(&done).unwrap_or_default(), 0)?;
        return Ok(Written::Switched { gen: next_gen, records: population.records });
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

    fn index(json: &str) -> Population {
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
        // ... finds generation 1's buckets emptied after the switch and moves to generation 2 as
        // a whole: never a mix
        assert!(during.key(&mut host, b"old").unwrap().is_none());
        assert!(during.key(&mut host, b"new").unwrap().is_some());
        assert_eq!(during.gen.map(|g| g.0), Some(2));
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
        let claim = serde_json::to_vec(&Meta {
            gen: 1,
            digest: "d1".into(),
            etag: None,
            writing_since: None,
            ..Default::default()
        })
        .unwrap();
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
        let stale = Meta { gen: 2, digest: "dx".into(), etag: None, writing_since: Some(0), ..Default::default() };
        host.shared_set(&meta_key("s"), &serde_json::to_vec(&stale).unwrap(), 0).unwrap();
        // ... its claim is stale (now = 0 + timeout is not before it): a third content takes over
        // generation 2 (slot 0), not 3 (slot 1, the one readers of generation 1 use)
        host.now = WRITER_TIMEOUT_SECONDS;
        let two = index(r#"[{"username":"b","keyauth_credentials":[{"key":"k2"}]}]"#);
        assert_eq!(write(&mut host, "s", &two, "d2", None), Ok(Written::Switched { gen: 2, records: 3 }));
        assert!(StoreReader::new("s").key(&mut host, b"k2").unwrap().is_some());
        // a live claim of another content makes a writer back off instead of racing it
        let live =
            Meta { gen: 3, digest: "dy".into(), etag: None, writing_since: Some(host.now), ..Default::default() };
        host.shared_set(&meta_key("s"), &serde_json::to_vec(&live).unwrap(), 0).unwrap();
        assert_eq!(write(&mut host, "s", &one, "d1", None), Err(WriteError::Busy));
        assert!(StoreReader::new("s").key(&mut host, b"k2").unwrap().is_some());
    }

    #[test]
    fn a_large_population_is_found_whole_and_buckets_are_freed() {
        let mut host = Shared::default();
        let doc = |n: usize, tag: &str| {
            let consumers: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        r#"{{"username":"u{i}","keyauth_credentials":[{{"key":"{tag}-{i}"}}],"basicauth_credentials":[{{"username":"b{i}","password":"p{i}"}}]}}"#
                    )
                })
                .collect();
            index(&format!("[{}]", consumers.join(",")))
        };
        let big = doc(3000, "a");
        assert_eq!(big.records(), 12_000);
        write(&mut host, "s", &big, "d1", None).unwrap();
        let mut r = StoreReader::new("s");
        for i in (0..3000).step_by(7) {
            let k = r.key(&mut host, format!("a-{i}").as_bytes()).unwrap().unwrap();
            assert_eq!(k.consumer.username.as_deref(), Some(format!("u{i}").as_str()));
            assert!(r
                .basic(&mut host, format!("b{i}").as_bytes())
                .unwrap()
                .unwrap()
                .verifier
                .verify(format!("p{i}").as_bytes()));
            assert!(r.by_reference(&mut host, &format!("u{i}")).unwrap().is_some());
        }
        // one shared-data entry per 4–8 records, not one per record
        let buckets = host.data.keys().filter(|k| k.starts_with("consumer_auth/store:s:1:")).count();
        assert_eq!(buckets, 12_000usize.div_ceil(RECORDS_PER_BUCKET).next_power_of_two());
        // a smaller generation: generation 1's buckets are emptied, none of its keys remain
        let small = doc(10, "b");
        write(&mut host, "s", &small, "d2", None).unwrap();
        let used: usize =
            host.data.iter().filter(|(k, v)| k.contains(":s:") && !k.ends_with("meta") && !v.0.is_empty()).count();
        assert_eq!(used, 40usize.div_ceil(RECORDS_PER_BUCKET).next_power_of_two() + 1, "its buckets and `gen`");
        let mut r = StoreReader::new("s");
        assert!(r.key(&mut host, b"a-5").unwrap().is_none());
        assert!(r.key(&mut host, b"b-5").unwrap().is_some());
        // and a larger one again into slot 1: nothing stale is found
        write(&mut host, "s", &doc(50, "c"), "d3", None).unwrap();
        let mut r = StoreReader::new("s");
        assert!(r.key(&mut host, b"a-5").unwrap().is_none());
        assert!(r.key(&mut host, b"b-5").unwrap().is_none());
        assert!(r.key(&mut host, b"c-49").unwrap().is_some());
    }

    #[test]
    fn duplicates_across_the_population_are_refused_with_both_paths() {
        let refused = |json: &str| match crate::config::parse_consumers_document(json.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {json}"),
        };
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]},{"username":"b","keyauth_credentials":[{"key":"x"},{"key":"k"}]}]}"#
            ),
            "consumers[1].keyauth_credentials[1].key: duplicate key (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a"},{"username":"a"}]}"#),
            "consumers[1].username: duplicate username 'a' (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a","custom_id":"c"},{"username":"b","custom_id":"c"}]}"#),
            "consumers[1].custom_id: duplicate custom_id 'c' (also used by consumers[0])"
        );
        let id = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
        assert_eq!(
            refused(&format!(r#"{{"consumers":[{{"id":"{id}","username":"a"}},{{"id":"{id}","username":"b"}}]}}"#)),
            format!("consumers[1].id: duplicate id '{id}' (also used by consumers[0])")
        );
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","basicauth_credentials":[{"username":"x","password":"1"}]},{"username":"b","basicauth_credentials":[{"username":"x","password":"2"}]}]}"#
            ),
            "consumers[1].basicauth_credentials[0].username: duplicate username 'x' (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a","keyauth_credentials":[{"id":"0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77","key":"1"}]},{"username":"b","keyauth_credentials":[{"id":"0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77","key":"2"}]}]}"#),
            "consumers[1].keyauth_credentials[0].id: duplicate credential id '0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77' (also used by consumers[0])"
        );
        // the streamed parse keeps serde's paths, and other top-level fields are skipped
        assert_eq!(
            refused(
                r#"{"_format_version":"3.0","services":[{"x":[1,{"y":2}]}],"consumers":[{"username":"a"},{"username":"b","acls":[{"group":1}]}]}"#
            ),
            "consumers[1].acls[0].group: expected a string"
        );
        assert!(refused(r#"{"consumers":[{"username":"a"}]"#).starts_with("invalid JSON"));
        assert!(crate::config::parse_consumers_document(br#"{"other":1}"#).unwrap().records() == 0);
    }

    #[test]
    fn hmac_and_jwt_duplicates_are_refused_too() {
        let refused = |json: &str| crate::config::parse_consumers_document(json.as_bytes()).err().unwrap().to_string();
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","hmacauth_credentials":[{"username":"h","secret":"s1"}]},{"username":"b","hmacauth_credentials":[{"username":"h","secret":"s2"}]}]}"#
            ),
            "consumers[1].hmacauth_credentials[0].username: duplicate username 'h' (also used by consumers[0])"
        );
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","jwt_secrets":[{"key":"iss","secret":"s1"}]},{"username":"b","jwt_secrets":[{"key":"x","secret":"s"},{"key":"iss","secret":"s2"}]}]}"#
            ),
            "consumers[1].jwt_secrets[1].key: duplicate key 'iss' (also used by consumers[0])"
        );
    }

    #[test]
    fn corrupt_buckets_answer_not_found_never_panic() {
        let mut host = Shared::default();
        let idx = index(r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}]}]"#);
        write(&mut host, "s", &idx, "d1", None).unwrap();
        let buckets: Vec<String> =
            host.data.keys().filter(|k| k.starts_with("consumer_auth/store:s:1:")).cloned().collect();
        let mut valid = Vec::new();
        for k in &buckets {
            valid.push(host.data[k].0.clone());
        }
        // every truncation of every bucket, and some garbage
        for (k, v) in buckets.iter().zip(&valid) {
            for cut in 0..v.len() {
                host.data.insert(k.clone(), (v[..cut].to_vec(), 1));
                let mut r = StoreReader::new("s");
                let _ = r.key(&mut host, b"k1");
                let _ = r.by_reference(&mut host, "a");
            }
            let mut garbage = v.clone();
            for b in garbage.iter_mut().skip(9) {
                *b = 0xff;
            }
            host.data.insert(k.clone(), (garbage, 1));
            assert!(StoreReader::new("s").key(&mut host, b"k1").unwrap().is_none());
        }
        host.data.insert(gen_key("s"), (b"x y".to_vec(), 1));
        assert_eq!(StoreReader::new("s").key(&mut host, b"k1").err(), Some(StoreError::NotLoaded));
    }

    #[test]
    fn nothing_written_is_not_loaded() {
        let mut host = Shared::default();
        assert_eq!(StoreReader::new("s").key(&mut host, b"k").err(), Some(StoreError::NotLoaded));
    }
}

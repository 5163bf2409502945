//! Writing: a population as the next generation, claimed with compare-and-swap so that one
//! writer per content fills the store.

use serde::{Deserialize, Serialize};

use super::builder::Population;
use super::{bucket_key, gen_key, meta_key, parse_gen};
use crate::proxy::{Host, SharedError};

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

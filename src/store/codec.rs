//! The record encoding: varint lengths, binary ids, a consumer; read back defensively.

use std::rc::Rc;

use super::canonical_uuid;
use crate::consumers::Consumer;

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(super) fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
        None => out.push(0),
    }
}

/// A UUID in 16 bytes when its text is the canonical lower-case form, else as text.
pub(super) fn put_id(out: &mut Vec<u8>, id: &str) {
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

pub(super) fn put_consumer(out: &mut Vec<u8>, c: &Consumer) {
    put_id(out, &c.id);
    put_opt(out, c.username.as_deref().map(str::as_bytes));
    put_opt(out, c.custom_id.as_deref().map(str::as_bytes));
    put_varint(out, c.groups.len() as u64);
    for g in &c.groups {
        put_bytes(out, g.as_bytes());
    }
}

/// Reads what the `put_*` functions wrote; `None` on anything malformed (never a panic).
pub(super) struct Dec<'a>(pub(super) &'a [u8]);

impl<'a> Dec<'a> {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    pub(super) fn varint(&mut self) -> Option<u64> {
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

    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    pub(super) fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_string)
    }

    pub(super) fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            _ => self.string().map(Some),
        }
    }

    pub(super) fn id(&mut self) -> Option<String> {
        match self.u8()? {
            0 => Some(uuid::Uuid::from_slice(self.take(16)?).ok()?.hyphenated().to_string()),
            _ => self.string(),
        }
    }

    pub(super) fn consumer(&mut self) -> Option<Rc<Consumer>> {
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

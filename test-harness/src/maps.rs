//! Header maps (Envoy-like: lowercase names, ordered, duplicates kept, byte values)
//! and the proxy-wasm map serialization format.

/// An ordered multimap of header name (lowercase) to raw byte value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

/// Lowercases a header name given as raw bytes (non-UTF-8 bytes are replaced).
pub(crate) fn normalize_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.add(n.as_ref(), v.as_ref());
        }
        m
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<(String, Vec<u8>)> {
        self.entries
    }

    /// First value for `name` (case-insensitive), like Envoy's `getHeaderMapValue`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let name = normalize_name(name);
        self.entries.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_slice())
    }

    /// All values for `name`, in order.
    pub fn get_all(&self, name: &[u8]) -> Vec<&[u8]> {
        let name = normalize_name(name);
        self.entries.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_slice()).collect()
    }

    /// Appends a value (keeps existing ones).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.entries.push((normalize_name(name), value.to_vec()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        let name = normalize_name(name);
        self.entries.retain(|(n, _)| *n != name);
    }

    /// Replaces all values of `name` by a single one; the new value takes the position of
    /// the first existing occurrence (or is appended when absent).
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let key = normalize_name(name);
        match self.entries.iter().position(|(n, _)| *n == key) {
            Some(pos) => {
                self.entries[pos].1 = value.to_vec();
                let mut i = 0;
                self.entries.retain(|(n, _)| {
                    let keep = *n != key || i == pos;
                    i += 1;
                    keep
                });
            }
            None => self.entries.push((key, value.to_vec())),
        }
    }

    /// Serializes in the proxy-wasm format: u32 count, (u32 keylen, u32 vallen)*, (key\0 value\0)*.
    pub fn serialize(&self) -> Vec<u8> {
        serialize_pairs(self.entries.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
    }
}

/// Serializes pairs in the proxy-wasm map format.
pub fn serialize_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let count = pairs.clone().count();
    let mut out = Vec::new();
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the proxy-wasm map format. Returns `None` on malformed input (never panics).
/// An empty input is an empty map.
pub fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let rd = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = rd(0)?;
    let mut p = count.checked_mul(8)?.checked_add(4)?;
    if p > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let klen = rd(4 + i * 8)?;
        let vlen = rd(8 + i * 8)?;
        let key = bytes.get(p..p.checked_add(klen)?)?.to_vec();
        p = p.checked_add(klen)? + 1;
        let value = bytes.get(p..p.checked_add(vlen)?)?.to_vec();
        p = p.checked_add(vlen)? + 1;
        if p > bytes.len() {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_semantics() {
        let mut m = HeaderMap::new();
        m.add(b"X-A", b"1");
        m.add(b"x-b", b"\xff");
        m.add(b"x-a", b"2");
        assert_eq!(m.get(b"X-a"), Some(&b"1"[..]));
        assert_eq!(m.get_all(b"x-a").len(), 2);
        let parsed = deserialize_pairs(&m.serialize()).unwrap();
        assert_eq!(parsed[1], (b"x-b".to_vec(), b"\xff".to_vec()));
        m.replace(b"x-a", b"3");
        assert_eq!(m.entries().len(), 2);
        assert_eq!(m.entries()[0], ("x-a".to_string(), b"3".to_vec()));
        m.remove(b"X-B");
        assert_eq!(m.len(), 1);
        assert!(deserialize_pairs(&[5, 0, 0, 0]).is_none());
        assert_eq!(deserialize_pairs(&[0, 0, 0, 0]).unwrap().len(), 0);
    }
}

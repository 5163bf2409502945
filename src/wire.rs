//! The proxy-wasm header-map serialisation: `u32 count`, then `(u32 key_len, u32 value_len)` per
//! pair, then each `key \0 value \0`. Parsed defensively: a malformed map is `None`, never a trap.

use crate::request::Header;

pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<Header>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = u32_at(0)?;
    let mut pos = count.checked_mul(8)?.checked_add(4)?;
    let mut out = Vec::with_capacity(count.min(1024));
    for n in 0..count {
        let sizes = 4 + n * 8;
        let (key_len, value_len) = (u32_at(sizes)?, u32_at(sizes + 4)?);
        let key = bytes.get(pos..pos.checked_add(key_len)?)?;
        pos = pos.checked_add(key_len)?.checked_add(1)?;
        let value = bytes.get(pos..pos.checked_add(value_len)?)?;
        pos = pos.checked_add(value_len)?.checked_add(1)?;
        // (names are ASCII: validated and copied once; `from_utf8_lossy` walks chunk by chunk)
        let name = match std::str::from_utf8(key) {
            Ok(name) => name.to_owned(),
            Err(_) => String::from_utf8_lossy(key).into_owned(),
        };
        out.push((name, value.to_vec()));
    }
    Some(out)
}

pub fn serialize_map(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_binary_values() {
        let pairs: Vec<(&str, &[u8])> = vec![(":path", b"/x"), ("a", b"\xff\x00z"), ("a", b"")];
        let bytes = serialize_map(&pairs);
        let back = deserialize_map(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[1], ("a".to_string(), b"\xff\x00z".to_vec()));
    }

    #[test]
    fn malformed_maps_are_refused_not_trapped() {
        assert_eq!(deserialize_map(&[1, 0]), None);
        assert_eq!(deserialize_map(&[255, 255, 255, 255]), None);
        let mut bytes = serialize_map(&[("k", b"v")]);
        bytes.truncate(bytes.len() - 2);
        assert_eq!(deserialize_map(&bytes), None);
    }
}

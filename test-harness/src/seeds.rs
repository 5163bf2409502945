//! Fuzz seeds taken from the tests (`make fuzz-seeds`, docs/RELIABILITY.md): with
//! `CONSUMER_AUTH_FUZZ_SEEDS=<dir>`, every request the harness sends is written to
//! `<dir>/request/` in the fuzz targets' request format (`fuzz/src/lib.rs`), and every
//! configuration a test configures to `<dir>/config/` and every body a test answers the store
//! loader's fetch with to `<dir>/consumers/`, one file each, named by a hash of the
//! content. Without the variable nothing is written.

use std::hash::{DefaultHasher, Hash, Hasher};

fn write(kind: &str, content: &[u8]) {
    let Some(dir) = std::env::var_os("CONSUMER_AUTH_FUZZ_SEEDS") else { return };
    let dir = std::path::Path::new(&dir).join(kind);
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{:016x}", hasher.finish())), content));
    if let Err(e) = written {
        panic!("CONSUMER_AUTH_FUZZ_SEEDS: cannot write into {}: {e}", dir.display());
    }
}

pub(crate) fn config(content: &[u8]) {
    write("config", content);
}

pub(crate) fn consumers(document: &[u8]) {
    write("consumers", document);
}

/// A request as the first filter sees it: the clock, the protocol, `:method` / `:path`, the
/// header map, the whole body. Skipped when a value holds a newline (the format cannot).
pub(crate) fn request(now_nanos: u64, protocol: &str, headers: &[(String, Vec<u8>)], body: &[Vec<u8>]) {
    if std::env::var_os("CONSUMER_AUTH_FUZZ_SEEDS").is_none() {
        return;
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice()).unwrap_or(b"");
    let mut out = format!("@now {}\n@protocol {protocol}\n", now_nanos / 1_000_000_000).into_bytes();
    out.extend_from_slice(get(":method"));
    out.push(b' ');
    out.extend_from_slice(get(":path"));
    out.push(b'\n');
    for (name, value) in headers.iter().filter(|(n, _)| n != ":method" && n != ":path") {
        if name.contains('\n') || value.contains(&b'\n') {
            return;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    if !body.is_empty() {
        out.push(b'\n');
        body.iter().for_each(|chunk| out.extend_from_slice(chunk));
    }
    write("request", &out);
}

//! Exports for benches/v8/run.js: `verify(case, n)` checks case's signature n times (returns how
//! many verified: all of them, or the run is wrong); `fresh_key_verify(case, n)` parses the key
//! anew before each check, so an ES256/ES384 key builds its table every time (what a key's first
//! verification in a worker costs). The key material comes from `make bench-v8` (openssl), in
//! `$BENCH_V8_KEYS` at build time.

// A bench, not the filter: its fixed inputs either parse or the run is meaningless.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use consumer_auth::crypto::jwt_key::{Algorithm, VerifyingKey};

macro_rules! key_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("BENCH_V8_KEYS"), "/", $name))
    };
}

const INPUT: &[u8] = key_file!("input");

struct Case {
    algorithm: Algorithm,
    pem: &'static str,
    signature: Vec<u8>,
    key: VerifyingKey,
}

fn case(algorithm: Algorithm, pem: &'static [u8], signature: Vec<u8>) -> Case {
    let pem = std::str::from_utf8(pem).unwrap();
    Case { algorithm, pem, signature, key: VerifyingKey::parse(algorithm, None, Some(pem)).unwrap() }
}

/// In run.js's order: RS256 with RSA-2048, -3072, -4096; ES256; ES384; EdDSA.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let es256 = p256::ecdsa::Signature::from_der(key_file!("p256.sig")).unwrap().to_bytes().to_vec();
        let es384 = p384::ecdsa::Signature::from_der(key_file!("p384.sig")).unwrap().to_bytes().to_vec();
        vec![
            case(Algorithm::RS256, key_file!("rsa2048.pub"), key_file!("rsa2048.sig").to_vec()),
            case(Algorithm::RS256, key_file!("rsa3072.pub"), key_file!("rsa3072.sig").to_vec()),
            case(Algorithm::RS256, key_file!("rsa4096.pub"), key_file!("rsa4096.sig").to_vec()),
            case(Algorithm::ES256, key_file!("p256.pub"), es256),
            case(Algorithm::ES384, key_file!("p384.pub"), es384),
            case(Algorithm::EdDSA, key_file!("ed25519.pub"), key_file!("ed25519.sig").to_vec()),
        ]
    })
}

#[no_mangle]
pub extern "C" fn verify(case: u32, n: u32) -> u32 {
    let c = &cases()[case as usize];
    (0..n).filter(|_| c.key.verify(c.algorithm, &[], INPUT, &c.signature)).count() as u32
}

#[no_mangle]
pub extern "C" fn fresh_key_verify(case: u32, n: u32) -> u32 {
    let c = &cases()[case as usize];
    (0..n)
        .filter(|_| {
            let key = VerifyingKey::parse(c.algorithm, None, Some(c.pem)).unwrap();
            key.verify(c.algorithm, &[], INPUT, &c.signature)
        })
        .count() as u32
}

#[no_mangle]
pub extern "C" fn parse_key(case: u32, n: u32) -> u32 {
    let c = &cases()[case as usize];
    (0..n).filter(|_| VerifyingKey::parse(c.algorithm, None, Some(c.pem)).is_ok()).count() as u32
}

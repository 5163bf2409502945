//! jwt signature verification against reference implementations: a token accepted by our
//! verifier (`crypto::jwt_key`, with its own RSA and ECDSA arithmetic) is accepted by the
//! RustCrypto crates (`rsa`, `p256`, `p384`, `hmac`) and vice versa; for EdDSA ours is
//! ed25519-dalek's `verify_strict`, which must never accept what plain `verify` refuses.
//!
//! Input: byte 0 picks the algorithm, byte 1 the mode:
//! - 0: the rest is a compact token (`header.claims.signature`), verified with the test keys;
//! - 1: the rest is a signing input, signed here with the test key: both must accept;
//! - 2: bytes 2–4 are a position and a mask, the rest a signing input signed here, then the
//!   signature's byte at the position is xored with the mask: both agree;
//! - 3: an arbitrary key: `PEM \0 signing input \0 signature`. A key we take is one the
//!   reference takes, and with both keys the verdicts agree.
#![no_main]

use consumer_auth::crypto::jwt_key::{kong_base64url_decode, Algorithm, VerifyingKey};
use consumer_auth_fuzz::{ed25519_pem, p256_pem, p384_pem, rsa_pem, sign, ALGORITHMS, HS_SECRET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, mode, rest @ ..] = data else { return };
    let name = ALGORITHMS[*a as usize % ALGORITHMS.len()];
    let alg = Algorithm::parse(name).unwrap();
    let test_pem = || match &name[..2] {
        "RS" | "PS" => rsa_pem(),
        "ES" if name == "ES256" => p256_pem(),
        "ES" => p384_pem(),
        _ => ed25519_pem(),
    };
    let (pem, input, signature): (String, Vec<u8>, Vec<u8>) = match mode % 4 {
        0 => {
            let Some(dot) = rest.iter().rposition(|&b| b == b'.') else { return };
            let Some(sig) = kong_base64url_decode(&rest[dot + 1..]) else { return };
            (test_pem(), rest[..dot].to_vec(), sig)
        }
        1 => (test_pem(), rest.to_vec(), sign(name, rest)),
        2 => {
            let [lo, hi, mask, input @ ..] = rest else { return };
            let mut sig = sign(name, input);
            let len = sig.len();
            sig[(usize::from(*hi) << 8 | usize::from(*lo)) % len] ^= mask;
            (test_pem(), input.to_vec(), sig)
        }
        _ => {
            let mut parts = rest.splitn(3, |&b| b == 0);
            let (Some(pem), Some(input), Some(sig)) = (parts.next(), parts.next(), parts.next()) else { return };
            let Ok(pem) = std::str::from_utf8(pem) else { return };
            (pem.to_string(), input.to_vec(), sig.to_vec())
        }
    };
    let ours = VerifyingKey::parse(alg, Some(HS_SECRET), Some(&pem));
    let reference = Reference::parse(name, &pem);
    match (&ours, &reference) {
        (Ok(_), None) => panic!("{name}: our parser takes a key the reference refuses"),
        (Ok(key), Some(reference)) => {
            let accepted = key.verify(alg, HS_SECRET.as_bytes(), &input, &signature);
            let (strict, lenient) = reference.verify(name, &input, &signature);
            if name == "EdDSA" {
                assert!(!accepted || lenient, "EdDSA: ours accepts what ed25519-dalek's verify refuses");
                assert_eq!(accepted, strict, "EdDSA: ours differs from verify_strict");
            } else {
                assert_eq!(accepted, strict, "{name}: ours says {accepted}, the reference {strict}");
            }
            if *mode % 4 == 1 {
                assert!(accepted, "{name}: a signature made with the key is refused");
            }
        }
        (Err(_), _) => {}
    }
});

enum Reference {
    Hmac,
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl Reference {
    fn parse(name: &str, pem: &str) -> Option<Reference> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        let pem = pem.trim();
        Some(match &name[..2] {
            "HS" => Reference::Hmac,
            "RS" | "PS" => Reference::Rsa(
                rsa::RsaPublicKey::from_public_key_pem(pem).or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem)).ok()?,
            ),
            "ES" if name == "ES256" => Reference::P256(p256::ecdsa::VerifyingKey::from_public_key_pem(pem).ok()?),
            "ES" => Reference::P384(p384::ecdsa::VerifyingKey::from_public_key_pem(pem).ok()?),
            _ => Reference::Ed25519(ed25519_dalek::VerifyingKey::from_public_key_pem(pem).ok()?),
        })
    }

    /// (the verdict to compare with ours, a lenient verdict where the reference has one)
    fn verify(&self, name: &str, input: &[u8], sig: &[u8]) -> (bool, bool) {
        use hmac::{Hmac, Mac};
        use rsa::signature::Verifier;
        macro_rules! hs {
            ($d:ty) => {{
                let mut m = Hmac::<$d>::new_from_slice(HS_SECRET.as_bytes()).unwrap();
                m.update(input);
                m.verify_slice(sig).is_ok()
            }};
        }
        macro_rules! rsa_verify {
            ($k:expr, $scheme:ident, $d:ty) => {{
                rsa::$scheme::Signature::try_from(sig)
                    .is_ok_and(|s| rsa::$scheme::VerifyingKey::<$d>::new($k.clone()).verify(input, &s).is_ok())
            }};
        }
        let strict = match (self, name) {
            (Reference::Hmac, "HS256") => hs!(sha2::Sha256),
            (Reference::Hmac, "HS384") => hs!(sha2::Sha384),
            (Reference::Hmac, "HS512") => hs!(sha2::Sha512),
            (Reference::Rsa(k), "RS256") => rsa_verify!(k, pkcs1v15, sha2::Sha256),
            (Reference::Rsa(k), "RS384") => rsa_verify!(k, pkcs1v15, sha2::Sha384),
            (Reference::Rsa(k), "RS512") => rsa_verify!(k, pkcs1v15, sha2::Sha512),
            (Reference::Rsa(k), "PS256") => rsa_verify!(k, pss, sha2::Sha256),
            (Reference::Rsa(k), "PS384") => rsa_verify!(k, pss, sha2::Sha384),
            (Reference::Rsa(k), "PS512") => rsa_verify!(k, pss, sha2::Sha512),
            (Reference::P256(k), _) => {
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(input, &s).is_ok())
            }
            (Reference::P384(k), _) => {
                p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(input, &s).is_ok())
            }
            (Reference::Ed25519(k), _) => {
                let Ok(s) = ed25519_dalek::Signature::from_slice(sig) else { return (false, false) };
                return (k.verify_strict(input, &s).is_ok(), k.verify(input, &s).is_ok());
            }
            _ => false,
        };
        (strict, strict)
    }
}

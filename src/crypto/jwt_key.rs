//! jwt key material (BEHAVIOUR.md §B8): the `alg` values this filter verifies and a jwt secret's
//! key, parsed once at configure time and used to verify a token's signature. A leaf: consumers,
//! the store and the jwt plugin import it from here.

use super::ecdsa::{es256, es384};
use super::hmac::HmacAlgorithm;
use super::rsa::{RsaKey, SHA256_DIGEST_INFO, SHA384_DIGEST_INFO, SHA512_DIGEST_INFO};
use base64::Engine;
use sha2::{Sha256, Sha384, Sha512};

/// The `alg` values this filter verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

/// Why a jwt secret's key material was refused at configure time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    SecretMissing,
    SecretEmpty,
    PublicKeyMissing,
    Invalid(&'static str),
}

/// A jwt secret's key material, parsed once at configure time. `Debug` never shows a secret.
pub enum VerifyingKey {
    /// HS*: the secret as written, and its base64 decoding when it is valid base64 (used with
    /// the plugin's `secret_is_base64`).
    Hmac {
        secret: Vec<u8>,
        decoded: Option<Vec<u8>>,
    },
    /// RS* and PS*: the modulus prepared for Montgomery arithmetic, and the public exponent.
    Rsa(Box<RsaKey>),
    /// ES256, ES384: the public key, and its table of multiples once it has verified.
    P256(Box<es256::Key>),
    P384(Box<es384::Key>),
    Ed25519(Box<ed25519_dalek::VerifyingKey>),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyingKey::Hmac { .. } => "VerifyingKey::Hmac(..)",
            VerifyingKey::Rsa(_) => "VerifyingKey::Rsa(..)",
            VerifyingKey::P256(_) => "VerifyingKey::P256(..)",
            VerifyingKey::P384(_) => "VerifyingKey::P384(..)",
            VerifyingKey::Ed25519(_) => "VerifyingKey::Ed25519(..)",
        })
    }
}

impl VerifyingKey {
    /// The key of a jwt secret: `secret` for HS*, the PEM public key in `rsa_public_key` for the
    /// others (SPKI `PUBLIC KEY`; for RSA also PKCS#1 `RSA PUBLIC KEY`).
    pub fn parse(algorithm: Algorithm, secret: Option<&str>, pem: Option<&str>) -> Result<VerifyingKey, KeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        if algorithm.is_hmac() {
            let secret = secret.ok_or(KeyError::SecretMissing)?;
            if secret.is_empty() {
                return Err(KeyError::SecretEmpty);
            }
            return Ok(VerifyingKey::Hmac {
                secret: secret.as_bytes().to_vec(),
                decoded: kong_base64url_decode(secret.as_bytes()),
            });
        }
        let pem = pem.ok_or(KeyError::PublicKeyMissing)?.trim();
        match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => rsa::RsaPublicKey::from_public_key_pem(pem)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
                .ok()
                .and_then(|k| RsaKey::new(&k))
                .map(|k| VerifyingKey::Rsa(Box::new(k)))
                .ok_or(KeyError::Invalid("invalid key (expected an RSA public key in PEM, at most 4096 bits)")),
            Algorithm::ES256 => p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
                .map(|k| VerifyingKey::P256(Box::new(es256::Key::new(k))))
                .map_err(|_| KeyError::Invalid("invalid key (expected a P-256 EC public key in PEM)")),
            Algorithm::ES384 => p384::ecdsa::VerifyingKey::from_public_key_pem(pem)
                .map(|k| VerifyingKey::P384(Box::new(es384::Key::new(k))))
                .map_err(|_| KeyError::Invalid("invalid key (expected a P-384 EC public key in PEM)")),
            Algorithm::EdDSA => ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                .map(|k| VerifyingKey::Ed25519(Box::new(k)))
                .map_err(|_| KeyError::Invalid("invalid key (expected an Ed25519 public key in PEM)")),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(KeyError::SecretMissing),
        }
    }

    /// Whether `signature` signs `input` (`<header>.<claims>` as sent) with `algorithm`.
    /// `hmac_key` is the HS secret to use (raw or base64-decoded).
    pub fn verify(&self, algorithm: Algorithm, hmac_key: &[u8], input: &[u8], signature: &[u8]) -> bool {
        match (self, algorithm) {
            (VerifyingKey::Hmac { .. }, Algorithm::HS256) => HmacAlgorithm::Sha256.verify(hmac_key, input, signature),
            (VerifyingKey::Hmac { .. }, Algorithm::HS384) => HmacAlgorithm::Sha384.verify(hmac_key, input, signature),
            (VerifyingKey::Hmac { .. }, Algorithm::HS512) => HmacAlgorithm::Sha512.verify(hmac_key, input, signature),
            (VerifyingKey::Rsa(k), Algorithm::RS256) => {
                k.verify_pkcs1v15::<Sha256>(&SHA256_DIGEST_INFO, input, signature)
            }
            (VerifyingKey::Rsa(k), Algorithm::RS384) => {
                k.verify_pkcs1v15::<Sha384>(&SHA384_DIGEST_INFO, input, signature)
            }
            (VerifyingKey::Rsa(k), Algorithm::RS512) => {
                k.verify_pkcs1v15::<Sha512>(&SHA512_DIGEST_INFO, input, signature)
            }
            (VerifyingKey::Rsa(k), Algorithm::PS256) => k.verify_pss::<Sha256>(input, signature),
            (VerifyingKey::Rsa(k), Algorithm::PS384) => k.verify_pss::<Sha384>(input, signature),
            (VerifyingKey::Rsa(k), Algorithm::PS512) => k.verify_pss::<Sha512>(input, signature),
            (VerifyingKey::P256(k), Algorithm::ES256) => k.verify(input, signature),
            (VerifyingKey::P384(k), Algorithm::ES384) => k.verify(input, signature),
            (VerifyingKey::Ed25519(k), Algorithm::EdDSA) => {
                ed25519_dalek::Signature::from_slice(signature).is_ok_and(|sig| k.verify_strict(input, &sig).is_ok())
            }
            // A key never meets another family's algorithm (no algorithm confusion).
            _ => false,
        }
    }
}

/// How Kong decodes a `secret_is_base64` secret: pad to a multiple of 4, `-` `_` read as `+` `/`,
/// then nginx's base64 decoding (either alphabet, padding optional). `None` when it is not
/// base64. (Token segments are stricter: `plugins::jwt::decode_segment`.)
pub fn kong_base64url_decode(input: &[u8]) -> Option<Vec<u8>> {
    const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mapped: Vec<u8> = input
        .iter()
        .map(|&b| match b {
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    BASE64.decode(mapped).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ecdsa::wnaf;
    use crate::crypto::rsa::Modulus;
    use sha2::Digest;

    #[test]
    fn base64_like_kong() {
        assert_eq!(kong_base64url_decode(b"-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(kong_base64url_decode(b"+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(kong_base64url_decode(b"a"), None);
        assert_eq!(kong_base64url_decode(b"a b="), None);
        assert_eq!(kong_base64url_decode(b"").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn keys_are_refused_when_they_do_not_fit() {
        assert_eq!(VerifyingKey::parse(Algorithm::HS256, None, None).err(), Some(KeyError::SecretMissing));
        assert_eq!(VerifyingKey::parse(Algorithm::HS256, Some(""), None).err(), Some(KeyError::SecretEmpty));
        assert_eq!(VerifyingKey::parse(Algorithm::RS256, Some("s"), None).err(), Some(KeyError::PublicKeyMissing));
        assert!(matches!(
            VerifyingKey::parse(
                Algorithm::ES256,
                None,
                Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
            ),
            Err(KeyError::Invalid(_))
        ));
        let k = VerifyingKey::parse(Algorithm::HS256, Some("c2VjcmV0"), None).unwrap();
        assert!(format!("{k:?}").find("c2VjcmV0").is_none());
        match k {
            VerifyingKey::Hmac { decoded, .. } => assert_eq!(decoded.unwrap(), b"secret"),
            _ => panic!(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Signatures: vectors made with pyca/cryptography (OpenSSL) and RFC 8032, keys and
    // signatures made here with the `rsa` crate, mutations, and `rsa` 0.9's own verdict (the
    // verifier used before ours) for every RSA case.

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    fn key(algorithm: Algorithm, pem: &str) -> VerifyingKey {
        VerifyingKey::parse(algorithm, None, Some(pem)).unwrap()
    }

    /// Single-bit flips spread over the signature, its truncation and extension, and zero.
    fn mutations(sig: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in (0..sig.len()).step_by(sig.len().div_ceil(6).max(1)).chain([sig.len() - 1]) {
            for bit in [0, 7] {
                let mut m = sig.to_vec();
                m[i] ^= 1 << bit;
                out.push(m);
            }
        }
        out.push(sig[1..].to_vec());
        out.push(sig[..sig.len() - 1].to_vec());
        out.push([&[0u8][..], sig].concat());
        out.push([sig, &[0u8][..]].concat());
        out.push(vec![0u8; sig.len()]);
        out.push(Vec::new());
        out
    }

    fn rsa_crate_verdict(pem: &str, algorithm: Algorithm, input: &[u8], sig: &[u8]) -> bool {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::{Pkcs1v15Sign, Pss};
        let k = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
            .unwrap();
        match algorithm {
            Algorithm::RS256 => k.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input), sig),
            Algorithm::RS384 => k.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(input), sig),
            Algorithm::RS512 => k.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(input), sig),
            Algorithm::PS256 => k.verify(Pss::new::<Sha256>(), &Sha256::digest(input), sig),
            Algorithm::PS384 => k.verify(Pss::new::<Sha384>(), &Sha384::digest(input), sig),
            Algorithm::PS512 => k.verify(Pss::new::<Sha512>(), &Sha512::digest(input), sig),
            _ => unreachable!(),
        }
        .is_ok()
    }

    /// `sig` verifies; its mutations, other inputs and the other RSA algorithms give the same
    /// verdict as `rsa` 0.9 (which is a refusal, but for a PSS signature s + n of n's length).
    fn check_rsa(pem: &str, algorithm: Algorithm, input: &[u8], sig: &[u8]) {
        let k = key(algorithm, pem);
        assert!(k.verify(algorithm, b"", input, sig), "{algorithm:?}");
        assert!(rsa_crate_verdict(pem, algorithm, input, sig));
        for m in mutations(sig) {
            let ours = k.verify(algorithm, b"", input, &m);
            assert_eq!(ours, rsa_crate_verdict(pem, algorithm, input, &m), "{algorithm:?} {m:02x?}");
            assert!(!ours, "{algorithm:?} accepted a mutated signature");
        }
        assert!(!k.verify(algorithm, b"", b"eyJhbGciOiJub25lIn0.e30", sig));
        let mut other_input = input.to_vec();
        other_input[0] ^= 1;
        assert!(!k.verify(algorithm, b"", &other_input, sig));
        for other in Algorithm::ALL.into_iter().filter(|&a| a != algorithm) {
            assert!(!k.verify(other, b"", input, sig), "{algorithm:?} signature verified as {other:?}");
        }
    }

    #[test]
    fn rsa_vectors_from_openssl() {
        for (pem, sigs) in [(RSA2048_PEM, RSA2048_SIGS), (RSA2049_PEM, RSA2049_SIGS)] {
            for (algorithm, sig) in sigs {
                check_rsa(pem, algorithm, VECTOR_INPUT, &b64(sig));
            }
        }
    }

    #[test]
    fn rsa_signatures_made_here_and_edge_cases() {
        use rand::{Rng as _, SeedableRng as _};
        use rsa::pkcs8::EncodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        // 1025 and 1033 bits: n's bit length is 1 mod 8, so EM is one octet shorter than n.
        for bits in [1024, 1025, 1033, 1536] {
            let private = rsa::RsaPrivateKey::new(&mut rng, bits).unwrap();
            let public = private.to_public_key();
            let pem = public.to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();
            let input: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect();
            for algorithm in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
                let sig = match algorithm {
                    Algorithm::RS256 => private.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&input)),
                    Algorithm::RS384 => private.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(&input)),
                    _ => private.sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(&input)),
                }
                .unwrap();
                check_rsa(&pem, algorithm, &input, &sig);
            }
            for algorithm in [Algorithm::PS256, Algorithm::PS384, Algorithm::PS512] {
                let signed = match algorithm {
                    Algorithm::PS256 => {
                        private.sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(&input))
                    }
                    Algorithm::PS384 => {
                        private.sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(&input))
                    }
                    _ => private.sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(&input)),
                };
                // PS512 needs EM of at least 2·64 + 2 octets: a 1025-bit key is too short.
                let Ok(sig) = signed else {
                    assert!(bits < 1040, "{bits}");
                    continue;
                };
                check_rsa(&pem, algorithm, &input, &sig);
                // s + n, when it still has n's length: `rsa` 0.9 reduced it for PSS (and so do
                // we); PKCS#1 v1.5 refuses s >= n.
                let s_plus_n = rsa::BigUint::from_bytes_be(&sig) + public.n();
                let bytes = s_plus_n.to_bytes_be();
                if bytes.len() == sig.len() {
                    let k = key(algorithm, &pem);
                    assert!(k.verify(algorithm, b"", &input, &bytes));
                    assert!(rsa_crate_verdict(&pem, algorithm, &input, &bytes));
                }
            }
        }
        // Too short for a SHA-512 DigestInfo (k < 19 + 64 + 11): refused like `rsa` 0.9 did.
        let private = rsa::RsaPrivateKey::new(&mut rng, 512).unwrap();
        let pem = private.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let k = key(Algorithm::RS512, &pem);
        let sig = vec![1u8; 64];
        assert!(!k.verify(Algorithm::RS512, b"", b"x", &sig));
        assert!(!rsa_crate_verdict(&pem, Algorithm::RS512, b"x", &sig));
    }

    /// A random odd number of exactly `bits` bits, big-endian.
    fn random_odd_modulus(rng: &mut impl rand::Rng, bits: usize) -> Vec<u8> {
        let bytes = bits.div_ceil(8);
        let mut n: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
        n[0] &= 0xff >> (8 * bytes - bits);
        n[0] |= 1 << ((bits - 1) % 8);
        n[bytes - 1] |= 1;
        n
    }

    #[test]
    fn modular_exponentiation_matches_biguint() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for bits in [2usize, 3, 5, 8, 9, 27, 28, 29, 56, 57, 64, 100, 255, 512, 1023, 2049, 4096] {
            for _ in 0..if bits > 1024 { 1 } else { 3 } {
                let bytes = bits.div_ceil(8);
                let n = random_odd_modulus(&mut rng, bits);
                let modulus = Modulus::new(&n).unwrap();
                assert_eq!((modulus.bits(), modulus.bytes()), (bits, bytes));
                let nb = rsa::BigUint::from_bytes_be(&n);
                let all_ones = vec![0xffu8; bytes];
                let mut n_minus_1 = n.clone();
                n_minus_1[bytes - 1] &= 0xfe;
                let random: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
                for s in [vec![0u8; bytes], n_minus_1, n.clone(), all_ones, random] {
                    // Large exponents on small moduli only (this runs unoptimised).
                    let exponents = if bits <= 1024 {
                        vec![1u64, 3, 65537, (1 << 33) - 1, rng.gen_range(1..1 << 33) | 1]
                    } else {
                        vec![65537]
                    };
                    for e in exponents {
                        let want = rsa::BigUint::from_bytes_be(&s).modpow(&rsa::BigUint::from(e), &nb);
                        let got = modulus.public_op(&s, e).unwrap();
                        assert_eq!(rsa::BigUint::from_bytes_be(&got), want, "bits {bits} e {e}");
                        assert_eq!(got.len(), bytes);
                    }
                    assert_eq!(modulus.less_than_n(&s), rsa::BigUint::from_bytes_be(&s) < nb);
                }
                assert!(modulus.public_op(&vec![1u8; bytes + 1], 3).is_none());
                assert!(modulus.public_op(&[], 3).is_none() || bytes == 0);
            }
        }
        assert!(Modulus::new(&[0, 0]).is_none());
        assert!(Modulus::new(&[1]).is_none());
        assert!(Modulus::new(&[0x10, 0x00]).is_none());
    }

    /// The sizes RSA keys come in, with random odd moduli and signatures (some >= n), against
    /// num-bigint's s^e mod n: the column sums' grouping by 4 limbs, their padding and the
    /// squarings' half columns at every offset that these lengths give.
    #[test]
    fn public_op_matches_biguint_at_rsa_sizes() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2048);
        for bits in [1024usize, 2040, 2047, 2048, 2056, 3072, 4088, 4096] {
            for _ in 0..3 {
                let bytes = bits.div_ceil(8);
                let n = random_odd_modulus(&mut rng, bits);
                let modulus = Modulus::new(&n).unwrap();
                let nb = rsa::BigUint::from_bytes_be(&n);
                for _ in 0..3 {
                    let s: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
                    for e in [65537u64, 3, rng.gen_range(2..1 << 33)] {
                        let want = rsa::BigUint::from_bytes_be(&s).modpow(&rsa::BigUint::from(e), &nb);
                        let got = modulus.public_op(&s, e).unwrap();
                        assert_eq!(rsa::BigUint::from_bytes_be(&got), want, "bits {bits} e {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn ecdsa_and_eddsa_vectors() {
        for (algorithm, pem, sig) in [
            (Algorithm::ES256, P256_PEM, P256_SIG),
            (Algorithm::ES384, P384_PEM, P384_SIG),
            (Algorithm::EdDSA, ED25519_PEM, ED25519_SIG),
        ] {
            let k = key(algorithm, pem);
            let sig = b64(sig);
            assert!(k.verify(algorithm, b"", VECTOR_INPUT, &sig), "{algorithm:?}");
            for m in mutations(&sig) {
                assert!(!k.verify(algorithm, b"", VECTOR_INPUT, &m), "{algorithm:?} {m:02x?}");
            }
            assert!(!k.verify(algorithm, b"", b"eyJhbGciOiJub25lIn0.e30", &sig));
            for other in Algorithm::ALL.into_iter().filter(|&a| a != algorithm) {
                assert!(!k.verify(other, b"", VECTOR_INPUT, &sig));
            }
        }
        // RFC 8032 §7.1, tests 1 (empty message) and 2.
        let k = key(Algorithm::EdDSA, RFC8032_TEST1_PEM);
        let sig = hex::decode("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b").unwrap();
        assert!(k.verify(Algorithm::EdDSA, b"", b"", &sig));
        assert!(!k.verify(Algorithm::EdDSA, b"", b"\x00", &sig));
        let k = key(Algorithm::EdDSA, RFC8032_TEST2_PEM);
        let sig = hex::decode("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00").unwrap();
        assert!(k.verify(Algorithm::EdDSA, b"", b"\x72", &sig));
        assert!(!k.verify(Algorithm::EdDSA, b"", b"\x73", &sig));
    }

    #[test]
    fn rsa_keys_refused_as_before() {
        // An EC key, and garbage, for an RSA algorithm; an RSA key for ES256.
        assert!(matches!(VerifyingKey::parse(Algorithm::RS256, None, Some(P256_PEM)), Err(KeyError::Invalid(_))));
        assert!(matches!(VerifyingKey::parse(Algorithm::PS256, None, Some("not a key")), Err(KeyError::Invalid(_))));
        assert!(matches!(VerifyingKey::parse(Algorithm::ES256, None, Some(RSA2048_PEM)), Err(KeyError::Invalid(_))));
        // PKCS#1 `RSA PUBLIC KEY` is accepted too.
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        use rsa::pkcs8::DecodePublicKey as _;
        let pkcs1 = rsa::RsaPublicKey::from_public_key_pem(RSA2048_PEM)
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let k = key(Algorithm::RS256, &pkcs1);
        assert!(k.verify(Algorithm::RS256, b"", VECTOR_INPUT, &b64(RSA2048_SIGS[0].1)));
        assert_eq!(format!("{k:?}"), "VerifyingKey::Rsa(..)");
    }

    /// Our ES256/ES384 against the crates' own ECDSA verification: signatures made here, their
    /// high-S twins (accepted by both), mutations, other inputs and other keys.
    macro_rules! ecdsa_differential {
        ($name:ident, $curve:ident, $algorithm:expr, $keys:expr) => {
            #[test]
            fn $name() {
                use rand::{Rng as _, SeedableRng as _};
                use $curve::ecdsa::signature::{Signer as _, Verifier as _};
                use $curve::pkcs8::EncodePublicKey as _;
                let mut rng = rand::rngs::StdRng::seed_from_u64(256);
                let mut previous: Option<VerifyingKey> = None;
                for round in 0..$keys {
                    let signing = $curve::ecdsa::SigningKey::random(&mut rng);
                    let public = *signing.verifying_key();
                    let pem = public.to_public_key_pem($curve::pkcs8::LineEnding::LF).unwrap();
                    let ours = key($algorithm, &pem);
                    let input: Vec<u8> = (0..rng.gen_range(0..100)).map(|_| rng.gen()).collect();
                    let sig: $curve::ecdsa::Signature = signing.sign(&input);
                    let bytes = sig.to_bytes().to_vec();
                    let high_s = $curve::ecdsa::Signature::from_scalars(sig.r().to_bytes(), (-*sig.s()).to_bytes())
                        .unwrap()
                        .to_bytes()
                        .to_vec();
                    let mut cases = mutations(&bytes);
                    cases.push(bytes.clone());
                    cases.push(high_s);
                    let mut other_input = input.clone();
                    other_input.push(round as u8);
                    for case in &cases {
                        for message in [&input, &other_input] {
                            let theirs = $curve::ecdsa::Signature::from_slice(case)
                                .is_ok_and(|s| public.verify(message, &s).is_ok());
                            assert_eq!(ours.verify($algorithm, b"", message, case), theirs, "{case:02x?}");
                        }
                    }
                    assert!(ours.verify($algorithm, b"", &input, &bytes));
                    if let Some(previous) = previous {
                        assert!(!previous.verify($algorithm, b"", &input, &bytes));
                    }
                    previous = Some(ours);
                }
            }
        };
    }
    ecdsa_differential!(es256_as_the_p256_crate_verifies, p256, Algorithm::ES256, 24);
    ecdsa_differential!(es384_as_the_p384_crate_verifies, p384, Algorithm::ES384, 8);

    #[test]
    fn wnaf_digits_add_up() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for k in
            [0u64, 1, 2, 15, 16, 31, 0x8000_0000_0000_0000, u64::MAX].into_iter().chain((0..200).map(|_| rng.gen()))
        {
            for w in [5, 7] {
                let digits = wnaf::<65>(k, w);
                let sum = digits.iter().rev().fold(0i128, |acc, &d| 2 * acc + i128::from(d));
                assert_eq!(sum, i128::from(k));
                assert!(digits.iter().all(|&d| d == 0 || (d % 2 != 0 && i32::from(d).abs() < 1 << (w - 1))));
            }
        }
    }

    /// Wycheproof (RSASSA-PKCS1-v1_5, RSASSA-PSS with MGF1 of the same hash and a salt of its
    /// length, ECDSA in IEEE P1363 form as JWS uses it): every "valid" case verifies, every
    /// "invalid" one does not ("acceptable" may go either way), and RSA gives `rsa` 0.9's verdict.
    #[test]
    fn wycheproof_vectors() {
        use wycheproof::{HashFunction, TestResult};
        let mut cases = 0;
        let mut check = |k: &VerifyingKey,
                         algorithm: Algorithm,
                         pem: &str,
                         msg: &[u8],
                         sig: &[u8],
                         result: TestResult,
                         what: String| {
            let ours = k.verify(algorithm, b"", msg, sig);
            match result {
                TestResult::Valid => assert!(ours, "{what}: a valid signature refused"),
                TestResult::Invalid => assert!(!ours, "{what}: an invalid signature accepted"),
                TestResult::Acceptable => {}
            }
            if !matches!(algorithm, Algorithm::ES256 | Algorithm::ES384) {
                assert_eq!(ours, rsa_crate_verdict(pem, algorithm, msg, sig), "{what}");
            }
            cases += 1;
        };
        let rs = |h: HashFunction| match h {
            HashFunction::Sha2_256 => Some((Algorithm::RS256, Algorithm::PS256)),
            HashFunction::Sha2_384 => Some((Algorithm::RS384, Algorithm::PS384)),
            HashFunction::Sha2_512 => Some((Algorithm::RS512, Algorithm::PS512)),
            _ => None,
        };
        // 2048-bit sets only: this runs unoptimised (other sizes: the tests above).
        {
            use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
            for name in [TestName::Rsa2048Sha256, TestName::Rsa2048Sha384, TestName::Rsa2048Sha512] {
                for group in TestSet::load(name).unwrap().test_groups {
                    let Some((algorithm, _)) = rs(group.hash) else { continue };
                    let k = key(algorithm, &group.pem);
                    for t in group.tests {
                        check(&k, algorithm, &group.pem, &t.msg, &t.sig, t.result, format!("{name:?} #{}", t.tc_id));
                    }
                }
            }
        }
        {
            use wycheproof::rsa_pss_verify::{TestName, TestSet};
            for name in [TestName::RsaPss2048Sha256Mgf1SaltLen32, TestName::RsaPss2048Sha384Mgf1SaltLen48] {
                for group in TestSet::load(name).unwrap().test_groups {
                    let Some((_, algorithm)) = rs(group.hash) else { continue };
                    if group.mgf_hash != Some(group.hash) {
                        continue;
                    }
                    let k = key(algorithm, &group.pem);
                    for t in group.tests {
                        check(&k, algorithm, &group.pem, &t.msg, &t.sig, t.result, format!("{name:?} #{}", t.tc_id));
                    }
                }
            }
        }
        {
            use wycheproof::ecdsa::{TestName, TestSet};
            for (name, algorithm) in [
                (TestName::EcdsaSecp256r1Sha256P1363, Algorithm::ES256),
                (TestName::EcdsaSecp384r1Sha384P1363, Algorithm::ES384),
            ] {
                for group in TestSet::load(name).unwrap().test_groups {
                    let k = key(algorithm, &group.pem);
                    for t in group.tests {
                        check(&k, algorithm, &group.pem, &t.msg, &t.sig, t.result, format!("{name:?} #{}", t.tc_id));
                    }
                }
            }
        }
        assert!(cases > 1000, "{cases}");
    }

    const VECTOR_INPUT: &[u8] = b"eyJhbGciOiJQUzI1NiJ9.eyJpc3MiOiJhbGljZSJ9";
    const RSA2048_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3AoUcjWWCy11Ozf7QD0k
on2mQdUic+b6nSKLUQoZVo3nzOFRrZm0KzdINWDirSs4vcI/hpsk4udZ+NxBdxiB
zWSsY01Gy2alyUNINp5sXyPLNjzPZk/v6ca3LfZFsqbwBZvJmsYlChEARi7jDOlL
rnqXbu3/XlirUy9vcQbibaU0W2v2mkr4xL4sz0ovT6qWqRvAThdamxzGeGqHue/F
SNwZFeBICVFpZaGj7Fsj4q9W4k5D2BG9OeMEIlszDBW8mWf0huLuC6BzkgHoi1Dy
fqSRWBzK+E8Pd3+UqI8T9jL6hY6eze1z7qaivxo8HHFZr6L/eJHaG8kJQyi8yLRl
9QIDAQAB
-----END PUBLIC KEY-----
";
    const RSA2048_SIGS: [(Algorithm, &str); 6] = [
        (Algorithm::RS256, "TwA8KWO7m2FFm+Y9cyIP5iBKaFcV3iM+wlejWe+ULWqJdGhWCBhz9S977AlTs6nfDH6R8Ziwzz72GyzBBCD4P9ZgztuXfixQzsnnMR/FS33enz6ksQQwLjtDoqkQT4Zbl7ezYGJBbvDnyQhOdDa0OH9s7swJfdVa5qu+DJ+dOJGuERZ/Z6UrJBsDJqc8SlnwQUJ8CqjqrS6idMOcCW0vxTrsmXeYauj5eSKnEu3VbCx2Zw02OOWfIgXk+qhx9PItWLaCEqMSVdYXWNTtw8i4VcuYWomwWQnNU0J4jGIlK6Wm2Mr98A5dzswVX50osVqAJw4ZorViGiW/O+tKkLKwjA=="),
        (Algorithm::PS256, "DybuTRY2skyK9iKXnvF2Q4V37d6XBTzM823UFI4MJA34N/qM7E2K+6Ly6kjnwNBfrqg2Jovzi5z3cJ+sb/FRSa6bCSr2CqW2BiuRB4wrGjrFL0RUxIowDCFUzsyWsHJjWKwfjmxEPO13u+d29c9aJ1Hfw4gnwELBqwfnuOXtKqq9Cs6blgsXzr8GCKce9ukFCKlH86NyyIrFqvGruCUd8IScU9vCcQgch35fR0UmGUdZmkrlbslmxdBWXwR7ikOHzcYSAO6A77uvjAjTQuTwuFBz3Goc5CXtozLYQrOfDk73d8fFMgGwMH0/QKNkt/HMZL64fc+cw46aZDhfKycQlQ=="),
        (Algorithm::RS384, "YQvxEnfbKx41qzLddDIQNRGQsr031D1Eh4gf7boygiPZj8CbyVQr1C/OmjK3GqF8LKxz0bkbVt2E2OixS2EL0DZPQ1kbnOgTnjFYO3raCU0MdW0vpNAlHSzI09t1C7z52l9NpMaEgd606qJbqg0zBvOadxCrhOTm0HBpUW/vl9bARqie+aYEQCXT33ezYZLe3HcQ/lEg5ACD4lTmrV+veufd/YKglU0sCwsU9LdxUzsjodMo4aybYwX+0dQIaerfCaQX/n4EhRXNTu0aUYTYAH9+Bucsl4Tga+jYvvHfrW3iL2PZk+5F36GHi27qRDCsvgrBDyl25EuOm/h0oOewUQ=="),
        (Algorithm::PS384, "2JtpWoLsWqoCt3XiiztAOqWR4Wpcg37lKOG/fbcGrXBPbKtn7fcmWX7l1+B+j5Kyq9sv0uBOucGzdzMx4ROXZZhrJeRF1GTuSmrC1HlThFegbBtzafAUFDCUx/NhZncmH7JAPbDZpXp9IauDoxJy3f0+oafqwO2ry0Z1jrU+Cf/u9LfPvUaYZsNfr9tHkHnlixTIiC7LBS6pn2wZm/Biq/MLfvLkKiSMvAEM/TtiBJD+Rjf7SILDxxS+wm0u/xqidlgQZhxy+oxN5SK8g6HF/5BelV47v7F646aEykPOBlAO/J6U8B7zTSHbcYRNslH4V7xo6882MoxA2X9VeKTUHw=="),
        (Algorithm::RS512, "v701KkWjbBSDHcrk+n6Z1lTbnXHOf4Ucqo8sUn2mBV4ljtlpLFnta37WxceRTNyFC6D7Kb3NexcoQk2sQvbket1lvp5+mhEiGPMkhP0ia01/tGPqQyqMTPvs7YHrFfTgaaz1Vm+AjaY1GxfxKpPTlcF5M+pBOC0M5qoOx8upgJsVpHe3asjiH1rOeYtSOOMJm/rfjAZZeGAmwdl5Wrl8IvTWuBA+NGzwUzuBB1mZryvL22kZ0kSfFRy8sfPoO/2gr7fgeSZClGWYmJSM+6lvzKyXhxX9lfoCLOlurJp7JAA+sJHfs1/BZuyKMhTymy8eb6HP65j4cNsm2EKjVn8ZQA=="),
        (Algorithm::PS512, "o5FHjRnBCJfwdG/VzfpfhRfv+lbWvEo1oZQsz6ABCruyPIY0DpaQRMDf4jpzrj6lAgbFuReGNEZb2XME/IqnzYc0zGhgN+TRLoPAUZGGQVudOspNY3fCet5kVcwMwgvhYUcPN9jMg97I7sy6KI2EE0u+Qs+amlcREW3pZHa7dzTA+bK7ziWVICstStmZ7z3nV4PCbvJrhtMt34GVJnPp2E9UMz739ns0JE7E9Qed7aLfAnL8Ukz7Y8BAy6wXIHJcomWxwzYa2PQlSasQ1EE5klknKkHKBkqKQ0hpsTHI9XxCeOOi8bweckqTfqsUtOwPoIoTZCFYIibycxkk5n61JQ=="),
    ];
    const RSA2049_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArhOYQGe+5ozBgUkhiucv
T8sXZPH7YOXwogUekTLzxf+qG26nzLRWqdxTyGcx7y7lrrmekT0kxAHTOgxEBppV
ZxLOGqNKNRwMxH9EuNRoyfll4jclbJ1zE1RJH76VTtvrFu/XzD2akmkdlm6IShJ5
Rp17zCvuMNskx+3ewairzDfoKX15yMthv4YVtYxbj6wQXbBXJR+FOsFKRdBmkkZg
mGpGWNRe6sCnz+/5gvetHmhESlHeV+66pUXk1D7joZRw4H6zOGoVkSphH42KzRvq
F1mgrArc2VeOs9ZUDLhb62YF9pa9aMWC5pMp9zaArFbFgT1Wbxkisfz3eSnaaZvL
/QIDAQAB
-----END PUBLIC KEY-----
";
    const RSA2049_SIGS: [(Algorithm, &str); 6] = [
        (Algorithm::RS256, "McSQ30ZlUVb0+tGOS2siOP60r32r1WfgHhKnMsf6sPc1auyCf+QKw6/BBGZLhS0fpNeheacSEJgryXRALmWDGvwjTs5vAA0U/rmyR/Uka5FrJ4eimECWrisAa0iXaYdMufZR8QM5JdcjFPsRu8wruvj9TlsOFbvdVVWbVAIfxhKfOK9m9dCtSWMNlTNLB7VwbOCuaSVJBYFfaMxQumPPkTsJSlQTyV8bVdb2y4DHVqVJ2VO5Bnts7rrhg3kkr11kWfBavWUUsoKH1C7Q/MC5duR8y8V+b6HGRs2g7NYoB8ogzIoxOsGXHvUrSkcq9Mk99BMt2OhjHBmt61vhQiVRZw=="),
        (Algorithm::PS256, "kBRh72VmBBU/m5HxbTtxsFPlXfcsoFpYyIYn7eKyXJ5QMjAbB59aD4lFl/Lt2z1UNZQUGeHXOQPJdEH8o+WZAvHVMaTeHS8zVEAE9BOycLWS8rwR2fcFnWcT2f3MA/C2vhfbBdk7K10Ho2RuGJwwOPzp68tH761kPW8iLDogiR2ppLdEoxMREYZWh2JZ2uLSqh7mctCBPLFcKi5dJ+D5xQqthHJ22+B4g7uA8tGvuJWJDSaiLKYPapQYJFH0VtrTpe3E0nWTUORv8b/D/cAvSlVQoW/gdzlE9rFMVYyhMb0d2yzmAH/qmRvsM3UkLHz52pRVOipgJ3M0lC+O0kPqTA=="),
        (Algorithm::RS384, "VAY3/dPd+fMmlnKr1p0AOYj6yB/8wZ1DIWAX7UbbmiBsLmr4nnTvrabHPO4ZF+X9m5JnsjT//f8QEL9XKzhYT39s5WA7ZUVoZqT1MAcbKVWGlqOmsbI51c5Ebf4vJmwDVaTdM7OpJ2fOuiaFQQ7p2+C83dkvyuUOG6zDK27oczeYIzY0SEoXXdYp1iGv81NV1tL7kJhuqzDyi30sr4QJbrLK5zkicSfvE69llFecsOfDEhBOSW+PaDeoMmsmmyvUekJtDdKNumW0JSIwUS6B4tCGiUJK6olJsRcPTk5f6uExei+MmYAYr1TIXlm+pPyXnsU6JIKzc5Evk/KWoAp5cg=="),
        (Algorithm::PS384, "HuJdRVAQ2XdjpmUvCRttxq+LiRlmatCG9a944YvXQR9h1pHfwkoxf/8xpC2F+nSOO0khY+1dRpTZa3BticD906np7aRgY5SmukYlnqjCMZwajfARm0GfQmqNbUO3Q6oFIh0vx1l75Fy3AiA0PLiUhamHkMiIyJvt/zHTO/gt2ce/fBWeJdYD2t29oeh9zH5r53suvnSbsAaFhlcRSmprZXVW21beQioZHxIpzYUC7uEBB0PXfq1h9a7IrA37gU7XPm2hjEfIcKRm+9IpQBJ0KOFDTCEGLzz5hRvpe9PKNxR6+4ceE1oNTcgssmmsz7VuD+YFB28fRJNgoaIUBCbjNw=="),
        (Algorithm::RS512, "jyA2zdLaPERRGGXQIhWtkm60hl59d2JozrZGXnRJShJAjtaixwM7BoKek4qD2uAqidVrmmYZtkue/PgxLkkFjEdjxxZ3dqoeSQd802OLz2NYPtjDZ8aVQ0QPn7Z0AmJyDFHBmIwOPft3VlU2Wut+VTQuWUSq9bP8PWNQHjoMHMdcmQV4l6ZdBjLQxjwW3z4WHc6i5O3iPK9ZcvhLeTCOa9yTDh5z/+h02UyCt/trG7GaNXKSe/TiOZjmGNPdf5/dskGjn0X0wVcSaA/XPBl2y1VfiqUb+ZW7pBmLUQPKXJYWQKfWA7Y7QL/7EH+CGhlOqEQuXeVfuA5Lnz2bC7oAHw=="),
        (Algorithm::PS512, "VQsPxvi1t0FDjEmlI/pk7Su4leodyq3K1nQRjQtxZWaKXpSvc4gS0CmswYoQDN4qtMWVYXjqcxN4c9CpGDhOKOcyX29fIggFt9k9MX7yE73Rnxoi4oiMtXaB5INoDC2sJDj84bacWANpW8nunLhFRvCqRKsMysOC5G2giH0DcS1dSDijs4Z4MHlLmX3VxYxRUA/a7i8sdHdkbdfdcMyticc4u27NEemfH+KBosf6LU+5AFPgX26tVr63c6l19tMlsd5+4KFBCMfV+TzhqNZr8DnS4kBUYWOWDsOP/GI7H2LwNSy0Iz4mnTp4+MD9wZZrMkZpevm5uTi/SPWtADN4xA=="),
    ];
    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEBvOJxeBsHFXLfptYxfHTCHzm6akw
M6u1X5G+Znm5rNo4uWVKf0gW90Ay9OwUTzqIKH4NruUgyq4HzPMZkoCiag==
-----END PUBLIC KEY-----
";
    const P256_SIG: &str = "ntc7wd5RUKK1gGhHU5+UpUOzFNOQ1kFNTiarHHv2jeDNHHh/p574GFNfxJlorx5tSP7ehFDk69PcZa1y6YoZ9g==";
    const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEN5IOk5tc9oZD/MUksdBwCP1ImloPNwrl
9VKmREUgsRRhdVkpi0pCPQdiJTerXyQlvvOsovUzTyUEGQepDZ1cvmSkVibpxCci
AffAeO+3CNm4YrpTre1+O8q2DdQ3wZs+
-----END PUBLIC KEY-----
";
    const P384_SIG: &str = "l5Tg07RmCkhnKvHx/zLbsUQ5eWSUNC6jJJXRPdMpA5vvVmTuJY4fhPb/4/suzP0kP0hgWM3nbx/vbL4PvZVKkgFcMlZkQS4dOiChluyABt6vxnIZMUUE2qDKRYqU3AQq";
    const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA6TFHyjvvLHEhrdb2whQE6UKG6OiKxs7b7EX7qSRU5s4=
-----END PUBLIC KEY-----
";
    const ED25519_SIG: &str =
        "oAndF7zwAKklvy1lB+LEEArvVphubahxIe3ke0lMN0TeA6N4ekeGwwhvOVnLHShb3l/JldzRL9COq1G6QOusDQ==";
    const RFC8032_TEST1_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----";
    const RFC8032_TEST2_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAPUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\n-----END PUBLIC KEY-----";
}

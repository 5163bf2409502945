//! jwt key material (AUTH_SPEC §8): the `alg` values this filter verifies and a jwt secret's
//! key, parsed once at configure time and used to verify a token's signature. A leaf: consumers,
//! the store and the jwt plugin import it from here.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};

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
    Rsa(Box<rsa::RsaPublicKey>),
    P256(Box<p256::ecdsa::VerifyingKey>),
    P384(Box<p384::ecdsa::VerifyingKey>),
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
                .map(|k| VerifyingKey::Rsa(Box::new(k)))
                .map_err(|_| KeyError::Invalid("invalid key (expected an RSA public key in PEM, at most 4096 bits)")),
            Algorithm::ES256 => p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
                .map(|k| VerifyingKey::P256(Box::new(k)))
                .map_err(|_| KeyError::Invalid("invalid key (expected a P-256 EC public key in PEM)")),
            Algorithm::ES384 => p384::ecdsa::VerifyingKey::from_public_key_pem(pem)
                .map(|k| VerifyingKey::P384(Box::new(k)))
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
        use rsa::{Pkcs1v15Sign, Pss};
        fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8], signature: &[u8]) -> bool {
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(input);
                    m.verify_slice(signature).is_ok()
                }
                Err(_) => false,
            }
        }
        match (self, algorithm) {
            (VerifyingKey::Hmac { .. }, Algorithm::HS256) => hmac::<Hmac<Sha256>>(hmac_key, input, signature),
            (VerifyingKey::Hmac { .. }, Algorithm::HS384) => hmac::<Hmac<Sha384>>(hmac_key, input, signature),
            (VerifyingKey::Hmac { .. }, Algorithm::HS512) => hmac::<Hmac<Sha512>>(hmac_key, input, signature),
            (VerifyingKey::Rsa(k), Algorithm::RS256) => {
                k.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input), signature).is_ok()
            }
            (VerifyingKey::Rsa(k), Algorithm::RS384) => {
                k.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(input), signature).is_ok()
            }
            (VerifyingKey::Rsa(k), Algorithm::RS512) => {
                k.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(input), signature).is_ok()
            }
            (VerifyingKey::Rsa(k), Algorithm::PS256) => {
                k.verify(Pss::new::<Sha256>(), &Sha256::digest(input), signature).is_ok()
            }
            (VerifyingKey::Rsa(k), Algorithm::PS384) => {
                k.verify(Pss::new::<Sha384>(), &Sha384::digest(input), signature).is_ok()
            }
            (VerifyingKey::Rsa(k), Algorithm::PS512) => {
                k.verify(Pss::new::<Sha512>(), &Sha512::digest(input), signature).is_ok()
            }
            (VerifyingKey::P256(k), Algorithm::ES256) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| k.verify(input, &sig).is_ok())
            }
            (VerifyingKey::P384(k), Algorithm::ES384) => {
                use p384::ecdsa::signature::Verifier as _;
                p384::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| k.verify(input, &sig).is_ok())
            }
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

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
}

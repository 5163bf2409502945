//! The HMAC algorithms of Kong's hmac-auth (BEHAVIOUR.md §B7): sign (clients, tests) and verify in
//! constant time. A leaf.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

/// The algorithms Kong's hmac-auth knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HmacAlgorithm {
    pub const ALL: [HmacAlgorithm; 4] =
        [HmacAlgorithm::Sha1, HmacAlgorithm::Sha256, HmacAlgorithm::Sha384, HmacAlgorithm::Sha512];

    pub fn parse(name: &[u8]) -> Option<HmacAlgorithm> {
        HmacAlgorithm::ALL.into_iter().find(|a| a.name().as_bytes() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            HmacAlgorithm::Sha1 => "hmac-sha1",
            HmacAlgorithm::Sha256 => "hmac-sha256",
            HmacAlgorithm::Sha384 => "hmac-sha384",
            HmacAlgorithm::Sha512 => "hmac-sha512",
        }
    }

    /// HMAC(secret, data).
    pub fn sign(self, secret: &[u8], data: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
            match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(), // HMAC takes keys of any length
            }
        }
        match self {
            HmacAlgorithm::Sha1 => mac::<Hmac<Sha1>>(secret, data),
            HmacAlgorithm::Sha256 => mac::<Hmac<Sha256>>(secret, data),
            HmacAlgorithm::Sha384 => mac::<Hmac<Sha384>>(secret, data),
            HmacAlgorithm::Sha512 => mac::<Hmac<Sha512>>(secret, data),
        }
    }

    /// Constant-time check of `signature` against HMAC(secret, data).
    pub fn verify(self, secret: &[u8], data: &[u8], signature: &[u8]) -> bool {
        fn check<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8], signature: &[u8]) -> bool {
            match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
                Ok(mut m) => {
                    m.update(data);
                    m.verify_slice(signature).is_ok()
                }
                Err(_) => false,
            }
        }
        match self {
            HmacAlgorithm::Sha1 => check::<Hmac<Sha1>>(secret, data, signature),
            HmacAlgorithm::Sha256 => check::<Hmac<Sha256>>(secret, data, signature),
            HmacAlgorithm::Sha384 => check::<Hmac<Sha384>>(secret, data, signature),
            HmacAlgorithm::Sha512 => check::<Hmac<Sha512>>(secret, data, signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_vectors() {
        // RFC 4231 test case 2
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hex::encode(HmacAlgorithm::Sha256.sign(b"Jefe", data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = HmacAlgorithm::Sha512.sign(b"Jefe", data);
        assert!(HmacAlgorithm::Sha512.verify(b"Jefe", data, &sig));
        assert!(!HmacAlgorithm::Sha512.verify(b"Jefe", data, &sig[1..]));
        assert!(!HmacAlgorithm::Sha384.verify(b"Jefe", data, &sig));
    }
}

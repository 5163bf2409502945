//! Cryptographic key material and algorithms: leaves of the engine (they import nothing of it).

pub mod hmac;
pub mod jwt_key;

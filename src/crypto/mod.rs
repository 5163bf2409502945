//! Cryptographic key material and algorithms: leaves of the engine (they import nothing of it).
//! `jwt_key` (the jwt secrets) verifies with `hmac`, `rsa` (RS*, PS*) and `ecdsa` (ES256, ES384).

pub mod ecdsa;
pub mod hmac;
pub mod jwt_key;
pub mod rsa;

//! `consumer-auth`, the operator's tool: check configuration documents offline with the filter's
//! own engine ([`check`]), produce `key_hash` / `password_hash` values ([`hash`]), and turn a Kong
//! decK file into an Envoy bootstrap that enforces the same authentication ([`deck`] reads and
//! translates the file, [`envoy`] renders the bootstrap).

pub mod check;
pub mod deck;
pub mod envoy;
pub mod hash;

/// Exit status: everything was ok.
pub const EXIT_OK: i32 = 0;
/// Exit status: a document was refused, or a decK file holds something that cannot be carried over.
pub const EXIT_REFUSED: i32 = 1;
/// Exit status: bad arguments, or an input that cannot be read.
pub const EXIT_USAGE: i32 = 2;

//! The body parsers (form, JSON, multipart) by content type, as key-auth's `key_in_body` reads
//! them. Input: the content type on the first line, the body after it. Property: a field removed
//! from a body is gone when the new body is parsed again, and the other fields are unchanged.
#![no_main]

use consumer_auth::request::{Found, ParsedBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let parsed = ParsedBody::parse(Some(content_type), body);
    for name in ["apikey", "a", "", "k"] {
        let before = parsed.field(name);
        match parsed.without_field(name) {
            Some(new_body) => {
                assert!(!before.is_absent(), "{name} removed but was not there");
                let again = ParsedBody::parse(Some(content_type), &new_body);
                assert_eq!(again.field(name), Found::Absent, "{name} survives its removal");
                for other in ["apikey", "a", "k"].into_iter().filter(|o| *o != name) {
                    assert_eq!(again.field(other), parsed.field(other), "{other} changed when {name} was removed");
                }
            }
            None => assert!(before.is_absent() || matches!(parsed, ParsedBody::Unsupported)),
        }
    }
});

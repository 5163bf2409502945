//! The identity handoff between filter instances in one chain (a property another instance
//! wrote) and the header operations that make a request carry an identity. Input: the handoff
//! bytes on the first line, a request (`consumer_auth_fuzz::FuzzRequest`) after it. Properties:
//! a decoded handoff re-encodes to the same identity; applied to the request's headers, the
//! operations leave exactly one copy of each managed header with the identity's value (none
//! when it has none) and, for the first instance, no other identity header the client sent.
#![no_main]

use consumer_auth::identity::{header_ops, is_spoofable, HeaderOp, Identity, MANAGED_HEADERS};
use consumer_auth_fuzz::FuzzRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (handoff, request) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let identity = match Identity::decode(handoff) {
        Some(i) => {
            assert_eq!(Identity::decode(&i.encode()).as_ref(), Some(&i), "the handoff round-trips");
            i
        }
        None => Identity::default(),
    };
    let req = FuzzRequest::parse(request);
    for strip_spoofed in [true, false] {
        let mut ops = Vec::new();
        header_ops(&identity, &req.headers, strip_spoofed, &mut ops);
        let mut headers: Vec<(String, Vec<u8>)> = req.headers.clone();
        for op in &ops {
            match op {
                HeaderOp::Remove(name) => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
                HeaderOp::Set(name, value) => {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    headers.push((name.to_string(), value.as_bytes().to_vec()));
                }
            }
        }
        for name in MANAGED_HEADERS {
            let values: Vec<&[u8]> =
                headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice()).collect();
            match identity.header_value(name) {
                Some(want) => assert_eq!(values, [want.as_bytes()], "{name}"),
                None => assert!(values.is_empty(), "{name} left with {values:?}"),
            }
        }
        if strip_spoofed {
            for (name, _) in &headers {
                assert!(!is_spoofable(name) || MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()), "{name}");
            }
        }
    }
});

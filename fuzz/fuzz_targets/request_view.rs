//! The request view: the header map as the host hands it over (proxy-wasm's serialized map), the
//! headers looked up case-insensitively with duplicates, `:path` and its query arguments, and
//! what each host does with them. Properties: a query argument removed from the path is gone
//! from the new path and the others keep their order; the header map round-trips.
#![no_main]

use consumer_auth::host_kind::HostKind;
use consumer_auth::request::Request;
use consumer_auth::wire::{deserialize_map, serialize_map};
use consumer_auth_fuzz::FuzzRequest;
use libfuzzer_sys::fuzz_target;

/// Names the plugins look up, in the cases clients send them.
const NAMES: [&str; 10] =
    ["apikey", "ApiKey", "authorization", "content-type", "x-consumer-id", "x-api-key", "jwt", "date", "", "a"];

fuzz_target!(|data: &[u8]| {
    // The same bytes as proxy-wasm's serialized header map (what the glue deserializes).
    if let Some(map) = deserialize_map(data) {
        let pairs: Vec<(&str, &[u8])> = map.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        assert_eq!(deserialize_map(&serialize_map(&pairs)).as_ref(), Some(&map), "the header map round-trips");
    }

    let req = FuzzRequest::parse(data);
    let view = req.view();
    let plain = Request::new(&req.method, &req.path, &req.headers, view.body);
    for r in [&view, &view.without_identity_headers(), &plain] {
        let mut names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        names.extend(req.headers.iter().take(8).map(|(n, _)| n.clone()));
        if let Some(q) = r.raw_query() {
            names.extend(q.split('&').take(8).map(|s| s.split('=').next().unwrap_or("").to_string()));
        }
        for name in &names {
            let _ = r.header(name);
            let _ = r.header_values(name).count();
            let _ = r.query_arg(name);
            let values = r.query_values(name);
            assert_eq!(r.has_query_arg(name), !values.is_empty());
            if let Some(path) = r.path_without_query_arg(name) {
                let headers = Vec::new();
                let after = Request::new(&req.method, &path, &headers, view.body);
                assert!(!after.has_query_arg(name), "{name} still in {path}");
                assert!(path.len() < r.path.len());
            }
        }
        let _ = r.content_type();
    }
    for kind in [HostKind::Envoy, HostKind::Kong] {
        let _ = kind.body_follows(false, &req.headers, || req.protocol.clone().map(String::into_bytes));
        let _ = kind.path_rewrite(&req.path);
        let declared = view.first_header("content-length").and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        let _ = kind.body_plan(declared);
    }
});

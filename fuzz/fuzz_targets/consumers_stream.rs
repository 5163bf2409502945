//! The consumers document a store's loader fetches (`{"consumers": [...]}`), streamed consumer by
//! consumer into a store population. Properties:
//! - read from memory or from a reader in small chunks (as the loader reads a fetched body), the
//!   document gives the same population or the same refusal;
//! - a document the loader accepts is accepted as a configuration's inline `consumers` too;
//! - every record round-trips: written to shared data and read back through the store, each
//!   credential and consumer is what the inline index holds for it.
#![no_main]

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use consumer_auth::config::{parse_consumers_document, read_consumers_document, Config, ConsumerSource};
use consumer_auth::store::{write, StoreReader};
use consumer_auth_fuzz::FakeHost;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Hands out at most 7 bytes per read.
struct Chunks<'a>(&'a [u8]);

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A refusal without serde_json's ` at line L column C`.
fn without_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |i| &message[..i])
}

fuzz_target!(|data: &[u8]| {
    let streamed = parse_consumers_document(data);
    let read = read_consumers_document(Chunks(data));
    match (&streamed, &read) {
        (Ok(a), Ok(b)) => assert_eq!(a.records(), b.records()),
        // serde_json places a control character in a string one column later when it reads from
        // a reader (found by this target): the messages are compared without the position
        (Err(a), Err(b)) => assert_eq!(without_position(&a.to_string()), without_position(&b.to_string())),
        _ => panic!("from memory: {:?}, from a reader: {:?}", streamed.is_ok(), read.is_ok()),
    }
    let Ok(population) = streamed else { return };
    // serde_json skips the fields it ignores without checking their UTF-8 (found by this
    // target: invalid UTF-8 outside `consumers` is accepted); `consumers` itself was checked
    let Ok(doc) = serde_json::from_str::<Value>(&String::from_utf8_lossy(data)) else { panic!("accepted, but not JSON") };
    let consumers = doc.get("consumers").cloned().unwrap_or(Value::Array(vec![]));
    let inline = serde_json::json!({ "consumers": consumers });
    let config = match Config::parse(inline.to_string().as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("the loader accepts a document the configuration refuses: {e}"),
    };
    let ConsumerSource::Inline(index) = &config.consumers else { unreachable!() };
    let index = &**index;

    // A store of its own per input: the reader's parsed-jwt-key cache lives as long as the VM
    // (here, the whole run), keyed by store and generation, which in a proxy never repeat with
    // other content; fresh shared data per input under one name would replay generation 1.
    static INPUTS: AtomicU64 = AtomicU64::new(0);
    let name = format!("s{}", INPUTS.fetch_add(1, Ordering::Relaxed));
    let mut host = FakeHost::default();
    write(&mut host, &name, &population, "digest", None).unwrap();
    let mut store = StoreReader::new(&name);
    let h = &mut host;
    let list = |c: &Value, field: &str| c.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    for c in consumers.as_array().into_iter().flatten() {
        for reference in [text(c, "id"), text(c, "username"), text(c, "custom_id")].into_iter().flatten() {
            let want = index.by_reference(&reference);
            assert_eq!(store.by_reference(h, &reference).unwrap(), want, "consumer {reference}");
        }
        for k in list(c, "keyauth_credentials") {
            let Some(key) = text(&k, "key") else { continue };
            let want = index.key(key.as_bytes()).unwrap();
            let got = store.key(h, key.as_bytes()).unwrap().expect("a key round-trips");
            assert_eq!((&got.id, &got.consumer, got.expires_at), (&want.id, &want.consumer, want.expires_at));
        }
        for b in list(c, "basicauth_credentials") {
            let Some(user) = text(&b, "username") else { continue };
            let want = index.basic(user.as_bytes()).unwrap();
            let got = store.basic(h, user.as_bytes()).unwrap().expect("a basic credential round-trips");
            assert_eq!((&got.username, &got.consumer), (&want.username, &want.consumer));
            if let Some(password) = text(&b, "password") {
                assert!(got.verifier.verify(password.as_bytes()), "the password of {user}");
            }
        }
        for m in list(c, "hmacauth_credentials") {
            let Some(user) = text(&m, "username") else { continue };
            let want = index.hmac(&user).unwrap();
            let got = store.hmac(h, &user).unwrap().expect("an hmac credential round-trips");
            assert_eq!((&got.username, &got.consumer, got.secret()), (&want.username, &want.consumer, want.secret()));
        }
        for j in list(c, "jwt_secrets") {
            let Some(key) = text(&j, "key") else { continue };
            let want = index.jwt(&key).unwrap();
            let got = store.jwt(h, &key).unwrap().expect("a jwt secret round-trips");
            assert_eq!((&got.key, &got.consumer, got.algorithm), (&want.key, &want.consumer, want.algorithm));
        }
    }
});

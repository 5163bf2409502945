//! The store as a whole: populations written as generations and read back through a fake proxy
//! with shared data.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use super::*;
use crate::consumers::{derived_id, key_digest, Consumer, KeyCredential, PasswordVerifier, ValidConsumer, ValidKey};
use crate::proxy::{Host, LogLevel, SharedError};

/// Shared data with CAS, like the proxy's.
#[derive(Default)]
struct Shared {
    data: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    now: u64,
}

impl Host for Shared {
    fn now_unix_seconds(&mut self) -> u64 {
        self.now
    }
    fn log(&mut self, _: LogLevel, _: &str) {}
    fn shared_get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, SharedError> {
        Ok(self.data.get(key).cloned())
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SharedError> {
        if let Some((_, current)) = self.data.get(key) {
            if cas != 0 && cas != *current {
                return Err(SharedError::CasMismatch);
            }
        }
        self.next_cas += 1;
        self.data.insert(key.to_string(), (value.to_vec(), self.next_cas));
        Ok(())
    }
}

/// A population of consumers written as in a document (`username`, `keyauth_credentials`
/// with `key`, `basicauth_credentials`), built without the configuration layer above.
fn index(json: &str) -> Population {
    let consumers: Vec<Value> = serde_json::from_str(json).unwrap();
    let mut builder = Builder::new("consumers");
    for (ci, c) in consumers.iter().enumerate() {
        let username = c["username"].as_str().unwrap().to_string();
        let consumer = Rc::new(Consumer {
            id: derived_id("consumer", &username),
            username: Some(username),
            custom_id: None,
            groups: vec![],
        });
        let list = |field: &str| c.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
        let keys = list("keyauth_credentials")
            .iter()
            .enumerate()
            .map(|(ki, k)| ValidKey {
                digest: key_digest(k["key"].as_str().unwrap().as_bytes()),
                from_hash: false,
                explicit_id: false,
                credential: KeyCredential {
                    id: derived_id("keyauth", &format!("{}:{ki}", consumer.id)),
                    consumer: Rc::clone(&consumer),
                    expires_at: None,
                },
            })
            .collect();
        let basic = list("basicauth_credentials")
            .iter()
            .map(|b| crate::consumers::BasicCredential {
                username: b["username"].as_str().unwrap().to_string(),
                consumer: Rc::clone(&consumer),
                verifier: PasswordVerifier::from_plain(b["password"].as_str().unwrap().as_bytes()),
            })
            .collect();
        let valid = ValidConsumer { consumer, keys, basic, hmac: vec![], jwt: vec![] };
        builder.add(ci, &valid).unwrap();
    }
    builder.finish().unwrap()
}

#[test]
fn a_generation_is_written_once_and_read_back() {
    let mut host = Shared::default();
    let idx = index(
        r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}],"basicauth_credentials":[{"username":"ab","password":"p"}]}]"#,
    );
    assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::Switched { gen: 1, records: 4 }));
    assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::AlreadyCurrent(1)));
    let mut r = StoreReader::new("s");
    let k = r.key(&mut host, b"k1").unwrap().unwrap();
    assert_eq!(k.consumer.username.as_deref(), Some("a"));
    assert!(r.key(&mut host, b"k2").unwrap().is_none());
    let b = r.basic(&mut host, b"ab").unwrap().unwrap();
    assert!(b.verifier.verify(b"p"));
    assert_eq!(r.by_reference(&mut host, "a").unwrap().unwrap().username.as_deref(), Some("a"));
    // no key in shared data holds the secret
    assert!(host.data.keys().all(|k| !k.contains("k1")));
}

#[test]
fn readers_see_one_generation_or_the_next_never_a_mix() {
    let mut host = Shared::default();
    let one = index(r#"[{"username":"a","keyauth_credentials":[{"key":"old"}]}]"#);
    let two = index(
        r#"[{"username":"a","keyauth_credentials":[{"key":"new"}]},{"username":"b","keyauth_credentials":[{"key":"b"}]}]"#,
    );
    write(&mut host, "s", &one, "d1", None).unwrap();
    // a reader that read generation 1 ...
    let mut during = StoreReader::new("s");
    assert!(during.key(&mut host, b"old").unwrap().is_some());
    write(&mut host, "s", &two, "d2", None).unwrap();
    // ... finds generation 1's buckets emptied after the switch and moves to generation 2 as
    // a whole: never a mix
    assert!(during.key(&mut host, b"old").unwrap().is_none());
    assert!(during.key(&mut host, b"new").unwrap().is_some());
    assert_eq!(during.gen.map(|g| g.0), Some(2));
    let mut after = StoreReader::new("s");
    assert!(after.key(&mut host, b"old").unwrap().is_none(), "revoked");
    assert!(after.key(&mut host, b"new").unwrap().is_some());
    assert!(after.key(&mut host, b"b").unwrap().is_some(), "added");
    // generation 3 reuses generation 1's slot: stale records there are not seen
    let three = index(r#"[{"username":"c","keyauth_credentials":[{"key":"c"}]}]"#);
    write(&mut host, "s", &three, "d3", None).unwrap();
    let mut third = StoreReader::new("s");
    assert!(third.key(&mut host, b"old").unwrap().is_none(), "generation 1's record is stale");
    assert!(third.key(&mut host, b"c").unwrap().is_some());
    // a reader still on generation 2 that finds a generation-3 record switches forward
    assert!(during.key(&mut host, b"c").unwrap().is_some());
}

#[test]
fn a_writer_that_failed_half_way_is_completed_by_the_next() {
    let mut host = Shared::default();
    let idx = index(r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}]}]"#);
    // a claim for this content without the switch (the writer died before `gen`)
    let claim = serde_json::to_vec(&Meta {
        gen: 1,
        digest: "d1".into(),
        etag: None,
        writing_since: None,
        ..Default::default()
    })
    .unwrap();
    host.shared_set(&meta_key("s"), &claim, 0).unwrap();
    assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::Switched { gen: 1, records: 3 }));
    assert!(StoreReader::new("s").key(&mut host, b"k1").unwrap().is_some());
    assert_eq!(write(&mut host, "s", &idx, "d1", None), Ok(Written::AlreadyCurrent(1)));
}

#[test]
fn a_new_generation_never_overwrites_the_slot_readers_use() {
    let mut host = Shared::default();
    let one = index(r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}]}]"#);
    write(&mut host, "s", &one, "d1", None).unwrap();
    // a writer of another content claimed generation 2 and died before switching
    let stale = Meta { gen: 2, digest: "dx".into(), etag: None, writing_since: Some(0), ..Default::default() };
    host.shared_set(&meta_key("s"), &serde_json::to_vec(&stale).unwrap(), 0).unwrap();
    // ... its claim is stale (now = 0 + timeout is not before it): a third content takes over
    // generation 2 (slot 0), not 3 (slot 1, the one readers of generation 1 use)
    host.now = WRITER_TIMEOUT_SECONDS;
    let two = index(r#"[{"username":"b","keyauth_credentials":[{"key":"k2"}]}]"#);
    assert_eq!(write(&mut host, "s", &two, "d2", None), Ok(Written::Switched { gen: 2, records: 3 }));
    assert!(StoreReader::new("s").key(&mut host, b"k2").unwrap().is_some());
    // a live claim of another content makes a writer back off instead of racing it
    let live = Meta { gen: 3, digest: "dy".into(), etag: None, writing_since: Some(host.now), ..Default::default() };
    host.shared_set(&meta_key("s"), &serde_json::to_vec(&live).unwrap(), 0).unwrap();
    assert_eq!(write(&mut host, "s", &one, "d1", None), Err(WriteError::Busy));
    assert!(StoreReader::new("s").key(&mut host, b"k2").unwrap().is_some());
}

#[test]
fn a_large_population_is_found_whole_and_buckets_are_freed() {
    let mut host = Shared::default();
    let doc = |n: usize, tag: &str| {
        let consumers: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"username":"u{i}","keyauth_credentials":[{{"key":"{tag}-{i}"}}],"basicauth_credentials":[{{"username":"b{i}","password":"p{i}"}}]}}"#
                )
            })
            .collect();
        index(&format!("[{}]", consumers.join(",")))
    };
    let big = doc(3000, "a");
    assert_eq!(big.records(), 12_000);
    write(&mut host, "s", &big, "d1", None).unwrap();
    let mut r = StoreReader::new("s");
    for i in (0..3000).step_by(7) {
        let k = r.key(&mut host, format!("a-{i}").as_bytes()).unwrap().unwrap();
        assert_eq!(k.consumer.username.as_deref(), Some(format!("u{i}").as_str()));
        assert!(r
            .basic(&mut host, format!("b{i}").as_bytes())
            .unwrap()
            .unwrap()
            .verifier
            .verify(format!("p{i}").as_bytes()));
        assert!(r.by_reference(&mut host, &format!("u{i}")).unwrap().is_some());
    }
    // one shared-data entry per 4–8 records, not one per record
    let buckets = host.data.keys().filter(|k| k.starts_with("consumer_auth/store:s:1:")).count();
    assert_eq!(buckets, 12_000usize.div_ceil(RECORDS_PER_BUCKET).next_power_of_two());
    // a smaller generation: generation 1's buckets are emptied, none of its keys remain
    let small = doc(10, "b");
    write(&mut host, "s", &small, "d2", None).unwrap();
    let used: usize =
        host.data.iter().filter(|(k, v)| k.contains(":s:") && !k.ends_with("meta") && !v.0.is_empty()).count();
    assert_eq!(used, 40usize.div_ceil(RECORDS_PER_BUCKET).next_power_of_two() + 1, "its buckets and `gen`");
    let mut r = StoreReader::new("s");
    assert!(r.key(&mut host, b"a-5").unwrap().is_none());
    assert!(r.key(&mut host, b"b-5").unwrap().is_some());
    // and a larger one again into slot 1: nothing stale is found
    write(&mut host, "s", &doc(50, "c"), "d3", None).unwrap();
    let mut r = StoreReader::new("s");
    assert!(r.key(&mut host, b"a-5").unwrap().is_none());
    assert!(r.key(&mut host, b"b-5").unwrap().is_none());
    assert!(r.key(&mut host, b"c-49").unwrap().is_some());
}

#[test]
fn corrupt_buckets_answer_not_found_never_panic() {
    let mut host = Shared::default();
    let idx = index(r#"[{"username":"a","keyauth_credentials":[{"key":"k1"}]}]"#);
    write(&mut host, "s", &idx, "d1", None).unwrap();
    let buckets: Vec<String> =
        host.data.keys().filter(|k| k.starts_with("consumer_auth/store:s:1:")).cloned().collect();
    let mut valid = Vec::new();
    for k in &buckets {
        valid.push(host.data[k].0.clone());
    }
    // every truncation of every bucket, and some garbage
    for (k, v) in buckets.iter().zip(&valid) {
        for cut in 0..v.len() {
            host.data.insert(k.clone(), (v[..cut].to_vec(), 1));
            let mut r = StoreReader::new("s");
            let _ = r.key(&mut host, b"k1");
            let _ = r.by_reference(&mut host, "a");
        }
        let mut garbage = v.clone();
        for b in garbage.iter_mut().skip(9) {
            *b = 0xff;
        }
        host.data.insert(k.clone(), (garbage, 1));
        assert!(StoreReader::new("s").key(&mut host, b"k1").unwrap().is_none());
    }
    host.data.insert(gen_key("s"), (b"x y".to_vec(), 1));
    assert_eq!(StoreReader::new("s").key(&mut host, b"k1").err(), Some(StoreError::NotLoaded));
}

#[test]
fn nothing_written_is_not_loaded() {
    let mut host = Shared::default();
    assert_eq!(StoreReader::new("s").key(&mut host, b"k").err(), Some(StoreError::NotLoaded));
}

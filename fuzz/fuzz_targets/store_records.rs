//! The consumer store as read back from shared data, which anything in the proxy can write:
//! the fixed consumers are written as a generation, then one entry (`gen`, `meta` or a bucket,
//! picked by byte 0) is replaced by the input (byte 1 even) or patched (byte 1 odd: the rest is
//! (offset, xor) pairs), and every credential and consumer is looked up. A corrupted entry is
//! refused or misses; it never panics, loops or reads out of bounds. Then the writer writes the
//! next generation over the corruption, and every lookup finds its consumer again.
#![no_main]

use consumer_auth::config::Config;
use consumer_auth::store::{write, StoreReader};
use consumer_auth_fuzz::{consumers, jwt_key_for, FakeHost, ALGORITHMS};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static STORE: (FakeHost, Box<consumer_auth::store::Population>) = {
        let mut host = FakeHost::default();
        let doc = serde_json::json!({"store": {"name": "s", "consumers": consumers()}});
        let config = Config::parse(doc.to_string().as_bytes()).unwrap();
        let Some(consumer_auth::config::StoreContent::Inline { population, digest }) = config.store.map(|s| s.content)
        else { unreachable!() };
        write(&mut host, "s", &population, &digest, None).unwrap();
        (host, population)
    };
}

const KEYS: [&str; 4] = ["alice-key", "bob-key", "carol-key", "nobody"];
const USERS: [&str; 4] = ["alice-basic", "bob-basic", "alice-hmac", "bob-hmac"];
const REFS: [&str; 4] = ["alice", "anonymous_users", "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77", "crm-1042"];

/// Every lookup; `Some(found)` for each, `None` when the store could not answer.
fn lookups(host: &mut FakeHost) -> Vec<Option<bool>> {
    let mut r = StoreReader::new("s");
    let mut out = Vec::new();
    for k in KEYS {
        out.push(r.key(host, k.as_bytes()).ok().map(|c| c.is_some()));
    }
    for u in USERS {
        out.push(r.basic(host, u.as_bytes()).ok().map(|c| c.is_some_and(|c| c.verifier.verify(b"alice-pw"))));
        out.push(r.hmac(host, u).ok().map(|c| c.is_some_and(|c| !c.secret().is_empty())));
    }
    for alg in ALGORITHMS {
        out.push(r.jwt(host, &jwt_key_for(alg)).ok().map(|c| c.is_some()));
    }
    for reference in REFS {
        out.push(r.by_reference(host, reference).ok().map(|c| c.is_some()));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [pick, how, rest @ ..] = data else { return };
    STORE.with(|(template, population)| {
        let mut host = FakeHost::with_data(&template.data);
        let mut names: Vec<String> = host.data.keys().cloned().collect();
        names.sort();
        let name = &names[*pick as usize % names.len()];
        let entry = host.data.get_mut(name).unwrap();
        if how % 2 == 0 {
            entry.0 = rest.to_vec();
        } else {
            let len = entry.0.len().max(1);
            for pair in rest.chunks_exact(3) {
                let offset = usize::from(pair[0]) | usize::from(pair[1]) << 8;
                if let Some(b) = entry.0.get_mut(offset % len) {
                    *b ^= pair[2];
                }
            }
        }
        let _ = lookups(&mut host);
        // the next generation replaces whatever was there
        if write(&mut host, "s", population, "next", None).is_ok() {
            let after = lookups(&mut host);
            let expected = lookups(&mut FakeHost::with_data(&template.data));
            assert_eq!(after, expected, "a new generation over a corrupted {name} reads differently");
        }
    });
});

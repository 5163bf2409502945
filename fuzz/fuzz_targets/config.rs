//! The configuration document an operator writes (BEHAVIOUR.md §B1), whole: consumers, plugins,
//! a store section. Properties: parsing is deterministic (the same verdict, or the same refusal
//! message, twice); a document the parser accepts is accepted again, with the same plugins in
//! the same order, once re-serialized (its verdict depends on the JSON, not on its spelling);
//! a refusal names a path and carries none of the document's secrets.
#![no_main]

use consumer_auth::config::{Config, ConsumerSource, StoreContent};
use libfuzzer_sys::fuzz_target;

/// What a configuration decided, comparable.
fn summary(c: &Config) -> String {
    let slots: Vec<String> = c
        .slots
        .iter()
        .map(|s| {
            let mut scoped: Vec<&String> = s.scoped.keys().collect();
            scoped.sort();
            format!("{}@{}:{}:{scoped:?}", s.name, s.priority, s.unscoped.is_some())
        })
        .collect();
    let source = match &c.consumers {
        ConsumerSource::Inline(index) => format!("inline {}", index.len()),
        ConsumerSource::Store(name) => format!("store {name}"),
    };
    let store = c.store.as_ref().map(|s| match &s.content {
        StoreContent::Inline { population, .. } => format!("{} inline {}", s.name, population.records()),
        StoreContent::Remote(r) => format!("{} remote {r:?}", s.name),
    });
    format!("{slots:?} {source} {store:?} {:?} {:?}", c.body_needed_by, c.refusal_log_level)
}

fuzz_target!(|data: &[u8]| {
    let first = Config::parse(data);
    let second = Config::parse(data);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(summary(a), summary(b)),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("two parses of the same document disagree"),
    }
    match first {
        Ok(config) => {
            let value: serde_json::Value = serde_json::from_slice(data).expect("accepted, so JSON");
            let again = Config::parse(value.to_string().as_bytes());
            match again {
                Ok(again) => assert_eq!(summary(&config), summary(&again), "re-serialized, it means something else"),
                Err(e) => panic!("accepted, but refused once re-serialized: {e}"),
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
            let (mut secrets, mut others) = (Vec::new(), Vec::new());
            strings(&value, false, &mut secrets, &mut others);
            for secret in secrets {
                // a secret that is also written elsewhere as a name may be quoted as that name
                if secret.len() >= 6 && !others.iter().any(|o| o.contains(secret.as_str())) {
                    assert!(!message.contains(&secret), "a refusal shows a secret: {message}");
                }
            }
        }
    }
});

/// The document's string values under `key`, `password` and `secret` (the secrets), and every
/// other string and field name.
fn strings(v: &serde_json::Value, secret: bool, secrets: &mut Vec<String>, others: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if secret => secrets.push(s.clone()),
        serde_json::Value::String(s) => others.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, secret, secrets, others)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                others.push(k.clone());
                strings(v, matches!(k.as_str(), "key" | "password" | "secret"), secrets, others);
            }
        }
        _ => others.push(v.to_string()),
    }
}

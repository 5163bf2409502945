//! The configuration document (BEHAVIOUR.md §B1): parsed with serde (unknown fields refused), then
//! validated into an immutable [`Config`] built once per `on_configure` and shared by every
//! request. Every refusal names the JSON path of the offending element.

//!
//! One file per job: `raw` (the serde structs), `consumers` (one consumer validated; the inline
//! index), `document` (a consumers document streamed into a store population), `store` (the
//! `store` section), `plugins` (the `plugins` array, through the plugin table).

mod consumers;
mod document;
mod plugins;
mod raw;
mod store;

use std::collections::HashMap;

use crate::consumers::{Consumer, ConsumerIndex};
// Re-exported: these lived here before the leaf `error` had them.
use crate::error::parse_document;
pub use crate::error::{consumer_path, parse_section, ConfigError, ErrorKind};
use crate::plugins::rate_limiting::redis::RedisPolicy;
use crate::plugins::Configured;
use crate::proxy::LogLevel;
use crate::store::Population;
use consumers::build_consumers;
pub use document::{parse_consumers_document, read_consumers_document};
use plugins::build_plugins;
use raw::RawDocument;
use store::{build_store, check_store_name};

/// One priority slot: the unscoped entry of a plugin and its consumer-scoped entries.
pub struct Slot {
    pub name: &'static str,
    pub priority: u32,
    pub unscoped: Option<Configured>,
    /// Consumer id (or, with a consumer store, the id or username as written) -> the entry scoped
    /// to that consumer (replaces the unscoped one for them).
    pub scoped: HashMap<String, Configured>,
}

impl Slot {
    /// The entry that applies to the consumer identified so far.
    pub fn entry_for(&self, consumer: Option<&Consumer>) -> Option<&Configured> {
        consumer
            .and_then(|c| self.scoped.get(&c.id).or_else(|| c.username.as_ref().and_then(|u| self.scoped.get(u))))
            .or(self.unscoped.as_ref())
    }
}

/// Where a filter instance finds its consumers.
pub enum ConsumerSource {
    Inline(Box<ConsumerIndex>),
    /// A shared consumer store, by name (`consumer_store`).
    Store(String),
}

/// A store this document fills (`store`).
pub struct StoreDefinition {
    pub name: String,
    pub content: StoreContent,
}

pub enum StoreContent {
    /// Consumers given in the document, validated; `digest` identifies the content.
    Inline { population: Box<Population>, digest: String },
    /// Fetched over HTTP and refreshed.
    Remote(RemoteSource),
}

/// An HTTP endpoint serving a consumers document (`{"consumers": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// Envoy: a cluster name; Kong: `host:port`.
    pub upstream: String,
    pub authority: String,
    /// `http` or `https`: the request's `:scheme` (Kong opens TLS for `https`; Envoy's cluster
    /// decides the transport).
    pub scheme: &'static str,
    pub path: String,
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
}

/// A validated configuration, immutable and shared by every request of one filter instance.
pub struct Config {
    pub consumers: ConsumerSource,
    /// The store this document fills, if any.
    pub store: Option<StoreDefinition>,
    /// Plugins in Kong priority order (highest first).
    pub slots: Vec<Slot>,
    /// The JSON path of the first setting that makes a plugin read the request body, if any.
    pub body_needed_by: Option<String>,
    /// Level of the log line written per refused request; `None`: no line.
    pub refusal_log_level: Option<LogLevel>,
}

impl Config {
    /// Every plugin entry whose counters are flushed on the tick (rate-limiting's `sync_rate`),
    /// with its counter scope.
    pub fn counter_policies(&self) -> impl Iterator<Item = (&RedisPolicy, &str)> {
        self.slots.iter().flat_map(|slot| slot.unscoped.iter().chain(slot.scoped.values())).filter_map(|entry| {
            match entry {
                Configured::Other(plugin) => plugin.counters(),
                Configured::Auth(_) => None,
            }
        })
    }

    /// Parse and validate a whole document; the first error refuses it.
    pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
        let doc: RawDocument = parse_document(json)?;
        let consumers = match (doc.consumers, doc.consumer_store) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("", ErrorKind::OnlyOneOf("'consumers', 'consumer_store'")));
            }
            (_, Some(name)) => {
                check_store_name(&name, "consumer_store")?;
                ConsumerSource::Store(name)
            }
            (raw, None) => ConsumerSource::Inline(Box::new(build_consumers(raw.unwrap_or_default(), "consumers")?)),
        };
        let store = doc.store.map(|s| build_store(s, json)).transpose()?;
        // Names this document's counters in shared data (rate-limiting): the same on every worker.
        let instance = hex::encode(crate::consumers::sha256(json).get(..8).unwrap_or_default());
        let inline = match &consumers {
            ConsumerSource::Inline(index) => Some(&**index),
            ConsumerSource::Store(_) => None,
        };
        let (slots, body_needed_by) = build_plugins(doc.plugins, inline, &instance)?;
        let refusal_log_level = match doc.refusal_log_level.as_deref() {
            // debug by default: Kong writes no error-log line per refused request, nor do
            // Envoy's own auth filters at its default level; the access log has the status and
            // the metrics the reason (docs/OBSERVABILITY.md).
            Some("info") => Some(LogLevel::Info),
            None | Some("debug") => Some(LogLevel::Debug),
            Some("warn") => Some(LogLevel::Warn),
            Some("error") => Some(LogLevel::Error),
            Some("off") => None,
            Some(_) => {
                return Err(ConfigError::new(
                    "refusal_log_level",
                    ErrorKind::Rule("expected one of: debug, info, warn, error, off"),
                ))
            }
        };
        Ok(Config { consumers, store, slots, body_needed_by, refusal_log_level })
    }

    /// The number of consumers the document holds (a consumer store's are not counted).
    pub fn inline_consumers(&self) -> usize {
        match &self.consumers {
            ConsumerSource::Inline(index) => index.len(),
            ConsumerSource::Store(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> String {
        match Config::parse(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_the_spec_example_shape() {
        let c = Config::parse(
            br#"{"consumers":[{"username":"alice","keyauth_credentials":[{"key":"k"}],"acls":[{"group":"admins"}]},
                 {"username":"anonymous_users"}],
                 "plugins":[{"name":"acl","config":{"allow":["admins"]}},{"name":"key-auth","config":{"anonymous":"anonymous_users"}},
                 {"name":"request-termination","consumer":"anonymous_users","config":{"status_code":401,"message":"Authentication required"}}]}"#,
        )
        .unwrap();
        let names: Vec<_> = c.slots.iter().map(|s| s.name).collect();
        assert_eq!(names, ["key-auth", "acl", "request-termination"]);
        assert_eq!(c.inline_consumers(), 2);
    }

    #[test]
    fn refusals_name_the_path() {
        assert_eq!(
            refused(r#"{"plugins":[{"name":"key-auth","config":{"key_names":["apikey","hello\\world"]}}]}"#),
            "plugins[0].config.key_names[1]: bad header name 'hello\\world', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        );
        assert_eq!(refused(r#"{"plugins":[{"name":"key-authz"}]}"#), "plugins[0].name: unknown plugin 'key-authz'");
        assert_eq!(refused(r#"{"consumers":[{"username":"a","foo":1}]}"#), "consumers[0].foo: unknown field");
        assert_eq!(refused(r#"{"consumers":[{"username":5}]}"#), "consumers[0].username: expected a string");
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]},{"username":"b","keyauth_credentials":[{"key":"k"}]}]}"#
            ),
            "consumers[1].keyauth_credentials[0].key: duplicate key (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"id":"nope","username":"a"}]}"#),
            "consumers[0].id: expected a valid UUID"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a","basicauth_credentials":[{"password":"p"}]}]}"#),
            "consumers[0].basicauth_credentials[0].username: required field missing"
        );
        assert_eq!(refused("{"), "invalid JSON: EOF while parsing an object at line 1 column 1");
    }

    #[test]
    fn secrets_never_appear_in_refusals() {
        let e = refused(
            r#"{"consumers":[{"username":"a","keyauth_credentials":[{"key":"TOPSECRET"}]},{"username":"b","keyauth_credentials":[{"key":"TOPSECRET"}]}]}"#,
        );
        assert!(!e.contains("TOPSECRET"), "{e}");
    }

    #[test]
    fn duplicates_across_the_population_are_refused_with_both_paths() {
        let refused = |json: &str| match crate::config::parse_consumers_document(json.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {json}"),
        };
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]},{"username":"b","keyauth_credentials":[{"key":"x"},{"key":"k"}]}]}"#
            ),
            "consumers[1].keyauth_credentials[1].key: duplicate key (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a"},{"username":"a"}]}"#),
            "consumers[1].username: duplicate username 'a' (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a","custom_id":"c"},{"username":"b","custom_id":"c"}]}"#),
            "consumers[1].custom_id: duplicate custom_id 'c' (also used by consumers[0])"
        );
        let id = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
        assert_eq!(
            refused(&format!(r#"{{"consumers":[{{"id":"{id}","username":"a"}},{{"id":"{id}","username":"b"}}]}}"#)),
            format!("consumers[1].id: duplicate id '{id}' (also used by consumers[0])")
        );
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","basicauth_credentials":[{"username":"x","password":"1"}]},{"username":"b","basicauth_credentials":[{"username":"x","password":"2"}]}]}"#
            ),
            "consumers[1].basicauth_credentials[0].username: duplicate username 'x' (also used by consumers[0])"
        );
        assert_eq!(
            refused(r#"{"consumers":[{"username":"a","keyauth_credentials":[{"id":"0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77","key":"1"}]},{"username":"b","keyauth_credentials":[{"id":"0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77","key":"2"}]}]}"#),
            "consumers[1].keyauth_credentials[0].id: duplicate credential id '0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77' (also used by consumers[0])"
        );
        // the streamed parse keeps serde's paths, and other top-level fields are skipped
        assert_eq!(
            refused(
                r#"{"_format_version":"3.0","services":[{"x":[1,{"y":2}]}],"consumers":[{"username":"a"},{"username":"b","acls":[{"group":1}]}]}"#
            ),
            "consumers[1].acls[0].group: expected a string"
        );
        assert!(refused(r#"{"consumers":[{"username":"a"}]"#).starts_with("invalid JSON"));
        assert!(crate::config::parse_consumers_document(br#"{"other":1}"#).unwrap().records() == 0);
    }

    #[test]
    fn hmac_and_jwt_duplicates_are_refused_too() {
        let refused = |json: &str| crate::config::parse_consumers_document(json.as_bytes()).err().unwrap().to_string();
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","hmacauth_credentials":[{"username":"h","secret":"s1"}]},{"username":"b","hmacauth_credentials":[{"username":"h","secret":"s2"}]}]}"#
            ),
            "consumers[1].hmacauth_credentials[0].username: duplicate username 'h' (also used by consumers[0])"
        );
        assert_eq!(
            refused(
                r#"{"consumers":[{"username":"a","jwt_secrets":[{"key":"iss","secret":"s1"}]},{"username":"b","jwt_secrets":[{"key":"x","secret":"s"},{"key":"iss","secret":"s2"}]}]}"#
            ),
            "consumers[1].jwt_secrets[1].key: duplicate key 'iss' (also used by consumers[0])"
        );
    }
}

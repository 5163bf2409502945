//! `consumer-auth check`: a document validated by the very code the filter runs at configure time,
//! so the answer (and the JSON path and reason of a refusal) is the one the filter would log.
//!
//! Three kinds of documents:
//! - a filter document (`consumers` / `consumer_store` and `plugins`) and a store document
//!   (`{"store": ...}`): both are what the filter's configuration holds, checked with
//!   [`consumer_auth::config::Config::parse`];
//! - a remote-source document (`{"consumers": [...]}` as an HTTP endpoint serves it, other top-level
//!   fields ignored, e.g. a decK dump converted to JSON): checked with
//!   [`consumer_auth::config::parse_consumers_document`], what the store loader runs on a fetched
//!   document.

use consumer_auth::config::{self, Config, ConsumerSource, StoreContent};
use serde_json::Value;

/// Which validation a document gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A filter or store document, unless its top level has fields a filter document cannot
    /// have next to `consumers` (then a remote-source document).
    Auto,
    /// A filter or store document (`Config::parse`).
    Filter,
    /// A remote-source document (the store loader's parser).
    Source,
}

/// The top-level fields of a filter document.
const FILTER_FIELDS: &[&str] = &["consumers", "consumer_store", "store", "plugins", "refusal_log_level"];

/// Validate one document: `Ok(summary)` (e.g. `3 consumers, 2 plugins`) or `Err(refusal)`
/// (`<path>: <reason>`, exactly the filter's text).
pub fn check_document(bytes: &[u8], kind: Kind) -> Result<String, String> {
    let kind = match kind {
        Kind::Auto => detect(bytes),
        k => k,
    };
    match kind {
        Kind::Source => {
            config::parse_consumers_document(bytes).map_err(|e| e.to_string())?;
            let n = count(bytes, &["consumers"]);
            Ok(format!("{n} consumers, remote-source document"))
        }
        _ => {
            let c = Config::parse(bytes).map_err(|e| e.to_string())?;
            let plugins = c.slots.len();
            match &c.store {
                Some(def) => match &def.content {
                    StoreContent::Inline { .. } => Ok(format!(
                        "{} consumers in store '{}', {plugins} plugins",
                        count(bytes, &["store", "consumers"]),
                        def.name
                    )),
                    StoreContent::Remote(s) => Ok(format!(
                        "store '{}' from {}{} every {} s, {plugins} plugins",
                        def.name, s.upstream, s.path, s.refresh_seconds
                    )),
                },
                None => match &c.consumers {
                    ConsumerSource::Store(name) => Ok(format!("consumers from store '{name}', {plugins} plugins")),
                    ConsumerSource::Inline(_) => Ok(format!("{} consumers, {plugins} plugins", c.inline_consumers())),
                },
            }
        }
    }
}

/// A document whose top level is an object with `consumers` and a field a filter document does
/// not have is a remote-source document; anything else (including what is not JSON) is checked
/// as a filter document, whose refusal then says why.
fn detect(bytes: &[u8]) -> Kind {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(top))
            if top.contains_key("consumers") && top.keys().any(|k| !FILTER_FIELDS.contains(&k.as_str())) =>
        {
            Kind::Source
        }
        _ => Kind::Filter,
    }
}

/// The length of the array at `path` (0 when there is none).
fn count(bytes: &[u8], path: &[&str]) -> usize {
    let Ok(mut v) = serde_json::from_slice::<Value>(bytes) else { return 0 };
    for p in path {
        v = v.get(*p).cloned().unwrap_or(Value::Null);
    }
    v.as_array().map_or(0, Vec::len)
}

/// The line `check` prints for one file.
pub fn report_line(file: &str, result: &Result<String, String>) -> String {
    match result {
        Ok(summary) => format!("{file}: ok ({summary})"),
        Err(refusal) => format!("{file}: refused: {refusal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_document_is_counted_as_the_filter_logs_it() {
        let doc = br#"{"consumers":[{"username":"alice","keyauth_credentials":[{"key":"k"}]},{"username":"anon"}],
                       "plugins":[{"name":"key-auth","config":{"anonymous":"anon"}},{"name":"acl","config":{"allow":["a"]}}]}"#;
        assert_eq!(check_document(doc, Kind::Auto), Ok("2 consumers, 2 plugins".into()));
    }

    #[test]
    fn refusals_are_the_filters_own_text() {
        let doc = br#"{"plugins":[{"name":"key-auth","config":{"key_names":["apikey","hello\\world"]}}]}"#;
        let expected = Config::parse(doc).err().map(|e| e.to_string());
        assert_eq!(check_document(doc, Kind::Auto).err(), expected);
        assert_eq!(
            report_line("f.json", &check_document(doc, Kind::Auto)),
            "f.json: refused: plugins[0].config.key_names[1]: bad header name 'hello\\world', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        );
        assert_eq!(
            check_document(br#"{"plugins":[{"name":"oauth2"}]}"#, Kind::Auto),
            Err("plugins[0].name: unknown plugin 'oauth2'".into())
        );
        assert_eq!(
            check_document(b"{", Kind::Auto),
            Err("invalid JSON: EOF while parsing an object at line 1 column 1".into())
        );
    }

    #[test]
    fn store_documents_go_through_config_parse() {
        let doc = br#"{"store":{"name":"main","consumers":[{"username":"a"},{"username":"b"}]}}"#;
        assert_eq!(check_document(doc, Kind::Auto), Ok("2 consumers in store 'main', 0 plugins".into()));
        let remote = br#"{"store":{"name":"main","source":{"upstream":"src","path":"/c.json"}}}"#;
        assert_eq!(check_document(remote, Kind::Auto), Ok("store 'main' from src/c.json every 30 s, 0 plugins".into()));
        let bad = br#"{"store":{"name":"main","source":{"upstream":"src","path":"c.json"}}}"#;
        assert_eq!(check_document(bad, Kind::Auto), Err("store.source.path: must start with '/'".into()));
        let dup = br#"{"store":{"name":"m","consumers":[{"username":"a"},{"username":"a"}]}}"#;
        assert_eq!(check_document(dup, Kind::Auto).err(), Config::parse(dup).err().map(|e| e.to_string()));
    }

    #[test]
    fn remote_source_documents_go_through_the_loaders_parser() {
        // A decK dump as JSON: other top-level fields are ignored, as the loader does.
        let doc = br#"{"_format_version":"3.0","services":[],"consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]}]}"#;
        assert_eq!(check_document(doc, Kind::Auto), Ok("1 consumers, remote-source document".into()));
        let bad = br#"{"_format_version":"3.0","consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]},
                       {"username":"b","keyauth_credentials":[{"key":"k"}]}]}"#;
        let expected = config::parse_consumers_document(bad).err().map(|e| e.to_string());
        assert!(expected.is_some());
        assert_eq!(check_document(bad, Kind::Auto).err(), expected);
        // Forced: a filter document's plugins are not part of a remote-source document.
        let filter = br#"{"consumers":[{"username":"a"}],"plugins":[{"name":"nope"}]}"#;
        assert_eq!(check_document(filter, Kind::Source), Ok("1 consumers, remote-source document".into()));
        assert_eq!(check_document(filter, Kind::Auto), Err("plugins[0].name: unknown plugin 'nope'".into()));
    }
}

//! The `store` section: a consumer store this document fills, from consumers given inline or a
//! remote source.

use super::consumers::validate_consumer;
use super::raw::RawStore;
use super::{RemoteSource, StoreContent, StoreDefinition};
use crate::consumers;
use crate::error::{ConfigError, ErrorKind};
use crate::plugins;
use crate::store::Builder;

/// Store names become part of shared-data keys.
pub(super) fn check_store_name(name: &str, path: &str) -> Result<(), ConfigError> {
    if plugins::valid_header_name(name) {
        Ok(())
    } else {
        Err(ConfigError::new(path, ErrorKind::Rule("a store name is made of A-Z, a-z, 0-9, '_' and '-'")))
    }
}

pub(super) fn build_store(raw: RawStore, document: &[u8]) -> Result<StoreDefinition, ConfigError> {
    check_store_name(&raw.name, "store.name")?;
    let content = match (raw.consumers, raw.source) {
        (Some(consumers), None) => {
            // The document's digest identifies the content: the same document on every worker
            // writes the store once.
            let digest = consumers::content_digest(document);
            let mut builder = Builder::new("store.consumers");
            for (ci, raw) in consumers.into_iter().enumerate() {
                builder.add(ci, &validate_consumer(raw, "store.consumers", ci)?)?;
            }
            StoreContent::Inline { population: Box::new(builder.finish()?), digest }
        }
        (None, Some(s)) => {
            if s.refresh_seconds == 0 {
                return Err(ConfigError::new(
                    "store.source.refresh_seconds",
                    ErrorKind::Rule("value must be greater than 0"),
                ));
            }
            if s.upstream.is_empty() {
                return Err(ConfigError::new("store.source.upstream", ErrorKind::Empty));
            }
            if !s.path.starts_with('/') {
                return Err(ConfigError::new("store.source.path", ErrorKind::Rule("must start with '/'")));
            }
            let authority = s.authority.unwrap_or_else(|| s.upstream.clone());
            let scheme = match s.scheme.as_str() {
                "http" => "http",
                "https" => "https",
                _ => {
                    return Err(ConfigError::new(
                        "store.source.scheme",
                        ErrorKind::Rule("expected one of: http, https"),
                    ))
                }
            };
            StoreContent::Remote(RemoteSource {
                upstream: s.upstream,
                authority,
                scheme,
                path: s.path,
                refresh_seconds: s.refresh_seconds,
                timeout_ms: s.timeout_ms,
            })
        }
        _ => return Err(ConfigError::new("store", ErrorKind::ExactlyOneOf("'consumers', 'source'"))),
    };
    Ok(StoreDefinition { name: raw.name, content })
}

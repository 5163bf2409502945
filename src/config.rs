//! The configuration document (AUTH_SPEC §1): parsed with serde (unknown fields refused), then
//! validated into an immutable [`Config`] built once per `on_configure` and shared by every
//! request. Every refusal names the JSON path of the offending element.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde::Deserialize;
use serde_json::Value;

use crate::consumers::{
    self, BasicCredential, Consumer, ConsumerIndex, HmacCredential, JwtCredential, JwtMaterial, KeyCredential,
    PasswordVerifier, ValidConsumer, ValidKey,
};
use crate::crypto::jwt_key;
pub use crate::error::{consumer_path, parse_section, ConfigError, ErrorKind};
use crate::error::{join_path, parse_document, serde_error};
use crate::pipeline::LogLevel;
use crate::plugins::{self, Configured};
use crate::store::{Builder, Population};

// ---------------------------------------------------------------------------------------------
// The document as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    consumers: Option<Vec<RawConsumer>>,
    /// Read consumers from this shared store instead of `consumers`.
    consumer_store: Option<String>,
    /// Fill a shared store (from `consumers` given here, or from a remote source).
    store: Option<RawStore>,
    #[serde(default)]
    plugins: Vec<Value>,
    /// Level of the one log line written per refused request: `debug`, `info` (default),
    /// `warn`, `error` or `off`.
    refusal_log_level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    name: String,
    consumers: Option<Vec<RawConsumer>>,
    source: Option<RawSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    upstream: String,
    authority: Option<String>,
    #[serde(default = "default_source_scheme")]
    scheme: String,
    #[serde(default = "default_source_path")]
    path: String,
    #[serde(default = "default_refresh_seconds")]
    refresh_seconds: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_source_scheme() -> String {
    "http".into()
}

fn default_source_path() -> String {
    "/".into()
}

fn default_refresh_seconds() -> u64 {
    30
}

fn default_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawConsumer {
    id: Option<String>,
    username: Option<String>,
    custom_id: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    created_at: Option<u64>,
    #[serde(default)]
    keyauth_credentials: Vec<RawKeyCredential>,
    #[serde(default)]
    basicauth_credentials: Vec<RawBasicCredential>,
    #[serde(default)]
    hmacauth_credentials: Vec<RawHmacCredential>,
    #[serde(default)]
    jwt_secrets: Vec<RawJwtSecret>,
    #[serde(default)]
    acls: Vec<RawAcl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawKeyCredential {
    id: Option<String>,
    key: Option<String>,
    key_hash: Option<String>,
    expires_at: Option<u64>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawBasicCredential {
    id: Option<String>,
    username: String,
    password: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawHmacCredential {
    id: Option<String>,
    username: String,
    secret: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawJwtSecret {
    id: Option<String>,
    key: String,
    algorithm: Option<String>,
    secret: Option<String>,
    rsa_public_key: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawAcl {
    id: Option<String>,
    group: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
struct RawPluginEntry {
    name: String,
    config: Option<Value>,
    consumer: Option<String>,
    enabled: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

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

/// What a plugin's builder may consult.
pub struct BuildContext<'a> {
    /// The document's consumers; `None` with a consumer store, whose content is only known at
    /// request time (a missing anonymous consumer is then a 500).
    pub consumers: Option<&'a ConsumerIndex>,
}

impl BuildContext<'_> {
    /// Validate an `anonymous` reference (by id, then username).
    pub fn check_anonymous(&self, anonymous: &Option<String>, path: &str) -> Result<(), ConfigError> {
        match (anonymous, self.consumers) {
            (Some(a), Some(consumers)) if consumers.by_reference(a).is_none() => {
                Err(ConfigError::new(join_path(path, "anonymous"), ErrorKind::AnonymousNotFound(a.clone())))
            }
            _ => Ok(()),
        }
    }
}

impl Config {
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
        let instance = hex::encode(consumers::sha256(json).get(..8).unwrap_or_default());
        let inline = match &consumers {
            ConsumerSource::Inline(index) => Some(&**index),
            ConsumerSource::Store(_) => None,
        };
        let (slots, body_needed_by) = build_plugins(doc.plugins, inline, &instance)?;
        let refusal_log_level = match doc.refusal_log_level.as_deref() {
            None | Some("info") => Some(LogLevel::Info),
            Some("debug") => Some(LogLevel::Debug),
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

/// Parse and validate a consumers document (`{"consumers": [...]}`, other top-level fields
/// ignored) as a remote source serves it, into a store population. The consumers are streamed:
/// each is validated and turned into records on its own, so that a million of them are never
/// held as parsed structures (only their compact records are).
pub fn parse_consumers_document(json: &[u8]) -> Result<Population, ConfigError> {
    consumers_population(serde_json::de::SliceRead::new(json))
}

/// [`parse_consumers_document`] from a reader: the document itself need not be in memory
/// (a loader reads a fetched document from the host in chunks).
pub fn read_consumers_document(reader: impl std::io::Read) -> Result<Population, ConfigError> {
    consumers_population(serde_json::de::IoRead::new(reader))
}

fn consumers_population<'de>(read: impl serde_json::de::Read<'de>) -> Result<Population, ConfigError> {
    let mut builder = Builder::new("consumers");
    for_each_consumer(read, |ci, c| builder.add(ci, &c))?;
    builder.finish()
}

/// Call `each` with every consumer of a consumers document, validated, in document order.
fn for_each_consumer<'de>(
    read: impl serde_json::de::Read<'de>,
    mut each: impl FnMut(usize, ValidConsumer) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let mut refused = None;
    let mut de = serde_json::Deserializer::new(read);
    let mut track = serde_path_to_error::Track::new();
    let seed = DocumentSeed { each: &mut each, refused: &mut refused };
    let result =
        serde::de::DeserializeSeed::deserialize(seed, serde_path_to_error::Deserializer::new(&mut de, &mut track));
    if let Some(e) = refused {
        return Err(e);
    }
    result.map_err(|e| serde_error(track.path().to_string(), e))?;
    de.end().map_err(|e| ConfigError::new("", ErrorKind::Syntax(e.to_string())))
}

/// The top level of a consumers document: `consumers` is streamed, anything else skipped.
struct DocumentSeed<'a, F> {
    each: &'a mut F,
    refused: &'a mut Option<ConfigError>,
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::DeserializeSeed<'de>
    for DocumentSeed<'_, F>
{
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::Visitor<'de> for DocumentSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "consumers" {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            if seen {
                return Err(serde::de::Error::duplicate_field("consumers"));
            }
            seen = true;
            map.next_value_seed(ConsumersSeed { each: &mut *self.each, refused: &mut *self.refused })?;
        }
        Ok(())
    }
}

/// The `consumers` array, one consumer at a time.
struct ConsumersSeed<'a, F> {
    each: &'a mut F,
    refused: &'a mut Option<ConfigError>,
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::DeserializeSeed<'de>
    for ConsumersSeed<'_, F>
{
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(usize, ValidConsumer) -> Result<(), ConfigError>> serde::de::Visitor<'de> for ConsumersSeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut ci = 0;
        while let Some(raw) = seq.next_element::<RawConsumer>()? {
            if let Err(e) = validate_consumer(raw, "consumers", ci).and_then(|c| (self.each)(ci, c)) {
                *self.refused = Some(e);
                return Err(serde::de::Error::custom("refused"));
            }
            ci += 1;
        }
        Ok(())
    }
}

/// Store names become part of shared-data keys.
fn check_store_name(name: &str, path: &str) -> Result<(), ConfigError> {
    if plugins::valid_header_name(name) {
        Ok(())
    } else {
        Err(ConfigError::new(path, ErrorKind::Rule("a store name is made of A-Z, a-z, 0-9, '_' and '-'")))
    }
}

fn build_store(raw: RawStore, document: &[u8]) -> Result<StoreDefinition, ConfigError> {
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

/// Only the canonical hyphenated form (what Kong stores and sends in `X-Consumer-ID`).
fn check_uuid(id: &str, path: impl FnOnce() -> String) -> Result<(), ConfigError> {
    let canonical = id.len() == 36 && uuid::Uuid::try_parse(id).is_ok();
    if canonical {
        Ok(())
    } else {
        Err(ConfigError::new(path(), ErrorKind::InvalidUuid))
    }
}

/// A `realm` goes into a quoted `WWW-Authenticate` parameter: no quote, backslash or control
/// character may break the header.
pub fn check_realm(realm: &Option<String>, path: &str) -> Result<(), ConfigError> {
    match realm {
        Some(r) if r.chars().any(|c| c == '"' || c == '\\' || c.is_control()) => Err(ConfigError::new(
            join_path(path, "realm"),
            ErrorKind::Rule("must not contain '\"', '\\' or control characters"),
        )),
        _ => Ok(()),
    }
}

/// Unique values of one kind, remembering who used each first.
struct Seen<K> {
    what: &'static str,
    show_value: bool,
    first: HashMap<K, String>,
}

impl<K: std::hash::Hash + Eq> Seen<K> {
    fn new(what: &'static str, show_value: bool) -> Self {
        Seen { what, show_value, first: HashMap::new() }
    }

    fn claim(&mut self, key: K, shown: &str, owner: String, path: String) -> Result<(), ConfigError> {
        if let Some(other) = self.first.get(&key) {
            let value = self.show_value.then(|| shown.to_string());
            return Err(ConfigError::new(path, ErrorKind::Duplicate { what: self.what, value, other: other.clone() }));
        }
        self.first.insert(key, owner);
        Ok(())
    }
}

/// Validate consumer `ci` of the array at `at_path`.
fn validate_consumer(c: RawConsumer, at_path: &str, ci: usize) -> Result<ValidConsumer, ConfigError> {
    let at = consumer_path(at_path, ci, "");
    let username = c.username.filter(|u| !u.is_empty());
    let custom_id = c.custom_id.filter(|u| !u.is_empty());
    if username.is_none() && custom_id.is_none() {
        return Err(ConfigError::new(at, ErrorKind::AtLeastOneOf("'custom_id', 'username'")));
    }
    let id = match c.id {
        Some(id) => {
            check_uuid(&id, || format!("{at}.id"))?;
            id
        }
        None => match (&username, &custom_id) {
            (Some(u), _) => consumers::derived_id("consumer", u),
            (None, Some(cid)) => consumers::derived_id("consumer-custom-id", cid),
            (None, None) => String::new(),
        },
    };
    let mut groups = Vec::with_capacity(c.acls.len());
    for (ai, acl) in c.acls.into_iter().enumerate() {
        if acl.group.is_empty() {
            return Err(ConfigError::new(format!("{at}.acls[{ai}].group"), ErrorKind::Empty));
        }
        if let Some(aid) = &acl.id {
            check_uuid(aid, || format!("{at}.acls[{ai}].id"))?;
        }
        if !groups.contains(&acl.group) {
            groups.push(acl.group);
        }
    }
    let consumer = Rc::new(Consumer { id, username, custom_id, groups });
    let id = &consumer.id;

    let mut keys = Vec::with_capacity(c.keyauth_credentials.len());
    for (ki, k) in c.keyauth_credentials.into_iter().enumerate() {
        let kat = || format!("{at}.keyauth_credentials[{ki}]");
        let digest = match (&k.key, &k.key_hash) {
            (Some(key), None) if key.is_empty() => {
                return Err(ConfigError::new(format!("{}.key", kat()), ErrorKind::Empty))
            }
            (Some(key), None) => consumers::key_digest(key.as_bytes()),
            (None, Some(hash)) => parse_sha256_hash(hash).ok_or_else(|| {
                ConfigError::new(
                    format!("{}.key_hash", kat()),
                    ErrorKind::BadHash("'sha256:' followed by 64 hex digits"),
                )
            })?,
            _ => return Err(ConfigError::new(kat(), ErrorKind::ExactlyOneOf("'key', 'key_hash'"))),
        };
        let explicit_id = k.id.is_some();
        let cred_id = match k.id {
            Some(cid) => {
                check_uuid(&cid, || format!("{}.id", kat()))?;
                cid
            }
            None => consumers::derived_id("keyauth", &format!("{id}:{ki}")),
        };
        let credential = KeyCredential { id: cred_id, consumer: Rc::clone(&consumer), expires_at: k.expires_at };
        keys.push(ValidKey { digest, from_hash: k.key.is_none(), explicit_id, credential });
    }

    let mut basic = Vec::with_capacity(c.basicauth_credentials.len());
    for (bi, b) in c.basicauth_credentials.into_iter().enumerate() {
        let bat = || format!("{at}.basicauth_credentials[{bi}]");
        if b.username.is_empty() {
            return Err(ConfigError::new(format!("{}.username", bat()), ErrorKind::Empty));
        }
        if b.username.contains(':') {
            return Err(ConfigError::new(format!("{}.username", bat()), ErrorKind::Rule("must not contain ':'")));
        }
        if let Some(bid) = &b.id {
            check_uuid(bid, || format!("{}.id", bat()))?;
        }
        let verifier = match (&b.password, &b.password_hash) {
            (Some(p), None) => PasswordVerifier::from_plain(p.as_bytes()),
            (None, Some(h)) => parse_password_hash(h, id).ok_or_else(|| {
                ConfigError::new(
                    format!("{}.password_hash", bat()),
                    ErrorKind::BadHash("40 hex digits (Kong's salted SHA-1) or 'sha256:' followed by 64 hex digits"),
                )
            })?,
            _ => return Err(ConfigError::new(bat(), ErrorKind::ExactlyOneOf("'password', 'password_hash'"))),
        };
        basic.push(BasicCredential { username: b.username, consumer: Rc::clone(&consumer), verifier });
    }

    let mut hmac = Vec::with_capacity(c.hmacauth_credentials.len());
    for (hi, h) in c.hmacauth_credentials.into_iter().enumerate() {
        let hat = || format!("{at}.hmacauth_credentials[{hi}]");
        if h.username.is_empty() {
            return Err(ConfigError::new(format!("{}.username", hat()), ErrorKind::Empty));
        }
        if h.secret.is_empty() {
            return Err(ConfigError::new(format!("{}.secret", hat()), ErrorKind::Empty));
        }
        if let Some(hid) = &h.id {
            check_uuid(hid, || format!("{}.id", hat()))?;
        }
        hmac.push(HmacCredential::new(h.username, Rc::clone(&consumer), h.secret.into_bytes()));
    }

    let mut jwt = Vec::with_capacity(c.jwt_secrets.len());
    for (ji, j) in c.jwt_secrets.into_iter().enumerate() {
        let jat = || format!("{at}.jwt_secrets[{ji}]");
        if j.key.is_empty() {
            return Err(ConfigError::new(format!("{}.key", jat()), ErrorKind::Empty));
        }
        if let Some(jid) = &j.id {
            check_uuid(jid, || format!("{}.id", jat()))?;
        }
        const JWT_ALGORITHMS: &[&str] = &[
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ];
        if let Some(alg) = &j.algorithm {
            if !JWT_ALGORITHMS.contains(&alg.as_str()) {
                return Err(ConfigError::new(
                    format!("{}.algorithm", jat()),
                    ErrorKind::Rule(
                        "expected one of: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
                    ),
                ));
            }
        }
        let algorithm = jwt_key::Algorithm::parse(j.algorithm.as_deref().unwrap_or("HS256")).unwrap_or_default();
        let verifier = jwt_key::VerifyingKey::parse(algorithm, j.secret.as_deref(), j.rsa_public_key.as_deref())
            .map_err(|e| match e {
                jwt_key::KeyError::SecretMissing => {
                    ConfigError::new(format!("{}.secret", jat()), ErrorKind::RequiredFieldMissing)
                }
                jwt_key::KeyError::SecretEmpty => ConfigError::new(format!("{}.secret", jat()), ErrorKind::Empty),
                jwt_key::KeyError::PublicKeyMissing => {
                    ConfigError::new(format!("{}.rsa_public_key", jat()), ErrorKind::RequiredFieldMissing)
                }
                jwt_key::KeyError::Invalid(why) => {
                    ConfigError::new(format!("{}.rsa_public_key", jat()), ErrorKind::Rule(why))
                }
            })?;
        let material = JwtMaterial { secret: j.secret, rsa_public_key: j.rsa_public_key };
        jwt.push(JwtCredential { key: j.key, consumer: Rc::clone(&consumer), algorithm, verifier, material });
    }
    Ok(ValidConsumer { consumer, keys, basic, hmac, jwt })
}

/// Validate every consumer of a (small, inline) array and index them, refusing duplicates in
/// document order.
fn build_consumers(raw: Vec<RawConsumer>, at_path: &str) -> Result<ConsumerIndex, ConfigError> {
    let mut index = ConsumerIndex::default();
    let mut ids = Seen::new("id", true);
    let mut usernames = Seen::new("username", true);
    let mut custom_ids = Seen::new("custom_id", true);
    let mut keys = Seen::new("key", false);
    let mut key_ids = Seen::new("credential id", true);
    let mut basic_users = Seen::new("username", true);
    let mut hmac_users = Seen::new("username", true);
    let mut jwt_keys = Seen::new("key", true);

    for (ci, raw) in raw.into_iter().enumerate() {
        let v = validate_consumer(raw, at_path, ci)?;
        let owner = consumer_path(at_path, ci, "");
        let path = |field: String| consumer_path(at_path, ci, &field);
        let c = &v.consumer;
        if let Some(u) = &c.username {
            usernames.claim(u.clone(), u, owner.clone(), path("username".into()))?;
        }
        if let Some(cid) = &c.custom_id {
            custom_ids.claim(cid.clone(), cid, owner.clone(), path("custom_id".into()))?;
        }
        ids.claim(c.id.clone(), &c.id, owner.clone(), path("id".into()))?;
        index.insert_consumer(Rc::clone(c));
        for (ki, k) in v.keys.into_iter().enumerate() {
            let field = if k.from_hash { "key_hash" } else { "key" };
            keys.claim(k.digest, "", owner.clone(), path(format!("keyauth_credentials[{ki}].{field}")))?;
            let cid = &k.credential.id;
            key_ids.claim(cid.clone(), cid, owner.clone(), path(format!("keyauth_credentials[{ki}].id")))?;
            index.insert_key(k.digest, k.credential);
        }
        for (bi, b) in v.basic.into_iter().enumerate() {
            let u = &b.username;
            basic_users.claim(u.clone(), u, owner.clone(), path(format!("basicauth_credentials[{bi}].username")))?;
            index.insert_basic(b);
        }
        for (hi, h) in v.hmac.into_iter().enumerate() {
            let u = &h.username;
            hmac_users.claim(u.clone(), u, owner.clone(), path(format!("hmacauth_credentials[{hi}].username")))?;
            index.insert_hmac(h);
        }
        for (ji, j) in v.jwt.into_iter().enumerate() {
            jwt_keys.claim(j.key.clone(), &j.key, owner.clone(), path(format!("jwt_secrets[{ji}].key")))?;
            index.insert_jwt(j);
        }
    }
    Ok(index)
}

/// `sha256:<64 hex>` -> digest.
fn parse_sha256_hash(s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// A basic-auth `password_hash`: Kong's `hex(sha1(password .. consumer_id))`, or `sha256:<hex>`.
fn parse_password_hash(s: &str, consumer_id: &str) -> Option<PasswordVerifier> {
    if let Some(d) = parse_sha256_hash(s) {
        return Some(PasswordVerifier::Sha256(d));
    }
    let mut digest = [0u8; 20];
    hex::decode_to_slice(s, &mut digest).ok()?;
    Some(PasswordVerifier::KongSha1 { digest, salt: consumer_id.to_string() })
}

fn build_plugins(
    raw: Vec<Value>,
    consumers: Option<&ConsumerIndex>,
    instance: &str,
) -> Result<(Vec<Slot>, Option<String>), ConfigError> {
    let ctx = BuildContext { consumers };
    let mut slots: Vec<Slot> = Vec::new();
    // (name, scope) -> path of the first entry, for duplicate detection.
    let mut seen: HashMap<(String, Option<String>), String> = HashMap::new();
    let mut body_needed_by: Option<String> = None;

    for (pi, value) in raw.into_iter().enumerate() {
        let at = format!("plugins[{pi}]");
        let entry: RawPluginEntry = parse_section(value, &at)?;
        let (priority, _) = plugins::priority(&entry.name)
            .ok_or_else(|| ConfigError::new(format!("{at}.name"), ErrorKind::UnknownPlugin(entry.name.clone())))?;
        let scope = match &entry.consumer {
            None => None,
            Some(_) if !plugins::scopable(&entry.name) => {
                return Err(ConfigError::new(format!("{at}.consumer"), ErrorKind::NotScopable(entry.name.clone())));
            }
            // With a consumer store the reference is matched at request time (id or username).
            Some(reference) => Some(match consumers {
                None => reference.clone(),
                Some(consumers) => consumers.by_reference(reference).map(|c| c.id.clone()).ok_or_else(|| {
                    ConfigError::new(format!("{at}.consumer"), ErrorKind::ConsumerNotFound(reference.clone()))
                })?,
            }),
        };
        if let Some(other) = seen.get(&(entry.name.clone(), scope.clone())) {
            return Err(ConfigError::new(at, ErrorKind::DuplicatePlugin { name: entry.name, other: other.clone() }));
        }
        seen.insert((entry.name.clone(), scope.clone()), at.clone());

        let config_at = format!("{at}.config");
        let config = entry.config.unwrap_or(Value::Object(Default::default()));
        let (name, configured, needs_body): (&'static str, Configured, bool) = match entry.name.as_str() {
            "key-auth" => {
                let p = plugins::key_auth::KeyAuth::build(config, &config_at, &ctx)?;
                let needs_body = p.needs_body();
                ("key-auth", Configured::Auth(Box::new(p)), needs_body)
            }
            "basic-auth" => (
                "basic-auth",
                Configured::Auth(Box::new(plugins::basic_auth::BasicAuth::build(config, &config_at, &ctx)?)),
                false,
            ),
            "hmac-auth" => {
                let p = plugins::hmac_auth::HmacAuth::build(config, &config_at, &ctx)?;
                let needs_body = p.needs_body();
                ("hmac-auth", Configured::Auth(Box::new(p)), needs_body)
            }
            "jwt" => ("jwt", Configured::Auth(Box::new(plugins::jwt::Jwt::build(config, &config_at, &ctx)?)), false),
            "acl" => ("acl", Configured::Other(Box::new(plugins::acl::Acl::build(config, &config_at)?)), false),
            "rate-limiting" => {
                let scope = format!("{instance}:{pi}");
                let p = plugins::rate_limiting::RateLimiting::build(config, &config_at, scope)?;
                ("rate-limiting", Configured::Other(Box::new(p)), false)
            }
            "request-termination" => (
                "request-termination",
                Configured::Other(Box::new(plugins::request_termination::RequestTermination::build(
                    config, &config_at,
                )?)),
                false,
            ),
            other => return Err(ConfigError::new(format!("{at}.name"), ErrorKind::UnknownPlugin(other.to_string()))),
        };
        if entry.enabled == Some(false) {
            continue;
        }
        if needs_body && body_needed_by.is_none() {
            let field = if name == "hmac-auth" { "validate_request_body" } else { "key_in_body" };
            body_needed_by = Some(format!("{config_at}.{field}"));
        }
        let slot = match slots.iter_mut().position(|s| s.name == name) {
            Some(i) => slots.get_mut(i),
            None => {
                slots.push(Slot { name, priority, unscoped: None, scoped: HashMap::new() });
                slots.last_mut()
            }
        };
        if let Some(slot) = slot {
            match scope {
                Some(consumer_id) => {
                    slot.scoped.insert(consumer_id, configured);
                }
                None => slot.unscoped = Some(configured),
            }
        }
    }
    slots.sort_by_key(|s| std::cmp::Reverse(s.priority));
    Ok((slots, body_needed_by))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
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

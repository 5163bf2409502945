//! `consumer-auth from-deck`, first half: read a Kong decK file (`_format_version` 1.1, 2.1 or
//! 3.0) into services, routes and, per route, the consumer-auth document that enforces the route's
//! effective plugin set. [`crate::envoy`] renders the result as an Envoy bootstrap.
//!
//! Every plugin entry and every consumer is checked by the filter's own engine
//! (`consumer_auth::config::Config::parse`), so what this accepts the filter accepts, and a refusal
//! names the decK path (`services[0].routes[1].plugins[0].config.policy: ...`).
//!
//! What cannot be carried over is an error naming its decK path; with `--skip-unsupported` it is a
//! warning instead, and: a plugin that does not decide who gets in (cors, prometheus, ...) is
//! dropped; a route whose authentication or access plugin (key-auth, oauth2, acl,
//! request-termination, ip-restriction, ...) cannot be carried over is left out entirely, as is a
//! route or service with a setting that cannot be carried over (an unmatched Envoy route answers
//! 404: never an open route).

// Indexing here is serde_json `Value` indexing (a missing key reads as `Null`; assignments are
// into objects this file built) and indices into the lists this file built and enumerates.
#![allow(clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use consumer_auth::config::Config;
use serde_json::{json, Map, Value};

/// Plugins that decide who gets in. One of these that cannot be carried over leaves its routes
/// out (with `--skip-unsupported`); any other unsupported plugin is just dropped.
const ACCESS_PLUGINS: &[&str] = &[
    "key-auth",
    "key-auth-enc",
    "basic-auth",
    "hmac-auth",
    "jwt",
    "jwt-signer",
    "oauth2",
    "oauth2-introspection",
    "openid-connect",
    "ldap-auth",
    "ldap-auth-advanced",
    "mtls-auth",
    "vault-auth",
    "session",
    "saml",
    "acl",
    "ip-restriction",
    "bot-detection",
    "request-termination",
    "opa",
    "acme",
    "header-cert-auth",
    "websocket-validator",
    "request-validator",
    "route-by-header",
    "pre-function",
    "post-function",
];

/// Plugins the filter runs (see `consumer_auth::plugins::KNOWN`).
fn carried(name: &str) -> bool {
    consumer_auth::plugins::priority(name).is_some()
}

fn is_access(name: &str) -> bool {
    ACCESS_PLUGINS.contains(&name)
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Unsupported things become warnings (see the module documentation).
    pub skip_unsupported: bool,
    /// Put the consumers once into a shared consumer store of this name (filled by a singleton
    /// bootstrap service) instead of into every document.
    pub consumer_store: Option<String>,
}

/// A service (an Envoy cluster).
#[derive(Debug, Clone)]
pub struct Service {
    /// Its decK path, e.g. `services[0]`.
    pub at: String,
    pub name: Option<String>,
    pub id: Option<String>,
    /// `http` or `https`.
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Kong's service path (`/` when none).
    pub path: String,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub retries: u64,
    /// Why it is left out (disabled, or a setting that cannot be carried over).
    pub left_out: Option<String>,
}

impl Service {
    /// The name of its Envoy cluster (unique: the index makes it so).
    pub fn cluster_name(&self, index: usize) -> String {
        let base = self.name.as_deref().or(self.id.as_deref()).unwrap_or("service");
        let slug: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        format!("service_{index}_{slug}")
    }

    /// The `Host` header Kong sends upstream without `preserve_host`.
    pub fn upstream_host(&self) -> String {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// One entry of a route's `paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePath {
    /// A plain path: a prefix match (`/foo` also matches `/foobar`, as in Kong).
    Prefix(String),
    /// A regex path (3.0: written `~/...`; 1.1 / 2.1: a path with regex characters), anchored at
    /// the start of the path.
    Regex(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Its decK path, e.g. `services[0].routes[1]`.
    pub at: String,
    pub name: Option<String>,
    pub id: Option<String>,
    /// Index into the services.
    pub service: usize,
    /// Empty: every path.
    pub paths: Vec<RoutePath>,
    pub hosts: Vec<String>,
    pub methods: Vec<String>,
    /// `headers`: a request matches when, for every name, the header has one of the values
    /// (case-insensitive; `~*` starts a case-insensitive regex).
    pub headers: Vec<(String, Vec<String>)>,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub regex_priority: i64,
    /// Why it is left out.
    pub left_out: Option<String>,
    /// The consumer-auth document this route runs (index into [`Translation::documents`]);
    /// `None`: no plugin of the filter applies (the route is open, as it is in Kong).
    pub document: Option<usize>,
}

/// The result of reading a decK file.
#[derive(Debug, Default)]
pub struct Translation {
    pub format_version: String,
    pub services: Vec<Service>,
    pub routes: Vec<Route>,
    /// consumer-auth configuration documents (JSON text), one per distinct plugin set.
    pub documents: Vec<String>,
    /// With `--skip-unsupported`: what was dropped or left out, each naming its decK path.
    pub warnings: Vec<String>,
    /// Notes that change nothing (e.g. a password read as Kong's stored hash).
    pub notes: Vec<String>,
    /// With [`Options::consumer_store`]: the store document (`{"store": {"name", "consumers"}}`).
    pub store_document: Option<String>,
}

/// Everything that stopped the translation, each `<decK path>: <reason>`.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub Vec<String>);

/// What one plugin entry becomes.
#[derive(Debug, Clone, PartialEq)]
enum Carry {
    /// Runs in the filter.
    Yes,
    /// Not carried over, not an access plugin: dropped.
    Dropped,
    /// Not carried over and it decides who gets in: its routes are left out. The reason.
    Closes(String),
}

#[derive(Debug, Clone)]
struct Plugin {
    name: String,
    config: Value,
    service: Option<usize>,
    route: Option<usize>,
    consumer: Option<usize>,
    carry: Carry,
}

/// A consumer, as the filter document holds it.
#[derive(Debug, Clone)]
struct ConsumerOut {
    id: Option<String>,
    username: Option<String>,
    custom_id: Option<String>,
    value: Value,
    /// Per credential array (`keyauth_credentials`, ...): for each kept element, its index in the
    /// decK file (so the engine's paths can be turned back into decK paths).
    kept: BTreeMap<String, Vec<usize>>,
    /// Credential fields renamed for the filter (`password` -> `password_hash`): (path in the
    /// document, path in the decK file).
    renamed: Vec<(String, String)>,
}

impl ConsumerOut {
    /// How a plugin's `consumer` refers to it in a filter document (its id or username; a
    /// consumer with neither has the id the filter derives from its custom_id).
    fn reference(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.username.clone())
            .or_else(|| self.custom_id.as_ref().map(|c| consumer_auth::consumers::derived_id("consumer-custom-id", c)))
            .unwrap_or_default()
    }
}

struct Reader<'a> {
    options: &'a Options,
    errors: Vec<String>,
    warnings: Vec<String>,
    notes: Vec<String>,
    format: String,
    /// `_transform: false`: basic-auth passwords are Kong's stored hashes.
    passwords_hashed: bool,
    services: Vec<Service>,
    routes: Vec<Route>,
    consumers: Vec<ConsumerOut>,
    consumers_json: Value,
    plugins: Vec<Plugin>,
    /// Upstream names (`upstreams[].name`): a service whose host is one of them cannot be carried over.
    upstreams: Vec<String>,
}

/// Where a plugin entry applies: (service, route, consumer), indexes into what was read.
type Scope = (Option<usize>, Option<usize>, Option<usize>);

/// A reference to an entity: a string (name or id) or `{ "id": ... }` / `{ "name": ... }`.
fn reference(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m
            .get("id")
            .or_else(|| m.get("name"))
            .or_else(|| m.get("username"))
            .and_then(|v| v.as_str().map(str::to_string)),
        _ => None,
    }
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn non_empty(v: Option<&Value>) -> bool {
    match present(v) {
        None => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

fn strings(v: Option<&Value>, at: &str, errors: &mut Vec<String>) -> Vec<String> {
    match present(v) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    errors.push(format!("{at}[{i}]: expected a string"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            errors.push(format!("{at}: expected an array"));
            Vec::new()
        }
    }
}

fn array<'v>(v: Option<&'v Value>, at: &str, errors: &mut Vec<String>) -> &'v [Value] {
    match present(v) {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(format!("{at}: expected an array"));
            &[]
        }
    }
}

/// A Kong path of 1.1 / 2.1 is a regex when it holds a character outside Kong's plain set.
fn looks_like_regex(path: &str) -> bool {
    path.chars().any(|c| !(c.is_ascii_alphanumeric() || "._~/%-".contains(c)))
}

/// A 40-hex-digit basic-auth password is Kong's stored `sha1(password .. consumer_id)`, as a
/// `deck gateway dump` writes it.
fn looks_like_kong_hash(password: &str) -> bool {
    password.len() == 40 && password.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Read a decK file (YAML or JSON text) into services, routes and consumer-auth documents.
pub fn translate(text: &str, options: &Options) -> Result<Translation, Refused> {
    let top: Value = serde_norway::from_str(text).map_err(|e| Refused(vec![format!("not a decK file: {e}")]))?;
    let Value::Object(top) = top else {
        return Err(Refused(vec!["not a decK file: expected a mapping at the top level".into()]));
    };
    let mut r = Reader {
        options,
        errors: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
        format: String::new(),
        passwords_hashed: false,
        services: Vec::new(),
        routes: Vec::new(),
        consumers: Vec::new(),
        consumers_json: Value::Array(Vec::new()),
        plugins: Vec::new(),
        upstreams: Vec::new(),
    };
    r.read(&top);
    if !r.errors.is_empty() {
        return Err(Refused(r.errors));
    }
    let store_document = r.store_document();
    if !r.errors.is_empty() {
        return Err(Refused(r.errors));
    }
    let documents = r.assign_documents();
    if !r.errors.is_empty() {
        return Err(Refused(r.errors));
    }
    Ok(Translation {
        format_version: r.format,
        services: r.services,
        routes: r.routes,
        documents,
        warnings: r.warnings,
        notes: r.notes,
        store_document,
    })
}

impl Reader<'_> {
    /// Something that cannot be carried over: an error, or with `--skip-unsupported` a warning
    /// saying what happens instead (`then`).
    fn unsupported(&mut self, at: &str, reason: &str, then: &str) {
        if self.options.skip_unsupported {
            self.warnings.push(format!("{at}: {reason}; {then}"));
        } else {
            self.errors.push(format!("{at}: {reason}"));
        }
    }

    fn unknown_fields(&mut self, map: &Map<String, Value>, at: &str, known: &[&str], then: &str) -> bool {
        let mut any = false;
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                self.unsupported(&format!("{}{k}", prefix(at)), "unknown field", then);
                any = true;
            }
        }
        any
    }

    fn read(&mut self, top: &Map<String, Value>) {
        self.format = match top.get("_format_version") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None => {
                self.errors.push("_format_version: required field missing".into());
                return;
            }
            Some(_) => String::new(),
        };
        if !["1.1", "2.1", "3.0"].contains(&self.format.as_str()) {
            self.errors.push(format!("_format_version: '{}' is not supported (1.1, 2.1, 3.0)", self.format));
            return;
        }
        self.passwords_hashed = top.get("_transform") == Some(&Value::Bool(false));
        const IGNORED: &[&str] = &["_format_version", "_transform", "_info", "_workspace", "_konnect"];
        const ENTITIES: &[&str] = &["services", "routes", "consumers", "plugins", "upstreams"];
        const NOT_CARRIED: &[(&str, &str)] = &[
            ("certificates", "certificates are not supported (the bootstrap listens in plain HTTP)"),
            ("ca_certificates", "ca_certificates are not supported"),
            ("snis", "snis are not supported"),
            ("consumer_groups", "consumer groups are not supported"),
            ("vaults", "vaults are not supported"),
            ("keys", "keys are not supported"),
            ("key_sets", "key sets are not supported"),
            ("filter_chains", "filter chains are not supported"),
            ("partials", "partials are not supported"),
            ("custom_entities", "custom entities are not supported"),
            ("licenses", "licenses are not supported"),
            ("degraphql_routes", "degraphql routes are not supported"),
            ("rbac_roles", "rbac roles are not supported"),
        ];
        for (k, v) in top {
            if IGNORED.contains(&k.as_str()) || ENTITIES.contains(&k.as_str()) {
                continue;
            }
            match NOT_CARRIED.iter().find(|(name, _)| name == k) {
                Some((_, why)) if non_empty(Some(v)) => self.unsupported(k, why, "left out"),
                Some(_) => {}
                None => self.unsupported(k, "unknown field", "ignored"),
            }
        }
        if non_empty(top.get("_info").and_then(|i| i.get("defaults"))) {
            self.unsupported(
                "_info.defaults",
                "entity defaults are not supported (Kong's own defaults are used)",
                "ignored",
            );
        }
        let mut errors = Vec::new();
        for (i, u) in array(top.get("upstreams"), "upstreams", &mut errors).iter().enumerate() {
            if let Some(name) = u.get("name").and_then(Value::as_str) {
                self.upstreams.push(name.to_string());
            }
            self.unsupported(
                &format!("upstreams[{i}]"),
                "upstreams (load balancing over targets) are not supported",
                "the services that use it are left out",
            );
        }
        self.errors.append(&mut errors);

        self.read_consumers(top.get("consumers"));
        self.read_services(top.get("services"));
        // Top-level routes, then every plugin, once every name can be resolved.
        let mut errors = Vec::new();
        for (i, route) in array(top.get("routes"), "routes", &mut errors).iter().enumerate() {
            let at = format!("routes[{i}]");
            match present(route.get("service")).and_then(reference) {
                Some(s) => match self.service_by_ref(&s) {
                    Some(si) => self.read_route(route, &at, si, true),
                    None => self.errors.push(format!("{at}.service: service '{s}' not found")),
                },
                None => self.unsupported(&at, "a route without a service is not supported", "left out"),
            }
        }
        self.errors.append(&mut errors);
        self.read_all_plugins(top);
    }

    fn service_by_ref(&self, r: &str) -> Option<usize> {
        self.services.iter().position(|s| s.id.as_deref() == Some(r) || s.name.as_deref() == Some(r))
    }

    fn route_by_ref(&self, r: &str) -> Option<usize> {
        self.routes.iter().position(|x| x.id.as_deref() == Some(r) || x.name.as_deref() == Some(r))
    }

    fn consumer_by_ref(&self, r: &str) -> Option<usize> {
        self.consumers.iter().position(|c| c.id.as_deref() == Some(r) || c.username.as_deref() == Some(r))
    }

    // -----------------------------------------------------------------------------------------
    // Consumers.

    fn read_consumers(&mut self, list: Option<&Value>) {
        const FIELDS: &[&str] = &[
            "id",
            "username",
            "custom_id",
            "tags",
            "created_at",
            "updated_at",
            "keyauth_credentials",
            "basicauth_credentials",
            "hmacauth_credentials",
            "jwt_secrets",
            "acls",
            "plugins",
            "groups",
            "oauth2_credentials",
            "mtls_auth_credentials",
            "keyauth_enc_credentials",
        ];
        let mut errors = Vec::new();
        let list = array(list, "consumers", &mut errors).to_vec();
        self.errors.append(&mut errors);
        for (ci, c) in list.iter().enumerate() {
            let at = format!("consumers[{ci}]");
            let Some(map) = c.as_object() else {
                self.errors.push(format!("{at}: expected a record"));
                continue;
            };
            self.unknown_fields(map, &at, FIELDS, "ignored");
            let mut out = Map::new();
            for f in ["id", "username", "custom_id", "tags", "created_at"] {
                if let Some(v) = present(map.get(f)) {
                    out.insert(f.into(), v.clone());
                }
            }
            if non_empty(map.get("groups")) {
                self.unsupported(&format!("{at}.groups"), "consumer groups are not supported", "ignored");
            }
            for (f, plugin) in [
                ("oauth2_credentials", "oauth2"),
                ("mtls_auth_credentials", "mtls-auth"),
                ("keyauth_enc_credentials", "key-auth-enc"),
            ] {
                if non_empty(map.get(f)) {
                    self.unsupported(
                        &format!("{at}.{f}"),
                        &format!("plugin '{plugin}' is not supported"),
                        "credentials left out",
                    );
                }
            }
            let id = map.get("id").and_then(Value::as_str).map(str::to_string);
            let mut kept = BTreeMap::new();
            let mut renamed = Vec::new();
            let credential_fields: [(&str, &[&str]); 5] = [
                ("keyauth_credentials", &["id", "key", "tags", "created_at", "updated_at", "ttl", "consumer"]),
                (
                    "basicauth_credentials",
                    &["id", "username", "password", "tags", "created_at", "updated_at", "consumer"],
                ),
                ("hmacauth_credentials", &["id", "username", "secret", "tags", "created_at", "updated_at", "consumer"]),
                (
                    "jwt_secrets",
                    &[
                        "id",
                        "key",
                        "algorithm",
                        "secret",
                        "rsa_public_key",
                        "tags",
                        "created_at",
                        "updated_at",
                        "consumer",
                    ],
                ),
                ("acls", &["id", "group", "tags", "created_at", "updated_at", "consumer"]),
            ];
            for (field, known) in credential_fields {
                let mut errors = Vec::new();
                let items = array(map.get(field), &format!("{at}.{field}"), &mut errors).to_vec();
                self.errors.append(&mut errors);
                let mut values = Vec::new();
                let mut indexes = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let cat = format!("{at}.{field}[{i}]");
                    let Some(cred) = item.as_object() else {
                        self.errors.push(format!("{cat}: expected a record"));
                        continue;
                    };
                    if self.unknown_fields(cred, &cat, known, "credential left out") {
                        continue;
                    }
                    if field == "keyauth_credentials" && present(cred.get("ttl")).is_some() {
                        self.unsupported(
                            &format!("{cat}.ttl"),
                            "a key with a ttl is not supported (its expiry instant is not in the file)",
                            "credential left out",
                        );
                        continue;
                    }
                    let mut v = Map::new();
                    for (k, x) in cred {
                        if x.is_null() || ["updated_at", "ttl", "consumer"].contains(&k.as_str()) {
                            continue;
                        }
                        v.insert(k.clone(), x.clone());
                    }
                    if field == "basicauth_credentials" {
                        if let Some(Value::String(p)) = v.get("password").cloned() {
                            if self.passwords_hashed || looks_like_kong_hash(&p) {
                                v.remove("password");
                                v.insert("password_hash".into(), Value::String(p));
                                let doc = format!("consumers[{ci}].{field}[{}].password_hash", values.len());
                                renamed.push((doc, format!("{cat}.password")));
                                if !self.passwords_hashed {
                                    self.notes.push(format!(
                                        "{cat}.password: 40 hex digits, read as Kong's stored hash (sha1(password .. consumer id)) as `deck gateway dump` writes it"
                                    ));
                                }
                                if id.is_none() {
                                    self.errors.push(format!(
                                        "{cat}.password: Kong's stored hash is salted with the consumer's id, which {at} does not give"
                                    ));
                                }
                            }
                        }
                    }
                    values.push(Value::Object(v));
                    indexes.push(i);
                }
                if !values.is_empty() {
                    out.insert(field.into(), Value::Array(values));
                }
                kept.insert(field.to_string(), indexes);
            }
            self.consumers.push(ConsumerOut {
                id,
                username: map.get("username").and_then(Value::as_str).map(str::to_string),
                custom_id: map.get("custom_id").and_then(Value::as_str).map(str::to_string),
                value: Value::Object(out),
                kept,
                renamed,
            });
        }
        self.consumers_json = Value::Array(self.consumers.iter().map(|c| c.value.clone()).collect());
        // The filter's own validation of the consumers (uniqueness, UUIDs, jwt keys, hashes).
        let doc = json!({ "consumers": self.consumers_json });
        if let Err(e) = Config::parse(doc.to_string().as_bytes()) {
            let at = self.deck_consumer_path(&e.path);
            self.errors.push(if at.is_empty() { e.kind.to_string() } else { format!("{at}: {}", e.kind) });
        }
    }

    /// A path in the generated consumers array (`consumers[2].keyauth_credentials[0].key`) as
    /// the decK file's path (credentials left out shift indexes; `password_hash` was `password`).
    fn deck_consumer_path(&self, path: &str) -> String {
        for c in &self.consumers {
            for (doc, deck) in &c.renamed {
                if path == doc {
                    return deck.clone();
                }
            }
        }
        let Some(rest) = path.strip_prefix("consumers[") else { return path.to_string() };
        let Some((ci, rest)) = rest.split_once(']') else { return path.to_string() };
        let Some(c) = ci.parse::<usize>().ok().and_then(|i| self.consumers.get(i)) else { return path.to_string() };
        for (field, kept) in &c.kept {
            if let Some(tail) = rest.strip_prefix(&format!(".{field}[")) {
                if let Some((i, tail)) = tail.split_once(']') {
                    if let Some(orig) = i.parse::<usize>().ok().and_then(|i| kept.get(i)) {
                        return format!("consumers[{ci}].{field}[{orig}]{tail}");
                    }
                }
            }
        }
        path.to_string()
    }

    // -----------------------------------------------------------------------------------------
    // Services and routes.

    fn read_services(&mut self, list: Option<&Value>) {
        const FIELDS: &[&str] = &[
            "id",
            "name",
            "url",
            "protocol",
            "host",
            "port",
            "path",
            "retries",
            "connect_timeout",
            "write_timeout",
            "read_timeout",
            "enabled",
            "tags",
            "tls_verify",
            "tls_verify_depth",
            "ca_certificates",
            "client_certificate",
            "routes",
            "plugins",
            "created_at",
            "updated_at",
        ];
        let mut errors = Vec::new();
        let list = array(list, "services", &mut errors).to_vec();
        self.errors.append(&mut errors);
        for (si, s) in list.iter().enumerate() {
            let at = format!("services[{si}]");
            let Some(map) = s.as_object() else {
                self.errors.push(format!("{at}: expected a record"));
                continue;
            };
            let mut left_out = None;
            if self.unknown_fields(map, &at, FIELDS, "service left out") {
                left_out = Some("unknown field".to_string());
            }
            let str_field = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
            let num_field = |k: &str| map.get(k).and_then(Value::as_u64);
            let (mut scheme, mut host, mut port, mut path) = ("http".to_string(), String::new(), None, None);
            if let Some(url) = str_field("url") {
                match parse_url(&url) {
                    Some(u) => (scheme, host, port, path) = (u.0, u.1, u.2, u.3),
                    None => self.errors.push(format!("{at}.url: cannot parse '{url}'")),
                }
            } else {
                scheme = str_field("protocol").unwrap_or_else(|| "http".into());
                host = str_field("host").unwrap_or_default();
                port = num_field("port").and_then(|p| u16::try_from(p).ok()).or(Some(80));
                path = str_field("path");
            }
            if host.is_empty() {
                self.errors.push(format!("{at}.host: required field missing"));
            }
            if scheme != "http" && scheme != "https" {
                self.unsupported(
                    &format!("{at}.protocol"),
                    &format!("protocol '{scheme}' is not supported (http, https)"),
                    "service left out",
                );
                left_out = Some(format!("protocol '{scheme}'"));
            }
            if self.upstreams.contains(&host) {
                left_out = Some(format!("its host '{host}' names an upstream"));
                if !self.options.skip_unsupported {
                    self.errors.push(format!("{at}.host: '{host}' names an upstream, which is not supported"));
                }
            }
            if map.get("tls_verify") == Some(&Value::Bool(true))
                || non_empty(map.get("ca_certificates"))
                || non_empty(map.get("client_certificate"))
                || present(map.get("tls_verify_depth")).is_some()
            {
                self.unsupported(
                    &at,
                    "upstream TLS verification and client certificates (tls_verify, tls_verify_depth, ca_certificates, client_certificate) are not supported",
                    "service left out",
                );
                left_out = Some("upstream TLS settings".into());
            }
            if map.get("enabled") == Some(&Value::Bool(false)) {
                left_out = Some("disabled".into());
            }
            let path = path.filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                self.errors.push(format!("{at}.path: must start with '/'"));
            }
            let scheme_port = if scheme == "https" { 443 } else { 80 };
            self.services.push(Service {
                at: at.clone(),
                name: str_field("name"),
                id: str_field("id"),
                scheme,
                host,
                port: port.unwrap_or(scheme_port),
                path,
                connect_timeout_ms: num_field("connect_timeout").unwrap_or(60_000),
                read_timeout_ms: num_field("read_timeout").unwrap_or(60_000),
                retries: num_field("retries").unwrap_or(5),
                left_out,
            });
            let mut errors = Vec::new();
            for (ri, route) in array(map.get("routes"), &format!("{at}.routes"), &mut errors).iter().enumerate() {
                self.read_route(route, &format!("{at}.routes[{ri}]"), si, false);
            }
            self.errors.append(&mut errors);
        }
    }

    fn read_route(&mut self, route: &Value, at: &str, service: usize, top_level: bool) {
        const FIELDS: &[&str] = &[
            "id",
            "name",
            "paths",
            "hosts",
            "methods",
            "headers",
            "protocols",
            "strip_path",
            "preserve_host",
            "regex_priority",
            "path_handling",
            "https_redirect_status_code",
            "request_buffering",
            "response_buffering",
            "snis",
            "sources",
            "destinations",
            "tags",
            "created_at",
            "updated_at",
            "plugins",
            "service",
            "expression",
            "priority",
        ];
        let Some(map) = route.as_object() else {
            self.errors.push(format!("{at}: expected a record"));
            return;
        };
        let mut left_out = None;
        if self.unknown_fields(map, at, FIELDS, "route left out") {
            left_out = Some("unknown field".to_string());
        }
        if !top_level && map.contains_key("service") {
            self.errors.push(format!("{at}.service: a route nested in a service cannot name another one"));
        }
        for (f, what) in [
            ("snis", "matching on SNI"),
            ("sources", "matching on the source address"),
            ("destinations", "matching on the destination address"),
            ("expression", "expressions routes"),
        ] {
            if non_empty(map.get(f)) {
                self.unsupported(&format!("{at}.{f}"), &format!("{what} is not supported"), "route left out");
                left_out = Some(format!("{f} is not supported"));
            }
        }
        if let Some(h) = map.get("path_handling").and_then(Value::as_str) {
            if h != "v0" {
                self.unsupported(
                    &format!("{at}.path_handling"),
                    &format!("path_handling '{h}' is not supported (v0, Kong's default)"),
                    "route left out",
                );
                left_out = Some("path_handling".into());
            }
        }
        let mut errors = Vec::new();
        let protocols = strings(map.get("protocols"), &format!("{at}.protocols"), &mut errors);
        if !protocols.is_empty() && !protocols.iter().any(|p| p == "http") {
            self.unsupported(
                &format!("{at}.protocols"),
                &format!("a route without 'http' in its protocols is not supported (it has {})", protocols.join(", ")),
                "route left out",
            );
            left_out = Some("protocols".into());
        }
        let raw_paths = strings(map.get("paths"), &format!("{at}.paths"), &mut errors);
        let mut hosts = strings(map.get("hosts"), &format!("{at}.hosts"), &mut errors);
        let methods: Vec<String> = strings(map.get("methods"), &format!("{at}.methods"), &mut errors)
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        self.errors.append(&mut errors);
        for (hi, h) in hosts.iter_mut().enumerate() {
            *h = h.to_ascii_lowercase();
            if h.contains(':') {
                self.unsupported(&format!("{at}.hosts[{hi}]"), "a host with a port is not supported", "route left out");
                left_out = Some("host with a port".into());
            }
        }
        let mut headers = Vec::new();
        match present(map.get("headers")) {
            None => {}
            Some(Value::Object(h)) => {
                for (name, values) in h {
                    let hat = format!("{at}.headers.{name}");
                    let values = match values {
                        Value::String(v) => vec![v.clone()],
                        other => strings(Some(other), &hat, &mut self.errors),
                    };
                    if name.eq_ignore_ascii_case("host") {
                        self.errors.push(format!("{hat}: use 'hosts' to match on the Host header"));
                    } else if !values.is_empty() {
                        headers.push((name.to_ascii_lowercase(), values));
                    }
                }
            }
            Some(_) => self.errors.push(format!("{at}.headers: expected a record")),
        }
        let mut paths = Vec::new();
        for (pi, p) in raw_paths.iter().enumerate() {
            let path = if self.format == "3.0" {
                match p.strip_prefix('~') {
                    Some(re) => RoutePath::Regex(re.to_string()),
                    None => RoutePath::Prefix(p.clone()),
                }
            } else if looks_like_regex(p) {
                RoutePath::Regex(p.clone())
            } else {
                RoutePath::Prefix(p.clone())
            };
            if let RoutePath::Prefix(p) = &path {
                if !p.starts_with('/') {
                    self.errors.push(format!("{at}.paths[{pi}]: must start with '/' (or '~' for a regex)"));
                }
            }
            paths.push(path);
        }
        let flag = |k: &str, default: bool| map.get(k).and_then(Value::as_bool).unwrap_or(default);
        self.routes.push(Route {
            at: at.to_string(),
            name: map.get("name").and_then(Value::as_str).map(str::to_string),
            id: map.get("id").and_then(Value::as_str).map(str::to_string),
            service,
            paths,
            hosts,
            methods,
            headers,
            strip_path: flag("strip_path", true),
            preserve_host: flag("preserve_host", false),
            regex_priority: map.get("regex_priority").and_then(Value::as_i64).unwrap_or(0),
            left_out,
            document: None,
        });
    }

    // -----------------------------------------------------------------------------------------
    // Plugins.

    /// Every plugin entry of the file: its value, decK path, and the scope its place gives it.
    fn read_all_plugins(&mut self, top: &Map<String, Value>) {
        let mut found: Vec<(Value, String, Scope)> = Vec::new();
        let mut errors = Vec::new();
        for (i, p) in array(top.get("plugins"), "plugins", &mut errors).iter().enumerate() {
            found.push((p.clone(), format!("plugins[{i}]"), (None, None, None)));
        }
        for (si, s) in array(top.get("services"), "services", &mut errors).iter().enumerate() {
            let sat = format!("services[{si}]");
            for (i, p) in array(s.get("plugins"), &format!("{sat}.plugins"), &mut errors).iter().enumerate() {
                found.push((p.clone(), format!("{sat}.plugins[{i}]"), (Some(si), None, None)));
            }
            for (ri, route) in array(s.get("routes"), &format!("{sat}.routes"), &mut errors).iter().enumerate() {
                let rat = format!("{sat}.routes[{ri}]");
                // A route not read (an error, or left out) takes its plugins with it.
                let Some(r) = self.routes.iter().position(|x| x.at == rat) else { continue };
                for (i, p) in array(route.get("plugins"), &format!("{rat}.plugins"), &mut errors).iter().enumerate() {
                    found.push((p.clone(), format!("{rat}.plugins[{i}]"), (None, Some(r), None)));
                }
            }
        }
        for (ri, route) in array(top.get("routes"), "routes", &mut errors).iter().enumerate() {
            let rat = format!("routes[{ri}]");
            let Some(r) = self.routes.iter().position(|x| x.at == rat) else { continue };
            for (i, p) in array(route.get("plugins"), &format!("{rat}.plugins"), &mut errors).iter().enumerate() {
                found.push((p.clone(), format!("{rat}.plugins[{i}]"), (None, Some(r), None)));
            }
        }
        for (ci, c) in array(top.get("consumers"), "consumers", &mut errors).iter().enumerate() {
            let cat = format!("consumers[{ci}]");
            for (i, p) in array(c.get("plugins"), &format!("{cat}.plugins"), &mut errors).iter().enumerate() {
                found.push((p.clone(), format!("{cat}.plugins[{i}]"), (None, None, Some(ci))));
            }
        }
        self.errors.append(&mut errors);
        let mut seen: HashMap<(String, Scope), String> = HashMap::new();
        for (p, at, (service, route, consumer)) in found {
            if let Some(plugin) = self.read_plugin(&p, &at, service, route, consumer) {
                let key = (plugin.name.clone(), (plugin.service, plugin.route, plugin.consumer));
                if let Some(other) = seen.get(&key) {
                    self.errors.push(format!("{at}: duplicate plugin '{}' (also at {other})", plugin.name));
                    continue;
                }
                seen.insert(key, at.clone());
                self.plugins.push(plugin);
            }
        }
    }

    /// One plugin entry; `None` when it never applies (disabled, or not for HTTP).
    fn read_plugin(
        &mut self,
        p: &Value,
        at: &str,
        mut service: Option<usize>,
        mut route: Option<usize>,
        mut consumer: Option<usize>,
    ) -> Option<Plugin> {
        const FIELDS: &[&str] = &[
            "name",
            "config",
            "enabled",
            "protocols",
            "tags",
            "id",
            "instance_name",
            "route",
            "service",
            "consumer",
            "consumer_group",
            "ordering",
            "created_at",
            "updated_at",
        ];
        let Some(map) = p.as_object() else {
            self.errors.push(format!("{at}: expected a record"));
            return None;
        };
        let Some(name) = map.get("name").and_then(Value::as_str).map(str::to_string) else {
            self.errors.push(format!("{at}.name: required field missing"));
            return None;
        };
        // References (checked even for a disabled entry, as Kong does).
        for (field, slot) in [("service", &mut service), ("route", &mut route), ("consumer", &mut consumer)] {
            let Some(r) = present(map.get(field)).and_then(reference) else { continue };
            let found = match field {
                "service" => self.service_by_ref(&r),
                "route" => self.route_by_ref(&r),
                _ => self.consumer_by_ref(&r),
            };
            match found {
                Some(i) => *slot = Some(i),
                None => {
                    self.errors.push(format!("{at}.{field}: {field} '{r}' not found"));
                    return None;
                }
            }
        }
        if map.get("enabled") == Some(&Value::Bool(false)) {
            return None;
        }
        let mut errors = Vec::new();
        let protocols = strings(map.get("protocols"), &format!("{at}.protocols"), &mut errors);
        self.errors.append(&mut errors);
        let access = is_access(&name);
        let closes_or_drops = |why: &str| if access { Carry::Closes(why.to_string()) } else { Carry::Dropped };
        let then = if access { "the routes it applies to are left out" } else { "dropped" };
        let mut carry = Carry::Yes;
        if !protocols.is_empty() && !protocols.iter().any(|p| p == "http") {
            if !access {
                return None; // never runs on the HTTP listener
            }
            let why = format!("{at}.protocols: an access plugin that does not run on 'http' is not supported");
            self.unsupported(
                &format!("{at}.protocols"),
                "an access plugin that does not run on 'http' is not supported",
                then,
            );
            carry = Carry::Closes(why);
        }
        let mut config = Value::Object(Map::new());
        if carry == Carry::Yes && !carried(&name) {
            let reason = format!("plugin '{name}' is not supported");
            self.unsupported(at, &reason, then);
            carry = closes_or_drops(&format!("{at}: {reason}"));
        }
        if carry == Carry::Yes {
            for k in map.keys() {
                if !FIELDS.contains(&k.as_str()) {
                    self.unsupported(&format!("{at}.{k}"), "unknown field", then);
                    carry = closes_or_drops(&format!("{at}.{k}: unknown field"));
                }
            }
            for f in ["consumer_group", "ordering"] {
                if carry == Carry::Yes && non_empty(map.get(f)) {
                    let reason = format!("'{f}' is not supported");
                    self.unsupported(&format!("{at}.{f}"), &reason, then);
                    carry = closes_or_drops(&format!("{at}.{f}: {reason}"));
                }
            }
        }
        if carry == Carry::Yes {
            match normalise_config(&name, present(map.get("config"))) {
                Ok(c) => config = c,
                Err((field, reason)) => {
                    let path = format!("{at}.config.{field}");
                    self.unsupported(&path, &reason, then);
                    carry = closes_or_drops(&format!("{path}: {reason}"));
                }
            }
        }
        if carry == Carry::Yes {
            // The filter's own validation of this entry, with every consumer (for `anonymous`
            // and `consumer` references).
            let mut entry = json!({ "name": name, "config": config });
            if let Some(ci) = consumer {
                entry["consumer"] = Value::String(self.consumers[ci].reference());
            }
            let doc = json!({ "consumers": self.consumers_json, "plugins": [entry] });
            if let Err(e) = Config::parse(doc.to_string().as_bytes()) {
                let path = match e.path.strip_prefix("plugins[0]") {
                    Some(rest) => format!("{at}{rest}"),
                    None => self.deck_consumer_path(&e.path),
                };
                let reason = e.kind.to_string();
                self.unsupported(&path, &reason, then);
                carry = closes_or_drops(&format!("{path}: {reason}"));
            }
        }
        Some(Plugin { name, config, service, route, consumer, carry })
    }

    // -----------------------------------------------------------------------------------------
    // Effective plugin sets.

    /// Kong's precedence: among the entries of one plugin that apply to a route, the most
    /// specific wins; an entry scoped to a consumer always beats an unscoped one (for that
    /// consumer), which is what the filter's consumer-scoped entries do.
    fn effective(&self, r: usize) -> Vec<&Plugin> {
        let s = self.routes[r].service;
        let rank = |p: &Plugin| -> Option<u8> {
            match (p.route, p.service) {
                (Some(pr), Some(ps)) if pr == r && ps == s => Some(0),
                (Some(pr), None) if pr == r => Some(1),
                (None, Some(ps)) if ps == s => Some(2),
                (None, None) => Some(3),
                _ => None,
            }
        };
        let mut best: BTreeMap<(String, Option<usize>), (u8, usize)> = BTreeMap::new();
        for (i, p) in self.plugins.iter().enumerate() {
            let Some(k) = rank(p) else { continue };
            let key = (p.name.clone(), p.consumer);
            if best.get(&key).is_none_or(|(b, _)| k < *b) {
                best.insert(key, (k, i));
            }
        }
        let mut chosen: Vec<usize> = best.values().map(|(_, i)| *i).collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|i| &self.plugins[i]).collect()
    }

    /// Give every route its document (or leave it out); documents shared by routes with the same
    /// plugin set, except with rate-limiting, whose counters Kong keeps per route.
    fn assign_documents(&mut self) -> Vec<String> {
        let mut documents: Vec<String> = Vec::new();
        for r in 0..self.routes.len() {
            let service = &self.services[self.routes[r].service];
            if self.routes[r].left_out.is_none() {
                if let Some(why) = &service.left_out {
                    self.routes[r].left_out = Some(format!("its service {} is left out ({why})", service.at));
                }
            }
            if self.routes[r].left_out.is_some() {
                continue;
            }
            let effective = self.effective(r);
            if let Some(p) = effective.iter().find(|p| matches!(p.carry, Carry::Closes(_))) {
                let why = match &p.carry {
                    Carry::Closes(why) => why.clone(),
                    _ => String::new(),
                };
                let at = self.routes[r].at.clone();
                self.warnings.push(format!("{at}: left out: its plugin {why}"));
                self.routes[r].left_out = Some(why);
                continue;
            }
            let entries: Vec<Value> = effective
                .iter()
                .filter(|p| p.carry == Carry::Yes)
                .map(|p| {
                    let mut e = json!({ "name": p.name, "config": p.config });
                    if p.name == "rate-limiting" {
                        // Kong's conf.route_id / conf.service_id (the plugin's own scope): part
                        // of the Redis key, so that Kong and the filter count the same keys.
                        let route_id = p.route.and_then(|ri| self.routes[ri].id.clone());
                        let service_id = p.service.and_then(|si| self.services[si].id.clone());
                        for (field, id) in [("route_id", route_id), ("service_id", service_id)] {
                            if let Some(id) = id {
                                e["config"][field] = Value::String(id);
                            }
                        }
                    }
                    if let Some(ci) = p.consumer {
                        e["consumer"] = Value::String(self.consumers[ci].reference());
                    }
                    e
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let rate_limited = entries.iter().any(|e| e["name"] == "rate-limiting");
            let mut text = match &self.options.consumer_store {
                Some(name) => json!({ "consumer_store": name, "plugins": entries }).to_string(),
                None => json!({ "consumers": self.consumers_json, "plugins": entries }).to_string(),
            };
            if rate_limited {
                // Counters are keyed by the document's bytes: trailing whitespace (insignificant
                // JSON) makes each route's document its own, so each route counts apart as in Kong.
                while documents.contains(&text) {
                    text.push(' ');
                }
            }
            let index = match documents.iter().position(|d| *d == text) {
                Some(i) => i,
                None => {
                    if let Err(e) = Config::parse(text.as_bytes()) {
                        let at = self.routes[r].at.clone();
                        self.errors.push(format!("{at}: the generated document is refused: {e}"));
                        continue;
                    }
                    documents.push(text);
                    documents.len() - 1
                }
            };
            self.routes[r].document = Some(index);
        }
        documents
    }
}

impl Reader<'_> {
    /// The consumer store's document, checked by the filter's engine.
    fn store_document(&mut self) -> Option<String> {
        let name = self.options.consumer_store.as_ref()?;
        let text = json!({ "store": { "name": name, "consumers": self.consumers_json } }).to_string();
        match Config::parse(text.as_bytes()) {
            Ok(_) => Some(text),
            Err(e) => {
                self.errors.push(match e.path.as_str() {
                    "store.name" => format!("--consumer-store: {}", e.kind),
                    _ => format!("the consumer store's document is refused: {e}"),
                });
                None
            }
        }
    }
}

fn prefix(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}.")
    }
}

/// `scheme://host[:port][/path]` -> (scheme, host, port, path).
fn parse_url(url: &str) -> Option<(String, String, Option<u16>, Option<String>)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    if authority.is_empty() || authority.contains('@') || rest.contains('?') || rest.contains('#') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    Some((scheme.to_ascii_lowercase(), host, port, path))
}

/// A decK plugin `config` as the filter takes it: `null` values are Kong's "unset" (the filter's
/// default is Kong's), and fields the filter does not have are dropped when they hold Kong's
/// default or do not apply; otherwise `Err((field, reason))`.
fn normalise_config(name: &str, config: Option<&Value>) -> Result<Value, (String, String)> {
    let mut out = Map::new();
    let Some(config) = config else { return Ok(Value::Object(out)) };
    let Some(map) = config.as_object() else { return Err((String::new(), "expected a record".into())) };
    let limit_by = map.get("limit_by").and_then(Value::as_str).unwrap_or("consumer");
    for (k, v) in map {
        if v.is_null() {
            continue;
        }
        let dropped = match (name, k.as_str()) {
            ("acl", "include_consumer_groups" | "always_use_authenticated_groups") => v == &Value::Bool(false),
            ("request-termination", "echo") => v == &Value::Bool(false),
            // Only the redis and cluster policies use these (a redis entry is refused below: its
            // settings name Redis, not the filter's front; cluster is refused by the filter).
            ("rate-limiting", "redis" | "sync_rate") => true,
            ("rate-limiting", f) if f.starts_with("redis_") => true,
            ("rate-limiting", "fault_tolerant") => v == &Value::Bool(true),
            ("rate-limiting", "header_name") => limit_by != "header",
            ("rate-limiting", "path") => limit_by != "path",
            _ => false,
        };
        if !dropped {
            out.insert(k.clone(), v.clone());
        }
    }
    if name == "rate-limiting" && out.get("policy").and_then(Value::as_str) == Some("redis") {
        return Err((
            "policy".into(),
            "redis: Kong's settings name Redis itself, the filter reaches it through its front \
             (config.redis.upstream, token), which a decK file does not name: write this entry by hand \
             (README, rate-limiting)"
                .into(),
        ));
    }
    if name == "rate-limiting" && out.get("fault_tolerant") == Some(&Value::Bool(false)) {
        return Err(("fault_tolerant".into(), "false is not supported (the filter lets a request through when its counters cannot be updated, Kong's default)".into()));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(text: &str) -> Result<Translation, Vec<String>> {
        translate(text, &Options::default()).map_err(|Refused(e)| e)
    }

    fn skipping(text: &str) -> Translation {
        translate(text, &Options { skip_unsupported: true, ..Options::default() })
            .unwrap_or_else(|Refused(e)| panic!("{e:?}"))
    }

    fn errors(text: &str) -> Vec<String> {
        match strict(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    /// The plugin entries of a route's document: (name, consumer reference, config).
    fn plugins_of(t: &Translation, route: &str) -> Vec<(String, Option<String>, Value)> {
        let r = t.routes.iter().find(|r| r.name.as_deref() == Some(route)).expect("route");
        let Some(d) = r.document else { return Vec::new() };
        let doc: Value = serde_json::from_str(&t.documents[d]).unwrap();
        doc["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let consumer = p.get("consumer").and_then(Value::as_str).map(str::to_string);
                (p["name"].as_str().unwrap().to_string(), consumer, p["config"].clone())
            })
            .collect()
    }

    const SERVICE: &str =
        "services:\n- name: s\n  url: http://up.internal:8080/base\n  routes:\n  - name: r\n    paths: [/r]\n";

    #[test]
    fn format_versions() {
        assert_eq!(errors("services: []"), ["_format_version: required field missing"]);
        assert_eq!(errors("_format_version: '2.0'"), ["_format_version: '2.0' is not supported (1.1, 2.1, 3.0)"]);
        for v in ["'1.1'", "2.1", "\"3.0\"", "3.0"] {
            assert!(strict(&format!("_format_version: {v}\n{SERVICE}")).is_ok(), "{v}");
        }
        assert_eq!(errors("_format_version: '3.0'\nfoo: 1"), ["foo: unknown field"]);
    }

    #[test]
    fn regex_paths_by_format() {
        let deck = |v: &str| {
            format!(
                "_format_version: '{v}'\nservices:\n- name: s\n  host: h\n  routes:\n  - name: r\n    paths: ['/a/\\d+', '~/b/\\d+', '/plain-path_1.2~%41']\n"
            )
        };
        let t = strict(&deck("3.0")).unwrap();
        assert_eq!(
            t.routes[0].paths,
            [
                RoutePath::Prefix("/a/\\d+".into()),
                RoutePath::Regex("/b/\\d+".into()),
                RoutePath::Prefix("/plain-path_1.2~%41".into())
            ]
        );
        for v in ["1.1", "2.1"] {
            let t = strict(&deck(v).replace("'~/b/\\d+', ", "")).unwrap();
            assert_eq!(
                t.routes[0].paths,
                [RoutePath::Regex("/a/\\d+".into()), RoutePath::Prefix("/plain-path_1.2~%41".into())],
                "{v}"
            );
        }
    }

    #[test]
    fn services_from_a_url_or_fields() {
        let t = strict(
            "_format_version: '3.0'\nservices:\n- name: a\n  url: https://api.example.com/v1\n- name: b\n  protocol: https\n  host: 10.0.0.1\n- name: c\n  host: c.internal\n  port: 3000\n  path: /p\n  connect_timeout: 1500\n- name: d\n  url: http://[::1]:81\n",
        )
        .unwrap();
        let s = |i: usize| {
            let s = &t.services[i];
            (s.scheme.as_str(), s.host.as_str(), s.port, s.path.as_str())
        };
        assert_eq!(s(0), ("https", "api.example.com", 443, "/v1"));
        // Kong's port default is 80 whatever the protocol.
        assert_eq!(s(1), ("https", "10.0.0.1", 80, "/"));
        assert_eq!(s(2), ("http", "c.internal", 3000, "/p"));
        assert_eq!(t.services[2].connect_timeout_ms, 1500);
        assert_eq!(s(3), ("http", "::1", 81, "/"));
        assert_eq!(t.services[3].upstream_host(), "[::1]:81");
        assert_eq!(t.services[1].upstream_host(), "10.0.0.1:80");
        assert_eq!(t.services[0].upstream_host(), "api.example.com");
    }

    #[test]
    fn kongs_precedence_for_the_effective_plugin_set() {
        let t = strict(
            r#"_format_version: "3.0"
services:
- name: s
  host: up
  plugins:
  - name: key-auth
    config: { key_names: [service] }
  routes:
  - name: with-route-plugin
    paths: [/a]
    plugins:
    - name: key-auth
      config: { key_names: [route] }
  - name: service-only
    paths: [/b]
  - name: route-and-service
    paths: [/c]
- name: other
  host: up2
  routes:
  - name: global-only
    paths: [/d]
plugins:
- name: key-auth
  config: { key_names: [global] }
- name: key-auth
  route: route-and-service
  service: s
  config: { key_names: [route-and-service] }
- name: rate-limiting
  config: { minute: 100 }
- name: rate-limiting
  consumer: bob
  config: { minute: 10 }
- name: rate-limiting
  consumer: bob
  service: s
  config: { minute: 20 }
consumers:
- username: bob
  keyauth_credentials: [{ key: k }]
  plugins:
  - name: rate-limiting
    route: with-route-plugin
    config: { minute: 30 }
"#,
        )
        .unwrap();
        let key_names = |route: &str| {
            plugins_of(&t, route).into_iter().find(|p| p.0 == "key-auth").map(|p| p.2["key_names"][0].clone())
        };
        assert_eq!(key_names("with-route-plugin"), Some(json!("route")));
        assert_eq!(key_names("service-only"), Some(json!("service")));
        assert_eq!(key_names("route-and-service"), Some(json!("route-and-service")));
        assert_eq!(key_names("global-only"), Some(json!("global")));
        let bobs = |route: &str| {
            plugins_of(&t, route)
                .into_iter()
                .filter(|p| p.0 == "rate-limiting")
                .map(|p| (p.1, p.2["minute"].clone()))
                .collect::<Vec<_>>()
        };
        // Unscoped: the global 100; bob: consumer+route > consumer+service > consumer.
        assert_eq!(bobs("with-route-plugin"), [(None, json!(100)), (Some("bob".into()), json!(30))]);
        assert_eq!(bobs("service-only"), [(None, json!(100)), (Some("bob".into()), json!(20))]);
        assert_eq!(bobs("global-only"), [(None, json!(100)), (Some("bob".into()), json!(10))]);
        // rate-limiting counts per route as in Kong: no two routes share a document.
        let docs: Vec<_> = t.routes.iter().map(|r| r.document.unwrap()).collect();
        assert_eq!(docs, [0, 1, 2, 3]);
    }

    #[test]
    fn header_matches() {
        let t = strict("_format_version: '3.0'\nservices:\n- name: s\n  host: up\n  routes:\n  - name: a\n    headers: { X-Version: ['2', '~*^v3'], x-one: single }\n").unwrap();
        assert_eq!(
            t.routes[0].headers,
            [
                ("x-version".to_string(), vec!["2".to_string(), "~*^v3".to_string()]),
                ("x-one".into(), vec!["single".into()])
            ]
        );
        assert_eq!(
            errors("_format_version: '3.0'\nservices:\n- name: s\n  host: up\n  routes:\n  - { name: a, headers: { host: [x] } }\n"),
            ["services[0].routes[0].headers.host: use 'hosts' to match on the Host header"]
        );
    }

    #[test]
    fn routes_with_the_same_plugin_set_share_one_document() {
        let t = strict(
            "_format_version: '3.0'\nservices:\n- name: s\n  host: up\n  routes:\n  - { name: a, paths: [/a] }\n  - { name: b, paths: [/b] }\n  - name: c\n    paths: [/c]\n    plugins: [{ name: acl, config: { allow: [x] } }]\n- name: open\n  host: up\n  enabled: true\n  routes: [{ name: d, paths: [/d] }]\nplugins:\n- { name: key-auth, service: s }\n",
        )
        .unwrap();
        let docs: Vec<_> = t.routes.iter().map(|r| r.document).collect();
        assert_eq!(docs, [Some(0), Some(0), Some(1), None]);
        assert_eq!(t.documents.len(), 2);
    }

    #[test]
    fn refusals_name_the_deck_path() {
        let deck = |plugins: &str, consumers: &str| {
            let block = |s: &str| if s == "[]" { "  []".to_string() } else { s.to_string() };
            format!("_format_version: '3.0'\n{SERVICE}plugins:\n{}\nconsumers:\n{}\n", block(plugins), block(consumers))
        };
        let one = |plugins: &str, consumers: &str| errors(&deck(plugins, consumers));
        assert_eq!(
            one("- { name: key-auth, config: { key_names: ['a b'] } }", "[]"),
            ["plugins[0].config.key_names[0]: bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'"]
        );
        assert_eq!(
            one("- { name: key-auth, config: { anonymous: nobody } }", "[]"),
            ["plugins[0].config.anonymous: anonymous consumer 'nobody' not found"]
        );
        assert_eq!(one("- { name: key-auth, service: nope }", "[]"), ["plugins[0].service: service 'nope' not found"]);
        assert_eq!(
            one("[]", "- username: a\n  plugins: [{ name: key-auth }]"),
            ["consumers[0].plugins[0].consumer: value must be null ('key-auth' cannot be scoped to a consumer)"]
        );
        assert_eq!(
            one("- { name: acl, config: { allow: [a] } }\n- { name: acl, config: { allow: [b] } }", "[]"),
            ["plugins[1]: duplicate plugin 'acl' (also at plugins[0])"]
        );
        assert_eq!(
            one("[]", "- { username: a, keyauth_credentials: [{ key: k }] }\n- { username: b, keyauth_credentials: [{ key: k }] }"),
            ["consumers[1].keyauth_credentials[0].key: duplicate key (also used by consumers[0])"]
        );
        assert_eq!(
            one("[]", "- { username: a, id: nope, basicauth_credentials: [{ username: a, password: 4a960d96a12a4fb191dbf1f844ccca4e577cc619 }] }"),
            ["consumers[0].id: expected a valid UUID"]
        );
        assert_eq!(
            one("[]", "- { username: a, basicauth_credentials: [{ username: a, password: 4a960d96a12a4fb191dbf1f844ccca4e577cc619 }] }"),
            ["consumers[0].basicauth_credentials[0].password: Kong's stored hash is salted with the consumer's id, which consumers[0] does not give"]
        );
        assert_eq!(
            one("- { name: oauth2 }\n- { name: cors }", "- { username: a, keyauth_credentials: [{ key: k, ttl: 60 }] }"),
            [
                "consumers[0].keyauth_credentials[0].ttl: a key with a ttl is not supported (its expiry instant is not in the file)",
                "plugins[0]: plugin 'oauth2' is not supported",
                "plugins[1]: plugin 'cors' is not supported",
            ]
        );
    }

    #[test]
    fn credentials_left_out_keep_the_deck_paths_of_the_others() {
        let deck = "_format_version: '3.0'\nconsumers:\n- { username: a, keyauth_credentials: [{ key: x }] }\n- { username: b, keyauth_credentials: [{ key: t, ttl: 5 }, { key: x }] }\n";
        let e = translate(deck, &Options { skip_unsupported: true, ..Options::default() }).err().unwrap();
        assert_eq!(e.0, ["consumers[1].keyauth_credentials[1].key: duplicate key (also used by consumers[0])"]);
    }

    #[test]
    fn a_kong_dumps_hashed_password_is_read_as_its_hash() {
        let id = "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77";
        let hashed = consumer_auth::consumers::kong_password_hash_value(b"pw", id);
        let deck = format!(
            "_format_version: '3.0'\n{SERVICE}    plugins: [{{ name: basic-auth }}]\nconsumers:\n- id: {id}\n  username: a\n  basicauth_credentials:\n  - {{ username: a, password: {hashed} }}\n  - {{ username: b, password: plain }}\n"
        );
        let t = strict(&deck).unwrap();
        let doc: Value = serde_json::from_str(&t.documents[0]).unwrap();
        let creds = &doc["consumers"][0]["basicauth_credentials"];
        assert_eq!(creds[0], json!({ "username": "a", "password_hash": hashed }));
        assert_eq!(creds[1], json!({ "username": "b", "password": "plain" }));
        assert_eq!(t.notes.len(), 1);
        // `_transform: false`: every password is Kong's hash, without a note.
        let t =
            strict(&deck.replace("plain", &"ab".repeat(20)).replace("'3.0'\n", "'3.0'\n_transform: false\n")).unwrap();
        let doc: Value = serde_json::from_str(&t.documents[0]).unwrap();
        assert!(doc["consumers"][0]["basicauth_credentials"][1].get("password_hash").is_some());
    }

    #[test]
    fn dump_defaults_are_dropped_and_disabled_plugins_ignored() {
        let t = strict(&format!(
            "_format_version: '3.0'\n{SERVICE}plugins:\n- name: rate-limiting\n  config: {{ minute: 5, hour: null, policy: local, fault_tolerant: true, redis: {{ host: null, port: 6379 }}, redis_timeout: 2000, sync_rate: -1, header_name: null }}\n- name: acl\n  config: {{ allow: [a], deny: null, include_consumer_groups: false }}\n- name: request-termination\n  enabled: false\n  config: {{ status_code: 999 }}\n- name: cors\n  enabled: false\n- name: prometheus\n  protocols: [grpc]\n"
        ))
        .unwrap();
        let p = plugins_of(&t, "r");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].2, json!({ "minute": 5, "policy": "local" }));
        assert_eq!(p[1].2, json!({ "allow": ["a"] }));
        assert_eq!(
            errors(&format!("_format_version: '3.0'\n{SERVICE}plugins:\n- {{ name: acl, config: {{ allow: [a], include_consumer_groups: true }} }}\n")),
            ["plugins[0].config.include_consumer_groups: unknown field"]
        );
    }

    #[test]
    fn skip_unsupported_drops_or_leaves_out_never_opens() {
        let deck = "_format_version: '3.0'\nservices:\n- name: s\n  host: up\n  routes:\n  - name: a\n    paths: [/a]\n    plugins: [{ name: ldap-auth }, { name: key-auth }]\n  - name: b\n    paths: [/b]\n    plugins: [{ name: cors }, { name: key-auth }]\n  - name: c\n    paths: [/c]\n    plugins: [{ name: key-auth, config: { bogus: 1 } }]\n  - name: d\n    paths: [/d]\n    plugins: [{ name: request-termination, protocols: [https] }]\n  - name: e\n    paths: [/e]\n    snis: [x.example.com]\n";
        assert_eq!(errors(deck).len(), 5);
        let t = skipping(deck);
        let left_out: Vec<_> =
            t.routes.iter().filter(|r| r.left_out.is_some()).map(|r| r.name.clone().unwrap()).collect();
        assert_eq!(left_out, ["a", "c", "d", "e"]);
        assert_eq!(plugins_of(&t, "b").iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["key-auth"]);
        assert!(t.warnings.iter().any(|w| w == "services[0].routes[0].plugins[0]: plugin 'ldap-auth' is not supported; the routes it applies to are left out"), "{:?}", t.warnings);
        assert!(t.warnings.iter().any(|w| w == "services[0].routes[2].plugins[0].config.bogus: unknown field; the routes it applies to are left out"), "{:?}", t.warnings);
        // A global access plugin that cannot be carried over leaves every route out.
        let t = skipping("_format_version: '3.0'\nservices:\n- name: s\n  host: up\n  routes: [{ name: a, paths: [/a] }, { name: b, paths: [/b] }]\nplugins: [{ name: ip-restriction, config: { allow: [10.0.0.0/8] } }]\n");
        assert!(t.routes.iter().all(|r| r.left_out.is_some()));
        // A route without a service, a service behind an upstream.
        let t = skipping("_format_version: '3.0'\nroutes: [{ name: lone, paths: [/x] }]\nservices:\n- name: s\n  host: pool\n  routes: [{ name: a, paths: [/a] }]\nupstreams: [{ name: pool, targets: [{ target: 10.0.0.1:80 }] }]\n");
        assert_eq!(t.routes.len(), 1);
        assert!(t.routes[0].left_out.as_deref().unwrap().contains("names an upstream"));
    }

    #[test]
    fn consumers_can_go_to_a_consumer_store() {
        let deck = format!(
            "_format_version: '3.0'\n{SERVICE}    plugins: [{{ name: key-auth, config: {{ anonymous: anon }} }}]\nconsumers:\n- {{ username: anon }}\n"
        );
        let with = |name: &str| translate(&deck, &Options { consumer_store: Some(name.into()), ..Options::default() });
        let t = with("main").unwrap();
        assert_eq!(
            t.documents,
            [r#"{"consumer_store":"main","plugins":[{"name":"key-auth","config":{"anonymous":"anon"}}]}"#]
        );
        assert_eq!(t.store_document.as_deref(), Some(r#"{"store":{"name":"main","consumers":[{"username":"anon"}]}}"#));
        assert_eq!(
            with("a b").err().unwrap().0,
            ["--consumer-store: a store name is made of A-Z, a-z, 0-9, '_' and '-'"]
        );
        assert!(strict(&deck).unwrap().store_document.is_none());
    }

    #[test]
    fn a_consumer_known_by_its_custom_id_only_can_be_scoped() {
        let t = strict(&format!(
            "_format_version: '3.0'\n{SERVICE}consumers:\n- custom_id: legacy-7\n  plugins: [{{ name: request-termination, config: {{ status_code: 403 }} }}]\n"
        ))
        .unwrap();
        let p = plugins_of(&t, "r");
        assert_eq!(
            p[0].1.as_deref(),
            Some(consumer_auth::consumers::derived_id("consumer-custom-id", "legacy-7").as_str())
        );
    }

    #[test]
    fn top_level_routes_and_plugins_reference_by_name_or_id() {
        let t = strict(
            "_format_version: '3.0'\nservices:\n- { name: s, id: 7f1e0c55-1111-4c1e-9a57-1f1e2d3c4b5a, host: up }\nroutes:\n- { name: a, service: { id: 7f1e0c55-1111-4c1e-9a57-1f1e2d3c4b5a }, paths: [/a] }\n- { name: b, service: { name: s }, paths: [/b], id: 2b1e0c55-2222-4c1e-9a57-1f1e2d3c4b5a }\n- { name: c, service: s, paths: [/c] }\nplugins:\n- { name: key-auth, route: { id: 2b1e0c55-2222-4c1e-9a57-1f1e2d3c4b5a } }\n",
        )
        .unwrap();
        assert!(t.routes.iter().all(|r| r.service == 0));
        assert_eq!(t.routes.iter().map(|r| r.document).collect::<Vec<_>>(), [None, Some(0), None]);
    }
}

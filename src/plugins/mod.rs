//! The plugins, one file each, and [`TABLE`], the one place a plugin is described. Authentication
//! plugins implement [`AuthPlugin`] and get Kong's AND/OR, anonymous and preflight handling from
//! the pipeline; the others implement [`Plugin`].
//!
//! Adding a plugin is one file here and one row in [`TABLE`]: the configuration's known names,
//! priorities, consumer scoping, body reading and builders all come from the table.

use std::rc::Rc;

use serde_json::Value;

use crate::consumers::{Consumer, ConsumerIndex};
use crate::error::{join_path, ConfigError, ErrorKind};
use crate::response::Rejection;
pub use context::Ctx;

pub mod acl;
pub mod basic_auth;
pub mod context;
pub mod hmac_auth;
pub mod jwt;
pub mod key_auth;
pub mod rate_limiting;
pub mod request_termination;

/// A plugin as the configuration knows it.
pub struct PluginSpec {
    /// Its name in the configuration (`plugins[].name`), as in Kong.
    pub name: &'static str,
    /// Kong's priority: higher runs first.
    pub priority: u32,
    pub kind: Support,
    /// May be scoped to a consumer (`plugins[].consumer`; BEHAVIOUR.md §B1, Kong's `no_consumer`
    /// elsewhere).
    pub scopable: bool,
    /// The `config` fields that, when `true`, make the plugin read the request body.
    pub body_fields: &'static [&'static str],
    /// Validates `config` (at JSON path `path`) into a ready-to-run plugin.
    pub build: fn(config: Value, path: &str, ctx: &BuildContext<'_>) -> Result<Configured, ConfigError>,
}

/// Every plugin this filter runs, in Kong's priority order.
pub const TABLE: [PluginSpec; 7] = [
    PluginSpec {
        name: "jwt",
        priority: 1450,
        kind: Support::Auth,
        scopable: false,
        body_fields: &[],
        build: |config, path, ctx| Ok(Configured::Auth(Box::new(jwt::Jwt::build(config, path, ctx)?))),
    },
    PluginSpec {
        name: "key-auth",
        priority: 1250,
        kind: Support::Auth,
        scopable: false,
        body_fields: &["key_in_body"],
        build: |config, path, ctx| Ok(Configured::Auth(Box::new(key_auth::KeyAuth::build(config, path, ctx)?))),
    },
    PluginSpec {
        name: "basic-auth",
        priority: 1100,
        kind: Support::Auth,
        scopable: false,
        body_fields: &[],
        build: |config, path, ctx| Ok(Configured::Auth(Box::new(basic_auth::BasicAuth::build(config, path, ctx)?))),
    },
    PluginSpec {
        name: "hmac-auth",
        priority: 1030,
        kind: Support::Auth,
        scopable: false,
        body_fields: &["validate_request_body"],
        build: |config, path, ctx| Ok(Configured::Auth(Box::new(hmac_auth::HmacAuth::build(config, path, ctx)?))),
    },
    PluginSpec {
        name: "acl",
        priority: 950,
        kind: Support::Other,
        scopable: false,
        body_fields: &[],
        build: |config, path, _| Ok(Configured::Other(Box::new(acl::Acl::build(config, path)?))),
    },
    PluginSpec {
        name: "rate-limiting",
        priority: 910,
        kind: Support::Other,
        scopable: true,
        body_fields: &[],
        build: |config, path, ctx| {
            let p = rate_limiting::RateLimiting::build(config, path, ctx.counter_scope.to_string())?;
            Ok(Configured::Other(Box::new(p)))
        },
    },
    PluginSpec {
        name: "request-termination",
        priority: 2,
        kind: Support::Other,
        scopable: true,
        body_fields: &[],
        build: |config, path, _| {
            Ok(Configured::Other(Box::new(request_termination::RequestTermination::build(config, path)?)))
        },
    },
];

/// The plugin named `name`, if this filter knows it.
pub fn spec(name: &str) -> Option<&'static PluginSpec> {
    TABLE.iter().find(|p| p.name == name)
}

/// Plugin names this filter knows, with Kong's priorities (higher runs first): [`TABLE`]'s
/// first columns.
pub const KNOWN: [(&str, u32, Support); TABLE.len()] = known();

// Const evaluation: an index out of range is a compile error, never a panic at run time.
#[allow(clippy::indexing_slicing)]
const fn known() -> [(&'static str, u32, Support); TABLE.len()] {
    let mut out = [("", 0, Support::Other); TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        out[i] = (TABLE[i].name, TABLE[i].priority, TABLE[i].kind);
        i += 1;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// An authentication plugin: cannot be scoped to a consumer.
    Auth,
    /// Any other plugin (see [`PluginSpec::scopable`] for which may be scoped to a consumer).
    Other,
}

/// Whether plugin `name` may be scoped to a consumer.
pub fn scopable(name: &str) -> bool {
    spec(name).is_some_and(|p| p.scopable)
}

pub fn priority(name: &str) -> Option<(u32, Support)> {
    spec(name).map(|p| (p.priority, p.kind))
}

/// Why a step could not finish with what the request carries so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// Answer the request now (boxed: a rejection is large and the happy path carries none).
    Reject(Box<Rejection>),
    /// The step needs the request body, which has not been read yet.
    NeedBody,
    /// The step needs the counters' front to answer this call first (rate-limiting's `policy:
    /// redis`); the run is repeated with the answer in [`Ctx::counter_reply`].
    NeedCounters(Box<rate_limiting::redis::CounterCall>),
}

impl From<Rejection> for Halt {
    fn from(r: Rejection) -> Self {
        Halt::Reject(Box::new(r))
    }
}

/// A successful authentication.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub consumer: Rc<Consumer>,
    /// What `X-Credential-Identifier` carries for this credential.
    pub credential: String,
}

/// Settings every authentication plugin has.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `config.anonymous`: set means OR mode.
    pub anonymous: Option<String>,
    /// `run_on_preflight`: false lets `OPTIONS` requests through untouched.
    pub run_on_preflight: bool,
}

pub trait AuthPlugin {
    fn name(&self) -> &'static str;
    fn settings(&self) -> &AuthSettings;
    /// Find and check the credential. Side effects (hide_credentials) go into `ctx.edits` as soon
    /// as the credential is found, before it is checked, as in Kong.
    fn authenticate(&self, ctx: &mut Ctx<'_, '_>) -> Result<Authenticated, Halt>;
}

pub trait Plugin {
    fn name(&self) -> &'static str;
    fn run(&self, ctx: &mut Ctx<'_, '_>) -> Result<(), Halt>;
    /// Counters this plugin flushes on the root's tick, with its counter scope
    /// (rate-limiting's `sync_rate`).
    fn counters(&self) -> Option<(&rate_limiting::redis::RedisPolicy, &str)> {
        None
    }
}

/// A configured plugin, ready to run.
pub enum Configured {
    Auth(Box<dyn AuthPlugin>),
    Other(Box<dyn Plugin>),
}

impl Configured {
    pub fn name(&self) -> &'static str {
        match self {
            Configured::Auth(p) => p.name(),
            Configured::Other(p) => p.name(),
        }
    }
}

/// Kong's `typedefs.header_name` check.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a plugin's builder may consult.
pub struct BuildContext<'a> {
    /// The document's consumers; `None` with a consumer store, whose content is only known at
    /// request time (a missing anonymous consumer is then a 500).
    pub consumers: Option<&'a ConsumerIndex>,
    /// Names this entry's counters in shared data (rate-limiting): the same on every worker.
    pub counter_scope: &'a str,
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

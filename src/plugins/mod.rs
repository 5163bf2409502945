//! The plugins, one file each. Authentication plugins implement [`AuthPlugin`] and get Kong's
//! AND/OR, anonymous and preflight handling from the pipeline; the others implement [`Plugin`].

use crate::consumers::Consumer;
use crate::pipeline::Ctx;
use crate::response::Rejection;
use std::rc::Rc;

pub mod acl;
pub mod basic_auth;
pub mod hmac_auth;
pub mod jwt;
pub mod key_auth;
pub mod rate_limiting;
pub mod request_termination;

/// Plugin names this filter knows, with Kong's priorities (higher runs first).
pub const KNOWN: &[(&str, u32, Support)] = &[
    ("jwt", 1450, Support::Auth),
    ("key-auth", 1250, Support::Auth),
    ("basic-auth", 1100, Support::Auth),
    ("hmac-auth", 1030, Support::Auth),
    ("acl", 950, Support::Other),
    ("rate-limiting", 910, Support::Other),
    ("request-termination", 2, Support::Other),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// An authentication plugin: cannot be scoped to a consumer.
    Auth,
    /// Any other plugin (see [`scopable`] for which may be scoped to a consumer).
    Other,
}

/// Why a step could not finish with what the request carries so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// Answer the request now (boxed: a rejection is large and the happy path carries none).
    Reject(Box<Rejection>),
    /// The step needs the request body, which has not been read yet.
    NeedBody,
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

/// Only these plugins may be scoped to a consumer (AUTH_SPEC §1; Kong's `no_consumer` elsewhere).
pub fn scopable(name: &str) -> bool {
    matches!(name, "request-termination" | "rate-limiting")
}

pub fn priority(name: &str) -> Option<(u32, Support)> {
    KNOWN.iter().find(|(n, _, _)| *n == name).map(|(_, p, s)| (*p, *s))
}

/// Kong's `typedefs.header_name` check.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

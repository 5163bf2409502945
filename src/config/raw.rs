//! The document as written: serde structs, unknown fields refused. Validated by the other files
//! of `config` into the types the engine runs on.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDocument {
    pub(super) consumers: Option<Vec<RawConsumer>>,
    /// Read consumers from this shared store instead of `consumers`.
    pub(super) consumer_store: Option<String>,
    /// Fill a shared store (from `consumers` given here, or from a remote source).
    pub(super) store: Option<RawStore>,
    #[serde(default)]
    pub(super) plugins: Vec<Value>,
    /// Level of the one log line written per refused request: `debug` (default), `info`,
    /// `warn`, `error` or `off`.
    pub(super) refusal_log_level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) name: String,
    pub(super) consumers: Option<Vec<RawConsumer>>,
    pub(super) source: Option<RawSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) upstream: String,
    pub(super) authority: Option<String>,
    #[serde(default = "default_source_scheme")]
    pub(super) scheme: String,
    #[serde(default = "default_source_path")]
    pub(super) path: String,
    #[serde(default = "default_refresh_seconds")]
    pub(super) refresh_seconds: u64,
    #[serde(default = "default_timeout_ms")]
    pub(super) timeout_ms: u64,
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
pub(super) struct RawConsumer {
    pub(super) id: Option<String>,
    pub(super) username: Option<String>,
    pub(super) custom_id: Option<String>,
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
    #[serde(default)]
    pub(super) keyauth_credentials: Vec<RawKeyCredential>,
    #[serde(default)]
    pub(super) basicauth_credentials: Vec<RawBasicCredential>,
    #[serde(default)]
    pub(super) hmacauth_credentials: Vec<RawHmacCredential>,
    #[serde(default)]
    pub(super) jwt_secrets: Vec<RawJwtSecret>,
    #[serde(default)]
    pub(super) acls: Vec<RawAcl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
pub(super) struct RawKeyCredential {
    pub(super) id: Option<String>,
    pub(super) key: Option<String>,
    pub(super) key_hash: Option<String>,
    pub(super) expires_at: Option<u64>,
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
pub(super) struct RawBasicCredential {
    pub(super) id: Option<String>,
    pub(super) username: String,
    pub(super) password: Option<String>,
    pub(super) password_hash: Option<String>,
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
pub(super) struct RawHmacCredential {
    pub(super) id: Option<String>,
    pub(super) username: String,
    pub(super) secret: String,
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
pub(super) struct RawJwtSecret {
    pub(super) id: Option<String>,
    pub(super) key: String,
    pub(super) algorithm: Option<String>,
    pub(super) secret: Option<String>,
    pub(super) rsa_public_key: Option<String>,
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
pub(super) struct RawAcl {
    pub(super) id: Option<String>,
    pub(super) group: String,
    #[serde(default)]
    pub(super) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `tags`, `created_at`: decK fields, accepted so Kong dumps load unchanged
pub(super) struct RawPluginEntry {
    pub(super) name: String,
    pub(super) config: Option<Value>,
    pub(super) consumer: Option<String>,
    pub(super) enabled: Option<bool>,
}

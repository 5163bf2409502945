//! key-auth (BEHAVIOUR.md §B5): an API key in a header, query argument or body field.

use serde::Deserialize;
use serde_json::Value;

use super::context::Ctx;
use super::{check_realm, BuildContext};
use super::{AuthPlugin, AuthSettings, Authenticated, Halt};
use crate::error::{parse_section, ConfigError, ErrorKind};
use crate::request::Found;
use crate::response::{Reason, Rejection};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyAuth {
    #[serde(default = "default_key_names")]
    key_names: Vec<String>,
    #[serde(default = "yes")]
    key_in_header: bool,
    #[serde(default = "yes")]
    key_in_query: bool,
    #[serde(default)]
    key_in_body: bool,
    #[serde(default)]
    hide_credentials: bool,
    anonymous: Option<String>,
    #[serde(default = "yes")]
    run_on_preflight: bool,
    realm: Option<String>,
}

fn default_key_names() -> Vec<String> {
    vec!["apikey".to_string()]
}

fn yes() -> bool {
    true
}

pub struct KeyAuth {
    settings: AuthSettings,
    /// Each key name with its header spellings (a `_` also matches `-`), lowercase.
    key_names: Vec<KeyName>,
    in_header: bool,
    in_query: bool,
    in_body: bool,
    hide_credentials: bool,
    challenge: String,
}

struct KeyName {
    name: String,
    header: String,
    header_alt: Option<String>,
}

impl KeyAuth {
    pub fn build(config: Value, path: &str, ctx: &BuildContext<'_>) -> Result<KeyAuth, ConfigError> {
        let raw: RawKeyAuth = parse_section(config, path)?;
        for (i, name) in raw.key_names.iter().enumerate() {
            if !super::valid_header_name(name) {
                return Err(ConfigError::new(format!("{path}.key_names[{i}]"), ErrorKind::BadHeaderName(name.clone())));
            }
        }
        ctx.check_anonymous(&raw.anonymous, path)?;
        check_realm(&raw.realm, path)?;
        let key_names = raw
            .key_names
            .into_iter()
            .map(|name| {
                let header = name.to_ascii_lowercase();
                let header_alt = header.contains('_').then(|| header.replace('_', "-"));
                KeyName { name, header, header_alt }
            })
            .collect();
        let challenge = match &raw.realm {
            Some(realm) => format!("Key realm=\"{realm}\""),
            None => "Key".to_string(),
        };
        Ok(KeyAuth {
            settings: AuthSettings { anonymous: raw.anonymous, run_on_preflight: raw.run_on_preflight },
            key_names,
            in_header: raw.key_in_header,
            in_query: raw.key_in_query,
            in_body: raw.key_in_body,
            hide_credentials: raw.hide_credentials,
            challenge,
        })
    }

    fn reject(&self, message: &'static str, reason: Reason) -> Halt {
        Halt::from(Rejection::kong(401, message, reason).with_challenge(&self.challenge))
    }

    /// Kong's lookup: for each key name, header then query then body; the first value found
    /// decides.
    fn find_key(&self, ctx: &mut Ctx<'_, '_>) -> Result<Option<Vec<u8>>, Halt> {
        for key in &self.key_names {
            let mut found = Found::Absent;
            if self.in_header {
                found = ctx.req.header(&key.header);
                if let (Found::Absent, Some(alt)) = (&found, &key.header_alt) {
                    found = ctx.req.header(alt);
                }
            }
            if found.is_absent() && self.in_query {
                found = ctx.req.query_arg(&key.name);
            }
            if found.is_absent() && self.in_body {
                found = ctx.body()?.field(&key.name);
            }
            match found {
                Found::One(value) => {
                    let value = value.into_owned();
                    if self.hide_credentials {
                        self.hide(ctx, key)?;
                    }
                    return Ok(Some(value));
                }
                Found::Many => return Err(self.reject("Duplicate API key found", Reason::DuplicateCredentials)),
                Found::Absent | Found::NotString => {}
            }
        }
        Ok(None)
    }

    /// hide_credentials: remove the key from the header, the query and (with key_in_body) the
    /// body, wherever it was found.
    fn hide(&self, ctx: &mut Ctx<'_, '_>, key: &KeyName) -> Result<(), Halt> {
        ctx.edits.remove_header(&key.header);
        if let Some(alt) = &key.header_alt {
            ctx.edits.remove_header(alt);
        }
        if let Some(path) = ctx.req.path_without_query_arg(&key.name) {
            ctx.edits.set_path(path);
        }
        if self.in_body {
            if let Some(body) = ctx.body()?.without_field(&key.name) {
                ctx.edits.set_body(body);
            }
        }
        Ok(())
    }
}

impl AuthPlugin for KeyAuth {
    fn name(&self) -> &'static str {
        "key-auth"
    }

    fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn authenticate(&self, ctx: &mut Ctx<'_, '_>) -> Result<Authenticated, Halt> {
        let key = match self.find_key(ctx)? {
            Some(k) if !k.is_empty() => k,
            _ => return Err(self.reject("No API key found in request", Reason::NoCredentials)),
        };
        let Some(credential) = ctx.key_credential(&key)? else {
            return Err(self.reject("Unauthorized", Reason::InvalidCredentials));
        };
        if let Some(expires_at) = credential.expires_at {
            if ctx.now() >= expires_at {
                return Err(self.reject("Unauthorized", Reason::InvalidCredentials));
            }
        }
        Ok(Authenticated { consumer: credential.consumer.clone(), credential: credential.id.clone() })
    }
}

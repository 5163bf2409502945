//! basic-auth (BEHAVIOUR.md §B6): `Proxy-Authorization`, then `Authorization`.

use std::rc::Rc;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::context::Ctx;
use super::{check_realm, BuildContext};
use super::{AuthPlugin, AuthSettings, Authenticated, Halt};
use crate::consumers::BasicCredential;
use crate::error::{parse_section, ConfigError};
use crate::response::{Reason, Rejection};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    anonymous: Option<String>,
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "default_realm")]
    realm: String,
}

fn default_realm() -> String {
    "service".to_string()
}

pub struct BasicAuth {
    settings: AuthSettings,
    hide_credentials: bool,
    challenge: String,
}

/// Standard alphabet; padding optional, as nginx's `ngx.decode_base64` accepts.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl BasicAuth {
    pub fn build(config: Value, path: &str, ctx: &BuildContext<'_>) -> Result<BasicAuth, ConfigError> {
        let raw: RawBasicAuth = parse_section(config, path)?;
        ctx.check_anonymous(&raw.anonymous, path)?;
        check_realm(&Some(raw.realm.clone()), path)?;
        Ok(BasicAuth {
            // basic-auth has no preflight bypass.
            settings: AuthSettings { anonymous: raw.anonymous, run_on_preflight: true },
            hide_credentials: raw.hide_credentials,
            challenge: format!("Basic realm=\"{}\"", raw.realm),
        })
    }

    fn unauthorized(&self) -> Halt {
        Halt::from(Rejection::kong(401, "Unauthorized", Reason::InvalidCredentials).with_challenge(&self.challenge))
    }

    /// Kong's `retrieve_credentials`: parse one header; with hide_credentials the header is
    /// removed whether or not it parses.
    fn retrieve(&self, ctx: &mut Ctx<'_, '_>, header: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let value = ctx.req.first_header(header);
        if self.hide_credentials {
            ctx.edits.remove_header(header);
        }
        parse_basic(value?)
    }
}

/// `Basic <base64(user:password)>` -> (user, password). Kong's pattern `\s*[Bb]asic\s*(.+)`;
/// the username is non-empty and ends at the first `:`.
pub fn parse_basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let start = value.windows(5).position(|w| w == b"Basic" || w == b"basic")?;
    let rest = value.get(start + 5..)?;
    let encoded = rest.trim_ascii();
    if encoded.is_empty() {
        return None;
    }
    let decoded = BASE64.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (decoded.get(..colon)?, decoded.get(colon + 1..)?);
    if user.is_empty() {
        return None;
    }
    Some((user.to_vec(), password.to_vec()))
}

impl AuthPlugin for BasicAuth {
    fn name(&self) -> &'static str {
        "basic-auth"
    }

    fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn authenticate(&self, ctx: &mut Ctx<'_, '_>) -> Result<Authenticated, Halt> {
        if !(ctx.req.has_header("authorization") || ctx.req.has_header("proxy-authorization")) {
            return Err(self.unauthorized());
        }
        let mut found: Option<(Rc<BasicCredential>, Vec<u8>)> = None;
        if let Some((user, password)) = self.retrieve(ctx, "proxy-authorization") {
            found = ctx.basic_credential(&user)?.map(|c| (c, password));
        }
        if found.is_none() {
            // An unknown (or absent) Proxy-Authorization user falls back to Authorization.
            let (user, password) = self.retrieve(ctx, "authorization").ok_or_else(|| self.unauthorized())?;
            found = ctx.basic_credential(&user)?.map(|c| (c, password));
        }
        match found {
            Some((credential, password)) if credential.verifier.verify(&password) => {
                Ok(Authenticated { consumer: credential.consumer.clone(), credential: credential.username.clone() })
            }
            _ => Err(self.unauthorized()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_kongs_grammar() {
        let p = |v: String| {
            parse_basic(v.as_bytes()).map(|(u, p)| (String::from_utf8(u).unwrap(), String::from_utf8(p).unwrap()))
        };
        assert_eq!(p(format!("Basic {}", enc("u:p"))), Some(("u".into(), "p".into())));
        assert_eq!(p(format!("basic {}", enc("u:p:q"))), Some(("u".into(), "p:q".into())));
        assert_eq!(p(format!("Basic {}", enc("u:"))), Some(("u".into(), "".into())));
        assert_eq!(p(format!("BASIC {}", enc("u:p"))), None);
        assert_eq!(p(format!("Basic {}", enc(":p"))), None);
        assert_eq!(p(format!("Basic {}", enc("nocolon"))), None);
        assert_eq!(p("Basic !!!notbase64".into()), None);
        assert_eq!(p("Basic ".into()), None);
        assert_eq!(p(format!("Basic {}", enc("u:p").trim_end_matches('='))), Some(("u".into(), "p".into())));
    }
}

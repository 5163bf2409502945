//! request-termination (BEHAVIOUR.md §B11): answer without going upstream, optionally only when a
//! trigger header or query argument is present. Scoped to the anonymous consumer, it is the
//! documented way to forbid anonymous access under OR.

use serde::Deserialize;
use serde_json::Value;

use super::context::Ctx;
use super::{Halt, Plugin};
use crate::error::{parse_section, ConfigError, ErrorKind};
use crate::response::{Body, Reason, Rejection};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequestTermination {
    /// Checked by hand for Kong's messages ("expected an integer", the range).
    status_code: Option<Value>,
    message: Option<String>,
    content_type: Option<String>,
    body: Option<String>,
    trigger: Option<String>,
}

pub struct RequestTermination {
    rejection: Rejection,
    trigger: Option<String>,
}

fn default_message(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => "Unauthorized",
        404 => "Not found",
        405 => "Method not allowed",
        500 => "An unexpected error occurred",
        502 => "Bad Gateway",
        503 => "Service unavailable",
        _ => return None,
    })
}

impl RequestTermination {
    pub fn build(config: Value, path: &str) -> Result<RequestTermination, ConfigError> {
        let raw: RawRequestTermination = parse_section(config, path)?;
        let status_path = format!("{path}.status_code");
        let status = match &raw.status_code {
            None => 503,
            Some(v) => {
                let n = v
                    .as_i64()
                    .ok_or_else(|| ConfigError::new(&status_path, ErrorKind::Expected("an integer".into())))?;
                u16::try_from(n)
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| ConfigError::new(&status_path, ErrorKind::Between(100, 599)))?
            }
        };
        if raw.message.is_some() && (raw.content_type.is_some() || raw.body.is_some()) {
            return Err(ConfigError::new(path, ErrorKind::Rule("message cannot be used with content_type or body")));
        }
        if raw.content_type.is_some() && raw.body.is_none() {
            return Err(ConfigError::new(path, ErrorKind::Rule("content_type requires a body")));
        }
        if let Some(t) = &raw.trigger {
            if !super::valid_header_name(t) {
                return Err(ConfigError::new(format!("{path}.trigger"), ErrorKind::BadHeaderName(t.clone())));
            }
        }
        let body = match (raw.body, raw.message) {
            (Some(body), _) => Body::Verbatim { content_type: raw.content_type, body },
            (None, Some(message)) => Body::CompactJson(message.into()),
            (None, None) => match default_message(status) {
                Some(m) => Body::CompactJson(m.into()),
                None => Body::Empty,
            },
        };
        Ok(RequestTermination {
            rejection: Rejection {
                status,
                body,
                challenge: None,
                reason: Reason::Terminated,
                plugin: "request-termination",
                headers: Vec::new(),
                consumer: None,
            },
            trigger: raw.trigger,
        })
    }
}

impl Plugin for RequestTermination {
    fn name(&self) -> &'static str {
        "request-termination"
    }

    fn run(&self, ctx: &mut Ctx<'_, '_>) -> Result<(), Halt> {
        if let Some(trigger) = &self.trigger {
            if !(ctx.req.has_header(trigger) || ctx.req.has_query_arg(trigger)) {
                return Ok(());
            }
        }
        Err(Halt::from(self.rejection.clone()))
    }
}

//! acl (BEHAVIOUR.md §B9): allow or deny by the consumer's groups.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::context::Ctx;
use super::{Halt, Plugin};
use crate::error::{parse_section, ConfigError, ErrorKind};
use crate::response::{Reason, Rejection};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcl {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    #[serde(default)]
    hide_groups_header: bool,
}

pub struct Acl {
    groups: HashSet<String>,
    /// true: `deny` list; false: `allow` list.
    deny: bool,
    hide_groups_header: bool,
}

const FIELDS: &str = "'config.allow', 'config.deny'";

impl Acl {
    pub fn build(config: Value, path: &str) -> Result<Acl, ConfigError> {
        let raw: RawAcl = parse_section(config, path)?;
        let non_empty = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
        let (list, deny) = match (non_empty(&raw.allow), non_empty(&raw.deny)) {
            (true, true) => return Err(ConfigError::new(path, ErrorKind::OnlyOneOf(FIELDS))),
            (false, false) => return Err(ConfigError::new(path, ErrorKind::AtLeastOneOf(FIELDS))),
            (true, false) => (raw.allow.unwrap_or_default(), false),
            (false, true) => (raw.deny.unwrap_or_default(), true),
        };
        Ok(Acl { groups: list.into_iter().collect(), deny, hide_groups_header: raw.hide_groups_header })
    }
}

fn unauthorized() -> Halt {
    Halt::from(Rejection::kong(401, "Unauthorized", Reason::AclDenied))
}

fn forbidden() -> Halt {
    Halt::from(Rejection::kong(403, "You cannot consume this service", Reason::AclDenied))
}

impl Plugin for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn run(&self, ctx: &mut Ctx<'_, '_>) -> Result<(), Halt> {
        let Some(consumer) = ctx.identity.consumer.as_deref() else {
            return Err(unauthorized());
        };
        if consumer.groups.is_empty() && !self.deny {
            // The anonymous consumer (no credential) is told to authenticate.
            return Err(if ctx.identity.credential.is_none() { unauthorized() } else { forbidden() });
        }
        let listed = consumer.groups.iter().any(|g| self.groups.contains(g));
        if listed == self.deny {
            return Err(forbidden());
        }
        if !self.hide_groups_header {
            ctx.identity.groups_header = Some(consumer.groups.join(", "));
        }
        Ok(())
    }
}

//! The `plugins` array: each entry checked against the plugin table (name, consumer scoping,
//! duplicates), built by its row's builder, and grouped into priority slots.

use std::collections::HashMap;

use serde_json::Value;

use super::raw::RawPluginEntry;
use super::Slot;
use crate::consumers::ConsumerIndex;
use crate::error::{parse_section, ConfigError, ErrorKind};
use crate::plugins::{self, BuildContext};

pub(super) fn build_plugins(
    raw: Vec<Value>,
    consumers: Option<&ConsumerIndex>,
    instance: &str,
) -> Result<(Vec<Slot>, Option<String>), ConfigError> {
    let mut slots: Vec<Slot> = Vec::new();
    // (name, scope) -> path of the first entry, for duplicate detection.
    let mut seen: HashMap<(String, Option<String>), String> = HashMap::new();
    let mut body_needed_by: Option<String> = None;

    for (pi, value) in raw.into_iter().enumerate() {
        let at = format!("plugins[{pi}]");
        let entry: RawPluginEntry = parse_section(value, &at)?;
        let spec = plugins::spec(&entry.name)
            .ok_or_else(|| ConfigError::new(format!("{at}.name"), ErrorKind::UnknownPlugin(entry.name.clone())))?;
        let scope = match &entry.consumer {
            None => None,
            Some(_) if !spec.scopable => {
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
        // Read before the builder takes the config; a field that is not a boolean is refused by it.
        let body_field = spec.body_fields.iter().find(|field| config.get(**field) == Some(&Value::Bool(true)));
        let body_field = body_field.map(|field| format!("{config_at}.{field}"));
        let counter_scope = format!("{instance}:{pi}");
        let ctx = BuildContext { consumers, counter_scope: &counter_scope };
        let configured = (spec.build)(config, &config_at, &ctx)?;
        if entry.enabled == Some(false) {
            continue;
        }
        if body_needed_by.is_none() {
            body_needed_by = body_field;
        }
        let slot = match slots.iter_mut().position(|s| s.name == spec.name) {
            Some(i) => slots.get_mut(i),
            None => {
                slots.push(Slot { name: spec.name, priority: spec.priority, unscoped: None, scoped: HashMap::new() });
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

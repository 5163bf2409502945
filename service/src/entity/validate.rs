//! A request body checked against an entity's fields (Kong's schema validation): types, unknown
//! fields, required fields, defaults, tags, `at_least_one_of`; then the filter's own rules
//! (`document::check_with_filter`). Errors are collected per field, as Kong's `fields` map.

use serde_json::{Map, Value as Json};

use super::{document, is_uuid, now, random32, Default, Entity, Field, Kind, Record, Stored, Value};
use crate::error::{ApiError, FieldErrors};

/// What the write does with the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// POST: a new entity; absent fields take their defaults.
    Create,
    /// PUT: the whole entity replaced (or created); absent fields take their defaults, the id
    /// and `created_at` of an existing entity are kept.
    Replace,
    /// PATCH: the given fields changed, the others kept.
    Patch,
}

/// Where the body came from: form values are strings, coerced to the field's type as Kong does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Json,
    Form,
}

/// Validate `body` for `entity`. `existing` is the stored row a PUT or PATCH replaces or
/// changes; `fixed` are values the route imposes (the id or endpoint key from the path, the
/// consumer of a nested route), applied over the body.
pub fn validate(
    entity: &'static Entity,
    body: &Map<String, Json>,
    source: Source,
    mode: Mode,
    existing: Option<&Record>,
    fixed: &[(&str, Value)],
) -> Result<Record, ApiError> {
    let record = validate_fields(entity, body, source, mode, existing, fixed)?;
    // The filter's rules (a jwt key it would refuse, a basic-auth username with ':', ...).
    document::check_with_filter(&record)?;
    Ok(record)
}

/// [`validate`] without the filter's rules: `import` checks a whole file with them at once.
pub fn validate_fields(
    entity: &'static Entity,
    body: &Map<String, Json>,
    source: Source,
    mode: Mode,
    existing: Option<&Record>,
    fixed: &[(&str, Value)],
) -> Result<Record, ApiError> {
    let mut errors = FieldErrors::default();
    let mut record = match (mode, existing) {
        (Mode::Patch, Some(e)) => e.clone(),
        _ => Record::empty(entity),
    };
    let mut given_plain_password = false;
    for (name, raw) in body {
        let Some(field) = entity.field(name) else {
            errors.add(name, "unknown field");
            continue;
        };
        match parse_field(field, raw, source) {
            Ok(v) => {
                given_plain_password |= field.stored == Stored::KongSha1 && v != Value::Null;
                record.set(field.name, v);
            }
            Err(message) => errors.add(name, message),
        }
    }
    for (name, value) in fixed {
        record.set(name, value.clone());
    }
    if mode != Mode::Patch {
        if let Some(e) = existing {
            record.set("id", e.get("id").clone());
            if let Some(created) = e.get("created_at").as_int() {
                record.set("created_at", Value::Int(created));
            }
        }
        for (field, slot) in entity.fields.iter().zip(record.values.iter_mut()) {
            if *slot == Value::Null {
                *slot = default_value(field.default);
            }
        }
    }
    if entity.field("updated_at").is_some() {
        record.set("updated_at", Value::Int(now()));
    }
    for (field, value) in record.fields() {
        if field.required && *value == Value::Null && !errors.has(field.name) {
            errors.add(field.name, "required field missing");
        }
    }
    // entity checks only on fields that passed their own (as Kong's schema does)
    let fields_ok = errors.is_empty();
    if fields_ok
        && !entity.at_least_one_of.is_empty()
        && entity.at_least_one_of.iter().all(|f| *record.get(f) == Value::Null)
    {
        let names: Vec<String> = entity.at_least_one_of.iter().map(|f| format!("'{f}'")).collect();
        errors.entity(format!("at least one of these fields must be non-empty: {}", names.join(", ")));
    }
    errors.into_result()?;
    if given_plain_password {
        hash_password(&mut record);
    }
    Ok(record)
}

fn default_value(default: Default) -> Value {
    match default {
        Default::Null => Value::Null,
        Default::NewUuid => Value::Text(uuid::Uuid::new_v4().to_string()),
        Default::Now => Value::Int(now()),
        Default::Random32 => Value::Text(random32()),
        Default::Const(c) => Value::Text(c.to_string()),
    }
}

/// basic-auth: `password` becomes Kong's `hex(sha1(password .. consumer_id))`.
fn hash_password(record: &mut Record) {
    let consumer = record.consumer_id().unwrap_or_default().to_string();
    let fields: Vec<&'static Field> = record.entity.fields.iter().filter(|f| f.stored == Stored::KongSha1).collect();
    for f in fields {
        if let Value::Text(plain) = record.get(f.name) {
            let hashed = consumer_auth::consumers::kong_password_hash_value(plain.as_bytes(), &consumer);
            record.set(f.name, Value::Text(hashed));
        }
    }
}

/// The largest `ttl` taken: about 31 years, so that `now + ttl` cannot overflow.
const MAX_TTL: i64 = 1_000_000_000;

/// One field's value from the body, or Kong's message for it.
pub fn parse_field(field: &Field, raw: &Json, source: Source) -> Result<Value, String> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    match field.kind {
        Kind::Uuid => match raw.as_str() {
            Some(s) if is_uuid(s) => Ok(Value::Text(s.to_ascii_lowercase())),
            Some(_) => Err("expected a valid UUID".into()),
            None => Err("expected a string".into()),
        },
        Kind::Text => match raw.as_str() {
            Some("") => Err("length must be at least 1".into()),
            Some(s) => Ok(Value::Text(s.to_string())),
            None => Err("expected a string".into()),
        },
        Kind::OneOf(allowed) => match raw.as_str() {
            Some(s) if allowed.contains(&s) => Ok(Value::Text(s.to_string())),
            _ => Err(format!("expected one of: {}", allowed.join(", "))),
        },
        Kind::Timestamp => integer(raw, source).map(Value::Int).ok_or_else(|| "expected an integer".into()),
        Kind::Ttl => match integer(raw, source) {
            Some(0) => Ok(Value::Null),
            Some(t) if (1..=MAX_TTL).contains(&t) => Ok(Value::Int(now().saturating_add(t))),
            Some(_) => Err(format!("value should be between 0 and {MAX_TTL}")),
            None => Err("expected an integer".into()),
        },
        Kind::Tags => tags(raw, source),
        Kind::Owner => match raw {
            Json::Object(o) => {
                if let Some(k) = o.keys().find(|k| *k != "id") {
                    return Err(format!("{k}: unknown field"));
                }
                match o.get("id").and_then(Json::as_str) {
                    Some(id) if is_uuid(id) => Ok(Value::Text(id.to_ascii_lowercase())),
                    Some(_) => Err("expected a valid UUID".into()),
                    None => Err("id: required field missing".into()),
                }
            }
            _ => Err("expected a record".into()),
        },
    }
}

fn integer(raw: &Json, source: Source) -> Option<i64> {
    match (raw, source) {
        (Json::Number(n), _) => n.as_i64(),
        (Json::String(s), Source::Form) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Tags: a set of non-empty strings without `,` or `/` (the list query's separators) or control
/// characters; duplicates dropped, order kept.
fn tags(raw: &Json, source: Source) -> Result<Value, String> {
    let items: Vec<&Json> = match (raw, source) {
        (Json::Array(a), _) => a.iter().collect(),
        (Json::String(_), Source::Form) => vec![raw],
        _ => return Err("expected a set".into()),
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(tag) = item.as_str() else { return Err("expected a string".into()) };
        if !valid_tag(tag) {
            return Err(format!(
                "invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
            ));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(if out.is_empty() { Value::Null } else { Value::Tags(out) })
}

pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.chars().all(|c| !c.is_control() && c != ',' && c != '/')
}

/// A stored value as the API answers it: `consumer` as `{"id": ...}`, `ttl` as the seconds left.
pub fn to_json(field: &Field, value: &Value) -> Json {
    match (field.kind, value) {
        (_, Value::Null) => Json::Null,
        (Kind::Owner, Value::Text(id)) => serde_json::json!({ "id": id }),
        (Kind::Ttl, Value::Int(expires_at)) => Json::from(expires_at.saturating_sub(now()).max(0)),
        (_, Value::Text(s)) => Json::String(s.clone()),
        (_, Value::Int(i)) => Json::from(*i),
        (_, Value::Tags(t)) => Json::from(t.clone()),
    }
}

/// A record as the API answers it.
pub fn record_json(record: &Record) -> Json {
    let mut out = Map::new();
    for (field, value) in record.fields() {
        out.insert(field.name.to_string(), to_json(field, value));
    }
    Json::Object(out)
}

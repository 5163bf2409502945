//! A refused configuration (BEHAVIOUR.md §B1): the error, the JSON path of the offending element,
//! and serde's errors turned into Kong's wording. A leaf: every layer that validates part of the
//! document (consumers, store, plugins, config) reports through it.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A refused configuration: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending element, e.g. `plugins[0].config.key_names[1]`.
    pub path: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The document is not JSON.
    Syntax(String),
    UnknownField,
    RequiredFieldMissing,
    /// Wrong JSON type: "expected a string", ...
    Expected(String),
    BadHeaderName(String),
    InvalidUuid,
    Empty,
    AtLeastOneOf(&'static str),
    OnlyOneOf(&'static str),
    ExactlyOneOf(&'static str),
    BadHash(&'static str),
    /// `what` names the kind of value; `value` is shown only when it is not a secret.
    Duplicate {
        what: &'static str,
        value: Option<String>,
        other: String,
    },
    UnknownPlugin(String),
    NotScopable(String),
    ConsumerNotFound(String),
    AnonymousNotFound(String),
    DuplicatePlugin {
        name: String,
        other: String,
    },
    Between(i64, i64),
    /// A longer period with a smaller limit than a shorter one: (period, limit) of each.
    Ordering {
        shorter: (&'static str, u64),
        longer: (&'static str, u64),
    },
    Rule(&'static str),
}

impl ConfigError {
    pub fn new(path: impl Into<String>, kind: ErrorKind) -> Self {
        ConfigError { path: path.into(), kind }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Syntax(m) => write!(f, "invalid JSON: {m}"),
            ErrorKind::UnknownField => f.write_str("unknown field"),
            ErrorKind::RequiredFieldMissing => f.write_str("required field missing"),
            ErrorKind::Expected(t) => write!(f, "expected {t}"),
            ErrorKind::BadHeaderName(n) => {
                write!(f, "bad header name '{n}', allowed characters are A-Z, a-z, 0-9, '_', and '-'")
            }
            ErrorKind::InvalidUuid => f.write_str("expected a valid UUID"),
            ErrorKind::Empty => f.write_str("length must be at least 1"),
            ErrorKind::AtLeastOneOf(fields) => write!(f, "at least one of these fields must be non-empty: {fields}"),
            ErrorKind::OnlyOneOf(fields) => write!(f, "only one of these fields must be non-empty: {fields}"),
            ErrorKind::ExactlyOneOf(fields) => write!(f, "exactly one of these fields must be non-empty: {fields}"),
            ErrorKind::BadHash(expected) => write!(f, "invalid hash, expected {expected}"),
            ErrorKind::Duplicate { what, value: Some(v), other } => {
                write!(f, "duplicate {what} '{v}' (also used by {other})")
            }
            ErrorKind::Duplicate { what, value: None, other } => write!(f, "duplicate {what} (also used by {other})"),
            ErrorKind::UnknownPlugin(n) => write!(f, "unknown plugin '{n}'"),
            ErrorKind::NotScopable(n) => write!(f, "value must be null ('{n}' cannot be scoped to a consumer)"),
            ErrorKind::ConsumerNotFound(c) => write!(f, "consumer '{c}' not found"),
            ErrorKind::AnonymousNotFound(c) => write!(f, "anonymous consumer '{c}' not found"),
            ErrorKind::DuplicatePlugin { name, other } => write!(f, "duplicate plugin '{name}' (also at {other})"),
            ErrorKind::Between(lo, hi) => write!(f, "value should be between {lo} and {hi}"),
            // Kong's message, limits printed as `%.1f`
            ErrorKind::Ordering { shorter: (short, a), longer: (long, b) } => {
                write!(f, "The limit for {long}({b}.0) cannot be lower than the limit for {short}({a}.0)")
            }
            ErrorKind::Rule(m) => f.write_str(m),
        }
    }
}

/// Deserialize `value` as `T`, turning serde's errors into [`ConfigError`]s whose path starts
/// with `prefix` (the path of `value` in the document).
pub fn parse_section<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let base = join_path(prefix, if inner == "." { "" } else { &inner });
        from_serde_message(&base, &e.inner().to_string())
    })
}

pub fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}

/// Kong-style wording for serde's messages.
fn from_serde_message(path: &str, message: &str) -> ConfigError {
    let message = match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message),
        None => message,
    };
    let backticked = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // serde_path_to_error's path already ends with the unknown field.
        let field = backticked(rest).unwrap_or_default();
        let at = if path == field || path.ends_with(&format!(".{field}")) {
            path.to_string()
        } else {
            join_path(path, &field)
        };
        return ConfigError::new(at, ErrorKind::UnknownField);
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = backticked(rest).unwrap_or_default();
        return ConfigError::new(join_path(path, &field), ErrorKind::RequiredFieldMissing);
    }
    if message.starts_with("invalid length") && message.contains("expected struct") {
        return ConfigError::new(path, ErrorKind::Expected("a record".into()));
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        if let Some((_, expected)) = message.rsplit_once(", expected ") {
            return ConfigError::new(path, ErrorKind::Expected(kong_type_name(expected)));
        }
    }
    ConfigError::new(path, ErrorKind::Syntax(message.to_string()))
}

fn kong_type_name(serde_expected: &str) -> String {
    match serde_expected {
        "a string" => "a string".into(),
        "a boolean" => "a boolean".into(),
        "a sequence" => "an array".into(),
        e if e.starts_with("struct ") || e == "a map" => "a record".into(),
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "usize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        other => other.to_string(),
    }
}

/// A serde error at `path` as a refusal.
pub fn serde_error(path: String, e: serde_json::Error) -> ConfigError {
    let path = if path == "." { String::new() } else { path };
    if e.is_syntax() || e.is_eof() || e.is_io() {
        ConfigError::new("", ErrorKind::Syntax(e.to_string()))
    } else {
        from_serde_message(&path, &e.to_string())
    }
}

/// Deserialize a whole document straight from its bytes (no intermediate `Value`: a store of a
/// million consumers must not be held twice), keeping the JSON path of any error.
pub fn parse_document<T: DeserializeOwned>(json: &[u8]) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| serde_error(e.path().to_string(), e.into_inner()))?;
    de.end().map_err(|e| ConfigError::new("", ErrorKind::Syntax(e.to_string())))?;
    Ok(parsed)
}

/// The JSON path of a field of consumer `ci` (`at_path[ci].field`).
pub fn consumer_path(at_path: &str, ci: usize, field: &str) -> String {
    if field.is_empty() {
        format!("{at_path}[{ci}]")
    } else {
        format!("{at_path}[{ci}].{field}")
    }
}

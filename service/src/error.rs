//! Kong's errors (`kong/db/errors.lua`): a code and a name first, the HTTP status picked in one
//! place ([`ApiError::status`]), one body shape `{code, name, message, fields}`. Database text
//! never reaches a client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Code 2: the body broke the schema; `fields` maps each field (or `@entity`) to its message.
    Schema(Map<String, Json>),
    /// Code 4: a credential's `consumer` names no consumer.
    ForeignKey {
        field: &'static str,
        id: String,
    },
    /// Code 5: a unique value already taken; `fields` holds the values.
    Unique(Map<String, Json>),
    /// Kong answers a missing entity with `{"message": "Not found"}` alone.
    NotFound,
    /// Code 7: a list's `offset` that this service did not hand out.
    InvalidOffset(String),
    /// Code 9: a list's `size` out of 1–1000.
    InvalidSize,
    /// Code 11: a bad list query (`tags`, `custom_id`).
    InvalidOptions(Map<String, Json>),
    /// A request Kong refuses before any schema: a body that is not JSON, a bad path segment.
    BadRequest(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    Unauthorized,
    /// The database cannot be reached in time.
    Unavailable,
    /// Anything else (logged where it happened, without values).
    Internal,
}

impl ApiError {
    /// Kong's error code (`kong/db/errors.lua`), for the errors that carry one.
    pub fn code(&self) -> Option<u32> {
        match self {
            ApiError::Schema(_) => Some(2),
            ApiError::ForeignKey { .. } => Some(4),
            ApiError::Unique(_) => Some(5),
            ApiError::InvalidOffset(_) => Some(7),
            ApiError::InvalidSize => Some(9),
            ApiError::InvalidOptions(_) => Some(11),
            _ => None,
        }
    }

    pub fn name(&self) -> Option<&'static str> {
        Some(match self {
            ApiError::Schema(_) => "schema violation",
            ApiError::ForeignKey { .. } => "foreign key violation",
            ApiError::Unique(_) => "unique constraint violation",
            ApiError::InvalidOffset(_) => "invalid offset",
            ApiError::InvalidSize => "invalid size",
            ApiError::InvalidOptions(_) => "invalid options",
            _ => return None,
        })
    }

    /// The one table of statuses (Kong's `ERRORS_HTTP_CODES`).
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Schema(_)
            | ApiError::ForeignKey { .. }
            | ApiError::InvalidOffset(_)
            | ApiError::InvalidSize
            | ApiError::InvalidOptions(_)
            | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unique(_) => StatusCode::CONFLICT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Schema(fields) => schema_message(fields),
            ApiError::ForeignKey { id, .. } => {
                format!("the foreign key '{{id=\"{id}\"}}' does not reference an existing 'consumers' entity.")
            }
            ApiError::Unique(fields) => {
                let shown: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", lua_value(v))).collect();
                format!("UNIQUE violation detected on '{{{}}}'", shown.join(","))
            }
            ApiError::NotFound => "Not found".into(),
            ApiError::InvalidOffset(o) => format!("'{o}' is not a valid offset: bad base64 encoding"),
            ApiError::InvalidSize => "size must be an integer between 1 and 1000".into(),
            ApiError::InvalidOptions(fields) => schema_message(fields),
            ApiError::BadRequest(m) => m.clone(),
            ApiError::PayloadTooLarge => "Request body too large".into(),
            ApiError::UnsupportedMediaType => "Unsupported Content-Type".into(),
            ApiError::MethodNotAllowed => "Method not allowed".into(),
            ApiError::Unauthorized => "Invalid credentials. Token or User credentials required".into(),
            ApiError::Unavailable => "database unavailable: the service cannot reach its database, retry later".into(),
            ApiError::Internal => "An unexpected error occurred".into(),
        }
    }

    /// The response body.
    pub fn body(&self) -> Json {
        let mut out = Map::new();
        if let Some(code) = self.code() {
            out.insert("code".into(), json!(code));
        }
        if let Some(name) = self.name() {
            out.insert("name".into(), json!(name));
        }
        out.insert("message".into(), json!(self.message()));
        match self {
            ApiError::Schema(fields) | ApiError::Unique(fields) => {
                out.insert("fields".into(), Json::Object(fields.clone()));
            }
            ApiError::InvalidOptions(fields) => {
                out.insert("fields".into(), Json::Object(fields.clone()));
                out.insert("options".into(), Json::Object(fields.clone()));
            }
            ApiError::ForeignKey { field, id } => {
                out.insert("fields".into(), json!({ *field: { "id": id } }));
            }
            _ => {}
        }
        Json::Object(out)
    }
}

/// Kong's `"schema violation (f: msg)"` / `"N schema violations (f1: msg; f2: msg)"`.
fn schema_message(fields: &Map<String, Json>) -> String {
    let mut parts = Vec::new();
    for (k, v) in fields {
        match v {
            Json::Array(items) => {
                for i in items {
                    parts.push(i.as_str().unwrap_or_default().to_string());
                }
            }
            other => parts.push(format!("{k}: {}", other.as_str().unwrap_or_default())),
        }
    }
    match parts.len() {
        1 => format!("schema violation ({})", parts.join("")),
        n => format!("{n} schema violations ({})", parts.join("; ")),
    }
}

fn lua_value(v: &Json) -> String {
    match v {
        Json::String(s) => format!("\"{s}\""),
        Json::Object(o) => {
            let inner: Vec<String> = o.iter().map(|(k, v)| format!("{k}={}", lua_value(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// Errors collected field by field (Kong reports every violation at once).
#[derive(Debug, Default)]
pub struct FieldErrors(Map<String, Json>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_string()).or_insert_with(|| Json::String(message.into()));
    }

    /// An error about the entity as a whole (`@entity`, an array of messages).
    pub fn entity(&mut self, message: String) {
        let slot = self.0.entry("@entity").or_insert_with(|| Json::Array(Vec::new()));
        if let Json::Array(a) = slot {
            a.push(Json::String(message));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Schema(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_messages() {
        let mut e = FieldErrors::default();
        e.entity("at least one of these fields must be non-empty: 'custom_id', 'username'".into());
        let body = e.into_result().err().map(|e| e.body()).unwrap_or_default();
        assert_eq!(
            body["message"],
            "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')"
        );
        let mut fields = Map::new();
        fields.insert("username".into(), json!("bob"));
        assert_eq!(ApiError::Unique(fields).body()["message"], "UNIQUE violation detected on '{username=\"bob\"}'");
    }
}

//! How stored entities map to the filter's consumer document (`{"consumers": [...]}`, the
//! format of docs/CONSUMER_STORE.md), and the filter's own validation of one entity through it:
//! the service never accepts what a proxy would refuse.

use serde_json::{json, Map, Value as Json};

use super::{Kind, Record, Value};
use crate::error::{ApiError, FieldErrors};

/// One entity as its element of the consumer document: the consumer's own fields, or one entry
/// of a credential array (`keyauth_credentials[i]`, ...). Fields with no `in_document` name
/// (timestamps, tags, the owner) are left out.
pub fn element(record: &Record) -> Json {
    let mut out = Map::new();
    for (field, value) in record.fields() {
        let Some(name) = field.in_document else { continue };
        let v = match value {
            Value::Null => continue,
            Value::Text(s) => Json::String(s.clone()),
            // key-auth's expiry: the absolute time in seconds, as the filter reads `expires_at`
            Value::Int(i) if field.kind == Kind::Ttl => Json::from(u64::try_from(*i).unwrap_or(0)),
            Value::Int(i) => Json::from(*i),
            Value::Tags(t) => Json::from(t.clone()),
        };
        out.insert(name.to_string(), v);
    }
    Json::Object(out)
}

/// A consumer and its credentials as one element of the document's `consumers` array.
pub fn consumer_document(consumer: &Record, credentials: &[Record]) -> Json {
    let mut doc = element(consumer);
    if let Json::Object(o) = &mut doc {
        for c in credentials {
            if let Some(section) = c.entity.document_section {
                let slot = o.entry(section).or_insert_with(|| Json::Array(Vec::new()));
                if let Json::Array(a) = slot {
                    a.push(element(c));
                }
            }
        }
    }
    doc
}

/// Validate `record` with the filter's engine (`consumer_auth::config::parse_consumers_document`,
/// the parser a proxy runs on the documents it loads). A refusal names the field as Kong's
/// `fields` does; the filter's message is kept.
pub fn check_with_filter(record: &Record) -> Result<(), ApiError> {
    let consumer = match record.entity.document_section {
        None => element(record),
        Some(section) => {
            // A placeholder owner: only the credential is being judged.
            let owner = record.consumer_id().unwrap_or("00000000-0000-0000-0000-000000000000");
            json!({ "id": owner, "username": "owner", section: [element(record)] })
        }
    };
    let doc = json!({ "consumers": [consumer] });
    let bytes = serde_json::to_vec(&doc).map_err(|_| ApiError::Internal)?;
    match consumer_auth::config::parse_consumers_document(&bytes) {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut errors = FieldErrors::default();
            let message = e.kind.to_string();
            match field_of_path(record, &e.path) {
                Some(f) => errors.add(f, message),
                None => errors.entity(message),
            }
            errors.into_result()
        }
    }
}

/// The API field a document path such as `consumers[0].jwt_secrets[0].rsa_public_key` names.
fn field_of_path(record: &Record, path: &str) -> Option<&'static str> {
    let last = path.rsplit('.').next()?;
    if last.ends_with(']') {
        return None;
    }
    record.entity.fields.iter().find(|f| f.in_document == Some(last)).map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{JWT, KEY_AUTH};

    fn record(entity: &'static crate::entity::Entity, values: &[(&str, Value)]) -> Record {
        let mut r = Record::empty(entity);
        for (k, v) in values {
            r.set(k, v.clone());
        }
        r
    }

    #[test]
    fn a_jwt_key_the_filter_refuses_names_the_field() {
        let r = record(
            &JWT,
            &[
                ("id", Value::Text("3f0a6e8e-1b2c-4d5e-8f90-a1b2c3d4e5f6".into())),
                ("consumer", Value::Text("3f0a6e8e-1b2c-4d5e-8f90-a1b2c3d4e5f7".into())),
                ("key", Value::Text("iss".into())),
                ("algorithm", Value::Text("RS256".into())),
                ("rsa_public_key", Value::Text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----".into())),
            ],
        );
        let err = check_with_filter(&r).err().map(|e| e.body());
        let fields = err.as_ref().and_then(|b| b.get("fields")).cloned().unwrap_or_default();
        assert!(fields.get("rsa_public_key").is_some(), "{err:?}");
    }

    #[test]
    fn ttl_becomes_expires_at() {
        let r = record(&KEY_AUTH, &[("key", Value::Text("k".into())), ("ttl", Value::Int(1_900_000_000))]);
        assert_eq!(element(&r), json!({"key": "k", "expires_at": 1_900_000_000u64}));
    }
}

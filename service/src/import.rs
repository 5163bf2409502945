//! `consumer-auth import kong.yaml`: a decK file's consumers and their credentials into the
//! database. decK's consumer objects are the entity table's fields plus one array per credential
//! kind, named as the filter's consumer document names them (`keyauth_credentials`, ...), so
//! each object is typed by the same table and the same field validation as the Admin API; the
//! filter's own rules then judge the whole file at once. Everything is written in one
//! transaction (batched multi-row upserts): a refused file writes nothing, and importing the
//! same file twice changes nothing.

use serde_json::{Map, Value as Json};

use crate::entity::validate::{validate_fields, Mode, Source};
use crate::entity::{document, Entity, Record, Value, CONSUMERS, TABLE};
use crate::error::ApiError;

/// Rows per INSERT statement (consumers have 6 columns: 6,000 parameters, under both engines'
/// limits).
const BATCH_ROWS: usize = 1000;

/// Consumer fields decK may carry that are not consumers or credentials: skipped, counted.
const SKIPPED_CONSUMER_FIELDS: &[&str] = &["plugins", "groups", "consumer_groups"];

/// What a file holds, typed by the entity table: every record by entity, consumers first.
#[derive(Debug, Default)]
pub struct Imported {
    pub records: Vec<(&'static Entity, Vec<Record>)>,
    pub consumers: usize,
    pub credentials: usize,
    pub skipped: Vec<String>,
}

/// Read a decK file (YAML or JSON): its `consumers`, validated.
pub fn read_deck(bytes: &[u8]) -> Result<Imported, String> {
    let doc: Json = serde_norway::from_slice(bytes).map_err(|e| format!("not a decK file: {e}"))?;
    let top = doc.as_object().ok_or("not a decK file: expected a mapping at the top")?;
    let mut out = Imported { records: TABLE.iter().map(|e| (*e, Vec::new())).collect(), ..Imported::default() };
    for key in top.keys() {
        if key != "consumers" && !key.starts_with('_') {
            out.skipped.push(format!("{key} (import reads consumers and their credentials)"));
        }
    }
    let consumers = match top.get("consumers") {
        None | Some(Json::Null) => return Ok(out),
        Some(Json::Array(a)) => a,
        Some(_) => return Err("consumers: expected a sequence".into()),
    };
    let mut document_consumers = Vec::with_capacity(consumers.len());
    for (ci, c) in consumers.iter().enumerate() {
        let at = format!("consumers[{ci}]");
        let obj = c.as_object().ok_or_else(|| format!("{at}: expected a mapping"))?;
        let mut own = Map::new();
        let mut sections: Vec<(&'static Entity, &Vec<Json>)> = Vec::new();
        for (k, v) in obj {
            if let Some(entity) = TABLE.iter().find(|e| e.document_section == Some(k.as_str())) {
                match v {
                    Json::Array(a) => sections.push((entity, a)),
                    Json::Null => {}
                    _ => return Err(format!("{at}.{k}: expected a sequence")),
                }
            } else if SKIPPED_CONSUMER_FIELDS.contains(&k.as_str()) {
                out.skipped.push(format!("{at}.{k}"));
            } else {
                own.insert(k.clone(), v.clone());
            }
        }
        let mut fixed = Vec::new();
        if own.get("id").is_none_or(Json::is_null) {
            let derived =
                match (own.get("username").and_then(Json::as_str), own.get("custom_id").and_then(Json::as_str)) {
                    // the filter's own derivation when a document leaves `id` out
                    (Some(u), _) if !u.is_empty() => Some(consumer_auth::consumers::derived_id("consumer", u)),
                    (_, Some(c)) if !c.is_empty() => {
                        Some(consumer_auth::consumers::derived_id("consumer-custom-id", c))
                    }
                    _ => None,
                };
            fixed.extend(derived.map(|d| ("id", Value::Text(d))));
        }
        let consumer = typed(&CONSUMERS, &own, &fixed, &at)?;
        let cid = consumer.id().to_string();
        let mut credentials = Vec::new();
        for (entity, items) in sections {
            let section = entity.document_section.unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                let cat = format!("{at}.{section}[{i}]");
                let obj = item.as_object().ok_or_else(|| format!("{cat}: expected a mapping"))?;
                let mut body = obj.clone();
                let mut fixed = vec![("consumer", Value::Text(cid.clone()))];
                if body.get("id").is_none_or(Json::is_null) {
                    let kind = if entity.name == "keyauth_credentials" { "keyauth" } else { entity.name };
                    fixed.push(("id", Value::Text(consumer_auth::consumers::derived_id(kind, &format!("{cid}:{i}")))));
                }
                // Kong's dumps carry basic-auth passwords as their stored hash
                if let Some(Json::String(p)) = body.get("password") {
                    if p.len() == 40 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
                        fixed.push(("password", Value::Text(p.to_ascii_lowercase())));
                        body.remove("password");
                    }
                }
                credentials.push(typed(entity, &body, &fixed, &cat)?);
            }
        }
        document_consumers.push(document::consumer_document(&consumer, &credentials));
        out.consumers += 1;
        out.credentials += credentials.len();
        push(&mut out.records, consumer);
        for c in credentials {
            push(&mut out.records, c);
        }
    }
    check_with_filter(document_consumers)?;
    Ok(out)
}

fn push(records: &mut [(&'static Entity, Vec<Record>)], record: Record) {
    if let Some((_, list)) = records.iter_mut().find(|(e, _)| std::ptr::eq(*e, record.entity)) {
        list.push(record);
    }
}

fn typed(
    entity: &'static Entity,
    body: &Map<String, Json>,
    fixed: &[(&str, Value)],
    at: &str,
) -> Result<Record, String> {
    validate_fields(entity, body, Source::Json, Mode::Create, None, fixed).map_err(|e| describe(at, &e))
}

fn describe(at: &str, e: &ApiError) -> String {
    match e {
        ApiError::Schema(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| match v {
                    Json::String(m) => format!("{at}.{k}: {m}"),
                    other => format!(
                        "{at}: {}",
                        other.as_array().and_then(|a| a.first()).and_then(Json::as_str).unwrap_or_default()
                    ),
                })
                .collect();
            parts.join("; ")
        }
        other => format!("{at}: {}", other.body().get("message").and_then(Json::as_str).unwrap_or_default()),
    }
}

/// The filter's rules on the whole file (as one consumers document): what a proxy would refuse,
/// duplicates across consumers included, is refused here with the decK path.
fn check_with_filter(consumers: Vec<Json>) -> Result<(), String> {
    let doc = serde_json::json!({ "consumers": consumers });
    let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    consumer_auth::config::parse_consumers_document(&bytes).map(|_| ()).map_err(|e| {
        let path = e.path.replace(".password_hash", ".password").replace(".expires_at", ".ttl");
        format!("{path}: {}", e.kind)
    })
}

/// `consumer-auth import`: read, validate, open the database (migrating it), write.
pub async fn import_file(database: &str, bytes: &[u8]) -> Result<String, String> {
    let started = std::time::Instant::now();
    let imported = read_deck(bytes)?;
    let read = started.elapsed();
    let store = crate::serve::open_migrated(database, crate::StoreOptions::default()).await?;
    let changed = store.import(&imported.records, BATCH_ROWS).await?;
    let mut report = format!(
        "{} consumers and {} credentials read in {:.1} s; {changed} consumers written ({:.1} s in all)",
        imported.consumers,
        imported.credentials,
        read.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if !imported.skipped.is_empty() {
        let shown: Vec<&str> = imported.skipped.iter().take(5).map(String::as_str).collect();
        report.push_str(&format!("; skipped {}: {}", imported.skipped.len(), shown.join(", ")));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deck_file_typed_by_the_table() {
        let yaml = br#"
_format_version: "3.0"
services: []
consumers:
- username: bob
  tags: [a]
  keyauth_credentials:
  - key: k1
  basicauth_credentials:
  - username: bob
    password: 0123456789abcdef0123456789abcdef01234567
  acls:
  - group: g
  plugins: []
"#;
        let i = read_deck(yaml).unwrap();
        assert_eq!((i.consumers, i.credentials), (1, 3));
        assert_eq!(i.skipped.len(), 2, "{:?}", i.skipped);
        let bob = &i.records[0].1[0];
        assert_eq!(bob.id(), consumer_auth::consumers::derived_id("consumer", "bob"));
        let basic = &i.records.iter().find(|(e, _)| e.name == "basicauth_credentials").unwrap().1[0];
        assert_eq!(basic.get("password").as_text(), Some("0123456789abcdef0123456789abcdef01234567"));
    }

    #[test]
    fn refusals_carry_the_deck_path() {
        let e = read_deck(b"consumers:\n- username: a\n  keyauth_credentials:\n  - key: 5\n").unwrap_err();
        assert_eq!(e, "consumers[0].keyauth_credentials[0].key: expected a string");
        let e = read_deck(b"consumers:\n- username: a\n  keyauth_credentials: [{key: x}]\n- username: b\n  keyauth_credentials: [{key: x}]\n").unwrap_err();
        assert!(e.starts_with("consumers[1].keyauth_credentials[0].key: duplicate key"), "{e}");
        let e = read_deck(b"consumers:\n- username: a\n  basicauth_credentials: [{username: 'x:y', password: p}]\n")
            .unwrap_err();
        assert!(e.starts_with("consumers[0].basicauth_credentials[0].username"), "{e}");
    }
}

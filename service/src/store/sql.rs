//! SQL text derived from an entity's fields: the same statements on SQLite and PostgreSQL (both
//! take `$N` placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING` and quoted identifiers).
//! Identifiers come only from the static entity table; every value is a bound parameter.

use crate::entity::{Entity, Field};

pub fn quote(column: &str) -> String {
    format!("\"{column}\"")
}

pub fn columns(entity: &Entity) -> String {
    entity.fields.iter().map(|f| quote(f.column)).collect::<Vec<_>>().join(", ")
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub fn insert(entity: &Entity) -> String {
    format!("INSERT INTO {} ({}) VALUES ({})", entity.name, columns(entity), placeholders(1, entity.fields.len()))
}

/// PUT: insert, or replace every column of the row with this id but `id` and `created_at`.
pub fn upsert(entity: &Entity) -> String {
    let set: Vec<String> = entity
        .fields
        .iter()
        .filter(|f| f.name != "id" && f.name != "created_at")
        .map(|f| format!("{c} = excluded.{c}", c = quote(f.column)))
        .collect();
    format!("{} ON CONFLICT (\"id\") DO UPDATE SET {}", insert(entity), set.join(", "))
}

/// `import`: `rows` rows at once, inserted or replaced by id, but a row equal to the stored one
/// (timestamps aside) is left alone, so importing the same file twice changes nothing. Answers
/// the id and the consumer of each row written.
pub fn import_upsert(entity: &Entity, rows: usize) -> String {
    let n = entity.fields.len();
    let values: Vec<String> = (0..rows).map(|r| format!("({})", placeholders(r * n + 1, n))).collect();
    let kept = |f: &&Field| f.name != "id" && f.name != "created_at";
    let set: Vec<String> =
        entity.fields.iter().filter(kept).map(|f| format!("{c} = excluded.{c}", c = quote(f.column))).collect();
    let differs: Vec<String> = entity
        .fields
        .iter()
        .filter(kept)
        .filter(|f| f.name != "updated_at")
        .map(|f| format!("{t}.{c} IS DISTINCT FROM excluded.{c}", t = entity.name, c = quote(f.column)))
        .collect();
    let owner = entity.owner().map_or("\"id\"", |_| "\"consumer_id\"");
    format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT (\"id\") DO UPDATE SET {} WHERE {} RETURNING \"id\", {owner}",
        entity.name,
        columns(entity),
        values.join(", "),
        set.join(", "),
        differs.join(" OR ")
    )
}

/// PATCH: every column but `id`; `$1` is the id.
pub fn update(entity: &Entity) -> String {
    let set: Vec<String> =
        entity.fields.iter().skip(1).enumerate().map(|(i, f)| format!("{} = ${}", quote(f.column), i + 2)).collect();
    format!("UPDATE {} SET {} WHERE \"id\" = $1", entity.name, set.join(", "))
}

/// The fields bound by [`update`], after the id.
pub fn update_fields(entity: &'static Entity) -> impl Iterator<Item = &'static Field> {
    entity.fields.iter().skip(1)
}

/// Rows not yet expired (key-auth's `ttl`); `$n` is now.
pub fn live(entity: &Entity, now_param: usize) -> Option<String> {
    entity.ttl().map(|f| format!("({c} IS NULL OR {c} > ${now_param})", c = quote(f.column)))
}

/// A tag as a `LIKE` pattern over the stored `,a,b,` form.
pub fn tag_pattern(tag: &str) -> String {
    let mut p = String::from("%,");
    for c in tag.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push_str(",%");
    p
}

pub fn encode_tags(tags: &[String]) -> String {
    format!(",{},", tags.join(","))
}

pub fn decode_tags(stored: &str) -> Vec<String> {
    stored.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::KEY_AUTH;

    #[test]
    fn statements() {
        assert_eq!(
            insert(&KEY_AUTH),
            "INSERT INTO keyauth_credentials (\"id\", \"created_at\", \"consumer_id\", \"key\", \"expires_at\", \"tags\") VALUES ($1, $2, $3, $4, $5, $6)"
        );
        assert!(upsert(&KEY_AUTH).ends_with(
            "ON CONFLICT (\"id\") DO UPDATE SET \"consumer_id\" = excluded.\"consumer_id\", \"key\" = excluded.\"key\", \"expires_at\" = excluded.\"expires_at\", \"tags\" = excluded.\"tags\""
        ));
        assert_eq!(tag_pattern("a_b%"), "%,a\\_b\\%,%");
        assert_eq!(decode_tags(&encode_tags(&["x".into(), "y".into()])), vec!["x", "y"]);
    }
}

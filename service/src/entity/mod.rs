//! The entities the Admin API serves, each described once (Kong's schemas: `consumers.lua` and the
//! credential plugins' `daos.lua`). Routes (`api::routes`), validation (`validate`), SQL
//! (`store::sql`) and the mapping to the filter's consumer document (`document`) are all derived
//! from [`TABLE`]; nothing else names an entity's fields.

pub mod document;
pub mod validate;

/// How a field is typed on the wire and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A canonical hyphenated UUID, stored as text.
    Uuid,
    /// A non-empty string.
    Text,
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
    /// Seconds since the epoch (Kong's `created_at` / `updated_at`).
    Timestamp,
    /// A set of tags: strings without `,` or `/` (the list query's separators), stored as
    /// `,a,b,` so that one `LIKE` finds a tag on either engine.
    Tags,
    /// The owning consumer: `{"id": "<uuid>"}` on the wire, `consumer_id` in the table,
    /// `REFERENCES consumers (id) ON DELETE CASCADE`.
    Owner,
    /// Key-auth's `ttl`: seconds to live on the wire, stored as an absolute `expires_at`;
    /// reads answer the seconds left and skip expired rows.
    Ttl,
}

impl Kind {
    /// Stored as an integer column (else text).
    pub fn is_integer(self) -> bool {
        matches!(self, Kind::Timestamp | Kind::Ttl)
    }
}

/// What a field holds when the request leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// Absent: null.
    Null,
    /// A new random (v4) UUID.
    NewUuid,
    /// The current time in seconds.
    Now,
    /// 32 random characters of `[A-Za-z0-9]` (Kong's generated keys and secrets).
    Random32,
    /// A constant.
    Const(&'static str),
}

/// How a value is kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// As given, and answered on reads (Kong keeps keys and secrets in clear; decK compares them).
    Clear,
    /// basic-auth's password: `hex(sha1(password .. consumer_id))`, Kong's form, which the
    /// filter accepts as `password_hash`. Reads answer the hash.
    KongSha1,
}

#[derive(Debug)]
pub struct Field {
    /// The field's name in the API (and in Kong's schema).
    pub name: &'static str,
    /// Its column.
    pub column: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Default,
    /// A unique column (409 on a duplicate).
    pub unique: bool,
    pub stored: Stored,
    /// Its name in the filter's consumer document (`None`: not carried to the proxies).
    pub in_document: Option<&'static str>,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        column: name,
        kind,
        required: false,
        default: Default::Null,
        unique: false,
        stored: Stored::Clear,
        in_document: Some(name),
    }
}

impl Field {
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn default(mut self, default: Default) -> Self {
        self.default = default;
        self
    }
    const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    const fn stored(mut self, stored: Stored) -> Self {
        self.stored = stored;
        self
    }
    const fn column(mut self, column: &'static str) -> Self {
        self.column = column;
        self
    }
    const fn document(mut self, name: Option<&'static str>) -> Self {
        self.in_document = name;
        self
    }
}

/// One entity: Kong's schema plus what its DAO declares for the Admin API.
#[derive(Debug)]
pub struct Entity {
    /// Kong's DAO / table name (`consumers`, `keyauth_credentials`, ...): the change log names
    /// entities by it, and it is the table's name here too.
    pub name: &'static str,
    /// The collection route (`admin_api_name`): `/consumers`, `/key-auths`.
    pub collection: &'static str,
    /// The route under `/consumers/{c}/` (`admin_api_nested_name`); `None` for consumers.
    pub nested: Option<&'static str>,
    /// The field a non-UUID path segment names (`endpoint_key`).
    pub endpoint_key: Option<&'static str>,
    /// The field a non-UUID segment names under `/consumers/{c}/...` when it differs from
    /// `endpoint_key`: acls' by-group route (Kong's `kong/plugins/acl/api.lua` override, which
    /// looks the group up by its cache key `(consumer, group)`).
    pub nested_key: Option<&'static str>,
    /// Columns unique together (acls: one group once per consumer).
    pub unique_together: &'static [&'static str],
    /// At least one of these must be non-empty (consumers: username, custom_id).
    pub at_least_one_of: &'static [&'static str],
    /// The array of the filter's consumer document this entity fills (`None`: the consumer itself).
    pub document_section: Option<&'static str>,
    pub fields: &'static [Field],
}

impl Entity {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Credentials belong to a consumer; consumers don't.
    pub fn owner(&self) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.kind == Kind::Owner)
    }

    /// The key a non-UUID path segment is resolved by, nested or not.
    pub fn path_key(&self, nested: bool) -> Option<&'static Field> {
        let name = if nested { self.nested_key.or(self.endpoint_key) } else { self.endpoint_key };
        name.and_then(|n| self.field(n))
    }

    pub fn ttl(&self) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.kind == Kind::Ttl)
    }
}

const ID: Field = field("id", Kind::Uuid).default(Default::NewUuid);
const CREATED_AT: Field = field("created_at", Kind::Timestamp).default(Default::Now).document(None);
const TAGS: Field = field("tags", Kind::Tags).document(None);
const CONSUMER: Field = field("consumer", Kind::Owner).required().column("consumer_id").document(None);

pub static CONSUMERS: Entity = Entity {
    name: "consumers",
    collection: "consumers",
    nested: None,
    endpoint_key: Some("username"),
    nested_key: None,
    unique_together: &[],
    at_least_one_of: &["custom_id", "username"],
    document_section: None,
    fields: &[
        ID,
        CREATED_AT,
        field("updated_at", Kind::Timestamp).default(Default::Now).document(None),
        field("username", Kind::Text).unique(),
        field("custom_id", Kind::Text).unique(),
        TAGS,
    ],
};

pub static KEY_AUTH: Entity = Entity {
    name: "keyauth_credentials",
    collection: "key-auths",
    nested: Some("key-auth"),
    endpoint_key: Some("key"),
    nested_key: None,
    unique_together: &[],
    at_least_one_of: &[],
    document_section: Some("keyauth_credentials"),
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        field("key", Kind::Text).required().default(Default::Random32).unique(),
        field("ttl", Kind::Ttl).column("expires_at").document(Some("expires_at")),
        TAGS,
    ],
};

pub static BASIC_AUTH: Entity = Entity {
    name: "basicauth_credentials",
    collection: "basic-auths",
    nested: Some("basic-auth"),
    endpoint_key: Some("username"),
    nested_key: None,
    unique_together: &[],
    at_least_one_of: &[],
    document_section: Some("basicauth_credentials"),
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        field("username", Kind::Text).required().unique(),
        field("password", Kind::Text).required().stored(Stored::KongSha1).document(Some("password_hash")),
        TAGS,
    ],
};

pub static HMAC_AUTH: Entity = Entity {
    name: "hmacauth_credentials",
    collection: "hmac-auths",
    nested: Some("hmac-auth"),
    endpoint_key: Some("username"),
    nested_key: None,
    unique_together: &[],
    at_least_one_of: &[],
    document_section: Some("hmacauth_credentials"),
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        field("username", Kind::Text).required().unique(),
        field("secret", Kind::Text).required().default(Default::Random32),
        TAGS,
    ],
};

/// The algorithms Kong's jwt plugin accepts (`kong/plugins/jwt/daos.lua`) that the filter
/// verifies; the filter refuses the others, so the service does too.
pub const JWT_ALGORITHMS: &[&str] =
    &["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

pub static JWT: Entity = Entity {
    name: "jwt_secrets",
    collection: "jwts",
    nested: Some("jwt"),
    endpoint_key: Some("key"),
    nested_key: None,
    unique_together: &[],
    at_least_one_of: &[],
    document_section: Some("jwt_secrets"),
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        field("key", Kind::Text).required().default(Default::Random32).unique(),
        field("secret", Kind::Text).default(Default::Random32),
        field("algorithm", Kind::OneOf(JWT_ALGORITHMS)).required().default(Default::Const("HS256")),
        field("rsa_public_key", Kind::Text),
        TAGS,
    ],
};

pub static ACLS: Entity = Entity {
    name: "acls",
    collection: "acls",
    nested: Some("acls"),
    endpoint_key: None,
    nested_key: Some("group"),
    unique_together: &["consumer", "group"],
    at_least_one_of: &[],
    document_section: Some("acls"),
    fields: &[ID, CREATED_AT, CONSUMER, field("group", Kind::Text).required(), TAGS],
};

/// Every entity, consumers first (the owner of the others).
pub static TABLE: [&Entity; 6] = [&CONSUMERS, &KEY_AUTH, &BASIC_AUTH, &HMAC_AUTH, &JWT, &ACLS];

/// The lists decK reads that this service has nothing for: each answers an empty page.
pub const EMPTY_COLLECTIONS: &[&str] = &["services", "routes", "plugins", "certificates", "snis", "upstreams"];

/// A field's value in a validated record or a stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Tags(Vec<String>),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// One row of an entity: a value per field of `entity.fields`, in that order.
#[derive(Debug, Clone)]
pub struct Record {
    pub entity: &'static Entity,
    pub values: Vec<Value>,
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        std::ptr::eq(self.entity, other.entity) && self.values == other.values
    }
}

impl Record {
    pub fn empty(entity: &'static Entity) -> Record {
        Record { entity, values: vec![Value::Null; entity.fields.len()] }
    }

    pub fn get(&self, name: &str) -> &Value {
        let index = self.entity.fields.iter().position(|f| f.name == name);
        index.and_then(|i| self.values.get(i)).unwrap_or(&Value::Null)
    }

    pub fn set(&mut self, name: &str, value: Value) {
        if let Some(slot) = self.entity.fields.iter().position(|f| f.name == name).and_then(|i| self.values.get_mut(i))
        {
            *slot = value;
        }
    }

    pub fn id(&self) -> &str {
        self.get("id").as_text().unwrap_or_default()
    }

    /// The owning consumer's id (credentials).
    pub fn consumer_id(&self) -> Option<&str> {
        self.get("consumer").as_text()
    }

    pub fn fields(&self) -> impl Iterator<Item = (&'static Field, &Value)> {
        self.entity.fields.iter().zip(self.values.iter())
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// 32 characters of `[A-Za-z0-9]` from the OS's generator (Kong's `random_string`).
pub fn random32() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_has_an_id_and_credentials_an_owner() {
        for e in TABLE {
            assert_eq!(e.fields.first().map(|f| f.name), Some("id"), "{}", e.name);
            assert_eq!(e.owner().is_some(), e.nested.is_some(), "{}", e.name);
            for name in e.unique_together.iter().chain(e.at_least_one_of).chain(e.endpoint_key.iter()) {
                assert!(e.field(name).is_some(), "{}.{name}", e.name);
            }
        }
    }

    #[test]
    fn random32_is_kongs_alphabet() {
        let k = random32();
        assert_eq!(k.len(), 32);
        assert!(k.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(k, random32());
    }
}

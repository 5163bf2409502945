//! The consumers the end-to-end tests use, and helpers to build configuration documents.

use serde_json::{json, Value};

#[derive(Debug, PartialEq, Eq)]
pub struct Consumer {
    pub id: &'static str,
    pub username: &'static str,
    pub custom_id: Option<&'static str>,
    /// key-auth credential: (id, key).
    pub key: Option<(&'static str, &'static str)>,
    /// basic-auth credential: (username, password); `X-Credential-Identifier` is the username.
    pub basic: Option<(&'static str, &'static str)>,
    /// hmac-auth credential: (username, secret); `X-Credential-Identifier` is the username.
    pub hmac: Option<(&'static str, &'static str)>,
    /// jwt secret, HS256: (key, secret); `X-Credential-Identifier` is the key.
    pub jwt: Option<(&'static str, &'static str)>,
    pub groups: &'static [&'static str],
}

pub const ALICE: Consumer = Consumer {
    id: "0d4e8c5a-6b3f-4f7e-9d51-3f0c8a1e2b77",
    username: "alice",
    custom_id: Some("crm-1042"),
    key: Some(("6b2f6a4e-1c7d-4b8e-9f3a-2d5c7e9a1b01", "alice-key")),
    basic: Some(("alice", "alice-pw")),
    hmac: Some(("alice-hmac", "hmac-secret")),
    jwt: Some(("alice-issuer", "jwt-secret")),
    groups: &["admins", "ops"],
};

pub const BOB: Consumer = Consumer {
    id: "1e5f9d6b-7c4a-4a8f-8e62-4a1d9b2f3c88",
    username: "bob",
    custom_id: None,
    key: Some(("7c3a7b5f-2d8e-4c9f-8a4b-3e6d8f0b2c02", "bob-key")),
    basic: Some(("bob", "bob-pw")),
    hmac: None,
    jwt: None,
    groups: &["users"],
};

/// A consumer with a credential and no groups.
pub const CAROL: Consumer = Consumer {
    id: "2f6a0e7c-8d5b-4b9a-9f73-5b2e0c3a4d99",
    username: "carol",
    custom_id: None,
    key: Some(("8d4b8c6a-3e9f-4daa-9b5c-4f7e9a1c3d03", "carol-key")),
    basic: None,
    hmac: None,
    jwt: None,
    groups: &[],
};

/// The anonymous consumer of Kong's docs: no credentials, no groups.
pub const ANONYMOUS: Consumer = Consumer {
    id: "3a7b1f8d-9e6c-4cab-8a84-6c3f1d4b5eaa",
    username: "anonymous_users",
    custom_id: None,
    key: None,
    basic: None,
    hmac: None,
    jwt: None,
    groups: &[],
};

/// A second anonymous consumer, with a group.
pub const GUEST: Consumer = Consumer {
    id: "4b8c2a9e-af7d-4dbc-9b95-7d4a2e5c6fbb",
    username: "guest",
    custom_id: None,
    key: None,
    basic: None,
    hmac: None,
    jwt: None,
    groups: &["guests"],
};

pub const ALL: [&Consumer; 5] = [&ALICE, &BOB, &CAROL, &ANONYMOUS, &GUEST];

impl Consumer {
    pub fn to_json(&self) -> Value {
        let mut c = json!({ "id": self.id, "username": self.username });
        if let Some(custom) = self.custom_id {
            c["custom_id"] = json!(custom);
        }
        if let Some((id, key)) = self.key {
            c["keyauth_credentials"] = json!([{ "id": id, "key": key }]);
        }
        if let Some((user, password)) = self.basic {
            c["basicauth_credentials"] = json!([{ "username": user, "password": password }]);
        }
        if let Some((user, secret)) = self.hmac {
            c["hmacauth_credentials"] = json!([{ "username": user, "secret": secret }]);
        }
        if let Some((key, secret)) = self.jwt {
            c["jwt_secrets"] = json!([{ "key": key, "algorithm": "HS256", "secret": secret }]);
        }
        if !self.groups.is_empty() {
            c["acls"] = Value::Array(self.groups.iter().map(|g| json!({ "group": g })).collect());
        }
        c
    }

    pub fn key(&self) -> &'static str {
        self.key.expect("consumer has a key").1
    }

    pub fn key_id(&self) -> &'static str {
        self.key.expect("consumer has a key").0
    }

    pub fn basic_user(&self) -> &'static str {
        self.basic.expect("consumer has a basic-auth credential").0
    }

    pub fn basic_password(&self) -> &'static str {
        self.basic.expect("consumer has a basic-auth credential").1
    }

    pub fn hmac_user(&self) -> &'static str {
        self.hmac.expect("consumer has an hmac-auth credential").0
    }

    pub fn hmac_secret(&self) -> &'static str {
        self.hmac.expect("consumer has an hmac-auth credential").1
    }

    pub fn jwt_key(&self) -> &'static str {
        self.jwt.expect("consumer has a jwt secret").0
    }

    pub fn jwt_secret(&self) -> &'static str {
        self.jwt.expect("consumer has a jwt secret").1
    }
}

pub fn consumers_json(consumers: &[&Consumer]) -> Value {
    Value::Array(consumers.iter().map(|c| c.to_json()).collect())
}

/// One filter instance's configuration: all test consumers and these plugins.
pub fn instance(plugins: Value) -> Value {
    json!({ "consumers": consumers_json(&ALL), "plugins": plugins })
}

/// `{"name": name, "config": config}`.
pub fn plugin(name: &str, config: Value) -> Value {
    json!({ "name": name, "config": config })
}

/// The identity headers an upstream may see (BEHAVIOUR.md §B2), plus the spoofable ones the filter
/// never sets.
pub const IDENTITY_HEADERS: [&str; 8] = [
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-credential-identifier",
    "x-anonymous-consumer",
    "x-consumer-groups",
    "x-authenticated-groups",
    "x-credential-username",
];

/// Forged identity headers a client might send (mixed case, duplicates).
pub const SPOOFED: [(&str, &str); 9] = [
    ("X-Consumer-Username", "mallory"),
    ("X-Consumer-ID", "00000000-0000-0000-0000-000000000000"),
    ("X-Consumer-Custom-ID", "forged-custom"),
    ("X-Credential-Identifier", "forged-credential"),
    ("X-Anonymous-Consumer", "forged"),
    ("X-Consumer-Groups", "admins"),
    ("X-Authenticated-Groups", "admins"),
    ("x-consumer-username", "mallory-again"),
    ("X-Credential-Username", "forged-username"),
];

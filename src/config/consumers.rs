//! Consumers (BEHAVIOUR.md §B1): one consumer validated on its own, and the inline index with
//! uniqueness across the document.

use std::collections::HashMap;
use std::rc::Rc;

use super::raw::RawConsumer;
use crate::consumers::{
    self, BasicCredential, Consumer, ConsumerIndex, HmacCredential, JwtCredential, JwtMaterial, KeyCredential,
    PasswordVerifier, ValidConsumer, ValidKey,
};
use crate::crypto::jwt_key;
use crate::error::{consumer_path, ConfigError, ErrorKind};

/// Only the canonical hyphenated form (what Kong stores and sends in `X-Consumer-ID`).
fn check_uuid(id: &str, path: impl FnOnce() -> String) -> Result<(), ConfigError> {
    let canonical = id.len() == 36 && uuid::Uuid::try_parse(id).is_ok();
    if canonical {
        Ok(())
    } else {
        Err(ConfigError::new(path(), ErrorKind::InvalidUuid))
    }
}

/// Unique values of one kind, remembering who used each first.
struct Seen<K> {
    what: &'static str,
    show_value: bool,
    first: HashMap<K, String>,
}

impl<K: std::hash::Hash + Eq> Seen<K> {
    fn new(what: &'static str, show_value: bool) -> Self {
        Seen { what, show_value, first: HashMap::new() }
    }

    fn claim(&mut self, key: K, shown: &str, owner: String, path: String) -> Result<(), ConfigError> {
        if let Some(other) = self.first.get(&key) {
            let value = self.show_value.then(|| shown.to_string());
            return Err(ConfigError::new(path, ErrorKind::Duplicate { what: self.what, value, other: other.clone() }));
        }
        self.first.insert(key, owner);
        Ok(())
    }
}

/// Validate consumer `ci` of the array at `at_path`.
pub(super) fn validate_consumer(c: RawConsumer, at_path: &str, ci: usize) -> Result<ValidConsumer, ConfigError> {
    let at = consumer_path(at_path, ci, "");
    let username = c.username.filter(|u| !u.is_empty());
    let custom_id = c.custom_id.filter(|u| !u.is_empty());
    if username.is_none() && custom_id.is_none() {
        return Err(ConfigError::new(at, ErrorKind::AtLeastOneOf("'custom_id', 'username'")));
    }
    let id = match c.id {
        Some(id) => {
            check_uuid(&id, || format!("{at}.id"))?;
            id
        }
        None => match (&username, &custom_id) {
            (Some(u), _) => consumers::derived_id("consumer", u),
            (None, Some(cid)) => consumers::derived_id("consumer-custom-id", cid),
            (None, None) => String::new(),
        },
    };
    let mut groups = Vec::with_capacity(c.acls.len());
    for (ai, acl) in c.acls.into_iter().enumerate() {
        if acl.group.is_empty() {
            return Err(ConfigError::new(format!("{at}.acls[{ai}].group"), ErrorKind::Empty));
        }
        if let Some(aid) = &acl.id {
            check_uuid(aid, || format!("{at}.acls[{ai}].id"))?;
        }
        if !groups.contains(&acl.group) {
            groups.push(acl.group);
        }
    }
    let consumer = Rc::new(Consumer { id, username, custom_id, groups });
    let id = &consumer.id;

    let mut keys = Vec::with_capacity(c.keyauth_credentials.len());
    for (ki, k) in c.keyauth_credentials.into_iter().enumerate() {
        let kat = || format!("{at}.keyauth_credentials[{ki}]");
        let digest = match (&k.key, &k.key_hash) {
            (Some(key), None) if key.is_empty() => {
                return Err(ConfigError::new(format!("{}.key", kat()), ErrorKind::Empty))
            }
            (Some(key), None) => consumers::key_digest(key.as_bytes()),
            (None, Some(hash)) => parse_sha256_hash(hash).ok_or_else(|| {
                ConfigError::new(
                    format!("{}.key_hash", kat()),
                    ErrorKind::BadHash("'sha256:' followed by 64 hex digits"),
                )
            })?,
            _ => return Err(ConfigError::new(kat(), ErrorKind::ExactlyOneOf("'key', 'key_hash'"))),
        };
        let explicit_id = k.id.is_some();
        let cred_id = match k.id {
            Some(cid) => {
                check_uuid(&cid, || format!("{}.id", kat()))?;
                cid
            }
            None => consumers::derived_id("keyauth", &format!("{id}:{ki}")),
        };
        let credential = KeyCredential { id: cred_id, consumer: Rc::clone(&consumer), expires_at: k.expires_at };
        keys.push(ValidKey { digest, from_hash: k.key.is_none(), explicit_id, credential });
    }

    let mut basic = Vec::with_capacity(c.basicauth_credentials.len());
    for (bi, b) in c.basicauth_credentials.into_iter().enumerate() {
        let bat = || format!("{at}.basicauth_credentials[{bi}]");
        if b.username.is_empty() {
            return Err(ConfigError::new(format!("{}.username", bat()), ErrorKind::Empty));
        }
        if b.username.contains(':') {
            return Err(ConfigError::new(format!("{}.username", bat()), ErrorKind::Rule("must not contain ':'")));
        }
        if let Some(bid) = &b.id {
            check_uuid(bid, || format!("{}.id", bat()))?;
        }
        let verifier = match (&b.password, &b.password_hash) {
            (Some(p), None) => PasswordVerifier::from_plain(p.as_bytes()),
            (None, Some(h)) => parse_password_hash(h, id).ok_or_else(|| {
                ConfigError::new(
                    format!("{}.password_hash", bat()),
                    ErrorKind::BadHash("40 hex digits (Kong's salted SHA-1) or 'sha256:' followed by 64 hex digits"),
                )
            })?,
            _ => return Err(ConfigError::new(bat(), ErrorKind::ExactlyOneOf("'password', 'password_hash'"))),
        };
        basic.push(BasicCredential { username: b.username, consumer: Rc::clone(&consumer), verifier });
    }

    let mut hmac = Vec::with_capacity(c.hmacauth_credentials.len());
    for (hi, h) in c.hmacauth_credentials.into_iter().enumerate() {
        let hat = || format!("{at}.hmacauth_credentials[{hi}]");
        if h.username.is_empty() {
            return Err(ConfigError::new(format!("{}.username", hat()), ErrorKind::Empty));
        }
        if h.secret.is_empty() {
            return Err(ConfigError::new(format!("{}.secret", hat()), ErrorKind::Empty));
        }
        if let Some(hid) = &h.id {
            check_uuid(hid, || format!("{}.id", hat()))?;
        }
        hmac.push(HmacCredential::new(h.username, Rc::clone(&consumer), h.secret.into_bytes()));
    }

    let mut jwt = Vec::with_capacity(c.jwt_secrets.len());
    for (ji, j) in c.jwt_secrets.into_iter().enumerate() {
        let jat = || format!("{at}.jwt_secrets[{ji}]");
        if j.key.is_empty() {
            return Err(ConfigError::new(format!("{}.key", jat()), ErrorKind::Empty));
        }
        if let Some(jid) = &j.id {
            check_uuid(jid, || format!("{}.id", jat()))?;
        }
        const JWT_ALGORITHMS: &[&str] = &[
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ];
        if let Some(alg) = &j.algorithm {
            if !JWT_ALGORITHMS.contains(&alg.as_str()) {
                return Err(ConfigError::new(
                    format!("{}.algorithm", jat()),
                    ErrorKind::Rule(
                        "expected one of: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
                    ),
                ));
            }
        }
        let algorithm = jwt_key::Algorithm::parse(j.algorithm.as_deref().unwrap_or("HS256")).unwrap_or_default();
        let verifier = jwt_key::VerifyingKey::parse(algorithm, j.secret.as_deref(), j.rsa_public_key.as_deref())
            .map_err(|e| match e {
                jwt_key::KeyError::SecretMissing => {
                    ConfigError::new(format!("{}.secret", jat()), ErrorKind::RequiredFieldMissing)
                }
                jwt_key::KeyError::SecretEmpty => ConfigError::new(format!("{}.secret", jat()), ErrorKind::Empty),
                jwt_key::KeyError::PublicKeyMissing => {
                    ConfigError::new(format!("{}.rsa_public_key", jat()), ErrorKind::RequiredFieldMissing)
                }
                jwt_key::KeyError::Invalid(why) => {
                    ConfigError::new(format!("{}.rsa_public_key", jat()), ErrorKind::Rule(why))
                }
            })?;
        let material = JwtMaterial { secret: j.secret, rsa_public_key: j.rsa_public_key };
        jwt.push(JwtCredential { key: j.key, consumer: Rc::clone(&consumer), algorithm, verifier, material });
    }
    Ok(ValidConsumer { consumer, keys, basic, hmac, jwt })
}

/// Validate every consumer of a (small, inline) array and index them, refusing duplicates in
/// document order.
pub(super) fn build_consumers(raw: Vec<RawConsumer>, at_path: &str) -> Result<ConsumerIndex, ConfigError> {
    let mut index = ConsumerIndex::default();
    let mut ids = Seen::new("id", true);
    let mut usernames = Seen::new("username", true);
    let mut custom_ids = Seen::new("custom_id", true);
    let mut keys = Seen::new("key", false);
    let mut key_ids = Seen::new("credential id", true);
    let mut basic_users = Seen::new("username", true);
    let mut hmac_users = Seen::new("username", true);
    let mut jwt_keys = Seen::new("key", true);

    for (ci, raw) in raw.into_iter().enumerate() {
        let v = validate_consumer(raw, at_path, ci)?;
        let owner = consumer_path(at_path, ci, "");
        let path = |field: String| consumer_path(at_path, ci, &field);
        let c = &v.consumer;
        if let Some(u) = &c.username {
            usernames.claim(u.clone(), u, owner.clone(), path("username".into()))?;
        }
        if let Some(cid) = &c.custom_id {
            custom_ids.claim(cid.clone(), cid, owner.clone(), path("custom_id".into()))?;
        }
        ids.claim(c.id.clone(), &c.id, owner.clone(), path("id".into()))?;
        index.insert_consumer(Rc::clone(c));
        for (ki, k) in v.keys.into_iter().enumerate() {
            let field = if k.from_hash { "key_hash" } else { "key" };
            keys.claim(k.digest, "", owner.clone(), path(format!("keyauth_credentials[{ki}].{field}")))?;
            let cid = &k.credential.id;
            key_ids.claim(cid.clone(), cid, owner.clone(), path(format!("keyauth_credentials[{ki}].id")))?;
            index.insert_key(k.digest, k.credential);
        }
        for (bi, b) in v.basic.into_iter().enumerate() {
            let u = &b.username;
            basic_users.claim(u.clone(), u, owner.clone(), path(format!("basicauth_credentials[{bi}].username")))?;
            index.insert_basic(b);
        }
        for (hi, h) in v.hmac.into_iter().enumerate() {
            let u = &h.username;
            hmac_users.claim(u.clone(), u, owner.clone(), path(format!("hmacauth_credentials[{hi}].username")))?;
            index.insert_hmac(h);
        }
        for (ji, j) in v.jwt.into_iter().enumerate() {
            jwt_keys.claim(j.key.clone(), &j.key, owner.clone(), path(format!("jwt_secrets[{ji}].key")))?;
            index.insert_jwt(j);
        }
    }
    Ok(index)
}

/// `sha256:<64 hex>` -> digest.
fn parse_sha256_hash(s: &str) -> Option<[u8; 32]> {
    let hex_part = s.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// A basic-auth `password_hash`: Kong's `hex(sha1(password .. consumer_id))`, or `sha256:<hex>`.
fn parse_password_hash(s: &str, consumer_id: &str) -> Option<PasswordVerifier> {
    if let Some(d) = parse_sha256_hash(s) {
        return Some(PasswordVerifier::Sha256(d));
    }
    let mut digest = [0u8; 20];
    hex::decode_to_slice(s, &mut digest).ok()?;
    Some(PasswordVerifier::KongSha1 { digest, salt: consumer_id.to_string() })
}

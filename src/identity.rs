//! The identity a request carries upstream (BEHAVIOUR.md §B2): who the consumer is, with which
//! credential, and the headers that say so. Also the per-request handoff between several
//! instances of the filter in one chain (BEHAVIOUR.md §B3).

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::consumers::Consumer;
use crate::request::Header;

// The header names live in the leaf `identity_headers` (the request reads them too).
pub use crate::identity_headers::{
    is_spoofable, ANONYMOUS_CONSUMER, CONSUMER_CUSTOM_ID, CONSUMER_GROUPS, CONSUMER_ID, CONSUMER_USERNAME,
    CREDENTIAL_IDENTIFIER, MANAGED_HEADERS,
};

/// The property several instances of the filter use to hand the identity on. Envoy: a single
/// path segment (what Envoy lets a later wasm filter read back). Kong: ngx_wasm_module sets only
/// host-namespace properties, and Kong (3.6+) keeps `kong.ctx.shared.*` for the request.
pub const HANDOFF_PROPERTY_ENVOY: [&str; 1] = ["consumer_auth_identity"];
pub const HANDOFF_PROPERTY_KONG: [&str; 4] = ["kong", "ctx", "shared", "consumer_auth_identity"];

/// Who the request is, as established so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub consumer: Option<Rc<Consumer>>,
    /// The credential identifier; `Some` means a credential was established (the OR skip looks
    /// at this, not at the consumer).
    pub credential: Option<String>,
    /// The plugin that established the credential: identifiers are unique per plugin only (a
    /// basic-auth and an hmac-auth username may be equal), and rate-limiting counts per credential.
    pub credential_plugin: Option<String>,
    /// `X-Consumer-Groups` as set by acl.
    pub groups_header: Option<String>,
}

impl Identity {
    pub fn authenticated(consumer: Rc<Consumer>, credential: String, plugin: &str) -> Self {
        Identity {
            consumer: Some(consumer),
            credential: Some(credential),
            credential_plugin: Some(plugin.to_string()),
            groups_header: None,
        }
    }

    pub fn anonymous(consumer: Rc<Consumer>) -> Self {
        Identity { consumer: Some(consumer), ..Identity::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.consumer.is_none() && self.credential.is_none()
    }

    /// The value this identity gives a managed header (`None`: the header must be absent).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        let consumer = self.consumer.as_deref()?;
        match name {
            CONSUMER_ID => Some(&consumer.id),
            CONSUMER_CUSTOM_ID => consumer.custom_id.as_deref(),
            CONSUMER_USERNAME => consumer.username.as_deref(),
            CREDENTIAL_IDENTIFIER => self.credential.as_deref(),
            ANONYMOUS_CONSUMER => self.credential.is_none().then_some("true"),
            CONSUMER_GROUPS => self.groups_header.as_deref(),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            id: self.consumer.as_ref().map(|c| c.id.clone()),
            username: self.consumer.as_ref().and_then(|c| c.username.clone()),
            custom_id: self.consumer.as_ref().and_then(|c| c.custom_id.clone()),
            groups: self.consumer.as_ref().map(|c| c.groups.clone()).unwrap_or_default(),
            credential: self.credential.clone(),
            credential_plugin: self.credential_plugin.clone(),
            groups_header: self.groups_header.clone(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// `None` for bytes this filter did not write.
    pub fn decode(bytes: &[u8]) -> Option<Identity> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        let consumer = wire.id.map(|id| {
            Rc::new(Consumer { id, username: wire.username, custom_id: wire.custom_id, groups: wire.groups })
        });
        Some(Identity {
            consumer,
            credential: wire.credential,
            credential_plugin: wire.credential_plugin,
            groups_header: wire.groups_header,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    id: Option<String>,
    username: Option<String>,
    custom_id: Option<String>,
    groups: Vec<String>,
    credential: Option<String>,
    credential_plugin: Option<String>,
    groups_header: Option<String>,
}

/// A change to the request headers going upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Replace every value of the header with this one.
    Set(&'static str, String),
    Remove(String),
}

/// The header operations that make the request carry exactly `identity`.
///
/// `strip_spoofed`: this instance is the first to see the request, so every identity header in
/// it came from the client. Otherwise the managed headers were written by an earlier instance
/// and are only brought up to date.
pub fn header_ops(identity: &Identity, headers: &[Header], strip_spoofed: bool, ops: &mut Vec<HeaderOp>) {
    if strip_spoofed {
        for (name, _) in headers {
            let lower = name.to_ascii_lowercase();
            if is_spoofable(&lower)
                && !MANAGED_HEADERS.contains(&lower.as_str())
                && !ops.contains(&HeaderOp::Remove(lower.clone()))
            {
                ops.push(HeaderOp::Remove(lower));
            }
        }
    }
    for name in MANAGED_HEADERS {
        let mut present = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice());
        let (first, second) = (present.next(), present.next());
        match identity.header_value(name) {
            Some(want) => {
                if !(first == Some(want.as_bytes()) && second.is_none()) {
                    ops.push(HeaderOp::Set(name, want.to_string()));
                }
            }
            None => {
                if first.is_some() {
                    ops.push(HeaderOp::Remove(name.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Rc<Consumer> {
        Rc::new(Consumer {
            id: "id-a".into(),
            username: Some("alice".into()),
            custom_id: None,
            groups: vec!["g1".into()],
        })
    }

    #[test]
    fn handoff_round_trips() {
        let mut i = Identity::authenticated(alice(), "cred".into(), "key-auth");
        i.groups_header = Some("g1".into());
        assert_eq!(Identity::decode(&i.encode()).unwrap(), i);
        assert_eq!(Identity::decode(b"garbage"), None);
    }

    #[test]
    fn ops_strip_spoofed_and_set_identity() {
        let headers: Vec<Header> = vec![
            ("x-consumer-username".into(), b"mallory".to_vec()),
            ("x-consumer-whatever".into(), b"1".to_vec()),
            ("x-authenticated-groups".into(), b"admins".to_vec()),
            ("x-anonymous-consumer".into(), b"true".to_vec()),
            ("accept".into(), b"*/*".to_vec()),
        ];
        let mut ops = Vec::new();
        header_ops(&Identity::authenticated(alice(), "cred".into(), "key-auth"), &headers, true, &mut ops);
        assert!(ops.contains(&HeaderOp::Remove("x-consumer-whatever".into())));
        assert!(ops.contains(&HeaderOp::Remove("x-authenticated-groups".into())));
        assert!(ops.contains(&HeaderOp::Remove("x-anonymous-consumer".into())));
        assert!(ops.contains(&HeaderOp::Set(CONSUMER_USERNAME, "alice".into())));
        assert!(ops.contains(&HeaderOp::Set(CONSUMER_ID, "id-a".into())));
        assert!(ops.contains(&HeaderOp::Set(CREDENTIAL_IDENTIFIER, "cred".into())));
        assert!(!ops.iter().any(|o| matches!(o, HeaderOp::Remove(n) if n == "accept")));
    }

    #[test]
    fn ops_leave_correct_headers_alone() {
        let headers: Vec<Header> =
            vec![("x-consumer-id".into(), b"id-a".to_vec()), ("x-consumer-username".into(), b"alice".to_vec())];
        let mut ops = Vec::new();
        header_ops(&Identity::anonymous(alice()), &headers, false, &mut ops);
        assert_eq!(ops, vec![HeaderOp::Set(ANONYMOUS_CONSUMER, "true".into())]);
    }
}

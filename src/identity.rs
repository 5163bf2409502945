//! The identity a request carries upstream (BEHAVIOUR.md §B2): who the consumer is, with which
//! credential, and the headers that say so. Also the per-request handoff between several
//! instances of the filter in one chain (BEHAVIOUR.md §B3).

use std::rc::Rc;

use serde::Deserialize;

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

/// Whether an earlier instance of the filter may have handed an identity on for a request that
/// arrived at this one with `headers`: an instance hands on only an identity with a consumer, and
/// always sets `X-Consumer-ID` for it (`header_ops`). Without that header there is nothing to read,
/// and the handoff property is not asked for (a host call saved on every request of a chain's
/// first instance, the usual case of a single one). A client's forged `X-Consumer-ID` only costs
/// that read: the property, which a client cannot set, decides.
pub fn may_carry_handoff(headers: &[Header]) -> bool {
    headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(CONSUMER_ID))
}

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

    /// The handoff: [`Wire`] as compact JSON, byte for byte what serde_json writes (a test
    /// checks it), written directly into one buffer: on every authenticated request, where
    /// serde's writer was an eighth of the filter's own time.
    pub fn encode(&self) -> Vec<u8> {
        let consumer = self.consumer.as_deref();
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"id\":");
        json_opt(&mut out, consumer.map(|c| c.id.as_str()));
        out.extend_from_slice(b",\"username\":");
        json_opt(&mut out, consumer.and_then(|c| c.username.as_deref()));
        out.extend_from_slice(b",\"custom_id\":");
        json_opt(&mut out, consumer.and_then(|c| c.custom_id.as_deref()));
        out.extend_from_slice(b",\"groups\":[");
        for (i, group) in consumer.map_or(&[][..], |c| c.groups.as_slice()).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(&mut out, group);
        }
        out.extend_from_slice(b"],\"credential\":");
        json_opt(&mut out, self.credential.as_deref());
        out.extend_from_slice(b",\"credential_plugin\":");
        json_opt(&mut out, self.credential_plugin.as_deref());
        out.extend_from_slice(b",\"groups_header\":");
        json_opt(&mut out, self.groups_header.as_deref());
        out.push(b'}');
        out
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

fn json_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, control characters as `\b \f
/// \n \r \t` or `\u00xx`, everything else as is.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let hex = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0');
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
    out.push(b'"');
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
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
        // (a name is lowercased, a copy, only for a header that is to go)
        for (name, _) in headers {
            if is_spoofable(name) && !MANAGED_HEADERS.iter().any(|m| m.eq_ignore_ascii_case(name)) {
                let remove = HeaderOp::Remove(name.to_ascii_lowercase());
                if !ops.contains(&remove) {
                    ops.push(remove);
                }
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

    /// The hand-written encoding is serde_json's, byte for byte (an older build in the same chain
    /// compares and decodes it), for every character that JSON escapes and some that it does not.
    #[test]
    fn handoff_is_serde_json_byte_for_byte() {
        let tricky: String = (0u8..0x80).map(char::from).chain("é€😀\u{7f}".chars()).collect();
        let consumer = |groups: Vec<String>| {
            Rc::new(Consumer { id: tricky.clone(), username: Some(format!("u\"{tricky}")), custom_id: None, groups })
        };
        let identities = [
            Identity::default(),
            Identity::anonymous(consumer(vec![])),
            Identity::anonymous(consumer(vec![tricky.clone()])),
            Identity {
                groups_header: Some("a, b".into()),
                ..Identity::authenticated(consumer(vec!["g1".into(), "g\\2".into()]), tricky.clone(), "jwt")
            },
        ];
        for identity in identities {
            let c = identity.consumer.as_deref();
            let wire = Wire {
                id: c.map(|c| c.id.clone()),
                username: c.and_then(|c| c.username.clone()),
                custom_id: c.and_then(|c| c.custom_id.clone()),
                groups: c.map(|c| c.groups.clone()).unwrap_or_default(),
                credential: identity.credential.clone(),
                credential_plugin: identity.credential_plugin.clone(),
                groups_header: identity.groups_header.clone(),
            };
            let encoded = identity.encode();
            assert_eq!(String::from_utf8_lossy(&encoded), serde_json::to_string(&wire).unwrap());
            assert_eq!(Identity::decode(&encoded), Some(identity));
        }
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
    fn a_handoff_comes_only_with_the_consumer_id_header_it_set() {
        let mut ops = Vec::new();
        header_ops(&Identity::anonymous(alice()), &[], true, &mut ops);
        assert!(ops.contains(&HeaderOp::Set(CONSUMER_ID, "id-a".into())), "every handed-on identity sets it");
        assert!(may_carry_handoff(&[("X-Consumer-ID".into(), b"id-a".to_vec())]));
        assert!(!may_carry_handoff(&[("x-consumer-username".into(), b"alice".to_vec())]));
        assert!(!may_carry_handoff(&[]));
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

//! The identity headers (BEHAVIOUR.md §B2): the names this filter writes, and which headers a client
//! must never be able to supply. A leaf: the request hides them from plugins, the identity sets
//! them.

pub const CONSUMER_ID: &str = "x-consumer-id";
pub const CONSUMER_CUSTOM_ID: &str = "x-consumer-custom-id";
pub const CONSUMER_USERNAME: &str = "x-consumer-username";
pub const CREDENTIAL_IDENTIFIER: &str = "x-credential-identifier";
pub const ANONYMOUS_CONSUMER: &str = "x-anonymous-consumer";
pub const CONSUMER_GROUPS: &str = "x-consumer-groups";

/// The headers this filter writes.
pub const MANAGED_HEADERS: [&str; 6] =
    [CONSUMER_ID, CONSUMER_CUSTOM_ID, CONSUMER_USERNAME, CREDENTIAL_IDENTIFIER, ANONYMOUS_CONSUMER, CONSUMER_GROUPS];

/// Identity headers a client must never be able to supply: every `X-Consumer-*`, plus these.
const SPOOFABLE_EXACT: [&str; 4] =
    [CREDENTIAL_IDENTIFIER, ANONYMOUS_CONSUMER, "x-authenticated-groups", "x-credential-username"];

pub fn is_spoofable(name: &str) -> bool {
    const PREFIX: &str = "x-consumer-";
    name.get(..PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
        || SPOOFABLE_EXACT.iter().any(|s| s.eq_ignore_ascii_case(name))
}

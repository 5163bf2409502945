//! Logical AND / OR (BEHAVIOUR.md §B3) with key-auth + basic-auth, in one filter instance and
//! split over two instances of one chain (which must give the same answers).

use crate::support::*;
use serde_json::Value;

const KEY_OK: &str = "alice-key";
const BASIC_BOB: (&str, &str) = ("bob-basic", "bob-pw");

fn request(key: Cred, basic_cred: Cred) -> Request {
    let mut r = Request::get("/");
    match key {
        Cred::Good => r = r.header("apikey", KEY_OK),
        Cred::Bad => r = r.header("apikey", "bad-key"),
        Cred::None => {}
    }
    match basic_cred {
        Cred::Good => r = r.header("authorization", &basic(BASIC_BOB.0, BASIC_BOB.1)),
        Cred::Bad => r = r.header("authorization", &basic(BASIC_BOB.0, "wrong")),
        Cred::None => {}
    }
    r
}

fn key_auth(anonymous: Option<&str>) -> Value {
    plugin_entry("key-auth", anonymous)
}

fn basic_auth(anonymous: Option<&str>) -> Value {
    plugin_entry("basic-auth", anonymous)
}

#[test]
fn or_skip_looks_at_the_credential_not_the_consumer() {
    // 1. key-auth falls back to anonymous; basic-auth still tries and replaces it completely
    let plugins = [key_auth(Some("anonymous_users")), basic_auth(Some("anonymous_users"))];
    let ex = both_ways(doc, &plugins, || request(Cred::None, Cred::Good));
    assert_upstream_as(&ex, "bob", Some("bob-basic"));
    assert_eq!(ex.upstream_header("x-anonymous-consumer"), None);
}

#[test]
fn or_with_several_valid_credentials_the_first_in_priority_wins() {
    // 2. listed basic-auth first; key-auth (1250) still runs before basic-auth (1100)
    let plugins = [basic_auth(Some("anonymous_users")), key_auth(Some("anonymous_users"))];
    let (mut h, f) = one(&doc(Value::Array(plugins.to_vec())));
    let ex = checked(h.send(&[f], request(Cred::Good, Cred::Good)));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    let ex = both_ways(doc, &[key_auth(Some("anonymous_users")), basic_auth(Some("anonymous_users"))], || {
        request(Cred::Good, Cred::Good)
    });
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

#[test]
fn and_with_all_valid_the_last_in_priority_sets_the_identity() {
    // 3.
    let ex = both_ways(doc, &[key_auth(None), basic_auth(None)], || request(Cred::Good, Cred::Good));
    assert_upstream_as(&ex, "bob", Some("bob-basic"));
}

#[test]
fn and_with_any_failure_the_first_failing_plugin_answers() {
    // 4.
    let plugins = [key_auth(None), basic_auth(None)];
    for (key, basic_cred, status, message, challenge) in [
        (Cred::None, Cred::None, 401, "No API key found in request", "Key"),
        (Cred::Bad, Cred::Good, 401, "Unauthorized", "Key"),
        (Cred::None, Cred::Good, 401, "No API key found in request", "Key"),
        (Cred::Good, Cred::None, 401, "Unauthorized", "Basic realm=\"service\""),
        (Cred::Good, Cred::Bad, 401, "Unauthorized", "Basic realm=\"service\""),
    ] {
        let ex = both_ways(doc, &plugins, || request(key, basic_cred));
        assert_refused(&ex, status, message);
        assert_eq!(ex.local_header("www-authenticate").as_deref(), Some(challenge), "{key:?} {basic_cred:?}");
    }
}

#[test]
fn or_with_all_failing_goes_upstream_as_anonymous() {
    // 5.
    let plugins = [key_auth(Some("anonymous_users")), basic_auth(Some("anonymous_users"))];
    for (key, basic_cred) in [(Cred::None, Cred::None), (Cred::Bad, Cred::Bad), (Cred::None, Cred::Bad)] {
        let ex = both_ways(doc, &plugins, || request(key, basic_cred));
        assert_upstream_as(&ex, "anonymous_users", None);
        assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ANON_ID));
        assert_eq!(ex.local_header("www-authenticate"), None);
    }
    // ... unless a later acl or consumer-scoped request-termination stops it
    let with_acl = [
        key_auth(Some("anonymous_users")),
        basic_auth(Some("anonymous_users")),
        json!({"name": "acl", "config": {"allow": ["admins"]}}),
    ];
    assert_refused(&both_ways(doc, &with_acl, || request(Cred::None, Cred::None)), 401, "Unauthorized");
    let terminated = [
        key_auth(Some("anonymous_users")),
        basic_auth(Some("anonymous_users")),
        json!({"name": "request-termination", "consumer": "anonymous_users", "config": {"status_code": 401, "message": "Authentication required"}}),
    ];
    let ex = both_ways(doc, &terminated, || request(Cred::None, Cred::None));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.body_str(), r#"{"message":"Authentication required"}"#);
    assert_upstream_as(&both_ways(doc, &terminated, || request(Cred::Good, Cred::None)), "alice", Some(ALICE_KEY_ID));
    assert_upstream_as(&both_ways(doc, &terminated, || request(Cred::None, Cred::Good)), "bob", Some("bob-basic"));
}

#[test]
fn mixed_and_plugins_are_mandatory_or_plugins_optional() {
    // 6. key-auth mandatory, basic-auth optional
    let plugins = [key_auth(None), basic_auth(Some("anonymous_users"))];
    assert_upstream_as(&both_ways(doc, &plugins, || request(Cred::Good, Cred::Good)), "alice", Some(ALICE_KEY_ID));
    assert_upstream_as(&both_ways(doc, &plugins, || request(Cred::Good, Cred::None)), "alice", Some(ALICE_KEY_ID));
    assert_refused(&both_ways(doc, &plugins, || request(Cred::None, Cred::Good)), 401, "No API key found in request");
    // key-auth optional, basic-auth mandatory
    let plugins = [key_auth(Some("anonymous_users")), basic_auth(None)];
    assert_upstream_as(&both_ways(doc, &plugins, || request(Cred::None, Cred::Good)), "bob", Some("bob-basic"));
    // an AND plugin after a successful OR plugin still runs, and its identity wins
    assert_upstream_as(&both_ways(doc, &plugins, || request(Cred::Good, Cred::Good)), "bob", Some("bob-basic"));
    let ex = both_ways(doc, &plugins, || request(Cred::Good, Cred::None));
    assert_refused(&ex, 401, "Unauthorized");
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("Basic realm=\"service\""));
}

#[test]
fn different_anonymous_values_the_last_fallback_decides() {
    // 7.
    let plugins = [key_auth(Some("anonymous_users")), basic_auth(Some("other_anonymous"))];
    let ex = both_ways(doc, &plugins, || request(Cred::None, Cred::None));
    assert_upstream_as(&ex, "other_anonymous", None);
    // basic-auth succeeds: no fallback of its own, its identity wins
    assert_upstream_as(&both_ways(doc, &plugins, || request(Cred::Bad, Cred::Good)), "bob", Some("bob-basic"));
}

#[test]
fn anonymous_by_id_and_by_username() {
    for reference in [ANON_ID, "anonymous_users"] {
        let ex = send(json!([key_auth(Some(reference))]), Request::get("/"));
        assert_upstream_as(&ex, "anonymous_users", None);
        assert_eq!(ex.upstream_header("x-consumer-id").as_deref(), Some(ANON_ID));
        assert_eq!(ex.upstream_header("x-credential-identifier"), None);
    }
}

#[test]
fn handoff_between_instances_is_a_property() {
    let mut h = host();
    let first = h.configure(&doc(json!([key_auth(None)]))).unwrap();
    let second = h.configure(&doc(json!([json!({"name": "acl", "config": {"allow": ["admins"]}})]))).unwrap();
    let ex = checked(h.send(&[first, second], request(Cred::Good, Cred::None)));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_header("x-consumer-groups").as_deref(), Some("admins"));
    // the second instance alone has no consumer: acl answers 401
    let ex = checked(h.send(&[second], request(Cred::Good, Cred::None)));
    assert_refused(&ex, 401, "Unauthorized");
}

/// The handoff property per host: Envoy (recognised by `xds.node`) reads back a single path
/// segment; Kong's ngx_wasm_module sets only host-namespace properties, and Kong keeps
/// `kong.ctx.shared.*` for the request (the harness, like Kong, has no `xds.node`).
#[test]
fn the_handoff_property_is_the_hosts() {
    for (envoy, property, other) in [
        (false, "kong.ctx.shared.consumer_auth_identity", "consumer_auth_identity"),
        (true, "consumer_auth_identity", "kong.ctx.shared.consumer_auth_identity"),
    ] {
        let mut h = if envoy { envoy_host() } else { kong_like_host() };
        let first = h.configure(&doc(json!([key_auth(None)]))).unwrap();
        let second = h.configure(&doc(json!([json!({"name": "acl", "config": {"allow": ["admins"]}})]))).unwrap();
        let ex = checked(h.send(&[first, second], request(Cred::Good, Cred::None)));
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
        let handed = ex.properties.get(property).unwrap_or_else(|| panic!("{property} not set: {:?}", ex.properties));
        assert!(String::from_utf8_lossy(handed).contains("alice"), "{property}");
        assert!(!ex.properties.contains_key(other), "{other} set too");
    }
}

/// Kong before 3.6 refuses to set `kong.ctx.shared.*`: a single instance still works (the
/// refused handoff is not an error), with one warning per VM; a later instance cannot see the
/// earlier identity and authenticates on its own (never more access).
#[test]
fn a_refused_handoff_is_not_fatal_on_kong() {
    let mut h = kong_like_host();
    h.refuse_property_set("kong.ctx.shared.consumer_auth_identity");
    let first = h.configure(&doc(json!([key_auth(None)]))).unwrap();
    for _ in 0..2 {
        let ex = checked(h.send(&[first], request(Cred::Good, Cred::None)));
        assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    }
    let warnings = h.logs().iter().filter(|l| l.message.contains("refused the kong.ctx.shared property")).count();
    assert_eq!(warnings, 1, "{:?}", h.logs());
    // the acl instance after it sees no consumer: 401, not alice's access
    let second = h.configure(&doc(json!([json!({"name": "acl", "config": {"allow": ["admins"]}})]))).unwrap();
    let ex = checked(h.send(&[first, second], request(Cred::Good, Cred::None)));
    assert_refused(&ex, 401, "Unauthorized");
}

/// Across instances the chain order is the order, whatever the plugins' priorities: acl in an
/// instance before the one that authenticates sees no consumer yet (BEHAVIOUR.md §B3).
#[test]
fn across_instances_the_chain_order_decides() {
    let mut h = host();
    let acl = h.configure(&doc(json!([json!({"name": "acl", "config": {"allow": ["admins"]}})]))).unwrap();
    let key = h.configure(&doc(json!([key_auth(None)]))).unwrap();
    let ex = checked(h.send(&[acl, key], request(Cred::Good, Cred::None)));
    assert_refused(&ex, 401, "Unauthorized");
    // in priority order (key-auth 1250 before acl 950) the same plugins let alice through
    let ex = checked(h.send(&[key, acl], request(Cred::Good, Cred::None)));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

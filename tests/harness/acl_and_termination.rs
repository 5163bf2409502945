//! acl (BEHAVIOUR.md §B9) and request-termination (BEHAVIOUR.md §B11) through the real .wasm.

use crate::support::*;
use serde_json::Value;

fn with_acl(acl: Value, anonymous: bool) -> Value {
    let key = if anonymous {
        json!({"name": "key-auth", "config": {"anonymous": "anonymous_users"}})
    } else {
        json!({"name": "key-auth"})
    };
    json!([key, {"name": "acl", "config": acl}])
}

fn as_user(key: &str) -> Request {
    Request::get("/").header("apikey", key)
}

#[test]
fn allow_list() {
    let plugins = with_acl(json!({"allow": ["admins", "ops"]}), true);
    let ex = send(plugins.clone(), as_user("alice-key"));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_header("x-consumer-groups").as_deref(), Some("admins"));
    let ex = send(plugins.clone(), as_user("carol-key"));
    assert_eq!(ex.upstream_header("x-consumer-groups").as_deref(), Some("dev, ops"), "all groups, joined");
    // authenticated, no groups: 403; anonymous, no groups: 401
    assert_refused(&send(plugins.clone(), as_user("bob-key")), 403, "You cannot consume this service");
    assert_refused(&send(plugins, Request::get("/")), 401, "Unauthorized");
    // authenticated, groups, none listed
    assert_refused(
        &send(with_acl(json!({"allow": ["nobody"]}), false), as_user("alice-key")),
        403,
        "You cannot consume this service",
    );
}

#[test]
fn deny_list() {
    let plugins = with_acl(json!({"deny": ["admins"]}), true);
    assert_refused(&send(plugins.clone(), as_user("alice-key")), 403, "You cannot consume this service");
    let ex = send(plugins.clone(), as_user("carol-key"));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.upstream_header("x-consumer-groups").as_deref(), Some("dev, ops"));
    // no groups: allowed, with an empty X-Consumer-Groups
    let ex = send(plugins.clone(), as_user("bob-key"));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.upstream_headers("x-consumer-groups"), vec![String::new()]);
    let ex = send(plugins, Request::get("/"));
    assert_upstream_as(&ex, "anonymous_users", None);
}

#[test]
fn group_names_are_exact_and_case_sensitive() {
    assert_eq!(send(with_acl(json!({"allow": ["Admins"]}), false), as_user("alice-key")).status(), 403);
    assert_eq!(send(with_acl(json!({"allow": ["admin"]}), false), as_user("alice-key")).status(), 403);
}

#[test]
fn no_consumer_at_all_is_401() {
    assert_refused(
        &send(json!([{"name": "acl", "config": {"allow": ["admins"]}}]), Request::get("/")),
        401,
        "Unauthorized",
    );
    assert_refused(
        &send(json!([{"name": "acl", "config": {"deny": ["admins"]}}]), Request::get("/")),
        401,
        "Unauthorized",
    );
}

#[test]
fn hide_groups_header_removes_spoofed_groups() {
    let plugins = with_acl(json!({"allow": ["admins"], "hide_groups_header": true}), false);
    let ex = send(plugins, as_user("alice-key").header("x-consumer-groups", "superusers"));
    assert_eq!(ex.status(), 200);
    assert_eq!(ex.upstream_header("x-consumer-groups"), None);
}

#[test]
fn termination_defaults() {
    let ex = send(json!([{"name": "request-termination"}]), Request::get("/"));
    assert_eq!(ex.status(), 503);
    assert_eq!(ex.body_str(), r#"{"message":"Service unavailable"}"#);
    assert_eq!(ex.local_header("content-type").as_deref(), Some("application/json; charset=utf-8"));
    for (status, text) in [
        (401, "Unauthorized"),
        (404, "Not found"),
        (405, "Method not allowed"),
        (500, "An unexpected error occurred"),
        (502, "Bad Gateway"),
    ] {
        let ex = send(json!([{"name": "request-termination", "config": {"status_code": status}}]), Request::get("/"));
        assert_eq!(ex.status(), status);
        assert_eq!(ex.body_str(), format!(r#"{{"message":"{text}"}}"#));
    }
    let ex = send(json!([{"name": "request-termination", "config": {"status_code": 418}}]), Request::get("/"));
    assert_eq!(ex.status(), 418);
    assert_eq!(ex.body_str(), "");
}

#[test]
fn termination_message_and_body() {
    let ex = send(
        json!([{"name": "request-termination", "config": {"status_code": 403, "message": "Go \"away\""}}]),
        Request::get("/"),
    );
    assert_eq!(ex.status(), 403);
    assert_eq!(ex.body_str(), r#"{"message":"Go \"away\""}"#);
    let ex = send(
        json!([{"name": "request-termination", "config": {"status_code": 200, "body": "<h1>maintenance</h1>", "content_type": "text/html"}}]),
        Request::get("/"),
    );
    assert_eq!(ex.status(), 200);
    assert!(ex.upstream.is_none());
    assert_eq!(ex.body_str(), "<h1>maintenance</h1>");
    assert_eq!(ex.local_header("content-type").as_deref(), Some("text/html"));
}

#[test]
fn termination_trigger() {
    let plugins = json!([{"name": "request-termination", "config": {"trigger": "x-kill"}}]);
    assert_eq!(send(plugins.clone(), Request::get("/")).status(), 200);
    assert_eq!(send(plugins.clone(), Request::get("/").header("X-Kill", "")).status(), 503);
    assert_eq!(send(plugins.clone(), Request::get("/?x-kill")).status(), 503);
    assert_eq!(send(plugins.clone(), Request::get("/?x-kill=1")).status(), 503);
    assert_eq!(send(plugins, Request::get("/?x-kill2=1")).status(), 200);
}

#[test]
fn consumer_scoped_termination_replaces_the_unscoped_entry() {
    let plugins = json!([
        {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
        {"name": "request-termination", "config": {"trigger": "x-maintenance", "status_code": 503}},
        {"name": "request-termination", "consumer": ANON_ID, "config": {"status_code": 401, "message": "Authentication required"}}
    ]);
    let ex = send(plugins.clone(), Request::get("/"));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.body_str(), r#"{"message":"Authentication required"}"#);
    // alice is not the scoped consumer: the unscoped entry applies
    assert_eq!(send(plugins.clone(), as_user("alice-key")).status(), 200);
    assert_eq!(send(plugins.clone(), as_user("alice-key").header("x-maintenance", "1")).status(), 503);
    // anonymous with the trigger: only the scoped entry applies
    assert_eq!(send(plugins, Request::get("/").header("x-maintenance", "1")).status(), 401);
}

#[test]
fn acl_runs_before_termination() {
    let plugins = json!([
        {"name": "request-termination", "consumer": "anonymous_users", "config": {"status_code": 401, "message": "Authentication required"}},
        {"name": "acl", "config": {"allow": ["admins"]}},
        {"name": "key-auth", "config": {"anonymous": "anonymous_users"}}
    ]);
    // acl (950) answers before request-termination (2)
    assert_refused(&send(plugins, Request::get("/")), 401, "Unauthorized");
}

#[test]
fn disabled_entries_do_not_run() {
    let plugins = json!([{"name": "request-termination", "enabled": false}, {"name": "key-auth", "enabled": false}]);
    assert_eq!(send(plugins, Request::get("/")).status(), 200);
}

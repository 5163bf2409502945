//! Error responses (BEHAVIOUR.md §B4) and anti-spoofing of identity headers (BEHAVIOUR.md §B2).

use crate::support::*;

fn key_auth() -> serde_json::Value {
    json!([{"name": "key-auth"}])
}

#[test]
fn accept_negotiation() {
    let cases = [
        (None, "application/json; charset=utf-8", r#"{"message":"No API key found in request","request_id":"abc-1"}"#),
        (Some("application/json"), "application/json; charset=utf-8", r#"{"message":"No API key found in request","request_id":"abc-1"}"#),
        (Some("*/*"), "application/json; charset=utf-8", r#"{"message":"No API key found in request","request_id":"abc-1"}"#),
        (Some("text/plain"), "text/plain; charset=utf-8", "No API key found in request\nrequest_id: abc-1\n"),
        (
            Some("application/xml"),
            "application/xml; charset=utf-8",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>No API key found in request</message>\n  <requestid>abc-1</requestid>\n</error>\n",
        ),
        (Some("text/html;q=0.4, application/xml;q=0.8"), "application/xml; charset=utf-8", ""),
        (Some("image/png"), "application/json; charset=utf-8", ""),
    ];
    for (accept, content_type, body) in cases {
        let mut req = Request::get("/").request_id(Some("abc-1"));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let ex = send(key_auth(), req);
        assert_eq!(ex.status(), 401);
        assert_eq!(ex.local_header("content-type").as_deref(), Some(content_type), "{accept:?}");
        if !body.is_empty() {
            assert_eq!(ex.body_str(), body, "{accept:?}");
        }
    }
    let ex = send(key_auth(), Request::get("/").request_id(Some("abc-1")).header("accept", "text/html"));
    assert_eq!(ex.local_header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let html = ex.body_str();
    assert!(html.contains("<p>No API key found in request.</p>") && html.contains("request_id: abc-1"), "{html}");
}

/// Kong's request id (3.5+, the `kong_request_id` nginx variable) is what Kong's error bodies
/// carry; there `request.id` is only the client's X-Request-Id. On Envoy (an `xds.node`
/// property), `request.id` is Envoy's own and the nginx variable is never asked for.
#[test]
fn request_id_comes_from_the_hosts_own_id() {
    let req = || Request::get("/").request_id(Some("host-request-id")).property("ngx.kong_request_id", b"kong-7");
    let mut kong = kong_like_host();
    let f = kong.configure(&doc(key_auth())).unwrap();
    let ex = checked(kong.send(&[f], req()));
    assert_eq!(ex.body_str(), r#"{"message":"No API key found in request","request_id":"kong-7"}"#);
    assert!(ex.logged("refused request_id=kong-7 "), "{:?}", ex.logs);

    let mut envoy = envoy_host();
    let f = envoy.configure(&doc(key_auth())).unwrap();
    let ex = checked(envoy.send(&[f], req()));
    assert_eq!(ex.body_str(), r#"{"message":"No API key found in request","request_id":"host-request-id"}"#);
    // request.id only (no x-request-id header in this request; no X-Consumer-ID: no handoff to read)
    assert_eq!(ex.host_call_count("proxy_get_property"), 1, "request.id only: {:?}", ex.host_calls);
}

#[test]
fn request_id_is_omitted_when_the_host_has_none() {
    let ex = send(key_auth(), Request::get("/").request_id(None));
    assert_eq!(ex.body_str(), r#"{"message":"No API key found in request"}"#);
}

const SPOOFED: [&str; 10] = [
    "x-consumer-id",
    "x-consumer-username",
    "x-consumer-custom-id",
    "x-credential-identifier",
    "x-anonymous-consumer",
    "x-consumer-groups",
    "x-authenticated-groups",
    "x-credential-username",
    "X-Consumer-Whatever",
    "X-CONSUMER-USERNAME",
];

/// Every identity header a client could forge, each with a value no consumer has.
fn spoofed(mut req: Request) -> Request {
    for name in SPOOFED {
        req = req.header(name, "forged");
    }
    req
}

fn assert_no_forged_value(ex: &Exchange) {
    let up = ex.upstream.as_ref().expect("went upstream");
    for (name, value) in &up.headers {
        assert_ne!(value.as_slice(), b"forged", "spoofed {name} reached the upstream");
    }
    for name in ["x-authenticated-groups", "x-credential-username", "x-consumer-whatever"] {
        assert_eq!(ex.upstream_header(name), None, "{name}");
    }
}

#[test]
fn spoofed_headers_on_the_authenticated_path() {
    let ex = send(key_auth(), spoofed(Request::get("/").header("apikey", "bob-key")));
    assert_upstream_as(&ex, "bob", ex.upstream_header("x-credential-identifier").as_deref());
    assert_ne!(ex.upstream_header("x-credential-identifier").as_deref(), Some("forged"));
    assert_eq!(ex.upstream_header("x-consumer-groups"), None);
    assert_eq!(ex.upstream_header("x-consumer-custom-id"), None);
    assert_no_forged_value(&ex);
}

#[test]
fn spoofed_headers_on_the_anonymous_path() {
    let ex =
        send(json!([{"name": "key-auth", "config": {"anonymous": "anonymous_users"}}]), spoofed(Request::get("/")));
    assert_upstream_as(&ex, "anonymous_users", None);
    assert_no_forged_value(&ex);
}

#[test]
fn spoofed_headers_on_the_preflight_bypass() {
    let ex = send(
        json!([{"name": "key-auth", "config": {"run_on_preflight": false}}]),
        spoofed(Request::new("OPTIONS", "/")),
    );
    assert_eq!(ex.status(), 200);
    assert_eq!(identity(&ex), [None, None, None, None, None, None]);
    assert_no_forged_value(&ex);
}

#[test]
fn spoofed_groups_with_hidden_groups_header() {
    let plugins =
        json!([{"name": "key-auth"}, {"name": "acl", "config": {"allow": ["admins"], "hide_groups_header": true}}]);
    let ex = send(plugins, spoofed(Request::get("/").header("apikey", "alice-key")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_header("x-consumer-groups"), None);
    assert_no_forged_value(&ex);
}

#[test]
fn spoofed_headers_with_no_plugins() {
    let ex = send(json!([]), spoofed(Request::get("/")));
    assert_eq!(identity(&ex), [None, None, None, None, None, None]);
    assert_no_forged_value(&ex);
}

#[test]
fn spoofed_headers_in_a_chain_of_instances() {
    let mut h = host();
    let first = h.configure(&doc(json!([{"name": "key-auth", "config": {"anonymous": "anonymous_users"}}]))).unwrap();
    let second =
        h.configure(&doc(json!([{"name": "basic-auth", "config": {"anonymous": "anonymous_users"}}]))).unwrap();
    let ex = checked(h.send(&[first, second], spoofed(Request::get("/"))));
    assert_upstream_as(&ex, "anonymous_users", None);
    assert_no_forged_value(&ex);
    // the second instance keeps what the first one wrote
    let ex = checked(h.send(&[first, second], spoofed(Request::get("/").header("apikey", "alice-key"))));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

/// The client's identity headers are gone before any plugin runs (BEHAVIOUR.md §B2), not only on the
/// way upstream: a request-termination triggered by such a header does not fire on a forged one,
/// and an hmac signature over one finds it missing. In a chain, a later instance sees what the
/// earlier one wrote.
#[test]
fn plugins_never_see_the_clients_identity_headers() {
    let terminate_on = |header: &str| {
        json!([
            {"name": "key-auth", "config": {"anonymous": "anonymous_users"}},
            {"name": "request-termination", "config": {"trigger": header, "status_code": 418}}
        ])
    };
    for header in ["x-consumer-username", "X-Consumer-Whatever", "x-anonymous-consumer", "x-credential-identifier"] {
        let ex = send(terminate_on(header), Request::get("/").header(header, "forged"));
        assert_eq!(ex.status(), 200, "{header}: a forged header triggered a plugin");
        assert_upstream_as(&ex, "anonymous_users", None);
        assert_no_forged_value(&ex);
    }
    // an ordinary trigger header still works
    assert_eq!(send(terminate_on("x-stop"), Request::get("/").header("x-stop", "1")).status(), 418);

    // a later instance in the chain sees the identity the first one established
    let mut h = host();
    let first = h.configure(&doc(json!([{"name": "key-auth", "config": {"anonymous": "anonymous_users"}}]))).unwrap();
    let second = h
        .configure(&doc(json!([{"name": "request-termination", "config": {"trigger": "x-anonymous-consumer"}}])))
        .unwrap();
    let ex = checked(h.send(&[first, second], Request::get("/")));
    assert_eq!(ex.status(), 503, "the anonymous consumer's header, written by the first instance");
    let ex = checked(h.send(&[first, second], Request::get("/").header("apikey", "alice-key")));
    assert_upstream_as(&ex, "alice", Some(ALICE_KEY_ID));
}

//! The Kong-specific cases of the real-host suite that ran the filter through nginx +
//! ngx_wasm_module until that host left the project (docs/KONG.md, "The model of Kong's host"),
//! now run in the harness's Kong mode (`kong_model()`): spoofed identity headers, hidden
//! credentials, chains of two instances, every plugin, rate limits across two workers (two VMs
//! sharing one store), the consumer store and its remote source, the walkthroughs, AND / OR.
//!
//! On Kong a header cannot be removed (the model forwards a "removed" one, as nginx did), so the
//! filter refuses (500, Kong's body) a request whose client-supplied identity headers it would
//! have to remove or that carries one twice, and blanks a hidden credential or an identity header
//! an earlier instance wrote. Whatever it does, no forged identity and no hidden key ever
//! reaches the upstream: that is what these tests check.

use std::time::Duration;

use crate::support::*;
use serde_json::Value;

const FAIL_CLOSED: &str = "An unexpected error occurred";

/// Identity headers (BEHAVIOUR.md §B2) besides every `X-Consumer-*`: those the filter sets, and
/// the spoofable ones it never sets.
const OTHER_IDENTITY: [&str; 4] =
    ["x-credential-identifier", "x-anonymous-consumer", "x-authenticated-groups", "x-credential-username"];

/// Forged identity headers a client might send (mixed case, one twice).
const SPOOFED: [(&str, &str); 9] = [
    ("X-Consumer-Username", "mallory"),
    ("X-Consumer-ID", "00000000-0000-0000-0000-000000000000"),
    ("X-Consumer-Custom-ID", "forged-custom"),
    ("X-Credential-Identifier", "forged-credential"),
    ("X-Anonymous-Consumer", "forged"),
    ("X-Consumer-Groups", "forged-admins"),
    ("X-Authenticated-Groups", "forged-admins"),
    ("x-consumer-username", "mallory-again"),
    ("X-Credential-Username", "forged-username"),
];

fn key_auth(config: Value) -> Value {
    json!({"name": "key-auth", "config": config})
}

fn basic_auth(config: Value) -> Value {
    json!({"name": "basic-auth", "config": config})
}

fn anonymous() -> Value {
    json!({"anonymous": "anonymous_users"})
}

fn instance(h: &mut Host, plugins: Value) -> FilterId {
    h.configure(&doc(plugins)).unwrap_or_else(|e| panic!("configuration refused: {e}"))
}

fn key(path: &str, key: &str) -> Request {
    Request::get(path).header("apikey", key)
}

fn basic_req(path: &str, user: &str, password: &str) -> Request {
    Request::get(path).header("authorization", &basic(user, password))
}

/// Identity headers (lowercase), each with all its values.
type Identity = std::collections::BTreeMap<String, Vec<String>>;

/// Who a request went upstream as: (username, credential); `None`: refused.
type Expected<'a> = Option<(&'a str, Option<&'a str>)>;

/// The identity headers the upstream received that say something (a blanked header says
/// nothing), each with all its values.
fn seen(ex: &Exchange) -> Identity {
    let mut seen = Identity::new();
    let headers = ex.upstream.as_ref().map(|u| u.headers.as_slice()).unwrap_or_default();
    for (name, value) in headers {
        if (name.starts_with("x-consumer-") || OTHER_IDENTITY.contains(&name.as_str())) && !value.is_empty() {
            seen.entry(name.clone()).or_default().push(String::from_utf8_lossy(value).into_owned());
        }
    }
    seen
}

/// Forwarded as `username` with `credential` (`None`: anonymous; `username` empty: nobody), and
/// no other identity.
fn assert_as(ex: &Exchange, username: &str, credential: Option<&str>) {
    assert_eq!(ex.status(), 200, "not forwarded: {} {}", ex.status(), ex.body_str());
    let got = seen(ex);
    let value = |name: &str| got.get(name).cloned().unwrap_or_default();
    let one = |v: Option<&str>| v.map(|v| vec![v.to_string()]).unwrap_or_default();
    let username = (!username.is_empty()).then_some(username);
    assert_eq!(value("x-consumer-username"), one(username), "{got:?}");
    assert_eq!(value("x-credential-identifier"), one(credential), "{got:?}");
    let anonymous = (username.is_some() && credential.is_none()).then_some("true");
    assert_eq!(value("x-anonymous-consumer"), one(anonymous), "{got:?}");
    assert_nothing_forged(ex);
}

/// No forged value is among the identity headers the upstream received.
fn assert_nothing_forged(ex: &Exchange) {
    for (name, values) in seen(ex) {
        for v in values {
            assert!(!SPOOFED.iter().any(|(_, forged)| v == *forged), "the forged {name}: {v} reached the upstream");
        }
    }
}

/// Refused because of the identity headers the request carries (Kong cannot strip them), with a
/// log line naming `header`, never its value.
fn assert_failed_closed(ex: &Exchange, header: Option<&str>) {
    assert_refused(ex, 500, FAIL_CLOSED);
    let line = ex.logs.iter().find(|l| l.message.contains("consumer-auth: refusing request"));
    let line = line.unwrap_or_else(|| panic!("no refusal line: {:?}", ex.logs)).message.to_ascii_lowercase();
    if let Some(h) = header {
        assert!(line.contains(&h.to_ascii_lowercase()), "{line}");
    }
    assert!(!SPOOFED.iter().any(|(_, v)| line.contains(&v.to_ascii_lowercase())), "a forged value logged: {line}");
}

#[test]
fn client_identity_headers_never_reach_the_upstream() {
    let mut h = kong_model();
    let key_route = instance(&mut h, json!([key_auth(json!({}))]));
    let anon_route = instance(&mut h, json!([key_auth(anonymous())]));
    let open_route = instance(&mut h, json!([{"name": "rate-limiting", "config": {"minute": 100_000}}]));
    // authenticated, anonymous, refused, no auth plugin: (route, request, expected (username,
    // credential); None: refused 401)
    let modes: [(FilterId, Request, Expected); 4] = [
        (key_route, key("/", "alice-key"), Some(("alice", Some(ALICE_KEY_ID)))),
        (anon_route, Request::get("/"), Some(("anonymous_users", None))),
        (key_route, key("/", "wrong"), None),
        (open_route, Request::get("/"), Some(("", None))),
    ];
    for (route, base, expected) in &modes {
        // every forged header alone, in three spellings: forwarded without it, or refused
        for (name, value) in SPOOFED {
            for spelling in [name.to_string(), name.to_ascii_lowercase(), name.to_ascii_uppercase()] {
                let ex = checked(h.send(&[*route], base.clone().header(&spelling, value)));
                match expected {
                    None => assert_refused(&ex, 401, "Unauthorized"),
                    Some(_) if ex.upstream.is_none() => assert_failed_closed(&ex, None),
                    Some((user, credential)) => assert_as(&ex, user, *credential),
                }
            }
        }
        // all of them at once (X-Consumer-Username twice)
        let mut all = base.clone();
        for (name, value) in SPOOFED {
            all = all.header(name, value);
        }
        let ex = checked(h.send(&[*route], all));
        match expected {
            None => assert_refused(&ex, 401, "Unauthorized"),
            Some(_) => assert_failed_closed(&ex, None),
        }
        // a header the filter sets, twice: the host cannot replace it, so it refuses
        let twice = base.clone().header("X-Consumer-ID", "evil-1").header("x-consumer-id", "evil-2");
        let ex = checked(h.send(&[*route], twice));
        match expected {
            None => assert_refused(&ex, 401, "Unauthorized"),
            Some(_) => assert_failed_closed(&ex, Some("x-consumer-id")),
        }
    }
    // What the filter can still do on Kong: a single header it sets is overwritten in place.
    let ex = checked(h.send(
        &[key_route],
        key("/", "alice-key").header("X-Consumer-ID", "evil").header("x-consumer-username", "mallory"),
    ));
    assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_headers("x-consumer-id"), [ALICE_ID]);
    let ex = checked(h.send(&[anon_route], Request::get("/").header("X-Credential-Identifier", "forged")));
    assert_failed_closed(&ex, Some("x-credential-identifier"));
    let ex = checked(h.send(&[key_route], key("/", "alice-key").header("X-Anonymous-Consumer", "evil")));
    assert_failed_closed(&ex, Some("x-anonymous-consumer"));
    let ex = checked(h.send(&[key_route], key("/", "alice-key").header("X-Consumer-Groups", "sekrit-admins")));
    assert!(!ex.logs.iter().any(|l| l.message.contains("sekrit")), "the forged value is never logged");
}

#[test]
fn hide_credentials_never_forwards_the_key() {
    let mut h = kong_model();
    let hide = json!({"hide_credentials": true});
    let hide_key = instance(&mut h, json!([key_auth(hide.clone())]));
    let hide_body = instance(&mut h, json!([key_auth(json!({"hide_credentials": true, "key_in_body": true}))]));
    let hide_basic = instance(&mut h, json!([basic_auth(hide.clone())]));
    let hide_or =
        instance(&mut h, json!([key_auth(json!({"hide_credentials": true, "anonymous": "anonymous_users"}))]));
    let keep = instance(&mut h, json!([key_auth(json!({}))]));
    let never_the_key = |ex: &Exchange| {
        let up = ex.upstream.as_ref().expect("forwarded");
        let all = format!("{} {:?} {}", up.path, up.headers, String::from_utf8_lossy(&up.body));
        assert!(!all.contains("alice-key"), "the key reached the upstream: {all}");
    };
    // header: authenticated, the key header arrives empty, in any casing
    for name in ["apikey", "APIKEY"] {
        let ex = checked(h.send(&[hide_key], Request::get("/").header(name, "alice-key")));
        assert_as(&ex, "alice", Some(ALICE_KEY_ID));
        never_the_key(&ex);
        assert_eq!(ex.upstream_headers("apikey"), [""]);
    }
    // a failed OR attempt still hides the key
    let ex = checked(h.send(&[hide_or], key("/", "wrong-key")));
    assert_as(&ex, "anonymous_users", None);
    assert!(!format!("{:?}", ex.upstream.as_ref().unwrap().headers).contains("wrong-key"));
    // the key twice: never forwarded
    let ex = checked(h.send(&[hide_key], key("/", "alice-key").header("apikey", "alice-key")));
    assert!(ex.upstream.is_none() && [401, 500].contains(&ex.status()), "{} {}", ex.status(), ex.body_str());
    // query: the key leaves the query, the rest stays
    let ex = checked(h.send(&[hide_key], Request::get("/hide?z=9&apikey=alice-key&a=1")));
    assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/hide?z=9&a=1");
    never_the_key(&ex);
    let ex = checked(h.send(&[hide_key], Request::get("/hide?apikey=alice-key")));
    assert_eq!(ex.upstream.as_ref().unwrap().path, "/hide");
    never_the_key(&ex);
    // body: a form key leaves the body
    let form = |body: &str| Request::post("/").header("content-type", "application/x-www-form-urlencoded").body(body);
    let ex = checked(h.send(&[hide_body], form("a=1&apikey=alice-key&b=2")));
    assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    never_the_key(&ex);
    assert_eq!(ex.upstream.as_ref().unwrap().body, b"a=1&b=2");
    // a body of unknown length (chunked): refused, never judged as empty nor forwarded
    let ex = checked(h.send(&[hide_body], form("a=1&apikey=alice-key").header("transfer-encoding", "chunked")));
    assert_refused(&ex, 500, FAIL_CLOSED);
    // basic-auth: the Authorization header never carries the credentials
    let ex = checked(h.send(&[hide_basic], basic_req("/", "alice-basic", "alice-pw")));
    assert_as(&ex, "alice", Some("alice-basic"));
    assert_eq!(ex.upstream_headers("authorization"), [""]);
    // without hide_credentials the key is forwarded
    let ex = checked(h.send(&[keep], key("/", "alice-key")));
    assert_eq!(ex.upstream_headers("apikey"), ["alice-key"]);
}

#[test]
fn the_chain_hands_the_identity_on() {
    let mut h = kong_model();
    let or_chain =
        [instance(&mut h, json!([key_auth(anonymous())])), instance(&mut h, json!([basic_auth(anonymous())]))];
    let acl_chain = [
        instance(&mut h, json!([key_auth(json!({}))])),
        instance(&mut h, json!([{"name": "acl", "config": {"allow": ["admins"]}}])),
    ];
    let and_chain = [instance(&mut h, json!([key_auth(json!({}))])), instance(&mut h, json!([basic_auth(json!({}))]))];
    // OR across the chain: key-auth authenticates, basic-auth skips
    assert_as(&checked(h.send(&or_chain, key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
    // anonymous, then basic-auth replaces it: X-Anonymous-Consumer blanked
    let ex = checked(h.send(&or_chain, basic_req("/", "bob-basic", "bob-pw")));
    assert_as(&ex, "bob", Some("bob-basic"));
    assert_eq!(ex.upstream_headers("x-anonymous-consumer"), [""]);
    // nobody: anonymous
    assert_as(&checked(h.send(&or_chain, Request::get("/"))), "anonymous_users", None);
    // AND across the chain: the second instance's credential wins, alice's custom id blanked
    let ex = checked(h.send(&and_chain, key("/", "alice-key").header("authorization", &basic("bob-basic", "bob-pw"))));
    assert_as(&ex, "bob", Some("bob-basic"));
    assert_eq!(ex.upstream_headers("x-consumer-custom-id"), [""]);
    assert_refused(&checked(h.send(&and_chain, key("/", "alice-key"))), 401, "Unauthorized");
    // acl in the second instance sees the first one's consumer (kong.ctx.shared)
    let ex = checked(h.send(&acl_chain, key("/", "alice-key")));
    assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_headers("x-consumer-groups"), ["admins"]);
    assert!(ex.properties.contains_key("kong.ctx.shared.consumer_auth_identity"), "{:?}", ex.properties);
    assert_refused(&checked(h.send(&acl_chain, key("/", "bob-key"))), 403, "You cannot consume this service");
    // a duplicated identity header through the chain: refused by the first instance
    for (name, a, b) in
        [("X-Consumer-ID", "evil-1", "evil-2"), ("X-Consumer-Username", "m1", "m2"), ("X-Anonymous-Consumer", "a", "b")]
    {
        for request in [key("/", "alice-key"), basic_req("/", "bob-basic", "bob-pw"), Request::get("/")] {
            let ex = checked(h.send(&or_chain, request.header(name, a).header(&name.to_ascii_lowercase(), b)));
            assert_failed_closed(&ex, Some(name));
        }
    }
}

#[test]
fn every_plugin_and_kongs_own_paths() {
    let mut h = kong_model();
    let key_only = instance(&mut h, json!([key_auth(json!({}))]));
    let basic_only = instance(&mut h, json!([basic_auth(json!({}))]));
    let with_hmac = |plugins: Value| json!({"consumers": crate::hmac_auth::consumers_with_hmac(), "plugins": plugins});
    let hmac = h.configure(&with_hmac(json!([{"name": "hmac-auth"}])).to_string()).unwrap();
    let hmac_body = h
        .configure(&with_hmac(json!([{"name": "hmac-auth", "config": {"validate_request_body": true}}])).to_string())
        .unwrap();
    let jwt = h
        .configure(&json!({"consumers": crate::jwt::consumers_with_jwt(), "plugins": [{"name": "jwt"}]}).to_string())
        .unwrap();
    let or = instance(&mut h, json!([key_auth(anonymous()), basic_auth(anonymous())]));
    let or_id = instance(&mut h, json!([key_auth(json!({"anonymous": OTHER_ANON_ID}))]));
    let and = instance(&mut h, json!([key_auth(json!({})), basic_auth(json!({}))]));
    let acl = instance(&mut h, json!([key_auth(anonymous()), {"name": "acl", "config": {"allow": ["admins"]}}]));
    let termination = instance(
        &mut h,
        json!([key_auth(anonymous()), {"name": "request-termination", "consumer": "anonymous_users",
               "config": {"status_code": 401, "message": "Authentication required"}}]),
    );
    h.configure(&json!({"store": {"name": "main", "consumers": consumers()}}).to_string()).unwrap();
    let store = h.configure(&json!({"consumer_store": "main", "plugins": [key_auth(json!({}))]}).to_string()).unwrap();

    // key-auth
    assert_as(&checked(h.send(&[key_only], key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
    let ex = checked(h.send(&[key_only], Request::get("/")));
    assert_refused(&ex, 401, "No API key found in request");
    assert_eq!(ex.local_header("www-authenticate").as_deref(), Some("Key"));
    assert_refused(&checked(h.send(&[key_only], key("/", "nope"))), 401, "Unauthorized");
    // basic-auth
    assert_as(&checked(h.send(&[basic_only], basic_req("/", "alice-basic", "alice-pw"))), "alice", Some("alice-basic"));
    assert_eq!(checked(h.send(&[basic_only], basic_req("/", "alice-basic", "wrong"))).status(), 401);
    // hmac-auth signs the path the client sent (`request.path`), not Kong's decoded `:path`
    assert_as(&checked(h.send(&[hmac], crate::hmac_auth::alice_get("/hmac"))), "alice", Some("alice-hmac"));
    let date = consumer_auth::time::http_date(NOW);
    let signed = |signed_path: &str, sent: &str| {
        let signing = format!("date: {date}\n@request-target: get {signed_path}");
        let sig = crate::hmac_auth::sign("hmac-sha256", crate::hmac_auth::ALICE_SECRET, &signing);
        let auth = crate::hmac_auth::authorization("alice-hmac", "hmac-sha256", "date @request-target", &sig);
        Request::get(sent).header("date", &date).header("authorization", &auth)
    };
    for target in ["/hmac/orders?page=2&q=a%20b", "/hmac/a%2Fb/../c%20d"] {
        let ex = checked(h.send(&[hmac], signed(target, target)));
        assert_as(&ex, "alice", Some("alice-hmac"));
        assert_eq!(ex.upstream.as_ref().unwrap().path, target, "Kong forwards the path as sent");
    }
    assert_eq!(checked(h.send(&[hmac], signed("/hmac/c d", "/hmac/c%20d"))).status(), 401);
    // with validate_request_body the body is judged in Kong's body callback
    let body = r#"{"order":42}"#;
    let digest = crate::hmac_auth::digest_of(body);
    let ex = checked(h.send(&[hmac_body], crate::hmac_auth::body_request(body, Some(&digest))));
    assert_as(&ex, "alice", Some("alice-hmac"));
    assert_eq!(ex.upstream.as_ref().unwrap().body, body.as_bytes());
    let ex = checked(h.send(&[hmac_body], crate::hmac_auth::body_request(r#"{"order":43}"#, Some(&digest))));
    assert_eq!(ex.status(), 401, "{}", ex.body_str());
    assert!(ex.upstream.is_none());
    // jwt: HS256; RS256 and ES256 accepted twice (the second from the token cache), forged refused
    let bearer = |token: &str| Request::get("/").header("authorization", &format!("Bearer {token}"));
    for alg in ["HS256", "RS256", "ES256"] {
        let key_id = crate::jwt::key_for(alg);
        let token = crate::jwt::token(alg, &key_id, json!({"exp": NOW + 600}));
        for _ in 0..2 {
            assert_as(&checked(h.send(&[jwt], bearer(&token))), "alice", Some(&key_id));
        }
        let (input, signature) = token.rsplit_once('.').unwrap();
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{input}.{first}{}", &signature[1..]);
        assert_refused(&checked(h.send(&[jwt], bearer(&forged))), 401, "Invalid signature");
    }
    assert_eq!(checked(h.send(&[jwt], bearer("x.y.z"))).status(), 401);
    // OR: key, basic, nobody (anonymous by username); anonymous by id
    assert_as(&checked(h.send(&[or], key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
    assert_as(&checked(h.send(&[or], basic_req("/", "bob-basic", "bob-pw"))), "bob", Some("bob-basic"));
    assert_as(&checked(h.send(&[or], Request::get("/"))), "anonymous_users", None);
    let ex = checked(h.send(&[or_id], Request::get("/")));
    assert_as(&ex, "other_anonymous", None);
    assert_eq!(ex.upstream_headers("x-consumer-id"), [OTHER_ANON_ID]);
    // AND: both, the last one's credential; one missing -> 401
    let both = key("/", "alice-key").header("authorization", &basic("bob-basic", "bob-pw"));
    assert_as(&checked(h.send(&[and], both)), "bob", Some("bob-basic"));
    assert_eq!(checked(h.send(&[and], key("/", "alice-key"))).status(), 401);
    // acl: admins pass with X-Consumer-Groups, others 403, anonymous 401
    let ex = checked(h.send(&[acl], key("/", "alice-key")));
    assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(ex.upstream_headers("x-consumer-groups"), ["admins"]);
    assert_refused(&checked(h.send(&[acl], key("/", "bob-key"))), 403, "You cannot consume this service");
    assert_refused(&checked(h.send(&[acl], Request::get("/"))), 401, "Unauthorized");
    // request-termination on the anonymous consumer
    assert_refused(&checked(h.send(&[termination], Request::get("/"))), 401, "Authentication required");
    assert_as(&checked(h.send(&[termination], key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
    // the refusal carries Kong's request id (ngx.kong_request_id), not the client's X-Request-Id,
    // in Kong's JSON body, and its log line the same
    let ex = checked(h.send(&[key_only], Request::get("/").header("x-request-id", "client-chosen")));
    assert_eq!(ex.local_header("content-type").as_deref(), Some("application/json; charset=utf-8"));
    let id = body_json(&ex)["request_id"].as_str().unwrap_or_default().to_string();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{}", ex.body_str());
    assert!(ex.logged(&format!("request_id={id}")), "{:?}", ex.logs);
    // the store from the configuration: the reader authenticates from shared data
    h.tick();
    let ex = checked(h.send(&[store], key("/", "alice-key")));
    assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    assert_eq!(checked(h.send(&[store], key("/", "nope"))).status(), 401);
}

/// Two nginx workers: each its own VM with `chain` configured in it; shared data (the shm_kv
/// zone) shared by both.
fn two_workers(h: &mut Host, chain: &[String]) -> [Vec<FilterId>; 2] {
    let mut worker = || {
        let first = h.configure_isolated(&chain[0]).unwrap();
        let mut ids = vec![first];
        ids.extend(chain[1..].iter().map(|c| h.configure_beside(first, c).unwrap()));
        ids
    };
    [worker(), worker()]
}

#[test]
fn rate_limits_are_exact_across_both_workers() {
    const LIMIT: usize = 20;
    let mut h = kong_model();
    let workers =
        two_workers(&mut h, &[doc(json!([key_auth(json!({})), {"name": "rate-limiting", "config": {"hour": LIMIT}}]))]);
    assert_ne!(workers[0][0].vm_index(), workers[1][0].vm_index());
    let mut passed = 0;
    for i in 0..LIMIT + 10 {
        let ex = checked(h.send(&workers[i % 2], key("/", "alice-key")));
        if ex.status() == 200 {
            passed += 1;
        } else {
            assert_refused(&ex, 429, "API rate limit exceeded");
        }
    }
    assert_eq!(passed, LIMIT);
    // Kong's rate-limiting headers on the upstream's response; another consumer's own budget
    let ex = checked(h.send(&workers[1], key("/", "carol-key")));
    assert_eq!(ex.response_header("x-ratelimit-limit-hour"), Some(LIMIT.to_string()));
    assert_eq!(ex.response_header("x-ratelimit-remaining-hour"), Some((LIMIT - 1).to_string()));
    assert_eq!(checked(h.send(&workers[0], key("/", "bob-key"))).status(), 200);
}

/// The consumer store filled from a remote source (`dispatch_http_call` to `host:port`, the
/// document read whole), shared by both workers; a new document replaces the consumers; a
/// failed call is reported by the host.
#[test]
fn the_store_from_a_remote_source() {
    let mut h = kong_model();
    let loader = json!({"store": {"name": "main", "source": {
        "upstream": "127.0.0.1:9000", "authority": "consumers.internal",
        "path": "/consumers.json", "refresh_seconds": 10, "timeout_ms": 5000}}})
    .to_string();
    let reader = json!({"consumer_store": "main", "plugins": [key_auth(json!({}))]}).to_string();
    let workers = two_workers(&mut h, &[loader, reader]);
    let broken = json!({"store": {"name": "broken", "source": {
        "upstream": "127.0.0.1:9001", "path": "/consumers.json", "refresh_seconds": 10, "timeout_ms": 5000}}});
    h.configure(&broken.to_string()).unwrap();
    let document = |names: &[&str]| {
        let all = consumers();
        let picked: Vec<Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| names.contains(&c["username"].as_str().unwrap()))
            .cloned()
            .collect();
        json!({"consumers": picked}).to_string().into_bytes()
    };
    let fetch = |h: &mut Host, names: &[&str]| {
        h.advance(Duration::from_secs(10));
        h.tick();
        let calls = h.pending_http_calls();
        let main: Vec<_> = calls.iter().filter(|c| c.upstream == "127.0.0.1:9000").collect();
        assert_eq!(main.len(), 1, "one fetch per period for both workers: {calls:?}");
        assert_eq!(main[0].header(":path").as_deref(), Some("/consumers.json"));
        assert_eq!(main[0].header(":authority").as_deref(), Some("consumers.internal"));
        h.reply_http_call(main[0].token, 200, &[], &document(names));
        for c in calls.iter().filter(|c| c.upstream == "127.0.0.1:9001") {
            h.fail_http_call_because(c.token, "broken connection");
        }
    };
    let reader_of = |w: usize| [workers[w][1]];
    fetch(&mut h, &["alice", "anonymous_users"]);
    for w in 0..2 {
        assert_as(&checked(h.send(&reader_of(w), key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
        assert_eq!(checked(h.send(&reader_of(w), key("/", "bob-key"))).status(), 401);
    }
    // a new document: bob in, alice out
    fetch(&mut h, &["bob", "anonymous_users"]);
    for w in 0..2 {
        assert_eq!(checked(h.send(&reader_of(w), key("/", "bob-key"))).status(), 200);
        assert_eq!(checked(h.send(&reader_of(w), key("/", "alice-key"))).status(), 401);
    }
    // the failed call was reported by the host at once, not given up on after timeout_ms + 5 s
    assert!(h
        .logs()
        .iter()
        .any(|l| l.message.contains("store 'broken': fetch failed: no answer (timeout, connection")));
    assert!(!h.logs().iter().any(|l| l.message.contains("no answer within the timeout")));
    assert!(h.vm_failure().is_none(), "{:?}", h.vm_failure());
}

/// The same requests and expectations on either host (Envoy, the Kong model).
#[test]
fn the_walkthrough_runs_alike_on_envoy_and_kong() {
    let termination = json!({"name": "request-termination", "consumer": "anonymous_users",
                             "config": {"status_code": 401, "message": "Authentication required"}});
    for kong in [false, true] {
        let mut h = if kong { kong_model() } else { envoy_host() };
        let walk = [instance(&mut h, json!([key_auth(anonymous()), basic_auth(anonymous()), termination]))];
        let split =
            [instance(&mut h, json!([key_auth(anonymous())])), instance(&mut h, json!([basic_auth(anonymous())]))];
        assert_refused(&checked(h.send(&walk, Request::get("/"))), 401, "Authentication required");
        assert_as(&checked(h.send(&walk, key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
        assert_as(&checked(h.send(&walk, basic_req("/", "bob-basic", "bob-pw"))), "bob", Some("bob-basic"));
        assert_as(&checked(h.send(&split, key("/", "alice-key"))), "alice", Some(ALICE_KEY_ID));
        assert_as(&checked(h.send(&split, Request::get("/"))), "anonymous_users", None);
        // a forged X-Consumer-Username never reaches the upstream as such
        let ex = checked(h.send(&walk, key("/", "alice-key").header("X-Consumer-Username", "mallory")));
        assert_as(&ex, "alice", Some(ALICE_KEY_ID));
    }
}

/// The `make demo` walkthrough (Kong's anonymous-access docs, then hmac-auth and jwt; its routes
/// as in e2e/src/demo.rs), step by step in the Kong model, two workers taking turns.
#[test]
fn the_demo_walkthrough_passes_on_kong() {
    let mut consumers = crate::jwt::consumers_with_jwt();
    consumers[0]["hmacauth_credentials"] =
        json!([{"username": "alice-hmac", "secret": crate::hmac_auth::ALICE_SECRET}]);
    let route = |plugins: Value| json!({"consumers": consumers, "plugins": plugins}).to_string();
    let or_plugins = json!([key_auth(anonymous()), basic_auth(anonymous())]);
    let mut terminated = or_plugins.clone();
    terminated.as_array_mut().unwrap().push(json!({"name": "request-termination", "consumer": "anonymous_users",
        "config": {"status_code": 401, "message": "Authentication required"}}));
    let routes = [
        ("/key", route(json!([key_auth(json!({}))]))),
        ("/anon", route(json!([key_auth(anonymous())]))),
        ("/and", route(json!([key_auth(json!({})), basic_auth(json!({}))]))),
        ("/or", route(or_plugins)),
        ("/or-terminated", route(terminated)),
        (
            "/limited",
            route(json!([key_auth(anonymous()), {"name": "rate-limiting", "config": {"minute": 100}},
                {"name": "rate-limiting", "consumer": "anonymous_users", "config": {"minute": 5}}])),
        ),
        ("/hmac", route(json!([{"name": "hmac-auth"}]))),
        ("/jwt", route(json!([{"name": "jwt", "config": {"claims_to_verify": ["exp"]}}]))),
    ];
    let mut h = kong_model();
    let docs: Vec<String> = routes.iter().map(|(_, d)| d.clone()).collect();
    let workers = two_workers(&mut h, &docs);
    let route_of = |worker: usize, path: &str| {
        let i = routes.iter().position(|(p, _)| *p == path).unwrap();
        [workers[worker][i]]
    };
    let alice_key = || key("/", "alice-key");
    let alice_basic = || basic_req("/", "alice-basic", "alice-pw");
    let both = || alice_key().header("authorization", &basic("alice-basic", "alice-pw"));
    let token = crate::jwt::token("HS256", &crate::jwt::key_for("HS256"), json!({"exp": NOW + 3600}));
    // (route, request, expected: Ok((username, credential)) or Err((status, message)))
    type Expect = Result<(&'static str, Option<&'static str>), (u16, &'static str)>;
    let mut steps: Vec<(&str, Request, Expect)> = vec![
        ("/key", Request::get("/"), Err((401, "No API key found in request"))),
        ("/key", alice_key(), Ok(("alice", Some(ALICE_KEY_ID)))),
        ("/anon", Request::get("/"), Ok(("anonymous_users", None))),
        ("/anon", alice_key(), Ok(("alice", Some(ALICE_KEY_ID)))),
        ("/and", Request::get("/"), Err((401, "No API key found in request"))),
        ("/and", alice_key(), Err((401, "Unauthorized"))),
        ("/and", alice_basic(), Err((401, "No API key found in request"))),
        ("/and", both(), Ok(("alice", Some("alice-basic")))),
        ("/or", Request::get("/"), Ok(("anonymous_users", None))),
        ("/or", alice_key(), Ok(("alice", Some(ALICE_KEY_ID)))),
        ("/or", alice_basic(), Ok(("alice", Some("alice-basic")))),
        ("/or", both(), Ok(("alice", Some(ALICE_KEY_ID)))),
        ("/or-terminated", Request::get("/"), Err((401, "Authentication required"))),
        ("/or-terminated", alice_key(), Ok(("alice", Some(ALICE_KEY_ID)))),
        ("/or-terminated", alice_basic(), Ok(("alice", Some("alice-basic")))),
    ];
    for _ in 0..5 {
        steps.push(("/limited", Request::get("/"), Ok(("anonymous_users", None))));
    }
    steps.push(("/limited", Request::get("/"), Err((429, "API rate limit exceeded"))));
    steps.push(("/limited", alice_key(), Ok(("alice", Some(ALICE_KEY_ID)))));
    steps.push(("/hmac", Request::get("/hmac"), Err((401, "Unauthorized"))));
    steps.push(("/hmac", crate::hmac_auth::alice_get("/hmac"), Ok(("alice", Some("alice-hmac")))));
    steps.push(("/jwt", Request::get("/"), Err((401, "Unauthorized"))));
    steps.push((
        "/jwt",
        Request::get("/").header("authorization", &format!("Bearer {token}")),
        Ok(("alice", Some("alice-issuer"))),
    ));
    assert_eq!(steps.len(), 26, "the demo's 26 steps");
    for (n, (path, request, expect)) in steps.into_iter().enumerate() {
        let ex = checked(h.send(&route_of(n % 2, path), request));
        match expect {
            Ok((user, credential)) => assert_as(&ex, user, credential),
            Err((status, message)) => assert_refused(&ex, status, message),
        }
    }
}

/// AND / OR (BEHAVIOUR.md §B3), key-auth + basic-auth in every mode and every credential
/// combination, in one instance and across a chain of two (the kong.ctx.shared handoff): the
/// Kong model answers as Envoy does (tests/harness/and_or.rs checks Envoy against Kong's rules).
/// Without forged headers: on Kong those are refused (`client_identity_headers_never_reach_the_upstream`).
#[test]
fn and_or_on_kong_answers_as_on_envoy() {
    let modes: [(Option<&str>, Option<&str>); 5] = [
        (None, None),
        (Some("anonymous_users"), Some("anonymous_users")),
        (Some(ANON_ID), Some("other_anonymous")),
        (Some("anonymous_users"), None),
        (None, Some(OTHER_ANON_ID)),
    ];
    let creds = [Cred::None, Cred::Good, Cred::Bad];
    for (key_anon, basic_anon) in modes {
        let plugins = [plugin_entry("key-auth", key_anon), plugin_entry("basic-auth", basic_anon)];
        let mut envoy = envoy_host();
        let reference = envoy.configure(&doc(json!(plugins))).unwrap();
        let mut kong = kong_model();
        let single = kong.configure(&doc(json!(plugins))).unwrap();
        let split =
            [kong.configure(&doc(json!([plugins[0]]))).unwrap(), kong.configure(&doc(json!([plugins[1]]))).unwrap()];
        for k in creds {
            for b in creds {
                let request = || {
                    let mut r = Request::get("/?q=1");
                    match k {
                        Cred::Good => r = r.header("apikey", "alice-key"),
                        Cred::Bad => r = r.header("apikey", "bad-key"),
                        Cred::None => {}
                    }
                    match b {
                        Cred::Good => r = r.header("authorization", &basic("bob-basic", "bob-pw")),
                        Cred::Bad => r = r.header("authorization", &basic("bob-basic", "wrong")),
                        Cred::None => {}
                    }
                    r
                };
                let want = kong_view(&checked(envoy.send(&[reference], request())));
                let what = format!("key {key_anon:?} {k:?}, basic {basic_anon:?} {b:?}");
                assert_eq!(kong_view(&checked(kong.send(&[single], request()))), want, "one instance: {what}");
                assert_eq!(kong_view(&checked(kong.send(&split, request()))), want, "two instances: {what}");
            }
        }
    }
}

/// What a client and the upstream observe: the refusal's message (its request id is each
/// host's own), the challenge, the identity (blanked headers say nothing).
fn kong_view(ex: &Exchange) -> (u16, String, Option<String>, Identity) {
    let refusal = if ex.upstream.is_some() { String::new() } else { message(ex) };
    (ex.status(), refusal, ex.local_header("www-authenticate"), seen(ex))
}

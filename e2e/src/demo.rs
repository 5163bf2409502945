//! The `make demo` scenario: the anonymous-access walkthrough of Kong's authentication docs,
//! then hmac-auth and jwt, on one Envoy listener with one route per step. `envoy/demo.yaml` is
//! rendered from [`bootstrap`] (a test checks the checked-in file is up to date).

use std::io::Write;

use serde_json::{json, Value};

use crate::bootstrap::Bootstrap;
use crate::clients::{hmac_signed, hs256_jwt, now};
use crate::fixtures::{consumers_json, plugin, ALICE, ANONYMOUS, IDENTITY_HEADERS};
use crate::http::{Request, Response};

pub const LISTENER_PORT: u16 = 8000;
pub const ADMIN_PORT: u16 = 9901;
pub const UPSTREAM_PORT: u16 = 18080;
/// Relative to the workspace root (Envoy's working directory in the demo).
pub const DEMO_YAML: &str = "envoy/demo.yaml";
pub const DEMO_WASM: &str = "filters/consumer_auth.wasm";

fn instance(plugins: Value) -> Value {
    json!({ "consumers": consumers_json(&[&ALICE, &ANONYMOUS]), "plugins": plugins })
}

fn or_plugins() -> Vec<Value> {
    vec![
        plugin("key-auth", json!({ "anonymous": ANONYMOUS.username })),
        plugin("basic-auth", json!({ "anonymous": ANONYMOUS.username })),
    ]
}

/// The demo's routes on the given ports and filter.
pub fn bootstrap(listener_port: u16, admin_port: u16, upstream_port: u16, wasm: &str) -> Bootstrap {
    let mut terminated = or_plugins();
    terminated.push(json!({
        "name": "request-termination",
        "consumer": ANONYMOUS.username,
        "config": { "status_code": 401, "message": "Authentication required" }
    }));
    let mut b = Bootstrap::new_unchecked(upstream_port, wasm)
        .route("/key", [instance(json!([plugin("key-auth", json!({}))]))])
        .route("/anon", [instance(json!([plugin("key-auth", json!({ "anonymous": ANONYMOUS.username }))]))])
        .route("/and", [instance(json!([plugin("key-auth", json!({})), plugin("basic-auth", json!({}))]))])
        .route("/or", [instance(Value::Array(or_plugins()))])
        .route("/or-terminated", [instance(Value::Array(terminated))])
        .route(
            "/limited",
            [instance(json!([
                plugin("key-auth", json!({ "anonymous": ANONYMOUS.username })),
                plugin("rate-limiting", json!({ "minute": 100 })),
                { "name": "rate-limiting", "consumer": ANONYMOUS.username, "config": { "minute": 5 } }
            ]))],
        )
        .route("/hmac", [instance(json!([plugin("hmac-auth", json!({}))]))])
        .route("/jwt", [instance(json!([plugin("jwt", json!({ "claims_to_verify": ["exp"] }))]))]);
    b.listener_port = listener_port;
    b.admin_port = admin_port;
    b.pretty_configs = true;
    b
}

/// The text of `envoy/demo.yaml`.
pub fn demo_yaml() -> String {
    let body = bootstrap(LISTENER_PORT, ADMIN_PORT, UPSTREAM_PORT, DEMO_WASM).to_yaml();
    format!(
        "# The `make demo` bootstrap: listener 127.0.0.1:{LISTENER_PORT}, admin 127.0.0.1:{ADMIN_PORT}, echo upstream\n\
         # 127.0.0.1:{UPSTREAM_PORT}; one route per step of the walkthrough, each with its own consumer-auth\n\
         # filter instance (disabled in http_filters, enabled per route). Start Envoy from the repository root.\n\
         # GENERATED from e2e/src/demo.rs, do not edit: cargo run -q -p consumer-auth-e2e --bin demo -- --print-config > {DEMO_YAML}\n\
         {body}"
    )
}

pub enum Expect {
    /// Answered by the filter, never forwarded.
    Rejected { status: u16, message: &'static str },
    /// Forwarded as this consumer; `credential: None` means the anonymous consumer.
    Consumer { username: &'static str, credential: Option<&'static str> },
}

pub struct Step {
    pub title: String,
    pub request: Request,
    pub expect: Expect,
    /// Response headers the client must see (rate-limiting's).
    pub response_headers: Vec<(&'static str, String)>,
}

fn step(title: &str, request: Request, expect: Expect) -> Step {
    Step { title: title.to_string(), request, expect, response_headers: Vec::new() }
}

impl Step {
    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Step {
        self.response_headers.push((name, value.into()));
        self
    }
}

fn rejected(status: u16, message: &'static str) -> Expect {
    Expect::Rejected { status, message }
}

fn as_alice(credential: &'static str) -> Expect {
    Expect::Consumer { username: ALICE.username, credential: Some(credential) }
}

fn anonymous() -> Expect {
    Expect::Consumer { username: ANONYMOUS.username, credential: None }
}

/// The walkthrough, in order.
pub fn steps() -> Vec<Step> {
    let key = |path: &str| Request::get(path).header("apikey", ALICE.key());
    let basic = |path: &str| Request::get(path).basic(ALICE.basic_user(), ALICE.basic_password());
    let both = |path: &str| key(path).basic(ALICE.basic_user(), ALICE.basic_password());
    let (key_id, basic_id) = (ALICE.key_id(), ALICE.basic_user());
    let mut steps = vec![
        step("1. key-auth, no key", Request::get("/key"), rejected(401, "No API key found in request")),
        step("2. key-auth, alice's key", key("/key"), as_alice(key_id)),
        step("3. key-auth with anonymous = anonymous_users, no key", Request::get("/anon"), anonymous()),
        step("3. key-auth with anonymous = anonymous_users, alice's key", key("/anon"), as_alice(key_id)),
        step(
            "4. AND (key-auth + basic-auth), no credential",
            Request::get("/and"),
            rejected(401, "No API key found in request"),
        ),
        step("4. AND, key only", key("/and"), rejected(401, "Unauthorized")),
        step("4. AND, basic only", basic("/and"), rejected(401, "No API key found in request")),
        step(
            "4. AND, key and basic: both run, the last (basic-auth) sets the identity",
            both("/and"),
            as_alice(basic_id),
        ),
        step("4. OR (both with anonymous), no credential", Request::get("/or"), anonymous()),
        step("4. OR, key only", key("/or"), as_alice(key_id)),
        step("4. OR, basic only", basic("/or"), as_alice(basic_id)),
        step("4. OR, key and basic: the first in priority order (key-auth) wins", both("/or"), as_alice(key_id)),
        step(
            "5. OR + request-termination for anonymous_users, no credential",
            Request::get("/or-terminated"),
            rejected(401, "Authentication required"),
        ),
        step("5. OR + request-termination, key only", key("/or-terminated"), as_alice(key_id)),
        step("5. OR + request-termination, basic only", basic("/or-terminated"), as_alice(basic_id)),
    ];
    // 6. Why anonymous access exists: anonymous users get a low rate limit (5 a minute),
    //    authenticated ones a higher one (100).
    for remaining in (0..5).rev() {
        steps.push(
            step(
                &format!("6. rate-limiting: anonymous, 5 a minute ({} left after this one)", remaining),
                Request::get("/limited"),
                anonymous(),
            )
            .with_header("x-ratelimit-limit-minute", "5")
            .with_header("x-ratelimit-remaining-minute", remaining.to_string()),
        );
    }
    steps.push(
        step(
            "6. rate-limiting: anonymous, the 6th in the minute",
            Request::get("/limited"),
            rejected(429, "API rate limit exceeded"),
        )
        .with_header("x-ratelimit-remaining-minute", "0"),
    );
    steps.push(
        step("6. rate-limiting: alice has her own, higher limit", key("/limited"), as_alice(key_id))
            .with_header("x-ratelimit-limit-minute", "100")
            .with_header("x-ratelimit-remaining-minute", "99"),
    );
    // 7. hmac-auth: a request signed (HMAC-SHA256 of its Date and request target) with alice's
    //    hmac secret; the Date is now (the filter accepts 300 s of clock skew).
    let signed =
        hmac_signed(Request::get("/hmac"), ALICE.hmac_user(), ALICE.hmac_secret(), "date @request-target", now());
    steps.push(step("7. hmac-auth, unsigned", Request::get("/hmac"), rejected(401, "Unauthorized")));
    steps.push(step("7. hmac-auth, signed with alice's hmac secret", signed, as_alice(ALICE.hmac_user())));
    // 8. jwt: an HS256 token naming alice's jwt key in `iss`, expiring in an hour.
    let token = hs256_jwt(ALICE.jwt_key(), ALICE.jwt_secret(), now() + 3600);
    steps.push(step("8. jwt, no token", Request::get("/jwt"), rejected(401, "Unauthorized")));
    steps.push(step(
        "8. jwt, an HS256 token signed with alice's jwt secret",
        Request::get("/jwt").header("Authorization", &format!("Bearer {token}")),
        as_alice(ALICE.jwt_key()),
    ));
    steps
}

/// Why `response` is not what `expect` says (`None`: it is).
pub fn check(expect: &Expect, response: &Response) -> Option<String> {
    match expect {
        Expect::Rejected { status, message } => {
            if response.status != *status {
                return Some(format!("expected status {status}, got {}", response.status));
            }
            if response.upstream().is_some() {
                return Some("the request reached the upstream".into());
            }
            let got = serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string));
            (got.as_deref() != Some(message)).then(|| format!("expected message {message:?}, got {got:?}"))
        }
        Expect::Consumer { username, credential } => {
            if response.status != 200 {
                return Some(format!("expected status 200, got {}", response.status));
            }
            let Some(up) = response.upstream() else { return Some("the request did not reach the upstream".into()) };
            let wanted = [
                ("x-consumer-username", Some(*username)),
                ("x-credential-identifier", *credential),
                ("x-anonymous-consumer", credential.is_none().then_some("true")),
            ];
            for (name, value) in wanted {
                let got = up.all(name);
                let want: Vec<&str> = value.into_iter().collect();
                if got != want {
                    return Some(format!("upstream {name}: expected {want:?}, got {got:?}"));
                }
            }
            None
        }
    }
}

/// Run the walkthrough against `port`, printing each step; true if every step gave the
/// expected answer.
pub fn walkthrough(port: u16, out: &mut dyn Write) -> bool {
    let mut failed = 0;
    for step in steps() {
        let _ = writeln!(out, "\n== {}", step.title);
        let _ = writeln!(out, "$ {}", step.request.curl(port));
        let verdict = match step.request.try_send(port) {
            Ok(response) => {
                print_response(&response, out);
                check(&step.expect, &response).or_else(|| {
                    step.response_headers.iter().find_map(|(name, want)| {
                        let got = response.header(name);
                        (got != Some(want.as_str())).then(|| format!("response {name}: expected {want:?}, got {got:?}"))
                    })
                })
            }
            Err(e) => Some(format!("request failed: {e}")),
        };
        match verdict {
            None => {
                let _ = writeln!(out, "   ok");
            }
            Some(why) => {
                failed += 1;
                let _ = writeln!(out, "   UNEXPECTED: {why}");
            }
        }
    }
    let total = steps().len();
    let _ = writeln!(out, "\n{} of {total} steps gave the expected answer", total - failed);
    failed == 0
}

fn print_response(response: &Response, out: &mut dyn Write) {
    let _ = writeln!(out, "<- {}", response.status);
    for name in ["x-ratelimit-limit-minute", "x-ratelimit-remaining-minute", "ratelimit-reset", "retry-after"] {
        if let Some(v) = response.header(name) {
            let _ = writeln!(out, "   {name}: {v}");
        }
    }
    match response.upstream() {
        Some(up) => {
            let _ =
                writeln!(out, "   forwarded to the upstream as {} {}; identity headers it saw:", up.method, up.path);
            let mut any = false;
            for (name, value) in &up.headers {
                if IDENTITY_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    any = true;
                    let _ = writeln!(out, "     {name}: {value}");
                }
            }
            if !any {
                let _ = writeln!(out, "     (none)");
            }
        }
        None => {
            for name in ["www-authenticate", "content-type"] {
                if let Some(v) = response.header(name) {
                    let _ = writeln!(out, "   {name}: {v}");
                }
            }
            let _ = writeln!(out, "   {}", response.text().trim_end());
        }
    }
}

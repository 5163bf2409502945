//! Logs operators can run on: one refusal line per refused request at the configured level, and
//! never a key, password, signature, token or secret in any log line at any level.

use crate::support::*;
use base64::Engine;
use proxy_wasm_harness::LogLevel;

const NOW: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const KEY: &str = "S3CRET-API-KEY-0001";
const PASSWORD: &str = "S3CRET-PASSWORD-0002";
const HMAC_SECRET: &str = "S3CRET-HMAC-0003";
const JWT_SECRET: &str = "S3CRET-JWT-0004";

fn jwt(secret: &str) -> String {
    let head = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64url(br#"{"iss":"dora-issuer","sub":"x"}"#);
    let signature = b64url(&hmac_sha256(secret, &format!("{head}.{claims}")));
    format!("{head}.{claims}.{signature}")
}

fn config() -> String {
    json!({
        "consumers": [{
            "username": "dora",
            "keyauth_credentials": [{"key": KEY}],
            "basicauth_credentials": [{"username": "dora-basic", "password": PASSWORD}],
            "hmacauth_credentials": [{"username": "dora-hmac", "secret": HMAC_SECRET}],
            "jwt_secrets": [{"key": "dora-issuer", "algorithm": "HS256", "secret": JWT_SECRET}]
        }],
        "plugins": [
            {"name": "jwt"}, {"name": "key-auth"}, {"name": "basic-auth"}, {"name": "hmac-auth"}
        ]
    })
    .to_string()
}

#[test]
fn no_secret_in_any_log_line_at_any_level() {
    let mut h = host();
    h.set_log_level(LogLevel::Trace);
    let f = h.configure(&config()).unwrap();
    let token = jwt(JWT_SECRET);
    let forged = jwt("not-the-secret");
    let signature = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(HMAC_SECRET, &format!("date: {NOW}")));
    let hmac_header =
        |sig: &str| format!(r#"hmac username="dora-hmac", algorithm="hmac-sha256", headers="date", signature="{sig}""#);
    let basic_header = basic("dora-basic", PASSWORD);
    let wrong_basic = basic("dora-basic", &format!("{PASSWORD}x"));
    let requests = vec![
        // every credential valid: passes (AND of four plugins)
        Request::get("/")
            .header("authorization", &format!("Bearer {token}"))
            .header("apikey", KEY)
            .header("proxy-authorization", &basic_header)
            .header("date", NOW),
        Request::get("/").header("authorization", &format!("Bearer {token}")),
        Request::get(&format!("/?jwt={forged}")),
        Request::get(&format!("/?jwt={token}")).header("apikey", &format!("{KEY}-wrong")),
        Request::get(&format!("/?jwt={token}&apikey={KEY}")).header("authorization", &wrong_basic),
        Request::get(&format!("/?jwt={token}&apikey={KEY}"))
            .header("proxy-authorization", &basic_header)
            .header("authorization", &hmac_header("AAAA"))
            .header("date", NOW),
        Request::get(&format!("/?jwt={token}&apikey={KEY}"))
            .header("proxy-authorization", &basic_header)
            .header("authorization", &hmac_header(&signature))
            .header("date", NOW),
    ];
    let mut statuses = Vec::new();
    for req in requests {
        statuses.push(checked(h.send(&[f], req)).status());
    }
    assert_eq!(statuses[1..], [401, 401, 401, 401, 401, 200], "{statuses:?}");

    let secrets = [
        KEY,
        PASSWORD,
        HMAC_SECRET,
        JWT_SECRET,
        token.as_str(),
        forged.as_str(),
        &token[token.rfind('.').unwrap() + 1..],
        signature.as_str(),
        basic_header.trim_start_matches("Basic "),
        wrong_basic.trim_start_matches("Basic "),
    ];
    let logs = h.logs();
    assert!(logs.iter().any(|l| l.message.contains("refused request_id=")), "refusal lines expected: {logs:?}");
    for line in logs {
        for secret in secrets {
            assert!(!line.message.contains(secret), "a secret in a log line: {line:?}");
        }
    }
}

#[test]
fn one_refusal_line_at_the_configured_level() {
    let with_level = |level: Option<&str>| {
        let mut doc: serde_json::Value = serde_json::from_str(&doc(json!([{"name": "key-auth"}]))).unwrap();
        if let Some(level) = level {
            doc["refusal_log_level"] = json!(level);
        }
        let (mut h, f) = one(&doc.to_string());
        let ex = checked(h.send(&[f], Request::get("/").request_id(Some("rid-7")).header("apikey", "nope")));
        assert_eq!(ex.status(), 401);
        ex.logs.into_iter().filter(|l| l.message.contains("refused request_id=")).collect::<Vec<_>>()
    };
    // debug by default (Kong writes no error-log line per refused request)
    let lines = with_level(None);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].level, LogLevel::Debug);
    assert_eq!(
        lines[0].message,
        r#"consumer-auth: refused request_id=rid-7 plugin=key-auth reason=invalid_credentials status=401 consumer=- message="Unauthorized""#
    );
    assert_eq!(with_level(Some("info"))[0].level, LogLevel::Info);
    assert_eq!(with_level(Some("warn"))[0].level, LogLevel::Warn);
    assert_eq!(with_level(Some("debug"))[0].level, LogLevel::Debug);
    assert!(with_level(Some("off")).is_empty());

    // the consumer is named when one was identified
    let (mut h, f) = one(&doc(json!([{"name": "key-auth"}, {"name": "acl", "config": {"deny": ["admins"]}}])));
    let ex = checked(h.send(&[f], Request::get("/").request_id(Some("r")).header("apikey", "alice-key")));
    let line = ex.logs.iter().find(|l| l.message.contains("refused request_id=")).unwrap();
    assert!(line.message.contains("plugin=acl reason=acl_denied status=403 consumer=alice"), "{line:?}");

    // a line below the host's level (Envoy's default: info) is neither built nor sent; the host's
    // level is asked again after a tick (Envoy's /logging changes it at run time)
    let (mut h, f) = one(&doc(json!([{"name": "key-auth"}])));
    h.set_log_level(LogLevel::Info);
    let ex = checked(h.send(&[f], Request::get("/").header("apikey", "nope")));
    assert_eq!(ex.status(), 401);
    assert_eq!(ex.host_call_count("proxy_log"), 0, "{:?}", ex.logs);
    h.set_log_level(LogLevel::Debug);
    h.tick();
    let ex = checked(h.send(&[f], Request::get("/").header("apikey", "nope")));
    assert!(ex.logged("refused request_id="), "{:?}", ex.logs);

    let mut h = host();
    let err = h.configure(&doc(json!([])).replace(r#""plugins":[]"#, r#""plugins":[],"refusal_log_level":"loud""#));
    assert!(err.unwrap_err().to_string().contains("refusal_log_level: expected one of: debug, info, warn, error, off"));
}

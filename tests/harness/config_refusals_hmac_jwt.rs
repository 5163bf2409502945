//! Configuration refusals of hmac-auth and jwt (plugin configs and credentials): one case per
//! refusal, each naming the JSON path, with Kong's schema message where Kong has one.

use crate::support::*;
use serde_json::Value;

fn plugin(name: &str, config: Value) -> String {
    doc(json!([{"name": name, "config": config}]))
}

fn with_credentials(field: &str, credential: Value) -> String {
    json!({"consumers": [{"username": "a", field: [credential]}], "plugins": []}).to_string()
}

/// A P-256 public key in PEM, generated here.
fn p256_pem() -> String {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap()
}

#[test]
fn hmac_auth_config() {
    let p = |c: Value| refusal(&plugin("hmac-auth", c));
    assert_eq!(p(json!({"clock_skew": 0})), "plugins[0].config.clock_skew: value must be greater than 0");
    assert_eq!(p(json!({"clock_skew": -5})), "plugins[0].config.clock_skew: value must be greater than 0");
    assert_eq!(p(json!({"clock_skew": "300"})), "plugins[0].config.clock_skew: expected a number");
    assert_eq!(
        p(json!({"algorithms": ["hmac-sha256", "hmac-md5"]})),
        "plugins[0].config.algorithms[1]: expected one of: hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512"
    );
    assert_eq!(p(json!({"algorithms": "hmac-sha256"})), "plugins[0].config.algorithms: expected an array");
    assert_eq!(p(json!({"enforce_headers": [1]})), "plugins[0].config.enforce_headers[0]: expected a string");
    assert_eq!(
        p(json!({"validate_request_body": "yes"})),
        "plugins[0].config.validate_request_body: expected a boolean"
    );
    assert_eq!(p(json!({"hide_credential": true})), "plugins[0].config.hide_credential: unknown field");
    assert_eq!(p(json!({"anonymous": "ghost"})), "plugins[0].config.anonymous: anonymous consumer 'ghost' not found");
    assert_eq!(
        refusal(&doc(json!([{"name": "hmac-auth", "consumer": "alice"}]))),
        "plugins[0].consumer: value must be null ('hmac-auth' cannot be scoped to a consumer)"
    );
}

#[test]
fn jwt_config() {
    let p = |c: Value| refusal(&plugin("jwt", c));
    assert_eq!(
        p(json!({"claims_to_verify": ["exp", "iat"]})),
        "plugins[0].config.claims_to_verify[1]: expected one of: exp, nbf"
    );
    assert_eq!(
        p(json!({"maximum_expiration": -1})),
        "plugins[0].config.maximum_expiration: value should be between 0 and 31536000"
    );
    assert_eq!(
        p(json!({"maximum_expiration": 31_536_001, "claims_to_verify": ["exp"]})),
        "plugins[0].config.maximum_expiration: value should be between 0 and 31536000"
    );
    assert_eq!(p(json!({"maximum_expiration": 60})), "plugins[0].config.claims_to_verify: expected to contain: exp");
    assert_eq!(
        p(json!({"maximum_expiration": 60, "claims_to_verify": ["nbf"]})),
        "plugins[0].config.claims_to_verify: expected to contain: exp"
    );
    assert_eq!(p(json!({"uri_param_names": "jwt"})), "plugins[0].config.uri_param_names: expected an array");
    assert_eq!(p(json!({"cookie_names": [true]})), "plugins[0].config.cookie_names[0]: expected a string");
    assert_eq!(p(json!({"secret_is_base64": 1})), "plugins[0].config.secret_is_base64: expected a boolean");
    assert_eq!(p(json!({"hide_credentials": true})), "plugins[0].config.hide_credentials: unknown field");
    assert_eq!(p(json!({"anonymous": "ghost"})), "plugins[0].config.anonymous: anonymous consumer 'ghost' not found");
    assert_eq!(
        refusal(&doc(json!([{"name": "jwt", "consumer": "alice"}]))),
        "plugins[0].consumer: value must be null ('jwt' cannot be scoped to a consumer)"
    );
}

#[test]
fn hmac_credentials() {
    let c = |cred: Value| refusal(&with_credentials("hmacauth_credentials", cred));
    assert_eq!(c(json!({"secret": "s"})), "consumers[0].hmacauth_credentials[0].username: required field missing");
    assert_eq!(c(json!({"username": "u"})), "consumers[0].hmacauth_credentials[0].secret: required field missing");
    assert_eq!(
        c(json!({"username": "", "secret": "s"})),
        "consumers[0].hmacauth_credentials[0].username: length must be at least 1"
    );
    assert_eq!(
        c(json!({"username": "u", "secret": ""})),
        "consumers[0].hmacauth_credentials[0].secret: length must be at least 1"
    );
    assert_eq!(
        c(json!({"username": "u", "secret": "s", "id": "x"})),
        "consumers[0].hmacauth_credentials[0].id: expected a valid UUID"
    );
    let dup = json!({"consumers": [
        {"username": "a", "hmacauth_credentials": [{"username": "u", "secret": "TOPSECRET"}]},
        {"username": "b", "hmacauth_credentials": [{"username": "u", "secret": "TOPSECRET"}]}
    ]})
    .to_string();
    let e = refusal(&dup);
    assert_eq!(e, "consumers[1].hmacauth_credentials[0].username: duplicate username 'u' (also used by consumers[0])");
}

#[test]
fn jwt_secrets() {
    let c = |cred: Value| refusal(&with_credentials("jwt_secrets", cred));
    assert_eq!(c(json!({"secret": "s"})), "consumers[0].jwt_secrets[0].key: required field missing");
    assert_eq!(c(json!({"key": "", "secret": "s"})), "consumers[0].jwt_secrets[0].key: length must be at least 1");
    assert_eq!(
        c(json!({"key": "k", "algorithm": "none", "secret": "s"})),
        "consumers[0].jwt_secrets[0].algorithm: expected one of: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
    );
    assert_eq!(c(json!({"key": "k"})), "consumers[0].jwt_secrets[0].secret: required field missing");
    assert_eq!(
        c(json!({"key": "k", "algorithm": "HS512"})),
        "consumers[0].jwt_secrets[0].secret: required field missing"
    );
    assert_eq!(c(json!({"key": "k", "secret": ""})), "consumers[0].jwt_secrets[0].secret: length must be at least 1");
    for alg in ["RS256", "PS384", "ES256", "ES384", "EdDSA"] {
        assert_eq!(
            c(json!({"key": "k", "algorithm": alg, "secret": "s"})),
            "consumers[0].jwt_secrets[0].rsa_public_key: required field missing",
            "{alg}"
        );
    }
    assert_eq!(
        c(json!({"key": "k", "algorithm": "RS256", "rsa_public_key": "not a key"})),
        "consumers[0].jwt_secrets[0].rsa_public_key: invalid key (expected an RSA public key in PEM, at most 4096 bits)"
    );
    // a well-formed key of the wrong type for the algorithm
    let ec_p256_pem = p256_pem();
    assert_eq!(
        c(json!({"key": "k", "algorithm": "RS256", "rsa_public_key": ec_p256_pem})),
        "consumers[0].jwt_secrets[0].rsa_public_key: invalid key (expected an RSA public key in PEM, at most 4096 bits)"
    );
    assert_eq!(
        c(json!({"key": "k", "algorithm": "ES384", "rsa_public_key": ec_p256_pem})),
        "consumers[0].jwt_secrets[0].rsa_public_key: invalid key (expected a P-384 EC public key in PEM)"
    );
    assert_eq!(
        c(json!({"key": "k", "algorithm": "EdDSA", "rsa_public_key": ec_p256_pem})),
        "consumers[0].jwt_secrets[0].rsa_public_key: invalid key (expected an Ed25519 public key in PEM)"
    );
    let truncated: String = ec_p256_pem.lines().filter(|l| l.starts_with("-----")).collect::<Vec<_>>().join("\n");
    assert_eq!(
        c(json!({"key": "k", "algorithm": "ES256", "rsa_public_key": truncated})),
        "consumers[0].jwt_secrets[0].rsa_public_key: invalid key (expected a P-256 EC public key in PEM)"
    );
    // the well-formed P-256 key is accepted for ES256
    let mut h = host();
    h.configure(&with_credentials(
        "jwt_secrets",
        json!({"key": "k", "algorithm": "ES256", "rsa_public_key": ec_p256_pem}),
    ))
    .unwrap();
    let dup = json!({"consumers": [
        {"username": "a", "jwt_secrets": [{"key": "iss", "secret": "TOPSECRET"}]},
        {"username": "b", "jwt_secrets": [{"key": "iss", "secret": "TOPSECRET"}]}
    ]})
    .to_string();
    let e = refusal(&dup);
    assert_eq!(e, "consumers[1].jwt_secrets[0].key: duplicate key 'iss' (also used by consumers[0])");
    assert!(!e.contains("TOPSECRET"));
}

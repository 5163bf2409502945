//! consumer-auth-tools: produce what a client of a consumer-auth protected route sends.
//!
//! ```text
//! consumer-auth-tools hmac --user alice-hmac --secret S [--algorithm hmac-sha256]
//!     [--method GET] [--path /hmac] [--headers "date @request-target"] [--header "Name: value"]...
//!     [--body TEXT | --body-file FILE] [--date "HTTP date" | --now UNIX] [--protocol HTTP/1.1]
//!     [--proxy] [--curl]
//! consumer-auth-tools jwt --key alice-issuer (--secret S [--secret-base64] | --private-key FILE)
//!     [--alg HS256] [--exp SECONDS] [--nbf SECONDS] [--key-claim iss] [--claim name=value]...
//!     [--now UNIX]
//! ```
//!
//! `hmac` prints the headers to send (`Date`, `Digest` with a body, `Authorization`), one per
//! line, or with `--curl` as curl `-H` arguments. `jwt` prints a compact JWS.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use consumer_auth::plugins::hmac_auth::{self, HmacAlgorithm};
use consumer_auth::request::{Body, Header, Request};
use serde_json::{json, Map, Value};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("hmac") => hmac(&Args::parse(args.get(1..).unwrap_or_default())),
        Some("jwt") => jwt(&Args::parse(args.get(1..).unwrap_or_default())),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage:
  consumer-auth-tools hmac --user NAME --secret SECRET [--algorithm hmac-sha256] [--method GET]
      [--path /] [--headers \"date @request-target\"] [--header \"Name: value\"]...
      [--body TEXT | --body-file FILE] [--date \"HTTP date\" | --now UNIX] [--protocol HTTP/1.1]
      [--proxy] [--curl]
  consumer-auth-tools jwt --key KEY (--secret SECRET [--secret-base64] | --private-key PEM_FILE)
      [--alg HS256] [--exp SECONDS] [--nbf SECONDS] [--key-claim iss] [--claim name=value]...
      [--now UNIX]";

/// `--name value` pairs (repeatable) and `--flag`s.
struct Args(Vec<(String, Option<String>)>);

const FLAGS: [&str; 4] = ["--proxy", "--curl", "--secret-base64", "--help"];

impl Args {
    fn parse(raw: &[String]) -> Args {
        let mut out = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if FLAGS.contains(&a.as_str()) {
                out.push((a.clone(), None));
            } else {
                out.push((a.clone(), it.next().cloned()));
            }
        }
        Args(out)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(n, _)| n == name).filter_map(|(_, v)| v.as_deref()).collect()
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
    fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("{name} is required\n{USAGE}"))
    }
    fn now(&self) -> Result<u64, String> {
        match self.get("--now") {
            Some(n) => n.parse().map_err(|_| "--now: expected unix seconds".to_string()),
            None => Ok(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
        }
    }
}

fn hmac(args: &Args) -> Result<String, String> {
    let user = args.required("--user")?;
    let secret = args.required("--secret")?;
    let algorithm_name = args.get("--algorithm").unwrap_or("hmac-sha256");
    let algorithm = HmacAlgorithm::parse(algorithm_name.as_bytes())
        .ok_or("--algorithm: one of hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512")?;
    let method = args.get("--method").unwrap_or("GET");
    let path = args.get("--path").unwrap_or("/");
    let protocol = args.get("--protocol").unwrap_or("HTTP/1.1");
    let date = match args.get("--date") {
        Some(d) => d.to_string(),
        None => consumer_auth::time::http_date(args.now()?),
    };
    let body = match (args.get("--body"), args.get("--body-file")) {
        (Some(b), _) => Some(b.as_bytes().to_vec()),
        (None, Some(f)) => Some(std::fs::read(f).map_err(|e| format!("--body-file: {e}"))?),
        (None, None) => None,
    };

    // The headers the request will carry, as the filter will see them.
    let mut sent: Vec<(String, String)> = vec![("Date".into(), date)];
    if let Some(b) = &body {
        sent.push(("Digest".into(), hmac_auth::body_digest(b)));
    }
    for h in args.all("--header") {
        let (n, v) = h.split_once(':').ok_or("--header: expected \"Name: value\"")?;
        sent.push((n.trim().to_string(), v.trim().to_string()));
    }
    let default_headers = if body.is_some() { "date @request-target digest" } else { "date @request-target" };
    let signed = args.get("--headers").unwrap_or(default_headers);

    let headers: Vec<Header> = sent.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec())).collect();
    let request = Request::new(method, path, &headers, Body::Empty);
    let names: Vec<&[u8]> = signed.split(' ').map(str::as_bytes).collect();
    let signing_string = hmac_auth::signing_string(&request, &names, Some(protocol))
        .ok_or("--protocol: one of HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/3")?;
    let signature =
        base64::engine::general_purpose::STANDARD.encode(algorithm.sign(secret.as_bytes(), &signing_string));
    let header = if args.flag("--proxy") { "Proxy-Authorization" } else { "Authorization" };
    sent.push((
        header.into(),
        format!(r#"hmac username="{user}", algorithm="{algorithm_name}", headers="{signed}", signature="{signature}""#),
    ));
    if args.flag("--curl") {
        Ok(sent.iter().map(|(n, v)| format!("-H '{n}: {}'", v.replace('\'', r"'\''"))).collect::<Vec<_>>().join(" "))
    } else {
        Ok(sent.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>().join("\n"))
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt(args: &Args) -> Result<String, String> {
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    let key = args.required("--key")?;
    let alg = args.get("--alg").unwrap_or("HS256");
    let now = args.now()?;
    let mut claims = Map::new();
    claims.insert(args.get("--key-claim").unwrap_or("iss").to_string(), json!(key));
    for (name, claim) in [("--exp", "exp"), ("--nbf", "nbf")] {
        if let Some(v) = args.get(name) {
            let offset: i64 = v.parse().map_err(|_| format!("{name}: expected seconds from now (may be negative)"))?;
            claims.insert(claim.into(), json!(now as i64 + offset));
        }
    }
    for c in args.all("--claim") {
        let (n, v) = c.split_once('=').ok_or("--claim: expected name=value")?;
        // a JSON value if it parses (numbers, booleans), else a string
        claims.insert(n.to_string(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string())));
    }
    let input = format!(
        "{}.{}",
        b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        b64url(Value::Object(claims).to_string().as_bytes())
    );
    let data = input.as_bytes();

    let signature: Vec<u8> = if alg.starts_with("HS") {
        let secret = args.required("--secret")?;
        let secret = if args.flag("--secret-base64") {
            consumer_auth::plugins::jwt::kong_base64url_decode(secret.as_bytes()).ok_or("--secret: not base64")?
        } else {
            secret.as_bytes().to_vec()
        };
        let name = match alg {
            "HS256" => "hmac-sha256",
            "HS384" => "hmac-sha384",
            "HS512" => "hmac-sha512",
            _ => return Err(format!("--alg: unknown algorithm {alg}")),
        };
        HmacAlgorithm::parse(name.as_bytes()).map(|a| a.sign(&secret, data)).unwrap_or_default()
    } else {
        let pem_file = args.required("--private-key")?;
        let pem = std::fs::read_to_string(pem_file).map_err(|e| format!("--private-key: {e}"))?;
        let bad = |what: &str| format!("--private-key: not a {what} private key in PEM (PKCS#8, PKCS#1 or SEC1)");
        let rsa_key = || {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            use rsa::pkcs8::DecodePrivateKey;
            rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&pem))
                .map_err(|_| bad("RSA"))
        };
        let mut rng = rand::rngs::OsRng;
        match alg {
            "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key()?).sign(data).to_vec(),
            "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(rsa_key()?).sign(data).to_vec(),
            "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(rsa_key()?).sign(data).to_vec(),
            "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(rsa_key()?).sign_with_rng(&mut rng, data).to_vec(),
            "PS384" => rsa::pss::SigningKey::<sha2::Sha384>::new(rsa_key()?).sign_with_rng(&mut rng, data).to_vec(),
            "PS512" => rsa::pss::SigningKey::<sha2::Sha512>::new(rsa_key()?).sign_with_rng(&mut rng, data).to_vec(),
            "ES256" => {
                use p256::pkcs8::DecodePrivateKey;
                let k = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
                    .or_else(|_| p256::SecretKey::from_sec1_pem(&pem).map(Into::into))
                    .map_err(|_| bad("P-256 EC"))?;
                let s: p256::ecdsa::Signature = k.sign(data);
                s.to_bytes().to_vec()
            }
            "ES384" => {
                use p384::pkcs8::DecodePrivateKey;
                let k = p384::ecdsa::SigningKey::from_pkcs8_pem(&pem)
                    .or_else(|_| p384::SecretKey::from_sec1_pem(&pem).map(Into::into))
                    .map_err(|_| bad("P-384 EC"))?;
                let s: p384::ecdsa::Signature = k.sign(data);
                s.to_bytes().to_vec()
            }
            "EdDSA" => {
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                use ed25519_dalek::Signer as _;
                let k = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|_| bad("Ed25519"))?;
                k.sign(data).to_bytes().to_vec()
            }
            other => return Err(format!("--alg: unknown algorithm {other}")),
        }
    };
    Ok(format!("{input}.{}", b64url(&signature)))
}

#[cfg(test)]
mod tests {
    use consumer_auth::time::http_date;

    /// The Date the helper sends is one the filter parses back to the same instant.
    #[test]
    fn dates() {
        assert_eq!(http_date(1_767_225_600), "Thu, 01 Jan 2026 00:00:00 GMT");
        assert_eq!(
            consumer_auth::plugins::hmac_auth::parse_http_date(http_date(1_767_225_600).as_bytes()),
            Some(1_767_225_600)
        );
    }
}

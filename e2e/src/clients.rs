//! What a client of an hmac-auth or jwt route sends, computed here independently of the filter
//! (the `hmac`, `sha2`, `rsa` and `p256` crates, not the filter's code): signed hmac-auth headers
//! and HS256, RS256 and ES256 tokens. Envoy runs on the real clock, so dates and `exp` come from
//! the system clock.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::http::Request;

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs()
}

/// Days since 1970-01-01 -> (year, month, day) (Howard Hinnant's algorithm). Written here, not
/// taken from the filter, so that the clients do not share the code they test.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An HTTP date (IMF-fixdate, `Thu, 01 Jan 2026 00:00:00 GMT`) of unix seconds `t`.
pub fn http_date(t: u64) -> String {
    let days = t / 86_400;
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let weekday = WEEKDAYS[(days % 7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// HMAC-SHA256(secret, data).
pub fn hmac_sha256(secret: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Vec<u8> {
    let (secret, data) = (secret.as_ref(), data.as_ref());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The hmac-auth signing string (BEHAVIOUR.md §B7) of `request` for the signed `names`:
/// `name: value` for a header the request carries (its first value), `@request-target: <lowercase
/// method> <target>`, `request-line` as `<METHOD> <target> HTTP/1.1` (the raw client always sends
/// HTTP/1.1), `name:` for an absent header.
pub fn hmac_signing_string(request: &Request, names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            let header = request.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            match (*name, header) {
                (_, Some(value)) => format!("{name}: {value}"),
                ("@request-target", None) => {
                    format!("@request-target: {} {}", request.method.to_ascii_lowercase(), request.target)
                }
                ("request-line", None) => format!("{} {} HTTP/1.1", request.method, request.target),
                (_, None) => format!("{name}:"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `request` with a `Date` of unix seconds `date` and an hmac-sha256 `Authorization` signing
/// `names` (space-separated) with `user`'s `secret`.
pub fn hmac_signed(request: Request, user: &str, secret: &str, names: &str, date: u64) -> Request {
    let request = request.header("Date", &http_date(date));
    let signing_string = hmac_signing_string(&request, &names.split(' ').collect::<Vec<_>>());
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), signing_string.as_bytes()));
    request.header(
        "Authorization",
        &format!(r#"hmac username="{user}", algorithm="hmac-sha256", headers="{names}", signature="{signature}""#),
    )
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `<header>.<claims>` of a JWS with `alg`: the input its signature covers.
pub fn jwt_signing_input(alg: &str, claims: &Value) -> String {
    let header = json!({ "alg": alg, "typ": "JWT" });
    format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
}

/// A compact JWS: the signing input and `signature`, base64url.
pub fn jwt_with_signature(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64url(signature))
}

/// An HS256 token for `key` (in `iss`, the plugin's default key claim) signed with `secret`,
/// with `exp` at unix seconds `exp`.
pub fn hs256_jwt(key: &str, secret: &str, exp: u64) -> String {
    let input = jwt_signing_input("HS256", &json!({ "iss": key, "exp": exp }));
    let signature = hmac_sha256(secret.as_bytes(), input.as_bytes());
    jwt_with_signature(&input, &signature)
}

/// An RSA-2048 and a P-256 key pair generated for one test: their public keys in PEM (a jwt
/// secret's `rsa_public_key`) and tokens signed with them.
pub struct JwtKeys {
    rsa: rsa::RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
}

impl JwtKeys {
    /// Fresh keys; `None` only if the RSA key generation fails.
    pub fn generate() -> Option<JwtKeys> {
        let mut rng = rand::rngs::OsRng;
        Some(JwtKeys {
            rsa: rsa::RsaPrivateKey::new(&mut rng, 2048).ok()?,
            p256: p256::ecdsa::SigningKey::random(&mut rng),
        })
    }

    pub fn rsa_pem(&self) -> String {
        use rsa::pkcs8::EncodePublicKey;
        self.rsa.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap_or_default()
    }

    pub fn p256_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey;
        self.p256.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap_or_default()
    }

    pub fn rs256(&self, claims: &Value) -> String {
        use rsa::signature::{SignatureEncoding, Signer};
        let input = jwt_signing_input("RS256", claims);
        let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.rsa.clone()).sign(input.as_bytes());
        jwt_with_signature(&input, &signature.to_vec())
    }

    pub fn es256(&self, claims: &Value) -> String {
        use p256::ecdsa::signature::Signer;
        let input = jwt_signing_input("ES256", claims);
        let signature: p256::ecdsa::Signature = self.p256.sign(input.as_bytes());
        jwt_with_signature(&input, &signature.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(1_767_225_600), "Thu, 01 Jan 2026 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn signing_string_forms() {
        let r = Request::get("/p?a=%20b").header("Date", "D").header("x-foo", "1").header("x-foo", "2");
        assert_eq!(
            hmac_signing_string(&r, &["date", "@request-target", "request-line", "absent", "x-foo"]),
            "date: D\n@request-target: get /p?a=%20b\nGET /p?a=%20b HTTP/1.1\nabsent:\nx-foo: 1"
        );
    }

    #[test]
    fn hmac_sha256_rfc_4231_and_token_shape() {
        // RFC 4231 test case 2
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a,
                0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43
            ]
        );
        let token = hs256_jwt("k", "s", 1);
        assert_eq!(token.split('.').count(), 3);
    }
}

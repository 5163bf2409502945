//! jwt (BEHAVIOUR.md §B8): a signed JSON Web Token in a query argument, a cookie or a header,
//! checked against the consumer's jwt secret named by a claim (`iss` by default).

use std::borrow::Cow;
use std::rc::Rc;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::BuildContext;
use super::{AuthPlugin, AuthSettings, Authenticated, Halt};
use crate::error::{parse_section, ConfigError, ErrorKind};
// Re-exported: the key material lived here before it moved to `crypto::jwt_key`.
use super::context::Ctx;
use crate::consumers::JwtCredential;
pub use crate::crypto::jwt_key::{kong_base64url_decode, Algorithm, KeyError, VerifyingKey};
use crate::proxy::Counter;
use crate::response::{Body, Reason, Rejection};

mod cache;
use cache::{Limits, TokenCache, Verified};

// ---------------------------------------------------------------------------------------------
// The plugin.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    #[serde(default = "default_uri_param_names")]
    uri_param_names: Vec<String>,
    #[serde(default)]
    cookie_names: Vec<String>,
    #[serde(default = "default_header_names")]
    header_names: Vec<String>,
    #[serde(default = "default_key_claim_name")]
    key_claim_name: String,
    #[serde(default)]
    secret_is_base64: bool,
    #[serde(default)]
    claims_to_verify: Vec<String>,
    anonymous: Option<String>,
    #[serde(default = "yes")]
    run_on_preflight: bool,
    #[serde(default)]
    maximum_expiration: f64,
    realm: Option<String>,
    #[serde(default = "default_token_cache_entries")]
    token_cache_entries: usize,
    #[serde(default = "default_token_cache_bytes")]
    token_cache_bytes: usize,
}

fn default_uri_param_names() -> Vec<String> {
    vec!["jwt".to_string()]
}

fn default_header_names() -> Vec<String> {
    vec!["authorization".to_string()]
}

fn default_key_claim_name() -> String {
    "iss".to_string()
}

fn default_token_cache_entries() -> usize {
    10_000
}

fn default_token_cache_bytes() -> usize {
    4 << 20
}

/// Bounds of the verified-token cache's settings (per worker).
const MAX_TOKEN_CACHE_ENTRIES: usize = 1_000_000;
const MAX_TOKEN_CACHE_BYTES: usize = 256 << 20;

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Exp,
    Nbf,
}

pub struct Jwt {
    settings: AuthSettings,
    uri_param_names: Vec<String>,
    cookie_names: Vec<String>,
    /// Lowercase, `_` read as `-` (Kong's header table does the same).
    header_names: Vec<String>,
    key_claim_name: String,
    secret_is_base64: bool,
    claims_to_verify: Vec<Claim>,
    maximum_expiration: f64,
    challenge: String,
    challenge_invalid: String,
    cache: TokenCache,
}

/// One token found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Text(Cow<'a, [u8]>),
    /// A bare query flag (`?jwt`): Kong collects `true`, which is no token it can read.
    Flag,
}

impl Jwt {
    pub fn build(config: Value, path: &str, ctx: &BuildContext<'_>) -> Result<Jwt, ConfigError> {
        let raw: RawJwt = parse_section(config, path)?;
        let mut claims_to_verify = Vec::new();
        for (i, claim) in raw.claims_to_verify.iter().enumerate() {
            let claim = match claim.as_str() {
                "exp" => Claim::Exp,
                "nbf" => Claim::Nbf,
                _ => {
                    return Err(ConfigError::new(
                        format!("{path}.claims_to_verify[{i}]"),
                        ErrorKind::Rule("expected one of: exp, nbf"),
                    ))
                }
            };
            // a set, as in Kong's schema
            if !claims_to_verify.contains(&claim) {
                claims_to_verify.push(claim);
            }
        }
        if !(0.0..=31_536_000.0).contains(&raw.maximum_expiration) {
            return Err(ConfigError::new(format!("{path}.maximum_expiration"), ErrorKind::Between(0, 31_536_000)));
        }
        if raw.maximum_expiration > 0.0 && !claims_to_verify.contains(&Claim::Exp) {
            return Err(ConfigError::new(
                format!("{path}.claims_to_verify"),
                ErrorKind::Rule("expected to contain: exp"),
            ));
        }
        if raw.token_cache_entries > MAX_TOKEN_CACHE_ENTRIES {
            return Err(ConfigError::new(
                format!("{path}.token_cache_entries"),
                ErrorKind::Between(0, MAX_TOKEN_CACHE_ENTRIES as i64),
            ));
        }
        if raw.token_cache_bytes > MAX_TOKEN_CACHE_BYTES {
            return Err(ConfigError::new(
                format!("{path}.token_cache_bytes"),
                ErrorKind::Between(0, MAX_TOKEN_CACHE_BYTES as i64),
            ));
        }
        ctx.check_anonymous(&raw.anonymous, path)?;
        super::check_realm(&raw.realm, path)?;
        let challenge = match &raw.realm {
            Some(realm) => format!("Bearer realm=\"{realm}\""),
            None => "Bearer".to_string(),
        };
        let challenge_invalid = match &raw.realm {
            Some(_) => format!("{challenge}, error=\"invalid_token\""),
            None => format!("{challenge} error=\"invalid_token\""),
        };
        Ok(Jwt {
            settings: AuthSettings { anonymous: raw.anonymous, run_on_preflight: raw.run_on_preflight },
            uri_param_names: raw.uri_param_names,
            cookie_names: raw.cookie_names,
            header_names: raw.header_names.iter().map(|h| h.to_ascii_lowercase().replace('_', "-")).collect(),
            key_claim_name: raw.key_claim_name,
            secret_is_base64: raw.secret_is_base64,
            claims_to_verify,
            maximum_expiration: raw.maximum_expiration,
            challenge,
            challenge_invalid,
            cache: TokenCache::new(Limits { max_entries: raw.token_cache_entries, max_bytes: raw.token_cache_bytes }),
        })
    }

    fn reject(&self, message: impl Into<Cow<'static, str>>, reason: Reason) -> Halt {
        rejection(Body::CompactJson(message.into()), &self.challenge_invalid, reason)
    }

    /// Kong's `retrieve_tokens`: query arguments, then cookies, then headers; identical tokens
    /// count once.
    fn tokens<'a>(&self, ctx: &Ctx<'_, 'a>) -> Vec<Token<'a>> {
        let mut tokens: Vec<Token<'a>> = Vec::new();
        let mut add = |t: Token<'a>| {
            if !tokens.contains(&t) {
                tokens.push(t);
            }
        };
        for name in &self.uri_param_names {
            for value in ctx.req.query_values(name) {
                match value {
                    None => add(Token::Flag),
                    Some([]) => {}
                    Some(v) => add(Token::Text(Cow::Owned(v.to_vec()))),
                }
            }
        }
        for name in &self.cookie_names {
            if let Some(v) = cookie(ctx.req.header_values("cookie"), name.as_bytes()) {
                if !v.is_empty() {
                    add(Token::Text(Cow::Borrowed(v)));
                }
            }
        }
        for name in &self.header_names {
            if let Some(v) = ctx.req.first_header(name).and_then(bearer_token) {
                add(Token::Text(Cow::Borrowed(v)));
            }
        }
        tokens
    }
}

/// A 401 with a compact JSON body (no request id) and a challenge.
fn rejection(body: Body, challenge: &str, reason: Reason) -> Halt {
    let mut r = Rejection::kong(401, "", reason).with_challenge(challenge);
    r.body = body;
    Halt::from(r)
}

/// nginx's `$cookie_<name>`: the first cookie of that name (compared case-insensitively) in
/// any `Cookie` header; the value runs to the next `;`.
fn cookie<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &[u8]) -> Option<&'a [u8]> {
    for header in headers {
        let end = header.len();
        let mut start = 0;
        while start < end {
            let matches = header.get(start..start + name.len()).is_some_and(|n| n.eq_ignore_ascii_case(name));
            if matches {
                let mut p = start + name.len();
                while header.get(p) == Some(&b' ') {
                    p += 1;
                }
                if header.get(p) == Some(&b'=') {
                    p += 1;
                    while header.get(p) == Some(&b' ') {
                        p += 1;
                    }
                    let last = header.get(p..)?.iter().position(|&b| b == b';').map_or(end, |i| p + i);
                    return header.get(p..last);
                }
            }
            // skip to the next cookie
            while let Some(&b) = header.get(start) {
                start += 1;
                if b == b';' || b == b',' {
                    break;
                }
            }
            while header.get(start) == Some(&b' ') {
                start += 1;
            }
        }
    }
    None
}

/// Kong's `\s*[Bb]earer\s+(.+)` (unanchored, greedy): the token after the first `Bearer` /
/// `bearer` followed by white space and at least one more character.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    if value.contains(&b'\n') {
        return None;
    }
    let is_space = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
    (0..value.len()).find_map(|i| {
        let rest = value.get(i..)?;
        if !(rest.starts_with(b"Bearer") || rest.starts_with(b"bearer")) {
            return None;
        }
        let after = rest.get(6..)?;
        let spaces = after.iter().take_while(|b| is_space(b)).count();
        match (spaces, after.len() - spaces) {
            (0, _) => None,
            (_, n) if n > 0 => after.get(spaces..),
            // only white space follows: `\s+` gives its last character back to `(.+)`
            (s, _) if s >= 2 => after.get(s - 1..),
            _ => None,
        }
    })
}

/// A token segment: strict base64url (RFC 7515 §2): the URL-safe alphabet only, no padding, no
/// stray bits in the last character. Kong refuses `+` and `/` too; being strict about padding
/// and trailing bits as well gives every signed token exactly one spelling, so a list keyed by
/// the token text (revocation, replay, a cache) cannot be sidestepped by re-spelling it.
fn decode_segment(segment: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).ok()
}

/// A token split and decoded as Kong's `jwt_parser` does.
struct Decoded<'t> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    algorithm: Algorithm,
    signing_input: &'t [u8],
    signature: Vec<u8>,
}

/// `Err` is the text after `Bad token; `.
fn decode(token: &[u8]) -> Result<Decoded<'_>, &'static str> {
    let mut parts = token.splitn(3, |&b| b == b'.');
    let (header_64, claims_64, signature_64) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s)) => (h, c, s),
        _ => return Err("invalid JSON"),
    };
    let json = |part: &[u8]| -> Result<Value, &'static str> {
        decode_segment(part).and_then(|b| serde_json::from_slice(&b).ok()).ok_or("invalid JSON")
    };
    let header = json(header_64)?;
    let claims = json(claims_64)?;
    let signature = decode_segment(signature_64);
    let Value::Object(header) = header else {
        return Err("invalid alg");
    };
    let algorithm = header.get("alg").and_then(Value::as_str).and_then(Algorithm::parse).ok_or("invalid alg")?;
    let Value::Object(claims) = claims else {
        return Err("invalid claims");
    };
    let signature = signature.ok_or("invalid signature")?;
    let signing_input = token.get(..header_64.len() + 1 + claims_64.len()).ok_or("invalid JSON")?;
    Ok(Decoded { header, claims, algorithm, signing_input, signature })
}

impl AuthPlugin for Jwt {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn authenticate(&self, ctx: &mut Ctx<'_, '_>) -> Result<Authenticated, Halt> {
        let tokens = self.tokens(ctx);
        let token = match tokens.as_slice() {
            [] => {
                return Err(rejection(
                    Body::CompactJson(Cow::Borrowed("Unauthorized")),
                    &self.challenge,
                    Reason::NoCredentials,
                ))
            }
            [Token::Text(t)] => t.clone(),
            [Token::Flag] => return Err(self.reject("Unrecognizable token", Reason::InvalidCredentials)),
            _ => return Err(self.reject("Multiple tokens provided", Reason::DuplicateCredentials)),
        };
        // A token verified before (same bytes) by the credential the lookup still yields: only
        // the time checks remain (see `cache`).
        let digest = self.cache.enabled().then(|| cache::digest(&token));
        if let Some(digest) = &digest {
            if let Some(verified) = self.cache.get(digest) {
                match ctx.jwt_credential(&verified.key)? {
                    Some(current) if Rc::ptr_eq(&current, &verified.credential) => {
                        ctx.count(Counter::JwtCacheHit);
                        return self.check_times(verified.exp, verified.nbf, self.now(ctx), &current);
                    }
                    _ => self.cache.remove(digest),
                }
            }
            ctx.count(Counter::JwtCacheMiss);
        }
        let jwt = decode(&token).map_err(|e| self.reject(format!("Bad token; {e}"), Reason::InvalidCredentials))?;

        // The key claim, from the claims, else from the JWT header (Lua's `a or b`: absent and
        // `false` fall through).
        let claim_name = &self.key_claim_name;
        fn present(v: Option<&Value>) -> Option<&Value> {
            v.filter(|v| !matches!(v, Value::Bool(false)))
        }
        let key = match present(jwt.claims.get(claim_name)).or_else(|| present(jwt.header.get(claim_name))) {
            None => {
                return Err(self.reject(format!("No mandatory '{claim_name}' in claims"), Reason::InvalidCredentials))
            }
            Some(Value::String(s)) if s.is_empty() => {
                return Err(self.reject(format!("Invalid '{claim_name}' in claims"), Reason::InvalidCredentials))
            }
            Some(v) => v,
        };
        let key = key.as_str();
        let found = match key {
            Some(k) => ctx.jwt_credential(k)?,
            None => None,
        };
        let (Some(key), Some(credential)) = (key, found) else {
            return Err(
                self.reject(format!("No credentials found for given '{claim_name}'"), Reason::InvalidCredentials)
            );
        };
        if jwt.algorithm != credential.algorithm {
            return Err(self.reject("Invalid algorithm", Reason::InvalidCredentials));
        }
        // With secret_is_base64 Kong base64-decodes whatever the key material is: a PEM key
        // never decodes, so asymmetric secrets are unusable then.
        let hmac_key: &[u8] = match (&credential.verifier, self.secret_is_base64) {
            (VerifyingKey::Hmac { secret, .. }, false) => secret,
            (VerifyingKey::Hmac { decoded: Some(d), .. }, true) => d,
            (_, true) => return Err(self.reject("Invalid key/secret", Reason::InvalidCredentials)),
            (_, false) => &[],
        };
        if !credential.verifier.verify(jwt.algorithm, hmac_key, jwt.signing_input, &jwt.signature) {
            return Err(self.reject("Invalid signature", Reason::InvalidCredentials));
        }
        let exp = jwt.claims.get("exp").and_then(Value::as_f64);
        let nbf = jwt.claims.get("nbf").and_then(Value::as_f64);
        if let Some(digest) = digest {
            let verified = Verified { credential: Rc::clone(&credential), key: key.into(), exp, nbf };
            self.cache.insert(digest, verified);
        }
        self.check_times(exp, nbf, self.now(ctx), &credential)
    }
}

impl Jwt {
    /// The clock, for [`Jwt::check_times`]: asked of the host only when the configuration checks
    /// a time (`claims_to_verify`, `maximum_expiration`); unused otherwise.
    fn now(&self, ctx: &mut Ctx<'_, '_>) -> f64 {
        if self.claims_to_verify.is_empty() && self.maximum_expiration <= 0.0 {
            return 0.0;
        }
        ctx.now() as f64
    }

    /// `claims_to_verify` and `maximum_expiration` against the clock: on every request, cached
    /// or not (`exp` / `nbf`: the claims as numbers, `None` when absent or not a number).
    fn check_times(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        now: f64,
        credential: &JwtCredential,
    ) -> Result<Authenticated, Halt> {
        let mut errors = Map::new();
        for claim in &self.claims_to_verify {
            let (name, value) = match claim {
                Claim::Exp => ("exp", exp),
                Claim::Nbf => ("nbf", nbf),
            };
            let problem = match (claim, value) {
                (_, None) => "must be a number",
                (Claim::Exp, Some(exp)) if exp <= now => "token expired",
                (Claim::Nbf, Some(nbf)) if nbf > now => "token not valid yet",
                _ => continue,
            };
            errors.insert(name.to_string(), Value::String(problem.to_string()));
        }
        if errors.is_empty()
            && self.maximum_expiration > 0.0
            && exp.is_none_or(|exp| exp - now > self.maximum_expiration)
        {
            errors.insert("exp".to_string(), Value::String("exceeds maximum allowed expiration".to_string()));
        }
        if !errors.is_empty() {
            return Err(rejection(
                Body::JsonObject(Box::new(errors)),
                &self.challenge_invalid,
                Reason::InvalidCredentials,
            ));
        }
        Ok(Authenticated { consumer: credential.consumer.clone(), credential: credential.key.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_like_kongs_regex() {
        let b = |v: &str| bearer_token(v.as_bytes()).map(|t| String::from_utf8(t.to_vec()).unwrap());
        assert_eq!(b("Bearer abc"), Some("abc".into()));
        assert_eq!(b("bearer abc"), Some("abc".into()));
        assert_eq!(b("  Bearer \t abc def "), Some("abc def ".into()));
        assert_eq!(b("Token Bearer abc"), Some("abc".into()));
        assert_eq!(b("BEARER abc"), None);
        assert_eq!(b("Bearerabc"), None);
        assert_eq!(b("Bearer "), None);
        assert_eq!(b("Bearer  "), Some(" ".into()));
        assert_eq!(b("abc"), None);
        assert_eq!(b(""), None);
    }

    #[test]
    fn cookies_like_nginx() {
        let c = |headers: &[&str], name: &str| {
            cookie(headers.iter().map(|h| h.as_bytes()), name.as_bytes())
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(c(&["a=1; jwt=tok; b=2"], "jwt"), Some("tok".into()));
        assert_eq!(c(&["a=1", "JWT=tok"], "jwt"), Some("tok".into()));
        assert_eq!(c(&["xjwt=1; jwt = tok"], "jwt"), Some("tok".into()));
        assert_eq!(c(&["a=1, jwt=tok"], "jwt"), Some("tok".into()));
        assert_eq!(c(&["jwt=first; jwt=second"], "jwt"), Some("first".into()));
        assert_eq!(c(&["jwt=; other=1"], "jwt"), Some("".into()));
        assert_eq!(c(&["jwtx=1; jwt"], "jwt"), None);
        assert_eq!(c(&[], "jwt"), None);
    }

    #[test]
    fn decoding_messages_in_kongs_order() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = |h: &str, c: &str, s: &str| format!("{}.{}.{}", enc(h), enc(c), s);
        let err = |t: String| decode(t.as_bytes()).err();
        assert_eq!(err("abc".into()), Some("invalid JSON"));
        assert_eq!(err("a.b".into()), Some("invalid JSON"));
        assert_eq!(err(token("{", "{}", "")), Some("invalid JSON"));
        assert_eq!(err(token(r#"{"alg":"HS256"}"#, "nope", "")), Some("invalid JSON"));
        assert_eq!(err(token(r#"{"typ":"JWT"}"#, "{}", "")), Some("invalid alg"));
        assert_eq!(err(token(r#"{"alg":"none"}"#, "{}", "")), Some("invalid alg"));
        assert_eq!(err(token(r#"{"alg":"ES512"}"#, "{}", "")), Some("invalid alg"));
        assert_eq!(err(token(r#"{"alg":256}"#, "{}", "")), Some("invalid alg"));
        assert_eq!(err(token(r#""HS256""#, "{}", "")), Some("invalid alg"));
        assert_eq!(err(token(r#"{"alg":"HS256"}"#, "[1]", "")), Some("invalid claims"));
        assert_eq!(err(token(r#"{"alg":"HS256"}"#, "{}", "!!")), Some("invalid signature"));
        assert_eq!(err(token(r#"{"alg":"HS256"}"#, "{}", "a")), Some("invalid signature"));
        // the third part runs to the end: more dots make it invalid base64
        assert_eq!(err(token(r#"{"alg":"HS256"}"#, "{}", "c2ln.c2ln")), Some("invalid signature"));
        let ok = token(r#"{"alg":"HS256"}"#, r#"{"iss":"x"}"#, "c2ln");
        let d = decode(ok.as_bytes()).unwrap();
        assert_eq!(d.algorithm, Algorithm::HS256);
        assert_eq!(d.claims["iss"], "x");
        assert_eq!(d.signature, b"sig");
        assert_eq!(d.signing_input, ok.rsplit_once('.').unwrap().0.as_bytes());
    }

    #[test]
    fn segments_are_strict_base64url() {
        let enc = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let header = enc(br#"{"alg":"HS256"}"#);
        let claims = enc(br#"{"iss":"x"}"#);
        let err = |t: String| decode(t.as_bytes()).err();
        // b"\xfb\xff" is `-_8` in base64url, `+/8` in the standard alphabet
        assert!(decode(format!("{header}.{claims}.-_8").as_bytes()).is_ok());
        assert_eq!(err(format!("{header}.{claims}.+/8")), Some("invalid signature"));
        assert_eq!(err(format!("{header}.{claims}.-_8=")), Some("invalid signature"));
        // `-_9` decodes to the same bytes with a stray bit: a second spelling
        assert_eq!(err(format!("{header}.{claims}.-_9")), Some("invalid signature"));
        let claims_std = base64::engine::general_purpose::STANDARD_NO_PAD.encode(br#"{"iss":"x","p":"???"}"#);
        assert!(claims_std.contains('+') || claims_std.contains('/'), "{claims_std}");
        assert_eq!(err(format!("{header}.{claims_std}.-_8")), Some("invalid JSON"));
        assert_eq!(err(format!("{header}=.{claims}.-_8")), Some("invalid JSON"));
    }
}

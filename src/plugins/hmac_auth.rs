//! hmac-auth (BEHAVIOUR.md §B7): an HMAC signature of chosen request headers in `Authorization` (or
//! `Proxy-Authorization`), with a `Date` / `X-Date` within `clock_skew`, and optionally a
//! `Digest` of the body.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::{AuthPlugin, AuthSettings, Authenticated, Halt};
// Re-exported: these lived here before they moved to the leaves `crypto::hmac` and `time`.
use super::context::Ctx;
use super::BuildContext;
pub use crate::crypto::hmac::HmacAlgorithm;
use crate::error::{parse_section, ConfigError, ErrorKind};
use crate::request::Request;
use crate::response::{Reason, Rejection};
pub use crate::time::parse_http_date;

const SIGNATURE_NOT_VALID: &str = "HMAC signature cannot be verified";
const SIGNATURE_NOT_SAME: &str = "HMAC signature does not match";
const DATE_REQUIRED: &str =
    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHmacAuth {
    #[serde(default)]
    hide_credentials: bool,
    #[serde(default = "default_clock_skew")]
    clock_skew: f64,
    anonymous: Option<String>,
    #[serde(default)]
    validate_request_body: bool,
    #[serde(default)]
    enforce_headers: Vec<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    realm: Option<String>,
}

fn default_clock_skew() -> f64 {
    300.0
}

fn default_algorithms() -> Vec<String> {
    HmacAlgorithm::ALL.iter().map(|a| a.name().to_string()).collect()
}

pub struct HmacAuth {
    settings: AuthSettings,
    hide_credentials: bool,
    clock_skew: f64,
    validate_request_body: bool,
    enforce_headers: Vec<String>,
    algorithms: Vec<HmacAlgorithm>,
    challenge: String,
}

/// Standard alphabet; padding optional, as nginx's `ngx.decode_base64` accepts.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

impl HmacAuth {
    pub fn build(config: Value, path: &str, ctx: &BuildContext<'_>) -> Result<HmacAuth, ConfigError> {
        let raw: RawHmacAuth = parse_section(config, path)?;
        // NaN is not greater than 0 either.
        if raw.clock_skew.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(ConfigError::new(
                format!("{path}.clock_skew"),
                ErrorKind::Rule("value must be greater than 0"),
            ));
        }
        let mut algorithms = Vec::with_capacity(raw.algorithms.len());
        for (i, name) in raw.algorithms.iter().enumerate() {
            let algorithm = HmacAlgorithm::parse(name.as_bytes()).ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.algorithms[{i}]"),
                    ErrorKind::Rule("expected one of: hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512"),
                )
            })?;
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        ctx.check_anonymous(&raw.anonymous, path)?;
        super::check_realm(&raw.realm, path)?;
        let challenge = match &raw.realm {
            Some(realm) => format!("hmac realm=\"{realm}\""),
            None => "hmac".to_string(),
        };
        Ok(HmacAuth {
            // hmac-auth has no preflight bypass.
            settings: AuthSettings { anonymous: raw.anonymous, run_on_preflight: true },
            hide_credentials: raw.hide_credentials,
            clock_skew: raw.clock_skew,
            validate_request_body: raw.validate_request_body,
            enforce_headers: raw.enforce_headers,
            algorithms,
            challenge,
        })
    }

    fn reject(&self, message: &'static str, reason: Reason) -> Halt {
        Halt::from(Rejection::kong(401, message, reason).with_challenge(&self.challenge))
    }

    /// Kong's `validate_clock_skew` for one header.
    fn date_ok(&self, ctx: &mut Ctx<'_, '_>, header: &str) -> bool {
        let Some(t) = ctx.req.first_header(header).and_then(parse_http_date) else {
            return false;
        };
        let now = ctx.now();
        (now as f64 - t as f64).abs() <= self.clock_skew
    }

    /// Kong's `validate_params`: enforced headers signed, algorithm allowed.
    fn allowed(&self, params: &HmacParams) -> Option<HmacAlgorithm> {
        let signed = params.headers();
        if !self.enforce_headers.iter().all(|e| signed.contains(&e.as_bytes())) {
            return None;
        }
        HmacAlgorithm::parse(&params.algorithm).filter(|a| self.algorithms.contains(a))
    }

    /// Kong's `validate_body`.
    fn body_ok(&self, ctx: &Ctx<'_, '_>) -> Result<bool, Halt> {
        let body = ctx.raw_body()?;
        let Some(received) = ctx.req.first_header("digest") else {
            return Ok(body.is_empty());
        };
        Ok(received == body_digest(body).as_bytes())
    }
}

/// `SHA-256=<base64(sha256(body))>`: the `Digest` header value a client sends with
/// `validate_request_body`.
pub fn body_digest(body: &[u8]) -> String {
    format!("SHA-256={}", base64::engine::general_purpose::STANDARD.encode(crate::consumers::sha256(body)))
}

impl AuthPlugin for HmacAuth {
    fn name(&self) -> &'static str {
        "hmac-auth"
    }

    fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn authenticate(&self, ctx: &mut Ctx<'_, '_>) -> Result<Authenticated, Halt> {
        let authorization = ctx.req.first_header("authorization");
        let proxy_authorization = ctx.req.first_header("proxy-authorization");
        if authorization.is_none() && proxy_authorization.is_none() {
            return Err(self.reject("Unauthorized", Reason::NoCredentials));
        }
        if !(self.date_ok(ctx, "x-date") || self.date_ok(ctx, "date")) {
            return Err(self.reject(DATE_REQUIRED, Reason::InvalidCredentials));
        }
        // Proxy-Authorization first; if it yields no username, Authorization. hide_credentials
        // removes the header that was used (Authorization even when it does not parse).
        let params = match proxy_authorization.and_then(parse_authorization) {
            Some(p) => {
                if self.hide_credentials {
                    ctx.edits.remove_header("proxy-authorization");
                }
                Some(p)
            }
            None => {
                if self.hide_credentials && authorization.is_some() {
                    ctx.edits.remove_header("authorization");
                }
                authorization.and_then(parse_authorization)
            }
        };
        let Some(params) = params else {
            return Err(self.reject(SIGNATURE_NOT_VALID, Reason::InvalidCredentials));
        };
        let Some(algorithm) = self.allowed(&params) else {
            return Err(self.reject(SIGNATURE_NOT_VALID, Reason::InvalidCredentials));
        };
        let found = match std::str::from_utf8(&params.username) {
            Ok(username) => ctx.hmac_credential(username)?,
            Err(_) => None,
        };
        let Some(credential) = found else {
            return Err(self.reject(SIGNATURE_NOT_VALID, Reason::InvalidCredentials));
        };
        let signature = BASE64.decode(&params.signature).ok();
        let protocol = if params.headers().contains(&&b"request-line"[..]) { ctx.request_protocol() } else { None };
        let signed = signature.as_ref().and_then(|sig| {
            let signing_string = signing_string(ctx.req, &params.headers(), protocol.as_deref())?;
            Some(algorithm.verify(credential.secret(), &signing_string, sig))
        });
        if signed != Some(true) {
            return Err(self.reject(SIGNATURE_NOT_SAME, Reason::InvalidCredentials));
        }
        if self.validate_request_body && !self.body_ok(ctx)? {
            return Err(self.reject(SIGNATURE_NOT_SAME, Reason::InvalidCredentials));
        }
        Ok(Authenticated { consumer: credential.consumer.clone(), credential: credential.username.clone() })
    }
}

// ---------------------------------------------------------------------------------------------
// The Authorization header.

/// The fields of `hmac username="…", algorithm="…", headers="…", signature="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacParams {
    pub username: Vec<u8>,
    pub algorithm: Vec<u8>,
    /// The `headers` field as written (names separated by single spaces).
    pub header_list: Vec<u8>,
    pub signature: Vec<u8>,
}

impl HmacParams {
    /// The signed header names: `headers` split on each space, as Kong's `split(s, " ")` does
    /// (two spaces in a row give an empty name).
    pub fn headers(&self) -> Vec<&[u8]> {
        self.header_list.split(|&b| b == b' ').collect()
    }
}

/// Kong's pattern
/// `\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",\s*signature="(.+)"`
/// (unanchored, greedy captures), without a regex engine: every capture is as long as it can be
/// while the rest still matches. `None` when the header does not match.
pub fn parse_authorization(value: &[u8]) -> Option<HmacParams> {
    // `.` does not match a newline; header values never hold one, refuse rather than guess.
    if value.contains(&b'\n') {
        return None;
    }
    // The first `[Hh]mac\s*username="`: if the pattern matches from a later one it matches from
    // this one too (the username capture can absorb the difference).
    let start = (0..value.len()).find_map(|i| {
        let rest = value.get(i..)?;
        if !(rest.starts_with(b"hmac") || rest.starts_with(b"Hmac")) {
            return None;
        }
        let after = skip_space(value, i + 4);
        value.get(after..)?.starts_with(b"username=\"").then_some(after + 10)
    })?;

    // For each field, the positions where a `",\s*<field>="` marker starts (the closing quote of
    // the previous capture), with where the next capture starts.
    let markers = |field: &[u8]| -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let mut i = start;
        while let Some(rest) = value.get(i..) {
            if rest.starts_with(b"\",") {
                let after = skip_space(value, i + 2);
                if let Some(tail) = value.get(after..) {
                    if tail.get(field.len()..).is_some_and(|t| tail.starts_with(field) && t.starts_with(b"=\"")) {
                        found.push((i, after + field.len() + 2));
                    }
                }
            }
            if rest.is_empty() {
                break;
            }
            i += 1;
        }
        found
    };
    let algorithm_markers = markers(b"algorithm");
    let headers_markers = markers(b"headers");
    let signature_markers = markers(b"signature");
    let last_quote = value.iter().rposition(|&b| b == b'"')?;

    // Right to left: the markers after which the rest of the pattern can still match (every
    // capture non-empty).
    let valid_signature: Vec<(usize, usize)> =
        signature_markers.iter().copied().filter(|(_, s0)| last_quote > *s0).collect();
    let max_sig_start = valid_signature.iter().map(|(p, _)| *p).max();
    let valid_headers: Vec<(usize, usize)> =
        headers_markers.iter().copied().filter(|(_, h0)| max_sig_start.is_some_and(|p| p > *h0)).collect();
    let max_hdr_start = valid_headers.iter().map(|(p, _)| *p).max();
    let valid_algorithm: Vec<(usize, usize)> =
        algorithm_markers.iter().copied().filter(|(_, a0)| max_hdr_start.is_some_and(|p| p > *a0)).collect();

    // Left to right: each capture greedy given the previous ones.
    let (a_end, a0) = valid_algorithm.iter().copied().filter(|(p, _)| *p > start).max()?;
    let (h_end, h0) = valid_headers.iter().copied().filter(|(p, _)| *p > a0).max()?;
    let (s_end, s0) = valid_signature.iter().copied().filter(|(p, _)| *p > h0).max()?;
    let slice = |from: usize, to: usize| value.get(from..to).map(<[u8]>::to_vec);
    Some(HmacParams {
        username: slice(start, a_end)?,
        algorithm: slice(a0, h_end)?,
        header_list: slice(h0, s_end)?,
        signature: slice(s0, last_quote)?,
    })
}

fn skip_space(value: &[u8], mut i: usize) -> usize {
    while value.get(i).is_some_and(|b| b.is_ascii_whitespace() || *b == 0x0b) {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// The signing string.

/// The request's HTTP version as Kong's `request-line` writes it (`1.0`, `1.1`, `2.0`...), from
/// the host's protocol name (Envoy: `HTTP/1.1`, `HTTP/2`).
pub fn http_version(protocol: &str) -> Option<&'static str> {
    match protocol.trim().to_ascii_uppercase().as_str() {
        "HTTP/1.0" => Some("1.0"),
        "HTTP/1.1" => Some("1.1"),
        "HTTP/2" | "HTTP/2.0" => Some("2.0"),
        "HTTP/3" | "HTTP/3.0" => Some("3.0"),
        _ => None,
    }
}

/// Kong's `create_hash` input: one line per signed header name, joined with `\n`. `None` when a
/// `request-line` is signed but the host does not tell the protocol (the signature then cannot
/// match).
pub fn signing_string(req: &Request<'_>, headers: &[&[u8]], protocol: Option<&str>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (i, name) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        match header_value(req, name) {
            Some(value) => {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
            }
            None if *name == b"@request-target" => {
                out.extend_from_slice(b"@request-target: ");
                out.extend_from_slice(req.method.to_ascii_lowercase().as_bytes());
                out.push(b' ');
                out.extend_from_slice(req.path.as_bytes());
            }
            None if *name == b"request-line" => {
                let version = http_version(protocol?)?;
                out.extend_from_slice(format!("{} {} HTTP/{version}", req.method, req.path).as_bytes());
            }
            None => {
                out.extend_from_slice(name);
                out.push(b':');
            }
        }
    }
    Some(out)
}

/// `kong.request.get_header(name)`: case-insensitive, first value, `_` also matches `-`.
fn header_value<'a>(req: &Request<'a>, name: &[u8]) -> Option<&'a [u8]> {
    let name = std::str::from_utf8(name).ok().filter(|n| !n.is_empty())?;
    req.first_header(name).or_else(|| name.contains('_').then(|| req.first_header(&name.replace('_', "-")))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: &str) -> Option<(String, String, String, String)> {
        parse_authorization(v.as_bytes()).map(|p| {
            (
                String::from_utf8(p.username).unwrap(),
                String::from_utf8(p.algorithm).unwrap(),
                String::from_utf8(p.header_list).unwrap(),
                String::from_utf8(p.signature).unwrap(),
            )
        })
    }

    fn t(u: &str, a: &str, h: &str, s: &str) -> Option<(String, String, String, String)> {
        Some((u.into(), a.into(), h.into(), s.into()))
    }

    #[test]
    fn parses_kongs_grammar() {
        let plain = r#"hmac username="bob", algorithm="hmac-sha1", headers="date", signature="c2ln""#;
        assert_eq!(parsed(plain), t("bob", "hmac-sha1", "date", "c2ln"));
        assert_eq!(
            parsed(r#"Hmac username="bob",algorithm="hmac-sha256",headers="date x-foo",signature="c2ln""#),
            t("bob", "hmac-sha256", "date x-foo", "c2ln")
        );
        assert_eq!(
            parsed(r#"  hmac   username="bob",   algorithm="a",	headers="h", signature="s" trailing"#),
            t("bob", "a", "h", "s")
        );
        // not a scheme Kong accepts, fields out of order, missing comma, empty capture
        assert_eq!(parsed(r#"HMAC username="bob", algorithm="a", headers="h", signature="s""#), None);
        assert_eq!(parsed(r#"hmac algorithm="a", username="bob", headers="h", signature="s""#), None);
        assert_eq!(parsed(r#"hmac username="bob" algorithm="a", headers="h", signature="s""#), None);
        assert_eq!(parsed(r#"hmac username="", algorithm="a", headers="h", signature="s""#), None);
        assert_eq!(parsed(r#"hmac username="bob", algorithm="a", headers="h", signature="""#), None);
        assert_eq!(parsed(r#"hmac username="bob", algorithm="a", headers="h""#), None);
        assert_eq!(parsed("Basic Ym9iOnB3"), None);
        assert_eq!(parsed(""), None);
        assert_eq!(parsed("hmac"), None);
        assert_eq!(parsed("hmac username=\""), None);
    }

    #[test]
    fn captures_are_greedy_like_the_regex() {
        // The username capture runs to the last `", algorithm="` that still lets the rest match.
        assert_eq!(
            parsed(r#"hmac username="a", algorithm="x", algorithm="b", headers="h", signature="s""#),
            t(r#"a", algorithm="x"#, "b", "h", "s")
        );
        // the signature runs to the last quote
        assert_eq!(
            parsed(r#"hmac username="u", algorithm="a", headers="h", signature="s" x="y""#),
            t("u", "a", "h", r#"s" x="y"#)
        );
        // a later `hmac` inside the username
        assert_eq!(
            parsed(r#"hmac hmac username="u", algorithm="a", headers="h", signature="s""#),
            t("u", "a", "h", "s")
        );
    }

    #[test]
    fn header_list_split_keeps_empty_names() {
        let p = parse_authorization(br#"hmac username="u", algorithm="a", headers="date  x", signature="s""#).unwrap();
        assert_eq!(p.headers(), vec![&b"date"[..], b"", b"x"]);
    }

    #[test]
    fn versions() {
        assert_eq!(http_version("HTTP/1.0"), Some("1.0"));
        assert_eq!(http_version("HTTP/1.1"), Some("1.1"));
        assert_eq!(http_version("HTTP/2"), Some("2.0"));
        assert_eq!(http_version("HTTP/3"), Some("3.0"));
        assert_eq!(http_version("SPDY"), None);
    }

    #[test]
    fn signing_string_forms() {
        let headers: Vec<crate::request::Header> =
            vec![("date".into(), b"D".to_vec()), ("x-foo".into(), b"1".to_vec()), ("x-foo".into(), b"2".to_vec())];
        let req = Request::new("POST", "/p?a=%20b", &headers, crate::request::Body::Empty);
        let names: Vec<&[u8]> = vec![b"date", b"@request-target", b"request-line", b"absent", b"X-Foo", b"x_foo"];
        let s = signing_string(&req, &names, Some("HTTP/2")).unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "date: D\n@request-target: post /p?a=%20b\nPOST /p?a=%20b HTTP/2.0\nabsent:\nX-Foo: 1\nx_foo: 1"
        );
        assert_eq!(signing_string(&req, &[b"request-line"], None), None);
    }
}

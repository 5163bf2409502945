//! Request parsing as plain functions (bytes and strings in, values or Kong's errors out), so that
//! a fuzz target can drive them without a server: bodies (JSON or form), list queries, offsets.

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use crate::entity::validate::{valid_tag, Source};
use crate::error::ApiError;

/// A request body as a JSON object. An empty body is an empty object (Kong reads no body as
/// `{}`); `application/json` and `application/x-www-form-urlencoded` are read; any other type
/// is a 415 (multipart included: decK, curl `--data` and the usual clients send these two).
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<(Map<String, Json>, Source), ApiError> {
    let media = content_type.map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), Source::Json));
    }
    match media.as_deref() {
        None | Some("application/json") => match serde_json::from_slice::<Json>(body) {
            Ok(Json::Object(o)) => Ok((o, Source::Json)),
            _ => Err(ApiError::BadRequest("Cannot parse JSON body".into())),
        },
        Some("application/x-www-form-urlencoded") => Ok((parse_form(body)?, Source::Form)),
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}

/// A form as Kong decodes it: `a.b=v` is `{"a": {"b": "v"}}`; `a[]=v`, `a[1]=v` and a repeated
/// `a` make an array.
pub fn parse_form(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    let mut out = Map::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let name = form_decode(halves.next().unwrap_or_default())?;
        let value = Json::String(form_decode(halves.next().unwrap_or_default())?);
        let (base, is_array) = match name.find('[') {
            Some(i) if name.ends_with(']') => (name.get(..i).unwrap_or_default().to_string(), true),
            _ => (name.to_string(), false),
        };
        if let Some((outer, inner)) = base.split_once('.') {
            let slot = out.entry(outer.to_string()).or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(o) = slot {
                o.insert(inner.to_string(), value);
            }
            continue;
        }
        match out.get_mut(&base) {
            Some(Json::Array(a)) => a.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Json::Array(vec![first, value]);
            }
            None if is_array => {
                out.insert(base, Json::Array(vec![value]));
            }
            None => {
                out.insert(base, value);
            }
        }
    }
    Ok(out)
}

/// One name or value of a form: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn form_decode(part: &[u8]) -> Result<String, ApiError> {
    let spaced: Vec<u8> = part.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::BadRequest("Cannot parse form body".into()))
}

/// A list's query: `size`, `offset`, `tags`, `custom_id` (others are ignored, as Kong does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub size: usize,
    /// The decoded offset: the id after which the page starts.
    pub after: Option<String>,
    pub tags: Vec<String>,
    /// `,` (all of them) rather than `/` (any).
    pub tags_all: bool,
    /// The raw `tags` argument, carried into `next`.
    pub tags_raw: Option<String>,
    pub custom_id: Option<String>,
}

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;
const MAX_TAGS: usize = 5;

pub fn parse_list_query(query: Option<&str>) -> Result<ListParams, ApiError> {
    let mut p = ListParams { size: DEFAULT_PAGE_SIZE, ..ListParams::default() };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "size" => {
                p.size = match value.trim().parse::<usize>() {
                    Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                    _ => return Err(ApiError::InvalidSize),
                }
            }
            "offset" => p.after = Some(decode_offset(&value)?),
            "tags" => {
                let (tags, all) = parse_tags(&value)?;
                p.tags = tags;
                p.tags_all = all;
                p.tags_raw = Some(value.into_owned());
            }
            "custom_id" => {
                if value.is_empty() {
                    return Err(options_error("custom_id", "length must be at least 1"));
                }
                p.custom_id = Some(value.into_owned());
            }
            _ => {}
        }
    }
    Ok(p)
}

fn options_error(field: &str, message: &str) -> ApiError {
    let mut m = Map::new();
    m.insert(field.into(), Json::String(message.into()));
    ApiError::InvalidOptions(m)
}

/// `a,b` (all) or `a/b` (any), at most five tags.
pub fn parse_tags(value: &str) -> Result<(Vec<String>, bool), ApiError> {
    let has_and = value.contains(',');
    let has_or = value.contains('/');
    if has_and && has_or {
        return Err(options_error("tags", "invalid filter syntax"));
    }
    let tags: Vec<String> = value.split([',', '/']).map(str::to_string).collect();
    if tags.len() > MAX_TAGS {
        return Err(options_error("tags", "cannot query more than 5 tags"));
    }
    if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
        return Err(options_error(
            "tags",
            &format!("invalid tag '{bad}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"),
        ));
    }
    Ok((tags, !has_or))
}

/// The opaque `offset`: the last id of a page, base64url. Anything else is Kong's `invalid offset`.
pub fn encode_offset(last_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_id)
}

pub fn decode_offset(token: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| crate::entity::is_uuid(s))
        .ok_or_else(|| ApiError::InvalidOffset(token.to_string()))
}

/// A path segment, percent-decoded (axum hands them over decoded already; this is the check
/// that a segment is usable text).
pub fn path_segment(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.chars().any(char::is_control) {
        return Err(ApiError::NotFound);
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies() {
        let (m, s) = parse_body(Some("application/x-www-form-urlencoded"), b"username=anonymous_users").unwrap();
        assert_eq!(Json::Object(m), json!({"username": "anonymous_users"}));
        assert_eq!(s, Source::Form);
        let form = parse_form(b"consumer.id=x&tags[]=a&tags[]=b&k=1&k=2").unwrap();
        assert!(parse_form(b"u=%ff%fe").is_err());
        assert_eq!(Json::Object(parse_form(b"a=b+c%21").unwrap()), json!({"a": "b c!"}));
        assert_eq!(Json::Object(form), json!({"consumer": {"id": "x"}, "tags": ["a", "b"], "k": ["1", "2"]}));
        assert!(matches!(parse_body(Some("application/json"), b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_body(Some("application/json"), b"[1]"), Err(ApiError::BadRequest(_))));
        assert_eq!(parse_body(Some("text/plain"), b"x"), Err(ApiError::UnsupportedMediaType));
        assert_eq!(parse_body(Some("text/plain"), b"").map(|b| b.0.len()), Ok(0));
    }

    #[test]
    fn queries() {
        assert_eq!(parse_list_query(None).unwrap().size, 100);
        assert_eq!(parse_list_query(Some("size=0")), Err(ApiError::InvalidSize));
        assert_eq!(parse_list_query(Some("size=1001")), Err(ApiError::InvalidSize));
        assert_eq!(parse_list_query(Some("size=x")), Err(ApiError::InvalidSize));
        assert!(matches!(parse_list_query(Some("offset=%%%")), Err(ApiError::InvalidOffset(_))));
        let id = "3f0a6e8e-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        let q = format!("offset={}", encode_offset(id));
        assert_eq!(parse_list_query(Some(&q)).unwrap().after.as_deref(), Some(id));
        let t = parse_list_query(Some("tags=a/b")).unwrap();
        assert_eq!((t.tags, t.tags_all), (vec!["a".to_string(), "b".to_string()], false));
        assert!(parse_list_query(Some("tags=a,b/c")).is_err());
        assert!(parse_list_query(Some("tags=a,b,c,d,e,f")).is_err());
        assert!(parse_list_query(Some("custom_id=")).is_err());
    }
}

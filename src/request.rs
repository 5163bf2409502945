//! The request as the engine sees it: the headers the host handed over (with duplicates and raw
//! bytes), the raw path and query, and the body when a plugin needed it.
//!
//! Query strings and form bodies are parsed the way Kong's `ngx.req.get_uri_args` /
//! `get_post_args` do: `&`-separated, `+` is a space, `%XX` is decoded, a bare `name` is a flag.

use std::borrow::Cow;
use std::cell::OnceCell;

/// One header as received: lowercase name, raw value bytes.
pub type Header = (String, Vec<u8>);

/// What the engine knows of the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// The request has no body.
    Empty,
    /// The request has a body that has not been read yet.
    Pending,
    /// The whole body.
    Complete(&'a [u8]),
}

/// What one lookup of a name found, in Kong's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    Absent,
    /// Present, but not a string: a bare query flag, or a JSON number/bool/null.
    NotString,
    One(Cow<'a, [u8]>),
    /// The name occurs more than once (or is a JSON array/object).
    Many,
}

impl Found<'_> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Found::Absent)
    }
}

pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query exactly as the client sent them.
    pub path: &'a str,
    headers: &'a [Header],
    pub body: Body<'a>,
    query: OnceCell<Vec<Arg<'a>>>,
    /// Identity headers (`identity_headers::is_spoofable`) read as absent: the client's are stripped
    /// before any plugin runs (BEHAVIOUR.md §B2).
    hide_identity_headers: bool,
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, path: &'a str, headers: &'a [Header], body: Body<'a>) -> Self {
        Request { method, path, headers, body, query: OnceCell::new(), hide_identity_headers: false }
    }

    /// The same request as plugins must see it when the identity headers in it came from the
    /// client: without them. [`Request::headers`] still lists everything (to strip it upstream).
    pub fn without_identity_headers(&self) -> Request<'a> {
        Request { hide_identity_headers: true, ..Request::new(self.method, self.path, self.headers, self.body) }
    }

    /// Header names are compared case-insensitively.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        let hidden = self.hide_identity_headers && crate::identity_headers::is_spoofable(name);
        self.headers.iter().filter(move |(n, _)| !hidden && n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    pub fn first_header(&self, name: &str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.first_header(name).is_some()
    }

    pub fn headers(&self) -> &'a [Header] {
        self.headers
    }

    /// Kong's `headers[name]`: one value, several (a table), or none.
    pub fn header(&self, name: &str) -> Found<'a> {
        let mut values = self.header_values(name);
        match (values.next(), values.next()) {
            (None, _) => Found::Absent,
            (Some(v), None) => Found::One(Cow::Borrowed(v)),
            (Some(_), Some(_)) => Found::Many,
        }
    }

    /// The raw query string (after the first `?`), if any.
    pub fn raw_query(&self) -> Option<&'a str> {
        self.path.split_once('?').map(|(_, q)| q)
    }

    fn args(&self) -> &[Arg<'a>] {
        self.query.get_or_init(|| parse_args(self.raw_query().unwrap_or("")))
    }

    /// Kong's `query[name]`.
    pub fn query_arg(&self, name: &str) -> Found<'_> {
        lookup_args(self.args(), name)
    }

    /// Every occurrence of the query argument `name`, in order: `Some(value)` (percent-decoded),
    /// or `None` for a bare flag (`?name`).
    pub fn query_values(&self, name: &str) -> Vec<Option<&[u8]>> {
        self.args().iter().filter(|a| a.key.as_ref() == name.as_bytes()).map(|a| a.value.as_deref()).collect()
    }

    pub fn has_query_arg(&self, name: &str) -> bool {
        self.args().iter().any(|a| a.key.as_ref() == name.as_bytes())
    }

    /// The path with every query argument named `name` removed, the others kept in order.
    pub fn path_without_query_arg(&self, name: &str) -> Option<String> {
        let (path, query) = self.path.split_once('?')?;
        if !self.has_query_arg(name) {
            return None;
        }
        let kept = remove_args(query, name);
        Some(if kept.is_empty() { path.to_string() } else { format!("{path}?{kept}") })
    }

    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.first_header("content-type")
    }
}

/// One `name[=value]` segment of a query string or form body.
#[derive(Debug)]
pub struct Arg<'a> {
    key: Cow<'a, [u8]>,
    /// `None` for a bare `name` (a flag).
    value: Option<Cow<'a, [u8]>>,
}

fn parse_args(s: &str) -> Vec<Arg<'_>> {
    s.split('&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| match seg.split_once('=') {
            Some((k, v)) => Arg { key: url_decode(k.as_bytes()), value: Some(url_decode(v.as_bytes())) },
            None => Arg { key: url_decode(seg.as_bytes()), value: None },
        })
        .filter(|a| !a.key.is_empty())
        .collect()
}

fn lookup_args<'s>(args: &'s [Arg<'_>], name: &str) -> Found<'s> {
    let mut hits = args.iter().filter(|a| a.key.as_ref() == name.as_bytes());
    match (hits.next(), hits.next()) {
        (None, _) => Found::Absent,
        (Some(_), Some(_)) => Found::Many,
        (Some(Arg { value: None, .. }), None) => Found::NotString,
        (Some(Arg { value: Some(v), .. }), None) => Found::One(Cow::Borrowed(v.as_ref())),
    }
}

/// `s` (a query string or form body) without the segments whose decoded name is `name`.
fn remove_args(s: &str, name: &str) -> String {
    s.split('&')
        .filter(|seg| {
            let key = seg.split_once('=').map_or(*seg, |(k, _)| k);
            url_decode(key.as_bytes()).as_ref() != name.as_bytes()
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decoding with `+` as space; malformed escapes are kept literally (as nginx does).
pub fn url_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (input.get(i + 1).and_then(hex_val), input.get(i + 2).and_then(hex_val)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex_val(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A request body parsed by its content type, as Kong's `kong.request.get_body()` does.
pub enum ParsedBody<'a> {
    Form(&'a str, Vec<Arg<'a>>),
    Json(serde_json::Map<String, serde_json::Value>),
    Multipart(Multipart<'a>),
    /// Another content type, or a body that does not parse: it holds no fields.
    Unsupported,
}

impl<'a> ParsedBody<'a> {
    pub fn parse(content_type: Option<&'a [u8]>, body: &'a [u8]) -> ParsedBody<'a> {
        let ct = match content_type.and_then(|c| std::str::from_utf8(c).ok()) {
            Some(c) => c.to_ascii_lowercase(),
            None => return ParsedBody::Unsupported,
        };
        if ct.starts_with("application/x-www-form-urlencoded") {
            match std::str::from_utf8(body) {
                Ok(s) => ParsedBody::Form(s, parse_args(s)),
                Err(_) => ParsedBody::Unsupported,
            }
        } else if ct.contains("application/json") {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(serde_json::Value::Object(map)) => ParsedBody::Json(map),
                _ => ParsedBody::Unsupported,
            }
        } else if ct.starts_with("multipart/form-data") {
            match content_type.and_then(boundary).and_then(|b| Multipart::parse(body, b)) {
                Some(m) => ParsedBody::Multipart(m),
                None => ParsedBody::Unsupported,
            }
        } else {
            ParsedBody::Unsupported
        }
    }

    /// Kong's `body[name]`.
    pub fn field(&self, name: &str) -> Found<'_> {
        match self {
            ParsedBody::Form(_, args) => lookup_args(args, name),
            ParsedBody::Json(map) => match map.get(name) {
                None => Found::Absent,
                Some(serde_json::Value::String(s)) => Found::One(Cow::Borrowed(s.as_bytes())),
                Some(serde_json::Value::Array(_) | serde_json::Value::Object(_)) => Found::Many,
                Some(_) => Found::NotString,
            },
            ParsedBody::Multipart(m) => {
                let mut hits = m.parts.iter().filter(|p| p.name == name.as_bytes());
                match (hits.next(), hits.next()) {
                    (None, _) => Found::Absent,
                    (Some(p), None) => Found::One(Cow::Borrowed(p.value)),
                    (Some(_), Some(_)) => Found::Many,
                }
            }
            ParsedBody::Unsupported => Found::Absent,
        }
    }

    /// The body re-encoded without the field `name`, other fields kept in order; `None` when the
    /// field is not there (nothing to change).
    pub fn without_field(&self, name: &str) -> Option<Vec<u8>> {
        match self {
            ParsedBody::Form(raw, args) => {
                args.iter().any(|a| a.key.as_ref() == name.as_bytes()).then(|| remove_args(raw, name).into_bytes())
            }
            ParsedBody::Json(map) => {
                if !map.contains_key(name) {
                    return None;
                }
                let mut copy = map.clone();
                copy.shift_remove(name);
                serde_json::to_vec(&copy).ok()
            }
            ParsedBody::Multipart(m) => m.without(name),
            ParsedBody::Unsupported => None,
        }
    }
}

/// The `boundary` parameter of a multipart content type.
fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    let ct = std::str::from_utf8(content_type).ok()?;
    ct.split(';').skip(1).find_map(|param| {
        let (k, v) = param.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').as_bytes())
    })
}

pub struct Multipart<'a> {
    boundary: &'a [u8],
    parts: Vec<Part<'a>>,
}

struct Part<'a> {
    name: Vec<u8>,
    value: &'a [u8],
    /// The whole part (headers and value) as it stands between two delimiters.
    raw: &'a [u8],
}

impl<'a> Multipart<'a> {
    fn parse(body: &'a [u8], boundary: &'a [u8]) -> Option<Multipart<'a>> {
        if boundary.is_empty() {
            return None;
        }
        let mut delimiter = b"--".to_vec();
        delimiter.extend_from_slice(boundary);
        let mut parts = Vec::new();
        let mut rest = body.get(find(body, &delimiter)? + delimiter.len()..)?;
        loop {
            if rest.starts_with(b"--") {
                break; // closing delimiter
            }
            rest = rest.strip_prefix(b"\r\n")?;
            let mut next_delim = b"\r\n".to_vec();
            next_delim.extend_from_slice(&delimiter);
            let end = find(rest, &next_delim)?;
            let raw = rest.get(..end)?;
            let split = find(raw, b"\r\n\r\n")?;
            let head = raw.get(..split)?;
            let value = raw.get(split + 4..)?;
            parts.push(Part { name: part_name(head)?, value, raw });
            rest = rest.get(end + next_delim.len()..)?;
        }
        Some(Multipart { boundary, parts })
    }

    fn without(&self, name: &str) -> Option<Vec<u8>> {
        if !self.parts.iter().any(|p| p.name == name.as_bytes()) {
            return None;
        }
        let mut out = Vec::new();
        for part in self.parts.iter().filter(|p| p.name != name.as_bytes()) {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(part.raw);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary);
        out.extend_from_slice(b"--\r\n");
        Some(out)
    }
}

/// The `name` of a part's `Content-Disposition: form-data; name="..."` header.
fn part_name(head: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head).ok()?;
    head.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        v.split(';').skip(1).find_map(|param| {
            let (pk, pv) = param.trim().split_once('=')?;
            pk.trim().eq_ignore_ascii_case("name").then(|| pv.trim().trim_matches('"').as_bytes().to_vec())
        })
    })
}

/// Linear in the haystack whatever the needle: a naive search compares a boundary at every
/// position, and a client chooses both (a 60 KB boundary over a 1 MB body of `-` was 2.5·10¹⁰
/// byte comparisons per request).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> Vec<Header> {
        list.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn query_lookup_follows_kong() {
        let headers = h(&[]);
        let r = Request::new("GET", "/p?a=1&b&c=&d=1&d=2&e%5B%5D=x&sp=a+b%21", &headers, Body::Empty);
        assert_eq!(r.query_arg("a"), Found::One(Cow::Borrowed(b"1")));
        assert_eq!(r.query_arg("b"), Found::NotString);
        assert_eq!(r.query_arg("c"), Found::One(Cow::Borrowed(b"")));
        assert_eq!(r.query_arg("d"), Found::Many);
        assert_eq!(r.query_arg("e"), Found::Absent);
        assert_eq!(r.query_arg("e[]"), Found::One(Cow::Borrowed(b"x")));
        assert_eq!(r.query_arg("sp"), Found::One(Cow::Borrowed(b"a b!")));
        assert_eq!(r.query_arg("zz"), Found::Absent);
    }

    #[test]
    fn query_removal_keeps_order() {
        let headers = h(&[]);
        let r = Request::new("GET", "/p?z=1&apikey=k&a=2&api%6Bey=x&b", &headers, Body::Empty);
        assert_eq!(r.path_without_query_arg("apikey").unwrap(), "/p?z=1&a=2&b");
        let r = Request::new("GET", "/p?apikey=k", &headers, Body::Empty);
        assert_eq!(r.path_without_query_arg("apikey").unwrap(), "/p");
        assert_eq!(r.path_without_query_arg("other"), None);
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_sees_duplicates() {
        let headers = h(&[("apikey", "a"), ("x", "1"), ("APIKEY", "b")]);
        let r = Request::new("GET", "/", &headers, Body::Empty);
        assert_eq!(r.header("ApiKey"), Found::Many);
        assert_eq!(r.header("x"), Found::One(Cow::Borrowed(b"1")));
        assert_eq!(r.header("y"), Found::Absent);
    }

    #[test]
    fn bodies_by_content_type() {
        let f = ParsedBody::parse(Some(b"application/x-www-form-urlencoded"), b"a=1&apikey=k&b=2");
        assert_eq!(f.field("apikey"), Found::One(Cow::Borrowed(b"k")));
        assert_eq!(f.without_field("apikey").unwrap(), b"a=1&b=2");

        let j = ParsedBody::parse(Some(b"application/json; charset=utf-8"), br#"{"z":1,"apikey":"k","a":[1]}"#);
        assert_eq!(j.field("apikey"), Found::One(Cow::Borrowed(b"k")));
        assert_eq!(j.field("a"), Found::Many);
        assert_eq!(j.field("z"), Found::NotString);
        assert_eq!(j.without_field("apikey").unwrap(), br#"{"z":1,"a":[1]}"#);

        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XX\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nk\r\n--XX--\r\n";
        let m = ParsedBody::parse(Some(b"multipart/form-data; boundary=XX"), body);
        assert_eq!(m.field("apikey"), Found::One(Cow::Borrowed(b"k")));
        assert_eq!(m.field("a"), Found::One(Cow::Borrowed(b"1")));
        let stripped = m.without_field("apikey").unwrap();
        assert_eq!(stripped, b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XX--\r\n");

        assert!(matches!(ParsedBody::parse(Some(b"text/plain"), b"apikey=k"), ParsedBody::Unsupported));
        assert!(matches!(ParsedBody::parse(None, b"apikey=k"), ParsedBody::Unsupported));
        assert!(matches!(ParsedBody::parse(Some(b"application/json"), b"{bad"), ParsedBody::Unsupported));
        assert!(matches!(ParsedBody::parse(Some(b"multipart/form-data"), body), ParsedBody::Unsupported));
    }

    /// Fuzzing finding (docs/RELIABILITY.md): the delimiter search was quadratic, a boundary of
    /// k dashes over a body of n dashes took k·n comparisons (this case: 2·10¹⁰, ~1 s natively
    /// with SIMD, far more in the .wasm). Now linear; the body still has no fields.
    #[test]
    fn a_long_boundary_over_a_long_body_is_searched_in_linear_time() {
        let content_type = format!("multipart/form-data; boundary={}b", "-".repeat(20_000));
        let body = vec![b'-'; 1_000_000];
        let parsed = ParsedBody::parse(Some(content_type.as_bytes()), &body);
        assert!(matches!(parsed, ParsedBody::Unsupported));
        assert_eq!(find(b"xx--ab--abc", b"--abc"), Some(6));
        assert_eq!(find(b"abc", b""), Some(0));
        assert_eq!(find(b"ab", b"abc"), None);
    }

    #[test]
    fn url_decode_keeps_bad_escapes() {
        assert_eq!(url_decode(b"%zz%4"), Cow::<[u8]>::Owned(b"%zz%4".to_vec()));
        assert_eq!(url_decode(b"%41"), Cow::<[u8]>::Owned(b"A".to_vec()));
    }
}

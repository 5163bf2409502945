//! Local responses: Kong's error format with `request_id` and `Accept` negotiation, the compact
//! `{"message":...}` body of jwt and request-termination, and verbatim bodies.

use std::borrow::Cow;

/// Why a request was refused; used in logs (and later metrics), never shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoCredentials,
    InvalidCredentials,
    DuplicateCredentials,
    AclDenied,
    AnonymousMissing,
    Terminated,
    BodyTooLarge,
    InternalError,
    RateLimited,
    StoreNotLoaded,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoCredentials => "no_credentials",
            Reason::InvalidCredentials => "invalid_credentials",
            Reason::DuplicateCredentials => "duplicate_credentials",
            Reason::AclDenied => "acl_denied",
            Reason::AnonymousMissing => "anonymous_missing",
            Reason::Terminated => "terminated",
            Reason::BodyTooLarge => "body_too_large",
            Reason::InternalError => "internal_error",
            Reason::RateLimited => "rate_limited",
            Reason::StoreNotLoaded => "store_not_loaded",
        }
    }
}

/// How the body of a refusal is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Kong's `kong.response.error`: negotiated from `Accept`, with the request id.
    KongError(Cow<'static, str>),
    /// `{"message":"..."}`, no request id (jwt in AND mode, request-termination).
    CompactJson(Cow<'static, str>),
    /// A JSON object sent as is, no request id: jwt's claim errors, e.g. `{"exp":"token expired"}`.
    JsonObject(Box<serde_json::Map<String, serde_json::Value>>),
    /// No body at all.
    Empty,
    /// A body sent verbatim, with its content type if one is configured.
    Verbatim { content_type: Option<String>, body: String },
}

/// A decision to answer the request locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub body: Body,
    /// The `WWW-Authenticate` challenge, if any.
    pub challenge: Option<String>,
    pub reason: Reason,
    /// The plugin that refused (set by the pipeline).
    pub plugin: &'static str,
    /// Extra response headers (rate-limiting's).
    pub headers: Vec<(String, String)>,
    /// The consumer identified when the request was refused (username, else id), for logs.
    pub consumer: Option<String>,
}

impl Rejection {
    pub fn kong(status: u16, message: impl Into<Cow<'static, str>>, reason: Reason) -> Self {
        Rejection {
            status,
            body: Body::KongError(message.into()),
            challenge: None,
            reason,
            plugin: "",
            headers: Vec::new(),
            consumer: None,
        }
    }

    pub fn with_challenge(mut self, challenge: &str) -> Self {
        self.challenge = Some(challenge.to_string());
        self
    }

    /// The message text, for logs.
    /// The plugin that refused; the filter itself when no plugin did (no configuration, a body
    /// too large, a host failure).
    pub fn plugin_or_filter(&self) -> &'static str {
        if self.plugin.is_empty() {
            "consumer-auth"
        } else {
            self.plugin
        }
    }

    /// The one log line written per refused request. Never a secret: the message is one of the
    /// fixed texts, the consumer its name.
    pub fn log_line(&self, request_id: Option<&str>) -> String {
        format!(
            "consumer-auth: refused request_id={} plugin={} reason={} status={} consumer={} message={:?}",
            request_id.unwrap_or("-"),
            self.plugin_or_filter(),
            self.reason.as_str(),
            self.status,
            self.consumer.as_deref().unwrap_or("-"),
            self.message()
        )
    }

    pub fn message(&self) -> &str {
        match &self.body {
            Body::KongError(m) | Body::CompactJson(m) => m,
            Body::JsonObject(_) | Body::Empty | Body::Verbatim { .. } => "",
        }
    }
}

/// A fully rendered local response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The formats `kong.response.error` negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Json,
    Html,
    Xml,
    Text,
}

impl ErrorFormat {
    fn content_type(self) -> &'static str {
        match self {
            ErrorFormat::Json => "application/json; charset=utf-8",
            ErrorFormat::Html => "text/html; charset=utf-8",
            ErrorFormat::Xml => "application/xml; charset=utf-8",
            ErrorFormat::Text => "text/plain; charset=utf-8",
        }
    }

    /// Kong's `get_mime_type` for one media range; unknown types give the default (JSON).
    fn from_media_type(media_type: &str) -> ErrorFormat {
        let (main, sub) = media_type.split_once('/').unwrap_or((media_type, ""));
        match (main.trim().to_ascii_lowercase().as_str(), sub.trim().to_ascii_lowercase().as_str()) {
            ("text", "html") => ErrorFormat::Html,
            ("text", "plain" | "*") => ErrorFormat::Text,
            ("application", "xml") => ErrorFormat::Xml,
            _ => ErrorFormat::Json,
        }
    }

    /// Kong's `get_response_type(Accept)`: the media range with the strictly highest q wins
    /// (earlier ranges win ties); no or unparsable `Accept` gives JSON.
    pub fn negotiate(accept: Option<&[u8]>) -> ErrorFormat {
        let accept = match accept.and_then(|a| std::str::from_utf8(a).ok()) {
            Some(a) => a,
            None => return ErrorFormat::Json,
        };
        let mut best = ErrorFormat::Json;
        let mut best_q = 0.0_f32;
        for range in accept.split(',') {
            let mut params = range.split(';');
            let media_type = params.next().unwrap_or("").trim();
            if !media_type.contains('/') {
                continue;
            }
            let mut q = 1.0_f32;
            for p in params {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if q > best_q {
                best_q = q;
                best = ErrorFormat::from_media_type(media_type);
            }
        }
        best
    }
}

/// Render a refusal. `accept` is the request's `Accept` header; `request_id` the host's id.
pub fn render(rejection: &Rejection, accept: Option<&[u8]>, request_id: Option<&str>) -> LocalResponse {
    let mut headers = Vec::with_capacity(2);
    let body = match &rejection.body {
        Body::KongError(message) => {
            let format = ErrorFormat::negotiate(accept);
            headers.push(("content-type".to_string(), format.content_type().to_string()));
            kong_error_body(format, message, request_id).into_bytes()
        }
        Body::CompactJson(message) => {
            headers.push(("content-type".to_string(), ErrorFormat::Json.content_type().to_string()));
            format!("{{\"message\":{}}}", json_string(message)).into_bytes()
        }
        Body::JsonObject(object) => {
            headers.push(("content-type".to_string(), ErrorFormat::Json.content_type().to_string()));
            serde_json::to_vec(object).unwrap_or_else(|_| b"{}".to_vec())
        }
        Body::Empty => Vec::new(),
        Body::Verbatim { content_type, body } => {
            if let Some(ct) = content_type {
                headers.push(("content-type".to_string(), ct.clone()));
            }
            body.clone().into_bytes()
        }
    };
    headers.extend(rejection.headers.iter().cloned());
    if let Some(challenge) = &rejection.challenge {
        headers.push(("www-authenticate".to_string(), challenge.clone()));
    }
    LocalResponse { status: rejection.status, headers, body }
}

/// The standard reason phrase of a status this filter answers with ("" for others): what an
/// HTTP/1.1 status line carries.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn kong_error_body(format: ErrorFormat, message: &str, request_id: Option<&str>) -> String {
    match format {
        ErrorFormat::Json => match request_id {
            Some(id) => format!("{{\"message\":{},\"request_id\":{}}}", json_string(message), json_string(id)),
            None => format!("{{\"message\":{}}}", json_string(message)),
        },
        ErrorFormat::Text => match request_id {
            Some(id) => format!("{message}\nrequest_id: {id}\n"),
            None => format!("{message}\n"),
        },
        ErrorFormat::Html => {
            let id_line =
                request_id.map(|id| format!("    <p>request_id: {}</p>\n", markup_escape(id))).unwrap_or_default();
            format!(
                "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>{}.</p>\n{}  </body>\n</html>\n",
                markup_escape(message),
                id_line
            )
        }
        ErrorFormat::Xml => {
            let id_line =
                request_id.map(|id| format!("  <requestid>{}</requestid>\n", markup_escape(id))).unwrap_or_default();
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>{}</message>\n{}</error>\n",
                markup_escape(message),
                id_line
            )
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn markup_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_kong() {
        let n = |a: &str| ErrorFormat::negotiate(Some(a.as_bytes()));
        assert_eq!(ErrorFormat::negotiate(None), ErrorFormat::Json);
        assert_eq!(n("text/plain"), ErrorFormat::Text);
        assert_eq!(n("text/html"), ErrorFormat::Html);
        assert_eq!(n("application/xml"), ErrorFormat::Xml);
        assert_eq!(n("application/json"), ErrorFormat::Json);
        assert_eq!(n("*/*"), ErrorFormat::Json);
        assert_eq!(n("text/*"), ErrorFormat::Text);
        assert_eq!(n("text/html;q=0.5, application/xml;q=0.9"), ErrorFormat::Xml);
        assert_eq!(n("text/html, application/xml"), ErrorFormat::Html);
        // an unknown type with the highest q resets to the default
        assert_eq!(n("text/html;q=0.5, image/png"), ErrorFormat::Json);
        assert_eq!(n("garbage"), ErrorFormat::Json);
    }

    #[test]
    fn kong_error_bodies() {
        let r = Rejection::kong(401, "No API key found in request", Reason::NoCredentials).with_challenge("Key");
        let json = render(&r, None, Some("abc"));
        assert_eq!(json.status, 401);
        assert_eq!(json.body, br#"{"message":"No API key found in request","request_id":"abc"}"#);
        assert!(json.headers.contains(&("www-authenticate".into(), "Key".into())));
        assert!(json.headers.contains(&("content-type".into(), "application/json; charset=utf-8".into())));
        let text = render(&r, Some(b"text/plain"), Some("abc"));
        assert_eq!(text.body, b"No API key found in request\nrequest_id: abc\n");
        let xml = render(&r, Some(b"application/xml"), None);
        assert_eq!(
            String::from_utf8(xml.body).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>No API key found in request</message>\n</error>\n"
        );
        let no_id = render(&r, None, None);
        assert_eq!(no_id.body, br#"{"message":"No API key found in request"}"#);
    }

    #[test]
    fn messages_are_escaped() {
        let r = Rejection::kong(403, "say \"hi\" <b>", Reason::AclDenied);
        assert_eq!(render(&r, None, None).body, br#"{"message":"say \"hi\" <b>"}"#);
        let html = String::from_utf8(render(&r, Some(b"text/html"), Some("1")).body).unwrap();
        assert!(html.contains("<p>say &quot;hi&quot; &lt;b&gt;.</p>"));
    }

    #[test]
    fn the_refusal_log_line() {
        let mut r = Rejection::kong(401, "No API key found in request", Reason::NoCredentials);
        assert_eq!(
            r.log_line(None),
            "consumer-auth: refused request_id=- plugin=consumer-auth reason=no_credentials status=401 consumer=- \
             message=\"No API key found in request\""
        );
        r.plugin = "key-auth";
        r.consumer = Some("alice".into());
        assert!(r.log_line(Some("id-1")).starts_with("consumer-auth: refused request_id=id-1 plugin=key-auth "));
        assert!(r.log_line(None).contains(" consumer=alice "));
    }
}

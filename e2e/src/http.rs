//! A minimal raw HTTP/1.1 client: the test decides the exact request line, header order and
//! duplicates; the response is read until the server closes (every request says
//! `Connection: close`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target exactly as sent (raw path and query).
    pub target: String,
    /// In order, duplicates allowed, names as written.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Self {
        Request { method: method.into(), target: target.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn get(target: &str) -> Self {
        Request::new("GET", target)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn headers<'a>(mut self, headers: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Self {
        for (n, v) in headers {
            self.headers.push(((*n).into(), (*v).into()));
        }
        self
    }

    /// `Authorization: Basic base64(user:password)`.
    pub fn basic(self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("Authorization", &format!("Basic {token}"))
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push(("Content-Type".into(), content_type.into()));
        self.body = body.into();
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        if !self.has_header("host") {
            out.extend_from_slice(b"Host: localhost\r\n");
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        if !self.body.is_empty() && !self.has_header("content-length") && !self.has_header("transfer-encoding") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if !self.has_header("connection") {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Send to `127.0.0.1:port` and read the whole response.
    pub fn send(&self, port: u16) -> Response {
        self.try_send(port).unwrap_or_else(|e| panic!("{} {} on port {port}: {e}", self.method, self.target))
    }

    pub fn try_send(&self, port: u16) -> std::io::Result<Response> {
        self.try_send_within(port, Duration::from_secs(15))
    }

    /// Send and read the response, giving up (an error) after `timeout` without progress.
    pub fn try_send_within(&self, port: u16, timeout: Duration) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(&self.to_bytes())?;
        // Read until the response is complete; do not wait for the server to close (Envoy
        // delays closing after a local reply).
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(response) = Response::parse_complete(&raw, self.method == "HEAD") {
                return Ok(response);
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Response::parse(&raw);
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    }

    /// The same request over cleartext HTTP/2 (prior knowledge), sent by curl; the body goes in
    /// DATA frames of curl's choosing (16 KiB at most each).
    pub fn send_h2(&self, port: u16) -> Response {
        self.try_send_h2(port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Request::send_h2`], with curl's failure (no complete response) as the error.
    pub fn try_send_h2(&self, port: u16) -> Result<Response, String> {
        use std::process::{Command, Stdio};
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--http2-prior-knowledge", "--max-time", "15", "-X", &self.method]);
        for (n, v) in &self.headers {
            cmd.arg("-H").arg(format!("{n}: {v}"));
        }
        if !self.body.is_empty() {
            cmd.args(["--data-binary", "@-"]);
        }
        cmd.arg(format!("http://127.0.0.1:{port}{}", self.target));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("curl is needed for the HTTP/2 tests (`make test` installs it): {e}"));
        let mut stdin = child.stdin.take().expect("curl's stdin");
        let body = self.body.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&body));
        let out = child.wait_with_output().expect("curl ran");
        let _ = writer.join();
        // An answer sent before the whole body was read (413) ends with a reset of the stream,
        // which curl reports as an error after printing the response: the response counts.
        Response::parse_complete(&out.stdout, self.method == "HEAD").ok_or_else(|| {
            format!("curl got no complete response ({}): {}", out.status, String::from_utf8_lossy(&out.stderr))
        })
    }

    /// The same request as a curl command line (for people to replay).
    pub fn curl(&self, port: u16) -> String {
        let mut cmd = String::from("curl -sS -i");
        if self.method != "GET" || !self.body.is_empty() {
            cmd.push_str(&format!(" -X {}", self.method));
        }
        cmd.push_str(&format!(" {}", shell_quote(&format!("http://localhost:{port}{}", self.target))));
        for (n, v) in &self.headers {
            cmd.push_str(&format!(" -H {}", shell_quote(&format!("{n}: {v}"))));
        }
        if !self.body.is_empty() {
            cmd.push_str(&format!(" --data-binary {}", shell_quote(&String::from_utf8_lossy(&self.body))));
        }
        cmd
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn parse(raw: &[u8]) -> std::io::Result<Response> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no complete response head"))?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let rest = &raw[end + 4..];
        let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let body = if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            decode_chunked(rest).ok_or_else(|| bad("bad chunked body"))?
        } else if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            rest.get(..len).ok_or_else(|| bad("truncated body"))?.to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Response { status, headers, body })
    }

    /// The response, if `raw` holds all of it (framed by Content-Length or chunked encoding).
    fn parse_complete(raw: &[u8], head_only: bool) -> Option<Response> {
        let end = find(raw, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..end]).ok()?.to_ascii_lowercase();
        let rest = &raw[end + 4..];
        let complete = if head_only
            || head.starts_with("http/1.1 1")
            || head.starts_with("http/1.1 204")
            || head.starts_with("http/1.1 304")
        {
            true
        } else if head.contains("\r\ntransfer-encoding: chunked") {
            decode_chunked(rest).is_some()
        } else if let Some(len) = head.split("\r\n").find_map(|l| l.strip_prefix("content-length:")) {
            len.trim().parse::<usize>().is_ok_and(|len| rest.len() >= len)
        } else {
            false
        };
        if !complete {
            return None;
        }
        let mut response = Response::parse(raw).ok()?;
        if head_only {
            response.body.clear();
        }
        Some(response)
    }

    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }

    /// The `message` of a JSON error body.
    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or_else(|| panic!("no message in {:?}", self.text())).to_string()
    }

    /// What the echo upstream received, if the request got there: this crate's echo server
    /// (`x-echo: 1`, src/echo.rs), or the compose demo's, which answers as
    /// mendhak/http-https-echo does (recognised by its `os.hostname`).
    pub fn upstream(&self) -> Option<Upstream> {
        if self.header("x-echo") == Some("1") {
            return Some(Upstream::from_json(&self.json()));
        }
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["os"]["hostname"].is_string().then(|| Upstream::from_http_https_echo(&v))
    }

    /// What the echo upstream received; panics (with the response) if the request never got there.
    pub fn expect_upstream(&self) -> Upstream {
        self.upstream()
            .unwrap_or_else(|| panic!("the request did not reach the upstream: {} {:?}", self.status, self.text()))
    }
}

/// The request as the echo upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Upstream {
    pub fn from_json(v: &Value) -> Upstream {
        let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("echo JSON without {k}: {v}")).to_string();
        let headers = v["headers"]
            .as_array()
            .expect("echo JSON headers")
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().to_string()))
            .collect();
        Upstream { method: s("method"), path: s("path"), headers, body: s("body").into_bytes() }
    }

    /// From mendhak/http-https-echo's JSON (and deploy/docker/echo.py's, its stand-in): `headers`
    /// is an object of lower-case names, a repeated header's values joined with ", "; `path`
    /// has no query string.
    pub fn from_http_https_echo(v: &Value) -> Upstream {
        let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("http-https-echo JSON without {k}: {v}")).to_string();
        let headers = v["headers"]
            .as_object()
            .unwrap_or_else(|| panic!("http-https-echo JSON without headers: {v}"))
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_string()))
            .collect();
        Upstream { method: s("method"), path: s("path"), headers, body: s("body").into_bytes() }
    }

    /// Every value of a header, in order (case-insensitive name).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decode a complete chunked body (trailers ignored).
pub(crate) fn decode_chunked(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

//! Public data types: requests given to the harness and exchanges observed from it.

use std::collections::BTreeMap;
use std::fmt;

/// proxy-wasm log levels.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_i32(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// One log line emitted by the module (`proxy_log`) or written to stdout (Info) / stderr (Error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:?}] {}", self.level, self.message)
    }
}

/// Identifies one configured filter instance (a root context inside one VM of a [`crate::Host`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilterId {
    pub(crate) vm: usize,
    pub(crate) root: u32,
}

impl FilterId {
    /// The proxy-wasm root context id of this instance.
    pub fn root_context_id(&self) -> u32 {
        self.root
    }
    /// Index of the VM (wasm instance) that hosts this filter inside its `Host` (0 = the shared VM).
    pub fn vm_index(&self) -> usize {
        self.vm
    }
}

/// Identifies a request run by [`crate::Host::send`]; use it with [`crate::Host::resume`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub(crate) u64);

/// Error returned when `proxy_on_vm_start` / `proxy_on_configure` returns false or traps.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigureError {
    pub message: String,
    /// Logs recorded while creating and configuring the root context.
    pub logs: Vec<LogLine>,
}

impl fmt::Display for ConfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter configuration failed: {}", self.message)?;
        for l in &self.logs {
            write!(f, "\n  {l}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigureError {}

/// Kinds of metrics (`proxy_define_metric`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A dispatched `proxy_http_call` waiting for [`crate::Host::reply_http_call`] / [`crate::Host::fail_http_call`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    pub upstream: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, Vec<u8>)>,
    pub timeout_ms: u32,
    /// Context that dispatched the call (root or http context id).
    pub context_id: u32,
}

impl HttpCall {
    /// First value of a header of the call (case-insensitive), lossy UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        first(&self.headers, name)
    }
}

/// The response the upstream will return for a request (default: 200, no headers, empty body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Default for UpstreamResponse {
    fn default() -> Self {
        UpstreamResponse { status: 200, headers: Vec::new(), body: Vec::new() }
    }
}

/// A request to drive through a filter chain.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Raw path as sent (becomes `:path`).
    pub path: String,
    /// `:authority` (a `host` header given with [`Request::header`] sets it instead).
    pub authority: String,
    pub scheme: String,
    /// Regular headers (names are lowercased when they enter the header map).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body chunks. No chunk: the headers carry end_of_stream. `body(b"")` gives one empty final chunk.
    pub body_chunks: Vec<Vec<u8>>,
    pub trailers: Vec<(String, Vec<u8>)>,
    /// `request.id` property: `Some(id)` given, `None` absent. Default: a fresh `req-<n>`.
    pub request_id: Option<Option<String>>,
    pub protocol: String,
    pub upstream_response: UpstreamResponse,
    /// Properties (path segments, value) visible to the filters for this request.
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            authority: "example.com".to_string(),
            scheme: "http".to_string(),
            headers: Vec::new(),
            body_chunks: Vec::new(),
            trailers: Vec::new(),
            request_id: None,
            protocol: "HTTP/1.1".to_string(),
            upstream_response: UpstreamResponse::default(),
            properties: Vec::new(),
        }
    }
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }
    /// Adds a header (duplicates and empty values allowed). `host` sets `:authority` like Envoy does for HTTP/1.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        if name.eq_ignore_ascii_case("host") || name == ":authority" {
            self.authority = String::from_utf8_lossy(value).into_owned();
        } else {
            self.headers.push((name.to_string(), value.to_vec()));
        }
        self
    }
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_string();
        self
    }
    pub fn scheme(mut self, scheme: &str) -> Self {
        self.scheme = scheme.to_string();
        self
    }
    /// The whole body as one chunk.
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body_chunks = vec![b.into()];
        self
    }
    pub fn body_chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body_chunks = chunks;
        self
    }
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }
    /// `Some(id)`: `request.id` is `id`; `None`: the property is absent (NotFound).
    pub fn request_id(mut self, id: Option<&str>) -> Self {
        self.request_id = Some(id.map(str::to_string));
        self
    }
    pub fn protocol(mut self, p: &str) -> Self {
        self.protocol = p.to_string();
        self
    }
    pub fn upstream_response(mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Self {
        self.upstream_response = UpstreamResponse {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
            body: body.to_vec(),
        };
        self
    }
    /// Sets a property for this request; `path` is dot-separated (`"source.address"`).
    pub fn property(mut self, path: &str, value: &[u8]) -> Self {
        self.properties.push((path.split('.').map(str::to_string).collect(), value.to_vec()));
        self
    }
}

/// A response sent by a filter with `proxy_send_local_response`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub details: String,
    pub grpc_status: i32,
}

/// What the last filter let through to the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: String,
    pub path: String,
    /// All request headers in order, including pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The upstream response after the response filters ran (what the client would get).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalResponse {
    pub status: u16,
    /// Headers including `:status`.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Everything observed for one request.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub id: ExchangeId,
    pub local: Option<LocalResponse>,
    pub upstream: Option<UpstreamRequest>,
    pub response: Option<FinalResponse>,
    pub logs: Vec<LogLine>,
    pub host_calls: BTreeMap<String, u32>,
    pub trap: Option<String>,
    /// What a trapped request is answered: 503 (Envoy, fail closed), 500 (Kong: nginx's page).
    pub trap_status: u16,
    /// The chain is still paused (e.g. waiting for an http call); see [`crate::Host::resume`].
    pub paused: bool,
    /// A filter called `proxy_close_stream` (stream reset).
    pub reset: bool,
    /// Properties set by filters during this request (path segments joined by '.').
    pub properties: BTreeMap<String, Vec<u8>>,
}

fn first(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn all(headers: &[(String, Vec<u8>)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

impl Exchange {
    /// Local response status, else `trap_status` (503, Kong 500) on trap, else the final
    /// (upstream) response status; 0 if none.
    pub fn status(&self) -> u16 {
        if let Some(l) = &self.local {
            l.status
        } else if self.trap.is_some() {
            self.trap_status
        } else if let Some(r) = &self.response {
            r.status
        } else {
            0
        }
    }
    /// Local response body, lossy UTF-8 (empty if none).
    pub fn body_str(&self) -> String {
        self.local.as_ref().map(|l| String::from_utf8_lossy(&l.body).into_owned()).unwrap_or_default()
    }
    pub fn local_header(&self, name: &str) -> Option<String> {
        self.local.as_ref().and_then(|l| first(&l.headers, name))
    }
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.upstream.as_ref().and_then(|u| first(&u.headers, name))
    }
    pub fn upstream_headers(&self, name: &str) -> Vec<String> {
        self.upstream.as_ref().map(|u| all(&u.headers, name)).unwrap_or_default()
    }
    /// First value of a final response header (upstream case).
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.response.as_ref().and_then(|r| first(&r.headers, name))
    }
    pub fn host_call_total(&self) -> u32 {
        self.host_calls.values().sum()
    }
    pub fn host_call_count(&self, name: &str) -> u32 {
        self.host_calls.get(name).copied().unwrap_or(0)
    }
    /// True if some log line of this request contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.message.contains(needle))
    }
    pub fn assert_no_trap(&self) {
        if let Some(t) = &self.trap {
            let logs: Vec<String> = self.logs.iter().map(|l| l.to_string()).collect();
            panic!("filter trapped: {t}\nlogs:\n{}", logs.join("\n"));
        }
    }
}

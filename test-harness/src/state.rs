//! State shared by every VM of a `Host` (behind `Arc<Mutex<World>>`) and per-request state.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::maps::HeaderMap;
use crate::types::*;

/// Store data of one wasmtime `Store` (one VM).
pub(crate) struct VmData {
    pub world: std::sync::Arc<std::sync::Mutex<World>>,
    pub vm: usize,
    /// Context the host currently acts for (set before each callback, and by `proxy_set_effective_context`).
    pub effective_ctx: u32,
    pub memory: Option<wasmtime::Memory>,
    pub alloc: Option<wasmtime::TypedFunc<i32, i32>>,
}

pub(crate) struct RootInfo {
    pub vm: usize,
    pub config: Vec<u8>,
    pub root_id: String,
    pub tick_ms: u32,
}

pub(crate) struct Metric {
    pub name: String,
    pub kind: MetricKind,
    pub value: u64,
}

pub(crate) struct Queue {
    pub vm_id: String,
    pub name: String,
    pub items: VecDeque<Vec<u8>>,
    pub owner_ctx: u32,
}

pub(crate) struct PendingCall {
    pub call: HttpCall,
    pub vm: usize,
}

pub(crate) struct CallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// Per-direction state of one filter in the chain (Envoy filter iteration state).
#[derive(Default, Clone)]
pub(crate) struct Stage {
    /// Headers were passed on to the next filter.
    pub headers_released: bool,
    /// The filter returned Pause from its headers callback (and has not released them yet).
    pub headers_paused: bool,
    /// end_of_stream was on the headers.
    pub headers_eos: bool,
    /// The filter is buffering body (returned Pause from a body callback or is paused at headers).
    pub buf: Vec<u8>,
    pub has_buffered: bool,
    /// end_of_stream seen on a body chunk.
    pub data_eos: bool,
    /// The filter called proxy_continue_stream for this direction.
    pub resume: bool,
    /// The trailers reached this filter and wait with it (it paused, or holds its headers).
    pub trailers_held: bool,
}

pub(crate) struct Slot {
    pub filter: FilterId,
    pub ctx: u32,
    pub req: Stage,
    pub resp: Stage,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Request,
    Response,
}

#[derive(Default)]
pub(crate) struct RequestState {
    pub request_id: Option<String>,
    /// The test did not choose the request id (Kong: `request.id` is the client's X-Request-Id).
    pub request_id_default: bool,
    pub protocol: String,
    pub req_headers: HeaderMap,
    pub req_trailers: HeaderMap,
    pub resp_headers: Option<HeaderMap>,
    pub resp_trailers: HeaderMap,
    /// Body buffer visible to the current body callback (HttpRequestBody / HttpResponseBody).
    pub req_body: Option<Vec<u8>>,
    pub resp_body: Option<Vec<u8>>,
    pub properties: BTreeMap<Vec<u8>, Vec<u8>>,
    pub set_properties: BTreeMap<String, Vec<u8>>,
    pub slots: Vec<Slot>,
    pub local: Option<LocalResponse>,
    pub reset: bool,
    pub trap: Option<String>,
    pub upstream: Option<UpstreamRequest>,
    pub upstream_complete: bool,
    pub upstream_response: UpstreamResponse,
    pub response_started: bool,
    pub response: Option<FinalResponse>,
    pub response_complete: bool,
    pub finished: bool,
    pub logs: Vec<LogLine>,
    pub host_calls: BTreeMap<String, u32>,
    /// The path as the client sent it (Kong's `request.path`: nginx's `$request_uri`).
    pub raw_path: String,
    /// Kong: request headers the filter "removed" (their hash zeroed), which nginx still
    /// forwards (Kong host fact 1; `kong::forwarded_headers`).
    pub zeroed: Vec<(String, Vec<u8>)>,
    /// Kong: nginx's `$args` once the filter set `request.query` (the cached `:path` keeps the old
    /// query; Kong host fact 3).
    pub args: Option<Vec<u8>>,
    /// Kong: the filter set a new `:path` (which then goes upstream instead of the path as sent).
    pub path_set: bool,
    /// Kong: the request has no body, so it is complete once its headers went through the chain
    /// (its header callbacks never get `end_of_stream`; Kong host fact 8).
    pub ends_with_headers: bool,
}

impl RequestState {
    pub fn stopped(&self) -> bool {
        self.local.is_some() || self.reset || self.trap.is_some()
    }
}

pub(crate) struct World {
    pub clock_nanos: u64,
    pub log_level: LogLevel,
    pub logs: Vec<LogLine>,
    pub shared_data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    pub queues: Vec<Queue>,
    pub metrics: Vec<Metric>,
    pub roots: BTreeMap<u32, RootInfo>,
    /// http context id -> (request, slot index)
    pub http_ctx: HashMap<u32, (u64, usize)>,
    pub requests: BTreeMap<u64, RequestState>,
    pub vm_config: Vec<u8>,
    pub next_token: u32,
    pub calls: BTreeMap<u32, PendingCall>,
    pub call_response: Option<CallResponse>,
    /// Request the driver is currently running (for host-call / log attribution).
    pub current_request: Option<u64>,
    pub host_calls: BTreeMap<String, u32>,
    pub host_properties: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Property paths whose `proxy_set_property` fails with NotFound (as a host that does not
    /// let filters set them).
    pub refused_property_sets: Vec<Vec<u8>>,
    /// ngx_wasm_module's differences from Envoy (see `Host::kong_quirks`).
    pub kong_quirks: bool,
    /// Kong without the filter's `shm_kv` zone: shared-data calls trap (`Host::kong_without_shm_kv`).
    pub kong_no_shm_kv: bool,
    /// Kong before 3.9, from its sources (`Host::kong_before_3_9`).
    pub kong_before_3_9: bool,
    /// The callback the host is running (`proxy_on_tick`, ...): ngx_wasm_module allows
    /// `proxy_http_call` from some only.
    pub callback: String,
    /// A Pause from the request-header callback also stops the request body callbacks (see
    /// `Host::without_stop_iteration`).
    pub pause_holds_body: bool,
    pub rng: u64,
    pub stdio_partial: [Vec<u8>; 2],
    pub next_request: u64,
    pub shared_cas: u32,
    /// (owner root context, queue id) notifications waiting for `Host::tick`.
    pub queue_ready: Vec<(u32, u32)>,
}

impl World {
    pub fn new() -> Self {
        World {
            // 2026-01-01T00:00:00Z
            clock_nanos: 1_767_225_600 * 1_000_000_000,
            log_level: LogLevel::Trace,
            logs: Vec::new(),
            shared_data: HashMap::new(),
            queues: Vec::new(),
            metrics: Vec::new(),
            roots: BTreeMap::new(),
            http_ctx: HashMap::new(),
            requests: BTreeMap::new(),
            vm_config: Vec::new(),
            next_token: 1,
            calls: BTreeMap::new(),
            call_response: None,
            current_request: None,
            host_calls: BTreeMap::new(),
            host_properties: BTreeMap::new(),
            refused_property_sets: Vec::new(),
            kong_quirks: false,
            kong_no_shm_kv: false,
            kong_before_3_9: false,
            callback: String::new(),
            pause_holds_body: false,
            rng: 0x2545_f491_4f6c_dd1d,
            stdio_partial: [Vec::new(), Vec::new()],
            next_request: 1,
            shared_cas: 1,
            queue_ready: Vec::new(),
        }
    }

    /// Request that host calls made while `ctx` is effective are attributed to.
    pub fn attributed_request(&self, ctx: u32) -> Option<u64> {
        self.current_request.or_else(|| self.http_ctx.get(&ctx).map(|(r, _)| *r))
    }

    pub fn count_call(&mut self, ctx: u32, name: &str) {
        *self.host_calls.entry(name.to_string()).or_insert(0) += 1;
        if let Some(r) = self.attributed_request(ctx) {
            if let Some(req) = self.requests.get_mut(&r) {
                *req.host_calls.entry(name.to_string()).or_insert(0) += 1;
            }
        }
    }

    pub fn log(&mut self, ctx: u32, level: LogLevel, message: String) {
        let line = LogLine { level, message };
        if let Some(r) = self.attributed_request(ctx) {
            if let Some(req) = self.requests.get_mut(&r) {
                req.logs.push(line.clone());
            }
        }
        self.logs.push(line);
    }

    /// Request state for an http context.
    pub fn request_of(&mut self, ctx: u32) -> Option<(&mut RequestState, usize)> {
        let (rid, slot) = *self.http_ctx.get(&ctx)?;
        self.requests.get_mut(&rid).map(|r| (r, slot))
    }

    /// Root context id owning `ctx` (itself if it is a root).
    pub fn root_of(&self, ctx: u32) -> Option<u32> {
        if self.roots.contains_key(&ctx) {
            return Some(ctx);
        }
        let (rid, slot) = self.http_ctx.get(&ctx)?;
        Some(self.requests.get(rid)?.slots.get(*slot)?.filter.root)
    }

    pub fn next_cas(&mut self) -> u32 {
        let cas = self.shared_cas;
        self.shared_cas = self.shared_cas.wrapping_add(1).max(1);
        cas
    }

    pub fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic "randomness"
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

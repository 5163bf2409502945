//! Driving requests through a chain of filter instances, Envoy style.
//!
//! Every filter has one http context per request and, per direction, a [`Stage`]: headers
//! are passed on when the filter returns Continue (or resumes with `proxy_continue_stream`);
//! while its headers are paused, or after it returned Pause from a body callback, body
//! chunks are buffered and each body callback sees the whole buffered body
//! (`body_size` = total so far). Response callbacks run in reverse order.

use std::mem::take;

use crate::kong;
use crate::maps::HeaderMap;
use crate::state::{CallResponse, Dir, RequestState, Slot, Stage};
use crate::types::*;
use crate::Host;

enum Ev {
    Headers {
        eos: bool,
    },
    Data {
        chunk: Vec<u8>,
        eos: bool,
    },
    /// Request trailers (they end the stream: the last body chunk had no end_of_stream).
    Trailers,
}

/// `Err(())`: the request stopped (trap, local response or reset).
type Flow = Result<(), ()>;

const CONTINUE: i32 = 0;

fn stage(req: &mut RequestState, dir: Dir, slot: usize) -> &mut Stage {
    match dir {
        Dir::Request => &mut req.slots[slot].req,
        Dir::Response => &mut req.slots[slot].resp,
    }
}

impl Host {
    /// Runs one request through `chain` (filter instances in request order).
    ///
    /// If the chain is still paused at the end (e.g. a filter waits for an http call), the
    /// returned exchange has `paused == true`; answer the call with [`Host::reply_http_call`]
    /// (which lets the chain continue) and get the updated exchange with [`Host::resume`].
    pub fn send(&mut self, chain: &[FilterId], req: Request) -> Exchange {
        let rid = {
            let mut w = self.world();
            let rid = w.next_request;
            w.next_request += 1;
            rid
        };
        let mut headers = HeaderMap::new();
        headers.add(b":method", req.method.as_bytes());
        // Kong's `:path` is nginx's `$uri` (decoded, normalised); `request.path` the path as sent
        let path = if self.world().kong_quirks { kong::nginx_path(&req.path) } else { req.path.clone() };
        headers.add(b":path", path.as_bytes());
        headers.add(b":authority", req.authority.as_bytes());
        headers.add(b":scheme", req.scheme.as_bytes());
        for (n, v) in &req.headers {
            headers.add(n.as_bytes(), v);
        }
        // An HTTP/1 request with a body always carries its framing; add the Content-Length a
        // client would have sent unless the test set the framing itself.
        let has_body = req.body_chunks.iter().any(|c| !c.is_empty());
        if has_body
            && req.protocol.starts_with("HTTP/1")
            && headers.get(b"content-length").is_none()
            && headers.get(b"transfer-encoding").is_none()
        {
            let len: usize = req.body_chunks.iter().map(Vec::len).sum();
            headers.add(b"content-length", len.to_string().as_bytes());
        }
        // Envoy's HTTP/1 codec takes `Transfer-Encoding: chunked` out of the header map (the body
        // is framed by the stream); ngx_wasm_module shows it.
        if !self.world().kong_quirks && req.protocol.starts_with("HTTP/1") {
            headers.remove(b"transfer-encoding");
        }
        let now = self.world().clock_nanos;
        crate::seeds::request(now, &req.protocol, headers.entries(), &req.body_chunks);
        let mut slots = Vec::new();
        let mut unknown = None;
        for f in chain {
            if !self.world().roots.contains_key(&f.root) || f.vm >= self.vms.len() {
                unknown = Some(format!("harness: unknown or unconfigured filter {f:?}"));
            }
            let ctx = self.next_context_id();
            slots.push(Slot { filter: *f, ctx, req: Stage::default(), resp: Stage::default() });
        }
        let kong_mode = self.world().kong_quirks;
        // Kong (Kong host fact 8): the body comes whole, in one callback, after the headers of
        // every filter (the access phase); an empty body gets no callback, and a request
        // without one is complete once its headers went through.
        let body_chunks = if kong_mode {
            let whole: Vec<u8> = req.body_chunks.concat();
            if whole.is_empty() {
                Vec::new()
            } else {
                vec![whole]
            }
        } else {
            req.body_chunks
        };
        let ends_with_headers = kong_mode && body_chunks.is_empty() && req.trailers.is_empty();
        let state = RequestState {
            request_id_default: req.request_id.is_none(),
            raw_path: req.path.clone(),
            zeroed: Vec::new(),
            args: None,
            path_set: false,
            ends_with_headers,
            request_id: match req.request_id {
                None => Some(format!("req-{rid}")),
                Some(id) => id,
            },
            protocol: req.protocol,
            req_headers: headers,
            req_trailers: HeaderMap::from_pairs(req.trailers.iter().map(|(n, v)| (n.as_bytes(), v))),
            resp_headers: None,
            resp_trailers: HeaderMap::new(),
            req_body: None,
            resp_body: None,
            properties: req.properties.iter().map(|(p, v)| (p.join("\0").into_bytes(), v.clone())).collect(),
            set_properties: Default::default(),
            slots,
            local: None,
            reset: false,
            trap: unknown,
            upstream: None,
            upstream_complete: false,
            upstream_response: req.upstream_response,
            response_started: false,
            response: None,
            response_complete: false,
            finished: false,
            logs: Vec::new(),
            host_calls: Default::default(),
        };
        {
            let mut w = self.world();
            for (i, s) in state.slots.iter().enumerate() {
                w.http_ctx.insert(s.ctx, (rid, i));
            }
            w.requests.insert(rid, state);
            w.current_request = Some(rid);
        }
        self.start(rid, body_chunks);
        self.world().current_request = None;
        self.sync_logs();
        self.snapshot(rid)
    }

    fn start(&mut self, rid: u64, chunks: Vec<Vec<u8>>) {
        if self.world().requests[&rid].trap.is_some() {
            self.pump(rid);
            return;
        }
        let slots: Vec<(usize, u32, u32)> =
            self.world().requests[&rid].slots.iter().map(|s| (s.filter.vm, s.ctx, s.filter.root)).collect();
        for (vm, ctx, root) in slots {
            if self.callback(rid, vm, ctx, "proxy_on_context_create", &[ctx as i32, root as i32]).is_err() {
                self.pump(rid);
                return;
            }
        }
        let n = chunks.len();
        let trailers = !self.world().requests[&rid].req_trailers.is_empty();
        // Kong's request-header callback never has end_of_stream (Kong host fact 8)
        let eos = n == 0 && !trailers && !self.world().kong_quirks;
        if self.deliver(rid, Dir::Request, 0, Ev::Headers { eos }).is_ok() {
            let mut delivered = true;
            for (i, chunk) in chunks.into_iter().enumerate() {
                if self.deliver(rid, Dir::Request, 0, Ev::Data { chunk, eos: i + 1 == n && !trailers }).is_err() {
                    delivered = false;
                    break;
                }
            }
            if delivered && trailers {
                let _ = self.deliver(rid, Dir::Request, 0, Ev::Trailers);
            }
        }
        self.pump(rid);
    }

    /// Calls a callback for a request; records a trap; `Err` if the request is stopped afterwards.
    fn callback(&mut self, rid: u64, vm: usize, ctx: u32, name: &str, args: &[i32]) -> Result<i32, ()> {
        let r = self.call(vm, ctx, name, args);
        let mut w = self.world();
        let req = w.requests.get_mut(&rid).ok_or(())?;
        match r {
            Err(trap) => {
                req.trap.get_or_insert(trap);
                Err(())
            }
            Ok(_) if req.stopped() => Err(()),
            Ok(v) => Ok(v.unwrap_or(CONTINUE)),
        }
    }

    fn deliver(&mut self, rid: u64, dir: Dir, i: usize, ev: Ev) -> Flow {
        let n = self.world().requests[&rid].slots.len();
        if i == n {
            self.sink(rid, dir, ev);
            return Ok(());
        }
        let slot = if dir == Dir::Request { i } else { n - 1 - i };
        let (vm, ctx) = {
            let w = self.world();
            let s = &w.requests[&rid].slots[slot];
            (s.filter.vm, s.ctx)
        };
        match ev {
            Ev::Headers { eos } => {
                let num = {
                    let mut w = self.world();
                    let req = w.requests.get_mut(&rid).ok_or(())?;
                    let st = stage(req, dir, slot);
                    st.headers_eos = eos;
                    st.resume = false;
                    match dir {
                        Dir::Request => req.req_headers.len(),
                        Dir::Response => req.resp_headers.as_ref().map_or(0, HeaderMap::len),
                    }
                };
                let name = if dir == Dir::Request { "proxy_on_request_headers" } else { "proxy_on_response_headers" };
                let action = self.callback(rid, vm, ctx, name, &[ctx as i32, num as i32, eos as i32])?;
                let go = {
                    let mut w = self.world();
                    let st = stage(w.requests.get_mut(&rid).ok_or(())?, dir, slot);
                    let go = action == CONTINUE || take(&mut st.resume);
                    st.headers_released = go;
                    st.headers_paused = !go;
                    go
                };
                if go {
                    self.deliver(rid, dir, i + 1, Ev::Headers { eos })?;
                }
            }
            Ev::Data { chunk, eos } => {
                let size = {
                    let mut w = self.world();
                    // Kong: a filter paused in its header callback holds the access phase; the
                    // body, read after it, never comes (Kong host fact 8)
                    let hold = (w.pause_holds_body || w.kong_quirks) && dir == Dir::Request;
                    let req = w.requests.get_mut(&rid).ok_or(())?;
                    let st = stage(req, dir, slot);
                    st.data_eos = eos;
                    if hold && st.headers_paused {
                        // Envoy's StopAllIteration: buffered, no callback until resumed.
                        st.buf.extend_from_slice(&chunk);
                        st.has_buffered = true;
                        return Ok(());
                    }
                    st.resume = false;
                    let body = if !st.headers_released || st.has_buffered {
                        let mut b = take(&mut st.buf);
                        b.extend_from_slice(&chunk);
                        b
                    } else {
                        chunk
                    };
                    let size = body.len();
                    match dir {
                        Dir::Request => req.req_body = Some(body),
                        Dir::Response => req.resp_body = Some(body),
                    }
                    size
                };
                let name = if dir == Dir::Request { "proxy_on_request_body" } else { "proxy_on_response_body" };
                let action = self.callback(rid, vm, ctx, name, &[ctx as i32, size as i32, eos as i32]);
                let (body, release_headers) = {
                    let mut w = self.world();
                    let req = w.requests.get_mut(&rid).ok_or(())?;
                    let body = match dir {
                        Dir::Request => req.req_body.take(),
                        Dir::Response => req.resp_body.take(),
                    }
                    .unwrap_or_default();
                    let action = action?;
                    let st = stage(req, dir, slot);
                    if action == CONTINUE || take(&mut st.resume) {
                        st.has_buffered = false;
                        let release = !st.headers_released;
                        st.headers_released = true;
                        st.headers_paused = false;
                        (Some(body), release)
                    } else {
                        st.buf = body;
                        st.has_buffered = true;
                        (None, false)
                    }
                };
                if let Some(body) = body {
                    if release_headers {
                        self.deliver(rid, dir, i + 1, Ev::Headers { eos: false })?;
                    }
                    self.deliver(rid, dir, i + 1, Ev::Data { chunk: body, eos })?;
                }
            }
            Ev::Trailers => {
                let hold = {
                    let mut w = self.world();
                    let hold_all = w.pause_holds_body;
                    let req = w.requests.get_mut(&rid).ok_or(())?;
                    let st = stage(req, dir, slot);
                    st.resume = false;
                    hold_all && st.headers_paused
                };
                if hold {
                    stage(self.world().requests.get_mut(&rid).ok_or(())?, dir, slot).trailers_held = true;
                    return Ok(());
                }
                let num = {
                    // Envoy's body buffer during the trailers callback is what the filter buffered.
                    let mut w = self.world();
                    let req = w.requests.get_mut(&rid).ok_or(())?;
                    let held = take(&mut stage(req, dir, slot).buf);
                    req.req_body = Some(held);
                    req.req_trailers.len()
                };
                let action = self.callback(rid, vm, ctx, "proxy_on_request_trailers", &[ctx as i32, num as i32]);
                let go = {
                    let mut w = self.world();
                    let req = w.requests.get_mut(&rid).ok_or(())?;
                    let body = req.req_body.take().unwrap_or_default();
                    let action = action?;
                    let st = stage(req, dir, slot);
                    st.buf = body;
                    st.trailers_held = true;
                    action == CONTINUE || take(&mut st.resume)
                };
                if go {
                    // Continue from the trailers releases what the filter held: headers, body.
                    self.release(rid, dir, i);
                }
            }
        }
        Ok(())
    }

    /// The end of the chain: the upstream (request direction) or the client (response direction).
    fn sink(&mut self, rid: u64, dir: Dir, ev: Ev) {
        let mut w = self.world();
        let kong_mode = w.kong_quirks;
        let Some(req) = w.requests.get_mut(&rid) else { return };
        let header =
            |m: &HeaderMap, n: &str| String::from_utf8_lossy(m.get(n.as_bytes()).unwrap_or_default()).into_owned();
        match (dir, ev) {
            (Dir::Request, Ev::Headers { eos }) => {
                req.upstream = Some(UpstreamRequest {
                    method: header(&req.req_headers, ":method"),
                    path: kong::upstream_path(req, kong_mode),
                    headers: kong::forwarded_headers(req),
                    body: Vec::new(),
                });
                req.upstream_complete = eos || req.ends_with_headers;
            }
            (Dir::Request, Ev::Data { chunk, eos }) => {
                // Kong proxies the request after the body callbacks, with the headers as they
                // left them (Kong host fact 8)
                let refreshed =
                    (kong_mode && eos).then(|| (kong::upstream_path(req, kong_mode), kong::forwarded_headers(req)));
                if let Some(u) = req.upstream.as_mut() {
                    u.body.extend_from_slice(&chunk);
                    if let Some((path, headers)) = refreshed {
                        u.path = path;
                        u.headers = headers;
                    }
                }
                req.upstream_complete = eos;
            }
            (Dir::Response, Ev::Headers { eos }) => {
                let h = req.resp_headers.clone().unwrap_or_default();
                req.response = Some(FinalResponse {
                    status: header(&h, ":status").parse().unwrap_or(0),
                    headers: h.into_entries(),
                    body: Vec::new(),
                });
                req.response_complete = eos;
            }
            (Dir::Response, Ev::Data { chunk, eos }) => {
                if let Some(r) = req.response.as_mut() {
                    r.body.extend_from_slice(&chunk);
                }
                req.response_complete = eos;
            }
            (Dir::Request, Ev::Trailers) => req.upstream_complete = true,
            (Dir::Response, Ev::Trailers) => req.response_complete = true,
        }
    }

    /// Lets a request progress as far as it can: resumed filters, upstream response, end.
    fn pump(&mut self, rid: u64) {
        loop {
            enum Next {
                Response(Vec<u8>),
                Release(Dir, usize),
                Stop,
            }
            let next = {
                let mut w = self.world();
                let Some(req) = w.requests.get_mut(&rid) else { return };
                if req.finished || req.stopped() {
                    Next::Stop
                } else if req.upstream_complete && !req.response_started {
                    req.response_started = true;
                    let up = &req.upstream_response;
                    let mut h = HeaderMap::new();
                    h.add(b":status", up.status.to_string().as_bytes());
                    for (n, v) in &up.headers {
                        h.add(n.as_bytes(), v);
                    }
                    req.resp_headers = Some(h);
                    Next::Response(up.body.clone())
                } else {
                    let n = req.slots.len();
                    let mut found = Next::Stop;
                    'outer: for dir in [Dir::Request, Dir::Response] {
                        for i in 0..n {
                            let slot = if dir == Dir::Request { i } else { n - 1 - i };
                            let st = stage(req, dir, slot);
                            if st.resume {
                                st.resume = false;
                                if st.headers_paused || st.has_buffered || st.trailers_held {
                                    found = Next::Release(dir, i);
                                    break 'outer;
                                }
                            }
                        }
                    }
                    found
                }
            };
            match next {
                Next::Stop => break,
                Next::Response(body) => {
                    let eos = body.is_empty();
                    if self.deliver(rid, Dir::Response, 0, Ev::Headers { eos }).is_ok() && !eos {
                        let _ = self.deliver(rid, Dir::Response, 0, Ev::Data { chunk: body, eos: true });
                    }
                }
                Next::Release(dir, i) => self.release(rid, dir, i),
            }
        }
        let finish = {
            let mut w = self.world();
            let Some(req) = w.requests.get_mut(&rid) else { return };
            if req.finished {
                false
            } else if req.trap.is_some() {
                req.finished = true;
                false
            } else {
                req.local.is_some() || req.reset || req.response_complete
            }
        };
        if finish {
            self.finish(rid);
        }
    }

    /// A paused filter resumed (`proxy_continue_stream`): pass on its headers and buffered body.
    fn release(&mut self, rid: u64, dir: Dir, i: usize) {
        let (send_headers, headers_eos, body, data_eos, trailers) = {
            let mut w = self.world();
            let Some(req) = w.requests.get_mut(&rid) else { return };
            let n = req.slots.len();
            let slot = if dir == Dir::Request { i } else { n - 1 - i };
            let st = stage(req, dir, slot);
            let send_headers = !st.headers_released;
            st.headers_released = true;
            st.headers_paused = false;
            let had = take(&mut st.has_buffered);
            let buf = take(&mut st.buf);
            let trailers = take(&mut st.trailers_held);
            (send_headers, st.headers_eos, had.then_some(buf), st.data_eos, trailers)
        };
        if send_headers
            && self.deliver(rid, dir, i + 1, Ev::Headers { eos: headers_eos && body.is_none() && !trailers }).is_err()
        {
            return;
        }
        if let Some(chunk) = body {
            if self.deliver(rid, dir, i + 1, Ev::Data { chunk, eos: data_eos && !trailers }).is_err() {
                return;
            }
        }
        if trailers {
            let _ = self.deliver(rid, dir, i + 1, Ev::Trailers);
        }
    }

    /// End of the stream: `proxy_on_log`, `proxy_on_done`, `proxy_on_delete` for every context.
    fn finish(&mut self, rid: u64) {
        let slots: Vec<(usize, u32)> = {
            let mut w = self.world();
            let Some(req) = w.requests.get_mut(&rid) else { return };
            req.finished = true;
            req.slots.iter().map(|s| (s.filter.vm, s.ctx)).collect()
        };
        'calls: for name in ["proxy_on_log", "proxy_on_done", "proxy_on_delete"] {
            for (vm, ctx) in &slots {
                if let Err(trap) = self.call(*vm, *ctx, name, &[*ctx as i32]) {
                    if let Some(req) = self.world().requests.get_mut(&rid) {
                        req.trap.get_or_insert(trap);
                    }
                    break 'calls;
                }
            }
        }
        let mut w = self.world();
        for (_, ctx) in &slots {
            w.http_ctx.remove(ctx);
        }
        // Like Envoy, http calls of a destroyed context are cancelled.
        w.calls.retain(|_, c| !slots.iter().any(|(_, ctx)| *ctx == c.call.context_id));
    }

    fn snapshot(&self, rid: u64) -> Exchange {
        let w = self.world();
        let req = &w.requests[&rid];
        Exchange {
            id: ExchangeId(rid),
            local: req.local.clone(),
            upstream: if req.upstream_complete { req.upstream.clone() } else { None },
            response: if req.response_complete { req.response.clone() } else { None },
            logs: req.logs.clone(),
            host_calls: req.host_calls.clone(),
            trap: req.trap.clone(),
            // nginx answers a trapped request with its 500 page (Kong host fact 4); Envoy 503
            trap_status: if w.kong_quirks { 500 } else { 503 },
            paused: !req.finished,
            reset: req.reset,
            properties: req.set_properties.clone(),
        }
    }

    /// Lets a paused request continue (after e.g. [`Host::reply_http_call`] made a filter call
    /// `proxy_continue_stream`) and returns its current state. Also works for finished ones.
    ///
    /// # Panics
    /// If `id` does not come from this host.
    pub fn resume(&mut self, id: ExchangeId) -> Exchange {
        assert!(self.world().requests.contains_key(&id.0), "unknown exchange {id:?}");
        self.world().current_request = Some(id.0);
        self.pump(id.0);
        self.world().current_request = None;
        self.sync_logs();
        self.snapshot(id.0)
    }

    /// Current state of an exchange without driving it.
    pub fn exchange(&self, id: ExchangeId) -> Option<Exchange> {
        let known = self.world().requests.contains_key(&id.0);
        known.then(|| self.snapshot(id.0))
    }

    fn pump_all(&mut self) {
        let live: Vec<u64> = self.world().requests.iter().filter(|(_, r)| !r.finished).map(|(k, _)| *k).collect();
        for rid in live {
            self.world().current_request = Some(rid);
            self.pump(rid);
        }
        self.world().current_request = None;
        self.sync_logs();
    }

    /// Calls `proxy_on_tick` on every root context that set a tick period, then delivers
    /// pending `proxy_on_queue_ready` notifications, then lets resumed requests continue.
    pub fn tick(&mut self) {
        let roots: Vec<(u32, usize)> =
            self.world().roots.iter().filter(|(_, r)| r.tick_ms > 0).map(|(id, r)| (*id, r.vm)).collect();
        for (root, vm) in roots {
            let _ = self.call(vm, root, "proxy_on_tick", &[root as i32]);
        }
        let ready = take(&mut self.world().queue_ready);
        for (owner, queue) in ready {
            let vm = self.world().roots.get(&owner).map(|r| r.vm);
            if let Some(vm) = vm {
                let _ = self.call(vm, owner, "proxy_on_queue_ready", &[owner as i32, queue as i32]);
            }
        }
        self.pump_all();
    }

    /// Answers a pending http call: `proxy_on_http_call_response(ctx, token, num_headers,
    /// body_size, num_trailers)` on the context that dispatched it, with the response in the
    /// HttpCallResponseHeaders map (`:status` first) and HttpCallResponseBody buffer. Paused
    /// requests resumed by the filter then continue; see [`Host::resume`].
    ///
    /// # Panics
    /// If there is no pending call with this token.
    pub fn reply_http_call(&mut self, token: u32, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        crate::seeds::consumers(body);
        let mut h = HeaderMap::new();
        h.add(b":status", status.to_string().as_bytes());
        for (n, v) in headers {
            h.add(n.as_bytes(), v.as_bytes());
        }
        self.answer_http_call(
            token,
            CallResponse { headers: h, body: body.to_vec(), trailers: HeaderMap::new() },
            false,
        );
    }

    /// Fails a pending http call the way Envoy reports failures (reset, timeout):
    /// `proxy_on_http_call_response(ctx, token, 0, 0, 0)`. (The response maps are empty.)
    ///
    /// # Panics
    /// If there is no pending call with this token.
    pub fn fail_http_call(&mut self, token: u32) {
        self.fail_http_call_because(token, "timeout");
    }

    /// [`Host::fail_http_call`] saying why: on Kong (Kong host fact 5) the response headers hold
    /// one `:dispatch_status` pseudo-header with `why` (`timeout`, `broken connection`,
    /// `resolver failure`, ...), still with zero counts; Envoy says nothing.
    ///
    /// # Panics
    /// If there is no pending call with this token.
    pub fn fail_http_call_because(&mut self, token: u32, why: &str) {
        let mut headers = HeaderMap::new();
        if self.world().kong_quirks {
            headers.add(b":dispatch_status", why.as_bytes());
        }
        let failed = CallResponse { headers, body: Vec::new(), trailers: HeaderMap::new() };
        self.answer_http_call(token, failed, true);
    }

    fn answer_http_call(&mut self, token: u32, resp: CallResponse, failed: bool) {
        let pending = self.world().calls.remove(&token);
        let Some(pending) = pending else {
            panic!("no pending http call with token {token}");
        };
        let ctx = pending.call.context_id;
        let (nh, nb, nt) = if failed { (0, 0, 0) } else { (resp.headers.len(), resp.body.len(), resp.trailers.len()) };
        let rid = {
            let mut w = self.world();
            w.call_response = Some(resp);
            let rid = w.http_ctx.get(&ctx).map(|(r, _)| *r);
            w.current_request = rid;
            rid
        };
        let args = [ctx as i32, token as i32, nh as i32, nb as i32, nt as i32];
        let r = self.call(pending.vm, ctx, "proxy_on_http_call_response", &args);
        {
            let mut w = self.world();
            w.call_response = None;
            w.current_request = None;
            if let (Err(trap), Some(rid)) = (r, rid) {
                if let Some(req) = w.requests.get_mut(&rid) {
                    req.trap.get_or_insert(trap);
                }
            }
        }
        self.pump_all();
    }
}

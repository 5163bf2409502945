//! The `env.proxy_*` imports (proxy-wasm ABI 0.2.1 as used by the Rust SDK 0.2.5).

use wasmtime::{Engine, FuncType, Linker, Val, ValType};

use crate::maps::{deserialize_pairs, normalize_name, HeaderMap};
use crate::mem::{status::*, *};
use crate::state::{Dir, Metric, PendingCall, Queue, VmData, World};
use crate::types::{HttpCall, LocalResponse, LogLevel, MetricKind};

fn count(c: &C, name: &str) {
    let ctx = c.data().effective_ctx;
    lock(&world(c)).count_call(ctx, name);
}

macro_rules! hostcall {
    ($l:expr, $name:literal, $f:path, ($($a:ident : $t:ty),*)) => {
        $l.func_wrap("env", $name, |mut c: C<'_>, $($a: $t),*| -> wasmtime::Result<i32> {
            count(&c, $name);
            finish($f(&mut c, $($a),*))
        })?;
    };
}

/// Registers every `proxy_*` host function of the ABI.
pub(crate) fn add_to_linker(l: &mut Linker<VmData>, engine: &Engine) -> wasmtime::Result<()> {
    hostcall!(l, "proxy_log", log, (level: i32, ptr: i32, len: i32));
    hostcall!(l, "proxy_get_log_level", get_log_level, (ret: i32));
    hostcall!(l, "proxy_get_current_time_nanoseconds", get_time, (ret: i32));
    hostcall!(l, "proxy_set_tick_period_milliseconds", set_tick, (ms: i32));
    hostcall!(l, "proxy_get_buffer_bytes", get_buffer_bytes, (ty: i32, start: i32, max: i32, rp: i32, rs: i32));
    hostcall!(l, "proxy_set_buffer_bytes", set_buffer_bytes, (ty: i32, start: i32, size: i32, p: i32, len: i32));
    hostcall!(l, "proxy_get_header_map_pairs", get_map_pairs, (ty: i32, rp: i32, rs: i32));
    hostcall!(l, "proxy_set_header_map_pairs", set_map_pairs, (ty: i32, p: i32, len: i32));
    hostcall!(l, "proxy_get_header_map_value", get_map_value, (ty: i32, kp: i32, kl: i32, rp: i32, rs: i32));
    hostcall!(l, "proxy_replace_header_map_value", replace_map_value, (ty: i32, kp: i32, kl: i32, vp: i32, vl: i32));
    hostcall!(l, "proxy_add_header_map_value", add_map_value, (ty: i32, kp: i32, kl: i32, vp: i32, vl: i32));
    hostcall!(l, "proxy_remove_header_map_value", remove_map_value, (ty: i32, kp: i32, kl: i32));
    hostcall!(l, "proxy_get_property", get_property, (pp: i32, pl: i32, rp: i32, rs: i32));
    hostcall!(l, "proxy_set_property", set_property, (pp: i32, pl: i32, vp: i32, vl: i32));
    hostcall!(l, "proxy_get_shared_data", get_shared_data, (kp: i32, kl: i32, rp: i32, rs: i32, rc: i32));
    hostcall!(l, "proxy_set_shared_data", set_shared_data, (kp: i32, kl: i32, vp: i32, vl: i32, cas: i32));
    hostcall!(l, "proxy_register_shared_queue", register_queue, (np: i32, nl: i32, rid: i32));
    hostcall!(l, "proxy_resolve_shared_queue", resolve_queue, (vp: i32, vl: i32, np: i32, nl: i32, rid: i32));
    hostcall!(l, "proxy_enqueue_shared_queue", enqueue, (id: i32, vp: i32, vl: i32));
    hostcall!(l, "proxy_dequeue_shared_queue", dequeue, (id: i32, rp: i32, rs: i32));
    hostcall!(l, "proxy_continue_stream", continue_stream, (ty: i32));
    hostcall!(l, "proxy_close_stream", close_stream, (ty: i32));
    hostcall!(l, "proxy_continue_request", continue_request, ());
    hostcall!(l, "proxy_continue_response", continue_response, ());
    hostcall!(l, "proxy_send_local_response", send_local_response,
        (code: i32, dp: i32, dl: i32, bp: i32, bl: i32, hp: i32, hl: i32, grpc: i32));
    hostcall!(l, "proxy_http_call", http_call,
        (up: i32, ul: i32, hp: i32, hl: i32, bp: i32, bl: i32, tp: i32, tl: i32, timeout: i32, rt: i32));
    hostcall!(l, "proxy_set_effective_context", set_effective_context, (ctx: i32));
    hostcall!(l, "proxy_done", done, ());
    hostcall!(l, "proxy_call_foreign_function", call_foreign_function,
        (np: i32, nl: i32, ap: i32, al: i32, rp: i32, rs: i32));
    hostcall!(l, "proxy_define_metric", define_metric, (ty: i32, np: i32, nl: i32, rid: i32));
    hostcall!(l, "proxy_get_metric", get_metric, (id: i32, rv: i32));
    hostcall!(l, "proxy_record_metric", record_metric, (id: i32, v: i64));
    hostcall!(l, "proxy_increment_metric", increment_metric, (id: i32, off: i64));

    // Present so that any module links; they answer Unimplemented.
    use ValType::I32;
    let unimplemented: &[(&'static str, &[ValType])] = &[
        ("proxy_grpc_call", &[I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32]),
        ("proxy_grpc_stream", &[I32, I32, I32, I32, I32, I32, I32, I32, I32]),
        ("proxy_grpc_send", &[I32, I32, I32, I32]),
        ("proxy_grpc_cancel", &[I32]),
        ("proxy_grpc_close", &[I32]),
        ("proxy_get_status", &[I32, I32, I32]),
        ("proxy_get_configuration", &[I32, I32]),
        ("proxy_clear_route_cache", &[]),
    ];
    for (name, params) in unimplemented {
        let ty = FuncType::new(engine, params.iter().cloned(), [I32]);
        let name: &'static str = name;
        l.func_new("env", name, ty, move |c, _params, results| {
            count(&c, name);
            results[0] = Val::I32(UNIMPLEMENTED as i32);
            Ok(())
        })?;
    }
    Ok(())
}

fn ctx(c: &C) -> u32 {
    c.data().effective_ctx
}

fn log(c: &mut C, level: i32, ptr: i32, len: i32) -> Hc {
    let level = LogLevel::from_i32(level).ok_or(st(BAD_ARGUMENT))?;
    let msg = String::from_utf8_lossy(&read(c, ptr, len)?).into_owned();
    lock(&world(c)).log(ctx(c), level, msg);
    Ok(())
}

fn get_log_level(c: &mut C, ret: i32) -> Hc {
    let level = lock(&world(c)).log_level as u32;
    write_u32(c, ret, level)
}

fn get_time(c: &mut C, ret: i32) -> Hc {
    let t = lock(&world(c)).clock_nanos;
    write_u64(c, ret, t)
}

fn set_tick(c: &mut C, ms: i32) -> Hc {
    let w = world(c);
    let mut w = lock(&w);
    let root = w.root_of(ctx(c)).ok_or(st(BAD_ARGUMENT))?;
    if let Some(r) = w.roots.get_mut(&root) {
        r.tick_ms = ms as u32;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------- buffers

const BUF_REQUEST_BODY: i32 = 0;
const BUF_RESPONSE_BODY: i32 = 1;
const BUF_HTTP_CALL_RESPONSE_BODY: i32 = 4;
const BUF_VM_CONFIGURATION: i32 = 6;
const BUF_PLUGIN_CONFIGURATION: i32 = 7;

/// Bytes `start..start+max` of a buffer (only those are copied: a loader reads a large body in
/// chunks).
fn buffer_range(w: &mut World, ctx: u32, ty: i32, start: usize, max: usize) -> Hc<Vec<u8>> {
    let range = |data: &[u8]| {
        let end = start.saturating_add(max).min(data.len());
        if start < end {
            data[start..end].to_vec()
        } else {
            Vec::new()
        }
    };
    match ty {
        BUF_REQUEST_BODY | BUF_RESPONSE_BODY => {
            let (req, _) = w.request_of(ctx).ok_or(st(NOT_FOUND))?;
            let b = if ty == BUF_REQUEST_BODY { &req.req_body } else { &req.resp_body };
            b.as_deref().map(range).ok_or(st(NOT_FOUND))
        }
        BUF_HTTP_CALL_RESPONSE_BODY => w.call_response.as_ref().map(|r| range(&r.body)).ok_or(st(NOT_FOUND)),
        BUF_VM_CONFIGURATION => Ok(range(&w.vm_config)),
        BUF_PLUGIN_CONFIGURATION => {
            let root = w.root_of(ctx).ok_or(st(NOT_FOUND))?;
            Ok(w.roots.get(&root).map(|r| range(&r.config)).unwrap_or_default())
        }
        2 | 3 | 5 | 8 => Err(st(NOT_FOUND)),
        _ => Err(st(BAD_ARGUMENT)),
    }
}

fn get_buffer_bytes(c: &mut C, ty: i32, start: i32, max: i32, rp: i32, rs: i32) -> Hc {
    let w = world(c);
    let mut w = lock(&w);
    let ignore_start = w.kong_quirks && ty == BUF_HTTP_CALL_RESPONSE_BODY;
    let start = if ignore_start { 0 } else { start as u32 as usize };
    let data = buffer_range(&mut w, ctx(c), ty, start, max as u32 as usize)?;
    drop(w);
    copy_out(c, &data, rp, rs)
}

/// Envoy's `BufferWrapper::copyFrom` semantics: start=0,size=0 prepends; start=0,size>=len
/// replaces; start>=len appends; anything else is BadArgument.
fn set_buffer_bytes(c: &mut C, ty: i32, start: i32, size: i32, p: i32, len: i32) -> Hc {
    let data = read(c, p, len)?;
    let w = world(c);
    let mut w = lock(&w);
    let buf = match ty {
        BUF_REQUEST_BODY | BUF_RESPONSE_BODY => {
            let (req, _) = w.request_of(ctx(c)).ok_or(st(NOT_FOUND))?;
            let b = if ty == BUF_REQUEST_BODY { &mut req.req_body } else { &mut req.resp_body };
            b.as_mut().ok_or(st(NOT_FOUND))?
        }
        BUF_HTTP_CALL_RESPONSE_BODY => &mut w.call_response.as_mut().ok_or(st(NOT_FOUND))?.body,
        0..=8 => return Err(st(BAD_ARGUMENT)),
        _ => return Err(st(BAD_ARGUMENT)),
    };
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    if start == 0 {
        if size == 0 {
            let mut n = data;
            n.extend_from_slice(buf);
            *buf = n;
        } else if size >= buf.len() {
            *buf = data;
        } else {
            return Err(st(BAD_ARGUMENT));
        }
    } else if start >= buf.len() {
        buf.extend_from_slice(&data);
    } else {
        return Err(st(BAD_ARGUMENT));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------- headers

fn with_map<R>(w: &mut World, ctx: u32, ty: i32, f: impl FnOnce(&mut HeaderMap) -> R) -> Hc<R> {
    match ty {
        0..=3 => {
            let (req, _) = w.request_of(ctx).ok_or(st(BAD_ARGUMENT))?;
            let map = match ty {
                0 => &mut req.req_headers,
                1 => &mut req.req_trailers,
                2 => req.resp_headers.as_mut().ok_or(st(BAD_ARGUMENT))?,
                _ => &mut req.resp_trailers,
            };
            Ok(f(map))
        }
        6 | 7 => {
            let r = w.call_response.as_mut().ok_or(st(BAD_ARGUMENT))?;
            Ok(f(if ty == 6 { &mut r.headers } else { &mut r.trailers }))
        }
        4 | 5 => Err(st(NOT_FOUND)),
        _ => Err(st(BAD_ARGUMENT)),
    }
}

fn get_map_pairs(c: &mut C, ty: i32, rp: i32, rs: i32) -> Hc {
    let data = with_map(&mut lock(&world(c)), ctx(c), ty, |m| m.serialize())?;
    copy_out(c, &data, rp, rs)
}

fn set_map_pairs(c: &mut C, ty: i32, p: i32, len: i32) -> Hc {
    let pairs = deserialize_pairs(&read(c, p, len)?).ok_or(st(BAD_ARGUMENT))?;
    with_map(&mut lock(&world(c)), ctx(c), ty, |m| *m = HeaderMap::from_pairs(pairs))
}

fn get_map_value(c: &mut C, ty: i32, kp: i32, kl: i32, rp: i32, rs: i32) -> Hc {
    let key = read(c, kp, kl)?;
    let v = with_map(&mut lock(&world(c)), ctx(c), ty, |m| m.get(&key).map(<[u8]>::to_vec))?;
    let v = v.ok_or(st(NOT_FOUND))?;
    copy_out(c, &v, rp, rs)
}

fn replace_map_value(c: &mut C, ty: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> Hc {
    let (k, v) = (read(c, kp, kl)?, read(c, vp, vl)?);
    if lock(&world(c)).kong_quirks && k == b":path" && v.contains(&b'?') {
        return Err(HcErr::Trap(wasmtime::Error::msg("NYI - cannot set request path with querystring")));
    }
    with_map(&mut lock(&world(c)), ctx(c), ty, |m| m.replace(&k, &v))
}

fn add_map_value(c: &mut C, ty: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> Hc {
    let (k, v) = (read(c, kp, kl)?, read(c, vp, vl)?);
    with_map(&mut lock(&world(c)), ctx(c), ty, |m| m.add(&k, &v))
}

fn remove_map_value(c: &mut C, ty: i32, kp: i32, kl: i32) -> Hc {
    let k = read(c, kp, kl)?;
    with_map(&mut lock(&world(c)), ctx(c), ty, |m| m.remove(&k))
}

// ---------------------------------------------------------------------------------- properties

fn builtin_property(w: &mut World, ctx: u32, path: &[u8]) -> Option<Vec<u8>> {
    let segs: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    let s = |i: usize| segs.get(i).map(|b| String::from_utf8_lossy(b).into_owned());
    let root = w.root_of(ctx);
    let root_id = root.and_then(|r| w.roots.get(&r)).map(|r| r.root_id.clone());
    match (s(0).as_deref(), s(1).as_deref(), segs.len()) {
        (Some("plugin_root_id"), None, 1) | (Some("plugin_name"), None, 1) => return root_id.map(String::into_bytes),
        (Some("plugin_vm_id"), None, 1) => return Some(Vec::new()),
        _ => {}
    }
    let (req, _) = w.request_of(ctx)?;
    let header = |name: &str| req.req_headers.get(name.as_bytes()).map(<[u8]>::to_vec);
    match (s(0)?.as_str(), s(1).as_deref(), segs.len()) {
        ("request", Some("id"), 2) => req.request_id.clone().map(String::into_bytes),
        ("request", Some("path"), 2) => header(":path"),
        ("request", Some("url_path"), 2) => {
            header(":path").map(|p| p.split(|b| *b == b'?').next().unwrap_or_default().to_vec())
        }
        ("request", Some("query"), 2) => header(":path").map(|p| match p.iter().position(|b| *b == b'?') {
            Some(i) => p[i + 1..].to_vec(),
            None => Vec::new(),
        }),
        ("request", Some("method"), 2) => header(":method"),
        ("request", Some("host"), 2) => header(":authority"),
        ("request", Some("scheme"), 2) => header(":scheme"),
        ("request", Some("protocol"), 2) => Some(req.protocol.clone().into_bytes()),
        ("request", Some("headers"), 3) => req.req_headers.get(segs[2]).map(<[u8]>::to_vec),
        ("response", Some("code"), 2) => {
            let code = req.resp_headers.as_ref()?.get(b":status")?;
            let code: i64 = std::str::from_utf8(code).ok()?.parse().ok()?;
            Some(code.to_le_bytes().to_vec())
        }
        ("response", Some("headers"), 3) => req.resp_headers.as_ref()?.get(segs[2]).map(<[u8]>::to_vec),
        _ => None,
    }
}

fn get_property(c: &mut C, pp: i32, pl: i32, rp: i32, rs: i32) -> Hc {
    let path = read(c, pp, pl)?;
    let value = {
        let w = world(c);
        let mut w = lock(&w);
        let ctx = ctx(c);
        let per_request = w.request_of(ctx).and_then(|(r, _)| r.properties.get(&path).cloned());
        per_request.or_else(|| builtin_property(&mut w, ctx, &path)).or_else(|| w.host_properties.get(&path).cloned())
    };
    let value = value.ok_or(st(NOT_FOUND))?;
    copy_out(c, &value, rp, rs)
}

fn set_property(c: &mut C, pp: i32, pl: i32, vp: i32, vl: i32) -> Hc {
    let path = read(c, pp, pl)?;
    let value = read(c, vp, vl)?;
    let w = world(c);
    let mut w = lock(&w);
    if w.refused_property_sets.contains(&path) {
        return Err(st(NOT_FOUND));
    }
    match w.request_of(ctx(c)) {
        Some((req, _)) => {
            let dotted = String::from_utf8_lossy(&path).replace('\0', ".");
            if dotted == "request.query" {
                // as ngx_wasm_module (nginx's `$args`): the request's query becomes this
                let p = req.req_headers.get(b":path").unwrap_or_default().to_vec();
                let mut new = p.split(|b| *b == b'?').next().unwrap_or_default().to_vec();
                if !value.is_empty() {
                    new.push(b'?');
                    new.extend_from_slice(&value);
                }
                req.req_headers.replace(b":path", &new);
            }
            req.set_properties.insert(dotted, value.clone());
            req.properties.insert(path, value);
        }
        None => {
            w.host_properties.insert(path, value);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------- shared data

fn get_shared_data(c: &mut C, kp: i32, kl: i32, rp: i32, rs: i32, rc: i32) -> Hc {
    let key = read(c, kp, kl)?;
    let entry = lock(&world(c)).shared_data.get(&key).cloned();
    let (value, cas) = entry.ok_or(st(NOT_FOUND))?;
    write_u32(c, rc, cas)?;
    copy_out(c, &value, rp, rs)
}

fn set_shared_data(c: &mut C, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> Hc {
    let key = read(c, kp, kl)?;
    let value = read(c, vp, vl)?;
    let w = world(c);
    let mut w = lock(&w);
    let cas = cas as u32;
    if let Some((_, current)) = w.shared_data.get(&key) {
        if (cas != 0 || w.kong_quirks) && cas != *current {
            return Err(st(CAS_MISMATCH));
        }
    }
    let next = w.next_cas();
    w.shared_data.insert(key, (value, next));
    Ok(())
}

// ---------------------------------------------------------------------------------- queues

fn register_queue(c: &mut C, np: i32, nl: i32, rid: i32) -> Hc {
    let name = String::from_utf8_lossy(&read(c, np, nl)?).into_owned();
    let owner = ctx(c);
    let id = {
        let w = world(c);
        let mut w = lock(&w);
        let owner = w.root_of(owner).unwrap_or(owner);
        match w.queues.iter().position(|q| q.name == name) {
            Some(i) => {
                w.queues[i].owner_ctx = owner;
                i + 1
            }
            None => {
                w.queues.push(Queue { vm_id: String::new(), name, items: Default::default(), owner_ctx: owner });
                w.queues.len()
            }
        }
    };
    write_u32(c, rid, id as u32)
}

fn resolve_queue(c: &mut C, vp: i32, vl: i32, np: i32, nl: i32, rid: i32) -> Hc {
    let vm_id = String::from_utf8_lossy(&read(c, vp, vl)?).into_owned();
    let name = String::from_utf8_lossy(&read(c, np, nl)?).into_owned();
    let id = lock(&world(c))
        .queues
        .iter()
        .position(|q| q.name == name && (vm_id.is_empty() || q.vm_id == vm_id))
        .ok_or(st(NOT_FOUND))?;
    write_u32(c, rid, id as u32 + 1)
}

fn enqueue(c: &mut C, id: i32, vp: i32, vl: i32) -> Hc {
    let value = read(c, vp, vl)?;
    let w = world(c);
    let mut w = lock(&w);
    let idx = (id as u32 as usize).checked_sub(1).ok_or(st(NOT_FOUND))?;
    let q = w.queues.get_mut(idx).ok_or(st(NOT_FOUND))?;
    q.items.push_back(value);
    let owner = q.owner_ctx;
    w.queue_ready.push((owner, id as u32));
    Ok(())
}

fn dequeue(c: &mut C, id: i32, rp: i32, rs: i32) -> Hc {
    let item = {
        let w = world(c);
        let mut w = lock(&w);
        let idx = (id as u32 as usize).checked_sub(1).ok_or(st(NOT_FOUND))?;
        let q = w.queues.get_mut(idx).ok_or(st(NOT_FOUND))?;
        q.items.pop_front().ok_or(st(EMPTY))?
    };
    copy_out(c, &item, rp, rs)
}

// ---------------------------------------------------------------------------------- streams

fn resume(c: &mut C, dir: Dir) -> Hc {
    let w = world(c);
    let mut w = lock(&w);
    let (req, slot) = w.request_of(ctx(c)).ok_or(st(NOT_FOUND))?;
    let s = &mut req.slots[slot];
    match dir {
        Dir::Request => s.req.resume = true,
        Dir::Response => s.resp.resume = true,
    }
    Ok(())
}

fn continue_stream(c: &mut C, ty: i32) -> Hc {
    match ty {
        0 => resume(c, Dir::Request),
        1 => resume(c, Dir::Response),
        2 | 3 => Err(st(UNIMPLEMENTED)),
        _ => Err(st(BAD_ARGUMENT)),
    }
}

fn continue_request(c: &mut C) -> Hc {
    resume(c, Dir::Request)
}

fn continue_response(c: &mut C) -> Hc {
    resume(c, Dir::Response)
}

fn close_stream(c: &mut C, ty: i32) -> Hc {
    match ty {
        0 | 1 => {
            let w = world(c);
            let mut w = lock(&w);
            let (req, _) = w.request_of(ctx(c)).ok_or(st(NOT_FOUND))?;
            req.reset = true;
            Ok(())
        }
        2 | 3 => Err(st(UNIMPLEMENTED)),
        _ => Err(st(BAD_ARGUMENT)),
    }
}

#[allow(clippy::too_many_arguments)]
fn send_local_response(c: &mut C, code: i32, dp: i32, dl: i32, bp: i32, bl: i32, hp: i32, hl: i32, grpc: i32) -> Hc {
    let details = String::from_utf8_lossy(&read(c, dp, dl)?).into_owned();
    let body = read(c, bp, bl)?;
    let headers = deserialize_pairs(&read(c, hp, hl)?).ok_or(st(BAD_ARGUMENT))?;
    let w = world(c);
    let mut w = lock(&w);
    let (req, _) = w.request_of(ctx(c)).ok_or(st(BAD_ARGUMENT))?;
    if req.local.is_none() {
        req.local = Some(LocalResponse {
            status: code as u32 as u16,
            headers: headers.into_iter().map(|(k, v)| (normalize_name(&k), v)).collect(),
            body,
            details,
            grpc_status: grpc,
        });
    }
    Ok(())
}

/// `host:port` (Kong's dispatch target), the port a number.
fn is_host_port(upstream: &str) -> bool {
    upstream.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    c: &mut C,
    up: i32,
    ul: i32,
    hp: i32,
    hl: i32,
    bp: i32,
    bl: i32,
    tp: i32,
    tl: i32,
    timeout: i32,
    rt: i32,
) -> Hc {
    let upstream = String::from_utf8_lossy(&read(c, up, ul)?).into_owned();
    let headers = deserialize_pairs(&read(c, hp, hl)?).ok_or(st(BAD_ARGUMENT))?;
    let body = read(c, bp, bl)?;
    let trailers = deserialize_pairs(&read(c, tp, tl)?).ok_or(st(BAD_ARGUMENT))?;
    let lower = |v: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter().map(|(k, v)| (normalize_name(&k), v)).collect()
    };
    let headers = lower(headers);
    // Envoy requires these pseudo-headers on http calls.
    for required in [":method", ":path", ":authority"] {
        if !headers.iter().any(|(k, _)| k == required) {
            return Err(st(BAD_ARGUMENT));
        }
    }
    // Kong's host dispatches to `host:port` only (no cluster names).
    if lock(&world(c)).kong_quirks && !is_host_port(&upstream) {
        return Err(st(BAD_ARGUMENT));
    }
    let vm = c.data().vm;
    let context_id = ctx(c);
    let token = {
        let w = world(c);
        let mut w = lock(&w);
        let token = w.next_token;
        w.next_token += 1;
        let call = HttpCall {
            token,
            upstream,
            headers,
            body,
            trailers: lower(trailers),
            timeout_ms: timeout as u32,
            context_id,
        };
        w.calls.insert(token, PendingCall { call, vm });
        token
    };
    write_u32(c, rt, token)
}

fn set_effective_context(c: &mut C, id: i32) -> Hc {
    let id = id as u32;
    let vm = c.data().vm;
    let known = {
        let w = world(c);
        let w = lock(&w);
        w.roots.get(&id).is_some_and(|r| r.vm == vm)
            || w.http_ctx.get(&id).is_some_and(|(rid, slot)| {
                w.requests.get(rid).and_then(|r| r.slots.get(*slot)).is_some_and(|s| s.filter.vm == vm)
            })
    };
    if !known {
        return Err(st(BAD_ARGUMENT));
    }
    c.data_mut().effective_ctx = id;
    Ok(())
}

fn done(_c: &mut C) -> Hc {
    Ok(())
}

fn call_foreign_function(_c: &mut C, _np: i32, _nl: i32, _ap: i32, _al: i32, _rp: i32, _rs: i32) -> Hc {
    Err(st(NOT_FOUND))
}

// ---------------------------------------------------------------------------------- metrics

/// ngx_wasm_module before proxy-wasm metrics: "host function not yet implemented" (a trap).
fn metrics_nyi(c: &C) -> Hc {
    if lock(&world(c)).kong_quirks {
        return Err(HcErr::Trap(wasmtime::Error::msg("host function not yet implemented")));
    }
    Ok(())
}

fn define_metric(c: &mut C, ty: i32, np: i32, nl: i32, rid: i32) -> Hc {
    metrics_nyi(c)?;
    let kind = match ty {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return Err(st(BAD_ARGUMENT)),
    };
    let name = String::from_utf8_lossy(&read(c, np, nl)?).into_owned();
    let id = {
        let w = world(c);
        let mut w = lock(&w);
        match w.metrics.iter().position(|m| m.name == name) {
            Some(i) if w.metrics[i].kind == kind => i + 1,
            Some(_) => return Err(st(BAD_ARGUMENT)),
            None => {
                w.metrics.push(Metric { name, kind, value: 0 });
                w.metrics.len()
            }
        }
    };
    write_u32(c, rid, id as u32)
}

fn metric_index(id: i32) -> Hc<usize> {
    (id as u32 as usize).checked_sub(1).ok_or(st(NOT_FOUND))
}

fn get_metric(c: &mut C, id: i32, rv: i32) -> Hc {
    let i = metric_index(id)?;
    let v = {
        let w = world(c);
        let w = lock(&w);
        let m = w.metrics.get(i).ok_or(st(NOT_FOUND))?;
        if m.kind == MetricKind::Histogram {
            return Err(st(BAD_ARGUMENT));
        }
        m.value
    };
    write_u64(c, rv, v)
}

fn record_metric(c: &mut C, id: i32, v: i64) -> Hc {
    metrics_nyi(c)?;
    let i = metric_index(id)?;
    let w = world(c);
    let mut w = lock(&w);
    let m = w.metrics.get_mut(i).ok_or(st(NOT_FOUND))?;
    match m.kind {
        MetricKind::Counter => m.value = m.value.wrapping_add(v as u64),
        MetricKind::Gauge | MetricKind::Histogram => m.value = v as u64,
    }
    Ok(())
}

fn increment_metric(c: &mut C, id: i32, off: i64) -> Hc {
    metrics_nyi(c)?;
    let i = metric_index(id)?;
    let w = world(c);
    let mut w = lock(&w);
    let m = w.metrics.get_mut(i).ok_or(st(NOT_FOUND))?;
    match m.kind {
        MetricKind::Counter if off < 0 => return Err(st(BAD_ARGUMENT)),
        MetricKind::Counter | MetricKind::Gauge => m.value = m.value.wrapping_add_signed(off),
        MetricKind::Histogram => return Err(st(BAD_ARGUMENT)),
    }
    Ok(())
}

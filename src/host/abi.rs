//! The few proxy-wasm host calls the filter makes, declared by hand so that every status the
//! host returns becomes an `Err` (the SDK's `hostcalls` panic on an unexpected status, and its
//! `Status` enum cannot hold a status it does not know) and header values stay raw bytes.

use std::ptr::null_mut;

use crate::request::Header;

/// A non-OK proxy-wasm status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

const CAS_MISMATCH: u32 = 8;

pub const MAP_REQUEST_HEADERS: u32 = 0;
pub const MAP_RESPONSE_HEADERS: u32 = 2;
pub const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
pub const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
pub const BUFFER_REQUEST_BODY: u32 = 0;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(buffer_type: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Take ownership of memory the host filled through `proxy_on_memory_allocate` (the SDK
/// allocates it as a boxed byte slice of exactly `size`).
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host wrote `size` bytes into a block the module allocated with that size.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

fn check(status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live str.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// The host's log level (0 trace … 4 error, 5 critical); a line below it is dropped by the host.
pub fn log_level() -> Result<u32, HostError> {
    // A host that answers OK without writing (Kong's ngx_wasm_module) leaves trace: every line.
    let mut level = 0u32;
    // SAFETY: valid out-pointer.
    check(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

pub fn now_nanos() -> Result<u64, HostError> {
    let mut t = 0u64;
    // SAFETY: valid out-pointer.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

/// All request headers, in order, duplicates kept, values as raw bytes. Malformed
/// serialisations give an error, never a trap.
pub fn request_headers() -> Result<Vec<Header>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: valid out-pointers.
    check(unsafe { proxy_get_header_map_pairs(MAP_REQUEST_HEADERS, &mut data, &mut size) })?;
    deserialize_map(&take(data, size)).ok_or(HostError(NOT_FOUND))
}

pub fn request_header(name: &str) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: pointer and length of a live str, valid out-pointers.
    let status =
        unsafe { proxy_get_header_map_value(MAP_REQUEST_HEADERS, name.as_ptr(), name.len(), &mut data, &mut size) };
    match status {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

pub fn replace_request_header(name: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe {
        proxy_replace_header_map_value(MAP_REQUEST_HEADERS, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_request_header(name: &str) -> Result<(), HostError> {
    // SAFETY: pointer and length of a live str.
    check(unsafe { proxy_remove_header_map_value(MAP_REQUEST_HEADERS, name.as_ptr(), name.len()) })
}

pub fn add_request_header(name: &str, value: &[u8]) -> Result<(), HostError> {
    add_header(MAP_REQUEST_HEADERS, name, value)
}

pub fn add_response_header(name: &str, value: &[u8]) -> Result<(), HostError> {
    add_header(MAP_RESPONSE_HEADERS, name, value)
}

fn add_header(map: u32, name: &str, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe { proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// A shared-data value and its CAS token; `None` when the key does not exist.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: pointer and length of a live str, valid out-pointers.
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) } {
        OK => Ok(Some((take(data, size), cas))),
        NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

/// `Err(HostError(8))` (CAS mismatch) when the key changed since `cas` was read.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    // SAFETY: pointers and lengths of live slices.
    check(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

pub fn is_cas_mismatch(e: HostError) -> bool {
    e.0 == CAS_MISMATCH
}

pub const METRIC_COUNTER: u32 = 0;
pub const METRIC_GAUGE: u32 = 1;

pub fn define_metric(kind: u32, name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: pointer and length of a live str, valid out-pointer.
    check(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn record_metric(id: u32, value: u64) -> Result<(), HostError> {
    // SAFETY: plain values.
    check(unsafe { proxy_record_metric(id, value) })
}

pub fn set_tick_period_ms(period: u32) -> Result<(), HostError> {
    // SAFETY: plain value.
    check(unsafe { proxy_set_tick_period_milliseconds(period) })
}

/// Make the host calls that follow act on context `context_id` (e.g. answer a paused request
/// from the root's tick). Fails if the context is gone.
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: plain value.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// The response headers of an HTTP call, inside `on_http_call_response`.
pub fn http_call_response_headers() -> Result<Vec<Header>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: valid out-pointers.
    check(unsafe { proxy_get_header_map_pairs(MAP_HTTP_CALL_RESPONSE_HEADERS, &mut data, &mut size) })?;
    deserialize_map(&take(data, size)).ok_or(HostError(NOT_FOUND))
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), HostError> {
    // SAFETY: plain values.
    check(unsafe { proxy_increment_metric(id, by) })
}

/// Path segments are joined with NUL, as the ABI wants (a single segment as is: no copy).
fn property_path<'a>(path: &[&'a str]) -> std::borrow::Cow<'a, [u8]> {
    match path {
        [one] => std::borrow::Cow::Borrowed(one.as_bytes()),
        _ => std::borrow::Cow::Owned(path.join("\0").into_bytes()),
    }
}

pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    let p = property_path(path);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: pointer and length of a live Vec, valid out-pointers.
    match unsafe { proxy_get_property(p.as_ptr(), p.len(), &mut data, &mut size) } {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(HostError(other)),
    }
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), HostError> {
    let p = property_path(path);
    // SAFETY: pointers and lengths of live slices.
    check(unsafe { proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) })
}

pub fn get_buffer(buffer_type: u32, start: usize, max_size: usize) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: valid out-pointers.
    match unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) } {
        OK => Ok(take(data, size)),
        NOT_FOUND => Ok(Vec::new()),
        other => Err(HostError(other)),
    }
}

pub fn set_buffer(buffer_type: u32, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer and length of a live slice.
    check(unsafe { proxy_set_buffer_bytes(buffer_type, start, size, value.as_ptr(), value.len()) })
}

pub fn send_local_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    details: &str,
) -> Result<(), HostError> {
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let map = serialize_map(&pairs);
    // SAFETY: pointers and lengths of live slices.
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    })
}

pub use crate::wire::{deserialize_map, serialize_map};

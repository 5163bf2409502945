//! Guest memory access helpers. Out-of-bounds accesses never panic: they become
//! `InvalidMemoryAccess` statuses returned to the module.

use std::sync::{Arc, Mutex};

use wasmtime::Caller;

use crate::state::{VmData, World};

/// proxy-wasm status codes (`WasmResult` in proxy-wasm-cpp-host).
#[allow(dead_code)]
pub(crate) mod status {
    pub const OK: u32 = 0;
    pub const NOT_FOUND: u32 = 1;
    pub const BAD_ARGUMENT: u32 = 2;
    pub const PARSE_FAILURE: u32 = 4;
    pub const INVALID_MEMORY_ACCESS: u32 = 6;
    pub const EMPTY: u32 = 7;
    pub const CAS_MISMATCH: u32 = 8;
    pub const INTERNAL_FAILURE: u32 = 10;
    pub const UNIMPLEMENTED: u32 = 12;
}

/// Error of a host call: a status returned to the module, or a trap (e.g. the module's
/// allocator trapped) that aborts the current callback.
pub(crate) enum HcErr {
    Status(u32),
    Trap(wasmtime::Error),
}

pub(crate) type Hc<T = ()> = Result<T, HcErr>;

pub(crate) fn st(code: u32) -> HcErr {
    HcErr::Status(code)
}

/// Converts a host call result into the value returned to wasm.
pub(crate) fn finish(r: Hc) -> wasmtime::Result<i32> {
    match r {
        Ok(()) => Ok(status::OK as i32),
        Err(HcErr::Status(s)) => Ok(s as i32),
        Err(HcErr::Trap(e)) => Err(e),
    }
}

pub(crate) type C<'a> = Caller<'a, VmData>;

pub(crate) fn world(c: &C) -> Arc<Mutex<World>> {
    c.data().world.clone()
}

pub(crate) fn lock(w: &Arc<Mutex<World>>) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

fn memory(c: &C) -> Hc<wasmtime::Memory> {
    c.data().memory.ok_or(st(status::INTERNAL_FAILURE))
}

fn range(ptr: i32, len: usize) -> Hc<std::ops::Range<usize>> {
    let p = ptr as u32 as usize;
    let end = p.checked_add(len).ok_or(st(status::INVALID_MEMORY_ACCESS))?;
    Ok(p..end)
}

pub(crate) fn read(c: &C, ptr: i32, len: i32) -> Hc<Vec<u8>> {
    let len = len as u32 as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(c)?;
    mem.data(c).get(range(ptr, len)?).map(|s| s.to_vec()).ok_or(st(status::INVALID_MEMORY_ACCESS))
}

pub(crate) fn write(c: &mut C, ptr: i32, data: &[u8]) -> Hc {
    if data.is_empty() {
        return Ok(());
    }
    let mem = memory(c)?;
    let r = range(ptr, data.len())?;
    mem.data_mut(c).get_mut(r).ok_or(st(status::INVALID_MEMORY_ACCESS))?.copy_from_slice(data);
    Ok(())
}

pub(crate) fn write_u32(c: &mut C, ptr: i32, v: u32) -> Hc {
    write(c, ptr, &v.to_le_bytes())
}

pub(crate) fn write_u64(c: &mut C, ptr: i32, v: u64) -> Hc {
    write(c, ptr, &v.to_le_bytes())
}

pub(crate) fn read_u32(c: &C, ptr: i32) -> Hc<u32> {
    let b = read(c, ptr, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Returns `data` to the module the proxy-wasm way: memory obtained from the module's
/// `proxy_on_memory_allocate`, then `*ptr_ptr = ptr, *size_ptr = len`. Empty data gives a
/// null pointer and size 0 (like proxy-wasm-cpp-host).
pub(crate) fn copy_out(c: &mut C, data: &[u8], ptr_ptr: i32, size_ptr: i32) -> Hc {
    // Validate the out-pointers before allocating so that we do not leak guest memory.
    write_u32(c, ptr_ptr, 0)?;
    write_u32(c, size_ptr, 0)?;
    if data.is_empty() {
        return Ok(());
    }
    let alloc = c.data().alloc.clone().ok_or(st(status::INTERNAL_FAILURE))?;
    let p = alloc.call(&mut *c, data.len() as i32).map_err(HcErr::Trap)?;
    if p == 0 {
        return Err(st(status::INVALID_MEMORY_ACCESS));
    }
    write(c, p, data)?;
    write_u32(c, ptr_ptr, p as u32)?;
    write_u32(c, size_ptr, data.len() as u32)
}

//! The few `wasi_snapshot_preview1` imports a Rust `wasm32-wasip1` cdylib needs.
//! No filesystem, no environment, no arguments; stdout/stderr are captured into the logs.

use wasmtime::Linker;

use crate::mem::*;
use crate::state::VmData;
use crate::types::LogLevel;

const M: &str = "wasi_snapshot_preview1";
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;
const ESPIPE: i32 = 70;
const EFAULT: i32 = 21;

fn errno(r: Hc<i32>) -> wasmtime::Result<i32> {
    match r {
        Ok(e) => Ok(e),
        Err(HcErr::Status(_)) => Ok(EFAULT),
        Err(HcErr::Trap(t)) => Err(t),
    }
}

fn fd_write(c: &mut C, fd: i32, iovs: i32, n: i32, nwritten: i32) -> Hc<i32> {
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    let mut data = Vec::new();
    for i in 0..n.max(0) {
        let base = iovs.wrapping_add(i.wrapping_mul(8));
        let p = read_u32(c, base)?;
        let l = read_u32(c, base.wrapping_add(4))?;
        data.extend(read(c, p as i32, l as i32)?);
    }
    write_u32(c, nwritten, data.len() as u32)?;
    let ctx = c.data().effective_ctx;
    let w = world(c);
    let mut w = lock(&w);
    let idx = (fd - 1) as usize;
    w.stdio_partial[idx].extend_from_slice(&data);
    while let Some(pos) = w.stdio_partial[idx].iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = w.stdio_partial[idx].drain(..=pos).collect();
        let msg = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        let level = if fd == 1 { LogLevel::Info } else { LogLevel::Error };
        w.log(ctx, level, msg);
    }
    Ok(ESUCCESS)
}

fn fd_read(c: &mut C, fd: i32, _iovs: i32, _n: i32, nread: i32) -> Hc<i32> {
    if fd != 0 {
        return Ok(EBADF);
    }
    write_u32(c, nread, 0)?;
    Ok(ESUCCESS)
}

fn sizes_zero(c: &mut C, count: i32, size: i32) -> Hc<i32> {
    write_u32(c, count, 0)?;
    write_u32(c, size, 0)?;
    Ok(ESUCCESS)
}

fn random_get(c: &mut C, buf: i32, len: i32) -> Hc<i32> {
    let len = len as u32 as usize;
    let bytes: Vec<u8> = {
        let w = world(c);
        let mut w = lock(&w);
        (0..len.div_ceil(8)).flat_map(|_| w.next_random().to_le_bytes()).take(len).collect()
    };
    write(c, buf, &bytes)?;
    Ok(ESUCCESS)
}

fn clock_time_get(c: &mut C, id: i32, _precision: i64, out: i32) -> Hc<i32> {
    if !(0..=3).contains(&id) {
        return Ok(EINVAL);
    }
    let t = lock(&world(c)).clock_nanos;
    write_u64(c, out, t)?;
    Ok(ESUCCESS)
}

fn clock_res_get(c: &mut C, id: i32, out: i32) -> Hc<i32> {
    if !(0..=3).contains(&id) {
        return Ok(EINVAL);
    }
    write_u64(c, out, 1)?;
    Ok(ESUCCESS)
}

fn fd_fdstat_get(c: &mut C, fd: i32, out: i32) -> Hc<i32> {
    if !(0..=2).contains(&fd) {
        return Ok(EBADF);
    }
    // filetype = character_device (2), flags = 0, rights = all.
    let mut stat = [0u8; 24];
    stat[0] = 2;
    stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    stat[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    write(c, out, &stat)?;
    Ok(ESUCCESS)
}

macro_rules! wasi {
    ($l:expr, $name:literal, $f:expr, ($($a:ident : $t:ty),*)) => {
        $l.func_wrap(M, $name, |mut c: C<'_>, $($a: $t),*| -> wasmtime::Result<i32> {
            #[allow(clippy::redundant_closure_call)]
            errno(($f)(&mut c, $($a),*))
        })?;
    };
}

pub(crate) fn add_to_linker(l: &mut Linker<VmData>) -> wasmtime::Result<()> {
    wasi!(l, "fd_write", fd_write, (fd: i32, iovs: i32, n: i32, nw: i32));
    wasi!(l, "fd_read", fd_read, (fd: i32, iovs: i32, n: i32, nr: i32));
    wasi!(l, "environ_sizes_get", sizes_zero, (a: i32, b: i32));
    wasi!(l, "args_sizes_get", sizes_zero, (a: i32, b: i32));
    wasi!(l, "environ_get", |_c: &mut C, _a: i32, _b: i32| Ok(ESUCCESS), (a: i32, b: i32));
    wasi!(l, "args_get", |_c: &mut C, _a: i32, _b: i32| Ok(ESUCCESS), (a: i32, b: i32));
    wasi!(l, "random_get", random_get, (buf: i32, len: i32));
    wasi!(l, "clock_time_get", clock_time_get, (id: i32, precision: i64, out: i32));
    wasi!(l, "clock_res_get", clock_res_get, (id: i32, out: i32));
    wasi!(l, "fd_fdstat_get", fd_fdstat_get, (fd: i32, out: i32));
    wasi!(l, "fd_close", |_c: &mut C, _fd: i32| Ok(EBADF), (fd: i32));
    wasi!(l, "fd_seek", |_c: &mut C, fd: i32, _o: i64, _w: i32, _r: i32| Ok(if (0..=2).contains(&fd) { ESPIPE } else { EBADF }),
        (fd: i32, offset: i64, whence: i32, out: i32));
    wasi!(l, "fd_fdstat_set_flags", |_c: &mut C, _fd: i32, _f: i32| Ok(ENOSYS), (fd: i32, flags: i32));
    wasi!(l, "fd_prestat_get", |_c: &mut C, _fd: i32, _p: i32| Ok(EBADF), (fd: i32, out: i32));
    wasi!(l, "fd_prestat_dir_name", |_c: &mut C, _fd: i32, _p: i32, _l: i32| Ok(EBADF), (fd: i32, p: i32, len: i32));
    wasi!(l, "sched_yield", |_c: &mut C| Ok(ESUCCESS), ());
    wasi!(l, "poll_oneoff", |_c: &mut C, _a: i32, _b: i32, _n: i32, _r: i32| Ok(ENOTSUP), (a: i32, b: i32, n: i32, r: i32));
    l.func_wrap(M, "proc_exit", |_c: C<'_>, code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::format_err!("wasm module called proc_exit({code})"))
    })?;
    Ok(())
}

//! Hand-assembled proxy-wasm modules (ABI 0.2.1) that load and configure fine:
//! [`trapping_filter`] traps (`unreachable`) on every request: the "filter that cannot run" of
//! the FAIL_CLOSED check; [`noop_filter`] does nothing on every callback an SDK filter exports
//! for a request: the floor of what any wasm filter costs per request (`make bench`).

const I32: u8 = 0x7f;

fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn vec_of(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    leb(items.len(), &mut out);
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

fn section(id: u8, contents: Vec<u8>, out: &mut Vec<u8>) {
    out.push(id);
    leb(contents.len(), out);
    out.extend(contents);
}

fn func_type(params: &[u8], results: &[u8]) -> Vec<u8> {
    let mut t = vec![0x60];
    leb(params.len(), &mut t);
    t.extend_from_slice(params);
    leb(results.len(), &mut t);
    t.extend_from_slice(results);
    t
}

fn name(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    leb(s.len(), &mut out);
    out.extend_from_slice(s.as_bytes());
    out
}

/// The trapping module's bytes.
pub fn trapping_filter() -> Vec<u8> {
    module(&[(4, &[0x00], &["proxy_on_request_headers"])]) // unreachable
}

/// The no-op module's bytes: every per-request callback returns Continue (or "done").
pub fn noop_filter() -> Vec<u8> {
    module(&[
        (4, &[0x41, 0x00], &["proxy_on_request_headers", "proxy_on_response_headers"]), // i32.const 0
        (4, &[0x41, 0x00], &["proxy_on_request_body", "proxy_on_response_body"]),
        (2, &[0x41, 0x00], &["proxy_on_request_trailers", "proxy_on_response_trailers"]),
        (1, &[0x41, 0x01], &["proxy_on_done"]), // i32.const 1
        (5, &[], &["proxy_on_log", "proxy_on_delete"]),
    ])
}

/// A module with the common exports (ABI version, allocator, vm start, configure, context
/// create) and `per_request` (type index, body instructions without the final `end`, names).
fn module(per_request: &[(u8, &[u8], &[&str])]) -> Vec<u8> {
    let types = [
        func_type(&[], &[]),            // 0: () -> ()
        func_type(&[I32], &[I32]),      // 1: (i32) -> i32
        func_type(&[I32, I32], &[I32]), // 2: (i32, i32) -> i32
        func_type(&[I32, I32], &[]),    // 3: (i32, i32) -> ()
        func_type(&[I32; 3], &[I32]),   // 4: (i32, i32, i32) -> i32
        func_type(&[I32], &[]),         // 5: (i32) -> ()
    ];
    let mut functions: Vec<(u8, &[u8], &[&str])> = vec![
        (0, &[], &["proxy_abi_version_0_2_1"]),
        (1, &[0x41, 0x80, 0x08], &["malloc", "proxy_on_memory_allocate"]), // i32.const 1024
        (2, &[0x41, 0x01], &["proxy_on_vm_start"]),                        // i32.const 1
        (2, &[0x41, 0x01], &["proxy_on_configure"]),                       // i32.const 1
        (3, &[], &["proxy_on_context_create"]),
    ];
    functions.extend_from_slice(per_request);

    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, vec_of(&types), &mut module);
    section(3, vec_of(&functions.iter().map(|(t, _, _)| vec![*t]).collect::<Vec<_>>()), &mut module);
    section(5, vec_of(&[vec![0x00, 0x01]]), &mut module); // one memory, min 1 page
    let mut exports = vec![[name("memory"), vec![0x02, 0x00]].concat()];
    for (index, (_, _, names)) in functions.iter().enumerate() {
        for n in *names {
            exports.push([name(n), vec![0x00, index as u8]].concat());
        }
    }
    section(7, vec_of(&exports), &mut module);
    let bodies: Vec<Vec<u8>> = functions
        .iter()
        .map(|(_, code, _)| {
            let body = [&[0x00][..], code, &[0x0b]].concat(); // no locals, code, end
            let mut sized = Vec::new();
            leb(body.len(), &mut sized);
            sized.extend(body);
            sized
        })
        .collect();
    section(10, vec_of(&bodies), &mut module);
    module
}

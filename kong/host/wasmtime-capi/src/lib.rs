//! The wasmtime C API (libwasmtime.a) for ngx_wasm_module: a re-export of wasmtime-c-api-impl.
pub use wasmtime_c_api::*;

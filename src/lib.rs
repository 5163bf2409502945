//! consumer-auth: Kong Gateway's consumer authentication model as one proxy-wasm filter.
//!
//! Everything but `host` is the engine: plain Rust that knows nothing of proxy-wasm, in layers
//! that import only the layers below them (`layers.rs` lists them and a unit test checks it;
//! docs/ARCHITECTURE.md draws them). `host` binds the engine to the SDK and is only built for
//! wasm32.

pub mod config;
pub mod consumers;
pub mod crypto;
pub mod error;
pub mod host_kind;
pub mod identity;
pub mod identity_headers;
pub mod pipeline;
pub mod plugins;
pub mod proxy;
pub mod request;
pub mod response;
pub mod store;
pub mod time;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod host;

#[cfg(test)]
mod layers;

/// The largest request body buffered for a plugin that reads the body (key-auth with
/// `key_in_body`). A larger body is answered with 413 instead of being buffered. Equal to
/// Envoy's default per-connection buffer limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Every shared-data key starts with `consumer_auth/`: in Kong, ngx_wasm_module files a key
/// `<namespace>/<rest>` under the `shm_kv` zone of that name (`nginx_wasm_shm_kv_consumer_auth`
/// in kong.conf), falling back to the default zone `*`; in Envoy it is just part of the key.
pub const SHARED_DATA_PREFIX: &str = "consumer_auth/";

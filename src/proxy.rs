//! What the engine asks of the proxy besides the request itself: the clock, logging, shared
//! data, the client's address. A leaf: the glue (`host/`) implements [`Host`], tests fake it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// What the engine needs from the proxy besides the request itself.
pub trait Host {
    /// Unix time in seconds.
    fn now_unix_seconds(&mut self) -> u64;
    fn log(&mut self, level: LogLevel, message: &str);
    /// The request's HTTP protocol as the host names it (Envoy: `HTTP/1.0`, `HTTP/1.1`,
    /// `HTTP/2`, `HTTP/3`), if it tells. Asked only when a plugin needs it (hmac-auth's
    /// `request-line`).
    fn request_protocol(&mut self) -> Option<String> {
        None
    }

    /// Proxy-wide shared data (all workers): the value and its CAS token.
    fn shared_get(&mut self, _key: &str) -> Result<Option<(Vec<u8>, u32)>, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Write `value` if the key's CAS token is still `cas` (0: unconditionally).
    fn shared_set(&mut self, _key: &str, _value: &[u8], _cas: u32) -> Result<(), SharedError> {
        Err(SharedError::Unavailable)
    }

    /// The client's address (without port), read only when a plugin needs it.
    fn client_ip(&mut self) -> Option<String> {
        None
    }

    /// One more of a counter operators scrape (the glue turns it into a proxy metric).
    fn count(&mut self, _counter: Counter) {}
}

/// Counters the engine reports besides each request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A jwt token found in the plugin's verified-token cache (its signature not checked again).
    JwtCacheHit,
    /// A jwt token not in the cache (or its entry no longer valid): verified in full.
    JwtCacheMiss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedError {
    /// Someone else wrote the key since it was read.
    CasMismatch,
    Unavailable,
}

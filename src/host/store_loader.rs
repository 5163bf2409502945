//! Filling a shared consumer store (the `store` section of a configuration): at configure time
//! from consumers given in the document, or from a remote source polled every
//! `refresh_seconds` by one root context per proxy per period.

use std::cell::Cell;
use std::time::Duration;

use crate::config::{self, RemoteSource, StoreContent, StoreDefinition};
use crate::consumers::ContentDigest;
use crate::pipeline::{Host, LogLevel, SharedError};
use crate::store::{self, Written};

use super::{abi, log, metrics, ProxyHost};

/// The store a root context fills, and its remote-source state.
pub struct Loader {
    name: String,
    remote: Option<Remote>,
    /// Tells this root's lease apart from other roots'.
    token: String,
    /// Kong: the consumers of the document are still to be written (see [`Loader::start`]).
    inline_pending: Cell<bool>,
}

struct Remote {
    source: RemoteSource,
    /// The HTTP call in flight, if any, and when it was sent (unix seconds).
    in_flight: Option<(u32, u64)>,
}

fn lease_key(store: &str) -> String {
    format!("{}store:{store}:lease", crate::SHARED_DATA_PREFIX)
}

impl Loader {
    /// Fill the store from the document now, or arm the remote source's timer.
    ///
    /// `defer` (Kong): write the document's consumers later, on the first request or tick, never
    /// in `on_configure`. Without the `shm_kv` zone, ngx_wasm_module traps on any shared-data
    /// call; a trap in `on_configure` makes the worker exit for good and the proxy hang, while a
    /// trap in a request or a tick is answered (500) and logged.
    pub fn start(def: &StoreDefinition, context_id: u32, defer: bool) -> Result<Loader, String> {
        let token = format!("{context_id}-{}", abi::now_nanos().unwrap_or_default());
        match &def.content {
            StoreContent::Inline { .. } => {
                let loader = Loader { name: def.name.clone(), remote: None, token, inline_pending: Cell::new(defer) };
                if defer {
                    abi::set_tick_period_ms(1000)
                        .map_err(|e| format!("store '{}': no timer (host status {})", def.name, e.0))?;
                } else {
                    write_inline(def)?;
                }
                Ok(loader)
            }
            StoreContent::Remote(source) => {
                // A tick a second; the fetch itself happens once per refresh period.
                abi::set_tick_period_ms(1000)
                    .map_err(|e| format!("store '{}': no timer (host status {})", def.name, e.0))?;
                let remote = Some(Remote { source: source.clone(), in_flight: None });
                Ok(Loader { name: def.name.clone(), remote, token, inline_pending: Cell::new(false) })
            }
        }
    }

    /// Write the document's consumers if that was deferred and is still to be done.
    pub fn write_pending(&self, def: Option<&StoreDefinition>) {
        if !self.inline_pending.replace(false) {
            return;
        }
        if let Some(def) = def {
            if let Err(e) = write_inline(def) {
                log(LogLevel::Error, &format!("consumer-auth: {e}"));
            }
        }
    }

    /// Whether this loader has nothing left to do on ticks (a written inline store).
    pub fn idle(&self) -> bool {
        self.remote.is_none() && !self.inline_pending.get()
    }

    /// Fetch if this period's fetch is still to be done and this root wins the period's lease.
    pub fn on_tick(&mut self) {
        let Some(remote) = &mut self.remote else { return };
        let now = ProxyHost.now_unix_seconds();
        if let Some((_, sent)) = remote.in_flight {
            // Envoy answers every call, if only with its timeout; Kong does not call back for a
            // call that failed. Never wait for ever.
            if now < sent + remote.source.timeout_ms / 1000 + 5 {
                return;
            }
            remote.in_flight = None;
            self.failed("failed", "no answer within the timeout");
        }
        let Some(remote) = &mut self.remote else { return };
        let period = now / remote.source.refresh_seconds;
        if !claim_period(&self.name, period, &self.token) {
            return;
        }
        let etag = store::read_meta(&mut ProxyHost, &self.name).ok().and_then(|(m, _)| m.etag);
        let mut headers = vec![
            (":method", "GET"),
            (":path", remote.source.path.as_str()),
            (":authority", remote.source.authority.as_str()),
            (":scheme", remote.source.scheme),
            ("accept", "application/json"),
        ];
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag.as_str()));
        }
        let timeout = Duration::from_millis(remote.source.timeout_ms);
        // The SDK's dispatch registers the call, so that its answer is routed back to this root.
        match proxy_wasm::hostcalls::dispatch_http_call(&remote.source.upstream, headers, None, vec![], timeout) {
            Ok(token) => remote.in_flight = Some((token, now)),
            Err(e) => self.failed("failed", &format!("cannot dispatch the request ({e:?})")),
        }
    }

    /// The answer to our fetch: keep the last good generation on anything but a valid document.
    pub fn on_http_call_response(&mut self, token: u32, body_size: usize) {
        let Some(remote) = &mut self.remote else { return };
        if remote.in_flight.map(|(t, _)| t) != Some(token) {
            return;
        }
        remote.in_flight = None;
        let headers = abi::http_call_response_headers().unwrap_or_default();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let status = header(":status").and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(304) => metrics::store_fetch(&self.name, "unchanged"),
            Some(200) => match self.load(body_size, header("etag")) {
                Ok((written, timing)) => {
                    let outcome = if matches!(written, Written::Switched { .. }) { "updated" } else { "unchanged" };
                    metrics::store_fetch(&self.name, outcome);
                    report(&self.name, &written, &timing);
                }
                Err((outcome, why)) => self.failed(outcome, &why),
            },
            Some(other) => self.failed("failed", &format!("status {other}")),
            None => self
                .failed("failed", "no answer (timeout, connection failure, or a response over the proxy's size limit)"),
        }
    }

    /// Read, validate and write a fetched document: what was written and how long the phases
    /// took, or the fetch outcome (`invalid`, `failed`) and the reason.
    fn load(&self, body_size: usize, etag: Option<String>) -> Result<(Written, String), (&'static str, String)> {
        let started = abi::now_nanos().unwrap_or_default();
        // Read in chunks from Envoy: the document (~170 MB for a million consumers) is never in
        // the VM's memory as a whole, only the records built from it (Kong: read whole, see
        // `ResponseBody`).
        let mut body = ResponseBody { offset: 0, size: body_size, digest: ContentDigest::default(), whole: None };
        let parsed = config::read_consumers_document(std::io::BufReader::with_capacity(1 << 20, &mut body));
        let digest = body.digest.finish();
        let population = parsed.map_err(|e| ("invalid", format!("invalid document: {e}")))?;
        let built = abi::now_nanos().unwrap_or_default();
        let result = store::write(&mut ProxyHost, &self.name, &population, &digest, etag);
        drop(population);
        let written = result.map_err(|e| ("failed", format!("cannot write the new generation: {e:?}")))?;
        let done = abi::now_nanos().unwrap_or_default();
        let seconds = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
        let timing = format!(
            "; {:.1} MB read and validated in {:.2} s, written in {:.2} s",
            body_size as f64 / 1e6,
            seconds(started, built),
            seconds(built, done)
        );
        Ok((written, timing))
    }

    fn failed(&self, outcome: &str, why: &str) {
        metrics::store_fetch(&self.name, outcome);
        let current = store::read_meta(&mut ProxyHost, &self.name).map(|(m, _)| m.gen).unwrap_or(0);
        log(
            LogLevel::Warn,
            &format!("consumer-auth: store '{}': fetch failed: {why}; keeping generation {current}", self.name),
        );
    }
}

/// The HTTP call's response body, read from the host on demand, its digest computed on the way.
struct ResponseBody {
    offset: usize,
    size: usize,
    digest: ContentDigest,
    /// Kong: the whole body, read at once (ngx_wasm_module ignores the offset of a read).
    whole: Option<Vec<u8>>,
}

impl std::io::Read for &mut ResponseBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(self.size.saturating_sub(self.offset));
        if want == 0 {
            return Ok(0);
        }
        let fetch = |start: usize, len: usize| {
            abi::get_buffer(abi::BUFFER_HTTP_CALL_RESPONSE_BODY, start, len)
                .map_err(|e| std::io::Error::other(format!("the host did not give the response body (status {})", e.0)))
        };
        let fetched;
        let chunk: &[u8] = if super::kind().reads_call_body_in_chunks() {
            fetched = fetch(self.offset, want)?;
            &fetched
        } else {
            if self.whole.is_none() {
                self.whole = Some(fetch(0, self.size)?);
            }
            self.whole.as_deref().and_then(|w| w.get(self.offset..)).unwrap_or_default()
        };
        let n = chunk.len().min(want);
        let (Some(to), Some(from)) = (buf.get_mut(..n), chunk.get(..n)) else { return Ok(0) };
        to.copy_from_slice(from);
        self.digest.update(from);
        self.offset += n;
        Ok(n)
    }
}

fn write_inline(def: &StoreDefinition) -> Result<(), String> {
    let StoreContent::Inline { population, digest } = &def.content else { return Ok(()) };
    match store::write(&mut ProxyHost, &def.name, population, digest, None) {
        Ok(written) => {
            report(&def.name, &written, "");
            Ok(())
        }
        Err(e) => Err(format!("store '{}': cannot be written: {e:?}", def.name)),
    }
}

/// One fetch per proxy per period: the root that moves the lease (`<period>:<token>`) to this
/// period fetches. An existing lease is moved with compare-and-swap; the very first one (no CAS
/// token to compare with) is written, then read back to see whose token stayed.
fn claim_period(store: &str, period: u64, token: &str) -> bool {
    let key = lease_key(store);
    let (current, cas) = match ProxyHost.shared_get(&key) {
        Ok(Some((v, cas))) => (String::from_utf8_lossy(&v).into_owned(), cas),
        Ok(None) => (String::new(), 0),
        Err(_) => return false,
    };
    let leased = current.split_once(':').and_then(|(p, _)| p.parse::<u64>().ok());
    if leased.is_some_and(|p| p >= period) {
        return false;
    }
    let mine = format!("{period}:{token}");
    if let Err(SharedError::CasMismatch | SharedError::Unavailable) = ProxyHost.shared_set(&key, mine.as_bytes(), cas) {
        return false;
    }
    cas != 0 || matches!(ProxyHost.shared_get(&key), Ok(Some((v, _))) if v == mine.as_bytes())
}

/// `detail`: appended to the "loaded" line (how long a fetched document took).
fn report(name: &str, written: &Written, detail: &str) {
    match written {
        Written::Switched { gen, records } => {
            metrics::store_generation(name, *gen);
            log(
                LogLevel::Info,
                &format!("consumer-auth: store '{name}': generation {gen} loaded ({records} records{detail})"),
            );
        }
        Written::AlreadyCurrent(gen) => {
            metrics::store_generation(name, *gen);
            log(LogLevel::Debug, &format!("consumer-auth: store '{name}': generation {gen} is already current"));
        }
    }
}

//! A consumer store's remote source for the tests and `make bench-store`: an HTTP/1.1 server
//! (keep-alive) that answers every GET with the current document and its ETag, `304 Not
//! Modified` when `If-None-Match` names that ETag, and lets the test swap the document or make
//! the source fail.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the source answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with the body and `ETag`, or `304` on a matching `If-None-Match`.
    Document { body: Arc<Vec<u8>>, etag: String },
    /// This status, a short text body, no ETag.
    Status(u16),
}

/// One request the source received.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub path: String,
    pub if_none_match: Option<String>,
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    reply: Option<Reply>,
    fetches: Vec<Fetch>,
    versions: u64,
}

pub struct DocumentServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl DocumentServer {
    /// On a free port; until a document is set it answers `503`.
    pub fn start() -> DocumentServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the document server");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state_a, stop_a) = (Arc::clone(&state), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop_a.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let state = Arc::clone(&state_a);
                    std::thread::spawn(move || serve(stream, &state));
                }
            }
        });
        DocumentServer { port, state, stop, accept: Some(accept) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve `body` from now on with a new ETag (`"v<n>"`); returns the ETag.
    pub fn set_document(&self, body: impl Into<Vec<u8>>) -> String {
        let mut state = self.lock();
        state.versions += 1;
        let etag = format!("\"v{}\"", state.versions);
        state.reply = Some(Reply::Document { body: Arc::new(body.into()), etag: etag.clone() });
        etag
    }

    /// `{"consumers": consumers}` (see [`DocumentServer::set_document`]).
    pub fn set_consumers(&self, consumers: &serde_json::Value) -> String {
        self.set_document(serde_json::json!({ "consumers": consumers }).to_string())
    }

    /// Answer every request with `status` from now on.
    pub fn fail_with(&self, status: u16) {
        self.lock().reply = Some(Reply::Status(status));
    }

    /// Every request received so far.
    pub fn fetches(&self) -> Vec<Fetch> {
        self.lock().fetches.clone()
    }
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Request line and headers; the body (GETs have none) is skipped by Content-Length.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<(String, String)>)> {
    let (_, path, _, headers) = crate::echo::read_head(reader)?;
    let headers: Vec<(String, String)> = headers.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<u64>().ok());
    if let Some(length) = length.filter(|l| *l > 0) {
        std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink()).ok()?;
    }
    Some((path, headers))
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    while let Some((path, headers)) = read_head(&mut reader) {
        let at = Instant::now();
        let if_none_match = headers.iter().find(|(n, _)| n == "if-none-match").map(|(_, v)| v.clone());
        let reply = state.lock().unwrap_or_else(|e| e.into_inner()).reply.clone();
        let (status, head, body): (u16, String, Arc<Vec<u8>>) = match reply {
            Some(Reply::Document { etag, .. }) if if_none_match.as_deref() == Some(etag.as_str()) => {
                (304, format!("etag: {etag}\r\n"), Arc::new(Vec::new()))
            }
            Some(Reply::Document { body, etag }) => {
                (200, format!("content-type: application/json\r\netag: {etag}\r\n"), body)
            }
            Some(Reply::Status(status)) => (status, String::new(), Arc::new(format!("status {status}").into_bytes())),
            None => (503, String::new(), Arc::new(b"no document yet".to_vec())),
        };
        state.lock().unwrap_or_else(|e| e.into_inner()).fetches.push(Fetch { path, if_none_match, status, at });
        let length = if status == 304 { String::new() } else { format!("content-length: {}\r\n", body.len()) };
        let head = format!("HTTP/1.1 {status} X\r\n{head}{length}\r\n");
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

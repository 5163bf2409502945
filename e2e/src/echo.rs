//! The upstream: answers every request with `200`, header `x-echo: 1` and a JSON description of
//! what it received: method, raw path, every header in order (duplicates included), body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

pub struct EchoServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// On a free port.
    pub fn start() -> EchoServer {
        EchoServer::start_on(0).expect("bind the echo upstream")
    }

    /// On `port` (0: a free one).
    pub fn start_on(port: u16) -> std::io::Result<EchoServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let received = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&received);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let counter = Arc::clone(&counter);
                    std::thread::spawn(move || serve(stream, &counter));
                }
            }
        });
        Ok(EchoServer { port, stop, received, accept: Some(accept) })
    }

    /// Requests whose head reached this upstream so far (answered or not).
    pub fn requests_received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop up so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// One connection, keep-alive: request after request until the peer closes.
fn serve(stream: TcpStream, received: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    while let Some((request, keep_alive)) = read_request(&mut reader, received) {
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-echo: 1\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if keep_alive { "" } else { "connection: close\r\n" }
        )
        .into_bytes();
        response.extend_from_slice(&body);
        // One write: no Nagle / delayed-ACK stall between head and body.
        if writer.write_all(&response).is_err() || !keep_alive {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// An HTTP/1.1 request line and headers as sent: method, raw path, version, and the headers in
/// order with their names as written.
pub type Head = (String, String, String, Vec<(String, String)>);

/// Read a request head; `None` at the end of the connection or on a malformed head.
pub fn read_head(reader: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    Some((method, path, version, headers))
}

fn read_request(reader: &mut BufReader<TcpStream>, received: &AtomicUsize) -> Option<(serde_json::Value, bool)> {
    let (method, path, version, headers) = read_head(reader)?;
    received.fetch_add(1, Ordering::SeqCst);
    let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t).ok()? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
    }
    let keep_alive = !get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
    let value = json!({
        "method": method,
        "path": path,
        "version": version,
        "headers": headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&body),
    });
    Some((value, keep_alive))
}

//! `vpt lab`'s HTTP server: the page of `benches/browser/` (embedded in the binary, so the lab
//! works from any folder) and the traces, and the browser build's pages, package and demo data
//! (`web.rs`), on 127.0.0.1 only.
//!
//! Deliberately tiny: GET and HEAD of a fixed set of paths, one thread per connection, the
//! connection closed after each answer. Browsers give WebGPU only to secure contexts, and
//! `http://127.0.0.1` is one, so no TLS is needed. Nothing a request says can name a file: a
//! trace is looked up by name among those loaded at start, and every other file by its exact path
//! among those read at start.
//!
//! It holds under a flood of slow clients (connections that send nothing, or a byte at a time):
//! - at most [`MAX_CONNECTIONS`] are given the full [`HEAD_DEADLINE`] to send their request;
//! - past that, up to as many again are served only if their request arrives within
//!   [`HURRIED_DEADLINE`], as a browser's does at once, so a legitimate request still gets an
//!   answer while slow ones hold the first slots; past both, a connection is closed at once;
//! - when accepting fails (no file handle left: a low open-file limit), the server pauses
//!   [`ACCEPT_BACKOFF`] instead of retrying at once, which spun a core at 100% and answered
//!   nothing.
//!
//! A well-kept server crate would bring these too, but also an async runtime for a page and a few
//! files; these three rules are the part we need.

use std::borrow::Cow;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const INDEX_HTML: &str = include_str!("../../benches/browser/index.html");
const REPLAY_JS: &str = include_str!("../../benches/browser/replay.js");

/// The longest request head we read; anything longer is refused.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Connections given the full [`HEAD_DEADLINE`]; as many again get [`HURRIED_DEADLINE`].
pub const MAX_CONNECTIONS: usize = 32;
/// The longest a client may take to send its whole request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// The same, for a connection that came while [`MAX_CONNECTIONS`] were busy.
const HURRIED_DEADLINE: Duration = Duration::from_millis(250);
/// The longest an answer may take to be written (a client that stops reading).
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The traces a lab serves, by name (`/traces/<name>.trace`).
pub type Traces = Vec<(String, Vec<u8>)>;

/// One more file a lab serves: its path on the site ("/train", "/pkg/vpt_web_bg.wasm"), its
/// content type, its bytes. Read once at start (`web.rs`), so no request ever names a file.
pub struct SiteFile {
    pub path: String,
    pub content_type: &'static str,
    pub bytes: Cow<'static, [u8]>,
}

/// Everything a lab serves: the replay page and its traces, and the browser build's pages,
/// package and demo data.
pub struct Site {
    pub traces: Traces,
    pub files: Vec<SiteFile>,
}

/// Is `s` a name a trace may have (letters, digits, '-', '_')?
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Bind 127.0.0.1:`port` (0: any free port). An error names the port and what to do.
pub fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|e| Error::invalid("port", format!("cannot listen on 127.0.0.1:{port}: {e}; pass another `port` (0 picks a free one)")))
}

/// Answer requests on `listener` until the process ends.
pub fn serve(listener: TcpListener, site: Arc<Site>) -> Result<()> {
    let busy = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            std::thread::sleep(ACCEPT_BACKOFF);
            continue;
        };
        let deadline = match busy.load(Ordering::SeqCst) {
            n if n < MAX_CONNECTIONS => HEAD_DEADLINE,
            n if n < 2 * MAX_CONNECTIONS => HURRIED_DEADLINE,
            _ => continue, // closed at once
        };
        busy.fetch_add(1, Ordering::SeqCst);
        let (site, slot) = (site.clone(), busy.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            // A client that goes away mid-answer is its own business.
            let _ = answer(stream, &site, deadline);
            slot.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(ACCEPT_BACKOFF);
        }
    }
    Ok(())
}

/// Read one request head (within `deadline`) and write one answer.
fn answer(mut stream: TcpStream, site: &Site, deadline: Duration) -> std::io::Result<()> {
    stream.set_write_timeout(Some(WRITE_DEADLINE))?;
    let head = read_head(&stream, Instant::now() + deadline)?;
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let (status, content_type, body) = match (method, route(path, site)) {
        ("GET" | "HEAD", Some((content_type, body))) => ("200 OK", content_type, body),
        ("GET" | "HEAD", None) => ("404 Not Found", "text/plain; charset=utf-8", Cow::Borrowed(&b"not found: the lab serves /, /replay.js, /traces/, /traces/NAME.trace, /train and /check\n"[..])),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", Cow::Borrowed(&b"only GET and HEAD\n"[..])),
    };
    let header = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(header.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

/// The request line and headers, up to the blank line (at most [`MAX_REQUEST_BYTES`]), all of
/// it before `deadline`: a client sending a byte at a time cannot hold the connection longer.
fn read_head(stream: &TcpStream, deadline: Instant) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_BYTES as u64));
    let mut head = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        if reader.buffer().is_empty() {
            reader.get_ref().get_ref().set_read_timeout(Some(left))?;
        }
        let mut byte = [0u8; 1];
        if reader.read(&mut byte)? == 0 {
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") || head == b"\r\n" || head == b"\n" {
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
    }
}

/// What a path serves: (content type, body).
fn route<'a>(path: &str, site: &'a Site) -> Option<(&'static str, Cow<'a, [u8]>)> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", Cow::Borrowed(INDEX_HTML.as_bytes()))),
        "/replay.js" => Some(("text/javascript; charset=utf-8", Cow::Borrowed(REPLAY_JS.as_bytes()))),
        "/traces/" | "/traces" => Some(("application/json", Cow::Owned(index_json(&site.traces).into_bytes()))),
        _ => match path.strip_prefix("/traces/").and_then(|p| p.strip_suffix(".trace")) {
            Some(name) => site.traces.iter().find(|(n, _)| n == name).map(|(_, bytes)| ("application/octet-stream", Cow::Borrowed(&bytes[..]))),
            None => site.files.iter().find(|f| f.path == path).map(|f| (f.content_type, Cow::Borrowed(&f.bytes[..]))),
        },
    }
}

/// `/traces/`: each trace's name and size in bytes, as JSON.
fn index_json(traces: &Traces) -> String {
    let list: Vec<serde_json::Value> = traces.iter().map(|(name, bytes)| serde_json::json!({ "name": name, "bytes": bytes.len() })).collect();
    serde_json::Value::from(list).to_string()
}

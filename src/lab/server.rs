//! `vpt lab`'s HTTP server: the page of `benches/browser/` (embedded in the binary, so the lab
//! works from any folder) and the traces, on 127.0.0.1 only.
//!
//! Deliberately tiny: GET and HEAD of a fixed set of paths, one thread per connection, the
//! connection closed after each answer. Browsers give WebGPU only to secure contexts, and
//! `http://127.0.0.1` is one, so no TLS is needed. Nothing a request says can name a file: a
//! trace is looked up by name among those loaded at start.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

const INDEX_HTML: &str = include_str!("../../benches/browser/index.html");
const REPLAY_JS: &str = include_str!("../../benches/browser/replay.js");

/// The longest request head we read; anything longer is refused.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The traces a lab serves, by name (`/traces/<name>.trace`).
pub type Traces = Arc<Vec<(String, Vec<u8>)>>;

/// Is `s` a name a trace may have (letters, digits, '-', '_')?
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Bind 127.0.0.1:`port` (0: any free port). An error names the port and what to do.
pub fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|e| Error::invalid("port", format!("cannot listen on 127.0.0.1:{port}: {e}; pass another `port` (0 picks a free one)")))
}

/// Answer requests on `listener` until the process ends.
pub fn serve(listener: TcpListener, traces: Traces) -> Result<()> {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let traces = traces.clone();
        std::thread::spawn(move || {
            // A client that goes away mid-answer is its own business.
            let _ = answer(stream, &traces);
        });
    }
    Ok(())
}

/// Read one request head and write one answer.
fn answer(mut stream: TcpStream, traces: &Traces) -> std::io::Result<()> {
    // A client that sends nothing must not hold a thread for ever.
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = read_head(&stream)?;
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let (status, content_type, body) = match (method, route(path, traces)) {
        ("GET" | "HEAD", Some((content_type, body))) => ("200 OK", content_type, body),
        ("GET" | "HEAD", None) => ("404 Not Found", "text/plain; charset=utf-8", Cow::Borrowed(&b"not found: the lab serves /, /replay.js, /traces/ and /traces/NAME.trace\n"[..])),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", Cow::Borrowed(&b"only GET and HEAD\n"[..])),
    };
    let header = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(header.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

/// The request line and headers, up to the blank line (at most [`MAX_REQUEST_BYTES`]).
fn read_head(stream: &TcpStream) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_BYTES as u64));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            return Ok(head);
        }
        head.push_str(&line);
    }
}

/// What a path serves: (content type, body).
fn route<'a>(path: &str, traces: &'a Traces) -> Option<(&'static str, Cow<'a, [u8]>)> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", Cow::Borrowed(INDEX_HTML.as_bytes()))),
        "/replay.js" => Some(("text/javascript; charset=utf-8", Cow::Borrowed(REPLAY_JS.as_bytes()))),
        "/traces/" | "/traces" => Some(("application/json", Cow::Owned(index_json(traces).into_bytes()))),
        _ => {
            let name = path.strip_prefix("/traces/")?.strip_suffix(".trace")?;
            traces.iter().find(|(n, _)| n == name).map(|(_, bytes)| ("application/octet-stream", Cow::Borrowed(&bytes[..])))
        }
    }
}

/// `/traces/`: each trace's name and size in bytes, as JSON.
fn index_json(traces: &Traces) -> String {
    let list: Vec<serde_json::Value> = traces.iter().map(|(name, bytes)| serde_json::json!({ "name": name, "bytes": bytes.len() })).collect();
    serde_json::Value::from(list).to_string()
}

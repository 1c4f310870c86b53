//! A small HTTP/1.1 server on `std::net`: one accept thread (non-blocking accept, polled so it can
//! notice shutdown) and one thread per connection. Keep-alive, `Connection: close`, HTTP/1.0,
//! `Content-Length` and chunked request bodies are handled; anything malformed gets a 400 and the
//! connection is closed. Never panics on client input.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;
/// Idle keep-alive connections are closed after this long.
const IDLE: Duration = Duration::from_secs(30);
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(5);

/// A parsed request.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    /// First header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a handler decides to do with a request.
#[derive(Debug)]
pub(super) enum Reply {
    /// Answer it.
    Send(Response),
    /// Close the connection without answering.
    Close,
    /// Keep the connection open without answering while [`Handler::hanging`] holds, then close.
    Hang,
}

/// The application side of a server.
pub(super) trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Request) -> Reply;
    /// Whether a request answered with [`Reply::Hang`] should stay unanswered.
    fn hanging(&self) -> bool;
    /// The answer to a request that could not be parsed.
    fn bad_request(&self, why: &str) -> Response;
}

/// A running server; dropping it stops accepting, closes connections and joins every thread.
#[derive(Debug)]
pub(super) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `listener` (already bound, in whatever namespace it was created in).
    pub fn spawn(listener: TcpListener, handler: Arc<dyn Handler>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name(format!("do-double {addr}"))
            .spawn(move || accept_loop(&listener, &handler, &stop2))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, handler: &Arc<dyn Handler>, stop: &Arc<AtomicBool>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let handler = Arc::clone(handler);
                let stop = Arc::clone(stop);
                if let Ok(t) = thread::Builder::new()
                    .name("do-double conn".into())
                    .spawn(move || serve_conn(stream, &*handler, &stop))
                {
                    conns.push(t);
                }
            }
            Err(_) => thread::sleep(POLL),
        }
        conns.retain(|t| !t.is_finished());
    }
    for t in conns {
        let _ = t.join();
    }
}

fn serve_conn(mut stream: TcpStream, handler: &dyn Handler, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL * 10)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    let mut idle_since = Instant::now();
    let mut chunk = [0u8; 8192];
    loop {
        match parse(&buf) {
            Parsed::Complete(req, used) => {
                buf.drain(..used);
                match handler.handle(&req) {
                    Reply::Send(resp) => {
                        let keep = req.keep_alive;
                        if write_response(&mut stream, &resp, &req.method, keep).is_err() || !keep {
                            break;
                        }
                    }
                    Reply::Close => break,
                    Reply::Hang => {
                        while handler.hanging() && !stop.load(Ordering::SeqCst) {
                            thread::sleep(POLL);
                        }
                        break;
                    }
                }
                idle_since = Instant::now();
                continue;
            }
            Parsed::Bad(why) => {
                let _ = write_response(&mut stream, &handler.bad_request(why), "GET", false);
                break;
            }
            Parsed::Partial => {}
        }
        if stop.load(Ordering::SeqCst) || idle_since.elapsed() > IDLE {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    method: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n", resp.body.len()));
    out.push_str(if keep_alive {
        "connection: keep-alive\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&resp.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

enum Parsed {
    Complete(Request, usize),
    Partial,
    Bad(&'static str),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(buf: &[u8]) -> Parsed {
    // Tolerate blank lines before a request (RFC 9112 section 2.2).
    let lead = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let buf = &buf[lead..];
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Parsed::Bad("request head too large")
        } else {
            Parsed::Partial
        };
    };
    if head_end > MAX_HEAD {
        return Parsed::Bad("request head too large");
    }
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Parsed::Bad("request head is not UTF-8");
    };
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Parsed::Bad("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Parsed::Bad("malformed method");
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Parsed::Bad("malformed request target");
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Parsed::Bad("unsupported HTTP version"),
    };
    let mut headers = Vec::new();
    for l in lines {
        let Some((n, v)) = l.split_once(':') else {
            return Parsed::Bad("malformed header line");
        };
        let n = n.trim();
        if n.is_empty() || n.contains(' ') {
            return Parsed::Bad("malformed header name");
        }
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body_start = head_end + 4;
    let (body, used) = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        match dechunk(&buf[body_start..]) {
            Chunked::Done(body, n) => (body, body_start + n),
            Chunked::Partial => return Parsed::Partial,
            Chunked::Bad => return Parsed::Bad("malformed chunked body"),
        }
    } else {
        let len = match get("content-length") {
            None => 0,
            Some(v) => match v.parse::<usize>() {
                Ok(n) => n,
                Err(_) => return Parsed::Bad("malformed content-length"),
            },
        };
        if len > MAX_BODY {
            return Parsed::Bad("request body too large");
        }
        if buf.len() < body_start + len {
            return Parsed::Partial;
        }
        (buf[body_start..body_start + len].to_vec(), body_start + len)
    };
    let conn = get("connection").unwrap_or_default();
    let keep_alive = if http10 {
        conn.contains("keep-alive")
    } else {
        !conn.contains("close")
    };
    let path = target.split('?').next().unwrap_or(target).to_string();
    Parsed::Complete(
        Request {
            method: method.to_string(),
            path,
            headers,
            body,
            keep_alive,
        },
        lead + used,
    )
}

enum Chunked {
    Done(Vec<u8>, usize),
    Partial,
    Bad,
}

fn dechunk(buf: &[u8]) -> Chunked {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            return if buf.len() - pos > 1024 {
                Chunked::Bad
            } else {
                Chunked::Partial
            };
        };
        let Ok(line) = std::str::from_utf8(&buf[pos..pos + eol]) else {
            return Chunked::Bad;
        };
        let size_str = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_str, 16) else {
            return Chunked::Bad;
        };
        pos += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(&buf[pos..], b"\r\n") else {
                    return Chunked::Partial;
                };
                pos += eol + 2;
                if eol == 0 {
                    return Chunked::Done(body, pos);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Chunked::Bad;
        }
        if buf.len() < pos + size + 2 {
            return Chunked::Partial;
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        if &buf[pos..pos + 2] != b"\r\n" {
            return Chunked::Bad;
        }
        pos += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keep_alive_and_bodies() {
        let raw = b"POST /x?y=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET / HTTP/1.0\r\n\r\n";
        let Parsed::Complete(r, used) = parse(raw) else {
            panic!("incomplete")
        };
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/x"));
        assert_eq!(r.body, b"{}");
        assert!(r.keep_alive);
        let Parsed::Complete(r2, _) = parse(&raw[used..]) else {
            panic!("incomplete")
        };
        assert!(!r2.keep_alive);
    }

    #[test]
    fn parses_chunked_and_rejects_garbage() {
        let raw =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n";
        let Parsed::Complete(r, used) = parse(raw) else {
            panic!("incomplete")
        };
        assert_eq!(r.body, b"abc");
        assert_eq!(used, raw.len());
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            Parsed::Partial
        ));
        assert!(matches!(parse(b"\x00\x01 garbage\r\n\r\n"), Parsed::Bad(_)));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
            Parsed::Bad(_)
        ));
    }
}

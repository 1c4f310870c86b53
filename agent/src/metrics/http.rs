//! The HTTP side: one thread with its own single-threaded runtime, hyper's HTTP/1 server.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections are served at once (more wait in the
//! kernel's backlog), each for at most [`CONNECTION_TIMEOUT`] in all (a slow or stuck client is
//! cut off), one request per connection (no keep-alive), request heads of at most
//! [`MAX_HEAD`] bytes. A hostile client can at worst delay other scrapes; it never reaches the
//! event loop, which only ever sees snapshot requests, at most one per [`MIN_REFRESH`].

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpListener},
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming,
    header::{HeaderValue, ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};
use tracing::warn;

use super::{families, SnapshotRequest};

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 8;
/// The longest one connection is served (reading the request, answering).
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// Snapshots are asked of the loop at most this often; scrapes in between get the last one.
pub(crate) const MIN_REFRESH: Duration = Duration::from_millis(500);
/// How long a scrape waits for the loop's snapshot before answering 503.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);

const TEXT: &str = "text/plain; charset=utf-8";

/// The metrics endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetricsError {
    /// The address could not be bound.
    #[error("metrics: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The thread or its runtime could not be started.
    #[error("metrics: cannot start the server thread: {0}")]
    Thread(std::io::Error),
}

/// A bound, not yet serving, metrics endpoint.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (a clear error when it is taken or not ours).
    pub(crate) fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind_err = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self { listener, addr })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on a thread of its own until the process exits; snapshots are asked of the
    /// loop through `snapshots`.
    pub(crate) fn spawn(
        self,
        snapshots: mpsc::Sender<SnapshotRequest>,
    ) -> Result<JoinHandle<()>, MetricsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(MetricsError::Thread)?;
        let shared = Arc::new(Shared {
            snapshots,
            cache: Mutex::new(None),
        });
        let listener = self.listener;
        std::thread::Builder::new()
            .name("xvrrp-metrics".to_owned())
            .spawn(move || rt.block_on(serve(listener, shared)))
            .map_err(MetricsError::Thread)
    }
}

/// What the connections share: the way to the loop and the last rendered body.
struct Shared {
    snapshots: mpsc::Sender<SnapshotRequest>,
    /// When the last body was rendered, and the body. Locked across a refresh, so concurrent
    /// scrapes wait for one snapshot instead of asking for one each.
    cache: Mutex<Option<(Instant, Bytes)>>,
}

impl Shared {
    /// The metrics text, at most [`MIN_REFRESH`] old.
    async fn body(&self) -> Result<Bytes, &'static str> {
        let mut cache = self.cache.lock().await;
        if let Some((at, body)) = cache.as_ref() {
            if at.elapsed() < MIN_REFRESH {
                return Ok(body.clone());
            }
        }
        let (tx, rx) = oneshot::channel();
        let asked = tokio::time::timeout(SNAPSHOT_TIMEOUT, async {
            self.snapshots.send(tx).await.ok()?;
            rx.await.ok()
        })
        .await;
        match asked {
            Ok(Some(snap)) => {
                let body = Bytes::from(super::text(&snap));
                *cache = Some((Instant::now(), body.clone()));
                Ok(body)
            }
            Ok(None) => Err("the agent is stopping\n"),
            Err(_) => Err("the agent did not answer in time\n"),
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: cannot serve: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Wait for a free slot before accepting: extra clients wait in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&req, &shared).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), svc);
            // Cut off at the deadline whatever the client does.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `GET /metrics`; `GET /` says where the metrics are; 404 elsewhere, 405 for other methods.
async fn answer(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    match (read, req.uri().path()) {
        (true, "/metrics") => match shared.body().await {
            Ok(b) => reply(StatusCode::OK, families::CONTENT_TYPE, b),
            Err(e) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                Bytes::from_static(e.as_bytes()),
            ),
        },
        (true, "/") => reply(
            StatusCode::OK,
            TEXT,
            Bytes::from_static(b"xvrrp: the metrics are at /metrics\n"),
        ),
        (false, "/" | "/metrics") => {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                Bytes::from_static(b"only GET and HEAD\n"),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            Bytes::from_static(b"not found: the metrics are at /metrics\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::{
        io::{Read, Write},
        net::TcpStream,
        sync::atomic::{AtomicU64, Ordering},
    };

    use super::*;
    use crate::{metrics::Snapshot, state::Status};

    /// One request, read to the end (the server closes: no keep-alive): status and text.
    fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "{method} {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
        (status, text)
    }

    /// A server whose "loop" runs on a thread: it answers snapshot requests (each with an
    /// uptime of as many seconds as requests so far) when `answer`, never otherwise.
    fn server(answer: bool) -> (SocketAddr, Arc<AtomicU64>) {
        let s = MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = s.local_addr();
        let (tx, mut rx) = mpsc::channel::<SnapshotRequest>(1);
        s.spawn(tx).unwrap();
        let asked = Arc::new(AtomicU64::new(0));
        let n = asked.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while let Some(reply) = rx.blocking_recv() {
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                if !answer {
                    held.push(reply);
                    continue;
                }
                let _ = reply.send(Snapshot {
                    status: Status {
                        uptime_ms: k * 1000,
                        ..Status::default()
                    },
                    ..Snapshot::default()
                });
            }
        });
        (addr, asked)
    }

    #[test]
    fn scrapes_in_quick_succession_share_one_snapshot() {
        let (addr, asked) = server(true);
        let (code, a) = get(addr, "GET", "/metrics");
        assert_eq!(code, 200, "{a}");
        assert!(
            a.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{a}"
        );
        assert!(a.contains("\nxvrrp_uptime_seconds 1.0\n"), "{a}");
        let (_, b) = get(addr, "GET", "/metrics");
        assert!(b.contains("\nxvrrp_uptime_seconds 1.0\n"), "{b}");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "one snapshot for two scrapes"
        );
        std::thread::sleep(MIN_REFRESH + Duration::from_millis(100));
        let (_, c) = get(addr, "GET", "/metrics");
        assert!(c.contains("\nxvrrp_uptime_seconds 2.0\n"), "{c}");
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        let (code, head) = get(addr, "HEAD", "/metrics");
        assert_eq!(code, 200);
        assert!(!head.contains("xvrrp_up"), "no body for HEAD: {head}");
        assert_eq!(get(addr, "GET", "/").0, 200);
        assert_eq!(get(addr, "GET", "/metrics/x").0, 404);
        let (code, text) = get(addr, "DELETE", "/metrics");
        assert_eq!(code, 405);
        assert!(text.contains("allow: GET, HEAD\r\n"), "{text}");
    }

    #[test]
    fn a_loop_that_does_not_answer_gives_503_not_a_hang() {
        let (addr, asked) = server(false);
        let t = Instant::now();
        let (code, text) = get(addr, "GET", "/metrics");
        assert_eq!(code, 503, "{text}");
        assert!(text.contains("did not answer in time"), "{text}");
        assert!(t.elapsed() < SNAPSHOT_TIMEOUT + Duration::from_secs(2));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_taken_address_is_a_clear_error() {
        let s = MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let e = MetricsServer::bind(s.local_addr()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "metrics: cannot listen on {}: Address already in use (os error 98)",
                s.local_addr()
            )
        );
    }
}

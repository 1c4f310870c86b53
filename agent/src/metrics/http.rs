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

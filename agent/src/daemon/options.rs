//! What `xvrrp run` is given ([`RunOptions`]) and how start-up fails ([`StartError`]): a leaf
//! module the other parts of the daemon import.

use std::path::PathBuf;

use crate::net;

/// How adverts are received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxMode {
    /// XDP when it attaches (native, then generic), else a raw socket.
    Auto,
    /// XDP only (native, then generic); fail if it cannot attach.
    Xdp,
    /// A raw socket, with the same checks in userspace.
    Socket,
}

/// Options of `xvrrp run`.
#[derive(Clone, Debug)]
pub(crate) struct RunOptions {
    /// Configuration file.
    pub config: PathBuf,
    /// Receive path.
    pub rx: RxMode,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// XDP: pass valid adverts on to the stack after handling them (so tcpdump sees them).
    pub xdp_pass: bool,
    /// `--metrics ADDR:PORT`: serve `/metrics` there (overrides `metrics_address`).
    pub metrics: Option<std::net::SocketAddr>,
}

/// Errors that stop the agent at start-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// An instance could not be planned.
    #[error("{0}")]
    Plan(String),
    /// A socket could not be opened.
    #[error("vrrp_instance {instance}: {source}")]
    Socket {
        /// Instance.
        instance: String,
        /// Cause.
        #[source]
        source: net::NetError,
    },
    /// The control socket could not be bound.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// Signals could not be set up.
    #[error("signal handling: {0}")]
    Signals(std::io::Error),
    /// `--rx xdp` was asked for but XDP is not available yet for this configuration.
    #[error("{0}")]
    Rx(String),
    /// The metrics endpoint could not be bound or started.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// A worker thread could not be started.
    #[error("starting a worker thread: {0}")]
    Thread(std::io::Error),
}

//! The procfs fallback seed: `/proc/net/tcp` and `tcp6` parsed with procfs, read where the
//! `sock_diag` dump that seeds the tracker's gauges fails.

use std::net::IpAddr;

use procfs::{
    net::{TcpNetEntries, TcpNetEntry},
    FromReadSI,
};

use crate::net::diag::{self, SockDiag};

/// TCP_LISTEN in `/proc/net/tcp`'s `st` column (the kernel's state number, as in `sock_diag`).
pub const PROC_LISTEN: u8 = diag::TCP_LISTEN;
/// TCP_ESTABLISHED.
pub const PROC_ESTABLISHED: u8 = diag::TCP_ESTABLISHED;

/// One socket line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSocket {
    /// Local address.
    pub local: IpAddr,
    /// Local port.
    pub port: u16,
    /// State (`st`).
    pub state: u8,
    /// `rx_queue`: for a listener, the accept queue length.
    pub rx_queue: u32,
}

impl From<&TcpNetEntry> for ProcSocket {
    fn from(e: &TcpNetEntry) -> Self {
        Self {
            local: e.local_address.ip(),
            port: e.local_address.port(),
            state: e.state.to_u8(),
            rx_queue: e.rx_queue,
        }
    }
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6` text (with procfs); text that does not parse
/// reads as no sockets.
pub fn parse_proc_tcp(text: &str) -> Vec<ProcSocket> {
    TcpNetEntries::from_read(text.as_bytes(), procfs::current_system_info())
        .map(|t| t.0.iter().map(ProcSocket::from).collect())
        .unwrap_or_default()
}

/// The TCP sockets of the calling thread's network namespace (`/proc/thread-self/net/tcp` and
/// `tcp6`, which follow the thread's namespace where `/proc/net` follows the process's; a
/// missing file, e.g. IPv6 disabled, counts as empty).
pub fn proc_sockets() -> Vec<ProcSocket> {
    let si = procfs::current_system_info();
    let mut v = Vec::new();
    for f in ["tcp", "tcp6"] {
        let table = TcpNetEntries::from_file(format!("/proc/thread-self/net/{f}"), si)
            .or_else(|_| TcpNetEntries::from_file(format!("/proc/net/{f}"), si));
        if let Ok(t) = table {
            v.extend(t.0.iter().map(ProcSocket::from));
        }
    }
    v
}

/// `(port, local address, state)` of the listening and established TCP sockets of `ports`: from
/// `sock_diag` while it works (`diag` is dropped at its first failure), else from `/proc`.
pub(super) fn seed_sockets(diag: &mut Option<SockDiag>, ports: &[u16]) -> Vec<(u16, IpAddr, u8)> {
    if let Some(d) = diag {
        let states = (1 << diag::TCP_LISTEN) | (1 << diag::TCP_ESTABLISHED);
        match d.tcp(states, ports) {
            Ok(v) => return v.into_iter().map(|s| (s.port, s.local, s.state)).collect(),
            Err(e) => {
                tracing::warn!(
                    "TCP tracking: sock_diag dump failed ({e}); seeding from /proc/net/tcp"
                );
                *diag = None;
            }
        }
    }
    proc_sockets()
        .into_iter()
        .map(|s| (s.port, s.local, s.state))
        .collect()
}

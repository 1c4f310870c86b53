//! TCP tracking in the kernel for `vrrp_track_listen`: the loader of the `inet_sock_set_state`
//! program, the seeding of its gauges (a `sock_diag` dump, [`crate::net::diag`], with
//! `/proc/net/tcp*` as the fallback), the SYN counter maps of the XDP program, and the two
//! parsers they need (BTF and `/proc/net/tcp`), which never panic.
//!
//! # Hook and namespaces
//!
//! The program is on the **raw** tracepoint `inet_sock_set_state` (every TCP state change of
//! every socket on the host, pre-existing sockets included). A raw tracepoint needs no tracefs,
//! which `ip netns exec` does not mount. It receives `struct sock *` and reads the fields it needs
//! with `bpf_probe_read_kernel` at offsets computed here from `/sys/kernel/btf/vmlinux`
//! ([`SockOffsets`]). The namespace of a socket is `sk->__sk_common.skc_net.net->net_cookie`,
//! compared with the agent's own cookie (`getsockopt(SO_NETNS_COOKIE)`); on kernels without
//! `net_cookie`, `net->ns.inum` against the inode of `/proc/self/ns/net`. So an agent counts
//! only its own namespace's sockets, however many namespaces run nginx on the same port.
//!
//! Limits: the kernel's BTF must be present (it is on every distribution kernel since about
//! 5.4; without it [`TcpTracker::start`] fails with a clear error). The counts of the program
//! are changes since it was attached; [`TcpTracker`] adds the listening and established sockets
//! of the watched ports that exist at start (once, in the agent's namespace: a `sock_diag` dump
//! of those states and ports, or `/proc/net/tcp` and `/proc/net/tcp6` where `sock_diag` fails),
//! with a retry when a change happened during the read; nothing here reads `/proc` after that.
//! SYNs are counted by the XDP program, so only on interfaces where it is attached
//! (`--rx auto|xdp`), and only without IPv6 extension headers.
//!
//! Files: `btf` (the BTF reader and [`SockOffsets`]), `seed` (the `/proc/net/tcp` fallback),
//! `syn` (the SYN counter maps of the XDP program); the tracker is here.

mod btf;
mod seed;
mod syn;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap as StdHashMap,
    fmt, fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    time::Duration,
};

use agent_common::tcp::{
    netns_kind, stats, ListenEvent, TcpConfig, TcpCounts, TcpKey, CONFIG_MAP, COUNTS_MAP,
    EVENTS_MAP, LISTEN_EVENT_LEN, MAX_WATCHED, PROGRAM, STATS_MAP, TRACEPOINT, WATCH_MAP,
};
use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, RawTracePoint},
    Ebpf,
};

use self::seed::seed_sockets;
pub use self::{
    btf::{Btf, Member, SockOffsets},
    seed::{parse_proc_tcp, proc_sockets, ProcSocket, PROC_ESTABLISHED, PROC_LISTEN},
    syn::{set_syn_ports, syn_counts},
};
use super::{klog::KernelLog, load::LoadFor, load_object, DataplaneError};
use crate::net::diag::SockDiag;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `SO_NETNS_COOKIE` (Linux 5.14+).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// Why TCP tracking could not start or be read.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// Loading the embedded object failed.
    #[error(transparent)]
    Object(#[from] DataplaneError),
    /// The kernel's BTF could not be read or lacks a field the program needs.
    #[error("kernel BTF (/sys/kernel/btf/vmlinux): {0}")]
    Btf(String),
    /// The agent's network namespace could not be identified.
    #[error("cannot identify this network namespace: {0}")]
    Netns(String),
    /// Loading or attaching the program failed.
    #[error("TCP state program on raw tracepoint {TRACEPOINT}: {0}")]
    Program(#[source] ProgramError),
    /// A map access failed.
    #[error("eBPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        #[source]
        source: MapError,
    },
    /// More ports than the kernel map holds.
    #[error("too many watched ports ({0}, at most {MAX_WATCHED})")]
    TooManyPorts(usize),
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> TcpError {
    move |source| TcpError::Map { map, source }
}

// ---------------------------------------------------------------------------------------------
// Keys and counts
// ---------------------------------------------------------------------------------------------

/// The key of a socket's counters: its local port and address.
pub fn key_of(port: u16, addr: IpAddr) -> TcpKey {
    let mut k = TcpKey {
        port,
        ..TcpKey::default()
    };
    match addr {
        IpAddr::V4(a) => {
            k.family = AF_INET;
            k.addr[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            k.family = AF_INET6;
            k.addr = a.octets();
        }
    }
    k
}

/// The local address of a key.
pub fn addr_of(k: &TcpKey) -> IpAddr {
    if k.family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(k.addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]))
    }
}

/// Whether a socket bound to `bound` serves `want`: the same address (IPv4-mapped IPv6 equal
/// to IPv4), or a wildcard listener.
pub fn serves(bound: IpAddr, want: Option<IpAddr>) -> bool {
    let Some(want) = want else { return true };
    let canon = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    };
    bound.is_unspecified() || canon(bound) == canon(want)
}

/// Gauges and totals of one key (local port and address), seeds included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounts {
    /// Local port.
    pub port: u16,
    /// Local (bound) address.
    pub addr: Option<IpAddr>,
    /// Listening sockets.
    pub listeners: i64,
    /// Established connections.
    pub established: i64,
    /// Connections established since start.
    pub established_total: u64,
    /// Connections closed (left ESTABLISHED) since start.
    pub closed_total: u64,
}

/// A listener appeared or closed, as the program reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenChange {
    /// When (CLOCK_MONOTONIC, as `bpf_ktime_get_ns`).
    pub timestamp: Duration,
    /// Local port.
    pub port: u16,
    /// Bound address.
    pub addr: IpAddr,
    /// Appeared (`true`) or closed.
    pub up: bool,
}

impl ListenChange {
    /// Decodes a ring buffer record.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < LISTEN_EVENT_LEN {
            return None;
        }
        // SAFETY: at least size_of::<ListenEvent>() bytes of plain old data, read unaligned.
        let e: ListenEvent = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        if e.key.family != AF_INET && e.key.family != AF_INET6 {
            return None;
        }
        Some(Self {
            timestamp: Duration::from_nanos(e.timestamp_ns),
            port: e.key.port,
            addr: addr_of(&e.key),
            up: e.up != 0,
        })
    }
}

/// Program statistics (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpStats {
    /// Transitions counted.
    pub counted: u64,
    /// Transitions of watched ports in other namespaces, ignored.
    pub other_netns: u64,
    /// Failed kernel reads.
    pub read_failed: u64,
    /// Transitions lost to a full counter map.
    pub map_full: u64,
    /// Listener events lost to a full ring.
    pub ring_full: u64,
}

// ---------------------------------------------------------------------------------------------
// The tracker
// ---------------------------------------------------------------------------------------------

/// The agent's own network namespace id, in the form the program compares.
pub fn own_netns(kind: u32) -> Result<u64, TcpError> {
    if kind == netns_kind::INUM {
        use std::os::unix::fs::MetadataExt;
        return fs::metadata("/proc/thread-self/ns/net")
            .map(|m| m.ino())
            .map_err(|e| TcpError::Netns(e.to_string()));
    }
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(TcpError::Netns(std::io::Error::last_os_error().to_string()));
    }
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 with its size; fd is ours and closed right after.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(TcpError::Netns(format!("SO_NETNS_COOKIE: {err}")));
    }
    Ok(cookie)
}

/// The TCP state program attached, watching some local ports of this namespace.
pub struct TcpTracker {
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    /// Per key: what `/proc` showed at start minus the program's deltas at that moment.
    base: StdHashMap<TcpKey, (i64, i64)>,
    ports: Vec<u16>,
    /// The program's log records, forwarded to the agent's log.
    _klog: KernelLog,
}

impl fmt::Debug for TcpTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTracker")
            .field("ports", &self.ports)
            .finish()
    }
}

impl TcpTracker {
    /// Loads the program, configures it for this namespace and `ports`, attaches it, and seeds
    /// the gauges from a `sock_diag` dump (else `/proc/net/tcp*`). Dropping the tracker detaches
    /// it. Takes milliseconds (the verifier, the seed): keep it off an event loop.
    pub fn start(ports: &[u16]) -> Result<Self, TcpError> {
        Self::start_with(SockOffsets::from_kernel().map_err(TcpError::Btf)?, ports)
    }

    /// [`TcpTracker::start`] with offsets computed already (reading the kernel's BTF takes a
    /// few tens of milliseconds: callers on an event loop do it on a blocking thread).
    pub fn start_with(off: SockOffsets, ports: &[u16]) -> Result<Self, TcpError> {
        let mut ports: Vec<u16> = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        if ports.len() > MAX_WATCHED as usize {
            return Err(TcpError::TooManyPorts(ports.len()));
        }
        let netns_id = own_netns(off.netns_kind)?;
        let mut ebpf = load_object(LoadFor::Tcp)?;
        {
            let mut watch: HashMap<_, u16, u8> = HashMap::try_from(
                ebpf.map_mut(WATCH_MAP)
                    .ok_or(DataplaneError::Missing("the TCP watch map"))?,
            )
            .map_err(map_err(WATCH_MAP))?;
            for p in &ports {
                watch.insert(p, 1, 0).map_err(map_err(WATCH_MAP))?;
            }
        }
        {
            let mut conf: Array<_, TcpConfig> = Array::try_from(
                ebpf.map_mut(CONFIG_MAP)
                    .ok_or(DataplaneError::Missing("the TCP config map"))?,
            )
            .map_err(map_err(CONFIG_MAP))?;
            let c = off.config(netns_id);
            conf.set(0, c, 0).map_err(map_err(CONFIG_MAP))?;
        }
        let ring = RingBuf::try_from(
            ebpf.take_map(EVENTS_MAP)
                .ok_or(DataplaneError::Missing("the TCP event ring"))?,
        )
        .map_err(map_err(EVENTS_MAP))?;
        let prog: &mut RawTracePoint = ebpf
            .program_mut(PROGRAM)
            .ok_or(DataplaneError::Missing("the TCP state program"))?
            .try_into()
            .map_err(|_| DataplaneError::Missing("a raw tracepoint program"))?;
        prog.load().map_err(TcpError::Program)?;
        prog.attach(TRACEPOINT).map_err(TcpError::Program)?;
        let klog = KernelLog::start(&mut ebpf, "TCP state program");
        let mut t = Self {
            ebpf,
            ring,
            base: StdHashMap::new(),
            ports,
            _klog: klog,
        };
        t.seed()?;
        Ok(t)
    }

    /// The watched ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    fn deltas(&self) -> Result<StdHashMap<TcpKey, TcpCounts>, TcpError> {
        let map: HashMap<_, TcpKey, TcpCounts> = HashMap::try_from(
            self.ebpf
                .map(COUNTS_MAP)
                .ok_or(DataplaneError::Missing("the TCP counter map"))?,
        )
        .map_err(map_err(COUNTS_MAP))?;
        let mut out = StdHashMap::new();
        for item in map.iter() {
            match item {
                Ok((k, v)) => {
                    out.insert(k, v);
                }
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(COUNTS_MAP)(e)),
            }
        }
        Ok(out)
    }

    /// Seeds the gauges: the listening and established sockets of the watched ports (a
    /// `sock_diag` dump filtered in the kernel, else `/proc/net/tcp*`), minus the program's
    /// deltas at that time (read before and after; retried while a change happened during the
    /// read).
    fn seed(&mut self) -> Result<(), TcpError> {
        let mut tries = 0;
        let mut diag = match SockDiag::open() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(
                    "TCP tracking: sock_diag unavailable ({e}); seeding from /proc/net/tcp"
                );
                None
            }
        };
        loop {
            let before = self.deltas()?;
            let socks = seed_sockets(&mut diag, &self.ports);
            let after = self.deltas()?;
            tries += 1;
            if before != after && tries < 10 {
                continue;
            }
            let mut base: StdHashMap<TcpKey, (i64, i64)> = StdHashMap::new();
            for (port, local, state) in socks {
                if !self.ports.contains(&port) {
                    continue;
                }
                let e = base.entry(key_of(port, local)).or_default();
                match state {
                    PROC_LISTEN => e.0 += 1,
                    PROC_ESTABLISHED => e.1 += 1,
                    _ => {}
                }
            }
            for (k, d) in &before {
                let e = base.entry(*k).or_default();
                e.0 -= d.listeners;
                e.1 -= d.established;
            }
            self.base = base;
            return Ok(());
        }
    }

    /// Current gauges and totals per key (watched ports only).
    pub fn counts(&self) -> Result<Vec<PortCounts>, TcpError> {
        let deltas = self.deltas()?;
        let mut keys: Vec<TcpKey> = self.base.keys().chain(deltas.keys()).copied().collect();
        keys.sort_by_key(|k| (k.port, k.family, k.addr));
        keys.dedup();
        Ok(keys
            .into_iter()
            .map(|k| {
                let (bl, be) = self.base.get(&k).copied().unwrap_or_default();
                let d = deltas.get(&k).copied().unwrap_or_default();
                PortCounts {
                    port: k.port,
                    addr: Some(addr_of(&k)),
                    listeners: bl.saturating_add(d.listeners),
                    established: be.saturating_add(d.established),
                    established_total: d.established_total,
                    closed_total: d.closed_total,
                }
            })
            .collect())
    }

    /// Takes up to `max` queued listener events without blocking. Wait for more with the ring
    /// buffer's fd ([`AsFd`]).
    pub fn drain_events(&mut self, max: usize) -> Vec<ListenChange> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(item) = self.ring.next() else { break };
            if let Some(e) = ListenChange::from_bytes(&item) {
                out.push(e);
            }
        }
        out
    }

    /// The program's statistics.
    pub fn stats(&self) -> Result<TcpStats, TcpError> {
        let arr = PerCpuArray::<_, u64>::try_from(
            self.ebpf
                .map(STATS_MAP)
                .ok_or(DataplaneError::Missing("the TCP stats map"))?,
        )
        .map_err(map_err(STATS_MAP))?;
        let sum = |i: u32| -> Result<u64, TcpError> {
            Ok(arr
                .get(&i, 0)
                .map_err(map_err(STATS_MAP))?
                .iter()
                .copied()
                .sum())
        };
        Ok(TcpStats {
            counted: sum(stats::COUNTED)?,
            other_netns: sum(stats::OTHER_NETNS)?,
            read_failed: sum(stats::READ_FAILED)?,
            map_full: sum(stats::MAP_FULL)?,
            ring_full: sum(stats::RING_FULL)?,
        })
    }
}

impl AsFd for TcpTracker {
    /// The listener event ring's fd: readable when events are queued.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for TcpTracker {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

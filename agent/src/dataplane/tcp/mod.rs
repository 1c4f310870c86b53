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

use std::{
    collections::HashMap as StdHashMap,
    fmt, fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    time::Duration,
};

use agent_common::tcp::{
    netns_kind, stats, syn_port_key, ListenEvent, TcpConfig, TcpCounts, TcpKey, CONFIG_MAP,
    COUNTS_MAP, EVENTS_MAP, LISTEN_EVENT_LEN, MAX_SYN_PORTS, MAX_WATCHED, PROGRAM, STATS_MAP,
    SYN_COUNTS_MAP, SYN_OWNER_BASE, SYN_PORTS_MAP, SYN_SLOTS, TRACEPOINT, WATCH_MAP,
};
use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuValues, RingBuf},
    programs::{ProgramError, RawTracePoint},
    Ebpf,
};

use procfs::{
    net::{TcpNetEntries, TcpNetEntry},
    FromReadSI,
};

use super::{klog::KernelLog, load_object, DataplaneError};
use crate::net::diag::{self, SockDiag};

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
// BTF
// ---------------------------------------------------------------------------------------------
// Hand-written on purpose. aya-obj 0.3 (aya 0.14's BTF reader) parses the kernel's BTF but its
// public API only finds a type id by name and kind: `type_by_id`, `string_at`, the members of a
// `Struct` and their offsets are `pub(crate)`, so member offsets cannot be read through it. The
// other BTF reader crate, btf-rs, is LGPL-2.1, statically linked into an MIT/Apache-2.0 binary.
// This reader is ~230 lines for the few kinds `struct sock` needs; malformed input is tested.

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// A parsed BTF blob: just enough to find struct member offsets.
#[derive(Debug)]
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset of each type in `types`; index = type id - 1.
    index: Vec<usize>,
}

/// A struct member found by [`Btf::member`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Offset from the start of the outer struct, in bytes.
    pub offset: u32,
    /// Size of the member's type in bytes (0 when unknown).
    pub size: u32,
    /// Type id of the member (after typedefs and qualifiers).
    pub type_id: u32,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> Btf<'a> {
    /// Parses a little-endian BTF blob (the format of `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let magic = data
            .get(0..2)
            .map(|m| u16::from_le_bytes([m[0], m[1]]))
            .ok_or("too short")?;
        if magic != BTF_MAGIC {
            return Err(format!("bad magic {magic:#x}"));
        }
        let field = |i: usize| u32_at(data, 4 + 4 * i).ok_or("header truncated");
        let hdr_len = field(0)? as usize;
        let (type_off, type_len, str_off, str_len) = (field(1)?, field(2)?, field(3)?, field(4)?);
        let section = |off: u32, len: u32| -> Result<&'a [u8], String> {
            let start = hdr_len
                .checked_add(off as usize)
                .ok_or("section offset overflows")?;
            let end = start
                .checked_add(len as usize)
                .ok_or("section length overflows")?;
            data.get(start..end)
                .ok_or_else(|| "section outside the blob".to_owned())
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut index = Vec::new();
        let mut pos = 0usize;
        while pos < types.len() {
            let info = u32_at(types, pos + 4).ok_or("type truncated")?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                0..=19 => 0,
                k => return Err(format!("unknown type kind {k}")),
            };
            index.push(pos);
            pos = pos.checked_add(12 + extra).ok_or("type size overflows")?;
            if pos > types.len() {
                return Err("type truncated".to_owned());
            }
        }
        Ok(Self {
            types,
            strings,
            index,
        })
    }

    fn name(&self, off: u32) -> Option<&'a str> {
        let rest = self.strings.get(off as usize..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// (name_off, kind, vlen, kind_flag, size_or_type, offset of the trailing data).
    fn ty(&self, id: u32) -> Option<(u32, u32, usize, bool, u32, usize)> {
        let pos = *self.index.get((id as usize).checked_sub(1)?)?;
        let name = u32_at(self.types, pos)?;
        let info = u32_at(self.types, pos + 4)?;
        let st = u32_at(self.types, pos + 8)?;
        Some((
            name,
            (info >> 24) & 0x1f,
            (info & 0xffff) as usize,
            info >> 31 == 1,
            st,
            pos + 12,
        ))
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let (_, kind, _, _, st, _) = self.ty(id)?;
            match kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = st
                }
                _ => return Some(id),
            }
        }
        None
    }

    fn size_of(&self, id: u32) -> u32 {
        let Some(id) = self.resolve(id) else { return 0 };
        match self.ty(id) {
            Some((
                _,
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64,
                _,
                _,
                st,
                _,
            )) => st,
            Some((_, KIND_PTR, ..)) => 8,
            Some((_, KIND_ARRAY, _, _, _, data)) => {
                let elem = u32_at(self.types, data).unwrap_or(0);
                let n = u32_at(self.types, data + 8).unwrap_or(0);
                self.size_of(elem).saturating_mul(n)
            }
            _ => 0,
        }
    }

    /// The id of the struct named `name` (the first one with members).
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        (1..=self.index.len() as u32).find(|&id| {
            self.ty(id).is_some_and(|(n, kind, vlen, ..)| {
                kind == KIND_STRUCT && vlen > 0 && self.name(n) == Some(name)
            })
        })
    }

    /// Finds the member `name` of struct/union `id`, looking inside anonymous members; its
    /// offset in bytes from the start of `id`. Bitfields are refused.
    fn find(&self, id: u32, name: &str, depth: u32) -> Option<Member> {
        if depth > 8 {
            return None;
        }
        let id = self.resolve(id)?;
        let (_, kind, vlen, kind_flag, _, data) = self.ty(id)?;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        for i in 0..vlen {
            let m = data.checked_add(i.checked_mul(12)?)?;
            let (mname, mtype, moff) = (
                u32_at(self.types, m)?,
                u32_at(self.types, m + 4)?,
                u32_at(self.types, m + 8)?,
            );
            let (bit_off, bit_size) = if kind_flag {
                (moff & 0x00ff_ffff, moff >> 24)
            } else {
                (moff, 0)
            };
            if mname == 0 {
                if let Some(inner) = self.find(mtype, name, depth + 1) {
                    if bit_off % 8 != 0 {
                        return None;
                    }
                    return Some(Member {
                        offset: inner.offset.checked_add(bit_off / 8)?,
                        ..inner
                    });
                }
                continue;
            }
            if self.name(mname) == Some(name) {
                if bit_size != 0 || bit_off % 8 != 0 {
                    return None;
                }
                let ty = self.resolve(mtype)?;
                return Some(Member {
                    offset: bit_off / 8,
                    size: self.size_of(ty),
                    type_id: ty,
                });
            }
        }
        None
    }

    /// The member at `path` (e.g. `["__sk_common", "skc_net"]`) of struct `outer`, with its
    /// offset from the start of `outer`.
    pub fn member(&self, outer: &str, path: &[&str]) -> Result<Member, String> {
        let mut id = self
            .struct_id(outer)
            .ok_or_else(|| format!("no struct {outer}"))?;
        let mut off = 0u32;
        let mut last = None;
        for name in path {
            let m = self
                .find(id, name, 0)
                .ok_or_else(|| format!("no member {name} in {outer} (or a bitfield)"))?;
            off = off.checked_add(m.offset).ok_or("offset overflows")?;
            id = m.type_id;
            last = Some(m);
        }
        let m = last.ok_or("empty path")?;
        Ok(Member { offset: off, ..m })
    }
}

/// Offsets into `struct sock` and `struct net` the program reads at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// `sock.__sk_common.skc_net` (a `possible_net_t`, whose first field is the pointer).
    pub net: u32,
    /// `net.net_cookie` or `net.ns.inum`.
    pub netns_id: u32,
    /// Which of the two.
    pub netns_kind: u32,
    /// `sock.__sk_common.skc_family`.
    pub family: u32,
    /// `sock.__sk_common.skc_num`.
    pub num: u32,
    /// `sock.__sk_common.skc_rcv_saddr`.
    pub rcv_saddr: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr`.
    pub v6_rcv_saddr: u32,
    /// `sock.sk_protocol`.
    pub protocol: u32,
    /// Its size (1 or 2).
    pub protocol_size: u32,
}

impl SockOffsets {
    /// Computes the offsets from a parsed BTF.
    pub fn from_btf(btf: &Btf<'_>) -> Result<Self, String> {
        let sc = |f: &str| btf.member("sock", &["__sk_common", f]);
        let net = sc("skc_net")?;
        let check = |m: Member, size: u32, what: &str| {
            if m.size == size {
                Ok(m.offset)
            } else {
                Err(format!("{what} has size {} (expected {size})", m.size))
            }
        };
        let (netns_id, netns_kind) = match btf.member("net", &["net_cookie"]) {
            Ok(m) if m.size == 8 => (m.offset, netns_kind::COOKIE),
            _ => (
                check(btf.member("net", &["ns", "inum"])?, 4, "net.ns.inum")?,
                netns_kind::INUM,
            ),
        };
        let proto = btf.member("sock", &["sk_protocol"])?;
        if proto.size != 1 && proto.size != 2 {
            return Err(format!("sock.sk_protocol has size {}", proto.size));
        }
        Ok(Self {
            net: check(net, 8, "sock_common.skc_net")?,
            netns_id,
            netns_kind,
            family: check(sc("skc_family")?, 2, "skc_family")?,
            num: check(sc("skc_num")?, 2, "skc_num")?,
            rcv_saddr: check(sc("skc_rcv_saddr")?, 4, "skc_rcv_saddr")?,
            v6_rcv_saddr: check(sc("skc_v6_rcv_saddr")?, 16, "skc_v6_rcv_saddr")?,
            protocol: proto.offset,
            protocol_size: proto.size,
        })
    }

    /// Reads and parses the running kernel's BTF.
    pub fn from_kernel() -> Result<Self, String> {
        let data = fs::read("/sys/kernel/btf/vmlinux").map_err(|e| e.to_string())?;
        let btf = Btf::parse(&data)?;
        Self::from_btf(&btf)
    }
}

// ---------------------------------------------------------------------------------------------
// /proc/net/tcp
// ---------------------------------------------------------------------------------------------

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
fn seed_sockets(diag: &mut Option<SockDiag>, ports: &[u16]) -> Vec<(u16, IpAddr, u8)> {
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
        let mut ebpf = load_object()?;
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
            let c = TcpConfig {
                enabled: 1,
                netns_kind: off.netns_kind,
                netns_id,
                off_net: off.net,
                off_netns_id: off.netns_id,
                off_family: off.family,
                off_num: off.num,
                off_rcv_saddr: off.rcv_saddr,
                off_v6_rcv_saddr: off.v6_rcv_saddr,
                off_protocol: off.protocol,
                protocol_size: off.protocol_size,
            };
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

// ---------------------------------------------------------------------------------------------
// SYN counting in the XDP program (maps of an XDP object instance)
// ---------------------------------------------------------------------------------------------

/// Makes the XDP program of `ebpf` count SYNs to `ports` (replacing the previous set; counts of
/// ports still watched are kept, ports no longer watched are forgotten).
///
/// Each watched port owns a count slot: a new port gets a free slot, zeroed on every CPU before
/// the port is pointed at it, so it starts from 0; a port that is no longer watched is unpointed
/// before its slot is freed.
pub fn set_syn_ports(ebpf: &mut Ebpf, ports: &[u16]) -> Result<(), TcpError> {
    let mut wanted: Vec<u16> = ports.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.len() > MAX_SYN_PORTS as usize {
        return Err(TcpError::TooManyPorts(wanted.len()));
    }
    let owners = slot_owners(ebpf)?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| TcpError::Map {
        map: SYN_COUNTS_MAP,
        source: MapError::SyscallError(aya::sys::SyscallError {
            call: "nr_cpus",
            io_error: e,
        }),
    })?;
    let mut map: Array<_, u32> = Array::try_from(
        ebpf.map_mut(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    let mut free: Vec<u32> = Vec::new();
    let mut kept: Vec<u16> = Vec::new();
    for (slot, owner) in owners.iter().enumerate().skip(1) {
        match owner {
            Some(p) if wanted.binary_search(p).is_ok() => kept.push(*p),
            Some(p) => {
                map.set(syn_port_key(*p), 0, 0)
                    .map_err(map_err(SYN_PORTS_MAP))?;
                map.set(SYN_OWNER_BASE + slot as u32, 0, 0)
                    .map_err(map_err(SYN_PORTS_MAP))?;
                free.push(slot as u32);
            }
            None => free.push(slot as u32),
        }
    }
    // Lowest slots first.
    free.reverse();
    let new: Vec<u16> = wanted.into_iter().filter(|p| !kept.contains(p)).collect();
    let mut assigned: Vec<(u16, u32)> = Vec::new();
    for p in new {
        let slot = free.pop().ok_or(TcpError::TooManyPorts(ports.len()))?;
        assigned.push((p, slot));
    }
    {
        let mut counts: PerCpuArray<_, u64> = PerCpuArray::try_from(
            ebpf.map_mut(SYN_COUNTS_MAP)
                .ok_or(DataplaneError::Missing("the SYN count map"))?,
        )
        .map_err(map_err(SYN_COUNTS_MAP))?;
        for (_, slot) in &assigned {
            let zero =
                PerCpuValues::try_from(vec![0u64; cpus]).map_err(|io_error| TcpError::Map {
                    map: SYN_COUNTS_MAP,
                    source: MapError::SyscallError(aya::sys::SyscallError {
                        call: "per-CPU values",
                        io_error,
                    }),
                })?;
            counts
                .set(*slot, zero, 0)
                .map_err(map_err(SYN_COUNTS_MAP))?;
        }
    }
    let mut map: Array<_, u32> = Array::try_from(
        ebpf.map_mut(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    for (p, slot) in assigned {
        map.set(SYN_OWNER_BASE + slot, u32::from(p) + 1, 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
        map.set(syn_port_key(p), slot, 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
    }
    Ok(())
}

/// The port owning each count slot (index 0 is never used).
fn slot_owners(ebpf: &Ebpf) -> Result<Vec<Option<u16>>, TcpError> {
    let map: Array<_, u32> = Array::try_from(
        ebpf.map(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    let mut out = vec![None; SYN_SLOTS as usize];
    for (slot, o) in out.iter_mut().enumerate().skip(1) {
        let v = map
            .get(&(SYN_OWNER_BASE + slot as u32), 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
        *o = v.checked_sub(1).and_then(|p| u16::try_from(p).ok());
    }
    Ok(out)
}

/// SYNs counted by the XDP program of `ebpf` (summed over CPUs) for those of `ports` that are
/// watched: two map reads per port (its slot, then the slot's per-CPU counts).
pub fn syn_counts(ebpf: &Ebpf, ports: &[u16]) -> Result<StdHashMap<u16, u64>, TcpError> {
    let slots: Array<_, u32> = Array::try_from(
        ebpf.map(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    let counts: PerCpuArray<_, u64> = PerCpuArray::try_from(
        ebpf.map(SYN_COUNTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN count map"))?,
    )
    .map_err(map_err(SYN_COUNTS_MAP))?;
    let mut out = StdHashMap::new();
    for port in ports {
        let slot = slots
            .get(&syn_port_key(*port), 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
        if slot == 0 {
            continue;
        }
        let v = counts.get(&slot, 0).map_err(map_err(SYN_COUNTS_MAP))?;
        out.insert(*port, v.iter().copied().sum());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const PROC_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100580A:0050 0300580A:C350 01 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 20 4 30 10 -1
";
    const PROC_TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100580A:0050 0000000000000000FFFF00000300580A:D000 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";

    #[test]
    fn parses_proc_net_tcp() {
        let v = parse_proc_tcp(PROC_TCP);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].local, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!((v[0].port, v[0].state, v[0].rx_queue), (80, PROC_LISTEN, 3));
        assert_eq!(v[1].local, "10.88.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(v[1].state, PROC_ESTABLISHED);
        let v6 = parse_proc_tcp(PROC_TCP6);
        assert_eq!(v6.len(), 2);
        assert_eq!(v6[0].local, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(v6[1].local, "::ffff:10.88.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(v6[1].port, 80);
    }

    #[test]
    fn malformed_proc_text_reads_as_empty_never_panics() {
        let bad = [
            "",
            "header only",
            "h\n0:",
            "h\n0: 00000000",
            "h\n0: 0000000:0050 x 0A 0:0",
            "h\n0: 00000000:zz50 x 0A 0:0",
            "h\n0: 00000000:0050 x ZZ 0:0",
            "h\n0: 00000000:0050 x 0A 00000000",
            "h\n0: 00000000:0050 x 0A 0:FFFFFFFFFFFF",
            "h\n0: 0000000000000000000000000000000:0050 x 0A 0:0",
            "h\n0: é0000000:0050 x 0A 0:0",
            "h\n0: 000000000000000000000000000000é:0050 x 0A 0:0",
            "h\n0: 00000000:10050 x 0A 0:0",
        ];
        for b in bad {
            assert!(parse_proc_tcp(b).is_empty(), "{b:?}");
        }
    }

    #[test]
    fn address_filter_accepts_wildcards_and_mapped_addresses() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(serves("0.0.0.0".parse().unwrap(), Some(a)));
        assert!(serves("::".parse().unwrap(), Some(a)));
        assert!(serves("::ffff:10.0.0.1".parse().unwrap(), Some(a)));
        assert!(serves(a, Some(a)));
        assert!(!serves("10.0.0.2".parse().unwrap(), Some(a)));
        assert!(serves("10.0.0.2".parse().unwrap(), None));
        let k = key_of(80, a);
        assert_eq!(addr_of(&k), a);
        let k6 = key_of(80, "fd00::1".parse().unwrap());
        assert_eq!(addr_of(&k6), "fd00::1".parse::<IpAddr>().unwrap());
    }

    /// A tiny BTF: int (4 bytes), struct inner { int a; int b; }, struct outer { int x;
    /// union { struct inner in; }; } with an anonymous union, and a typedef.
    fn tiny_btf() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0in\0t_inner\0".to_vec();
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t: Vec<u8> = Vec::new();
        let push = |t: &mut Vec<u8>, w: &[u32]| {
            for x in w {
                t.extend_from_slice(&x.to_le_bytes());
            }
        };
        // 1: int
        push(&mut t, &[s("int"), KIND_INT << 24, 4, 32]);
        // 2: struct inner { a @0, b @32 bits }
        push(&mut t, &[s("inner"), (KIND_STRUCT << 24) | 2, 8]);
        push(&mut t, &[s("a"), 1, 0, s("b"), 1, 32]);
        // 3: typedef t_inner = inner
        push(&mut t, &[s("t_inner"), KIND_TYPEDEF << 24, 2]);
        // 4: anonymous union { t_inner in; }
        push(&mut t, &[0, (KIND_UNION << 24) | 1, 8]);
        push(&mut t, &[s("in"), 3, 0]);
        // 5: struct outer { int x @0; union @64 bits }
        push(&mut t, &[s("outer"), (KIND_STRUCT << 24) | 2, 16]);
        push(&mut t, &[s("x"), 1, 0, 0, 4, 64]);
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.push(1);
        b.push(0);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn btf_member_offsets_through_anonymous_unions_and_typedefs() {
        let data = tiny_btf();
        let btf = Btf::parse(&data).unwrap();
        let m = btf.member("outer", &["in", "b"]).unwrap();
        assert_eq!((m.offset, m.size), (12, 4));
        assert_eq!(btf.member("outer", &["x"]).unwrap().offset, 0);
        assert_eq!(btf.member("outer", &["in"]).unwrap().size, 8);
        assert!(btf.member("outer", &["nope"]).is_err());
        assert!(btf.member("nope", &["x"]).is_err());
    }

    #[test]
    fn malformed_btf_is_an_error_never_a_panic() {
        let good = tiny_btf();
        // Every truncation, and every single-byte corruption of the header and types.
        for n in 0..good.len() {
            let _ = Btf::parse(&good[..n]).map(|b| b.member("outer", &["in", "b"]));
        }
        for i in 0..good.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut d = good.clone();
                d[i] = v;
                if let Ok(b) = Btf::parse(&d) {
                    let _ = b.member("outer", &["in", "b"]);
                    let _ = SockOffsets::from_btf(&b);
                }
            }
        }
        assert!(Btf::parse(&[]).is_err());
        assert!(Btf::parse(&[0x9f, 0xeb]).is_err());
        // A typedef loop is refused, not followed forever.
        let mut d = good.clone();
        // type 3 (typedef) -> itself
        let types_start = 24;
        let t3 = types_start + 16 + 12 + 24;
        d[t3 + 8..t3 + 12].copy_from_slice(&3u32.to_le_bytes());
        let b = Btf::parse(&d).unwrap();
        assert!(b.member("outer", &["in", "b"]).is_err());
    }

    #[test]
    fn kernel_btf_has_the_fields_the_program_reads() {
        // Every machine this runs on has BTF (kernel 6.x); the offsets must be plausible.
        let Ok(off) = SockOffsets::from_kernel() else {
            eprintln!("no kernel BTF here; skipped");
            return;
        };
        assert!(off.net > 0 && off.num > 0 && off.family > 0, "{off:?}");
        eprintln!("{off:?}");
    }

    /// Runs the loaded (not attached) TCP program once with the tracepoint's arguments
    /// (`struct sock *`, old state, new state).
    fn run_tcp(ebpf: &mut Ebpf, sk: u64, old: u32, new: u32) {
        use aya::programs::{RawTracePointRunOptions, TestRun};
        let prog: &mut RawTracePoint = ebpf.program_mut(PROGRAM).unwrap().try_into().unwrap();
        let mut opts = RawTracePointRunOptions::new();
        opts.args[0] = sk;
        opts.args[1] = u64::from(old);
        opts.args[2] = u64::from(new);
        prog.test_run(opts).unwrap();
    }

    #[test]
    fn the_tcp_program_logs_its_error_paths_and_nothing_else() {
        use super::super::klog::testing::{can_load, runtime, Capture};
        use agent_common::tcp::state;
        if !can_load() {
            return;
        }
        runtime().block_on(async {
            let mut ebpf = load_object().unwrap();
            let prog: &mut RawTracePoint = ebpf.program_mut(PROGRAM).unwrap().try_into().unwrap();
            prog.load().unwrap();
            let cap = Capture::default();
            let klog = KernelLog::start_with(&mut ebpf, "TCP test", Box::new(cap.clone()));
            assert!(klog.is_forwarding());
            let wait = Duration::from_millis(300);

            // Not a transition the program counts: nothing read, nothing logged, configured
            // or not.
            run_tcp(&mut ebpf, 0, state::SYN_SENT, state::ESTABLISHED + 1);
            run_tcp(&mut ebpf, 0, state::ESTABLISHED, state::ESTABLISHED);
            assert_eq!(cap.settle(0, wait).await, vec![]);

            // A listener appearing while the configuration is unset (offsets map left empty).
            run_tcp(&mut ebpf, 0, state::CLOSE, state::LISTEN);
            let got = cap.settle(1, Duration::from_secs(3)).await;
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].0, log::Level::Error);
            assert!(got[0].2.contains("without its configuration"), "{got:?}");

            // Configured with this kernel's offsets, a bad socket pointer: the read fails.
            let off = SockOffsets::from_kernel().unwrap();
            {
                let mut conf: Array<_, TcpConfig> =
                    Array::try_from(ebpf.map_mut(CONFIG_MAP).unwrap()).unwrap();
                let c = TcpConfig {
                    enabled: 1,
                    netns_kind: off.netns_kind,
                    netns_id: 1,
                    off_net: off.net,
                    off_netns_id: off.netns_id,
                    off_family: off.family,
                    off_num: off.num,
                    off_rcv_saddr: off.rcv_saddr,
                    off_v6_rcv_saddr: off.v6_rcv_saddr,
                    off_protocol: off.protocol,
                    protocol_size: off.protocol_size,
                };
                conf.set(0, c, 0).unwrap();
            }
            run_tcp(&mut ebpf, 0, state::CLOSE, state::LISTEN);
            let got = cap.settle(2, Duration::from_secs(3)).await;
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[1].0, log::Level::Error);
            assert!(
                got[1].2.contains(&format!("failed at offset {}", off.num)),
                "{got:?}"
            );
            // Again and again: logged at the 2nd and 4th failure of a CPU, not at the 3rd.
            // (Each test run may land on another CPU: at most one record per run here.)
            run_tcp(&mut ebpf, 0, state::LISTEN, state::CLOSE);
            run_tcp(&mut ebpf, 0, state::ESTABLISHED, state::CLOSE);
            let got = cap.settle(5, wait).await;
            assert!(got.len() <= 4, "{got:?}");
            let read_failed = |ebpf: &Ebpf| -> u64 {
                let arr = PerCpuArray::<_, u64>::try_from(ebpf.map(STATS_MAP).unwrap()).unwrap();
                arr.get(&stats::READ_FAILED, 0).unwrap().iter().sum()
            };
            assert_eq!(read_failed(&ebpf), 3);
            for _ in 0..61 {
                run_tcp(&mut ebpf, 0, state::CLOSE, state::LISTEN);
            }
            assert_eq!(read_failed(&ebpf), 64);
            let got = cap.settle(64, wait).await;
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            // 1, 2, 4, ..., 64 on one CPU: 7 records, plus the unconfigured one.
            assert!(got.len() <= 1 + 7 * cpus, "{} records: {got:?}", got.len());
            drop(klog);
        });
    }
}

//! Hand-rolled `NETLINK_SOCK_DIAG` (`inet_diag`) dumps of TCP sockets, restricted in the kernel
//! to some states and local ports: what `vrrp_track_listen` reads listeners and accept queues
//! from, at a cost that does not grow with the number of connections.
//!
//! # Cost
//!
//! A request for the LISTEN state only (`idiag_states = 1 << TCP_LISTEN`) makes the kernel walk
//! its listening hash and stop there: established and time-wait sockets, however many, are never
//! visited. The local ports are matched in the kernel too, by an `INET_DIAG_REQ_BYTECODE` filter
//! (one `S_GE`/`S_LE` pair per range of ports, understood by every kernel since 2.6), so only
//! the watched listeners are copied out. A dump is two requests (`AF_INET`, `AF_INET6`) that
//! the kernel answers while `sendto` runs; the socket is non-blocking, so a dump never waits.
//!
//! For a listener, `idiag_rqueue` is the accept queue's current length (`sk_ack_backlog`) and
//! `idiag_wqueue` its limit (`sk_max_ack_backlog`, the `listen()` backlog capped by
//! `net.core.somaxconn`).
//!
//! # Namespaces
//!
//! `inet_diag` answers with the sockets of the network namespace the netlink socket was opened
//! in: a [`SockDiag`] opened by the agent sees the agent's sockets only.
//!
//! Every reply is bounds-checked; a malformed one is [`NetError::Malformed`], never a panic.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use super::{sys, Family, NetError, Result};

/// `NETLINK_SOCK_DIAG` (alias `NETLINK_INET_DIAG`).
const NETLINK_SOCK_DIAG: i32 = 4;
/// `SOCK_DIAG_BY_FAMILY`: the request type, and the type of every socket in the reply.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `INET_DIAG_REQ_BYTECODE`: the filter attribute of a request.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;
/// The kernel never builds a dump datagram larger than 32 KiB; twice that leaves room.
const RECV_BUF: usize = 64 * 1024;
/// A filter is at most this long (the attribute length is a `u16`); beyond, ports are only
/// filtered here.
const MAX_FILTER: usize = 60_000;

/// `TCP_ESTABLISHED` (also the `st` column of `/proc/net/tcp`).
pub const TCP_ESTABLISHED: u8 = 1;
/// `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 10;

/// One socket of a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    /// Address family of the socket (an IPv6 socket may carry IPv4-mapped addresses).
    pub family: Family,
    /// TCP state (`TCP_LISTEN`, `TCP_ESTABLISHED`, ...).
    pub state: u8,
    /// Local (bound) address.
    pub local: IpAddr,
    /// Local port.
    pub port: u16,
    /// `idiag_rqueue`: for a listener, the current accept queue length.
    pub rqueue: u32,
    /// `idiag_wqueue`: for a listener, the accept queue's limit (the effective backlog).
    pub wqueue: u32,
}

/// A `NETLINK_SOCK_DIAG` socket of the calling thread's network namespace (non-blocking).
#[derive(Debug)]
pub struct SockDiag {
    fd: OwnedFd,
    seq: u32,
    /// The receive buffer, only during a dump ([`RECV_BUF`]; empty between dumps, which are
    /// rare: a 64 KiB buffer held for the agent's life would be most of a tracker's memory).
    buf: Vec<u8>,
    /// Whether the kernel accepts the port filter (set to false after it refused one).
    filter: bool,
}

impl SockDiag {
    /// Opens a socket; it answers for the network namespace of the calling thread.
    pub fn open() -> Result<Self> {
        let fd = sys::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            NETLINK_SOCK_DIAG,
            "socket(AF_NETLINK)",
            "NETLINK_SOCK_DIAG",
        )?;
        Ok(Self {
            fd,
            seq: 1,
            buf: Vec::new(),
            filter: true,
        })
    }

    /// The listening TCP sockets (IPv4 and IPv6) on `ports` (every port when empty), with their
    /// accept queues.
    pub fn tcp_listeners(&mut self, ports: &[u16]) -> Result<Vec<DiagSocket>> {
        self.tcp(1 << TCP_LISTEN, ports)
    }

    /// The TCP sockets (IPv4 and IPv6) in one of `states` (a mask of `1 << state`) whose local
    /// port is in `ports` (every port when empty). After an error the socket is replaced by a
    /// fresh one (a dump left half-read would make the next request fail with `EBUSY`).
    pub fn tcp(&mut self, states: u32, ports: &[u16]) -> Result<Vec<DiagSocket>> {
        let mut out = Vec::new();
        self.buf.resize(RECV_BUF, 0);
        let r = self
            .dump(libc::AF_INET as u8, states, ports, &mut out)
            .and_then(
                |()| match self.dump(libc::AF_INET6 as u8, states, ports, &mut out) {
                    // IPv6 compiled out or its diag handler absent: no IPv6 sockets.
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EAFNOSUPPORT)) =>
                    {
                        Ok(())
                    }
                    r => r,
                },
            );
        self.buf = Vec::new();
        match r {
            Ok(()) => {
                if !ports.is_empty() {
                    out.retain(|s| ports.contains(&s.port));
                }
                Ok(out)
            }
            Err(e) => {
                if let Ok(fresh) = Self::open() {
                    self.fd = fresh.fd;
                }
                Err(e)
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = s.wrapping_add(1).max(1);
        s
    }

    /// One family's dump, appended to `out`. A filter the kernel refuses (`EINVAL`) is dropped
    /// for good and the dump repeated without it.
    fn dump(
        &mut self,
        family: u8,
        states: u32,
        ports: &[u16],
        out: &mut Vec<DiagSocket>,
    ) -> Result<()> {
        let filter = if self.filter {
            port_filter(ports)
        } else {
            None
        };
        let had_filter = filter.is_some();
        let seq = self.next_seq();
        let req = request(family, states, filter.as_deref(), seq);
        let mark = out.len();
        match self.exchange(&req, seq, out) {
            Err(e) if had_filter && e.raw_os_error() == Some(libc::EINVAL) => {
                self.filter = false;
                out.truncate(mark);
                let seq = self.next_seq();
                self.exchange(&request(family, states, None, seq), seq, out)
            }
            r => r,
        }
    }

    /// Sends one request and reads its reply up to `NLMSG_DONE`.
    fn exchange(&mut self, req: &[u8], seq: u32, out: &mut Vec<DiagSocket>) -> Result<()> {
        send_kernel(&self.fd, req)?;
        loop {
            let n = recv_kernel(&self.fd, &mut self.buf)?;
            let chunk = self.buf.get(..n).ok_or_else(|| {
                NetError::malformed("sock_diag reply", "length beyond the buffer")
            })?;
            if parse_reply(chunk, seq, out)? {
                return Ok(());
            }
        }
    }
}

impl AsFd for SockDiag {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One-shot [`SockDiag::tcp`] in the calling thread's network namespace.
pub fn tcp_sockets(states: u32, ports: &[u16]) -> Result<Vec<DiagSocket>> {
    SockDiag::open()?.tcp(states, ports)
}

// ---- request ----

/// The `inet_diag` filter accepting a local port in `ports` (`None` for every port, or when the
/// filter would be too long). Ports are grouped into ranges; each range is
/// `S_GE lo; S_LE hi; JMP accept`, a failed comparison jumping to the next range, and past the
/// end (reject) from the last one, the layout `ss` uses and the kernel's audit accepts.
pub fn port_filter(ports: &[u16]) -> Option<Vec<u8>> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for p in sorted {
        match ranges.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(p) => *hi = p,
            _ => ranges.push((p, p)),
        }
    }
    if ranges.is_empty() {
        return None;
    }
    let len = ranges.len() * 20 - 4;
    if len > MAX_FILTER {
        return None;
    }
    let mut bc = Vec::with_capacity(len);
    let op = |bc: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        bc.push(code);
        bc.push(yes);
        bc.extend_from_slice(&no.to_ne_bytes());
    };
    for (i, (lo, hi)) in ranges.iter().enumerate() {
        let last = i + 1 == ranges.len();
        // From the S_GE: the next range (20 bytes on), or 4 past the end (16 on) after the last.
        let next: u16 = 20;
        op(&mut bc, INET_DIAG_BC_S_GE, 8, next);
        op(&mut bc, 0, 0, *lo);
        op(&mut bc, INET_DIAG_BC_S_LE, 8, next - 8);
        op(&mut bc, 0, 0, *hi);
        if !last {
            // Accept: jump to the end exactly (from here: this op and what follows it).
            let rest = len - bc.len();
            op(&mut bc, INET_DIAG_BC_JMP, 4, u16::try_from(rest).ok()?);
        }
    }
    Some(bc)
}

/// A `SOCK_DIAG_BY_FAMILY` dump request for TCP sockets of `family` in `states`.
fn request(family: u8, states: u32, filter: Option<&[u8]>, seq: u32) -> Vec<u8> {
    let attr_len = filter.map_or(0, |f| 4 + f.len());
    let total = NLMSG_HDRLEN + REQ_LEN + attr_len;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, ext (none), pad, states, then a zero sockid.
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&states.to_ne_bytes());
    m.resize(NLMSG_HDRLEN + REQ_LEN, 0);
    if let Some(f) = filter {
        m.extend_from_slice(&((4 + f.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        m.extend_from_slice(f);
    }
    m
}

// ---- socket plumbing ----

fn send_kernel(fd: &OwnedFd, bytes: &[u8]) -> Result<()> {
    // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0) addresses the kernel.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    loop {
        // SAFETY: buffer and sockaddr are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                sys::socklen::<libc::sockaddr_nl>(),
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = NetError::last_os("sendto(SOCK_DIAG_BY_FAMILY)", "NETLINK_SOCK_DIAG");
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Receives one datagram from the kernel (others are dropped). The kernel queues each part of a
/// dump before the call that asked for it returns, so on this non-blocking socket `EAGAIN`
/// means the dump broke off: an error.
fn recv_kernel(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    // MSG_TRUNC makes the call return the datagram's real length.
    let n = sys::recv_from_kernel(fd, buf, libc::MSG_TRUNC).map_err(|source| NetError::Sys {
        syscall: "recvfrom(NETLINK_SOCK_DIAG)",
        target: "a TCP socket dump".to_owned(),
        source,
    })?;
    if n > buf.len() {
        return Err(NetError::malformed(
            "sock_diag reply",
            format!("datagram of {n} bytes truncated to {}", buf.len()),
        ));
    }
    Ok(n)
}

// ---- parsing ----

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Parses one datagram of the reply to request `seq`, appending its sockets to `out`; whether
/// the dump is complete (`NLMSG_DONE`). Messages of other requests are skipped; an error
/// message is the error it carries.
pub fn parse_reply(mut buf: &[u8], seq: u32, out: &mut Vec<DiagSocket>) -> Result<bool> {
    let mut done = false;
    while !buf.is_empty() {
        let bad = |r: &str| Err(NetError::malformed("sock_diag reply", r));
        let (Some(len), Some(ty), Some(mseq)) =
            (read_u32(buf, 0), read_u16(buf, 4), read_u32(buf, 8))
        else {
            return bad("truncated netlink header");
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN {
            return bad("netlink length below the header size");
        }
        let Some(payload) = buf.get(NLMSG_HDRLEN..len) else {
            return bad("netlink length beyond the datagram");
        };
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
        if mseq != seq || done {
            continue;
        }
        match ty {
            SOCK_DIAG_BY_FAMILY => out.push(parse_socket(payload)?),
            NLMSG_DONE => {
                if let Some(errno) = read_i32(payload, 0).filter(|e| *e < 0) {
                    return Err(os_error(errno));
                }
                done = true;
            }
            NLMSG_ERROR => {
                let Some(errno) = read_i32(payload, 0) else {
                    return bad("error message shorter than 4 bytes");
                };
                if errno != 0 {
                    return Err(os_error(errno));
                }
            }
            NLMSG_NOOP | NLMSG_OVERRUN => {}
            t => {
                return Err(NetError::malformed(
                    "sock_diag reply",
                    format!("message type {t}"),
                ))
            }
        }
    }
    Ok(done)
}

fn os_error(errno: i32) -> NetError {
    NetError::Sys {
        syscall: "SOCK_DIAG_BY_FAMILY",
        target: "a TCP socket dump".to_owned(),
        source: std::io::Error::from_raw_os_error(errno.checked_neg().unwrap_or(libc::EIO)),
    }
}

/// Decodes a `struct inet_diag_msg` (its attributes, if any, are ignored).
fn parse_socket(p: &[u8]) -> Result<DiagSocket> {
    let Some(m) = p.get(..MSG_LEN) else {
        return Err(NetError::malformed(
            "inet_diag_msg",
            format!("{} bytes, expected at least {MSG_LEN}", p.len()),
        ));
    };
    // family 0, state 1, timer 2, retrans 3, sockid 4..52 (sport, dport, src[16], dst[16], if,
    // cookie), expires 52, rqueue 56, wqueue 60, uid 64, inode 68.
    let src = &m[8..24];
    let (family, local) = match i32::from(m[0]) {
        libc::AF_INET => (
            Family::V4,
            IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        ),
        libc::AF_INET6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(src);
            (Family::V6, IpAddr::V6(Ipv6Addr::from(o)))
        }
        f => {
            return Err(NetError::malformed(
                "inet_diag_msg",
                format!("address family {f}"),
            ))
        }
    };
    let (Some(rqueue), Some(wqueue)) = (read_u32(m, 56), read_u32(m, 60)) else {
        return Err(NetError::malformed("inet_diag_msg", "truncated"));
    };
    Ok(DiagSocket {
        family,
        state: m[1],
        local,
        port: u16::from_be_bytes([m[4], m[5]]),
        rqueue,
        wqueue,
    })
}

#[cfg(test)]
mod tests;

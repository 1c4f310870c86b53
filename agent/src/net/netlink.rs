//! Hand-rolled `NETLINK_ROUTE`: addresses (`RTM_NEWADDR`/`RTM_DELADDR`/`RTM_GETADDR`), links
//! (`RTM_GETLINK`) and the `RTMGRP_LINK` event subscription.
//!
//! Messages are built and parsed as bytes in native byte order (netlink's); every parser
//! bounds-checks each header and attribute and returns [`NetError::Malformed`] instead of
//! panicking.

use std::{
    cell::Cell,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd},
};

use super::{sys, NetError, Result};

// Netlink and rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h,
// linux/if_link.h). Spelled out here because libc's coverage of them varies by target.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_FLAGS: u16 = 8;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFADDRMSG_LEN: usize = 8;
const IFINFOMSG_LEN: usize = 16;
const RTMGRP_LINK: u32 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const RECV_BUF: usize = 64 * 1024;

/// `IFA_F_SECONDARY`: a secondary IPv4 address (same subnet as a primary).
pub const IFA_F_SECONDARY: u32 = 0x01;
/// `IFA_F_NODAD`: IPv6 duplicate address detection skipped.
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_DADFAILED`: IPv6 duplicate address detection failed.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`: IPv6 address still in duplicate address detection.
pub const IFA_F_TENTATIVE: u32 = 0x40;

/// Interface index of `ifname` in the calling thread's network namespace (`if_nametoindex`).
pub fn ifindex(ifname: &str) -> Result<u32> {
    sys::if_nametoindex(ifname)
}

/// One address on an interface, as `RTM_GETADDR` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    /// Interface index.
    pub ifindex: u32,
    /// The address (`IFA_LOCAL` when present, else `IFA_ADDRESS`).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `IFA_LABEL` (IPv4 only; the kernel keeps no labels for IPv6).
    pub label: Option<String>,
    /// `IFA_F_*` flags (from `IFA_FLAGS` when present).
    pub flags: u32,
    /// `RT_SCOPE_*` scope (0 universe, 253 link, 254 host).
    pub scope: u8,
}

impl AddressInfo {
    /// A secondary IPv4 address.
    pub fn is_secondary(&self) -> bool {
        self.flags & IFA_F_SECONDARY != 0
    }

    /// An IPv6 address that cannot be used as a source yet (or ever): tentative or DAD failed.
    pub fn is_tentative(&self) -> bool {
        self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0
    }
}

/// A network interface, as `RTM_GETLINK` / `RTM_NEWLINK` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name (`IFLA_IFNAME`; empty if absent).
    pub name: String,
    /// `ARPHRD_*` link type (1 = Ethernet).
    pub link_type: u16,
    /// `IFF_*` flags.
    pub flags: u32,
    /// Hardware address (`IFLA_ADDRESS`; empty if absent).
    pub hw_addr: Vec<u8>,
    /// MTU (`IFLA_MTU`).
    pub mtu: Option<u32>,
    /// RFC 2863 operational state (`IFLA_OPERSTATE`: 6 = up, 2 = down, 7 = dormant, ...).
    pub operstate: Option<u8>,
}

impl LinkInfo {
    /// Administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        self.flags & libc::IFF_UP as u32 != 0
    }

    /// Operationally up (`IFF_RUNNING`: up and carrier, as `ip link` shows `LOWER_UP`/`UP`).
    pub fn is_running(&self) -> bool {
        self.flags & libc::IFF_RUNNING as u32 != 0
    }

    /// Carrier present (`IFF_LOWER_UP`).
    pub fn has_carrier(&self) -> bool {
        self.flags & libc::IFF_LOWER_UP as u32 != 0
    }

    /// Up, running and with carrier: usable for VRRP.
    pub fn is_usable(&self) -> bool {
        self.is_up() && self.is_running() && self.has_carrier()
    }
}

/// A link change from the `RTMGRP_LINK` subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// The link's state after the change.
    pub link: LinkInfo,
    /// The link was deleted (`RTM_DELLINK`).
    pub removed: bool,
}

/// A `NETLINK_ROUTE` request socket (blocking, 5 s receive timeout). Cheap to open; the daemon
/// may keep one per task. Bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct Rtnl {
    fd: OwnedFd,
    seq: Cell<u32>,
}

impl Rtnl {
    /// Opens a request socket.
    pub fn open() -> Result<Self> {
        let fd = sys::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_ROUTE,
            "socket(AF_NETLINK)",
            "NETLINK_ROUTE",
        )?;
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        sys::setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
            "setsockopt(SO_RCVTIMEO)",
            "NETLINK_ROUTE",
        )?;
        bind_netlink(&fd, 0)?;
        Ok(Self {
            fd,
            seq: Cell::new(1),
        })
    }

    /// Adds `addr/prefix_len` to interface `ifindex` (`RTM_NEWADDR`, `NLM_F_CREATE|NLM_F_EXCL`).
    ///
    /// IPv4 sends `IFA_LOCAL` and `IFA_ADDRESS` (both `addr`) and `IFA_LABEL` if given (at most
    /// 15 bytes; by convention `ifname:suffix`). IPv6 sets `IFA_F_NODAD` so the address is usable
    /// at once; IPv6 has no labels, so a label for it is an [`NetError::InvalidArgument`].
    /// An address already present is [`NetError::AddressExists`].
    pub fn add_address(
        &self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
        label: Option<&str>,
    ) -> Result<()> {
        check_prefix(addr, prefix_len)?;
        if let Some(l) = label {
            if addr.is_ipv6() {
                return Err(NetError::invalid(
                    addr,
                    "IPv6 addresses carry no label (IFA_LABEL is IPv4 only)",
                ));
            }
            if l.is_empty() || l.len() >= libc::IFNAMSIZ || l.contains('\0') {
                return Err(NetError::invalid(
                    addr,
                    format!("label {l:?} must be 1..=15 bytes without NUL"),
                ));
            }
        }
        let mut m = addr_msg(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            self.next_seq(),
            ifindex,
            addr,
            prefix_len,
        );
        if let Some(l) = label {
            let mut b = l.as_bytes().to_vec();
            b.push(0);
            m.attr(IFA_LABEL, &b);
        }
        if addr.is_ipv6() {
            m.attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
        }
        match self.request(
            m,
            "RTM_NEWADDR",
            &format!("{addr}/{prefix_len} on ifindex {ifindex}"),
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(NetError::AddressExists {
                ifindex,
                addr,
                prefix_len,
            }),
            r => r.map(drop),
        }
    }

    /// Removes `addr/prefix_len` from interface `ifindex` (`RTM_DELADDR`). The prefix length must
    /// match; an address that is not there is [`NetError::AddressNotFound`].
    ///
    /// Removing a primary IPv4 address also removes its secondaries unless the
    /// `promote_secondaries` sysctl is set; VIPs are normally secondaries or `/32`s.
    pub fn del_address(&self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        check_prefix(addr, prefix_len)?;
        let m = addr_msg(RTM_DELADDR, 0, self.next_seq(), ifindex, addr, prefix_len);
        match self.request(
            m,
            "RTM_DELADDR",
            &format!("{addr}/{prefix_len} on ifindex {ifindex}"),
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                Err(NetError::AddressNotFound {
                    ifindex,
                    addr,
                    prefix_len,
                })
            }
            r => r.map(drop),
        }
    }

    /// Every IPv4 and IPv6 address on interface `ifindex` (`RTM_GETADDR` dump), in kernel order
    /// (for IPv4, primaries come before their secondaries).
    pub fn list_addresses(&self, ifindex: u32) -> Result<Vec<AddressInfo>> {
        let mut m = MsgBuf::new(RTM_GETADDR, NLM_F_DUMP, self.next_seq());
        m.extend(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        m.extend(&0u32.to_ne_bytes());
        let mut out = Vec::new();
        for payload in self.request(m, "RTM_GETADDR", &format!("ifindex {ifindex}"))? {
            if let Some(a) = parse_address(&payload)? {
                if a.ifindex == ifindex {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// The link with index `ifindex` (`RTM_GETLINK`).
    pub fn link(&self, ifindex: u32) -> Result<LinkInfo> {
        let mut m = MsgBuf::new(RTM_GETLINK, 0, self.next_seq());
        m.extend(&link_msg_body(ifindex));
        let target = format!("ifindex {ifindex}");
        let replies = match self.request(m, "RTM_GETLINK", &target) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                return Err(NetError::NoSuchInterface {
                    name: format!("#{ifindex}"),
                    syscall: "RTM_GETLINK",
                })
            }
            r => r?,
        };
        replies
            .first()
            .map(|p| parse_link(p))
            .unwrap_or_else(|| Err(NetError::malformed("RTM_GETLINK reply", "no link message")))
    }

    /// Every link in the namespace (`RTM_GETLINK` dump); use it to resynchronise after a
    /// [`NetError::Overrun`].
    pub fn links(&self) -> Result<Vec<LinkInfo>> {
        let mut m = MsgBuf::new(RTM_GETLINK, NLM_F_DUMP, self.next_seq());
        m.extend(&link_msg_body(0));
        self.request(m, "RTM_GETLINK", "all links")?
            .iter()
            .map(|p| parse_link(p))
            .collect()
    }

    fn next_seq(&self) -> u32 {
        let s = self.seq.get();
        self.seq.set(s.wrapping_add(1).max(1));
        s
    }

    /// Sends `m` with `NLM_F_ACK` and collects the payloads of the data replies (for dumps, up to
    /// `NLMSG_DONE`; otherwise up to the ack). A negative ack becomes `Sys { syscall: op }`.
    fn request(&self, mut m: MsgBuf, op: &'static str, target: &str) -> Result<Vec<Vec<u8>>> {
        let seq = m.seq();
        let dump = m.flags() & NLM_F_DUMP == NLM_F_DUMP;
        m.set_flags(m.flags() | NLM_F_REQUEST | NLM_F_ACK);
        let bytes = m.finish();
        send_kernel(&self.fd, &bytes, op, target)?;

        let mut buf = vec![0u8; RECV_BUF];
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let n = recv_kernel(&self.fd, &mut buf, 0, op, target)?;
            let Some(chunk) = buf.get(..n) else {
                return Err(NetError::malformed(
                    "netlink message",
                    "length beyond buffer",
                ));
            };
            for msg in split_messages(chunk)? {
                if msg.seq != seq {
                    continue; // a stale reply to an earlier, timed-out request
                }
                interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                match msg.ty {
                    NLMSG_ERROR => {
                        let errno = read_i32(msg.payload, 0).ok_or_else(|| {
                            NetError::malformed("netlink error message", "shorter than 4 bytes")
                        })?;
                        if errno == 0 {
                            if !dump {
                                return Ok(out);
                            }
                        } else {
                            return Err(NetError::Sys {
                                syscall: op,
                                target: target.to_owned(),
                                source: std::io::Error::from_raw_os_error(-errno),
                            });
                        }
                    }
                    NLMSG_DONE => {
                        if let Some(errno) = read_i32(msg.payload, 0).filter(|e| *e < 0) {
                            return Err(NetError::Sys {
                                syscall: op,
                                target: target.to_owned(),
                                source: std::io::Error::from_raw_os_error(-errno),
                            });
                        }
                        if interrupted {
                            // The table changed mid-dump: the caller retries.
                            return Err(NetError::Sys {
                                syscall: op,
                                target: target.to_owned(),
                                source: std::io::Error::from_raw_os_error(libc::EINTR),
                            });
                        }
                        return Ok(out);
                    }
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => out.push(msg.payload.to_vec()),
                }
            }
        }
    }
}

impl AsFd for Rtnl {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One-shot [`Rtnl::add_address`].
pub fn add_address(ifindex: u32, addr: IpAddr, prefix_len: u8, label: Option<&str>) -> Result<()> {
    Rtnl::open()?.add_address(ifindex, addr, prefix_len, label)
}

/// One-shot [`Rtnl::del_address`].
pub fn del_address(ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
    Rtnl::open()?.del_address(ifindex, addr, prefix_len)
}

/// One-shot [`Rtnl::list_addresses`].
pub fn list_addresses(ifindex: u32) -> Result<Vec<AddressInfo>> {
    Rtnl::open()?.list_addresses(ifindex)
}

/// One-shot [`Rtnl::link`]: the link's state (`is_up`, `is_running`, `has_carrier`).
pub fn link(ifindex: u32) -> Result<LinkInfo> {
    Rtnl::open()?.link(ifindex)
}

/// A non-blocking subscription to link changes (`RTMGRP_LINK`), for `track_interface`.
///
/// Register [`AsRawFd::as_raw_fd`] with the event loop; on readiness call
/// [`LinkMonitor::recv_events`] until it reports [`NetError::is_would_block`].
#[derive(Debug)]
pub struct LinkMonitor {
    fd: OwnedFd,
}

impl LinkMonitor {
    /// Subscribes to `RTMGRP_LINK` in the calling thread's namespace (1 MiB receive buffer).
    pub fn open() -> Result<Self> {
        let fd = sys::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
            "socket(AF_NETLINK)",
            "RTMGRP_LINK",
        )?;
        sys::setsockopt_int(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            1 << 20,
            "setsockopt(SO_RCVBUF)",
            "RTMGRP_LINK",
        )?;
        bind_netlink(&fd, RTMGRP_LINK)?;
        Ok(Self { fd })
    }

    /// Reads one datagram of events without blocking. Nothing queued is a `Sys` error with
    /// [`NetError::is_would_block`]; lost events are [`NetError::Overrun`] (re-read the state
    /// with [`Rtnl::links`]).
    pub fn recv_events(&self) -> Result<Vec<LinkEvent>> {
        let mut buf = vec![0u8; RECV_BUF];
        let n = match recv_kernel(
            &self.fd,
            &mut buf,
            libc::MSG_DONTWAIT,
            "recv",
            "RTMGRP_LINK",
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Err(NetError::Overrun {
                    group: "RTMGRP_LINK",
                })
            }
            r => r?,
        };
        parse_link_events(buf.get(..n).unwrap_or_default())
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Parses a datagram from the link subscription into events (`RTM_NEWLINK` / `RTM_DELLINK`);
/// other message types are skipped. Never panics: malformed input is [`NetError::Malformed`].
pub fn parse_link_events(buf: &[u8]) -> Result<Vec<LinkEvent>> {
    let mut out = Vec::new();
    for msg in split_messages(buf)? {
        match msg.ty {
            RTM_NEWLINK | RTM_DELLINK => out.push(LinkEvent {
                link: parse_link(msg.payload)?,
                removed: msg.ty == RTM_DELLINK,
            }),
            _ => {}
        }
    }
    Ok(out)
}

// ---- message building ----

/// A netlink message under construction: header (length patched by `finish`) + body.
struct MsgBuf(Vec<u8>);

impl MsgBuf {
    fn new(ty: u16, flags: u16, seq: u32) -> Self {
        let mut v = Vec::with_capacity(128);
        v.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in finish()
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills in ours
        Self(v)
    }

    fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.0[6], self.0[7]])
    }

    fn set_flags(&mut self, f: u16) {
        self.0[6..8].copy_from_slice(&f.to_ne_bytes());
    }

    fn seq(&self) -> u32 {
        u32::from_ne_bytes([self.0[8], self.0[9], self.0[10], self.0[11]])
    }

    fn extend(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    /// Appends an `rtattr`, padded to 4 bytes.
    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn addr_msg(ty: u16, flags: u16, seq: u32, ifindex: u32, addr: IpAddr, plen: u8) -> MsgBuf {
    let mut m = MsgBuf::new(ty, flags, seq);
    let (family, ifa_flags) = match addr {
        IpAddr::V4(_) => (libc::AF_INET as u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6 as u8, IFA_F_NODAD as u8),
    };
    // ifaddrmsg: family, prefixlen, flags, scope (universe), index
    m.extend(&[family, plen, ifa_flags, 0]);
    m.extend(&ifindex.to_ne_bytes());
    match addr {
        IpAddr::V4(a) => {
            m.attr(IFA_LOCAL, &a.octets());
            m.attr(IFA_ADDRESS, &a.octets());
        }
        IpAddr::V6(a) => m.attr(IFA_ADDRESS, &a.octets()),
    }
    m
}

fn link_msg_body(ifindex: u32) -> [u8; IFINFOMSG_LEN] {
    // ifinfomsg: family, pad, type, index, flags, change
    let mut b = [0u8; IFINFOMSG_LEN];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    b
}

fn check_prefix(addr: IpAddr, plen: u8) -> Result<()> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if plen > max {
        return Err(NetError::invalid(
            addr,
            format!("prefix length {plen} exceeds {max}"),
        ));
    }
    Ok(())
}

// ---- socket plumbing ----

fn bind_netlink(fd: &OwnedFd, groups: u32) -> Result<()> {
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = groups;
    // SAFETY: `sa` is a valid sockaddr_nl of the stated length.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            sys::socklen::<libc::sockaddr_nl>(),
        )
    };
    if rc < 0 {
        return Err(NetError::last_os("bind(AF_NETLINK)", "NETLINK_ROUTE"));
    }
    Ok(())
}

fn send_kernel(fd: &OwnedFd, bytes: &[u8], op: &'static str, target: &str) -> Result<()> {
    // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0) addresses the kernel.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
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
    if n < 0 {
        return Err(NetError::last_os(op, target));
    }
    Ok(())
}

/// Receives one datagram that came from the kernel (port id 0); others are dropped.
fn recv_kernel(
    fd: &OwnedFd,
    buf: &mut [u8],
    flags: i32,
    op: &'static str,
    target: &str,
) -> Result<usize> {
    sys::recv_from_kernel(fd, buf, flags).map_err(|source| NetError::Sys {
        syscall: op,
        target: target.to_owned(),
        source,
    })
}

// ---- parsing ----

#[derive(Debug)]
struct NlMsg<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a datagram into netlink messages, checking every length.
fn split_messages(mut buf: &[u8]) -> Result<Vec<NlMsg<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let bad = |r: &str| Err(NetError::malformed("netlink message", r));
        let (Some(len), Some(ty), Some(flags), Some(seq)) = (
            read_u32(buf, 0),
            read_u16(buf, 4),
            read_u16(buf, 6),
            read_u32(buf, 8),
        ) else {
            return bad("truncated header");
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN {
            return bad("length below header size");
        }
        let Some(payload) = buf.get(NLMSG_HDRLEN..len) else {
            return bad("length beyond datagram");
        };
        out.push(NlMsg {
            ty,
            flags,
            seq,
            payload,
        });
        buf = buf.get(align4(len)..).unwrap_or_default();
    }
    Ok(out)
}

/// Splits an attribute area into `(type, data)` pairs (type without the nested/byte-order bits).
fn split_attrs(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (Some(len), Some(ty)) = (read_u16(buf, 0), read_u16(buf, 2)) else {
            return Err(NetError::malformed("netlink attribute", "truncated header"));
        };
        let len = usize::from(len);
        if len < 4 {
            return Err(NetError::malformed("netlink attribute", "length below 4"));
        }
        let Some(data) = buf.get(4..len) else {
            return Err(NetError::malformed(
                "netlink attribute",
                "length beyond message",
            ));
        };
        out.push((ty & NLA_TYPE_MASK, data));
        buf = buf.get(align4(len)..).unwrap_or_default();
    }
    Ok(out)
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

fn ip_from(family: u8, b: &[u8]) -> Result<IpAddr> {
    match (i32::from(family), b.len()) {
        (libc::AF_INET, 4) => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        (libc::AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        (f, n) => Err(NetError::malformed(
            "netlink address attribute",
            format!("{n} bytes for family {f}"),
        )),
    }
}

/// Parses an `RTM_NEWADDR` payload; `Ok(None)` for families other than IPv4/IPv6.
pub(crate) fn parse_address(p: &[u8]) -> Result<Option<AddressInfo>> {
    let Some(hdr) = p.get(..IFADDRMSG_LEN) else {
        return Err(NetError::malformed("ifaddrmsg", "shorter than 8 bytes"));
    };
    let (family, prefix_len, flags8, scope) = (hdr[0], hdr[1], hdr[2], hdr[3]);
    let ifindex = read_u32(hdr, 4).unwrap_or_default();
    if !matches!(i32::from(family), libc::AF_INET | libc::AF_INET6) {
        return Ok(None);
    }
    let (mut local, mut address, mut label, mut flags) = (None, None, None, u32::from(flags8));
    for (ty, data) in split_attrs(p.get(IFADDRMSG_LEN..).unwrap_or_default())? {
        match ty {
            IFA_LOCAL => local = Some(ip_from(family, data)?),
            IFA_ADDRESS => address = Some(ip_from(family, data)?),
            IFA_LABEL => label = Some(c_string(data)),
            IFA_FLAGS => {
                flags = read_u32(data, 0)
                    .ok_or_else(|| NetError::malformed("IFA_FLAGS", "shorter than 4 bytes"))?
            }
            _ => {}
        }
    }
    let addr = local
        .or(address)
        .ok_or_else(|| NetError::malformed("ifaddrmsg", "no IFA_LOCAL or IFA_ADDRESS"))?;
    Ok(Some(AddressInfo {
        ifindex,
        addr,
        prefix_len,
        label,
        flags,
        scope,
    }))
}

/// Parses an `RTM_NEWLINK` / `RTM_DELLINK` payload.
pub(crate) fn parse_link(p: &[u8]) -> Result<LinkInfo> {
    let Some(hdr) = p.get(..IFINFOMSG_LEN) else {
        return Err(NetError::malformed("ifinfomsg", "shorter than 16 bytes"));
    };
    let mut info = LinkInfo {
        ifindex: read_u32(hdr, 4).unwrap_or_default(),
        name: String::new(),
        link_type: read_u16(hdr, 2).unwrap_or_default(),
        flags: read_u32(hdr, 8).unwrap_or_default(),
        hw_addr: Vec::new(),
        mtu: None,
        operstate: None,
    };
    for (ty, data) in split_attrs(p.get(IFINFOMSG_LEN..).unwrap_or_default())? {
        match ty {
            IFLA_IFNAME => info.name = c_string(data),
            IFLA_ADDRESS => info.hw_addr = data.to_vec(),
            IFLA_MTU => info.mtu = read_u32(data, 0),
            IFLA_OPERSTATE => info.operstate = data.first().copied(),
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn link_msg(ty: u16, name: &str, flags: u32) -> Vec<u8> {
        let mut m = MsgBuf::new(ty, 0, 7);
        let mut body = link_msg_body(42);
        body[8..12].copy_from_slice(&flags.to_ne_bytes());
        m.extend(&body);
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        m.attr(IFLA_IFNAME, &n);
        m.attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 1]);
        m.attr(IFLA_MTU, &1500u32.to_ne_bytes());
        m.attr(IFLA_OPERSTATE, &[6]);
        m.finish()
    }

    #[test]
    fn parses_link_events() {
        let up = libc::IFF_UP as u32 | libc::IFF_RUNNING as u32 | libc::IFF_LOWER_UP as u32;
        let mut buf = link_msg(RTM_NEWLINK, "veth0", up);
        buf.extend(link_msg(RTM_DELLINK, "veth1", 0));
        let ev = parse_link_events(&buf).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].link.name, "veth0");
        assert_eq!(ev[0].link.ifindex, 42);
        assert!(ev[0].link.is_usable() && !ev[0].removed);
        assert_eq!(ev[0].link.hw_addr, [2, 0, 0, 0, 0, 1]);
        assert_eq!(ev[0].link.mtu, Some(1500));
        assert_eq!(ev[0].link.operstate, Some(6));
        assert!(ev[1].removed && !ev[1].link.is_up());
    }

    #[test]
    fn parses_addresses() {
        let mut m = addr_msg(RTM_NEWADDR, 0, 1, 3, "10.0.0.5".parse().unwrap(), 24);
        m.attr(IFA_LABEL, b"eth0:vip\0");
        m.attr(IFA_FLAGS, &(IFA_F_SECONDARY | 0x80).to_ne_bytes());
        let buf = m.finish();
        let msgs = split_messages(&buf).unwrap();
        let a = parse_address(msgs[0].payload).unwrap().unwrap();
        assert_eq!(a.addr, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!((a.ifindex, a.prefix_len), (3, 24));
        assert_eq!(a.label.as_deref(), Some("eth0:vip"));
        assert!(a.is_secondary());

        let m = addr_msg(RTM_NEWADDR, 0, 1, 3, "fd00::5".parse().unwrap(), 64);
        let buf = m.finish();
        let a = parse_address(split_messages(&buf).unwrap()[0].payload)
            .unwrap()
            .unwrap();
        assert_eq!(a.addr, "fd00::5".parse::<IpAddr>().unwrap());
        assert_eq!(a.flags, IFA_F_NODAD);
    }

    proptest::proptest! {
        #[test]
        fn netlink_parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_link_events(&bytes);
            let _ = parse_address(&bytes);
            let _ = parse_link(&bytes);
        }
    }

    /// Every truncation and every single-byte corruption of valid messages parses or errors, and
    /// never panics.
    #[test]
    fn truncated_and_corrupted_inputs_never_panic() {
        let up = libc::IFF_UP as u32;
        let mut samples = vec![link_msg(RTM_NEWLINK, "eth0", up)];
        let mut m = addr_msg(RTM_NEWADDR, 0, 1, 3, "10.0.0.5".parse().unwrap(), 24);
        m.attr(IFA_LABEL, b"eth0:vip\0");
        samples.push(m.finish());
        samples.push(addr_msg(RTM_NEWADDR, 0, 1, 3, "fd00::1".parse().unwrap(), 64).finish());
        for s in &samples {
            for cut in 0..s.len() {
                let t = &s[..cut];
                let _ = parse_link_events(t);
                if let Ok(msgs) = split_messages(t) {
                    for m in msgs {
                        let _ = parse_address(m.payload);
                        let _ = parse_link(m.payload);
                    }
                }
                let _ = parse_address(t);
                let _ = parse_link(t);
            }
            for i in 0..s.len() {
                for v in [0u8, 1, 3, 0x7f, 0xff] {
                    let mut c = s.clone();
                    c[i] = v;
                    let _ = parse_link_events(&c);
                    if let Ok(msgs) = split_messages(&c) {
                        for m in msgs {
                            let _ = parse_address(m.payload);
                        }
                    }
                }
            }
        }
        assert!(split_messages(&[1, 0, 0]).is_err());
        assert!(parse_address(&[2, 24, 0]).is_err());
        assert!(parse_link(&[0; 15]).is_err());
        // A header claiming more bytes than the datagram has.
        let mut s = samples[0].clone();
        s[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_link_events(&s).is_err());
    }
}

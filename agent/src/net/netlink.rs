//! `NETLINK_ROUTE` over `netlink-sys` sockets and `netlink-packet-route` messages: addresses
//! (`RTM_NEWADDR`/`RTM_DELADDR`/`RTM_GETADDR`), links (`RTM_GETLINK`) and the `RTMGRP_LINK`
//! event subscription (in `monitor`: [`LinkMonitor`], [`LinkEvent`]).
//!
//! Replies are decoded attribute by attribute: an attribute the crate cannot decode (a newer
//! kernel's, or one it decodes strictly) is skipped, as a hand parser skips attributes it does
//! not know, so it never loses a whole link or address. A broken message or attribute layout is
//! [`NetError::Malformed`]; nothing here panics on input.

mod monitor;

use std::{
    cell::Cell,
    net::IpAddr,
    os::fd::{AsFd, BorrowedFd},
    time::{Duration, Instant},
};

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlaBuffer, NlasIterator, Parseable, ParseableParametrized, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags, AddressHeader, AddressHeaderFlags, AddressMessage},
    link::{LinkAttribute, LinkHeader, LinkMessage},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

pub use self::monitor::{parse_link_events, LinkEvent, LinkMonitor};
use super::{sys, NetError, Result};

// The message types received (netlink-packet-route keeps its numbers private; a test checks
// these against it) and the link group (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTMGRP_LINK: u32 = 1;
const RECV_BUF: usize = 64 * 1024;

/// `IFA_F_SECONDARY`: a secondary IPv4 address (same subnet as a primary).
pub const IFA_F_SECONDARY: u32 = AddressFlags::Secondary.bits();
/// `IFA_F_NODAD`: IPv6 duplicate address detection skipped.
pub const IFA_F_NODAD: u32 = AddressFlags::Nodad.bits();
/// `IFA_F_DADFAILED`: IPv6 duplicate address detection failed.
pub const IFA_F_DADFAILED: u32 = AddressFlags::Dadfailed.bits();
/// `IFA_F_TENTATIVE`: IPv6 address still in duplicate address detection.
pub const IFA_F_TENTATIVE: u32 = AddressFlags::Tentative.bits();

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

/// A `NETLINK_ROUTE` request socket (blocking, 5 s receive timeout). Cheap to open; the daemon
/// may keep one per task. Bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct Rtnl {
    sock: Socket,
    seq: Cell<u32>,
    timeout: Duration,
}

impl Rtnl {
    /// Opens a request socket (5 s send and receive timeout).
    pub fn open() -> Result<Self> {
        Self::open_with_timeout(Duration::from_secs(5))
    }

    /// Opens a request socket whose requests give up after `timeout` (`ETIMEDOUT`): the send
    /// (`SO_SNDTIMEO`), each receive (`SO_RCVTIMEO`) and the whole exchange are bounded by it.
    /// (A send waits for the kernel to process the request; a wait for the RTNL lock inside the
    /// kernel is not interruptible by a socket timeout.) After a timeout, drop the socket: a
    /// late reply would be read by the next request (it skips replies of other sequence
    /// numbers, but a new socket is cleaner).
    pub fn open_with_timeout(timeout: Duration) -> Result<Self> {
        let sock = open_socket("NETLINK_ROUTE")?;
        let tv = libc::timeval {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        for (opt, name) in [
            (libc::SO_RCVTIMEO, "setsockopt(SO_RCVTIMEO)"),
            (libc::SO_SNDTIMEO, "setsockopt(SO_SNDTIMEO)"),
        ] {
            sys::setsockopt(&sock, libc::SOL_SOCKET, opt, &tv, name, "NETLINK_ROUTE")?;
        }
        let sock = bind(sock, 0, "NETLINK_ROUTE")?;
        Ok(Self {
            sock,
            seq: Cell::new(1),
            timeout,
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
        let mut m = addr_msg(ifindex, addr, prefix_len);
        if let Some(l) = label {
            m.attributes.push(AddressAttribute::Label(l.to_owned()));
        }
        if addr.is_ipv6() {
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
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
        let m = addr_msg(ifindex, addr, prefix_len);
        match self.request(
            RouteNetlinkMessage::DelAddress(m),
            0,
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
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            "RTM_GETADDR",
            &format!("ifindex {ifindex}"),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Address(a) if a.ifindex == ifindex => Some(a),
                _ => None,
            })
            .collect())
    }

    /// The link with index `ifindex` (`RTM_GETLINK`).
    pub fn link(&self, ifindex: u32) -> Result<LinkInfo> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        let target = format!("ifindex {ifindex}");
        let replies = match self.request(RouteNetlinkMessage::GetLink(m), 0, "RTM_GETLINK", &target)
        {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                return Err(NetError::NoSuchInterface {
                    name: format!("#{ifindex}"),
                    syscall: "RTM_GETLINK",
                })
            }
            r => r?,
        };
        match replies.into_iter().next() {
            Some(Reply::Link(l)) => Ok(l),
            _ => Err(NetError::malformed("RTM_GETLINK reply", "no link message")),
        }
    }

    /// Every link in the namespace (`RTM_GETLINK` dump); use it to resynchronise after a
    /// [`NetError::Overrun`].
    pub fn links(&self) -> Result<Vec<LinkInfo>> {
        self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "RTM_GETLINK",
            "all links",
        )?
        .into_iter()
        .map(|r| match r {
            Reply::Link(l) => Ok(l),
            _ => Err(NetError::malformed(
                "RTM_GETLINK reply",
                "not a link message",
            )),
        })
        .collect()
    }

    fn next_seq(&self) -> u32 {
        let s = self.seq.get();
        self.seq.set(s.wrapping_add(1).max(1));
        s
    }

    /// Sends `msg` with `flags | NLM_F_REQUEST | NLM_F_ACK` and collects the data replies (for
    /// dumps, up to `NLMSG_DONE`; otherwise up to the ack). A negative ack becomes
    /// `Sys { syscall: op }`; a dump the kernel flagged as interrupted is `EINTR`.
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        target: &str,
    ) -> Result<Vec<Reply>> {
        let seq = self.next_seq();
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut bytes = vec![0u8; m.buffer_len()];
        m.serialize(&mut bytes);
        let sys_err = |source| NetError::Sys {
            syscall: op,
            target: target.to_owned(),
            source,
        };
        self.sock
            .send_to(&bytes, &SocketAddr::new(0, 0), 0)
            .map_err(sys_err)?;

        let mut buf = vec![0u8; RECV_BUF];
        let mut out = Vec::new();
        let mut interrupted = false;
        let started = Instant::now();
        loop {
            if started.elapsed() > self.timeout {
                return Err(sys_err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT)));
            }
            let n = recv_kernel(&self.sock, &mut buf, 0)
                .map_err(|e| match e.kind() {
                    // SO_RCVTIMEO expired.
                    std::io::ErrorKind::WouldBlock => {
                        std::io::Error::from_raw_os_error(libc::ETIMEDOUT)
                    }
                    _ => e,
                })
                .map_err(sys_err)?;
            for msg in split_messages(buf.get(..n).unwrap_or_default())? {
                if msg.header.sequence_number != seq {
                    continue; // a stale reply to an earlier, timed-out request
                }
                interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                match msg.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        None if dump => {}
                        None => return Ok(out),
                        Some(_) => return Err(sys_err(e.to_io())),
                    },
                    NetlinkPayload::Done(d) => {
                        if d.code < 0 {
                            return Err(sys_err(std::io::Error::from_raw_os_error(-d.code)));
                        }
                        if interrupted {
                            // The table changed mid-dump: the caller retries.
                            return Err(sys_err(std::io::Error::from_raw_os_error(libc::EINTR)));
                        }
                        return Ok(out);
                    }
                    NetlinkPayload::InnerMessage(r) => out.push(r),
                    _ => {} // NLMSG_NOOP, NLMSG_OVERRUN
                }
            }
        }
    }
}

impl AsFd for Rtnl {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
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

// ---- messages ----

/// A data message received: a link (`RTM_NEWLINK`/`RTM_DELLINK`), an IPv4 or IPv6 address
/// (`RTM_NEWADDR`), or anything else (skipped).
#[derive(Debug)]
enum Reply {
    Link(LinkInfo),
    Address(AddressInfo),
    Other,
}

impl NetlinkDeserializable for Reply {
    type Error = NetError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self> {
        Ok(match header.message_type {
            RTM_NEWLINK | RTM_DELLINK => Self::Link(parse_link(payload)?),
            RTM_NEWADDR => parse_address(payload)?.map_or(Self::Other, Self::Address),
            _ => Self::Other,
        })
    }
}

/// An address request: `ifaddrmsg` (scope universe; `IFA_F_NODAD` for IPv6) with `IFA_LOCAL`
/// and `IFA_ADDRESS` for IPv4, `IFA_ADDRESS` for IPv6.
fn addr_msg(ifindex: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header = AddressHeader {
        family: if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        },
        prefix_len,
        flags: if addr.is_ipv4() {
            AddressHeaderFlags::empty()
        } else {
            AddressHeaderFlags::Nodad
        },
        scope: Default::default(),
        index: ifindex,
    };
    if addr.is_ipv4() {
        m.attributes.push(AddressAttribute::Local(addr));
    }
    m.attributes.push(AddressAttribute::Address(addr));
    m
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

fn decode_err(what: &'static str) -> impl Fn(DecodeError) -> NetError {
    move |e| NetError::malformed(what, e.to_string())
}

/// Splits a datagram into netlink messages, checking every length.
fn split_messages(mut buf: &[u8]) -> Result<Vec<NetlinkMessage<Reply>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let nl = NetlinkBuffer::new_checked(&buf).map_err(decode_err("netlink message"))?;
        let len = nl.length() as usize;
        out.push(NetlinkMessage::parse(&nl).map_err(decode_err("netlink message"))?);
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
    }
    Ok(out)
}

/// The attributes of `buf` that `parse` decodes; those it cannot decode are skipped, a broken
/// attribute layout is an error.
fn attributes<'b, A>(
    buf: &'b [u8],
    what: &'static str,
    parse: impl Fn(&NlaBuffer<&'b [u8]>) -> Result<A, DecodeError>,
) -> Result<Vec<A>> {
    let mut out = Vec::new();
    for nla in NlasIterator::new(buf) {
        if let Ok(a) = parse(&nla.map_err(decode_err(what))?) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Parses an `RTM_NEWADDR` payload; `Ok(None)` for families other than IPv4/IPv6.
pub(crate) fn parse_address(p: &[u8]) -> Result<Option<AddressInfo>> {
    let header = AddressHeader::parse(p).map_err(decode_err("ifaddrmsg"))?;
    if !matches!(header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return Ok(None);
    }
    let (mut local, mut address, mut label) = (None, None, None);
    let mut flags = u32::from(header.flags.bits());
    let rest = p.get(header.buffer_len()..).unwrap_or_default();
    for a in attributes(rest, "netlink attribute", |nla| {
        AddressAttribute::parse(nla)
    })? {
        match a {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Label(l) => label = Some(l),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    let addr = local
        .or(address)
        .ok_or_else(|| NetError::malformed("ifaddrmsg", "no IFA_LOCAL or IFA_ADDRESS"))?;
    Ok(Some(AddressInfo {
        ifindex: header.index,
        addr,
        prefix_len: header.prefix_len,
        label,
        flags,
        scope: header.scope.into(),
    }))
}

/// Parses an `RTM_NEWLINK` / `RTM_DELLINK` payload.
pub(crate) fn parse_link(p: &[u8]) -> Result<LinkInfo> {
    let header = LinkHeader::parse(p).map_err(decode_err("ifinfomsg"))?;
    let family = header.interface_family;
    let mut info = LinkInfo {
        ifindex: header.index,
        name: String::new(),
        link_type: header.link_layer_type.into(),
        flags: header.flags.bits(),
        hw_addr: Vec::new(),
        mtu: None,
        operstate: None,
    };
    let rest = p.get(header.buffer_len()..).unwrap_or_default();
    for a in attributes(rest, "netlink attribute", |nla| {
        LinkAttribute::parse_with_param(nla, family)
    })? {
        match a {
            LinkAttribute::IfName(n) => info.name = n,
            LinkAttribute::Address(a) => info.hw_addr = a,
            LinkAttribute::Mtu(m) => info.mtu = Some(m),
            LinkAttribute::OperState(s) => info.operstate = Some(s.into()),
            _ => {}
        }
    }
    Ok(info)
}

// ---- sockets ----

fn open_socket(target: &str) -> Result<Socket> {
    Socket::new(NETLINK_ROUTE).map_err(|source| NetError::Sys {
        syscall: "socket(AF_NETLINK)",
        target: target.to_owned(),
        source,
    })
}

fn bind(mut sock: Socket, groups: u32, target: &str) -> Result<Socket> {
    sock.bind(&SocketAddr::new(0, groups))
        .map_err(|source| NetError::Sys {
            syscall: "bind(AF_NETLINK)",
            target: target.to_owned(),
            source,
        })?;
    Ok(sock)
}

/// Receives one datagram sent by the kernel (port id 0), retrying on `EINTR` and dropping
/// datagrams from other ports. Returns its length (at most `buf.len()`).
fn recv_kernel(sock: &Socket, buf: &mut [u8], flags: i32) -> std::io::Result<usize> {
    loop {
        match sock.recv_from(&mut &mut buf[..], flags) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok((n, from)) if from.port_number() == 0 => return Ok(n.min(buf.len())),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;

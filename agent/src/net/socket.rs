//! The VRRP advertisement socket: raw IP protocol 112, IPv4 or IPv6, multicast or unicast.

use std::{
    io::{self, IoSlice, IoSliceMut},
    mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd},
};

use nix::sys::socket::{
    recv, recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockFilter, Socket, Type};

use super::{netlink, sys, Family, NetError, Result, IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6};

/// TTL / hop limit VRRP packets are sent with (RFC 5798 5.1.1.3, 5.1.2.3); a unicast advert
/// may be given another one per packet (keepalived's `unicast_ttl`, see [`VrrpSocket::send_from`]).
const VRRP_TTL: i32 = 255;
/// IPv4 TOS / IPv6 traffic class: precedence 6, "internetwork control", as keepalived sends.
const VRRP_TOS: i32 = 0xc0;
/// Largest datagram accepted: a 60-byte IPv4 header plus a VRRPv3 IPv6 advert with 255
/// addresses (8 + 255 * 16) fits with room to spare.
const RECV_BUF: usize = 8192;

/// How a [`VrrpSocket`] addresses its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Adverts go to the group (224.0.0.18 / ff02::12); the source is the interface's primary
    /// IPv4 address or its IPv6 link-local address, looked up once at open.
    Multicast,
    /// Adverts go to configured peers from `source` (keepalived's `unicast_src_ip`). The socket
    /// is bound to `source` and only delivers packets addressed to it (the group is still
    /// joined, for the NIC filter).
    Unicast {
        /// The local source address; must be configured on the interface.
        source: IpAddr,
    },
}

/// A received advertisement: the VRRP payload (IPv4 header already stripped) and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The VRRP message bytes (not validated: that is the codec's job).
    pub payload: Vec<u8>,
    /// Source address of the packet.
    pub src: IpAddr,
    /// Destination address of the packet (the group, or our unicast address).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit as received (VRRP requires 255).
    pub ttl: u8,
    /// Interface the packet arrived on.
    pub ifindex: u32,
}

/// What one [`VrrpSocket::recv`] consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// A packet for this socket.
    Packet(Received),
    /// A packet for another destination (an IPv6 group packet on a bound unicast socket),
    /// discarded.
    OtherDestination {
        /// Its destination.
        dst: IpAddr,
    },
}

impl Recv {
    /// The packet, if it is one for this socket.
    pub fn packet(self) -> Option<Received> {
        match self {
            Recv::Packet(r) => Some(r),
            Recv::OtherDestination { .. } => None,
        }
    }
}

/// The fields of an IPv4 header the receive path reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Header length in bytes (IHL * 4).
    pub header_len: usize,
    /// Total length from the header, bounded by what was received.
    pub total_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// The payload of `packet` that this header describes.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.header_len..self.total_len)
            .unwrap_or_default()
    }
}

/// Parses the IPv4 header at the start of `packet` (as a raw socket delivers it): version 4,
/// IHL at least 5 and within the buffer, total length at least the header and not beyond the
/// buffer. Never panics.
pub fn parse_ipv4_header(packet: &[u8]) -> Result<Ipv4Header> {
    let bad = |r: &str| Err(NetError::malformed("IPv4 header", r));
    let Some(h) = packet.get(..20) else {
        return bad("shorter than 20 bytes");
    };
    if h[0] >> 4 != 4 {
        return bad("version is not 4");
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if header_len < 20 {
        return bad("IHL below 5");
    }
    if header_len > packet.len() {
        return bad("IHL beyond the packet");
    }
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total_len < header_len {
        return bad("total length below header length");
    }
    if total_len > packet.len() {
        return bad("total length beyond the packet (truncated)");
    }
    Ok(Ipv4Header {
        header_len,
        total_len,
        ttl: h[8],
        protocol: h[9],
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
    })
}

/// A raw VRRP (IP protocol 112) socket bound to one interface. Non-blocking: register it with
/// an event loop via [`AsRawFd`]/[`AsFd`] (e.g. tokio's `AsyncFd`).
///
/// Options: `SO_BINDTODEVICE`; the kernel builds the IP header (no `IP_HDRINCL`) with TTL /
/// hop limit 255 for unicast and multicast (unless a send asks for another), TOS / traffic
/// class 0xc0, multicast on the interface with loopback off, `IP_MULTICAST_ALL` off (only
/// groups this socket joined); the VRRP group is joined on the interface in every mode so a
/// NIC's multicast filter passes adverts (the XDP path relies on it). Each send carries `IP_PKTINFO`/`IPV6_PKTINFO` with
/// [`VrrpSocket::source_addr`], so the source the caller used for a VRRPv3 checksum is the one
/// on the wire. The kernel neither computes nor verifies the VRRP checksum (`IPV6_CHECKSUM` is
/// left off).
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    family: Family,
    mode: Mode,
    ifname: String,
    ifindex: u32,
    source: IpAddr,
    receiving: bool,
}

impl VrrpSocket {
    /// Opens a socket on `ifname` (in the calling thread's namespace) that sends and receives.
    pub fn open(ifname: &str, family: Family, mode: Mode) -> Result<Self> {
        Self::open_inner(ifname, family, mode, true)
    }

    /// Opens a send-only socket: a classic BPF filter that drops everything is attached before
    /// any other setup, so nothing is ever queued for it (the XDP path receives instead). The
    /// group is still joined.
    pub fn open_send_only(ifname: &str, family: Family, mode: Mode) -> Result<Self> {
        Self::open_inner(ifname, family, mode, false)
    }

    fn open_inner(ifname: &str, family: Family, mode: Mode, receiving: bool) -> Result<Self> {
        let ifindex = sys::if_nametoindex(ifname)?;
        if let Mode::Unicast { source } = mode {
            if Family::of(source) != family {
                return Err(NetError::invalid(
                    ifname,
                    format!("unicast source {source} is not {family}"),
                ));
            }
        }
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        // socket2 adds SOCK_CLOEXEC.
        let sock = Socket::new(
            domain,
            Type::RAW.nonblocking(),
            Some(Protocol::from(IPPROTO_VRRP)),
        )
        .map_err(os("socket(SOCK_RAW, 112)", ifname))?;
        if !receiving {
            // `ret #0`: a one-instruction classic BPF program that drops every packet.
            sock.attach_filter(&[SockFilter::new(
                (libc::BPF_RET | libc::BPF_K) as u16,
                0,
                0,
                0,
            )])
            .map_err(os("setsockopt(SO_ATTACH_FILTER)", ifname))?;
        }
        sock.bind_device(Some(ifname.as_bytes()))
            .map_err(os("setsockopt(SO_BINDTODEVICE)", ifname))?;
        match family {
            Family::V4 => setup_v4(&sock, ifname, ifindex)?,
            Family::V6 => setup_v6(&sock, ifname, ifindex)?,
        }
        let source = match mode {
            Mode::Unicast { source } => {
                sock.bind(&sys::socket_addr(source, ifindex).into())
                    .map_err(os("bind", format!("{source} on {ifname}")))?;
                source
            }
            Mode::Multicast => multicast_source(ifname, ifindex, family)?,
        };
        let fd = OwnedFd::from(sock);
        if !receiving {
            drain(&fd);
        }
        Ok(Self {
            fd,
            family,
            mode,
            ifname: ifname.to_owned(),
            ifindex,
            source,
            receiving,
        })
    }

    /// The source address adverts carry: the unicast source, or (multicast) the interface's
    /// primary IPv4 / link-local IPv6 address at open time. Use it for the VRRPv3 pseudo-header.
    pub fn source_addr(&self) -> IpAddr {
        self.source
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The addressing mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether this socket receives (false for [`VrrpSocket::open_send_only`]).
    pub fn is_receiving(&self) -> bool {
        self.receiving
    }

    /// The group of this socket's family (224.0.0.18 or ff02::12).
    pub fn group(&self) -> IpAddr {
        self.family.group()
    }

    /// Sends one VRRP message to `dst` (the group or a unicast peer) without blocking. A full
    /// socket buffer is an error with [`NetError::is_would_block`]; the caller counts it.
    pub fn send_to(&self, payload: &[u8], dst: IpAddr) -> Result<usize> {
        self.send_from(payload, self.source, dst, VRRP_TTL as u8)
    }

    /// Like [`VrrpSocket::send_to`], from an explicit local source address (keepalived's
    /// `mcast_src_ip`, which must be configured on the interface): the address the caller put in
    /// the VRRPv3 checksum pseudo-header and uses for the tie-break is the one on the wire. The
    /// packet leaves with TTL / Hop Limit `ttl` (keepalived's `unicast_ttl`; 255 otherwise),
    /// set per packet since instances with different settings share a socket.
    pub fn send_from(&self, payload: &[u8], source: IpAddr, dst: IpAddr, ttl: u8) -> Result<usize> {
        if ttl == 0 {
            return Err(NetError::invalid(
                format!("{dst} on {}", self.ifname),
                "TTL / hop limit 0 (1..=255)",
            ));
        }
        if Family::of(source) != self.family {
            return Err(NetError::invalid(
                format!("{source} on {}", self.ifname),
                format!("source is not {}", self.family),
            ));
        }
        if Family::of(dst) != self.family {
            return Err(NetError::invalid(
                format!("{dst} on {}", self.ifname),
                format!("destination is not {}", self.family),
            ));
        }
        let name = SockaddrStorage::from(sys::socket_addr(dst, self.ifindex));
        let ttl = i32::from(ttl);
        let info4;
        let info6;
        let mut cmsgs = Vec::with_capacity(2);
        match source {
            IpAddr::V4(src) => {
                info4 = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex as i32,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                cmsgs.push(ControlMessage::Ipv4PacketInfo(&info4));
                if ttl != VRRP_TTL {
                    cmsgs.push(ControlMessage::Ipv4Ttl(&ttl));
                }
            }
            IpAddr::V6(src) => {
                info6 = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                cmsgs.push(ControlMessage::Ipv6PacketInfo(&info6));
                if ttl != VRRP_TTL {
                    cmsgs.push(ControlMessage::Ipv6HopLimit(&ttl));
                }
            }
        }
        let n = sendmsg(
            self.fd.as_raw_fd(),
            &[IoSlice::new(payload)],
            &cmsgs,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            Some(&name),
        )
        .map_err(os(
            "sendmsg",
            format!("{} -> {dst} on {}", self.source, self.ifname),
        ))?;
        Ok(n)
    }

    /// Receives one packet without blocking: exactly one datagram is consumed per call, so a
    /// caller's batch bounds the work per wake-up whatever arrives. Nothing queued is an error
    /// with [`NetError::is_would_block`]; a truncated or malformed packet is
    /// [`NetError::BadPacket`] (it has been consumed: count it and read on).
    ///
    /// In unicast mode only packets addressed to the source address are returned as
    /// [`Recv::Packet`]: the kernel already filters bound IPv4 raw sockets so, but delivers IPv6
    /// group packets to a bound socket that joined the group; those are consumed and returned
    /// as [`Recv::OtherDestination`] (count them and read on).
    pub fn recv(&self) -> Result<Recv> {
        let r = self.recv_any()?;
        Ok(match self.mode {
            Mode::Unicast { source } if r.dst != source => Recv::OtherDestination { dst: r.dst },
            _ => Recv::Packet(r),
        })
    }

    fn recv_any(&self) -> Result<Received> {
        let mut buf = [0u8; RECV_BUF];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cbuf = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
        let msg = recvmsg::<SockaddrStorage>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut cbuf),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(os("recvmsg", &self.ifname))?;
        let bad = |reason: String| NetError::BadPacket {
            ifname: self.ifname.clone(),
            syscall: "recvmsg",
            reason,
        };
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(bad(format!("datagram larger than {RECV_BUF} bytes")));
        }
        let ctl = Ctl::from_cmsgs(msg.cmsgs().into_iter().flatten());
        let src = msg.address.as_ref().and_then(|a| {
            a.as_sockaddr_in6()
                .map(|a| IpAddr::V6(a.ip()))
                .or_else(|| a.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())))
        });
        let n = msg.bytes;
        let data = buf.get(..n).unwrap_or_default();
        match self.family {
            Family::V4 => {
                let h = parse_ipv4_header(data).map_err(|e| bad(e.to_string()))?;
                Ok(Received {
                    payload: h.payload(data).to_vec(),
                    src: IpAddr::V4(h.src),
                    dst: IpAddr::V4(h.dst),
                    ttl: h.ttl,
                    ifindex: ctl.ifindex.unwrap_or(self.ifindex),
                })
            }
            Family::V6 => {
                let src = src.ok_or_else(|| bad("no IPv6 source address".into()))?;
                let dst = ctl
                    .dst
                    .ok_or_else(|| bad("no IPV6_PKTINFO control message".into()))?;
                let ttl = ctl
                    .ttl
                    .ok_or_else(|| bad("no IPV6_HOPLIMIT control message".into()))?;
                Ok(Received {
                    payload: data.to_vec(),
                    src,
                    dst,
                    ttl,
                    ifindex: ctl.ifindex.unwrap_or(self.ifindex),
                })
            }
        }
    }
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for VrrpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Wraps an OS error from `syscall` on `target` as [`NetError::Sys`].
fn os<E: Into<io::Error>>(
    syscall: &'static str,
    target: impl std::fmt::Display,
) -> impl FnOnce(E) -> NetError {
    move |e| NetError::Sys {
        syscall,
        target: target.to_string(),
        source: e.into(),
    }
}

fn setup_v4(sock: &Socket, ifname: &str, ifindex: u32) -> Result<()> {
    let ttl = VRRP_TTL as u32;
    sock.set_ttl_v4(ttl)
        .map_err(os("setsockopt(IP_TTL)", ifname))?;
    sock.set_multicast_ttl_v4(ttl)
        .map_err(os("setsockopt(IP_MULTICAST_TTL)", ifname))?;
    sock.set_tos_v4(VRRP_TOS as u32)
        .map_err(os("setsockopt(IP_TOS)", ifname))?;
    sock.set_multicast_loop_v4(false)
        .map_err(os("setsockopt(IP_MULTICAST_LOOP)", ifname))?;
    sock.set_multicast_all_v4(false)
        .map_err(os("setsockopt(IP_MULTICAST_ALL)", ifname))?;
    setsockopt(sock, sockopt::Ipv4PacketInfo, &true)
        .map_err(os("setsockopt(IP_PKTINFO)", ifname))?;
    setsockopt(sock, sockopt::Ipv4RecvTtl, &true).map_err(os("setsockopt(IP_RECVTTL)", ifname))?;
    // By interface index (`ip_mreqn`): neither socket2 (by address) nor nix has this form.
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as i32,
    };
    sys::setsockopt(
        sock,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &mreq,
        "setsockopt(IP_MULTICAST_IF)",
        ifname,
    )?;
    sock.join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))
        .map_err(os("setsockopt(IP_ADD_MEMBERSHIP 224.0.0.18)", ifname))
}

fn setup_v6(sock: &Socket, ifname: &str, ifindex: u32) -> Result<()> {
    let hops = VRRP_TTL as u32;
    sock.set_unicast_hops_v6(hops)
        .map_err(os("setsockopt(IPV6_UNICAST_HOPS)", ifname))?;
    sock.set_multicast_hops_v6(hops)
        .map_err(os("setsockopt(IPV6_MULTICAST_HOPS)", ifname))?;
    sock.set_tclass_v6(VRRP_TOS as u32)
        .map_err(os("setsockopt(IPV6_TCLASS)", ifname))?;
    sock.set_multicast_loop_v6(false)
        .map_err(os("setsockopt(IPV6_MULTICAST_LOOP)", ifname))?;
    sock.set_multicast_all_v6(false)
        .map_err(os("setsockopt(IPV6_MULTICAST_ALL)", ifname))?;
    sock.set_multicast_if_v6(ifindex)
        .map_err(os("setsockopt(IPV6_MULTICAST_IF)", ifname))?;
    setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true)
        .map_err(os("setsockopt(IPV6_RECVPKTINFO)", ifname))?;
    sock.set_recv_hoplimit_v6(true)
        .map_err(os("setsockopt(IPV6_RECVHOPLIMIT)", ifname))?;
    sock.join_multicast_v6(&VRRP_GROUP_V6, ifindex)
        .map_err(os("setsockopt(IPV6_JOIN_GROUP ff02::12)", ifname))
}

/// The source the kernel would pick for the group: the first primary IPv4 address, or the
/// first link-local IPv6 address that has finished DAD.
fn multicast_source(ifname: &str, ifindex: u32, family: Family) -> Result<IpAddr> {
    netlink::list_addresses(ifindex)?
        .into_iter()
        .find(|a| match (family, a.addr) {
            (Family::V4, IpAddr::V4(_)) => !a.is_secondary(),
            (Family::V6, IpAddr::V6(v6)) => is_link_local(&v6) && !a.is_tentative(),
            _ => false,
        })
        .map(|a| a.addr)
        .ok_or_else(|| NetError::NoSourceAddress {
            ifname: ifname.to_owned(),
            family,
        })
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// Discards anything queued (between `socket()` and the filter taking effect).
fn drain(fd: &OwnedFd) {
    let mut b = [0u8; 64];
    while recv(
        fd.as_raw_fd(),
        &mut b,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
    )
    .is_ok()
    {}
}

/// An 8-byte aligned control-message buffer (for the NA sender in `announce.rs`).
pub(super) struct CmsgBuf([u64; 16], usize);

impl CmsgBuf {
    const LEN: usize = 128;

    pub(super) fn new() -> Self {
        Self([0; 16], 0)
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.0.as_mut_ptr().cast()
    }

    /// Appends one control message carrying `value`; returns the control length to use (that of
    /// every message appended so far).
    pub(super) fn put<T: Copy>(&mut self, level: i32, ty: i32, value: &T) -> usize {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(mem::size_of::<T>() as u32) as usize,
                libc::CMSG_LEN(mem::size_of::<T>() as u32) as usize,
            )
        };
        assert!(
            self.1 + space <= Self::LEN,
            "control messages overflow their buffer"
        );
        let hdr = libc::cmsghdr {
            cmsg_len: len as _,
            cmsg_level: level,
            cmsg_type: ty,
        };
        // SAFETY: the buffer is 128 bytes and 8-byte aligned, and every message starts at a
        // multiple of CMSG_SPACE (8-aligned); the assert keeps this one inside; CMSG_LEN(0) is
        // the aligned header size.
        unsafe {
            let base: *mut u8 = self.0.as_mut_ptr().cast::<u8>().add(self.1);
            std::ptr::write(base.cast::<libc::cmsghdr>(), hdr);
            let data = base.add(libc::CMSG_LEN(0) as usize);
            std::ptr::write_unaligned(data.cast::<T>(), *value);
        }
        self.1 += space;
        self.1
    }
}

#[derive(Debug, Default)]
struct Ctl {
    ifindex: Option<u32>,
    dst: Option<IpAddr>,
    ttl: Option<u8>,
}

impl Ctl {
    /// Reads `IP_PKTINFO`/`IP_TTL`/`IPV6_PKTINFO`/`IPV6_HOPLIMIT` from a received message.
    fn from_cmsgs(cmsgs: impl Iterator<Item = ControlMessageOwned>) -> Self {
        let mut ctl = Self::default();
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    ctl.ifindex = u32::try_from(info.ipi_ifindex).ok();
                    ctl.dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    ctl.ifindex = Some(info.ipi6_ifindex);
                    ctl.dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ctl.ttl = u8::try_from(t).ok();
                }
                _ => {}
            }
        }
        ctl
    }
}

#[cfg(test)]
mod tests;

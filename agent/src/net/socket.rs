//! The VRRP advertisement socket: raw IP protocol 112, IPv4 or IPv6, multicast or unicast.

use std::{
    mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd},
};

use super::{netlink, sys, Family, NetError, Result, IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6};

/// TTL / hop limit VRRP packets are sent with (RFC 5798 5.1.1.3, 5.1.2.3); a unicast advert
/// may be given another one per packet (keepalived's `unicast_ttl`, see [`VrrpSocket::send_from`]).
const VRRP_TTL: i32 = 255;
/// IPv4 TOS / IPv6 traffic class: precedence 6, "internetwork control", as keepalived sends.
const VRRP_TOS: i32 = 0xc0;
/// `IPV6_MULTICAST_ALL` (linux/in6.h, kernel 4.20+).
const IPV6_MULTICAST_ALL: i32 = 29;
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
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        };
        let fd = sys::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            IPPROTO_VRRP,
            "socket(SOCK_RAW, 112)",
            ifname,
        )?;
        if !receiving {
            attach_drop_all(&fd, ifname)?;
        }
        sys::bind_to_device(&fd, ifname)?;
        match family {
            Family::V4 => setup_v4(&fd, ifname, ifindex)?,
            Family::V6 => setup_v6(&fd, ifname, ifindex)?,
        }
        let source = match mode {
            Mode::Unicast { source } => {
                sys::bind(
                    &fd,
                    sys::socket_addr(source, ifindex),
                    &format!("{source} on {ifname}"),
                )?;
                source
            }
            Mode::Multicast => multicast_source(ifname, ifindex, family)?,
        };
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
        let (mut name, name_len) = sys::sockaddr(sys::socket_addr(dst, self.ifindex));
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr().cast_mut().cast(),
            iov_len: payload.len(),
        };
        let mut cbuf = CmsgBuf::new();
        let controllen = match source {
            IpAddr::V4(src) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex as i32,
                    ipi_spec_dst: sys::in_addr(src),
                    ipi_addr: sys::in_addr(Ipv4Addr::UNSPECIFIED),
                };
                let len = cbuf.put(libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
                if i32::from(ttl) == VRRP_TTL {
                    len
                } else {
                    cbuf.put(libc::IPPROTO_IP, libc::IP_TTL, &i32::from(ttl))
                }
            }
            IpAddr::V6(src) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: sys::in6_addr(src),
                    ipi6_ifindex: self.ifindex,
                };
                let len = cbuf.put(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
                if i32::from(ttl) == VRRP_TTL {
                    len
                } else {
                    cbuf.put(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, &i32::from(ttl))
                }
            }
        };
        // SAFETY: msghdr is plain old data; the fields we need are set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = name_len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr();
        msg.msg_controllen = controllen as _;
        // SAFETY: every pointer in `msg` refers to a live local of the stated length; the
        // kernel only reads the payload through the iovec.
        let n = unsafe {
            libc::sendmsg(
                self.fd.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(NetError::last_os(
                "sendmsg",
                format!("{} -> {dst} on {}", self.source, self.ifname),
            ));
        }
        Ok(n as usize)
    }

    /// Receives one packet without blocking. Nothing queued is an error with
    /// [`NetError::is_would_block`]; a truncated or malformed packet is [`NetError::BadPacket`]
    /// (it has been consumed: count it and read on).
    ///
    /// In unicast mode only packets addressed to the source address are returned: the kernel
    /// already filters bound IPv4 raw sockets so, but delivers IPv6 group packets to a bound
    /// socket that joined the group, so those are read and discarded here.
    pub fn recv(&self) -> Result<Received> {
        loop {
            let r = self.recv_any()?;
            match self.mode {
                Mode::Unicast { source } if r.dst != source => continue,
                _ => return Ok(r),
            }
        }
    }

    fn recv_any(&self) -> Result<Received> {
        let mut buf = [0u8; RECV_BUF];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: sockaddr_storage is plain old data.
        let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut cbuf = CmsgBuf::new();
        // SAFETY: msghdr is plain old data; the fields we need are set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = sys::socklen::<libc::sockaddr_storage>();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr();
        msg.msg_controllen = CmsgBuf::LEN as _;
        // SAFETY: every pointer in `msg` refers to a live, writable local of the stated length.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(NetError::last_os("recvmsg", &self.ifname));
        }
        let bad = |reason: String| NetError::BadPacket {
            ifname: self.ifname.clone(),
            syscall: "recvmsg",
            reason,
        };
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(bad(format!("datagram larger than {RECV_BUF} bytes")));
        }
        let data = buf.get(..n as usize).unwrap_or_default();
        let ctl = parse_cmsgs(&msg);
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
                let src = sys::from_sockaddr(&name, msg.msg_namelen)
                    .ok_or_else(|| bad("no IPv6 source address".into()))?;
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

fn setup_v4(fd: &OwnedFd, ifname: &str, ifindex: u32) -> Result<()> {
    use libc::IPPROTO_IP as IP;
    sys::setsockopt_int(fd, IP, libc::IP_TTL, VRRP_TTL, "setsockopt(IP_TTL)", ifname)?;
    sys::setsockopt_int(
        fd,
        IP,
        libc::IP_MULTICAST_TTL,
        VRRP_TTL,
        "setsockopt(IP_MULTICAST_TTL)",
        ifname,
    )?;
    sys::setsockopt_int(fd, IP, libc::IP_TOS, VRRP_TOS, "setsockopt(IP_TOS)", ifname)?;
    sys::setsockopt_int(
        fd,
        IP,
        libc::IP_MULTICAST_LOOP,
        0,
        "setsockopt(IP_MULTICAST_LOOP)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP,
        libc::IP_MULTICAST_ALL,
        0,
        "setsockopt(IP_MULTICAST_ALL)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP,
        libc::IP_PKTINFO,
        1,
        "setsockopt(IP_PKTINFO)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP,
        libc::IP_RECVTTL,
        1,
        "setsockopt(IP_RECVTTL)",
        ifname,
    )?;
    let mreq = libc::ip_mreqn {
        imr_multiaddr: sys::in_addr(Ipv4Addr::UNSPECIFIED),
        imr_address: sys::in_addr(Ipv4Addr::UNSPECIFIED),
        imr_ifindex: ifindex as i32,
    };
    sys::setsockopt(
        fd,
        IP,
        libc::IP_MULTICAST_IF,
        &mreq,
        "setsockopt(IP_MULTICAST_IF)",
        ifname,
    )?;
    let join = libc::ip_mreqn {
        imr_multiaddr: sys::in_addr(VRRP_GROUP_V4),
        ..mreq
    };
    sys::setsockopt(
        fd,
        IP,
        libc::IP_ADD_MEMBERSHIP,
        &join,
        "setsockopt(IP_ADD_MEMBERSHIP 224.0.0.18)",
        ifname,
    )
}

fn setup_v6(fd: &OwnedFd, ifname: &str, ifindex: u32) -> Result<()> {
    use libc::IPPROTO_IPV6 as IP6;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_UNICAST_HOPS,
        VRRP_TTL,
        "setsockopt(IPV6_UNICAST_HOPS)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_MULTICAST_HOPS,
        VRRP_TTL,
        "setsockopt(IPV6_MULTICAST_HOPS)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_TCLASS,
        VRRP_TOS,
        "setsockopt(IPV6_TCLASS)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_MULTICAST_LOOP,
        0,
        "setsockopt(IPV6_MULTICAST_LOOP)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        IPV6_MULTICAST_ALL,
        0,
        "setsockopt(IPV6_MULTICAST_ALL)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_MULTICAST_IF,
        ifindex as i32,
        "setsockopt(IPV6_MULTICAST_IF)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_RECVPKTINFO,
        1,
        "setsockopt(IPV6_RECVPKTINFO)",
        ifname,
    )?;
    sys::setsockopt_int(
        fd,
        IP6,
        libc::IPV6_RECVHOPLIMIT,
        1,
        "setsockopt(IPV6_RECVHOPLIMIT)",
        ifname,
    )?;
    let join = libc::ipv6_mreq {
        ipv6mr_multiaddr: sys::in6_addr(VRRP_GROUP_V6),
        ipv6mr_interface: ifindex,
    };
    sys::setsockopt(
        fd,
        IP6,
        libc::IPV6_ADD_MEMBERSHIP,
        &join,
        "setsockopt(IPV6_JOIN_GROUP ff02::12)",
        ifname,
    )
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

/// Attaches a one-instruction classic BPF program, `ret #0`, which drops every packet.
fn attach_drop_all(fd: &OwnedFd, ifname: &str) -> Result<()> {
    let mut insn = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: insn.as_mut_ptr(),
    };
    sys::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &prog,
        "setsockopt(SO_ATTACH_FILTER)",
        ifname,
    )
}

/// Discards anything queued (between `socket()` and the filter taking effect).
fn drain(fd: &OwnedFd) {
    let mut b = [0u8; 64];
    loop {
        // SAFETY: valid writable buffer of the stated length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                b.as_mut_ptr().cast(),
                b.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            break;
        }
    }
}

/// An 8-byte aligned control-message buffer.
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

/// Reads `IP_PKTINFO`/`IP_TTL`/`IPV6_PKTINFO`/`IPV6_HOPLIMIT` from a received message.
fn parse_cmsgs(msg: &libc::msghdr) -> Ctl {
    let mut ctl = Ctl::default();
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within msg_controllen
    // and return null at its end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: non-null cmsg pointers from CMSG_* point at a complete cmsghdr.
        let (level, ty, len) = unsafe { ((*c).cmsg_level, (*c).cmsg_type, (*c).cmsg_len as usize) };
        // SAFETY: pure arithmetic.
        let hdr_len = unsafe { libc::CMSG_LEN(0) } as usize;
        let data_len = len.saturating_sub(hdr_len);
        // SAFETY: CMSG_DATA points just past the header within the same control message.
        let data = unsafe { libc::CMSG_DATA(c) };
        match (level, ty) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
                if data_len >= mem::size_of::<libc::in_pktinfo>() =>
            {
                // SAFETY: the kernel wrote an in_pktinfo here (length checked).
                let info: libc::in_pktinfo = unsafe { std::ptr::read_unaligned(data.cast()) };
                ctl.ifindex = u32::try_from(info.ipi_ifindex).ok();
                ctl.dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            }
            (libc::IPPROTO_IP, libc::IP_TTL) if data_len >= mem::size_of::<i32>() => {
                // SAFETY: the kernel wrote an int here (length checked).
                let t: i32 = unsafe { std::ptr::read_unaligned(data.cast()) };
                ctl.ttl = u8::try_from(t).ok();
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                if data_len >= mem::size_of::<libc::in6_pktinfo>() =>
            {
                // SAFETY: the kernel wrote an in6_pktinfo here (length checked).
                let info: libc::in6_pktinfo = unsafe { std::ptr::read_unaligned(data.cast()) };
                ctl.ifindex = Some(info.ipi6_ifindex);
                ctl.dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) if data_len >= mem::size_of::<i32>() => {
                // SAFETY: the kernel wrote an int here (length checked).
                let t: i32 = unsafe { std::ptr::read_unaligned(data.cast()) };
                ctl.ttl = u8::try_from(t).ok();
            }
            _ => {}
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
    ctl
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn header(ihl: u8, total: u16, ttl: u8) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(total).max(20)];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = ttl;
        p[9] = 112;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[224, 0, 0, 18]);
        p
    }

    #[test]
    fn parses_and_strips_ipv4_header() {
        let mut p = header(5, 28, 255);
        p[20..28].copy_from_slice(&[0x21, 1, 100, 1, 0, 1, 0xaa, 0xbb]);
        let h = parse_ipv4_header(&p).unwrap();
        assert_eq!(
            (h.header_len, h.total_len, h.ttl, h.protocol),
            (20, 28, 255, 112)
        );
        assert_eq!(h.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(h.dst, VRRP_GROUP_V4);
        assert_eq!(h.payload(&p), &[0x21, 1, 100, 1, 0, 1, 0xaa, 0xbb]);

        // Options (IHL 6) are skipped; trailing padding beyond total length is ignored.
        let mut p = header(6, 32, 64);
        p.extend([0xee; 4]);
        let h = parse_ipv4_header(&p).unwrap();
        assert_eq!(h.header_len, 24);
        assert_eq!(h.payload(&p).len(), 8);
        assert_eq!(h.ttl, 64);
    }

    proptest::proptest! {
        #[test]
        fn ipv4_header_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Ok(h) = parse_ipv4_header(&bytes) {
                proptest::prop_assert!(h.header_len >= 20 && h.header_len <= h.total_len);
                proptest::prop_assert!(h.total_len <= bytes.len());
                let _ = h.payload(&bytes);
            }
        }
    }

    #[test]
    fn rejects_bad_ipv4_headers_without_panicking() {
        let good = header(5, 28, 255);
        for cut in 0..good.len() {
            assert!(parse_ipv4_header(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_ipv4_header(&header(4, 28, 255)).is_err()); // IHL < 5
        assert!(parse_ipv4_header(&header(15, 28, 255)).is_err()); // IHL beyond packet
        assert!(parse_ipv4_header(&header(5, 19, 255)).is_err()); // total < header
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert!(parse_ipv4_header(&v6).is_err());
        // Exhaustive first byte and length fields over a short buffer.
        for b0 in 0..=255u8 {
            for total in [0u16, 20, 27, 28, 29, 0xffff] {
                let mut p = good.clone();
                p[0] = b0;
                p[2..4].copy_from_slice(&total.to_be_bytes());
                if let Ok(h) = parse_ipv4_header(&p) {
                    let _ = h.payload(&p);
                    assert!(h.header_len <= h.total_len && h.total_len <= p.len());
                }
            }
        }
    }
}

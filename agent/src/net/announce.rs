//! Address announcements: gratuitous ARP (IPv4) and unsolicited neighbour advertisements
//! (IPv6). Each call sends one packet now; repeats and delays are the daemon's business.

use std::{
    collections::HashMap,
    mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use super::{netlink, socket::CmsgBuf, sys, NetError, Result};

const ETH_ALEN: usize = 6;
const ETH_BROADCAST: [u8; ETH_ALEN] = [0xff; ETH_ALEN];
/// Minimum Ethernet frame without FCS; shorter frames are padded as hardware would.
const ETH_MIN_FRAME: usize = 60;
const ARPOP_REQUEST: u16 = 1;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_NA_FLAG_ROUTER: u8 = 0x80;
const ND_NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
/// ff02::1, all nodes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Ethernet frame of a gratuitous ARP request for `ip` from `mac`, as keepalived sends it:
/// broadcast destination, sender and target IP both `ip`, target hardware address zero,
/// padded to the 60-byte Ethernet minimum.
pub fn build_garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_MIN_FRAME);
    f.extend_from_slice(&ETH_BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&(libc::ETH_P_ARP as u16).to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f.extend_from_slice(&(libc::ETH_P_IP as u16).to_be_bytes());
    f.push(ETH_ALEN as u8);
    f.push(4);
    f.extend_from_slice(&ARPOP_REQUEST.to_be_bytes());
    f.extend_from_slice(&mac); // sender hardware address
    f.extend_from_slice(&ip.octets()); // sender protocol address
    f.extend_from_slice(&[0; ETH_ALEN]); // target hardware address
    f.extend_from_slice(&ip.octets()); // target protocol address
    f.resize(ETH_MIN_FRAME, 0);
    f
}

/// The ICMPv6 part of an unsolicited neighbour advertisement for `target` (checksum left zero:
/// the kernel fills it in): Override set, Router as given, Solicited clear, and a target
/// link-layer address option carrying `mac`.
pub fn build_unsolicited_na(target: Ipv6Addr, mac: [u8; 6], router: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]);
    let flags = ND_NA_FLAG_OVERRIDE | if router { ND_NA_FLAG_ROUTER } else { 0 };
    m.extend_from_slice(&[flags, 0, 0, 0]);
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[ND_OPT_TARGET_LINKADDR, 1]);
    m.extend_from_slice(&mac);
    m
}

/// Looks up `ifname`'s index and Ethernet address.
fn ethernet_link(ifname: &str) -> Result<(u32, [u8; 6])> {
    let ifindex = sys::if_nametoindex(ifname)?;
    let link = netlink::link(ifindex)?;
    let mac: [u8; 6] = link.hw_addr.as_slice().try_into().map_err(|_| {
        NetError::invalid(
            ifname,
            format!(
                "not an Ethernet interface (link type {}, {}-byte address)",
                link.link_type,
                link.hw_addr.len()
            ),
        )
    })?;
    if link.link_type != libc::ARPHRD_ETHER {
        return Err(NetError::invalid(
            ifname,
            format!("link type {} is not Ethernet", link.link_type),
        ));
    }
    Ok((ifindex, mac))
}

/// How long a link's index, MAC and `forwarding` flag are trusted before they are read again
/// (a re-created interface or a changed MAC is picked up within this time, or at once when a
/// send fails).
const LINK_RECHECK: Duration = Duration::from_secs(1);

/// The sockets and link facts of one interface, kept between announcements.
#[derive(Debug)]
struct LinkCache {
    ifindex: u32,
    mac: [u8; 6],
    /// IPv6 `forwarding` sysctl (the NA's Router flag).
    router: bool,
    read_at: Instant,
    /// `AF_PACKET` socket (protocol 0: it never receives), for gratuitous ARP.
    packet: Option<OwnedFd>,
    /// Raw ICMPv6 socket bound to the interface, for unsolicited NAs.
    icmp6: Option<OwnedFd>,
}

/// Sends gratuitous ARP and unsolicited NA, keeping one socket per interface and kind open.
///
/// Opening and closing a socket per packet is what the first version did, and it is slow in a
/// way that matters: closing an `AF_PACKET` socket waits for an RCU grace period
/// (`synchronize_net` in `packet_release`), measured at ~15 ms here. Announcing 25 addresses 5
/// times each then took ~1.9 s; on the daemon's event loop that silenced every Master's adverts
/// for as long (issue "Many instances keep time"). Sockets here are opened once and closed only
/// when the interface goes away (a failed send drops the cache and retries once).
///
/// Not thread-safe by design: the daemon owns one on its address worker thread.
#[derive(Debug, Default)]
pub struct Announcer {
    links: HashMap<String, LinkCache>,
}

impl Announcer {
    /// An announcer with no sockets open yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the cached sockets and link facts of every interface.
    pub fn clear(&mut self) {
        self.links.clear();
    }

    fn link(&mut self, ifname: &str) -> Result<&mut LinkCache> {
        let fresh = self
            .links
            .get(ifname)
            .is_some_and(|l| l.read_at.elapsed() < LINK_RECHECK);
        if !fresh {
            let (ifindex, mac) = ethernet_link(ifname)?;
            let router =
                std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding"))
                    .map(|s| s.trim() != "0")
                    .unwrap_or(false);
            let entry = self.links.entry(ifname.to_owned());
            let l = entry.or_insert_with(|| LinkCache {
                ifindex,
                mac,
                router,
                read_at: Instant::now(),
                packet: None,
                icmp6: None,
            });
            if l.ifindex != ifindex {
                // Re-created under the same name: the ICMPv6 socket is bound to the old device.
                l.icmp6 = None;
            }
            l.ifindex = ifindex;
            l.mac = mac;
            l.router = router;
            l.read_at = Instant::now();
        }
        self.links
            .get_mut(ifname)
            .ok_or_else(|| NetError::invalid(ifname, "interface vanished from the cache"))
    }

    /// Sends one gratuitous ARP request for `ip` out of `ifname` from the interface's MAC.
    /// Neighbours that already have an entry for `ip` update it; switches learn the MAC's port.
    pub fn garp(&mut self, ifname: &str, ip: Ipv4Addr) -> Result<()> {
        self.retry_once(ifname, |a| a.garp_once(ifname, ip))
    }

    /// Runs `send`; if it fails, forgets the interface (it may have been re-created or
    /// changed) and runs it once more with fresh sockets and link facts.
    fn retry_once(
        &mut self,
        ifname: &str,
        mut send: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<()> {
        send(self).or_else(|_| {
            self.links.remove(ifname);
            send(self)
        })
    }

    fn garp_once(&mut self, ifname: &str, ip: Ipv4Addr) -> Result<()> {
        let target = format!("{ip} on {ifname}");
        let l = self.link(ifname)?;
        if l.packet.is_none() {
            l.packet = Some(sys::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                0,
                "socket(AF_PACKET)",
                &target,
            )?);
        }
        let frame = build_garp_frame(l.mac, ip);
        let Some(fd) = l.packet.as_ref() else {
            return Err(NetError::invalid(ifname, "no packet socket"));
        };
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
        sll.sll_ifindex = l.ifindex as i32;
        sll.sll_halen = ETH_ALEN as u8;
        sll.sll_addr[..ETH_ALEN].copy_from_slice(&ETH_BROADCAST);
        // SAFETY: frame and sockaddr_ll are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&sll as *const libc::sockaddr_ll).cast(),
                sys::socklen::<libc::sockaddr_ll>(),
            )
        };
        if n < 0 {
            return Err(NetError::last_os("sendto(AF_PACKET, ARP)", target));
        }
        Ok(())
    }

    /// Sends one unsolicited neighbour advertisement for `ip` out of `ifname` to ff02::1 with
    /// hop limit 255 (the kernel computes the checksum). The Router flag follows the
    /// interface's `forwarding` sysctl (as Linux and keepalived do: a router that clears it
    /// would be dropped from hosts' default router lists). The source is `ip` itself when it is
    /// configured on the interface, else the kernel's choice (the link-local address).
    pub fn na(&mut self, ifname: &str, ip: Ipv6Addr) -> Result<()> {
        self.retry_once(ifname, |a| a.na_once(ifname, ip))
    }

    fn na_once(&mut self, ifname: &str, ip: Ipv6Addr) -> Result<()> {
        let target = format!("{ip} on {ifname}");
        let l = self.link(ifname)?;
        if l.icmp6.is_none() {
            l.icmp6 = Some(open_icmp6(ifname, l.ifindex, &target)?);
        }
        let msg = build_unsolicited_na(ip, l.mac, l.router);
        let ifindex = l.ifindex;
        let Some(fd) = l.icmp6.as_ref() else {
            return Err(NetError::invalid(ifname, "no ICMPv6 socket"));
        };
        let send = |with_source: bool| -> std::io::Result<()> {
            let (mut name, name_len) =
                sys::sockaddr(sys::socket_addr(IpAddr::V6(ALL_NODES), ifindex));
            let mut iov = libc::iovec {
                iov_base: msg.as_ptr().cast_mut().cast(),
                iov_len: msg.len(),
            };
            let mut cbuf = CmsgBuf::new();
            // SAFETY: msghdr is plain old data; the fields we need are set below.
            let mut mh: libc::msghdr = unsafe { mem::zeroed() };
            mh.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
            mh.msg_namelen = name_len;
            mh.msg_iov = &mut iov;
            mh.msg_iovlen = 1;
            if with_source {
                let info = libc::in6_pktinfo {
                    ipi6_addr: sys::in6_addr(ip),
                    ipi6_ifindex: ifindex,
                };
                let len = cbuf.put(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
                mh.msg_control = cbuf.as_mut_ptr();
                mh.msg_controllen = len as _;
            }
            // SAFETY: every pointer in `mh` refers to a live local of the stated length.
            let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_DONTWAIT) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        match send(true) {
            // EINVAL: `ip` is not (yet) a usable local address; let the kernel pick the source.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => send(false),
            r => r,
        }
        .map_err(|source| NetError::Sys {
            syscall: "sendmsg(ICMPv6 NA)",
            target,
            source,
        })
    }
}

fn open_icmp6(ifname: &str, ifindex: u32, target: &str) -> Result<OwnedFd> {
    let fd = sys::socket(
        libc::AF_INET6,
        libc::SOCK_RAW,
        libc::IPPROTO_ICMPV6,
        "socket(AF_INET6, SOCK_RAW, ICMPV6)",
        target,
    )?;
    sys::bind_to_device(&fd, ifname)?;
    use libc::IPPROTO_IPV6 as IP6;
    sys::setsockopt_int(
        &fd,
        IP6,
        libc::IPV6_MULTICAST_HOPS,
        255,
        "setsockopt(IPV6_MULTICAST_HOPS)",
        target,
    )?;
    sys::setsockopt_int(
        &fd,
        IP6,
        libc::IPV6_MULTICAST_IF,
        ifindex as i32,
        "setsockopt(IPV6_MULTICAST_IF)",
        target,
    )?;
    sys::setsockopt_int(
        &fd,
        IP6,
        libc::IPV6_MULTICAST_LOOP,
        0,
        "setsockopt(IPV6_MULTICAST_LOOP)",
        target,
    )?;
    // Nothing is ever read from it: keep its receive queue from holding memory.
    sys::setsockopt_int(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        0,
        "setsockopt(SO_RCVBUF)",
        target,
    )?;
    Ok(fd)
}

/// Sends one gratuitous ARP request for `ip` out of `ifname` (a one-shot [`Announcer::garp`]:
/// it opens and closes its own socket, so it is slow; the daemon keeps an [`Announcer`]).
pub fn send_garp(ifname: &str, ip: Ipv4Addr) -> Result<()> {
    Announcer::new().garp_once(ifname, ip)
}

/// Sends one unsolicited neighbour advertisement (a one-shot [`Announcer::na`]).
pub fn send_unsolicited_na(ifname: &str, ip: Ipv6Addr) -> Result<()> {
    Announcer::new().na_once(ifname, ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_frame_layout() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = build_garp_frame(mac, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..22], &[0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[10, 0, 0, 100]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 0, 0, 100]);
    }

    #[test]
    fn na_layout() {
        let t: Ipv6Addr = "fd00::100".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let m = build_unsolicited_na(t, [2, 0, 0, 0, 0, 1], false);
        assert_eq!(m.len(), 32);
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(&m[8..24], &t.octets());
        assert_eq!(&m[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
        assert_eq!(build_unsolicited_na(t, [0; 6], true)[4], 0xa0);
    }
}

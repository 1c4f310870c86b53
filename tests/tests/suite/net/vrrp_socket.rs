//! `xvrrp::net::VrrpSocket` between two namespaces over a veth: multicast and unicast, IPv4
//! and IPv6. The receiver's metadata is checked against an independent `AF_PACKET` capture.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use xvrrp::net::{Family, Mode, NetError, Received, Recv, VrrpSocket};
use xvrrp_tests::{send_raw_ipv4, veth_pair, wait_until, Capture, Netns};

const T: Duration = Duration::from_secs(5);

/// A VRRPv2-shaped advert: VRID 51, priority 100, one address, no auth, 1 s, checksum 0.
fn v2_advert(vip: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x21, 51, 100, 1, 0, 1, 0, 0];
    p.extend(vip.octets());
    p.extend([0; 8]);
    p
}

/// A VRRPv3-shaped IPv6 advert (one address).
fn v3_advert(vip: Ipv6Addr) -> Vec<u8> {
    let mut p = vec![0x31, 51, 100, 1, 0, 100, 0, 0];
    p.extend(vip.octets());
    p
}

/// Waits for one packet on `s` (non-blocking reads, polled; packets for other destinations
/// are read past).
fn recv_one(s: &VrrpSocket) -> Received {
    let mut got = None;
    let ok = wait_until(T, || match s.recv() {
        Ok(Recv::Packet(r)) => {
            got = Some(r);
            true
        }
        Ok(Recv::OtherDestination { .. }) => false,
        Err(e) if e.is_would_block() => false,
        Err(e) => panic!("recv: {e}"),
    });
    assert!(ok, "nothing received on {}", s.ifname());
    got.unwrap()
}

fn assert_nothing_queued(s: &VrrpSocket) {
    match s.recv() {
        Err(e) if e.is_would_block() => {}
        other => panic!("expected nothing queued, got {other:?}"),
    }
}

/// Two namespaces joined by va (10.0.0.1, fd00::1) <-> vb (10.0.0.2, fd00::2).
fn lab() -> (Netns, Netns) {
    veth_pair("nv", "10.0.0", true)
}

fn open_in(ns: &Netns, ifname: &'static str, family: Family, mode: Mode) -> VrrpSocket {
    ns.run(move || VrrpSocket::open(ifname, family, mode).unwrap())
}

fn is_ipv4_vrrp(f: &[u8]) -> bool {
    f.len() >= 34 && f[12..14] == [0x08, 0x00] && f[23] == 112
}

fn is_ipv6_vrrp(f: &[u8]) -> bool {
    f.len() >= 54 && f[12..14] == [0x86, 0xdd] && f[20] == 112
}

#[test]
fn ipv4_multicast_adverts_carry_ttl_255_and_the_group() {
    let (a, b) = lab();
    let rx = open_in(&b, "vb", Family::V4, Mode::Multicast);
    let cap = Capture::open(&b, "vb");
    let tx = open_in(&a, "va", Family::V4, Mode::Multicast);
    assert_eq!(tx.source_addr(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert!(a.ip(&["maddr", "show", "dev", "va"]).contains("224.0.0.18"));
    assert!(b.ip(&["maddr", "show", "dev", "vb"]).contains("224.0.0.18"));

    let advert = v2_advert(Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(tx.send_to(&advert, tx.group()).unwrap(), advert.len());
    let r = recv_one(&rx);
    assert_eq!(r.payload, advert, "IPv4 header stripped, payload intact");
    assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)));
    assert_eq!(r.ttl, 255);
    assert_eq!(r.ifindex, rx.ifindex());

    // The wire, seen independently: group MAC, TOS 0xc0, TTL 255, addresses.
    let f = cap.wait_for(T, is_ipv4_vrrp).expect("advert on the wire");
    assert_eq!(f[0..6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    assert_eq!(f[15], 0xc0, "TOS");
    assert_eq!(f[22], 255, "TTL");
    assert_eq!(f[26..30], [10, 0, 0, 1]);
    assert_eq!(f[30..34], [224, 0, 0, 18]);
    assert_eq!(&f[34..34 + advert.len()], &advert[..]);

    // The sender's own socket hears nothing (multicast loop off).
    assert_nothing_queued(&tx);

    // Closing the socket leaves the group.
    drop(tx);
    assert!(wait_until(T, || !a
        .ip(&["maddr", "show", "dev", "va"])
        .contains("224.0.0.18")));
}

#[test]
fn ipv4_packet_sent_with_ttl_64_is_reported_with_ttl_64() {
    let (a, b) = lab();
    let rx = open_in(&b, "vb", Family::V4, Mode::Multicast);
    let advert = v2_advert(Ipv4Addr::new(10, 0, 0, 100));
    let sent = advert.clone();
    // A plain raw socket with the default TTL (64), unicast to the receiver.
    a.run(move || send_raw_ipv4(Ipv4Addr::new(10, 0, 0, 2), 112, &sent, 1));
    let r = recv_one(&rx);
    assert_eq!(r.ttl, 64);
    assert_eq!(r.payload, advert);
    assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
}

#[test]
fn ipv4_unicast_both_ways() {
    let (a, b) = lab();
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let sa = open_in(
        &a,
        "va",
        Family::V4,
        Mode::Unicast {
            source: ip_a.into(),
        },
    );
    let sb = open_in(
        &b,
        "vb",
        Family::V4,
        Mode::Unicast {
            source: ip_b.into(),
        },
    );
    let cap = Capture::open(&b, "vb");
    assert_eq!(sa.source_addr(), IpAddr::V4(ip_a));
    // The group is joined in unicast mode too.
    assert!(a.ip(&["maddr", "show", "dev", "va"]).contains("224.0.0.18"));

    let advert = v2_advert(Ipv4Addr::new(10, 0, 0, 100));
    sa.send_to(&advert, ip_b.into()).unwrap();
    let r = recv_one(&sb);
    assert_eq!((r.src, r.dst, r.ttl), (ip_a.into(), ip_b.into(), 255));
    assert_eq!(r.payload, advert);
    let f = cap.wait_for(T, is_ipv4_vrrp).expect("advert on the wire");
    assert_eq!((f[15], f[22]), (0xc0, 255));
    assert_eq!(f[30..34], ip_b.octets());

    sb.send_to(&advert, ip_a.into()).unwrap();
    let r = recv_one(&sa);
    assert_eq!((r.src, r.dst, r.ttl), (ip_b.into(), ip_a.into(), 255));

    // keepalived's `unicast_ttl`: set per packet (instances share sockets), the next packet
    // back at 255.
    sa.send_from(&advert, ip_a.into(), ip_b.into(), 64).unwrap();
    let r = recv_one(&sb);
    assert_eq!((r.src, r.dst, r.ttl), (ip_a.into(), ip_b.into(), 64));
    assert_eq!(r.payload, advert);
    sa.send_to(&advert, ip_b.into()).unwrap();
    assert_eq!(recv_one(&sb).ttl, 255);

    // A unicast socket is bound to its source: adverts to the group do not reach it.
    let mc = open_in(&a, "va", Family::V4, Mode::Multicast);
    mc.send_to(&advert, mc.group()).unwrap();
    assert!(cap
        .wait_for(T, |f| is_ipv4_vrrp(f) && f[30] == 224)
        .is_some());
    std::thread::sleep(Duration::from_millis(200));
    assert_nothing_queued(&sb);
}

#[test]
fn ipv6_multicast_adverts_carry_hop_limit_255_and_link_local_source() {
    let (a, b) = lab();
    let rx = open_in(&b, "vb", Family::V6, Mode::Multicast);
    let cap = Capture::open(&b, "vb");
    let tx = open_in(&a, "va", Family::V6, Mode::Multicast);
    let IpAddr::V6(src) = tx.source_addr() else {
        panic!("IPv6 socket with IPv4 source")
    };
    assert_eq!(src.segments()[0], 0xfe80, "link-local source, got {src}");
    assert!(a.ip(&["maddr", "show", "dev", "va"]).contains("ff02::12"));
    assert!(b.ip(&["maddr", "show", "dev", "vb"]).contains("ff02::12"));

    let advert = v3_advert("fd00::100".parse().unwrap());
    tx.send_to(&advert, tx.group()).unwrap();
    let r = recv_one(&rx);
    assert_eq!(r.payload, advert);
    assert_eq!(r.src, IpAddr::V6(src));
    assert_eq!(r.dst, "ff02::12".parse::<IpAddr>().unwrap());
    assert_eq!(r.ttl, 255);
    assert_eq!(r.ifindex, rx.ifindex());

    let f = cap.wait_for(T, is_ipv6_vrrp).expect("advert on the wire");
    assert_eq!(f[0..6], [0x33, 0x33, 0, 0, 0, 0x12]);
    let tclass = ((f[14] & 0x0f) << 4) | (f[15] >> 4);
    assert_eq!(tclass, 0xc0);
    assert_eq!(f[21], 255, "hop limit");
    assert_eq!(f[22..38], src.octets());
    assert_eq!(f[38..54], "ff02::12".parse::<Ipv6Addr>().unwrap().octets());
    assert_nothing_queued(&tx);
}

#[test]
fn ipv6_unicast_and_hop_limit_64() {
    let (a, b) = lab();
    let ip_a: Ipv6Addr = "fd00::1".parse().unwrap();
    let ip_b: Ipv6Addr = "fd00::2".parse().unwrap();
    let sa = open_in(
        &a,
        "va",
        Family::V6,
        Mode::Unicast {
            source: ip_a.into(),
        },
    );
    let sb = open_in(
        &b,
        "vb",
        Family::V6,
        Mode::Unicast {
            source: ip_b.into(),
        },
    );
    assert!(b.ip(&["maddr", "show", "dev", "vb"]).contains("ff02::12"));
    let advert = v3_advert("fd00::100".parse().unwrap());
    sa.send_to(&advert, ip_b.into()).unwrap();
    let r = recv_one(&sb);
    assert_eq!((r.src, r.dst, r.ttl), (ip_a.into(), ip_b.into(), 255));
    assert_eq!(r.payload, advert);
    sb.send_to(&advert, ip_a.into()).unwrap();
    let r = recv_one(&sa);
    assert_eq!((r.src, r.dst, r.ttl), (ip_b.into(), ip_a.into(), 255));
    // `unicast_ttl` over IPv6: the hop limit of this packet only.
    sb.send_from(&advert, ip_b.into(), ip_a.into(), 7).unwrap();
    assert_eq!(recv_one(&sa).ttl, 7);
    sb.send_to(&advert, ip_a.into()).unwrap();
    assert_eq!(recv_one(&sa).ttl, 255);

    // A plain IPv6 raw socket (default hop limit 64) is reported as such.
    let payload = advert.clone();
    a.run(move || {
        // SAFETY: plain socket(2) and sendto(2) on locals; the fd is closed below.
        unsafe {
            let fd = libc::socket(libc::AF_INET6, libc::SOCK_RAW, 112);
            assert!(fd >= 0);
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: ip_b.octets(),
                },
                sin6_scope_id: 0,
            };
            let n = libc::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&sin6 as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as u32,
            );
            assert_eq!(n, payload.len() as isize);
            libc::close(fd);
        }
    });
    let r = recv_one(&sb);
    assert_eq!(r.ttl, 64);
    assert_eq!(r.src, IpAddr::V6(ip_a));
}

#[test]
fn send_only_socket_never_queues_but_still_joins() {
    let (a, b) = lab();
    let quiet = b.run(|| VrrpSocket::open_send_only("vb", Family::V4, Mode::Multicast).unwrap());
    assert!(!quiet.is_receiving());
    // Another socket joining and leaving does not take the send-only socket's membership away.
    let rx = open_in(&b, "vb", Family::V4, Mode::Multicast);
    drop(rx);
    assert!(b.ip(&["maddr", "show", "dev", "vb"]).contains("224.0.0.18"));
    let rx = open_in(&b, "vb", Family::V4, Mode::Multicast);
    let tx = open_in(&a, "va", Family::V4, Mode::Multicast);
    tx.send_to(&v2_advert(Ipv4Addr::new(10, 0, 0, 100)), tx.group())
        .unwrap();
    recv_one(&rx);
    assert_nothing_queued(&quiet);
    // It sends fine.
    quiet
        .send_to(&v2_advert(Ipv4Addr::new(10, 0, 0, 100)), quiet.group())
        .unwrap();
    let r = recv_one(&tx);
    assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
}

#[test]
fn errors_name_the_interface_and_call() {
    let (a, _b) = lab();
    a.run(|| {
        let e = VrrpSocket::open("nosuch0", Family::V4, Mode::Multicast).unwrap_err();
        assert!(matches!(e, NetError::NoSuchInterface { .. }), "{e}");
        assert!(e.to_string().contains("nosuch0"));
        let e = VrrpSocket::open(
            "va",
            Family::V6,
            Mode::Unicast {
                source: Ipv4Addr::new(10, 0, 0, 1).into(),
            },
        )
        .unwrap_err();
        assert!(matches!(e, NetError::InvalidArgument { .. }), "{e}");
        // A source that is not ours: bind fails and says so.
        let e = VrrpSocket::open(
            "va",
            Family::V4,
            Mode::Unicast {
                source: Ipv4Addr::new(10, 0, 0, 99).into(),
            },
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("bind") && e.to_string().contains("10.0.0.99"),
            "{e}"
        );
        let s = VrrpSocket::open("va", Family::V4, Mode::Multicast).unwrap();
        // Non-blocking and close-on-exec, ready for an event loop.
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a live fd.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(s.as_raw_fd(), libc::F_GETFL),
                libc::fcntl(s.as_raw_fd(), libc::F_GETFD),
            )
        };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0);
        let e = s.send_to(&[0; 8], "ff02::12".parse().unwrap()).unwrap_err();
        assert!(matches!(e, NetError::InvalidArgument { .. }), "{e}");
        let e = s.recv().unwrap_err();
        assert!(e.is_would_block());
        assert_eq!(
            std::io::Error::from(e).kind(),
            std::io::ErrorKind::WouldBlock
        );
    });
    // No IPv4 address at all: multicast mode has no source.
    let c = Netns::new("nvc");
    c.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    c.ip(&["link", "set", "d0", "up"]);
    c.run(|| {
        let e = VrrpSocket::open("d0", Family::V4, Mode::Multicast).unwrap_err();
        assert!(matches!(e, NetError::NoSourceAddress { .. }), "{e}");
    });
}

#[test]
fn ipv6_unicast_socket_ignores_group_adverts() {
    let (a, b) = lab();
    let ip_b: Ipv6Addr = "fd00::2".parse().unwrap();
    let sb = open_in(
        &b,
        "vb",
        Family::V6,
        Mode::Unicast {
            source: ip_b.into(),
        },
    );
    let mc_rx = open_in(&b, "vb", Family::V6, Mode::Multicast);
    let mc = open_in(&a, "va", Family::V6, Mode::Multicast);
    mc.send_to(&v3_advert("fd00::100".parse().unwrap()), mc.group())
        .unwrap();
    recv_one(&mc_rx);
    // The bound socket is handed the group packet too: one recv consumes it and says so (the
    // caller counts it against its batch), then nothing is left.
    let group: IpAddr = "ff02::12".parse().unwrap();
    match sb.recv() {
        Ok(Recv::OtherDestination { dst }) => assert_eq!(dst, group),
        other => panic!("expected the group packet, discarded: {other:?}"),
    }
    assert_nothing_queued(&sb);
}

//! The kernel side of `vrrp_track_listen`, without the daemon: the `inet_sock_set_state`
//! program counts listeners and connections of its own namespace only (a decoy namespace has a
//! listener on the same port), seeds from a `sock_diag` dump at start, and reports a listener
//! closing at once on its ring buffer; the XDP program counts SYNs to watched ports only.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use xvrrp::dataplane::{
    tcp::{self, TcpTracker},
    XdpTestProgram, XDP_PASS,
};
use xvrrp_tests::{require_root, site::listen::tcp_listener, Netns};

const PORT: u16 = 18080;

fn listeners(t: &TcpTracker) -> i64 {
    t.counts()
        .unwrap()
        .iter()
        .filter(|c| c.port == PORT)
        .map(|c| c.listeners)
        .sum()
}

fn established(t: &TcpTracker) -> (i64, u64, u64) {
    let c = t.counts().unwrap();
    let f = c.iter().filter(|c| c.port == PORT);
    (
        f.clone().map(|c| c.established).sum(),
        f.clone().map(|c| c.established_total).sum(),
        f.map(|c| c.closed_total).sum(),
    )
}

/// Waits for the ring buffer's fd to become readable (poll), up to `timeout`.
fn wait_readable(t: &TcpTracker, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: t.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    n > 0
}

#[test]
fn counts_only_its_own_namespace_seeds_at_start_and_reports_listener_close_at_once() {
    require_root();
    let mine = Netns::new("xtcpk");
    let decoy = Netns::new("xtcpd");
    // The decoy's listener on the same port and address (loopback), before and during the test.
    let decoy_l = decoy.run(|| TcpListener::bind(("127.0.0.1", PORT)).unwrap());
    mine.run(move || {
        // Pre-existing: a listener and an established connection (seeded from sock_diag).
        let pre = TcpListener::bind(("0.0.0.0", PORT)).unwrap();
        let pre_client = TcpStream::connect(("127.0.0.1", PORT)).unwrap();
        let (pre_server, _) = pre.accept().unwrap();
        let mut t = TcpTracker::start(&[PORT]).unwrap();
        assert_eq!(listeners(&t), 1, "{:?}", t.counts());
        assert_eq!(established(&t), (1, 0, 0), "{:?}", t.counts());

        // A second listener (IPv6 wildcard, v6only so both bind) is seen.
        let l6 = tcp_listener(
            std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, PORT)),
            16,
        );
        assert_eq!(listeners(&t), 2, "{:?}", t.counts());
        let ev = t.drain_events(16);
        assert!(ev.iter().any(|e| e.up && e.port == PORT), "{ev:?}");

        // Connections: established gauge and totals.
        let mut c = TcpStream::connect(("127.0.0.1", PORT)).unwrap();
        let (mut s, _) = pre.accept().unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(established(&t), (2, 1, 0), "{:?}", t.counts());
        drop(c);
        drop(s);
        drop(pre_client);
        drop(pre_server);
        std::thread::sleep(Duration::from_millis(50));
        let (est, tot, closed) = established(&t);
        assert_eq!((est, tot), (0, 1), "{:?}", t.counts());
        assert_eq!(closed, 2, "the seeded connection's close is seen too");

        // Listeners close: events at once, counts down to zero.
        drop(l6);
        let t0 = Instant::now();
        drop(pre);
        assert!(wait_readable(&t, Duration::from_secs(2)));
        let seen = t0.elapsed();
        let ev = t.drain_events(16);
        assert!(ev.iter().any(|e| !e.up && e.port == PORT), "{ev:?}");
        eprintln!("listener close -> ring readable after {seen:?}");
        assert_eq!(listeners(&t), 0, "{:?}", t.counts());
        let st = t.stats().unwrap();
        eprintln!("{st:?}");
        assert_eq!(st.read_failed, 0);
    });
    // The decoy's listener was there all along, ignored; and it is still open.
    assert!(decoy_l.local_addr().is_ok());
    // Closing the decoy's listener while a tracker runs in `mine` does not move its count.
    mine.run(move || {
        let l = TcpListener::bind(("127.0.0.1", PORT)).unwrap();
        let mut t = TcpTracker::start(&[PORT]).unwrap();
        assert_eq!(listeners(&t), 1);
        drop(decoy_l);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(listeners(&t), 1, "{:?}", t.counts());
        assert!(t.drain_events(16).is_empty());
        assert!(t.stats().unwrap().other_netns >= 1);
        drop(l);
    });
}

/// A TCP segment to `port` with `flags`, in an Ethernet + IPv4 frame.
fn tcp_frame(port: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&40u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[192, 0, 2, 1]);
    f[30..34].copy_from_slice(&[192, 0, 2, 80]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&port.to_be_bytes());
    f[46] = 0x50;
    f[47] = flags;
    f
}

/// `f` without its Ethernet padding (54 bytes).
fn short(mut f: Vec<u8>) -> Vec<u8> {
    f.truncate(54);
    f
}

/// `f` with an 802.1Q tag (VLAN 100).
fn tagged(mut f: Vec<u8>) -> Vec<u8> {
    f.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
    f
}

fn tcp6_frame(port: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 20];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&20u16.to_be_bytes());
    f[20] = 6;
    f[21] = 64;
    f[54..56].copy_from_slice(&40000u16.to_be_bytes());
    f[56..58].copy_from_slice(&port.to_be_bytes());
    f[66] = 0x50;
    f[67] = flags;
    f
}

#[test]
fn xdp_counts_syns_to_watched_ports_only() {
    require_root();
    let mut p = XdpTestProgram::load().unwrap();
    tcp::set_syn_ports(p.object_mut(), &[80, 8443]).unwrap();
    for (frame, n) in [
        (tcp_frame(80, 0x02), 3),         // SYN to 80
        (tcp_frame(8443, 0x02), 2),       // SYN to 8443
        (tcp6_frame(80, 0x02), 1),        // SYN to 80 over IPv6
        (short(tcp_frame(80, 0x02)), 1),  // unpadded 54 bytes (as on a veth): the full path
        (tagged(tcp_frame(80, 0x02)), 1), // VLAN-tagged: the full path
        (tcp_frame(80, 0x12), 5),         // SYN-ACK: not counted
        (tcp_frame(80, 0x10), 5),         // ACK: not counted
        (tcp_frame(443, 0x02), 5),        // unwatched port
        (tcp_frame(81, 0x02), 5),         // unwatched, same bitmap word
    ] {
        for _ in 0..n {
            assert_eq!(p.run(&frame, 1).unwrap().action, XDP_PASS);
        }
    }
    let c = tcp::syn_counts(p.object_mut(), &[80, 8443, 443, 81]).unwrap();
    assert_eq!(c.get(&80), Some(&6), "{c:?}");
    assert_eq!(c.get(&8443), Some(&2), "{c:?}");
    assert_eq!(c.len(), 2, "{c:?}");
    // Unwatching forgets the old port and keeps the count of the one still watched.
    tcp::set_syn_ports(p.object_mut(), &[8443]).unwrap();
    p.run(&tcp_frame(80, 0x02), 1).unwrap();
    p.run(&tcp_frame(8443, 0x02), 1).unwrap();
    let c = tcp::syn_counts(p.object_mut(), &[80, 8443]).unwrap();
    assert_eq!(c.get(&80), None, "{c:?}");
    assert_eq!(c.get(&8443), Some(&3), "{c:?}");
    // Watching it again starts from zero (its slot was reused or zeroed).
    tcp::set_syn_ports(p.object_mut(), &[8443, 80, 81]).unwrap();
    p.run(&tcp_frame(80, 0x02), 1).unwrap();
    let c = tcp::syn_counts(p.object_mut(), &[80, 81, 8443]).unwrap();
    assert_eq!(c.get(&80), Some(&1), "{c:?}");
    assert_eq!(c.get(&81), Some(&0), "{c:?}");
    assert_eq!(c.get(&8443), Some(&3), "{c:?}");
    // More ports than the map holds: refused.
    let many: Vec<u16> = (1000..1300).collect();
    assert!(tcp::set_syn_ports(p.object_mut(), &many).is_err());
}

/// The cost of the SYN hook on non-VRRP traffic, measured A/B in one loaded program with
/// `BPF_PROG_TEST_RUN` (interleaved, median of 9 runs of 200 000 repeats): a UDP frame skips the
/// hook at the protocol compare, a TCP ACK stops at the flags, a SYN to an unwatched port does
/// the bitmap lookup, a SYN to a watched port also counts. Printed, not asserted (timings on a
/// shared machine); `cargo xtask bench xdp` has the full table.
#[test]
fn syn_hook_cost_is_printed() {
    require_root();
    let mut p = XdpTestProgram::load().unwrap();
    tcp::set_syn_ports(p.object_mut(), &[80]).unwrap();
    let mut udp = tcp_frame(443, 0x02);
    udp[23] = 17;
    let cases = [
        ("UDP (hook skipped)", udp),
        ("TCP ACK", tcp_frame(443, 0x10)),
        ("TCP SYN, unwatched port", tcp_frame(443, 0x02)),
        ("TCP SYN, watched port", tcp_frame(80, 0x02)),
    ];
    let repeat = 200_000;
    let mut base = Vec::new();
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..9 {
        base.push(
            p.run_baseline(&cases[0].1, repeat)
                .unwrap()
                .duration
                .as_nanos() as f64,
        );
        for (i, (_, f)) in cases.iter().enumerate() {
            runs[i].push(p.run(f, repeat).unwrap().duration.as_nanos() as f64);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let b = med(&mut base);
    eprintln!("trivial XDP_PASS: {b:.1} ns");
    for (i, (name, _)) in cases.iter().enumerate() {
        let m = med(&mut runs[i]);
        eprintln!("{name:<28} {m:.1} ns ({:+.1} over trivial)", m - b);
    }
}

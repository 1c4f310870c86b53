//! The `sock_diag` dumps `vrrp_track_listen` reads listeners and accept queues from: a real
//! listener with backlog N and K unaccepted connections shows `rqueue == K`, `wqueue == N`, in
//! its own namespace only (a decoy namespace listens on the same port), IPv4 and IPv6, filtered
//! to the watched ports in the kernel; and a LISTEN-only dump costs the same with ~10 000
//! established connections as with none, where reading `/proc/net/tcp*` grows with them.
//!
//! Timings are printed, never asserted.

use std::{
    net::{IpAddr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use xvrrp::{
    dataplane::tcp,
    net::diag::{self, DiagSocket, SockDiag, TCP_ESTABLISHED, TCP_LISTEN},
};
use xvrrp_tests::{must, require_root, site::listen::tcp_listener as listener, Netns};

const PORT: u16 = 18090;

fn find(v: &[DiagSocket], port: u16, local: &str) -> Option<DiagSocket> {
    let local: IpAddr = local.parse().unwrap();
    v.iter()
        .copied()
        .find(|s| s.port == port && s.local == local && s.state == TCP_LISTEN)
}

/// Dumps until the listener `port`/`local` shows `rqueue` (the last ACK of a loopback handshake
/// may land just after `connect` returns), at most 2 s.
fn wait_queue(d: &mut SockDiag, port: u16, local: &str, rqueue: u32) -> DiagSocket {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let v = d.tcp_listeners(&[port]).unwrap();
        let s = find(&v, port, local);
        if s.is_some_and(|s| s.rqueue == rqueue) || Instant::now() > deadline {
            return s.unwrap_or_else(|| panic!("no listener {local}:{port} in {v:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn dump_shows_listeners_and_accept_queues_of_its_own_namespace_only() {
    require_root();
    let mine = Netns::new("xdiag");
    let decoy = Netns::new("xdiagd");
    // The decoy: a listener on the same address and port with 3 waiting connections.
    let decoy_state = decoy.run(|| {
        let l = listener("127.0.0.1:18090".parse().unwrap(), 64);
        let c: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(("127.0.0.1", PORT)).unwrap())
            .collect();
        (l, c)
    });
    mine.run(move || {
        let mut d = SockDiag::open().unwrap();
        assert!(d.tcp_listeners(&[PORT]).unwrap().is_empty());

        let l4 = listener("127.0.0.1:18090".parse().unwrap(), 8);
        let l6 = listener("[::]:18090".parse().unwrap(), 16);
        let other = listener("0.0.0.0:18091".parse().unwrap(), 4);
        let v = d.tcp_listeners(&[PORT]).unwrap();
        assert_eq!(
            v.len(),
            2,
            "only the watched port, only this namespace: {v:?}"
        );
        let s4 = find(&v, PORT, "127.0.0.1").unwrap();
        assert_eq!(
            (s4.family, s4.rqueue, s4.wqueue),
            (xvrrp::net::Family::V4, 0, 8)
        );
        let s6 = find(&v, PORT, "::").unwrap();
        assert_eq!(
            (s6.family, s6.rqueue, s6.wqueue),
            (xvrrp::net::Family::V6, 0, 16)
        );

        // K connections, none accepted: the accept queue is K.
        let c4: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(("127.0.0.1", PORT)).unwrap())
            .collect();
        let c6: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(("::1", PORT)).unwrap())
            .collect();
        assert_eq!(wait_queue(&mut d, PORT, "127.0.0.1", 5).rqueue, 5);
        assert_eq!(wait_queue(&mut d, PORT, "::", 2).rqueue, 2);
        // Two accepted: the queue shrinks by two.
        let a: Vec<TcpStream> = (0..2).map(|_| l4.accept().unwrap().0).collect();
        let s4 = find(&d.tcp_listeners(&[PORT]).unwrap(), PORT, "127.0.0.1").unwrap();
        assert_eq!((s4.rqueue, s4.wqueue), (3, 8));

        // Without a port list, every listener of the namespace; with two, both.
        let all = d.tcp_listeners(&[]).unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        let both = d.tcp_listeners(&[PORT + 1, PORT]).unwrap();
        assert_eq!(both.len(), 3, "{both:?}");
        assert!(find(&both, PORT + 1, "0.0.0.0").is_some());
        assert!(d.tcp_listeners(&[PORT + 2]).unwrap().is_empty());

        // The seed's dump: listeners and the server side of the 7 connections (accepted or
        // not), not the clients (their local port is ephemeral).
        let seed = diag::tcp_sockets((1 << TCP_LISTEN) | (1 << TCP_ESTABLISHED), &[PORT]).unwrap();
        let est = seed.iter().filter(|s| s.state == TCP_ESTABLISHED).count();
        let lis = seed.iter().filter(|s| s.state == TCP_LISTEN).count();
        assert_eq!((lis, est), (2, 7), "{seed:?}");

        // Listeners closed: gone from the dump.
        drop((l4, l6, other, a, c4, c6));
        assert!(d.tcp_listeners(&[PORT, PORT + 1]).unwrap().is_empty());
    });
    // The decoy's listener and queue were never seen, and are still there.
    let (l, c) = decoy_state;
    assert!(l.local_addr().is_ok());
    drop(c);
}

/// Reads `/proc/thread-self/net/tcp` and `tcp6` without parsing them.
fn read_proc() {
    for f in ["tcp", "tcp6"] {
        let _ = std::fs::read(format!("/proc/thread-self/net/{f}"));
    }
}

/// Median of `n` runs of `f`.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

#[test]
fn listen_dump_cost_does_not_grow_with_established_connections() {
    require_root();
    const WATCHED: u16 = 18095;
    const BULK: [u16; 2] = [18096, 18097];
    let ns = Netns::new("xdiagc");
    // Connections wait in the bulk listener's accept queue: the server side needs no file
    // descriptor, so N clients make 2N established sockets within the open-files limit.
    must(
        ns.command("sysctl")
            .args(["-qw", "net.core.somaxconn=65535"]),
    );
    let (before, after, proc_before, proc_after, seed_after, n) = ns.run(|| {
        let mut d = SockDiag::open().unwrap();
        let _w = listener("0.0.0.0:18095".parse().unwrap(), 128);
        // Two bulk listeners: more connections than one source/destination pair has ports.
        let bulk = BULK.map(|p| listener(SocketAddr::from(([127, 0, 0, 1], p)), 65535));
        let check = |d: &mut SockDiag| {
            let v = d.tcp_listeners(&[WATCHED]).unwrap();
            assert_eq!(v.len(), 1, "{v:?}");
            assert_eq!((v[0].port, v[0].rqueue, v[0].wqueue), (WATCHED, 0, 128));
        };
        check(&mut d);
        let before = median(201, || {
            d.tcp_listeners(&[WATCHED]).unwrap();
        });
        let proc_before = (
            median(21, || {
                tcp::proc_sockets();
            }),
            median(21, read_proc),
        );

        // As many clients as the open-files limit allows, up to $XVRRP_DIAG_CONNECTIONS
        // (default 10 000).
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a valid struct.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        let want = std::env::var("XVRRP_DIAG_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let n = (lim.rlim_cur.saturating_sub(500) as usize).min(want);
        let clients: Vec<TcpStream> = (0..n)
            .map(|i| TcpStream::connect(("127.0.0.1", BULK[i % 2])).unwrap())
            .collect();
        // Every connection is established and waits in a bulk listener's queue.
        for (i, p) in BULK.iter().enumerate() {
            let k = (n + 1 - i) / 2;
            let q = wait_queue(&mut d, *p, "127.0.0.1", k as u32);
            assert_eq!(q.rqueue as usize, k, "port {p}");
        }
        check(&mut d);
        let after = median(201, || {
            d.tcp_listeners(&[WATCHED]).unwrap();
        });
        let proc_after = (
            median(21, || {
                tcp::proc_sockets();
            }),
            median(21, read_proc),
        );
        let socks = tcp::proc_sockets();
        let proc_est = socks
            .iter()
            .filter(|s| s.state == tcp::PROC_ESTABLISHED)
            .count();
        assert!(
            proc_est >= 2 * n,
            "{proc_est} established in /proc for {n} clients"
        );
        // The seed's dump (listening and established sockets of the watched port): the kernel
        // walks the established table once, at start only.
        let seed_after = median(21, || {
            d.tcp((1 << TCP_LISTEN) | (1 << TCP_ESTABLISHED), &[WATCHED])
                .unwrap();
        });
        drop(clients);
        drop(bulk);
        (before, after, proc_before, proc_after, seed_after, n)
    });
    eprintln!(
        "one LISTEN-only sock_diag dump of the watched port (median of 201): {} µs with no \
         connections, {} µs with {} established sockets ({n} connections)",
        before.as_micros(),
        after.as_micros(),
        2 * n
    );
    eprintln!(
        "reading and parsing /proc/net/tcp + tcp6 as the agent did (median of 21): {} µs with \
         no connections, {} µs with {} established sockets (the read alone: {} µs, {} µs)",
        proc_before.0.as_micros(),
        proc_after.0.as_micros(),
        2 * n,
        proc_before.1.as_micros(),
        proc_after.1.as_micros(),
    );
    eprintln!(
        "the start-up seed's dump (LISTEN + ESTABLISHED of the watched port): {} µs with {} \
         established sockets",
        seed_after.as_micros(),
        2 * n
    );
}

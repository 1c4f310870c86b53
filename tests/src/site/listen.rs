//! What the `listen` tests and `cargo xtask bench failover` add to the [`Site`](super::Site):
//! a `vrrp_track_listen` on port 80, the kernel's view of it, captures of the priority-0 advert
//! and a fast client. Agents run with the default receive path (XDP where it attaches), so the
//! XDP program counts SYNs.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant, SystemTime},
};

use super::ELECTION;
use crate::{
    agent::Agent,
    lab::{self, Host},
    status::Tracker,
};

/// The tracker block with weight 0 on port 80, and its reference.
pub fn listen_block(stall: Option<u32>) -> (String, String) {
    let stall = stall.map_or(String::new(), |s| format!("    stall {s}\n"));
    (
        format!("vrrp_track_listen chk_http {{\n    port 80\n    weight 0\n{stall}}}\n"),
        "    track_listen {\n        chk_http\n    }\n".to_owned(),
    )
}

/// Waits until the listen tracker `chk_http` reads the kernel program (`source` "kernel"): the
/// first verdict comes from a `sock_diag` dump at once, the program (and its listener events) a
/// moment later.
pub fn wait_kernel_source(a: &Agent) -> (bool, Tracker) {
    a.wait_tracker("listen chk_http", ELECTION, |t| {
        t.source().as_deref() == Some("kernel")
    })
}

/// The VRRP priority of an IPv4 advert from `src` in an Ethernet frame, if it is one.
pub fn advert_priority(frame: &[u8], src: Ipv4Addr) -> Option<u8> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 112 {
        return None;
    }
    if frame[26..30] != src.octets() {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame.get(14 + ihl + 2).copied()
}

/// Starts `tcpdump` on `host`'s eth1 for VRRP (its pcap carries the kernel's timestamps, so
/// a loaded test process does not distort the figures).
pub fn capture_vrrp(host: &Host) -> lab::Capture {
    host.capture("eth1", "proto 112")
}

/// The kernel timestamp (µs since the epoch) of the first priority-0 advert from `src` in a
/// capture started with [`capture_vrrp`] (which is stopped first).
pub fn first_priority_zero_us(cap: &mut lab::Capture, src: Ipv4Addr) -> Option<u64> {
    // The lab's tcpdump runs without --immediate-mode: packets reach the file in blocks, at the
    // latest after the 1 s block timeout, and a block still open at SIGINT is lost.
    std::thread::sleep(Duration::from_millis(1200));
    cap.stop();
    let out = std::process::Command::new("tcpdump")
        .args(["-tt", "-n", "-r"])
        .arg(cap.file())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let from = format!(" {src} > ");
    let found = text
        .lines()
        .filter(|l| l.contains(&from) && l.contains("prio 0,"))
        .find_map(|l| {
            let secs: f64 = l.split_whitespace().next()?.parse().ok()?;
            Some((secs * 1e6).round() as u64)
        });
    if found.is_none() {
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "no priority-0 advert from {src} in the capture ({} lines; {}); last: {:?}",
            lines.len(),
            String::from_utf8_lossy(&out.stderr).trim(),
            &lines[lines.len().saturating_sub(3)..]
        );
    }
    found
}

/// Microseconds since the epoch.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// A client loop in `client`'s namespace with 20 ms connect timeouts and 50 ms read timeouts,
/// retrying at once: when the body at `vip` first contained `expected`, or `None` after
/// `timeout`. (The lab's [`Lab::get`](crate::lab::Lab::get) uses 500 ms timeouts, too coarse for sub-second figures.)
pub fn fast_wait_body(
    client: &Host,
    vip: Ipv4Addr,
    expected: &str,
    timeout: Duration,
) -> Option<Instant> {
    let expected = expected.to_owned();
    client.ns().run(move || {
        let deadline = Instant::now() + timeout;
        let sa = SocketAddr::from((vip, 80));
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_millis(20)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                if s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").is_ok() {
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    if String::from_utf8_lossy(&buf).contains(&expected) {
                        return Some(Instant::now());
                    }
                }
            }
            // A refused connect returns at once: without a pause this loop spins a whole CPU
            // of the two, against the agents being measured. 1 ms is the resolution kept.
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })
}

/// Sorted copy; median and worst.
pub fn median_worst(v: &[Duration]) -> (Duration, Duration) {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    (s[s.len() / 2], s[s.len() - 1])
}

/// A listener on `addr` with `backlog` (IPv6: v6only, so it coexists with the IPv4 one).
pub fn tcp_listener(addr: SocketAddr, backlog: i32) -> TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a new fd, handed to TcpListener which then owns it.
    unsafe {
        let fd = match addr {
            SocketAddr::V4(a) => {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0);
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                let rc = libc::bind(
                    fd,
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                );
                assert_eq!(rc, 0, "bind {addr}: {}", std::io::Error::last_os_error());
                fd
            }
            SocketAddr::V6(a) => {
                let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0);
                let one: libc::c_int = 1;
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&raw const one).cast(),
                    4,
                );
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                let rc = libc::bind(
                    fd,
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as u32,
                );
                assert_eq!(rc, 0, "bind {addr}: {}", std::io::Error::last_os_error());
                fd
            }
        };
        assert_eq!(libc::listen(fd, backlog), 0);
        TcpListener::from_raw_fd(fd)
    }
}

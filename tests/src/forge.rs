//! Forged traffic for tests: whole Ethernet frames sent with an `AF_PACKET` socket from inside a
//! test namespace, so a test controls every byte (source address, TTL, checksum).
#![allow(clippy::unwrap_used, reason = "test support code")]

use std::{ffi::CString, io};

use crate::Netns;

/// Sends each frame once, in order, on `ifname` inside `ns` (which must be a namespace the test
/// created); panics unless every send succeeded.
pub fn send_frames(ns: &Netns, ifname: &str, frames: Vec<Vec<u8>>) {
    let n = frames.len();
    let sent = flood_frames(ns, ifname, frames, std::time::Duration::MAX, n);
    assert_eq!(sent, n, "every frame was sent");
}

/// Sends `frames` round-robin on `ifname` inside `ns` as fast as one thread can, for at most
/// `duration` and at most `max` attempts (bounded flood, only inside test namespaces). Returns how
/// many were sent.
pub fn flood_frames(
    ns: &Netns,
    ifname: &str,
    frames: Vec<Vec<u8>>,
    duration: std::time::Duration,
    max: usize,
) -> usize {
    let ifname = ifname.to_owned();
    ns.run(move || {
        let tx = PacketTx::open(&ifname);
        let start = std::time::Instant::now();
        let (mut sent, mut attempts) = (0, 0);
        'outer: while attempts < max && start.elapsed() < duration {
            for f in &frames {
                attempts += 1;
                if tx.send(f).is_ok() {
                    sent += 1;
                }
                if attempts >= max {
                    break 'outer;
                }
            }
        }
        sent
    })
}

/// Sends each frame once, in order, out of `ifname` in the calling thread's namespace, pausing
/// briefly every 64 frames so a veth ring never overflows; panics unless every send succeeded.
pub fn send_frames_paced(ifname: &str, frames: &[Vec<u8>]) {
    let tx = PacketTx::open(ifname);
    for (i, f) in frames.iter().enumerate() {
        if let Err(e) = tx.send(f) {
            panic!("sendto: {e}");
        }
        if i % 64 == 63 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// An `AF_PACKET` socket sending whole frames out of one interface of the calling thread's
/// namespace; closed on drop.
struct PacketTx {
    fd: i32,
    ifindex: i32,
}

impl PacketTx {
    fn open(ifname: &str) -> Self {
        let c = CString::new(ifname).unwrap();
        // SAFETY: valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert!(ifindex > 0, "no interface {ifname}");
        // SAFETY: plain socket(2); closed on drop.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        Self {
            fd,
            ifindex: i32::try_from(ifindex).unwrap(),
        }
    }

    /// Sends `f` (a whole Ethernet frame; its first 6 bytes are the destination MAC).
    fn send(&self, f: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&f[..6]);
        // SAFETY: valid buffer and address of the stated size.
        let n = unsafe {
            libc::sendto(
                self.fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n >= 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for PacketTx {
    fn drop(&mut self) {
        // SAFETY: the fd is ours.
        unsafe { libc::close(self.fd) };
    }
}

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
        let c = CString::new(ifname.clone()).unwrap();
        // SAFETY: valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert!(ifindex > 0, "no interface {ifname}");
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        let start = std::time::Instant::now();
        let (mut sent, mut attempts) = (0, 0);
        'outer: while attempts < max && start.elapsed() < duration {
            for f in &frames {
                // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = ifindex as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&f[..6]);
                // SAFETY: valid buffer and address of the stated size.
                let n = unsafe {
                    libc::sendto(
                        fd,
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                attempts += 1;
                if n >= 0 {
                    sent += 1;
                }
                if attempts >= max {
                    break 'outer;
                }
            }
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        sent
    })
}

//! Thin, checked wrappers over the few libc calls the module needs.

use std::{
    ffi::CString,
    mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::{NetError, Result};

/// `socket(2)` returning an owned fd; `SOCK_CLOEXEC` is always added.
pub(crate) fn socket(
    domain: i32,
    ty: i32,
    proto: i32,
    syscall: &'static str,
    target: &str,
) -> Result<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions; we take ownership of the new fd below.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(NetError::last_os(syscall, target));
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(
    fd: &impl AsRawFd,
    level: i32,
    name: i32,
    value: &T,
    syscall: &'static str,
    target: &str,
) -> Result<()> {
    // SAFETY: `value` points to a live T of exactly the length we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            socklen::<T>(),
        )
    };
    if rc < 0 {
        return Err(NetError::last_os(syscall, target));
    }
    Ok(())
}

/// `setsockopt` of an `int`.
pub(crate) fn setsockopt_int(
    fd: &impl AsRawFd,
    level: i32,
    name: i32,
    value: i32,
    syscall: &'static str,
    target: &str,
) -> Result<()> {
    setsockopt(fd, level, name, &value, syscall, target)
}

/// `SO_BINDTODEVICE`: the socket only sends and receives on `ifname`.
pub(crate) fn bind_to_device(fd: &impl AsRawFd, ifname: &str) -> Result<()> {
    let bytes = ifname.as_bytes();
    // SAFETY: the pointer and length describe `bytes`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(NetError::last_os("setsockopt(SO_BINDTODEVICE)", ifname));
    }
    Ok(())
}

/// `if_nametoindex(3)`.
pub(crate) fn if_nametoindex(ifname: &str) -> Result<u32> {
    let bad = || NetError::invalid(ifname, "interface name must be 1..=15 bytes without NUL");
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(bad());
    }
    let c = CString::new(ifname).map_err(|_| bad())?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(NetError::NoSuchInterface {
            name: ifname.to_owned(),
            syscall: "if_nametoindex",
        });
    }
    Ok(idx)
}

pub(crate) fn socklen<T>() -> libc::socklen_t {
    mem::size_of::<T>() as libc::socklen_t
}

/// A `sockaddr_storage` holding `addr` (IPv6 link-local addresses get `scope_id`), and its length.
pub(crate) fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: in_addr(*a.ip()),
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            socklen::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: in6_addr(*a.ip()),
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            socklen::<libc::sockaddr_in6>()
        }
    };
    (ss, len)
}

/// The socket address for `ip` on interface `ifindex` (scope only where IPv6 needs one).
pub(crate) fn socket_addr(ip: IpAddr, ifindex: u32) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
        IpAddr::V6(a) => {
            let scope = if needs_scope(&a) { ifindex } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))
        }
    }
}

/// Link-local unicast and link/interface-local multicast IPv6 addresses need a scope id.
pub(crate) fn needs_scope(a: &Ipv6Addr) -> bool {
    let s = a.segments()[0];
    (s & 0xffc0) == 0xfe80 || (a.is_multicast() && matches!(s & 0x000f, 1 | 2))
}

/// The address in a `sockaddr_storage` filled in by the kernel, if it is IPv4 or IPv6.
pub(crate) fn from_sockaddr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET if len >= socklen::<libc::sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in and the kernel wrote at least that many bytes.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 if len >= socklen::<libc::sockaddr_in6>() => {
            // SAFETY: the family says sockaddr_in6 and the kernel wrote at least that many bytes.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

pub(crate) fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

pub(crate) fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

/// `bind(2)` to `addr`.
pub(crate) fn bind(fd: &impl AsRawFd, addr: SocketAddr, target: &str) -> Result<()> {
    let (ss, len) = sockaddr(addr);
    // SAFETY: `ss` holds a valid sockaddr of length `len`.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(NetError::last_os("bind", target));
    }
    Ok(())
}

/// Receives one datagram sent by the kernel (netlink port id 0) on a netlink socket, retrying
/// on `EINTR` and dropping datagrams from other ports. Returns the datagram's length (its real
/// length, possibly more than `buf`, when `flags` has `MSG_TRUNC`).
pub(crate) fn recv_from_kernel(
    fd: &impl AsRawFd,
    buf: &mut [u8],
    flags: i32,
) -> std::io::Result<usize> {
    loop {
        // SAFETY: sockaddr_nl is plain old data.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut sl = socklen::<libc::sockaddr_nl>();
        // SAFETY: buf and sa are valid, writable and of the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
                (&mut sa as *mut libc::sockaddr_nl).cast(),
                &mut sl,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if sa.nl_pid == 0 {
            return Ok(n as usize);
        }
    }
}

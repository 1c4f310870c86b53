//! Thin, checked wrappers over the few socket calls the module needs (socket2 and nix underneath,
//! raw `setsockopt` and `sockaddr_storage` for the options and callers they do not cover).

use std::{
    mem,
    net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsFd, AsRawFd, OwnedFd},
};

use super::{NetError, Result};

/// `socket(2)` returning an owned fd; `SOCK_CLOEXEC` is always added (by socket2).
pub(crate) fn socket(
    domain: i32,
    ty: i32,
    proto: i32,
    syscall: &'static str,
    target: &str,
) -> Result<OwnedFd> {
    socket2::Socket::new(domain.into(), ty.into(), Some(proto.into()))
        .map(OwnedFd::from)
        .map_err(|source| NetError::Sys {
            syscall,
            target: target.to_owned(),
            source,
        })
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
pub(crate) fn bind_to_device(fd: &impl AsFd, ifname: &str) -> Result<()> {
    socket2::SockRef::from(fd)
        .bind_device(Some(ifname.as_bytes()))
        .map_err(|source| NetError::Sys {
            syscall: "setsockopt(SO_BINDTODEVICE)",
            target: ifname.to_owned(),
            source,
        })
}

/// `if_nametoindex(3)`.
pub(crate) fn if_nametoindex(ifname: &str) -> Result<u32> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(NetError::invalid(
            ifname,
            "interface name must be 1..=15 bytes without NUL",
        ));
    }
    nix::net::if_::if_nametoindex(ifname).map_err(|_| NetError::NoSuchInterface {
        name: ifname.to_owned(),
        syscall: "if_nametoindex",
    })
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
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
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

pub(crate) fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

/// Receives one datagram sent by the kernel (netlink port id 0) on a netlink socket, retrying
/// on `EINTR` and dropping datagrams from other ports. Returns the datagram's length (its real
/// length, possibly more than `buf`, when `flags` has `MSG_TRUNC`).
pub(crate) fn recv_from_kernel(
    fd: &impl AsRawFd,
    buf: &mut [u8],
    flags: i32,
) -> std::io::Result<usize> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    loop {
        let msg = nix::sys::socket::recvmsg::<nix::sys::socket::NetlinkAddr>(
            fd.as_raw_fd(),
            &mut iov,
            None,
            nix::sys::socket::MsgFlags::from_bits_retain(flags),
        );
        match msg {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(m) if m.address.is_none_or(|a| a.pid() == 0) => return Ok(m.bytes),
            Ok(_) => {}
        }
    }
}

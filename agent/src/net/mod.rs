//! Network effects at the daemon's edge: VRRP advertisement sockets, virtual addresses over
//! netlink, link events, and gratuitous ARP / unsolicited neighbour advertisements.
//!
//! Everything here moves bytes and metadata; it never encodes or decodes VRRP (that is
//! [`crate::packet`]'s job) and never sleeps or retries (timing is the daemon's job). Every
//! socket is opened in the network namespace of the calling thread and stays bound to it.
//!
//! - [`VrrpSocket`]: raw IP protocol 112 socket for IPv4 or IPv6, multicast or unicast,
//!   non-blocking, with TTL / hop limit 255 (or `unicast_ttl` per packet), and the receive metadata the RFC checks need.
//! - [`Rtnl`] (and the one-shot helpers [`add_address`], [`del_address`], [`list_addresses`],
//!   [`link`]): `NETLINK_ROUTE` requests (`netlink-sys` sockets, `netlink-packet-route` messages).
//! - [`LinkMonitor`]: a non-blocking `RTMGRP_LINK` subscription for `track_interface`.
//! - [`Announcer`]: gratuitous ARP and unsolicited NA on sockets kept open per interface
//!   ([`send_garp`] and [`send_unsolicited_na`] are one-shot versions for tests and tools).
//!
//! All fallible calls return [`NetError`], which names the interface or address and the
//! system call that failed. It converts into [`std::io::Error`] keeping the error kind, so
//! `tokio::io::unix::AsyncFd::try_io(|fd| fd.get_ref().recv().map_err(Into::into))` works.

mod announce;
pub mod diag;
mod netlink;
pub mod offload;
pub mod proc_connector;
mod socket;
mod sys;

use std::{fmt, io, net::IpAddr};

pub use announce::{
    build_garp_frame, build_unsolicited_na, send_garp, send_unsolicited_na, Announcer,
};
pub use netlink::{
    add_address, del_address, ifindex, link, list_addresses, parse_link_events, AddressInfo,
    LinkEvent, LinkInfo, LinkMonitor, Rtnl, IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
};
pub use socket::{parse_ipv4_header, Ipv4Header, Mode, Received, Recv, VrrpSocket};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The VRRP IPv4 multicast group, 224.0.0.18.
pub const VRRP_GROUP_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 18);
/// The VRRP IPv6 multicast group, ff02::12.
pub const VRRP_GROUP_V6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// Address family of a VRRP instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (VRRPv2 or VRRPv3).
    V4,
    /// IPv6 (VRRPv3 only).
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The VRRP multicast group of this family.
    pub fn group(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(VRRP_GROUP_V4),
            Self::V6 => IpAddr::V6(VRRP_GROUP_V6),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// Errors of the network effects module. Each names what it acted on and, where a system call
/// failed, which one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A system call (or netlink request) failed.
    #[error("{syscall} on {target}: {source}")]
    Sys {
        /// The system call or netlink request, e.g. `"setsockopt(IP_ADD_MEMBERSHIP)"`.
        syscall: &'static str,
        /// The interface, address or socket it acted on.
        target: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The named interface (or index) does not exist in this network namespace.
    #[error("interface {name} not found ({syscall})")]
    NoSuchInterface {
        /// Interface name, or `#index`.
        name: String,
        /// The call that could not find it.
        syscall: &'static str,
    },
    /// `RTM_NEWADDR` said `EEXIST`: the address is already on the interface.
    #[error("{addr}/{prefix_len} is already on ifindex {ifindex} (RTM_NEWADDR: EEXIST)")]
    AddressExists {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// `RTM_DELADDR` said `EADDRNOTAVAIL`: the address (with that prefix) is not there.
    #[error("{addr}/{prefix_len} is not on ifindex {ifindex} (RTM_DELADDR: EADDRNOTAVAIL)")]
    AddressNotFound {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// A multicast-mode socket needs a source address and the interface has none usable
    /// (IPv4: no primary address; IPv6: no link-local address that finished DAD).
    #[error("{ifname} has no usable {family} source address (RTM_GETADDR)")]
    NoSourceAddress {
        /// Interface name.
        ifname: String,
        /// Address family.
        family: Family,
    },
    /// A caller-supplied argument cannot work (family mismatch, label too long, ...).
    #[error("invalid argument for {target}: {reason}")]
    InvalidArgument {
        /// What the argument was for.
        target: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A received packet could not be delivered (truncated, bad IPv4 header, no metadata).
    #[error("bad packet on {ifname} ({syscall}): {reason}")]
    BadPacket {
        /// Interface the socket is bound to.
        ifname: String,
        /// The receiving call.
        syscall: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A netlink message (or IPv4 header) did not parse.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed, e.g. `"netlink message"`.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The kernel dropped netlink events (`ENOBUFS`): resynchronise with a dump ([`Rtnl::links`]).
    #[error("netlink event overrun on the {group} subscription (recv: ENOBUFS): events were lost")]
    Overrun {
        /// The multicast group subscribed to.
        group: &'static str,
    },
}

impl NetError {
    /// `Sys` from the current `errno`.
    pub(crate) fn last_os(syscall: &'static str, target: impl fmt::Display) -> Self {
        Self::Sys {
            syscall,
            target: target.to_string(),
            source: io::Error::last_os_error(),
        }
    }

    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(target: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            target: target.to_string(),
            reason: reason.into(),
        }
    }

    /// True when a non-blocking call found nothing to do (`EAGAIN`/`EWOULDBLOCK`): for sends,
    /// the socket buffer was full (count it); for receives, nothing is queued.
    pub fn is_would_block(&self) -> bool {
        matches!(self, Self::Sys { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }

    /// The OS error number behind this error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Sys { source, .. } => source.raw_os_error(),
            Self::AddressExists { .. } => Some(libc::EEXIST),
            Self::AddressNotFound { .. } => Some(libc::EADDRNOTAVAIL),
            Self::NoSuchInterface { .. } => Some(libc::ENODEV),
            Self::Overrun { .. } => Some(libc::ENOBUFS),
            _ => None,
        }
    }
}

impl From<NetError> for io::Error {
    /// Keeps the OS error kind (notably `WouldBlock`, which `AsyncFd::try_io` relies on).
    fn from(e: NetError) -> Self {
        let kind = match &e {
            NetError::Sys { source, .. } => source.kind(),
            NetError::NoSuchInterface { .. } | NetError::AddressNotFound { .. } => {
                io::ErrorKind::NotFound
            }
            NetError::AddressExists { .. } => io::ErrorKind::AlreadyExists,
            NetError::InvalidArgument { .. } => io::ErrorKind::InvalidInput,
            NetError::BadPacket { .. } | NetError::Malformed { .. } => io::ErrorKind::InvalidData,
            NetError::NoSourceAddress { .. } | NetError::Overrun { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Result alias of this module.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

//! Loading and attaching the embedded eBPF programs: the XDP advert filter and its maps.
//!
//! The object built by `cargo xtask build-ebpf` is embedded in the binary at build time (see
//! `agent/build.rs`), so a built `xvrrp` needs nothing beside it.
//!
//! - [`XdpDataplane`] attaches the filter to one interface, fills its maps from the interface's
//!   [`RxPolicy`](crate::packet::RxPolicy)s, hands out the valid adverts the program queued
//!   ([`XdpDataplane::drain_events`], with the ring buffer's fd for `AsyncFd`), and reads the
//!   per-peer counters. Dropping it detaches the program (aya detaches the links it owns).
//! - [`XdpTestProgram`] loads the same program without attaching it and runs it on frames with
//!   `BPF_PROG_TEST_RUN` (the parity tests and the benchmark).
//! - [`klog::KernelLog`] forwards the programs' log records (aya-log, error paths only) to the
//!   agent's log; each loaded object has one.
//!
//! The map layouts are in `agent_common`; the verdict order is the one of [`crate::packet`].
//!
//! Layout: `load` (the embedded object and its loader), `xdp` ([`XdpDataplane`]),
//! `peers` (per-peer counter rows), `test_run` ([`XdpTestProgram`]), [`tcp`] (the TCP tracker)
//! and [`klog`]. This file keeps the errors, the shared types and the compile-time layout asserts
//! (`Counter` indexes and `AdvertEvent` against `agent_common`).

pub mod klog;
mod load;
mod peers;
pub mod tcp;
mod test_run;
mod xdp;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use agent_common::{
    checksum_form, counter_index, family, AdvertEvent, ADVERT_EVENT_LEN, COUNTER_SLOTS,
};
use aya::{maps::MapError, programs::ProgramError};

use self::load::load_object;
pub use self::{
    load::has_embedded_object,
    peers::{PeerCounterRow, PeerSlot},
    test_run::{TestVerdict, XdpTestProgram},
    xdp::{events_ring_bytes, XdpAttachment, XdpDataplane},
};
use crate::packet::{ChecksumForm, Counter, Family, Version};

// The kernel side indexes counters with agent_common's constants: they must be `Counter`'s.
const _: () = {
    assert!(Counter::COUNT as usize == COUNTER_SLOTS);
    assert!(Counter::AdvertRcvd as usize == counter_index::ADVERT_RCVD);
    assert!(Counter::PacketLenErr as usize == counter_index::PACKET_LEN_ERR);
    assert!(Counter::AdvertIntervalErr as usize == counter_index::ADVERT_INTERVAL_ERR);
    assert!(Counter::IpTtlErr as usize == counter_index::IP_TTL_ERR);
    assert!(Counter::InvalidTypeRcvd as usize == counter_index::INVALID_TYPE_RCVD);
    assert!(Counter::AddrListErr as usize == counter_index::ADDR_LIST_ERR);
    assert!(Counter::InvalidAuthtype as usize == counter_index::INVALID_AUTHTYPE);
    assert!(Counter::AuthtypeMismatch as usize == counter_index::AUTHTYPE_MISMATCH);
    assert!(Counter::AuthFailure as usize == counter_index::AUTH_FAILURE);
    assert!(Counter::PriZeroRcvd as usize == counter_index::PRI_ZERO_RCVD);
    assert!(Counter::ChecksumErr as usize == counter_index::CHECKSUM_ERR);
    assert!(Counter::VersionErr as usize == counter_index::VERSION_ERR);
    assert!(Counter::VridErr as usize == counter_index::VRID_ERR);
    assert!(Counter::UnknownPeer as usize == counter_index::UNKNOWN_PEER);
    assert!(Counter::IpHeaderErr as usize == counter_index::IP_HEADER_ERR);
    assert!(Counter::OwnerDrop as usize == counter_index::OWNER_DROP);
    assert!(std::mem::size_of::<AdvertEvent>() == ADVERT_EVENT_LEN);
};

/// The ifindex `BPF_PROG_TEST_RUN` gives XDP programs: the loopback device of the caller's
/// network namespace, always 1. [`XdpTestProgram`] fills its maps for it.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// XDP action: drop the frame.
pub const XDP_DROP: u32 = 1;
/// XDP action: pass the frame on to the stack.
pub const XDP_PASS: u32 = 2;

/// Errors from loading or attaching the kernel programs. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The binary was built before `cargo xtask build-ebpf` produced the object.
    #[error("this xvrrp was built without its eBPF object: run `cargo xtask build-ebpf` and rebuild, or use --rx socket")]
    NoObject,
    /// The interface name cannot name an interface (empty, too long, or with a NUL byte).
    #[error("invalid interface name {0:?}; use --rx socket if XDP is not wanted")]
    BadInterface(String),
    /// No interface of that name exists in this network namespace.
    #[error("no interface named {0} in this network namespace: check the name (ip link), or use --rx socket")]
    NoSuchInterface(String),
    /// The embedded object did not load (verifier, permissions, kernel support).
    #[error(
        "loading the eBPF object failed: {0}; run as root on a kernel with BPF, or use --rx socket"
    )]
    Load(#[from] aya::EbpfError),
    /// A program or map is missing from the object or has the wrong type.
    #[error(
        "the eBPF object lacks {0}: rebuild with `cargo xtask build-ebpf`, or use --rx socket"
    )]
    Missing(&'static str),
    /// Another XDP program (another xvrrp agent, or any other XDP user) is attached already.
    #[error(
        "another XDP program is already attached to {iface} (a second xvrrp agent on this \
         interface?): stop it, or detach it with `ip link set dev {iface} xdp off`, or run this \
         agent with --rx socket"
    )]
    AlreadyAttached {
        /// Interface name.
        iface: String,
    },
    /// Loading or attaching a program failed.
    #[error(
        "XDP program on {iface} ({mode}): {source}; try --rx socket to receive adverts without XDP"
    )]
    Attach {
        /// Interface name.
        iface: String,
        /// The mode that was tried last.
        mode: AttachMode,
        /// The underlying error.
        #[source]
        source: ProgramError,
    },
    /// Reading or writing a map failed.
    #[error("eBPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The underlying error.
        #[source]
        source: MapError,
    },
    /// A policy cannot be expressed in the kernel maps.
    #[error("policy for VRID {vrid} cannot be loaded into the XDP maps: {why}")]
    Policy {
        /// The VRID.
        vrid: u8,
        /// What is wrong.
        why: &'static str,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(#[source] ProgramError),
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// How the XDP program should be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic mode when the driver refuses.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
        })
    }
}

/// Packet counts kept by the XDP program outside the per-peer counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpStats {
    /// Frames that were IPv4/IPv6 protocol 112, whatever their verdict.
    pub vrrp: u64,
    /// Valid adverts whose event was lost because the ring buffer was full.
    pub ring_full: u64,
    /// VRRP-like frames passed because they are not ours (another VRID or family, 802.1Q
    /// tagged, unparseable; see [`crate::packet::frame_owner`]).
    pub not_ours: u64,
}

/// A valid advert, as the XDP program reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XdpAdvert {
    /// When the program accepted it (CLOCK_MONOTONIC_COARSE, as `bpf_ktime_get_coarse_ns`: tick
    /// resolution, never ahead of CLOCK_MONOTONIC).
    pub timestamp: Duration,
    /// Ingress interface index.
    pub ifindex: u32,
    /// Source address.
    pub src: IpAddr,
    /// Destination address (the group, or our address in unicast mode).
    pub dst: IpAddr,
    /// VRRP version.
    pub version: Version,
    /// Virtual router identifier.
    pub vrid: u8,
    /// Advertised priority.
    pub priority: u8,
    /// Advert interval in centiseconds (v2: seconds × 100).
    pub interval_cs: u16,
    /// Address count.
    pub addr_count: u8,
    /// IPv4 TTL / IPv6 Hop Limit.
    pub ttl: u8,
    /// Which checksum form matched.
    pub checksum: ChecksumForm,
}

impl XdpAdvert {
    /// Decodes a ring buffer record; `None` when it is not a well-formed [`AdvertEvent`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < ADVERT_EVENT_LEN {
            return None;
        }
        // SAFETY: at least size_of::<AdvertEvent>() bytes; AdvertEvent is plain old data (every
        // bit pattern valid), read unaligned.
        let e: AdvertEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        Self::from_event(&e)
    }

    /// Decodes an [`AdvertEvent`]; `None` when a field is out of range.
    pub fn from_event(e: &AdvertEvent) -> Option<Self> {
        let fam = match e.family {
            family::V4 => Family::V4,
            family::V6 => Family::V6,
            _ => return None,
        };
        let version = match e.version {
            2 => Version::V2,
            3 => Version::V3,
            _ => return None,
        };
        let checksum = match e.checksum_form {
            checksum_form::V2 => ChecksumForm::V2,
            checksum_form::PSEUDO_HEADER => ChecksumForm::PseudoHeader,
            checksum_form::RFC9568 => ChecksumForm::Rfc9568,
            _ => return None,
        };
        Some(XdpAdvert {
            timestamp: Duration::from_nanos(e.timestamp_ns),
            ifindex: e.ifindex,
            src: addr_from(fam, &e.src),
            dst: addr_from(fam, &e.dst),
            version,
            vrid: e.vrid,
            priority: e.priority,
            interval_cs: e.interval_cs,
            addr_count: e.addr_count,
            ttl: e.ttl,
            checksum,
        })
    }
}

fn addr_from(fam: Family, bytes: &[u8; 16]) -> IpAddr {
    match fam {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(*bytes)),
    }
}

fn addr_bytes(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&o);
            out
        }
        IpAddr::V6(a) => a.octets(),
    }
}

fn family_code(f: Family) -> u8 {
    match f {
        Family::V4 => family::V4,
        Family::V6 => family::V6,
    }
}

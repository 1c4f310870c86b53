//! VRRPv2/v3 wire codec, checksums, PASS authentication and the userspace receive validator.
//!
//! The module is split in layers, each usable on its own:
//!
//! - the model: [`Advert`] (version specific fields in [`AdvertKind`], no reserved bits),
//!   [`Auth`], [`IpMeta`];
//! - [`encode`]: VRRP message bytes ([`encode_vrrp`]) and whole IPv4/IPv6 packets and Ethernet
//!   frames for tests and the XDP parity table ([`build_ipv4_packet`], [`build_ipv6_packet`],
//!   [`build_frame`]);
//! - [`decode`]: structural validation of what is on the wire ([`decode_vrrp`] for raw sockets,
//!   [`decode_ipv4_packet`], [`decode_ipv6_packet`], [`decode_frame`]), never panicking;
//! - [`rx`]: the receive checks against local configuration ([`RxPolicy`], [`check`],
//!   [`check_any`], [`receive_frame`], [`verdict`]);
//! - [`Counter`]: one counter per reason, keepalived names where they exist;
//! - [`testvectors`]: a named table of frames and their expected verdicts, shared with the XDP
//!   parity test.
//!
//! # Ownership
//!
//! Before any validation, [`frame_owner`] decides whether a frame is ours at all: the key is
//! (interface, VLAN, family, VRID), and an interface's instances own only its untagged frames of
//! their (family, VRID). Frames that are not ours are passed untouched (VRRP-like ones counted
//! once per interface as `not_ours`); only ours go through the steps below. So no step before
//! "total length within the buffer" (in 6) can fail for a frame of ours, and step 16 never
//! fails in [`verdict`] (the XDP program's view); [`receive_frame`] alone still runs it.
//!
//! # Verdict order
//!
//! A frame goes through the steps below in this order, and the first failing step decides the
//! verdict (and the one counter incremented). The XDP program must reproduce this order.
//!
//! Link and IP layer ([`decode_frame`], [`decode_ipv4_packet`], [`decode_ipv6_packet`]):
//!
//! 1. Ethernet header complete (14 bytes, 18 with one 802.1Q tag), else `Truncated`.
//! 2. EtherType (after at most one 802.1Q tag) is IPv4 or IPv6, else `NotVrrp` (a second tag,
//!    QinQ, is `NotVrrp` too).
//! 3. Fixed IP header complete (20 / 40 bytes), else `Truncated`.
//! 4. IP version nibble matches the EtherType (4 / 6), else `IpHeader(Version)`.
//! 5. Protocol / Next Header is 112, else `NotVrrp`. IPv6 extension headers are **not** walked:
//!    a packet whose first Next Header is not 112 is `NotVrrp` and left to the kernel (and the
//!    raw-socket path), which sees VRRP only after the stack has processed extension headers.
//! 6. IPv4, in this order: IHL at least 5 else `IpHeader(Ihl)`; IHL*4 bytes present else
//!    `Truncated`; total length at least IHL*4 else `IpHeader(TotalLength)`; total length
//!    within the buffer else `Truncated` (bytes after it, e.g. Ethernet padding, are ignored);
//!    not a fragment (MF clear, offset 0) else `IpHeader(Fragment)`; header checksum (unless
//!    disabled in [`DecodeOptions`]) else `IpHeader(Checksum)`.
//!    IPv6: payload length within the buffer else `Truncated` (trailing bytes ignored).
//!
//! VRRP message ([`decode_vrrp`]):
//!
//! 7. Source and destination are of one family, else `AddressFamilyMismatch`.
//! 8. At least the 8-byte fixed header, else `Truncated`.
//! 9. Version nibble 2 or 3 else `UnknownVersion`; version 2 over IPv6 is `V2OverIpv6`.
//! 10. Type 1 (ADVERTISEMENT), else `WrongType`.
//! 11. v3: address count non-zero, else `AddressCountZero` (RFC 9568). v2 adverts without
//!     addresses are valid (RFC 3768 has no such rule; keepalived sends them for instances
//!     without `virtual_ipaddress`, as in the DigitalOcean tutorial).
//! 12. Length exactly 8 + count * address size (+ 8 auth bytes for v2), else `LengthMismatch`.
//! 13. Checksum, else `Checksum`. v3 over IPv4 accepts both forms, pseudo-header form first.
//! 14. v2: auth type 0, 1 or 2, else `InvalidAuthType`.
//! 15. v3: max advert interval non-zero, else `V3IntervalZero`.
//!
//! Local policy ([`check`], [`check_any`]):
//!
//! 16. VRID configured on the interface for this address family, else `VridNotConfigured`.
//! 17. Unicast mode: source is a configured peer, else `UnknownPeer`.
//! 18. TTL / Hop Limit is 255 when the (peer or multicast) policy requires it, else `Ttl`.
//! 19. Version equals the configured one, else `VersionMismatch`.
//! 20. We are not the address owner (priority 255) for this VRID, else `Owner`.
//! 21. v2: auth type equals the configured one, else `AuthTypeMismatch`.
//! 22. v2 PASS: the 8 data bytes equal the configured ones, else `AuthFailure`.
//! 23. v2: advert interval equals the configured one, else `AdvertIntervalMismatch`.
//!
//! Only then is the advert accepted and counted as `advert_rcvd` (plus `pri_zero_rcvd` when its
//! priority is 0), like keepalived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod checksum;
pub mod counter;
pub mod decode;
pub mod encode;
pub mod rx;
#[cfg(any(test, feature = "testing"))]
pub mod testvectors;

pub use counter::Counter;
pub use decode::{
    decode_frame, decode_frame_with, decode_ipv4_packet, decode_ipv4_packet_with,
    decode_ipv6_packet, decode_vrrp, DecodeError, DecodeOptions, Frame, IpHeaderError, Layer,
    NotVrrp, Received,
};
pub use encode::{
    build_frame, build_ip_packet, build_ipv4_packet, build_ipv6_packet, encode_vrrp, wrap_ethernet,
    wrap_ipv4, wrap_ipv6, EncodeError, EthParams, TxMeta, VlanTag,
};
pub use rx::{
    check, check_any, frame_owner, message_owner, receive_frame, receive_vrrp, verdict, CheckError,
    Owner, RxAuth, RxError, RxPolicy, SourcePolicy, TtlCheck, UnicastPeer, Verdict, VersionPolicy,
};

/// IP protocol number (and IPv6 Next Header) of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The VRRP IPv4 multicast group, 224.0.0.18.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The VRRP IPv6 multicast group, ff02::12.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / Hop Limit VRRP packets are sent with and (by default) required to arrive with.
pub const VRRP_TTL: u8 = 255;
/// VRRP packet type of an advertisement, the only type defined.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed VRRP header (both versions).
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data trailer.
pub const AUTH_DATA_LEN: usize = 8;
/// Largest VRRPv3 Max Advert Interval (12 bits, centiseconds).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2, RFC 3768 (IPv4 only).
    V2,
    /// VRRPv3, RFC 5798 / RFC 9568 (IPv4 and IPv6).
    V3,
}

impl Version {
    /// The number carried in the version nibble.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// An IP address family (shared with the protocol core, [`crate::vrrp::Family`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Size of one address of this family on the wire.
    pub fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 section 5.3.6; the AH type comes from RFC 2338).
///
/// PASS is plain text on the wire: a guard against misconfiguration, not security.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: no authentication. The 8 data bytes are sent as zero and ignored on receive.
    None,
    /// Type 1: simple text password, 8 bytes, zero padded (see [`pass_data`]).
    Pass([u8; AUTH_DATA_LEN]),
    /// Type 2: IP Authentication Header (RFC 2338). Only the type and the raw 8 data bytes are
    /// modelled; xvrrp neither builds nor verifies AH.
    Ah([u8; AUTH_DATA_LEN]),
}

/// The PASS data is the configured `auth_pass`: `Debug` never shows it (logs, panics, status).
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Pass(_) => f.write_str("Pass(<redacted>)"),
            Auth::Ah(_) => f.write_str("Ah(<redacted>)"),
        }
    }
}

impl Auth {
    /// The auth type number carried on the wire.
    pub fn type_number(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
            Auth::Ah(_) => 2,
        }
    }

    /// A PASS authentication from a configured password (see [`pass_data`]).
    pub fn pass(password: &str) -> Auth {
        Auth::Pass(pass_data(password))
    }
}

/// The 8 bytes a configured `auth_pass` puts on the wire: its first 8 bytes, zero padded.
///
/// Like keepalived, only the first 8 bytes of the password count; the rest is ignored.
pub fn pass_data(password: &str) -> [u8; AUTH_DATA_LEN] {
    let mut out = [0u8; AUTH_DATA_LEN];
    for (dst, src) in out.iter_mut().zip(password.as_bytes()) {
        *dst = *src;
    }
    out
}

/// The version specific part of an advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdvertKind {
    /// VRRPv2: interval in whole seconds, and authentication.
    V2 {
        /// Advertisement interval in seconds (8 bits).
        interval_secs: u8,
        /// Authentication type and data.
        auth: Auth,
    },
    /// VRRPv3: Max Advert Interval in centiseconds (12 bits, 1..=4095 on a valid packet).
    V3 {
        /// Max Advert Interval in centiseconds.
        interval_cs: u16,
    },
}

/// A VRRP advertisement as the protocol sees it (reserved bits and the checksum are not part of
/// the model).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    /// Virtual router identifier (1..=255 when configured; 0 decodes but no policy accepts it).
    pub vrid: u8,
    /// Priority: 255 owner, 1..=254 backup, 0 "master is leaving".
    pub priority: u8,
    /// The virtual addresses, all of the family of the IP packet carrying the advert.
    pub addresses: Vec<IpAddr>,
    /// Version specific fields.
    pub kind: AdvertKind,
}

impl Advert {
    /// A VRRPv2 advertisement.
    pub fn v2(
        vrid: u8,
        priority: u8,
        addresses: Vec<IpAddr>,
        interval_secs: u8,
        auth: Auth,
    ) -> Self {
        Advert {
            vrid,
            priority,
            addresses,
            kind: AdvertKind::V2 {
                interval_secs,
                auth,
            },
        }
    }

    /// A VRRPv3 advertisement (interval in centiseconds).
    pub fn v3(vrid: u8, priority: u8, addresses: Vec<IpAddr>, interval_cs: u16) -> Self {
        Advert {
            vrid,
            priority,
            addresses,
            kind: AdvertKind::V3 { interval_cs },
        }
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        match self.kind {
            AdvertKind::V2 { .. } => Version::V2,
            AdvertKind::V3 { .. } => Version::V3,
        }
    }

    /// The advertisement interval in microseconds (v2: seconds * 1_000_000; v3: centiseconds *
    /// 10_000). Exact: both units are whole multiples of a microsecond.
    pub fn interval_us(&self) -> u64 {
        match self.kind {
            AdvertKind::V2 { interval_secs, .. } => u64::from(interval_secs) * 1_000_000,
            AdvertKind::V3 { interval_cs } => u64::from(interval_cs) * 10_000,
        }
    }

    /// The v2 authentication, `None` for v3.
    pub fn auth(&self) -> Option<&Auth> {
        match &self.kind {
            AdvertKind::V2 { auth, .. } => Some(auth),
            AdvertKind::V3 { .. } => None,
        }
    }

    /// Length of the encoded VRRP message.
    pub fn encoded_len(&self) -> usize {
        let addr_len = self
            .addresses
            .first()
            .map_or(4, |a| Family::of(a).addr_len());
        let auth = match self.kind {
            AdvertKind::V2 { .. } => AUTH_DATA_LEN,
            AdvertKind::V3 { .. } => 0,
        };
        HEADER_LEN + self.addresses.len() * addr_len + auth
    }
}

/// What the IP layer tells us about a received VRRP message (raw sockets: from the IP header or
/// ancillary data such as `IP_TTL` / `IPV6_HOPLIMIT` and `IP_PKTINFO` / `IPV6_PKTINFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpMeta {
    /// Source address of the packet.
    pub src: IpAddr,
    /// Destination address (the multicast group, or our address in unicast mode). It is part of
    /// the v3 checksum pseudo-header.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 Hop Limit.
    pub ttl_or_hop_limit: u8,
}

/// How the v3 checksum of an IPv4 packet is computed on transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum V3Ipv4Checksum {
    /// RFC 5798: with the IPv4 pseudo-header (src, dst, zero, 112, VRRP length). keepalived's,
    /// FRR's and Wireshark's default, hence ours.
    #[default]
    PseudoHeader,
    /// RFC 9568: over the VRRP message only (Cisco, Juniper, Arista).
    Rfc9568,
}

/// Which checksum computation a received message matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// VRRPv2: over the VRRP message only.
    V2,
    /// VRRPv3 with the IPv4 or IPv6 pseudo-header.
    PseudoHeader,
    /// VRRPv3 over IPv4 without pseudo-header (RFC 9568).
    Rfc9568,
}

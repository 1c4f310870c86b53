//! Decoding and structural validation. Nothing here panics on any input: every read goes through
//! `get` or a fixed-size array.
//!
//! The order of the checks is the one documented in the [module](super) docs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::encode::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN};
use super::{
    Advert, AdvertKind, Auth, ChecksumForm, Counter, Family, IpMeta, Version, AUTH_DATA_LEN,
    HEADER_LEN, IPPROTO_VRRP, TYPE_ADVERTISEMENT, V3_MAX_INTERVAL_CS,
};

/// Where a truncation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet header or 802.1Q tag.
    Ethernet,
    /// IPv4 or IPv6 header, or the IP length fields.
    Ip,
    /// The VRRP message.
    Vrrp,
}

/// Why a packet was not identified as VRRP (passed on untouched; not an error of the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotVrrp {
    /// EtherType (after at most one 802.1Q tag) other than IPv4 / IPv6.
    EtherType(u16),
    /// IPv4 protocol or first IPv6 Next Header other than 112 (IPv6 extension headers included).
    Protocol(u8),
}

/// A defect of the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IpHeaderError {
    /// The version nibble does not match the EtherType (4 for IPv4, 6 for IPv6).
    #[error("IP version nibble {0} does not match the EtherType")]
    Version(u8),
    /// IPv4 IHL below 5 words.
    #[error("IPv4 header length of {0} words is below 5")]
    Ihl(u8),
    /// IPv4 total length shorter than the header.
    #[error("IPv4 total length {total} is shorter than the {header}-byte header")]
    TotalLength {
        /// Total length field.
        total: u16,
        /// Header length from the IHL.
        header: usize,
    },
    /// An IPv4 fragment (MF set or non-zero offset): VRRP is never fragmented, and a fragment
    /// cannot be validated.
    #[error("IPv4 fragment")]
    Fragment,
    /// IPv4 header checksum wrong.
    #[error("IPv4 header checksum mismatch")]
    Checksum,
}

/// Why bytes are not a valid VRRP packet. Each variant maps to one [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// Not VRRP at all: leave it to the rest of the stack.
    #[error("not VRRP: {0:?}")]
    NotVrrp(NotVrrp),
    /// The buffer ends inside a header or before the length the IP header announces.
    #[error("truncated {layer:?}: need {needed} bytes, have {available}")]
    Truncated {
        /// Where.
        layer: Layer,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A bad IP header.
    #[error("bad IP header: {0}")]
    IpHeader(IpHeaderError),
    /// Source and destination addresses of different families (an [`IpMeta`] built wrong).
    #[error("source and destination are of different address families")]
    AddressFamilyMismatch,
    /// Version nibble other than 2 or 3.
    #[error("unknown VRRP version {0}")]
    UnknownVersion(u8),
    /// VRRPv2 received over IPv6 (v2 is IPv4 only).
    #[error("VRRPv2 over IPv6")]
    V2OverIpv6,
    /// Type other than 1 (ADVERTISEMENT).
    #[error("VRRP type {0} is not ADVERTISEMENT (1)")]
    WrongType(u8),
    /// Address count 0 (RFC 9568 requires at least one address).
    #[error("address count is 0")]
    AddressCountZero,
    /// The VRRP length does not match the address count.
    #[error("VRRP length {actual} does not match {count} addresses ({expected} bytes)")]
    LengthMismatch {
        /// The count field.
        count: u8,
        /// Length implied by the count.
        expected: usize,
        /// Length received.
        actual: usize,
    },
    /// The checksum matches no accepted form.
    #[error("VRRP checksum mismatch (field {received:#06x})")]
    Checksum {
        /// The checksum field as received.
        received: u16,
    },
    /// v2 auth type other than 0, 1, 2.
    #[error("invalid VRRPv2 auth type {0}")]
    InvalidAuthType(u8),
    /// v3 Max Advert Interval of 0.
    #[error("VRRPv3 max advert interval is 0")]
    V3IntervalZero,
}

impl DecodeError {
    /// The counter this error increments.
    pub fn counter(&self) -> Counter {
        match self {
            DecodeError::NotVrrp(_) => Counter::NotVrrp,
            DecodeError::Truncated { .. } | DecodeError::LengthMismatch { .. } => {
                Counter::PacketLenErr
            }
            DecodeError::IpHeader(_) | DecodeError::AddressFamilyMismatch => Counter::IpHeaderErr,
            DecodeError::UnknownVersion(_) | DecodeError::V2OverIpv6 => Counter::VersionErr,
            DecodeError::WrongType(_) => Counter::InvalidTypeRcvd,
            DecodeError::AddressCountZero => Counter::AddrListErr,
            DecodeError::Checksum { .. } => Counter::ChecksumErr,
            DecodeError::InvalidAuthType(_) => Counter::InvalidAuthtype,
            DecodeError::V3IntervalZero => Counter::AdvertIntervalErr,
        }
    }
}

/// Decoding options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify the IPv4 header checksum (default true). Raw sockets get packets the kernel already
    /// verified; XDP sees them before the kernel does.
    pub verify_ipv4_header_checksum: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            verify_ipv4_header_checksum: true,
        }
    }
}

/// A structurally valid advert with what the IP layer said about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Received {
    /// The advert.
    pub advert: Advert,
    /// Source, destination, TTL / Hop Limit.
    pub meta: IpMeta,
    /// Which checksum form matched.
    pub checksum: ChecksumForm,
}

/// A decoded Ethernet frame carrying a structurally valid advert.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// The 802.1Q tag, if there was one.
    pub vlan: Option<super::VlanTag>,
    /// The IP packet's content.
    pub packet: Received,
}

fn truncated(layer: Layer, needed: usize, available: usize) -> DecodeError {
    DecodeError::Truncated {
        layer,
        needed,
        available,
    }
}

/// A fixed-size array from the start of `bytes`, or `Truncated`.
fn take<const N: usize>(bytes: &[u8], layer: Layer) -> Result<[u8; N], DecodeError> {
    bytes
        .get(..N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(truncated(layer, N, bytes.len()))
}

fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Decodes and structurally validates a VRRP message (from the version/type byte to the end, as
/// a raw socket delivers it after the IP header; IPv6 raw sockets give no IP header at all).
///
/// `payload` must be exactly the IP payload: trailing bytes are a `LengthMismatch`.
pub fn decode_vrrp(payload: &[u8], meta: &IpMeta) -> Result<Received, DecodeError> {
    let family = Family::of(&meta.src);
    if Family::of(&meta.dst) != family {
        return Err(DecodeError::AddressFamilyMismatch);
    }
    let [vt, vrid, priority, count, b4, b5, c0, c1] = take::<HEADER_LEN>(payload, Layer::Vrrp)?;
    let version = match vt >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        n => return Err(DecodeError::UnknownVersion(n)),
    };
    if version == Version::V2 && family == Family::V6 {
        return Err(DecodeError::V2OverIpv6);
    }
    if vt & 0x0f != TYPE_ADVERTISEMENT {
        return Err(DecodeError::WrongType(vt & 0x0f));
    }
    if count == 0 && version == Version::V3 {
        // RFC 9568 section 5.2.5 requires at least one address in a VRRPv3 advert. RFC 3768 has
        // no such rule for v2, and keepalived sends v2 adverts with no addresses when an instance
        // has no `virtual_ipaddress` (the DigitalOcean tutorial's configuration, which moves a
        // cloud IP instead): they are accepted, so xvrrp and keepalived interoperate there.
        return Err(DecodeError::AddressCountZero);
    }
    let addrs_len = usize::from(count) * family.addr_len();
    let auth_len = if version == Version::V2 {
        AUTH_DATA_LEN
    } else {
        0
    };
    let expected = HEADER_LEN + addrs_len + auth_len;
    // Exact length: like keepalived we reject both short and long messages. Link-layer padding
    // has already been cut off by the IP length fields.
    if payload.len() != expected {
        return Err(DecodeError::LengthMismatch {
            count,
            expected,
            actual: payload.len(),
        });
    }
    let checksum = match version {
        Version::V2 => checksum::verifies(0, payload).then_some(ChecksumForm::V2),
        Version::V3 => {
            let pseudo = checksum::pseudo_header_sum(&meta.src, &meta.dst, payload.len())
                .ok_or(DecodeError::AddressFamilyMismatch)?;
            // Pseudo-header form first (keepalived's default): if a message happens to verify in
            // both forms it is reported as PseudoHeader. RFC 9568 form only exists for IPv4.
            if checksum::verifies(pseudo, payload) {
                Some(ChecksumForm::PseudoHeader)
            } else if family == Family::V4 && checksum::verifies(0, payload) {
                Some(ChecksumForm::Rfc9568)
            } else {
                None
            }
        }
    }
    .ok_or(DecodeError::Checksum {
        received: be16(c0, c1),
    })?;

    let addr_bytes = payload
        .get(HEADER_LEN..HEADER_LEN + addrs_len)
        .unwrap_or_default();
    let addresses: Vec<IpAddr> = match family {
        Family::V4 => addr_bytes
            .chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .collect(),
        Family::V6 => addr_bytes
            .chunks_exact(16)
            .filter_map(|c| <[u8; 16]>::try_from(c).ok())
            .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
            .collect(),
    };

    let kind = match version {
        Version::V2 => {
            let data = payload
                .get(HEADER_LEN + addrs_len..)
                .and_then(|s| <[u8; AUTH_DATA_LEN]>::try_from(s).ok())
                .unwrap_or_default();
            let auth = match b4 {
                0 => Auth::None,
                1 => Auth::Pass(data),
                2 => Auth::Ah(data),
                t => return Err(DecodeError::InvalidAuthType(t)),
            };
            AdvertKind::V2 {
                interval_secs: b5,
                auth,
            }
        }
        Version::V3 => {
            // The top 4 bits are reserved: ignored on receive.
            let interval_cs = be16(b4, b5) & V3_MAX_INTERVAL_CS;
            if interval_cs == 0 {
                return Err(DecodeError::V3IntervalZero);
            }
            AdvertKind::V3 { interval_cs }
        }
    };
    Ok(Received {
        advert: Advert {
            vrid,
            priority,
            addresses,
            kind,
        },
        meta: *meta,
        checksum,
    })
}

/// Decodes an IPv4 packet (header, then VRRP), verifying the IPv4 header checksum.
pub fn decode_ipv4_packet(bytes: &[u8]) -> Result<Received, DecodeError> {
    decode_ipv4_packet_with(bytes, DecodeOptions::default())
}

/// Decodes an IPv4 packet with explicit options.
///
/// IPv4 options (IHL > 5) are allowed and skipped. Bytes after the total length are ignored.
pub fn decode_ipv4_packet_with(bytes: &[u8], opts: DecodeOptions) -> Result<Received, DecodeError> {
    let h = take::<20>(bytes, Layer::Ip)?;
    let [vihl, _tos, t0, t1, _id0, _id1, f0, f1, ttl, proto, ..] = h;
    if vihl >> 4 != 4 {
        return Err(DecodeError::IpHeader(IpHeaderError::Version(vihl >> 4)));
    }
    if proto != IPPROTO_VRRP {
        return Err(DecodeError::NotVrrp(NotVrrp::Protocol(proto)));
    }
    let ihl = vihl & 0x0f;
    if ihl < 5 {
        return Err(DecodeError::IpHeader(IpHeaderError::Ihl(ihl)));
    }
    let hlen = usize::from(ihl) * 4;
    let header = bytes
        .get(..hlen)
        .ok_or(truncated(Layer::Ip, hlen, bytes.len()))?;
    let total = be16(t0, t1);
    if usize::from(total) < hlen {
        return Err(DecodeError::IpHeader(IpHeaderError::TotalLength {
            total,
            header: hlen,
        }));
    }
    let packet = bytes.get(..usize::from(total)).ok_or(truncated(
        Layer::Ip,
        usize::from(total),
        bytes.len(),
    ))?;
    if be16(f0, f1) & 0x3fff != 0 {
        return Err(DecodeError::IpHeader(IpHeaderError::Fragment));
    }
    if opts.verify_ipv4_header_checksum && !checksum::verifies(0, header) {
        return Err(DecodeError::IpHeader(IpHeaderError::Checksum));
    }
    let [.., s0, s1, s2, s3, d0, d1, d2, d3] = h;
    let meta = IpMeta {
        src: IpAddr::V4(Ipv4Addr::new(s0, s1, s2, s3)),
        dst: IpAddr::V4(Ipv4Addr::new(d0, d1, d2, d3)),
        ttl_or_hop_limit: ttl,
    };
    decode_vrrp(packet.get(hlen..).unwrap_or_default(), &meta)
}

/// Decodes an IPv6 packet (fixed header, then VRRP).
///
/// Extension headers are not walked: a first Next Header other than 112 is `NotVrrp` (see the
/// [module](super) docs). Bytes after the payload length are ignored.
pub fn decode_ipv6_packet(bytes: &[u8]) -> Result<Received, DecodeError> {
    let h = take::<40>(bytes, Layer::Ip)?;
    let [v0, _, _, _, p0, p1, next_header, hop_limit, ..] = h;
    if v0 >> 4 != 6 {
        return Err(DecodeError::IpHeader(IpHeaderError::Version(v0 >> 4)));
    }
    if next_header != IPPROTO_VRRP {
        return Err(DecodeError::NotVrrp(NotVrrp::Protocol(next_header)));
    }
    let end = 40 + usize::from(be16(p0, p1));
    let payload = bytes
        .get(40..end)
        .ok_or(truncated(Layer::Ip, end, bytes.len()))?;
    let src = h
        .get(8..24)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .unwrap_or_default();
    let dst = h
        .get(24..40)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .unwrap_or_default();
    let meta = IpMeta {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        ttl_or_hop_limit: hop_limit,
    };
    decode_vrrp(payload, &meta)
}

/// Decodes an Ethernet frame (at most one 802.1Q tag; no FCS) carrying IPv4 or IPv6 VRRP,
/// verifying the IPv4 header checksum.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, DecodeError> {
    decode_frame_with(bytes, DecodeOptions::default())
}

/// Decodes an Ethernet frame with explicit options.
///
/// Only one 802.1Q (0x8100) tag is understood: QinQ (0x88a8 outside, or a second 0x8100) is
/// `NotVrrp`.
pub fn decode_frame_with(bytes: &[u8], opts: DecodeOptions) -> Result<Frame, DecodeError> {
    let eth = take::<14>(bytes, Layer::Ethernet)?;
    let [d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, e0, e1] = eth;
    let (ethertype, vlan, offset) = if be16(e0, e1) == ETHERTYPE_VLAN {
        let tag = take::<18>(bytes, Layer::Ethernet)?;
        let [.., t0, t1, i0, i1] = tag;
        (
            be16(i0, i1),
            Some(super::VlanTag::from_tci(be16(t0, t1))),
            18,
        )
    } else {
        (be16(e0, e1), None, 14)
    };
    let rest = bytes.get(offset..).unwrap_or_default();
    let packet = match ethertype {
        ETHERTYPE_IPV4 => decode_ipv4_packet_with(rest, opts)?,
        ETHERTYPE_IPV6 => decode_ipv6_packet(rest)?,
        other => return Err(DecodeError::NotVrrp(NotVrrp::EtherType(other))),
    };
    Ok(Frame {
        dst_mac: [d0, d1, d2, d3, d4, d5],
        src_mac: [s0, s1, s2, s3, s4, s5],
        vlan,
        packet,
    })
}

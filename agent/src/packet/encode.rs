//! Encoding: VRRP messages, and whole IPv4/IPv6 packets and Ethernet frames.
//!
//! The encoder accepts exactly the adverts the decoder accepts (so every encodable advert
//! round-trips): 1..=255 addresses, all of the family of `src`/`dst`; v2 only over IPv4; v3
//! interval 1..=4095 centiseconds. VRID and priority are not restricted (VRID 0 decodes; no
//! receive policy accepts it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{
    Advert, AdvertKind, Auth, Family, V3Ipv4Checksum, AUTH_DATA_LEN, HEADER_LEN, IPPROTO_VRRP,
    TYPE_ADVERTISEMENT, V3_MAX_INTERVAL_CS, VRRP_TTL,
};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType (TPID) of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Minimum Ethernet frame length without FCS; shorter frames are zero padded like a NIC does.
pub const ETH_MIN_LEN: usize = 60;
/// DSCP/TOS keepalived sends with (IPTOS_PREC_INTERNETCONTROL).
pub const TOS_INTERNETCONTROL: u8 = 0xc0;

/// Why an advert cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An advert carries at least one address (RFC 9568).
    #[error("an advertisement needs at least one address")]
    NoAddresses,
    /// The count field is 8 bits.
    #[error("{0} addresses do not fit the 8-bit count")]
    TooManyAddresses(usize),
    /// Addresses must all be of the family of the IP packet.
    #[error("address family of the virtual addresses differs from the packet's")]
    AddressFamilyMismatch,
    /// Source and destination of the IP packet are of different families.
    #[error("source and destination are of different address families")]
    SrcDstFamilyMismatch,
    /// VRRPv2 is IPv4 only.
    #[error("VRRPv2 is defined for IPv4 only")]
    V2OverIpv6,
    /// v3 Max Advert Interval is 12 bits and must not be 0.
    #[error("VRRPv3 interval {0} cs is outside 1..=4095")]
    V3IntervalOutOfRange(u16),
    /// A builder for one family was given the other.
    #[error("this builder needs {0:?} source and destination")]
    WrongFamily(Family),
    /// The IP payload does not fit the IP length field.
    #[error("payload of {0} bytes does not fit the IP length field")]
    PayloadTooLong(usize),
    /// A VLAN ID is 12 bits, the PCP 3 bits.
    #[error("VLAN tag {0:?} out of range (VID 0..=4095, PCP 0..=7)")]
    VlanOutOfRange(VlanTag),
}

/// Transmit parameters of one advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxMeta {
    /// Source address (the interface's primary address).
    pub src: IpAddr,
    /// Destination: the multicast group, or the unicast peer in unicast mode. It is part of the
    /// v3 checksum pseudo-header.
    pub dst: IpAddr,
    /// TTL / Hop Limit of the IP packet builders (default 255).
    pub ttl: u8,
    /// IPv4 TOS / IPv6 Traffic Class of the IP packet builders (default 0xc0 like keepalived).
    pub tos: u8,
    /// v3 over IPv4 checksum form (default: pseudo-header, keepalived's).
    pub v3_ipv4_checksum: V3Ipv4Checksum,
}

impl TxMeta {
    /// Parameters with TTL 255, TOS 0xc0 and the pseudo-header v3/IPv4 checksum.
    pub fn new(src: IpAddr, dst: IpAddr) -> Self {
        TxMeta {
            src,
            dst,
            ttl: VRRP_TTL,
            tos: TOS_INTERNETCONTROL,
            v3_ipv4_checksum: V3Ipv4Checksum::default(),
        }
    }
}

/// One 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// VLAN identifier, 12 bits.
    pub vid: u16,
    /// Priority code point, 3 bits.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
}

impl VlanTag {
    /// A tag with this VID, PCP 0, DEI clear.
    pub fn new(vid: u16) -> Self {
        VlanTag {
            vid,
            pcp: 0,
            dei: false,
        }
    }

    /// The Tag Control Information field.
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    /// The tag carried in a TCI field.
    pub fn from_tci(tci: u16) -> Self {
        VlanTag {
            vid: tci & 0x0fff,
            // Three bits: always fits.
            pcp: u8::try_from(tci >> 13).unwrap_or(0),
            dei: tci & 0x1000 != 0,
        }
    }
}

/// Ethernet framing of a built frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthParams {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Optional single 802.1Q tag.
    pub vlan: Option<VlanTag>,
}

impl EthParams {
    /// Framing like a VRRP router's: source is the virtual router MAC (00:00:5e:00:01:VRID for
    /// IPv4, 00:00:5e:00:02:VRID for IPv6), destination the multicast MAC of `dst`
    /// (01:00:5e:... / 33:33:...), or the placeholder 02:00:00:00:00:01 for a unicast `dst`.
    pub fn virtual_router(vrid: u8, dst: &IpAddr) -> Self {
        let (src_mac, dst_mac) = match dst {
            IpAddr::V4(d) => {
                let [_, b, c, e] = d.octets();
                let dst_mac = if d.is_multicast() {
                    [0x01, 0x00, 0x5e, b & 0x7f, c, e]
                } else {
                    [0x02, 0, 0, 0, 0, 1]
                };
                ([0x00, 0x00, 0x5e, 0x00, 0x01, vrid], dst_mac)
            }
            IpAddr::V6(d) => {
                let o = d.octets();
                let dst_mac = match (d.is_multicast(), o.get(12..16)) {
                    (true, Some(&[a, b, c, e])) => [0x33, 0x33, a, b, c, e],
                    _ => [0x02, 0, 0, 0, 0, 1],
                };
                ([0x00, 0x00, 0x5e, 0x00, 0x02, vrid], dst_mac)
            }
        };
        EthParams {
            dst_mac,
            src_mac,
            vlan: None,
        }
    }

    /// The same framing with one 802.1Q tag.
    pub fn with_vlan(mut self, tag: VlanTag) -> Self {
        self.vlan = Some(tag);
        self
    }
}

/// Checks the advert against the transmit addresses; returns the family.
fn validate(advert: &Advert, meta: &TxMeta) -> Result<Family, EncodeError> {
    let family = Family::of(&meta.src);
    if Family::of(&meta.dst) != family {
        return Err(EncodeError::SrcDstFamilyMismatch);
    }
    // VRRPv3 adverts need an address (RFC 9568 5.2.5); v2 adverts may have none (keepalived
    // sends such adverts for instances without virtual_ipaddress, see decode_vrrp).
    if advert.addresses.is_empty() && matches!(advert.kind, AdvertKind::V3 { .. }) {
        return Err(EncodeError::NoAddresses);
    }
    if advert.addresses.len() > usize::from(u8::MAX) {
        return Err(EncodeError::TooManyAddresses(advert.addresses.len()));
    }
    if advert.addresses.iter().any(|a| Family::of(a) != family) {
        return Err(EncodeError::AddressFamilyMismatch);
    }
    match advert.kind {
        AdvertKind::V2 { .. } if family == Family::V6 => Err(EncodeError::V2OverIpv6),
        AdvertKind::V3 { interval_cs } if interval_cs == 0 || interval_cs > V3_MAX_INTERVAL_CS => {
            Err(EncodeError::V3IntervalOutOfRange(interval_cs))
        }
        _ => Ok(family),
    }
}

/// Encodes the VRRP message (from the version/type byte to the end, checksum filled in).
///
/// Checksum: v2 over the message only; v3/IPv6 with the IPv6 pseudo-header; v3/IPv4 as
/// `meta.v3_ipv4_checksum` says (pseudo-header with `meta.src`/`meta.dst` by default).
pub fn encode_vrrp(advert: &Advert, meta: &TxMeta) -> Result<Vec<u8>, EncodeError> {
    let family = validate(advert, meta)?;
    let count = u8::try_from(advert.addresses.len())
        .map_err(|_| EncodeError::TooManyAddresses(advert.addresses.len()))?;
    let mut msg = Vec::with_capacity(advert.encoded_len());
    msg.push((advert.version().number() << 4) | TYPE_ADVERTISEMENT);
    msg.push(advert.vrid);
    msg.push(advert.priority);
    msg.push(count);
    match advert.kind {
        AdvertKind::V2 {
            interval_secs,
            auth,
        } => {
            msg.extend_from_slice(&[auth.type_number(), interval_secs]);
        }
        // The 4 reserved bits are sent as zero.
        AdvertKind::V3 { interval_cs } => {
            msg.extend_from_slice(&(interval_cs & V3_MAX_INTERVAL_CS).to_be_bytes())
        }
    }
    msg.extend_from_slice(&[0, 0]);
    for addr in &advert.addresses {
        match addr {
            IpAddr::V4(a) => msg.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => msg.extend_from_slice(&a.octets()),
        }
    }
    let initial = match advert.kind {
        AdvertKind::V2 { auth, .. } => {
            let data = match auth {
                Auth::None => [0; AUTH_DATA_LEN],
                Auth::Pass(d) | Auth::Ah(d) => d,
            };
            msg.extend_from_slice(&data);
            0
        }
        AdvertKind::V3 { .. } => {
            if family == Family::V4 && meta.v3_ipv4_checksum == V3Ipv4Checksum::Rfc9568 {
                0
            } else {
                checksum::pseudo_header_sum(&meta.src, &meta.dst, msg.len())
                    .ok_or(EncodeError::SrcDstFamilyMismatch)?
            }
        }
    };
    let ck = checksum::compute(initial, &msg);
    if let Some(field) = msg.get_mut(6..HEADER_LEN) {
        field.copy_from_slice(&ck.to_be_bytes());
    }
    Ok(msg)
}

/// Wraps `payload` in an IPv4 header (IHL 5, ID 0, no fragmentation flags, header checksum).
pub fn wrap_ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    tos: u8,
    protocol: u8,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let total = u16::try_from(payload.len() + 20)
        .map_err(|_| EncodeError::PayloadTooLong(payload.len()))?;
    let mut pkt = Vec::with_capacity(usize::from(total));
    pkt.extend_from_slice(&[0x45, tos]);
    pkt.extend_from_slice(&total.to_be_bytes());
    pkt.extend_from_slice(&[0, 0, 0, 0, ttl, protocol, 0, 0]);
    pkt.extend_from_slice(&src.octets());
    pkt.extend_from_slice(&dst.octets());
    let ck = checksum::internet_checksum(&pkt);
    if let Some(field) = pkt.get_mut(10..12) {
        field.copy_from_slice(&ck.to_be_bytes());
    }
    pkt.extend_from_slice(payload);
    Ok(pkt)
}

/// Wraps `payload` in a fixed IPv6 header (flow label 0, no extension headers).
pub fn wrap_ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    traffic_class: u8,
    next_header: u8,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let plen =
        u16::try_from(payload.len()).map_err(|_| EncodeError::PayloadTooLong(payload.len()))?;
    let mut pkt = Vec::with_capacity(40 + payload.len());
    let first = (6u32 << 28) | (u32::from(traffic_class) << 20);
    pkt.extend_from_slice(&first.to_be_bytes());
    pkt.extend_from_slice(&plen.to_be_bytes());
    pkt.extend_from_slice(&[next_header, hop_limit]);
    pkt.extend_from_slice(&src.octets());
    pkt.extend_from_slice(&dst.octets());
    pkt.extend_from_slice(payload);
    Ok(pkt)
}

/// Wraps `payload` in an Ethernet header (with the optional 802.1Q tag) and zero pads the frame
/// to [`ETH_MIN_LEN`] bytes.
pub fn wrap_ethernet(
    eth: &EthParams,
    ethertype: u16,
    payload: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut frame = Vec::with_capacity(ETH_MIN_LEN.max(18 + payload.len()));
    frame.extend_from_slice(&eth.dst_mac);
    frame.extend_from_slice(&eth.src_mac);
    if let Some(tag) = eth.vlan {
        if tag.vid > 0x0fff || tag.pcp > 7 {
            return Err(EncodeError::VlanOutOfRange(tag));
        }
        frame.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        frame.extend_from_slice(&tag.tci().to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    if frame.len() < ETH_MIN_LEN {
        frame.resize(ETH_MIN_LEN, 0);
    }
    Ok(frame)
}

/// A whole IPv4 packet carrying the advert (protocol 112, TTL `meta.ttl`, TOS `meta.tos`).
pub fn build_ipv4_packet(advert: &Advert, meta: &TxMeta) -> Result<Vec<u8>, EncodeError> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (meta.src, meta.dst) else {
        return Err(EncodeError::WrongFamily(Family::V4));
    };
    let msg = encode_vrrp(advert, meta)?;
    wrap_ipv4(src, dst, meta.ttl, meta.tos, IPPROTO_VRRP, &msg)
}

/// A whole IPv6 packet carrying the advert (next header 112, hop limit `meta.ttl`, traffic class
/// `meta.tos`).
pub fn build_ipv6_packet(advert: &Advert, meta: &TxMeta) -> Result<Vec<u8>, EncodeError> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (meta.src, meta.dst) else {
        return Err(EncodeError::WrongFamily(Family::V6));
    };
    let msg = encode_vrrp(advert, meta)?;
    wrap_ipv6(src, dst, meta.ttl, meta.tos, IPPROTO_VRRP, &msg)
}

/// A whole IPv4 or IPv6 packet, by the family of `meta.src`.
pub fn build_ip_packet(advert: &Advert, meta: &TxMeta) -> Result<Vec<u8>, EncodeError> {
    match meta.src {
        IpAddr::V4(_) => build_ipv4_packet(advert, meta),
        IpAddr::V6(_) => build_ipv6_packet(advert, meta),
    }
}

/// A whole Ethernet frame (optionally 802.1Q tagged, padded to 60 bytes) carrying the advert.
pub fn build_frame(
    advert: &Advert,
    meta: &TxMeta,
    eth: &EthParams,
) -> Result<Vec<u8>, EncodeError> {
    let pkt = build_ip_packet(advert, meta)?;
    let ethertype = match meta.src {
        IpAddr::V4(_) => ETHERTYPE_IPV4,
        IpAddr::V6(_) => ETHERTYPE_IPV6,
    };
    wrap_ethernet(eth, ethertype, &pkt)
}

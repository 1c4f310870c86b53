//! Receive checks against local configuration (RFC 3768 section 7.1, RFC 9568 section 7.1, and
//! keepalived's `vrrp_check_packet`), after structural decoding.
//!
//! The order is documented in the [module](super) docs (steps 16 to 23) and is deterministic:
//! the XDP program reproduces it.

use std::net::IpAddr;

use super::{
    decode_frame, decode_vrrp, Advert, AdvertKind, Auth, Counter, DecodeError, Family, Frame,
    IpMeta, Received, Version, AUTH_DATA_LEN,
};

/// The TTL / Hop Limit values accepted: `min..=max`.
///
/// Multicast adverts must arrive with 255 (RFC 3768 7.1, RFC 9568 7.1): they cannot have
/// crossed a router. Unicast adverts may be routed, so keepalived does not require 255 from a
/// unicast peer; its `min_ttl` / `max_ttl` options (default 0 and 255) bound what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TtlCheck {
    /// The lowest value accepted.
    pub min: u8,
    /// The highest value accepted.
    pub max: u8,
}

impl TtlCheck {
    /// Only 255 (the RFCs; the multicast rule).
    pub const REQUIRE_255: TtlCheck = TtlCheck { min: 255, max: 255 };
    /// Any value (keepalived's default for a unicast peer).
    pub const ANY: TtlCheck = TtlCheck { min: 0, max: 255 };

    /// Whether `ttl` is accepted.
    pub fn accepts(self, ttl: u8) -> bool {
        (self.min..=self.max).contains(&ttl)
    }
}

impl Default for TtlCheck {
    fn default() -> Self {
        TtlCheck::REQUIRE_255
    }
}

/// A configured unicast peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnicastPeer {
    /// The peer's source address.
    pub addr: IpAddr,
    /// The TTL / Hop Limit range accepted from this peer.
    pub ttl: TtlCheck,
}

impl UnicastPeer {
    /// A peer with keepalived's unicast default: any TTL.
    pub fn new(addr: IpAddr) -> Self {
        UnicastPeer {
            addr,
            ttl: TtlCheck::ANY,
        }
    }
}

/// Where adverts may come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourcePolicy {
    /// Multicast mode: any source; one TTL range for all (its `max` must be 255: the XDP
    /// program keeps only the minimum for multicast).
    Multicast {
        /// The TTL / Hop Limit range accepted.
        ttl: TtlCheck,
    },
    /// Unicast mode: only these sources.
    Unicast {
        /// The configured peers.
        peers: Vec<UnicastPeer>,
    },
}

impl Default for SourcePolicy {
    fn default() -> Self {
        SourcePolicy::Multicast {
            ttl: TtlCheck::REQUIRE_255,
        }
    }
}

/// Configured v2 authentication. AH is not supported by xvrrp, so an AH advert never matches.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxAuth {
    /// No authentication (type 0).
    None,
    /// Simple text password (type 1): the 8 bytes on the wire.
    Pass([u8; AUTH_DATA_LEN]),
}

/// The PASS data is the configured `auth_pass`: `Debug` never shows it.
impl std::fmt::Debug for RxAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RxAuth::None => f.write_str("None"),
            RxAuth::Pass(_) => f.write_str("Pass(<redacted>)"),
        }
    }
}

impl RxAuth {
    /// PASS from a configured `auth_pass`: only its first 8 bytes count, zero padded.
    pub fn pass(password: &str) -> Self {
        RxAuth::Pass(super::pass_data(password))
    }

    /// The auth type number.
    pub fn type_number(&self) -> u8 {
        match self {
            RxAuth::None => 0,
            RxAuth::Pass(_) => 1,
        }
    }
}

/// Configured version and its version specific settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionPolicy {
    /// VRRPv2: authentication and the local advert interval, which received adverts must equal.
    V2 {
        /// Authentication.
        auth: RxAuth,
        /// Local advert interval in seconds.
        advert_interval_secs: u8,
    },
    /// VRRPv3: no authentication; the interval is adopted from the master, not compared.
    V3,
}

/// What is configured for one VRID on one interface and address family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RxPolicy {
    /// The VRID.
    pub vrid: u8,
    /// The address family of the instance (IPv4 and IPv6 instances may share a VRID).
    pub family: Family,
    /// Version and its settings.
    pub version: VersionPolicy,
    /// We are the address owner (priority 255): adverts for this VRID are discarded.
    pub owner: bool,
    /// Multicast or unicast, and the TTL range.
    pub source: SourcePolicy,
}

impl RxPolicy {
    /// A v2 (IPv4, multicast, TTL 255 required, not owner) policy.
    pub fn v2(vrid: u8, auth: RxAuth, advert_interval_secs: u8) -> Self {
        RxPolicy {
            vrid,
            family: Family::V4,
            version: VersionPolicy::V2 {
                auth,
                advert_interval_secs,
            },
            owner: false,
            source: SourcePolicy::default(),
        }
    }

    /// A v3 (multicast, TTL 255 required, not owner) policy.
    pub fn v3(vrid: u8, family: Family) -> Self {
        RxPolicy {
            vrid,
            family,
            version: VersionPolicy::V3,
            owner: false,
            source: SourcePolicy::default(),
        }
    }

    /// The configured version.
    pub fn version(&self) -> Version {
        match self.version {
            VersionPolicy::V2 { .. } => Version::V2,
            VersionPolicy::V3 => Version::V3,
        }
    }
}

/// Why a structurally valid advert is dropped by local policy. Each maps to one [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CheckError {
    /// No instance for this VRID (and family) on the interface.
    #[error("VRID {vrid} is not configured here")]
    VridNotConfigured {
        /// The advert's VRID.
        vrid: u8,
    },
    /// Unicast mode, source not a configured peer.
    #[error("{src} is not a configured unicast peer")]
    UnknownPeer {
        /// The source address.
        src: IpAddr,
    },
    /// TTL / Hop Limit not 255 where required.
    #[error("TTL/hop limit {ttl}, expected 255")]
    Ttl {
        /// The received TTL / Hop Limit.
        ttl: u8,
    },
    /// Version differs from the configured one.
    #[error("version {received:?} received, {expected:?} configured")]
    VersionMismatch {
        /// Received version.
        received: Version,
        /// Configured version.
        expected: Version,
    },
    /// We own the addresses of this VRID (priority 255).
    #[error("advert for VRID {vrid}, which we own")]
    Owner {
        /// The VRID.
        vrid: u8,
    },
    /// v2 auth type differs from the configured one.
    #[error("auth type {received} received, {expected} configured")]
    AuthTypeMismatch {
        /// Received auth type.
        received: u8,
        /// Configured auth type.
        expected: u8,
    },
    /// v2 PASS data differs.
    #[error("authentication data mismatch")]
    AuthFailure,
    /// v2 interval differs from ours.
    #[error("advert interval {received_secs} s received, {expected_secs} s configured")]
    AdvertIntervalMismatch {
        /// Received interval.
        received_secs: u8,
        /// Configured interval.
        expected_secs: u8,
    },
}

impl CheckError {
    /// The counter this error increments.
    pub fn counter(&self) -> Counter {
        match self {
            CheckError::VridNotConfigured { .. } => Counter::VridErr,
            CheckError::UnknownPeer { .. } => Counter::UnknownPeer,
            CheckError::Ttl { .. } => Counter::IpTtlErr,
            CheckError::VersionMismatch { .. } => Counter::VersionErr,
            CheckError::Owner { .. } => Counter::OwnerDrop,
            CheckError::AuthTypeMismatch { .. } => Counter::AuthtypeMismatch,
            CheckError::AuthFailure => Counter::AuthFailure,
            CheckError::AdvertIntervalMismatch { .. } => Counter::AdvertIntervalErr,
        }
    }
}

/// A decode or a check error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RxError {
    /// Structural.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Local policy.
    #[error(transparent)]
    Check(#[from] CheckError),
}

impl RxError {
    /// The counter this error increments.
    pub fn counter(&self) -> Counter {
        match self {
            RxError::Decode(e) => e.counter(),
            RxError::Check(e) => e.counter(),
        }
    }
}

/// Runs every local receive check of one policy, in the documented order (steps 16 to 23).
pub fn check(rx: &Received, policy: &RxPolicy) -> Result<(), CheckError> {
    let advert = &rx.advert;
    // 16. VRID (and family) configured.
    if advert.vrid != policy.vrid || Family::of(&rx.meta.src) != policy.family {
        return Err(CheckError::VridNotConfigured { vrid: advert.vrid });
    }
    // 17. Unicast: known peer; its TTL range applies.
    let ttl = match &policy.source {
        SourcePolicy::Multicast { ttl } => *ttl,
        SourcePolicy::Unicast { peers } => {
            peers
                .iter()
                .find(|p| p.addr == rx.meta.src)
                .ok_or(CheckError::UnknownPeer { src: rx.meta.src })?
                .ttl
        }
    };
    // 18. TTL / Hop Limit.
    if !ttl.accepts(rx.meta.ttl_or_hop_limit) {
        return Err(CheckError::Ttl {
            ttl: rx.meta.ttl_or_hop_limit,
        });
    }
    // 19. Version.
    if advert.version() != policy.version() {
        return Err(CheckError::VersionMismatch {
            received: advert.version(),
            expected: policy.version(),
        });
    }
    // 20. Owner.
    if policy.owner {
        return Err(CheckError::Owner { vrid: advert.vrid });
    }
    // 21-23. v2 auth type, PASS data, interval.
    if let (
        VersionPolicy::V2 {
            auth,
            advert_interval_secs,
        },
        AdvertKind::V2 {
            interval_secs,
            auth: got,
        },
    ) = (&policy.version, &advert.kind)
    {
        if got.type_number() != auth.type_number() {
            return Err(CheckError::AuthTypeMismatch {
                received: got.type_number(),
                expected: auth.type_number(),
            });
        }
        if let (RxAuth::Pass(want), Auth::Pass(data)) = (auth, got) {
            if want != data {
                return Err(CheckError::AuthFailure);
            }
        }
        if interval_secs != advert_interval_secs {
            return Err(CheckError::AdvertIntervalMismatch {
                received_secs: *interval_secs,
                expected_secs: *advert_interval_secs,
            });
        }
    }
    Ok(())
}

/// Selects the policy for the advert's VRID and family among those of an interface and runs
/// [`check`] with it. The first matching policy wins.
pub fn check_any<'p>(rx: &Received, policies: &'p [RxPolicy]) -> Result<&'p RxPolicy, CheckError> {
    let family = Family::of(&rx.meta.src);
    let policy = policies
        .iter()
        .find(|p| p.vrid == rx.advert.vrid && p.family == family)
        .ok_or(CheckError::VridNotConfigured {
            vrid: rx.advert.vrid,
        })?;
    check(rx, policy).map(|()| policy)
}

/// Whether a frame or message belongs to a configured instance of the interface (see
/// [`frame_owner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Not VRRP at all (another EtherType or protocol): passed without a count.
    NotVrrp,
    /// VRRP-like but not ours: passed, counted once for the interface as `not_ours`.
    NotOurs,
    /// Ours: validated (steps 1 to 23), counted per peer and reason.
    Ours,
}

/// Whether the first instance of `policies` for (`family`, `vrid`) takes an advert to `dst`: a
/// multicast one only when it is addressed to the VRRP group.
fn owns(policies: &[RxPolicy], family: Family, vrid: u8, dst: IpAddr) -> bool {
    let group = match family {
        Family::V4 => IpAddr::V4(super::VRRP_GROUP_V4),
        Family::V6 => IpAddr::V6(super::VRRP_GROUP_V6),
    };
    policies
        .iter()
        .find(|p| p.vrid == vrid && p.family == family)
        .is_some_and(|p| match p.source {
            SourcePolicy::Multicast { .. } => dst == group,
            SourcePolicy::Unicast { .. } => true,
        })
}

/// Who a frame arriving on an interface with `policies` belongs to, before any validation.
///
/// The key of a frame is (interface, VLAN, family, VRID). An interface's instances own its
/// **untagged** frames (an 802.1p priority tag, VID 0, counts as untagged, as for the kernel): a
/// VLAN's instance runs on the VLAN's interface, where the kernel delivers the frames untagged,
/// so a frame tagged with a VLAN (VID 1 to 4095) in its data is never ours (nor the reverse). A
/// frame is ours when it is untagged IPv4 / IPv6 protocol 112 (Next Header 112, extension
/// headers are not walked), its VRID byte can be read (inside the frame, and inside the IPv4
/// total length / IPv6 payload length), its (family, VRID) is configured, and, for a multicast
/// instance, it is addressed to the VRRP group (a multicast instance's socket never receives
/// anything else: unicast adverts between two other routers seen by a NIC in promiscuous mode
/// are not ours; a unicast instance's adverts are checked against its peers by step 17).
///
/// Not ours, and counted (`NotOurs`): protocol-112 frames of another VRID, family or
/// destination, tagged or not, and frames whose EtherType says IP but whose fixed header is
/// missing or has the wrong version nibble, or whose VRID cannot be read (anything that cannot be
/// parsed as VRRP). Other traffic is `NotVrrp`. The XDP program decides exactly this (the parity
/// tests hold it to it).
///
/// Choice: the IPv4 fragment fields do not enter the key (a VRRP advert is never fragmented);
/// a fragment of a configured VRID is ours and dropped as `ip_header_err`.
pub fn frame_owner(bytes: &[u8], policies: &[RxPolicy]) -> Owner {
    let be16 = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let Some(outer) = be16(12) else {
        return Owner::NotOurs;
    };
    let (tagged, ethertype, l3) = if outer == super::encode::ETHERTYPE_VLAN {
        match (be16(14), be16(16)) {
            (Some(tci), Some(inner)) => (tci & 0x0fff != 0, inner, 18),
            _ => return Owner::NotOurs,
        }
    } else {
        (false, outer, 14)
    };
    let ip = bytes.get(l3..).unwrap_or_default();
    let (family, vrid_at, dst) = match ethertype {
        super::encode::ETHERTYPE_IPV4 => {
            let Some(h) = ip.get(..20) else {
                return Owner::NotOurs;
            };
            if h[0] >> 4 != 4 {
                return Owner::NotOurs;
            }
            if h[9] != super::IPPROTO_VRRP {
                return Owner::NotVrrp;
            }
            let hlen = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if hlen < 20 || total < hlen + 2 {
                return Owner::NotOurs;
            }
            let dst = IpAddr::from(<[u8; 4]>::try_from(&h[16..20]).unwrap_or_default());
            (Family::V4, hlen + 1, dst)
        }
        super::encode::ETHERTYPE_IPV6 => {
            let Some(h) = ip.get(..40) else {
                return Owner::NotOurs;
            };
            if h[0] >> 4 != 6 {
                return Owner::NotOurs;
            }
            if h[6] != super::IPPROTO_VRRP {
                return Owner::NotVrrp;
            }
            if u16::from_be_bytes([h[4], h[5]]) < 2 {
                return Owner::NotOurs;
            }
            let dst = IpAddr::from(<[u8; 16]>::try_from(&h[24..40]).unwrap_or_default());
            (Family::V6, 41, dst)
        }
        _ => return Owner::NotVrrp,
    };
    match ip.get(vrid_at) {
        Some(&vrid) if !tagged && owns(policies, family, vrid, dst) => Owner::Ours,
        _ => Owner::NotOurs,
    }
}

/// Who a VRRP message received on a raw socket belongs to, by [`frame_owner`]'s rule on what
/// is left to check (the kernel has checked the IP layer and dropped frames of VLANs without an
/// interface here): ours when its VRID byte is there and the instance of (family of `dst`,
/// VRID) takes an advert to `dst`, else not ours.
pub fn message_owner(payload: &[u8], dst: IpAddr, policies: &[RxPolicy]) -> Owner {
    match payload.get(1) {
        Some(&vrid) if owns(policies, Family::of(&dst), vrid, dst) => Owner::Ours,
        _ => Owner::NotOurs,
    }
}

/// Decodes a VRRP message from a raw socket and checks it against an interface's policies.
pub fn receive_vrrp(
    payload: &[u8],
    meta: &IpMeta,
    policies: &[RxPolicy],
) -> Result<Received, RxError> {
    let rx = decode_vrrp(payload, meta)?;
    check_any(&rx, policies)?;
    Ok(rx)
}

/// Decodes an Ethernet frame and checks it against an interface's policies.
pub fn receive_frame(bytes: &[u8], policies: &[RxPolicy]) -> Result<Frame, RxError> {
    let frame = decode_frame(bytes)?;
    check_any(&frame.packet, policies)?;
    Ok(frame)
}

/// The outcome of receiving a frame, as the XDP program reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A valid advert for a configured instance.
    Accept {
        /// Its priority was 0 (the master is leaving).
        priority_zero: bool,
    },
    /// Not VRRP: passed on untouched.
    NotVrrp,
    /// VRRP-like but not ours ([`frame_owner`]): passed on untouched, counted as `not_ours` for
    /// the interface.
    NotOurs,
    /// Dropped, counting this counter.
    Drop(Counter),
}

impl Verdict {
    /// The verdict of a receive result.
    pub fn of(result: &Result<Frame, RxError>) -> Self {
        match result {
            Ok(frame) => Verdict::accepted(&frame.packet.advert),
            Err(RxError::Decode(DecodeError::NotVrrp(_))) => Verdict::NotVrrp,
            Err(e) => Verdict::Drop(e.counter()),
        }
    }

    /// The verdict for an accepted advert.
    pub fn accepted(advert: &Advert) -> Self {
        Verdict::Accept {
            priority_zero: advert.priority == 0,
        }
    }

    /// The counters this verdict increments: `advert_rcvd` (and `pri_zero_rcvd`) for an accepted
    /// advert, `not_vrrp` for a pass, nothing per peer for a frame that is not ours (the interface
    /// counts it), the error's counter for a drop.
    pub fn counters(&self) -> Vec<Counter> {
        match self {
            Verdict::Accept {
                priority_zero: false,
            } => vec![Counter::AdvertRcvd],
            Verdict::Accept {
                priority_zero: true,
            } => {
                vec![Counter::AdvertRcvd, Counter::PriZeroRcvd]
            }
            Verdict::NotVrrp => vec![Counter::NotVrrp],
            Verdict::NotOurs => vec![],
            Verdict::Drop(c) => vec![*c],
        }
    }
}

/// The verdict of a frame arriving on an interface with `policies`, as the XDP program gives
/// it: frames that are not ours ([`frame_owner`]) are passed, ours are received.
pub fn verdict(bytes: &[u8], policies: &[RxPolicy]) -> Verdict {
    match frame_owner(bytes, policies) {
        Owner::NotVrrp => Verdict::NotVrrp,
        Owner::NotOurs => Verdict::NotOurs,
        Owner::Ours => Verdict::of(&receive_frame(bytes, policies)),
    }
}

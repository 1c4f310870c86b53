//! Types shared by the kernel programs (`agent-ebpf`) and the userspace agent.
//!
//! Every type here is `#[repr(C)]` with explicit padding so both sides agree on the layout
//! byte for byte (and so no uninitialised padding byte is ever part of a map key). The `user`
//! feature implements `aya::Pod` for them.
//!
//! # Maps of the XDP advert filter
//!
//! | map | kind | key | value | filled by |
//! | --- | --- | --- | --- | --- |
//! | [`XDP_POLICY_MAP`] | array | [`policy_slot`] (family, VRID) | [`Policy`] | agent |
//! | [`XDP_PEERS_MAP`] | hash | [`PeerKey`] (ifindex, VRID, family, address) | [`PeerPolicy`] | agent |
//! | [`XDP_IFACE_MAP`] | array, 1 entry | 0 | [`IfaceConfig`] | agent |
//! | [`XDP_ROWDIR_MAP`] | array | [`policy_slot`] | [`RowDir`] (inline rows' sources) | program |
//! | [`XDP_ROWCNT_MAP`] | per-CPU array | `policy_slot * INLINE_ROWS + i` | [`PeerCounters`] | program |
//! | [`XDP_HASHED_MAP`] | array | [`policy_slot`] | `u64`: 1 when the slot may have hash rows | both |
//! | [`XDP_COUNTERS_MAP`] | LRU per-CPU hash | [`PeerKey`] | [`PeerCounters`] | both |
//! | [`XDP_BUCKET_MAP`] | per-CPU array, 1 entry | 0 | [`PeerCounters`] | program |
//! | [`XDP_EVENTS_MAP`] | ring buffer | | [`AdvertEvent`] records | program |
//! | [`XDP_STATS_MAP`] | per-CPU array | [`xdp_stats`] index | `u64` | program |
//!
//! Every attached interface gets its own copy of the program and of these maps, so only the
//! per-peer keys still carry the ingress ifindex (for the rows the agent lists); the policies,
//! the interface flags and the unknown-source bucket are not keyed by it. The
//! [`XDP_PEERS_MAP`] is only consulted for unicast instances with more than
//! [`MAX_INLINE_PEERS`] peers: up to that many are kept in the [`Policy`] itself.
//!
//! Per-peer counter rows: the first [`INLINE_ROWS`] sources of a VRID and family that the program
//! gives a row (a valid advert) get one in arrays ([`XDP_ROWDIR_MAP`] says which source owns row
//! `i` of the slot, [`XDP_ROWCNT_MAP`] holds its per-CPU counts), found without any hash lookup.
//! Further sources, and the configured unicast peers (whose rows the agent creates up front),
//! get rows in the LRU hash [`XDP_COUNTERS_MAP`], which is only searched when the slot's
//! [`XDP_HASHED_MAP`] flag is set. The agent sums rows of one source found in both.
#![no_std]

/// Index of the per-CPU packet counters kept by the XDP program in [`XDP_STATS_MAP`].
///
/// Frames that are not VRRP are not counted at all (they cost only the few compares needed to
/// recognise them).
pub mod xdp_stats {
    /// Frames that were IPv4 or IPv6 with protocol 112 (VRRP), whatever their verdict.
    pub const VRRP: u32 = 0;
    /// Valid adverts whose event could not be queued because the ring buffer was full (they are
    /// still counted as `advert_rcvd` and dropped or passed as usual).
    pub const RING_FULL: u32 = 1;
    /// Number of slots in the stats array.
    pub const LEN: u32 = 2;
}

/// Name of the XDP advert filter inside the embedded object.
pub const XDP_PROGRAM: &str = "xvrrp_xdp";
/// Name of a trivial `XDP_PASS` program in the same object (the benchmark's baseline).
pub const XDP_PASS_PROGRAM: &str = "xvrrp_xdp_pass";
/// Name of the per-CPU stats map inside the embedded object.
pub const XDP_STATS_MAP: &str = "XVRRP_STATS";
/// Name of the instance policy map.
pub const XDP_POLICY_MAP: &str = "XVRRP_POLICY";
/// Name of the unicast peer map.
pub const XDP_PEERS_MAP: &str = "XVRRP_PEERS";
/// Name of the per-interface flags map.
pub const XDP_IFACE_MAP: &str = "XVRRP_IFACE";
/// Name of the per-peer counter map.
pub const XDP_COUNTERS_MAP: &str = "XVRRP_COUNTERS";
/// Name of the inline rows' source directory.
pub const XDP_ROWDIR_MAP: &str = "XVRRP_ROWDIR";
/// Name of the inline rows' counters.
pub const XDP_ROWCNT_MAP: &str = "XVRRP_ROWCNT";
/// Name of the per-slot "may have hash rows" flags.
pub const XDP_HASHED_MAP: &str = "XVRRP_HASHED";
/// Name of the unknown-source bucket (per-CPU array of one [`PeerCounters`]).
pub const XDP_BUCKET_MAP: &str = "XVRRP_BUCKET";
/// Name of the advert event ring buffer.
pub const XDP_EVENTS_MAP: &str = "XVRRP_EVENTS";

/// Number of receive counters per peer: `xvrrp::packet::Counter::COUNT`, indexed by
/// `Counter::index()` (the agent asserts the two agree at compile time).
pub const COUNTER_SLOTS: usize = 17;

/// `xvrrp::packet::Counter` indices, for the kernel side (which cannot use the agent crate).
/// The agent asserts at compile time that each equals its `Counter::index()`.
pub mod counter_index {
    /// `advert_rcvd`.
    pub const ADVERT_RCVD: usize = 0;
    /// `packet_len_err`.
    pub const PACKET_LEN_ERR: usize = 1;
    /// `advert_interval_err`.
    pub const ADVERT_INTERVAL_ERR: usize = 2;
    /// `ip_ttl_err`.
    pub const IP_TTL_ERR: usize = 3;
    /// `invalid_type_rcvd`.
    pub const INVALID_TYPE_RCVD: usize = 4;
    /// `addr_list_err`.
    pub const ADDR_LIST_ERR: usize = 5;
    /// `invalid_authtype`.
    pub const INVALID_AUTHTYPE: usize = 6;
    /// `authtype_mismatch`.
    pub const AUTHTYPE_MISMATCH: usize = 7;
    /// `auth_failure`.
    pub const AUTH_FAILURE: usize = 8;
    /// `pri_zero_rcvd`.
    pub const PRI_ZERO_RCVD: usize = 9;
    /// `checksum_err`.
    pub const CHECKSUM_ERR: usize = 10;
    /// `version_err`.
    pub const VERSION_ERR: usize = 11;
    /// `vrid_err`.
    pub const VRID_ERR: usize = 12;
    /// `unknown_peer`.
    pub const UNKNOWN_PEER: usize = 13;
    /// `ip_header_err`.
    pub const IP_HEADER_ERR: usize = 14;
    /// `owner_drop`.
    pub const OWNER_DROP: usize = 15;
}

/// Capacity of [`XDP_POLICY_MAP`]: one slot per VRID and family (see [`policy_slot`]).
pub const MAX_POLICIES: u32 = 512;
/// Capacity of [`XDP_PEERS_MAP`] (unicast peers of instances with more than
/// [`MAX_INLINE_PEERS`] of them).
pub const MAX_PEERS: u32 = 4096;
/// Unicast peers kept in the [`Policy`] itself (more go to [`XDP_PEERS_MAP`]).
pub const MAX_INLINE_PEERS: usize = 4;

/// Counter rows per policy slot kept in arrays (see the module docs).
pub const INLINE_ROWS: usize = 4;

/// [`RowDir::state`] values.
pub mod row_state {
    /// Free.
    pub const FREE: u64 = 0;
    /// Being claimed by the program (its address not written yet).
    pub const CLAIMED: u64 = 1;
    /// Owned by the source in [`super::RowDir::addrs`].
    pub const READY: u64 = 2;
}

/// Value of [`XDP_ROWDIR_MAP`]: which sources own the inline rows of a policy slot. Written only
/// by the program (rows are claimed with compare-and-exchange and never freed).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RowDir {
    /// A [`row_state`] value per row.
    pub state: [u64; INLINE_ROWS],
    /// The owner of each `READY` row (IPv4 in the first 4 bytes, the rest zero).
    pub addrs: [[u8; 16]; INLINE_ROWS],
}

/// Index of the [`XDP_POLICY_MAP`] entry of a VRID in a family: IPv4 `vrid`, IPv6 `256 + vrid`.
pub const fn policy_slot(family: u8, vrid: u8) -> u32 {
    (if family == family::V6 { 256 } else { 0 }) + vrid as u32
}
/// Capacity of [`XDP_COUNTERS_MAP`]: least recently used entries are evicted beyond it, so a
/// flood of valid-looking adverts from spoofed sources cannot grow it.
pub const MAX_COUNTER_ENTRIES: u32 = 4096;
/// Size of [`XDP_EVENTS_MAP`] in bytes (a power of two multiple of the page size): about 3600
/// events (64 bytes each plus an 8-byte record header).
pub const EVENTS_RING_BYTES: u32 = 256 * 1024;

/// Address family codes used in keys and events.
pub mod family {
    /// IPv4.
    pub const V4: u8 = 4;
    /// IPv6.
    pub const V6: u8 = 6;
}

/// [`Policy::unicast`] values.
pub mod unicast_mode {
    /// Multicast: any source.
    pub const OFF: u8 = 0;
    /// Unicast, every peer in [`super::Policy::peers`].
    pub const INLINE: u8 = 1;
    /// Unicast with more than [`super::MAX_INLINE_PEERS`] peers: all are in
    /// [`super::XDP_PEERS_MAP`] (and none inline).
    pub const MAP: u8 = 2;
}

/// [`Policy::ttl`] and [`PeerPolicy::ttl`] values.
pub mod ttl_check {
    /// TTL / Hop Limit must be 255.
    pub const REQUIRE_255: u8 = 1;
    /// TTL / Hop Limit is not looked at.
    pub const SKIP: u8 = 0;
}

/// [`IfaceConfig::flags`] bits.
pub mod iface_flags {
    /// Return `XDP_PASS` for valid adverts (so tcpdump and raw sockets still see them) instead
    /// of `XDP_DROP`. Invalid adverts are always dropped.
    pub const PASS_TO_STACK: u32 = 1;
}

/// [`AdvertEvent::checksum_form`] values.
pub mod checksum_form {
    /// VRRPv2: over the VRRP message only.
    pub const V2: u8 = 0;
    /// VRRPv3 with the IPv4 or IPv6 pseudo-header.
    pub const PSEUDO_HEADER: u8 = 1;
    /// VRRPv3 over IPv4 without pseudo-header (RFC 9568).
    pub const RFC9568: u8 = 2;
}

/// Value of [`XDP_POLICY_MAP`]: what the receive checks (steps 16 to 23) need of an instance.
/// An all-zero entry (version 0) is an unconfigured VRID.
///
/// `Debug` leaves out `auth_data` (the configured `auth_pass`), so no log or panic shows it.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Configured VRRP version, 2 or 3 (0: no instance for this VRID and family).
    pub version: u8,
    /// v2 auth type: 0 none, 1 PASS (v3: 0).
    pub auth_type: u8,
    /// v2 advert interval in seconds that received adverts must carry (v3: 0, not compared).
    pub interval_secs: u8,
    /// 1 when we own the addresses (priority 255): adverts are dropped as `owner_drop`.
    pub owner: u8,
    /// A [`unicast_mode`] value: in unicast mode only configured peers are accepted, with their
    /// TTL policy.
    pub unicast: u8,
    /// Multicast TTL policy, a [`ttl_check`] value (unused in unicast mode).
    pub ttl: u8,
    /// Number of valid entries in [`Policy::peers`] ([`unicast_mode::INLINE`]).
    pub peer_count: u8,
    /// Always zero.
    pub _pad: u8,
    /// v2 PASS data: the 8 bytes on the wire (zero otherwise).
    pub auth_data: [u8; 8],
    /// TTL policy of each inline peer, a [`ttl_check`] value.
    pub peer_ttl: [u8; 8],
    /// Inline unicast peers: IPv4 in the first 4 bytes (network order), the rest zero.
    pub peers: [[u8; 16]; MAX_INLINE_PEERS],
}

impl core::fmt::Debug for Policy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("auth_type", &self.auth_type)
            .field("auth_data", &"<redacted>")
            .field("interval_secs", &self.interval_secs)
            .field("owner", &self.owner)
            .field("unicast", &self.unicast)
            .field("ttl", &self.ttl)
            .field("peer_count", &self.peer_count)
            .field("peer_ttl", &self.peer_ttl)
            .field("peers", &self.peers)
            .finish()
    }
}

/// Key of [`XDP_PEERS_MAP`] and [`XDP_COUNTERS_MAP`]: a source address sending adverts for a
/// VRID on an interface. (The unknown-source bucket is [`XDP_BUCKET_MAP`], not a key here.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerKey {
    /// Ingress interface index.
    pub ifindex: u32,
    /// Virtual router identifier.
    pub vrid: u8,
    /// [`family::V4`] or [`family::V6`].
    pub family: u8,
    /// Always zero.
    pub _pad: [u8; 2],
    /// Source address: IPv4 in the first 4 bytes (network order), the rest zero; IPv6 all 16.
    pub addr: [u8; 16],
}

/// Value of [`XDP_PEERS_MAP`]: a configured unicast peer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerPolicy {
    /// TTL policy for this peer, a [`ttl_check`] value.
    pub ttl: u8,
    /// Always zero.
    pub _pad: [u8; 7],
}

/// Value of [`XDP_COUNTERS_MAP`] (per CPU): one count per receive counter, indexed by
/// `Counter::index()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCounters {
    /// The counts.
    pub counts: [u64; COUNTER_SLOTS],
}

impl Default for PeerCounters {
    fn default() -> Self {
        PeerCounters {
            counts: [0; COUNTER_SLOTS],
        }
    }
}

/// Value of [`XDP_IFACE_MAP`] (its only entry, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IfaceConfig {
    /// [`iface_flags`] bits.
    pub flags: u32,
}

/// One valid advert, as queued on [`XDP_EVENTS_MAP`] (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertEvent {
    /// `bpf_ktime_get_ns()` when the program accepted the advert (CLOCK_MONOTONIC).
    pub timestamp_ns: u64,
    /// Ingress interface index.
    pub ifindex: u32,
    /// [`family::V4`] or [`family::V6`].
    pub family: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// Virtual router identifier.
    pub vrid: u8,
    /// Advertised priority.
    pub priority: u8,
    /// Source address (IPv4 in the first 4 bytes, network order).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes, network order).
    pub dst: [u8; 16],
    /// Advert interval in centiseconds (v2: seconds × 100; v3: the 12-bit field).
    pub interval_cs: u16,
    /// Address count.
    pub addr_count: u8,
    /// IPv4 TTL or IPv6 Hop Limit.
    pub ttl: u8,
    /// Which checksum form matched, a [`checksum_form`] value.
    pub checksum_form: u8,
    /// Always zero.
    pub _pad: [u8; 11],
}

/// Size of [`AdvertEvent`] in bytes.
pub const ADVERT_EVENT_LEN: usize = 64;

const _: () = assert!(core::mem::size_of::<Policy>() == 24 + 16 * MAX_INLINE_PEERS);
const _: () = assert!(core::mem::size_of::<PeerKey>() == 24);
const _: () = assert!(core::mem::size_of::<PeerPolicy>() == 8);
const _: () = assert!(core::mem::size_of::<PeerCounters>() == 8 * COUNTER_SLOTS);
const _: () = assert!(core::mem::size_of::<AdvertEvent>() == ADVERT_EVENT_LEN);

#[cfg(feature = "user")]
mod user {
    // SAFETY (for every impl below): `#[repr(C)]`, only integer and byte-array fields, padding
    // spelled out as fields, so every bit pattern is valid and no byte is uninitialised.
    unsafe impl aya::Pod for super::Policy {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::PeerKey {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::PeerPolicy {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::PeerCounters {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::IfaceConfig {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::RowDir {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::AdvertEvent {}
}

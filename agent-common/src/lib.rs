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
//! | [`XDP_POLICY_MAP`] | global data (an array of one [`PolicyTable`]) | 0 | [`PolicyTable`]: a [`Policy`] per [`policy_slot`] (family, VRID) | agent (the [`Policy::rows`]: both) |
//! | [`XDP_PEERS_MAP`] | hash | [`PeerKey`] (ifindex, VRID, family, address) | [`PeerPolicy`] | agent |
//! | [`XDP_IFACE_MAP`] | array, 1 entry | 0 | [`IfaceConfig`] | agent |
//! | [`XDP_ROWCNT_MAP`] | per-CPU array | `policy_slot * INLINE_ROWS + i` | [`PeerCounters`] | program |
//! | [`XDP_COUNTERS_MAP`] | LRU per-CPU hash | [`PeerKey`] | [`PeerCounters`] | both |
//! | [`XDP_BUCKET_MAP`] | per-CPU array, 1 entry | 0 | [`PeerCounters`] | program |
//! | [`XDP_EVENTS_MAP`] | ring buffer | | [`AdvertEvent`] records | program |
//! | [`XDP_STATS_MAP`] | per-CPU array | [`xdp_stats`] index | `u64` | program |
//! | `XVRRP_CLOCK` | per-CPU array, 1 entry | 0 | `[u64; 2]`: jiffies, coarse clock read then | program |
//! | `XVRRP_ZERO` | array, 1 entry | 0 | an all-zero [`PeerCounters`] (template) | nobody |
//!
//! Every attached interface gets its own copy of the program and of these maps, so only the
//! per-peer keys still carry the ingress ifindex (for the rows the agent lists); the policies,
//! the interface flags and the unknown-source bucket are not keyed by it. The
//! [`XDP_PEERS_MAP`] is only consulted for unicast instances with more than
//! [`MAX_INLINE_PEERS`] peers: up to that many are kept in the [`Policy`] itself.
//!
//! Per-peer counter rows: the first [`INLINE_ROWS`] sources of a VRID and family that get a row
//! (a valid advert, or a configured unicast peer: the agent gives those theirs up front) get one
//! in arrays ([`Policy::rows`] says which source owns row `i` of the slot, [`XDP_ROWCNT_MAP`]
//! holds its per-CPU counts), found without any hash lookup. Further sources, and the peers of a
//! unicast instance with more than [`MAX_INLINE_PEERS`], get rows in the LRU hash
//! [`XDP_COUNTERS_MAP`], which is only searched when the slot's [`Policy::hashed`] flag is set.
//! The agent sums rows of one source found in both.
#![no_std]

/// Index of the per-CPU packet counters kept by the XDP program in [`XDP_STATS_MAP`].
///
/// Frames that are not VRRP are not counted at all (they cost only the few compares needed to
/// recognise them). VRRP frames are not counted here either: each adds one to exactly one
/// counter of one per-peer row or of the unknown-source bucket (its verdict), and the agent sums
/// those.
pub mod xdp_stats {
    /// Valid adverts whose event could not be queued because the ring buffer was full (they are
    /// still counted as `advert_rcvd` and dropped or passed as usual).
    pub const RING_FULL: u32 = 0;
    /// Frames passed because they are not ours: VRRP-like frames (IPv4 / IPv6 protocol 112,
    /// after at most one 802.1Q tag, or with an IP header too broken to tell) whose key
    /// (untagged, family, VRID) is not a configured instance of this interface.
    pub const NOT_OURS: u32 = 1;
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
pub const XDP_POLICY_MAP: &str = ".bss.xvrrp_policies";
/// Name of the unicast peer map.
pub const XDP_PEERS_MAP: &str = "XVRRP_PEERS";
/// Name of the per-interface flags map.
pub const XDP_IFACE_MAP: &str = "XVRRP_IFACE";
/// Name of the per-peer counter map.
pub const XDP_COUNTERS_MAP: &str = "XVRRP_COUNTERS";
/// Name of the inline rows' counters.
pub const XDP_ROWCNT_MAP: &str = "XVRRP_ROWCNT";
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

/// Capacity of [`XDP_POLICY_MAP`]: one slot per VRID and family (see [`policy_slot`]). A power
/// of two: the program bounds a slot by masking it.
pub const MAX_POLICIES: u32 = 512;
const _: () = assert!(MAX_POLICIES.is_power_of_two());
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

/// [`Policy::rows`]: which sources own the inline rows of a policy slot. Claimed by the program
/// with compare-and-exchange, never freed; the agent gives configured unicast peers free rows
/// when it sets the policies, and keeps the rows given when it rewrites a policy.
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

/// The only value of [`XDP_POLICY_MAP`]: the policy of every slot.
///
/// The map is the program's global data (its own ELF section, which the loader turns into an
/// array map of one entry): the program reaches an entry through a pointer fixed at load time,
/// without a map lookup (whose key goes through the stack) or a helper call, which LLVM must
/// treat as clobbering registers. Measured with `cargo xtask bench xdp`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PolicyTable {
    /// Indexed by [`policy_slot`].
    pub entries: [Policy; MAX_POLICIES as usize],
}

impl PolicyTable {
    /// Every slot unconfigured.
    // SAFETY: every field of `Policy` is an integer or an array of integers: all-zero is valid.
    pub const ZERO: PolicyTable = unsafe { core::mem::zeroed() };
}

/// An entry of [`PolicyTable`]: what the receive checks (steps 16 to 23) need of an instance.
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
    /// A [`unicast_mode`] value: in unicast mode only configured peers are accepted, each with
    /// its own TTL range.
    pub unicast: u8,
    /// Multicast mode: the lowest TTL / Hop Limit accepted (255, as the RFCs require; 0 takes
    /// any). The highest is 255, the field's own limit. Unused in unicast mode.
    pub ttl_min: u8,
    /// Number of valid entries in [`Policy::peers`] ([`unicast_mode::INLINE`]).
    pub peer_count: u8,
    /// Non-zero when rows of this slot may be in [`XDP_COUNTERS_MAP`]: set by the agent for the
    /// peers it creates hash rows for, and by the program (a byte store, never cleared) when
    /// all the slot's inline rows are taken. The agent keeps a set flag when it rewrites the
    /// policy.
    pub hashed: u8,
    /// v2 PASS data: the 8 bytes on the wire (zero otherwise).
    pub auth_data: [u8; 8],
    /// The lowest TTL / Hop Limit accepted from each inline peer (keepalived's `min_ttl`,
    /// default 0).
    pub peer_ttl_min: [u8; MAX_INLINE_PEERS],
    /// The highest TTL / Hop Limit accepted from each inline peer (keepalived's `max_ttl`,
    /// default 255).
    pub peer_ttl_max: [u8; MAX_INLINE_PEERS],
    /// Inline unicast peers: IPv4 in the first 4 bytes (network order), the rest zero.
    pub peers: [[u8; 16]; MAX_INLINE_PEERS],
    /// Which sources own the slot's inline counter rows. In the policy's own entry so that the
    /// program finds a source's row with the lookup it made for the policy.
    pub rows: RowDir,
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
            .field("ttl_min", &self.ttl_min)
            .field("peer_count", &self.peer_count)
            .field("peer_ttl_min", &self.peer_ttl_min)
            .field("peer_ttl_max", &self.peer_ttl_max)
            .field("peers", &self.peers)
            .field("hashed", &self.hashed)
            .field("rows", &self.rows)
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

/// Value of [`XDP_PEERS_MAP`]: a configured unicast peer. The default accepts any TTL.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerPolicy {
    /// The lowest TTL / Hop Limit accepted from this peer (keepalived's `min_ttl`).
    pub ttl_min: u8,
    /// The highest TTL / Hop Limit accepted from this peer (keepalived's `max_ttl`).
    pub ttl_max: u8,
    /// Always zero.
    pub _pad: [u8; 6],
}

impl Default for PeerPolicy {
    fn default() -> Self {
        PeerPolicy {
            ttl_min: 0,
            ttl_max: u8::MAX,
            _pad: [0; 6],
        }
    }
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
    /// CLOCK_MONOTONIC_COARSE (tick resolution) when the program accepted the advert.
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

const _: () = assert!(
    core::mem::size_of::<Policy>() == 16 + 18 * MAX_INLINE_PEERS + core::mem::size_of::<RowDir>()
);
// The program compares peer addresses a word at a time.
const _: () = assert!(core::mem::offset_of!(Policy, peers) % 4 == 0);
const _: () = assert!(core::mem::size_of::<PeerKey>() == 24);
const _: () = assert!(core::mem::size_of::<PeerPolicy>() == 8);
const _: () = assert!(core::mem::size_of::<PeerCounters>() == 8 * COUNTER_SLOTS);
const _: () = assert!(core::mem::size_of::<AdvertEvent>() == ADVERT_EVENT_LEN);

/// Kernel-side TCP tracking for `vrrp_track_listen`: the `inet_sock_set_state` raw tracepoint
/// program and the SYN counter in the XDP program.
///
/// # Maps of the TCP state program (one object instance per agent)
///
/// | map | kind | key | value | filled by |
/// | --- | --- | --- | --- | --- |
/// | [`tcp::CONFIG_MAP`] | array (1) | 0 | [`tcp::TcpConfig`] (BTF offsets, our netns id) | agent |
/// | [`tcp::WATCH_MAP`] | hash | local port (`u16`, host order) | `u8` (1) | agent |
/// | [`tcp::COUNTS_MAP`] | hash | [`tcp::TcpKey`] (port, family, local address) | [`tcp::TcpCounts`] | program (atomic adds) |
/// | [`tcp::EVENTS_MAP`] | ring buffer | | [`tcp::ListenEvent`] records | program |
/// | [`tcp::STATS_MAP`] | per-CPU array | [`tcp::stats`] index | `u64` | program |
///
/// # Maps of the SYN counter (in every XDP object instance, one per interface)
///
/// | map | kind | key | value | filled by |
/// | --- | --- | --- | --- | --- |
/// | [`tcp::SYN_PORTS_MAP`] | array ([`tcp::SYN_PORT_ENTRIES`]) | destination port as it sits in the frame ([`tcp::syn_port_key`]) | `u32` count slot, 0: not watched | agent |
/// | [`tcp::SYN_COUNTS_MAP`] | per-CPU array ([`tcp::SYN_SLOTS`]) | count slot | `u64` | agent zeroes a slot before use, program counts |
///
/// Both are arrays so that the verifier inlines both lookups: a SYN to a watched port costs a few
/// instructions, no helper call (a per-CPU hash of ports cost ~35 ns per SYN). Which port owns a
/// slot is kept in [`tcp::SYN_PORTS_MAP`] too, past the ports: entry `SYN_OWNER_BASE + slot`
/// holds `port + 1` (0: free), read only by the agent.
pub mod tcp {
    /// Name of the raw tracepoint program.
    pub const PROGRAM: &str = "xvrrp_tcp_state";
    /// The raw tracepoint it attaches to.
    pub const TRACEPOINT: &str = "inet_sock_set_state";
    /// Configuration (one [`TcpConfig`] at index 0).
    pub const CONFIG_MAP: &str = "XVRRP_TCP_CONF";
    /// Watched local ports.
    pub const WATCH_MAP: &str = "XVRRP_TCP_WATCH";
    /// Counters per (port, family, local address).
    pub const COUNTS_MAP: &str = "XVRRP_TCP_COUNTS";
    /// Listener appearance / disappearance events.
    pub const EVENTS_MAP: &str = "XVRRP_TCP_EVENTS";
    /// Program statistics.
    pub const STATS_MAP: &str = "XVRRP_TCP_STATS";
    /// Port to count slot (and, past the ports, slot to owning port).
    pub const SYN_PORTS_MAP: &str = "XVRRP_SYN_PORTS";
    /// SYN counts per watched port.
    pub const SYN_COUNTS_MAP: &str = "XVRRP_SYN_COUNTS";

    /// Capacity of [`WATCH_MAP`].
    pub const MAX_WATCHED: u32 = 256;
    /// Capacity of [`COUNTS_MAP`] (watched ports x local addresses).
    pub const MAX_COUNT_KEYS: u32 = 4096;
    /// Most ports whose SYNs are counted.
    pub const MAX_SYN_PORTS: u32 = 256;
    /// Entries of [`SYN_COUNTS_MAP`]: slot 0 is never used (it means "not watched").
    pub const SYN_SLOTS: u32 = MAX_SYN_PORTS + 1;
    /// Index in [`SYN_PORTS_MAP`] of slot 0's owner entry (one per port before it).
    pub const SYN_OWNER_BASE: u32 = 65536;
    /// Entries of [`SYN_PORTS_MAP`]: one per port, then one owner per slot.
    pub const SYN_PORT_ENTRIES: u32 = SYN_OWNER_BASE + SYN_SLOTS;
    /// Size of [`EVENTS_MAP`] in bytes.
    pub const EVENTS_RING_BYTES: u32 = 64 * 1024;

    /// The [`SYN_PORTS_MAP`] index of `port`: its two bytes in network order, read as a native
    /// `u16`, which is what the program loads from the TCP header (one load, no byte swap).
    pub const fn syn_port_key(port: u16) -> u32 {
        u16::from_ne_bytes(port.to_be_bytes()) as u32
    }

    /// TCP states (include/net/tcp_states.h).
    pub mod state {
        /// TCP_ESTABLISHED.
        pub const ESTABLISHED: u32 = 1;
        /// TCP_SYN_SENT.
        pub const SYN_SENT: u32 = 2;
        /// TCP_SYN_RECV.
        pub const SYN_RECV: u32 = 3;
        /// TCP_CLOSE.
        pub const CLOSE: u32 = 7;
        /// TCP_LISTEN.
        pub const LISTEN: u32 = 10;
    }

    /// Index of the per-CPU statistics in [`STATS_MAP`].
    pub mod stats {
        /// Transitions of watched ports in our namespace that were counted.
        pub const COUNTED: u32 = 0;
        /// Transitions of watched ports in other namespaces (ignored).
        pub const OTHER_NETNS: u32 = 1;
        /// A kernel read (`bpf_probe_read_kernel`) failed.
        pub const READ_FAILED: u32 = 2;
        /// [`super::COUNTS_MAP`] was full: a transition was not counted.
        pub const MAP_FULL: u32 = 3;
        /// [`super::EVENTS_MAP`] was full: a listener event was lost (counts are still right).
        pub const RING_FULL: u32 = 4;
        /// The program ran before its configuration ([`super::TcpConfig`]) was written.
        pub const UNCONFIGURED: u32 = 5;
        /// Number of slots.
        pub const LEN: u32 = 6;
    }

    /// How the program finds the namespace of a socket ([`TcpConfig::netns_kind`]).
    pub mod netns_kind {
        /// `struct net::net_cookie` (u64), compared with `SO_NETNS_COOKIE`.
        pub const COOKIE: u32 = 1;
        /// `struct net::ns.inum` (u32), compared with the inode of `/proc/self/ns/net`.
        pub const INUM: u32 = 2;
    }

    /// Value of [`CONFIG_MAP`]: where the program reads a `struct sock`'s fields (offsets from
    /// `/sys/kernel/btf/vmlinux`, computed by the agent at start), and our namespace's id.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct TcpConfig {
        /// 0 until the agent has filled this in: the program does nothing.
        pub enabled: u32,
        /// A [`netns_kind`] value.
        pub netns_kind: u32,
        /// Our namespace's cookie or inode number.
        pub netns_id: u64,
        /// `offsetof(struct sock, __sk_common.skc_net)` (a `struct net *`).
        pub off_net: u32,
        /// `offsetof(struct net, net_cookie)` or `offsetof(struct net, ns.inum)`.
        pub off_netns_id: u32,
        /// `offsetof(struct sock, __sk_common.skc_family)` (u16).
        pub off_family: u32,
        /// `offsetof(struct sock, __sk_common.skc_num)` (u16, host order: the local port).
        pub off_num: u32,
        /// `offsetof(struct sock, __sk_common.skc_rcv_saddr)` (4 bytes, network order).
        pub off_rcv_saddr: u32,
        /// `offsetof(struct sock, __sk_common.skc_v6_rcv_saddr)` (16 bytes).
        pub off_v6_rcv_saddr: u32,
        /// `offsetof(struct sock, sk_protocol)`.
        pub off_protocol: u32,
        /// Size of `sk_protocol` in bytes (1 or 2).
        pub protocol_size: u32,
    }

    /// Key of [`COUNTS_MAP`].
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct TcpKey {
        /// Local port (host order).
        pub port: u16,
        /// `AF_INET` (2) or `AF_INET6` (10).
        pub family: u16,
        /// Always zero.
        pub _pad: [u8; 4],
        /// Local address (IPv4 in the first 4 bytes, network order; the rest zero).
        pub addr: [u8; 16],
    }

    /// Value of [`COUNTS_MAP`]: changes since the program was attached (the agent adds what
    /// one `sock_diag` dump of the watched ports showed at start to the gauges). Updated with
    /// atomic adds.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct TcpCounts {
        /// Listening sockets: +1 on entering LISTEN, -1 on LISTEN -> CLOSE.
        pub listeners: i64,
        /// Established connections: +1 on entering ESTABLISHED, -1 on leaving it.
        pub established: i64,
        /// Connections that entered ESTABLISHED.
        pub established_total: u64,
        /// Connections that left ESTABLISHED.
        pub closed_total: u64,
    }

    /// A listener appeared or disappeared on a watched port in our namespace (48 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct ListenEvent {
        /// `bpf_ktime_get_ns()` at the transition (CLOCK_MONOTONIC).
        pub timestamp_ns: u64,
        /// The listener count delta of the key after the change.
        pub listeners: i64,
        /// The key (port, family, bound address).
        pub key: TcpKey,
        /// 1: a listener appeared; 0: one closed.
        pub up: u32,
        /// Always zero.
        pub _pad: u32,
    }

    /// Size of [`ListenEvent`] in bytes.
    pub const LISTEN_EVENT_LEN: usize = 48;

    const _: () = assert!(core::mem::size_of::<TcpConfig>() == 48);
    const _: () = assert!(core::mem::size_of::<TcpKey>() == 24);
    const _: () = assert!(core::mem::size_of::<TcpCounts>() == 32);
    const _: () = assert!(core::mem::size_of::<ListenEvent>() == LISTEN_EVENT_LEN);
}

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
    unsafe impl aya::Pod for super::PolicyTable {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::AdvertEvent {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::tcp::TcpConfig {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::tcp::TcpKey {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::tcp::TcpCounts {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::tcp::ListenEvent {}
}

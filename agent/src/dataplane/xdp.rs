//! [`XdpDataplane`]: the advert filter attached to one interface, its maps filled from the
//! interface's policies, the ring buffer of valid adverts, and its counts.

use std::{
    collections::{BTreeSet, HashSet},
    fmt,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
};

use agent_common::{
    iface_flags, policy_slot, unicast_mode, xdp_stats, IfaceConfig, PeerCounters, PeerKey,
    PeerPolicy, Policy, PolicyTable, EVENTS_RING_BYTES, MAX_INLINE_PEERS, XDP_COUNTERS_MAP,
    XDP_EVENTS_MAP, XDP_IFACE_MAP, XDP_PEERS_MAP, XDP_POLICY_MAP, XDP_PROGRAM, XDP_STATS_MAP,
};
use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{ProgramError, XdpMode},
    Ebpf,
};

use super::{
    addr_bytes, counter_index, family_code,
    klog::KernelLog,
    load::{load_object, xdp_program, LoadFor},
    map_err,
    peers::{give_peer_rows, Maps, PeerCounterRow, PolicyEntry},
    AttachMode, DataplaneError, XdpAdvert, XdpStats,
};
use crate::packet::{Family, RxAuth, RxPolicy, SourcePolicy, VersionPolicy};

/// `BPF_NOEXIST` map update flag: create only.
const BPF_NOEXIST: u64 = 1;

/// Smallest advert event ring [`events_ring_bytes`] gives: 64 KiB, about 900 events.
pub(crate) const MIN_EVENTS_RING_BYTES: u32 = 64 * 1024;
/// Largest advert event ring: 4 MiB, about 58,000 events.
pub(crate) const MAX_EVENTS_RING_BYTES: u32 = 4 * 1024 * 1024;
/// Bytes one advert takes in the ring: the 64-byte event and the ring's 8-byte record header.
const EVENT_RECORD_BYTES: f64 = 72.0;
/// Seconds of adverts the ring holds: the agent drains it at every wake-up of its loop, so this
/// is the loop stall the interface survives without losing an advert.
const RING_SECONDS: f64 = 1.0;

/// The advert event ring for an interface whose instances advertise `adverts_per_second` in
/// total (the sum of `1 / advert_int` over them). Each instance is counted twice, for a second
/// Master during an election or a split (Backups send nothing). Room for one second of that
/// (`RING_SECONDS`), as a power of two from 64 KiB to 4 MiB (`MIN_EVENTS_RING_BYTES`,
/// `MAX_EVENTS_RING_BYTES`).
///
/// The ring is mapped into the agent (its data twice, as aya reads it), so its size is resident
/// memory for the agent's life: the tutorial's one instance at 1 s needs a few hundred bytes
/// and gets the 64 KiB floor (instead of a fixed 256 KiB); 50 instances at 0.1 s get 128 KiB;
/// 510 at 10 ms the 4 MiB ceiling.
pub fn events_ring_bytes(adverts_per_second: f64) -> u32 {
    let want = (2.0 * adverts_per_second.max(0.0) * RING_SECONDS * EVENT_RECORD_BYTES).ceil();
    if !want.is_finite() || want >= f64::from(MAX_EVENTS_RING_BYTES) {
        return MAX_EVENTS_RING_BYTES;
    }
    // `want` is in 0..4 MiB here: the cast is exact.
    (want as u32)
        .next_power_of_two()
        .clamp(MIN_EVENTS_RING_BYTES, MAX_EVENTS_RING_BYTES)
}

impl Maps {
    /// Replaces the policies (and unicast peers) of `ifindex` with `policies`. New entries are
    /// written before stale ones are removed, so packets never see a gap. Adds the policy slots
    /// used to `slots` (the slots whose inline rows [`Maps::peer_counters`] reads).
    pub(super) fn set_policies(
        ebpf: &mut Ebpf,
        ifindex: u32,
        policies: &[RxPolicy],
        slots: &mut BTreeSet<u32>,
    ) -> Result<(), DataplaneError> {
        let mut pol_entries: Vec<PolicyEntry> = Vec::new();
        for p in policies {
            let fam = family_code(p.family);
            let slot = policy_slot(fam, p.vrid);
            // Like `check_any`, the first policy for a VRID and family wins.
            if pol_entries.iter().any(|(k, _, _)| *k == slot) {
                continue;
            }
            let mut value = Policy::default();
            match p.version {
                VersionPolicy::V2 {
                    auth,
                    advert_interval_secs,
                } => {
                    if p.family == Family::V6 {
                        return Err(DataplaneError::Policy {
                            vrid: p.vrid,
                            why: "VRRPv2 is IPv4 only",
                        });
                    }
                    value.version = 2;
                    value.auth_type = auth.type_number();
                    value.interval_secs = advert_interval_secs;
                    if let RxAuth::Pass(data) = auth {
                        value.auth_data = data;
                    }
                }
                VersionPolicy::V3 => value.version = 3,
            }
            value.owner = u8::from(p.owner);
            let mut peers: Vec<(PeerKey, PeerPolicy)> = Vec::new();
            match &p.source {
                SourcePolicy::Multicast { ttl } => {
                    // The program keeps only the multicast minimum (the maximum is 255).
                    if ttl.max != u8::MAX {
                        return Err(DataplaneError::Policy {
                            vrid: p.vrid,
                            why: "a multicast TTL range must end at 255",
                        });
                    }
                    value.ttl_min = ttl.min;
                }
                SourcePolicy::Unicast { peers: configured } => {
                    for peer in configured {
                        // A peer of the other family can never match (as in `check`).
                        if Family::of(&peer.addr) != p.family {
                            continue;
                        }
                        let pk = PeerKey {
                            ifindex,
                            vrid: p.vrid,
                            family: fam,
                            _pad: [0; 2],
                            addr: addr_bytes(&peer.addr),
                        };
                        // Like `check`, the first entry for an address wins.
                        if !peers.iter().any(|(k, _)| *k == pk) {
                            peers.push((
                                pk,
                                PeerPolicy {
                                    ttl_min: peer.ttl.min,
                                    ttl_max: peer.ttl.max,
                                    _pad: [0; 6],
                                },
                            ));
                        }
                    }
                    if peers.len() <= MAX_INLINE_PEERS {
                        value.unicast = unicast_mode::INLINE;
                        value.peer_count = peers.len() as u8;
                        for (i, (k, v)) in peers.iter().enumerate() {
                            value.peers[i] = k.addr;
                            value.peer_ttl_min[i] = v.ttl_min;
                            value.peer_ttl_max[i] = v.ttl_max;
                        }
                    } else {
                        value.unicast = unicast_mode::MAP;
                    }
                }
            }
            pol_entries.push((slot, value, peers));
        }

        // Peers of instances too large for their policy entry go first, so a policy that needs
        // them never sees them missing.
        let map_peers: Vec<(PeerKey, PeerPolicy)> = pol_entries
            .iter()
            .filter(|(_, v, _)| v.unicast == unicast_mode::MAP)
            .flat_map(|(_, _, peers)| peers.iter().copied())
            .collect();
        {
            let mut map: HashMap<_, PeerKey, PeerPolicy> = HashMap::try_from(
                ebpf.map_mut(XDP_PEERS_MAP)
                    .ok_or(DataplaneError::Missing("the peer map"))?,
            )
            .map_err(map_err(XDP_PEERS_MAP))?;
            for (k, v) in &map_peers {
                map.insert(k, v, 0).map_err(map_err(XDP_PEERS_MAP))?;
            }
        }
        let hash_rows;
        {
            // The table is the program's global data: one value, read, changed and written
            // whole (one update: a packet sees the old table or the new one, not a gap).
            let mut map: Array<_, PolicyTable> = Array::try_from(
                ebpf.map_mut(XDP_POLICY_MAP)
                    .ok_or(DataplaneError::Missing("the policy table"))?,
            )
            .map_err(map_err(XDP_POLICY_MAP))?;
            let mut table = Box::new(map.get(&0, 0).map_err(map_err(XDP_POLICY_MAP))?);
            // A rewritten policy keeps the rows its slot gave (the program claims them in the
            // entry) and its `hashed` flag (the program may have set it).
            for (slot, v, _) in &mut pol_entries {
                let old = &table.entries[*slot as usize];
                v.rows = old.rows;
                if old.hashed != 0 {
                    v.hashed = 1;
                }
            }
            // Counter rows for every configured peer, so they are listed (at zero) before the
            // first packet: a free inline row of the slot (found without a hash lookup), else a
            // row in the LRU hash, which the program then searches for the slot (`hashed`).
            hash_rows = give_peer_rows(&mut pol_entries);
            let keep: HashSet<u32> = pol_entries.iter().map(|(k, _, _)| *k).collect();
            for (slot, old) in table.entries.iter_mut().enumerate() {
                if keep.contains(&(slot as u32)) {
                    continue;
                }
                // Unconfigured (version 0): its adverts are no longer ours (passed, counted as
                // not ours); its sources keep their rows and what they counted.
                *old = Policy {
                    rows: old.rows,
                    hashed: old.hashed,
                    ..Policy::default()
                };
            }
            for (slot, v, _) in &pol_entries {
                table.entries[*slot as usize] = *v;
            }
            map.set(0, table.as_ref(), 0)
                .map_err(map_err(XDP_POLICY_MAP))?;
        }
        {
            let mut map: HashMap<_, PeerKey, PeerPolicy> = HashMap::try_from(
                ebpf.map_mut(XDP_PEERS_MAP)
                    .ok_or(DataplaneError::Missing("the peer map"))?,
            )
            .map_err(map_err(XDP_PEERS_MAP))?;
            let keep: HashSet<PeerKey> = map_peers.iter().map(|(k, _)| *k).collect();
            let stale: Vec<PeerKey> = map
                .keys()
                .filter_map(Result::ok)
                .filter(|k| !keep.contains(k))
                .collect();
            for k in stale {
                map.remove(&k).map_err(map_err(XDP_PEERS_MAP))?;
            }
        }
        slots.extend(pol_entries.iter().map(|(k, _, _)| *k));
        Self::create_counter_rows(ebpf, &hash_rows)
    }

    fn create_counter_rows(ebpf: &mut Ebpf, keys: &[PeerKey]) -> Result<(), DataplaneError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Map {
            map: XDP_COUNTERS_MAP,
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: "nr_cpus",
                io_error: e,
            }),
        })?;
        let mut map: PerCpuHashMap<_, PeerKey, PeerCounters> = PerCpuHashMap::try_from(
            ebpf.map_mut(XDP_COUNTERS_MAP)
                .ok_or(DataplaneError::Missing("the counter map"))?,
        )
        .map_err(map_err(XDP_COUNTERS_MAP))?;
        for k in keys {
            let zero = PerCpuValues::try_from(vec![PeerCounters::default(); cpus]).map_err(
                |io_error| DataplaneError::Map {
                    map: XDP_COUNTERS_MAP,
                    source: MapError::SyscallError(aya::sys::SyscallError {
                        call: "per-CPU values",
                        io_error,
                    }),
                },
            )?;
            // BPF_NOEXIST: an existing row (the program counted already) is kept.
            match map.insert(k, zero, BPF_NOEXIST) {
                Ok(()) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(map_err(XDP_COUNTERS_MAP)(e)),
            }
        }
        Ok(())
    }

    pub(super) fn set_iface_flags(ebpf: &mut Ebpf, flags: u32) -> Result<(), DataplaneError> {
        let mut map: Array<_, IfaceConfig> = Array::try_from(
            ebpf.map_mut(XDP_IFACE_MAP)
                .ok_or(DataplaneError::Missing("the interface map"))?,
        )
        .map_err(map_err(XDP_IFACE_MAP))?;
        map.set(0, IfaceConfig { flags }, 0)
            .map_err(map_err(XDP_IFACE_MAP))
    }

    /// The program's other counts. Frames that were VRRP are not counted separately (that cost a
    /// per-CPU map update on every advert): each one adds one to exactly one counter of one row
    /// (its verdict; `pri_zero_rcvd` is counted besides `advert_rcvd`), so they are summed from
    /// the rows. Rows the LRU hash evicted (more sources than it holds) take their counts along.
    pub(super) fn stats(
        ebpf: &Ebpf,
        ifindex: u32,
        slots: &BTreeSet<u32>,
    ) -> Result<XdpStats, DataplaneError> {
        let vrrp = Self::peer_counters(ebpf, ifindex, slots)?
            .iter()
            .flat_map(|row| {
                row.counts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != counter_index::PRI_ZERO_RCVD)
                    .map(|(_, n)| *n)
            })
            .fold(0u64, u64::wrapping_add);
        Ok(XdpStats {
            vrrp,
            ring_full: Self::stat(ebpf, xdp_stats::RING_FULL)?,
            not_ours: Self::stat(ebpf, xdp_stats::NOT_OURS)?,
        })
    }

    /// One slot of the stats array, summed over CPUs.
    fn stat(ebpf: &Ebpf, idx: u32) -> Result<u64, DataplaneError> {
        let arr = PerCpuArray::<_, u64>::try_from(
            ebpf.map(XDP_STATS_MAP)
                .ok_or(DataplaneError::Missing("the stats map"))?,
        )
        .map_err(map_err(XDP_STATS_MAP))?;
        let vals = arr.get(&idx, 0).map_err(map_err(XDP_STATS_MAP))?;
        Ok(vals.iter().copied().sum())
    }

    pub(super) fn ring(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>, DataplaneError> {
        RingBuf::try_from(
            ebpf.take_map(XDP_EVENTS_MAP)
                .ok_or(DataplaneError::Missing("the event ring buffer"))?,
        )
        .map_err(map_err(XDP_EVENTS_MAP))
    }
}

pub(super) fn drain(ring: &mut RingBuf<MapData>, max: usize) -> Vec<XdpAdvert> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some(item) = ring.next() else { break };
        if let Some(a) = XdpAdvert::from_bytes(&item) {
            out.push(a);
        }
    }
    out
}

fn os_error(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(n)) => n.raw_os_error(),
        _ => None,
    }
}

/// EBUSY from bpf_link_create (a program or link is attached in this mode), EEXIST when the
/// other mode (native vs generic) has one.
fn is_busy(e: &ProgramError) -> bool {
    matches!(os_error(e), Some(libc::EBUSY) | Some(libc::EEXIST))
}

/// The XDP advert filter attached to one interface, with its maps filled from the interface's
/// policies. Dropping it detaches the program.
pub struct XdpDataplane {
    ebpf: Ebpf,
    /// Every policy slot ever configured (where the program may have made inline rows).
    slots: BTreeSet<u32>,
    ring: RingBuf<MapData>,
    iface: String,
    ifindex: u32,
    mode: AttachMode,
    fallback: Option<String>,
    /// The program's log records, forwarded to the agent's log.
    klog: KernelLog,
    /// The attachment, until [`XdpDataplane::detach`] (or drop).
    link: Option<aya::programs::xdp::XdpLinkId>,
    /// Size of the advert event ring.
    events_ring: u32,
}

/// The name used by earlier versions of this module.
pub type XdpAttachment = XdpDataplane;

impl fmt::Debug for XdpDataplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpDataplane")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("fallback", &self.fallback)
            .field("klog", &self.klog)
            .finish()
    }
}

impl XdpDataplane {
    /// Loads the embedded object, fills its maps with `policies` for `iface`, and attaches the
    /// filter. Valid adverts are dropped after being queued, or passed on to the stack too when
    /// `pass_to_stack` (so tcpdump and raw sockets still see them).
    ///
    /// With [`AttachMode::Auto`], native mode is tried first and generic mode when the driver
    /// refuses; [`XdpDataplane::fallback_reason`] says why. When another XDP program (a second
    /// agent) is attached to the interface already, this fails with
    /// [`DataplaneError::AlreadyAttached`], in every mode.
    pub fn attach(
        iface: &str,
        mode: AttachMode,
        policies: &[RxPolicy],
        pass_to_stack: bool,
    ) -> Result<Self, DataplaneError> {
        Self::attach_with_ring(iface, mode, policies, pass_to_stack, EVENTS_RING_BYTES)
    }

    /// [`XdpDataplane::attach`] with an advert event ring of `events_ring` bytes (see
    /// [`events_ring_bytes`]) instead of the default [`EVENTS_RING_BYTES`].
    pub fn attach_with_ring(
        iface: &str,
        mode: AttachMode,
        policies: &[RxPolicy],
        pass_to_stack: bool,
        events_ring: u32,
    ) -> Result<Self, DataplaneError> {
        let events_ring = events_ring.clamp(MIN_EVENTS_RING_BYTES, MAX_EVENTS_RING_BYTES);
        if !events_ring.is_power_of_two() {
            return Err(DataplaneError::Missing(
                "an advert ring size that is a power of two",
            ));
        }
        if iface.is_empty()
            || iface.len() >= libc::IFNAMSIZ
            || iface.contains('\0')
            || iface.contains('/')
        {
            return Err(DataplaneError::BadInterface(iface.to_owned()));
        }
        let cname = std::ffi::CString::new(iface)
            .map_err(|_| DataplaneError::BadInterface(iface.to_owned()))?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(DataplaneError::NoSuchInterface(iface.to_owned()));
        }
        let mut ebpf = load_object(LoadFor::Xdp { events_ring })?;
        let mut slots = BTreeSet::new();
        Maps::set_policies(&mut ebpf, ifindex, policies, &mut slots)?;
        Maps::set_iface_flags(&mut ebpf, pass_flags(pass_to_stack))?;
        let ring = Maps::ring(&mut ebpf)?;
        let attach_err = |mode: AttachMode, source: ProgramError| {
            if is_busy(&source) {
                DataplaneError::AlreadyAttached {
                    iface: iface.to_owned(),
                }
            } else {
                DataplaneError::Attach {
                    iface: iface.to_owned(),
                    mode,
                    source,
                }
            }
        };
        let prog = xdp_program(&mut ebpf, XDP_PROGRAM)?;
        prog.load().map_err(|source| DataplaneError::Attach {
            iface: iface.to_owned(),
            mode,
            source,
        })?;
        let mut fallback = None;
        let (used, link) = match mode {
            AttachMode::Native => (
                AttachMode::Native,
                prog.attach_to_if_index(ifindex, XdpMode::Driver)
                    .map_err(|e| attach_err(mode, e))?,
            ),
            AttachMode::Generic => (
                AttachMode::Generic,
                prog.attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|e| attach_err(mode, e))?,
            ),
            AttachMode::Auto => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(link) => (AttachMode::Native, link),
                Err(native) if is_busy(&native) => {
                    return Err(attach_err(AttachMode::Native, native));
                }
                Err(native) => {
                    fallback = Some(format!(
                        "native XDP on {iface} refused ({native}); attached in generic mode"
                    ));
                    let link = prog
                        .attach_to_if_index(ifindex, XdpMode::Skb)
                        .map_err(|e| attach_err(AttachMode::Generic, e))?;
                    (AttachMode::Generic, link)
                }
            },
        };
        let klog = KernelLog::start(&mut ebpf, &format!("XDP on {iface}"));
        Ok(Self {
            ebpf,
            slots,
            ring,
            iface: iface.to_owned(),
            ifindex,
            mode: used,
            fallback,
            klog,
            link: Some(link),
            events_ring,
        })
    }

    /// Detaches the program from the interface now (dropping the dataplane does it too, but
    /// other holders of it may keep it alive a while): the interface can be attached again at
    /// once. Maps stay readable. Errors (the device is gone, say) are ignored: then nothing is
    /// attached anyway.
    pub fn detach(&mut self) {
        if let Some(link) = self.link.take() {
            if let Ok(prog) = xdp_program(&mut self.ebpf, XDP_PROGRAM) {
                let _ = prog.detach(link);
            }
        }
    }

    /// Size of the advert event ring, bytes.
    pub fn events_ring_bytes(&self) -> u32 {
        self.events_ring
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode the program ended up attached in (never `Auto`).
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Why [`AttachMode::Auto`] fell back to generic mode, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Replaces the interface's policies (after a reload). Counters are kept.
    pub fn set_policies(&mut self, policies: &[RxPolicy]) -> Result<(), DataplaneError> {
        Maps::set_policies(&mut self.ebpf, self.ifindex, policies, &mut self.slots)
    }

    /// Switches between dropping valid adverts after queueing them (`false`, the default) and
    /// passing them on to the stack as well (`true`).
    pub fn set_pass_to_stack(&mut self, pass: bool) -> Result<(), DataplaneError> {
        Maps::set_iface_flags(&mut self.ebpf, pass_flags(pass))
    }

    /// Takes up to `max` queued adverts without blocking (none when the ring is empty). Wait for
    /// more with the ring buffer's fd ([`AsFd`]), e.g. in a tokio `AsyncFd`, which becomes
    /// readable when adverts are queued.
    pub fn drain_events(&mut self, max: usize) -> Vec<XdpAdvert> {
        drain(&mut self.ring, max)
    }

    /// Per-peer counters of this interface (configured unicast peers, sources that sent a valid
    /// advert, and the unknown-source bucket), sorted.
    pub fn peer_counters(&self) -> Result<Vec<PeerCounterRow>, DataplaneError> {
        Maps::peer_counters(&self.ebpf, self.ifindex, &self.slots)
    }

    /// The program's other counts.
    pub fn stats(&self) -> Result<XdpStats, DataplaneError> {
        Maps::stats(&self.ebpf, self.ifindex, &self.slots)
    }

    /// The frames passed as not ours ([`XdpStats::not_ours`]) alone: one per-CPU array read.
    pub fn not_ours(&self) -> Result<u64, DataplaneError> {
        Maps::stat(&self.ebpf, xdp_stats::NOT_OURS)
    }

    /// The loaded object, for the SYN counter maps
    /// ([`tcp::set_syn_ports`](super::tcp::set_syn_ports),
    /// [`tcp::syn_counts`](super::tcp::syn_counts)).
    pub fn object(&self) -> &Ebpf {
        &self.ebpf
    }

    /// The loaded object, mutably (see [`XdpDataplane::object`]).
    pub fn object_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

impl AsFd for XdpDataplane {
    /// The event ring buffer's fd: readable when adverts are queued.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for XdpDataplane {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

pub(super) fn pass_flags(pass: bool) -> u32 {
    if pass {
        iface_flags::PASS_TO_STACK
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advert_ring_is_sized_for_the_instances_adverts() {
        // The tutorial: one instance at 1 s (and nothing at all) gets the floor.
        assert_eq!(events_ring_bytes(0.0), MIN_EVENTS_RING_BYTES);
        assert_eq!(events_ring_bytes(1.0), MIN_EVENTS_RING_BYTES);
        // 50 instances at 0.1 s: 500/s, twice, 72 bytes each, one second: 72,000 bytes.
        assert_eq!(events_ring_bytes(500.0), 128 * 1024);
        // 255 instances at 1 s: 36,720 bytes.
        assert_eq!(events_ring_bytes(255.0), MIN_EVENTS_RING_BYTES);
        // 510 instances at 10 ms: past the ceiling.
        assert_eq!(events_ring_bytes(51_000.0), MAX_EVENTS_RING_BYTES);
        assert_eq!(events_ring_bytes(f64::INFINITY), MAX_EVENTS_RING_BYTES);
        assert_eq!(events_ring_bytes(f64::NAN), MIN_EVENTS_RING_BYTES);
        assert_eq!(events_ring_bytes(-3.0), MIN_EVENTS_RING_BYTES);
        // Always a power of two multiple of the page size, and it holds what it promises.
        for rate in [0.5, 10.0, 455.0, 456.0, 3000.0, 20_000.0] {
            let b = events_ring_bytes(rate);
            assert!(b.is_power_of_two() && b % 4096 == 0, "{rate}: {b}");
            if b < MAX_EVENTS_RING_BYTES {
                assert!(
                    f64::from(b) >= 2.0 * rate * EVENT_RECORD_BYTES,
                    "{rate}: {b}"
                );
            }
        }
    }
}

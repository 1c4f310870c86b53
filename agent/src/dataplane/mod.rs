//! Loading and attaching the embedded eBPF programs: the XDP advert filter and its maps.
//!
//! The object built by `cargo xtask build-ebpf` is embedded in the binary at build time (see
//! `agent/build.rs`), so a built `xvrrp` needs nothing beside it.
//!
//! - [`XdpDataplane`] attaches the filter to one interface, fills its maps from the interface's
//!   [`RxPolicy`]s, hands out the valid adverts the program queued ([`XdpDataplane::drain_events`],
//!   with the ring buffer's fd for `AsyncFd`), and reads the per-peer counters. Dropping it
//!   detaches the program (aya detaches the links it owns).
//! - [`XdpTestProgram`] loads the same program without attaching it and runs it on frames with
//!   `BPF_PROG_TEST_RUN` (the parity tests and the benchmark).
//! - [`klog::KernelLog`] forwards the programs' log records (aya-log, error paths only) to the
//!   agent's log; each loaded object has one.
//!
//! The map layouts are in `agent_common`; the verdict order is the one of [`crate::packet`].

pub mod klog;
pub mod tcp;

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    sync::{Mutex, OnceLock, PoisonError},
    time::Duration,
};

use agent_common::{
    checksum_form, counter_index, family, iface_flags, policy_slot, row_state, unicast_mode,
    xdp_stats, AdvertEvent, IfaceConfig, PeerCounters, PeerKey, PeerPolicy, Policy, PolicyTable,
    ADVERT_EVENT_LEN, COUNTER_SLOTS, INLINE_ROWS, MAX_INLINE_PEERS, XDP_BUCKET_MAP,
    XDP_COUNTERS_MAP, XDP_EVENTS_MAP, XDP_IFACE_MAP, XDP_PASS_PROGRAM, XDP_PEERS_MAP,
    XDP_POLICY_MAP, XDP_PROGRAM, XDP_ROWCNT_MAP, XDP_STATS_MAP,
};
use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};

use self::klog::{GlobalLog, KernelLog, Sink};
use crate::packet::{
    ChecksumForm, Counter, Family, RxAuth, RxPolicy, SourcePolicy, Version, VersionPolicy,
};

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

/// The eBPF object embedded at build time (empty when the agent was built without it).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvrrp-ebpf.o"));

/// The ifindex `BPF_PROG_TEST_RUN` gives XDP programs: the loopback device of the caller's
/// network namespace, always 1. [`XdpTestProgram`] fills its maps for it.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// `BPF_NOEXIST` map update flag: create only.
const BPF_NOEXIST: u64 = 1;

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

/// Which sender a row of per-peer counters is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSlot {
    /// A source address sending for a VRID: a configured unicast peer, or a source that sent a
    /// valid advert.
    Peer {
        /// The VRID.
        vrid: u8,
        /// The source address.
        addr: IpAddr,
    },
    /// The interface's unknown-source bucket: failures from any other source, and failures
    /// found before the VRRP header could be read.
    Unknown,
}

impl fmt::Display for PeerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSlot::Peer { vrid, addr } => write!(f, "vrid {vrid} from {addr}"),
            PeerSlot::Unknown => f.write_str("unknown sources"),
        }
    }
}

/// One row of per-peer counters, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCounterRow {
    /// Interface index.
    pub ifindex: u32,
    /// Which sender.
    pub slot: PeerSlot,
    /// One count per [`Counter`], indexed by [`Counter::index`].
    pub counts: [u64; COUNTER_SLOTS],
}

impl PeerCounterRow {
    /// The count of one counter.
    pub fn get(&self, counter: Counter) -> u64 {
        self.counts
            .get(counter.index() as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The non-zero counters.
    pub fn nonzero(&self) -> Vec<(Counter, u64)> {
        Counter::ALL
            .iter()
            .map(|c| (*c, self.get(*c)))
            .filter(|(_, n)| *n != 0)
            .collect()
    }
}

/// True when the binary carries its eBPF object.
pub fn has_embedded_object() -> bool {
    !EBPF_OBJECT.is_empty()
}

fn load_object() -> Result<Ebpf, DataplaneError> {
    if !has_embedded_object() {
        return Err(DataplaneError::NoObject);
    }
    // The kernel charges BPF memory to the memory cgroup; raising RLIMIT_MEMLOCK is only needed on
    // old kernels and may be refused (no CAP_SYS_RESOURCE). Its failure is deliberately not fatal.
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised struct.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    let loaded = {
        // One load at a time: the loader is shared, and two loads at once (the XDP filter on the
        // event loop, the TCP tracker on a blocking thread) would add up their transient heaps.
        let mut loader = loader().lock().unwrap_or_else(PoisonError::into_inner);
        loader.load(EBPF_OBJECT)
    };
    // Loading leaves freed heap behind (the object's parse, the tracker's BTF offsets computed
    // just before); hand it back to the kernel now rather than keep it for the daemon's life.
    release_free_heap();
    Ok(loaded?)
}

/// The process's one [`EbpfLoader`], made without the kernel's BTF.
///
/// `EbpfLoader::new()` (and so `Ebpf::load`) always parses `/sys/kernel/btf/vmlinux` for CO-RE
/// relocations: about 5 MB read and some 25 MB of heap while aya builds its type table, on every
/// load (the XDP filter per interface, the TCP tracker). Our object has no CO-RE relocations
/// (no `.BTF.ext`; the TCP program's field offsets come from [`tcp::SockOffsets`]), so that
/// parse only costs memory. The loader is built once, on a short-lived thread that cannot see
/// the file ([`hide_kernel_btf`]), so aya's parse fails at the `open` and the loader has no
/// kernel BTF; when that thread cannot be isolated, the loader is built normally and its BTF
/// dropped at once. Every load then reuses it.
fn loader() -> &'static Mutex<EbpfLoader<'static>> {
    static LOADER: OnceLock<Mutex<EbpfLoader<'static>>> = OnceLock::new();
    LOADER.get_or_init(|| {
        if object_has_btf_ext(EBPF_OBJECT) {
            // CO-RE relocations need the kernel's types: keep aya's default.
            return Mutex::new(EbpfLoader::new());
        }
        let isolated = std::thread::Builder::new()
            .name("xvrrp-loader".to_owned())
            .spawn(|| hide_kernel_btf().then(EbpfLoader::new))
            .ok()
            .and_then(|t| t.join().ok())
            .flatten();
        // Not isolated: `EbpfLoader::default()` is `new()`, which parses; dropped right here.
        let mut loader = isolated.unwrap_or_default();
        loader.btf(None);
        Mutex::new(loader)
    })
}

/// Whether an ELF object has a `.BTF.ext` section (where CO-RE relocations live), by its name in
/// the section name table.
fn object_has_btf_ext(object: &[u8]) -> bool {
    const NAME: &[u8] = b".BTF.ext\0";
    object.windows(NAME.len()).any(|w| w == NAME)
}

/// Makes `/sys/kernel/btf/vmlinux` unreachable for the calling thread alone: it gets its own
/// filesystem context (`unshare(CLONE_FS)`: root, cwd and umask, not the mount namespace) and
/// its root is moved to an empty procfs directory. Only for a thread that exits right after.
/// False (and nothing changed) when either step is refused (no `CAP_SYS_CHROOT`, seccomp).
fn hide_kernel_btf() -> bool {
    // SAFETY: unshare(2) with CLONE_FS only: this thread stops sharing root/cwd/umask with the
    // others. Nothing else of the process changes.
    if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
        return false;
    }
    // `fdinfo` holds only numeric entries, so no `sys/...` below it. After the unshare above,
    // chroot(2) changes this thread's root alone.
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::chroot(c"/proc/self/fdinfo".as_ptr()) == 0 }
}

/// Returns the heap's free memory to the kernel (glibc keeps freed memory mapped; other libcs
/// need nothing here).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, DataplaneError> {
    ebpf.program_mut(name)
        .ok_or(DataplaneError::Missing("the XDP program"))?
        .try_into()
        .map_err(|_| DataplaneError::Missing("an XDP program of the right type"))
}

/// The kernel maps of one loaded object, for one interface index.
struct Maps;

/// A policy slot, its value, and the unicast peers of the instance.
type PolicyEntry = (u32, Policy, Vec<(PeerKey, PeerPolicy)>);

/// Gives each configured unicast peer of `entries` a counter row: a free inline row of its slot
/// (in the entry's row directory), else one in the LRU hash, whose key is returned and whose
/// slot is flagged `hashed` in its entry. A peer that owns a row already keeps it.
fn give_peer_rows(entries: &mut [PolicyEntry]) -> Vec<PeerKey> {
    let mut hash_rows = Vec::new();
    for (_, value, peers) in entries.iter_mut() {
        let dir = &mut value.rows;
        for (key, _) in peers.iter() {
            let owned = dir
                .state
                .iter()
                .zip(dir.addrs.iter())
                .any(|(st, a)| *st == row_state::READY && *a == key.addr);
            if owned {
                continue;
            }
            match dir.state.iter().position(|st| *st == row_state::FREE) {
                Some(i) => {
                    dir.addrs[i] = key.addr;
                    dir.state[i] = row_state::READY;
                }
                None => {
                    value.hashed = 1;
                    hash_rows.push(*key);
                }
            }
        }
    }
    hash_rows
}

impl Maps {
    /// Replaces the policies (and unicast peers) of `ifindex` with `policies`. New entries are
    /// written before stale ones are removed, so packets never see a gap. Adds the policy slots
    /// used to `slots` (the slots whose inline rows [`Maps::peer_counters`] reads).
    fn set_policies(
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

    fn set_iface_flags(ebpf: &mut Ebpf, flags: u32) -> Result<(), DataplaneError> {
        let mut map: Array<_, IfaceConfig> = Array::try_from(
            ebpf.map_mut(XDP_IFACE_MAP)
                .ok_or(DataplaneError::Missing("the interface map"))?,
        )
        .map_err(map_err(XDP_IFACE_MAP))?;
        map.set(0, IfaceConfig { flags }, 0)
            .map_err(map_err(XDP_IFACE_MAP))
    }

    /// The rows of this copy's maps: the inline rows of `slots` (listed under `ifindex`, like the
    /// unknown-source bucket) and the LRU hash rows, one row per source.
    fn peer_counters(
        ebpf: &Ebpf,
        ifindex: u32,
        slots: &BTreeSet<u32>,
    ) -> Result<Vec<PeerCounterRow>, DataplaneError> {
        let bucket = PerCpuArray::<_, PeerCounters>::try_from(
            ebpf.map(XDP_BUCKET_MAP)
                .ok_or(DataplaneError::Missing("the unknown-source bucket"))?,
        )
        .map_err(map_err(XDP_BUCKET_MAP))?;
        let mut counts = [0u64; COUNTER_SLOTS];
        for v in bucket.get(&0, 0).map_err(map_err(XDP_BUCKET_MAP))?.iter() {
            for (sum, n) in counts.iter_mut().zip(v.counts.iter()) {
                *sum = sum.wrapping_add(*n);
            }
        }
        let mut merged: BTreeMap<(u32, PeerSlot), [u64; COUNTER_SLOTS]> = BTreeMap::new();
        merged.insert((ifindex, PeerSlot::Unknown), counts);
        let add = |merged: &mut BTreeMap<(u32, PeerSlot), [u64; COUNTER_SLOTS]>,
                   key: (u32, PeerSlot),
                   values: &PerCpuValues<PeerCounters>| {
            let sums = merged.entry(key).or_insert([0; COUNTER_SLOTS]);
            for v in values.iter() {
                for (sum, n) in sums.iter_mut().zip(v.counts.iter()) {
                    *sum = sum.wrapping_add(*n);
                }
            }
        };
        let table: Array<_, PolicyTable> = Array::try_from(
            ebpf.map(XDP_POLICY_MAP)
                .ok_or(DataplaneError::Missing("the policy table"))?,
        )
        .map_err(map_err(XDP_POLICY_MAP))?;
        let table = Box::new(table.get(&0, 0).map_err(map_err(XDP_POLICY_MAP))?);
        let inline = PerCpuArray::<_, PeerCounters>::try_from(
            ebpf.map(XDP_ROWCNT_MAP)
                .ok_or(DataplaneError::Missing("the inline rows"))?,
        )
        .map_err(map_err(XDP_ROWCNT_MAP))?;
        for &slot in slots {
            let Some(dir) = table.entries.get(slot as usize).map(|p| p.rows) else {
                continue;
            };
            let (fam, vrid) = if slot >= 256 {
                (Family::V6, (slot - 256) as u8)
            } else {
                (Family::V4, slot as u8)
            };
            for (i, (state, addr)) in dir.state.iter().zip(dir.addrs.iter()).enumerate() {
                if *state != row_state::READY {
                    continue;
                }
                let idx = slot * INLINE_ROWS as u32 + i as u32;
                let values = inline.get(&idx, 0).map_err(map_err(XDP_ROWCNT_MAP))?;
                let peer = PeerSlot::Peer {
                    vrid,
                    addr: addr_from(fam, addr),
                };
                add(&mut merged, (ifindex, peer), &values);
            }
        }
        let map: PerCpuHashMap<_, PeerKey, PeerCounters> = PerCpuHashMap::try_from(
            ebpf.map(XDP_COUNTERS_MAP)
                .ok_or(DataplaneError::Missing("the counter map"))?,
        )
        .map_err(map_err(XDP_COUNTERS_MAP))?;
        for item in map.iter() {
            let (key, values) = match item {
                Ok(kv) => kv,
                // An entry evicted or deleted while iterating: skip it.
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(XDP_COUNTERS_MAP)(e)),
            };
            let fam = if key.family == family::V6 {
                Family::V6
            } else {
                Family::V4
            };
            let slot = PeerSlot::Peer {
                vrid: key.vrid,
                addr: addr_from(fam, &key.addr),
            };
            add(&mut merged, (key.ifindex, slot), &values);
        }
        Ok(merged
            .into_iter()
            .map(|((ifindex, slot), counts)| PeerCounterRow {
                ifindex,
                slot,
                counts,
            })
            .collect())
    }

    /// The program's other counts. Frames that were VRRP are not counted separately (that cost a
    /// per-CPU map update on every advert): each one adds one to exactly one counter of one row
    /// (its verdict; `pri_zero_rcvd` is counted besides `advert_rcvd`), so they are summed from
    /// the rows. Rows the LRU hash evicted (more sources than it holds) take their counts along.
    fn stats(ebpf: &Ebpf, ifindex: u32, slots: &BTreeSet<u32>) -> Result<XdpStats, DataplaneError> {
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

    fn ring(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>, DataplaneError> {
        RingBuf::try_from(
            ebpf.take_map(XDP_EVENTS_MAP)
                .ok_or(DataplaneError::Missing("the event ring buffer"))?,
        )
        .map_err(map_err(XDP_EVENTS_MAP))
    }
}

fn drain(ring: &mut RingBuf<MapData>, max: usize) -> Vec<XdpAdvert> {
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
        let mut ebpf = load_object()?;
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
        let used = match mode {
            AttachMode::Native => {
                prog.attach_to_if_index(ifindex, XdpMode::Driver)
                    .map_err(|e| attach_err(mode, e))?;
                AttachMode::Native
            }
            AttachMode::Generic => {
                prog.attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|e| attach_err(mode, e))?;
                AttachMode::Generic
            }
            AttachMode::Auto => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(_) => AttachMode::Native,
                Err(native) if is_busy(&native) => {
                    return Err(attach_err(AttachMode::Native, native));
                }
                Err(native) => {
                    fallback = Some(format!(
                        "native XDP on {iface} refused ({native}); attached in generic mode"
                    ));
                    prog.attach_to_if_index(ifindex, XdpMode::Skb)
                        .map_err(|e| attach_err(AttachMode::Generic, e))?;
                    AttachMode::Generic
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
        })
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

    /// The loaded object, for the SYN counter maps ([`tcp::set_syn_ports`], [`tcp::syn_counts`]).
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

fn pass_flags(pass: bool) -> u32 {
    if pass {
        iface_flags::PASS_TO_STACK
    } else {
        0
    }
}

/// The XDP programs loaded but not attached, for running them on test input with
/// `BPF_PROG_TEST_RUN` (the parity tests and the benchmark). Maps are filled for
/// [`TEST_RUN_IFINDEX`], the ifindex test runs see.
pub struct XdpTestProgram {
    ebpf: Ebpf,
    /// As in [`XdpDataplane`].
    slots: BTreeSet<u32>,
    ring: RingBuf<MapData>,
    /// As in [`XdpDataplane`] (read by a task when loaded on a tokio runtime, else by
    /// [`XdpTestProgram::flush_kernel_log`]).
    klog: KernelLog,
}

/// The result of running the program once (or `repeat` times) on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestVerdict {
    /// The XDP action the program returned ([`XDP_PASS`] = 2, [`XDP_DROP`] = 1).
    pub action: u32,
    /// Average run time per repeat as reported by the kernel (whole nanoseconds).
    pub duration: Duration,
}

impl XdpTestProgram {
    /// Loads the embedded XDP programs (the filter and the trivial `XDP_PASS` baseline) without
    /// attaching them, with no policies. Their log records go to the agent's log.
    pub fn load() -> Result<Self, DataplaneError> {
        Self::load_logging_to(Box::new(GlobalLog))
    }

    /// [`XdpTestProgram::load`], with the programs' log records going to `sink`.
    pub fn load_logging_to(sink: Sink) -> Result<Self, DataplaneError> {
        let mut ebpf = load_object()?;
        for name in [XDP_PROGRAM, XDP_PASS_PROGRAM] {
            xdp_program(&mut ebpf, name)?
                .load()
                .map_err(|source| DataplaneError::Attach {
                    iface: "(test run)".to_owned(),
                    mode: AttachMode::Auto,
                    source,
                })?;
        }
        let ring = Maps::ring(&mut ebpf)?;
        let klog = KernelLog::start_with(&mut ebpf, "XDP test program", sink);
        Ok(Self {
            ebpf,
            slots: BTreeSet::new(),
            ring,
            klog,
        })
    }

    /// Loads the programs with `policies` in the maps.
    pub fn with_policies(policies: &[RxPolicy]) -> Result<Self, DataplaneError> {
        let mut p = Self::load()?;
        p.set_policies(policies)?;
        Ok(p)
    }

    /// Replaces the policies.
    pub fn set_policies(&mut self, policies: &[RxPolicy]) -> Result<(), DataplaneError> {
        Maps::set_policies(&mut self.ebpf, TEST_RUN_IFINDEX, policies, &mut self.slots)
    }

    /// Sets the pass-to-stack flag.
    pub fn set_pass_to_stack(&mut self, pass: bool) -> Result<(), DataplaneError> {
        Maps::set_iface_flags(&mut self.ebpf, pass_flags(pass))
    }

    /// Runs the filter on `frame` `repeat` times.
    pub fn run(&mut self, frame: &[u8], repeat: u32) -> Result<TestVerdict, DataplaneError> {
        self.run_program(XDP_PROGRAM, frame, repeat)
    }

    /// Runs the trivial `XDP_PASS` program on `frame` `repeat` times (a baseline for timings).
    pub fn run_baseline(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestVerdict, DataplaneError> {
        self.run_program(XDP_PASS_PROGRAM, frame, repeat)
    }

    fn run_program(
        &mut self,
        name: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestVerdict, DataplaneError> {
        let prog = xdp_program(&mut self.ebpf, name)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        };
        let res = prog.test_run(opts).map_err(DataplaneError::TestRun)?;
        Ok(TestVerdict {
            action: res.return_value,
            duration: res.duration,
        })
    }

    /// Takes up to `max` queued adverts.
    pub fn drain_events(&mut self, max: usize) -> Vec<XdpAdvert> {
        drain(&mut self.ring, max)
    }

    /// Forwards the log records queued so far when loaded outside a tokio runtime (on one, a
    /// task forwards them as they come).
    pub fn flush_kernel_log(&mut self) {
        self.klog.flush();
    }

    /// Every per-peer counter row.
    pub fn peer_counters(&self) -> Result<Vec<PeerCounterRow>, DataplaneError> {
        Maps::peer_counters(&self.ebpf, TEST_RUN_IFINDEX, &self.slots)
    }

    /// The loaded object, mutably: the SYN counter maps ([`tcp::set_syn_ports`]).
    pub fn object_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The program's other counts.
    pub fn stats(&self) -> Result<XdpStats, DataplaneError> {
        Maps::stats(&self.ebpf, TEST_RUN_IFINDEX, &self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(peers: &[u8]) -> PolicyEntry {
        let list = peers
            .iter()
            .map(|i| {
                let key = PeerKey {
                    ifindex: 7,
                    vrid: 51,
                    family: family::V4,
                    _pad: [0; 2],
                    addr: addr_bytes(&IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, *i))),
                };
                (key, PeerPolicy::default())
            })
            .collect();
        (51, Policy::default(), list)
    }

    #[test]
    fn peers_get_free_inline_rows_then_hash_rows() {
        let mut entries = vec![entry(&[1, 2])];
        assert!(give_peer_rows(&mut entries).is_empty());
        let rows = entries[0].1.rows;
        assert_eq!(rows.state[..2], [row_state::READY; 2]);
        assert_eq!(rows.state[2..], [row_state::FREE; 2]);
        assert_eq!(rows.addrs[1], entries[0].2[1].0.addr);
        assert_eq!(entries[0].1.hashed, 0);

        let mut entries = vec![entry(&[1, 2, 3, 4, 5, 6])];
        let hashed = give_peer_rows(&mut entries);
        assert_eq!(
            hashed,
            vec![entries[0].2[4].0, entries[0].2[5].0],
            "the peers beyond the inline rows"
        );
        assert_eq!(entries[0].1.hashed, 1);
    }

    #[test]
    fn btf_ext_is_found_by_its_section_name() {
        assert!(!object_has_btf_ext(b""));
        assert!(!object_has_btf_ext(b"\0.text\0xdp\0.BTF\0.maps\0"));
        assert!(!object_has_btf_ext(b".BTF.extra\0"));
        assert!(object_has_btf_ext(b"\0.text\0.BTF\0.BTF.ext\0"));
        assert!(object_has_btf_ext(b"\0.rel.BTF.ext\0"));
    }

    #[test]
    fn hiding_the_kernel_btf_changes_the_calling_thread_alone() {
        let root = || std::fs::read_link("/proc/thread-self/root").ok();
        let before = root();
        let (hidden, sys_seen) = std::thread::spawn(|| {
            let hidden = hide_kernel_btf();
            (hidden, std::path::Path::new("/sys/kernel").exists())
        })
        .join()
        .unwrap_or((false, true));
        if hidden {
            assert!(!sys_seen, "the loader thread still sees /sys");
        }
        // Unprivileged, nothing happens; privileged, only the (exited) thread was moved.
        assert_eq!(root(), before);
        assert!(std::path::Path::new("/proc/self/fdinfo").is_dir());
    }

    #[test]
    fn the_embedded_object_needs_no_kernel_btf() {
        assert!(
            !object_has_btf_ext(EBPF_OBJECT),
            "the eBPF object has .BTF.ext now: every load parses the kernel's BTF again (some \
             25 MB of heap at start-up, see loader()); re-run the rest bench"
        );
    }

    #[test]
    fn a_peer_keeps_the_row_it_owns() {
        let mut entries = vec![entry(&[1, 2])];
        let b = entries[0].2[1].0.addr;
        entries[0].1.rows.state[2] = row_state::READY;
        entries[0].1.rows.addrs[2] = b;
        // A row being claimed by the program is not given away.
        entries[0].1.rows.state[0] = row_state::CLAIMED;
        assert!(give_peer_rows(&mut entries).is_empty());
        let rows = entries[0].1.rows;
        assert_eq!(rows.addrs[2], b);
        assert_eq!(rows.addrs[1], entries[0].2[0].0.addr);
        assert_eq!(rows.state[1], row_state::READY);
        assert_eq!(rows.state[3], row_state::FREE);
        let owners = rows.addrs.iter().filter(|a| **a == b).count();
        assert_eq!(owners, 1, "no second row for the same peer");
    }

    /// The valid advert of the test vectors (VRRPv3 over IPv4, VRID of `testvectors::policies`).
    fn valid_advert() -> Vec<u8> {
        crate::packet::testvectors::cases()
            .into_iter()
            .find(|c| c.name == "accept_v3_ipv4_pseudo_header_checksum")
            .expect("the test vector")
            .frame
    }

    #[test]
    fn the_xdp_program_logs_a_full_ring_rarely_and_nothing_on_its_usual_paths() {
        use klog::testing::{can_load, runtime, Capture};
        if !can_load() {
            return;
        }
        runtime().block_on(async {
            let cap = Capture::default();
            let mut p = XdpTestProgram::load_logging_to(Box::new(cap.clone())).expect("load");
            assert!(p.klog.is_forwarding(), "a task forwards the records");
            p.set_policies(&crate::packet::testvectors::policies())
                .expect("policies");
            let valid = valid_advert();
            // The usual paths: valid adverts (ring not full), an invalid one, another VRID, a
            // frame that is not VRRP.
            let mut bad_sum = valid.clone();
            bad_sum[14 + 20 + 6] ^= 0xff;
            let mut other_vrid = valid.clone();
            other_vrid[14 + 21] = 250;
            let mut tcp = valid.clone();
            tcp[14 + 9] = 6;
            assert_eq!(p.run(&valid, 100).expect("run").action, XDP_DROP);
            assert_eq!(p.run(&bad_sum, 100).expect("run").action, XDP_DROP);
            assert_eq!(p.run(&other_vrid, 100).expect("run").action, XDP_PASS);
            assert_eq!(p.run(&tcp, 100).expect("run").action, XDP_PASS);
            assert_eq!(p.drain_events(usize::MAX).len(), 100);
            let quiet = cap.settle(0, Duration::from_millis(300)).await;
            assert!(quiet.is_empty(), "no record on the usual paths: {quiet:?}");
            assert_eq!(p.stats().expect("stats").ring_full, 0);

            // The error path: nobody drains the ring (it holds some 3600 events), 10^4 adverts.
            let repeat = 10_000;
            p.run(&valid, repeat).expect("run");
            let lost = p.stats().expect("stats").ring_full;
            assert!(lost > 5000, "the ring filled up: {lost} events lost");
            let got = cap.settle(1, Duration::from_secs(3)).await;
            // Let any later record in, then count them all.
            let got = cap.settle(got.len() + 64, Duration::from_millis(300)).await;
            assert!(!got.is_empty(), "a full ring is logged");
            for (level, target, msg) in &got {
                assert_eq!(*level, log::Level::Warn, "{msg}");
                assert!(target.starts_with("xvrrp_ebpf"), "{target}");
                assert!(msg.contains("advert ring buffer full"), "{msg}");
            }
            // One record per power of two of a CPU's count: a handful, not one per frame.
            let per_cpu = u64::BITS - lost.leading_zeros();
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
            assert!(
                got.len() as u64 <= u64::from(per_cpu) * cpus,
                "{} records for {lost} lost events",
                got.len()
            );
            assert!(
                got.iter().any(|(_, _, m)| m.contains("full: 1 valid")),
                "the first loss is logged: {got:?}"
            );
        });
    }
}

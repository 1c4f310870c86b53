//! xvrrp kernel programs: the XDP advert filter (and the TCP tracking of `tcp.rs`).
//!
//! `xvrrp_xdp` validates the adverts of this interface's instances in the kernel, in exactly the
//! order of the userspace validator (`xvrrp::packet`, module docs, steps 1 to 23), keeps
//! per-peer counters, and queues valid adverts on a ring buffer for the agent.
//!
//! **Only our own frames are acted on** (a good neighbour to other VRRP on the NIC). A frame is
//! ours when it is untagged (or carries an 802.1p priority tag, VID 0) IPv4 / IPv6 protocol 112
//! whose VRID byte can be read (inside the frame and the IP length), whose (family, VRID) is a
//! configured instance of the interface the program is attached to, and, for a multicast
//! instance, whose destination is the VRRP group. Everything else is passed untouched: frames
//! that are not VRRP after the fewest checks (EtherType, the fixed IP header, its version nibble,
//! the protocol byte), and VRRP-like frames that are not ours (another VRID, family or
//! destination, a frame tagged with a VLAN, a header too broken to find the VRID), which are also
//! counted once for the interface (`xdp_stats::NOT_OURS`). Frames of ours are validated, counted
//! per peer and reason, and dropped or handed up. `xvrrp::packet::frame_owner` is the same rule
//! in userspace.
//!
//! Three ways through: untagged frames of at least [`FAST_LEN`] bytes that are not VRRP are
//! passed after one bounds check; the usual advert (untagged IPv4, 20-byte header, a message of
//! up to 26 bytes) takes the fast lane of `fast.rs`; every other frame takes [`full`]. Each
//! decides alone, with the same verdicts and counters (the parity tests run both programs'
//! paths against the userspace validator). The instance policies are the program's global data
//! (see [`PolicyTable`]), reached without a map lookup.
//!
//! `xvrrp_xdp_pass` is a trivial `XDP_PASS` program, the benchmark's baseline.
//!
//! Checksums are summed as little-endian 32-bit words (every length summed here is a multiple of
//! 4: IPv4 headers by construction, VRRP messages once the length-vs-count check has passed). One's
//! complement sums commute with byte swapping (RFC 1071), and a sum that folds to 0xffff does so
//! in either byte order, so no byte swap is needed.
#![no_std]
#![no_main]
#![expect(
    unstable_features,
    reason = "inline assembly on BPF (asm_experimental_arch) for unaligned packet loads"
)]
#![feature(asm_experimental_arch)]

mod fast;
mod tcp;

use core::{arch::asm, mem, ptr};

use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    macros::{map, xdp},
    maps::{Array, HashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use aya_log_ebpf::warn;

use agent_common::{
    checksum_form, counter_index as ci, family, iface_flags, policy_slot, row_state, unicast_mode,
    xdp_stats, AdvertEvent, IfaceConfig, PeerCounters, PeerKey, PeerPolicy, Policy, PolicyTable,
    COUNTER_SLOTS, EVENTS_RING_BYTES, INLINE_ROWS, MAX_COUNTER_ENTRIES, MAX_INLINE_PEERS,
    MAX_PEERS, MAX_POLICIES,
};

#[map(name = "XVRRP_STATS")]
static XVRRP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(xdp_stats::LEN, 0);

/// Indexed by [`policy_slot`], reached through [`policy_ptr`] (see [`PolicyTable`]). Exported
/// (`no_mangle`) so that LLVM cannot assume only this program writes it: the agent fills it.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".bss.xvrrp_policies")]
static mut XVRRP_POLICIES: PolicyTable = PolicyTable::ZERO;

/// The policy entry of `slot`: a pointer into the global table, no lookup. The slot is bounded
/// by masking (every slot is below [`MAX_POLICIES`], a power of two), which the verifier also
/// understands.
#[inline(always)]
fn policy_ptr(slot: u32) -> *mut Policy {
    let i = (slot & (MAX_POLICIES - 1)) as usize;
    // SAFETY: `i < MAX_POLICIES`, inside the table; only a raw pointer is formed (no reference
    // to the mutable static).
    unsafe { (&raw mut XVRRP_POLICIES.entries).cast::<Policy>().add(i) }
}

#[map(name = "XVRRP_PEERS")]
static XVRRP_PEERS: HashMap<PeerKey, PeerPolicy> = HashMap::with_max_entries(MAX_PEERS, 0);

/// This copy's interface flags, one entry (each interface loads its own copy of the program).
#[map(name = "XVRRP_IFACE")]
static XVRRP_IFACE: Array<IfaceConfig> = Array::with_max_entries(1, 0);

/// This copy's unknown-source bucket, one per-CPU entry.
#[map(name = "XVRRP_BUCKET")]
static XVRRP_BUCKET: PerCpuArray<PeerCounters> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "XVRRP_COUNTERS")]
static XVRRP_COUNTERS: LruPerCpuHashMap<PeerKey, PeerCounters> =
    LruPerCpuHashMap::with_max_entries(MAX_COUNTER_ENTRIES, 0);

/// The inline rows' counts, at `slot * INLINE_ROWS + i`.
#[map(name = "XVRRP_ROWCNT")]
static XVRRP_ROWCNT: PerCpuArray<PeerCounters> =
    PerCpuArray::with_max_entries(MAX_POLICIES * INLINE_ROWS as u32, 0);

/// An all-zero [`PeerCounters`], the template new counter entries are copied from.
#[map(name = "XVRRP_ZERO")]
static XVRRP_ZERO: Array<PeerCounters> = Array::with_max_entries(1, 0);

/// Per CPU: a jiffies value and the coarse clock read while it was current (see [`coarse_now`]).
#[map(name = "XVRRP_CLOCK")]
static XVRRP_CLOCK: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "XVRRP_EVENTS")]
static XVRRP_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
/// EtherTypes as they sit in memory (network order loaded as a little-endian `u16`).
const ETH_P_IP: u16 = 0x0800u16.to_be();
const ETH_P_IPV6: u16 = 0x86DDu16.to_be();
const ETH_P_8021Q: u16 = 0x8100u16.to_be();
const IPPROTO_VRRP: u8 = 112;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const VRRP_HLEN: usize = 8;
const AUTH_LEN: usize = 8;
/// Longest VRRP message in 32-bit words: v3 over IPv6 with 255 addresses, 8 + 255 * 16 bytes.
/// Longer messages never pass the length-vs-count check, so the checksum loop never stops early.
const MAX_VRRP_WORDS: usize = (VRRP_HLEN + 255 * 16) / 4;
/// Most IPv4 option words (IHL 15 minus the 5 fixed words).
const MAX_IPV4_OPTION_WORDS: usize = 10;

/// Why a VRRP frame is dropped: the counter, and whether the source / VRID key was known yet
/// (failures found before the VRRP header is readable count in the unknown-source bucket).
#[derive(Clone, Copy)]
struct Fail {
    counter: usize,
    keyed: bool,
}

const fn early(counter: usize) -> Fail {
    Fail {
        counter,
        keyed: false,
    }
}

const fn keyed(counter: usize) -> Fail {
    Fail {
        counter,
        keyed: true,
    }
}

/// What a valid advert tells the agent, besides the key (source, VRID, family, ifindex).
struct Accepted {
    dst: [u8; 16],
    version: u8,
    priority: u8,
    interval_cs: u16,
    addr_count: u8,
    ttl: u8,
    checksum_form: u8,
}

/// The end of the frame, read afresh (volatile) for every bounds check.
///
/// LLVM otherwise proves later checks redundant from earlier ones over a variable offset (e.g.
/// the IPv4 option words from the IHL check) and drops them, but the verifier only learns a
/// range from a check on the very pointer it is about, so it would reject the loads.
#[inline(always)]
fn data_end(ctx: &XdpContext) -> usize {
    // SAFETY: `ctx.ctx` is the program's context pointer; `data_end` is a readable field.
    unsafe { ptr::read_volatile(ptr::addr_of!((*ctx.ctx).data_end)) as usize }
}

/// A bounds-checked pointer to a `T` at `off` bytes into the frame.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = data_end(ctx);
    if start + off + mem::size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *const T)
}

/// Loads 2 bytes at `p` as they sit in memory (network order read little-endian).
///
/// # Safety
///
/// `p..p + 2` must be inside the frame (checked against `data_end` so the verifier knows too).
/// Packet data is not aligned; Rust loads of a `u16` would either assume alignment or, through
/// `read_unaligned`, be split into byte loads by LLVM's BPF backend. The kernel allows unaligned
/// packet loads (it does not set strict alignment for this program), so one `ldxh` is used.
#[inline(always)]
unsafe fn raw16(p: usize) -> u16 {
    let v: u64;
    // SAFETY: the caller guarantees the 2 bytes are readable; the instruction only reads them.
    unsafe {
        asm!("{v} = *(u16 *)({p} + 0)", p = in(reg) p, v = lateout(reg) v,
             options(pure, readonly, nostack, preserves_flags));
    }
    v as u16
}

/// Loads 4 bytes at `p` as they sit in memory (see [`raw16`]).
///
/// # Safety
///
/// `p..p + 4` must be inside the frame.
#[inline(always)]
unsafe fn raw32(p: usize) -> u32 {
    let v: u64;
    // SAFETY: the caller guarantees the 4 bytes are readable; the instruction only reads them.
    unsafe {
        asm!("{v} = *(u32 *)({p} + 0)", p = in(reg) p, v = lateout(reg) v,
             options(pure, readonly, nostack, preserves_flags));
    }
    v as u32
}

/// Loads the 4 bytes at `p + OFF` as they sit in memory (see [`raw16`]), zero-extended: the
/// offset is the instruction's immediate (no separate address computation), and the value is
/// kept as the `u64` the load produced (LLVM cannot know the upper half is zero, and would
/// clear it again before every 64-bit sum).
///
/// # Safety
///
/// `p + OFF .. p + OFF + 4` must be inside the frame.
#[inline(always)]
unsafe fn at32<const OFF: i16>(p: usize) -> u64 {
    let v: u64;
    // SAFETY: the caller guarantees the 4 bytes are readable; the instruction only reads them.
    unsafe {
        asm!("{v} = *(u32 *)({p} + {off})", p = in(reg) p, off = const OFF, v = lateout(reg) v,
             options(pure, readonly, nostack, preserves_flags));
    }
    v
}

/// `x`, but opaque to LLVM (so it cannot rewrite how a packet offset is computed).
#[inline(always)]
fn opaque(mut x: usize) -> usize {
    // SAFETY: an empty instruction sequence; `x` passes through a register unchanged.
    unsafe { asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    x
}

/// A bounds-checked [`raw16`] at `off`.
#[inline(always)]
fn ld16(ctx: &XdpContext, off: usize) -> Option<u16> {
    let p = ptr_at::<u16>(ctx, off)?;
    // SAFETY: `ptr_at` checked the 2 bytes are inside the frame.
    Some(unsafe { raw16(p as usize) })
}

/// A bounds-checked [`raw32`] at `off`.
#[inline(always)]
fn ld32(ctx: &XdpContext, off: usize) -> Option<u32> {
    let p = ptr_at::<u32>(ctx, off)?;
    // SAFETY: `ptr_at` checked the 4 bytes are inside the frame.
    Some(unsafe { raw32(p as usize) })
}

/// Whether a one's complement sum of 32-bit words verifies (folds to 0xffff).
///
/// Every sum checked here is of at most ~1050 words (a VRRP message of 1028, the pseudo-header,
/// or an IPv4 header of 15), so below 2^43. Two 16-bit end-around-carry steps keep it non-zero
/// and the same mod 0xffff, and bring it to at most 0xffff + 0x800 (the first leaves at most
/// 0xffff + 2^27). A full fold would take a third step only for values above 0xffff, which
/// land in 1..=0x800, never on 0xffff; so the sum verifies exactly when two steps give 0xffff.
#[inline(always)]
fn sum_ok(sum: u64) -> bool {
    let s = (sum & 0xffff) + (sum >> 16);
    (s & 0xffff) + (s >> 16) == 0xffff
}

/// Sums `N` 32-bit words at `off` after one bounds check (the common message sizes).
#[inline(always)]
fn sum_fixed<const N: usize>(ctx: &XdpContext, off: usize) -> Option<u64> {
    let p = ptr_at::<[u32; N]>(ctx, off)? as usize;
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < N {
        // SAFETY: inside the `N * 4` bytes `ptr_at` checked.
        sum += u64::from(unsafe { raw32(p + i * 4) });
        i += 1;
    }
    Some(sum)
}

/// Sums `words` 32-bit words starting at `off`, at most `MAX` of them. `None` when the frame
/// ends first (the callers checked the length, so only the verifier needs this).
#[inline(always)]
fn sum_words<const MAX: usize>(ctx: &XdpContext, off: usize, words: usize) -> Option<u64> {
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < MAX {
        if i >= words {
            break;
        }
        sum += u64::from(ld32(ctx, off + i * 4)?);
        i += 1;
    }
    Some(sum)
}

/// [`sum_words`] for a VRRP message, with one bounds check for the one-address sizes (v3/IPv4:
/// 3 words, v2: 5, v3/IPv6: 6).
#[inline(always)]
fn sum_vrrp(ctx: &XdpContext, off: usize, words: usize) -> Option<u64> {
    match words {
        3 => sum_fixed::<3>(ctx, off),
        5 => sum_fixed::<5>(ctx, off),
        6 => sum_fixed::<6>(ctx, off),
        _ => sum_words::<MAX_VRRP_WORDS>(ctx, off, words),
    }
}

#[inline(always)]
fn bump_stat(idx: u32) {
    if let Some(slot) = XVRRP_STATS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot: only this CPU writes it, and not concurrently (XDP runs with
        // preemption / migration disabled).
        unsafe { *slot += 1 };
    }
}

/// Whether a count just reached 1, 2, 4, 8, ...: the error paths log then, so that a flood
/// costs a log record ever more rarely (about 20 per CPU for a million events).
#[inline(always)]
pub(crate) fn log_now(n: u64) -> bool {
    n != 0 && n & (n - 1) == 0
}

/// A valid advert's event did not fit in the ring buffer (the agent is not reading, or a flood
/// of valid adverts outruns it): counted ([`xdp_stats::RING_FULL`]), and logged (aya-log) when
/// this CPU's count reaches a power of two. Out of line: the error path's code (the log record
/// is built in place) stays out of the program's usual way through.
#[inline(never)]
fn ring_full() {
    let Some(slot) = XVRRP_STATS.get_ptr_mut(xdp_stats::RING_FULL) else {
        return;
    };
    // SAFETY: as in `bump_stat`.
    let n = unsafe {
        *slot += 1;
        *slot
    };
    if log_now(n) {
        warn!(
            &(),
            "advert ring buffer full: {} valid adverts not queued to the agent on this CPU", n
        );
    }
}

/// Adds one to `counter` (and to `pri_zero_rcvd` when `pri_zero`) in the row of `key`,
/// creating the row when it is missing.
#[inline(always)]
fn bump_entry(key: &PeerKey, counter: usize, pri_zero: bool) {
    if let Some(c) = find_row(key) {
        // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
        let counts = unsafe { &mut (*c).counts };
        bump_slots(counts, counter, pri_zero);
        return;
    }
    create_entry(key, counter, pri_zero);
}

/// Loads a `u64` of a map value afresh (another CPU may write it).
#[inline(always)]
fn load_u64(p: *const u64) -> u64 {
    // SAFETY: the caller passes a pointer into a map value.
    unsafe { ptr::read_volatile(p) }
}

/// The row of `key`: an inline row of its policy slot when the source owns one, else its LRU
/// hash entry when the slot may have any.
#[inline(always)]
fn find_row(key: &PeerKey) -> Option<*mut PeerCounters> {
    let slot = policy_slot(key.family, key.vrid);
    let pol = policy_ptr(slot);
    // SAFETY: a map value; the rows are read in place.
    let dir = unsafe { ptr::addr_of!((*pol).rows) };
    let a = addr_words(&key.addr);
    let mut i = 0;
    while i < INLINE_ROWS {
        // SAFETY: a map value; `i` is in bounds (checked by `get`).
        let (st, addr) = unsafe { ((*dir).state.get(i), (*dir).addrs.get(i)) };
        if let (Some(st), Some(addr)) = (st, addr) {
            // The rows of a slot hold addresses of its family only, IPv4 ones zero-padded like
            // the key's, so one word decides for IPv4.
            let same = if key.family == family::V4 {
                addr_words(addr)[0] == a[0]
            } else {
                addr_words(addr) == a
            };
            if same && load_u64(st) == row_state::READY {
                return XVRRP_ROWCNT.get_ptr_mut(slot * INLINE_ROWS as u32 + i as u32);
            }
        }
        i += 1;
    }
    // SAFETY: a map value; the byte is read afresh (the program may set it on another CPU).
    if unsafe { ptr::read_volatile(ptr::addr_of!((*pol).hashed)) } == 0 {
        return None;
    }
    XVRRP_COUNTERS.get_ptr_mut(key)
}

/// `*p = new` if `*p == old`, atomically; returns the value `*p` had.
///
/// # Safety
///
/// `p` must point into a writable map value, 8-byte aligned.
#[inline(always)]
unsafe fn cmpxchg(p: *mut u64, old: u64, new: u64) -> u64 {
    let mut r0 = old;
    // SAFETY: the caller guarantees `p`; BPF_CMPXCHG compares r0 with `*p`, stores `new` when
    // equal, and leaves the old value in r0.
    unsafe {
        asm!("r0 = cmpxchg_64({p} + 0, r0, {new})", p = in(reg) p, new = in(reg) new,
             inout("r0") r0, options(nostack));
    }
    r0
}

/// Stores `v` at `p` atomically, as a full barrier (after the row's address is written).
///
/// # Safety
///
/// As for [`cmpxchg`].
#[inline(always)]
unsafe fn xchg(p: *mut u64, v: u64) {
    let mut v = v;
    // SAFETY: the caller guarantees `p`.
    unsafe {
        asm!("{v} = xchg_64({p} + 0, {v})", p = in(reg) p, v = inout(reg) v, options(nostack));
    }
    let _ = v;
}

/// The slow path of [`bump_entry`], a separate BPF function: claims a free inline row of the
/// policy slot for the source, or, when all are taken, flags the slot's policy as having hash
/// rows and
/// inserts a zeroed LRU hash entry (copied from the never-written [`XVRRP_ZERO`] template, so no
/// 136-byte value is built on the stack); then counts in the row.
#[inline(never)]
fn create_entry(key: &PeerKey, counter: usize, pri_zero: bool) {
    let slot = policy_slot(key.family, key.vrid);
    let pol = policy_ptr(slot);
    {
        // SAFETY: a map value; the rows are claimed in place.
        let dir = unsafe { ptr::addr_of_mut!((*pol).rows) };
        let mut i = 0;
        while i < INLINE_ROWS {
            // SAFETY: a map value; `i` is in bounds (checked by `get_mut`).
            let (st, addr) = unsafe { ((*dir).state.get_mut(i), (*dir).addrs.get_mut(i)) };
            if let (Some(st), Some(addr)) = (st, addr) {
                let st: *mut u64 = st;
                if load_u64(st) == row_state::FREE
                    // SAFETY: `st` points into the map value, 8-byte aligned.
                    && unsafe { cmpxchg(st, row_state::FREE, row_state::CLAIMED) }
                        == row_state::FREE
                {
                    *addr = key.addr;
                    // SAFETY: as above.
                    unsafe { xchg(st, row_state::READY) };
                    if let Some(c) = XVRRP_ROWCNT.get_ptr_mut(slot * INLINE_ROWS as u32 + i as u32)
                    {
                        // SAFETY: this CPU's copy of a per-CPU value.
                        let counts = unsafe { &mut (*c).counts };
                        bump_slots(counts, counter, pri_zero);
                    }
                    return;
                }
            }
            i += 1;
        }
    }
    {
        // SAFETY: a map value; one byte, which the agent keeps once set (a byte store is atomic,
        // and every writer stores 1). Set before the row is inserted, so a reader that misses
        // it can only miss a row that is not there yet.
        unsafe {
            let h = ptr::addr_of_mut!((*pol).hashed);
            if ptr::read_volatile(h) == 0 {
                ptr::write_volatile(h, 1);
            }
        }
    }
    if let Some(zero) = XVRRP_ZERO.get(0) {
        // Fails when another CPU created it in between: then count in theirs.
        let _ = XVRRP_COUNTERS.insert(key, zero, u64::from(BPF_NOEXIST));
    }
    if let Some(c) = XVRRP_COUNTERS.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
        let counts = unsafe { &mut (*c).counts };
        bump_slots(counts, counter, pri_zero);
    }
}

#[inline(always)]
fn bump_slots(counts: &mut [u64; COUNTER_SLOTS], counter: usize, pri_zero: bool) {
    if let Some(slot) = counts.get_mut(counter) {
        *slot += 1;
    }
    if pri_zero {
        counts[ci::PRI_ZERO_RCVD] += 1;
    }
}

/// Adds one to `counter` in the unknown-source bucket.
#[inline(always)]
fn bump_bucket(counter: usize) {
    if let Some(c) = XVRRP_BUCKET.get_ptr_mut(0) {
        // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
        let counts = unsafe { &mut (*c).counts };
        bump_slots(counts, counter, false);
    }
}

/// The TTL range (lowest, highest) of `key`'s source when it is a configured unicast peer of
/// `policy` (which must be in unicast mode), `None` when it is not one.
#[inline(always)]
fn unicast_peer(policy: *const Policy, key: &PeerKey) -> Option<(u8, u8)> {
    // SAFETY: a map value only the agent writes; fields read in place.
    let (mode, n) = unsafe { ((*policy).unicast, (*policy).peer_count) };
    if mode == unicast_mode::MAP {
        // SAFETY: as above.
        return XVRRP_PEERS
            .get_ptr(key)
            .map(|p| unsafe { ((*p).ttl_min, (*p).ttl_max) });
    }
    let a = addr_words(&key.addr);
    // SAFETY: as above.
    let (peers, lows, highs) = unsafe {
        (
            &(*policy).peers,
            &(*policy).peer_ttl_min,
            &(*policy).peer_ttl_max,
        )
    };
    let mut i = 0;
    while i < MAX_INLINE_PEERS {
        if i >= usize::from(n) {
            break;
        }
        if let (Some(peer), Some(lo), Some(hi)) = (peers.get(i), lows.get(i), highs.get(i)) {
            if addr_words(peer) == a {
                return Some((*lo, *hi));
            }
        }
        i += 1;
    }
    None
}

/// The 16 address bytes as four words (for comparing), read with four 32-bit loads.
///
/// Every address compared here is 4-byte aligned: [`PeerKey::addr`] (offset 8 of a 4-aligned
/// struct), and [`agent_common::RowDir::addrs`] / [`Policy::peers`] (4-aligned offsets of map values, which the
/// kernel 8-byte aligns). Copying the bytes out instead costs 16 byte loads and 12 shifts/ors.
#[inline(always)]
fn addr_words(a: &[u8; 16]) -> [u32; 4] {
    let p = a.as_ptr().cast::<u32>();
    // SAFETY: 16 readable bytes, 4-byte aligned (above).
    unsafe { [*p, *p.add(1), *p.add(2), *p.add(3)] }
}

/// The policy entry of `key`'s VRID and family (always present: unconfigured ones are zero).
#[inline(always)]
fn policy_of(key: &PeerKey) -> Option<*const Policy> {
    Some(policy_ptr(policy_slot(key.family, key.vrid)).cast_const())
}

/// Counts a failure: in the entry of the source when it exists (it sent a valid advert before)
/// or is a configured unicast peer, else in the interface's unknown-source bucket. A failing
/// packet never creates an entry for an unknown source, so spoofed floods cannot grow the map.
#[inline(always)]
fn count_failure(key: &PeerKey, fail: Fail) {
    if fail.keyed {
        if let Some(c) = find_row(key) {
            // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
            let counts = unsafe { &mut (*c).counts };
            bump_slots(counts, fail.counter, false);
            return;
        }
        if let Some(policy) = policy_of(key) {
            // SAFETY: a map value only the agent writes.
            if unsafe { (*policy).unicast } != unicast_mode::OFF
                && unicast_peer(policy, key).is_some()
            {
                create_entry(key, fail.counter, false);
                return;
            }
        }
    }
    bump_bucket(fail.counter);
}

#[xdp]
pub fn xvrrp_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Frames at least this long (the Ethernet minimum without FCS) take the fast path: one bounds
/// check covers the EtherType, a whole fixed IPv4 header and the first 14 bytes of a TCP header
/// after it, or a whole fixed IPv6 header.
const FAST_LEN: usize = 60;
const _: () = assert!(FAST_LEN >= ETH_HLEN + IPV4_HLEN + 14 && FAST_LEN >= ETH_HLEN + IPV6_HLEN);

#[xdp]
pub fn xvrrp_xdp(ctx: XdpContext) -> u32 {
    // The non-VRRP fast path: untagged IPv4 / IPv6 that is not protocol 112, and anything that
    // is not IP at all, with one bounds check. Every other frame (VRRP, VLAN-tagged, shorter
    // than FAST_LEN, a bad version nibble) takes the full path below, which decides alone, so
    // verdicts are the same whichever path a frame takes.
    let start = ctx.data();
    if start + FAST_LEN <= data_end(&ctx) {
        // SAFETY (every raw load below): inside the FAST_LEN bytes just checked.
        let ethertype = unsafe { raw16(start + 12) };
        if ethertype == ETH_P_IP {
            let (vihl, proto) = unsafe { raw_u8_pair(start + ETH_HLEN, start + ETH_HLEN + 9) };
            if vihl >> 4 == 4 && proto != IPPROTO_VRRP {
                if proto == tcp::IPPROTO_TCP_U8 {
                    if vihl & 0x0f == 5 {
                        // SAFETY: the TCP header's first 14 bytes end at byte 48 < FAST_LEN.
                        unsafe { tcp::count_syn_at(start + ETH_HLEN + IPV4_HLEN) };
                    } else {
                        tcp::syn_v4(&ctx, ETH_HLEN, vihl, proto);
                    }
                }
                return xdp_action::XDP_PASS;
            }
            // The usual advert: the fast lane (`fast.rs`) when the whole message is inside
            // FAST_LEN (and at least an IPv4 and a VRRP header long).
            if proto == IPPROTO_VRRP && vihl == 0x45 {
                let w0 = unsafe { at32::<{ ETH_HLEN as i16 }>(start) };
                let total = usize::from(u16::from_be((w0 >> 16) as u16));
                if (IPV4_HLEN + VRRP_HLEN..=FAST_LEN - ETH_HLEN).contains(&total) {
                    return fast::ipv4(&ctx, start, w0, total);
                }
            }
        } else if ethertype == ETH_P_IPV6 {
            let (ver, next_header) = unsafe { raw_u8_pair(start + ETH_HLEN, start + ETH_HLEN + 6) };
            if ver >> 4 == 6 && next_header != IPPROTO_VRRP {
                tcp::syn_v6(&ctx, ETH_HLEN, next_header);
                return xdp_action::XDP_PASS;
            }
        } else if ethertype != ETH_P_8021Q {
            return xdp_action::XDP_PASS;
        }
    }
    full(ctx)
}

/// Loads the bytes at `a` and `b`.
///
/// # Safety
///
/// Both must be inside the frame.
#[inline(always)]
unsafe fn raw_u8_pair(a: usize, b: usize) -> (u8, u8) {
    // SAFETY: the caller guarantees both bytes are readable; `u8` has no alignment.
    unsafe { (*(a as *const u8), *(b as *const u8)) }
}

/// Every frame the fast path did not decide: steps 1 to 5 and the ownership check (module
/// docs), then the VRRP steps for the frames that are ours.
///
/// A function of its own (a BPF-to-BPF call): inlined, its size made LLVM keep the whole program
/// out of line behind a call, which cost every frame, the non-VRRP fast path included, ~6 ns
/// (`cargo xtask bench xdp`). Only the rarer frames pay for the call now.
#[inline(never)]
fn full(ctx: XdpContext) -> u32 {
    let Some(ethertype) = ld16(&ctx, 12) else {
        return pass_not_ours();
    };
    if ethertype != ETH_P_8021Q {
        return untagged(&ctx, ethertype, ETH_HLEN);
    }
    let (Some(tci), Some(inner)) = (ld16(&ctx, ETH_HLEN), ld16(&ctx, ETH_HLEN + 2)) else {
        return pass_not_ours();
    };
    // An 802.1p priority tag (VID 0) only carries a priority: the frame belongs to the
    // untagged network, as the kernel also takes it.
    if u16::from_be(tci) & 0x0fff == 0 {
        untagged(&ctx, inner, ETH_HLEN + VLAN_HLEN)
    } else {
        tagged(&ctx, inner)
    }
}

/// IPv4 group address of VRRP, as it sits in memory.
const GROUP_V4: u32 = u32::from_ne_bytes([224, 0, 0, 18]);
/// IPv6 group address of VRRP (ff02::12), as four words in memory.
const GROUP_V6: [u32; 4] = [
    u32::from_ne_bytes([0xff, 0x02, 0, 0]),
    0,
    0,
    u32::from_ne_bytes([0, 0, 0, 0x12]),
];

/// A frame of the untagged network (`ethertype` and the L3 offset after any priority tag).
#[inline(always)]
fn untagged(ctx: &XdpContext, ethertype: u16, l3: usize) -> u32 {
    if ethertype == ETH_P_IP {
        let Some(h) = ptr_at::<[u8; IPV4_HLEN]>(ctx, l3) else {
            return pass_not_ours();
        };
        // SAFETY: `ptr_at` checked the 20 bytes are inside the frame; `u8` has no alignment.
        let (vihl, proto, total) =
            unsafe { ((*h)[0], (*h)[9], u16::from_be_bytes([(*h)[2], (*h)[3]])) };
        if vihl >> 4 != 4 {
            return pass_not_ours();
        }
        if proto != IPPROTO_VRRP {
            tcp::syn_v4(ctx, l3, vihl, proto);
            return xdp_action::XDP_PASS;
        }
        // The key: the VRID byte, inside both the frame and the IP total length.
        let hlen = usize::from(vihl & 0x0f) * 4;
        if hlen < IPV4_HLEN || usize::from(total) < hlen + 2 {
            return pass_not_ours();
        }
        let Some(vrid) = ld8(ctx, l3 + hlen + 1) else {
            return pass_not_ours();
        };
        // SAFETY: inside the 20 bytes checked above.
        let (src, dst) = unsafe { (raw32(h as usize + 12), raw32(h as usize + 16)) };
        if !owned(family::V4, vrid, dst == GROUP_V4) {
            return pass_not_ours();
        }
        let mut key = PeerKey {
            ifindex: ctx.ingress_ifindex() as u32,
            vrid,
            family: family::V4,
            _pad: [0; 2],
            addr: words_to_addr([src, 0, 0, 0]),
        };
        let res = ipv4(ctx, h as usize, l3, &mut key);
        finish(&key, res)
    } else if ethertype == ETH_P_IPV6 {
        let Some(h) = ptr_at::<[u8; IPV6_HLEN]>(ctx, l3) else {
            return pass_not_ours();
        };
        // SAFETY: as above, 40 bytes.
        let (ver, next_header, plen) =
            unsafe { ((*h)[0], (*h)[6], u16::from_be_bytes([(*h)[4], (*h)[5]])) };
        if ver >> 4 != 6 {
            return pass_not_ours();
        }
        if next_header != IPPROTO_VRRP {
            tcp::syn_v6(ctx, l3, next_header);
            return xdp_action::XDP_PASS;
        }
        if plen < 2 {
            return pass_not_ours();
        }
        let Some(vrid) = ld8(ctx, l3 + IPV6_HLEN + 1) else {
            return pass_not_ours();
        };
        let p = h as usize;
        // SAFETY: inside the 40 bytes checked above.
        let dst = unsafe { [raw32(p + 24), raw32(p + 28), raw32(p + 32), raw32(p + 36)] };
        if !owned(family::V6, vrid, dst == GROUP_V6) {
            return pass_not_ours();
        }
        // SAFETY: as above.
        let src = unsafe { [raw32(p + 8), raw32(p + 12), raw32(p + 16), raw32(p + 20)] };
        let mut key = PeerKey {
            ifindex: ctx.ingress_ifindex() as u32,
            vrid,
            family: family::V6,
            _pad: [0; 2],
            addr: words_to_addr(src),
        };
        let res = ipv6(ctx, p, l3, src, &mut key);
        finish(&key, res)
    } else {
        xdp_action::XDP_PASS
    }
}

/// A frame with an 802.1Q tag of a VLAN (VID 1 to 4095) in its data: never ours (the instances
/// of this interface own its untagged frames; a VLAN's instance runs on the VLAN's own
/// interface, where the kernel delivers its frames untagged). Passed: counted as not ours when
/// it is VRRP-like, and its TCP SYNs still counted for the listener tracking.
#[inline(always)]
fn tagged(ctx: &XdpContext, inner: u16) -> u32 {
    let l3 = ETH_HLEN + VLAN_HLEN;
    if inner == ETH_P_IP {
        let Some(h) = ptr_at::<[u8; IPV4_HLEN]>(ctx, l3) else {
            return pass_not_ours();
        };
        // SAFETY: `ptr_at` checked the 20 bytes are inside the frame.
        let (vihl, proto) = unsafe { ((*h)[0], (*h)[9]) };
        if vihl >> 4 != 4 || proto == IPPROTO_VRRP {
            return pass_not_ours();
        }
        tcp::syn_v4(ctx, l3, vihl, proto);
    } else if inner == ETH_P_IPV6 {
        let Some(h) = ptr_at::<[u8; IPV6_HLEN]>(ctx, l3) else {
            return pass_not_ours();
        };
        // SAFETY: as above, 40 bytes.
        let (ver, next_header) = unsafe { ((*h)[0], (*h)[6]) };
        if ver >> 4 != 6 || next_header == IPPROTO_VRRP {
            return pass_not_ours();
        }
        tcp::syn_v6(ctx, l3, next_header);
    }
    xdp_action::XDP_PASS
}

/// Whether (`fam`, `vrid`) is a configured instance of this interface (its policy is set) and
/// the destination fits it: a multicast instance owns only adverts to the VRRP group
/// (`to_group`); a unicast instance's adverts are checked against its peers later.
#[inline(always)]
fn owned(fam: u8, vrid: u8, to_group: bool) -> bool {
    let pol = policy_ptr(policy_slot(fam, vrid));
    // SAFETY: a map value only the agent writes; two bytes read in place.
    let (version, unicast) = unsafe { ((*pol).version, (*pol).unicast) };
    version != 0 && (to_group || unicast != unicast_mode::OFF)
}

/// Passes a frame that is not ours, counting it once for the interface.
#[inline(always)]
fn pass_not_ours() -> u32 {
    bump_stat(xdp_stats::NOT_OURS);
    xdp_action::XDP_PASS
}

/// A bounds-checked byte at `off`.
#[inline(always)]
fn ld8(ctx: &XdpContext, off: usize) -> Option<u8> {
    let p = ptr_at::<u8>(ctx, off)?;
    // SAFETY: `ptr_at` checked the byte is inside the frame.
    Some(unsafe { *p })
}

/// Four words as loaded from the packet back to the 16 address bytes (stored as words).
#[inline(always)]
fn words_to_addr(w: [u32; 4]) -> [u8; 16] {
    // SAFETY: both are 16 bytes of plain integers; the bytes keep their memory order.
    unsafe { mem::transmute::<[u32; 4], [u8; 16]>(w) }
}

/// CLOCK_MONOTONIC_COARSE in ns, the events' timestamp (the agent only reports it).
///
/// The coarse clock only moves at a tick, as jiffies do, so it is read once per tick per CPU and
/// cached against `bpf_jiffies64()`, which the verifier inlines into one load. Measured with
/// `cargo xtask bench xdp`: `bpf_ktime_get_coarse_ns` on every advert cost ~22 ns, and
/// `bpf_ktime_get_ns` ~45 ns. A cached value may lag by up to one tick when it was read just as
/// the tick moved jiffies but had not yet moved the clock: the clock's own resolution.
#[inline(always)]
fn coarse_now() -> u64 {
    // SAFETY: bpf_jiffies64 and bpf_ktime_get_coarse_ns have no preconditions.
    let j = unsafe { bpf_jiffies64() };
    match XVRRP_CLOCK.get_ptr_mut(0) {
        // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
        Some(c) => unsafe {
            if (*c)[0] != j {
                (*c)[1] = bpf_ktime_get_coarse_ns();
                (*c)[0] = j;
            }
            (*c)[1]
        },
        // SAFETY: as above.
        None => unsafe { bpf_ktime_get_coarse_ns() },
    }
}

/// Counts the verdict of a VRRP frame, queues the event of a valid advert, returns the action.
#[inline(always)]
fn finish(key: &PeerKey, res: Result<Accepted, Fail>) -> u32 {
    let acc = match res {
        Ok(acc) => acc,
        Err(fail) => {
            count_failure(key, fail);
            return xdp_action::XDP_DROP;
        }
    };
    bump_entry(key, ci::ADVERT_RCVD, acc.priority == 0);
    match XVRRP_EVENTS.reserve::<AdvertEvent>(0) {
        Some(mut slot) => {
            slot.write(AdvertEvent {
                timestamp_ns: coarse_now(),
                ifindex: key.ifindex,
                family: key.family,
                version: acc.version,
                vrid: key.vrid,
                priority: acc.priority,
                src: key.addr,
                dst: acc.dst,
                interval_cs: acc.interval_cs,
                addr_count: acc.addr_count,
                ttl: acc.ttl,
                checksum_form: acc.checksum_form,
                _pad: [0; 11],
            });
            slot.submit(0);
        }
        None => ring_full(),
    }
    let pass = XVRRP_IFACE
        .get_ptr(0)
        // SAFETY: a plain read of a map value that only the agent writes.
        .is_some_and(|c| unsafe { (*c).flags } & iface_flags::PASS_TO_STACK != 0);
    if pass {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// Step 6 for IPv4 (the fixed header at `h`, frame offset `l3`, is known to be present, version
/// 4, protocol 112), then the VRRP steps.
#[inline(always)]
fn ipv4(ctx: &XdpContext, h: usize, l3: usize, key: &mut PeerKey) -> Result<Accepted, Fail> {
    // SAFETY (every raw load below): inside the 20 bytes the caller checked.
    let w0 = unsafe { raw32(h) };
    let ihl = (w0 & 0x0f) as usize;
    if ihl < 5 {
        return Err(early(ci::IP_HEADER_ERR));
    }
    let hlen = ihl * 4;
    if ptr_at::<u8>(ctx, l3 + hlen - 1).is_none() {
        return Err(early(ci::PACKET_LEN_ERR));
    }
    let total = usize::from(u16::from_be((w0 >> 16) as u16));
    if total < hlen {
        return Err(early(ci::IP_HEADER_ERR));
    }
    if ctx.data() + l3 + total > data_end(ctx) {
        return Err(early(ci::PACKET_LEN_ERR));
    }
    let words =
        unsafe { [w0, raw32(h + 4), raw32(h + 8), raw32(h + 12), raw32(h + 16)] }.map(u64::from);
    // The option words are summed here, checked with the fixed ones by `ipv4_rest`.
    let options = sum_words::<MAX_IPV4_OPTION_WORDS>(ctx, l3 + IPV4_HLEN, ihl - 5)
        .ok_or(early(ci::PACKET_LEN_ERR))?;
    let msg = Bounded {
        ctx,
        off: l3 + hlen,
    };
    ipv4_rest(&msg, key, words, options, total - hlen)
}

/// The rest of step 6 for IPv4 (fragment bits and header checksum over the five fixed `words`
/// and the options' sum), then the VRRP steps on the `vlen`-byte message.
#[inline(always)]
fn ipv4_rest(
    msg: &Bounded<'_>,
    key: &mut PeerKey,
    words: [u64; 5],
    options: u64,
    vlen: usize,
) -> Result<Accepted, Fail> {
    let [w0, w1, w2, src, dst] = words;
    if u16::from_be((w1 >> 16) as u16) & 0x3fff != 0 {
        return Err(early(ci::IP_HEADER_ERR));
    }
    if !sum_ok(w0 + w1 + w2 + src + dst + options) {
        return Err(early(ci::IP_HEADER_ERR));
    }
    // 8. The VRRP fixed header is there.
    if vlen < VRRP_HLEN {
        return Err(early(ci::PACKET_LEN_ERR));
    }
    let ttl = (w2 & 0xff) as u8;
    // RFC 5798 pseudo-header: src, dst, zero, protocol, VRRP length.
    let len = (vlen as u16).to_be_bytes();
    let pseudo = src + dst + u64::from(u32::from_le_bytes([0, IPPROTO_VRRP, len[0], len[1]]));
    vrrp(msg, key, vlen, ttl, [dst as u32, 0, 0, 0], pseudo)
}

/// A VRRP message at frame offset `off`, every load bounds-checked.
struct Bounded<'a> {
    ctx: &'a XdpContext,
    off: usize,
}

impl Bounded<'_> {
    /// The first two words (the fixed header; the message is at least that long).
    #[inline(always)]
    fn header(&self) -> Option<(u64, u64)> {
        Some((
            u64::from(ld32(self.ctx, self.off)?),
            u64::from(ld32(self.ctx, self.off + 4)?),
        ))
    }

    /// The one's complement sum of the first `words` words (the whole message, which step 12
    /// found to be exactly `words * 4` bytes).
    #[inline(always)]
    fn sum(&self, words: usize) -> Option<u64> {
        sum_vrrp(self.ctx, self.off, words)
    }

    /// The two words of PASS data after `count` IPv4 addresses (in a v2 message whose length
    /// step 12 matched).
    #[inline(always)]
    fn pass_data(&self, count: u8) -> Option<(u32, u32)> {
        // From the front, and hidden from LLVM: as `off + vlen - 8` it becomes a pointer with
        // a negative fixed offset, from which the verifier learns no range.
        let at = opaque(self.off + VRRP_HLEN + usize::from(count) * 4);
        Some((ld32(self.ctx, at)?, ld32(self.ctx, at + 4)?))
    }
}

/// Step 6 for IPv6 (fixed header at `h`, frame offset `l3`, present, version 6, next header
/// 112; `src` already loaded), then the VRRP steps.
#[inline(always)]
fn ipv6(
    ctx: &XdpContext,
    h: usize,
    l3: usize,
    src: [u32; 4],
    key: &mut PeerKey,
) -> Result<Accepted, Fail> {
    // SAFETY (every raw load below): inside the 40 bytes the caller checked.
    let w1 = unsafe { raw32(h + 4) };
    let vlen = usize::from(u16::from_be(w1 as u16));
    let hop_limit = (w1 >> 24) as u8;
    if ctx.data() + l3 + IPV6_HLEN + vlen > data_end(ctx) {
        return Err(early(ci::PACKET_LEN_ERR));
    }
    let dst = unsafe { [raw32(h + 24), raw32(h + 28), raw32(h + 32), raw32(h + 36)] };
    // RFC 8200 pseudo-header: src, dst, 32-bit length, three zero bytes, next header.
    let mut pseudo: u64 = 0;
    for w in src {
        pseudo += u64::from(w);
    }
    for w in dst {
        pseudo += u64::from(w);
    }
    pseudo += u64::from(u32::from_le_bytes((vlen as u32).to_be_bytes()));
    pseudo += u64::from(u32::from_le_bytes([0, 0, 0, IPPROTO_VRRP]));
    if vlen < VRRP_HLEN {
        return Err(early(ci::PACKET_LEN_ERR));
    }
    let msg = Bounded {
        ctx,
        off: l3 + IPV6_HLEN,
    };
    vrrp(&msg, key, vlen, hop_limit, dst, pseudo)
}

/// Steps 8 to 23 on the VRRP message at `off` (`vlen` bytes, inside the frame).
#[inline(always)]
fn vrrp(
    msg: &Bounded<'_>,
    key: &mut PeerKey,
    vlen: usize,
    ttl: u8,
    dst: [u32; 4],
    pseudo: u64,
) -> Result<Accepted, Fail> {
    let v6 = key.family == family::V6;
    // 8. Fixed header (the callers checked `vlen >= VRRP_HLEN`).
    let (h0, h1) = msg.header().ok_or(early(ci::PACKET_LEN_ERR))?;
    let [vt, vrid, priority, count] = (h0 as u32).to_ne_bytes();
    let [b4, b5, _, _] = (h1 as u32).to_ne_bytes();
    key.vrid = vrid;
    // 9. Version (v2 is IPv4 only).
    let version = vt >> 4;
    if version != 2 && version != 3 {
        return Err(keyed(ci::VERSION_ERR));
    }
    let v2 = version == 2;
    if v2 && v6 {
        return Err(keyed(ci::VERSION_ERR));
    }
    // 10. Type.
    if vt & 0x0f != 1 {
        return Err(keyed(ci::INVALID_TYPE_RCVD));
    }
    // 11. Address count: v3 needs one (RFC 9568); v2 may have none (keepalived, RFC 3768).
    if count == 0 && !v2 {
        return Err(keyed(ci::ADDR_LIST_ERR));
    }
    // 12. Length exactly matches the count.
    let addr_len = if v6 { 16 } else { 4 };
    let auth_len = if v2 { AUTH_LEN } else { 0 };
    if vlen != VRRP_HLEN + usize::from(count) * addr_len + auth_len {
        return Err(keyed(ci::PACKET_LEN_ERR));
    }
    // 13. Checksum: v2 over the message; v3 with the pseudo-header, or (IPv4) without.
    let sum = msg.sum(vlen / 4).ok_or(keyed(ci::PACKET_LEN_ERR))?;
    let form = if v2 {
        if !sum_ok(sum) {
            return Err(keyed(ci::CHECKSUM_ERR));
        }
        checksum_form::V2
    } else if sum_ok(sum + pseudo) {
        checksum_form::PSEUDO_HEADER
    } else if !v6 && sum_ok(sum) {
        checksum_form::RFC9568
    } else {
        return Err(keyed(ci::CHECKSUM_ERR));
    };
    // 14. v2 auth type known.
    if v2 && b4 > 2 {
        return Err(keyed(ci::INVALID_AUTHTYPE));
    }
    // 15. v3 interval non-zero (the top 4 bits are reserved).
    let interval_cs = if v2 {
        u16::from(b5) * 100
    } else {
        u16::from_be_bytes([b4 & 0x0f, b5])
    };
    if !v2 && interval_cs == 0 {
        return Err(keyed(ci::ADVERT_INTERVAL_ERR));
    }
    // 16. VRID configured here for this family: `full` only hands over frames of a configured
    // instance, so the checks below only read the policy.
    let Some(pp) = policy_of(key) else {
        return Err(keyed(ci::VRID_ERR));
    };
    // SAFETY: a map value only the agent writes; the fixed fields are copied out at once.
    let (pversion, pauth, pinterval, powner, punicast, pttl) = unsafe {
        (
            (*pp).version,
            (*pp).auth_type,
            (*pp).interval_secs,
            (*pp).owner,
            (*pp).unicast,
            (*pp).ttl_min,
        )
    };
    if pversion == 0 {
        return Err(keyed(ci::VRID_ERR));
    }
    // 17. Unicast: a configured peer, whose TTL range applies (multicast: the policy's minimum
    // up to 255).
    let (mut ttl_min, mut ttl_max) = (pttl, u8::MAX);
    if punicast != unicast_mode::OFF {
        let Some(range) = unicast_peer(pp, key) else {
            return Err(keyed(ci::UNKNOWN_PEER));
        };
        (ttl_min, ttl_max) = range;
    }
    // 18. TTL / Hop Limit.
    if ttl < ttl_min || ttl > ttl_max {
        return Err(keyed(ci::IP_TTL_ERR));
    }
    // 19. Version configured.
    if version != pversion {
        return Err(keyed(ci::VERSION_ERR));
    }
    // 20. Not the owner.
    if powner != 0 {
        return Err(keyed(ci::OWNER_DROP));
    }
    if v2 {
        // 21. Auth type.
        if b4 != pauth {
            return Err(keyed(ci::AUTHTYPE_MISMATCH));
        }
        // 22. PASS data.
        if b4 == 1 {
            let (d0, d1) = msg.pass_data(count).ok_or(keyed(ci::PACKET_LEN_ERR))?;
            // SAFETY: a map value only the agent writes; `auth_data` is at offset 8 of the
            // 8-aligned value, so it is read as two words.
            let (p0, p1) = unsafe {
                let p = ptr::addr_of!((*pp).auth_data).cast::<u32>();
                (*p, *p.add(1))
            };
            if d0 != p0 || d1 != p1 {
                return Err(keyed(ci::AUTH_FAILURE));
            }
        }
        // 23. Interval.
        if b5 != pinterval {
            return Err(keyed(ci::ADVERT_INTERVAL_ERR));
        }
    }
    Ok(Accepted {
        dst: words_to_addr(dst),
        version,
        priority,
        interval_cs,
        addr_count: count,
        ttl,
        checksum_form: form,
    })
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

//! TCP tracking for `vrrp_track_listen`.
//!
//! - `xvrrp_tcp_state`, on the raw tracepoint `inet_sock_set_state`: for the local ports the agent
//!   watches, in the agent's own network namespace only, counts listening sockets and established
//!   connections (as changes since attach; the agent seeds the gauges from one `sock_diag` dump), the
//!   totals of connections established and closed, and pushes listener appearance and
//!   disappearance to a ring buffer at once.
//! - [`syn_v4`] / [`syn_v6`], called from the XDP program for TCP frames: counts SYNs to the
//!   watched ports.
//!
//! A raw tracepoint gets the tracepoint's `TP_PROTO` arguments (`struct sock *sk`, old state, new
//! state) and needs no tracefs (absent in `ip netns exec`'s mount namespace). Everything else is
//! read from the socket with `bpf_probe_read_kernel` at offsets the agent computed from the
//! kernel's BTF (`/sys/kernel/btf/vmlinux`) and wrote to [`XVRRP_TCP_CONF`]; the namespace is
//! `sk->__sk_common.skc_net.net->net_cookie` (or `->ns.inum`), compared with the agent's own.
//!
//! Transitions that matter (include/net/tcp_states.h):
//! - `* -> LISTEN`: a listener appeared (`listen(2)`).
//! - `LISTEN -> CLOSE`: a listener closed (the last reference to it, or `shutdown`). Note that
//!   `LISTEN -> SYN_RECV` is a *child* socket being cloned from its listener, not a listener
//!   change.
//! - `* -> ESTABLISHED` / `ESTABLISHED -> *`: the established gauge and the totals.

use core::{arch::asm, mem};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{RawTracePointContext, XdpContext},
};
use aya_log_ebpf::{error, warn};

use agent_common::tcp::{
    netns_kind, state, stats, ListenEvent, TcpConfig, TcpCounts, TcpKey, EVENTS_RING_BYTES,
    MAX_COUNT_KEYS, MAX_WATCHED, SYN_PORT_ENTRIES, SYN_SLOTS,
};

#[map(name = "XVRRP_TCP_CONF")]
static XVRRP_TCP_CONF: Array<TcpConfig> = Array::with_max_entries(1, 0);

#[map(name = "XVRRP_TCP_WATCH")]
static XVRRP_TCP_WATCH: HashMap<u16, u8> = HashMap::with_max_entries(MAX_WATCHED, 0);

#[map(name = "XVRRP_TCP_COUNTS")]
static XVRRP_TCP_COUNTS: HashMap<TcpKey, TcpCounts> = HashMap::with_max_entries(MAX_COUNT_KEYS, 0);

#[map(name = "XVRRP_TCP_EVENTS")]
static XVRRP_TCP_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[map(name = "XVRRP_TCP_STATS")]
static XVRRP_TCP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::LEN, 0);

/// Port to count slot (0: not watched); the agent also keeps each slot's owner past the ports.
#[map(name = "XVRRP_SYN_PORTS")]
static XVRRP_SYN_PORTS: Array<u32> = Array::with_max_entries(SYN_PORT_ENTRIES, 0);

/// SYNs per count slot.
#[map(name = "XVRRP_SYN_COUNTS")]
static XVRRP_SYN_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SYN_SLOTS, 0);

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
/// [`IPPROTO_TCP`] as the IP header's protocol byte.
pub const IPPROTO_TCP_U8: u8 = IPPROTO_TCP as u8;
/// `BPF_RB_FORCE_WAKEUP`: wake the agent for every listener event, whatever the ring's state.
const BPF_RB_FORCE_WAKEUP: u64 = 2;

#[inline(always)]
fn bump(idx: u32) {
    if let Some(slot) = XVRRP_TCP_STATS.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot; tracepoint programs run with migration disabled, and a
        // lost increment under nesting only skews a statistic.
        unsafe { *slot += 1 };
    }
}

/// [`bump`], returning the new count (0 when the slot is missing).
#[inline(always)]
fn bump_get(idx: u32) -> u64 {
    match XVRRP_TCP_STATS.get_ptr_mut(idx) {
        // SAFETY: as in `bump`.
        Some(slot) => unsafe {
            *slot += 1;
            *slot
        },
        None => 0,
    }
}

/// Why a transition of interest was not counted, when that is an error (the program's rare
/// error paths, counted and logged out of line by [`trouble`]).
#[derive(Clone, Copy)]
enum Trouble {
    /// Not a transition, port or namespace we count: no error.
    Skip,
    /// The configuration is unset ([`TcpConfig::enabled`] 0): the agent attaches only after
    /// writing it, so this should not happen.
    Unconfigured,
    /// `bpf_probe_read_kernel` failed at this offset: the BTF offsets are wrong for this kernel
    /// (or the pointer passed by the tracepoint is bad).
    ReadFailed(u32),
    /// The counts map is full.
    MapFull,
    /// The listener event ring buffer is full.
    RingFull,
}

/// Reads a `T` at `base + off` from kernel memory.
#[inline(always)]
fn read<T>(base: u64, off: u32) -> Result<T, Trouble> {
    // SAFETY: bpf_probe_read_kernel checks the address and fails (never faults) when it is bad.
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T) }
        .map_err(|_| Trouble::ReadFailed(off))
}

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn xvrrp_tcp_state(ctx: RawTracePointContext) -> i32 {
    match on_state(&ctx) {
        Ok(()) | Err(Trouble::Skip) => {}
        Err(why) => trouble(&ctx, why),
    }
    0
}

/// Counts an error path of [`on_state`] (`stats`), and logs it (aya-log) when this CPU's count
/// of it reaches a power of two, so that a storm of socket changes cannot make logging
/// per-event work. Out of line: the log records are built here, not on the usual way through.
#[inline(never)]
fn trouble(ctx: &RawTracePointContext, why: Trouble) {
    match why {
        Trouble::Skip => {}
        Trouble::Unconfigured => {
            let n = bump_get(stats::UNCONFIGURED);
            if crate::log_now(n) {
                error!(
                    ctx,
                    "TCP state program runs without its configuration: nothing counted ({} on this CPU)",
                    n
                );
            }
        }
        Trouble::ReadFailed(off) => {
            let n = bump_get(stats::READ_FAILED);
            if crate::log_now(n) {
                error!(
                    ctx,
                    "bpf_probe_read_kernel failed at offset {} (BTF offsets wrong for this kernel?): transition not counted ({} on this CPU)",
                    off,
                    n
                );
            }
        }
        Trouble::MapFull => {
            let n = bump_get(stats::MAP_FULL);
            if crate::log_now(n) {
                warn!(
                    ctx,
                    "TCP counts map full: transition not counted ({} on this CPU)", n
                );
            }
        }
        Trouble::RingFull => {
            let n = bump_get(stats::RING_FULL);
            if crate::log_now(n) {
                warn!(
                    ctx,
                    "listener event ring buffer full: event lost, counts still right ({} on this CPU)",
                    n
                );
            }
        }
    }
}

#[inline(always)]
fn on_state(ctx: &RawTracePointContext) -> Result<(), Trouble> {
    let sk: u64 = ctx.arg(0);
    let old = ctx.arg::<u64>(1) as u32;
    let new = ctx.arg::<u64>(2) as u32;
    let listen_up = new == state::LISTEN && old != state::LISTEN;
    let listen_down = old == state::LISTEN && new == state::CLOSE;
    let est_up = new == state::ESTABLISHED && old != state::ESTABLISHED;
    let est_down = old == state::ESTABLISHED && new != state::ESTABLISHED;
    if !(listen_up || listen_down || est_up || est_down) {
        return Err(Trouble::Skip);
    }
    let cfg = XVRRP_TCP_CONF.get_ptr(0).ok_or(Trouble::Unconfigured)?;
    // SAFETY: a map value only the agent writes; copied out at once.
    let cfg: TcpConfig = unsafe { *cfg };
    if cfg.enabled == 0 {
        return Err(Trouble::Unconfigured);
    }
    let port: u16 = read(sk, cfg.off_num)?;
    XVRRP_TCP_WATCH.get_ptr(port).ok_or(Trouble::Skip)?;
    let proto: u16 = if cfg.protocol_size == 1 {
        u16::from(read::<u8>(sk, cfg.off_protocol)?)
    } else {
        read::<u16>(sk, cfg.off_protocol)?
    };
    if proto != IPPROTO_TCP {
        return Err(Trouble::Skip);
    }
    let net: u64 = read(sk, cfg.off_net)?;
    let id: u64 = if cfg.netns_kind == netns_kind::INUM {
        u64::from(read::<u32>(net, cfg.off_netns_id)?)
    } else {
        read::<u64>(net, cfg.off_netns_id)?
    };
    if id != cfg.netns_id {
        bump(stats::OTHER_NETNS);
        return Err(Trouble::Skip);
    }
    let family: u16 = read(sk, cfg.off_family)?;
    let mut key = TcpKey {
        port,
        family,
        _pad: [0; 4],
        addr: [0; 16],
    };
    if family == AF_INET {
        let a: [u8; 4] = read(sk, cfg.off_rcv_saddr)?;
        key.addr[0] = a[0];
        key.addr[1] = a[1];
        key.addr[2] = a[2];
        key.addr[3] = a[3];
    } else if family == AF_INET6 {
        key.addr = read(sk, cfg.off_v6_rcv_saddr)?;
    } else {
        return Err(Trouble::Skip);
    }
    let counts = counts_of(&key).ok_or(Trouble::MapFull)?;
    bump(stats::COUNTED);
    let mut pushed = true;
    // SAFETY (all): fields of a live map value, 8-byte aligned (the kernel allocates values
    // 8-byte aligned and every field is a u64 / i64 at a multiple of 8).
    unsafe {
        if listen_up || listen_down {
            let delta: i64 = if listen_up { 1 } else { -1 };
            let now = fetch_add(&raw mut (*counts).listeners, delta) + delta;
            pushed = push_event(&key, now, listen_up);
        }
        if est_up {
            add(&raw mut (*counts).established, 1);
            add((&raw mut (*counts).established_total).cast(), 1);
        }
        if est_down {
            add(&raw mut (*counts).established, -1);
            add((&raw mut (*counts).closed_total).cast(), 1);
        }
    }
    if pushed {
        Ok(())
    } else {
        Err(Trouble::RingFull)
    }
}

/// Atomically adds `v` to `*p` (BPF `lock xadd`): every CPU updates the same counters.
///
/// # Safety
///
/// `p` must point to a live, 8-byte aligned `i64` (a map value field).
#[inline(always)]
unsafe fn add(p: *mut i64, v: i64) {
    // SAFETY: the caller guarantees `p`; the instruction only updates those 8 bytes.
    unsafe {
        asm!("lock *(u64 *)({p} + 0) += {v}", p = in(reg) p, v = in(reg) v,
             options(nostack, preserves_flags));
    }
}

/// Atomically adds `v` to `*p` and returns the value before (BPF `atomic_fetch_add`).
///
/// # Safety
///
/// As [`add`].
#[inline(always)]
unsafe fn fetch_add(p: *mut i64, v: i64) -> i64 {
    let mut r = v;
    // SAFETY: as in `add`.
    unsafe {
        asm!("{r} = atomic_fetch_add((u64 *)({p} + 0), {r})", p = in(reg) p, r = inout(reg) r,
             options(nostack, preserves_flags));
    }
    r
}

/// The counters of `key`, created (zero) when missing; `None` when the map is full.
#[inline(always)]
fn counts_of(key: &TcpKey) -> Option<*mut TcpCounts> {
    if let Some(c) = XVRRP_TCP_COUNTS.get_ptr_mut(key) {
        return Some(c);
    }
    let zero = TcpCounts::default();
    // Fails when another CPU created it in between (then use theirs) or when the map is full.
    let _ = XVRRP_TCP_COUNTS.insert(key, &zero, u64::from(BPF_NOEXIST));
    XVRRP_TCP_COUNTS.get_ptr_mut(key)
}

/// Queues a listener event; false when the ring buffer is full.
#[inline(always)]
fn push_event(key: &TcpKey, listeners: i64, up: bool) -> bool {
    match XVRRP_TCP_EVENTS.reserve::<ListenEvent>(0) {
        Some(mut slot) => {
            slot.write(ListenEvent {
                // SAFETY: bpf_ktime_get_ns has no preconditions.
                timestamp_ns: unsafe { bpf_ktime_get_ns() },
                listeners,
                key: *key,
                up: u32::from(up),
                _pad: 0,
            });
            slot.submit(BPF_RB_FORCE_WAKEUP);
            true
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// SYN counting, called from the XDP program
// ---------------------------------------------------------------------------------------------

/// TCP flags byte: SYN and ACK bits.
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// The frame's end, read afresh (see `data_end` in main.rs for why).
#[inline(always)]
fn frame_end(ctx: &XdpContext) -> usize {
    // SAFETY: `ctx.ctx` is the program's context pointer; `data_end` is a readable field.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*ctx.ctx).data_end)) as usize }
}

/// Counts a SYN (without ACK) whose TCP header starts `l4` bytes into the frame.
#[inline(always)]
fn count_syn(ctx: &XdpContext, l4: usize) {
    let start = ctx.data();
    // Bytes 0..14 of the TCP header: ports and flags.
    if start + l4 + 14 > frame_end(ctx) {
        return;
    }
    // SAFETY: the 14 bytes were checked above.
    unsafe { count_syn_at(start + l4) };
}

/// [`count_syn`] for a TCP header at `p` whose first 14 bytes the caller has bounds-checked.
///
/// # Safety
///
/// `p..p + 14` must be inside the frame (checked against `data_end` so the verifier knows too).
#[inline(always)]
pub unsafe fn count_syn_at(p: usize) {
    // SAFETY: the caller checked the 14 bytes; a single byte needs no alignment.
    let flags = unsafe { *((p + 13) as *const u8) };
    if flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
        return;
    }
    // The port as it sits in the frame, which is how the map is keyed
    // (`agent_common::tcp::syn_port_key`): one load, no byte swap.
    // SAFETY: inside the 14 bytes checked.
    let port = unsafe { crate::raw16(p + 2) };
    // Two array lookups, both inlined by the verifier (no helper call).
    let Some(slot) = XVRRP_SYN_PORTS.get(u32::from(port)) else {
        return;
    };
    if *slot == 0 {
        return;
    }
    if let Some(n) = XVRRP_SYN_COUNTS.get_ptr_mut(*slot) {
        // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
        unsafe { *n += 1 };
    }
}

/// IPv4: `vihl` is the version / IHL byte of the header at `l3`, `proto` its protocol.
#[inline(always)]
pub fn syn_v4(ctx: &XdpContext, l3: usize, vihl: u8, proto: u8) {
    if proto == IPPROTO_TCP as u8 {
        count_syn(ctx, l3 + usize::from(vihl & 0x0f) * 4);
    }
}

/// IPv6 (no extension headers): `next_header` of the fixed header at `l3`.
#[inline(always)]
pub fn syn_v6(ctx: &XdpContext, l3: usize, next_header: u8) {
    if next_header == IPPROTO_TCP as u8 {
        count_syn(ctx, l3 + 40);
    }
}

const _: () = assert!(mem::size_of::<ListenEvent>() == 48);

//! The fast lane of the advert filter: the usual advert, untagged IPv4 with a 20-byte header and
//! a VRRP message of 8 to 26 bytes (v2 with up to 2 addresses and PASS data, v3 with up to 4),
//! which lies wholly inside the first [`FAST_LEN`] bytes of the frame. One bounds check (the
//! entry's) covers every field, loaded at a fixed offset.
//!
//! It takes the steps of [`crate::full`] in the same order, with the same counters (the parity
//! tests run the shared test vectors and randomized frames through both this program and the
//! userspace validator). What differs is only how the work is laid out, measured with
//! `cargo xtask bench xdp`: fields are loaded from the packet where they are used instead of
//! being carried (BPF has four callee-saved registers, and every value live across a map lookup
//! is otherwise spilled to the stack and reloaded), the verdict is a counter index instead of a
//! `Result` of structs, and the per-peer row of an IPv4 source is found by one word per row.
//! The checks this shape passes by construction (the IPv4 header present, IHL 5, the total
//! length present and at least a header plus [`VRRP_HLEN`]) are the entry's.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};

use agent_common::{
    checksum_form, counter_index as ci, family, row_state, unicast_mode, PeerCounters, PeerKey,
    Policy, INLINE_ROWS, MAX_INLINE_PEERS,
};

use crate::{
    at32, bump_bucket, bump_slots, count_failure, finish, keyed, load_u64, pass_not_ours,
    policy_ptr, raw32, sum_ok, unicast_peer, words_to_addr, Accepted, ETH_HLEN, FAST_LEN,
    IPPROTO_VRRP, IPV4_HLEN, VRRP_HLEN, XVRRP_ROWCNT,
};

/// Verdicts of [`vrrp`] besides the counter indexes (all below these): valid, with the checksum
/// form it verified with.
const OK_V2: usize = 0x100 | checksum_form::V2 as usize;
const OK_PSEUDO: usize = 0x100 | checksum_form::PSEUDO_HEADER as usize;
const OK_RFC9568: usize = 0x100 | checksum_form::RFC9568 as usize;

/// Frame offsets of the fields read here.
const IP: usize = ETH_HLEN;
const VRRP: usize = ETH_HLEN + IPV4_HLEN;

/// The fast lane, for a frame of at least FAST_LEN bytes (checked by the caller) that is
/// untagged IPv4, IHL 5, protocol 112, with `w0` its first header word (loaded zero-extended)
/// and `total` its total length, in `IPV4_HLEN + VRRP_HLEN ..= FAST_LEN - ETH_HLEN`.
#[inline(always)]
pub fn ipv4(ctx: &XdpContext, p: usize, w0: u64, total: usize) -> u32 {
    // SAFETY (every load in this function): inside the FAST_LEN bytes the caller checked.
    unsafe {
        // Ours only when the VRID is configured (its policy is set; IPv4's slot is the VRID):
        // anything else is passed, counted once for the interface.
        let vrid = u32::from(*((p + VRRP + 1) as *const u8));
        let pol = policy_ptr(vrid).cast_const();
        if (*pol).version == 0 {
            return pass_not_ours();
        }
        // A multicast instance owns only adverts to the VRRP group (as `crate::owned`).
        if (*pol).unicast == unicast_mode::OFF
            && at32::<{ (IP + 16) as i16 }>(p) != u64::from(crate::GROUP_V4)
        {
            return pass_not_ours();
        }
        // 6. Fragment bits (flags and offset, bar DF), then the header checksum.
        let w1 = at32::<{ (IP + 4) as i16 }>(p);
        if w1 & 0xff3f_0000 != 0 {
            return early_drop(ci::IP_HEADER_ERR);
        }
        let sum = w0
            + w1
            + at32::<{ (IP + 8) as i16 }>(p)
            + at32::<{ (IP + 12) as i16 }>(p)
            + at32::<{ (IP + 16) as i16 }>(p);
        if !sum_ok(sum) {
            return early_drop(ci::IP_HEADER_ERR);
        }
        let verdict = vrrp(ctx, p, total - IPV4_HLEN, pol);
        if verdict & 0x100 != 0 {
            return accept(ctx, p, (verdict & 0xff) as u8);
        }
        count_keyed(ctx, p, verdict, pol)
    }
}

/// Drops a frame that failed before its source and VRID are known (the unknown-source bucket).
#[inline(always)]
fn early_drop(counter: usize) -> u32 {
    bump_bucket(counter);
    xdp_action::XDP_DROP
}

/// Steps 9 to 23 on the `vlen`-byte message at frame byte 34: a counter index, or `OK_*`.
///
/// # Safety
///
/// As for [`ipv4`]: the frame at `p` holds FAST_LEN bytes and is the lane's shape.
#[inline(always)]
unsafe fn vrrp(ctx: &XdpContext, p: usize, vlen: usize, pol: *const Policy) -> usize {
    // SAFETY (every fixed-offset load): inside FAST_LEN, as the caller guarantees.
    let h0 = unsafe { at32::<{ VRRP as i16 }>(p) };
    let vt = h0 & 0xff;
    // 9. Version (v2 and v3 are both IPv4 here).
    let version = vt >> 4;
    if version != 2 && version != 3 {
        return ci::VERSION_ERR;
    }
    // 10. Type.
    if vt & 0x0f != 1 {
        return ci::INVALID_TYPE_RCVD;
    }
    let v2 = version == 2;
    let count = (h0 >> 24) as usize;
    // 11. Address count: v3 needs one (RFC 9568); v2 may have none (keepalived, RFC 3768).
    if count == 0 && !v2 {
        return ci::ADDR_LIST_ERR;
    }
    // 12. Length exactly matches the count.
    let expected = VRRP_HLEN + count * 4 + if v2 { 8 } else { 0 };
    if vlen != expected {
        return ci::PACKET_LEN_ERR;
    }
    // 13. Checksum over the message (1 to 6 more words after the header's two, by the length):
    // v2 alone; v3 with the pseudo-header, or without it (RFC 9568's IPv4 form).
    // SAFETY: the words end by byte 58, inside FAST_LEN.
    let sum = unsafe {
        let mut sum = h0 + at32::<{ (VRRP + 4) as i16 }>(p);
        if vlen > 8 {
            sum += at32::<{ (VRRP + 8) as i16 }>(p);
            if vlen > 12 {
                sum += at32::<{ (VRRP + 12) as i16 }>(p);
                if vlen > 16 {
                    sum += at32::<{ (VRRP + 16) as i16 }>(p);
                    if vlen > 20 {
                        sum += at32::<{ (VRRP + 20) as i16 }>(p);
                    }
                }
            }
        }
        sum
    };
    let ok = if v2 {
        if !sum_ok(sum) {
            return ci::CHECKSUM_ERR;
        }
        OK_V2
    } else {
        // RFC 5798 pseudo-header: src, dst, zero, protocol, VRRP length.
        let len = (vlen as u16).to_be_bytes();
        // SAFETY: inside FAST_LEN.
        let pseudo = unsafe { at32::<{ (IP + 12) as i16 }>(p) + at32::<{ (IP + 16) as i16 }>(p) }
            + u64::from(u32::from_le_bytes([0, IPPROTO_VRRP, len[0], len[1]]));
        if sum_ok(sum + pseudo) {
            OK_PSEUDO
        } else if sum_ok(sum) {
            OK_RFC9568
        } else {
            return ci::CHECKSUM_ERR;
        }
    };
    // SAFETY: inside FAST_LEN.
    let h1 = unsafe { at32::<{ (VRRP + 4) as i16 }>(p) };
    let auth_type = h1 & 0xff;
    // 14. v2 auth type known.
    if v2 && auth_type > 2 {
        return ci::INVALID_AUTHTYPE;
    }
    // 15. v3 interval non-zero (the low nibble of byte 4 and byte 5; the top 4 bits are
    // reserved).
    if !v2 && h1 & 0xff0f == 0 {
        return ci::ADVERT_INTERVAL_ERR;
    }
    // 16. VRID configured here for this family: the entry checked it (only frames of a
    // configured instance come this far).
    // SAFETY: a map value only the agent writes; fields read in place.
    let pol: &Policy = unsafe { &*pol };
    // 17. Unicast: a configured peer, whose TTL range applies (multicast: the policy's
    // minimum up to 255).
    let (mut ttl_min, mut ttl_max) = (pol.ttl_min, u8::MAX);
    if pol.unicast != unicast_mode::OFF {
        // SAFETY: inside FAST_LEN.
        let src = unsafe { at32::<{ (IP + 12) as i16 }>(p) } as u32;
        match peer_ttl(pol, ctx, ((h0 >> 8) & 0xff) as u8, src) {
            Some((lo, hi)) => (ttl_min, ttl_max) = (lo, hi),
            None => return ci::UNKNOWN_PEER,
        }
    }
    // 18. TTL.
    // SAFETY: inside FAST_LEN.
    let ttl = unsafe { *((p + IP + 8) as *const u8) };
    if ttl < ttl_min || ttl > ttl_max {
        return ci::IP_TTL_ERR;
    }
    // 19. Version configured.
    if version != u64::from(pol.version) {
        return ci::VERSION_ERR;
    }
    // 20. Not the owner.
    if pol.owner != 0 {
        return ci::OWNER_DROP;
    }
    if v2 {
        // 21. Auth type.
        if auth_type != u64::from(pol.auth_type) {
            return ci::AUTHTYPE_MISMATCH;
        }
        // 22. PASS data, after the addresses: a v2 message here has at most 2 (16 + 4 * count
        // <= 26 bytes), so the data is at one of three fixed offsets, each inside FAST_LEN.
        // (Each load is its own instruction with its offset as an immediate: LLVM cannot merge
        // them into one load at a computed, variable offset, which the verifier would reject.)
        if auth_type == 1 {
            // SAFETY: inside FAST_LEN (the last ends at byte 58).
            let (d0, d1) = unsafe {
                match count {
                    0 => (
                        at32::<{ (VRRP + 8) as i16 }>(p),
                        at32::<{ (VRRP + 12) as i16 }>(p),
                    ),
                    1 => (
                        at32::<{ (VRRP + 12) as i16 }>(p),
                        at32::<{ (VRRP + 16) as i16 }>(p),
                    ),
                    _ => (
                        at32::<{ (VRRP + 16) as i16 }>(p),
                        at32::<{ (VRRP + 20) as i16 }>(p),
                    ),
                }
            };
            // SAFETY: `auth_data` is at offset 8 of the 8-aligned map value: two words.
            let (a0, a1) = unsafe {
                let a = core::ptr::addr_of!(pol.auth_data).cast::<u32>();
                (u64::from(*a), u64::from(*a.add(1)))
            };
            if d0 != a0 || d1 != a1 {
                return ci::AUTH_FAILURE;
            }
        }
        // 23. Interval.
        if (h1 >> 8) & 0xff != u64::from(pol.interval_secs) {
            return ci::ADVERT_INTERVAL_ERR;
        }
    }
    ok
}

/// The TTL range of `src` when it is a configured unicast peer of `pol` (in unicast mode).
#[inline(always)]
fn peer_ttl(pol: &Policy, ctx: &XdpContext, vrid: u8, src: u32) -> Option<(u8, u8)> {
    if pol.unicast == unicast_mode::MAP {
        return unicast_peer(pol, &key_v4(ctx, vrid, src));
    }
    let mut i = 0;
    while i < MAX_INLINE_PEERS {
        if i >= usize::from(pol.peer_count) {
            break;
        }
        // The peers of an IPv4 policy are IPv4 addresses, zero-padded: one word decides.
        // SAFETY: `peers[i]` is 16 bytes at a 4-aligned offset of the map value.
        let a = unsafe { *pol.peers[i].as_ptr().cast::<u32>() };
        if a == src {
            return Some((pol.peer_ttl_min[i], pol.peer_ttl_max[i]));
        }
        i += 1;
    }
    None
}

/// The key of an IPv4 source for the slow paths (hash lookups, row creation).
#[inline(always)]
fn key_v4(ctx: &XdpContext, vrid: u8, src: u32) -> PeerKey {
    PeerKey {
        ifindex: ctx.ingress_ifindex() as u32,
        vrid,
        family: family::V4,
        _pad: [0; 2],
        addr: words_to_addr([src, 0, 0, 0]),
    }
}

/// The inline row of IPv4 source `src` in the rows of `pol`, policy slot `slot` (the VRID), if
/// it owns one.
#[inline(always)]
fn row_v4(pol: *const Policy, slot: u32, src: u32) -> Option<*mut PeerCounters> {
    let mut i = 0;
    while i < INLINE_ROWS {
        // SAFETY: a map value; `i < INLINE_ROWS`. IPv4 rows hold a zero-padded address, and
        // the row is only taken once its state says it is ready.
        let (a, st) = unsafe {
            (
                *(*pol).rows.addrs[i].as_ptr().cast::<u32>(),
                core::ptr::addr_of!((*pol).rows.state[i]),
            )
        };
        if a == src && load_u64(st) == row_state::READY {
            return XVRRP_ROWCNT.get_ptr_mut(slot * INLINE_ROWS as u32 + i as u32);
        }
        i += 1;
    }
    None
}

/// Counts a failure found once the source and VRID are known: in the source's inline row; else
/// in its hash row when the slot may have any; else in a new row when it is a configured unicast
/// peer; else in the unknown-source bucket (so a flood from spoofed sources creates nothing).
///
/// # Safety
///
/// As for [`ipv4`]; `pol` is the VRID's policy.
#[inline(always)]
unsafe fn count_keyed(ctx: &XdpContext, p: usize, counter: usize, pol: *const Policy) -> u32 {
    // SAFETY: inside FAST_LEN.
    let (src, vrid) = unsafe { (raw32(p + IP + 12), *((p + VRRP + 1) as *const u8)) };
    if let Some(c) = row_v4(pol, u32::from(vrid), src) {
        // SAFETY: this CPU's copy of a per-CPU value; XDP is not re-entered on one CPU.
        bump_slots(unsafe { &mut (*c).counts }, counter, false);
        return xdp_action::XDP_DROP;
    }
    // SAFETY: a map value; the `hashed` byte is read afresh (the program may set it on another
    // CPU), the mode is only written by the agent.
    let (hashed, unicast) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*pol).hashed)) != 0,
            (*pol).unicast != unicast_mode::OFF,
        )
    };
    if hashed || unicast {
        slow_row(&key_v4(ctx, vrid, src), counter);
    } else {
        bump_bucket(counter);
    }
    xdp_action::XDP_DROP
}

/// [`count_failure`] for a source with a hash row or in a unicast instance, out of line.
#[inline(never)]
fn slow_row(key: &PeerKey, counter: usize) {
    count_failure(key, keyed(counter));
}

/// Queues the event of a valid advert and counts it (as [`finish`] does for the full path).
///
/// # Safety
///
/// As for [`ipv4`].
#[inline(always)]
unsafe fn accept(ctx: &XdpContext, p: usize, form: u8) -> u32 {
    // SAFETY: inside FAST_LEN.
    let (w2, src, dst, h0, h1) = unsafe {
        (
            raw32(p + IP + 8),
            raw32(p + IP + 12),
            raw32(p + IP + 16),
            raw32(p + VRRP),
            raw32(p + VRRP + 4),
        )
    };
    let [_, vrid, priority, count] = h0.to_ne_bytes();
    let [b4, b5, _, _] = h1.to_ne_bytes();
    let version = ((h0 & 0xff) >> 4) as u8;
    let interval_cs = if version == 2 {
        u16::from(b5) * 100
    } else {
        u16::from_be_bytes([b4 & 0x0f, b5])
    };
    let key = key_v4(ctx, vrid, src);
    let acc = Accepted {
        dst: words_to_addr([dst, 0, 0, 0]),
        version,
        priority,
        interval_cs,
        addr_count: count,
        ttl: (w2 & 0xff) as u8,
        checksum_form: form,
    };
    finish(&key, Ok(acc))
}

const _: () = assert!(VRRP + 26 <= FAST_LEN);

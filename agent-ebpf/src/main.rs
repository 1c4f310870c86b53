//! xvrrp kernel programs.
//!
//! Foundation stage: a minimal XDP program that proves the build, load and attach pipeline end
//! to end. It counts every frame and the VRRP (IP protocol 112) frames among them, and passes
//! everything. The real advert filter replaces the body in the data-plane work.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};

use agent_common::xdp_stats;

#[map(name = "XVRRP_STATS")]
static XVRRP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(xdp_stats::LEN, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_VRRP: u8 = 112;

#[inline(always)]
fn bump(idx: u32) {
    if let Some(slot) = XVRRP_STATS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn byte_at(ctx: &XdpContext, off: usize) -> Option<u8> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + 1 > end {
        return None;
    }
    // SAFETY: bounds checked against data_end just above.
    Some(unsafe { *((start + off) as *const u8) })
}

#[xdp]
pub fn xvrrp_xdp(ctx: XdpContext) -> u32 {
    bump(xdp_stats::SEEN);
    let proto = match (byte_at(&ctx, 12), byte_at(&ctx, 13)) {
        (Some(hi), Some(lo)) => u16::from_be_bytes([hi, lo]),
        _ => return xdp_action::XDP_PASS,
    };
    let l4 = match proto {
        ETH_P_IP => byte_at(&ctx, ETH_HLEN + 9),
        ETH_P_IPV6 => byte_at(&ctx, ETH_HLEN + 6),
        _ => None,
    };
    if l4 == Some(IPPROTO_VRRP) {
        bump(xdp_stats::VRRP);
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

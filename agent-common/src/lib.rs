//! Types shared by the kernel programs (`agent-ebpf`) and the userspace agent.
//!
//! Every type here is `#[repr(C)]` with explicit padding so both sides agree on the layout
//! byte for byte. The `user` feature implements `aya::Pod` for them.
#![no_std]

/// Index of the per-CPU packet counters kept by the minimal XDP program.
pub mod xdp_stats {
    /// Every frame the program saw.
    pub const SEEN: u32 = 0;
    /// Frames that were IPv4 or IPv6 with protocol 112 (VRRP).
    pub const VRRP: u32 = 1;
    /// Number of slots in the stats array.
    pub const LEN: u32 = 2;
}

/// Name of the XDP program inside the embedded object.
pub const XDP_PROGRAM: &str = "xvrrp_xdp";
/// Name of the per-CPU stats map inside the embedded object.
pub const XDP_STATS_MAP: &str = "XVRRP_STATS";

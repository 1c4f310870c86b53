//! The embedded XDP program run on synthetic frames with BPF_PROG_TEST_RUN: it loads (passes the
//! verifier), passes what is not VRRP or not ours, and drops and counts malformed VRRP of ours.

use xvrrp::dataplane::{PeerSlot, XdpTestProgram, XDP_DROP, XDP_PASS};
use xvrrp::packet::{Counter, Family, RxPolicy};

/// An IPv4 frame of `proto` to the VRRP group whose first payload bytes are a VRRPv3 header of
/// VRID 51.
fn ipv4_frame(proto: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8];
    f[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 0x12]);
    f[12] = 0x08;
    f[13] = 0x00;
    f[14] = 0x45;
    f[14 + 2..14 + 4].copy_from_slice(&28u16.to_be_bytes());
    f[14 + 8] = 255;
    f[14 + 9] = proto;
    // To the VRRP group (a multicast instance owns nothing else).
    f[14 + 16..14 + 20].copy_from_slice(&[224, 0, 0, 18]);
    f[14 + 20] = 0x31;
    f[14 + 21] = 51;
    f
}

#[test]
fn program_passes_non_vrrp_and_drops_malformed_vrrp() {
    xvrrp_tests::require_root();
    let mut prog = XdpTestProgram::with_policies(&[RxPolicy::v3(51, Family::V4)]).unwrap();
    // Protocol 112 of the owned VRID with a zero IPv4 header checksum: dropped as a bad IP
    // header.
    assert_eq!(prog.run(&ipv4_frame(112), 1).unwrap().action, XDP_DROP);
    // The same for VRID 52, which is not ours: passed, counted once for the interface.
    let mut other = ipv4_frame(112);
    other[14 + 21] = 52;
    assert_eq!(prog.run(&other, 1).unwrap().action, XDP_PASS);
    assert_eq!(prog.run(&ipv4_frame(6), 1).unwrap().action, XDP_PASS);
    // BPF_PROG_TEST_RUN refuses input shorter than an Ethernet header; a bare header with an
    // unknown EtherType is the shortest frame it takes.
    let bare = [0u8; 14];
    assert_eq!(
        prog.run(&bare, 1).unwrap().action,
        XDP_PASS,
        "a non-IP frame passes"
    );
    assert_eq!(
        prog.run_baseline(&ipv4_frame(112), 1).unwrap().action,
        XDP_PASS,
        "the baseline program passes everything"
    );
    let stats = prog.stats().unwrap();
    assert_eq!(stats.vrrp, 1);
    assert_eq!(stats.not_ours, 1);
    let rows = prog.peer_counters().unwrap();
    let bucket = rows.iter().find(|r| r.slot == PeerSlot::Unknown).unwrap();
    assert_eq!(
        bucket.nonzero(),
        vec![(Counter::IpHeaderErr, 1)],
        "{rows:?}"
    );
}

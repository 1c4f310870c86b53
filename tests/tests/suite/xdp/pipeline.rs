//! The eBPF pipeline end to end: the object built by `cargo xtask build-ebpf`, embedded in the
//! `xvrrp` binary, loads and attaches to a veth inside a test namespace, sees real traffic (drops
//! and counts the VRRP frames of the VRID it owns, passes and counts those of another), and is
//! detached when the agent exits.

use std::{net::Ipv4Addr, time::Duration};

use xvrrp_tests::{send_raw_ipv4, veth_pair, wait_until, xvrrp_bin, Netns};

fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    ns.ip(&["-d", "link", "show", ifname]).contains("prog/xdp")
}

fn probe_counts_vrrp_packets(mode: &str) {
    let (a, b) = veth_pair("xp", "10.77.0", false);

    let probe = a.spawn(a.command(xvrrp_bin()).args([
        "xdp-probe",
        "-i",
        "va",
        "--mode",
        mode,
        "--seconds",
        "3",
        "--vrid",
        "33",
    ]));
    assert!(
        wait_until(Duration::from_secs(10), || xdp_attached(&a, "va")),
        "XDP never attached to va"
    );

    // Five VRRP-protocol packets for the owned VRID 33, four for VRID 34 (not ours) and three
    // UDP-protocol packets from the other namespace. The adverts go to the VRRP group (a
    // multicast instance owns nothing else) and are VRRPv3 with no addresses (step 11: v3 needs
    // one; a v2 one with none is valid and would fail on its length instead).
    b.ip(&["route", "add", "224.0.0.0/4", "dev", "vb"]);
    b.run(|| {
        let group = Ipv4Addr::new(224, 0, 0, 18);
        send_raw_ipv4(group, 112, &[0x31, 33, 100, 0, 0, 100, 0, 0], 5);
        send_raw_ipv4(group, 112, &[0x31, 34, 100, 0, 0, 100, 0, 0], 4);
        send_raw_ipv4(Ipv4Addr::new(10, 77, 0, 1), 17, &[0; 16], 3);
    });

    let out = probe.wait_output(Duration::from_secs(15));
    assert!(
        out.status.success(),
        "xdp-probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: xvrrp::state::ProbeReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.mode, mode, "attached in the requested mode");
    assert_eq!(
        v.vrrp, 5,
        "exactly the five protocol-112 packets of VRID 33 are counted as ours: {v:?}"
    );
    assert_eq!(
        v.counters,
        [(xvrrp::packet::Counter::AddrListErr, 5)].into(),
        "the five v3 adverts without addresses are dropped and counted, nothing else is: {v:?}"
    );
    assert_eq!(
        v.not_ours, 4,
        "the four VRID 34 packets are passed and counted as not ours, the UDP ones not: {v:?}"
    );
    assert!(
        !xdp_attached(&a, "va"),
        "the program is detached when xvrrp exits"
    );
}

#[test]
fn xdp_program_attaches_natively_to_veth_and_counts_vrrp() {
    probe_counts_vrrp_packets("native");
}

#[test]
fn xdp_program_attaches_in_generic_mode_and_counts_vrrp() {
    probe_counts_vrrp_packets("generic");
}

#[test]
fn xdp_probe_on_missing_interface_fails_with_clear_error() {
    let a = Netns::new("xpm");
    let out = xvrrp_tests::sh(a.command(xvrrp_bin()).args([
        "xdp-probe",
        "-i",
        "nosuch0",
        "--seconds",
        "0",
    ]));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuch0") && err.contains("--rx socket"),
        "error names the interface and the fallback: {err}"
    );
}

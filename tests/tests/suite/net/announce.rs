//! Gratuitous ARP and unsolicited neighbour advertisements, observed in the peer namespace:
//! the frame fields on the wire, and the peer's neighbour table taking the new MAC.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use xvrrp::net::{send_garp, send_unsolicited_na, NetError};
use xvrrp_tests::{veth_pair, wait_until, Capture, Netns};

const T: Duration = Duration::from_secs(5);
const STALE_MAC: &str = "02:00:00:00:00:99";

fn lab() -> (Netns, Netns) {
    veth_pair("na", "10.0.0", true)
}

/// A stale neighbour entry on `b`'s `vb` for `addr` pointing elsewhere (the old Master's MAC).
fn stale_neighbour(b: &Netns, addr: &str) {
    let family = if addr.contains(':') { "-6" } else { "-4" };
    b.ip(&[
        family, "neigh", "replace", addr, "lladdr", STALE_MAC, "dev", "vb", "nud", "stale",
    ]);
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn gratuitous_arp_is_seen_and_updates_the_peer() {
    let (a, b) = lab();
    let vip = Ipv4Addr::new(10, 0, 0, 100);
    let mac = a.mac("va");
    // The peer has a stale entry for the VIP pointing elsewhere (the old master).
    stale_neighbour(&b, "10.0.0.100");
    let cap = Capture::open(&b, "vb");

    a.run(move || send_garp("va", vip).unwrap());
    let f = cap
        .wait_for(T, |f| {
            f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[28..32] == vip.octets()
        })
        .expect("ARP frame on vb");
    assert_eq!(f[0..6], [0xff; 6], "broadcast destination");
    assert_eq!(f[6..12], mac, "from va's MAC");
    assert_eq!(f[14..20], [0, 1, 0x08, 0x00, 6, 4], "Ethernet/IPv4 ARP");
    assert_eq!(f[20..22], [0, 1], "request");
    assert_eq!(f[22..28], mac, "sender MAC");
    assert_eq!(f[28..32], vip.octets(), "sender IP = VIP");
    assert_eq!(f[32..38], [0; 6], "target MAC zero");
    assert_eq!(f[38..42], vip.octets(), "target IP = VIP");
    assert_eq!(f.len(), 60, "padded to the Ethernet minimum");

    let want = mac_str(mac);
    assert!(
        wait_until(T, || b
            .ip(&["neigh", "show", "10.0.0.100", "dev", "vb"])
            .contains(&want)),
        "peer's ARP entry not updated: {}",
        b.ip(&["neigh", "show", "dev", "vb"])
    );
}

/// Checks an unsolicited NA frame for `vip` from `mac`; returns the IPv6 source.
fn check_na(f: &[u8], vip: Ipv6Addr, mac: [u8; 6]) -> Ipv6Addr {
    assert_eq!(f[0..6], [0x33, 0x33, 0, 0, 0, 1], "to all-nodes MAC");
    assert_eq!(f[6..12], mac);
    assert_eq!(f[20], 58, "ICMPv6");
    assert_eq!(f[21], 255, "hop limit");
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
    assert_eq!(
        f[38..54],
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets()
    );
    let icmp = &f[54..];
    assert_eq!(icmp[0], 136, "neighbour advertisement");
    assert_eq!(icmp[1], 0);
    assert_eq!(icmp[4] & 0x20, 0x20, "Override");
    assert_eq!(icmp[4] & 0x40, 0, "not Solicited");
    assert_eq!(icmp[8..24], vip.octets(), "target");
    assert_eq!(icmp[24..26], [2, 1], "target link-layer address option");
    assert_eq!(icmp[26..32], mac);
    src
}

fn is_na(f: &[u8]) -> bool {
    f.len() >= 86 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 136
}

#[test]
fn unsolicited_na_is_seen_and_updates_the_peer() {
    let (a, b) = lab();
    let vip: Ipv6Addr = "fd00::100".parse().unwrap();
    let mac = a.mac("va");
    a.ip(&["addr", "add", "fd00::100/64", "dev", "va", "nodad"]);
    stale_neighbour(&b, "fd00::100");
    let cap = Capture::open(&b, "vb");

    a.run(move || send_unsolicited_na("va", vip).unwrap());
    let f = cap.wait_for(T, is_na).expect("NA on vb");
    let src = check_na(&f, vip, mac);
    assert_eq!(src, vip, "sent from the VIP itself when it is configured");
    assert_eq!(f[54 + 4] & 0x80, 0, "not a router: forwarding is off");

    // The peer's kernel accepted it (so checksum and hop limit were right) and took the MAC.
    let want = mac_str(mac);
    assert!(
        wait_until(T, || b
            .ip(&["-6", "neigh", "show", "fd00::100", "dev", "vb"])
            .contains(&want)),
        "peer's neighbour entry not updated: {}",
        b.ip(&["-6", "neigh", "show", "dev", "vb"])
    );
}

#[test]
fn unsolicited_na_without_the_vip_configured_uses_link_local_and_router_flag() {
    let (a, b) = lab();
    let vip: Ipv6Addr = "fd00::200".parse().unwrap();
    let mac = a.mac("va");
    a.sysctl("net/ipv6/conf/va/forwarding", "1");
    let cap = Capture::open(&b, "vb");
    a.run(move || send_unsolicited_na("va", vip).unwrap());
    let f = cap.wait_for(T, is_na).expect("NA on vb");
    let src = check_na(&f, vip, mac);
    assert_eq!(
        src.segments()[0],
        0xfe80,
        "kernel-chosen link-local source, got {src}"
    );
    assert_eq!(f[54 + 4] & 0x80, 0x80, "Router flag: forwarding is on");
}

#[test]
fn announcements_name_the_interface_on_error() {
    let (a, _b) = lab();
    a.run(|| {
        let e = send_garp("nosuch0", Ipv4Addr::new(10, 0, 0, 100)).unwrap_err();
        assert!(matches!(e, NetError::NoSuchInterface { .. }), "{e}");
        assert!(e.to_string().contains("nosuch0"));
        // Loopback has no Ethernet address to announce.
        let e = send_unsolicited_na("lo", "fd00::100".parse().unwrap()).unwrap_err();
        assert!(matches!(e, NetError::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("lo"));
    });
}

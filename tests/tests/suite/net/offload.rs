//! VLAN receive offload around XDP (`xvrrp::net::offload`): turned off where it is on, turned
//! back on when the guard goes, veths reported and left alone, fixed-off devices untouched.

use xvrrp::net::offload::{TagsVisible, Visibility};
use xvrrp_tests::{must, Netns};

fn rx_vlan_offload(ns: &Netns, dev: &str) -> String {
    let out = must(ns.command("ethtool").args(["-k", dev]));
    out.lines()
        .find(|l| l.starts_with("rx-vlan-offload:"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn offload_is_turned_off_and_back_on_and_veths_are_reported() {
    xvrrp_tests::require_root();
    let ns = Netns::new("xoff");
    ns.ip(&["link", "add", "o0", "type", "veth", "peer", "name", "o1"]);
    ns.ip(&["link", "add", "d0", "type", "bridge"]);
    assert_eq!(rx_vlan_offload(&ns, "o0"), "rx-vlan-offload: on");

    // The mechanism, on a device whose offload can be changed (a veth's can, though it changes
    // nothing XDP sees there).
    let guard = ns.run(|| TagsVisible::turn_off("o0").unwrap());
    assert!(guard.changed());
    assert_eq!(guard.visibility, Visibility::InFrame);
    assert_eq!(rx_vlan_offload(&ns, "o0"), "rx-vlan-offload: off");
    ns.run(move || drop(guard));
    assert_eq!(rx_vlan_offload(&ns, "o0"), "rx-vlan-offload: on");

    // What the agent calls: a veth is reported (its peer decides) and left as it is.
    let v = ns.run(|| TagsVisible::ensure("o0").unwrap());
    assert_eq!(v.visibility, Visibility::PeerDecides);
    assert!(!v.changed());
    ns.run(move || drop(v));
    assert_eq!(rx_vlan_offload(&ns, "o0"), "rx-vlan-offload: on");

    // A device without the offload (a bridge: "off [fixed]"): nothing to do.
    let d = ns.run(|| TagsVisible::ensure("d0").unwrap());
    assert_eq!(d.visibility, Visibility::InFrame);
    assert!(!d.changed());

    // A missing device is an error naming nothing secret, not a panic.
    assert!(ns.run(|| TagsVisible::ensure("nosuch0")).is_err());
}

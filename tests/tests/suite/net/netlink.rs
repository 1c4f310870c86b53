//! `xvrrp::net` netlink: address add/list/del (IPv4 with labels, IPv6 without DAD), the
//! idempotency errors, link state, and link events when the veth peer goes down and up.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use xvrrp::net::{
    add_address, del_address, ifindex, link, list_addresses, LinkEvent, LinkMonitor, NetError, Rtnl,
};
use xvrrp_tests::{veth, wait_until, Netns};

/// One namespace with a veth pair d0/d1 (both ends inside), both up.
fn single() -> Netns {
    let ns = Netns::new("nnl");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["link", "set", "d1", "up"]);
    ns
}

#[test]
fn ipv4_addresses_with_labels() {
    let ns = single();
    let out = ns.run(|| {
        let idx = ifindex("d0").unwrap();
        let vip: IpAddr = Ipv4Addr::new(10, 9, 0, 100).into();
        add_address(idx, Ipv4Addr::new(10, 9, 0, 1).into(), 24, None).unwrap();
        add_address(idx, vip, 24, Some("d0:vip")).unwrap();
        let e = add_address(idx, vip, 24, Some("d0:vip")).unwrap_err();
        assert!(matches!(e, NetError::AddressExists { .. }), "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(e.to_string().contains("10.9.0.100/24"), "{e}");

        let list = list_addresses(idx).unwrap();
        let a = list.iter().find(|a| a.addr == vip).expect("VIP listed");
        assert_eq!(a.prefix_len, 24);
        assert_eq!(a.label.as_deref(), Some("d0:vip"));
        assert!(a.is_secondary(), "same subnet as 10.9.0.1/24: secondary");
        let p = list
            .iter()
            .find(|a| a.addr == IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)))
            .unwrap();
        assert!(!p.is_secondary());
        assert_eq!(p.label.as_deref(), Some("d0"));
        // Addresses of other interfaces are not listed.
        assert!(list.iter().all(|a| a.ifindex == idx));
        let shown = std::process::Command::new("ip")
            .args(["-4", "addr", "show", "dev", "d0"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout).into_owned();

        // A label must fit IFNAMSIZ.
        let e = add_address(
            idx,
            Ipv4Addr::new(10, 9, 0, 7).into(),
            32,
            Some("d0:waytoolonglabel"),
        )
        .unwrap_err();
        assert!(matches!(e, NetError::InvalidArgument { .. }), "{e}");

        // Deleting needs the right prefix length; a missing address is reported distinctly.
        let e = del_address(idx, vip, 32).unwrap_err();
        assert!(matches!(e, NetError::AddressNotFound { .. }), "{e}");
        del_address(idx, vip, 24).unwrap();
        let e = del_address(idx, vip, 24).unwrap_err();
        assert!(matches!(e, NetError::AddressNotFound { .. }), "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
        assert!(list_addresses(idx).unwrap().iter().all(|a| a.addr != vip));
        shown
    });
    // What iproute2 saw while the VIP was there.
    assert!(out.contains("10.9.0.100/24"), "{out}");
    assert!(out.contains("d0:vip"), "{out}");
    assert!(!ns
        .ip(&["-4", "addr", "show", "dev", "d0"])
        .contains("10.9.0.100"));
}

#[test]
fn ipv6_addresses_are_usable_at_once() {
    let ns = single();
    ns.run(|| {
        let idx = ifindex("d0").unwrap();
        let vip: IpAddr = "fd00:9::100".parse::<Ipv6Addr>().unwrap().into();
        add_address(idx, vip, 64, None).unwrap();
        let e = add_address(idx, vip, 64, None).unwrap_err();
        assert!(matches!(e, NetError::AddressExists { .. }), "{e}");
        let e = add_address(idx, "fd00:9::7".parse().unwrap(), 64, Some("d0:v6")).unwrap_err();
        assert!(
            matches!(e, NetError::InvalidArgument { .. }),
            "IPv6 has no labels: {e}"
        );

        let list = list_addresses(idx).unwrap();
        let a = list.iter().find(|a| a.addr == vip).expect("VIP listed");
        assert_eq!(a.prefix_len, 64);
        assert!(
            !a.is_tentative(),
            "NODAD: not tentative (flags {:#x})",
            a.flags
        );
        assert_eq!(a.label, None);
        let e = del_address(idx, vip, 128).unwrap_err();
        assert!(matches!(e, NetError::AddressNotFound { .. }), "{e}");
        del_address(idx, vip, 64).unwrap();
        let e = del_address(idx, vip, 64).unwrap_err();
        assert!(matches!(e, NetError::AddressNotFound { .. }), "{e}");
        let e = add_address(idx, vip, 129, None).unwrap_err();
        assert!(matches!(e, NetError::InvalidArgument { .. }), "{e}");
    });
}

#[test]
fn netlink_add_shows_up_without_dad_in_iproute2() {
    let ns = single();
    ns.run(|| {
        let idx = ifindex("d0").unwrap();
        let rt = Rtnl::open().unwrap();
        rt.add_address(idx, "fd00:9::1".parse().unwrap(), 64, None)
            .unwrap();
        rt.add_address(idx, Ipv4Addr::new(192, 0, 2, 1).into(), 32, Some("d0:x"))
            .unwrap();
    });
    let v6 = ns.ip(&["-6", "addr", "show", "dev", "d0"]);
    assert!(v6.contains("fd00:9::1/64"), "{v6}");
    assert!(!v6.contains("fd00:9::1/64 scope global tentative"), "{v6}");
    let v4 = ns.ip(&["-4", "addr", "show", "dev", "d0"]);
    assert!(v4.contains("192.0.2.1/32") && v4.contains("d0:x"), "{v4}");
}

#[test]
fn link_state_and_missing_interfaces() {
    let ns = single();
    ns.run(|| {
        let e = ifindex("nosuch0").unwrap_err();
        assert!(matches!(e, NetError::NoSuchInterface { .. }), "{e}");
        let e = link(999_999).unwrap_err();
        assert!(matches!(e, NetError::NoSuchInterface { .. }), "{e}");
        let idx = ifindex("d0").unwrap();
        let l = link(idx).unwrap();
        assert_eq!(l.name, "d0");
        assert_eq!(l.ifindex, idx);
        assert!(l.is_up() && l.is_running() && l.has_carrier());
        assert_eq!(l.hw_addr.len(), 6);
        let all = Rtnl::open().unwrap().links().unwrap();
        assert!(all.iter().any(|l| l.name == "lo"));
        assert!(all.iter().any(|l| l.name == "d1"));
    });
    ns.ip(&["link", "set", "d1", "down"]);
    ns.run(|| {
        let l = link(ifindex("d0").unwrap()).unwrap();
        assert!(l.is_up(), "d0 is still administratively up");
        assert!(
            !l.is_running() && !l.has_carrier(),
            "but has no carrier: {l:?}"
        );
        assert!(!l.is_usable());
    });
}

/// Drains the monitor until `want` holds for an event, or times out.
fn wait_event(
    mon: &LinkMonitor,
    seen: &mut Vec<LinkEvent>,
    want: impl Fn(&LinkEvent) -> bool,
) -> bool {
    wait_until(Duration::from_secs(5), || {
        loop {
            match mon.recv_events() {
                Ok(ev) => seen.extend(ev),
                Err(e) if e.is_would_block() => break,
                Err(e) => panic!("recv_events: {e}"),
            }
        }
        seen.iter().any(&want)
    })
}

#[test]
fn link_events_follow_the_peer_going_down_and_up() {
    let a = Netns::new("nla");
    let b = Netns::new("nlb");
    veth(&a, "va", &b, "vb");
    let (mon, va) = a.run(|| (LinkMonitor::open().unwrap(), ifindex("va").unwrap()));
    // Nothing yet: a non-blocking read says so.
    assert!(mon.recv_events().unwrap_err().is_would_block());
    let mut seen = Vec::new();
    b.ip(&["link", "set", "vb", "down"]);
    assert!(
        wait_event(&mon, &mut seen, |e| e.link.ifindex == va
            && e.link.name == "va"
            && e.link.is_up()
            && !e.link.has_carrier()
            && !e.removed),
        "no carrier-down event for va: {seen:?}"
    );
    seen.clear();
    b.ip(&["link", "set", "vb", "up"]);
    assert!(
        wait_event(&mon, &mut seen, |e| e.link.ifindex == va
            && e.link.is_usable()),
        "no carrier-up event for va: {seen:?}"
    );
    seen.clear();
    a.ip(&["link", "set", "va", "down"]);
    assert!(
        wait_event(&mon, &mut seen, |e| e.link.ifindex == va && !e.link.is_up()),
        "no admin-down event for va: {seen:?}"
    );
    seen.clear();
    // Deleting the peer deletes the pair: va goes away.
    b.ip(&["link", "del", "vb"]);
    assert!(
        wait_event(&mon, &mut seen, |e| e.link.ifindex == va && e.removed),
        "no removal event for va: {seen:?}"
    );
}

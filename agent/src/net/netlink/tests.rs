//! Unit tests for `net::netlink`.

#![allow(clippy::unwrap_used, reason = "tests")]
use netlink_packet_core::NetlinkSerializable;
use netlink_packet_route::link::{LinkFlags, State};

use super::*;

fn emit(msg: RouteNetlinkMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.sequence_number = 7;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    let mut b = vec![0u8; m.buffer_len()];
    m.serialize(&mut b);
    b
}

fn link_msg(removed: bool, name: &str, flags: u32) -> Vec<u8> {
    let mut l = LinkMessage::default();
    l.header.index = 42;
    l.header.flags = LinkFlags::from_bits_retain(flags);
    l.attributes = vec![
        LinkAttribute::IfName(name.to_owned()),
        LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
        LinkAttribute::Mtu(1500),
        LinkAttribute::OperState(State::Up),
    ];
    emit(if removed {
        RouteNetlinkMessage::DelLink(l)
    } else {
        RouteNetlinkMessage::NewLink(l)
    })
}

fn addr(ip: &str, plen: u8, extra: Vec<AddressAttribute>) -> Vec<u8> {
    let mut m = addr_msg(3, ip.parse().unwrap(), plen);
    m.attributes.extend(extra);
    emit(RouteNetlinkMessage::NewAddress(m))
}

fn first_address(buf: &[u8]) -> AddressInfo {
    match split_messages(buf).unwrap().remove(0).payload {
        NetlinkPayload::InnerMessage(Reply::Address(a)) => a,
        p => panic!("not an address: {p:?}"),
    }
}

#[test]
fn message_types_match_the_crate() {
    let link = || LinkMessage::default();
    let new = RouteNetlinkMessage::NewLink(link());
    assert_eq!(NetlinkSerializable::message_type(&new), RTM_NEWLINK);
    let del = RouteNetlinkMessage::DelLink(link());
    assert_eq!(NetlinkSerializable::message_type(&del), RTM_DELLINK);
    let addr = RouteNetlinkMessage::NewAddress(AddressMessage::default());
    assert_eq!(NetlinkSerializable::message_type(&addr), RTM_NEWADDR);
    assert_eq!(IFA_F_SECONDARY, 0x01);
    assert_eq!(IFA_F_NODAD, 0x02);
    assert_eq!(IFA_F_DADFAILED, 0x08);
    assert_eq!(IFA_F_TENTATIVE, 0x40);
}

/// The bytes of an `RTM_NEWADDR` request are those the kernel has always been sent.
#[test]
fn encodes_address_requests() {
    let mut m = addr_msg(3, "10.0.0.5".parse().unwrap(), 24);
    m.attributes
        .push(AddressAttribute::Label("eth0:vip".to_owned()));
    let b = emit(RouteNetlinkMessage::NewAddress(m));
    let mut want = Vec::new();
    want.extend(56u32.to_ne_bytes());
    want.extend(RTM_NEWADDR.to_ne_bytes());
    want.extend(0u16.to_ne_bytes());
    want.extend(7u32.to_ne_bytes());
    want.extend(0u32.to_ne_bytes());
    want.extend([2, 24, 0, 0]);
    want.extend(3u32.to_ne_bytes());
    for ty in [2u16, 1] {
        want.extend(8u16.to_ne_bytes());
        want.extend(ty.to_ne_bytes());
        want.extend([10, 0, 0, 5]);
    }
    want.extend(13u16.to_ne_bytes());
    want.extend(3u16.to_ne_bytes());
    want.extend(b"eth0:vip\0\0\0\0");
    assert_eq!(b, want);

    let mut m = addr_msg(3, "fd00::5".parse().unwrap(), 64);
    m.attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    let b = emit(RouteNetlinkMessage::NewAddress(m));
    assert_eq!(b.len(), 16 + 8 + 20 + 8);
    assert_eq!(
        &b[16..20],
        &[libc::AF_INET6 as u8, 64, IFA_F_NODAD as u8, 0]
    );
}

#[test]
fn parses_link_events() {
    let up = libc::IFF_UP as u32 | libc::IFF_RUNNING as u32 | libc::IFF_LOWER_UP as u32;
    let mut buf = link_msg(false, "veth0", up);
    buf.extend(link_msg(true, "veth1", 0));
    let ev = parse_link_events(&buf).unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].link.name, "veth0");
    assert_eq!(ev[0].link.ifindex, 42);
    assert!(ev[0].link.is_usable() && !ev[0].removed);
    assert_eq!(ev[0].link.hw_addr, [2, 0, 0, 0, 0, 1]);
    assert_eq!(ev[0].link.mtu, Some(1500));
    assert_eq!(ev[0].link.operstate, Some(6));
    assert!(ev[1].removed && !ev[1].link.is_up());
}

/// An attribute that does not decode (here a 2-byte `IFLA_MTU`) is skipped, not fatal.
#[test]
fn skips_undecodable_attributes() {
    let mut buf = link_msg(false, "veth0", 0);
    // IFLA_MTU (type 4) is the third attribute: 16 + 16 + len("veth0\0") padded (12) + 10.
    let mtu_at = 16 + 16 + 12 + 12;
    assert_eq!(&buf[mtu_at + 2..mtu_at + 4], &4u16.to_ne_bytes());
    buf[mtu_at..mtu_at + 2].copy_from_slice(&6u16.to_ne_bytes());
    let ev = parse_link_events(&buf).unwrap();
    assert_eq!((ev[0].link.name.as_str(), ev[0].link.mtu), ("veth0", None));
    assert_eq!(ev[0].link.operstate, Some(6));
}

#[test]
fn parses_addresses() {
    let buf = addr(
        "10.0.0.5",
        24,
        vec![
            AddressAttribute::Label("eth0:vip".to_owned()),
            AddressAttribute::Flags(AddressFlags::Secondary | AddressFlags::Permanent),
        ],
    );
    let a = first_address(&buf);
    assert_eq!(a.addr, "10.0.0.5".parse::<IpAddr>().unwrap());
    assert_eq!((a.ifindex, a.prefix_len), (3, 24));
    assert_eq!(a.label.as_deref(), Some("eth0:vip"));
    assert!(a.is_secondary());

    let a = first_address(&addr("fd00::5", 64, vec![]));
    assert_eq!(a.addr, "fd00::5".parse::<IpAddr>().unwrap());
    assert_eq!(a.flags, IFA_F_NODAD);
}

proptest::proptest! {
    #[test]
    fn netlink_parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = parse_link_events(&bytes);
        let _ = split_messages(&bytes);
        let _ = parse_address(&bytes);
        let _ = parse_link(&bytes);
    }
}

/// Every truncation and every single-byte corruption of valid messages parses or errors, and
/// never panics.
#[test]
fn truncated_and_corrupted_inputs_never_panic() {
    let up = libc::IFF_UP as u32;
    let label = AddressAttribute::Label("eth0:vip".to_owned());
    let samples = [
        link_msg(false, "eth0", up),
        addr("10.0.0.5", 24, vec![label]),
        addr("fd00::1", 64, vec![]),
    ];
    for s in &samples {
        for cut in 0..s.len() {
            let t = &s[..cut];
            let _ = parse_link_events(t);
            let _ = split_messages(t);
            let _ = parse_address(t);
            let _ = parse_link(t);
            if let Some(p) = t.get(16..) {
                let _ = parse_address(p);
                let _ = parse_link(p);
            }
        }
        for i in 0..s.len() {
            for v in [0u8, 1, 3, 0x7f, 0xff] {
                let mut c = s.clone();
                c[i] = v;
                let _ = parse_link_events(&c);
                let _ = split_messages(&c);
                let _ = parse_address(&c[16..]);
            }
        }
    }
    assert!(split_messages(&[1, 0, 0]).is_err());
    assert!(parse_address(&[2, 24, 0]).is_err());
    assert!(parse_link(&[0; 15]).is_err());
    // A header claiming more bytes than the datagram has.
    let mut s = samples[0].clone();
    s[0..4].copy_from_slice(&1000u32.to_ne_bytes());
    assert!(parse_link_events(&s).is_err());
}

//! A named table of Ethernet frames and the verdict each must get, against [`policies`].
//!
//! One valid advert per shape (v2, v3 × IPv4/IPv6, both v3/IPv4 checksum forms, VLAN, unicast,
//! priority 0) and one invalid frame per rule, plus a few frames pinning the order of the checks
//! where two rules fail at once. Not `cfg(test)`: the XDP parity test runs the same table through
//! the kernel program and compares verdicts and counters.
//!
//! The builders here panic only if the fixed inputs fail to encode, which is a bug in this file
//! caught by the tests.
//!
//! Over 600 lines on purpose: it is one table (a case per frame), read and extended as a whole.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::encode::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, TOS_INTERNETCONTROL};
use super::{
    encode_vrrp, wrap_ethernet, wrap_ipv4, wrap_ipv6, Advert, Auth, Counter, EthParams, Family,
    RxAuth, RxPolicy, SourcePolicy, TtlCheck, TxMeta, UnicastPeer, V3Ipv4Checksum, Verdict,
    VlanTag, IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6,
};

/// VRID of the v2 instance (PASS "password", 1 s), IPv4 multicast.
pub const VRID_V2: u8 = 33;
/// VRID of the v3 instances (IPv4 and IPv6), multicast.
pub const VRID_V3: u8 = 51;
/// VRID of the v3 IPv4 unicast instance.
pub const VRID_UNICAST: u8 = 52;
/// VRID of the v3 IPv4 instance we own (priority 255).
pub const VRID_OWNER: u8 = 60;
/// The v2 instance's password.
pub const PASSWORD: &str = "password";

/// Source of the IPv4 multicast adverts.
pub const SRC_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 200, 2);
/// Virtual address of the IPv4 instances.
pub const VIP_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 200, 16);
/// Source of the IPv6 adverts.
pub const SRC_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
/// Virtual address of the IPv6 instance.
pub const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x16);
/// Our address in unicast mode (destination of unicast adverts).
pub const LOCAL_UNICAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Unicast peer accepted with any TTL, 0..=255 (keepalived's default).
pub const PEER_TTL_ANY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// Unicast peer whose TTL must be 255.
pub const PEER_TTL_255: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
/// Unicast peer with keepalived's `min_ttl 64 max_ttl 128`.
pub const PEER_TTL_RANGE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
/// The TTL range of [`PEER_TTL_RANGE`].
pub const PEER_RANGE: TtlCheck = TtlCheck { min: 64, max: 128 };
/// A source that is not a configured peer.
pub const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// A unique snake_case name saying what the frame tests.
    pub name: &'static str,
    /// The Ethernet frame, without FCS.
    pub frame: Vec<u8>,
    /// The verdict (and hence counters, see [`Verdict::counters`]) it must get.
    pub expected: Verdict,
}

/// The policies of the interface the table's frames arrive on.
pub fn policies() -> Vec<RxPolicy> {
    let mut owner = RxPolicy::v3(VRID_OWNER, Family::V4);
    owner.owner = true;
    let mut unicast = RxPolicy::v3(VRID_UNICAST, Family::V4);
    unicast.source = SourcePolicy::Unicast {
        peers: vec![
            UnicastPeer::new(IpAddr::V4(PEER_TTL_ANY)),
            UnicastPeer {
                addr: IpAddr::V4(PEER_TTL_255),
                ttl: TtlCheck::REQUIRE_255,
            },
            UnicastPeer {
                addr: IpAddr::V4(PEER_TTL_RANGE),
                ttl: PEER_RANGE,
            },
        ],
    };
    vec![
        RxPolicy::v2(VRID_V2, RxAuth::pass(PASSWORD), 1),
        RxPolicy::v3(VRID_V3, Family::V4),
        RxPolicy::v3(VRID_V3, Family::V6),
        unicast,
        owner,
    ]
}

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn v6(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

fn v2_advert(priority: u8, interval: u8, auth: Auth) -> Advert {
    Advert::v2(VRID_V2, priority, vec![v4(VIP_V4)], interval, auth)
}

fn v3_advert4(vrid: u8) -> Advert {
    Advert::v3(vrid, 100, vec![v4(VIP_V4)], 100)
}

fn v3_advert6() -> Advert {
    Advert::v3(VRID_V3, 100, vec![v6(VIP_V6)], 100)
}

/// The VRRP message of `advert` sent from `src` to `dst`.
fn msg(advert: &Advert, src: IpAddr, dst: IpAddr, form: V3Ipv4Checksum) -> Vec<u8> {
    let mut meta = TxMeta::new(src, dst);
    meta.v3_ipv4_checksum = form;
    encode_vrrp(advert, &meta).expect("fixed test advert encodes")
}

fn mcast4(advert: &Advert) -> Vec<u8> {
    msg(
        advert,
        v4(SRC_V4),
        v4(VRRP_GROUP_V4),
        V3Ipv4Checksum::PseudoHeader,
    )
}

fn mcast6(advert: &Advert) -> Vec<u8> {
    msg(
        advert,
        v6(SRC_V6),
        v6(VRRP_GROUP_V6),
        V3Ipv4Checksum::PseudoHeader,
    )
}

/// Recomputes the checksum of an (edited) VRRP message; `pseudo` gives src/dst for the
/// pseudo-header form, `None` for the message-only form.
fn reseal(m: &mut [u8], pseudo: Option<(IpAddr, IpAddr)>) {
    if let Some(f) = m.get_mut(6..8) {
        f.copy_from_slice(&[0, 0]);
    }
    let initial = pseudo
        .and_then(|(s, d)| checksum::pseudo_header_sum(&s, &d, m.len()))
        .unwrap_or(0);
    let ck = checksum::compute(initial, m);
    if let Some(f) = m.get_mut(6..8) {
        f.copy_from_slice(&ck.to_be_bytes());
    }
}

fn set(bytes: &mut [u8], at: usize, value: u8) {
    if let Some(b) = bytes.get_mut(at) {
        *b = value;
    }
}

fn flip(bytes: &mut [u8], at: usize, mask: u8) {
    if let Some(b) = bytes.get_mut(at) {
        *b ^= mask;
    }
}

fn eth(vrid: u8, dst: IpAddr) -> EthParams {
    EthParams::virtual_router(vrid, &dst)
}

fn ip4_frame(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: u8, payload: &[u8]) -> Vec<u8> {
    let pkt = wrap_ipv4(src, dst, ttl, TOS_INTERNETCONTROL, proto, payload)
        .expect("fixed test packet fits");
    wrap_ethernet(&eth(VRID_V3, v4(dst)), ETHERTYPE_IPV4, &pkt).expect("no VLAN")
}

fn ip6_frame(hop_limit: u8, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let pkt = wrap_ipv6(SRC_V6, VRRP_GROUP_V6, hop_limit, 0, next_header, payload)
        .expect("fixed test packet fits");
    wrap_ethernet(&eth(VRID_V3, v6(VRRP_GROUP_V6)), ETHERTYPE_IPV6, &pkt).expect("no VLAN")
}

fn mcast4_frame(m: &[u8], ttl: u8) -> Vec<u8> {
    ip4_frame(SRC_V4, VRRP_GROUP_V4, ttl, IPPROTO_VRRP, m)
}

/// Edits the IPv4 header of an untagged frame (offset 14) and fixes its header checksum.
fn edit_ipv4_header(frame: &mut [u8], edit: impl FnOnce(&mut [u8])) {
    if let Some(h) = frame.get_mut(14..34) {
        edit(h);
        if let Some(f) = h.get_mut(10..12) {
            f.copy_from_slice(&[0, 0]);
        }
        let ck = checksum::internet_checksum(h);
        if let Some(f) = h.get_mut(10..12) {
            f.copy_from_slice(&ck.to_be_bytes());
        }
    }
}

fn accept() -> Verdict {
    Verdict::Accept {
        priority_zero: false,
    }
}

fn dropped(c: Counter) -> Verdict {
    Verdict::Drop(c)
}

/// The table. Names are unique.
pub fn cases() -> Vec<TestCase> {
    let mut t = Vec::new();
    let mut add = |name: &'static str, frame: Vec<u8>, expected: Verdict| {
        t.push(TestCase {
            name,
            frame,
            expected,
        });
    };
    let pass = Auth::pass(PASSWORD);
    let group4 = v4(VRRP_GROUP_V4);
    let group6 = v6(VRRP_GROUP_V6);
    let pseudo4 = Some((v4(SRC_V4), group4));

    // ---- valid adverts ----
    add(
        "accept_v2_pass",
        mcast4_frame(&mcast4(&v2_advert(200, 1, pass)), 255),
        accept(),
    );
    add(
        "accept_v2_without_addresses",
        mcast4_frame(&mcast4(&Advert::v2(VRID_V2, 200, Vec::new(), 1, pass)), 255),
        accept(),
    );
    add(
        "accept_v2_priority_zero",
        mcast4_frame(&mcast4(&v2_advert(0, 1, pass)), 255),
        Verdict::Accept {
            priority_zero: true,
        },
    );
    add(
        "accept_v3_ipv4_pseudo_header_checksum",
        mcast4_frame(&mcast4(&v3_advert4(VRID_V3)), 255),
        accept(),
    );
    add(
        "accept_v3_ipv4_rfc9568_checksum",
        mcast4_frame(
            &msg(
                &v3_advert4(VRID_V3),
                v4(SRC_V4),
                group4,
                V3Ipv4Checksum::Rfc9568,
            ),
            255,
        ),
        accept(),
    );
    add(
        "accept_v3_ipv6",
        ip6_frame(255, IPPROTO_VRRP, &mcast6(&v3_advert6())),
        accept(),
    );
    {
        let meta = TxMeta::new(v4(SRC_V4), group4);
        let e = eth(VRID_V3, group4).with_vlan(VlanTag::new(100));
        let f = super::build_frame(&v3_advert4(VRID_V3), &meta, &e).expect("encodes");
        // Ours untagged, so not ours tagged (a VLAN's instance runs on the VLAN's interface).
        add(
            "not_ours_v3_ipv4_vlan_tagged_same_vrid",
            f,
            Verdict::NotOurs,
        );
        let e = eth(99, group4).with_vlan(VlanTag::new(7));
        let f = super::build_frame(&v3_advert4(99), &meta, &e).expect("encodes");
        add(
            "not_ours_v3_ipv4_vlan_tagged_foreign_vrid",
            f,
            Verdict::NotOurs,
        );
        // A tagged advert for our VRID that would win the election (priority 254) and one that
        // would fail validation: neither is looked at.
        let e = eth(VRID_V3, group4).with_vlan(VlanTag::new(7));
        let mut win = v3_advert4(VRID_V3);
        win.priority = 254;
        let f = super::build_frame(&win, &meta, &e).expect("encodes");
        add(
            "not_ours_v3_ipv4_vlan_tagged_higher_priority",
            f.clone(),
            Verdict::NotOurs,
        );
        let mut bad = f;
        let last = bad.len() - 1;
        set(&mut bad, last, 0xee);
        add(
            "not_ours_v3_ipv4_vlan_tagged_bad_checksum",
            bad,
            Verdict::NotOurs,
        );
        let meta = TxMeta::new(v6(SRC_V6), group6);
        let e = eth(VRID_V3, group6).with_vlan(VlanTag {
            vid: 4094,
            pcp: 7,
            dei: true,
        });
        let f = super::build_frame(&v3_advert6(), &meta, &e).expect("encodes");
        add(
            "not_ours_v3_ipv6_vlan_tagged_same_vrid",
            f,
            Verdict::NotOurs,
        );
        // An 802.1p priority tag (VID 0) is untagged for the kernel, and so for us.
        let meta = TxMeta::new(v4(SRC_V4), group4);
        let e = eth(VRID_V3, group4).with_vlan(VlanTag {
            vid: 0,
            pcp: 6,
            dei: false,
        });
        let f = super::build_frame(&v3_advert4(VRID_V3), &meta, &e).expect("encodes");
        add("accept_v3_ipv4_priority_tagged_vid0", f.clone(), accept());
        let mut bad = f;
        // The VRRP checksum's first byte (after the tag and a 20-byte IP header).
        let at = 18 + 20 + 6;
        let b = bad.get(at).copied().unwrap_or_default();
        set(&mut bad, at, b ^ 0x5a);
        add(
            "drop_v3_ipv4_priority_tagged_bad_checksum",
            bad,
            dropped(Counter::ChecksumErr),
        );
        let meta = TxMeta::new(v6(SRC_V6), group6);
        let e = eth(VRID_V3, group6).with_vlan(VlanTag::new(0));
        let f = super::build_frame(&v3_advert6(), &meta, &e).expect("encodes");
        add("accept_v3_ipv6_priority_tagged_vid0", f, accept());
        // A multicast instance's advert sent unicast to a host that is not us (two other routers
        // seen through a NIC in promiscuous mode): not ours.
        let meta = TxMeta::new(v4(SRC_V4), v4(STRANGER));
        let e = eth(VRID_V3, v4(STRANGER));
        let f = super::build_frame(&v3_advert4(VRID_V3), &meta, &e).expect("encodes");
        add(
            "not_ours_multicast_instance_unicast_destination",
            f,
            Verdict::NotOurs,
        );
        let meta = TxMeta::new(v6(SRC_V6), v6(VIP_V6));
        let e = eth(VRID_V3, v6(VIP_V6));
        let f = super::build_frame(&v3_advert6(), &meta, &e).expect("encodes");
        add(
            "not_ours_multicast_instance_unicast_destination_v6",
            f,
            Verdict::NotOurs,
        );
    }
    {
        let m = msg(
            &v3_advert4(VRID_UNICAST),
            v4(PEER_TTL_ANY),
            v4(LOCAL_UNICAST),
            V3Ipv4Checksum::PseudoHeader,
        );
        add(
            "accept_unicast_peer_any_ttl_by_default",
            ip4_frame(PEER_TTL_ANY, LOCAL_UNICAST, 64, IPPROTO_VRRP, &m),
            accept(),
        );
    }
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        set(&mut m, 4, 0xf0); // reserved bits set, interval 100 cs kept in the low 12 bits
        reseal(&mut m, pseudo4);
        add(
            "accept_v3_reserved_bits_ignored",
            mcast4_frame(&m, 255),
            accept(),
        );
    }
    {
        // IHL 6: one option word (NOP NOP NOP EOL) between the header and VRRP.
        let m = mcast4(&v3_advert4(VRID_V3));
        let mut f = mcast4_frame(&m, 255);
        f.splice(34..34, [1, 1, 1, 0]);
        f.truncate(14 + 24 + m.len());
        let total = u16::try_from(24 + m.len()).unwrap_or(u16::MAX);
        if let Some(h) = f.get_mut(14..38) {
            set(h, 0, 0x46);
            set(h, 10, 0);
            set(h, 11, 0);
            if let Some(t) = h.get_mut(2..4) {
                t.copy_from_slice(&total.to_be_bytes());
            }
            let ck = checksum::internet_checksum(h);
            if let Some(c) = h.get_mut(10..12) {
                c.copy_from_slice(&ck.to_be_bytes());
            }
        }
        add("accept_ipv4_header_with_options", f, accept());
    }

    // ---- not VRRP: passed on ----
    {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x00, 0x00, 0x5e, 0x00, 0x01, VRID_V3, 0x08, 0x06]);
        arp.resize(60, 0);
        add("not_vrrp_arp", arp, Verdict::NotVrrp);
    }
    add(
        "not_vrrp_ipv4_udp",
        ip4_frame(SRC_V4, VRRP_GROUP_V4, 255, 17, &[0; 16]),
        Verdict::NotVrrp,
    );
    {
        // Hop-by-hop options header (next header 112, length 0, PadN 4) before a valid advert:
        // extension headers are not walked.
        let mut payload = vec![IPPROTO_VRRP, 0, 1, 4, 0, 0, 0, 0];
        payload.extend_from_slice(&mcast6(&v3_advert6()));
        add(
            "not_vrrp_ipv6_extension_header",
            ip6_frame(255, 0, &payload),
            Verdict::NotVrrp,
        );
    }
    {
        let mut f = mcast4_frame(&mcast4(&v3_advert4(VRID_V3)), 255);
        f.splice(12..12, [0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65]);
        add("not_vrrp_qinq", f, Verdict::NotVrrp);
    }
    {
        // Web traffic, as the XDP program's fast path sees it (frames of 60 bytes or more) and
        // its full path (VLAN-tagged, IPv4 options) does.
        let mut syn = vec![0u8; 20];
        syn[0..2].copy_from_slice(&40000u16.to_be_bytes());
        syn[2..4].copy_from_slice(&443u16.to_be_bytes());
        syn[12] = 0x50;
        syn[13] = 0x02;
        let mut f = ip4_frame(SRC_V4, VRRP_GROUP_V4, 64, 6, &syn);
        f.resize(60, 0);
        add("not_vrrp_ipv4_tcp_syn", f.clone(), Verdict::NotVrrp);
        let mut tagged = f.clone();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        add("not_vrrp_vlan_ipv4_tcp_syn", tagged, Verdict::NotVrrp);
        let mut bad = f.clone();
        edit_ipv4_header(&mut bad, |h| set(h, 0, 0x65));
        add(
            "not_ours_ipv4_tcp_version_nibble_not_4",
            bad,
            Verdict::NotOurs,
        );
        // IHL 6 (one word of options, all zero), then the SYN: the TCP header is found past
        // the options. (Header checksums are not checked on traffic that is not VRRP.)
        let mut opts = ip4_frame(
            SRC_V4,
            VRRP_GROUP_V4,
            64,
            6,
            &[&[0; 4], syn.as_slice()].concat(),
        );
        edit_ipv4_header(&mut opts, |h| set(h, 0, 0x46));
        opts.resize(60, 0);
        add("not_vrrp_ipv4_tcp_with_options", opts, Verdict::NotVrrp);
        let mut f6 = ip6_frame(64, 6, &syn);
        f6.resize(f6.len().max(60), 0);
        add("not_vrrp_ipv6_tcp_syn", f6.clone(), Verdict::NotVrrp);
        let mut bad6 = f6;
        set(&mut bad6, 14, 0x40);
        add(
            "not_ours_ipv6_tcp_version_nibble_not_6",
            bad6,
            Verdict::NotOurs,
        );
    }

    // ---- link and IP layer ----
    {
        let good = mcast4_frame(&mcast4(&v3_advert4(VRID_V3)), 255);
        add(
            "not_ours_truncated_ethernet_header",
            good.get(..10).unwrap_or_default().to_vec(),
            Verdict::NotOurs,
        );
        let mut tagged = good.get(..12).unwrap_or_default().to_vec();
        tagged.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        tagged.extend_from_slice(&[0x00]);
        add("not_ours_truncated_vlan_tag", tagged, Verdict::NotOurs);
        add(
            "not_ours_truncated_ipv4_header",
            good.get(..14 + 19).unwrap_or_default().to_vec(),
            Verdict::NotOurs,
        );
        // The VRID byte is past the IP total length (in the frame's padding): not readable.
        let mut f = good.clone();
        edit_ipv4_header(&mut f, |h| {
            if let Some(t) = h.get_mut(2..4) {
                t.copy_from_slice(&21u16.to_be_bytes());
            }
        });
        add("not_ours_ipv4_vrid_past_total_length", f, Verdict::NotOurs);
        // The frame ends just before the VRID byte.
        add(
            "not_ours_ipv4_frame_ends_before_vrid",
            good.get(..14 + 21).unwrap_or_default().to_vec(),
            Verdict::NotOurs,
        );
        // The frame ends just after it: ours, and truncated.
        add(
            "drop_ipv4_frame_ends_after_vrid",
            good.get(..14 + 22).unwrap_or_default().to_vec(),
            dropped(Counter::PacketLenErr),
        );
        let mut f = good.clone();
        edit_ipv4_header(&mut f, |h| {
            if let Some(t) = h.get_mut(2..4) {
                t.copy_from_slice(&200u16.to_be_bytes());
            }
        });
        add(
            "drop_ipv4_total_length_beyond_frame",
            f,
            dropped(Counter::PacketLenErr),
        );
        let mut f = good.clone();
        set(&mut f, 14 + 10, 0x12);
        set(&mut f, 14 + 11, 0x34);
        add(
            "drop_ipv4_bad_header_checksum",
            f,
            dropped(Counter::IpHeaderErr),
        );
        let mut f = good.clone();
        edit_ipv4_header(&mut f, |h| set(h, 0, 0x44));
        add("not_ours_ipv4_ihl_below_5", f, Verdict::NotOurs);
        let mut f = good.clone();
        edit_ipv4_header(&mut f, |h| set(h, 6, 0x20));
        add("drop_ipv4_fragment", f, dropped(Counter::IpHeaderErr));
        let mut f = good.clone();
        edit_ipv4_header(&mut f, |h| set(h, 0, 0x65));
        add("not_ours_ipv4_version_nibble_not_4", f, Verdict::NotOurs);
        // Total length covering 4 bytes after the VRRP message (frame padding): VRRP length
        // no longer matches the count.
        let mut f = good.clone();
        let total = u16::try_from(20 + 12 + 4).unwrap_or(u16::MAX);
        edit_ipv4_header(&mut f, |h| {
            if let Some(t) = h.get_mut(2..4) {
                t.copy_from_slice(&total.to_be_bytes());
            }
        });
        add(
            "drop_ip_payload_longer_than_vrrp_message",
            f,
            dropped(Counter::PacketLenErr),
        );
    }
    {
        let mut f = ip6_frame(255, IPPROTO_VRRP, &mcast6(&v3_advert6()));
        set(&mut f, 14 + 4, 0x01); // payload length 256 + 24
        add(
            "drop_ipv6_payload_length_beyond_frame",
            f,
            dropped(Counter::PacketLenErr),
        );
    }

    // ---- VRRP structure ----
    add(
        "drop_vrrp_shorter_than_header",
        mcast4_frame(&[0x31, VRID_V3, 100, 1, 0, 100], 255),
        dropped(Counter::PacketLenErr),
    );
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        set(&mut m, 3, 2);
        reseal(&mut m, pseudo4);
        add(
            "drop_length_vs_address_count",
            mcast4_frame(&m, 255),
            dropped(Counter::PacketLenErr),
        );
    }
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        set(&mut m, 0, 0x11);
        reseal(&mut m, pseudo4);
        add(
            "drop_unknown_version",
            mcast4_frame(&m, 255),
            dropped(Counter::VersionErr),
        );
    }
    {
        // A v2-formatted message over IPv6 (16-byte address, 8 auth bytes).
        let mut m = vec![0x21, VRID_V3, 100, 1, 0, 1, 0, 0];
        m.extend_from_slice(&VIP_V6.octets());
        m.extend_from_slice(&[0; 8]);
        reseal(&mut m, None);
        add(
            "drop_v2_over_ipv6",
            ip6_frame(255, IPPROTO_VRRP, &m),
            dropped(Counter::VersionErr),
        );
    }
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        set(&mut m, 0, 0x32);
        reseal(&mut m, pseudo4);
        add(
            "drop_type_not_advertisement",
            mcast4_frame(&m, 255),
            dropped(Counter::InvalidTypeRcvd),
        );
    }
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        m.truncate(8);
        set(&mut m, 3, 0);
        reseal(&mut m, pseudo4);
        add(
            "drop_address_count_zero",
            mcast4_frame(&m, 255),
            dropped(Counter::AddrListErr),
        );
    }
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        flip(&mut m, 7, 0x01);
        add(
            "drop_bad_checksum",
            mcast4_frame(&m, 255),
            dropped(Counter::ChecksumErr),
        );
        let mut m = mcast6(&v3_advert6());
        reseal(&mut m, None);
        add(
            "drop_v3_ipv6_checksum_without_pseudo_header",
            ip6_frame(255, IPPROTO_VRRP, &m),
            dropped(Counter::ChecksumErr),
        );
    }
    {
        let mut m = mcast4(&v2_advert(200, 1, pass));
        set(&mut m, 4, 3);
        reseal(&mut m, None);
        add(
            "drop_invalid_auth_type",
            mcast4_frame(&m, 255),
            dropped(Counter::InvalidAuthtype),
        );
    }
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        set(&mut m, 4, 0xf0);
        set(&mut m, 5, 0);
        reseal(&mut m, pseudo4);
        add(
            "drop_v3_interval_zero",
            mcast4_frame(&m, 255),
            dropped(Counter::AdvertIntervalErr),
        );
    }

    // ---- local policy ----
    add(
        "not_ours_vrid_not_configured",
        mcast4_frame(&mcast4(&v3_advert4(99)), 255),
        Verdict::NotOurs,
    );
    {
        // VRID 33 is configured for IPv4 only.
        let a = Advert::v3(VRID_V2, 100, vec![v6(VIP_V6)], 100);
        add(
            "not_ours_vrid_configured_for_other_family",
            ip6_frame(255, IPPROTO_VRRP, &mcast6(&a)),
            Verdict::NotOurs,
        );
        let a = Advert::v3(99, 100, vec![v6(VIP_V6)], 100);
        add(
            "not_ours_ipv6_vrid_not_configured",
            ip6_frame(255, IPPROTO_VRRP, &mcast6(&a)),
            Verdict::NotOurs,
        );
    }
    {
        let m = msg(
            &v3_advert4(VRID_UNICAST),
            v4(STRANGER),
            v4(LOCAL_UNICAST),
            V3Ipv4Checksum::PseudoHeader,
        );
        add(
            "drop_unknown_unicast_peer",
            ip4_frame(STRANGER, LOCAL_UNICAST, 255, IPPROTO_VRRP, &m),
            dropped(Counter::UnknownPeer),
        );
        let m = msg(
            &v3_advert4(VRID_UNICAST),
            v4(PEER_TTL_255),
            v4(LOCAL_UNICAST),
            V3Ipv4Checksum::PseudoHeader,
        );
        add(
            "drop_unicast_peer_requiring_ttl_255",
            ip4_frame(PEER_TTL_255, LOCAL_UNICAST, 64, IPPROTO_VRRP, &m),
            dropped(Counter::IpTtlErr),
        );
    }
    {
        // keepalived's per-peer `min_ttl` / `max_ttl`: both ends are inside the range.
        let m = msg(
            &v3_advert4(VRID_UNICAST),
            v4(PEER_TTL_RANGE),
            v4(LOCAL_UNICAST),
            V3Ipv4Checksum::PseudoHeader,
        );
        let frame = |ttl| ip4_frame(PEER_TTL_RANGE, LOCAL_UNICAST, ttl, IPPROTO_VRRP, &m);
        add("accept_unicast_peer_ttl_at_min_ttl", frame(64), accept());
        add("accept_unicast_peer_ttl_at_max_ttl", frame(128), accept());
        add(
            "drop_unicast_peer_ttl_below_min_ttl",
            frame(63),
            dropped(Counter::IpTtlErr),
        );
        add(
            "drop_unicast_peer_ttl_above_max_ttl",
            frame(129),
            dropped(Counter::IpTtlErr),
        );
        add(
            "drop_unicast_peer_ttl_255_above_max_ttl",
            frame(255),
            dropped(Counter::IpTtlErr),
        );
    }
    add(
        "drop_ttl_not_255",
        mcast4_frame(&mcast4(&v3_advert4(VRID_V3)), 254),
        dropped(Counter::IpTtlErr),
    );
    add(
        "drop_ipv6_hop_limit_not_255",
        ip6_frame(1, IPPROTO_VRRP, &mcast6(&v3_advert6())),
        dropped(Counter::IpTtlErr),
    );
    add(
        "drop_version_mismatch",
        mcast4_frame(&mcast4(&v3_advert4(VRID_V2)), 255),
        dropped(Counter::VersionErr),
    );
    add(
        "drop_advert_for_owned_vrid",
        mcast4_frame(&mcast4(&v3_advert4(VRID_OWNER)), 255),
        dropped(Counter::OwnerDrop),
    );
    add(
        "drop_authtype_mismatch",
        mcast4_frame(&mcast4(&v2_advert(200, 1, Auth::None)), 255),
        dropped(Counter::AuthtypeMismatch),
    );
    add(
        "drop_ah_authtype_mismatch",
        mcast4_frame(&mcast4(&v2_advert(200, 1, Auth::Ah([0; 8]))), 255),
        dropped(Counter::AuthtypeMismatch),
    );
    add(
        "drop_auth_failure",
        mcast4_frame(&mcast4(&v2_advert(200, 1, Auth::pass("passw0rd"))), 255),
        dropped(Counter::AuthFailure),
    );
    add(
        "drop_v2_interval_mismatch",
        mcast4_frame(&mcast4(&v2_advert(200, 3, pass)), 255),
        dropped(Counter::AdvertIntervalErr),
    );

    // ---- order of checks where two rules fail ----
    {
        let mut m = mcast4(&v3_advert4(VRID_V3));
        flip(&mut m, 7, 0x80);
        add(
            "order_checksum_before_ttl",
            mcast4_frame(&m, 64),
            dropped(Counter::ChecksumErr),
        );
    }
    add(
        "not_ours_whatever_else_is_wrong",
        mcast4_frame(&mcast4(&v3_advert4(99)), 64),
        Verdict::NotOurs,
    );
    add(
        "order_ttl_before_version",
        mcast4_frame(&mcast4(&v3_advert4(VRID_V2)), 64),
        dropped(Counter::IpTtlErr),
    );
    add(
        "order_authtype_before_interval",
        mcast4_frame(&mcast4(&v2_advert(200, 3, Auth::None)), 255),
        dropped(Counter::AuthtypeMismatch),
    );
    t
}

//! Property tests of `xvrrp::packet`: round trips, and no panics on arbitrary or damaged input.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use xvrrp::packet::checksum;
use xvrrp::packet::testvectors;
use xvrrp::packet::*;

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)))
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        any::<[u8; 8]>().prop_map(Auth::Pass),
        any::<[u8; 8]>().prop_map(Auth::Ah),
    ]
}

fn form() -> impl Strategy<Value = V3Ipv4Checksum> {
    prop_oneof![
        Just(V3Ipv4Checksum::PseudoHeader),
        Just(V3Ipv4Checksum::Rfc9568)
    ]
}

/// A v2 advert with its (IPv4) source and destination.
fn v2_case() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    (
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(v4(), 1..=40),
        any::<u8>(),
        auth(),
        v4(),
        v4(),
    )
        .prop_map(|(vrid, prio, addrs, secs, auth, src, dst)| {
            (Advert::v2(vrid, prio, addrs, secs, auth), src, dst)
        })
}

/// A v3 advert of either family with its source and destination.
fn v3_case() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    let family = prop_oneof![
        (prop::collection::vec(v4(), 1..=40), v4(), v4()),
        (prop::collection::vec(v6(), 1..=20), v6(), v6()),
    ];
    (any::<u8>(), any::<u8>(), 1..=4095u16, family)
        .prop_map(|(vrid, prio, cs, (addrs, s, d))| (Advert::v3(vrid, prio, addrs, cs), s, d))
}

fn any_case() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
    prop_oneof![v2_case(), v3_case()]
}

fn tx(src: IpAddr, dst: IpAddr, ttl: u8, form: V3Ipv4Checksum) -> TxMeta {
    let mut m = TxMeta::new(src, dst);
    m.ttl = ttl;
    m.v3_ipv4_checksum = form;
    m
}

/// Whether the IPv4 pseudo-header sum is a one's complement zero, in which case both v3/IPv4
/// checksum forms coincide and decode reports the pseudo-header form.
fn pseudo_is_zero(src: &IpAddr, dst: &IpAddr, len: usize) -> bool {
    let sum = checksum::pseudo_header_sum(src, dst, len).unwrap();
    matches!(checksum::fold(sum), 0 | 0xffff)
}

fn expected_form(
    advert: &Advert,
    src: &IpAddr,
    dst: &IpAddr,
    form: V3Ipv4Checksum,
) -> ChecksumForm {
    match (advert.version(), src, form) {
        (Version::V2, ..) => ChecksumForm::V2,
        (Version::V3, IpAddr::V4(_), V3Ipv4Checksum::Rfc9568)
            if !pseudo_is_zero(src, dst, advert.encoded_len()) =>
        {
            ChecksumForm::Rfc9568
        }
        _ => ChecksumForm::PseudoHeader,
    }
}

/// A valid frame, with what it carries.
fn frame_case() -> impl Strategy<Value = (Vec<u8>, Advert, IpMeta, V3Ipv4Checksum)> {
    (
        any_case(),
        any::<u8>(),
        form(),
        prop::option::of(0..4096u16),
    )
        .prop_map(|((advert, src, dst), ttl, form, vid)| {
            let m = tx(src, dst, ttl, form);
            let mut eth = EthParams::virtual_router(advert.vrid, &dst);
            eth.vlan = vid.map(VlanTag::new);
            let frame = build_frame(&advert, &m, &eth).unwrap();
            (
                frame,
                advert,
                IpMeta {
                    src,
                    dst,
                    ttl_or_hop_limit: ttl,
                },
                form,
            )
        })
}

proptest! {
    #[test]
    fn roundtrip_v2_ipv4((advert, src, dst) in v2_case()) {
        let bytes = encode_vrrp(&advert, &TxMeta::new(src, dst)).unwrap();
        prop_assert_eq!(bytes.len(), advert.encoded_len());
        let rx = decode_vrrp(&bytes, &IpMeta { src, dst, ttl_or_hop_limit: 255 }).unwrap();
        prop_assert_eq!(rx.advert, advert);
        prop_assert_eq!(rx.checksum, ChecksumForm::V2);
    }

    #[test]
    fn roundtrip_v3_both_families_both_forms((advert, src, dst) in v3_case(), form in form()) {
        let bytes = encode_vrrp(&advert, &tx(src, dst, 255, form)).unwrap();
        let rx = decode_vrrp(&bytes, &IpMeta { src, dst, ttl_or_hop_limit: 255 }).unwrap();
        prop_assert_eq!(rx.checksum, expected_form(&advert, &src, &dst, form));
        prop_assert_eq!(rx.advert, advert);
    }

    #[test]
    fn roundtrip_ip_packets((advert, src, dst) in any_case(), ttl in any::<u8>(), form in form()) {
        let pkt = build_ip_packet(&advert, &tx(src, dst, ttl, form)).unwrap();
        let rx = match src {
            IpAddr::V4(_) => decode_ipv4_packet(&pkt).unwrap(),
            IpAddr::V6(_) => decode_ipv6_packet(&pkt).unwrap(),
        };
        prop_assert_eq!(rx.meta, IpMeta { src, dst, ttl_or_hop_limit: ttl });
        prop_assert_eq!(rx.advert, advert);
    }

    #[test]
    fn roundtrip_frames((frame, advert, meta, form) in frame_case()) {
        let f = decode_frame(&frame).unwrap();
        prop_assert_eq!(f.packet.meta, meta);
        prop_assert_eq!(f.packet.checksum, expected_form(&advert, &meta.src, &meta.dst, form));
        prop_assert_eq!(f.packet.advert, advert);
    }

    #[test]
    fn random_bytes_never_panic_any_entry_point(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        src in prop_oneof![v4(), v6()],
        dst in prop_oneof![v4(), v6()],
        ttl in any::<u8>(),
    ) {
        let meta = IpMeta { src, dst, ttl_or_hop_limit: ttl };
        let policies = testvectors::policies();
        let _ = decode_vrrp(&bytes, &meta);
        let _ = receive_vrrp(&bytes, &meta, &policies);
        let _ = decode_ipv4_packet(&bytes);
        let _ = decode_ipv4_packet_with(&bytes, DecodeOptions { verify_ipv4_header_checksum: false });
        let _ = decode_ipv6_packet(&bytes);
        let _ = decode_frame(&bytes);
        let _ = decode_frame_with(&bytes, DecodeOptions { verify_ipv4_header_checksum: false });
        let v = verdict(&bytes, &policies);
        // Every verdict but "not ours" (counted for the interface) counts per peer.
        prop_assert!(v == Verdict::NotOurs || !v.counters().is_empty());
    }

    #[test]
    fn random_vrrp_behind_valid_headers_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..120),
        version_type in any::<u8>(),
        count in any::<u8>(),
        v6 in any::<bool>(),
    ) {
        // Random VRRP messages with a plausible first byte and count behind valid IP headers,
        // to reach deeper than uniformly random bytes do.
        let mut msg = vec![version_type, 51, 100, count];
        msg.extend_from_slice(&body);
        let frame = if v6 {
            let pkt = wrap_ipv6(testvectors::SRC_V6, VRRP_GROUP_V6, 255, 0, IPPROTO_VRRP, &msg).unwrap();
            let eth = EthParams::virtual_router(51, &IpAddr::V6(VRRP_GROUP_V6));
            wrap_ethernet(&eth, 0x86dd, &pkt).unwrap()
        } else {
            let pkt = wrap_ipv4(testvectors::SRC_V4, VRRP_GROUP_V4, 255, 0, IPPROTO_VRRP, &msg).unwrap();
            let eth = EthParams::virtual_router(51, &IpAddr::V4(VRRP_GROUP_V4));
            wrap_ethernet(&eth, 0x0800, &pkt).unwrap()
        };
        let _ = decode_frame(&frame);
        let _ = verdict(&frame, &testvectors::policies());
    }

    #[test]
    fn single_bit_flip_never_panics_and_never_changes_the_advert(
        (frame, advert, _meta, _form) in frame_case(),
        bit in any::<prop::sample::Index>(),
    ) {
        let original = decode_frame(&frame).unwrap();
        let mut damaged = frame.clone();
        let i = bit.index(damaged.len() * 8);
        damaged[i / 8] ^= 1 << (i % 8);
        let _ = verdict(&damaged, &testvectors::policies());
        if let Ok(f) = decode_frame(&damaged) {
            // The VRRP message is covered by its checksum, and the IPv4 addresses by the header
            // checksum, so a flip that still decodes must have hit something else (MACs, VLAN
            // tag, padding, IPv6 traffic class / flow label / hop limit...). The exception is
            // accepting both v3/IPv4 checksum forms: a flip can move a message from one form to
            // the other when the pseudo-header sum happens to equal the flipped bit's weight.
            if f.packet.checksum == original.packet.checksum {
                prop_assert_eq!(&f.packet.advert, &advert);
            }
        }
    }

    #[test]
    fn truncation_is_packet_len_err_or_harmless(
        (frame, advert, _meta, _form) in frame_case(),
        cut in any::<prop::sample::Index>(),
    ) {
        let len = cut.index(frame.len());
        match decode_frame(&frame[..len]) {
            // Only Ethernet padding was cut.
            Ok(f) => prop_assert_eq!(f.packet.advert, advert),
            Err(e) => prop_assert_eq!(e.counter(), Counter::PacketLenErr, "{:?}", e),
        }
    }

    #[test]
    fn encode_never_panics(
        vrid in any::<u8>(),
        prio in any::<u8>(),
        addrs in prop::collection::vec(prop_oneof![v4(), v6()], 0..4),
        interval in any::<u16>(),
        src in prop_oneof![v4(), v6()],
        dst in prop_oneof![v4(), v6()],
        secs in any::<u8>(),
        auth in auth(),
        form in form(),
    ) {
        let m = tx(src, dst, 255, form);
        for a in [Advert::v3(vrid, prio, addrs.clone(), interval), Advert::v2(vrid, prio, addrs.clone(), secs, auth)] {
            // Whatever encodes must decode to the same advert.
            if let Ok(bytes) = encode_vrrp(&a, &m) {
                let rx = decode_vrrp(&bytes, &IpMeta { src, dst, ttl_or_hop_limit: 255 }).unwrap();
                prop_assert_eq!(rx.advert, a.clone());
            }
            let _ = build_frame(&a, &m, &EthParams::virtual_router(vrid, &dst));
        }
    }
}

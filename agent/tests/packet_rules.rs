//! Rule-by-rule tests of `xvrrp::packet`, hand-derived byte vectors, and the shared test table.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvrrp::packet::testvectors;
use xvrrp::packet::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn meta(src: &str, dst: &str, ttl: u8) -> IpMeta {
    IpMeta {
        src: ip(src),
        dst: ip(dst),
        ttl_or_hop_limit: ttl,
    }
}

fn tx(src: &str, dst: &str) -> TxMeta {
    TxMeta::new(ip(src), ip(dst))
}

fn tx_form(src: &str, dst: &str, form: V3Ipv4Checksum) -> TxMeta {
    let mut m = tx(src, dst);
    m.v3_ipv4_checksum = form;
    m
}

/// VRRPv2 advert like keepalived's: VRID 33, priority 200, one VIP 192.168.200.16, PASS
/// "password", 1 s. Checksum derived by hand:
/// words 2121 c801 0101 0000 c0a8 c810 7061 7373 776f 7264 sum to 0x44082,
/// folded 0x4086, complement 0xbf79.
const V2_KEEPALIVED: [u8; 20] = [
    0x21, 0x21, 0xc8, 0x01, 0x01, 0x01, 0xbf, 0x79, 0xc0, 0xa8, 0xc8, 0x10, b'p', b'a', b's', b's',
    b'w', b'o', b'r', b'd',
];

fn v2_keepalived_advert() -> Advert {
    Advert::v2(
        33,
        200,
        vec![ip("192.168.200.16")],
        1,
        Auth::pass("password"),
    )
}

fn v3_v4_advert() -> Advert {
    Advert::v3(1, 100, vec![ip("10.0.0.1")], 100)
}

fn v3_v6_advert() -> Advert {
    Advert::v3(1, 100, vec![ip("fe80::1")], 100)
}

fn set_checksum(m: &mut [u8], ck: u16) {
    m[6..8].copy_from_slice(&ck.to_be_bytes());
}

/// Recomputes a message-only checksum after an edit (v2 form / RFC 9568 form).
fn reseal_plain(m: &mut [u8]) {
    set_checksum(m, 0);
    let ck = checksum::internet_checksum(m);
    set_checksum(m, ck);
}

/// Recomputes a pseudo-header checksum after an edit.
fn reseal_pseudo(m: &mut [u8], src: &str, dst: &str) {
    set_checksum(m, 0);
    let sum = checksum::pseudo_header_sum(&ip(src), &ip(dst), m.len()).unwrap();
    let ck = checksum::compute(sum, m);
    set_checksum(m, ck);
}

// ---------------------------------------------------------------- checksums and vectors

#[test]
fn v2_known_good_vector_keepalived_style() {
    let m = tx("192.168.200.2", "224.0.0.18");
    assert_eq!(
        encode_vrrp(&v2_keepalived_advert(), &m).unwrap(),
        V2_KEEPALIVED
    );
    let rx = decode_vrrp(&V2_KEEPALIVED, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(rx.advert, v2_keepalived_advert());
    assert_eq!(rx.checksum, ChecksumForm::V2);
}

#[test]
fn v2_checksum_covers_vrrp_message_only() {
    let a = v2_keepalived_advert();
    let one = encode_vrrp(&a, &tx("192.168.200.2", "224.0.0.18")).unwrap();
    let two = encode_vrrp(&a, &tx("10.9.9.9", "10.1.1.1")).unwrap();
    assert_eq!(one, two);
    assert_eq!(checksum::internet_checksum(&one), 0);
    // Any addresses in the IP header verify.
    assert!(decode_vrrp(&one, &meta("1.2.3.4", "5.6.7.8", 255)).is_ok());
}

#[test]
fn v3_ipv4_pseudo_header_checksum_vector() {
    // Computed independently (Python) over src 10.0.0.2, dst 224.0.0.18, 0, 112, length 12.
    let bytes = encode_vrrp(&v3_v4_advert(), &tx("10.0.0.2", "224.0.0.18")).unwrap();
    assert_eq!(
        bytes,
        [0x31, 1, 100, 1, 0x00, 0x64, 0x76, 0x07, 10, 0, 0, 1]
    );
}

#[test]
fn v3_ipv4_default_tx_form_is_pseudo_header() {
    assert_eq!(V3Ipv4Checksum::default(), V3Ipv4Checksum::PseudoHeader);
    assert_eq!(
        tx("10.0.0.2", "224.0.0.18").v3_ipv4_checksum,
        V3Ipv4Checksum::PseudoHeader
    );
}

#[test]
fn v3_ipv4_rfc9568_checksum_vector() {
    let m = tx_form("10.0.0.2", "224.0.0.18", V3Ipv4Checksum::Rfc9568);
    let bytes = encode_vrrp(&v3_v4_advert(), &m).unwrap();
    assert_eq!(
        bytes,
        [0x31, 1, 100, 1, 0x00, 0x64, 0x60, 0x98, 10, 0, 0, 1]
    );
}

#[test]
fn v3_ipv4_accepts_rfc9568_checksum_form() {
    let m = tx_form("10.0.0.2", "224.0.0.18", V3Ipv4Checksum::Rfc9568);
    let bytes = encode_vrrp(&v3_v4_advert(), &m).unwrap();
    let rx = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(rx.checksum, ChecksumForm::Rfc9568);
    assert_eq!(rx.advert, v3_v4_advert());
}

#[test]
fn v3_ipv4_accepts_pseudo_header_checksum_form() {
    let bytes = encode_vrrp(&v3_v4_advert(), &tx("10.0.0.2", "224.0.0.18")).unwrap();
    let rx = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(rx.checksum, ChecksumForm::PseudoHeader);
}

#[test]
fn v3_pseudo_header_uses_actual_unicast_destination() {
    let bytes = encode_vrrp(&v3_v4_advert(), &tx("10.0.0.2", "10.0.0.3")).unwrap();
    assert_eq!(&bytes[6..8], &[0x4c, 0x17]); // independently computed
    let rx = decode_vrrp(&bytes, &meta("10.0.0.2", "10.0.0.3", 64)).unwrap();
    assert_eq!(rx.checksum, ChecksumForm::PseudoHeader);
    // The same bytes checked against the multicast group do not verify.
    assert!(matches!(
        decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)),
        Err(DecodeError::Checksum { received: 0x4c17 })
    ));
}

#[test]
fn v3_ipv6_checksum_uses_ipv6_pseudo_header() {
    let bytes = encode_vrrp(&v3_v6_advert(), &tx("fe80::2", "ff02::12")).unwrap();
    assert_eq!(&bytes[6..8], &[0x6d, 0xf7]); // independently computed
    let rx = decode_vrrp(&bytes, &meta("fe80::2", "ff02::12", 255)).unwrap();
    assert_eq!(rx.checksum, ChecksumForm::PseudoHeader);
    assert_eq!(rx.advert, v3_v6_advert());
}

#[test]
fn v3_ipv6_rejects_checksum_without_pseudo_header() {
    // The RFC 9568 form exists only for IPv4; the setting is ignored for IPv6 on transmit.
    let m = tx_form("fe80::2", "ff02::12", V3Ipv4Checksum::Rfc9568);
    let bytes = encode_vrrp(&v3_v6_advert(), &m).unwrap();
    assert_eq!(&bytes[6..8], &[0x6d, 0xf7]);
    let mut plain = bytes.clone();
    reseal_plain(&mut plain);
    assert!(matches!(
        decode_vrrp(&plain, &meta("fe80::2", "ff02::12", 255)),
        Err(DecodeError::Checksum { .. })
    ));
}

#[test]
fn checksum_error_on_any_corruption() {
    let mut bytes = V2_KEEPALIVED;
    bytes[2] = 201;
    let err = decode_vrrp(&bytes, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap_err();
    assert_eq!(err, DecodeError::Checksum { received: 0xbf79 });
    assert_eq!(err.counter(), Counter::ChecksumErr);
}

#[test]
fn ipv4_packet_builder_header_vector() {
    let pkt =
        build_ipv4_packet(&v2_keepalived_advert(), &tx("192.168.200.2", "224.0.0.18")).unwrap();
    // Header checksum computed independently (Python).
    let header = [
        0x45, 0xc0, 0x00, 0x28, 0, 0, 0, 0, 255, 112, 0x51, 0xe8, 192, 168, 200, 2, 224, 0, 0, 18,
    ];
    assert_eq!(&pkt[..20], &header);
    assert_eq!(&pkt[20..], &V2_KEEPALIVED);
    let rx = decode_ipv4_packet(&pkt).unwrap();
    assert_eq!(rx.meta, meta("192.168.200.2", "224.0.0.18", 255));
}

#[test]
fn ipv4_packet_builder_ttl_is_a_parameter() {
    let mut m = tx("192.168.200.2", "224.0.0.18");
    m.ttl = 64;
    let pkt = build_ipv4_packet(&v2_keepalived_advert(), &m).unwrap();
    assert_eq!(pkt[8], 64);
    assert_eq!(decode_ipv4_packet(&pkt).unwrap().meta.ttl_or_hop_limit, 64);
}

#[test]
fn ipv4_header_checksum_check_can_be_disabled() {
    let mut pkt =
        build_ipv4_packet(&v2_keepalived_advert(), &tx("192.168.200.2", "224.0.0.18")).unwrap();
    pkt[10] ^= 0xff;
    assert_eq!(
        decode_ipv4_packet(&pkt),
        Err(DecodeError::IpHeader(IpHeaderError::Checksum))
    );
    let opts = DecodeOptions {
        verify_ipv4_header_checksum: false,
    };
    assert!(decode_ipv4_packet_with(&pkt, opts).is_ok());
}

#[test]
fn builders_refuse_the_wrong_family() {
    let m6 = tx("fe80::2", "ff02::12");
    assert_eq!(
        build_ipv4_packet(&v3_v6_advert(), &m6),
        Err(EncodeError::WrongFamily(Family::V4))
    );
    let m4 = tx("10.0.0.2", "224.0.0.18");
    assert_eq!(
        build_ipv6_packet(&v3_v4_advert(), &m4),
        Err(EncodeError::WrongFamily(Family::V6))
    );
}

// ---------------------------------------------------------------- authentication

#[test]
fn pass_auth_compares_only_first_8_bytes() {
    assert_eq!(pass_data("password123"), *b"password");
    let policy = RxPolicy::v2(33, RxAuth::pass("password123"), 1);
    let rx = decode_vrrp(&V2_KEEPALIVED, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(check(&rx, &policy), Ok(()));
}

#[test]
fn pass_auth_is_zero_padded() {
    assert_eq!(pass_data("abc"), [b'a', b'b', b'c', 0, 0, 0, 0, 0]);
    assert_eq!(pass_data(""), [0; 8]);
    let a = Advert::v2(1, 100, vec![ip("10.0.0.1")], 1, Auth::pass("abc"));
    let bytes = encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")).unwrap();
    assert_eq!(&bytes[12..], &[b'a', b'b', b'c', 0, 0, 0, 0, 0]);
}

#[test]
fn pass_auth_mismatch_is_auth_failure() {
    let policy = RxPolicy::v2(33, RxAuth::pass("passwore"), 1);
    let rx = decode_vrrp(&V2_KEEPALIVED, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap();
    let err = check(&rx, &policy).unwrap_err();
    assert_eq!(err, CheckError::AuthFailure);
    assert_eq!(err.counter(), Counter::AuthFailure);
}

#[test]
fn v2_auth_none_sends_zero_data_and_ignores_it_on_receive() {
    let a = Advert::v2(1, 100, vec![ip("10.0.0.1")], 1, Auth::None);
    let mut bytes = encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")).unwrap();
    assert_eq!(&bytes[12..], &[0; 8]);
    bytes[12..].copy_from_slice(b"garbage!");
    reseal_plain(&mut bytes);
    let rx = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(rx.advert, a);
    assert_eq!(check(&rx, &RxPolicy::v2(1, RxAuth::None, 1)), Ok(()));
}

#[test]
fn auth_type_must_match_configured() {
    let rx = decode_vrrp(&V2_KEEPALIVED, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap();
    let err = check(&rx, &RxPolicy::v2(33, RxAuth::None, 1)).unwrap_err();
    assert_eq!(
        err,
        CheckError::AuthTypeMismatch {
            received: 1,
            expected: 0
        }
    );
    assert_eq!(err.counter(), Counter::AuthtypeMismatch);
}

#[test]
fn ah_auth_is_decoded_raw_and_never_matches_a_policy() {
    let a = Advert::v2(33, 100, vec![ip("10.0.0.1")], 1, Auth::Ah(*b"12345678"));
    let bytes = encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")).unwrap();
    let rx = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(rx.advert.auth(), Some(&Auth::Ah(*b"12345678")));
    let err = check(&rx, &RxPolicy::v2(33, RxAuth::pass("12345678"), 1)).unwrap_err();
    assert_eq!(err.counter(), Counter::AuthtypeMismatch);
}

#[test]
fn invalid_auth_type_rejected() {
    let mut bytes = V2_KEEPALIVED;
    bytes[4] = 3;
    reseal_plain(&mut bytes);
    let err = decode_vrrp(&bytes, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap_err();
    assert_eq!(err, DecodeError::InvalidAuthType(3));
    assert_eq!(err.counter(), Counter::InvalidAuthtype);
}

// ---------------------------------------------------------------- intervals

#[test]
fn v2_interval_is_seconds_in_microseconds() {
    let a = Advert::v2(1, 100, vec![ip("10.0.0.1")], 3, Auth::None);
    assert_eq!(a.interval_us(), 3_000_000);
    assert_eq!(
        Advert::v2(1, 1, vec![], 255, Auth::None).interval_us(),
        255_000_000
    );
}

#[test]
fn v3_interval_is_centiseconds_in_microseconds() {
    assert_eq!(v3_v4_advert().interval_us(), 1_000_000);
    assert_eq!(Advert::v3(1, 1, vec![], 4095).interval_us(), 40_950_000);
    assert_eq!(Advert::v3(1, 1, vec![], 1).interval_us(), 10_000);
}

#[test]
fn v3_reserved_bits_ignored_on_receive_and_zero_on_send() {
    let bytes = encode_vrrp(&v3_v4_advert(), &tx("10.0.0.2", "224.0.0.18")).unwrap();
    assert_eq!(bytes[4] & 0xf0, 0);
    let mut edited = bytes.clone();
    edited[4] |= 0xf0;
    reseal_pseudo(&mut edited, "10.0.0.2", "224.0.0.18");
    let rx = decode_vrrp(&edited, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
    assert_eq!(rx.advert, v3_v4_advert());
}

#[test]
fn v3_interval_zero_rejected() {
    let mut bytes = encode_vrrp(&v3_v4_advert(), &tx("10.0.0.2", "224.0.0.18")).unwrap();
    bytes[4] = 0x10; // reserved bit set, interval 0
    bytes[5] = 0;
    reseal_pseudo(&mut bytes, "10.0.0.2", "224.0.0.18");
    let err = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap_err();
    assert_eq!(err, DecodeError::V3IntervalZero);
    assert_eq!(err.counter(), Counter::AdvertIntervalErr);
}

#[test]
fn v3_interval_out_of_range_not_encodable() {
    let m = tx("10.0.0.2", "224.0.0.18");
    for cs in [0, 4096, u16::MAX] {
        let a = Advert::v3(1, 100, vec![ip("10.0.0.1")], cs);
        assert_eq!(
            encode_vrrp(&a, &m),
            Err(EncodeError::V3IntervalOutOfRange(cs))
        );
    }
    assert!(encode_vrrp(&Advert::v3(1, 100, vec![ip("10.0.0.1")], 4095), &m).is_ok());
}

#[test]
fn v2_interval_must_equal_local() {
    let rx = decode_vrrp(&V2_KEEPALIVED, &meta("192.168.200.2", "224.0.0.18", 255)).unwrap();
    let err = check(&rx, &RxPolicy::v2(33, RxAuth::pass("password"), 2)).unwrap_err();
    assert_eq!(
        err,
        CheckError::AdvertIntervalMismatch {
            received_secs: 1,
            expected_secs: 2
        }
    );
    assert_eq!(err.counter(), Counter::AdvertIntervalErr);
}

#[test]
fn v3_interval_not_compared_with_local() {
    // v3 backups adopt the master's interval: any non-zero interval passes the checks.
    for cs in [1, 100, 4095] {
        let a = Advert::v3(51, 100, vec![ip("10.0.0.1")], cs);
        let bytes = encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")).unwrap();
        let rx = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
        assert_eq!(check(&rx, &RxPolicy::v3(51, Family::V4)), Ok(()));
    }
}

// ---------------------------------------------------------------- structure

#[test]
fn truncated_header_rejected() {
    for len in 0..8 {
        let err =
            decode_vrrp(&V2_KEEPALIVED[..len], &meta("10.0.0.2", "224.0.0.18", 255)).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { .. }),
            "{len}: {err:?}"
        );
        assert_eq!(err.counter(), Counter::PacketLenErr);
    }
}

#[test]
fn length_must_match_address_count() {
    let m = meta("192.168.200.2", "224.0.0.18", 255);
    // One byte short and one byte long.
    let err = decode_vrrp(&V2_KEEPALIVED[..19], &m).unwrap_err();
    assert_eq!(
        err,
        DecodeError::LengthMismatch {
            count: 1,
            expected: 20,
            actual: 19
        }
    );
    let mut long = V2_KEEPALIVED.to_vec();
    long.push(0);
    let err = decode_vrrp(&long, &m).unwrap_err();
    assert_eq!(
        err,
        DecodeError::LengthMismatch {
            count: 1,
            expected: 20,
            actual: 21
        }
    );
    assert_eq!(err.counter(), Counter::PacketLenErr);
    // Count says 2.
    let mut two = V2_KEEPALIVED;
    two[3] = 2;
    reseal_plain(&mut two);
    assert!(matches!(
        decode_vrrp(&two, &m),
        Err(DecodeError::LengthMismatch { count: 2, .. })
    ));
}

#[test]
fn v3_address_count_zero_rejected_but_v2_without_addresses_accepted() {
    // RFC 9568 5.2.5: a VRRPv3 advert carries at least one address.
    let mut v3 = vec![0x31, 1, 100, 0, 0, 100, 0, 0];
    reseal_pseudo(&mut v3, "10.0.0.2", "224.0.0.18");
    let err = decode_vrrp(&v3, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap_err();
    assert_eq!(err, DecodeError::AddressCountZero);
    assert_eq!(err.counter(), Counter::AddrListErr);
    let a = Advert::v3(1, 100, vec![], 100);
    assert_eq!(
        encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")),
        Err(EncodeError::NoAddresses)
    );
    // RFC 3768 has no such rule, and keepalived sends v2 adverts without addresses for an
    // instance without virtual_ipaddress (the DigitalOcean tutorial): they round-trip.
    let mut v2 = vec![0x21, 1, 100, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    reseal_plain(&mut v2);
    let rx = decode_vrrp(&v2, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap();
    assert!(rx.advert.addresses.is_empty());
    let a = Advert::v2(1, 100, vec![], 1, Auth::None);
    let bytes = encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")).unwrap();
    assert_eq!(bytes.len(), 16);
    assert_eq!(
        decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255))
            .unwrap()
            .advert,
        a
    );
}

#[test]
fn unknown_version_rejected() {
    for v in [0u8, 1, 4, 15] {
        let mut bytes = V2_KEEPALIVED;
        bytes[0] = (v << 4) | 1;
        reseal_plain(&mut bytes);
        let err = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap_err();
        assert_eq!(err, DecodeError::UnknownVersion(v));
        assert_eq!(err.counter(), Counter::VersionErr);
    }
}

#[test]
fn v2_over_ipv6_rejected() {
    let mut bytes = vec![0x21, 1, 100, 1, 0, 1, 0, 0];
    bytes.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    bytes.extend_from_slice(&[0; 8]);
    reseal_plain(&mut bytes);
    let err = decode_vrrp(&bytes, &meta("fe80::2", "ff02::12", 255)).unwrap_err();
    assert_eq!(err, DecodeError::V2OverIpv6);
    assert_eq!(err.counter(), Counter::VersionErr);
    let a = Advert::v2(1, 100, vec![ip("fe80::1")], 1, Auth::None);
    assert_eq!(
        encode_vrrp(&a, &tx("fe80::2", "ff02::12")),
        Err(EncodeError::V2OverIpv6)
    );
}

#[test]
fn wrong_type_rejected() {
    for t in [0u8, 2, 15] {
        let mut bytes = V2_KEEPALIVED;
        bytes[0] = 0x20 | t;
        reseal_plain(&mut bytes);
        let err = decode_vrrp(&bytes, &meta("10.0.0.2", "224.0.0.18", 255)).unwrap_err();
        assert_eq!(err, DecodeError::WrongType(t));
        assert_eq!(err.counter(), Counter::InvalidTypeRcvd);
    }
}

#[test]
fn address_families_must_agree() {
    let m = tx("10.0.0.2", "224.0.0.18");
    let mixed = Advert::v3(1, 100, vec![ip("10.0.0.1"), ip("fe80::1")], 100);
    assert_eq!(
        encode_vrrp(&mixed, &m),
        Err(EncodeError::AddressFamilyMismatch)
    );
    assert_eq!(
        encode_vrrp(&v3_v6_advert(), &m),
        Err(EncodeError::AddressFamilyMismatch)
    );
    assert_eq!(
        encode_vrrp(&v3_v4_advert(), &tx("10.0.0.2", "ff02::12")),
        Err(EncodeError::SrcDstFamilyMismatch)
    );
    let err = decode_vrrp(&V2_KEEPALIVED, &meta("10.0.0.2", "ff02::12", 255)).unwrap_err();
    assert_eq!(err, DecodeError::AddressFamilyMismatch);
    assert_eq!(err.counter(), Counter::IpHeaderErr);
}

#[test]
fn too_many_addresses_not_encodable() {
    let addrs: Vec<IpAddr> = (0..256u32).map(|i| IpAddr::V4(Ipv4Addr::from(i))).collect();
    let a = Advert::v3(1, 100, addrs, 100);
    assert_eq!(
        encode_vrrp(&a, &tx("10.0.0.2", "224.0.0.18")),
        Err(EncodeError::TooManyAddresses(256))
    );
}

#[test]
fn max_address_count_round_trips() {
    let addrs: Vec<IpAddr> = (0..255u128)
        .map(|i| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i)))
        .collect();
    let a = Advert::v3(7, 100, addrs, 100);
    let m = tx("fe80::2", "ff02::12");
    let frame = build_frame(&a, &m, &EthParams::virtual_router(7, &m.dst)).unwrap();
    assert_eq!(decode_frame(&frame).unwrap().packet.advert, a);
}

// ---------------------------------------------------------------- IP and link layer

#[test]
fn ipv4_ethernet_padding_ignored() {
    let m = tx("10.0.0.2", "224.0.0.18");
    let frame = build_frame(&v3_v4_advert(), &m, &EthParams::virtual_router(1, &m.dst)).unwrap();
    assert_eq!(frame.len(), 60); // 14 + 20 + 12 = 46, padded
    assert_eq!(&frame[..6], &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    assert_eq!(&frame[6..12], &[0x00, 0x00, 0x5e, 0x00, 0x01, 0x01]);
    let f = decode_frame(&frame).unwrap();
    assert_eq!(f.packet.advert, v3_v4_advert());
    assert_eq!(f.vlan, None);
}

#[test]
fn ipv4_fragments_rejected() {
    let mut pkt = build_ipv4_packet(&v3_v4_advert(), &tx("10.0.0.2", "224.0.0.18")).unwrap();
    pkt[6] = 0x20; // MF
    let opts = DecodeOptions {
        verify_ipv4_header_checksum: false,
    };
    assert_eq!(
        decode_ipv4_packet_with(&pkt, opts),
        Err(DecodeError::IpHeader(IpHeaderError::Fragment))
    );
    pkt[6] = 0x40; // DF alone is fine
    assert!(decode_ipv4_packet_with(&pkt, opts).is_ok());
}

#[test]
fn ipv4_non_vrrp_protocol_is_not_vrrp() {
    let mut pkt = build_ipv4_packet(&v3_v4_advert(), &tx("10.0.0.2", "224.0.0.18")).unwrap();
    pkt[9] = 51; // AH-wrapped adverts are not decoded either
    let err = decode_ipv4_packet(&pkt).unwrap_err();
    assert_eq!(err, DecodeError::NotVrrp(NotVrrp::Protocol(51)));
    assert_eq!(err.counter(), Counter::NotVrrp);
}

#[test]
fn ipv6_extension_headers_are_not_vrrp() {
    let mut msg = vec![112, 0, 1, 4, 0, 0, 0, 0];
    msg.extend(encode_vrrp(&v3_v6_advert(), &tx("fe80::2", "ff02::12")).unwrap());
    let pkt = wrap_ipv6(
        "fe80::2".parse().unwrap(),
        "ff02::12".parse().unwrap(),
        255,
        0,
        0,
        &msg,
    )
    .unwrap();
    assert_eq!(
        decode_ipv6_packet(&pkt),
        Err(DecodeError::NotVrrp(NotVrrp::Protocol(0)))
    );
}

#[test]
fn ipv6_hop_limit_reported() {
    let mut m = tx("fe80::2", "ff02::12");
    m.ttl = 7;
    let pkt = build_ipv6_packet(&v3_v6_advert(), &m).unwrap();
    assert_eq!(pkt[6], 112);
    let rx = decode_ipv6_packet(&pkt).unwrap();
    assert_eq!(rx.meta, meta("fe80::2", "ff02::12", 7));
}

#[test]
fn vlan_tag_round_trips() {
    let m = tx("fe80::2", "ff02::12");
    let tag = VlanTag {
        vid: 42,
        pcp: 5,
        dei: true,
    };
    let e = EthParams::virtual_router(1, &m.dst).with_vlan(tag);
    assert_eq!(&e.dst_mac, &[0x33, 0x33, 0, 0, 0, 0x12]);
    let frame = build_frame(&v3_v6_advert(), &m, &e).unwrap();
    assert_eq!(&frame[12..14], &[0x81, 0x00]);
    let f = decode_frame(&frame).unwrap();
    assert_eq!(f.vlan, Some(tag));
    assert_eq!(f.packet.advert, v3_v6_advert());
    let bad = EthParams::virtual_router(1, &m.dst).with_vlan(VlanTag::new(4096));
    assert!(matches!(
        build_frame(&v3_v6_advert(), &m, &bad),
        Err(EncodeError::VlanOutOfRange(_))
    ));
}

// ---------------------------------------------------------------- local policy

fn v3_rx(vrid: u8, src: &str, dst: &str, ttl: u8) -> Received {
    let a = Advert::v3(vrid, 100, vec![ip("10.0.0.100")], 100);
    let bytes = encode_vrrp(&a, &tx(src, dst)).unwrap();
    decode_vrrp(&bytes, &meta(src, dst, ttl)).unwrap()
}

#[test]
fn ttl_must_be_255_in_multicast_mode() {
    let rx = v3_rx(51, "10.0.0.2", "224.0.0.18", 254);
    let err = check(&rx, &RxPolicy::v3(51, Family::V4)).unwrap_err();
    assert_eq!(err, CheckError::Ttl { ttl: 254 });
    assert_eq!(err.counter(), Counter::IpTtlErr);
    let mut skip = RxPolicy::v3(51, Family::V4);
    skip.source = SourcePolicy::Multicast { ttl: TtlCheck::ANY };
    assert_eq!(check(&rx, &skip), Ok(()));
}

#[test]
fn ttl_check_skipped_for_unicast_peer_by_default() {
    let mut p = RxPolicy::v3(52, Family::V4);
    p.source = SourcePolicy::Unicast {
        peers: vec![UnicastPeer::new(ip("10.0.0.3"))],
    };
    assert_eq!(check(&v3_rx(52, "10.0.0.3", "10.0.0.1", 61), &p), Ok(()));
}

#[test]
fn ttl_check_is_per_unicast_peer() {
    let mut p = RxPolicy::v3(52, Family::V4);
    p.source = SourcePolicy::Unicast {
        peers: vec![
            UnicastPeer::new(ip("10.0.0.3")),
            UnicastPeer {
                addr: ip("10.0.0.4"),
                ttl: TtlCheck::REQUIRE_255,
            },
        ],
    };
    assert_eq!(check(&v3_rx(52, "10.0.0.3", "10.0.0.1", 64), &p), Ok(()));
    assert_eq!(
        check(&v3_rx(52, "10.0.0.4", "10.0.0.1", 64), &p),
        Err(CheckError::Ttl { ttl: 64 })
    );
    assert_eq!(check(&v3_rx(52, "10.0.0.4", "10.0.0.1", 255), &p), Ok(()));
}

#[test]
fn unicast_peer_min_ttl_and_max_ttl_bound_the_accepted_ttl() {
    // keepalived's `unicast_peer { ADDR min_ttl 10 max_ttl 64 }`: both ends inclusive.
    let mut p = RxPolicy::v3(52, Family::V4);
    p.source = SourcePolicy::Unicast {
        peers: vec![UnicastPeer {
            addr: ip("10.0.0.3"),
            ttl: TtlCheck { min: 10, max: 64 },
        }],
    };
    for ttl in [10, 11, 63, 64] {
        assert_eq!(
            check(&v3_rx(52, "10.0.0.3", "10.0.0.1", ttl), &p),
            Ok(()),
            "{ttl}"
        );
    }
    for ttl in [0, 9, 65, 255] {
        let err = check(&v3_rx(52, "10.0.0.3", "10.0.0.1", ttl), &p).unwrap_err();
        assert_eq!(err, CheckError::Ttl { ttl }, "{ttl}");
        assert_eq!(err.counter(), Counter::IpTtlErr);
    }
}

#[test]
fn unicast_mode_accepts_only_configured_peers() {
    let mut p = RxPolicy::v3(52, Family::V4);
    p.source = SourcePolicy::Unicast {
        peers: vec![UnicastPeer::new(ip("10.0.0.3"))],
    };
    let err = check(&v3_rx(52, "10.0.0.9", "10.0.0.1", 255), &p).unwrap_err();
    assert_eq!(
        err,
        CheckError::UnknownPeer {
            src: ip("10.0.0.9")
        }
    );
    assert_eq!(err.counter(), Counter::UnknownPeer);
}

#[test]
fn version_must_match_configured() {
    let rx = v3_rx(33, "10.0.0.2", "224.0.0.18", 255);
    let err = check(&rx, &RxPolicy::v2(33, RxAuth::None, 1)).unwrap_err();
    assert_eq!(
        err,
        CheckError::VersionMismatch {
            received: Version::V3,
            expected: Version::V2
        }
    );
    assert_eq!(err.counter(), Counter::VersionErr);
}

#[test]
fn vrid_must_be_configured() {
    let rx = v3_rx(9, "10.0.0.2", "224.0.0.18", 255);
    let err = check(&rx, &RxPolicy::v3(51, Family::V4)).unwrap_err();
    assert_eq!(err, CheckError::VridNotConfigured { vrid: 9 });
    assert_eq!(err.counter(), Counter::VridErr);
    assert_eq!(
        check_any(&rx, &[RxPolicy::v3(51, Family::V4)]),
        Err(CheckError::VridNotConfigured { vrid: 9 })
    );
}

#[test]
fn check_any_selects_by_vrid_and_family() {
    let policies = [
        RxPolicy::v3(51, Family::V6),
        RxPolicy::v2(51, RxAuth::None, 1),
        RxPolicy::v3(9, Family::V4),
    ];
    // A v3 IPv4 advert for 51 finds the v2 IPv4 policy, not the IPv6 one: version mismatch.
    let rx = v3_rx(51, "10.0.0.2", "224.0.0.18", 255);
    assert_eq!(
        check_any(&rx, &policies).unwrap_err().counter(),
        Counter::VersionErr
    );
    let rx = v3_rx(9, "10.0.0.2", "224.0.0.18", 255);
    assert_eq!(check_any(&rx, &policies).unwrap().vrid, 9);
}

#[test]
fn owner_drops_adverts_for_its_vrid() {
    let mut p = RxPolicy::v3(51, Family::V4);
    p.owner = true;
    let err = check(&v3_rx(51, "10.0.0.2", "224.0.0.18", 255), &p).unwrap_err();
    assert_eq!(err, CheckError::Owner { vrid: 51 });
    assert_eq!(err.counter(), Counter::OwnerDrop);
}

#[test]
fn accepted_priority_zero_counts_pri_zero_rcvd() {
    let a = Advert::v3(51, 0, vec![ip("10.0.0.100")], 100);
    let m = tx("10.0.0.2", "224.0.0.18");
    let frame = build_frame(&a, &m, &EthParams::virtual_router(51, &m.dst)).unwrap();
    let v = verdict(&frame, &[RxPolicy::v3(51, Family::V4)]);
    assert_eq!(
        v,
        Verdict::Accept {
            priority_zero: true
        }
    );
    assert_eq!(
        v.counters(),
        vec![Counter::AdvertRcvd, Counter::PriZeroRcvd]
    );
}

#[test]
fn receive_vrrp_runs_decode_then_checks() {
    let bytes = encode_vrrp(&v2_keepalived_advert(), &tx("192.168.200.2", "224.0.0.18")).unwrap();
    let policies = [RxPolicy::v2(33, RxAuth::pass("password"), 1)];
    assert!(receive_vrrp(&bytes, &meta("192.168.200.2", "224.0.0.18", 255), &policies).is_ok());
    let err = receive_vrrp(&bytes, &meta("192.168.200.2", "224.0.0.18", 1), &policies).unwrap_err();
    assert_eq!(err.counter(), Counter::IpTtlErr);
    let err = receive_vrrp(
        &bytes[..10],
        &meta("192.168.200.2", "224.0.0.18", 255),
        &policies,
    )
    .unwrap_err();
    assert_eq!(err.counter(), Counter::PacketLenErr);
}

// ---------------------------------------------------------------- the shared table

#[test]
fn test_vector_table_verdicts() {
    let policies = testvectors::policies();
    let mut failures = Vec::new();
    for case in testvectors::cases() {
        let got = verdict(&case.frame, &policies);
        if got != case.expected {
            let detail = receive_frame(&case.frame, &policies).err();
            failures.push(format!(
                "{}: got {got:?} ({detail:?}), want {:?}",
                case.name, case.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn test_vector_table_names_unique() {
    let cases = testvectors::cases();
    let names: HashSet<_> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len());
}

#[test]
fn test_vector_table_covers_every_counter() {
    let covered: HashSet<Counter> = testvectors::cases()
        .iter()
        .flat_map(|c| c.expected.counters())
        .collect();
    for c in Counter::ALL {
        // `vrid_err` is kept for its index but no frame counts it any more: adverts of a VRID
        // that is not configured are not ours (passed, counted for the interface).
        if c == Counter::VridErr {
            assert!(!covered.contains(&c), "a test vector still counts vrid_err");
            continue;
        }
        assert!(covered.contains(&c), "no test vector counts {c}");
    }
}

#[test]
fn test_vector_table_agrees_with_raw_socket_path() {
    // For untagged IPv4 frames, decoding the IP packet directly gives the same verdict.
    let policies = testvectors::policies();
    for case in testvectors::cases() {
        if case.frame.len() < 14 || case.frame[12..14] != [0x08, 0x00] {
            continue;
        }
        // Frames that are not ours never reach the checks (a raw socket does not even see
        // those with a broken IP header: the kernel drops them).
        if frame_owner(&case.frame, &policies) != Owner::Ours {
            continue;
        }
        let via_ip = decode_ipv4_packet(&case.frame[14..])
            .map_err(RxError::from)
            .and_then(|rx| check_any(&rx, &policies).map(|_| rx).map_err(RxError::from));
        let v = match via_ip {
            Ok(rx) => Verdict::accepted(&rx.advert),
            Err(RxError::Decode(DecodeError::NotVrrp(_))) => Verdict::NotVrrp,
            Err(e) => Verdict::Drop(e.counter()),
        };
        assert_eq!(v, case.expected, "{}", case.name);
    }
}

#[test]
fn test_vector_table_checksum_forms() {
    let policies = testvectors::policies();
    let cases = testvectors::cases();
    let form = |name: &str| {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        receive_frame(&case.frame, &policies)
            .unwrap()
            .packet
            .checksum
    };
    assert_eq!(form("accept_v2_pass"), ChecksumForm::V2);
    assert_eq!(
        form("accept_v3_ipv4_pseudo_header_checksum"),
        ChecksumForm::PseudoHeader
    );
    assert_eq!(
        form("accept_v3_ipv4_rfc9568_checksum"),
        ChecksumForm::Rfc9568
    );
    assert_eq!(form("accept_v3_ipv6"), ChecksumForm::PseudoHeader);
}

//! Unit tests for `net::socket`.

#![allow(clippy::unwrap_used, reason = "tests")]
use super::*;

fn header(ihl: u8, total: u16, ttl: u8) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(total).max(20)];
    p[0] = 0x40 | ihl;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = ttl;
    p[9] = 112;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[224, 0, 0, 18]);
    p
}

#[test]
fn parses_and_strips_ipv4_header() {
    let mut p = header(5, 28, 255);
    p[20..28].copy_from_slice(&[0x21, 1, 100, 1, 0, 1, 0xaa, 0xbb]);
    let h = parse_ipv4_header(&p).unwrap();
    assert_eq!(
        (h.header_len, h.total_len, h.ttl, h.protocol),
        (20, 28, 255, 112)
    );
    assert_eq!(h.src, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(h.dst, VRRP_GROUP_V4);
    assert_eq!(h.payload(&p), &[0x21, 1, 100, 1, 0, 1, 0xaa, 0xbb]);

    // Options (IHL 6) are skipped; trailing padding beyond total length is ignored.
    let mut p = header(6, 32, 64);
    p.extend([0xee; 4]);
    let h = parse_ipv4_header(&p).unwrap();
    assert_eq!(h.header_len, 24);
    assert_eq!(h.payload(&p).len(), 8);
    assert_eq!(h.ttl, 64);
}

proptest::proptest! {
    #[test]
    fn ipv4_header_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
        if let Ok(h) = parse_ipv4_header(&bytes) {
            proptest::prop_assert!(h.header_len >= 20 && h.header_len <= h.total_len);
            proptest::prop_assert!(h.total_len <= bytes.len());
            let _ = h.payload(&bytes);
        }
    }
}

#[test]
fn rejects_bad_ipv4_headers_without_panicking() {
    let good = header(5, 28, 255);
    for cut in 0..good.len() {
        assert!(parse_ipv4_header(&good[..cut]).is_err(), "cut at {cut}");
    }
    assert!(parse_ipv4_header(&header(4, 28, 255)).is_err()); // IHL < 5
    assert!(parse_ipv4_header(&header(15, 28, 255)).is_err()); // IHL beyond packet
    assert!(parse_ipv4_header(&header(5, 19, 255)).is_err()); // total < header
    let mut v6 = good.clone();
    v6[0] = 0x65;
    assert!(parse_ipv4_header(&v6).is_err());
    // Exhaustive first byte and length fields over a short buffer.
    for b0 in 0..=255u8 {
        for total in [0u16, 20, 27, 28, 29, 0xffff] {
            let mut p = good.clone();
            p[0] = b0;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            if let Ok(h) = parse_ipv4_header(&p) {
                let _ = h.payload(&p);
                assert!(h.header_len <= h.total_len && h.total_len <= p.len());
            }
        }
    }
}

//! The Internet checksum (RFC 1071) and the VRRP checksum forms.

use std::net::IpAddr;

use super::IPPROTO_VRRP;

/// Adds `data` as big-endian 16-bit words to `sum` (an odd trailing byte is padded with zero).
pub fn add_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [hi, lo] = c {
            sum = fold_once(sum + u32::from(u16::from_be_bytes([*hi, *lo])));
        }
    }
    if let [last] = chunks.remainder() {
        sum = fold_once(sum + (u32::from(*last) << 8));
    }
    sum
}

/// Folds carries once, keeping the running sum far from overflow.
fn fold_once(sum: u32) -> u32 {
    (sum & 0xffff) + (sum >> 16)
}

/// Folds a running sum to 16 bits (one's complement addition).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = fold_once(sum);
    }
    // The loop leaves sum <= 0xffff.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

/// The Internet checksum of `data`: the one's complement of the one's complement sum.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(add_words(0, data))
}

/// Sum of the IPv4 or IPv6 pseudo-header for protocol 112 and an upper-layer length `len`.
///
/// IPv4 (RFC 5798 section 5.2.8): src, dst, zero, protocol, 16-bit length.
/// IPv6 (RFC 8200 section 8.1): src, dst, 32-bit length, three zero bytes, next header.
/// Returns `None` when `src` and `dst` are of different families.
pub fn pseudo_header_sum(src: &IpAddr, dst: &IpAddr, len: usize) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u16::try_from(len).ok()?;
            let mut sum = add_words(0, &s.octets());
            sum = add_words(sum, &d.octets());
            sum = add_words(sum, &[0, IPPROTO_VRRP]);
            Some(add_words(sum, &len.to_be_bytes()))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u32::try_from(len).ok()?;
            let mut sum = add_words(0, &s.octets());
            sum = add_words(sum, &d.octets());
            sum = add_words(sum, &len.to_be_bytes());
            Some(add_words(sum, &[0, 0, 0, IPPROTO_VRRP]))
        }
        _ => None,
    }
}

/// Whether `msg` (checksum field included) sums to 0xffff after adding `initial` (a pseudo-header
/// sum, or 0). Like the kernel and keepalived, both one's complement zeros are accepted.
pub fn verifies(initial: u32, msg: &[u8]) -> bool {
    fold(add_words(initial, msg)) == 0xffff
}

/// The checksum to write into `msg` (whose checksum field must be zero) given a pseudo-header
/// sum `initial` (or 0).
pub fn compute(initial: u32, msg: &[u8]) -> u16 {
    !fold(add_words(initial, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 section 3 numerical example: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add_words(0, &data)), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(add_words(0, &[0x12])), 0x1200);
        assert_eq!(fold(add_words(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn computed_checksum_verifies() {
        let mut msg = vec![0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0, 0, 10, 0, 0, 1];
        let ck = compute(0, &msg);
        msg[6..8].copy_from_slice(&ck.to_be_bytes());
        assert!(verifies(0, &msg));
    }

    #[test]
    fn pseudo_header_needs_one_family() {
        let v4: IpAddr = "10.0.0.1".parse().expect("literal");
        let v6: IpAddr = "fe80::1".parse().expect("literal");
        assert_eq!(pseudo_header_sum(&v4, &v6, 12), None);
        assert!(pseudo_header_sum(&v4, &v4, 12).is_some());
        assert!(pseudo_header_sum(&v6, &v6, 24).is_some());
    }
}

//! Feeds arbitrary bytes to every decode entry point of `xvrrp::packet`, then to the receive
//! checks with the shared test policies. Any panic is a bug.
//!
//! Run: `cargo +nightly fuzz run decode` from the repository root.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use xvrrp::packet::{self, checksum, testvectors, DecodeOptions, IpMeta};

fuzz_target!(|data: &[u8]| {
    let policies = testvectors::policies();
    let no_ip_ck = DecodeOptions {
        verify_ipv4_header_checksum: false,
    };

    let _ = packet::decode_frame(data);
    let _ = packet::decode_frame_with(data, no_ip_ck);
    let _ = packet::decode_ipv4_packet(data);
    let _ = packet::decode_ipv4_packet_with(data, no_ip_ck);
    let _ = packet::decode_ipv6_packet(data);
    let _ = packet::verdict(data, &policies);

    // Raw-socket entry point: the first byte picks the family and TTL of the metadata, so the
    // fuzzer can steer the v2/v3 and pseudo-header paths.
    if let Some((&sel, payload)) = data.split_first() {
        let meta = if sel & 1 == 0 {
            IpMeta {
                src: IpAddr::V4(testvectors::SRC_V4),
                dst: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
                ttl_or_hop_limit: sel | 0x80,
            }
        } else {
            IpMeta {
                src: IpAddr::V6(testvectors::SRC_V6),
                dst: IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
                ttl_or_hop_limit: sel | 0x80,
            }
        };
        // With bit 1 of the selector set, fix up the checksum first (message-only form when the
        // version nibble says 2, pseudo-header form otherwise) so the fuzzer gets past the
        // checksum to the field and policy checks.
        let mut fixed;
        let payload = if sel & 2 != 0 && payload.len() >= 8 {
            fixed = payload.to_vec();
            fixed[6] = 0;
            fixed[7] = 0;
            let initial = if fixed[0] >> 4 == 2 {
                0
            } else {
                checksum::pseudo_header_sum(&meta.src, &meta.dst, fixed.len()).unwrap_or(0)
            };
            let ck = checksum::compute(initial, &fixed);
            fixed[6..8].copy_from_slice(&ck.to_be_bytes());
            &fixed[..]
        } else {
            payload
        };
        if let Ok(rx) = packet::decode_vrrp(payload, &meta) {
            // Whatever decodes must encode again, and decode to the same advert.
            let bytes = packet::encode_vrrp(&rx.advert, &packet::TxMeta::new(meta.src, meta.dst));
            let again = bytes.map(|b| packet::decode_vrrp(&b, &meta).map(|r| r.advert));
            assert_eq!(again, Ok(Ok(rx.advert)), "decode/encode/decode differs");
        }
        let _ = packet::receive_vrrp(payload, &meta, &policies);
    }
});

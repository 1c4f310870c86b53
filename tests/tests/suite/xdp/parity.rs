//! Parity of the XDP advert filter with the userspace validator (`xvrrp::packet::verdict`).
//!
//! Every frame of the codec's shared table, a few extra cases, and a few thousand mutated and
//! random frames go through both: the XDP program via `BPF_PROG_TEST_RUN` with its maps filled
//! from the same policies. They must agree on the action (accept / drop / pass), on the counters
//! incremented (exactly `Verdict::counters()`, except `not_vrrp`, which the kernel does not count
//! so that other traffic costs nothing), and on the row they are counted in (the source's row or
//! the unknown-source bucket, see `expected_slot`). Accepted adverts must produce one ring buffer
//! event whose fields match the decoded advert.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvrrp::dataplane::{PeerSlot, XdpTestProgram, XDP_DROP, XDP_PASS};
use xvrrp::packet::testvectors::{self, TestCase};
use xvrrp::packet::{
    checksum, decode_frame, verdict, Advert, AdvertKind, ChecksumForm, Counter, RxPolicy,
    SourcePolicy, Verdict,
};

type Snapshot = BTreeMap<PeerSlot, [u64; 17]>;

fn snapshot(prog: &XdpTestProgram) -> Snapshot {
    prog.peer_counters()
        .unwrap()
        .into_iter()
        .map(|r| (r.slot, r.counts))
        .collect()
}

/// Counter increments per row between two snapshots (rows with no change left out).
fn diff(before: &Snapshot, after: &Snapshot) -> BTreeMap<PeerSlot, Vec<(Counter, u64)>> {
    let mut out = BTreeMap::new();
    for (slot, counts) in after {
        let old = before.get(slot).copied().unwrap_or([0; 17]);
        let d: Vec<(Counter, u64)> = Counter::ALL
            .iter()
            .map(|c| {
                let i = c.index() as usize;
                (*c, counts[i] - old[i])
            })
            .filter(|(_, n)| *n != 0)
            .collect();
        if !d.is_empty() {
            out.insert(*slot, d);
        }
    }
    out
}

/// Source and VRID of a frame whose VRRP header is readable: steps 1 to 8 of the verdict order
/// passed. Failures before that count in the unknown-source bucket.
fn vrrp_key(f: &[u8]) -> Option<(IpAddr, u8)> {
    vrrp_at(f).map(|(src, at)| (src, f[at + 1]))
}

/// Source and offset of the VRRP message of a frame that passes steps 1 to 8.
fn vrrp_at(f: &[u8]) -> Option<(IpAddr, usize)> {
    let be16 = |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*f.get(i)?, *f.get(i + 1)?])) };
    let mut et = be16(12)?;
    let mut l3 = 14;
    if et == 0x8100 {
        et = be16(16)?;
        l3 = 18;
    }
    match et {
        0x0800 => {
            let h = f.get(l3..l3 + 20)?;
            if h[0] >> 4 != 4 || h[9] != 112 {
                return None;
            }
            let hlen = usize::from(h[0] & 0x0f) * 4;
            if hlen < 20 {
                return None;
            }
            let header = f.get(l3..l3 + hlen)?;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if total < hlen || f.len() < l3 + total {
                return None;
            }
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 || !checksum::verifies(0, header) {
                return None;
            }
            if total - hlen < 8 {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            f.get(l3 + hlen + 1)?;
            Some((src, l3 + hlen))
        }
        0x86dd => {
            let h = f.get(l3..l3 + 40)?;
            if h[0] >> 4 != 6 || h[6] != 112 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if f.len() < l3 + 40 + plen || plen < 8 {
                return None;
            }
            let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&h[8..24]).ok()?));
            f.get(l3 + 41)?;
            Some((src, l3 + 40))
        }
        _ => None,
    }
}

fn is_configured_peer(policies: &[RxPolicy], vrid: u8, src: &IpAddr) -> bool {
    let fam = xvrrp::packet::Family::of(src);
    policies
        .iter()
        .find(|p| p.vrid == vrid && p.family == fam)
        .is_some_and(|p| match &p.source {
            SourcePolicy::Unicast { peers } => peers.iter().any(|q| q.addr == *src),
            SourcePolicy::Multicast { .. } => false,
        })
}

/// The row the kernel must count a frame's verdict in: the source's row when the advert is
/// accepted, or when the row exists already (an earlier valid advert) or the source is a
/// configured unicast peer; otherwise the interface's unknown-source bucket.
fn expected_slot(frame: &[u8], v: &Verdict, policies: &[RxPolicy], before: &Snapshot) -> PeerSlot {
    let Some((addr, vrid)) = vrrp_key(frame) else {
        return PeerSlot::Unknown;
    };
    let slot = PeerSlot::Peer { vrid, addr };
    if matches!(v, Verdict::Accept { .. })
        || before.contains_key(&slot)
        || is_configured_peer(policies, vrid, &addr)
    {
        slot
    } else {
        PeerSlot::Unknown
    }
}

/// Runs one frame through both paths and asserts they agree. Returns the verdict.
fn check_parity(
    prog: &mut XdpTestProgram,
    policies: &[RxPolicy],
    name: &str,
    frame: &[u8],
) -> Verdict {
    let want = verdict(frame, policies);
    let before = snapshot(prog);
    let not_ours_before = prog.stats().unwrap().not_ours;
    let run = prog.run(frame, 1).unwrap();
    let after = snapshot(prog);
    let expected_action = match want {
        Verdict::NotVrrp | Verdict::NotOurs => XDP_PASS,
        _ => XDP_DROP,
    };
    assert_eq!(
        run.action, expected_action,
        "{name}: userspace says {want:?}, XDP returned {}; frame {frame:02x?}",
        run.action
    );
    assert_eq!(
        prog.stats().unwrap().not_ours - not_ours_before,
        u64::from(want == Verdict::NotOurs),
        "{name}: the interface's not_ours count (userspace verdict {want:?}); frame {frame:02x?}"
    );
    let got = diff(&before, &after);
    let mut want_counts: Vec<(Counter, u64)> = want
        .counters()
        .into_iter()
        .filter(|c| *c != Counter::NotVrrp)
        .map(|c| (c, 1))
        .collect();
    want_counts.sort();
    let mut want_rows = BTreeMap::new();
    if !want_counts.is_empty() {
        want_rows.insert(expected_slot(frame, &want, policies, &before), want_counts);
    }
    assert_eq!(
        got, want_rows,
        "{name}: counters differ (userspace verdict {want:?}); frame {frame:02x?}"
    );
    let events = prog.drain_events(16);
    match want {
        Verdict::Accept { .. } => {
            assert_eq!(events.len(), 1, "{name}: one event per accepted advert");
            let e = &events[0];
            let rx = decode_frame(frame).unwrap().packet;
            assert_eq!(e.src, rx.meta.src, "{name}: event source");
            assert_eq!(e.dst, rx.meta.dst, "{name}: event destination");
            assert_eq!(e.ttl, rx.meta.ttl_or_hop_limit, "{name}: event TTL");
            assert_eq!(e.vrid, rx.advert.vrid, "{name}: event VRID");
            assert_eq!(e.priority, rx.advert.priority, "{name}: event priority");
            assert_eq!(e.version, rx.advert.version(), "{name}: event version");
            assert_eq!(
                usize::from(e.addr_count),
                rx.advert.addresses.len(),
                "{name}: event address count"
            );
            assert_eq!(e.checksum, rx.checksum, "{name}: event checksum form");
            assert_eq!(e.ifindex, xvrrp::dataplane::TEST_RUN_IFINDEX);
            assert!(e.timestamp.as_nanos() > 0, "{name}: event timestamp");
            assert_eq!(
                u64::from(e.interval_cs) * 10_000,
                rx.advert.interval_us(),
                "{name}: event interval"
            );
        }
        _ => assert!(events.is_empty(), "{name}: no event for {want:?}"),
    }
    want
}

fn load(policies: &[RxPolicy]) -> XdpTestProgram {
    xvrrp_tests::require_root();
    XdpTestProgram::with_policies(policies).unwrap()
}

#[test]
fn shared_table_has_identical_verdicts_and_counters() {
    let policies = testvectors::policies();
    let mut prog = load(&policies);
    let cases: Vec<TestCase> = testvectors::cases();
    let mut ran = 0;
    for case in &cases {
        if case.frame.len() < 14 {
            // BPF_PROG_TEST_RUN refuses input shorter than an Ethernet header, and no driver
            // hands such a runt to XDP; the userspace verdict stands alone here.
            assert_eq!(case.expected, Verdict::NotOurs);
            assert!(prog.run(&case.frame, 1).is_err(), "{}", case.name);
            continue;
        }
        let got = check_parity(&mut prog, &policies, case.name, &case.frame);
        assert_eq!(
            got, case.expected,
            "{}: the table's own expectation",
            case.name
        );
        ran += 1;
    }
    assert!(
        ran + 1 >= cases.len(),
        "every frame but the runt ran: {ran}"
    );
    // Twice: the second time every source that sent a valid advert has its row, so failures
    // from them are attributed to that row rather than to the bucket.
    for case in cases.iter().filter(|c| c.frame.len() >= 14) {
        check_parity(&mut prog, &policies, case.name, &case.frame);
    }
    assert_eq!(prog.stats().unwrap().ring_full, 0);
}

fn v3_frame(vrid: u8, priority: u8, addrs: Vec<IpAddr>, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    use xvrrp::packet::{build_frame, EthParams, TxMeta};
    let advert = Advert::v3(vrid, priority, addrs, 100);
    build_frame(
        &advert,
        &TxMeta::new(src, dst),
        &EthParams::virtual_router(vrid, &dst),
    )
    .unwrap()
}

/// Edge cases beyond the shared table: the largest messages (checksum loop bounds), IPv4 options
/// at their maximum, v3 priority 0, and the pass-to-stack flag.
#[test]
fn extra_cases_have_identical_verdicts_and_counters() {
    let policies = testvectors::policies();
    let mut prog = load(&policies);
    let src4 = IpAddr::V4(testvectors::SRC_V4);
    let src6 = IpAddr::V6(testvectors::SRC_V6);
    let g4 = IpAddr::V4(xvrrp::packet::VRRP_GROUP_V4);
    let g6 = IpAddr::V6(xvrrp::packet::VRRP_GROUP_V6);
    let many4: Vec<IpAddr> = (0..255u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    let many6: Vec<IpAddr> = (0..90u128)
        .map(|i| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i)))
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "v3_ipv4_255_addresses",
            v3_frame(testvectors::VRID_V3, 100, many4, src4, g4),
        ),
        (
            "v3_ipv6_90_addresses_1500_mtu",
            v3_frame(testvectors::VRID_V3, 100, many6, src6, g6),
        ),
        (
            "v3_ipv4_priority_zero",
            v3_frame(testvectors::VRID_V3, 0, vec![src4], src4, g4),
        ),
        (
            "v3_ipv6_priority_zero",
            v3_frame(testvectors::VRID_V3, 0, vec![src6], src6, g6),
        ),
        ("ipv4_max_options", {
            let f = v3_frame(testvectors::VRID_V3, 100, vec![src4], src4, g4);
            with_ipv4_options(&f, 10)
        }),
        ("ipv4_options_bad_checksum", {
            let f = v3_frame(testvectors::VRID_V3, 100, vec![src4], src4, g4);
            let mut f = with_ipv4_options(&f, 3);
            f[14 + 21] ^= 0x40;
            f
        }),
    ];
    for (name, frame) in &cases {
        check_parity(&mut prog, &policies, name, frame);
    }
    // Pass-to-stack: valid adverts pass, invalid ones are still dropped.
    prog.set_pass_to_stack(true).unwrap();
    let good = &cases[0].1;
    assert_eq!(prog.run(good, 1).unwrap().action, XDP_PASS);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(prog.run(&bad, 1).unwrap().action, XDP_DROP);
    prog.set_pass_to_stack(false).unwrap();
    assert_eq!(prog.run(good, 1).unwrap().action, XDP_DROP);
}

/// More sources than a VRID has inline counter rows: the first ones get array rows, the rest
/// LRU hash rows; failures from every one of them land in its own row, failures from a source
/// that never sent a valid advert in the bucket, in both families.
#[test]
fn sources_beyond_the_inline_rows_keep_their_own_rows() {
    let policies = testvectors::policies();
    let mut prog = load(&policies);
    let g4 = IpAddr::V4(xvrrp::packet::VRRP_GROUP_V4);
    let g6 = IpAddr::V6(xvrrp::packet::VRRP_GROUP_V6);
    let srcs4: Vec<IpAddr> = (1..=9u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i)))
        .collect();
    let srcs6: Vec<IpAddr> = (1..=9u16)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x77, i)))
        .collect();
    for (srcs, group) in [(&srcs4, g4), (&srcs6, g6)] {
        let frames: Vec<Vec<u8>> = srcs
            .iter()
            .map(|s| v3_frame(testvectors::VRID_V3, 100, vec![*s], *s, group))
            .collect();
        // A wrong VRRP checksum (the frame's last byte may be Ethernet padding).
        let corrupt = |f: &Vec<u8>| {
            let mut bad = f.clone();
            let (_, at) = vrrp_at(f).unwrap();
            bad[at + 6] ^= 1;
            bad
        };
        // The last source never sends a valid advert.
        let (known, stranger) = frames.split_at(frames.len() - 1);
        for round in 0..2 {
            for (i, f) in known.iter().enumerate() {
                let name = format!("source {i} round {round}");
                assert!(matches!(
                    check_parity(&mut prog, &policies, &name, f),
                    Verdict::Accept { .. }
                ));
                check_parity(&mut prog, &policies, &name, &corrupt(f));
            }
            check_parity(&mut prog, &policies, "stranger", &corrupt(&stranger[0]));
        }
    }
    let rows = snapshot(&prog);
    for s in srcs4.iter().chain(srcs6.iter()) {
        let slot = PeerSlot::Peer {
            vrid: testvectors::VRID_V3,
            addr: *s,
        };
        let stranger = *s == srcs4[8] || *s == srcs6[8];
        assert_eq!(rows.contains_key(&slot), !stranger, "{s}: {rows:?}");
    }
}

/// Configured unicast peers get their counter rows up front (listed at zero before any packet):
/// inline rows for up to four, the LRU hash beyond (a policy too large for its entry). Valid
/// and failing adverts from each peer are counted in the peer's row, a stranger's in the
/// unknown-source bucket, identically to the userspace validator, on either kind of row.
#[test]
fn unicast_peers_are_counted_in_their_own_rows() {
    use xvrrp::packet::{build_frame, Auth, EthParams, RxAuth, TxMeta, UnicastPeer};
    let me = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    let peers = |n: u8| -> Vec<IpAddr> {
        (1..=n)
            .map(|i| IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 + i)))
            .collect()
    };
    let policy = |vrid: u8, peers: &[IpAddr]| {
        let mut p = RxPolicy::v2(vrid, RxAuth::pass("secret"), 1);
        p.source = SourcePolicy::Unicast {
            peers: peers.iter().map(|a| UnicastPeer::new(*a)).collect(),
        };
        p
    };
    let (few, many) = (peers(2), peers(6));
    let policies = vec![policy(61, &few), policy(62, &many)];
    let mut prog = load(&policies);
    let rows = snapshot(&prog);
    for (vrid, list) in [(61u8, &few), (62, &many)] {
        for a in list.iter() {
            let slot = PeerSlot::Peer { vrid, addr: *a };
            assert_eq!(
                rows.get(&slot),
                Some(&[0; 17]),
                "{slot:?} listed at zero: {rows:?}"
            );
        }
    }
    let frame = |vrid: u8, src: IpAddr, pass: &str| {
        let advert = Advert::v2(vrid, 100, vec![], 1, Auth::pass(pass));
        build_frame(
            &advert,
            &TxMeta::new(src, me),
            &EthParams::virtual_router(vrid, &me),
        )
        .unwrap()
    };
    let stranger = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 99));
    for (vrid, list) in [(61u8, &few), (62, &many)] {
        for (i, a) in list.iter().enumerate() {
            let name = format!("VRID {vrid} peer {i}");
            // A wrong password first: the row exists before any valid advert.
            assert_eq!(
                check_parity(&mut prog, &policies, &name, &frame(vrid, *a, "wrong")),
                Verdict::Drop(Counter::AuthFailure)
            );
            assert!(matches!(
                check_parity(&mut prog, &policies, &name, &frame(vrid, *a, "secret")),
                Verdict::Accept { .. }
            ));
        }
        assert_eq!(
            check_parity(
                &mut prog,
                &policies,
                "stranger",
                &frame(vrid, stranger, "secret")
            ),
            Verdict::Drop(Counter::UnknownPeer)
        );
    }
    let rows = snapshot(&prog);
    for (vrid, list) in [(61u8, &few), (62, &many)] {
        for a in list.iter() {
            let counts = rows[&PeerSlot::Peer { vrid, addr: *a }];
            assert_eq!(counts[Counter::AuthFailure.index() as usize], 1, "{a}");
            assert_eq!(counts[Counter::AdvertRcvd.index() as usize], 1, "{a}");
        }
    }
    assert!(!rows.contains_key(&PeerSlot::Peer {
        vrid: 61,
        addr: stranger
    }));
}

/// keepalived's per-peer `min_ttl` / `max_ttl`, for peers kept in the policy entry (2) and in
/// the peer map (6), IPv4 and IPv6: both ends accepted, one past either end dropped as
/// `ip_ttl_err`. IPv4 frames go through the fast lane as they are, and through the full path
/// with an IP option or a VLAN tag; IPv6 always takes the full path.
#[test]
fn unicast_peer_ttl_ranges_match_inline_and_in_the_peer_map() {
    use xvrrp::packet::{build_frame, EthParams, Family, TtlCheck, TxMeta, UnicastPeer, VlanTag};
    let me4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    let me6 = IpAddr::V6("2001:db8::1".parse().unwrap());
    let peer = |fam: Family, i: u8| match fam {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 + i)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            0x10 + u16::from(i),
        )),
    };
    let range = |i: u8| TtlCheck {
        min: 10 * i,
        max: 10 * i + 100,
    };
    let policy = |vrid: u8, fam: Family, n: u8| {
        let mut p = RxPolicy::v3(vrid, fam);
        p.source = SourcePolicy::Unicast {
            peers: (1..=n)
                .map(|i| UnicastPeer {
                    addr: peer(fam, i),
                    ttl: range(i),
                })
                .collect(),
        };
        p
    };
    let instances = [
        (61u8, Family::V4, 2u8),
        (62, Family::V4, 6),
        (63, Family::V6, 2),
        (64, Family::V6, 6),
    ];
    let policies: Vec<RxPolicy> = instances
        .iter()
        .map(|&(vrid, fam, n)| policy(vrid, fam, n))
        .collect();
    let mut prog = load(&policies);
    for (vrid, fam, n) in instances {
        let me = if fam == Family::V4 { me4 } else { me6 };
        for i in 1..=n {
            let frames = |ttl: u8| {
                let advert = Advert::v3(vrid, 100, vec![me], 100);
                let mut meta = TxMeta::new(peer(fam, i), me);
                meta.ttl = ttl;
                let eth = EthParams::virtual_router(vrid, &me);
                let plain = build_frame(&advert, &meta, &eth).unwrap();
                if fam == Family::V6 {
                    return vec![("", plain)];
                }
                let tagged = build_frame(&advert, &meta, &eth.with_vlan(VlanTag::new(7))).unwrap();
                let with_option = with_ipv4_options(&plain, 1);
                vec![
                    ("", plain),
                    (" with an IP option", with_option),
                    (" VLAN-tagged", tagged),
                ]
            };
            let r = range(i);
            for (ttl, ok) in [
                (r.min - 1, false),
                (r.min, true),
                (r.max, true),
                (r.max + 1, false),
            ] {
                for (what, frame) in frames(ttl) {
                    let name = format!("VRID {vrid} peer {i} TTL {ttl}{what}");
                    let v = check_parity(&mut prog, &policies, &name, &frame);
                    if what == " VLAN-tagged" {
                        // Untagged instances never take a tagged frame, whatever its TTL.
                        assert_eq!(v, Verdict::NotOurs, "{name}");
                    } else if ok {
                        assert!(matches!(v, Verdict::Accept { .. }), "{name}: {v:?}");
                    } else {
                        assert_eq!(v, Verdict::Drop(Counter::IpTtlErr), "{name}");
                    }
                }
            }
        }
    }
}

/// Inserts `words` 4-byte IPv4 options (NOPs) into an untagged frame, fixing lengths and the
/// header checksum.
fn with_ipv4_options(frame: &[u8], words: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    let opts = vec![1u8; words * 4];
    f.splice(34..34, opts);
    let ihl = 5 + words;
    f[14] = 0x40 | u8::try_from(ihl).unwrap();
    let total = u16::from_be_bytes([f[16], f[17]]) + u16::try_from(words * 4).unwrap();
    f[16..18].copy_from_slice(&total.to_be_bytes());
    reseal_ipv4_header(&mut f, 14);
    f
}

fn reseal_ipv4_header(f: &mut [u8], l3: usize) {
    let Some(&vihl) = f.get(l3) else { return };
    let hlen = usize::from(vihl & 0x0f) * 4;
    if hlen < 20 || f.len() < l3 + hlen {
        return;
    }
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let ck = checksum::internet_checksum(&f[l3..l3 + hlen]);
    f[l3 + 10..l3 + 12].copy_from_slice(&ck.to_be_bytes());
}

/// Recomputes the VRRP checksum (v2 plain, v3 with the pseudo-header) of a frame whose IP layer
/// is intact, so mutations reach the later steps.
fn reseal_vrrp(f: &mut [u8]) {
    let mut l3 = 14;
    let Some(mut et) = f.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return;
    };
    if et == 0x8100 {
        let Some(b) = f.get(16..18) else { return };
        et = u16::from_be_bytes([b[0], b[1]]);
        l3 = 18;
    }
    let (start, end, src, dst) = match et {
        0x0800 => {
            let Some(h) = f.get(l3..l3 + 20) else { return };
            let hlen = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
            (l3 + hlen, l3 + total, src, dst)
        }
        0x86dd => {
            let Some(h) = f.get(l3..l3 + 40) else { return };
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&h[8..24]).unwrap()));
            let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&h[24..40]).unwrap()));
            (l3 + 40, l3 + 40 + plen, src, dst)
        }
        _ => return,
    };
    let Some(m) = f.get_mut(start..end) else {
        return;
    };
    if m.len() < 8 {
        return;
    }
    m[6] = 0;
    m[7] = 0;
    let initial = if m[0] >> 4 == 3 {
        checksum::pseudo_header_sum(&src, &dst, m.len()).unwrap_or(0)
    } else {
        0
    };
    let ck = checksum::compute(initial, m);
    m[6..8].copy_from_slice(&ck.to_be_bytes());
}

/// A small deterministic PRNG (xorshift64*), so failures replay from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn randomized_frames_have_identical_verdicts_and_counters() {
    let policies = testvectors::policies();
    let mut prog = load(&policies);
    let seed = std::env::var("XVRRP_PARITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001_u64);
    let mut rng = Rng(seed);
    let bases: Vec<Vec<u8>> = testvectors::cases()
        .into_iter()
        .map(|c| c.frame)
        .filter(|f| f.len() >= 14)
        .collect();
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..4000 {
        let mut f = bases[rng.below(bases.len())].clone();
        match rng.below(6) {
            // Flip a few bits anywhere.
            0 => {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
            }
            // Set a byte in the VRRP / IP region, then fix both checksums so the later steps run.
            1 | 2 => {
                for _ in 0..=rng.below(2) {
                    let at = 14 + rng.below(f.len() - 14);
                    f[at] = rng.next() as u8;
                }
                reseal_ipv4_header(&mut f, 14);
                reseal_ipv4_header(&mut f, 18);
                reseal_vrrp(&mut f);
            }
            // Truncate or extend.
            3 => {
                if rng.below(2) == 0 {
                    let n = 14 + rng.below(f.len() - 13);
                    f.truncate(n);
                } else {
                    for _ in 0..rng.below(40) {
                        f.push(rng.next() as u8);
                    }
                }
            }
            // A fresh random frame with a VRRP-ish header.
            4 => {
                let n = 14 + rng.below(120);
                f = (0..n).map(|_| rng.next() as u8).collect();
                if rng.below(2) == 0 {
                    f[12] = 0x08;
                    f[13] = 0x00;
                    if n > 23 {
                        f[14] = 0x45;
                        f[23] = 112;
                    }
                    reseal_ipv4_header(&mut f, 14);
                }
            }
            // Change the VRID, priority or version nibble and reseal.
            _ => {
                if let Some((_, at)) = vrrp_at(&f) {
                    let field = rng.below(3);
                    f[at + field] = match field {
                        0 => (rng.below(5) as u8) << 4 | 1,
                        _ => rng.next() as u8,
                    };
                    reseal_vrrp(&mut f);
                }
            }
        }
        let name = format!("random #{i} (seed {seed:#x})");
        let v = check_parity(&mut prog, &policies, &name, &f);
        *verdicts.entry(format!("{v:?}")).or_default() += 1;
    }
    // The mutations must reach deep: accepts and policy-level drops, not only early drops.
    let accepted: usize = verdicts
        .iter()
        .filter(|(k, _)| k.starts_with("Accept"))
        .map(|(_, n)| n)
        .sum();
    assert!(accepted > 100, "too few accepted frames: {verdicts:?}");
    assert!(
        verdicts.len() >= 15,
        "too few distinct verdicts: {verdicts:?}"
    );
    eprintln!("randomized parity, seed {seed:#x}: {verdicts:?}");
}

/// The event's fields for each shape of valid advert in the table, spelled out.
#[test]
fn events_carry_the_advert_fields() {
    let policies = testvectors::policies();
    let mut prog = load(&policies);
    for case in testvectors::cases() {
        if !matches!(case.expected, Verdict::Accept { .. }) {
            continue;
        }
        prog.run(&case.frame, 1).unwrap();
        let events = prog.drain_events(4);
        assert_eq!(events.len(), 1, "{}", case.name);
        let e = events[0];
        let rx = decode_frame(&case.frame).unwrap().packet;
        match rx.advert.kind {
            AdvertKind::V2 { interval_secs, .. } => {
                assert_eq!(e.interval_cs, u16::from(interval_secs) * 100);
                assert_eq!(e.checksum, ChecksumForm::V2);
            }
            AdvertKind::V3 { interval_cs } => assert_eq!(e.interval_cs, interval_cs),
        }
        if case.name == "accept_v3_ipv4_rfc9568_checksum" {
            assert_eq!(e.checksum, ChecksumForm::Rfc9568);
        }
        if case.name == "accept_v3_ipv4_pseudo_header_checksum" {
            assert_eq!(e.checksum, ChecksumForm::PseudoHeader);
        }
    }
}

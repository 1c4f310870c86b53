//! The XDP advert filter attached for real: to a veth in a test namespace, with adverts sent as
//! Ethernet frames (AF_PACKET) from the peer namespace. Events come out of the ring buffer with
//! the right fields, counters land in the right row, a flood from random sources stays in the one
//! unknown-source bucket, a second agent on the interface is refused, and dropping the dataplane
//! detaches the program.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use xvrrp::dataplane::{
    AttachMode, DataplaneError, PeerCounterRow, PeerSlot, XdpAdvert, XdpDataplane,
};
use xvrrp::packet::{
    build_frame, Advert, Auth, ChecksumForm, Counter, EthParams, Family, RxAuth, RxPolicy,
    SourcePolicy, TtlCheck, TxMeta, UnicastPeer, Version, VRRP_GROUP_V4,
};
use xvrrp_tests::{forge::send_frames_paced, in_netns, veth, veth_pair, wait_until, Netns};

const PEER: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
const UNICAST_PEER: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 3);
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const VRID_V3: u8 = 51;
const VRID_V2: u8 = 33;
const VRID_UNICAST: u8 = 52;

fn policies() -> Vec<RxPolicy> {
    let mut unicast = RxPolicy::v3(VRID_UNICAST, Family::V4);
    unicast.source = SourcePolicy::Unicast {
        peers: vec![UnicastPeer {
            addr: IpAddr::V4(UNICAST_PEER),
            ttl: TtlCheck::REQUIRE_255,
        }],
    };
    vec![
        RxPolicy::v3(VRID_V3, Family::V4),
        RxPolicy::v2(VRID_V2, RxAuth::pass("secret"), 1),
        unicast,
    ]
}

fn frame(advert: &Advert, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut meta = TxMeta::new(IpAddr::V4(src), IpAddr::V4(dst));
    meta.ttl = ttl;
    build_frame(
        advert,
        &meta,
        &EthParams::virtual_router(advert.vrid, &IpAddr::V4(dst)),
    )
    .unwrap()
}

fn v3(vrid: u8, priority: u8) -> Advert {
    Advert::v3(
        vrid,
        priority,
        vec![IpAddr::V4(Ipv4Addr::new(10, 78, 0, 100))],
        100,
    )
}

fn v2(priority: u8, password: &str) -> Advert {
    Advert::v2(
        VRID_V2,
        priority,
        vec![IpAddr::V4(Ipv4Addr::new(10, 78, 0, 101))],
        1,
        Auth::pass(password),
    )
}

/// Flips the last byte (inside the VRRP message: an address or auth byte), breaking its checksum.
fn corrupt(mut f: Vec<u8>, vrrp_end: usize) -> Vec<u8> {
    f[vrrp_end - 1] ^= 0x55;
    f
}

fn row(rows: &[PeerCounterRow], slot: PeerSlot) -> Option<&PeerCounterRow> {
    rows.iter().find(|r| r.slot == slot)
}

fn counts(rows: &[PeerCounterRow], slot: PeerSlot) -> Vec<(Counter, u64)> {
    row(rows, slot)
        .map(PeerCounterRow::nonzero)
        .unwrap_or_default()
}

fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    ns.ip(&["-d", "link", "show", ifname]).contains("prog/xdp")
}

#[test]
fn attached_filter_delivers_events_counts_per_peer_and_refuses_a_second_agent() {
    let (a, b) = veth_pair("xa", "10.78.0", false);
    let b_name = b.name().to_owned();
    let send = move |frames: Vec<Vec<u8>>| {
        in_netns(&b_name, move || send_frames_paced("vb", &frames));
    };

    let a_name = a.name().to_owned();
    in_netns(&a_name, move || {
        let mut dp = XdpDataplane::attach("va", AttachMode::Native, &policies(), false).unwrap();
        assert_eq!(dp.mode(), AttachMode::Native);
        assert!(dp.fallback_reason().is_none());
        let peer = PeerSlot::Peer {
            vrid: VRID_V3,
            addr: IpAddr::V4(PEER),
        };
        let uni = PeerSlot::Peer {
            vrid: VRID_UNICAST,
            addr: IpAddr::V4(UNICAST_PEER),
        };
        // Configured unicast peers and the bucket are listed before any packet.
        let rows = dp.peer_counters().unwrap();
        assert!(row(&rows, uni).is_some(), "{rows:?}");
        assert!(row(&rows, PeerSlot::Unknown).is_some(), "{rows:?}");
        assert!(row(&rows, peer).is_none(), "{rows:?}");

        // A bad advert from a source that never sent a valid one: the bucket.
        let good = frame(&v3(VRID_V3, 100), PEER, VRRP_GROUP_V4, 255);
        let vrrp_end = 14 + 20 + 12;
        send(vec![corrupt(good.clone(), vrrp_end)]);
        assert!(
            wait_until(Duration::from_secs(5), || {
                counts(&dp.peer_counters().unwrap(), PeerSlot::Unknown)
                    == vec![(Counter::ChecksumErr, 1)]
            }),
            "{:?}",
            dp.peer_counters().unwrap()
        );

        // Three valid adverts (one priority 0), then failures from that source: its row.
        send(vec![
            good.clone(),
            good.clone(),
            frame(&v3(VRID_V3, 0), PEER, VRRP_GROUP_V4, 255),
        ]);
        let mut events: Vec<XdpAdvert> = Vec::new();
        assert!(
            wait_until(Duration::from_secs(5), || {
                events.extend(dp.drain_events(16));
                events.len() >= 3
            }),
            "three events: {events:?}"
        );
        let e = events[0];
        assert_eq!(e.ifindex, dp.ifindex());
        assert_eq!(e.src, IpAddr::V4(PEER));
        assert_eq!(e.dst, IpAddr::V4(VRRP_GROUP_V4));
        assert_eq!(e.vrid, VRID_V3);
        assert_eq!(e.version, Version::V3);
        assert_eq!(e.priority, 100);
        assert_eq!(e.interval_cs, 100);
        assert_eq!(e.addr_count, 1);
        assert_eq!(e.ttl, 255);
        assert_eq!(e.checksum, ChecksumForm::PseudoHeader);
        assert_eq!(events[2].priority, 0);
        // CLOCK_MONOTONIC, like bpf_ktime_get_ns.
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        assert!(e.timestamp <= now && now - e.timestamp < Duration::from_secs(10));

        send(vec![
            corrupt(good.clone(), vrrp_end),
            frame(&v3(VRID_V3, 100), PEER, VRRP_GROUP_V4, 64),
        ]);
        // v2 with PASS: valid, then a wrong password (its row, auth_failure).
        send(vec![
            frame(&v2(100, "secret"), PEER, VRRP_GROUP_V4, 255),
            frame(&v2(100, "wrong"), PEER, VRRP_GROUP_V4, 255),
        ]);
        // Unicast: the configured peer with TTL 64 where 255 is required (its row), and a
        // stranger (the bucket).
        send(vec![
            frame(&v3(VRID_UNICAST, 100), UNICAST_PEER, LOCAL, 64),
            frame(
                &v3(VRID_UNICAST, 100),
                Ipv4Addr::new(10, 78, 0, 9),
                LOCAL,
                255,
            ),
            frame(&v3(VRID_UNICAST, 100), UNICAST_PEER, LOCAL, 255),
        ]);
        let v2_peer = PeerSlot::Peer {
            vrid: VRID_V2,
            addr: IpAddr::V4(PEER),
        };
        let expect = |rows: &[PeerCounterRow]| {
            counts(rows, peer)
                == vec![
                    (Counter::AdvertRcvd, 3),
                    (Counter::IpTtlErr, 1),
                    (Counter::PriZeroRcvd, 1),
                    (Counter::ChecksumErr, 1),
                ]
                && counts(rows, v2_peer)
                    == vec![(Counter::AdvertRcvd, 1), (Counter::AuthFailure, 1)]
                && counts(rows, uni) == vec![(Counter::AdvertRcvd, 1), (Counter::IpTtlErr, 1)]
                && counts(rows, PeerSlot::Unknown)
                    == vec![(Counter::ChecksumErr, 1), (Counter::UnknownPeer, 1)]
        };
        assert!(
            wait_until(Duration::from_secs(5), || expect(
                &dp.peer_counters().unwrap()
            )),
            "{:#?}",
            dp.peer_counters().unwrap()
        );
        events.extend(dp.drain_events(16));
        assert_eq!(events.len(), 5, "3 v3 + 1 v2 + 1 unicast: {events:?}");
        assert_eq!(events[3].version, Version::V2);
        assert_eq!(events[3].interval_cs, 100);
        assert_eq!(events[4].dst, IpAddr::V4(LOCAL));

        // A flood from random unknown sources: every packet in the bucket, no new rows.
        let rows_before = dp.peer_counters().unwrap();
        let bucket_before = row(&rows_before, PeerSlot::Unknown).unwrap().clone();
        let mut x: u32 = 0x1234_5678;
        let mut flood = Vec::new();
        for i in 0..3000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let src = Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff));
            flood.push(if i % 2 == 0 {
                // Unknown unicast peer.
                frame(&v3(VRID_UNICAST, 100), src, LOCAL, 255)
            } else {
                // Bad checksum on the multicast VRID.
                corrupt(frame(&v3(VRID_V3, 100), src, VRRP_GROUP_V4, 255), vrrp_end)
            });
        }
        send(flood);
        let flooded = |rows: &[PeerCounterRow]| {
            let b = row(rows, PeerSlot::Unknown).unwrap();
            b.get(Counter::UnknownPeer) == bucket_before.get(Counter::UnknownPeer) + 1500
                && b.get(Counter::ChecksumErr) == bucket_before.get(Counter::ChecksumErr) + 1500
        };
        assert!(
            wait_until(Duration::from_secs(10), || flooded(
                &dp.peer_counters().unwrap()
            )),
            "{:?}",
            row(&dp.peer_counters().unwrap(), PeerSlot::Unknown)
        );
        let rows_after = dp.peer_counters().unwrap();
        assert_eq!(
            rows_after.len(),
            rows_before.len(),
            "the flood created no rows"
        );
        assert!(dp.drain_events(16).is_empty(), "no event for the flood");
        assert_eq!(dp.stats().unwrap().ring_full, 0);

        // A second agent on the same interface is refused, naming it, in every mode.
        for mode in [AttachMode::Auto, AttachMode::Native, AttachMode::Generic] {
            let err = XdpDataplane::attach("va", mode, &policies(), false).unwrap_err();
            assert!(
                matches!(err, DataplaneError::AlreadyAttached { ref iface } if iface == "va"),
                "{mode}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("va")
                    && msg.contains("another XDP program")
                    && msg.contains("--rx socket"),
                "{msg}"
            );
        }

        // Policies can be replaced in place: VRID 51 gone, so its adverts are no longer ours:
        // passed and counted for the interface, the peer's row unchanged.
        let row_before = row(&dp.peer_counters().unwrap(), peer).map(|r| r.counts);
        let not_ours_before = dp.stats().unwrap().not_ours;
        dp.set_policies(&[RxPolicy::v2(VRID_V2, RxAuth::pass("secret"), 1)])
            .unwrap();
        send(vec![good.clone()]);
        assert!(
            wait_until(Duration::from_secs(5), || dp.stats().unwrap().not_ours
                == not_ours_before + 1),
            "{:?}",
            dp.stats().unwrap()
        );
        assert_eq!(
            row(&dp.peer_counters().unwrap(), peer).map(|r| r.counts),
            row_before,
            "a frame that is not ours is not counted per peer"
        );
        drop(dp);
    });
    assert!(
        !xdp_attached(&a, "va"),
        "detached when the dataplane is dropped"
    );
}

#[test]
fn pass_to_stack_lets_valid_adverts_reach_a_raw_socket() {
    let a = Netns::new("xsa");
    let b = Netns::new("xsb");
    veth(&a, "va", &b, "vb");
    // A unicast instance (a multicast one owns only adverts to the VRRP group, which a plain
    // raw socket does not receive without joining it): `a` is its local address, `b` a peer.
    a.ip(&["addr", "add", &format!("{LOCAL}/24"), "dev", "va"]);
    b.ip(&["addr", "add", &format!("{UNICAST_PEER}/24"), "dev", "vb"]);
    let good = frame(&v3(VRID_UNICAST, 100), UNICAST_PEER, LOCAL, 255);
    let mut bad = good.clone();
    bad[14 + 20 + 11] ^= 1;
    // The destination MAC must be va's for the stack to take a unicast frame.
    let link = a.ip(&["link", "show", "va"]);
    let mac: Vec<u8> = link
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let b_name = b.name().to_owned();
    let received = in_netns(a.name(), move || {
        let dp = XdpDataplane::attach("va", AttachMode::Generic, &policies(), true).unwrap();
        // SAFETY: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, 112) };
        assert!(fd >= 0);
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 300_000,
        };
        // SAFETY: valid option pointer and length.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let mut frames = vec![bad, good];
        for f in &mut frames {
            f[..6].copy_from_slice(&mac);
        }
        in_netns(&b_name, move || send_frames_paced("vb", &frames));
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: valid buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            got.push(buf[..n as usize].to_vec());
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        drop(dp);
        got
    });
    assert_eq!(
        received.len(),
        1,
        "only the valid advert reaches the stack: {received:02x?}"
    );
    assert!(!xdp_attached(&a, "va"));
}

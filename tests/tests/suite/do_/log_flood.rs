//! Issue 11, item 4: log floods. The tutorial's Master with a `digitalocean` block logged one
//! line per lower-priority advert; PASS travels in clear, so any host on the segment can send
//! them. 10 000 of them must give a bounded number of lines and a "suppressed" summary (the
//! counts are in status), and an error that follows must still be logged.

use std::{net::IpAddr, time::Duration};

use xvrrp::packet::{self, Advert, Auth, EthParams, TxMeta};
use xvrrp_tests::{
    forge::send_frames_paced,
    in_netns,
    site::cloud::{DoLab, Opts, A, B, IP},
    wait_until,
};

/// The forged adverts: VRRPv2 from the secondary's address (the configured peer) with the
/// tutorial's PASS, priority 100 (below the Master's 200), no addresses (the tutorial's
/// config has none), to the primary.
fn lower_priority_adverts(l: &DoLab, n: usize) -> Vec<Vec<u8>> {
    let (p, s) = (&l.servers[0], &l.servers[1]);
    let mut meta = TxMeta::new(IpAddr::V4(s.ip4()), IpAddr::V4(p.ip4()));
    meta.ttl = 255;
    let eth = EthParams {
        dst_mac: p.ns().mac("eth1"),
        src_mac: s.ns().mac("eth1"),
        vlan: None,
    };
    let advert = Advert::v2(33, 100, Vec::new(), 1, Auth::pass("password"));
    let f = packet::build_frame(&advert, &meta, &eth).unwrap();
    vec![f; n]
}

fn send(l: &DoLab, frames: Vec<Vec<u8>>) {
    in_netns(l.servers[1].ns().name(), move || {
        send_frames_paced("eth1", &frames)
    });
}

#[test]
fn lower_priority_flood_is_rate_limited_and_the_error_after_it_is_logged() {
    let l = DoLab::new(Opts::default());
    let peer = l.servers[1].ip4().to_string();
    let lines = |needle: &str| {
        l.agents[0]
            .log()
            .lines()
            .filter(|x| x.contains(needle))
            .count()
    };
    let before = l.agents[0].log().lines().count();

    send(&l, lower_priority_adverts(&l, 10_000));
    // Every accepted one is counted.
    let seen = || l.cloud(0).0.map_or(0, |c| c.lower_priority_adverts);
    assert!(
        wait_until(Duration::from_secs(5), || seen() >= 5_000),
        "only {} lower-priority adverts counted\n{}",
        seen(),
        l.logs()
    );
    std::thread::sleep(Duration::from_millis(500));
    let counted = seen();
    let flood_lines = l.agents[0].log().lines().count() - before;
    let per_advert = lines("with lower priority");
    eprintln!("[log flood] {counted} adverts counted, {flood_lines} lines logged ({per_advert} per-advert lines)");
    assert!(
        (1..=10).contains(&per_advert),
        "{per_advert} per-advert lines\n{}",
        l.agents[0].log()
    );
    assert!(
        flood_lines <= 30,
        "{flood_lines} lines\n{}",
        l.agents[0].log()
    );
    // The summary, when the window ends, with the count and the peer.
    let summary = format!("(peer {peer}, kind lower-priority advert while Master)");
    assert!(
        wait_until(Duration::from_secs(15), || lines(&summary) >= 1),
        "no summary\n{}",
        l.agents[0].log()
    );
    let log = l.agents[0].log();
    let line = log.lines().find(|x| x.contains(&summary)).unwrap();
    let n: u64 = line
        .split(": ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    assert!(n + 10 >= counted, "{line:?}: {n} suppressed of {counted}");
    assert!(line.contains("similar messages suppressed"), "{line}");
    let status = l.agents[0].status().unwrap();
    assert!(
        status.0.logs_suppressed >= n,
        "{}",
        status.0.logs_suppressed
    );

    // A real problem after the flood: someone moves the reserved IP to the secondary. The
    // next lower-priority advert makes the Master check, take it back and say so.
    l.double.set_holder(IP, Some(B));
    send(&l, lower_priority_adverts(&l, 1));
    assert!(
        wait_until(Duration::from_secs(10), || lines("took it back") == 1),
        "the error after the flood was not logged\n{}",
        l.logs()
    );
    assert!(l.wait_holder(A), "{}", l.logs());
    l.assert_no_token();
    eprintln!("DEBUGLOG\n{}", l.agents[0].log());
}

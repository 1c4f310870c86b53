//! A good neighbour on a shared NIC (issue 10 item 2): xvrrp's pair shares its interfaces and
//! the LAN with two keepalived 2.2.7 pairs, and all three elect exactly one Master each.
//!
//! - xvrrp on `a` (priority 200) and `b` (100): VRRPv3, VRID 51, VIP .100, untagged;
//! - keepalived on the same hosts and the same interface `eth1` (an operator migrating one VRID
//!   at a time): VRRPv3, VRID 52, priorities crossed (`b` 200, `a` 100), VIP .101;
//! - keepalived `t1` (250) and `t2` (240): VRRPv3 with xvrrp's VRID 51, VIP .102, but on
//!   VLAN 7: their switch ports are access ports of VLAN 7 ([`VlanAccess`], a relay, because this
//!   kernel has no 802.1Q module), so on the wire their adverts are 802.1Q-tagged frames that
//!   would win xvrrp's election (higher priority, same VRID, version and interval) if xvrrp took a
//!   tagged frame as its untagged instance's.
//!
//! On top, forged VLAN-9-tagged adverts for VRID 51 at priority 254 are sent from host `f`
//! (VLAN 9, so that only xvrrp could be misled by them), from a source that is not in the lab.
//! The switch ports of the untagged hosts transmit tagged frames with the tag in the frame data
//! ([`tags_in_frame_data`]), as a wire does, so the XDP program sees
//! the tag. After convergence nothing may change for 8 s: each pair has exactly one Master and
//! exactly one holder of its VIP (the expected one), xvrrp's Backup counts the Master's adverts per
//! peer, and the frames that are not its own are counted as "not ours" on the interface (with XDP,
//! where the program sees them; the socket path never receives the tagged ones, the kernel drops
//! frames of VLANs it has no interface for). Both receive modes.

use std::{net::Ipv4Addr, time::Duration};

use rstest::rstest;
use xvrrp::packet::{build_frame, Advert, EthParams, TxMeta, VlanTag};
use xvrrp_tests::{
    agent::{Agent, Rx},
    forge,
    lab::{Host, Keepalived, Lab},
    status::Counter,
    vlan::{tags_in_frame_data, VlanAccess},
    wait_until,
};

const ELECTION: Duration = Duration::from_secs(20);
const HOLD: Duration = Duration::from_secs(8);

fn xvrrp_conf(priority: u8, vip: Ipv4Addr) -> String {
    format!(
        "vrrp_instance VI_X {{\n    interface eth1\n    state BACKUP\n    virtual_router_id 51\n    \
         priority {priority}\n    version 3\n    advert_int 1\n    virtual_ipaddress {{\n        \
         {vip}/24 dev eth1\n    }}\n}}\n"
    )
}

fn keepalived_conf(vrid: u8, priority: u8, vip: Ipv4Addr) -> String {
    format!(
        "global_defs {{\n    vrrp_version 3\n}}\nvrrp_instance VI_K {{\n    interface eth1\n    \
         state BACKUP\n    virtual_router_id {vrid}\n    priority {priority}\n    advert_int 1\n    \
         virtual_ipaddress {{\n        {vip}/24 dev eth1\n    }}\n}}\n"
    )
}

/// Who of `hosts` holds `vip` now.
fn holders(hosts: &[&Host], vip: Ipv4Addr) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| h.has_addr(vip))
        .map(|h| h.name().to_owned())
        .collect()
}

/// The `not_ours` count of the agent's interface `eth1`.
fn not_ours(agent: &Agent) -> Option<u64> {
    agent.counters()?.not_ours("eth1")
}

/// `advert_rcvd` counted for `peer` on VRID 51.
fn adverts_from(agent: &Agent, peer: Ipv4Addr) -> u64 {
    agent
        .counters()
        .and_then(|c| {
            c.peers().iter().find_map(|p| {
                (p.vrid() == Some(51) && p.peer() == peer.to_string())
                    .then(|| p.try_get(Counter::AdvertRcvd))
                    .flatten()
            })
        })
        .unwrap_or(0)
}

/// (state, times it became Master) of the agent's instance.
fn role(agent: &Agent) -> Option<(String, u64)> {
    let i = agent.instance()?;
    Some((i.state()?, i.counters().map_or(0, |c| c.become_master)))
}

/// VLAN-9-tagged VRRPv3 adverts for VRID 51 at priority 254 from a stranger, to the VRRP group
/// (otherwise valid for xvrrp's instance: same version, interval and VIP).
fn forged_tagged_adverts(count: usize) -> Vec<Vec<u8>> {
    let src = Ipv4Addr::new(10, 88, 0, 250);
    let group = Ipv4Addr::new(224, 0, 0, 18);
    let advert = Advert::v3(51, 254, vec![Ipv4Addr::new(10, 88, 0, 100).into()], 100);
    let frame = build_frame(
        &advert,
        &TxMeta::new(src.into(), group.into()),
        &EthParams::virtual_router(51, &group.into()).with_vlan(VlanTag::new(9)),
    )
    .unwrap();
    vec![frame; count]
}

fn neighbours(rx: Rx) {
    let lab = Lab::new();
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let f = lab.add_host("f");
    let t1 = lab.add_host("t1");
    let t2 = lab.add_host("t2");
    let (vip_x, vip_k, vip_t) = (lab.addr4(100), lab.addr4(101), lab.addr4(102));
    tags_in_frame_data(lab.switch(), &[a.port(), b.port(), f.port()]);
    let vlan = [
        VlanAccess::new(&lab, t1.port(), 7),
        VlanAccess::new(&lab, t2.port(), 7),
    ];

    let mut ka: Vec<Keepalived> = vec![
        a.start_keepalived(&keepalived_conf(52, 100, vip_k)),
        b.start_keepalived(&keepalived_conf(52, 200, vip_k)),
        t1.start_keepalived(&keepalived_conf(51, 250, vip_t)),
        t2.start_keepalived(&keepalived_conf(51, 240, vip_t)),
    ];
    let xa = Agent::start(a.ns(), &xvrrp_conf(200, vip_x), &rx.args());
    let xb = Agent::start(b.ns(), &xvrrp_conf(100, vip_x), &rx.args());
    let logs = |ka: &[Keepalived]| {
        format!(
            "--- xvrrp a ---\n{}\n--- xvrrp b ---\n{}\n--- keepalived a ---\n{}\n--- keepalived b ---\n{}\n--- t1 ---\n{}\n--- t2 ---\n{}\nrelayed (up, down): {:?} {:?}",
            xa.log(),
            xb.log(),
            ka[0].log(),
            ka[1].log(),
            ka[2].log(),
            ka[3].log(),
            vlan[0].relayed.iter().map(|n| n.load(std::sync::atomic::Ordering::Relaxed)).collect::<Vec<_>>(),
            vlan[1].relayed.iter().map(|n| n.load(std::sync::atomic::Ordering::Relaxed)).collect::<Vec<_>>(),
        )
    };

    // Convergence: each pair's expected Master holds its VIP, alone.
    let expected = [
        (vec![&a, &b], vip_x, "a"),
        (vec![&a, &b], vip_k, "b"),
        (vec![&t1, &t2], vip_t, "t1"),
    ];
    let converged = wait_until(ELECTION, || {
        expected
            .iter()
            .all(|(hosts, vip, who)| holders(hosts, *vip) == [*who])
    }) && wait_until(ELECTION, || {
        xa.state().as_deref() == Some("Master") && xb.state().as_deref() == Some("Backup")
    });
    assert!(
        converged,
        "[{rx}] not converged: {:?}\n{}",
        expected
            .iter()
            .map(|(h, v, _)| holders(h, *v))
            .collect::<Vec<_>>(),
        logs(&ka)
    );
    // Let every node leave its start-up phase (a keepalived Backup's first Master_Down).
    std::thread::sleep(Duration::from_secs(4));
    let roles = [role(&xa).unwrap(), role(&xb).unwrap()];
    let heard = adverts_from(&xb, a.ip4());
    let not_ours_before = [not_ours(&xa).unwrap(), not_ours(&xb).unwrap()];

    // Forged tagged adverts that would win xvrrp's election, straight at the LAN, during the
    // hold; every pair must stay as it is throughout.
    let forger = std::thread::spawn({
        let from = f.clone();
        move || {
            for _ in 0..8 {
                forge::send_frames(from.ns(), "eth1", forged_tagged_adverts(5));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    let steady = std::time::Instant::now();
    while steady.elapsed() < HOLD {
        for (hosts, vip, who) in &expected {
            assert_eq!(
                holders(hosts, *vip),
                [*who],
                "[{rx}] VIP {vip} moved during the hold\n{}",
                logs(&ka)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    forger.join().unwrap();
    assert_eq!(
        [role(&xa).unwrap(), role(&xb).unwrap()],
        roles,
        "[{rx}] xvrrp's roles changed during the hold\n{}",
        logs(&ka)
    );
    for k in &mut ka {
        assert!(k.running(), "[{rx}] a keepalived died\n{}", k.log());
    }

    // xvrrp still counts and handles its own adverts: the Backup heard its Master all along.
    let heard_after = adverts_from(&xb, a.ip4());
    assert!(
        heard_after >= heard + 6,
        "[{rx}] b counted {heard} then {heard_after} adverts from a over {HOLD:?}"
    );
    // And counts what was not its own: `a` hears keepalived's VRID 52 Master (`b`) on its
    // interface, in both modes; with XDP both also see the tagged frames (8 s of t1's adverts
    // and 40 forged), which the socket path never receives.
    let not_ours_after = [not_ours(&xa).unwrap(), not_ours(&xb).unwrap()];
    eprintln!("[{rx}] not_ours before/after the hold: {not_ours_before:?} -> {not_ours_after:?}");
    assert!(
        not_ours_after[0] >= not_ours_before[0] + 6,
        "[{rx}] a: not ours {} -> {}",
        not_ours_before[0],
        not_ours_after[0]
    );
    if rx == Rx::Xdp {
        assert!(
            not_ours_after[1] >= not_ours_before[1] + 40,
            "[xdp] b counted {} -> {} not-ours frames: the tagged ones are missing",
            not_ours_before[1],
            not_ours_after[1]
        );
    }
}

#[rstest]
fn keepalived_pairs_on_another_vrid_and_on_a_vlan_keep_one_master(
    #[values(Rx::Xdp, Rx::Socket)] rx: Rx,
) {
    neighbours(rx);
}

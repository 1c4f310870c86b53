//! Deterministic simulator scenarios with exact transition times.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use xvrrp::sim::{Net, Op, Scenario, Sim, TransitionRecord};
use xvrrp::vrrp::{InitialState, Params, Reason, State, Time, Version};

fn node(version: Version, interval_ms: u64, priority: u8, last: u8) -> Params {
    let mut p = Params::new(1, version, IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)));
    p.priority = priority;
    p.advert_interval = Duration::from_millis(interval_ms);
    p
}

fn t(us: u64) -> Time {
    Time::from_micros(us)
}

fn fixed_delay(us: u64) -> Net {
    Net {
        loss_ppm: 0,
        delay_min: Duration::from_micros(us),
        delay_max: Duration::from_micros(us),
    }
}

/// (time µs, node, to) of every transition, for compact comparison.
fn summary(sim: &Sim) -> Vec<(u64, usize, State)> {
    sim.transitions()
        .iter()
        .map(|r: &TransitionRecord| (r.at.as_micros(), r.node, r.to))
        .collect()
}

fn start_all(n: usize) -> Vec<(Time, Op)> {
    (0..n).map(|i| (Time::ZERO, Op::Start(i))).collect()
}

#[test]
fn v2_two_nodes_elect_the_higher_priority_and_fail_over_after_master_down_interval() {
    let mut ops = start_all(2);
    ops.push((t(10_000_000), Op::Crash(1)));
    let sim = Sim::replay(&Scenario {
        seed: 1,
        nodes: vec![
            node(Version::V2, 1000, 100, 1),
            node(Version::V2, 1000, 200, 2),
        ],
        net: Net::PERFECT,
        ops,
        until: t(20_000_000),
    })
    .unwrap();
    assert_eq!(
        summary(&sim),
        vec![
            (0, 0, State::Backup),
            (0, 1, State::Backup),
            // priority 200: 3 s + 56/256 s
            (3_218_750, 1, State::Master),
            // last advert from n1 at 9.21875 s + 3.609375 s
            (12_828_125, 0, State::Master),
        ],
        "{}",
        sim.report(Some(50))
    );
}

#[test]
fn v3_100ms_graceful_shutdown_hands_over_after_skew_time() {
    let mut ops = start_all(3);
    ops.push((t(1_000_000), Op::Shutdown(2)));
    let sim = Sim::replay(&Scenario {
        seed: 2,
        nodes: vec![
            node(Version::V3, 100, 100, 1),
            node(Version::V3, 100, 150, 2),
            node(Version::V3, 100, 200, 3),
        ],
        net: fixed_delay(1000),
        ops,
        until: t(3_000_000),
    })
    .unwrap();
    assert_eq!(
        summary(&sim),
        vec![
            (0, 0, State::Backup),
            (0, 1, State::Backup),
            (0, 2, State::Backup),
            // 300 ms + 56 * 100 ms / 256
            (321_875, 2, State::Master),
            (1_000_000, 2, State::Initialize),
            // priority-0 advert arrives at 1.001 s; skew(150) = 106 * 100000 / 256 = 41406
            (1_042_406, 1, State::Master),
        ],
        "{}",
        sim.report(Some(50))
    );
    assert_eq!(
        sim.transitions()[5].reason,
        Reason::MasterLeft,
        "{}",
        sim.report(Some(50))
    );
}

#[test]
fn initial_state_master_takes_over_early_then_yields_to_higher_priority_backup() {
    let mut low = node(Version::V2, 1000, 100, 1);
    low.initial_state = InitialState::Master;
    let sim = Sim::replay(&Scenario {
        seed: 3,
        nodes: vec![low, node(Version::V2, 1000, 200, 2)],
        net: Net::PERFECT,
        ops: start_all(2),
        until: t(10_000_000),
    })
    .unwrap();
    assert_eq!(
        summary(&sim),
        vec![
            (0, 0, State::Backup),
            (0, 1, State::Backup),
            // keepalived: one interval + 1/256 s
            (1_003_906, 0, State::Master),
            // n1 discarded the lower-priority adverts and preempts at its own deadline
            (3_218_750, 1, State::Master),
            (3_218_750, 0, State::Backup),
        ],
        "{}",
        sim.report(Some(50))
    );
}

#[test]
fn partitioned_backup_becomes_master_and_steps_down_when_the_partition_heals() {
    let mut ops = start_all(2);
    ops.push((t(10_000_000), Op::Partition(vec![vec![0], vec![1]])));
    ops.push((t(20_000_000), Op::Heal));
    let sim = Sim::replay(&Scenario {
        seed: 4,
        nodes: vec![
            node(Version::V3, 1000, 100, 1),
            node(Version::V3, 1000, 200, 2),
        ],
        net: Net::PERFECT,
        ops,
        until: t(30_000_000),
    })
    .unwrap();
    assert_eq!(
        summary(&sim),
        vec![
            (0, 0, State::Backup),
            (0, 1, State::Backup),
            (3_218_750, 1, State::Master),
            (12_828_125, 0, State::Master),
            // n1's first advert after the heal
            (20_218_750, 0, State::Backup),
        ],
        "{}",
        sim.report(Some(50))
    );
}

#[test]
fn v3_backup_adopts_the_masters_interval_for_failover() {
    let mut ops = start_all(2);
    ops.push((t(5_000_000), Op::Crash(1)));
    let sim = Sim::replay(&Scenario {
        seed: 5,
        nodes: vec![
            node(Version::V3, 1000, 100, 1),
            node(Version::V3, 500, 200, 2),
        ],
        net: Net::PERFECT,
        ops,
        until: t(10_000_000),
    })
    .unwrap();
    // n1: Master at 3 * 0.5 s + 56 * 0.5 s / 256 = 1.609375 s (Master_Adver_Interval starts
    // as its own Advert_Interval). Adverts every 0.5 s: the last before the crash at 4.609375 s.
    // n0 adopted 0.5 s: MDI = 1.5 s + 156 * 500000 / 256 = 1.804687 s (instead of 3.609375 s).
    assert_eq!(
        summary(&sim),
        vec![
            (0, 0, State::Backup),
            (0, 1, State::Backup),
            (1_609_375, 1, State::Master),
            (4_609_375 + 1_804_687, 0, State::Master),
        ],
        "{}",
        sim.report(Some(50))
    );
}

#[test]
fn crash_and_restart_of_the_higher_priority_node_preempts_back() {
    let mut ops = start_all(2);
    ops.push((t(5_000_000), Op::Crash(1)));
    ops.push((t(15_000_000), Op::Restart(1)));
    let sim = Sim::replay(&Scenario {
        seed: 6,
        nodes: vec![
            node(Version::V2, 1000, 100, 1),
            node(Version::V2, 1000, 200, 2),
        ],
        net: Net::PERFECT,
        ops,
        until: t(25_000_000),
    })
    .unwrap();
    assert_eq!(
        summary(&sim),
        vec![
            (0, 0, State::Backup),
            (0, 1, State::Backup),
            (3_218_750, 1, State::Master),
            (4_218_750 + 3_609_375, 0, State::Master),
            (15_000_000, 1, State::Backup),
            // restarted n1 discards n0's lower adverts and preempts at its deadline
            (18_218_750, 1, State::Master),
            (18_218_750, 0, State::Backup),
        ],
        "{}",
        sim.report(Some(50))
    );
}

#[test]
fn replay_is_exactly_reproducible_with_loss_and_jitter() {
    let mut nodes = Vec::new();
    for (i, prio) in [90u8, 120, 200, 150].into_iter().enumerate() {
        nodes.push(node(Version::V3, 100, prio, u8::try_from(i).unwrap() + 1));
    }
    let mut ops = start_all(4);
    ops.push((t(2_000_000), Op::Crash(2)));
    ops.push((t(4_000_000), Op::Restart(2)));
    let scenario = Scenario {
        seed: 0xdead_beef,
        nodes,
        net: Net {
            loss_ppm: 200_000,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(3000),
        },
        ops,
        until: t(8_000_000),
    };
    let a = Sim::replay(&scenario).unwrap();
    let b = Sim::replay(&scenario).unwrap();
    assert_eq!(a.format_trace(), b.format_trace());
    assert!(a.trace().len() > 100);
}

#[test]
fn after_a_heal_the_master_answers_a_lower_priority_advert_at_once() {
    // Heal at 20.5 s: the stale master n0 sends at 20.828125 s, before n1's next regular advert
    // (21.21875 s); n1 answers immediately (RFC 9568 / keepalived), so n0 steps down at once.
    let mut ops = start_all(2);
    ops.push((t(10_000_000), Op::Partition(vec![vec![0], vec![1]])));
    ops.push((t(20_500_000), Op::Heal));
    let sim = Sim::replay(&Scenario {
        seed: 7,
        nodes: vec![
            node(Version::V3, 1000, 100, 1),
            node(Version::V3, 1000, 200, 2),
        ],
        net: Net::PERFECT,
        ops,
        until: t(30_000_000),
    })
    .unwrap();
    assert_eq!(
        summary(&sim)[4..],
        [(20_828_125, 0, State::Backup)],
        "{}",
        sim.report(Some(50))
    );
}

//! Simulator properties with dozens of instances per host on one event loop each
//! (`xvrrp::sim::hosts`): after convergence nothing changes, every Master's adverts leave on
//! time, and a killed host's VRIDs are all taken over within Master_Down_Interval + 100 ms.
//! The loop's costs are modelled per action; announcements are queued to a worker (no cost on
//! the loop), as the agent does. A second test shows the model reproduces the flapping when
//! announcements run on the loop, so the property is not vacuous.
//!
//! Replay one case: `XVRRP_SIM_SEED=<seed> cargo test -p agent --test sim_many_instances`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use xvrrp::sim::hosts::{host_address, HostSim, LoopCost};
use xvrrp::sim::Rng;
use xvrrp::vrrp::time::master_down_interval;
use xvrrp::vrrp::{Params, State, Time, Version};

const OFFLOADED: LoopCost = LoopCost {
    per_event: Duration::from_micros(20),
    per_advert: Duration::from_micros(30),
    per_address_change: Duration::from_micros(100),
    per_announce: Duration::ZERO,
};

struct Case {
    sim: HostSim,
    n: u8,
    owner: Vec<usize>,
    interval: Duration,
}

fn draw(seed: u64, cost: LoopCost, n: Option<u8>, interval: Option<Duration>) -> Case {
    let mut rng = Rng::new(seed);
    let n = n.unwrap_or(rng.range(20, 80) as u8);
    let interval = interval
        .unwrap_or([Duration::from_millis(100), Duration::from_secs(1)][rng.range(0, 1) as usize]);
    let mut hosts = vec![Vec::new(), Vec::new()];
    let mut owner = vec![0; 256];
    for vrid in 1..=n {
        let o = rng.range(0, 1) as usize;
        owner[usize::from(vrid)] = o;
        for (h, list) in hosts.iter_mut().enumerate() {
            let mut p = Params::new(vrid, Version::V3, host_address(h));
            p.priority = if h == o { 200 } else { 100 };
            p.advert_interval = interval;
            list.push(p);
        }
    }
    let sim = HostSim::new(seed, hosts, cost, Duration::from_millis(1)).unwrap();
    Case {
        sim,
        n,
        owner,
        interval,
    }
}

fn at(d: Duration) -> Time {
    Time::from_micros(d.as_micros() as u64)
}

fn check(seed: u64) {
    let Case {
        mut sim,
        n,
        owner,
        interval,
    } = draw(seed, OFFLOADED, None, None);
    let ctx = format!("seed {seed}: {n} VRIDs x {interval:?}");
    let converge = interval * 12;
    sim.run_until(at(converge));
    for vrid in 1..=n {
        let o = owner[usize::from(vrid)];
        assert_eq!(
            sim.state(o, vrid),
            Some(State::Master),
            "{ctx}: VRID {vrid} owner"
        );
        assert_eq!(
            sim.state(1 - o, vrid),
            Some(State::Backup),
            "{ctx}: VRID {vrid} other"
        );
    }
    let settled = sim.transitions().len();
    let hold_end = converge + interval * 30;
    sim.run_until(at(hold_end));
    assert_eq!(
        sim.transitions().len(),
        settled,
        "{ctx}: state changed after convergence: {:?}",
        &sim.transitions()[settled..]
    );
    // Every owner's adverts no more than one interval + 10 ms apart.
    let mut last = vec![None::<Time>; 256];
    for w in sim.wire().iter().filter(|w| w.at > at(converge)) {
        assert_eq!(
            w.host,
            owner[usize::from(w.vrid)],
            "{ctx}: a Backup advertised"
        );
        if let Some(prev) = last[usize::from(w.vrid)] {
            let gap = w.at.as_micros() - prev.as_micros();
            assert!(
                gap <= (interval + Duration::from_millis(10)).as_micros() as u64,
                "{ctx}: VRID {} adverts {gap} µs apart",
                w.vrid
            );
        }
        last[usize::from(w.vrid)] = Some(w.at);
    }
    // Kill host 1: host 0 takes every VRID within MDI + 100 ms of its last advert.
    sim.kill(1);
    let killed = sim.now();
    let mdi = master_down_interval(Version::V3, 100, interval.as_micros() as u64);
    sim.run_until(killed.add_micros(mdi * 2));
    for vrid in 1..=n {
        assert_eq!(
            sim.state(0, vrid),
            Some(State::Master),
            "{ctx}: VRID {vrid} taken over"
        );
        if owner[usize::from(vrid)] != 1 {
            continue;
        }
        let last_b = sim
            .wire()
            .iter()
            .filter(|w| w.vrid == vrid && w.host == 1)
            .map(|w| w.at)
            .max()
            .unwrap();
        let first_a = sim
            .wire()
            .iter()
            .find(|w| w.vrid == vrid && w.host == 0 && w.at > last_b)
            .map(|w| w.at)
            .unwrap();
        let took = first_a.as_micros() - last_b.as_micros();
        assert!(
            took <= mdi + 100_000,
            "{ctx}: VRID {vrid} taken over {took} µs after the last advert (MDI {mdi} µs)"
        );
    }
}

#[test]
fn dozens_of_instances_per_host_keep_time() {
    if let Some(seed) = std::env::var("XVRRP_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        check(seed);
        return;
    }
    for seed in 0..24 {
        check(seed);
    }
}

#[test]
fn all_255_vrids_on_two_hosts_keep_time() {
    let Case {
        mut sim,
        n,
        owner,
        interval,
    } = draw(7, OFFLOADED, Some(255), Some(Duration::from_secs(1)));
    sim.run_until(at(interval * 12));
    let settled = sim.transitions().len();
    sim.run_until(at(interval * 72));
    assert_eq!(sim.transitions().len(), settled);
    for vrid in 1..=n {
        let o = owner[usize::from(vrid)];
        assert_eq!(sim.state(o, vrid), Some(State::Master));
    }
}

/// The model is not vacuous: with announcements sent on the loop (5 GARPs at ~15 ms each per
/// burst, what the first agent did), 50 VRIDs at 0.1 s flap after start-up.
#[test]
fn announcements_on_the_loop_make_backups_flap() {
    let inline = LoopCost {
        per_announce: Duration::from_millis(75),
        ..OFFLOADED
    };
    let Case { mut sim, .. } = draw(1, inline, Some(50), Some(Duration::from_millis(100)));
    sim.run_until(at(Duration::from_secs(2)));
    let settled = sim.transitions().len();
    sim.run_until(at(Duration::from_secs(32)));
    let flaps = sim.transitions().len() - settled;
    assert!(
        flaps > 100,
        "expected the model to flap, saw {flaps} changes"
    );
}

//! Property tests over the deterministic simulator.
//!
//! Every case is fully determined by one `u64` seed (the cluster, its start times, the network
//! and the faults are all drawn from it), so a failure message carries the seed and the trace,
//! and can be replayed with the full trace:
//!
//! ```text
//! XVRRP_SIM_PROPERTY=<name> XVRRP_SIM_SEED=<seed> \
//!     cargo test -p agent --test sim_properties replay_from_env -- --nocapture
//! ```
//!
//! Bounds used below (`I` = advert interval, `D` = maximum one-way delay, `MDI(n)` and
//! `Skew(n)` = node n's Master_Down_Interval and Skew_Time; all nodes share `I`):
//! - the top node (highest priority, then highest address) is never reset by lower adverts, so
//!   it becomes Master by `its start + MDI(top)` and never leaves (nothing outranks it);
//! - once the top is Master, any other Master hears one of its adverts within `I + D` and steps
//!   down, and any Backup is reset at least every `I + jitter < MDI`.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;
use xvrrp::sim::{Net, Op, Rng, Sim};
use xvrrp::vrrp::time::{master_down_interval, skew_time};
use xvrrp::vrrp::{InitialState, Params, State, Time, Version};

const CASES: u32 = 256;

/// A cluster drawn from a seed.
struct Cluster {
    rng: Rng,
    nodes: Vec<Params>,
    version: Version,
    /// Advert interval, µs.
    interval: u64,
    net: Net,
    starts: Vec<u64>,
}

impl Cluster {
    /// `distinct`: all priorities differ (one may be the owner, 255). Otherwise priorities come
    /// from a two-value set, everyone is initial BACKUP and starts at time 0.
    fn draw(seed: u64, distinct: bool) -> Cluster {
        let mut rng = Rng::new(seed);
        let version = if rng.range(0, 1) == 0 {
            Version::V2
        } else {
            Version::V3
        };
        let interval = match version {
            Version::V2 => 1_000_000,
            Version::V3 => [1_000_000, 100_000][rng.range(0, 1) as usize],
        };
        let n = rng.range(2, 5) as usize;
        let pair = [rng.range(1, 254) as u8, rng.range(1, 254) as u8];
        let mut prios: Vec<u8> = Vec::new();
        while prios.len() < n {
            let p = if distinct {
                rng.range(1, 254) as u8
            } else {
                pair[rng.range(0, 1) as usize]
            };
            if !distinct || !prios.contains(&p) {
                prios.push(p);
            }
        }
        if distinct && rng.range(0, 4) == 0 {
            prios[0] = 255;
        }
        let mut addrs: Vec<u32> = Vec::new();
        while addrs.len() < n {
            let a = 0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff);
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        let nodes = (0..n)
            .map(|i| {
                let mut p = Params::new(1, version, IpAddr::V4(Ipv4Addr::from(addrs[i])));
                p.priority = prios[i];
                p.advert_interval = Duration::from_micros(interval);
                if distinct && rng.range(0, 2) == 0 {
                    p.initial_state = InitialState::Master;
                }
                p
            })
            .collect();
        let delay_min = rng.range(0, interval / 100);
        let delay_max = delay_min + rng.range(0, interval / 20);
        let net = Net {
            loss_ppm: 0,
            delay_min: Duration::from_micros(delay_min),
            delay_max: Duration::from_micros(delay_max),
        };
        let starts = (0..n)
            .map(|_| {
                if distinct {
                    rng.range(0, 2 * interval)
                } else {
                    0
                }
            })
            .collect();
        Cluster {
            rng,
            nodes,
            version,
            interval,
            net,
            starts,
        }
    }

    fn delay_max(&self) -> u64 {
        self.net.delay_max.as_micros() as u64
    }

    fn mdi(&self, i: usize) -> u64 {
        master_down_interval(self.version, self.nodes[i].priority, self.interval)
    }

    fn skew(&self, i: usize) -> u64 {
        skew_time(self.version, self.nodes[i].priority, self.interval)
    }

    /// The node that must win among `candidates`: highest priority, then highest address.
    fn best(&self, candidates: impl Iterator<Item = usize>) -> usize {
        candidates
            .max_by_key(|&i| (self.nodes[i].priority, self.nodes[i].primary_address))
            .unwrap()
    }

    fn top(&self) -> usize {
        self.best(0..self.nodes.len())
    }

    /// Time by which the cluster has converged (see module docs).
    fn converged_by(&self) -> Time {
        let last_start = *self.starts.iter().max().unwrap();
        let max_mdi = (0..self.nodes.len()).map(|i| self.mdi(i)).max().unwrap();
        Time::from_micros(last_start + max_mdi + self.interval + 3 * self.delay_max() + 1)
    }

    fn sim(&self) -> Sim {
        let mut sim = Sim::new(self.rng.clone().next_u64(), self.nodes.clone(), self.net).unwrap();
        for (i, &s) in self.starts.iter().enumerate() {
            sim.schedule(Time::from_micros(s), Op::Start(i));
        }
        sim
    }
}

type Outcome = (Sim, Result<(), String>);

/// A property: seed in, simulator and verdict out.
type Property = fn(u64) -> Outcome;

macro_rules! ensure {
    ($sim:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            let msg = format!($($fmt)+);
            return ($sim, Err(msg));
        }
    };
}

/// Exactly `expected` is Master now.
fn only_master(sim: &Sim, expected: usize) -> bool {
    sim.masters() == vec![expected]
}

// ---- properties ------------------------------------------------------------------------------

/// After convergence exactly one Master, the top node; then no transitions at all for 50
/// intervals (no loss).
fn converges_to_the_top_node_and_stays(seed: u64) -> Outcome {
    let c = Cluster::draw(seed, true);
    let mut sim = c.sim();
    let t = c.converged_by();
    sim.run_until(t);
    let top = c.top();
    ensure!(
        sim,
        only_master(&sim, top),
        "at {t}: masters {:?}, want [n{top}]",
        sim.masters()
    );
    sim.run_until(t.add_micros(50 * c.interval));
    let late = sim.transitions_after(t);
    ensure!(
        sim,
        late.is_empty(),
        "transitions after convergence: {late:?}"
    );
    (sim, Ok(()))
}

/// Equal priorities started together: the greatest primary address wins (the tie-break applies
/// between simultaneous masters; a Backup accepts an equal-priority master, so with staggered
/// starts the first one to become master keeps it, which is RFC behaviour).
fn simultaneous_ties_go_to_the_greatest_address(seed: u64) -> Outcome {
    let c = Cluster::draw(seed, false);
    let mut sim = c.sim();
    let t = c.converged_by();
    sim.run_until(t);
    let top = c.top();
    ensure!(
        sim,
        only_master(&sim, top),
        "at {t}: masters {:?}, want [n{top}]",
        sim.masters()
    );
    sim.run_until(t.add_micros(50 * c.interval));
    let late = sim.transitions_after(t);
    ensure!(
        sim,
        late.is_empty(),
        "transitions after convergence: {late:?}"
    );
    (sim, Ok(()))
}

/// The Master crashes: the next-best node becomes Master within its Master_Down_Interval plus
/// the delay bound (and not before MDI - I after the crash), then it alone is Master.
fn master_crash_fails_over_within_master_down_interval(seed: u64) -> Outcome {
    let mut c = Cluster::draw(seed, true);
    let mut sim = c.sim();
    let top = c.top();
    let crash = c.converged_by().add_micros(c.rng.range(0, c.interval));
    sim.schedule(crash, Op::Crash(top));
    let next = c.best((0..c.nodes.len()).filter(|&i| i != top));
    let hi = crash.add_micros(c.mdi(next) + c.delay_max());
    let lo = Time::from_micros(
        (crash.as_micros() + c.mdi(next) + c.net.delay_min.as_micros() as u64)
            .saturating_sub(c.interval),
    );
    sim.run_until(hi);
    let took = sim
        .transitions_after(crash)
        .into_iter()
        .find(|r| r.node == next && r.to == State::Master);
    ensure!(
        sim,
        took.is_some_and(|r| r.at >= lo && r.at <= hi),
        "n{next} should take over in [{lo}, {hi}] after crash at {crash}; got {took:?}"
    );
    let settled = hi.add_micros(c.interval + 3 * c.delay_max() + 1);
    sim.run_until(settled);
    ensure!(
        sim,
        only_master(&sim, next),
        "at {settled}: masters {:?}, want [n{next}]",
        sim.masters()
    );
    sim.run_until(settled.add_micros(20 * c.interval));
    let late = sim.transitions_after(settled);
    ensure!(
        sim,
        late.is_empty(),
        "transitions after failover settled: {late:?}"
    );
    (sim, Ok(()))
}

/// A partition (2 or 3 groups, for anything from one interval to 3 x MDI) heals: within one
/// advert interval plus the delay bound exactly one Master (the top node), then stable.
fn partition_heal_leaves_one_master_within_one_interval(seed: u64) -> Outcome {
    let mut c = Cluster::draw(seed, true);
    let mut sim = c.sim();
    let n = c.nodes.len();
    let groups_n = c.rng.range(2, 3) as usize;
    let mut groups = vec![Vec::new(); groups_n];
    for i in 0..n {
        groups[c.rng.range(0, groups_n as u64 - 1) as usize].push(i);
    }
    let cut = c.converged_by().add_micros(c.rng.range(0, c.interval));
    let max_mdi = (0..n).map(|i| c.mdi(i)).max().unwrap();
    let heal = cut.add_micros(c.rng.range(c.interval, 3 * max_mdi));
    sim.schedule(cut, Op::Partition(groups));
    sim.schedule(heal, Op::Heal);
    let check = heal.add_micros(c.interval + c.delay_max() + 1);
    sim.run_until(check);
    let top = c.top();
    ensure!(
        sim,
        only_master(&sim, top),
        "healed at {heal}; at {check}: masters {:?}, want [n{top}]",
        sim.masters()
    );
    sim.run_until(check.add_micros(30 * c.interval));
    let late = sim.transitions_after(check);
    ensure!(
        sim,
        late.is_empty(),
        "transitions after the heal settled: {late:?}"
    );
    (sim, Ok(()))
}

/// Graceful shutdown of the Master (priority 0): the next-best node takes over after exactly its
/// Skew_Time plus the priority-0 advert's delay, then it alone is Master.
fn shutdown_hands_over_within_skew_time(seed: u64) -> Outcome {
    let mut c = Cluster::draw(seed, true);
    let mut sim = c.sim();
    let top = c.top();
    let stop = c.converged_by().add_micros(c.rng.range(0, c.interval));
    sim.schedule(stop, Op::Shutdown(top));
    let next = c.best((0..c.nodes.len()).filter(|&i| i != top));
    let lo = stop.add_micros(c.skew(next) + c.net.delay_min.as_micros() as u64);
    let hi = stop.add_micros(c.skew(next) + c.delay_max());
    sim.run_until(hi);
    let took = sim
        .transitions_after(stop)
        .into_iter()
        .find(|r| r.node == next && r.to == State::Master);
    ensure!(
        sim,
        took.is_some_and(|r| r.at >= lo && r.at <= hi),
        "n{next} should take over in [{lo}, {hi}] after shutdown at {stop}; got {took:?}"
    );
    let settled = hi.add_micros(c.interval + 3 * c.delay_max() + 1);
    sim.run_until(settled);
    ensure!(
        sim,
        only_master(&sim, next),
        "at {settled}: masters {:?}, want [n{next}]",
        sim.masters()
    );
    (sim, Ok(()))
}

/// Under loss (up to 30%) nothing is promised about the other nodes (they may flap), but the
/// top node becomes Master exactly when its first timer expires and never leaves; once the loss
/// stops, within one interval plus the delay bound it is the only Master, and stays so.
fn under_loss_the_top_node_holds_and_loss_ending_converges(seed: u64) -> Outcome {
    let mut c = Cluster::draw(seed, true);
    c.net.loss_ppm = c.rng.range(0, 300_000) as u32;
    let mut sim = c.sim();
    let top = c.top();
    let lossy_until = c.converged_by().add_micros(30 * c.interval);
    sim.schedule(
        lossy_until,
        Op::SetNet(Net {
            loss_ppm: 0,
            ..c.net
        }),
    );
    sim.run_until(lossy_until);
    let p = &c.nodes[top];
    let first_timer = if p.priority == 255 {
        0
    } else if p.initial_state == InitialState::Master {
        c.interval + skew_time(c.version, 255, c.interval)
    } else {
        c.mdi(top)
    };
    let want = Time::from_micros(c.starts[top] + first_timer);
    let mine: Vec<_> = sim.transitions().iter().filter(|r| r.node == top).collect();
    let became = mine.iter().find(|r| r.to == State::Master).map(|r| r.at);
    ensure!(
        sim,
        became == Some(want),
        "n{top} became Master at {became:?}, want {want}"
    );
    ensure!(
        sim,
        mine.last().is_some_and(|r| r.to == State::Master) && mine.len() <= 2,
        "n{top} left Master: {mine:?}"
    );
    let check = lossy_until.add_micros(c.interval + c.delay_max() + 1);
    sim.run_until(check);
    ensure!(
        sim,
        only_master(&sim, top),
        "loss off at {lossy_until}; at {check}: masters {:?}",
        sim.masters()
    );
    sim.run_until(check.add_micros(30 * c.interval));
    let late = sim.transitions_after(check);
    ensure!(
        sim,
        late.is_empty(),
        "transitions after loss ended: {late:?}"
    );
    (sim, Ok(()))
}

// ---- harness ---------------------------------------------------------------------------------

const PROPERTIES: &[(&str, Property)] = &[
    ("converge", converges_to_the_top_node_and_stays),
    ("ties", simultaneous_ties_go_to_the_greatest_address),
    ("crash", master_crash_fails_over_within_master_down_interval),
    (
        "partition",
        partition_heal_leaves_one_master_within_one_interval,
    ),
    ("shutdown", shutdown_hands_over_within_skew_time),
    (
        "loss",
        under_loss_the_top_node_holds_and_loss_ending_converges,
    ),
];

fn run(name: &str, seed: u64) -> Result<(), TestCaseError> {
    let f = PROPERTIES.iter().find(|(n, _)| *n == name).unwrap().1;
    let (sim, res) = f(seed);
    res.map_err(|msg| {
        TestCaseError::fail(format!(
            "property `{name}` failed: {msg}\nreplay: XVRRP_SIM_PROPERTY={name} \
             XVRRP_SIM_SEED={seed:#x} cargo test -p agent --test sim_properties \
             replay_from_env -- --nocapture\n{}",
            sim.report(Some(150))
        ))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn prop_converges_to_the_top_node_and_stays(seed in any::<u64>()) {
        run("converge", seed)?;
    }

    #[test]
    fn prop_simultaneous_ties_go_to_the_greatest_address(seed in any::<u64>()) {
        run("ties", seed)?;
    }

    #[test]
    fn prop_master_crash_fails_over_within_master_down_interval(seed in any::<u64>()) {
        run("crash", seed)?;
    }

    #[test]
    fn prop_partition_heal_leaves_one_master_within_one_interval(seed in any::<u64>()) {
        run("partition", seed)?;
    }

    #[test]
    fn prop_shutdown_hands_over_within_skew_time(seed in any::<u64>()) {
        run("shutdown", seed)?;
    }

    #[test]
    fn prop_under_loss_the_top_node_holds_and_loss_ending_converges(seed in any::<u64>()) {
        run("loss", seed)?;
    }
}

/// Replays one seed of one property with the full trace (no-op unless the variables are set).
#[test]
fn replay_from_env() {
    let (Ok(name), Ok(seed)) = (
        std::env::var("XVRRP_SIM_PROPERTY"),
        std::env::var("XVRRP_SIM_SEED"),
    ) else {
        return;
    };
    let seed = match seed.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => seed.parse().unwrap(),
    };
    let f = PROPERTIES.iter().find(|(n, _)| *n == name).unwrap().1;
    let (sim, res) = f(seed);
    println!("{}", sim.report(None));
    println!("result: {res:?}");
}

/// The generators really cover what the properties claim to cover.
#[test]
fn generators_cover_v2_v3_both_intervals_2_to_5_nodes_owner_and_initial_master() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..400 {
        let c = Cluster::draw(seed, true);
        seen.insert(format!("{:?}-{}", c.version, c.interval));
        seen.insert(format!("n{}", c.nodes.len()));
        if c.nodes.iter().any(|p| p.priority == 255) {
            seen.insert("owner".into());
        }
        if c.nodes
            .iter()
            .any(|p| p.initial_state == InitialState::Master)
        {
            seen.insert("initial-master".into());
        }
    }
    for want in [
        "V2-1000000",
        "V3-1000000",
        "V3-100000",
        "n2",
        "n3",
        "n4",
        "n5",
        "owner",
        "initial-master",
    ] {
        assert!(seen.contains(want), "{want} not generated: {seen:?}");
    }
}

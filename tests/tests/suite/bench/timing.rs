//! `cargo xtask bench timing` (issue "Many instances keep time", item 5): how regularly each
//! Master's adverts leave, measured on the wire at the switch (the bridge in the switch
//! namespace), for xvrrp and keepalived 2.2.7 on the same two-host lab and configs: VRRPv3
//! multicast on one interface, VRIDs 1..N with a /32 VIP each, odd VRIDs owned by host a
//! (priority 200 there, 100 on b), even ones by b. Scenarios: 1, 50 and 255 VRIDs at 1 s and
//! 50 at 0.1 s. Per scenario and daemon: the owner's gaps between consecutive adverts of each
//! VRID over the window, as jitter |gap - interval| (p50 / p99 / max), the largest gap, and
//! how many adverts a non-owner sent in the window (a flap).
//!
//! With `XVRRP_BENCH_RUNS` set (the xtask sets it) every scenario runs for both daemons and the
//! table is printed; without it the suite runs one short scenario of each daemon, so the bench
//! keeps working. Figures are printed, never asserted (beyond "it converged").

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use xvrrp_tests::{agent::Agent, lab::Lab, wait_until};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Daemon {
    Xvrrp,
    Keepalived,
}

use xvrrp_tests::bench::{many_owner_is_a as owner_is_a, many_vip as vip, percentile};

/// The same text serves both daemons (keepalived.conf syntax).
fn config(is_a: bool, n: u8, interval: Duration) -> String {
    xvrrp_tests::bench::many_vrids_config(is_a, n, interval, &["eth1"])
}

struct Figures {
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    max_gap_ms: f64,
    flaps: usize,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn measure(daemon: Daemon, n: u8, interval: Duration, window: Duration) -> Figures {
    let lab = Lab::new();
    let ha = lab.add_host("a");
    let hb = lab.add_host("b");
    let (ca, cb) = (config(true, n, interval), config(false, n, interval));
    // Keep whichever daemons run alive until the end of the measurement.
    let mut agents = Vec::new();
    let mut keepalived = Vec::new();
    match daemon {
        Daemon::Xvrrp => {
            agents.push(Agent::start(ha.ns(), &ca, &[]));
            agents.push(Agent::start(hb.ns(), &cb, &[]));
        }
        Daemon::Keepalived => {
            keepalived.push(ha.start_keepalived(&ca));
            keepalived.push(hb.start_keepalived(&cb));
        }
    }
    let converged = wait_until(Duration::from_secs(30) + interval * 20, || {
        let (aa, ab) = (ha.addrs("eth1"), hb.addrs("eth1"));
        (1..=n).all(|v| {
            let ip = IpAddr::V4(vip(v));
            aa.contains(&ip) == owner_is_a(v) && ab.contains(&ip) != owner_is_a(v)
        })
    });
    assert!(converged, "{daemon:?} {n} x {interval:?}: did not converge");
    // Let start-up GARP bursts and the first seconds pass.
    std::thread::sleep(interval * 3);
    let cap = lab.capture_switch("ip proto 112");
    let start = now_secs();
    std::thread::sleep(window);
    let end = now_secs();
    let adverts = cap.timed_adverts();
    let mut last: BTreeMap<(IpAddr, u8), f64> = BTreeMap::new();
    let mut jitter = Vec::new();
    let mut max_gap = 0.0f64;
    let mut flaps = 0;
    for (t, a) in adverts.iter().filter(|(t, _)| *t >= start && *t <= end) {
        let owner = if owner_is_a(a.vrid) {
            ha.ip4()
        } else {
            hb.ip4()
        };
        if a.src != IpAddr::V4(owner) {
            flaps += 1;
            continue;
        }
        if let Some(prev) = last.insert((a.src, a.vrid), *t) {
            let gap = t - prev;
            max_gap = max_gap.max(gap);
            jitter.push((gap - interval.as_secs_f64()).abs() * 1000.0);
        }
    }
    jitter.sort_by(f64::total_cmp);
    Figures {
        samples: jitter.len(),
        p50_ms: percentile(&jitter, 0.5),
        p99_ms: percentile(&jitter, 0.99),
        max_ms: jitter.last().copied().unwrap_or(f64::NAN),
        max_gap_ms: max_gap * 1000.0,
        flaps,
    }
}

#[test]
fn advert_interval_jitter() {
    xvrrp_tests::require_root();
    let full = std::env::var_os("XVRRP_BENCH_RUNS").is_some();
    let scenarios: Vec<(u8, Duration, Duration)> = if full {
        vec![
            (1, Duration::from_secs(1), Duration::from_secs(30)),
            (50, Duration::from_secs(1), Duration::from_secs(30)),
            (255, Duration::from_secs(1), Duration::from_secs(30)),
            (50, Duration::from_millis(100), Duration::from_secs(20)),
        ]
    } else {
        vec![(10, Duration::from_millis(100), Duration::from_secs(3))]
    };
    let mut table = String::from(
        "| VRIDs x interval | daemon | samples | jitter p50 ms | p99 ms | max ms | largest gap ms | non-owner adverts |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (n, interval, window) in scenarios {
        for daemon in [Daemon::Xvrrp, Daemon::Keepalived] {
            let f = measure(daemon, n, interval, window);
            let name = match daemon {
                Daemon::Xvrrp => "xvrrp",
                Daemon::Keepalived => "keepalived 2.2.7",
            };
            let row = format!(
                "| {n} x {}s | {name} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |\n",
                interval.as_secs_f64(),
                f.samples,
                f.p50_ms,
                f.p99_ms,
                f.max_ms,
                f.max_gap_ms,
                f.flaps
            );
            print!("{row}");
            table.push_str(&row);
            let scenario = format!("{n} VRIDs x {} s", interval.as_secs_f64());
            let imp = match daemon {
                Daemon::Xvrrp => xvrrp_tests::bench::Impl::Xvrrp,
                Daemon::Keepalived => xvrrp_tests::bench::Impl::Keepalived,
            };
            for (metric, v) in [
                ("jitter_p50_ms", f.p50_ms),
                ("jitter_p99_ms", f.p99_ms),
                ("jitter_max_ms", f.max_ms),
                ("largest_gap_ms", f.max_gap_ms),
                ("non_owner_adverts", f.flaps as f64),
            ] {
                xvrrp_tests::bench::result("timing", &scenario, imp, metric, v);
            }
        }
    }
    println!("\nadvert interval jitter on the wire (switch capture):\n{table}");
}

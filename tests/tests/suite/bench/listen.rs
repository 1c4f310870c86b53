//! `cargo xtask bench failover` (issue 4, item 6): in the namespace lab, the time from stopping
//! nginx on the primary to the client receiving "Secondary", for
//! - keepalived 2.2.7 with the tutorial's config and its `pidof`-style check every 2 s (the
//!   lab's per-namespace equivalent, [`Host::nginx_check_script`]),
//! - xvrrp with `vrrp_track_listen` (weight 0) and the tutorial's advert timers (v2, 1 s),
//! - xvrrp with `vrrp_track_listen` and v3 0.1 s adverts,
//!
//! and the detection latency alone: nginx's last listener gone to the priority-0 advert on the
//! primary's wire (an `AF_PACKET` capture; for xvrrp the listener close time is the kernel's
//! timestamp of the event, for keepalived, which has no such event, the moment nginx was told to
//! stop). The client loop uses 20 ms connect timeouts and retries 1 ms after a failure (a loop
//! without the pause spins a CPU of the two against the agents being measured).
//!
//! `XVRRP_BENCH_RUNS` sets the runs per variant (the xtask passes 10 or more); without it the
//! test suite does one run of each xvrrp variant and skips keepalived, to keep the bench working.

use std::{
    thread,
    time::{Duration, Instant, SystemTime},
};

use xvrrp_tests::site::listen::{
    capture_vrrp, fast_wait_body, first_priority_zero_us, listen_block, median_worst, unix_us,
    wait_kernel_source,
};
use xvrrp_tests::site::{logs, wait_state, Site, Timers, ELECTION, FAILOVER};
use xvrrp_tests::{
    agent::Agent,
    bench::{self, Impl},
    lab::{Keepalived, Nginx},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Keepalived,
    XvrrpTutorial,
    XvrrpV3Fast,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Keepalived => "keepalived 2.2.7, pidof check every 2 s (v2, 1 s adverts)",
            Variant::XvrrpTutorial => "xvrrp vrrp_track_listen (v2, 1 s adverts)",
            Variant::XvrrpV3Fast => "xvrrp vrrp_track_listen (v3, 0.1 s adverts)",
        }
    }
}

enum Daemons {
    Keepalived([Keepalived; 2]),
    Xvrrp([Agent; 2]),
}

struct Sample {
    client: Duration,
    detect: Option<Duration>,
}

fn run_variant(v: Variant, runs: u32) -> Vec<Sample> {
    let timers = if v == Variant::XvrrpV3Fast {
        Timers::V3Fast
    } else {
        Timers::Tutorial
    };
    let site = Site::new(timers);
    let mut web: [Nginx; 2] = site.start_web();
    let daemons = match v {
        Variant::Keepalived => Daemons::Keepalived(site.start_tutorial()),
        _ => {
            let (top, extra) = listen_block(None);
            Daemons::Xvrrp(site.start(&top, &extra))
        }
    };
    let diag = || match &daemons {
        Daemons::Keepalived(k) => format!("{}\n---\n{}", k[0].log(), k[1].log()),
        Daemons::Xvrrp(a) => logs(a),
    };
    let mut out = Vec::new();
    for run in 0..runs {
        // Steady state: the primary serves.
        site.client_sees("Primary", ELECTION)
            .unwrap_or_else(|| panic!("run {run}: never Primary\n{}", diag()));
        if let Daemons::Xvrrp(a) = &daemons {
            assert!(wait_state(&a[0], "Master", ELECTION), "{}", diag());
            assert!(wait_state(&a[1], "Backup", ELECTION), "{}", diag());
            let (kernel, t) = wait_kernel_source(&a[0]);
            assert!(kernel, "{t}\n{}", diag());
        }
        // Let a full advert exchange settle after the preemption.
        thread::sleep(match timers {
            Timers::Tutorial => Duration::from_millis(2500),
            Timers::V3Fast => Duration::from_millis(500),
        });
        // A random phase against the advert and check intervals (keepalived's check runs every
        // 2 s: stopping nginx at a fixed delay after the last preemption would bias it).
        let phase_max = match timers {
            Timers::Tutorial => 2000,
            Timers::V3Fast => 200,
        };
        thread::sleep(Duration::from_millis(pseudo_random() % phase_max));
        let mut cap = capture_vrrp(&site.primary);
        let client = site.client.clone();
        let vip = site.vip;
        let waiter = thread::spawn(move || fast_wait_body(&client, vip, "Secondary", FAILOVER));
        thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let t0_wall = SystemTime::now();
        web[0].stop();
        let seen = waiter
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("run {run}: never Secondary\n{}", diag()));
        let client_time = seen.duration_since(t0);
        let wire = first_priority_zero_us(&mut cap, site.primary.ip4());
        let closed_us = match &daemons {
            Daemons::Xvrrp(a) => a[0]
                .tracker("listen chk_http")
                .and_then(|t| t.last_listener_event_us())
                .unwrap_or_else(|| unix_us(t0_wall)),
            Daemons::Keepalived(_) => unix_us(t0_wall),
        };
        let detect = wire.map(|w| Duration::from_micros(w.saturating_sub(closed_us)));
        eprintln!(
            "  {} run {}: client sees Secondary after {client_time:?}; priority 0 on the wire after {detect:?}",
            v.name(),
            run + 1
        );
        out.push(Sample {
            client: client_time,
            detect,
        });
        web[0].start();
    }
    drop(daemons);
    out
}

/// A few random bits (no RNG crate in the test suite): the clock's nanoseconds, mixed.
fn pseudo_random() -> u64 {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[test]
fn failover_bench() {
    let runs: Option<u32> = std::env::var("XVRRP_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok());
    let variants: Vec<(Variant, u32)> = match runs {
        Some(n) => vec![
            (Variant::Keepalived, n.max(1)),
            (Variant::XvrrpTutorial, n.max(1)),
            (Variant::XvrrpV3Fast, n.max(1)),
        ],
        None => vec![(Variant::XvrrpTutorial, 1), (Variant::XvrrpV3Fast, 1)],
    };
    let mut table = Vec::new();
    for (v, n) in variants {
        eprintln!("{} ({n} runs)", v.name());
        let samples = run_variant(v, n);
        let client: Vec<Duration> = samples.iter().map(|s| s.client).collect();
        let detect: Vec<Duration> = samples.iter().filter_map(|s| s.detect).collect();
        let (cm, cw) = median_worst(&client);
        let det = if detect.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            let (dm, dw) = median_worst(&detect);
            (fmt_ms(dm), fmt_ms(dw))
        };
        table.push((v, samples.len(), cm, cw, det));
    }
    eprintln!();
    eprintln!("failover: nginx stopped on the primary -> client receives \"Secondary\" (ms)");
    eprintln!(
        "{:<58} {:>4} {:>10} {:>10} {:>14} {:>14}",
        "variant", "runs", "median", "worst", "detect median", "detect worst"
    );
    for (v, n, cm, cw, (dm, _)) in &table {
        let (imp, scenario) = match v {
            Variant::Keepalived => (Impl::Keepalived, "tutorial timers (v2, 1 s adverts)"),
            Variant::XvrrpTutorial => (Impl::Xvrrp, "tutorial timers (v2, 1 s adverts)"),
            Variant::XvrrpV3Fast => (Impl::Xvrrp, "VRRPv3, 0.1 s adverts"),
        };
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        bench::result("failover", scenario, imp, "client_median_ms", ms(cm));
        bench::result("failover", scenario, imp, "client_worst_ms", ms(cw));
        bench::result(
            "failover",
            scenario,
            imp,
            "detect_median_ms",
            dm.parse().unwrap_or(f64::NAN),
        );
        bench::result("failover", scenario, imp, "runs", *n as f64);
    }
    for (v, n, cm, cw, (dm, dw)) in &table {
        eprintln!(
            "{:<58} {:>4} {:>10} {:>10} {:>14} {:>14}",
            v.name(),
            n,
            fmt_ms(*cm),
            fmt_ms(*cw),
            dm,
            dw
        );
    }
    eprintln!(
        "detect = last listener closed (kernel timestamp; keepalived: nginx told to stop) -> \
         priority-0 advert on the primary's wire"
    );
    eprintln!(
        "targets: xvrrp median < 700 ms with the tutorial's timers, < 100 ms with 0.1 s adverts"
    );
    for (v, _, cm, _, _) in &table {
        let target = match v {
            Variant::XvrrpTutorial => Some(Duration::from_millis(700)),
            Variant::XvrrpV3Fast => Some(Duration::from_millis(100)),
            Variant::Keepalived => None,
        };
        if let Some(t) = target {
            eprintln!(
                "  {}: {} (median {} ms)",
                v.name(),
                if *cm < t { "met" } else { "MISSED" },
                fmt_ms(*cm)
            );
        }
    }
}

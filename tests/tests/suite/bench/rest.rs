//! `cargo xtask bench rest` (issue 10, item 4): what an idle pair costs, xvrrp next to
//! keepalived 2.2.7, in the same run.
//!
//! Two labs side by side, each the tutorial's two web servers (nginx on port 80, `primary` and
//! `secondary`) on one switch:
//! - keepalived 2.2.7 with the tutorial's config (unicast VRRPv2, VRID 33, PASS auth, advert_int
//!   1, priorities 200/100) and its check script every 2 s (`pidof nginx`, per namespace:
//!   [`Host::nginx_check_script`]);
//! - xvrrp with the same VRRP parameters and `vrrp_track_listen` on port 80 instead of the
//!   script.
//!
//! Once both pairs have elected (Master on the primary) and settled, every daemon is left alone
//! (no status queries) for the window, measured at both ends from `/proc`:
//! - CPU seconds per hour: `utime + stime + cutime + cstime` of `/proc/PID/stat` (the children
//!   terms count the scripts keepalived forks and reaps), summed over keepalived's parent and
//!   VRRP child;
//! - RSS and peak RSS (`VmRSS`, `VmHWM` of `/proc/PID/status`, keepalived's two processes
//!   summed) at the end of the window;
//! - context switches per second (every thread, voluntary + involuntary): the wake-ups.
//!
//! The xvrrp lab is built first, so that keepalived's scripts, whose `pidof` lists the newest
//! processes first, find their own lab's nginx before the other lab's.
//!
//! With `XVRRP_BENCH_RUNS` set (the xtask sets it) the window is 120 s; without it the normal
//! suite runs a 10 s smoke window that checks only that the figures are sane. Targets are
//! printed, never asserted. Each figure is also printed on stdout as
//! `XVRRP_BENCH_RESULT {"bench":"rest","impl":..,"node":..,"metric":..,"value":..,"scenario":..}`.

use std::{
    collections::BTreeMap,
    fs, thread,
    time::{Duration, Instant},
};

use xvrrp_tests::{
    agent::Agent,
    bench::{self, status_kib, Cpu, Impl},
    lab::Keepalived,
    site::{listen::listen_block, Site, Timers},
    wait_until,
};

const BENCH: &str = "rest";
/// First election, generous for a loaded machine.
const ELECTION: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

/// Voluntary + involuntary context switches of each thread of `pid`, by thread id.
fn context_switches(pid: i32) -> BTreeMap<String, u64> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let status = fs::read_to_string(t.path().join("status")).ok()?;
            let n = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
            Some((format!("{pid}/{}", t.file_name().to_string_lossy()), n))
        })
        .collect()
}

/// The context switches of `pids` since `before`, over the threads alive now (a thread that
/// exited meanwhile, e.g. an idle tokio blocking thread, takes its count with it).
fn switches_since(pids: &[i32], before: &BTreeMap<String, u64>) -> u64 {
    pids.iter()
        .flat_map(|p| context_switches(*p))
        .map(|(tid, n)| n.saturating_sub(before.get(&tid).copied().unwrap_or(0)))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

/// One daemon of one node: its processes.
struct Subject {
    imp: Impl,
    node: &'static str,
    pids: Vec<i32>,
}

#[derive(Debug)]
struct Figures {
    cpu_s_per_hour: f64,
    /// The part of `cpu_s_per_hour` spent in reaped children.
    children_s_per_hour: f64,
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    threads: u64,
    switches_per_s: f64,
}

struct Start {
    cpu: Cpu,
    switches: BTreeMap<String, u64>,
}

fn start(s: &Subject) -> Start {
    Start {
        cpu: Cpu::of(&s.pids),
        switches: s.pids.iter().flat_map(|p| context_switches(*p)).collect(),
    }
}

fn finish(s: &Subject, from: &Start, secs: f64) -> Figures {
    for p in &s.pids {
        assert!(
            Cpu::of_pid(*p).is_some() && xvrrp_tests::lab::alive(*p),
            "{} on {}: process {p} died during the window",
            s.imp.as_str(),
            s.node
        );
    }
    let cpu = Cpu::of(&s.pids);
    let per_hour = |d: f64| d / secs * 3600.0;
    let switches = switches_since(&s.pids, &from.switches);
    let sum = |key: &str| -> u64 { s.pids.iter().filter_map(|p| status_kib(*p, key)).sum() };
    Figures {
        cpu_s_per_hour: per_hour(cpu.own + cpu.children - from.cpu.own - from.cpu.children),
        children_s_per_hour: per_hour(cpu.children - from.cpu.children),
        rss_kib: sum("VmRSS:"),
        hwm_kib: sum("VmHWM:"),
        anon_kib: sum("RssAnon:"),
        file_kib: sum("RssFile:") + sum("RssShmem:"),
        threads: sum("Threads:"),
        switches_per_s: switches as f64 / secs,
    }
}

fn result_line(s: &Subject, metric: &str, value: f64) {
    let scenario = format!("tutorial pair at rest, {}", s.node);
    bench::result(BENCH, &scenario, s.imp, metric, value);
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[test]
fn cost_at_rest() {
    xvrrp_tests::require_root();
    let full = std::env::var_os("XVRRP_BENCH_RUNS").is_some();
    let (settle, window) = if full {
        (Duration::from_secs(30), Duration::from_secs(120))
    } else {
        (Duration::from_secs(2), Duration::from_secs(10))
    };

    // xvrrp's lab first: `pidof` lists the newest processes first, so keepalived's check
    // scripts meet their own lab's nginx before the other lab's (and stop there, as on a
    // machine without the other lab).
    // xvrrp with `vrrp_track_listen` on port 80 (weight 0: no listener is FAULT, as the
    // tutorial's failing script is), the same VRRP parameters as keepalived's.
    let x_site = Site::new(Timers::Tutorial);
    let _x_web = x_site.start_web();
    let (top, extra) = listen_block(None);
    let agents: Vec<Agent> = x_site.start(&top, &extra).into();
    // keepalived's lab.
    let k_site = Site::new(Timers::Tutorial);
    let _k_web = k_site.start_web();
    let keepalived: Vec<Keepalived> = k_site.start_tutorial().into();
    let logs = || {
        let mut s = String::new();
        for (i, a) in agents.iter().enumerate() {
            s += &format!("--- xvrrp {i} ---\n{}\n", a.log());
        }
        for (i, k) in keepalived.iter().enumerate() {
            s += &format!("--- keepalived {i} ---\n{}\n", k.log());
        }
        s
    };

    // Both pairs elect: Master on the primary, Backup on the secondary, VIP on the primary.
    assert!(
        keepalived[0]
            .wait_log("Entering MASTER STATE", ELECTION)
            .is_some(),
        "keepalived primary never Master\n{}",
        logs()
    );
    assert!(
        agents[0].wait_state("Master", ELECTION).is_some(),
        "xvrrp primary never Master\n{}",
        logs()
    );
    assert!(
        agents[1].wait_state("Backup", ELECTION).is_some(),
        "xvrrp secondary never Backup\n{}",
        logs()
    );
    for (site, name) in [(&k_site, "keepalived"), (&x_site, "xvrrp")] {
        assert!(
            wait_until(ELECTION, || site.primary.has_addr(site.vip)
                && !site.secondary.has_addr(site.vip)),
            "{name}: the VIP is not on the primary alone\n{}",
            logs()
        );
    }
    // The listen trackers are up; say where their verdicts come from (the kernel program, or a
    // fallback), since that is what is measured.
    for (a, node) in agents.iter().zip(["primary", "secondary"]) {
        let (_, t) = a.wait_tracker("listen chk_http", ELECTION, |t| {
            t.source().as_deref() == Some("kernel")
        });
        assert_eq!(
            t.up(),
            Some(true),
            "xvrrp {node}: listen tracker not up: {t}\n{}",
            logs()
        );
        eprintln!(
            "xvrrp {node}: listen tracker source {}, rx paths {}",
            t.source().unwrap_or_default(),
            a.status().map(|s| s.rx_text()).unwrap_or_default()
        );
    }

    let subjects: Vec<Subject> = {
        let mut v = Vec::new();
        for (k, node) in keepalived.iter().zip(["primary", "secondary"]) {
            let pids: Vec<i32> = k.pid().into_iter().chain(k.vrrp_pid()).collect();
            assert_eq!(pids.len(), 2, "keepalived {node}: parent and VRRP child");
            v.push(Subject {
                imp: Impl::Keepalived,
                node,
                pids,
            });
        }
        for (a, node) in agents.iter().zip(["primary", "secondary"]) {
            let pid = a
                .pid()
                .unwrap_or_else(|| panic!("no process of xvrrp {node}\n{}", logs()));
            v.push(Subject {
                imp: Impl::Xvrrp,
                node,
                pids: vec![pid],
            });
        }
        v
    };

    eprintln!(
        "settling {settle:?}, then measuring over {window:?} ({} mode)",
        if full { "full" } else { "smoke" }
    );
    thread::sleep(settle);
    let t0 = Instant::now();
    let starts: Vec<Start> = subjects.iter().map(start).collect();
    thread::sleep(window);
    let secs = t0.elapsed().as_secs_f64();
    let figures: Vec<Figures> = subjects
        .iter()
        .zip(&starts)
        .map(|(s, st)| finish(s, st, secs))
        .collect();
    // Still the same roles: nothing flapped during the window.
    assert!(k_site.primary.has_addr(k_site.vip), "{}", logs());
    assert_eq!(agents[0].state().as_deref(), Some("Master"), "{}", logs());

    eprintln!();
    eprintln!(
        "cost at rest over {secs:.0} s (keepalived: parent + VRRP child, scripts included; \
         CPU resolution {:.2} CPU-s/h)",
        3600.0 / bench::ticks_per_second() / secs
    );
    eprintln!(
        "{:<11} {:<10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "impl",
        "node",
        "CPU-s/h",
        "children",
        "RSS MiB",
        "anon",
        "file",
        "HWM MiB",
        "threads",
        "wakeups/s"
    );
    for (s, f) in subjects.iter().zip(&figures) {
        eprintln!(
            "{:<11} {:<10} {:>10.2} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>9.2}",
            s.imp.as_str(),
            s.node,
            f.cpu_s_per_hour,
            f.children_s_per_hour,
            mib(f.rss_kib),
            mib(f.anon_kib),
            mib(f.file_kib),
            mib(f.hwm_kib),
            f.threads,
            f.switches_per_s
        );
    }
    for (s, f) in subjects.iter().zip(&figures) {
        result_line(
            s,
            "cpu_s_per_hour",
            (f.cpu_s_per_hour * 1000.0).round() / 1000.0,
        );
        result_line(s, "rss_kib", f.rss_kib as f64);
        // The split of RSS: private memory (heap, stacks) and mapped files (the binary's and
        // libraries' pages, BPF ring buffers). xvrrp unmaps the start-up's code pages once it has
        // settled (agent/src/memory.rs): this shows what that changes and what it does not.
        result_line(s, "rss_anon_kib", f.anon_kib as f64);
        result_line(s, "rss_file_kib", f.file_kib as f64);
        result_line(s, "hwm_kib", f.hwm_kib as f64);
    }

    // Targets (printed only): per node, xvrrp at most half of keepalived's CPU, less RSS than
    // keepalived, RSS under 12 MiB, peak under 20 MiB.
    eprintln!(
        "targets (per node): CPU <= keepalived / 2, RSS < keepalived, RSS < 12 MiB, HWM < 20 MiB"
    );
    for node in ["primary", "secondary"] {
        let of = |imp: Impl| {
            subjects
                .iter()
                .zip(&figures)
                .find(|(s, _)| s.imp == imp && s.node == node)
                .map(|(_, f)| f)
                .unwrap()
        };
        let (x, k) = (of(Impl::Xvrrp), of(Impl::Keepalived));
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        eprintln!(
            "  {node}: CPU {:.2} vs {:.2} / 2 {}; RSS {:.2} vs {:.2} MiB {}; RSS < 12 MiB {}; \
             HWM {:.2} MiB < 20 {}",
            x.cpu_s_per_hour,
            k.cpu_s_per_hour,
            verdict(x.cpu_s_per_hour <= k.cpu_s_per_hour / 2.0),
            mib(x.rss_kib),
            mib(k.rss_kib),
            verdict(x.rss_kib < k.rss_kib),
            verdict(mib(x.rss_kib) < 12.0),
            mib(x.hwm_kib),
            verdict(mib(x.hwm_kib) < 20.0),
        );
    }

    // Sanity only: every figure is a plausible measurement.
    let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for (s, f) in subjects.iter().zip(&figures) {
        let what = format!("{} {}: {f:?}", s.imp.as_str(), s.node);
        assert!(
            f.cpu_s_per_hour.is_finite()
                && f.cpu_s_per_hour >= 0.0
                && f.cpu_s_per_hour <= 3600.0 * cpus,
            "{what}"
        );
        assert!(f.rss_kib > 0 && f.hwm_kib >= f.rss_kib, "{what}");
        assert!(f.anon_kib + f.file_kib <= f.rss_kib + 8, "{what}");
        assert!(f.threads >= s.pids.len() as u64, "{what}");
    }
}

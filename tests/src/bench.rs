//! Shared pieces of the benchmarks (`cargo xtask bench`): full or smoke mode, the result lines
//! the xtask collects into `bench/results.json` and `bench/RESULTS.md`, and what a process
//! costs (CPU seconds, RSS, peak RSS) read from `/proc`.
//!
//! A benchmark is a test of this crate. Without `XVRRP_BENCH_RUNS` it runs a short smoke version
//! in the normal suite (so it keeps working); with it (the xtask sets it) it measures in earnest.
//! Figures are printed, never asserted.
#![allow(clippy::unwrap_used, reason = "test support code")]

use std::{fmt::Write as _, fs, net::Ipv4Addr, time::Duration};

/// The prefix of a result line on stdout; the rest of the line is one JSON object.
pub const RESULT_PREFIX: &str = "XVRRP_BENCH_RESULT ";

/// Whether the benchmark runs in earnest (`XVRRP_BENCH_RUNS` set), not as a smoke test.
pub fn full() -> bool {
    std::env::var_os("XVRRP_BENCH_RUNS").is_some()
}

/// The implementation a figure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// This project.
    Xvrrp,
    /// keepalived 2.2.7 from Debian.
    Keepalived,
}

impl Impl {
    /// The name in result lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Impl::Xvrrp => "xvrrp",
            Impl::Keepalived => "keepalived",
        }
    }
}

/// Prints one result line: benchmark, scenario (free text, the same for the rows that are to be
/// compared), implementation, metric (with its unit in the name, e.g. `cpu_pct`), value.
pub fn result(bench: &str, scenario: &str, imp: Impl, metric: &str, value: f64) {
    let v = serde_json::json!({
        "bench": bench,
        "scenario": scenario,
        "impl": imp.as_str(),
        "metric": metric,
        "value": if value.is_finite() { serde_json::json!(value) } else { serde_json::Value::Null },
    });
    println!("{RESULT_PREFIX}{v}");
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc/PID/stat` times.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds of processes: their own (`utime + stime`, every thread, exited ones included)
/// and their reaped children's (`cutime + cstime`: the scripts a daemon forks).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    /// The processes' own.
    pub own: f64,
    /// Their waited-for children's.
    pub children: f64,
}

impl Cpu {
    /// Of one process; `None` when it is gone.
    pub fn of_pid(pid: i32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces and parentheses) start with
        // the state (field 3); utime, stime, cutime, cstime are fields 14..=17.
        let rest = stat.get(stat.rfind(')')? + 1..)?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t: Option<Vec<f64>> = f.get(11..15)?.iter().map(|v| v.parse().ok()).collect();
        let t = t?;
        let hz = ticks_per_second();
        Some(Cpu {
            own: (t[0] + t[1]) / hz,
            children: (t[2] + t[3]) / hz,
        })
    }

    /// Of several processes together (those that are gone count 0).
    pub fn of(pids: &[i32]) -> Self {
        pids.iter()
            .filter_map(|p| Cpu::of_pid(*p))
            .fold(Cpu::default(), |a, b| Cpu {
                own: a.own + b.own,
                children: a.children + b.children,
            })
    }

    /// Own and children's together.
    pub fn total(self) -> f64 {
        self.own + self.children
    }
}

/// CPU seconds `pid` has used, its waited-for children's included; `None` when it is gone.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    Cpu::of_pid(pid).map(Cpu::total)
}

/// CPU seconds of several processes together (those that are gone count 0).
pub fn cpu_seconds_all(pids: &[i32]) -> f64 {
    Cpu::of(pids).total()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`, `RssAnon:`, ...).
pub fn status_kib(pid: i32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// (RSS, peak RSS) of `pid` in KiB, from `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn memory_kib(pid: i32) -> Option<(u64, u64)> {
    Some((status_kib(pid, "VmRSS:")?, status_kib(pid, "VmHWM:")?))
}

/// CPU use of `pids` over `window`, in percent of one CPU, measured from `/proc`.
pub fn cpu_percent_over(pids: &[i32], window: Duration) -> f64 {
    let before = cpu_seconds_all(pids);
    std::thread::sleep(window);
    let after = cpu_seconds_all(pids);
    (after - before) / window.as_secs_f64() * 100.0
}

/// The VIP of `vrid` in the many-VRID configs: a /32 outside the lab's /24 (10.89.0.vrid).
pub fn many_vip(vrid: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 89, 0, vrid)
}

/// Whether host `a` owns `vrid` in the many-VRID configs (the odd ones; `b` the even ones).
pub fn many_owner_is_a(vrid: u8) -> bool {
    vrid % 2 == 1
}

/// keepalived.conf text (both daemons read it) for VRIDs 1..=`n` on each of `ifaces`, VRRPv3
/// multicast at `interval`, a /32 VIP each; the owner ([`many_owner_is_a`]) has priority 200,
/// the other host 100. With several interfaces, interface `k` (from 0) uses VRIDs
/// `k * n + 1 ..= (k + 1) * n` so every VRID is used once.
pub fn many_vrids_config(is_a: bool, n: u8, interval: Duration, ifaces: &[&str]) -> String {
    let mut c = String::from("global_defs {\n    router_id many\n}\n");
    for (k, iface) in ifaces.iter().enumerate() {
        for i in 1..=u32::from(n) {
            let vrid = u8::try_from(k as u32 * u32::from(n) + i).expect("at most 255 VRIDs");
            let prio = if many_owner_is_a(vrid) == is_a {
                200
            } else {
                100
            };
            write!(
                c,
                "vrrp_instance VI_{vrid} {{\n    interface {iface}\n    state BACKUP\n    \
                 virtual_router_id {vrid}\n    priority {prio}\n    version 3\n    \
                 advert_int {}\n    virtual_ipaddress {{\n        {}/32 dev {iface}\n    }}\n}}\n",
                interval.as_secs_f64(),
                many_vip(vrid)
            )
            .unwrap();
        }
    }
    c
}

/// The `p`-quantile (0..=1) of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

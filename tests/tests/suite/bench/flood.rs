//! `cargo xtask bench flood` (issue 10 item 7): a flood of forged adverts at the highest rate
//! trafgen reaches here, at xvrrp with `--rx xdp`, xvrrp with `--rx socket`, and keepalived
//! 2.2.7, one after the other in the same run, on the same lab and configuration.
//!
//! Two hosts, VRRPv3 multicast, VRID 51, `advert_int 0.1` (Master_Down_Interval ~0.36 s on the
//! Backup), `a` priority 200 (Master), `b` 100 (Backup). A third host sends, with trafgen on one
//! CPU, 64 forged adverts round-robin to the VRRP group: VRID 51, priority 254, spoofed sources
//! 10.88.0.150-213, with a bad VRRP checksum (junk that every implementation must count and drop;
//! a valid forged advert would be obeyed by any VRRP router). Per variant: packets offered and
//! the rate, CPU of the Master's and the Backup's daemon during the flood, and false transitions
//! (the Backup becoming Master, the Master leaving Master) during the flood and the second after.
//!
//! Without `XVRRP_BENCH_RUNS` a smoke version (xvrrp `--rx xdp`, 2 s) runs in the suite; figures
//! are printed, never asserted.

use std::{fmt::Write as _, time::Duration};

use xvrrp_tests::{
    agent::Agent,
    bench::{self, Impl},
    lab::{Keepalived, Lab},
    wait_until,
};

const BENCH: &str = "flood";

fn config(priority: u8, vip: std::net::Ipv4Addr) -> String {
    format!(
        "vrrp_instance VI_1 {{\n    interface eth1\n    state BACKUP\n    virtual_router_id 51\n    \
         priority {priority}\n    version 3\n    advert_int 0.1\n    virtual_ipaddress {{\n        \
         {vip}/24 dev eth1\n    }}\n}}\n"
    )
}

/// trafgen's packet description: one `{ ... }` per frame, sent round-robin.
fn trafgen_conf() -> String {
    let mut c = String::new();
    for i in 0..64u8 {
        let src = [10u8, 88, 0, 150 + i];
        // Total length 32: the 20-byte header and the 12-byte message below (so the frames fail
        // on the checksum, not earlier on their length).
        let mut ip = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 255, 112, 0, 0, src[0], src[1], src[2], src[3], 224, 0, 0,
            18,
        ];
        let sum = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        // VRRPv3 advert, VRID 51, priority 254, one address, interval 10 cs, checksum 0xdead
        // (wrong), VIP 10.88.0.100.
        let vrrp = [0x31, 51, 254, 1, 0, 10, 0xde, 0xad, 10, 88, 0, 100];
        let mut frame = vec![0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x02, 0xaa, 0, 0, 0, i];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&vrrp);
        let bytes: Vec<String> = frame.iter().map(|b| format!("{b:#04x}")).collect();
        writeln!(c, "{{ {} }}", bytes.join(", ")).unwrap();
    }
    c
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

enum Pair {
    X(Agent, Agent),
    K(Keepalived, Keepalived),
}

impl Pair {
    fn pids(&self) -> [Vec<i32>; 2] {
        match self {
            Pair::X(a, b) => [a.pid().into_iter().collect(), b.pid().into_iter().collect()],
            Pair::K(a, b) => [
                a.pid().into_iter().chain(a.vrrp_pid()).collect(),
                b.pid().into_iter().chain(b.vrrp_pid()).collect(),
            ],
        }
    }

    /// (times `a` left Master, times `b` became Master) so far.
    fn transitions(&self) -> (u64, u64) {
        match self {
            Pair::X(a, b) => {
                let count = |x: &Agent| x.instance().and_then(|i| i.counters()).unwrap_or_default();
                (count(a).release_master, count(b).become_master)
            }
            Pair::K(a, b) => {
                let n = |k: &Keepalived, s: &str| k.log().matches(s).count() as u64;
                (
                    n(a, "Entering BACKUP STATE") + n(a, "Entering FAULT STATE"),
                    n(b, "Entering MASTER STATE"),
                )
            }
        }
    }
}

/// One variant (`rx` for xvrrp, `None` for keepalived): offered Mpps, Master and Backup daemon
/// CPU %, false transitions, whether the VIP is on the Master after.
fn variant(label: &str, rx: Option<&str>, seconds: u64) -> [f64; 5] {
    let lab = Lab::new();
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let f = lab.add_host("f");
    let vip = lab.addr4(100);
    let pair = match rx {
        Some(rx) => Pair::X(
            Agent::start(a.ns(), &config(200, vip), &["--rx", rx]),
            Agent::start(b.ns(), &config(100, vip), &["--rx", rx]),
        ),
        None => Pair::K(
            a.start_keepalived(&config(200, vip)),
            b.start_keepalived(&config(100, vip)),
        ),
    };
    assert!(
        wait_until(Duration::from_secs(20), || a.has_addr(vip)
            && !b.has_addr(vip)),
        "{label}: the pair did not converge"
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = pair.transitions();
    let conf = f.dir().join("flood.trafgen");
    std::fs::write(&conf, trafgen_conf()).unwrap();
    let [pa, pb] = pair.pids();
    let (ca, cb) = (bench::cpu_seconds_all(&pa), bench::cpu_seconds_all(&pb));
    let t = std::time::Instant::now();
    let out = xvrrp_tests::sh(
        f.ns()
            .command("timeout")
            .args([
                "-s",
                "INT",
                &seconds.to_string(),
                "trafgen",
                "--dev",
                "eth1",
            ])
            .arg("--conf")
            .arg(&conf)
            .args(["--cpus", "1", "--no-sock-mem"]),
    );
    let took = t.elapsed().as_secs_f64();
    let cpu_a = (bench::cpu_seconds_all(&pa) - ca) / took * 100.0;
    let cpu_b = (bench::cpu_seconds_all(&pb) - cb) / took * 100.0;
    std::thread::sleep(Duration::from_secs(1));
    let after = pair.transitions();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let offered: f64 = text
        .lines()
        .find(|l| l.contains("packets outgoing"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{label}: trafgen did not report what it sent:\n{text}"));
    let false_transitions = (after.0 - before.0) + (after.1 - before.1);
    let holder = if a.has_addr(vip) {
        "a"
    } else if b.has_addr(vip) {
        "b"
    } else {
        "nobody"
    };
    println!(
        "[flood] {label}: {offered} packets offered in {took:.1} s ({:.2} Mpps); CPU Master {cpu_a:.1}% \
         Backup {cpu_b:.1}%; false transitions {false_transitions}; VIP on {holder} after",
        offered / took / 1e6
    );
    [
        offered / took / 1e6,
        cpu_a,
        cpu_b,
        false_transitions as f64,
        f64::from(u8::from(holder == "a")),
    ]
}

const METRICS: [&str; 5] = [
    "offered_mpps",
    "cpu_pct_master_daemon",
    "cpu_pct_backup_daemon",
    "false_transitions",
    "vip_on_master_after",
];

/// Result lines of one xvrrp mode next to keepalived's (measured once, shown with each mode).
fn report(scenario: &str, xvrrp: &[f64; 5], keepalived: Option<&[f64; 5]>) {
    for (i, m) in METRICS.iter().enumerate() {
        bench::result(BENCH, scenario, Impl::Xvrrp, m, xvrrp[i]);
        if let Some(k) = keepalived {
            bench::result(BENCH, scenario, Impl::Keepalived, m, k[i]);
        }
    }
}

#[test]
fn forged_advert_flood() {
    xvrrp_tests::require_root();
    if bench::full() {
        let xdp = variant("xvrrp --rx xdp", Some("xdp"), 10);
        let socket = variant("xvrrp --rx socket", Some("socket"), 10);
        let ka = variant("keepalived", None, 10);
        report("10 s flood; xvrrp --rx xdp", &xdp, Some(&ka));
        report("10 s flood; xvrrp --rx socket", &socket, Some(&ka));
    } else {
        let xdp = variant("xvrrp --rx xdp", Some("xdp"), 2);
        report("2 s flood (smoke); xvrrp --rx xdp", &xdp, None);
    }
}

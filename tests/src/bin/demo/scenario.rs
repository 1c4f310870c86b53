//! The demo's steps: the lab, the tutorial's tests, the forged flood, the summary.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use xvrrp::packet::{self, pass_data, Advert, Auth, Counter, EthParams, TxMeta};
use xvrrp_tests::{
    agent::Agent,
    forge::flood_frames,
    lab::Host,
    site::cloud::{DoLab, Opts, A, B, FAILOVER, IP},
    waits_aborted, xvrrp_bin,
};

use crate::timeline::{self, client_get, droplet, stamp, NAMES};

/// Droplet ids by index.
const IDS: [u64; 2] = [A, B];
/// Where each agent serves metrics inside its namespace, when `xvrrp run` has `--metrics`.
const METRICS: &str = "127.0.0.1:9650";
/// How long the forged flood lasts.
const FLOOD: Duration = Duration::from_secs(3);

/// One line of the summary.
struct Row {
    step: &'static str,
    expected: usize,
    holder: Option<u64>,
    client: String,
    took: String,
}

/// Sets `stop` when dropped (also while unwinding), so the watcher threads end.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn failed(what: &str) -> String {
    if waits_aborted() {
        "interrupted".to_owned()
    } else {
        format!("{what} (timed out)")
    }
}

fn metrics_supported() -> bool {
    std::process::Command::new(xvrrp_bin())
        .args(["run", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--metrics"))
}

/// Runs the whole demo; the lab is torn down when this returns (or unwinds).
pub fn run(keep: bool) -> Result<(), String> {
    let start = Instant::now();
    println!(
        "xvrrp demo: the DigitalOcean keepalived tutorial, replayed in network namespaces\n\
         (two droplets with nginx and xvrrp, the DigitalOcean API double, a client)\n"
    );
    println!("{} building the lab ...", stamp(start));
    let mut l = DoLab::new(Opts {
        start: false,
        ..Opts::default()
    });
    let metrics = metrics_supported();
    let mut args = vec!["--rx", "auto"];
    if metrics {
        args.extend(["--metrics", METRICS]);
    }
    for i in 0..2 {
        let a = Agent::start(l.servers[i].ns(), &l.configs[i], &args);
        l.agents.push(a);
    }
    describe(&l);
    let stop = AtomicBool::new(false);
    let sockets = [l.agents[0].socket(), l.agents[1].socket()];
    let client_ns = l.client.ns().name().to_owned();
    let DoLab {
        lab,
        servers,
        client,
        double,
        web,
        agents,
        ..
    } = &mut l;
    let rows = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| timeline::watch_agents(start, sockets, double, IP, IDS, &stop));
        s.spawn(|| timeline::watch_client(start, &client_ns, IP, &stop));
        let mut rows = Vec::new();
        let wait_holder = |i: usize| {
            xvrrp_tests::wait_until(Duration::from_secs(10), || {
                double.holder(IP) == Some(IDS[i])
            })
        };
        // How long from the change (just before the call) until the client first gets `body`.
        let step = |rows: &mut Vec<Row>,
                    name: &'static str,
                    expected: usize,
                    body: &str|
         -> Result<(), String> {
            let took = lab
                .wait_body(client, IP, body, FAILOVER)
                .ok_or_else(|| failed(&format!("the client never got {body}")))?;
            if !wait_holder(expected) {
                return Err(failed("the API never moved the reserved IP"));
            }
            println!(
                "{} {:<9} => {body} answers {:.1} s after the change; the API says {}",
                stamp(start),
                "result",
                took.as_secs_f64(),
                droplet(double.holder(IP), IDS)
            );
            rows.push(Row {
                step: name,
                expected,
                holder: double.holder(IP),
                client: client_get(client.ns().name(), IP),
                took: format!("{:.1} s", took.as_secs_f64()),
            });
            Ok(())
        };

        header(
            start,
            "Start: the primary (priority 200) is Master and holds the reserved IP",
        );
        if agents[0].wait_state("Master", FAILOVER).is_none()
            || agents[1].wait_state("Backup", FAILOVER).is_none()
        {
            return Err(failed("the agents never settled"));
        }
        step(&mut rows, "start", 0, "Primary")?;
        if let Some(r) = rows.last_mut() {
            r.took = "-".to_owned();
        }

        header(
            start,
            "1. Stop nginx on the primary (the tutorial's first test). Its check (pidof nginx, \
             every 2 s) fails: FAULT, priority 0; the secondary takes over and assigns the IP",
        );
        web[0].stop();
        step(&mut rows, "nginx stopped on primary", 1, "Secondary")?;

        header(
            start,
            "2. Start nginx again: the check passes, the primary preempts and takes the IP back",
        );
        web[0].start();
        step(&mut rows, "nginx started on primary", 0, "Primary")?;

        header(
            start,
            "3. \"Reboot\" the primary: SIGKILL its xvrrp (no goodbye). The secondary waits \
             Master_Down_Interval (3 x 1 s + skew) and takes over",
        );
        agents[0].stop_with(libc::SIGKILL);
        step(&mut rows, "primary agent killed", 1, "Secondary")?;

        header(
            start,
            "4. Bring the primary back: xvrrp starts again and preempts",
        );
        agents[0].restart();
        step(&mut rows, "primary agent restarted", 0, "Primary")?;
        if agents[1].wait_state("Backup", FAILOVER).is_none() {
            return Err(failed("the secondary never went back to Backup"));
        }

        header(
            start,
            "5. A host on the segment floods the backup with forged adverts (VRID 33)",
        );
        rows.push(flood(start, lab, servers, agents, double)?);
        Ok(rows)
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            println!("\n{e}; tearing the lab down");
            return Err(e);
        }
    };
    let ok = summary(&rows);
    if keep && ok {
        print_keep(&l, metrics);
        crate::hold_lab(&l.lab.dir().join("demo.log"));
    }
    drop(l);
    println!(
        "{} lab torn down: namespaces, agents, nginx, XDP programs, temp dirs",
        stamp(start)
    );
    if ok {
        Ok(())
    } else {
        Err("a step did not end as the tutorial says".to_owned())
    }
}

fn header(start: Instant, text: &str) {
    println!("\n{} == {text}", stamp(start));
}

fn describe(l: &DoLab) {
    for (i, h) in l.servers.iter().enumerate() {
        println!(
            "  {:<9} droplet {}  {}  netns {}  nginx \"{}\"  xvrrp priority {}",
            NAMES[i],
            IDS[i],
            h.ip4(),
            h.ns().name(),
            ["Primary", "Secondary"][i],
            [200, 100][i]
        );
    }
    println!(
        "  {:<9} {}  netns {}  requests http://{IP}/ (routed to the droplet the API names)",
        "client",
        l.client.ip4(),
        l.client.ns().name()
    );
    println!(
        "  reserved IP {IP}, DigitalOcean API double at {} (per droplet), assign takes 300 ms\n",
        l.api[0]
    );
}

/// An Ethernet frame with `advert` from `src` to the backup, with `ttl`.
fn frame(advert: &Advert, src: Ipv4Addr, dst: &Host, ttl: u8) -> Vec<u8> {
    let mut meta = TxMeta::new(IpAddr::V4(src), IpAddr::V4(dst.ip4()));
    meta.ttl = ttl;
    let eth = EthParams {
        dst_mac: dst.ns().mac("eth1"),
        src_mac: [0x02, 0, 0, 0, 0, 0x66],
        vlan: None,
    };
    packet::build_frame(advert, &meta, &eth).unwrap()
}

fn flood(
    start: Instant,
    lab: &xvrrp_tests::lab::Lab,
    servers: &[Host; 2],
    agents: &[Agent],
    double: &xvrrp_tests::do_double::DoDouble,
) -> Result<Row, String> {
    let backup = &servers[1];
    let attacker = lab.add_host("attacker");
    let v2 = |prio: u8, pass: &str| Advert::v2(33, prio, vec![], 1, Auth::Pass(pass_data(pass)));
    let primary = servers[0].ip4();
    let frames = vec![
        // From a host that is not a configured peer: priority 0 ("Master leaving") and 254.
        frame(&v2(0, "password"), attacker.ip4(), backup, 255),
        frame(&v2(254, "password"), attacker.ip4(), backup, 255),
        // Spoofing the primary's address: the wrong password, and a bad checksum.
        frame(&v2(0, "guess"), primary, backup, 255),
        {
            let mut f = frame(&v2(0, "password"), primary, backup, 255);
            f[14 + 20 + 6] ^= 0x5a;
            f
        },
    ];
    let counters = || agents[1].counters().map(|c| c.0.peers).unwrap_or_default();
    let before = counters();
    let transition = || agents[1].instance().map(|i| i.last_transition_at_text());
    let t_before = transition();
    let posts = double
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    let rx = agents[1]
        .status()
        .and_then(|s| s.0.rx.first().map(|r| format!("{:?}", r.path)))
        .unwrap_or_else(|| "?".to_owned());
    println!(
        "{} {:<9} attacker {} sends priority 0 and 254 adverts as itself, and as the primary \
         with a wrong password or a bad checksum, for {} s (receive path on the secondary: {rx})",
        stamp(start),
        "flood",
        attacker.ip4(),
        FLOOD.as_secs()
    );
    let sent = flood_frames(attacker.ns(), "eth1", frames, FLOOD, 2_000_000);
    // Longer than the secondary's Skew_Time: an accepted priority 0 would have made it Master.
    std::thread::sleep(Duration::from_millis(1500));
    let after = counters();
    println!(
        "{} {:<9} {sent} forged frames sent; the secondary's drop counters (per source):",
        stamp(start),
        "flood"
    );
    let mut dropped = 0u64;
    for row in &after {
        let was = before
            .iter()
            .find(|b| b.peer == row.peer && b.vrid == row.vrid);
        let mut parts = Vec::new();
        for (c, n) in &row.counters.0 {
            let d = n - was.map_or(0, |w| w.counters.get(*c));
            if d > 0 {
                if *c != Counter::AdvertRcvd {
                    dropped += d;
                }
                parts.push(format!("{c} +{d}"));
            }
        }
        // The XDP path counts sources that are not configured peers under one row.
        let who = if row.peer == primary.to_string() {
            "the primary's address"
        } else if row.peer == attacker.ip4().to_string() {
            "the attacker"
        } else {
            "not a configured peer"
        };
        println!(
            "             {:<12} ({who:<21}) {}",
            row.peer,
            if parts.is_empty() {
                "(nothing)".to_owned()
            } else {
                parts.join(", ")
            }
        );
    }
    let still_backup = agents[1].state().as_deref() == Some("Backup");
    let no_transition = transition() == t_before;
    let new_posts = double
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
        - posts;
    println!(
        "{} {:<9} => secondary still {}, no transition: {no_transition}, API calls caused: \
         {new_posts}, {dropped} forgeries dropped and counted",
        stamp(start),
        "result",
        agents[1].state().unwrap_or_default()
    );
    println!(
        "             (VRRPv2's PASS is a shared word sent in clear: an advert forged with the \
         primary's address, TTL 255 and the right password would be obeyed, as by keepalived)"
    );
    let harmless = still_backup && no_transition && new_posts == 0 && dropped > 0;
    Ok(Row {
        step: "forged advert flood",
        expected: 0,
        holder: double.holder(IP),
        client: client_get(&lab_client_ns(lab), IP),
        took: if harmless {
            format!("harmless, {dropped} dropped")
        } else {
            "NOT HARMLESS".to_owned()
        },
    })
}

/// The client's namespace (the lab's third host).
fn lab_client_ns(lab: &xvrrp_tests::lab::Lab) -> String {
    lab.host("client").ns().name().to_owned()
}

/// Prints the table; whether every row is as expected.
fn summary(rows: &[Row]) -> bool {
    println!("\nSummary");
    println!(
        "  {:<26} {:<10} {:<10} {:<11} took",
        "step", "expected", "holder", "client"
    );
    let mut ok = true;
    for r in rows {
        let holder = match r.holder {
            Some(id) if id == IDS[0] => NAMES[0],
            Some(id) if id == IDS[1] => NAMES[1],
            _ => "nobody",
        };
        let body = ["Primary", "Secondary"][r.expected];
        let good = holder == NAMES[r.expected] && r.client == body && r.took != "NOT HARMLESS";
        ok &= good;
        println!(
            "  {:<26} {:<10} {:<10} {:<11} {}{}",
            r.step,
            NAMES[r.expected],
            holder,
            r.client,
            r.took,
            if good { "" } else { "   <-- unexpected" }
        );
    }
    println!(
        "{}",
        if ok {
            "All steps ended as the tutorial says."
        } else {
            "Some steps did not end as expected."
        }
    );
    ok
}

fn print_keep(l: &DoLab, metrics: bool) {
    let bin = xvrrp_bin();
    let bin = bin.display();
    println!("\nThe lab keeps running (--keep). Look at it:");
    for (i, a) in l.agents.iter().enumerate() {
        let ns = l.servers[i].ns().name();
        let sock = a.socket();
        println!("  # {}", NAMES[i]);
        println!(
            "  ip netns exec {ns} {bin} status --control-socket {}",
            sock.display()
        );
        println!(
            "  ip netns exec {ns} {bin} counters --control-socket {}",
            sock.display()
        );
        if metrics {
            println!("  ip netns exec {ns} curl -s http://{METRICS}/metrics");
        }
    }
    println!("  # the client");
    println!(
        "  ip netns exec {} curl -s http://{IP}/",
        l.client.ns().name()
    );
    println!(
        "Clean up: cargo xtask demo --clean   (or: kill $(cat {}))",
        crate::PID_FILE
    );
}

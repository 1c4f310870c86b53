//! The live timeline: one thread follows both agents (`xvrrp status --json`) and the API double
//! (holder of the reserved IP, assign requests), another the client (`GET /` on the reserved
//! IP); each prints a line when what it watches changes, stamped with the time since the start.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use xvrrp::state::Status;
use xvrrp_tests::{do_double::DoDouble, in_netns, xvrrp_bin};

/// Names of the droplets, by index.
pub const NAMES: [&str; 2] = ["primary", "secondary"];

/// The time stamp of a timeline line.
pub fn stamp(start: Instant) -> String {
    format!("[{:>6.1}s]", start.elapsed().as_secs_f64())
}

/// `xvrrp status --json` of the agent behind `socket` (exit 0 healthy, 1 a problem such as an
/// instance in FAULT: both answered; 2 no agent).
pub fn status(socket: &PathBuf) -> Option<Status> {
    let out = Command::new(xvrrp_bin())
        .args(["status", "--json", "--control-socket"])
        .arg(socket)
        .output()
        .ok()?;
    matches!(out.status.code(), Some(0 | 1))
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Which droplet an id is.
pub fn droplet(id: Option<u64>, ids: [u64; 2]) -> String {
    match id {
        Some(i) if i == ids[0] => format!("{} ({i})", NAMES[0]),
        Some(i) if i == ids[1] => format!("{} ({i})", NAMES[1]),
        Some(i) => i.to_string(),
        None => "nobody".to_owned(),
    }
}

/// Follows the agents and the API until `stop`.
pub fn watch_agents(
    start: Instant,
    sockets: [PathBuf; 2],
    double: &DoDouble,
    ip: Ipv4Addr,
    ids: [u64; 2],
    stop: &AtomicBool,
) {
    let mut seen: [Option<String>; 2] = [None, None];
    let mut holder = double.holder(ip);
    let mut requests = double.requests().len();
    while !stop.load(Ordering::Relaxed) {
        for i in 0..2 {
            let now = match status(&sockets[i]) {
                None => "agent not running".to_owned(),
                Some(s) => match s.instances.first() {
                    None => "no instance".to_owned(),
                    Some(inst) => match &inst.last_transition {
                        Some(t) => format!(
                            "{:?} -> {:?}: {} at {}",
                            t.from,
                            t.to,
                            explain(&t.reason),
                            t.at
                        ),
                        None => format!("{:?}", inst.state),
                    },
                },
            };
            if seen[i].as_deref() != Some(now.as_str()) {
                // The transition's own time stamp stays out of the line (it is in `seen`).
                let shown = now.split(" at ").next().unwrap_or(&now);
                println!("{} {:<9} {shown}", stamp(start), NAMES[i]);
                seen[i] = Some(now);
            }
        }
        let reqs = double.requests();
        for r in reqs.iter().skip(requests) {
            if r.method == "POST" {
                println!(
                    "{} {:<9} {} {} {} -> {}",
                    stamp(start),
                    "API",
                    r.token_label.as_deref().unwrap_or("?"),
                    r.method,
                    r.path,
                    r.status
                        .map_or_else(|| "no answer".to_owned(), |c| c.to_string())
                );
            }
        }
        requests = reqs.len();
        let h = double.holder(ip);
        if h != holder {
            println!(
                "{} {:<9} reserved IP {ip} now on {}",
                stamp(start),
                "API",
                droplet(h, ids)
            );
            holder = h;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /` on `ip`:80 from inside namespace `ns`: the page's text without tags, or why not.
pub fn client_get(ns: &str, ip: Ipv4Addr) -> String {
    let addr = SocketAddr::new(IpAddr::V4(ip), 80);
    in_netns(ns, move || {
        let timeout = Duration::from_millis(500);
        let mut s = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => return format!("no answer ({})", e.kind()),
        };
        let _ = s.set_read_timeout(Some(timeout));
        if s.write_all(b"GET / HTTP/1.0\r\nHost: demo\r\n\r\n")
            .is_err()
        {
            return "no answer (write failed)".to_owned();
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        match buf.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => body
                .replace("<h1>", "")
                .replace("</h1>", "")
                .trim()
                .to_owned(),
            _ => "no answer (bad response)".to_owned(),
        }
    })
}

/// Follows what the client receives until `stop`.
pub fn watch_client(start: Instant, ns: &str, ip: Ipv4Addr, stop: &AtomicBool) {
    let mut last = String::new();
    while !stop.load(Ordering::Relaxed) {
        let got = client_get(ns, ip);
        if got != last {
            println!("{} {:<9} GET http://{ip}/ -> {got}", stamp(start), "client");
            last = got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A transition reason (the core's `Reason`, as status shows it) in words, the raw form after.
pub fn explain(reason: &str) -> String {
    let words = match reason.split(['(', ' ', '{']).next().unwrap_or(reason) {
        "Startup" => "started",
        "Preempted" => "preempted the Master (higher priority)",
        "TrackerFault" => "a tracked check failed (chk_nginx: no nginx)",
        "TrackersRecovered" => "the tracked checks pass again",
        "MasterLeft" => "the Master left (priority 0 advert)",
        "MasterNoResponse" => "no advert from the Master for Master_Down_Interval",
        "HigherPriorityAdvert" => "an advert with a higher priority arrived",
        "Shutdown" => "shut down",
        _ => return reason.to_owned(),
    };
    format!("{words} [{reason}]")
}

//! `xvrrp status` and `xvrrp counters` as a person reads them: every line fits an 80-column
//! terminal. A line that would not is wrapped at spaces, its continuation indented four more
//! columns; a word longer than a whole line (an instance name of 90 characters) is cut.

use crate::state::{CloudState, RxCounters, Status, TrackerState, VipState};

/// The terminal width every line fits in.
pub(crate) const WIDTH: usize = 80;

/// Lines of text, each wrapped to [`WIDTH`] as it is added.
#[derive(Default)]
struct Out(String);

impl Out {
    /// Adds `line` (its leading spaces are its indent), wrapped.
    fn line(&mut self, line: &str) {
        for l in wrap(line, WIDTH) {
            self.0.push_str(&l);
            self.0.push('\n');
        }
    }
}

/// `line` cut into lines of at most `width` columns (characters) at spaces; continuation lines
/// are indented four columns more than the first.
pub(crate) fn wrap(line: &str, width: usize) -> Vec<String> {
    let chars = |s: &str| s.chars().count();
    if chars(line) <= width {
        return vec![line.to_owned()];
    }
    let indent = line.len() - line.trim_start_matches(' ').len();
    let cont = " ".repeat((indent + 4).min(width / 2));
    let mut out: Vec<String> = Vec::new();
    let mut cur = " ".repeat(indent.min(width / 2));
    let mut fresh = true; // `cur` holds only its indent
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word.to_owned();
        loop {
            let room = width.saturating_sub(chars(&cur) + usize::from(!fresh));
            if chars(&word) <= room {
                if !fresh {
                    cur.push(' ');
                }
                cur.push_str(&word);
                fresh = false;
                break;
            }
            if !fresh {
                out.push(std::mem::replace(&mut cur, cont.clone()));
                fresh = true;
                continue;
            }
            // Longer than a whole line: cut it.
            let head: String = word.chars().take(room).collect();
            word = word.chars().skip(room).collect();
            cur.push_str(&head);
            out.push(std::mem::replace(&mut cur, cont.clone()));
        }
    }
    if !fresh {
        out.push(cur);
    }
    out
}

/// `-` for a missing value.
pub(crate) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `3d04h05m`, `2h03m`, `4m05s`, `12s`.
fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h{m:02}m"),
    }
}

/// The text of `xvrrp status`: the agent (uptime, receive paths, metrics endpoint), then each
/// instance (state, priorities, master, last transition, addresses, trackers, cloud, notify
/// scripts), then the health verdict (see `state::health`).
pub(crate) fn status(v: &Status) -> String {
    let mut o = Out::default();
    o.line(&format!(
        "xvrrp up {}, {} instance(s)",
        uptime(v.uptime_ms),
        v.instances.len()
    ));
    o.line(&format!(
        "metrics: {}",
        v.metrics
            .as_deref()
            .map_or_else(|| "off".to_owned(), |m| format!("http://{m}/metrics"))
    ));
    for rx in &v.rx {
        let mut line = format!("rx {}: {}", rx.interface, rx.path.as_str());
        if let Some(f) = &rx.fallback {
            line.push_str(&format!(" ({f})"));
        }
        o.line(&line);
    }
    for i in &v.instances {
        o.line(&format!(
            "{} (VRID {} on {}, VRRPv{}): {:?}",
            i.name, i.vrid, i.interface, i.version, i.state
        ));
        o.line(&format!(
            "  priority {} (base {}), master {}, advert interval {} ms",
            i.effective_priority,
            i.base_priority,
            opt(i.master_address),
            i.master_adver_interval_ms
        ));
        if let Some(t) = &i.last_transition {
            o.line(&format!(
                "  last transition {:?} -> {:?} at {} ({})",
                t.from, t.to, t.at, t.reason
            ));
        }
        for a in &i.addresses {
            o.line(&format!("  {}", address_line(a)));
        }
        for tr in &i.trackers {
            o.line(&format!("  {}", tracker_line(tr)));
        }
        if let Some(c) = &i.cloud {
            o.line(&format!("  {}", cloud_line(c)));
        }
        let n = &i.notify;
        if n.started > 0 || n.pending > 0 {
            o.line(&format!(
                "  notify: running {}, waiting {}, {} started, {} replaced before running",
                opt(n.running.as_deref()),
                opt(n.waiting.as_deref()),
                n.started,
                n.replaced
            ));
        }
    }
    if v.logs_suppressed > 0 {
        o.line(&format!(
            "log messages suppressed by the rate limit: {}",
            v.logs_suppressed
        ));
    }
    let problems = v.problems();
    if problems.is_empty() {
        o.line("health: ok");
    } else {
        o.line(&format!("health: {} problem(s)", problems.len()));
        for p in &problems {
            o.line(&format!("  {p}"));
        }
    }
    o.0
}

/// One virtual address of `xvrrp status`: present or not (read back), and why not.
fn address_line(a: &VipState) -> String {
    let present = match a.present {
        Some(true) => "present",
        Some(false) => "absent",
        None => "unreadable",
    };
    let mut line = format!(
        "address {} dev {}: {present}{}",
        a.address,
        a.dev,
        if a.as_wanted() {
            ""
        } else {
            " (NOT AS WANTED)"
        }
    );
    if a.failures > 0 {
        line.push_str(&format!(", {} failed change(s)", a.failures));
    }
    if let Some(op) = &a.retrying {
        line.push_str(&format!(", retrying {op}"));
    }
    if let Some(e) = &a.last_error {
        line.push_str(&format!(": {e}"));
    }
    line
}

/// The cloud takeover of `xvrrp status`: provider, reserved IP, state, droplets, moves.
fn cloud_line(c: &CloudState) -> String {
    let s = &c.status;
    let mut line = format!(
        "cloud {} {}: {}, droplet {}",
        s.provider,
        s.reserved_ip,
        c.state,
        opt(s.droplet_id)
    );
    if !c.state.starts_with("holder") {
        line.push_str(&format!(", holder {}", opt(s.holder)));
    }
    line.push_str(&format!(", {} move(s)", s.moves));
    if let Some(ms) = s.last_takeover_ms {
        line.push_str(&format!(", last takeover {ms} ms"));
    }
    line.push_str(&format!(", {} API call(s)", s.api_calls));
    if let Some(at) = &s.checked_at {
        line.push_str(&format!(", checked {at}"));
    }
    line
}

/// One tracker of `xvrrp status`: kind, name, state, last change, reason and counters.
fn tracker_line(tr: &TrackerState) -> String {
    let state = if tr.disabled {
        "DISABLED"
    } else if tr.up {
        "up"
    } else {
        "DOWN"
    };
    let mut line = format!("tracker {}: {state}", tr.label);
    if let Some(v) = tr.value {
        line.push_str(&format!(" value {v}"));
    }
    if tr.priority_change != 0 {
        line.push_str(&format!(" priority {:+}", tr.priority_change));
    }
    if let Some(since) = &tr.since {
        line.push_str(&format!(" since {since}"));
    }
    if let Some(r) = &tr.reason {
        line.push_str(&format!(" ({r})"));
    }
    let d = &tr.details;
    let counters: Vec<String> = [
        ("processes", d.processes.map(|n| n.to_string())),
        ("link", d.link.clone()),
        ("runs", d.runs.map(|n| n.to_string())),
        ("failures", d.failures.map(|n| n.to_string())),
        ("timeouts", d.timeouts.map(|n| n.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
    .collect();
    if !counters.is_empty() {
        line.push_str(&format!(" [{}]", counters.join(", ")));
    }
    // vrrp_track_listen: per watched port.
    for p in d.ports.as_deref().unwrap_or_default() {
        line.push_str(&format!(
            " [port {}: {} listener(s), {} established, {} SYN/s{}]",
            p.port,
            p.listeners,
            opt(p.established),
            p.syns_per_sec,
            if p.stalled { ", STALLED" } else { "" }
        ));
    }
    line
}

/// The text of `xvrrp counters`: per interface, then per (interface, VRID, peer).
pub(crate) fn counters(v: &RxCounters) -> String {
    let mut o = Out::default();
    for i in &v.interfaces {
        o.line(&format!(
            "{} ({}): {} VRRP frames passed, not ours (other VRIDs, families or VLANs)",
            i.interface,
            i.path,
            opt(i.not_ours)
        ));
        if i.other_destination > 0 || i.queue_full > 0 {
            o.line(&format!(
                "  {} packets for other destinations discarded, {} adverts dropped on a full queue",
                i.other_destination, i.queue_full
            ));
        }
    }
    for p in &v.peers {
        o.line(&format!(
            "{} VRID {} peer {}: last priority {}, last interval {} cs, last seen {}",
            p.interface,
            p.vrid,
            p.peer,
            opt(p.last_priority),
            opt(p.last_interval_cs),
            opt(p.last_seen.as_deref())
        ));
        let nonzero: Vec<String> = p
            .counters
            .0
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        o.line(&format!(
            "  {}",
            if nonzero.is_empty() {
                "(no packets)".to_owned()
            } else {
                nonzero.join(" ")
            }
        ));
    }
    o.0
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

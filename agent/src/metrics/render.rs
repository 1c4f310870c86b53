//! A snapshot of the typed model ([`Status`], [`RxCounters`]) and the cloud requests' table as
//! metric families: what `/metrics` shows. Pure: no I/O, no clock.
//!
//! Names follow keepalived's exporters where they have an equivalent (`xvrrp_vrrp_state` for
//! `keepalived_vrrp_state`, with its values 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT), and the same
//! labels: `iname` (instance name), `intf` (interface), `vrid`. The README has the table.

use std::{collections::BTreeSet, net::IpAddr};

use super::{
    families::{Labels, Out, Sample},
    Snapshot,
};
use crate::{
    cloud::calls::{CallKey, CallStats, BUCKETS},
    packet::Counter,
    state::{InstanceState, PeerRow, Role, State, TrackerState},
};

/// keepalived's numbering of states (its JSON and SNMP output, and the exporters).
pub(super) fn state_value(s: State) -> f64 {
    match s {
        State::Initialize => 0.0,
        State::Backup => 1.0,
        State::Master => 2.0,
        State::Fault => 3.0,
    }
}

fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

fn inst_labels(i: &InstanceState) -> Labels {
    vec![
        ("iname", i.name.clone()),
        ("intf", i.interface.clone()),
        ("vrid", i.vrid.to_string()),
    ]
}

fn with(mut l: Labels, more: &[(&'static str, String)]) -> Labels {
    l.extend_from_slice(more);
    l
}

/// Every family of the snapshot, then the cloud request latencies.
pub(super) fn families(s: &Snapshot, calls: &[(CallKey, CallStats)]) -> Out {
    let mut o = Out::default();
    agent(&mut o, s);
    for i in &s.status.instances {
        instance(&mut o, i);
    }
    trackers(&mut o, &s.status.instances);
    for i in &s.status.instances {
        notify_vips_cloud(&mut o, i);
    }
    receive(&mut o, s);
    for p in &s.counters.peers {
        peer(&mut o, s, p);
    }
    cloud_calls(&mut o, calls);
    o
}

fn agent(o: &mut Out, s: &Snapshot) {
    let st = &s.status;
    o.gauge("xvrrp_up", "The agent is running (1).", vec![], 1.0);
    o.gauge(
        "xvrrp_uptime_seconds",
        "Seconds since the agent started.",
        vec![],
        ms(st.uptime_ms),
    );
    o.counter(
        "xvrrp_loop_timers_fired",
        "Instance timers fired by the event loop.",
        vec![],
        st.timers.fired,
    );
    o.gauge(
        "xvrrp_loop_timer_late_max_seconds",
        "Largest lateness of an instance timer since start (delays that instance's advert as much).",
        vec![],
        st.timers.late_max_us as f64 / 1e6,
    );
    o.counter(
        "xvrrp_loop_timers_late_over_10ms",
        "Instance timers fired more than 10 ms late.",
        vec![],
        st.timers.late_over_10ms,
    );
    o.counter(
        "xvrrp_announcements_dropped",
        "Gratuitous ARPs / unsolicited NAs dropped because the announcer's queue was full.",
        vec![],
        st.announcements_dropped,
    );
    o.counter(
        "xvrrp_logs_suppressed",
        "Log messages suppressed by the rate limit.",
        vec![],
        st.logs_suppressed,
    );
    o.counter(
        "xvrrp_metrics_snapshots",
        "Snapshots the event loop built for scrapes (at most 2 a second, whatever the scrape rate).",
        vec![],
        s.cost.snapshots,
    );
    o.gauge(
        "xvrrp_metrics_snapshot_last_seconds",
        "Event-loop time the previous snapshot took to build.",
        vec![],
        s.cost.last_us as f64 / 1e6,
    );
    o.gauge(
        "xvrrp_metrics_snapshot_max_seconds",
        "Event-loop time the longest snapshot took to build.",
        vec![],
        s.cost.max_us as f64 / 1e6,
    );
}

// keepalived_vrrp_state (mehdy/keepalived-exporter) has one series per virtual address, with
// an `ip_address` label; xvrrp reports the state once per instance (what `iname`, `intf`,
// `vrid` identify) and each address's presence in `xvrrp_vip_present{ip_address}`: a
// dashboard's `max by (iname) (keepalived_vrrp_state)` reads the same with the xvrrp name.
fn instance(o: &mut Out, i: &InstanceState) {
    let l = inst_labels(i);
    o.gauge(
        "xvrrp_vrrp_state",
        "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT (as keepalived_vrrp_state).",
        l.clone(),
        state_value(i.state),
    );
    o.gauge(
        "xvrrp_vrrp_base_priority",
        "Configured priority.",
        l.clone(),
        f64::from(i.base_priority),
    );
    o.gauge(
        "xvrrp_vrrp_effective_priority",
        "Priority after tracker weights (what adverts carry).",
        l.clone(),
        f64::from(i.effective_priority),
    );
    o.gauge(
        "xvrrp_vrrp_advert_interval_seconds",
        "Master_Adver_Interval in use (learned from the Master in VRRPv3).",
        l.clone(),
        ms(i.master_adver_interval_ms),
    );
    for (reason, n) in &i.transitions {
        o.counter(
            "xvrrp_vrrp_transitions",
            "State transitions since start, by reason.",
            with(l.clone(), &[("reason", reason.clone())]),
            *n,
        );
    }
    let c = &i.counters;
    for (name, help, v) in [
        (
            "xvrrp_advertisements_received",
            "Adverts that passed every check and reached the instance.",
            c.advert_rcvd,
        ),
        ("xvrrp_advertisements_sent", "Adverts sent.", c.advert_sent),
        (
            "xvrrp_become_master",
            "Transitions to MASTER.",
            c.become_master,
        ),
        (
            "xvrrp_release_master",
            "Transitions out of MASTER.",
            c.release_master,
        ),
        (
            "xvrrp_priority_zero_received",
            "Priority-0 adverts received (the Master left).",
            c.pri_zero_rcvd,
        ),
        (
            "xvrrp_priority_zero_sent",
            "Priority-0 adverts sent (leaving MASTER).",
            c.pri_zero_sent,
        ),
        (
            "xvrrp_advertisement_send_errors",
            "Adverts that could not be encoded or sent.",
            i.advert_send_errors,
        ),
    ] {
        o.counter(name, help, l.clone(), v);
    }
}

/// The tracker's kind as in status (`script`, `interface`, `file`, `process`, `listen`).
fn kind_name(t: &TrackerState) -> String {
    serde_json::to_value(t.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The tracker label without its kind (`script chk_nginx` -> `chk_nginx`).
fn tracker_name(t: &TrackerState) -> String {
    let prefix = format!("{} ", kind_name(t));
    t.label.strip_prefix(&prefix).unwrap_or(&t.label).to_owned()
}

fn trackers(o: &mut Out, instances: &[InstanceState]) {
    for i in instances {
        for t in &i.trackers {
            let l = with(
                inst_labels(i),
                &[("tracker", tracker_name(t)), ("kind", kind_name(t))],
            );
            o.flag(
                "xvrrp_tracker_up",
                "Tracker healthy from the instance's point of view (1 up, 0 down).",
                l.clone(),
                t.up,
            );
            o.gauge(
                "xvrrp_tracker_priority_change",
                "What the tracker adds to the instance's priority now.",
                l,
                f64::from(t.priority_change),
            );
        }
    }
    // The tracked objects' own details, once per object (instances share them).
    let mut seen = BTreeSet::new();
    for t in instances.iter().flat_map(|i| &i.trackers) {
        if !seen.insert(t.label.clone()) {
            continue;
        }
        let l = vec![("tracker", tracker_name(t)), ("kind", kind_name(t))];
        let d = &t.details;
        for (name, help, v) in [
            ("xvrrp_tracker_script_runs", "Track script runs.", d.runs),
            (
                "xvrrp_tracker_script_failures",
                "Track script runs that failed.",
                d.failures,
            ),
            (
                "xvrrp_tracker_script_timeouts",
                "Track script runs killed at their timeout.",
                d.timeouts,
            ),
        ] {
            if let Some(v) = v {
                o.counter(name, help, l.clone(), v);
            }
        }
        if let Some(n) = d.processes {
            o.gauge(
                "xvrrp_tracker_processes",
                "Processes matching a vrrp_track_process.",
                l.clone(),
                n as f64,
            );
        }
        if let Some(v) = t.value {
            o.gauge(
                "xvrrp_tracker_value",
                "Current value of a valued tracker (track_file).",
                l.clone(),
                f64::from(v),
            );
        }
        for p in d.ports.iter().flatten() {
            let l = with(l.clone(), &[("port", p.port.to_string())]);
            o.gauge(
                "xvrrp_listen_listeners",
                "Listening sockets serving the tracked address on a watched port.",
                l.clone(),
                p.listeners as f64,
            );
            if let Some(n) = p.established {
                o.gauge(
                    "xvrrp_listen_established",
                    "Established connections on a watched port.",
                    l.clone(),
                    n as f64,
                );
            }
            if let Some(n) = p.established_total {
                o.counter(
                    "xvrrp_listen_connections_established",
                    "Connections established on a watched port since start.",
                    l.clone(),
                    n,
                );
            }
            if let Some(n) = p.closed_total {
                o.counter(
                    "xvrrp_listen_connections_closed",
                    "Connections closed on a watched port since start.",
                    l.clone(),
                    n,
                );
            }
            o.gauge(
                "xvrrp_listen_accept_queue",
                "Connections waiting in the accept queues of a watched port.",
                l.clone(),
                p.accept_queue as f64,
            );
            o.counter(
                "xvrrp_listen_syns",
                "SYNs to a watched port seen by XDP.",
                l.clone(),
                p.syns,
            );
            o.flag(
                "xvrrp_listen_accept_queue_stalled",
                "The accept queue of a watched port is non-empty and has not moved for `stall`.",
                l,
                p.stalled,
            );
        }
    }
}

fn notify_vips_cloud(o: &mut Out, i: &InstanceState) {
    let l = inst_labels(i);
    let n = &i.notify;
    o.counter(
        "xvrrp_notify_scripts_run",
        "Notify scripts that finished.",
        l.clone(),
        n.scripts_run,
    );
    o.counter(
        "xvrrp_notify_scripts_failed",
        "Notify scripts that failed (non-zero exit, killed, timed out, not started).",
        l.clone(),
        n.scripts_failed,
    );
    o.counter(
        "xvrrp_notify_transitions_replaced",
        "Transitions whose notify scripts were replaced by a newer one before they ran.",
        l.clone(),
        n.replaced,
    );
    o.gauge(
        "xvrrp_notify_pending",
        "Transitions whose notify scripts run or wait.",
        l.clone(),
        n.pending as f64,
    );
    for a in &i.addresses {
        let ip = a.address.split('/').next().unwrap_or(&a.address).to_owned();
        let l = with(l.clone(), &[("ip_address", ip), ("dev", a.dev.clone())]);
        if let Some(p) = a.present {
            o.flag(
                "xvrrp_vip_present",
                "Virtual address present on its interface (read back from the kernel).",
                l.clone(),
                p,
            );
        }
        o.flag(
            "xvrrp_vip_wanted",
            "Virtual address wanted by the role (1 while MASTER).",
            l.clone(),
            a.wanted,
        );
        o.counter(
            "xvrrp_vip_change_failures",
            "Refused adds and removes of a virtual address.",
            l,
            a.failures,
        );
    }
    let Some(c) = &i.cloud else { return };
    let st = &c.status;
    let l = with(l, &[("reserved_ip", st.reserved_ip.to_string())]);
    for (role, name) in [
        (Role::Starting, "starting"),
        (Role::Backup, "backup"),
        (Role::Assigning, "assigning"),
        (Role::Verified, "verified"),
    ] {
        o.flag(
            "xvrrp_cloud_takeover_state",
            "Reserved-IP takeover state (1 for the current one).",
            with(l.clone(), &[("state", name.to_owned())]),
            st.role == role,
        );
    }
    o.flag(
        "xvrrp_cloud_degraded",
        "The takeover cannot do its job (droplet id unknown, API failing or token refused).",
        l.clone(),
        c.state.starts_with("degraded"),
    );
    o.flag(
        "xvrrp_cloud_reserved_ip_held",
        "The API last reported the reserved IP assigned to this droplet.",
        l.clone(),
        st.holder.is_some() && st.holder == st.droplet_id,
    );
    for (name, help, v) in [
        (
            "xvrrp_cloud_api_calls",
            "DigitalOcean API requests made.",
            st.api_calls,
        ),
        ("xvrrp_cloud_assigns", "Assign requests made.", st.assigns),
        (
            "xvrrp_cloud_moves",
            "Verified moves of the reserved IP to this droplet.",
            st.moves,
        ),
    ] {
        o.counter(name, help, l.clone(), v);
    }
    if let Some(t) = st.last_takeover_ms {
        o.gauge(
            "xvrrp_cloud_last_takeover_seconds",
            "From the last MASTER transition to the reserved IP verified here.",
            l,
            ms(t),
        );
    }
}

fn receive(o: &mut Out, s: &Snapshot) {
    for r in &s.status.rx {
        o.gauge(
            "xvrrp_rx_path_info",
            "How an interface receives adverts (path: xdp-native, xdp-generic, socket).",
            vec![
                ("intf", r.interface.clone()),
                ("path", r.path.as_str().to_owned()),
            ],
            1.0,
        );
    }
    for x in &s.counters.interfaces {
        let l = vec![("intf", x.interface.clone())];
        if x.path == "xdp" {
            if let Some(n) = x.not_ours {
                o.counter(
                    "xvrrp_xdp_passed",
                    "VRRP-like frames XDP passed to the stack because they are not ours (another VRID, family or VLAN).",
                    l.clone(),
                    n,
                );
            }
            let dropped = s
                .counters
                .peers_on(&x.interface)
                .map(|p| p.counters.dropped())
                .sum();
            o.counter(
                "xvrrp_xdp_dropped",
                "VRRP frames XDP dropped because they failed a check (the sum of xvrrp_peer_adverts_dropped_total).",
                l.clone(),
                dropped,
            );
        } else if let Some(n) = x.not_ours {
            o.counter(
                "xvrrp_rx_not_ours",
                "VRRP-like frames the socket path ignored because they are not ours.",
                l.clone(),
                n,
            );
        }
        o.counter(
            "xvrrp_rx_queue_full",
            "Accepted adverts dropped because the queue to the event loop was full.",
            l,
            x.queue_full,
        );
    }
}

/// The instance a peer row belongs to: the one on its interface and VRID, of the peer's
/// family (empty when none or several match, e.g. for `unknown`).
fn peer_instance<'a>(s: &'a Snapshot, p: &PeerRow) -> &'a str {
    let family = p.peer.parse::<IpAddr>().ok().map(|a| a.is_ipv4());
    let mut m = s.status.instances.iter().filter(|i| {
        i.interface == p.interface
            && i.vrid == p.vrid
            && family.is_none_or(|v4| i.source_address.is_ipv4() == v4)
    });
    match (m.next(), m.next()) {
        (Some(i), None) => &i.name,
        _ => "",
    }
}

fn peer(o: &mut Out, s: &Snapshot, p: &PeerRow) {
    let l = vec![
        ("iname", peer_instance(s, p).to_owned()),
        ("intf", p.interface.clone()),
        ("vrid", p.vrid.to_string()),
        ("peer", p.peer.clone()),
    ];
    o.counter(
        "xvrrp_peer_adverts_accepted",
        "Adverts from a peer that passed every check (keepalived's advert_rcvd).",
        l.clone(),
        p.counters.get(Counter::AdvertRcvd),
    );
    o.counter(
        "xvrrp_peer_priority_zero_received",
        "Accepted priority-0 adverts from a peer.",
        l.clone(),
        p.counters.get(Counter::PriZeroRcvd),
    );
    for c in Counter::ALL {
        if matches!(
            c,
            Counter::AdvertRcvd | Counter::PriZeroRcvd | Counter::VridErr | Counter::NotVrrp
        ) {
            continue;
        }
        o.counter(
            "xvrrp_peer_adverts_dropped",
            "Frames from a peer dropped by a receive check, by reason (keepalived's counter names).",
            with(l.clone(), &[("reason", c.as_str().to_owned())]),
            p.counters.get(c),
        );
    }
    if let Some(pr) = p.last_priority {
        o.gauge(
            "xvrrp_peer_last_priority",
            "Priority of the peer's last accepted advert.",
            l,
            f64::from(pr),
        );
    }
}

fn cloud_calls(o: &mut Out, calls: &[(CallKey, CallStats)]) {
    for (k, v) in calls {
        let buckets = BUCKETS
            .iter()
            .copied()
            .zip(v.buckets.iter().copied())
            .collect();
        o.histogram(
            "xvrrp_cloud_api_request_duration_seconds",
            "DigitalOcean API and metadata requests: latency by operation and outcome (ok, timeout, transport, decode, or the HTTP status).",
            vec![
                ("operation", k.operation.to_owned()),
                ("target", k.target.clone()),
                ("outcome", k.outcome.clone()),
            ],
            Sample::Histogram {
                sum: v.sum_seconds,
                count: v.count,
                buckets,
            },
        );
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

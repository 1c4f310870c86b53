//! The rendering of a snapshot: names, labels, values, and a text that is well-formed
//! exposition format (every family typed once, series unique, counters ending in `_total`).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    collections::{BTreeMap, HashSet},
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::*;
use crate::{
    metrics::families,
    state::{
        CloudState, CloudStatus, InstanceCounters, InterfaceRx, LoopTiming, NotifyState,
        PeerCounts, PortState, RxCounters, RxKind, RxPath, Status, TrackerDetails, TrackerKind,
        VipState,
    },
};

fn instance(name: &str, vrid: u8, state: State) -> InstanceState {
    InstanceState {
        name: name.to_owned(),
        interface: "eth1".to_owned(),
        vrid,
        version: 3,
        state,
        base_priority: 150,
        effective_priority: 140,
        master_address: None,
        source_address: IpAddr::from([10, 0, 0, 1]),
        advert_interval_ms: 1000,
        master_adver_interval_ms: 1000,
        master_down_interval_ms: 3414,
        last_transition: None,
        transitions: BTreeMap::new(),
        counters: InstanceCounters::default(),
        advert_send_errors: 0,
        trackers: Vec::new(),
        virtual_addresses: Vec::new(),
        addresses: Vec::new(),
        notify: NotifyState::default(),
        cloud: None,
    }
}

fn tracker(label: &str, kind: TrackerKind, up: bool) -> TrackerState {
    TrackerState {
        label: label.to_owned(),
        kind,
        up,
        since: None,
        reason: None,
        weight: -20,
        reverse: false,
        priority_change: if up { 0 } else { -20 },
        value: None,
        disabled: false,
        details: TrackerDetails::default(),
    }
}

fn peer_row(vrid: u8, peer: &str, counts: &[(Counter, u64)]) -> PeerRow {
    PeerRow {
        interface: "eth1".to_owned(),
        vrid,
        peer: peer.to_owned(),
        counters: PeerCounts(counts.iter().copied().collect()),
        last_priority: Some(100),
        last_interval_cs: Some(100),
        last_seen: None,
        path: "xdp".to_owned(),
    }
}

/// Two instances (a Master with a reserved IP, a Backup), trackers of three kinds, two peers.
fn snapshot() -> Snapshot {
    let mut m = instance("VI_1", 51, State::Master);
    m.transitions.insert("startup".to_owned(), 1);
    m.transitions.insert("master_no_response".to_owned(), 2);
    m.counters.advert_sent = 42;
    m.counters.become_master = 2;
    m.counters.release_master = 1;
    let mut chk = tracker("script chk_nginx", TrackerKind::Script, true);
    chk.details.runs = Some(7);
    chk.details.failures = Some(1);
    let mut listen = tracker("listen web", TrackerKind::Listen, false);
    listen.details.ports = Some(vec![PortState {
        port: 80,
        listeners: 0,
        established: Some(3),
        established_total: Some(10),
        closed_total: Some(7),
        accept_queue: 2,
        syns: 12,
        syns_per_sec: 0.5,
        stalled: true,
    }]);
    m.trackers = vec![chk.clone(), listen];
    m.addresses = vec![VipState {
        address: "10.0.0.100/24".to_owned(),
        dev: "eth1".to_owned(),
        wanted: true,
        present: Some(true),
        ours: true,
        failures: 0,
        retrying: None,
        last_error: None,
    }];
    m.notify.scripts_run = 4;
    m.notify.scripts_failed = 1;
    let mut cs = CloudStatus::new(Ipv4Addr::new(203, 0, 113, 7));
    cs.role = crate::state::Role::Verified;
    cs.droplet_id = Some(11);
    cs.holder = Some(11);
    cs.api_calls = 5;
    cs.last_takeover_ms = Some(1500);
    m.cloud = Some(CloudState {
        state: cs.state(),
        status: cs,
        api_url: "https://api.digitalocean.com".to_owned(),
        reconcile_interval_s: 60,
        takeover_running: true,
        lower_priority_adverts: 0,
    });
    let mut b = instance("VI_\"2\"", 52, State::Backup);
    b.counters.advert_rcvd = 9;
    b.trackers = vec![chk];
    Snapshot {
        status: Status {
            uptime_ms: 61_500,
            timers: LoopTiming {
                fired: 100,
                late_max_us: 2500,
                late_over_10ms: 0,
            },
            rx: vec![RxPath {
                interface: "eth1".to_owned(),
                path: RxKind::XdpGeneric,
                fallback: None,
                vlan_tags: None,
            }],
            announcements_dropped: 0,
            logs_suppressed: 3,
            instances: vec![m, b],
            metrics: Some("127.0.0.1:9650".to_owned()),
        },
        counters: RxCounters {
            rx: Vec::new(),
            interfaces: vec![InterfaceRx {
                interface: "eth1".to_owned(),
                path: "xdp".to_owned(),
                not_ours: Some(17),
                other_destination: 0,
                queue_full: 0,
            }],
            peers: vec![
                peer_row(
                    52,
                    "10.0.0.2",
                    &[(Counter::AdvertRcvd, 9), (Counter::AuthFailure, 4)],
                ),
                peer_row(0, "unknown", &[(Counter::PacketLenErr, 2)]),
            ],
        },
        cost: crate::metrics::LoopCost {
            snapshots: 3,
            last_us: 150,
            max_us: 400,
        },
    }
}

fn calls() -> Vec<(CallKey, CallStats)> {
    let mut ok = CallStats::default();
    ok.observe(Duration::from_millis(40));
    ok.observe(Duration::from_millis(300));
    let key = CallKey {
        operation: "assign",
        target: "203.0.113.7".to_owned(),
        outcome: "ok".to_owned(),
    };
    vec![(key, ok)]
}

fn text() -> String {
    families::encode(families(&snapshot(), &calls()).fams)
}

/// The value of the series `name{labels}` exactly as written (labels in their order).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn instance_state_priorities_and_counters() {
    let t = text();
    let vi1 = r#"{iname="VI_1",intf="eth1",vrid="51"}"#;
    assert_eq!(
        value(&t, &format!("xvrrp_vrrp_state{vi1}")),
        Some(2.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            r#"xvrrp_vrrp_state{iname="VI_\"2\"",intf="eth1",vrid="52"}"#
        ),
        Some(1.0),
        "label values are escaped:\n{t}"
    );
    assert_eq!(
        value(&t, &format!("xvrrp_vrrp_base_priority{vi1}")),
        Some(150.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_vrrp_effective_priority{vi1}")),
        Some(140.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_advertisements_sent_total{vi1}")),
        Some(42.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_become_master_total{vi1}")),
        Some(2.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_release_master_total{vi1}")),
        Some(1.0)
    );
    assert_eq!(
        value(
            &t,
            r#"xvrrp_vrrp_transitions_total{iname="VI_1",intf="eth1",vrid="51",reason="master_no_response"}"#
        ),
        Some(2.0)
    );
    assert_eq!(value(&t, "xvrrp_uptime_seconds"), Some(61.5));
    assert_eq!(value(&t, "xvrrp_loop_timer_late_max_seconds"), Some(0.0025));
    assert_eq!(value(&t, "xvrrp_metrics_snapshots_total"), Some(3.0));
    assert_eq!(
        value(&t, "xvrrp_metrics_snapshot_max_seconds"),
        Some(0.0004)
    );
    assert!(t.contains("# TYPE xvrrp_vrrp_state gauge\n"), "{t}");
    assert!(
        t.contains("# TYPE xvrrp_advertisements_sent_total counter\n"),
        "{t}"
    );
}

#[test]
fn states_use_keepalived_numbers() {
    let got: Vec<f64> = [
        State::Initialize,
        State::Backup,
        State::Master,
        State::Fault,
    ]
    .into_iter()
    .map(state_value)
    .collect();
    assert_eq!(got, [0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn peers_by_reason_with_their_instance() {
    let t = text();
    let p = r#"iname="VI_\"2\"",intf="eth1",vrid="52",peer="10.0.0.2""#;
    assert_eq!(
        value(&t, &format!("xvrrp_peer_adverts_accepted_total{{{p}}}")),
        Some(9.0)
    );
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_peer_adverts_dropped_total{{{p},reason=\"auth_failure\"}}")
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_peer_adverts_dropped_total{{{p},reason=\"checksum_err\"}}")
        ),
        Some(0.0),
        "every reason is present, zero or not"
    );
    // Not the instance's own counter names: accepted adverts are not a drop reason.
    assert!(!t.contains(r#"reason="advert_rcvd""#), "{t}");
    let u = r#"iname="",intf="eth1",vrid="0",peer="unknown""#;
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_peer_adverts_dropped_total{{{u},reason=\"packet_len_err\"}}")
        ),
        Some(2.0)
    );
    // XDP totals: passed (not ours), dropped (the sum of the drop reasons on the interface).
    assert_eq!(
        value(&t, r#"xvrrp_xdp_passed_total{intf="eth1"}"#),
        Some(17.0)
    );
    assert_eq!(
        value(&t, r#"xvrrp_xdp_dropped_total{intf="eth1"}"#),
        Some(6.0)
    );
    assert_eq!(
        value(&t, r#"xvrrp_rx_path_info{intf="eth1",path="xdp-generic"}"#),
        Some(1.0)
    );
}

#[test]
fn trackers_listen_notify_vips_and_cloud() {
    let t = text();
    let vi1 = r#"iname="VI_1",intf="eth1",vrid="51""#;
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_tracker_up{{{vi1},tracker=\"chk_nginx\",kind=\"script\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_tracker_up{{{vi1},tracker=\"web\",kind=\"listen\"}}")
        ),
        Some(0.0)
    );
    // An object tracked by two instances: its own counts once.
    assert_eq!(
        t.matches("xvrrp_tracker_script_runs_total{").count(),
        1,
        "{t}"
    );
    let port = r#"{tracker="web",kind="listen",port="80"}"#;
    assert_eq!(
        value(&t, &format!("xvrrp_listen_listeners{port}")),
        Some(0.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_listen_established{port}")),
        Some(3.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_listen_syns_total{port}")),
        Some(12.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_listen_accept_queue{port}")),
        Some(2.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_listen_accept_queue_stalled{port}")),
        Some(1.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_notify_scripts_run_total{{{vi1}}}")),
        Some(4.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_notify_scripts_failed_total{{{vi1}}}")),
        Some(1.0)
    );
    let vip = format!("{vi1},ip_address=\"10.0.0.100\",dev=\"eth1\"");
    assert_eq!(value(&t, &format!("xvrrp_vip_present{{{vip}}}")), Some(1.0));
    let c = format!("{vi1},reserved_ip=\"203.0.113.7\"");
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_cloud_takeover_state{{{c},state=\"verified\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &t,
            &format!("xvrrp_cloud_takeover_state{{{c},state=\"assigning\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_cloud_reserved_ip_held{{{c}}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_cloud_api_calls_total{{{c}}}")),
        Some(5.0)
    );
    assert_eq!(
        value(&t, &format!("xvrrp_cloud_last_takeover_seconds{{{c}}}")),
        Some(1.5)
    );
}

#[test]
fn cloud_latency_is_a_cumulative_histogram() {
    let t = text();
    let l = r#"operation="assign",target="203.0.113.7",outcome="ok""#;
    let h = "xvrrp_cloud_api_request_duration_seconds";
    assert!(t.contains(&format!("# TYPE {h} histogram\n")), "{t}");
    assert_eq!(
        value(&t, &format!("{h}_bucket{{{l},le=\"0.025\"}}")),
        Some(0.0),
        "{t}"
    );
    assert_eq!(
        value(&t, &format!("{h}_bucket{{{l},le=\"0.05\"}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&t, &format!("{h}_bucket{{{l},le=\"0.25\"}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&t, &format!("{h}_bucket{{{l},le=\"0.5\"}}")),
        Some(2.0)
    );
    assert_eq!(
        value(&t, &format!("{h}_bucket{{{l},le=\"+Inf\"}}")),
        Some(2.0)
    );
    assert_eq!(value(&t, &format!("{h}_count{{{l}}}")), Some(2.0));
    let sum = value(&t, &format!("{h}_sum{{{l}}}")).unwrap();
    assert!((sum - 0.34).abs() < 1e-9, "{sum}");
}

/// The text is well-formed exposition format: each family has one HELP and one TYPE before its
/// samples, its samples are contiguous, no series repeats, counters end in `_total`, every
/// metric name is prefixed `xvrrp_`. (The lab test also runs `promtool check metrics` on a
/// live agent's output.)
#[test]
fn exposition_is_well_formed() {
    let t = text();
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut series = HashSet::new();
    let mut done_families: HashSet<String> = HashSet::new();
    let mut current = String::new();
    for line in t.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(!typed.iter().any(|(n, _)| n == name), "{name} typed twice");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name}");
            }
            assert!(name.starts_with("xvrrp_"), "{name}");
            if !current.is_empty() {
                done_families.insert(current.clone());
            }
            current = name.to_owned();
            typed.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (key, v) = line.rsplit_once(' ').unwrap();
        v.parse::<f64>()
            .unwrap_or_else(|_| panic!("value of {line}"));
        assert!(series.insert(key.to_owned()), "{key} repeated");
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| *f == current))
            .unwrap_or(name);
        assert_eq!(family, current, "{line}: sample outside its family");
        assert!(!done_families.contains(family), "{family} not contiguous");
    }
    assert!(typed.len() > 40, "{} families", typed.len());
}

#[test]
#[ignore = "prints the sample text (for the README and promtool)"]
fn print_sample() {
    print!("{}", text());
}

//! `xvrrp status` / `xvrrp counters` text: every line fits 80 columns with long names and IPv6
//! addresses, and nothing is lost by wrapping.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use super::{counters, status, wrap, WIDTH};
use crate::{
    packet::Counter,
    state::{
        CloudState, CloudStatus, InstanceState, InterfaceRx, ListenerEvent, NotifyRecord,
        NotifyState, PeerCounts, PeerRow, PortState, RxCounters, RxKind, RxPath, State, Status,
        TrackerDetails, TrackerKind, TrackerState, Transition, VipState, VlanTags,
    },
};

const V6: &str = "2001:db8:ffff:1234:5678:9abc:def0:1234";
const LONG_IF: &str = "enp129s0f1np1.4093";
const LONG_NAME: &str = "VI_frontend_nginx_public_ipv6_reserved_ip_fra1_primary";

fn long_instance(state: State) -> InstanceState {
    let mut cloud = CloudStatus::new("203.0.113.250".parse().unwrap());
    cloud.droplet_id = Some(412_345_678_901);
    cloud.holder = Some(498_765_432_109);
    cloud.api_error = Some(
        "HTTP 503 Service Unavailable from https://api.digitalocean.com/v2/reserved_ips/203.0.113.250 (attempt 7, next in 8 s)"
            .to_owned(),
    );
    cloud.checked_at = Some("2026-12-05T01:02:03.456Z".to_owned());
    cloud.last_takeover_ms = Some(4321);
    cloud.moves = 12;
    cloud.api_calls = 1234;
    InstanceState {
        name: LONG_NAME.to_owned(),
        interface: LONG_IF.to_owned(),
        vrid: 255,
        version: 3,
        state,
        base_priority: 254,
        effective_priority: 199,
        master_address: Some(format!("fe80::{}", "abcd:ef01:2345:6789").parse().unwrap()),
        source_address: "fe80::1".parse().unwrap(),
        advert_interval_ms: 1000,
        master_adver_interval_ms: 1000,
        master_down_interval_ms: 3609,
        last_transition: Some(Transition {
            from: State::Backup,
            to: state,
            reason: "MasterNoResponseWithAVeryLongReasonName".to_owned(),
            at: "2026-12-05T01:02:03.456Z".to_owned(),
        }),
        transitions: [("master_no_response".to_owned(), 3)].into(),
        counters: Default::default(),
        advert_send_errors: 0,
        trackers: vec![TrackerState {
            label: "listen nginx_https_and_http_listeners_on_all_addresses".to_owned(),
            kind: TrackerKind::Listen,
            up: false,
            since: Some("2026-12-05T01:02:03.456Z".to_owned()),
            reason: Some("the last listener on port 443 closed (nginx stopped?)".to_owned()),
            weight: -50,
            reverse: false,
            priority_change: -50,
            value: None,
            disabled: false,
            details: TrackerDetails {
                ports: Some(vec![
                    PortState {
                        port: 443,
                        listeners: 0,
                        established: Some(12_345),
                        established_total: None,
                        closed_total: None,
                        accept_queue: 0,
                        syns: 99_999,
                        syns_per_sec: 1234.5,
                        stalled: true,
                    },
                    PortState {
                        port: 8443,
                        listeners: 4,
                        established: None,
                        established_total: None,
                        closed_total: None,
                        accept_queue: 0,
                        syns: 0,
                        syns_per_sec: 0.0,
                        stalled: false,
                    },
                ]),
                runs: Some(123_456),
                failures: Some(7),
                ..TrackerDetails::default()
            },
        }],
        virtual_addresses: vec![format!("{V6}/64 dev {LONG_IF}")],
        addresses: vec![
            VipState {
                address: format!("{V6}/64"),
                dev: LONG_IF.to_owned(),
                wanted: true,
                present: Some(false),
                ours: false,
                failures: 42,
                retrying: Some("add".to_owned()),
                last_error: Some(
                    "netlink: File exists (os error 17) while adding the address".to_owned(),
                ),
            },
            VipState {
                address: "198.51.100.200/32".to_owned(),
                dev: LONG_IF.to_owned(),
                wanted: true,
                present: Some(true),
                ours: true,
                failures: 0,
                retrying: None,
                last_error: None,
            },
        ],
        notify: NotifyState {
            pending: 2,
            running: Some("MASTER".to_owned()),
            waiting: Some("BACKUP".to_owned()),
            started: 123_456,
            replaced: 7890,
            ..NotifyState::default()
        },
        cloud: Some(CloudState {
            state: format!("degraded: {}", cloud.api_error.clone().unwrap()),
            status: cloud,
            api_url: "https://api.digitalocean.com".to_owned(),
            reconcile_interval_s: 60,
            takeover_running: true,
            lower_priority_adverts: 3,
        }),
    }
}

fn long_status() -> Status {
    Status {
        uptime_ms: 3 * 86_400_000 + 4 * 3_600_000 + 5 * 60_000,
        rx: vec![RxPath {
            interface: LONG_IF.to_owned(),
            path: RxKind::XdpGeneric,
            fallback: Some(
                "native XDP refused by the driver (Operation not supported, os error 95)"
                    .to_owned(),
            ),
            vlan_tags: None,
        }],
        logs_suppressed: 12_345,
        instances: vec![long_instance(State::Master), long_instance(State::Fault)],
        metrics: Some("[2001:db8:ffff:1234:5678:9abc:def0:1234]:9650".to_owned()),
        ..Status::default()
    }
}

fn assert_fits(text: &str) {
    for l in text.lines() {
        assert!(l.chars().count() <= WIDTH, "{} columns: {l:?}", l.len());
    }
}

/// The words of `text`, as one string (wrapping only moves line breaks).
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn status_fits_80_columns_with_long_names_and_ipv6_addresses() {
    let st = long_status();
    let text = status(&st);
    assert_fits(&text);
    // What it must show: presence per VIP, the cloud state, the metrics address, the verdict.
    let flat = words(&text);
    for want in [
        "metrics: http://[2001:db8:ffff:1234:5678:9abc:def0:1234]:9650/metrics",
        "rx enp129s0f1np1.4093: xdp-generic",
        &format!("address {V6}/64 dev {LONG_IF}: absent (NOT AS WANTED), 42 failed change(s)"),
        &format!("address 198.51.100.200/32 dev {LONG_IF}: present tracker"),
        "cloud digitalocean 203.0.113.250: degraded: HTTP 503",
        "droplet 412345678901, holder 498765432109, 12 move(s), last takeover 4321 ms",
        "STALLED",
        "health: 4 problem(s)",
        &format!("{LONG_NAME}: FAULT"),
    ] {
        assert!(flat.contains(want), "missing {want:?} in\n{text}");
    }
    // Continuation lines are indented under their first line.
    assert!(
        text.lines()
            .any(|l| l.starts_with("      ") && !l.trim().is_empty()),
        "{text}"
    );
}

#[test]
fn healthy_status_says_so_and_metrics_off_when_not_served() {
    let mut i = long_instance(State::Backup);
    i.addresses.clear();
    i.cloud = None;
    let st = Status {
        instances: vec![i],
        ..Status::default()
    };
    let text = status(&st);
    assert_fits(&text);
    assert!(
        text.starts_with("xvrrp up 0s, 1 instance(s)\nmetrics: off\n"),
        "{text}"
    );
    assert!(text.ends_with("health: ok\n"), "{text}");
}

#[test]
fn counters_fit_80_columns_with_ipv6_peers() {
    let mut c = BTreeMap::new();
    for (k, n) in [
        (Counter::AdvertRcvd, 123_456_789_u64),
        (Counter::PacketLenErr, 1),
        (Counter::AdvertIntervalErr, 22),
        (Counter::IpTtlErr, 333),
        (Counter::ChecksumErr, 4444),
        (Counter::VersionErr, 55_555),
        (Counter::UnknownPeer, 666_666),
        (Counter::AuthFailure, 7_777_777),
    ] {
        c.insert(k, n);
    }
    let v = RxCounters {
        rx: Vec::new(),
        interfaces: vec![InterfaceRx {
            interface: LONG_IF.to_owned(),
            path: "socket".to_owned(),
            not_ours: Some(98_765_432_100),
            other_destination: 123_456,
            queue_full: 7,
        }],
        peers: vec![PeerRow {
            interface: LONG_IF.to_owned(),
            vrid: 255,
            peer: format!("fe80::{}", "abcd:ef01:2345:6789"),
            counters: PeerCounts(c),
            last_priority: Some(254),
            last_interval_cs: Some(4095),
            last_seen: Some("2026-12-05T01:02:03.456Z".to_owned()),
            path: "socket".to_owned(),
        }],
    };
    let text = counters(&v);
    assert_fits(&text);
    let flat = words(&text);
    for want in [
        "98765432100 VRRP frames passed, not ours",
        "peer fe80::abcd:ef01:2345:6789: last priority 254, last interval 4095 cs",
        "advert_rcvd=123456789",
        "auth_failure=7777777",
    ] {
        assert!(flat.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn wrap_keeps_short_lines_breaks_at_spaces_and_cuts_giant_words() {
    assert_eq!(wrap("  short", 80), ["  short"]);
    let long = format!("  {}", ["word"; 30].join(" "));
    let lines = wrap(&long, 20);
    assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
    assert!(lines[0].starts_with("  word"));
    assert!(lines[1].starts_with("      word"), "{lines:?}");
    assert_eq!(words(&lines.join("\n")), words(&long));
    let giant = "x".repeat(50);
    let lines = wrap(&format!("name {giant} end"), 20);
    assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
    assert_eq!(lines.concat().matches('x').count(), 50, "{lines:?}");
    assert!(lines.last().unwrap().ends_with("end"), "{lines:?}");
}

/// Every key of `v` (recursively), except the counter names under `peers[].counters`.
fn keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            let peer_row = m.contains_key("peer");
            for (k, child) in m {
                out.insert(k.clone());
                // Maps keyed by data (counter names, transition reasons): their keys are not
                // fields.
                if !(peer_row && k == "counters") && k != "transitions" {
                    keys(child, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|c| keys(c, out)),
        _ => {}
    }
}

/// A status with every optional field filled in.
fn full_status() -> Status {
    let mut st = long_status();
    st.rx[0].vlan_tags = Some(VlanTags::VethPeerDecides);
    let i = &mut st.instances[0];
    i.notify.recent.push(NotifyRecord {
        state: "MASTER".to_owned(),
        script: "/etc/xvrrp/master.sh".to_owned(),
        outcome: "exit 0".to_owned(),
        seq: 1,
    });
    i.cloud.as_mut().unwrap().status.blocked = Some("401".to_owned());
    i.cloud.as_mut().unwrap().status.metadata_error = Some("timeout".to_owned());
    let t = &mut i.trackers[0];
    t.value = Some(5);
    t.disabled = true;
    let d = &mut t.details;
    d.timeouts = Some(1);
    d.last_result = Some("exit 1".to_owned());
    d.user = Some("nobody".to_owned());
    d.refused = Some("unsafe".to_owned());
    d.link = Some("up".to_owned());
    d.path = Some("/run/x".to_owned());
    d.processes = Some(2);
    d.source = Some("kernel events".to_owned());
    d.last_listener_event = Some(ListenerEvent {
        port: 443,
        address: "0.0.0.0".to_owned(),
        up: true,
        at_unix_us: 1,
    });
    st
}

#[test]
fn every_json_field_is_documented() {
    let doc = include_str!("../../../docs/status-json.md");
    let mut all = std::collections::BTreeSet::new();
    keys(&serde_json::to_value(full_status()).unwrap(), &mut all);
    let counters = RxCounters {
        rx: full_status().rx,
        interfaces: vec![InterfaceRx {
            interface: "eth1".to_owned(),
            path: "xdp".to_owned(),
            not_ours: Some(1),
            other_destination: 0,
            queue_full: 0,
        }],
        peers: vec![PeerRow {
            interface: "eth1".to_owned(),
            vrid: 1,
            peer: "10.0.0.2".to_owned(),
            counters: PeerCounts::default(),
            last_priority: Some(1),
            last_interval_cs: Some(100),
            last_seen: Some("2026-12-05T01:02:03.456Z".to_owned()),
            path: "xdp".to_owned(),
        }],
    };
    keys(&serde_json::to_value(counters).unwrap(), &mut all);
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields missing from docs/status-json.md: {missing:?}"
    );
    assert!(all.len() > 100, "{all:?}");
}

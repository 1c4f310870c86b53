//! Unit tests for `daemon::track::listen`.

#![allow(clippy::unwrap_used, reason = "tests")]
use super::ports::PortView;
use super::*;

fn spec(stall: Option<Duration>, rise: u32, fall: u32) -> TrackListen {
    TrackListen {
        name: "l".to_owned(),
        ports: vec![80],
        address: None,
        weight: 0,
        stall,
        rise,
        fall,
    }
}

fn entry(s: TrackListen) -> Entry {
    Entry {
        w: Watched {
            object: 0,
            spec: s,
            stats: SharedStats::default(),
        },
        reported: None,
        ok_streak: 0,
        fail_streak: 0,
        stalls: Vec::new(),
        stalled: vec![false],
        last_syns: Vec::new(),
        last_check: Instant::now(),
    }
}

fn v(listeners: i64) -> PortView {
    PortView {
        listeners,
        ..PortView::default()
    }
}

#[test]
fn first_check_reports_then_rise_and_fall_count_checks() {
    let mut e = entry(spec(None, 2, 3));
    assert_eq!(e.check(&[v(1)]).map(|u| u.up), Some(true));
    assert!(e.check(&[v(0)]).is_none());
    assert!(e.check(&[v(0)]).is_none());
    let u = e.check(&[v(0)]).expect("third failing check");
    assert!(!u.up);
    assert!(u.reason.contains("no listener on port 80"), "{}", u.reason);
    assert!(e.check(&[v(2)]).is_none());
    assert_eq!(e.check(&[v(2)]).map(|u| u.up), Some(true));
    // A failure in between resets the streak.
    let mut e = entry(spec(None, 1, 2));
    e.check(&[v(1)]);
    assert!(e.check(&[v(0)]).is_none());
    assert!(e.check(&[v(1)]).is_none());
    assert!(e.check(&[v(0)]).is_none());
}

#[test]
fn every_port_must_be_listened_on() {
    let mut s = spec(None, 1, 1);
    s.ports = vec![80, 443];
    let mut e = entry(s);
    e.stalled = vec![false, false];
    let u = e.check(&[v(1), v(0)]).unwrap();
    assert!(!u.up);
    assert!(u.reason.contains("443"));
}

#[test]
fn stall_needs_waiting_work_and_no_accept_for_the_whole_period() {
    let t0 = Instant::now();
    let limit = Duration::from_secs(5);
    let base = PortView {
        listeners: 1,
        ..PortView::default()
    };
    let mut st = Stall::new(t0, &base);
    // Idle: never stalled.
    assert!(!st.sample(t0 + Duration::from_secs(10), &base, limit));
    // Connections queue up, none accepted.
    let mut q = base;
    q.established_total = 3;
    q.accept_queue = 3;
    assert!(!st.sample(t0 + Duration::from_secs(11), &q, limit));
    assert!(!st.sample(t0 + Duration::from_secs(14), &q, limit));
    assert!(st.sample(t0 + Duration::from_secs(15), &q, limit));
    // One accepted (queue shrinks): progress.
    let mut a = q;
    a.accept_queue = 2;
    assert!(!st.sample(t0 + Duration::from_secs(17), &a, limit));
    // Busy but served: 10 new, 10 accepted (queue unchanged).
    let mut b = a;
    b.established_total += 10;
    assert!(!st.sample(t0 + Duration::from_secs(30), &b, limit));
    // SYNs arriving with nothing established (backlog full or SYNs dropped): stalled.
    let mut s = b;
    s.accept_queue = 0;
    s.syns = 5;
    st.sample(t0 + Duration::from_secs(31), &s, limit);
    let mut s2 = s;
    s2.syns = 50;
    assert!(!st.sample(t0 + Duration::from_secs(33), &s2, limit));
    s2.syns = 90;
    assert!(st.sample(t0 + Duration::from_secs(37), &s2, limit));
}

#[test]
fn dump_gives_listener_counts_and_accept_queues_per_served_address() {
    let sock = |local: &str, port: u16, rqueue: u32| DiagSocket {
        family: crate::net::Family::V4,
        state: TCP_LISTEN,
        local: local.parse().unwrap(),
        port,
        rqueue,
        wqueue: 511,
    };
    let socks = [
        sock("0.0.0.0", 80, 2),
        sock("10.0.0.1", 80, 3),
        sock("10.0.0.2", 80, 5),
        sock("10.0.0.1", 443, 7),
        DiagSocket {
            state: tcp::PROC_ESTABLISHED,
            ..sock("10.0.0.1", 80, 100)
        },
    ];
    let mut s = spec(None, 1, 1);
    assert_eq!(accept_queues(&s, &socks, 80), 10);
    assert_eq!(accept_queues(&s, &socks, 443), 7);
    s.address = Some("10.0.0.1".parse().unwrap());
    assert_eq!(
        accept_queues(&s, &socks, 80),
        5,
        "the wildcard and 10.0.0.1"
    );
    let counts = diag_counts(&socks);
    assert_eq!(view(&s, 80, &counts).listeners, 2);
    assert_eq!(view(&s, 443, &counts).listeners, 1);
    assert_eq!(
        view(&s, 80, &counts).established,
        0,
        "not counted from the dump"
    );
    s.address = None;
    assert_eq!(view(&s, 80, &counts).listeners, 3);
}

#[test]
fn views_filter_by_address_and_port() {
    let mut s = spec(None, 1, 1);
    s.address = Some("10.0.0.1".parse().unwrap());
    let c = |addr: &str, l: i64| PortCounts {
        port: 80,
        addr: Some(addr.parse().unwrap()),
        listeners: l,
        ..PortCounts::default()
    };
    let counts = [
        c("0.0.0.0", 1),
        c("::", 1),
        c("10.0.0.2", 5),
        c("10.0.0.1", 1),
        PortCounts {
            port: 81,
            ..c("0.0.0.0", 7)
        },
    ];
    assert_eq!(view(&s, 80, &counts).listeners, 3);
    s.address = None;
    assert_eq!(view(&s, 80, &counts).listeners, 8);
}

//! keepalived's `track_file` rules for valued trackers (`vrrp_track.c`:
//! `update_track_file_status`), one test per rule, named after the rule.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use xvrrp::vrrp::{
    Action, Contribution, Event, InitialState, Instance, Params, Reason, State, Time, Tracker,
    TrackerId, Version,
};

const SEC: u64 = 1_000_000;

fn params(priority: u8) -> Params {
    let mut p = Params::new(7, Version::V2, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    p.priority = priority;
    p
}

fn file(id: u32, weight: i16, reverse: bool) -> Tracker {
    Tracker {
        id: TrackerId(id),
        weight,
        reverse,
        initially_up: true,
        initial_value: Some(0),
    }
}

fn value(id: u32, value: i32) -> Event {
    Event::TrackerValue {
        id: TrackerId(id),
        value,
    }
}

fn master(p: Params) -> Instance {
    let mut p = p;
    p.initial_state = InitialState::Master;
    let mut i = Instance::new(p).unwrap();
    i.handle(Time::ZERO, Event::Startup);
    if let Some(at) = i.deadline() {
        i.handle(at, Event::TimerFired);
    }
    assert_eq!(i.state(), State::Master);
    i
}

#[test]
fn track_file_weight_0_nonzero_value_forces_fault_and_zero_recovers() {
    let mut p = params(100);
    p.trackers = vec![file(1, 0, false)];
    let mut i = master(p);
    let a = i.handle(Time::from_micros(10 * SEC), value(1, 3));
    assert_eq!(i.state(), State::Fault);
    assert!(a.contains(&Action::SendAdvert { priority: 0 }));
    assert!(a.contains(&Action::StateChanged {
        from: State::Master,
        to: State::Fault,
        reason: Reason::TrackerFault(TrackerId(1)),
    }));
    i.handle(Time::from_micros(20 * SEC), value(1, 0));
    assert_eq!(i.state(), State::Backup, "leaves FAULT for Backup");
}

#[test]
fn track_file_weight_0_reverse_zero_value_forces_fault() {
    let mut p = params(100);
    p.trackers = vec![file(1, 0, true)];
    let mut i = Instance::new(p).unwrap();
    i.handle(Time::ZERO, Event::Startup);
    assert_eq!(i.state(), State::Fault, "initial value 0 with reverse");
    i.handle(Time::from_micros(10 * SEC), value(1, 5));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn track_file_value_times_weight_moves_the_priority() {
    let mut p = params(100);
    p.trackers = vec![file(1, 10, false)];
    let mut i = master(p);
    i.handle(Time::from_micros(10 * SEC), value(1, 3));
    assert_eq!(i.effective_priority(), 130);
    i.handle(Time::from_micros(20 * SEC), value(1, -2));
    assert_eq!(i.effective_priority(), 80);
    i.handle(Time::from_micros(30 * SEC), value(1, 0));
    assert_eq!(i.effective_priority(), 100);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn track_file_reverse_negates_value_times_weight() {
    let mut p = params(100);
    p.trackers = vec![file(1, 10, true)];
    let mut i = master(p);
    i.handle(Time::from_micros(10 * SEC), value(1, 3));
    assert_eq!(i.effective_priority(), 70);
}

#[test]
fn track_file_result_of_minus_254_forces_fault() {
    let t = file(1, 2, false);
    assert_eq!(t.value_contribution(-127), Contribution::Fault);
    assert_eq!(t.value_contribution(-126), Contribution::Priority(-252));
    assert_eq!(
        t.value_contribution(200),
        Contribution::Priority(253),
        "clamped"
    );
    let mut p = params(200);
    p.trackers = vec![t];
    let mut i = master(p);
    i.handle(Time::from_micros(10 * SEC), value(1, -200));
    assert_eq!(i.state(), State::Fault);
}

#[test]
fn track_file_priority_is_clamped_and_never_reaches_255() {
    let mut p = params(200);
    p.trackers = vec![file(1, 100, false)];
    let mut i = master(p);
    i.handle(Time::from_micros(10 * SEC), value(1, 2));
    assert_eq!(i.effective_priority(), 254);
    let mut owner = params(255);
    owner.trackers = vec![file(1, 10, false)];
    let mut o = master(owner);
    o.handle(Time::from_micros(10 * SEC), value(1, -5));
    assert_eq!(
        o.effective_priority(),
        255,
        "weights never apply to the owner"
    );
}

#[test]
fn track_file_initial_value_counts_from_the_start() {
    let mut p = params(100);
    p.trackers = vec![Tracker {
        initial_value: Some(4),
        ..file(1, 5, false)
    }];
    let i = Instance::new(p).unwrap();
    assert_eq!(i.effective_priority(), 120);
}

#[test]
fn status_and_value_events_only_apply_to_their_kind_of_tracker() {
    let mut p = params(100);
    p.trackers = vec![
        file(1, 10, false),
        Tracker {
            id: TrackerId(2),
            weight: -20,
            reverse: false,
            initially_up: true,
            initial_value: None,
        },
    ];
    let mut i = master(p);
    i.handle(
        Time::from_micros(10 * SEC),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    i.handle(Time::from_micros(10 * SEC), value(2, 0));
    assert_eq!(i.effective_priority(), 100, "both ignored");
    i.handle(
        Time::from_micros(10 * SEC),
        Event::TrackerChanged {
            id: TrackerId(2),
            up: false,
        },
    );
    i.handle(Time::from_micros(10 * SEC), value(1, 1));
    assert_eq!(i.effective_priority(), 90);
}

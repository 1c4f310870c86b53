//! One test per rule of vrrp.md's timer and state-machine sections (RFC 3768 / 5798 / 9568 and
//! the keepalived extensions), named after the rule.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use xvrrp::vrrp::time::{master_down_interval, skew_time};
use xvrrp::vrrp::{
    Action, Event, InitialState, Instance, Params, ParamsError, Reason, State, Time, Tracker,
    TrackerId, Version,
};

const SEC: u64 = 1_000_000;

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn t(us: u64) -> Time {
    Time::from_micros(us)
}

fn params(version: Version, priority: u8, last: u8) -> Params {
    let mut p = Params::new(7, version, v4(last));
    p.priority = priority;
    p
}

fn adv(src: IpAddr, priority: u8, interval: Duration) -> Event {
    Event::AdvertReceived {
        src,
        priority,
        max_advert_interval: interval,
    }
}

fn one_sec(src: IpAddr, priority: u8) -> Event {
    adv(src, priority, Duration::from_secs(1))
}

fn tracker(id: u32, weight: i16, reverse: bool) -> Tracker {
    Tracker {
        id: TrackerId(id),
        weight,
        reverse,
        initially_up: true,
        initial_value: None,
    }
}

fn start(p: Params) -> Instance {
    let mut i = Instance::new(p).unwrap();
    i.handle(Time::ZERO, Event::Startup);
    i
}

/// A non-owner driven to Master by letting its Master_Down_Timer expire; returns it and the time.
fn master(p: Params) -> (Instance, Time) {
    let mut i = start(p);
    let at = i.deadline().unwrap();
    i.handle(at, Event::TimerFired);
    assert_eq!(i.state(), State::Master);
    (i, at)
}

fn armed(actions: &[Action]) -> Option<Time> {
    actions.iter().rev().find_map(|a| match a {
        Action::ArmTimer { at } => Some(*at),
        _ => None,
    })
}

fn sent(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert { priority } => Some(*priority),
            _ => None,
        })
        .collect()
}

// ---- timers --------------------------------------------------------------------------------

#[test]
fn v2_skew_time_for_priority_100_is_609375_us() {
    assert_eq!(skew_time(Version::V2, 100, SEC), 609_375);
}

#[test]
fn v2_master_down_interval_for_priority_100_and_1s_is_3609375_us() {
    assert_eq!(master_down_interval(Version::V2, 100, SEC), 3_609_375);
    let i = start(params(Version::V2, 100, 1));
    assert_eq!(i.master_down_interval(), Duration::from_micros(3_609_375));
    assert_eq!(i.deadline(), Some(t(3_609_375)));
}

#[test]
fn v2_skew_time_ignores_the_interval() {
    assert_eq!(skew_time(Version::V2, 100, 5 * SEC), 609_375);
    assert_eq!(master_down_interval(Version::V2, 100, 5 * SEC), 15_609_375);
}

#[test]
fn v2_skew_time_is_floored_to_whole_microseconds() {
    // (256 - 101) * 3906.25 = 605468.75
    assert_eq!(skew_time(Version::V2, 101, SEC), 605_468);
}

#[test]
fn v3_skew_time_scales_with_master_adver_interval() {
    assert_eq!(skew_time(Version::V3, 100, SEC), 609_375);
    // 156 * 100000 / 256 = 60937.5 -> floored
    assert_eq!(skew_time(Version::V3, 100, 100_000), 60_937);
    assert_eq!(master_down_interval(Version::V3, 100, 100_000), 360_937);
}

#[test]
fn v3_master_down_interval_for_priority_200_and_10ms() {
    // 56 * 10000 / 256 = 2187.5 -> 2187
    assert_eq!(master_down_interval(Version::V3, 200, 10_000), 32_187);
}

// ---- Initialize ----------------------------------------------------------------------------

#[test]
fn initialize_with_priority_255_sends_advert_announces_and_becomes_master() {
    let mut i = Instance::new(params(Version::V3, 255, 1)).unwrap();
    let a = i.handle(t(5), Event::Startup);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Initialize,
                to: State::Master,
                reason: Reason::AddressOwner
            },
            Action::SendAdvert { priority: 255 },
            Action::AddAddresses,
            Action::SendGratuitous,
            Action::ArmTimer { at: t(5 + SEC) },
            Action::Notify(State::Master),
        ]
    );
}

#[test]
fn initialize_non_owner_sets_master_adver_interval_and_starts_master_down_timer() {
    let mut p = params(Version::V3, 100, 1);
    p.advert_interval = Duration::from_millis(100);
    let mut i = Instance::new(p).unwrap();
    let a = i.handle(t(1000), Event::Startup);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Initialize,
                to: State::Backup,
                reason: Reason::Startup
            },
            Action::ArmTimer {
                at: t(1000 + 360_937)
            },
            Action::Notify(State::Backup),
        ]
    );
    assert_eq!(i.master_adver_interval(), Duration::from_millis(100));
}

/// keepalived 2.x `vrrp_init_state`: `state MASTER` below 255 is Backup with a Master_Down_Timer
/// of one interval + SKEW_MIN (interval/256), then Master if nothing better was heard.
#[test]
fn initial_state_master_below_255_becomes_master_after_one_interval_plus_min_skew() {
    let mut p = params(Version::V2, 100, 1);
    p.initial_state = InitialState::Master;
    let mut i = start(p);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.deadline(), Some(t(SEC + 3906)));
    let a = i.handle(t(SEC + 3906), Event::TimerFired);
    assert_eq!(i.state(), State::Master);
    assert_eq!(sent(&a), vec![100]);
    assert_eq!(i.last_transition().unwrap().reason, Reason::Preempted);
}

#[test]
fn initial_state_master_below_255_yields_to_a_higher_priority_master() {
    let mut p = params(Version::V2, 100, 1);
    p.initial_state = InitialState::Master;
    let mut i = start(p);
    i.handle(t(500_000), one_sec(v4(9), 150));
    assert_eq!(i.deadline(), Some(t(500_000 + 3_609_375)));
    i.handle(t(SEC + 3906), Event::TimerFired);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn startup_with_weight_0_tracker_down_enters_fault() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![Tracker {
        initially_up: false,
        ..tracker(1, 0, false)
    }];
    let mut i = Instance::new(p).unwrap();
    let a = i.handle(Time::ZERO, Event::Startup);
    assert_eq!(i.state(), State::Fault);
    assert_eq!(i.deadline(), None);
    assert!(a.contains(&Action::Notify(State::Fault)));
    assert!(sent(&a).is_empty());
}

#[test]
fn startup_is_ignored_unless_in_initialize_and_restart_after_shutdown_works() {
    let mut i = start(params(Version::V2, 100, 1));
    assert!(i.handle(t(10), Event::Startup).is_empty());
    i.handle(t(20), Event::Shutdown);
    assert_eq!(i.state(), State::Initialize);
    i.handle(t(30), Event::Startup);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.deadline(), Some(t(30 + 3_609_375)));
}

// ---- Backup --------------------------------------------------------------------------------

#[test]
fn backup_receiving_priority_0_sets_master_down_timer_to_skew_time() {
    let mut i = start(params(Version::V2, 100, 1));
    i.handle(t(SEC), one_sec(v4(9), 200));
    let a = i.handle(t(2 * SEC), one_sec(v4(9), 0));
    assert_eq!(armed(&a), Some(t(2 * SEC + 609_375)));
    i.handle(t(2 * SEC + 609_375), Event::TimerFired);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.last_transition().unwrap().reason, Reason::MasterLeft);
    assert_eq!(i.counters().pri_zero_rcvd, 1);
}

#[test]
fn backup_accepts_higher_priority_advert_and_resets_master_down_timer() {
    let mut i = start(params(Version::V2, 100, 1));
    let a = i.handle(t(3 * SEC), one_sec(v4(9), 200));
    assert_eq!(armed(&a), Some(t(3 * SEC + 3_609_375)));
    assert_eq!(i.master_address(), Some(v4(9)));
    // The original deadline passes without effect.
    assert!(i.handle(t(3_609_375), Event::TimerFired).is_empty());
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn backup_accepts_equal_priority_advert_without_address_tie_break() {
    // Sender has a *smaller* address; still accepted in Backup.
    let mut i = start(params(Version::V2, 100, 50));
    let a = i.handle(t(SEC), one_sec(v4(9), 100));
    assert_eq!(armed(&a), Some(t(SEC + 3_609_375)));
}

#[test]
fn backup_with_preempt_discards_lower_priority_advert_and_timer_keeps_running() {
    let mut i = start(params(Version::V2, 100, 1));
    let a = i.handle(t(SEC), one_sec(v4(9), 50));
    assert!(a.is_empty());
    assert_eq!(i.deadline(), Some(t(3_609_375)));
    i.handle(t(3_609_375), Event::TimerFired);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.last_transition().unwrap().reason, Reason::Preempted);
}

#[test]
fn nopreempt_backup_does_not_take_over_from_lower_priority_master() {
    let mut p = params(Version::V2, 100, 1);
    p.preempt = false;
    let mut i = start(p);
    for s in 1..20 {
        i.handle(t(s * SEC), one_sec(v4(9), 50));
        i.handle(t(s * SEC + 1), Event::TimerFired);
    }
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.deadline(), Some(t(19 * SEC + 3_609_375)));
}

#[test]
fn nopreempt_is_ignored_with_initial_state_master() {
    let mut p = params(Version::V2, 100, 1);
    p.preempt = false;
    p.initial_state = InitialState::Master;
    let mut i = start(p);
    i.handle(t(500_000), one_sec(v4(9), 50));
    // Lower-priority advert discarded: the short initial timer stays.
    assert_eq!(i.deadline(), Some(t(SEC + 3906)));
}

#[test]
fn v3_backup_adopts_master_adver_interval_and_recomputes_master_down_interval() {
    let mut i = start(params(Version::V3, 100, 1));
    let a = i.handle(t(SEC), adv(v4(9), 200, Duration::from_millis(200)));
    assert_eq!(i.master_adver_interval(), Duration::from_millis(200));
    // 3 * 200 ms + 156 * 200000 / 256 = 600000 + 121875
    assert_eq!(armed(&a), Some(t(SEC + 721_875)));
}

#[test]
fn v2_advert_with_mismatched_interval_is_dropped() {
    let mut i = start(params(Version::V2, 100, 1));
    let a = i.handle(t(SEC), adv(v4(9), 200, Duration::from_secs(2)));
    assert!(a.is_empty());
    assert_eq!(i.deadline(), Some(t(3_609_375)));
    assert_eq!(i.counters().advert_interval_err, 1);
    let (mut m, at) = master(params(Version::V2, 100, 1));
    assert!(m
        .handle(at, adv(v4(9), 200, Duration::from_secs(3)))
        .is_empty());
    assert_eq!(m.state(), State::Master);
}

#[test]
fn v3_advert_with_zero_interval_is_dropped() {
    let mut i = start(params(Version::V3, 100, 1));
    assert!(i.handle(t(SEC), adv(v4(9), 200, Duration::ZERO)).is_empty());
    assert_eq!(i.master_adver_interval(), Duration::from_secs(1));
}

#[test]
fn backup_master_down_timer_expiry_sends_advert_announces_and_becomes_master() {
    let mut i = start(params(Version::V2, 100, 1));
    let a = i.handle(t(3_609_375), Event::TimerFired);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Backup,
                to: State::Master,
                reason: Reason::MasterNoResponse
            },
            Action::SendAdvert { priority: 100 },
            Action::AddAddresses,
            Action::SendGratuitous,
            Action::ArmTimer {
                at: t(3_609_375 + SEC)
            },
            Action::Notify(State::Master),
        ]
    );
    assert_eq!(i.master_address(), Some(v4(1)));
}

// ---- Master --------------------------------------------------------------------------------

#[test]
fn master_adver_timer_expiry_sends_advert_and_rearms() {
    let (mut i, at) = master(params(Version::V3, 100, 1));
    let next = at.add_micros(SEC);
    assert_eq!(
        i.handle(next, Event::TimerFired),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::ArmTimer {
                at: next.add_micros(SEC)
            }
        ]
    );
}

/// The Adver_Timer is reset to the interval from when it was due, so a loop that fires it late
/// (tokio rounds timers up to 1 ms) does not slow the advert rate down; a loop a whole interval
/// or more behind starts again from now instead of sending catch-up adverts.
#[test]
fn master_adver_timer_fired_late_rearms_from_when_it_was_due() {
    let mut p = params(Version::V3, 100, 1);
    p.advert_interval = Duration::from_millis(100);
    let (mut i, at) = master(p);
    let due = at.add_micros(100_000);
    // 1.2 ms late: the next one is still due one interval after this one was.
    let a = i.handle(due.add_micros(1_200), Event::TimerFired);
    assert_eq!(sent(&a), vec![100]);
    assert_eq!(armed(&a), Some(due.add_micros(100_000)));
    // Ten times in a row, 1.2 ms late each: no drift.
    let mut next = due.add_micros(100_000);
    for _ in 0..10 {
        let a = i.handle(next.add_micros(1_200), Event::TimerFired);
        next = next.add_micros(100_000);
        assert_eq!(armed(&a), Some(next));
    }
    // 250 ms late (more than an interval): one advert, then one interval from now.
    let late = next.add_micros(250_000);
    let a = i.handle(late, Event::TimerFired);
    assert_eq!(sent(&a), vec![100]);
    assert_eq!(armed(&a), Some(late.add_micros(100_000)));
}

#[test]
fn master_receiving_priority_0_sends_advert_at_once_and_resets_adver_timer() {
    let (mut i, at) = master(params(Version::V3, 100, 1));
    let now = at.add_micros(300_000);
    assert_eq!(
        i.handle(now, one_sec(v4(9), 0)),
        vec![
            Action::SendAdvert { priority: 100 },
            Action::ArmTimer {
                at: now.add_micros(SEC)
            }
        ]
    );
    assert_eq!(i.state(), State::Master);
}

#[test]
fn master_receiving_higher_priority_steps_down() {
    let (mut i, at) = master(params(Version::V3, 100, 1));
    let a = i.handle(at, one_sec(v4(9), 101));
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Master,
                to: State::Backup,
                reason: Reason::HigherPriorityAdvert {
                    from: v4(9),
                    priority: 101
                }
            },
            Action::RemoveAddresses,
            Action::ArmTimer {
                at: at.add_micros(3_609_375)
            },
            Action::Notify(State::Backup),
        ]
    );
    assert_eq!(i.master_address(), Some(v4(9)));
}

#[test]
fn master_receiving_equal_priority_from_greater_address_steps_down() {
    let (mut i, at) = master(params(Version::V2, 100, 5));
    i.handle(at, one_sec(v4(6), 100));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn master_receiving_equal_priority_from_smaller_address_stays_and_answers() {
    let (mut i, at) = master(params(Version::V2, 100, 5));
    let a = i.handle(at, one_sec(v4(4), 100));
    assert_eq!(i.state(), State::Master);
    assert_eq!(sent(&a), vec![100]);
}

#[test]
fn equal_priority_tie_break_compares_addresses_unsigned_in_network_order() {
    // 200.0.0.1 > 100.255.255.255 as unsigned 32-bit (a signed compare would differ).
    let mut p = Params::new(
        1,
        Version::V2,
        IpAddr::V4(Ipv4Addr::new(100, 255, 255, 255)),
    );
    p.priority = 100;
    let (mut i, at) = master(p);
    i.handle(at, one_sec(IpAddr::V4(Ipv4Addr::new(200, 0, 0, 1)), 100));
    assert_eq!(i.state(), State::Backup);
    // IPv6: compared byte by byte from the first.
    let a6 = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xffff));
    let b6 = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 1, 0, 0, 0, 0));
    let (mut m, at) = master(Params::new(1, Version::V3, a6));
    m.handle(at, one_sec(b6, 100));
    assert_eq!(m.state(), State::Backup);
    let (mut m, at) = master(Params::new(1, Version::V3, b6));
    m.handle(at, one_sec(a6, 100));
    assert_eq!(m.state(), State::Master);
}

#[test]
fn master_receiving_lower_priority_sends_advert_immediately_and_reannounces() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    let now = at.add_micros(1000);
    let a = i.handle(now, one_sec(v4(9), 99));
    assert_eq!(
        a,
        vec![Action::SendAdvert { priority: 100 }, Action::SendGratuitous]
    );
    // The Adver_Timer is not reset by a lower-priority advert (keepalived).
    assert_eq!(i.deadline(), Some(at.add_micros(SEC)));
}

#[test]
fn master_lower_priority_answer_can_be_disabled() {
    let mut p = params(Version::V2, 100, 1);
    p.advert_on_lower_priority = false;
    p.announce_on_lower_priority = false;
    let (mut i, at) = master(p);
    assert!(i.handle(at, one_sec(v4(9), 99)).is_empty());
    assert_eq!(i.state(), State::Master);
}

#[test]
fn v3_master_stepping_down_adopts_new_masters_interval() {
    let (mut i, at) = master(params(Version::V3, 100, 1));
    let a = i.handle(at, adv(v4(9), 200, Duration::from_millis(100)));
    assert_eq!(i.master_adver_interval(), Duration::from_millis(100));
    assert_eq!(armed(&a), Some(at.add_micros(360_937)));
}

#[test]
fn shutdown_in_master_sends_priority_0_and_removes_addresses() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    let a = i.handle(at, Event::Shutdown);
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Master,
                to: State::Initialize,
                reason: Reason::Shutdown
            },
            Action::SendAdvert { priority: 0 },
            Action::RemoveAddresses,
            Action::CancelTimer,
            Action::Notify(State::Initialize),
        ]
    );
    assert_eq!(i.counters().pri_zero_sent, 1);
}

#[test]
fn shutdown_in_backup_sends_nothing() {
    let mut i = start(params(Version::V2, 100, 1));
    let a = i.handle(t(1), Event::Shutdown);
    assert!(sent(&a).is_empty());
    assert!(!a.contains(&Action::RemoveAddresses));
    assert_eq!(i.state(), State::Initialize);
    assert_eq!(i.deadline(), None);
}

#[test]
fn adverts_from_our_own_primary_address_are_ignored() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    assert!(i.handle(at, one_sec(v4(1), 200)).is_empty());
    assert_eq!(i.state(), State::Master);
}

#[test]
fn adverts_are_ignored_in_initialize_and_fault() {
    let mut i = Instance::new(params(Version::V2, 100, 1)).unwrap();
    assert!(i.handle(t(1), one_sec(v4(9), 200)).is_empty());
    let mut p = params(Version::V2, 100, 1);
    p.trackers = vec![tracker(1, 0, false)];
    let mut i = start(p);
    i.handle(
        t(1),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    assert!(i.handle(t(2), one_sec(v4(9), 0)).is_empty());
    assert!(i.handle(t(100 * SEC), Event::TimerFired).is_empty());
    assert_eq!(i.state(), State::Fault);
}

// ---- owner ---------------------------------------------------------------------------------

#[test]
fn owner_ignores_received_adverts() {
    let mut i = start(params(Version::V3, 255, 1));
    for prio in [0, 1, 254, 255] {
        assert!(i.handle(t(10), one_sec(v4(200), prio)).is_empty());
    }
    assert_eq!(i.state(), State::Master);
}

#[test]
fn weights_never_move_the_owner_priority() {
    let mut p = params(Version::V3, 255, 1);
    p.trackers = vec![tracker(1, -50, false)];
    let mut i = start(p);
    i.handle(
        t(1),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    assert_eq!(i.effective_priority(), 255);
}

// ---- trackers and priority -----------------------------------------------------------------

fn prio_after(base: u8, trackers: Vec<Tracker>, ups: &[(u32, bool)]) -> u8 {
    let mut p = params(Version::V3, base, 1);
    p.trackers = trackers;
    let mut i = start(p);
    for &(id, up) in ups {
        i.handle(
            t(1),
            Event::TrackerChanged {
                id: TrackerId(id),
                up,
            },
        );
    }
    i.effective_priority()
}

#[test]
fn positive_weight_is_added_while_the_tracker_is_up() {
    assert_eq!(prio_after(100, vec![tracker(1, 10, false)], &[]), 110);
    assert_eq!(
        prio_after(100, vec![tracker(1, 10, false)], &[(1, false)]),
        100
    );
}

#[test]
fn negative_weight_is_subtracted_while_the_tracker_is_down() {
    assert_eq!(prio_after(100, vec![tracker(1, -10, false)], &[]), 100);
    assert_eq!(
        prio_after(100, vec![tracker(1, -10, false)], &[(1, false)]),
        90
    );
}

#[test]
fn reverse_flips_the_sign_of_the_adjustment() {
    assert_eq!(prio_after(100, vec![tracker(1, 10, true)], &[]), 90);
    assert_eq!(
        prio_after(100, vec![tracker(1, -10, true)], &[(1, false)]),
        110
    );
}

#[test]
fn weight_never_moves_priority_to_255() {
    assert_eq!(prio_after(250, vec![tracker(1, 100, false)], &[]), 254);
}

#[test]
fn weight_never_moves_priority_below_1() {
    assert_eq!(
        prio_after(10, vec![tracker(1, -100, false)], &[(1, false)]),
        1
    );
}

#[test]
fn effective_priority_is_carried_by_the_next_advert() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![tracker(1, -30, false)];
    let (mut i, at) = master(p);
    i.handle(
        at,
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    let a = i.handle(at.add_micros(SEC), Event::TimerFired);
    assert_eq!(sent(&a), vec![70]);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn backup_whose_priority_rises_above_the_master_preempts_it() {
    let mut p = params(Version::V2, 100, 1);
    p.trackers = vec![tracker(1, 50, false)];
    p.trackers[0].initially_up = false;
    let mut i = start(p);
    i.handle(t(SEC), one_sec(v4(9), 120)); // accepted: 120 >= 100
    i.handle(
        t(SEC + 1),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: true,
        },
    );
    assert_eq!(i.effective_priority(), 150);
    i.handle(t(2 * SEC), one_sec(v4(9), 120)); // now discarded
    assert_eq!(i.deadline(), Some(t(SEC + 3_609_375)));
}

#[test]
fn weight_0_tracker_down_forces_master_into_fault_with_priority_0_advert() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![tracker(4, 0, false)];
    let (mut i, at) = master(p);
    let a = i.handle(
        at,
        Event::TrackerChanged {
            id: TrackerId(4),
            up: false,
        },
    );
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Master,
                to: State::Fault,
                reason: Reason::TrackerFault(TrackerId(4))
            },
            Action::SendAdvert { priority: 0 },
            Action::RemoveAddresses,
            Action::CancelTimer,
            Action::Notify(State::Fault),
        ]
    );
}

#[test]
fn weight_0_tracker_down_forces_backup_into_fault_silently() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![tracker(4, 0, false)];
    let mut i = start(p);
    let a = i.handle(
        t(1),
        Event::TrackerChanged {
            id: TrackerId(4),
            up: false,
        },
    );
    assert_eq!(i.state(), State::Fault);
    assert!(sent(&a).is_empty());
    assert!(a.contains(&Action::CancelTimer));
}

#[test]
fn reverse_weight_0_tracker_forces_fault_while_up() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![tracker(4, 0, true)];
    let i = start(p);
    assert_eq!(i.state(), State::Fault);
}

#[test]
fn leaving_fault_goes_to_backup_with_full_master_down_timer() {
    let mut p = params(Version::V2, 100, 1);
    p.trackers = vec![tracker(1, 0, false), tracker(2, 0, false)];
    let (mut i, at) = master(p);
    let down = |id, up| Event::TrackerChanged {
        id: TrackerId(id),
        up,
    };
    i.handle(at, down(1, false));
    i.handle(at, down(2, false));
    i.handle(at, down(1, true));
    assert_eq!(i.state(), State::Fault, "still one weight-0 tracker down");
    let now = at.add_micros(7);
    let a = i.handle(now, down(2, true));
    assert_eq!(
        a,
        vec![
            Action::StateChanged {
                from: State::Fault,
                to: State::Backup,
                reason: Reason::TrackersRecovered
            },
            Action::ArmTimer {
                at: now.add_micros(3_609_375)
            },
            Action::Notify(State::Backup),
        ]
    );
}

#[test]
fn leaving_fault_with_initial_state_master_uses_the_short_timer() {
    let mut p = params(Version::V2, 100, 1);
    p.initial_state = InitialState::Master;
    p.trackers = vec![tracker(1, 0, false)];
    let mut i = start(p);
    i.handle(
        t(10),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    let a = i.handle(
        t(20),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: true,
        },
    );
    assert_eq!(armed(&a), Some(t(20 + SEC + 3906)));
}

#[test]
fn owner_leaving_fault_goes_straight_to_master() {
    let mut p = params(Version::V2, 255, 1);
    p.trackers = vec![tracker(1, 0, false)];
    let mut i = start(p);
    i.handle(
        t(10),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    assert_eq!(i.state(), State::Fault);
    let a = i.handle(
        t(20),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: true,
        },
    );
    assert_eq!(i.state(), State::Master);
    assert_eq!(sent(&a), vec![255]);
}

#[test]
fn unknown_tracker_ids_are_ignored() {
    let mut i = start(params(Version::V2, 100, 1));
    assert!(i
        .handle(
            t(1),
            Event::TrackerChanged {
                id: TrackerId(99),
                up: false
            }
        )
        .is_empty());
}

// ---- preempt_delay (keepalived 2.x) ----------------------------------------------------------

fn delayed(delay_s: u64) -> Params {
    let mut p = params(Version::V2, 100, 1);
    p.preempt_delay = Duration::from_secs(delay_s);
    p
}

#[test]
fn preempt_delay_accepts_a_lower_priority_master_until_the_delay_after_startup() {
    let mut i = start(delayed(10));
    for s in 1..10 {
        i.handle(t(s * SEC), one_sec(v4(9), 50));
    }
    // Before the preempt time (0 + 10 s): accepted, the timer was reset at 9 s.
    assert_eq!(i.deadline(), Some(t(9 * SEC + 3_609_375)));
    // From the preempt time on (keepalived: accepted only while preempt_time > now): discarded,
    // the timer runs out and we preempt.
    i.handle(t(10 * SEC), one_sec(v4(9), 50));
    i.handle(t(11 * SEC), one_sec(v4(9), 50));
    assert_eq!(i.deadline(), Some(t(9 * SEC + 3_609_375)));
    i.handle(t(9 * SEC + 3_609_375), Event::TimerFired);
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.last_transition().unwrap().reason, Reason::Preempted);
}

#[test]
fn preempt_delay_restarts_when_a_lower_priority_master_follows_a_higher_one() {
    let mut i = start(delayed(5));
    i.handle(t(SEC), one_sec(v4(8), 200)); // higher: clears the preempt time
    i.handle(t(20 * SEC), one_sec(v4(9), 50)); // lower: starts it at 20 s + 5 s
    for s in 21..25 {
        i.handle(t(s * SEC), one_sec(v4(9), 50));
    }
    assert_eq!(i.deadline(), Some(t(24 * SEC + 3_609_375)));
    i.handle(t(25 * SEC), one_sec(v4(9), 50));
    assert_eq!(i.deadline(), Some(t(24 * SEC + 3_609_375)));
}

#[test]
fn preempt_delay_does_not_hold_back_mastership_when_no_master_exists() {
    let mut i = start(delayed(100));
    i.handle(t(3_609_375), Event::TimerFired);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn preempt_delay_is_ignored_with_initial_state_master() {
    let mut p = delayed(100);
    p.initial_state = InitialState::Master;
    let mut i = start(p);
    i.handle(t(SEC / 2), one_sec(v4(9), 50));
    assert_eq!(i.deadline(), Some(t(SEC + 3906)));
}

// ---- timer hygiene -------------------------------------------------------------------------

#[test]
fn early_or_stale_timer_firings_are_ignored() {
    let mut i = start(params(Version::V2, 100, 1));
    assert!(i.handle(t(3_609_374), Event::TimerFired).is_empty());
    i.handle(t(SEC), one_sec(v4(9), 200)); // re-armed to 4.609375 s
    assert!(i.handle(t(3_609_375), Event::TimerFired).is_empty());
    assert_eq!(i.state(), State::Backup);
    // Fired late is fine: acts once, then a duplicate is early again.
    assert!(!i.handle(t(5 * SEC), Event::TimerFired).is_empty());
    assert!(i.handle(t(5 * SEC), Event::TimerFired).is_empty());
}

#[test]
fn timer_firing_with_no_deadline_is_ignored() {
    let mut i = Instance::new(params(Version::V2, 100, 1)).unwrap();
    assert!(i.handle(t(10 * SEC), Event::TimerFired).is_empty());
    assert_eq!(i.state(), State::Initialize);
}

// ---- params and status -----------------------------------------------------------------------

#[test]
fn params_reject_what_the_wire_cannot_carry() {
    let mut p = params(Version::V2, 100, 1);
    p.advert_interval = Duration::from_millis(1500);
    assert!(matches!(p.validate(), Err(ParamsError::Interval(_))));
    let mut p = params(Version::V3, 100, 1);
    p.advert_interval = Duration::from_millis(15);
    assert!(matches!(p.validate(), Err(ParamsError::Interval(_))));
    p.advert_interval = Duration::from_millis(40_960);
    assert!(matches!(p.validate(), Err(ParamsError::Interval(_))));
    p.advert_interval = Duration::from_millis(10);
    assert!(p.validate().is_ok());
    let p = Params::new(1, Version::V2, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(p.validate(), Err(ParamsError::V2RequiresIpv4));
    assert_eq!(
        Instance::new(params(Version::V2, 0, 1)).err(),
        Some(ParamsError::Priority)
    );
    let mut p = params(Version::V2, 100, 1);
    p.trackers = vec![tracker(1, 1, false), tracker(1, 2, false)];
    assert_eq!(
        p.validate(),
        Err(ParamsError::DuplicateTracker(TrackerId(1)))
    );
}

#[test]
fn status_reports_state_priorities_master_and_last_transition() {
    let mut p = params(Version::V2, 100, 1);
    p.trackers = vec![tracker(1, 5, false)];
    let (mut i, _) = master(p);
    i.handle(t(4 * SEC), one_sec(v4(9), 200));
    let s = i.status();
    assert_eq!(s.state, State::Backup);
    assert_eq!(s.base_priority, 100);
    assert_eq!(s.effective_priority, 105);
    assert_eq!(s.master_address, Some(v4(9)));
    // priority 105: skew = 151 * 3906.25 = 589843.75 -> 589843
    assert_eq!(s.master_down_interval, Duration::from_micros(3_589_843));
    let lt = s.last_transition.unwrap();
    assert_eq!(
        (lt.from, lt.to, lt.at),
        (State::Master, State::Backup, t(4 * SEC))
    );
    assert_eq!(s.counters.become_master, 1);
    assert_eq!(s.counters.release_master, 1);
}

// ---- the instance's interface (deleted / re-created) ------------------------------------------

fn iface(usable: bool) -> Event {
    Event::InterfaceChanged { usable }
}

#[test]
fn a_master_whose_interface_is_gone_faults_releases_its_addresses_and_comes_back_as_backup() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    let a = i.handle(at + Duration::from_millis(1), iface(false));
    assert_eq!(i.state(), State::Fault);
    assert!(a.contains(&Action::StateChanged {
        from: State::Master,
        to: State::Fault,
        reason: Reason::InterfaceGone
    }));
    assert!(a.contains(&Action::RemoveAddresses));
    assert_eq!(
        sent(&a),
        vec![0],
        "priority 0 (the send may fail; Backups time out then)"
    );
    assert_eq!(i.deadline(), None, "no timer while gone");
    // Adverts are not acted on while gone.
    assert!(i
        .handle(at + Duration::from_secs(1), one_sec(v4(9), 50))
        .is_empty());
    let a = i.handle(at + Duration::from_secs(2), iface(true));
    assert_eq!(i.state(), State::Backup);
    assert!(a.contains(&Action::StateChanged {
        from: State::Fault,
        to: State::Backup,
        reason: Reason::InterfaceBack
    }));
    assert!(armed(&a).is_some(), "Master_Down_Timer runs again");
}

#[test]
fn the_interface_gone_faults_even_with_every_tracker_up_and_a_tracker_fault_outlasts_it() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![tracker(1, 0, false)];
    let mut i = start(p);
    i.handle(t(1), iface(false));
    assert_eq!(i.state(), State::Fault);
    i.handle(
        t(2),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    // The interface is back but the tracker still holds Fault.
    assert!(i.handle(t(3), iface(true)).is_empty());
    assert_eq!(i.state(), State::Fault);
    let a = i.handle(
        t(4),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: true,
        },
    );
    assert_eq!(i.state(), State::Backup);
    assert!(a.contains(&Action::StateChanged {
        from: State::Fault,
        to: State::Backup,
        reason: Reason::TrackersRecovered
    }));
}

#[test]
fn an_interface_gone_before_startup_starts_in_fault_and_repeats_are_ignored() {
    let mut i = Instance::new(params(Version::V2, 100, 1)).unwrap();
    assert!(
        i.handle(t(0), iface(false)).is_empty(),
        "Initialize: no action yet"
    );
    i.handle(t(1), Event::Startup);
    assert_eq!(i.state(), State::Fault);
    assert!(i.handle(t(2), iface(false)).is_empty());
    i.handle(t(3), iface(true));
    assert_eq!(i.state(), State::Backup);
    assert!(i.handle(t(4), iface(true)).is_empty());
}

#[test]
fn the_primary_address_changes_only_while_out_of_the_election() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    assert!(!i.set_primary_address(v4(50)), "not while Master");
    i.handle(at, iface(false));
    assert!(
        !i.set_primary_address("2001:db8::1".parse().unwrap()),
        "same family only"
    );
    assert!(i.set_primary_address(v4(50)));
    assert_eq!(i.params().primary_address, v4(50));
}

// ---- reconfiguration (reload) ----------------------------------------------------------------

#[test]
fn a_reconfigured_master_keeps_its_state_and_timer_and_advertises_the_new_priority() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    let deadline = i.deadline();
    let mut p = params(Version::V2, 150, 1);
    p.trackers = vec![tracker(1, -20, false)];
    let a = i.reconfigure(at + Duration::from_millis(10), p).unwrap();
    assert!(
        a.is_empty(),
        "no transition, no advert, no timer change: {a:?}"
    );
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.deadline(), deadline);
    assert_eq!(i.effective_priority(), 150);
    let a = i.handle(deadline.unwrap(), Event::TimerFired);
    assert_eq!(sent(&a), vec![150]);
    assert_eq!(i.counters().become_master, 1, "counters kept");
}

#[test]
fn reconfigure_keeps_known_trackers_and_starts_new_ones_from_their_initial_status() {
    let mut p = params(Version::V3, 100, 1);
    p.trackers = vec![tracker(1, -30, false)];
    let mut i = start(p);
    i.handle(
        t(1),
        Event::TrackerChanged {
            id: TrackerId(1),
            up: false,
        },
    );
    assert_eq!(i.effective_priority(), 70);
    let mut p = params(Version::V3, 100, 1);
    let mut new = tracker(2, -10, false);
    new.initially_up = false;
    p.trackers = vec![tracker(1, -30, false), new];
    i.reconfigure(t(2), p).unwrap();
    assert_eq!(
        i.effective_priority(),
        60,
        "tracker 1 still down, tracker 2 starts down"
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn reconfigure_with_a_new_fault_tracker_down_faults_a_master_and_removing_it_recovers() {
    let (mut i, at) = master(params(Version::V2, 100, 1));
    let mut p = params(Version::V2, 100, 1);
    let mut t0 = tracker(1, 0, false);
    t0.initially_up = false;
    p.trackers = vec![t0];
    let a = i.reconfigure(at, p).unwrap();
    assert_eq!(i.state(), State::Fault);
    assert_eq!(sent(&a), vec![0]);
    assert!(a.contains(&Action::RemoveAddresses));
    i.reconfigure(at + Duration::from_secs(1), params(Version::V2, 100, 1))
        .unwrap();
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn reconfigure_refuses_another_vrid_version_or_family() {
    let mut i = start(params(Version::V2, 100, 1));
    let mut other = params(Version::V2, 100, 1);
    other.vrid = 8;
    assert_eq!(
        i.reconfigure(t(1), other),
        Err(xvrrp::vrrp::ReconfigureError::Identity)
    );
    assert_eq!(
        i.reconfigure(t(1), params(Version::V3, 100, 1)),
        Err(xvrrp::vrrp::ReconfigureError::Identity)
    );
    assert_eq!(i.state(), State::Backup);
}

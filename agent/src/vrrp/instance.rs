//! The VRRP state machine of one virtual router: events in, actions out. Its data types are in
//! `types` (re-exported here and from [`super`]).

use std::net::IpAddr;
use std::time::Duration;

use super::params::{
    Contribution, InitialState, Params, ParamsError, TrackerId, Version, TRACK_VALUE_MAX,
};
use super::time::{master_down_interval, micros, skew_time, skew_time_min, Time};
pub use super::types::{Action, Counters, Event, Reason, State, Status, Transition};

/// Priority of the address owner.
pub const PRIORITY_OWNER: u8 = 255;
/// Priority carried by an advert that says "the master is leaving".
pub const PRIORITY_STOP: u8 = 0;

/// One VRRP virtual router (sans-IO).
///
/// Feed it [`Event`]s with the current time through [`Instance::handle`]; carry out the returned
/// [`Action`]s in order. It keeps one timer (Adver_Timer while Master, Master_Down_Timer while
/// Backup) and asks for it with [`Action::ArmTimer`]; [`Instance::deadline`] reads it too.
///
/// # Choices (where the RFCs or keepalived leave room)
///
/// - **Initial state MASTER** follows keepalived 2.x (`vrrp_init_state`): with priority 255 the
///   instance goes straight to Master. With a lower priority it enters Backup with a *short*
///   Master_Down_Timer of `Master_Adver_Interval + interval/256` (keepalived's
///   `VRRP_TIMER_SKEW_MIN`): if no higher (or equal) priority master is heard within about one
///   interval it takes over, otherwise the normal election applies. (keepalived 1.x became
///   Master outright; 2.x does not, to avoid disturbing a running higher-priority master.) The
///   same short timer is used when leaving Fault. `nopreempt` and `preempt_delay` are ignored
///   with initial state MASTER, as keepalived does.
/// - **preempt_delay** follows keepalived 2.x (`vrrp_state_backup`): a Backup with preempt on
///   keeps *accepting* lower-priority adverts (treating their sender as the master) until the
///   preempt time has passed; after that it discards them and takes over when
///   Master_Down_Timer fires. The preempt time is set to `startup + preempt_delay` (and
///   `leaving Fault + preempt_delay`); an advert with priority >= ours clears it; a
///   lower-priority advert with no preempt time set starts it at `now + preempt_delay`. With no
///   master at all, the delay does not hold back becoming Master.
/// - **Fault**: entered when any weight-0 tracker is effectively down (also straight from
///   Initialize at startup). From Master: priority-0 advert, addresses removed. Leaving Fault
///   (all weight-0 trackers up) goes to Backup (keepalived `try_up_instance`), with the full
///   Master_Down_Timer for initial BACKUP and the short one for initial MASTER; the owner (255)
///   goes straight to Master.
/// - **Owner (255)** ignores every received advert (the receive checks drop them anyway).
///   Tracker weights never apply to the owner, and never move a priority to 255: the
///   effective priority of a non-owner is clamped to 1..=254.
/// - **Equal priority in Backup** is accepted (no address tie-break there, per RFC).
/// - **Adverts from our own primary address** are ignored (a looped-back copy).
/// - **Lower-priority advert to Master**: with `advert_on_lower_priority` an advert is sent at
///   once; the Adver_Timer is *not* reset (keepalived). A priority-0 advert always triggers an
///   advert and resets the Adver_Timer (RFC).
/// - **Priority changes** (trackers) take effect in the next advert sent and in the next
///   Master_Down_Timer computed; a running timer is not re-armed (keepalived).
/// - **v2 interval mismatch** is dropped and counted; **v3 interval 0** likewise.
#[derive(Clone, Debug)]
pub struct Instance {
    params: Params,
    state: State,
    tracker_up: Vec<bool>,
    /// Current value of each valued tracker (unused for up/down trackers).
    tracker_value: Vec<i32>,
    effective_priority: u8,
    /// Master_Adver_Interval, µs.
    master_adver_interval: u64,
    deadline: Option<Time>,
    master_address: Option<IpAddr>,
    /// keepalived's `preempt_time` (None = its `tv_sec == 0`).
    preempt_time: Option<Time>,
    /// Reason reported when Master_Down_Timer fires.
    next_master_reason: Reason,
    last_transition: Option<Transition>,
    counters: Counters,
    /// See [`Event::InterfaceChanged`].
    interface_usable: bool,
}

/// Why [`Instance::reconfigure`] refused new parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    /// The new parameters are invalid.
    #[error(transparent)]
    Params(ParamsError),
    /// VRID, version or family changed: another virtual router, not a change of this one.
    #[error("the VRID, version or address family changed: a new instance is needed")]
    Identity,
}

/// A tracker report, as [`Event::TrackerChanged`] or [`Event::TrackerValue`] carry it.
#[derive(Clone, Copy, Debug)]
enum TrackerInput {
    Status(bool),
    Value(i32),
}

impl Instance {
    /// A new instance in [`State::Initialize`]; validates `params`.
    pub fn new(params: Params) -> Result<Instance, ParamsError> {
        params.validate()?;
        let tracker_up = params.trackers.iter().map(|t| t.initially_up).collect();
        let tracker_value = params
            .trackers
            .iter()
            .map(|t| t.initial_value.unwrap_or(0))
            .collect();
        let mut inst = Instance {
            master_adver_interval: micros(params.advert_interval),
            params,
            state: State::Initialize,
            tracker_up,
            tracker_value,
            effective_priority: 0,
            deadline: None,
            master_address: None,
            preempt_time: None,
            next_master_reason: Reason::MasterNoResponse,
            last_transition: None,
            counters: Counters::default(),
            interface_usable: true,
        };
        inst.effective_priority = inst.compute_priority();
        Ok(inst)
    }

    /// The parameters this instance was built with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Configured priority.
    pub fn base_priority(&self) -> u8 {
        self.params.priority
    }

    /// Priority after tracker weights (what adverts carry and skew uses).
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// Whether a weight-0 tracker currently forces FAULT.
    pub fn is_faulted(&self) -> bool {
        self.fault_reason().is_some()
    }

    /// Source of the last advert accepted as the master's (our own address while Master).
    pub fn master_address(&self) -> Option<IpAddr> {
        self.master_address
    }

    /// Master_Adver_Interval currently in use.
    pub fn master_adver_interval(&self) -> Duration {
        Duration::from_micros(self.master_adver_interval)
    }

    /// Skew_Time for the effective priority and current Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        Duration::from_micros(self.skew_us())
    }

    /// Master_Down_Interval for the effective priority and current Master_Adver_Interval.
    pub fn master_down_interval(&self) -> Duration {
        Duration::from_micros(self.mdi_us())
    }

    /// The instance timer's deadline, if armed.
    pub fn deadline(&self) -> Option<Time> {
        self.deadline
    }

    /// Last transition, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.last_transition
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Snapshot for status output.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            base_priority: self.params.priority,
            effective_priority: self.effective_priority,
            master_address: self.master_address,
            master_adver_interval: self.master_adver_interval(),
            master_down_interval: self.master_down_interval(),
            deadline: self.deadline,
            last_transition: self.last_transition,
            counters: self.counters,
        }
    }

    /// Handles one event at time `now`; returns the actions to carry out, in order.
    ///
    /// `now` must not go backwards between calls.
    pub fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Startup => {
                if self.state == State::Initialize {
                    self.start(now, Reason::TrackersRecovered, &mut out);
                }
            }
            Event::Shutdown => self.shutdown(now, &mut out),
            Event::TimerFired => self.timer_fired(now, &mut out),
            Event::TrackerChanged { id, up } => {
                self.tracker_changed(now, id, TrackerInput::Status(up), &mut out)
            }
            Event::TrackerValue { id, value } => {
                self.tracker_changed(now, id, TrackerInput::Value(value), &mut out)
            }
            Event::AdvertReceived {
                src,
                priority,
                max_advert_interval,
            } => self.advert(now, src, priority, micros(max_advert_interval), &mut out),
            Event::InterfaceChanged { usable } => {
                if usable != self.interface_usable {
                    let was_faulted = self.fault_reason().is_some();
                    self.interface_usable = usable;
                    self.fault_changed(now, was_faulted, Reason::InterfaceBack, &mut out);
                }
            }
        }
        out
    }

    /// Applies new parameters in place (a configuration reload), keeping the state, the timer,
    /// the learned Master and the counters. `vrid`, `version` and `family` cannot change (that
    /// is another virtual router: [`ReconfigureError::Identity`]).
    ///
    /// Choice (RFC 5798 says nothing about reconfiguration; keepalived rebuilds everything on
    /// reload, which makes a Master flap): a change is treated like a tracker changing the
    /// priority. Trackers are matched by id: one kept keeps its status (or value), a new one
    /// starts from its initial status. The effective priority is recomputed and carried by the
    /// next advert sent (Master) or used for the next Master_Down_Timer computed (Backup); a
    /// running timer is not re-armed, and a new advert interval applies from the next advert.
    /// If a Fault cause appears or disappears, the state follows as for a tracker.
    pub fn reconfigure(
        &mut self,
        now: Time,
        params: Params,
    ) -> Result<Vec<Action>, ReconfigureError> {
        params.validate().map_err(ReconfigureError::Params)?;
        if (params.vrid, params.version, params.family)
            != (self.params.vrid, self.params.version, self.params.family)
        {
            return Err(ReconfigureError::Identity);
        }
        let was_faulted = self.fault_reason().is_some();
        let old: Vec<(TrackerId, bool, i32)> = self
            .params
            .trackers
            .iter()
            .enumerate()
            .map(|(k, t)| {
                (
                    t.id,
                    self.tracker_up.get(k).copied().unwrap_or(true),
                    self.tracker_value.get(k).copied().unwrap_or(0),
                )
            })
            .collect();
        let kept = |id: TrackerId| old.iter().find(|(i, _, _)| *i == id);
        self.tracker_up = params
            .trackers
            .iter()
            .map(|t| kept(t.id).map_or(t.initially_up, |k| k.1))
            .collect();
        self.tracker_value = params
            .trackers
            .iter()
            .map(|t| kept(t.id).map_or(t.initial_value.unwrap_or(0), |k| k.2))
            .collect();
        self.params = params;
        self.effective_priority = self.compute_priority();
        let mut out = Vec::new();
        if matches!(self.state, State::Master | State::Backup | State::Fault) {
            self.fault_changed(now, was_faulted, Reason::TrackersRecovered, &mut out);
        }
        Ok(out)
    }

    /// Changes the primary address (the source of our adverts and the equal-priority
    /// tie-breaker): the driver re-read it after the interface was re-created. Only while the
    /// instance is in Fault or Initialize (it takes part in no election then); returns whether
    /// it was applied. The family must stay the same.
    pub fn set_primary_address(&mut self, addr: IpAddr) -> bool {
        let idle = matches!(self.state, State::Fault | State::Initialize);
        if !idle || super::params::Family::of(&addr) != self.params.family {
            return false;
        }
        self.params.primary_address = addr;
        true
    }

    // ---- helpers -------------------------------------------------------------------------

    fn is_owner(&self) -> bool {
        self.params.priority == PRIORITY_OWNER
    }

    fn skew_us(&self) -> u64 {
        skew_time(
            self.params.version,
            self.effective_priority,
            self.master_adver_interval,
        )
    }

    fn mdi_us(&self) -> u64 {
        master_down_interval(
            self.params.version,
            self.effective_priority,
            self.master_adver_interval,
        )
    }

    fn advert_interval_us(&self) -> u64 {
        micros(self.params.advert_interval)
    }

    /// What tracker `idx` currently does (see [`Tracker::status_contribution`] and
    /// [`Tracker::value_contribution`]).
    fn contribution(&self, idx: usize) -> Contribution {
        let Some(t) = self.params.trackers.get(idx) else {
            return Contribution::Priority(0);
        };
        if t.initial_value.is_some() {
            t.value_contribution(self.tracker_value.get(idx).copied().unwrap_or(0))
        } else {
            t.status_contribution(self.tracker_up.get(idx).copied().unwrap_or(true))
        }
    }

    /// Effective priority: owner stays 255; otherwise base + applicable weights, clamped to
    /// 1..=254 (never to 255, never to 0).
    fn compute_priority(&self) -> u8 {
        if self.is_owner() {
            return PRIORITY_OWNER;
        }
        let mut p = i32::from(self.params.priority);
        for idx in 0..self.params.trackers.len() {
            if let Contribution::Priority(c) = self.contribution(idx) {
                p += c;
            }
        }
        // Clamped to 1..=254, so the conversion cannot fail.
        u8::try_from(p.clamp(1, 254)).unwrap_or(254)
    }

    /// Why the instance must be in Fault, if it must: its interface is gone, or a tracker
    /// forces it.
    fn fault_reason(&self) -> Option<Reason> {
        if !self.interface_usable {
            return Some(Reason::InterfaceGone);
        }
        self.fault_tracker().map(Reason::TrackerFault)
    }

    /// The first tracker that forces FAULT (weight 0 and down, or a valued tracker at fault),
    /// if any.
    fn fault_tracker(&self) -> Option<TrackerId> {
        (0..self.params.trackers.len())
            .find(|&idx| self.contribution(idx) == Contribution::Fault)
            .and_then(|idx| self.params.trackers.get(idx))
            .map(|t| t.id)
    }

    fn arm(&mut self, at: Time, out: &mut Vec<Action>) {
        self.deadline = Some(at);
        out.push(Action::ArmTimer { at });
    }

    fn cancel(&mut self, out: &mut Vec<Action>) {
        if self.deadline.take().is_some() {
            out.push(Action::CancelTimer);
        }
    }

    fn send(&mut self, priority: u8, out: &mut Vec<Action>) {
        self.counters.advert_sent += 1;
        if priority == PRIORITY_STOP {
            self.counters.pri_zero_sent += 1;
        }
        out.push(Action::SendAdvert { priority });
    }

    fn transition(&mut self, now: Time, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == State::Master {
            self.counters.release_master += 1;
        }
        if to == State::Master {
            self.counters.become_master += 1;
        }
        self.state = to;
        self.last_transition = Some(Transition {
            from,
            to,
            reason,
            at: now,
        });
        out.push(Action::StateChanged { from, to, reason });
    }

    // ---- transitions ---------------------------------------------------------------------

    /// From Initialize (Startup) or Fault (trackers recovered).
    /// `recovered` is the reason reported when leaving Fault.
    fn start(&mut self, now: Time, recovered: Reason, out: &mut Vec<Action>) {
        let from_fault = self.state == State::Fault;
        if let Some(reason) = self.fault_reason() {
            if self.state != State::Fault {
                self.cancel(out);
                self.transition(now, State::Fault, reason, out);
                out.push(Action::Notify(State::Fault));
            }
            return;
        }
        self.master_adver_interval = self.advert_interval_us();
        if self.is_owner() {
            // RFC 5798 6.4.1: priority 255 -> advert, announce, Adver_Timer, Master.
            self.become_master(now, Reason::AddressOwner, out);
            return;
        }
        let reason = if from_fault {
            recovered
        } else {
            Reason::Startup
        };
        self.master_address = None;
        let down = match self.params.initial_state {
            // keepalived 2.x: `state MASTER` below 255 waits one interval + SKEW_MIN.
            InitialState::Master => {
                self.next_master_reason = Reason::Preempted;
                self.master_adver_interval
                    + skew_time_min(self.params.version, self.master_adver_interval)
            }
            InitialState::Backup => {
                self.next_master_reason = Reason::MasterNoResponse;
                self.mdi_us()
            }
        };
        let delay = micros(self.params.effective_preempt_delay());
        self.preempt_time = (delay > 0).then(|| now.add_micros(delay));
        self.transition(now, State::Backup, reason, out);
        self.arm(now.add_micros(down), out);
        out.push(Action::Notify(State::Backup));
    }

    fn become_master(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        self.transition(now, State::Master, reason, out);
        // Advert first, so the old master (if any) releases before our GARPs (keepalived).
        self.send(self.effective_priority, out);
        out.push(Action::AddAddresses);
        out.push(Action::SendGratuitous);
        self.master_adver_interval = self.advert_interval_us();
        self.master_address = Some(self.params.primary_address);
        self.preempt_time = None;
        self.arm(now.add_micros(self.advert_interval_us()), out);
        out.push(Action::Notify(State::Master));
    }

    fn shutdown(&mut self, now: Time, out: &mut Vec<Action>) {
        let was = self.state;
        if was == State::Initialize {
            return;
        }
        self.transition(now, State::Initialize, Reason::Shutdown, out);
        if was == State::Master {
            // RFC 5798 6.4.3: Shutdown in Master -> advert with priority 0.
            self.send(PRIORITY_STOP, out);
            out.push(Action::RemoveAddresses);
        }
        self.cancel(out);
        self.master_address = None;
        self.preempt_time = None;
        self.master_adver_interval = self.advert_interval_us();
        out.push(Action::Notify(State::Initialize));
    }

    fn timer_fired(&mut self, now: Time, out: &mut Vec<Action>) {
        let Some(deadline) = self.deadline else {
            return; // stale: nothing armed
        };
        if now < deadline {
            return; // early or stale firing
        }
        match self.state {
            State::Master => {
                // Adver_Timer: send advert, re-arm. RFC 5798 6.4.3 resets the timer to
                // Advertisement_Interval when it fires. Choice: from when it was due, not from
                // when the loop got to it, so the loop's lateness (the runtime's timers round up
                // to 1 ms) does not add up into a slower advert rate; from now when the loop is
                // a whole interval or more behind (no burst of catch-up adverts).
                self.send(self.effective_priority, out);
                let interval = self.advert_interval_us();
                let due = deadline.add_micros(interval);
                self.arm(
                    if due > now {
                        due
                    } else {
                        now.add_micros(interval)
                    },
                    out,
                );
            }
            State::Backup => {
                // Master_Down_Timer: send advert, announce, go Master.
                let reason = self.next_master_reason;
                self.become_master(now, reason, out);
            }
            State::Initialize | State::Fault => {
                self.deadline = None;
            }
        }
    }

    fn tracker_changed(
        &mut self,
        now: Time,
        id: TrackerId,
        input: TrackerInput,
        out: &mut Vec<Action>,
    ) {
        let Some(idx) = self.params.trackers.iter().position(|t| t.id == id) else {
            return;
        };
        let valued = self.params.trackers[idx].initial_value.is_some();
        let was_faulted = self.fault_reason().is_some();
        match input {
            TrackerInput::Status(up) if !valued => self.tracker_up[idx] = up,
            TrackerInput::Value(v) if valued => {
                self.tracker_value[idx] = v.clamp(-TRACK_VALUE_MAX, TRACK_VALUE_MAX)
            }
            _ => return,
        }
        self.effective_priority = self.compute_priority();
        self.fault_changed(now, was_faulted, Reason::TrackersRecovered, out);
    }

    /// After a change of a Fault cause (a tracker, the interface): enter Fault when one holds
    /// now, leave it (reporting `recovered`) when none holds any more.
    fn fault_changed(
        &mut self,
        now: Time,
        was_faulted: bool,
        recovered: Reason,
        out: &mut Vec<Action>,
    ) {
        match (self.state, self.fault_reason()) {
            (State::Master, Some(reason)) => {
                // Master entering Fault: priority-0 advert so backups take over after Skew_Time.
                // (With its interface gone the send fails; the Backups time out instead.)
                self.transition(now, State::Fault, reason, out);
                self.send(PRIORITY_STOP, out);
                out.push(Action::RemoveAddresses);
                self.cancel(out);
                self.master_adver_interval = self.advert_interval_us();
                self.master_address = None;
                out.push(Action::Notify(State::Fault));
            }
            (State::Backup, Some(reason)) => {
                self.transition(now, State::Fault, reason, out);
                self.cancel(out);
                self.master_address = None;
                out.push(Action::Notify(State::Fault));
            }
            (State::Fault, None) if was_faulted => self.start(now, recovered, out),
            _ => {}
        }
    }

    fn advert(
        &mut self,
        now: Time,
        src: IpAddr,
        priority: u8,
        interval: u64,
        out: &mut Vec<Action>,
    ) {
        if !matches!(self.state, State::Backup | State::Master) {
            return;
        }
        if self.is_owner() || src == self.params.primary_address {
            return; // owner ignores adverts; our own looped-back advert
        }
        match self.params.version {
            // RFC 3768: the interval must match ours, else discard.
            Version::V2 if interval != self.advert_interval_us() => {
                self.counters.advert_interval_err += 1;
                return;
            }
            Version::V3 if interval == 0 => {
                self.counters.advert_interval_err += 1;
                return;
            }
            _ => {}
        }
        self.counters.advert_rcvd += 1;
        if priority == PRIORITY_STOP {
            self.counters.pri_zero_rcvd += 1;
        }
        match self.state {
            State::Backup => self.backup_advert(now, src, priority, interval, out),
            State::Master => self.master_advert(now, src, priority, interval, out),
            State::Initialize | State::Fault => {}
        }
    }

    fn backup_advert(
        &mut self,
        now: Time,
        src: IpAddr,
        priority: u8,
        interval: u64,
        out: &mut Vec<Action>,
    ) {
        let ours = self.effective_priority;
        if priority == PRIORITY_STOP {
            // Master leaving: Master_Down_Timer := Skew_Time.
            self.next_master_reason = Reason::MasterLeft;
            self.arm(now.add_micros(self.skew_us()), out);
            return;
        }
        let delay_holds = self.params.effective_preempt_delay() > Duration::ZERO
            && self.preempt_time.is_none_or(|t| t > now);
        if !self.params.effective_preempt() || priority >= ours || delay_holds {
            // Accept as the master's advert.
            if self.params.version == Version::V3 {
                self.master_adver_interval = interval;
            }
            self.master_address = Some(src);
            self.next_master_reason = Reason::MasterNoResponse;
            if self.params.effective_preempt_delay() > Duration::ZERO {
                if priority >= ours {
                    self.preempt_time = None;
                } else if self.preempt_time.is_none() {
                    self.preempt_time = Some(now + self.params.effective_preempt_delay());
                }
            }
            self.arm(now.add_micros(self.mdi_us()), out);
        } else {
            // Preempt on, lower priority: discard; the running timer decides.
            self.master_address = Some(src);
            self.next_master_reason = Reason::Preempted;
        }
    }

    fn master_advert(
        &mut self,
        now: Time,
        src: IpAddr,
        priority: u8,
        interval: u64,
        out: &mut Vec<Action>,
    ) {
        let ours = self.effective_priority;
        if priority == PRIORITY_STOP {
            // Another router thinks it was master and is leaving: assert ourselves now.
            self.send(ours, out);
            self.arm(now.add_micros(self.advert_interval_us()), out);
            return;
        }
        // Unsigned network byte order comparison: Ipv4Addr/Ipv6Addr order is exactly that.
        let higher = priority > ours || (priority == ours && src > self.params.primary_address);
        if higher {
            self.transition(
                now,
                State::Backup,
                Reason::HigherPriorityAdvert {
                    from: src,
                    priority,
                },
                out,
            );
            out.push(Action::RemoveAddresses);
            if self.params.version == Version::V3 {
                self.master_adver_interval = interval;
            }
            self.master_address = Some(src);
            self.next_master_reason = Reason::MasterNoResponse;
            self.preempt_time = None;
            self.arm(now.add_micros(self.mdi_us()), out);
            out.push(Action::Notify(State::Backup));
        } else {
            if self.params.advert_on_lower_priority {
                self.send(ours, out);
            }
            if self.params.announce_on_lower_priority {
                out.push(Action::SendGratuitous);
            }
        }
    }
}

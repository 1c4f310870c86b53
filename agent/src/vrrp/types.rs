//! The public data of the state machine: [`State`], [`Event`] in, [`Action`] out, and the
//! [`Transition`] / [`Counters`] / [`Status`] it reports (the logic is in [`super::instance`]).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::params::TrackerId;
use super::time::Time;

/// Protocol state (RFC 5798 section 6.4 plus keepalived's FAULT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum State {
    /// Not running (before [`Event::Startup`], after [`Event::Shutdown`]).
    Initialize,
    /// Listening to a master; Master_Down_Timer running.
    Backup,
    /// Forwarding for the virtual addresses; Adver_Timer running.
    Master,
    /// A weight-0 tracker is down: silent, no timers, addresses not held.
    Fault,
}

/// Why a transition happened (for logs, status and keepalived's SNMP-like "master reason").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Reason {
    /// [`Event::Startup`] of a non-owner: Initialize -> Backup.
    Startup,
    /// [`Event::Startup`] (or leaving Fault) with priority 255: straight to Master.
    AddressOwner,
    /// Master_Down_Timer expired after the master's adverts stopped.
    MasterNoResponse,
    /// Master_Down_Timer (set to Skew_Time) expired after a priority-0 advert.
    MasterLeft,
    /// Master_Down_Timer expired while lower-priority adverts were being discarded (preemption),
    /// or at the end of the short initial timer of `state MASTER`.
    Preempted,
    /// Master stepped down: an advert with higher priority, or equal priority from a greater
    /// primary address.
    HigherPriorityAdvert {
        /// Sender of the advert.
        from: IpAddr,
        /// Its priority.
        priority: u8,
    },
    /// A weight-0 tracker went (effectively) down.
    TrackerFault(TrackerId),
    /// All weight-0 trackers are (effectively) up again.
    TrackersRecovered,
    /// The instance's interface is gone: deleted, or re-created and not yet re-opened
    /// ([`Event::InterfaceChanged`]).
    InterfaceGone,
    /// The instance's interface is usable again (re-created, sockets re-opened).
    InterfaceBack,
    /// [`Event::Shutdown`].
    Shutdown,
}

impl Reason {
    /// A stable snake_case name of the kind of reason, without its details (the `reason` label
    /// of the metrics, the keys of a status' `transitions`).
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address_owner",
            Reason::MasterNoResponse => "master_no_response",
            Reason::MasterLeft => "master_left",
            Reason::Preempted => "preempted",
            Reason::HigherPriorityAdvert { .. } => "higher_priority_advert",
            Reason::TrackerFault(_) => "tracker_fault",
            Reason::TrackersRecovered => "trackers_recovered",
            Reason::InterfaceGone => "interface_gone",
            Reason::InterfaceBack => "interface_back",
            Reason::Shutdown => "shutdown",
        }
    }
}

/// Input to [`Instance::handle`](super::Instance::handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Event {
    /// Start the instance (Initialize -> Backup/Master/Fault). Ignored unless in Initialize.
    Startup,
    /// An advert for this VRID that passed every receive check (see vrrp.md).
    AdvertReceived {
        /// Source address (the sender's primary address).
        src: IpAddr,
        /// Priority field.
        priority: u8,
        /// Interval field converted to time (v2: seconds, v3: centiseconds on the wire).
        max_advert_interval: Duration,
    },
    /// The deadline last requested with [`Action::ArmTimer`] may have passed. Early or stale
    /// firings (now < current deadline, or no deadline) are ignored, so the driver may call this
    /// whenever it likes.
    TimerFired,
    /// A tracked object changed status. Unknown ids are ignored.
    TrackerChanged {
        /// Which tracker.
        id: TrackerId,
        /// Its new status (before `reverse` is applied).
        up: bool,
    },
    /// A valued tracker (keepalived `track_file`) reports a new value. Unknown ids, and ids of
    /// up/down trackers, are ignored (and [`Event::TrackerChanged`] for a valued tracker too).
    TrackerValue {
        /// Which tracker.
        id: TrackerId,
        /// The value read (clamped to ±254).
        value: i32,
    },
    /// Stop the instance (-> Initialize). From Master a priority-0 advert is sent first.
    Shutdown,
    /// Whether the instance can send and receive on its interface: `false` while the interface
    /// is gone (deleted, or re-created but not yet re-opened by the driver), `true` once it is
    /// usable again. Not usable forces Fault like a weight-0 tracker, whatever the trackers say
    /// (also with keepalived's `dont_track_primary`: an instance that cannot send must not hold
    /// its addresses). Starts usable.
    InterfaceChanged {
        /// Usable.
        usable: bool,
    },
}

/// Output of [`Instance::handle`](super::Instance::handle). Carry out in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Send an advert with this priority (the interval is the configured Advert_Interval).
    SendAdvert {
        /// Priority field: the effective priority, or 0 when leaving Master.
        priority: u8,
    },
    /// (Re)arm the single instance timer: deliver [`Event::TimerFired`] at or after `at`.
    /// Replaces any earlier deadline.
    ArmTimer {
        /// Absolute deadline.
        at: Time,
    },
    /// No timer is needed any more (Fault, Initialize).
    CancelTimer,
    /// The protocol state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// Install the virtual addresses (owned by the driver).
    AddAddresses,
    /// Remove the virtual addresses. Also a cue to cancel any address-moving task in flight.
    RemoveAddresses,
    /// Announce the virtual addresses: gratuitous ARP / unsolicited NA (the driver owns
    /// repetition and timing).
    SendGratuitous,
    /// Run the notify script for the new state; [`State::Initialize`] means keepalived's STOP.
    Notify(State),
}

/// A recorded transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When.
    pub at: Time,
}

/// Counters in keepalived's spirit (names from its source where one exists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    /// Adverts handed to [`Instance::handle`](super::Instance::handle) while Backup or Master.
    pub advert_rcvd: u64,
    /// [`Action::SendAdvert`] emitted.
    pub advert_sent: u64,
    /// Transitions to Master.
    pub become_master: u64,
    /// Transitions out of Master.
    pub release_master: u64,
    /// Priority-0 adverts received.
    pub pri_zero_rcvd: u64,
    /// Priority-0 adverts sent.
    pub pri_zero_sent: u64,
    /// v2 interval mismatches / v3 zero intervals dropped here (defensive; normally caught by
    /// the receive checks).
    pub advert_interval_err: u64,
}

/// Read-only snapshot for status output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Current state.
    pub state: State,
    /// Configured priority.
    pub base_priority: u8,
    /// Priority after tracker weights.
    pub effective_priority: u8,
    /// Source of the last advert accepted as the master's (our own address while Master).
    pub master_address: Option<IpAddr>,
    /// Master_Adver_Interval in use.
    pub master_adver_interval: Duration,
    /// Master_Down_Interval computed from it and the effective priority.
    pub master_down_interval: Duration,
    /// Current deadline of the instance timer.
    pub deadline: Option<Time>,
    /// Last transition.
    pub last_transition: Option<Transition>,
    /// Counters.
    pub counters: Counters,
}

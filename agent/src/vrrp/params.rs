//! What configuration gives one VRRP instance.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::time::micros;

/// VRRP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Version {
    /// RFC 3768: IPv4 only, advert interval in whole seconds, skew independent of the interval.
    V2,
    /// RFC 5798 / RFC 9568: IPv4 and IPv6, interval in centiseconds, backups adopt the master's.
    V3,
}

/// Address family of the instance (IPv6 is VRRPv3 only): the codec's, one definition for both.
pub use crate::packet::Family;

/// `state MASTER` / `state BACKUP` from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum InitialState {
    /// `state MASTER`. See [`Instance`](super::Instance) for the exact (keepalived 2.x) meaning.
    Master,
    /// `state BACKUP` (the default).
    Backup,
}

/// Identifies a tracked object (interface, script, file...) within one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TrackerId(pub u32);

/// One tracked object and how it moves this instance's priority (keepalived semantics).
///
/// - `weight > 0`: `weight` is added to the priority while the object is **up**.
/// - `weight < 0`: `|weight|` is subtracted while the object is **down**.
/// - `weight == 0`: the instance is forced into FAULT while the object is **down**.
/// - `reverse` (keepalived's `weight_multiplier = -1`): for a non-zero weight the *sign* of the
///   adjustment flips while the condition stays (positive weight: subtracted while up; negative
///   weight: added while down). For weight 0, which has no sign, `reverse` flips the condition:
///   FAULT while the object is **up**.
///
/// A **valued** tracker (`initial_value: Some(_)`, keepalived's `track_file`) reports an integer
/// instead of up/down ([`Event::TrackerValue`](super::Event::TrackerValue)); see
/// [`Tracker::contribution`] for how the value moves the priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Tracker {
    /// Identifier used in [`Event::TrackerChanged`](super::Event::TrackerChanged).
    pub id: TrackerId,
    /// Weight, -254..=254.
    pub weight: i16,
    /// keepalived's `reverse` flag.
    pub reverse: bool,
    /// Status assumed before the first [`Event::TrackerChanged`](super::Event::TrackerChanged).
    pub initially_up: bool,
    /// `Some(v)`: a valued tracker (keepalived `track_file`) whose value is `v` until the first
    /// [`Event::TrackerValue`](super::Event::TrackerValue); `initially_up` is then unused.
    /// `None`: an up/down tracker.
    pub initial_value: Option<i32>,
}

/// What a tracker does to its instance at a given status or value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Contribution {
    /// Adds this (possibly negative, possibly zero) amount to the priority.
    Priority(i32),
    /// Forces FAULT.
    Fault,
}

/// The largest magnitude of a tracked file's value (keepalived clamps what it reads to ±254).
pub const TRACK_VALUE_MAX: i32 = 254;

impl Tracker {
    /// The contribution of an up/down tracker whose object is `up` (see [`Tracker`]).
    pub fn status_contribution(&self, up: bool) -> Contribution {
        let sign = if self.reverse { -1 } else { 1 };
        match self.weight {
            0 if up == self.reverse => Contribution::Fault,
            0 => Contribution::Priority(0),
            w if (w > 0) == up => Contribution::Priority(sign * i32::from(w)),
            _ => Contribution::Priority(0),
        }
    }

    /// The contribution of a valued tracker whose object reports `value`, as keepalived's
    /// `update_track_file_status` computes it:
    ///
    /// - weight 0: a non-zero value forces FAULT (with `reverse`: a zero value does);
    /// - otherwise `value × weight` (negated with `reverse`), clamped to -254..=253, is added to
    ///   the priority; a result of -254 (or less) forces FAULT.
    ///
    /// `value` is first clamped to ±[`TRACK_VALUE_MAX`] (keepalived clamps what it reads).
    pub fn value_contribution(&self, value: i32) -> Contribution {
        let v = value.clamp(-TRACK_VALUE_MAX, TRACK_VALUE_MAX);
        if self.weight == 0 {
            return if (v != 0) != self.reverse {
                Contribution::Fault
            } else {
                Contribution::Priority(0)
            };
        }
        let sign = if self.reverse { -1 } else { 1 };
        match (v * i32::from(self.weight) * sign).clamp(-254, 253) {
            -254 => Contribution::Fault,
            c => Contribution::Priority(c),
        }
    }

    /// The event that makes this tracker neutral: keepalived drops a disabled tracker (a script
    /// refused by `enable_script_security`) from every instance, so from then on it must neither
    /// move the priority nor force FAULT, whatever its weight and `reverse`.
    pub fn neutral_event(&self) -> super::Event {
        let id = self.id;
        if self.initial_value.is_some() {
            // Valued: 0 is neutral, except for weight 0 with `reverse` (FAULT at 0).
            let value = i32::from(self.weight == 0 && self.reverse);
            super::Event::TrackerValue { id, value }
        } else {
            let up = match self.weight {
                w if w > 0 => false,
                w if w < 0 => true,
                _ => !self.reverse,
            };
            super::Event::TrackerChanged { id, up }
        }
    }
}

/// Parameters of one VRRP instance (virtual router) as configuration gives them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Params {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Address family; must match `primary_address`. v2 requires IPv4.
    pub family: Family,
    /// Configured (base) priority, 1..=255. 255 = address owner.
    pub priority: u8,
    /// Advert_Interval. v2: whole seconds, 1..=255 s. v3: whole centiseconds, 10 ms..=40.95 s.
    pub advert_interval: Duration,
    /// Initial state from `state MASTER|BACKUP`.
    pub initial_state: InitialState,
    /// Preempt_Mode. `nopreempt` sets it to false; only honoured with initial state BACKUP
    /// (keepalived clears `nopreempt` for `state MASTER`, and so do we).
    pub preempt: bool,
    /// `preempt_delay`: see [`Instance`](super::Instance). Ignored with initial state MASTER.
    pub preempt_delay: Duration,
    /// While Master, answer a lower-priority advert with an immediate advert (RFC 9568,
    /// keepalived's default; keepalived's `lower_prio_no_advert` sets it false).
    pub advert_on_lower_priority: bool,
    /// While Master, also re-announce the addresses (GARP / unsolicited NA) when a lower-priority
    /// advert is received, i.e. right after a split brain heals (keepalived's
    /// `garp_lower_prio_repeat`; xvrrp enables it by default, see vrrp.md complaint 2).
    pub announce_on_lower_priority: bool,
    /// Our primary address on the interface: the source of our adverts and the equal-priority
    /// tie-break (greater address wins, unsigned network byte order).
    pub primary_address: IpAddr,
    /// Tracked objects.
    pub trackers: Vec<Tracker>,
}

impl Params {
    /// Defaults as keepalived has them: priority 100, 1 s interval, initial BACKUP, preempt on,
    /// no preempt delay, answer lower-priority adverts, announce on lower priority, no trackers.
    pub fn new(vrid: u8, version: Version, primary_address: IpAddr) -> Params {
        Params {
            vrid,
            version,
            family: Family::of(&primary_address),
            priority: 100,
            advert_interval: Duration::from_secs(1),
            initial_state: InitialState::Backup,
            preempt: true,
            preempt_delay: Duration::ZERO,
            advert_on_lower_priority: true,
            announce_on_lower_priority: true,
            primary_address,
            trackers: Vec::new(),
        }
    }

    /// Checks the invariants the state machine relies on.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.vrid == 0 {
            return Err(ParamsError::Vrid);
        }
        if self.priority == 0 {
            return Err(ParamsError::Priority);
        }
        if Family::of(&self.primary_address) != self.family {
            return Err(ParamsError::FamilyMismatch);
        }
        let us = micros(self.advert_interval);
        match self.version {
            Version::V2 => {
                if self.family != Family::V4 {
                    return Err(ParamsError::V2RequiresIpv4);
                }
                if us % 1_000_000 != 0 || !(1..=255).contains(&(us / 1_000_000)) {
                    return Err(ParamsError::Interval(self.advert_interval));
                }
            }
            Version::V3 => {
                if us % 10_000 != 0 || !(1..=4095).contains(&(us / 10_000)) {
                    return Err(ParamsError::Interval(self.advert_interval));
                }
            }
        }
        let mut ids: Vec<TrackerId> = self.trackers.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ParamsError::DuplicateTracker(w[0]));
        }
        if let Some(t) = self
            .trackers
            .iter()
            .find(|t| !(-254..=254).contains(&t.weight))
        {
            return Err(ParamsError::Weight(t.id, t.weight));
        }
        Ok(())
    }

    /// Preempt_Mode as actually applied: `nopreempt` only counts with initial state BACKUP.
    pub fn effective_preempt(&self) -> bool {
        self.preempt || self.initial_state == InitialState::Master
    }

    /// `preempt_delay` as actually applied (zero with initial state MASTER).
    pub fn effective_preempt_delay(&self) -> Duration {
        match self.initial_state {
            InitialState::Master => Duration::ZERO,
            InitialState::Backup => self.preempt_delay,
        }
    }
}

/// Why [`Params`] were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// VRID 0 is not valid.
    #[error("virtual_router_id must be 1..255")]
    Vrid,
    /// Priority 0 is reserved for "master leaving".
    #[error("priority must be 1..255 (0 is reserved for the master leaving)")]
    Priority,
    /// `family` does not match `primary_address`.
    #[error("the primary address is not of the instance's address family")]
    FamilyMismatch,
    /// VRRPv2 is IPv4 only.
    #[error("VRRPv2 supports IPv4 only; use version 3 for IPv6")]
    V2RequiresIpv4,
    /// Interval not representable on the wire for this version.
    #[error(
        "advert_int {0:?} is not valid: v2 needs whole seconds 1..255, v3 whole centiseconds 0.01..40.95 s"
    )]
    Interval(Duration),
    /// Two trackers with the same id.
    #[error("tracker {0:?} is listed twice")]
    DuplicateTracker(TrackerId),
    /// Weight outside -254..=254.
    #[error("tracker {0:?} weight {1} is outside -254..254")]
    Weight(TrackerId, i16),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::Event;

    #[test]
    fn a_disabled_tracker_is_neutral() {
        for initial_value in [None, Some(0)] {
            for weight in [-254, -20, -1, 0, 1, 20, 254] {
                for reverse in [false, true] {
                    let t = Tracker {
                        id: TrackerId(1),
                        weight,
                        reverse,
                        initially_up: true,
                        initial_value,
                    };
                    let c = match t.neutral_event() {
                        Event::TrackerChanged { up, .. } => t.status_contribution(up),
                        Event::TrackerValue { value, .. } => t.value_contribution(value),
                        other => panic!("{other:?}"),
                    };
                    assert_eq!(
                        c,
                        Contribution::Priority(0),
                        "weight {weight} reverse {reverse} valued {initial_value:?}"
                    );
                }
            }
        }
    }
}

//! [`TrackerStatus`]: one tracker of one instance, turning its object's reports into the
//! core's events.

use super::types::{kind_of, SharedStats, TrackerUpdate};
use crate::{
    daemon::plan::TrackerPlan,
    state::{TrackerKind, TrackerState},
    vrrp::{self, Contribution, Event},
};

/// The status of one tracker of one instance, as `xvrrp status` shows it.
#[derive(Clone, Debug)]
pub(crate) struct TrackerStatus {
    /// A name for logs and status (`script chk_nginx`, `interface eth1`...).
    pub label: String,
    /// What is tracked.
    pub kind: TrackerKind,
    /// Whether the object is healthy from this instance's point of view: for an up/down object
    /// its status; for a valued one (`track_file`), that its value does not force FAULT.
    pub up: bool,
    /// When the status last changed (UTC), if it did since start.
    pub since: Option<String>,
    /// The watcher's reason for the last change.
    pub reason: Option<String>,
    /// What the tracker currently adds to the priority (0 while it forces FAULT).
    pub priority_change: i32,
    /// A valued object's current value.
    pub value: Option<i32>,
    /// Refused (e.g. by `enable_script_security`): it no longer counts.
    pub disabled: bool,
    /// The object's live details (counters...).
    pub stats: SharedStats,
    core: vrrp::Tracker,
}

impl TrackerStatus {
    /// The status before any report: what the core assumes at start.
    pub(crate) fn new(plan: &TrackerPlan, core: &vrrp::Tracker, stats: SharedStats) -> Self {
        let mut s = Self {
            label: plan.label.clone(),
            kind: kind_of(&plan.source),
            up: core.initially_up,
            since: None,
            reason: None,
            priority_change: 0,
            value: core.initial_value,
            disabled: false,
            stats,
            core: *core,
        };
        s.refresh();
        s
    }

    fn contribution(&self) -> Contribution {
        match self.value {
            Some(v) if self.core.initial_value.is_some() => self.core.value_contribution(v),
            _ => self.core.status_contribution(self.up),
        }
    }

    fn refresh(&mut self) {
        let c = self.contribution();
        if self.core.initial_value.is_some() {
            self.up = c != Contribution::Fault;
        }
        self.priority_change = match c {
            Contribution::Priority(p) => p,
            Contribution::Fault => 0,
        };
    }

    /// Records a report of the tracked object and returns the event for this instance's core.
    pub(crate) fn apply(&mut self, u: &TrackerUpdate) -> Event {
        let id = self.core.id;
        self.since = Some(crate::logging::utc_now());
        self.reason = Some(u.reason.clone());
        self.disabled = u.disabled;
        let valued = self.core.initial_value.is_some();
        let ev = if u.disabled {
            // The core's rule: a disabled tracker is neutral.
            self.core.neutral_event()
        } else if valued {
            let v = u.value.unwrap_or(if u.up { 0 } else { 1 });
            Event::TrackerValue { id, value: v }
        } else {
            Event::TrackerChanged { id, up: u.up }
        };
        match ev {
            Event::TrackerValue { value, .. } => self.value = Some(value),
            Event::TrackerChanged { up, .. } => self.up = up,
            _ => {}
        }
        self.refresh();
        ev
    }

    /// The snapshot `xvrrp status` shows.
    pub(crate) fn snapshot(&self) -> TrackerState {
        TrackerState {
            label: self.label.clone(),
            kind: self.kind,
            up: self.up,
            since: self.since.clone(),
            reason: self.reason.clone(),
            weight: self.core.weight,
            reverse: self.core.reverse,
            priority_change: self.priority_change,
            value: self.value,
            disabled: self.disabled,
            details: self.stats.get(),
        }
    }

    /// A one-line description of the current status, for logs.
    pub(crate) fn describe(&self) -> String {
        let state = if self.disabled {
            "DISABLED".to_owned()
        } else if let Some(v) = self.value {
            format!(
                "{} (value {v}, priority change {:+})",
                if self.up { "up" } else { "FAULT" },
                self.priority_change
            )
        } else if self.up {
            "up".to_owned()
        } else {
            "DOWN".to_owned()
        };
        match &self.reason {
            Some(r) => format!("{state} ({r})"),
            None => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::TrackFile,
        daemon::{plan::TrackerSource, track::types::SharedStats},
        vrrp::TrackerId,
    };

    fn plan(source: TrackerSource) -> TrackerPlan {
        TrackerPlan {
            id: TrackerId(3),
            label: "x".to_owned(),
            source,
        }
    }

    fn core(weight: i16, reverse: bool, initial_value: Option<i32>) -> vrrp::Tracker {
        vrrp::Tracker {
            id: TrackerId(3),
            weight,
            reverse,
            initially_up: true,
            initial_value,
        }
    }

    fn file_source() -> TrackerSource {
        TrackerSource::File(TrackFile {
            name: "f".to_owned(),
            file: "/nonexistent".to_owned(),
            weight: 1,
            reverse: false,
            init_file: None,
        })
    }

    #[test]
    fn status_update_becomes_tracker_changed() {
        let mut s = TrackerStatus::new(
            &plan(TrackerSource::Interface("eth1".to_owned())),
            &core(-10, false, None),
            SharedStats::default(),
        );
        let ev = s.apply(&TrackerUpdate::status(0, false, "link down"));
        assert_eq!(
            ev,
            Event::TrackerChanged {
                id: TrackerId(3),
                up: false
            }
        );
        assert!(!s.up);
        assert_eq!(s.priority_change, -10);
        assert_eq!(s.kind, TrackerKind::Interface);
    }

    #[test]
    fn value_update_becomes_tracker_value_and_fault_shows_as_down() {
        let mut s = TrackerStatus::new(
            &plan(file_source()),
            &core(0, false, Some(0)),
            SharedStats::default(),
        );
        assert!(s.up);
        let ev = s.apply(&TrackerUpdate::value(0, 7, "file now holds 7"));
        assert_eq!(
            ev,
            Event::TrackerValue {
                id: TrackerId(3),
                value: 7
            }
        );
        assert!(!s.up, "weight 0 and a non-zero value: FAULT");
        let mut w = TrackerStatus::new(
            &plan(file_source()),
            &core(5, false, Some(0)),
            SharedStats::default(),
        );
        w.apply(&TrackerUpdate::value(0, -3, "x"));
        assert!(w.up);
        assert_eq!(w.priority_change, -15);
    }

    #[test]
    fn disabled_object_stops_counting_whatever_the_weight() {
        for (weight, reverse) in [(0, false), (0, true), (20, false), (-20, false), (20, true)] {
            let mut s = TrackerStatus::new(
                &plan(TrackerSource::Interface("x".to_owned())),
                &core(weight, reverse, None),
                SharedStats::default(),
            );
            let ev = s.apply(&TrackerUpdate::disabled(0, "refused"));
            let Event::TrackerChanged { up, .. } = ev else {
                panic!("{ev:?}");
            };
            assert_eq!(
                core(weight, reverse, None).status_contribution(up),
                Contribution::Priority(0),
                "weight {weight} reverse {reverse}"
            );
            assert!(s.disabled);
            assert_eq!(s.priority_change, 0);
        }
    }

    #[test]
    fn stats_are_shared_and_serialised_flat() {
        let st = SharedStats::default();
        let s = TrackerStatus::new(
            &plan(TrackerSource::Interface("x".to_owned())),
            &core(0, false, None),
            st.clone(),
        );
        st.update(|d| d.failures = Some(2));
        st.update(|d| d.link = Some("down".to_owned()));
        let v = serde_json::to_value(s.snapshot()).expect("serialisable");
        assert_eq!(v["failures"], 2);
        assert_eq!(v["link"], "down");
        assert_eq!(v["kind"], "interface");
        assert!(v.get("value").is_none());
    }
}

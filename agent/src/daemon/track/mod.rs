//! Tracked objects (scripts, interfaces, files, processes, listeners) and their watchers.
//!
//! An object is watched once however many instances track it (keepalived runs a `vrrp_script`
//! once for all its users). Watchers run in their own tasks and report status changes on one
//! channel; the event loop hands each change to the [`TrackerStatus`] of every user, which turns
//! it into the core event for that instance ([`TrackerStatus::apply`]).
//!
//! | kind | watcher | events |
//! | --- | --- | --- |
//! | `vrrp_script` | [`scripts`]: one task per script, runs it every `interval`, kills its process group at `timeout` | the child's exit |
//! | `track_interface` | [`links`]: one task for all interfaces | `RTMGRP_LINK` netlink events; a dump after an overrun |
//! | `track_file` | [`files`]: one task for all files | inotify on each file's directory |
//! | `vrrp_track_process` | [`process`]: one task for all process trackers | the kernel proc connector (fork/exec/comm/exit); a `/proc` scan at start and after an overrun |
//! | `vrrp_track_listen` | [`listen`]: one task for all listen trackers | the `inet_sock_set_state` program's ring buffer (listener up/down), checks every second, accept queues every 100 ms with `stall` |
//!
//! Nothing here blocks the event loop: `/proc` scans and netlink dumps run on the blocking pool.

use std::{cell::RefCell, rc::Rc};

use serde::Serialize;
use tokio::sync::mpsc;

pub mod files;
pub mod links;
pub mod listen;
pub mod process;
pub mod scripts;

use super::plan::{InstancePlan, TrackerPlan, TrackerSource};
use crate::{
    dataplane::XdpDataplane,
    vrrp::{self, Contribution, Event, TrackerId},
};

/// Identity of a tracked object: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    /// `vrrp_script NAME`.
    Script(String),
    /// `track_interface` entry.
    Interface(String),
    /// `track_file NAME`.
    File(String),
    /// `vrrp_track_process NAME`.
    Process(String),
    /// `vrrp_track_listen NAME`.
    Listen(String),
}

impl ObjectKey {
    fn of(source: &TrackerSource) -> Self {
        match source {
            TrackerSource::Script(s) => ObjectKey::Script(s.script.name.clone()),
            TrackerSource::Interface(i) => ObjectKey::Interface(i.clone()),
            TrackerSource::File(f) => ObjectKey::File(f.name.clone()),
            TrackerSource::Process(p) => ObjectKey::Process(p.name.clone()),
            TrackerSource::Listen(l) => ObjectKey::Listen(l.name.clone()),
        }
    }
}

/// The kind of a tracker, as `xvrrp status` shows it.
pub fn kind_of(source: &TrackerSource) -> &'static str {
    match source {
        TrackerSource::Script(_) => "script",
        TrackerSource::Interface(_) => "interface",
        TrackerSource::File(_) => "file",
        TrackerSource::Process(_) => "process",
        TrackerSource::Listen(_) => "listen",
    }
}

/// A status change of one object, from its watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerUpdate {
    /// Index of the object in the [`Registry`].
    pub object: usize,
    /// New status (for a valued object: its value is 0).
    pub up: bool,
    /// Why, for logs and `xvrrp status` (e.g. "exit status 1", "no listener on port 80").
    pub reason: String,
    /// For a valued object (`track_file`): the value it holds.
    pub value: Option<i32>,
    /// The object was refused (e.g. by `enable_script_security`): like keepalived, it no longer
    /// counts for any instance.
    pub disabled: bool,
}

impl TrackerUpdate {
    /// An up/down report.
    pub fn status(object: usize, up: bool, reason: impl Into<String>) -> Self {
        Self {
            object,
            up,
            reason: reason.into(),
            value: None,
            disabled: false,
        }
    }

    /// A value report (`track_file`).
    pub fn value(object: usize, value: i32, reason: impl Into<String>) -> Self {
        Self {
            object,
            up: value == 0,
            reason: reason.into(),
            value: Some(value),
            disabled: false,
        }
    }

    /// The object is disabled: it stops counting.
    pub fn disabled(object: usize, reason: impl Into<String>) -> Self {
        Self {
            object,
            up: true,
            reason: reason.into(),
            value: None,
            disabled: true,
        }
    }
}

/// Live details of one object that change without a status change (run and failure counters,
/// the number of matching processes, the link state...), shared between its watcher and the
/// status of every instance that tracks it. Serialised as extra fields of the tracker's status,
/// so keys must not be names of [`TrackerStatus`] fields (`label`, `kind`, `up`, `since`,
/// `reason`, `weight`, `reverse`, `priority_change`, `value`, `disabled`).
#[derive(Clone, Debug, Default)]
pub struct SharedStats(Rc<RefCell<serde_json::Map<String, serde_json::Value>>>);

impl SharedStats {
    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl Into<serde_json::Value>) {
        self.0.borrow_mut().insert(key.to_owned(), value.into());
    }

    /// Adds one to the counter `key` (created at 0).
    pub fn incr(&self, key: &str) {
        let mut m = self.0.borrow_mut();
        let n = m.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        m.insert(key.to_owned(), (n.saturating_add(1)).into());
    }

    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.0.borrow().get(key).cloned()
    }
}

impl Serialize for SharedStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.borrow().serialize(s)
    }
}

/// The status of one tracker of one instance, as `xvrrp status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TrackerStatus {
    /// A name for logs and status (`script chk_nginx`, `interface eth1`...).
    pub label: String,
    /// `script`, `interface`, `file`, `process` or `listen`.
    pub kind: &'static str,
    /// Whether the object is healthy from this instance's point of view: for an up/down object
    /// its status; for a valued one (`track_file`), that its value does not force FAULT.
    pub up: bool,
    /// When the status last changed (UTC), if it did since start.
    pub since: Option<String>,
    /// The watcher's reason for the last change.
    pub reason: Option<String>,
    /// This instance's weight for the object.
    pub weight: i16,
    /// This instance's `reverse` flag.
    pub reverse: bool,
    /// What the tracker currently adds to the priority (0 while it forces FAULT).
    pub priority_change: i32,
    /// A valued object's current value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i32>,
    /// Refused (e.g. by `enable_script_security`): it no longer counts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The object's live details (counters...).
    #[serde(flatten)]
    pub stats: SharedStats,
    #[serde(skip)]
    core: vrrp::Tracker,
}

impl TrackerStatus {
    /// The status before any report: what the core assumes at start.
    pub fn new(plan: &TrackerPlan, core: &vrrp::Tracker, stats: SharedStats) -> Self {
        let mut s = Self {
            label: plan.label.clone(),
            kind: kind_of(&plan.source),
            up: core.initially_up,
            since: None,
            reason: None,
            weight: core.weight,
            reverse: core.reverse,
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
    pub fn apply(&mut self, u: &TrackerUpdate) -> Event {
        let id = self.core.id;
        self.since = Some(crate::logging::utc_now());
        self.reason = Some(u.reason.clone());
        self.disabled = u.disabled;
        let valued = self.core.initial_value.is_some();
        let ev = if u.disabled {
            // keepalived drops a refused script from every instance: it must not move the
            // priority or force FAULT, whatever its weight and `reverse`.
            if valued {
                let neutral = if self.core.weight == 0 && self.core.reverse {
                    1
                } else {
                    0
                };
                self.value = Some(neutral);
                Event::TrackerValue { id, value: neutral }
            } else {
                let neutral = match self.core.weight {
                    w if w > 0 => false,
                    w if w < 0 => true,
                    _ => !self.core.reverse,
                };
                self.up = neutral;
                Event::TrackerChanged { id, up: neutral }
            }
        } else if valued {
            let v = u.value.unwrap_or(if u.up { 0 } else { 1 });
            self.value = Some(v);
            Event::TrackerValue { id, value: v }
        } else {
            self.up = u.up;
            Event::TrackerChanged { id, up: u.up }
        };
        self.refresh();
        ev
    }

    /// A one-line description of the current status, for logs.
    pub fn describe(&self) -> String {
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

/// Every tracked object and who tracks it.
#[derive(Debug, Default)]
pub struct Registry {
    objects: Vec<(ObjectKey, TrackerSource)>,
    users: Vec<Vec<(usize, TrackerId)>>,
    stats: Vec<SharedStats>,
}

impl Registry {
    /// Collects the objects tracked by `plans` (instance index = position in `plans`).
    pub fn build(plans: &[InstancePlan]) -> Self {
        let mut reg = Registry::default();
        for (i, plan) in plans.iter().enumerate() {
            for t in &plan.trackers {
                let key = ObjectKey::of(&t.source);
                let idx = match reg.objects.iter().position(|(k, _)| *k == key) {
                    Some(idx) => idx,
                    None => {
                        reg.objects.push((key, t.source.clone()));
                        reg.users.push(Vec::new());
                        reg.stats.push(SharedStats::default());
                        reg.objects.len() - 1
                    }
                };
                if let Some(u) = reg.users.get_mut(idx) {
                    u.push((i, t.id));
                }
            }
        }
        reg
    }

    /// The (instance, tracker id) pairs that track object `object`.
    pub fn users(&self, object: usize) -> &[(usize, TrackerId)] {
        self.users.get(object).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The initial status of one tracker of an instance (`core` is its entry in the instance's
    /// parameters), sharing the object's live details.
    pub fn tracker_status(&self, plan: &TrackerPlan, core: &vrrp::Tracker) -> TrackerStatus {
        let key = ObjectKey::of(&plan.source);
        let stats = self
            .objects
            .iter()
            .position(|(k, _)| *k == key)
            .and_then(|i| self.stats.get(i).cloned())
            .unwrap_or_default();
        TrackerStatus::new(plan, core, stats)
    }

    /// Starts the watchers on the current `LocalSet`: one task per script, one for all
    /// interfaces, one for all files, one for all process trackers, one for all listen trackers
    /// (which count SYNs with the XDP programs in `xdp`).
    pub fn spawn_all(
        &self,
        tx: &mpsc::UnboundedSender<TrackerUpdate>,
        xdp: &[Rc<RefCell<XdpDataplane>>],
    ) {
        let mut ifaces = Vec::new();
        let mut tracked_files = Vec::new();
        let mut procs = Vec::new();
        let mut listens = Vec::new();
        for (idx, ((_, source), stats)) in self.objects.iter().zip(&self.stats).enumerate() {
            match source {
                TrackerSource::Script(s) => {
                    scripts::spawn(idx, s.clone(), stats.clone(), tx.clone())
                }
                TrackerSource::Interface(name) => ifaces.push(links::Watched {
                    object: idx,
                    name: name.clone(),
                    stats: stats.clone(),
                }),
                TrackerSource::File(f) => tracked_files.push(files::Watched {
                    object: idx,
                    spec: f.clone(),
                    stats: stats.clone(),
                }),
                TrackerSource::Process(p) => procs.push(process::Watched {
                    object: idx,
                    spec: p.clone(),
                    stats: stats.clone(),
                }),
                TrackerSource::Listen(l) => listens.push(listen::Watched {
                    object: idx,
                    spec: l.clone(),
                    stats: stats.clone(),
                }),
            }
        }
        if !ifaces.is_empty() {
            links::spawn(ifaces, tx.clone());
        }
        if !tracked_files.is_empty() {
            files::spawn(tracked_files, tx.clone());
        }
        if !procs.is_empty() {
            process::spawn(procs, tx.clone());
        }
        if !listens.is_empty() {
            listen::spawn(listens, xdp.to_vec(), tx.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrackFile;

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
        assert_eq!(s.kind, "interface");
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
        st.incr("failures");
        st.incr("failures");
        st.set("link", "down");
        let v = serde_json::to_value(&s).expect("serialisable");
        assert_eq!(v["failures"], 2);
        assert_eq!(v["link"], "down");
        assert_eq!(v["kind"], "interface");
        assert!(v.get("value").is_none());
    }
}

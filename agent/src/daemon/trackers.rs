//! Tracked objects (scripts, interfaces, files, processes, listeners) and their watchers.
//!
//! An object is watched once however many instances track it (keepalived runs a `vrrp_script`
//! once for all its users). Watchers run in their own tasks and report status changes on one
//! channel; the event loop turns each change into `TrackerChanged` events for every user.

use log::warn;
use tokio::sync::mpsc;

use super::{
    plan::{InstancePlan, TrackerSource},
    scripts,
};
use crate::vrrp::TrackerId;

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
            TrackerSource::Script(s) => ObjectKey::Script(s.name.clone()),
            TrackerSource::Interface(i) => ObjectKey::Interface(i.clone()),
            TrackerSource::File(f) => ObjectKey::File(f.name.clone()),
            TrackerSource::Process(p) => ObjectKey::Process(p.name.clone()),
            TrackerSource::Listen(l) => ObjectKey::Listen(l.name.clone()),
        }
    }
}

/// A status change of one object, from its watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerUpdate {
    /// Index of the object in the [`Registry`].
    pub object: usize,
    /// New status.
    pub up: bool,
    /// Why, for logs and `xvrrp status` (e.g. "exit status 1", "no listener on port 80").
    pub reason: String,
}

/// Every tracked object and who tracks it.
#[derive(Debug, Default)]
pub struct Registry {
    objects: Vec<(ObjectKey, TrackerSource)>,
    users: Vec<Vec<(usize, TrackerId)>>,
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

    /// Starts one watcher per object on the current `LocalSet`.
    pub fn spawn_all(&self, tx: &mpsc::UnboundedSender<TrackerUpdate>) {
        for (idx, (key, source)) in self.objects.iter().enumerate() {
            match source {
                TrackerSource::Script(s) => scripts::spawn(idx, s.clone(), tx.clone()),
                _ => warn!("tracking {key:?} is not supported by this build; it counts as up"),
            }
        }
    }
}

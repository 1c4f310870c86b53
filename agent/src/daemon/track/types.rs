//! The types the watchers and the registry share: a leaf module (it imports no watcher), so
//! the registry (`track/mod.rs`) depends on the watchers and never the reverse.

use std::{cell::RefCell, rc::Rc};

use crate::{
    daemon::plan::TrackerSource,
    state::{TrackerDetails, TrackerKind},
};

/// Identity of a tracked object: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum ObjectKey {
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
    pub(super) fn of(source: &TrackerSource) -> Self {
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
pub(super) fn kind_of(source: &TrackerSource) -> TrackerKind {
    match source {
        TrackerSource::Script(_) => TrackerKind::Script,
        TrackerSource::Interface(_) => TrackerKind::Interface,
        TrackerSource::File(_) => TrackerKind::File,
        TrackerSource::Process(_) => TrackerKind::Process,
        TrackerSource::Listen(_) => TrackerKind::Listen,
    }
}

/// A status change of one object, from its watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrackerUpdate {
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
    pub(crate) fn status(object: usize, up: bool, reason: impl Into<String>) -> Self {
        Self {
            object,
            up,
            reason: reason.into(),
            value: None,
            disabled: false,
        }
    }

    /// A value report (`track_file`).
    pub(crate) fn value(object: usize, value: i32, reason: impl Into<String>) -> Self {
        Self {
            object,
            up: value == 0,
            reason: reason.into(),
            value: Some(value),
            disabled: false,
        }
    }

    /// The object is disabled: it stops counting.
    pub(crate) fn disabled(object: usize, reason: impl Into<String>) -> Self {
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
/// status of every instance that tracks it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedStats(Rc<RefCell<TrackerDetails>>);

impl SharedStats {
    /// Changes the details.
    pub(crate) fn update(&self, f: impl FnOnce(&mut TrackerDetails)) {
        f(&mut self.0.borrow_mut());
    }

    /// A copy of the details.
    pub(crate) fn get(&self) -> TrackerDetails {
        self.0.borrow().clone()
    }
}

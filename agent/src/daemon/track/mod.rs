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

use tokio::{sync::mpsc, task::JoinHandle};

pub(crate) mod files;
pub(crate) mod links;
pub(crate) mod listen;
pub(crate) mod process;
pub(crate) mod scripts;
mod status;
mod types;

use self::types::ObjectKey;
pub(crate) use self::{
    status::TrackerStatus,
    types::{SharedStats, TrackerUpdate},
};

use super::plan::{InstancePlan, TrackerPlan, TrackerSource};
use crate::{
    dataplane::XdpDataplane,
    vrrp::{self, TrackerId},
};

/// Every tracked object and who tracks it.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    objects: Vec<(ObjectKey, TrackerSource)>,
    users: Vec<Vec<(usize, TrackerId)>>,
    stats: Vec<SharedStats>,
    /// The watchers' tasks, stopped when the registry is dropped (a reload builds a new one).
    tasks: RefCell<Vec<JoinHandle<()>>>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
    }
}

impl Registry {
    /// Collects the objects tracked by `plans` (instance index = position in `plans`).
    pub(crate) fn build(plans: &[InstancePlan]) -> Self {
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
    pub(crate) fn users(&self, object: usize) -> &[(usize, TrackerId)] {
        self.users.get(object).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The initial status of one tracker of an instance (`core` is its entry in the instance's
    /// parameters), sharing the object's live details.
    pub(crate) fn tracker_status(&self, plan: &TrackerPlan, core: &vrrp::Tracker) -> TrackerStatus {
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
    pub(crate) fn spawn_all(
        &self,
        tx: &mpsc::UnboundedSender<TrackerUpdate>,
        xdp: &[Rc<RefCell<XdpDataplane>>],
    ) {
        let mut ifaces = Vec::new();
        let mut tracked_files = Vec::new();
        let mut procs = Vec::new();
        let mut listens = Vec::new();
        let mut tasks = self.tasks.borrow_mut();
        for (idx, ((_, source), stats)) in self.objects.iter().zip(&self.stats).enumerate() {
            match source {
                TrackerSource::Script(s) => {
                    tasks.push(scripts::spawn(idx, s.clone(), stats.clone(), tx.clone()))
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
            tasks.push(links::spawn(ifaces, tx.clone()));
        }
        if !tracked_files.is_empty() {
            tasks.push(files::spawn(tracked_files, tx.clone()));
        }
        if !procs.is_empty() {
            tasks.extend(process::spawn(procs, tx.clone()));
        }
        if !listens.is_empty() {
            tasks.push(listen::spawn(listens, xdp.to_vec(), tx.clone()));
        }
    }
}

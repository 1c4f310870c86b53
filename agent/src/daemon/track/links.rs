//! `track_interface`: link state from netlink events (see `daemon::links` for the watch loop
//! and keepalived's meaning of "up"). One task watches every tracked interface.

use tokio::sync::mpsc;

use super::types::{SharedStats, TrackerUpdate};
use crate::daemon::links::{self, LinkState};

/// One tracked interface.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Object index in the registry.
    pub object: usize,
    /// Interface name.
    pub name: String,
    /// Live details (`link`: `up`, `down`, `no carrier`, `missing`).
    pub stats: SharedStats,
}

/// Starts the watcher of `watched` on the current `LocalSet`.
pub(crate) fn spawn(
    watched: Vec<Watched>,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let names: Vec<String> = watched.iter().map(|w| w.name.clone()).collect();
        // None until the first report, so the first state is always reported.
        let mut reported: Vec<Option<LinkState>> = vec![None; watched.len()];
        links::watch(names, "track_interface", move |table| {
            for (w, last) in watched.iter().zip(reported.iter_mut()) {
                let now = table.state(&w.name);
                if last.as_ref() == Some(&now) {
                    continue;
                }
                w.stats.update(|d| d.link = Some(now.describe().to_owned()));
                let changed_up = last.as_ref().map(LinkState::is_up) != Some(now.is_up());
                *last = Some(now.clone());
                if changed_up {
                    let reason = format!("{} is {}", w.name, now.describe());
                    if tx
                        .send(TrackerUpdate::status(w.object, now.is_up(), reason))
                        .is_err()
                    {
                        return false;
                    }
                }
            }
            true
        })
        .await;
    })
}

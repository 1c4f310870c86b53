//! Prometheus metrics: `xvrrp run --metrics ADDR:PORT` (or `metrics_address` in `global_defs`)
//! serves `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! The metrics are the typed model that `xvrrp status` and `xvrrp counters` answer with
//! ([`Status`], [`RxCounters`]), rendered by `render` (plus the cloud requests' latency table,
//! `cloud::calls`): no separate bookkeeping.
//!
//! A scrape never holds up the advert loop: HTTP is served on its own thread (`http`), which
//! asks the loop for a [`Snapshot`] through a channel the loop polls like its control requests;
//! the loop builds it (the same bounded work as one `xvrrp status` plus one `xvrrp counters`)
//! and hands it over without waiting, and the rendering happens on the metrics thread. Snapshots
//! are asked for at most once per [`http::MIN_REFRESH`] whatever the scrape rate (concurrent and
//! rapid scrapes share one), so the loop's cost is bounded too.

mod families;
mod http;
mod render;

pub(crate) use self::http::{MetricsError, MetricsServer};

use crate::state::{RxCounters, Status};

/// What the event loop hands over for a scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// What `xvrrp status` would answer.
    pub status: Status,
    /// What `xvrrp counters` would answer.
    pub counters: RxCounters,
    /// What the snapshots cost the event loop so far (before this one).
    pub cost: LoopCost,
}

/// The event loop's time spent building snapshots for scrapes (the only cost a scrape has
/// there): the loop keeps it, each snapshot carries the figures up to the previous one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LoopCost {
    /// Snapshots built.
    pub snapshots: u64,
    /// Time the last one took (µs).
    pub last_us: u64,
    /// The longest one took (µs).
    pub max_us: u64,
}

impl LoopCost {
    /// Adds a snapshot that took `took`.
    pub(crate) fn add(&mut self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.snapshots += 1;
        self.last_us = us;
        self.max_us = self.max_us.max(us);
    }
}

/// A request for a [`Snapshot`]: the loop answers on it.
pub(crate) type SnapshotRequest = tokio::sync::oneshot::Sender<Snapshot>;

/// The `/metrics` text of a snapshot (with the cloud requests recorded so far).
pub(crate) fn text(s: &Snapshot) -> String {
    families::encode(render::families(s, &crate::cloud::calls::snapshot()).fams)
}

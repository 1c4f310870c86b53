//! Per-port views of one `vrrp_track_listen` and what is derived from them: the verdict and
//! its rise/fall streaks, stall detection, the published status, SYN totals and accept queues.

use std::{cell::RefCell, collections::HashMap, rc::Rc, time::Duration};

use tokio::time::Instant;
use tracing::warn;

use super::{TrackerUpdate, Watched, SOURCE_DIAG};
use crate::{
    config::{Secs, TrackListen},
    dataplane::{
        tcp::{self, PortCounts},
        XdpDataplane,
    },
    net::diag::{DiagSocket, TCP_LISTEN},
    state::PortState,
};

/// Per-port view of one tracker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PortView {
    pub(super) listeners: i64,
    pub(super) established: i64,
    pub(super) established_total: u64,
    pub(super) closed_total: u64,
    pub(super) accept_queue: u64,
    pub(super) syns: u64,
}

pub(super) fn view(spec: &TrackListen, port: u16, counts: &[PortCounts]) -> PortView {
    let mut v = PortView::default();
    for c in counts.iter().filter(|c| c.port == port) {
        if c.addr.is_some_and(|a| tcp::serves(a, spec.address)) {
            v.listeners += c.listeners.max(0);
            v.established += c.established.max(0);
            v.established_total += c.established_total;
            v.closed_total += c.closed_total;
        }
    }
    v
}

/// Stall detection of one port: work waiting and nothing taken for `stall`.
#[derive(Debug)]
pub(super) struct Stall {
    pub(super) last_ok: Instant,
    pub(super) prev_est: u64,
    pub(super) prev_queue: u64,
    pub(super) prev_syns: u64,
}

impl Stall {
    pub(super) fn new(now: Instant, v: &PortView) -> Self {
        Self {
            last_ok: now,
            prev_est: v.established_total,
            prev_queue: v.accept_queue,
            prev_syns: v.syns,
        }
    }

    /// Feeds a sample; whether the port is stalled (waiting work, nothing accepted, for `limit`).
    pub(super) fn sample(&mut self, now: Instant, v: &PortView, limit: Duration) -> bool {
        let new_est = v.established_total.saturating_sub(self.prev_est);
        let queue_growth = v.accept_queue as i64 - self.prev_queue as i64;
        let accepted = new_est as i64 - queue_growth;
        let accepted = if v.established_total == 0 && self.prev_est == 0 {
            // No kernel totals (the sock_diag fallback): the queue shrinking is the only sign.
            -queue_growth
        } else {
            accepted
        };
        let demand = v.accept_queue > 0 || v.syns > self.prev_syns;
        self.prev_est = v.established_total;
        self.prev_queue = v.accept_queue;
        self.prev_syns = v.syns;
        if !demand || accepted > 0 || v.listeners == 0 {
            self.last_ok = now;
        }
        now.duration_since(self.last_ok) >= limit
    }
}

pub(super) struct Entry {
    pub(super) w: Watched,
    /// The last reported status (`None` before the first report).
    pub(super) reported: Option<bool>,
    pub(super) ok_streak: u32,
    pub(super) fail_streak: u32,
    pub(super) stalls: Vec<Stall>,
    pub(super) stalled: Vec<bool>,
    /// SYN totals at the last check, for the rate.
    pub(super) last_syns: Vec<u64>,
    pub(super) last_check: Instant,
}

impl Entry {
    /// Healthy or not, and why.
    pub(super) fn verdict(&self, views: &[PortView]) -> (bool, String) {
        for (i, (port, v)) in self.w.spec.ports.iter().zip(views).enumerate() {
            if v.listeners <= 0 {
                let at = self
                    .w
                    .spec
                    .address
                    .map_or(String::new(), |a| format!(" at {a}"));
                return (false, format!("no listener on port {port}{at}"));
            }
            if self.stalled.get(i).copied().unwrap_or(false) {
                return (
                    false,
                    format!(
                        "port {port} stalled: {} connection(s) waiting, none accepted for {} s",
                        v.accept_queue,
                        Secs(self.w.spec.stall.unwrap_or_default())
                    ),
                );
            }
        }
        let desc: Vec<String> = self
            .w
            .spec
            .ports
            .iter()
            .zip(views)
            .map(|(p, v)| format!("port {p}: {} listener(s)", v.listeners))
            .collect();
        (true, desc.join(", "))
    }

    /// One check: updates the streaks, returns the update to report, if any.
    pub(super) fn check(&mut self, views: &[PortView]) -> Option<TrackerUpdate> {
        let (healthy, reason) = self.verdict(views);
        if healthy {
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
        }
        let report = match self.reported {
            None => Some(healthy),
            Some(false) if healthy && self.ok_streak >= self.w.spec.rise.max(1) => Some(true),
            Some(true) if !healthy && self.fail_streak >= self.w.spec.fall.max(1) => Some(false),
            _ => None,
        };
        report.map(|up| {
            self.reported = Some(up);
            TrackerUpdate::status(self.w.object, up, reason)
        })
    }

    pub(super) fn publish(&mut self, views: &[PortView], source: &str, rate: bool) {
        let now = Instant::now();
        let secs = now.duration_since(self.last_check).as_secs_f64();
        let counted = source != SOURCE_DIAG;
        let mut ports: Vec<PortState> = self
            .w
            .spec
            .ports
            .iter()
            .zip(views)
            .enumerate()
            .map(|(i, (p, v))| {
                let prev = self.last_syns.get(i).copied().unwrap_or(v.syns);
                let per_sec = if secs > 0.0 {
                    v.syns.saturating_sub(prev) as f64 / secs
                } else {
                    0.0
                };
                // The fallback does not count connections: null, not a misleading 0.
                PortState {
                    port: *p,
                    listeners: v.listeners,
                    established: counted.then_some(v.established),
                    established_total: counted.then_some(v.established_total),
                    closed_total: counted.then_some(v.closed_total),
                    accept_queue: v.accept_queue,
                    syns: v.syns,
                    syns_per_sec: (per_sec * 10.0).round() / 10.0,
                    stalled: self.stalled.get(i).copied().unwrap_or(false),
                }
            })
            .collect();
        if rate {
            self.last_syns = views.iter().map(|v| v.syns).collect();
            self.last_check = now;
        } else if let Some(old) = self.w.stats.get().ports {
            // Keep the last rate; refresh the gauges.
            for (n, o) in ports.iter_mut().zip(old) {
                n.syns_per_sec = o.syns_per_sec;
            }
        }
        self.w.stats.update(|d| {
            d.ports = Some(ports);
            d.source = Some(source.to_owned());
        });
    }
}

/// SYN totals of `ports` over every XDP interface.
pub(super) fn syn_totals(xdp: &[Rc<RefCell<XdpDataplane>>], ports: &[u16]) -> HashMap<u16, u64> {
    let mut out: HashMap<u16, u64> = HashMap::new();
    for dp in xdp {
        let Ok(dp) = dp.try_borrow() else { continue };
        match tcp::syn_counts(dp.object(), ports) {
            Ok(m) => {
                for (p, n) in m {
                    *out.entry(p).or_default() += n;
                }
            }
            Err(e) => warn!("vrrp_track_listen: SYN counts of {}: {e}", dp.interface()),
        }
    }
    out
}

/// Accept queue length of `port` (listeners serving `spec.address`) in a dump.
pub(super) fn accept_queues(spec: &TrackListen, socks: &[DiagSocket], port: u16) -> u64 {
    socks
        .iter()
        .filter(|s| s.state == TCP_LISTEN && s.port == port && tcp::serves(s.local, spec.address))
        .map(|s| u64::from(s.rqueue))
        .sum()
}

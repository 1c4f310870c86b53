//! Snapshots of the running agent in the typed model ([`crate::state`]) for the control socket.
//! Built on the loop (no I/O beyond reading the XDP maps), written by the control task.

use std::time::SystemTime;

use tracing::warn;

use super::{addresses::AddressDumps, event_loop::Daemon};
use crate::{
    control::{Command, Responder},
    dataplane::PeerSlot,
    packet::Counter,
    state::{InstanceState, InterfaceRx, PeerCounts, PeerRow, RxCounters, Status},
    vrrp,
};

fn utc(t: Option<SystemTime>) -> Option<String> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| crate::logging::format_utc(d.as_secs(), d.subsec_millis()))
}

impl Daemon {
    /// The answer to `status`.
    pub(super) fn status(&self) -> Status {
        let mut dumps = AddressDumps::default();
        let instances = self
            .instances
            .iter()
            .enumerate()
            .map(|(n, inst)| {
                let st = inst.core.status();
                let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                InstanceState {
                    name: inst.plan.name.clone(),
                    interface: inst.plan.interface.clone(),
                    vrid: inst.plan.params.vrid,
                    version: match inst.plan.params.version {
                        vrrp::Version::V3 => 3,
                        vrrp::Version::V2 => 2,
                    },
                    state: st.state,
                    base_priority: st.base_priority,
                    effective_priority: st.effective_priority,
                    master_address: st.master_address,
                    source_address: inst.plan.tx.src,
                    advert_interval_ms: ms(inst.plan.params.advert_interval),
                    master_adver_interval_ms: ms(st.master_adver_interval),
                    master_down_interval_ms: ms(st.master_down_interval),
                    last_transition: inst.last.clone(),
                    transitions: inst.transitions.clone(),
                    counters: st.counters,
                    advert_send_errors: inst.send_errors,
                    trackers: inst.trackers.iter().map(|t| t.snapshot()).collect(),
                    virtual_addresses: inst
                        .plan
                        .vips
                        .iter()
                        .map(|v| format!("{}/{} dev {}", v.address, v.prefix_len, v.dev))
                        .collect(),
                    addresses: self.address_states(n, &mut dumps),
                    notify: inst.notify.snapshot(),
                    cloud: inst.cloud.as_ref().map(|c| c.snapshot()),
                }
            })
            .collect();
        Status {
            uptime_ms: u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
            timers: self.timing,
            rx: self.rx_paths.clone(),
            announcements_dropped: self.announce.dropped(),
            logs_suppressed: super::loglimit::suppressed_total(),
            instances,
            metrics: self.metrics_address.map(|a| a.to_string()),
        }
    }

    /// The answer to `counters`.
    pub(super) fn counters(&self) -> RxCounters {
        let table = self.counters.borrow();
        let mut peers: Vec<PeerRow> = Vec::new();
        // XDP interfaces: counts from the kernel's per-peer maps, last priority/interval/seen
        // from the events the agent received.
        for x in &self.xdp {
            let kernel = match x.dp.borrow().peer_counters() {
                Ok(r) => r,
                Err(e) => {
                    warn!("{}: reading XDP counters: {e}", x.iface);
                    continue;
                }
            };
            for row in kernel {
                let (vrid, peer) = match row.slot {
                    PeerSlot::Peer { vrid, addr } => (vrid, Some(addr)),
                    PeerSlot::Unknown => (0, None),
                };
                let counts = Counter::ALL
                    .into_iter()
                    .filter(|c| *c != Counter::NotVrrp)
                    .map(|c| (c, row.get(c)))
                    .collect();
                let last = peer.and_then(|a| table.last(&x.iface, vrid, a));
                peers.push(PeerRow {
                    interface: x.iface.clone(),
                    vrid,
                    peer: peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
                    counters: PeerCounts(counts),
                    last_priority: last.and_then(|c| c.last_priority),
                    last_interval_cs: last.and_then(|c| c.last_interval_cs),
                    last_seen: utc(last.and_then(|c| c.last_seen)),
                    path: "xdp".to_owned(),
                });
            }
        }
        let on_xdp = |iface: &str| self.xdp.iter().any(|x| x.iface == iface);
        for (k, c) in table.rows() {
            if on_xdp(&k.interface) {
                continue;
            }
            let counts = Counter::ALL
                .into_iter()
                .filter(|c| *c != Counter::NotVrrp)
                .map(|ctr| {
                    let n = c.counts.get(ctr.index() as usize).copied().unwrap_or(0);
                    (ctr, n)
                })
                .collect();
            peers.push(PeerRow {
                interface: k.interface.clone(),
                vrid: k.vrid,
                peer: k
                    .src
                    .map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
                counters: PeerCounts(counts),
                last_priority: c.last_priority,
                last_interval_cs: c.last_interval_cs,
                last_seen: utc(c.last_seen),
                path: "socket".to_owned(),
            });
        }
        // Per interface: the VRRP-like frames passed because they were not ours (another VRID,
        // family or VLAN), from the kernel on XDP interfaces, else from the socket path.
        let mut ifaces: Vec<&str> = self
            .instances
            .iter()
            .map(|i| i.plan.interface.as_str())
            .collect();
        ifaces.sort_unstable();
        ifaces.dedup();
        let interfaces = ifaces
            .into_iter()
            .map(|iface| match self.xdp.iter().find(|x| x.iface == iface) {
                Some(x) => InterfaceRx {
                    interface: iface.to_owned(),
                    path: "xdp".to_owned(),
                    not_ours: x.dp.borrow().not_ours().ok(),
                    other_destination: table.other_destination_on(iface),
                    queue_full: table.queue_full_on(iface),
                },
                None => InterfaceRx {
                    interface: iface.to_owned(),
                    path: "socket".to_owned(),
                    not_ours: Some(table.not_ours_on(iface)),
                    other_destination: table.other_destination_on(iface),
                    queue_full: table.queue_full_on(iface),
                },
            })
            .collect();
        RxCounters {
            rx: self.rx_paths.clone(),
            interfaces,
            peers,
        }
    }

    /// What a scrape of the metrics sees: status and counters at once, and what building
    /// such snapshots has cost the loop so far.
    pub(super) fn snapshot(&mut self) -> crate::metrics::Snapshot {
        let t0 = std::time::Instant::now();
        let snap = crate::metrics::Snapshot {
            status: self.status(),
            counters: self.counters(),
            cost: self.metrics_cost,
        };
        self.metrics_cost.add(t0.elapsed());
        snap
    }

    /// Builds the answer here (a snapshot, no I/O) and writes it from its own task, so a slow
    /// client never holds up the loop.
    pub(super) fn answer(&self, cmd: Command, resp: Responder) {
        match cmd {
            Command::Status => {
                let v = self.status();
                tokio::task::spawn_local(async move { resp.reply(&v).await });
            }
            Command::Counters => {
                let v = self.counters();
                tokio::task::spawn_local(async move { resp.reply(&v).await });
            }
            // Answered by the loop itself (`Daemon::serve`), which owns the input queues.
            Command::Reload => {
                let v = crate::control::ErrorReply {
                    error: "reload is handled by the event loop".to_owned(),
                };
                tokio::task::spawn_local(async move { resp.reply(&v).await });
            }
        }
    }
}

//! The instances' own interfaces: opened at start, re-opened when the device is re-created.
//!
//! A device deleted and created again under the same name (NetworkManager, ifupdown and
//! container runtimes do it with veth, bond and VLAN devices) is a new device: sockets bound to
//! the old ifindex hear and send nothing, and XDP stays on the dead device. An instance that
//! kept going would become Master, add its addresses and advertise into the void. So:
//!
//! - [`spawn_watcher`] reports every change of the ifindex behind each interface name (from
//!   link events, see `daemon::links`);
//! - when the name has no device any more, the loop puts the interface's instances in Fault
//!   (`Event::InterfaceChanged`, whatever the trackers say) and stops its receivers;
//! - when a device of that name appears (or the name moves to another device), the loop
//!   re-opens everything with [`open`]: the source address read again, XDP attached again (or
//!   the raw-socket path, saying why), the sockets opened and the multicast group joined; only
//!   then are the instances let back into the election. A failed attempt (the device has no
//!   address yet, say) is retried every [`RETRY`].

use std::{cell::RefCell, rc::Rc, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::{info, warn};

use super::{
    links,
    options::{RxMode, StartError},
    plan::InstancePlan,
    receive::{Receiver, SharedMembers, XdpMembers, XdpRx},
};
use crate::{
    dataplane::{AttachMode, XdpDataplane},
    net::{
        self,
        offload::{TagsVisible, Visibility},
        Mode, VrrpSocket,
    },
    packet::RxPolicy,
    state::{RxKind, RxPath, VlanTags},
};

/// How long after a failed re-open the next attempt is made.
pub(super) const RETRY: Duration = Duration::from_millis(500);

/// The device behind an interface name changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IfaceChange {
    /// Interface name.
    pub(super) name: String,
    /// Its ifindex now; `None`: no device has that name (deleted or renamed away).
    pub(super) ifindex: Option<u32>,
}

/// Watches the devices behind `names` on the current `LocalSet`; reports the state of each
/// name once at start, then every change.
pub(super) fn spawn_watcher(
    names: Vec<String>,
    tx: mpsc::UnboundedSender<IfaceChange>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        // None until the first report.
        let mut reported: Vec<(String, Option<Option<u32>>)> =
            names.iter().map(|n| (n.clone(), None)).collect();
        links::watch(names, "interfaces", move |table| {
            for (name, last) in reported.iter_mut() {
                let now = table.ifindex(name);
                if *last == Some(now) {
                    continue;
                }
                *last = Some(now);
                let change = IfaceChange {
                    name: name.clone(),
                    ifindex: now,
                };
                if tx.send(change).is_err() {
                    return false;
                }
            }
            true
        })
        .await;
    })
}

/// The running [`spawn_watcher`] task, with what it watches: a reload that changes the set of
/// interfaces starts a new one ([`DeviceWatch::watch`]).
#[derive(Default)]
pub(super) struct DeviceWatch {
    tx: Option<mpsc::UnboundedSender<IfaceChange>>,
    names: Vec<String>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DeviceWatch {
    /// Watches `names` (sorted, deduplicated), reporting on `tx` from now on.
    pub(super) fn start(&mut self, names: Vec<String>, tx: mpsc::UnboundedSender<IfaceChange>) {
        self.tx = Some(tx);
        self.watch(names);
    }

    /// Watches `names` instead of the names watched so far (nothing happens when they are the
    /// same). The new watcher reports every name once at start: the loop ignores a report of the
    /// device it has open already.
    pub(super) fn watch(&mut self, mut names: Vec<String>) {
        names.sort();
        names.dedup();
        if self.task.is_some() && names == self.names {
            return;
        }
        let Some(tx) = self.tx.clone() else { return };
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.task = Some(spawn_watcher(names.clone(), tx));
        self.names = names;
    }
}

impl Drop for DeviceWatch {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// One interface's receive path and sockets, as opened by [`open`].
pub(super) struct Opened {
    /// The ifindex everything was opened on.
    pub(super) ifindex: u32,
    pub(super) rx_path: RxPath,
    pub(super) xdp: Option<XdpRx>,
    /// Sockets that receive (not those of an XDP interface, which only send).
    pub(super) receivers: Vec<Receiver>,
    /// (instance index, the socket it sends on, its source address).
    pub(super) senders: Vec<(usize, Rc<VrrpSocket>, std::net::IpAddr)>,
}

/// The loop's view of one interface.
pub(super) struct IfaceRt {
    pub(super) name: String,
    /// The ifindex its sockets are bound to; `None` while it is gone or not re-opened yet.
    pub(super) ifindex: Option<u32>,
    /// Its receive tasks (XDP ring reader, socket readers), stopped when it goes.
    pub(super) tasks: Vec<JoinHandle<()>>,
    /// Its sockets (receiving or send-only) and who each serves.
    pub(super) sockets: Vec<(Rc<VrrpSocket>, SharedMembers)>,
    /// Who its XDP ring reader serves, when XDP is attached.
    pub(super) xdp_members: Option<XdpMembers>,
    /// A re-open that failed: when to try again.
    pub(super) retry_at: Option<Instant>,
    /// Why the last re-open failed (logged once per cause).
    pub(super) last_error: Option<String>,
}

impl IfaceRt {
    pub(super) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ifindex: None,
            tasks: Vec::new(),
            sockets: Vec::new(),
            xdp_members: None,
            retry_at: None,
            last_error: None,
        }
    }

    pub(super) fn stop_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.sockets.clear();
        self.xdp_members = None;
    }
}

impl Drop for IfaceRt {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

/// The XDP advert ring for an interface shared by `plans`: sized for their adverts
/// (`dataplane::events_ring_bytes`).
pub(super) fn advert_ring<'a>(plans: impl Iterator<Item = &'a InstancePlan>) -> u32 {
    let per_second: f64 = plans
        .map(|p| 1.0 / p.params.advert_interval.as_secs_f64().max(0.01))
        .sum();
    crate::dataplane::events_ring_bytes(per_second)
}

/// Opens `iface` for the instances `members` (index, plan): its receive path (XDP where it
/// attaches; in [`RxMode::Auto`] a raw socket where it does not; in [`RxMode::Xdp`] failing to
/// attach is fatal when `strict`, else the socket path is used and the log says why) and one
/// socket per (family, mode), shared by the instances that use it. On an XDP interface the
/// sockets only send (and keep the multicast group joined, so a real NIC's filter delivers
/// adverts to XDP). `sources[k]` is the source address of `members[k]`.
pub(super) fn open(
    iface: &str,
    members: &[(usize, &InstancePlan)],
    sources: &[std::net::IpAddr],
    rx: RxMode,
    xdp_pass: bool,
    strict: bool,
) -> Result<Opened, StartError> {
    let ifindex = net::ifindex(iface).map_err(|source| StartError::Socket {
        instance: members
            .first()
            .map(|(_, p)| p.name.clone())
            .unwrap_or_default(),
        source,
    })?;
    let (rx_path, xdp) = if rx == RxMode::Socket {
        (
            RxPath {
                interface: iface.to_owned(),
                path: RxKind::Socket,
                fallback: None,
                vlan_tags: None,
            },
            None,
        )
    } else {
        let policies: Vec<RxPolicy> = members.iter().map(|(_, p)| p.rx.clone()).collect();
        // Before attaching, so that no tag is stripped once the program runs; restored (dropped)
        // when XDP does not attach.
        let tags = vlan_tags_visible(iface);
        let ring = advert_ring(members.iter().map(|(_, p)| *p));
        match XdpDataplane::attach_with_ring(iface, AttachMode::Auto, &policies, xdp_pass, ring) {
            Ok(dp) => {
                if let Some(why) = dp.fallback_reason() {
                    warn!("{iface}: {why}");
                }
                info!(
                    "{iface}: adverts are received and checked by XDP ({} mode)",
                    dp.mode()
                );
                let path = RxPath {
                    interface: iface.to_owned(),
                    path: match dp.mode() {
                        AttachMode::Generic => RxKind::XdpGeneric,
                        AttachMode::Native | AttachMode::Auto => RxKind::XdpNative,
                    },
                    fallback: dp.fallback_reason().map(str::to_owned),
                    vlan_tags: tags.as_ref().map(|t| match &t.visibility {
                        Visibility::InFrame => VlanTags::InFrame,
                        Visibility::Stripped(_) => VlanTags::Stripped,
                        Visibility::PeerDecides => VlanTags::VethPeerDecides,
                        Visibility::LowerDecides(_) => VlanTags::LowerDevicesDecide,
                    }),
                };
                let x = XdpRx {
                    iface: iface.to_owned(),
                    dp: Rc::new(RefCell::new(dp)),
                    _tags: tags,
                };
                (path, Some(x))
            }
            Err(e) if rx == RxMode::Xdp && strict => {
                return Err(StartError::Rx(format!("{iface}: {e}")))
            }
            Err(e) => {
                warn!("{iface}: XDP unavailable ({e}); receiving adverts on a raw socket instead");
                let path = RxPath {
                    interface: iface.to_owned(),
                    path: RxKind::Socket,
                    fallback: Some(e.to_string()),
                    vlan_tags: None,
                };
                (path, None)
            }
        }
    };

    let mut receivers: Vec<Receiver> = Vec::new();
    let mut senders = Vec::with_capacity(members.len());
    for (&(idx, plan), &src) in members.iter().zip(sources) {
        let family = net::Family::of(src);
        let mode = if plan.tx.unicast {
            Mode::Unicast { source: src }
        } else {
            Mode::Multicast
        };
        let existing = receivers
            .iter()
            .position(|r| r.sock.family() == family && r.sock.mode() == mode);
        let r = match existing {
            Some(r) => r,
            None => {
                let sock = if xdp.is_some() {
                    VrrpSocket::open_send_only(iface, family, mode)
                } else {
                    VrrpSocket::open(iface, family, mode)
                }
                .map_err(|source| StartError::Socket {
                    instance: plan.name.clone(),
                    source,
                })?;
                receivers.push(Receiver {
                    sock: Rc::new(sock),
                    interface: iface.to_owned(),
                    members: Rc::default(),
                    multicast: mode == Mode::Multicast,
                });
                receivers.len() - 1
            }
        };
        let Some(rcv) = receivers.get_mut(r) else {
            continue;
        };
        rcv.members.borrow_mut().push(idx, plan.rx.clone());
        // A multicast instance without `mcast_src_ip` sends from the interface's primary
        // address, which the socket read at open time.
        let src = if plan.tx.src_from_interface && !plan.tx.unicast {
            rcv.sock.source_addr()
        } else {
            src
        };
        senders.push((idx, rcv.sock.clone(), src));
    }
    Ok(Opened {
        ifindex,
        rx_path,
        xdp,
        receivers,
        senders,
    })
}

/// Makes sure XDP on `iface` sees 802.1Q tags in the frame (see [`crate::net::offload`]): a
/// tagged advert of another VLAN must never be taken for one of this interface's own. Says what
/// it did, and warns where it cannot.
fn vlan_tags_visible(iface: &str) -> Option<TagsVisible> {
    match TagsVisible::ensure(iface) {
        Ok(t) => {
            match &t.visibility {
                Visibility::InFrame if t.changed() => info!(
                    "{iface}: VLAN receive offload turned off so that XDP sees 802.1Q tags \
                     (turned back on at exit)"
                ),
                Visibility::InFrame => {}
                Visibility::Stripped(why) => warn!(
                    "{iface}: VLAN receive offload stays on ({why}): XDP may see VLAN-tagged \
                     VRRP as untagged; if VRRP of other VLANs reaches {iface}, use --rx socket"
                ),
                Visibility::LowerDecides(kind) => warn!(
                    "{iface} is a {kind} device: its lower devices strip or keep 802.1Q tags; if \
                     VRRP of other VLANs reaches it, turn VLAN receive offload off on them \
                     (ethtool -K DEV rxvlan off) or use --rx socket"
                ),
                Visibility::PeerDecides => info!(
                    "{iface} is a veth: 802.1Q tags its peer forwards as metadata are invisible \
                     to XDP; if VRRP of other VLANs reaches it, turn transmit VLAN offload off \
                     on the peer (ethtool -K PEER txvlan off) or use --rx socket"
                ),
            }
            Some(t)
        }
        Err(e) => {
            warn!(
                "{iface}: cannot read VLAN receive offload ({e}); XDP may see VLAN-tagged VRRP \
                 as untagged if the NIC strips tags"
            );
            None
        }
    }
}

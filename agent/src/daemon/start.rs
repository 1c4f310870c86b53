//! Start-up: receive paths (XDP where it attaches, raw sockets elsewhere), the shared sockets,
//! the event loop and its inputs; then [`run`] serves until SIGTERM/SIGINT and shuts down.

use std::{cell::RefCell, rc::Rc};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    announce::Announcer,
    edges::{AdvertTx, NetlinkAddresses},
    event_loop::{spawn_signals, Daemon, Inputs},
    options::{RunOptions, RxMode, StartError},
    plan::InstancePlan,
    receive::{spawn_receiver, spawn_xdp_reader, Receiver, RxAdvert, XdpRx, ADVERT_QUEUE},
    track::TrackerUpdate,
};
use crate::{
    config::Config,
    control::ControlServer,
    dataplane::{AttachMode, XdpDataplane},
    net::{
        self,
        offload::{TagsVisible, Visibility},
        Mode, VrrpSocket,
    },
    packet::{self, RxPolicy},
    state::{RxKind, RxPath, VlanTags},
};

/// Builds the runtime from plans and runs it until SIGTERM/SIGINT.
pub(super) async fn run(
    cfg: Config,
    plans: Vec<InstancePlan>,
    opts: RunOptions,
) -> Result<(), StartError> {
    let control = ControlServer::bind(&opts.control_socket)?;
    let control_path = control.path().to_owned();
    let signals = spawn_signals()?;

    // Receive path per interface: the XDP filter where it attaches (in `auto`, a raw socket
    // where it does not; in `xdp`, failing to attach is fatal).
    let mut xdp: Vec<XdpRx> = Vec::new();
    let mut rx_paths: Vec<RxPath> = Vec::new();
    let mut ifaces: Vec<&str> = plans.iter().map(|p| p.interface.as_str()).collect();
    ifaces.sort_unstable();
    ifaces.dedup();
    for iface in ifaces {
        if opts.rx == RxMode::Socket {
            rx_paths.push(RxPath {
                interface: iface.to_owned(),
                path: RxKind::Socket,
                fallback: None,
                vlan_tags: None,
            });
            continue;
        }
        let policies: Vec<RxPolicy> = plans
            .iter()
            .filter(|p| p.interface == iface)
            .map(|p| p.rx.clone())
            .collect();
        // Before attaching, so that no tag is stripped once the program runs; restored (dropped)
        // when XDP does not attach.
        let tags = vlan_tags_visible(iface);
        match XdpDataplane::attach(iface, AttachMode::Auto, &policies, opts.xdp_pass) {
            Ok(dp) => {
                if let Some(why) = dp.fallback_reason() {
                    warn!("{iface}: {why}");
                }
                info!(
                    "{iface}: adverts are received and checked by XDP ({} mode)",
                    dp.mode()
                );
                rx_paths.push(RxPath {
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
                });
                xdp.push(XdpRx {
                    iface: iface.to_owned(),
                    dp: Rc::new(RefCell::new(dp)),
                    _tags: tags,
                });
            }
            Err(e) if opts.rx == RxMode::Xdp => {
                return Err(StartError::Rx(format!("{iface}: {e}")))
            }
            Err(e) => {
                warn!("{iface}: XDP unavailable ({e}); receiving adverts on a raw socket instead");
                rx_paths.push(RxPath {
                    interface: iface.to_owned(),
                    path: RxKind::Socket,
                    fallback: Some(e.to_string()),
                    vlan_tags: None,
                });
            }
        }
    }

    // Sockets: one per (interface, family, mode), shared by the instances that use it. On an
    // XDP interface they only send (and keep the multicast group joined, so a real NIC's filter
    // delivers adverts to XDP).
    let mut receivers: Vec<Receiver> = Vec::new();
    let mut senders: Vec<Rc<dyn AdvertTx>> = Vec::new();
    for (idx, plan) in plans.iter().enumerate() {
        let family = net::Family::of(plan.tx.src);
        let mode = if plan.tx.unicast {
            Mode::Unicast {
                source: plan.tx.src,
            }
        } else {
            Mode::Multicast
        };
        let existing = receivers.iter().position(|r| {
            r.interface == plan.interface && r.sock.family() == family && r.sock.mode() == mode
        });
        let r = match existing {
            Some(r) => r,
            None => {
                let on_xdp = xdp.iter().any(|x| x.iface == plan.interface);
                let sock = if on_xdp {
                    VrrpSocket::open_send_only(&plan.interface, family, mode)
                } else {
                    VrrpSocket::open(&plan.interface, family, mode)
                }
                .map_err(|source| StartError::Socket {
                    instance: plan.name.clone(),
                    source,
                })?;
                receivers.push(Receiver {
                    sock: Rc::new(sock),
                    interface: plan.interface.clone(),
                    members: Vec::new(),
                    multicast: mode == Mode::Multicast,
                });
                receivers.len() - 1
            }
        };
        receivers[r].members.push((idx, plan.rx.clone()));
        senders.push(receivers[r].sock.clone());
    }

    let mut announcer = Announcer::spawn().map_err(StartError::Thread)?;
    let mut d = Daemon::new(
        plans,
        senders,
        Box::new(NetlinkAddresses::default()),
        announcer.queue(),
    )?;
    d.xdp = xdp;
    d.rx_paths = rx_paths;

    let (adv_tx, adv_rx) = mpsc::channel::<RxAdvert>(ADVERT_QUEUE);
    for r in receivers {
        if r.sock.is_receiving() {
            spawn_receiver(r, d.counters.clone(), adv_tx.clone())?;
        }
    }
    for x in &d.xdp {
        let members: Vec<(usize, u8, packet::Family)> = d
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.plan.interface == x.iface)
            .map(|(n, i)| (n, i.plan.rx.vrid, i.plan.rx.family))
            .collect();
        spawn_xdp_reader(x, members, d.counters.clone(), adv_tx.clone())?;
    }

    // Trackers: one watcher per tracked object, shared by the instances that track it.
    let (trk_tx, trk_rx) = mpsc::unbounded_channel::<TrackerUpdate>();
    let syn_counters: Vec<_> = d.xdp.iter().map(|x| x.dp.clone()).collect();
    d.registry.spawn_all(&trk_tx, &syn_counters);

    // Summaries of rate-limited log messages, as their windows end (idle otherwise).
    let flusher = tokio::task::spawn_local(super::loglimit::run_flusher());
    d.start();
    info!(
        "xvrrp running (router_id {}): {} instance(s); control socket {}",
        cfg.global_defs.router_id.as_deref().unwrap_or("-"),
        d.instances.len(),
        control_path.display()
    );

    let (ctl_rx, ctl_task) = control.serve();
    d.serve(Inputs {
        signals,
        adverts: adv_rx,
        trackers: trk_rx,
        control: ctl_rx,
    })
    .await;
    d.shutdown().await;
    flusher.abort();
    // Queued announcements of the last Masters are void by now; let the worker finish.
    announcer.stop();
    // Stop answering (removes the control socket) before saying we stopped.
    ctl_task.abort();
    let _ = ctl_task.await;
    info!("xvrrp stopped");
    Ok(())
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

//! Start-up: receive paths (XDP where it attaches, raw sockets elsewhere), the shared sockets,
//! the event loop and its inputs; then [`run`] serves until SIGTERM/SIGINT and shuts down.

use std::rc::Rc;

use tokio::sync::mpsc;
use tracing::info;

use super::{
    announce::Announcer,
    edges::{AdvertTx, NetlinkAddresses},
    event_loop::{spawn_signals, Daemon, Inputs},
    iface::{self, IfaceChange, IfaceRt, Opened},
    options::{RunOptions, StartError},
    plan::InstancePlan,
    receive::{RxAdvert, ADVERT_QUEUE},
    track::TrackerUpdate,
};
use crate::{config::Config, control::ControlServer};

/// Builds the runtime from plans and runs it until SIGTERM/SIGINT.
pub(super) async fn run(
    cfg: Config,
    plans: Vec<InstancePlan>,
    opts: RunOptions,
) -> Result<(), StartError> {
    let control = ControlServer::bind(&opts.control_socket)?;
    let control_path = control.path().to_owned();
    let signals = spawn_signals()?;
    // Metrics: bound now, so a taken port stops the start before anything is changed.
    let metrics = opts
        .metrics
        .or(cfg.global_defs.metrics_address)
        .map(crate::metrics::MetricsServer::bind)
        .transpose()?;

    // Per interface: its receive path and sockets (see `iface::open`).
    let mut ifaces: Vec<&str> = plans.iter().map(|p| p.interface.as_str()).collect();
    ifaces.sort_unstable();
    ifaces.dedup();
    let mut opened: Vec<(String, Opened)> = Vec::new();
    let mut senders: Vec<Option<Rc<dyn AdvertTx>>> = vec![None; plans.len()];
    for name in ifaces {
        let members: Vec<(usize, &InstancePlan)> = plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.interface == name)
            .collect();
        let sources: Vec<_> = members.iter().map(|(_, p)| p.tx.src).collect();
        let o = iface::open(name, &members, &sources, opts.rx, opts.xdp_pass, true)?;
        for (idx, sock, _) in &o.senders {
            if let Some(slot) = senders.get_mut(*idx) {
                *slot = Some(sock.clone() as Rc<dyn AdvertTx>);
            }
        }
        opened.push((name.to_owned(), o));
    }
    let senders: Vec<Rc<dyn AdvertTx>> = senders.into_iter().flatten().collect();

    let mut announcer = Announcer::spawn().map_err(StartError::Thread)?;
    let mut d = Daemon::new(
        plans,
        senders,
        Box::new(NetlinkAddresses::default()),
        announcer.queue(),
    )?;
    d.rx_mode = opts.rx;
    d.config_path = Some(opts.config.clone());
    d.xdp_pass = opts.xdp_pass;
    let (adv_tx, adv_rx) = mpsc::channel::<RxAdvert>(ADVERT_QUEUE);
    d.adv_tx = Some(adv_tx);
    for (name, o) in opened {
        let mut rt = IfaceRt::new(&name);
        d.attach_interface(&mut rt, o)?;
        d.ifaces.push(rt);
    }
    // Devices deleted and re-created under the same name (see `daemon::iface`).
    let (if_tx, if_rx) = mpsc::unbounded_channel::<IfaceChange>();
    let names = d.ifaces.iter().map(|i| i.name.clone()).collect();
    d.devices.start(names, if_tx);

    // Trackers: one watcher per tracked object, shared by the instances that track it.
    let (trk_tx, trk_rx) = mpsc::unbounded_channel::<TrackerUpdate>();
    let syn_counters: Vec<_> = d.xdp.iter().map(|x| x.dp.clone()).collect();
    d.registry.spawn_all(&trk_tx, &syn_counters);
    d.trk_tx = Some(trk_tx);

    // Scrapes ask the loop for snapshots through this channel (kept open without a server).
    let (metrics_tx, metrics_rx) = mpsc::channel(1);
    let mut idle_metrics = Some(metrics_tx);
    if let Some(m) = metrics {
        d.metrics_address = Some(m.local_addr());
        info!("metrics on http://{}/metrics", m.local_addr());
        if let Some(tx) = idle_metrics.take() {
            m.spawn(tx)?;
        }
    }

    // Summaries of rate-limited log messages, as their windows end (idle otherwise).
    let flusher = tokio::task::spawn_local(super::loglimit::run_flusher());
    d.start();
    info!(
        "xvrrp running (router_id {}): {} instance(s); control socket {}",
        cfg.global_defs.router_id.as_deref().unwrap_or("-"),
        d.instances.len(),
        control_path.display()
    );

    super::service::ready(&d.status_summary());
    d.release.schedule();

    let (ctl_rx, ctl_task) = control.serve();
    d.serve(Inputs {
        signals,
        adverts: adv_rx,
        trackers: trk_rx,
        control: ctl_rx,
        interfaces: if_rx,
        metrics: metrics_rx,
    })
    .await;
    drop(idle_metrics);
    super::service::stopping();
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

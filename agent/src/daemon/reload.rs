//! Configuration reload (`SIGHUP`, `xvrrp reload`) without a flap.
//!
//! The file is read, checked and planned like at start; with any error nothing changes (the
//! errors go back to `xvrrp reload`, `FILE:LINE:COLUMN: keyword: message`). Otherwise each
//! configured instance is matched by name with a running one:
//!
//! | change | what happens |
//! | --- | --- |
//! | none | nothing: state, timers, sockets and scripts untouched; a cloud takeover re-reads its token file, clears a 401/403 block and checks again (what SIGHUP always did) |
//! | priority, timers, preempt, trackers, addresses, notify scripts, cloud block, unicast peers... | in place ([`vrrp::Instance::reconfigure`]): no transition unless the new priority or a tracker makes one (as the RFC's election would); addresses added / removed while Master; a new notify queue and cloud task where those changed |
//! | interface, VRID, version or family | rebuilt: the old one leaves as on shutdown (priority 0, addresses removed, `notify_stop`), a new one starts |
//! | gone from the file | leaves as on shutdown |
//! | new in the file | starts |
//!
//! Receive paths are re-opened only on interfaces whose instances changed (their index, their
//! receive checks or their sockets), so an interface whose instances are all unchanged keeps
//! its sockets and XDP program. The trackers' watchers are rebuilt (they restart and report
//! again; the core keeps each tracker's status until its watcher reports, so an unchanged
//! instance sees no change).

use std::{collections::BTreeSet, path::Path, rc::Rc};

use tracing::{error, info, warn};

use super::{
    addresses::VipRt,
    edges::AdvertTx,
    event_loop::{announce_target, tracker_statuses, Daemon, InstanceRt},
    iface::IfaceRt,
    notify::NotifyQueue,
    plan::{self, InstancePlan},
    receive::{spawn_receiver, Members, Receiver, SharedMembers},
    takeover::CloudTakeover,
    track::Registry,
};
use crate::{
    net,
    packet::RxPolicy,
    state::ReloadReport,
    vrrp::{self, Event, State},
};

/// Sends nothing: the socket of a new instance until its interface is opened.
struct Unopened;

impl AdvertTx for Unopened {
    fn send_from(
        &self,
        _: &[u8],
        _: std::net::IpAddr,
        dst: std::net::IpAddr,
        _: u8,
    ) -> Result<(), net::NetError> {
        Err(net::NetError::invalid(
            dst.to_string(),
            "the interface is not open yet".to_owned(),
        ))
    }
}

/// What reload does with one running instance.
enum Fate {
    Keep,
    Change(Box<InstancePlan>),
    Leave,
}

/// What identifies a virtual router: a change here is another router, not a change of this one.
fn identity(p: &InstancePlan) -> (&str, u8, vrrp::Version, crate::packet::Family) {
    (
        p.interface.as_str(),
        p.params.vrid,
        p.params.version,
        p.rx.family,
    )
}

/// What an interface's receive path and sockets depend on.
type IfaceSig = Vec<(usize, RxPolicy, bool, std::net::IpAddr)>;

impl Daemon {
    fn iface_sig(&self, iface: &str) -> IfaceSig {
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.plan.interface == iface)
            .map(|(n, i)| (n, i.plan.rx.clone(), i.plan.tx.unicast, i.plan.tx.src))
            .collect()
    }

    /// Reads the configuration again and applies it (see the module's documentation).
    pub(super) fn reload(&mut self, path: &Path) -> ReloadReport {
        let mut report = ReloadReport::default();
        let loaded = match crate::config::load(path) {
            Ok(l) => l,
            Err(errors) => {
                report.errors = errors.to_string().lines().map(str::to_owned).collect();
                return self.rejected(report);
            }
        };
        for w in &loaded.warnings {
            warn!("reload: {w}");
        }
        let lookup = |ifname: &str, v6: bool| super::interface_address(ifname, v6);
        let plans = match plan::plan(&loaded.config, &lookup) {
            Ok(p) => p,
            Err(errs) => {
                report.errors = errs.iter().map(ToString::to_string).collect();
                return self.rejected(report);
            }
        };
        report.applied = true;

        // Before: what each interface's receive side was built for.
        let mut ifaces_before: Vec<(String, IfaceSig)> = Vec::new();
        for rt in &self.ifaces {
            ifaces_before.push((rt.name.clone(), self.iface_sig(&rt.name)));
        }

        // 1. Decide, per running instance.
        let mut fates: Vec<Fate> = Vec::with_capacity(self.instances.len());
        for inst in &self.instances {
            let fate = match plans.iter().find(|p| p.name == inst.plan.name) {
                Some(p) if *p == inst.plan => Fate::Keep,
                Some(p) if identity(p) == identity(&inst.plan) => Fate::Change(Box::new(p.clone())),
                _ => Fate::Leave,
            };
            fates.push(fate);
        }

        // 2. Leaving ones go as on shutdown, while their sockets still work.
        for (i, fate) in fates.iter().enumerate() {
            if !matches!(fate, Fate::Leave) {
                continue;
            }
            let now = self.now();
            self.handle(i, now, Event::Shutdown);
            if let Some(inst) = self.instances.get_mut(i) {
                if let Some(c) = inst.cloud.as_mut() {
                    c.shutdown();
                }
                if let Some(g) = inst.garp.take() {
                    g.abort();
                }
            }
        }

        // 3a. Unchanged ones with a cloud block: as SIGHUP always did, re-read the token, clear
        // a 401/403 block and check again (the reserved IP may have been fixed meanwhile).
        for (i, fate) in fates.iter().enumerate() {
            if matches!(fate, Fate::Keep) {
                if let Some(inst) = self.instances.get_mut(i) {
                    let state = inst.core.state();
                    if let Some(c) = inst.cloud.as_mut() {
                        c.reload(state);
                    }
                }
            }
        }

        // 3b. Changed ones, in place.
        for (i, fate) in fates.iter_mut().enumerate() {
            if let Fate::Change(p) = fate {
                let p = std::mem::replace(p.as_mut(), self.instances[i].plan.clone());
                self.change_in_place(i, p);
            }
        }

        // 4. The new list: running ones in the file's order, new ones where they appear.
        let mut old: Vec<Option<InstanceRt>> = std::mem::take(&mut self.instances)
            .into_iter()
            .map(Some)
            .collect();
        let registry = Registry::build(&plans);
        let mut starting: Vec<usize> = Vec::new();
        for plan in plans {
            let k = old
                .iter()
                .position(|o| o.as_ref().is_some_and(|o| o.plan.name == plan.name));
            let kept = k
                .filter(|&k| !matches!(fates.get(k), Some(Fate::Leave)))
                .and_then(|k| old.get_mut(k).and_then(Option::take));
            match kept {
                Some(mut inst) => {
                    let name = inst.plan.name.clone();
                    if matches!(k.and_then(|k| fates.get(k)), Some(Fate::Keep)) {
                        report.unchanged.push(name);
                    } else {
                        report.changed.push(name);
                    }
                    inst.trackers = tracker_statuses(&inst.plan, &registry);
                    self.instances.push(inst);
                }
                None => {
                    let name = plan.name.clone();
                    if k.is_some() {
                        report.rebuilt.push(name.clone());
                    } else {
                        report.added.push(name.clone());
                    }
                    match InstanceRt::new(plan, Rc::new(Unopened), &registry) {
                        Ok(inst) => {
                            starting.push(self.instances.len());
                            self.instances.push(inst);
                        }
                        Err(e) => {
                            // Planned, so this cannot fail; say so loudly if it does.
                            error!("reload: {name}: {e}");
                            report.errors.push(format!("{name}: {e}"));
                        }
                    }
                }
            }
        }
        for inst in old.into_iter().flatten() {
            if !report.rebuilt.contains(&inst.plan.name) {
                report.removed.push(inst.plan.name.clone());
            }
            // notify_stop is queued: keep the queue until it is done.
            self.retired.push(inst.notify);
        }
        self.retired.retain(|q| q.busy() > 0);

        // 5. Trackers: new watchers (the old ones stop when the old registry is dropped).
        self.registry = registry;
        if let Some(tx) = self.trk_tx.clone() {
            let syn: Vec<_> = self.xdp.iter().map(|x| x.dp.clone()).collect();
            self.registry.spawn_all(&tx, &syn);
        }

        // 6. Interfaces whose instances changed are opened again; gone ones closed.
        let mut names: BTreeSet<String> = self
            .instances
            .iter()
            .map(|i| i.plan.interface.clone())
            .collect();
        self.ifaces.retain(|rt| names.contains(&rt.name));
        let closed: Vec<String> = ifaces_before
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !names.contains(n))
            .collect();
        self.xdp.retain(|x| !closed.contains(&x.iface));
        self.rx_paths.retain(|p| !closed.contains(&p.interface));
        for name in std::mem::take(&mut names) {
            let before = ifaces_before.iter().find(|(n, _)| *n == name);
            let changed = before.is_none_or(|(_, sig)| *sig != self.iface_sig(&name));
            let k = match self.ifaces.iter().position(|r| r.name == name) {
                Some(k) => k,
                None => {
                    self.ifaces.push(IfaceRt::new(&name));
                    self.ifaces.len() - 1
                }
            };
            if self.ifaces[k].ifindex.is_none() {
                self.reopen(k);
            } else if changed && !self.refit_interface(k) {
                // Sockets of another family or source are needed: open it all again. Detach
                // XDP first (it cannot be attached twice; other holders of the old dataplane
                // drop it later).
                let rt = &mut self.ifaces[k];
                rt.stop_tasks();
                rt.ifindex = None;
                for x in self.xdp.iter().filter(|x| x.iface == name) {
                    x.dp.borrow_mut().detach();
                }
                self.xdp.retain(|x| x.iface != name);
                self.reopen(k);
            }
        }

        // Interfaces added or no longer used: the device watch follows.
        self.devices
            .watch(self.ifaces.iter().map(|r| r.name.clone()).collect());

        // 7. New instances start (in Fault if their interface could not be opened).
        for i in starting {
            let usable = self
                .instances
                .get(i)
                .and_then(|inst| self.ifaces.iter().find(|r| r.name == inst.plan.interface))
                .is_some_and(|r| r.ifindex.is_some());
            let now = self.now();
            if !usable {
                self.handle(i, now, Event::InterfaceChanged { usable: false });
            }
            self.handle(i, now, Event::Startup);
        }
        info!(
            "reload: {} unchanged, {} changed in place, {} rebuilt, {} removed, {} added",
            report.unchanged.len(),
            report.changed.len(),
            report.rebuilt.len(),
            report.removed.len(),
            report.added.len()
        );
        report
    }

    /// Fits interface `k`'s open receive side to its instances as they are now, in place: the
    /// receivers' member lists, the XDP program's receive checks (its policy map), a socket
    /// for a family or source address not open yet, and each instance's socket. No program is
    /// loaded and no open socket is closed, so nothing pauses the loop for long. False when a
    /// socket cannot be opened (then the interface is opened again from scratch).
    fn refit_interface(&mut self, k: usize) -> bool {
        let Some(name) = self.ifaces.get(k).map(|r| r.name.clone()) else {
            return false;
        };
        let on_xdp = self.xdp.iter().any(|x| x.iface == name);
        let members: Vec<usize> = (0..self.instances.len())
            .filter(|&i| self.instances[i].plan.interface == name)
            .collect();
        // The advert ring was sized for the instances at attach time: when the new ones advertise
        // faster than it holds, load the program again with a larger ring.
        let ring = super::iface::advert_ring(members.iter().map(|&i| &self.instances[i].plan));
        if let Some(x) = self.xdp.iter().find(|x| x.iface == name) {
            let has = x.dp.borrow().events_ring_bytes();
            if has < ring {
                info!("{name}: reload: the advert ring ({has} bytes) is too small for the new instances ({ring}): attaching XDP again");
                return false;
            }
        }
        let mut socket_of = Vec::with_capacity(members.len());
        for &i in &members {
            let plan = &self.instances[i].plan;
            let src = plan.tx.src;
            let family = net::Family::of(src);
            let mode = if plan.tx.unicast {
                net::Mode::Unicast { source: src }
            } else {
                net::Mode::Multicast
            };
            let rt = &mut self.ifaces[k];
            if let Some(n) = rt
                .sockets
                .iter()
                .position(|(s, _)| (s.family(), s.mode()) == (family, mode))
            {
                socket_of.push(n);
                continue;
            }
            let opened = if on_xdp {
                net::VrrpSocket::open_send_only(&name, family, mode)
            } else {
                net::VrrpSocket::open(&name, family, mode)
            };
            let sock = match opened {
                Ok(s) => Rc::new(s),
                Err(e) => {
                    warn!(
                        "{name}: reload: cannot open a socket for {}: {e}",
                        plan.name
                    );
                    return false;
                }
            };
            let shared: SharedMembers = Rc::default();
            if sock.is_receiving() {
                let Some(tx) = self.adv_tx.clone() else {
                    return false;
                };
                let r = Receiver {
                    sock: sock.clone(),
                    interface: name.clone(),
                    members: shared.clone(),
                    multicast: mode == net::Mode::Multicast,
                };
                match spawn_receiver(r, self.counters.clone(), tx) {
                    Ok(t) => rt.tasks.push(t),
                    Err(e) => {
                        warn!("{name}: reload: {e}");
                        return false;
                    }
                }
            }
            rt.sockets.push((sock, shared));
            socket_of.push(rt.sockets.len() - 1);
        }
        let Some(rt) = self.ifaces.get(k) else {
            return false;
        };
        for (n, (_, shared)) in rt.sockets.iter().enumerate() {
            let list: Vec<(usize, RxPolicy)> = members
                .iter()
                .zip(&socket_of)
                .filter(|(_, s)| **s == n)
                .map(|(&i, _)| (i, self.instances[i].plan.rx.clone()))
                .collect();
            *shared.borrow_mut() = Members::new(list);
        }
        if let Some(xm) = &rt.xdp_members {
            *xm.borrow_mut() = members
                .iter()
                .map(|&i| {
                    let p = &self.instances[i].plan.rx;
                    (i, p.vrid, p.family)
                })
                .collect();
            let policies: Vec<RxPolicy> = members
                .iter()
                .map(|&i| self.instances[i].plan.rx.clone())
                .collect();
            if let Some(x) = self.xdp.iter().find(|x| x.iface == name) {
                if let Err(e) = x.dp.borrow_mut().set_policies(&policies) {
                    error!("{name}: reload: cannot update the XDP receive checks: {e}");
                    return false;
                }
            }
        }
        let socks: Vec<Rc<net::VrrpSocket>> = socket_of
            .iter()
            .filter_map(|&n| rt.sockets.get(n).map(|(s, _)| s.clone()))
            .collect();
        for (&i, sock) in members.iter().zip(socks) {
            if let Some(inst) = self.instances.get_mut(i) {
                inst.sock = sock;
            }
        }
        true
    }

    fn rejected(&self, report: ReloadReport) -> ReloadReport {
        for e in &report.errors {
            error!("reload: {e}");
        }
        error!(
            "reload: {} error(s); the running configuration is unchanged",
            report.errors.len()
        );
        report
    }

    /// Applies `plan` to running instance `i` (same interface, VRID, version and family).
    fn change_in_place(&mut self, i: usize, plan: InstancePlan) {
        let now = self.now();
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        let master = inst.core.state() == State::Master;
        // Addresses: those no longer configured leave now (if we added them); the per-address
        // state follows its address to its new position.
        let mut old_vips: Vec<(crate::config::VirtualAddress, VipRt)> = inst
            .plan
            .vips
            .iter()
            .cloned()
            .zip(
                std::mem::take(&mut inst.vips)
                    .into_iter()
                    .chain(std::iter::repeat_with(VipRt::default)),
            )
            .collect();
        let mut vips = Vec::with_capacity(plan.vips.len());
        for v in &plan.vips {
            let k = old_vips
                .iter()
                .position(|(o, _)| o.address == v.address && o.dev == v.dev);
            vips.push(k.map(|k| old_vips.remove(k).1).unwrap_or_default());
        }
        for (v, rt) in old_vips {
            if rt.added {
                match self.addrs.del(&v) {
                    Ok(()) => info!(
                        "{}: removed {}/{} from {} (reload)",
                        plan.name, v.address, v.prefix_len, v.dev
                    ),
                    Err(e) => warn!(
                        "{}: reload: cannot remove {}/{} from {}: {e}",
                        plan.name, v.address, v.prefix_len, v.dev
                    ),
                }
            }
        }
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        inst.vips = vips;
        if plan.vips != inst.plan.vips {
            inst.announce.invalidate();
            inst.announce = announce_target(&plan);
        }
        if plan.notify != inst.plan.notify {
            let old = std::mem::replace(
                &mut inst.notify,
                NotifyQueue::spawn(plan.name.clone(), plan.notify.clone()),
            );
            self.retired.push(old);
        }
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        let state = inst.core.state();
        if plan.digitalocean != inst.plan.digitalocean {
            if let Some(c) = inst.cloud.as_mut() {
                c.shutdown();
            }
            inst.cloud = plan.digitalocean.clone().map(|c| {
                let mut t = CloudTakeover::start(&plan.name, c);
                if state == State::Master {
                    t.on_transition(State::Backup, State::Master);
                }
                t
            });
        } else if let Some(c) = inst.cloud.as_mut() {
            // As SIGHUP always did: re-read the token, clear a 401/403 block, check again.
            c.reload(state);
        }
        let params = plan.params.clone();
        inst.plan = plan;
        let actions = match inst.core.reconfigure(now, params) {
            Ok(a) => a,
            Err(e) => {
                error!("{}: reload: {e}", inst.plan.name);
                Vec::new()
            }
        };
        for a in actions {
            self.act(i, a);
        }
        if master
            && self
                .instances
                .get(i)
                .is_some_and(|x| x.core.state() == State::Master)
        {
            // New addresses (those kept are already there: EEXIST).
            self.add_addresses(i);
        }
    }
}

//! The loop's side of `daemon::iface`: attaching an interface's receive path and sockets to the
//! instances, taking it down when its device goes, re-opening it when a device of that name
//! comes back.

use std::{cell::RefCell, rc::Rc};

use tracing::{error, info, warn};

use super::{
    announce::AnnounceTarget,
    event_loop::Daemon,
    iface::{self, IfaceChange, IfaceRt, Opened, RETRY},
    options::StartError,
    plan::InstancePlan,
    receive::{spawn_receiver, spawn_xdp_reader},
};
use crate::{packet, vrrp::Event};

impl Daemon {
    /// Hands `o` to the instances of `rt`'s interface: their sending sockets (and source
    /// addresses), the receive tasks, the XDP filter and the receive path shown in status.
    pub(super) fn attach_interface(
        &mut self,
        rt: &mut IfaceRt,
        o: Opened,
    ) -> Result<(), StartError> {
        let Some(adv_tx) = self.adv_tx.clone() else {
            return Err(StartError::Rx(format!(
                "{}: the loop is not running",
                rt.name
            )));
        };
        rt.stop_tasks();
        self.xdp.retain(|x| x.iface != rt.name);
        self.rx_paths.retain(|p| p.interface != rt.name);
        self.rx_paths.push(o.rx_path);
        for (idx, sock, src) in o.senders {
            let Some(inst) = self.instances.get_mut(idx) else {
                continue;
            };
            inst.sock = sock;
            if src != inst.plan.tx.src {
                if inst.core.set_primary_address(src) {
                    info!(
                        "{}: source address is now {src} (was {})",
                        inst.plan.name, inst.plan.tx.src
                    );
                    inst.plan.tx.src = src;
                } else {
                    warn!(
                        "{}: source address {src} not applied (state {:?})",
                        inst.plan.name,
                        inst.core.state()
                    );
                }
            }
        }
        if let Some(x) = o.xdp {
            let members: Vec<(usize, u8, packet::Family)> = self
                .instances
                .iter()
                .enumerate()
                .filter(|(_, i)| i.plan.interface == rt.name)
                .map(|(n, i)| (n, i.plan.rx.vrid, i.plan.rx.family))
                .collect();
            let members = Rc::new(RefCell::new(members));
            rt.xdp_members = Some(members.clone());
            rt.tasks.push(spawn_xdp_reader(
                &x,
                members,
                self.counters.clone(),
                adv_tx.clone(),
            )?);
            self.xdp.push(x);
        }
        for r in o.receivers {
            rt.sockets.push((r.sock.clone(), r.members.clone()));
            if r.sock.is_receiving() {
                rt.tasks
                    .push(spawn_receiver(r, self.counters.clone(), adv_tx.clone())?);
            }
        }
        rt.ifindex = Some(o.ifindex);
        Ok(())
    }

    /// The device behind an interface name changed (see `daemon::iface`).
    pub(super) fn interface_changed(&mut self, ch: IfaceChange) {
        let Some(k) = self.ifaces.iter().position(|i| i.name == ch.name) else {
            return;
        };
        let rt = &mut self.ifaces[k];
        if ch.ifindex.is_some() && ch.ifindex == rt.ifindex {
            return; // the device we opened
        }
        if let Some(old) = rt.ifindex.take() {
            // The device we opened is gone (deleted, renamed away, or the name is on another
            // device now): nothing sent or received on it reaches anyone.
            rt.stop_tasks();
            let name = rt.name.clone();
            self.xdp.retain(|x| x.iface != name);
            warn!(
                "{name}: the device (ifindex {old}) is gone; its instances are in FAULT until a \
                 device of that name is back and re-opened"
            );
            self.set_usable(&name, false);
        }
        match ch.ifindex {
            Some(_) => self.reopen(k),
            None => {
                if let Some(rt) = self.ifaces.get_mut(k) {
                    rt.retry_at = None;
                }
            }
        }
    }

    /// Re-open attempts that are due.
    pub(super) fn retry_interfaces(&mut self) {
        let now = tokio::time::Instant::now();
        for k in 0..self.ifaces.len() {
            if self.ifaces[k].retry_at.is_some_and(|t| t <= now) {
                self.reopen(k);
            }
        }
    }

    /// Opens interface `k` again (its device was re-created): source addresses read again,
    /// XDP attached again (or the socket path, saying why), sockets opened and the group
    /// joined; then its instances rejoin the election. On failure, retried after [`RETRY`].
    pub(super) fn reopen(&mut self, k: usize) {
        let Some(name) = self.ifaces.get(k).map(|r| r.name.clone()) else {
            return;
        };
        let members: Vec<(usize, &InstancePlan)> = self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.plan.interface == name)
            .map(|(n, i)| (n, &i.plan))
            .collect();
        let mut sources = Vec::with_capacity(members.len());
        let mut missing = None;
        for (_, p) in &members {
            if !p.tx.src_from_interface {
                sources.push(p.tx.src);
                continue;
            }
            let v6 = p.rx.family == packet::Family::V6;
            match super::interface_address(&name, v6) {
                Some(a) => sources.push(a),
                None => {
                    missing = Some(if v6 {
                        "no usable IPv6 link-local address yet"
                    } else {
                        "no IPv4 address yet"
                    });
                    break;
                }
            }
        }
        let res = match missing {
            Some(why) => Err(why.to_owned()),
            None => iface::open(
                &name,
                &members,
                &sources,
                self.rx_mode,
                self.xdp_pass,
                false,
            )
            .map_err(|e| e.to_string()),
        };
        drop(members);
        let mut rt = std::mem::replace(&mut self.ifaces[k], IfaceRt::new(&name));
        let res = res.and_then(|o| self.attach_interface(&mut rt, o).map_err(|e| e.to_string()));
        match res {
            Ok(()) => {
                info!(
                    "{name}: re-opened on the new device (ifindex {}): sockets bound, group \
                     joined, receive path {}; its instances rejoin the election",
                    rt.ifindex.unwrap_or(0),
                    self.rx_paths
                        .iter()
                        .find(|p| p.interface == name)
                        .map_or("?".to_owned(), |p| format!("{:?}", p.path))
                );
                rt.retry_at = None;
                rt.last_error = None;
                self.ifaces[k] = rt;
                self.announce_sources(&name);
                self.set_usable(&name, true);
            }
            Err(e) => {
                if rt.last_error.as_deref() != Some(e.as_str()) {
                    error!("{name}: cannot re-open yet ({e}); retrying every {RETRY:?}");
                }
                rt.last_error = Some(e);
                rt.retry_at = Some(tokio::time::Instant::now() + RETRY);
                self.ifaces[k] = rt;
            }
        }
    }

    /// One gratuitous ARP / unsolicited NA for each unicast source address on `iface`.
    ///
    /// Choice (keepalived does not do this): a re-created device has a new MAC address, and
    /// unicast peers keep sending our adverts to the old one until their neighbour entry
    /// expires and is probed again (~5-8 s with Linux defaults; the kernel only announces a
    /// changed address itself with `arp_notify` / `ndisc_notify`). A Backup they cannot reach
    /// would take over meanwhile: both Master. Multicast adverts need no neighbour entry.
    fn announce_sources(&mut self, iface: &str) {
        let mut sources: Vec<std::net::IpAddr> = self
            .instances
            .iter()
            .filter(|i| i.plan.interface == iface && i.plan.tx.unicast)
            .map(|i| i.plan.tx.src)
            .collect();
        sources.sort_unstable();
        sources.dedup();
        for src in sources {
            let target = AnnounceTarget::new(
                &format!("{iface} source {src}"),
                vec![(iface.to_owned(), src)],
            );
            self.announce.once(&target);
        }
    }

    fn set_usable(&mut self, iface: &str, usable: bool) {
        for i in 0..self.instances.len() {
            if self.instances[i].plan.interface == iface {
                let now = self.now();
                self.handle(i, now, Event::InterfaceChanged { usable });
            }
        }
    }
}

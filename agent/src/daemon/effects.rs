//! Carrying out the core's actions: adverts (one non-blocking send each), virtual addresses (one
//! netlink request each on a kept-open socket), announcements, notify scripts and the cloud
//! takeover (queued to their own tasks).

use std::net::IpAddr;

use tracing::{error, info, warn};

use super::{
    announce,
    event_loop::{Daemon, InstanceRt},
};
use crate::{
    config::VirtualAddress,
    net::{self, VrrpSocket},
    packet::{self, Advert, TxMeta},
    state::Transition,
    vrrp::{self, Action, State},
};

/// Sends encoded adverts: the instance's raw VRRP socket (a recorder in tests).
pub(crate) trait AdvertTx {
    /// Sends `payload` from `src` to `dst` with TTL / hop limit `ttl`; must not block.
    fn send_from(
        &self,
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
    ) -> Result<(), net::NetError>;
}

impl AdvertTx for VrrpSocket {
    fn send_from(
        &self,
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
    ) -> Result<(), net::NetError> {
        VrrpSocket::send_from(self, payload, src, dst, ttl).map(|_| ())
    }
}

/// Adds and removes virtual addresses (netlink; a recorder in tests). Each call is one request
/// on a socket kept open, so it costs tens of microseconds on the loop.
pub(crate) trait AddressOps {
    /// Adds `v`; an address already present is `Err` with `EEXIST`.
    fn add(&mut self, v: &VirtualAddress) -> Result<(), net::NetError>;
    /// Removes `v`; an absent address is `Err` with `EADDRNOTAVAIL`.
    fn del(&mut self, v: &VirtualAddress) -> Result<(), net::NetError>;
}

/// [`AddressOps`] over one `NETLINK_ROUTE` socket, opened on first use and again after an
/// error that may have broken it.
#[derive(Default)]
pub(super) struct NetlinkAddresses {
    rtnl: Option<net::Rtnl>,
}

impl NetlinkAddresses {
    fn with<T>(
        &mut self,
        f: impl FnOnce(&net::Rtnl) -> Result<T, net::NetError>,
    ) -> Result<T, net::NetError> {
        let rtnl = match self.rtnl.take() {
            Some(r) => r,
            None => net::Rtnl::open()?,
        };
        let res = f(&rtnl);
        let keep = match &res {
            Ok(_) => true,
            // The kernel's answer to a well-formed request: the socket is fine.
            Err(e) => matches!(
                e.raw_os_error(),
                Some(libc::EEXIST | libc::EADDRNOTAVAIL | libc::ENODEV | libc::EINVAL)
            ),
        };
        if keep {
            self.rtnl = Some(rtnl);
        }
        res
    }
}

impl AddressOps for NetlinkAddresses {
    fn add(&mut self, v: &VirtualAddress) -> Result<(), net::NetError> {
        let ifx = net::ifindex(&v.dev)?;
        self.with(|r| r.add_address(ifx, v.address, v.prefix_len, v.label.as_deref()))
    }

    fn del(&mut self, v: &VirtualAddress) -> Result<(), net::NetError> {
        let ifx = net::ifindex(&v.dev)?;
        self.with(|r| r.del_address(ifx, v.address, v.prefix_len))
    }
}

impl Daemon {
    pub(super) fn act(&mut self, i: usize, action: Action) {
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        match action {
            Action::SendAdvert { priority } => send_advert(inst, priority),
            Action::ArmTimer { .. } | Action::CancelTimer => {}
            Action::StateChanged { from, to, reason } => {
                info!("{}: {from:?} -> {to:?} ({reason:?})", inst.plan.name);
                inst.last = Some(Transition {
                    from,
                    to,
                    reason: format!("{reason:?}"),
                    at: crate::logging::utc_now(),
                });
                if from == State::Master && to != State::Master {
                    // Announcements queued while Master are void from here on.
                    inst.announce.invalidate();
                    if let Some(g) = inst.garp.take() {
                        g.abort();
                    }
                }
                // Cloud takeover: start on becoming Master, cancel at once on leaving it.
                if let Some(c) = inst.cloud.as_mut() {
                    c.on_transition(from, to);
                }
            }
            Action::AddAddresses => self.add_addresses(i),
            Action::RemoveAddresses => {
                if let Some(g) = inst.garp.take() {
                    g.abort();
                }
                self.remove_addresses(i, false);
            }
            Action::SendGratuitous => {
                if let Some(g) = inst.garp.take() {
                    g.abort();
                }
                inst.garp = Some(announce::spawn_schedule(
                    inst.plan.garp,
                    inst.announce.clone(),
                    self.announce.clone(),
                ));
            }
            Action::Notify(state) => {
                let prio = inst.core.effective_priority();
                inst.notify.push(state, prio);
            }
        }
    }

    fn add_addresses(&mut self, i: usize) {
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        inst.added.resize(inst.plan.vips.len(), false);
        for (n, v) in inst.plan.vips.iter().enumerate() {
            match self.addrs.add(v) {
                Ok(()) => {
                    inst.added[n] = true;
                    info!(
                        "{}: added {}/{} on {}",
                        inst.plan.name, v.address, v.prefix_len, v.dev
                    );
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => error!(
                    "{}: cannot add {}/{} on {}: {e}",
                    inst.plan.name, v.address, v.prefix_len, v.dev
                ),
            }
        }
    }

    /// Removes the virtual addresses: on leaving Master only those this agent added; at start
    /// every configured one (a killed agent cannot clean up after itself; keepalived does the
    /// same at start).
    pub(super) fn remove_addresses(&mut self, i: usize, at_start: bool) {
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        for (n, v) in inst.plan.vips.iter().enumerate() {
            let ours = inst.added.get(n).copied().unwrap_or(false);
            if !at_start && !ours {
                continue;
            }
            if let Some(a) = inst.added.get_mut(n) {
                *a = false;
            }
            match self.addrs.del(v) {
                Ok(()) if at_start => warn!(
                    "{}: removed {}/{} from {}, left behind by an earlier run",
                    inst.plan.name, v.address, v.prefix_len, v.dev
                ),
                Ok(()) => info!(
                    "{}: removed {}/{} from {}",
                    inst.plan.name, v.address, v.prefix_len, v.dev
                ),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)
                    ) => {}
                Err(e) => error!(
                    "{}: cannot remove {}/{} from {}: {e}",
                    inst.plan.name, v.address, v.prefix_len, v.dev
                ),
            }
        }
    }
}

fn send_advert(inst: &mut InstanceRt, priority: u8) {
    let tx = &inst.plan.tx;
    let advert = match inst.plan.params.version {
        vrrp::Version::V2 => Advert::v2(
            inst.plan.params.vrid,
            priority,
            tx.addresses.clone(),
            tx.interval_v2_secs,
            tx.auth,
        ),
        vrrp::Version::V3 => Advert::v3(
            inst.plan.params.vrid,
            priority,
            tx.addresses.clone(),
            tx.interval_v3_cs,
        ),
    };
    for &dst in &tx.dsts {
        let mut meta = TxMeta::new(tx.src, dst);
        meta.v3_ipv4_checksum = tx.v3_ipv4_checksum;
        let bytes = match packet::encode_vrrp(&advert, &meta) {
            Ok(b) => b,
            Err(e) => {
                inst.send_errors += 1;
                error!("{}: cannot encode advert: {e}", inst.plan.name);
                continue;
            }
        };
        // keepalived's `unicast_ttl` applies to unicast adverts; multicast ones always carry 255.
        let ttl = if tx.unicast {
            tx.unicast_ttl
        } else {
            packet::VRRP_TTL
        };
        if let Err(e) = inst.sock.send_from(&bytes, tx.src, dst, ttl) {
            inst.send_errors += 1;
            if inst.send_errors < 10 || inst.send_errors.is_power_of_two() {
                warn!(
                    "{}: advert to {dst} not sent: {e} ({} so far)",
                    inst.plan.name, inst.send_errors
                );
            }
        }
    }
}

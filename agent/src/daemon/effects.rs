//! Carrying out the core's actions: adverts (one non-blocking send each), virtual addresses (one
//! netlink request each on a kept-open socket), announcements, notify scripts and the cloud
//! takeover (queued to their own tasks).

use tracing::{error, warn};

use super::{
    announce,
    event_loop::{Daemon, InstanceRt},
};
use crate::{
    packet::{self, Advert, TxMeta},
    state::Transition,
    vrrp::{self, Action, State},
};

impl Daemon {
    /// The instances and their states in one line, for systemd's `STATUS=`.
    pub(super) fn status_summary(&self) -> String {
        super::service::summary(
            self.instances
                .iter()
                .map(|i| (i.plan.name.as_str(), i.core.state())),
        )
    }

    pub(super) fn act(&mut self, i: usize, action: Action) {
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        match action {
            Action::SendAdvert { priority } => send_advert(inst, priority),
            Action::ArmTimer { .. } | Action::CancelTimer => {}
            Action::StateChanged { from, to, reason } => {
                // A peer can make an instance flap: rate limited (status has the counts).
                super::loglimit::log(
                    tracing::Level::INFO,
                    &inst.plan.name,
                    None,
                    super::loglimit::TRANSITION,
                    || format!("{}: {from:?} -> {to:?} ({reason:?})", inst.plan.name),
                );
                *inst
                    .transitions
                    .entry(reason.name().to_owned())
                    .or_default() += 1;
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
                // systemd's status line (rate limited by `service`).
                if super::service::enabled() {
                    super::service::status(self.status_summary());
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

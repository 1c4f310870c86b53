//! Virtual addresses: added on becoming Master, removed on leaving it, and, when netlink
//! refuses a change, retried with backoff for as long as the role still wants it.
//!
//! A Master that advertises without holding its address is a black hole: peers stay Backup
//! while nobody answers the VIP. So a failed add (or remove) is not logged once and forgotten:
//! it is retried after [`FIRST_RETRY`], doubling up to [`MAX_RETRY`], while the instance is
//! still Master (or, for a remove, still not Master); every failure is counted per address, the
//! first of a streak is logged as an error, later ones through the rate limiter, and every
//! [`LOUD_EVERY`]th again as an error saying how long it has lasted. `xvrrp status` shows per
//! address what the role wants, what is really on the interface (read back from the kernel at
//! the time of the query) and the failures.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn, Level};

use super::{event_loop::Daemon, loglimit};
use crate::{config::VirtualAddress, net, state::VipState, vrrp::State};

/// First retry after a refused change.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest gap between retries.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long one netlink request may take before it counts as failed (and the socket is
/// opened again): the loop must never wait on netlink for long.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_millis(250);
/// Every this many failures in a row, an error line (whatever the rate limiter says).
const LOUD_EVERY: u64 = 10;

/// Kind of the rate-limited "still failing" lines.
const ADDRESS_RETRY: loglimit::Kind = loglimit::Kind::new("address change retried", 3);

/// Kind of the "added" / "removed" lines: one per transition, which a peer can provoke.
const ADDRESS_CHANGED: loglimit::Kind = loglimit::Kind::new("address added or removed", 20);

/// A change to one virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Remove,
}

/// What the loop keeps per virtual address of an instance.
#[derive(Debug, Default)]
pub(super) struct VipRt {
    /// This agent added it: only these are removed on leaving Master (an address that was
    /// already there, the owner's real address or one an operator added, is left alone, as
    /// keepalived does).
    pub(super) added: bool,
    /// A refused change being retried, and when.
    pub(super) pending: Option<(Op, Instant)>,
    /// Gap before the next retry.
    backoff: Duration,
    /// Failures in the current streak.
    streak: u64,
    /// Failures since start.
    pub(super) failures: u64,
    /// The last failure's error.
    pub(super) last_error: Option<String>,
}

fn show(v: &VirtualAddress) -> String {
    format!("{}/{} on {}", v.address, v.prefix_len, v.dev)
}

impl Daemon {
    /// Becoming Master: adds every virtual address.
    pub(super) fn add_addresses(&mut self, i: usize) {
        let n = self.instances.get(i).map_or(0, |x| x.plan.vips.len());
        for k in 0..n {
            self.change_address(i, k, Op::Add, false);
        }
    }

    /// Removes the virtual addresses: on leaving Master only those this agent added (a pending
    /// add is cancelled); at start every configured one (a killed agent cannot clean up after
    /// itself; keepalived does the same at start).
    pub(super) fn remove_addresses(&mut self, i: usize, at_start: bool) {
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        let n = inst.plan.vips.len();
        inst.vips.resize_with(n, VipRt::default);
        for k in 0..n {
            let Some(vip) = self.instances[i].vips.get_mut(k) else {
                continue;
            };
            if matches!(vip.pending, Some((Op::Add, _))) {
                vip.pending = None;
                vip.streak = 0;
            }
            if at_start || vip.added || matches!(vip.pending, Some((Op::Remove, _))) {
                self.change_address(i, k, Op::Remove, at_start);
            }
        }
    }

    /// The earliest retry of a refused address change, if any.
    pub(super) fn next_address_retry(&self) -> Option<Instant> {
        self.instances
            .iter()
            .flat_map(|i| i.vips.iter())
            .filter_map(|v| v.pending.map(|(_, at)| at))
            .min()
    }

    /// Retries that are due, if the role still wants them: an add while Master, a remove while
    /// not Master.
    pub(super) fn retry_addresses(&mut self) {
        let now = Instant::now();
        for i in 0..self.instances.len() {
            let master = self.instances[i].core.state() == State::Master;
            for k in 0..self.instances[i].vips.len() {
                let Some((op, at)) = self.instances[i].vips[k].pending else {
                    continue;
                };
                if at > now {
                    continue;
                }
                let wanted = match op {
                    Op::Add => master,
                    Op::Remove => !master,
                };
                if wanted {
                    self.change_address(i, k, op, false);
                } else {
                    self.instances[i].vips[k].pending = None;
                }
            }
        }
    }

    /// One netlink request for address `k` of instance `i`; on a refusal, a retry is scheduled.
    fn change_address(&mut self, i: usize, k: usize, op: Op, at_start: bool) {
        let Some(inst) = self.instances.get_mut(i) else {
            return;
        };
        inst.vips.resize_with(inst.plan.vips.len(), VipRt::default);
        let (Some(v), Some(vip)) = (inst.plan.vips.get(k), inst.vips.get_mut(k)) else {
            return;
        };
        let name = &inst.plan.name;
        let res = match op {
            Op::Add => self.addrs.add(v),
            Op::Remove => self.addrs.del(v),
        };
        let errno = res.as_ref().err().and_then(net::NetError::raw_os_error);
        let outcome = match (op, res) {
            (Op::Add, Ok(())) => {
                vip.added = true;
                loglimit::log(Level::INFO, name, None, ADDRESS_CHANGED, || {
                    format!("{name}: added {}", show(v))
                });
                Ok(())
            }
            // Already there (the owner's own address, or an operator's): not ours to remove.
            (Op::Add, Err(_)) if errno == Some(libc::EEXIST) => Ok(()),
            (Op::Remove, Ok(())) => {
                vip.added = false;
                if at_start {
                    warn!("{name}: removed {}, left behind by an earlier run", show(v));
                } else {
                    loglimit::log(Level::INFO, name, None, ADDRESS_CHANGED, || {
                        format!("{name}: removed {}", show(v))
                    });
                }
                Ok(())
            }
            // Not there, or its device is gone (and the address with it).
            (Op::Remove, Err(_)) if matches!(errno, Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {
                vip.added = false;
                Ok(())
            }
            (_, Err(e)) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                if vip.streak > 0 {
                    info!(
                        "{name}: {} {} after {} failed attempt(s)",
                        if op == Op::Add { "added" } else { "removed" },
                        show(v),
                        vip.streak
                    );
                }
                vip.pending = None;
                vip.streak = 0;
                vip.backoff = Duration::ZERO;
            }
            Err(e) => {
                vip.failures += 1;
                vip.streak += 1;
                vip.backoff = if vip.backoff.is_zero() {
                    FIRST_RETRY
                } else {
                    (vip.backoff * 2).min(MAX_RETRY)
                };
                vip.pending = Some((op, Instant::now() + vip.backoff));
                let verb = if op == Op::Add { "add" } else { "remove" };
                let what = show(v);
                if vip.streak == 1 || vip.streak % LOUD_EVERY == 0 {
                    error!(
                        "{name}: cannot {verb} {what}: {e} ({} attempt(s) failed; retrying \
                         every {:?} at most while the role wants it)",
                        vip.streak, MAX_RETRY
                    );
                } else {
                    let (streak, backoff) = (vip.streak, vip.backoff);
                    loglimit::log(Level::WARN, name, None, ADDRESS_RETRY, || {
                        format!(
                            "{name}: cannot {verb} {what} yet: {e} ({streak} attempts; next in \
                             {backoff:?})"
                        )
                    });
                }
                vip.last_error = Some(e);
            }
        }
    }

    /// Per virtual address of instance `i`: what the role wants and what the interface has,
    /// read back from the kernel (`present` is `None` when that cannot be read). `seen` caches
    /// one address dump per device for the whole status answer (255 instances on one interface
    /// cost one dump, not 255).
    pub(super) fn address_states(&self, i: usize, seen: &mut AddressDumps) -> Vec<VipState> {
        let Some(inst) = self.instances.get(i) else {
            return Vec::new();
        };
        let master = inst.core.state() == State::Master;
        let mut out = Vec::with_capacity(inst.plan.vips.len());
        for (k, v) in inst.plan.vips.iter().enumerate() {
            let present = seen.of(&v.dev).map(|addrs| addrs.contains(&v.address));
            let rt = inst.vips.get(k);
            out.push(VipState {
                address: format!("{}/{}", v.address, v.prefix_len),
                dev: v.dev.clone(),
                wanted: master,
                present,
                ours: rt.is_some_and(|r| r.added),
                failures: rt.map_or(0, |r| r.failures),
                retrying: rt.and_then(|r| r.pending).map(|(op, _)| match op {
                    Op::Add => "add".to_owned(),
                    Op::Remove => "remove".to_owned(),
                }),
                last_error: rt.and_then(|r| r.last_error.clone()),
            });
        }
        out
    }
}

/// The addresses of each device, dumped once per status answer (see
/// [`Daemon::address_states`]).
#[derive(Default)]
pub(super) struct AddressDumps {
    rtnl: Option<net::Rtnl>,
    devices: Vec<(String, Option<Vec<std::net::IpAddr>>)>,
}

impl AddressDumps {
    fn of(&mut self, dev: &str) -> Option<&[std::net::IpAddr]> {
        let k = match self.devices.iter().position(|(d, _)| d == dev) {
            Some(k) => k,
            None => {
                if self.rtnl.is_none() {
                    self.rtnl = net::Rtnl::open_with_timeout(REQUEST_TIMEOUT).ok();
                }
                let addrs = match (&self.rtnl, net::ifindex(dev)) {
                    (Some(r), Ok(idx)) => r
                        .list_addresses(idx)
                        .ok()
                        .map(|l| l.into_iter().map(|x| x.addr).collect()),
                    _ => None,
                };
                self.devices.push((dev.to_owned(), addrs));
                self.devices.len() - 1
            }
        };
        self.devices.get(k).and_then(|(_, a)| a.as_deref())
    }
}

#[cfg(test)]
mod tests {
    //! The retry rules with an address backend that refuses on demand; time is tokio's paused
    //! clock. (The lab test `lab::addresses` shows the same with a real refusal.)
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::{cell::RefCell, net::IpAddr, path::Path, rc::Rc};

    use super::*;
    use crate::{
        daemon::{announce::Announcer, edges::AddressOps, edges::AdvertTx, plan},
        vrrp::Event,
    };

    #[derive(Default)]
    struct Backend {
        refuse_adds: u32,
        refuse_dels: u32,
        adds: u32,
        dels: u32,
    }

    struct Flaky(Rc<RefCell<Backend>>);

    fn refused() -> net::NetError {
        net::NetError::Sys {
            syscall: "RTM_NEWADDR",
            target: "test".to_owned(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        }
    }

    impl AddressOps for Flaky {
        fn add(&mut self, _: &VirtualAddress) -> Result<(), net::NetError> {
            let mut b = self.0.borrow_mut();
            b.adds += 1;
            if b.refuse_adds > 0 {
                b.refuse_adds -= 1;
                return Err(refused());
            }
            Ok(())
        }
        fn del(&mut self, _: &VirtualAddress) -> Result<(), net::NetError> {
            let mut b = self.0.borrow_mut();
            b.dels += 1;
            if b.refuse_dels > 0 {
                b.refuse_dels -= 1;
                return Err(refused());
            }
            Ok(())
        }
    }

    struct Mute;

    impl AdvertTx for Mute {
        fn send_from(&self, _: &[u8], _: IpAddr, _: IpAddr, _: u8) -> Result<(), net::NetError> {
            Ok(())
        }
    }

    fn daemon(backend: Rc<RefCell<Backend>>, announcer: &Announcer) -> Daemon {
        let text = "vrrp_instance VI_1 {\n interface eth1\n state BACKUP\n virtual_router_id 7\n \
                    priority 100\n advert_int 1\n virtual_ipaddress {\n  10.89.0.7/24\n }\n}\n";
        let cfg = crate::config::parse_str("t.conf", text, Path::new("/"))
            .unwrap()
            .config;
        let lookup = |_: &str, _: bool| Some(IpAddr::from([10, 89, 0, 1]));
        let plans = plan::plan(&cfg, &lookup).unwrap();
        let senders: Vec<Rc<dyn AdvertTx>> = vec![Rc::new(Mute)];
        Daemon::new(plans, senders, Box::new(Flaky(backend)), announcer.queue()).unwrap()
    }

    /// Drives the only instance to Master (its Master_Down_Timer expires).
    fn to_master(d: &mut Daemon) {
        let at = d.instances[0].core.deadline().unwrap();
        d.handle(0, at, Event::TimerFired);
        assert_eq!(d.instances[0].core.state(), State::Master);
    }

    /// A higher-priority advert: back to Backup.
    fn to_backup(d: &mut Daemon) {
        let now = d.now();
        d.handle(
            0,
            now,
            Event::AdvertReceived {
                src: IpAddr::from([10, 89, 0, 2]),
                priority: 200,
                max_advert_interval: Duration::from_secs(1),
            },
        );
        assert_eq!(d.instances[0].core.state(), State::Backup);
    }

    /// Runs `f` on a current-thread runtime with a paused clock.
    fn paused(f: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f);
    }

    /// Advances the clock to the next retry and runs it.
    async fn next_retry(d: &mut Daemon) -> Duration {
        let at = d.next_address_retry().expect("a retry is scheduled");
        let wait = at - Instant::now();
        tokio::time::advance(wait).await;
        d.retry_addresses();
        wait
    }

    #[test]
    fn a_refused_add_is_retried_with_backoff_while_master_and_shown_in_status() {
        let b = Rc::new(RefCell::new(Backend {
            refuse_adds: 3,
            ..Backend::default()
        }));
        let mut announcer = Announcer::spawn_with(Box::new(|_, _| Ok(()))).unwrap();
        paused(async {
            let mut d = daemon(b.clone(), &announcer);
            d.start();
            b.borrow_mut().dels = 0; // the clean-up at start
            to_master(&mut d);
            let s = &d.address_states(0, &mut AddressDumps::default())[0];
            assert!(s.wanted);
            assert_eq!(s.failures, 1);
            assert_eq!(s.retrying.as_deref(), Some("add"));
            assert!(s
                .last_error
                .as_deref()
                .unwrap()
                .contains("Operation not permitted"));
            let gaps = [
                next_retry(&mut d).await,
                next_retry(&mut d).await,
                next_retry(&mut d).await,
            ];
            assert_eq!(gaps, [FIRST_RETRY, FIRST_RETRY * 2, FIRST_RETRY * 4]);
            assert_eq!(b.borrow().adds, 4);
            assert_eq!(d.next_address_retry(), None, "added at the 4th attempt");
            let s = &d.address_states(0, &mut AddressDumps::default())[0];
            assert!(s.ours);
            assert_eq!((s.failures, s.retrying.clone()), (3, None));
        });
        announcer.stop();
    }

    #[test]
    fn a_pending_add_is_dropped_when_the_role_no_longer_wants_it() {
        let b = Rc::new(RefCell::new(Backend {
            refuse_adds: u32::MAX,
            ..Backend::default()
        }));
        let mut announcer = Announcer::spawn_with(Box::new(|_, _| Ok(()))).unwrap();
        paused(async {
            let mut d = daemon(b.clone(), &announcer);
            d.start();
            to_master(&mut d);
            next_retry(&mut d).await;
            let adds = b.borrow().adds;
            to_backup(&mut d);
            assert_eq!(
                d.next_address_retry(),
                None,
                "leaving Master cancels the add"
            );
            tokio::time::advance(MAX_RETRY * 2).await;
            d.retry_addresses();
            assert_eq!(b.borrow().adds, adds, "no add after leaving Master");
            assert!(!d.address_states(0, &mut AddressDumps::default())[0].wanted);
        });
        announcer.stop();
    }

    #[test]
    fn a_refused_remove_is_retried_until_done_and_the_backoff_is_capped() {
        let b = Rc::new(RefCell::new(Backend::default()));
        let mut announcer = Announcer::spawn_with(Box::new(|_, _| Ok(()))).unwrap();
        paused(async {
            let mut d = daemon(b.clone(), &announcer);
            d.start();
            to_master(&mut d);
            assert!(d.address_states(0, &mut AddressDumps::default())[0].ours);
            b.borrow_mut().refuse_dels = 8;
            to_backup(&mut d);
            assert_eq!(
                d.address_states(0, &mut AddressDumps::default())[0]
                    .retrying
                    .as_deref(),
                Some("remove")
            );
            let mut gaps = Vec::new();
            while d.next_address_retry().is_some() {
                gaps.push(next_retry(&mut d).await);
            }
            assert_eq!(gaps.len(), 8);
            assert_eq!(gaps.iter().copied().max(), Some(MAX_RETRY));
            let s = &d.address_states(0, &mut AddressDumps::default())[0];
            assert!(!s.ours);
            assert_eq!(s.failures, 8);
        });
        announcer.stop();
    }
}

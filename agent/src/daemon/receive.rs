//! Receiving adverts: one task per XDP ring buffer or raw socket, each handing accepted adverts
//! to the event loop on one bounded queue, a bounded batch per wake-up.

use std::{cell::RefCell, net::IpAddr, os::fd::AsRawFd, rc::Rc, time::Duration};

use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::Level;

use super::{counters::CounterTable, loglimit, options::StartError};
use crate::{
    dataplane::XdpDataplane,
    net::{self, offload::TagsVisible, Recv, VrrpSocket},
    packet::{self, Counter, RxPolicy},
};

/// An accepted advert handed from a receiver to the event loop.
#[derive(Debug)]
pub(super) struct RxAdvert {
    pub(super) instance: usize,
    pub(super) src: IpAddr,
    pub(super) priority: u8,
    pub(super) interval: Duration,
}

/// The instances a receiver serves, replaced in place by a reload (see `daemon::reload`).
#[derive(Debug, Default)]
pub(super) struct Members {
    /// (instance index, its receive checks)
    list: Vec<(usize, RxPolicy)>,
    /// The checks alone, in the same order (what the codec takes).
    policies: Vec<RxPolicy>,
}

impl Members {
    pub(super) fn new(list: Vec<(usize, RxPolicy)>) -> Self {
        let policies = list.iter().map(|(_, p)| p.clone()).collect();
        Self { list, policies }
    }

    pub(super) fn push(&mut self, index: usize, policy: RxPolicy) {
        self.policies.push(policy.clone());
        self.list.push((index, policy));
    }
}

/// [`Members`] shared between a receiver task and the loop.
pub(super) type SharedMembers = Rc<RefCell<Members>>;

/// The instances an XDP ring reader serves: (instance index, VRID, family).
pub(super) type XdpMembers = Rc<RefCell<Vec<(usize, u8, packet::Family)>>>;

/// A socket shared by the instances on one interface, family and mode.
pub(super) struct Receiver {
    pub(super) sock: Rc<VrrpSocket>,
    pub(super) interface: String,
    pub(super) members: SharedMembers,
    pub(super) multicast: bool,
}

/// Accepted adverts queued between the receivers and the loop.
pub(super) const ADVERT_QUEUE: usize = 1024;

/// The XDP filter of one interface, shared by its event reader and the control socket.
pub(super) struct XdpRx {
    pub(super) iface: String,
    pub(super) dp: Rc<RefCell<XdpDataplane>>,
    /// VLAN receive offload kept off while XDP is attached (restored when dropped).
    pub(super) _tags: Option<TagsVisible>,
}

/// The ring buffer of an [`XdpDataplane`], registered with the reactor.
struct SharedRing(Rc<RefCell<XdpDataplane>>);

impl AsRawFd for SharedRing {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.borrow().as_fd().as_raw_fd()
    }
}

/// Most events taken from the ring per wake-up, so the loop stays responsive under a flood of
/// valid adverts.
const XDP_BATCH: usize = 256;

pub(super) fn spawn_xdp_reader(
    x: &XdpRx,
    members: XdpMembers,
    counters: Rc<RefCell<CounterTable>>,
    tx: mpsc::Sender<RxAdvert>,
) -> Result<JoinHandle<()>, StartError> {
    let iface = x.iface.clone();
    // SAFETY: `SharedRing` owns an `Rc` of the dataplane, so the ring buffer's fd stays open and
    // the same for as long as the `AsyncFd` exists.
    let fd =
        unsafe { AsyncFd::register_with_interest(SharedRing(x.dp.clone()), Interest::READABLE) }
            .map_err(|e| {
                StartError::Rx(format!(
                    "{iface}: watching the XDP ring buffer: {}",
                    std::io::Error::from(e)
                ))
            })?;
    let dp = x.dp.clone();
    Ok(tokio::task::spawn_local(async move {
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            let events = dp.borrow_mut().drain_events(XDP_BATCH);
            if events.len() < XDP_BATCH {
                guard.clear_ready();
            }
            for e in events {
                let fam = packet::Family::of(&e.src);
                let found = members
                    .borrow()
                    .iter()
                    .find(|(_, v, f)| *v == e.vrid && *f == fam)
                    .map(|m| m.0);
                let Some(instance) = found else {
                    continue;
                };
                let interval_cs = u32::from(e.interval_cs);
                counters
                    .borrow_mut()
                    .note(&iface, e.vrid, e.src, e.priority, interval_cs);
                let msg = RxAdvert {
                    instance,
                    src: e.src,
                    priority: e.priority,
                    interval: Duration::from_millis(u64::from(interval_cs) * 10),
                };
                if tx.try_send(msg).is_err() {
                    counters.borrow_mut().queue_full(&iface);
                    loglimit::log(Level::DEBUG, &iface, None, loglimit::QUEUE_FULL, || {
                        format!("{iface}: event queue full, advert dropped")
                    });
                }
            }
        }
    }))
}

/// A socket shared with the instances that send on it, registered with the reactor.
struct SharedSock(Rc<VrrpSocket>);

impl AsRawFd for SharedSock {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

pub(super) fn spawn_receiver(
    r: Receiver,
    counters: Rc<RefCell<CounterTable>>,
    tx: mpsc::Sender<RxAdvert>,
) -> Result<JoinHandle<()>, StartError> {
    // SAFETY: `SharedSock` owns an `Rc` of the socket, so the fd stays open and the same for as
    // long as the `AsyncFd` exists.
    let fd =
        unsafe { AsyncFd::register_with_interest(SharedSock(r.sock.clone()), Interest::READABLE) }
            .map_err(|e| StartError::Socket {
                instance: r.interface.clone(),
                source: net::NetError::Sys {
                    syscall: "epoll_ctl(AsyncFd)",
                    target: r.interface.clone(),
                    source: e.into(),
                },
            })?;
    Ok(tokio::task::spawn_local(async move {
        let mut errors: u64 = 0;
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            // At most SOCKET_BATCH packets per wake-up, then yield: a flood of junk must never
            // keep the (single-threaded) loop from firing timers and sending adverts.
            let mut drained = false;
            // The member list a reload may replace; borrowed for this batch only.
            {
                let members = r.members.borrow();
                let policies = &members.policies;
                for _ in 0..SOCKET_BATCH {
                    match r.sock.recv() {
                        // An IPv6 group packet on a bound unicast socket: consumed, counted, and
                        // counted against this batch like any other packet.
                        Ok(Recv::OtherDestination { .. }) => {
                            counters.borrow_mut().other_destination(&r.interface);
                        }
                        Ok(Recv::Packet(pkt)) => {
                            if r.multicast && !pkt.dst.is_multicast() {
                                // A unicast advert for a unicast instance; that instance's own
                                // (bound) socket receives it.
                                continue;
                            }
                            let meta = packet::IpMeta {
                                src: pkt.src,
                                dst: pkt.dst,
                                ttl_or_hop_limit: pkt.ttl,
                            };
                            if packet::message_owner(&pkt.payload, pkt.dst, policies)
                                != packet::Owner::Ours
                            {
                                counters.borrow_mut().not_ours(&r.interface);
                                continue;
                            }
                            let vrid = pkt.payload.get(1).copied().unwrap_or(0);
                            let known = policies.iter().any(|p| match &p.source {
                                packet::SourcePolicy::Unicast { peers } => {
                                    peers.iter().any(|x| x.addr == pkt.src)
                                }
                                packet::SourcePolicy::Multicast { .. } => false,
                            });
                            match packet::receive_vrrp(&pkt.payload, &meta, policies) {
                                Ok(rx) => {
                                    let a = &rx.advert;
                                    let Some(&(instance, _)) =
                                        members.list.iter().find(|(_, p)| p.vrid == a.vrid)
                                    else {
                                        continue;
                                    };
                                    let interval = Duration::from_micros(a.interval_us());
                                    counters.borrow_mut().accept(
                                        &r.interface,
                                        a.vrid,
                                        pkt.src,
                                        a.priority,
                                        (a.interval_us() / 10_000) as u32,
                                    );
                                    let msg = RxAdvert {
                                        instance,
                                        src: pkt.src,
                                        priority: a.priority,
                                        interval,
                                    };
                                    if tx.try_send(msg).is_err() {
                                        counters.borrow_mut().queue_full(&r.interface);
                                        loglimit::log(
                                            Level::DEBUG,
                                            &r.interface,
                                            None,
                                            loglimit::QUEUE_FULL,
                                            || {
                                                format!(
                                                    "{}: event queue full, advert dropped",
                                                    r.interface
                                                )
                                            },
                                        );
                                    }
                                }
                                Err(e) => {
                                    let c = e.counter();
                                    if c != Counter::NotVrrp {
                                        counters.borrow_mut().drop_packet(
                                            &r.interface,
                                            vrid,
                                            pkt.src,
                                            known,
                                            c,
                                        );
                                        loglimit::log(
                                            Level::DEBUG,
                                            &r.interface,
                                            Some(pkt.src),
                                            loglimit::Kind::new(c.as_str(), 5),
                                            || {
                                                format!(
                                                    "{}: dropped advert from {}: {e}",
                                                    r.interface, pkt.src
                                                )
                                            },
                                        );
                                    }
                                }
                            }
                        }
                        Err(e) if e.is_would_block() => {
                            drained = true;
                            break;
                        }
                        Err(e) => {
                            // An oversized or malformed datagram (or a transient socket error):
                            // count it, keep reading what is queued behind it.
                            let unspecified = IpAddr::from([0u8, 0, 0, 0]);
                            counters.borrow_mut().drop_packet(
                                &r.interface,
                                0,
                                unspecified,
                                false,
                                Counter::PacketLenErr,
                            );
                            errors += 1;
                            loglimit::log(
                                Level::WARN,
                                &r.interface,
                                None,
                                loglimit::RECEIVE_ERROR,
                                || format!("{}: receive error ({errors} so far): {e}", r.interface),
                            );
                        }
                    }
                }
            }
            if drained {
                guard.clear_ready();
            } else {
                drop(guard);
                tokio::task::yield_now().await;
            }
        }
    }))
}

/// Most packets the raw-socket receiver handles per wake-up before yielding to the loop.
const SOCKET_BATCH: usize = 64;

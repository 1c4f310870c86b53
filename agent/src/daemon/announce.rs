//! Gratuitous ARP / unsolicited NA off the event loop.
//!
//! keepalived's schedule (a burst of `garp_master_repeat` on becoming Master, another after
//! `garp_master_delay`, refreshes, and a burst per lower-priority advert) is timed by a task per
//! instance on the event loop ([`spawn_schedule`]); the packets themselves are sent by one
//! worker thread ([`Announcer`]), which keeps its sockets open between packets.
//!
//! Why a thread: sending is a system call per packet and per address, and it is not always
//! cheap (a first version opened and closed an `AF_PACKET` socket per packet, ~15 ms each for the
//! RCU grace period of the close; 25 Masters x 5 GARPs silenced the loop for ~1.9 s and every
//! peer's Backups took over). Whatever the kernel makes them cost, announcements must never
//! delay an advert, so the loop only queues a job (a channel send) and moves on.
//!
//! A job queued by a Master that has since left Master must not be sent (it would pull traffic
//! back to a node that no longer holds the address): each instance has a generation, bumped on
//! every exit from Master, and a job carries the generation it was queued under; the worker
//! drops jobs of an older generation.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
};

use tokio::task::JoinHandle as TaskHandle;
use tracing::{debug, warn};

use super::plan::GarpPlan;
use crate::net::{self, NetError};

/// What the worker announces for one instance: its name (for logs), its addresses and the
/// generation counter shared with the event loop.
#[derive(Debug)]
pub(crate) struct AnnounceTarget {
    name: String,
    addrs: Vec<(String, IpAddr)>,
    generation: AtomicU64,
}

impl AnnounceTarget {
    /// The target of an instance: every virtual address on its device.
    pub(crate) fn new(name: &str, addrs: Vec<(String, IpAddr)>) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            addrs,
            generation: AtomicU64::new(0),
        })
    }

    /// The instance left Master: jobs queued before now are void.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Sends one announcement for an address on a device.
pub(crate) type SendFn = Box<dyn FnMut(&str, IpAddr) -> Result<(), NetError> + Send>;

struct Job {
    target: Arc<AnnounceTarget>,
    generation: u64,
}

enum Msg {
    Job(Job),
    /// Finish what was queued before this, then end (queue handles may outlive the worker).
    Stop,
}

/// Handle to the announcer thread. Dropping it (or [`Announcer::stop`]) ends the thread once
/// the jobs queued so far are done, even while queue handles are still alive.
#[derive(Debug)]
pub(crate) struct Announcer {
    tx: Option<mpsc::SyncSender<Msg>>,
    stopping: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// Jobs queued at most. Each lower-priority advert a Master hears queues a burst (keepalived's
/// behaviour), so a peer flooding them could otherwise grow the queue without bound; past this,
/// jobs are dropped and counted. The queue's slots are allocated at start (24 bytes each); 1024
/// is twice the most instances a node can have (255 VRIDs per family) becoming Master at once.
pub(crate) const QUEUE_BOUND: usize = 1024;

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({}, gen {})", self.target.name, self.generation)
    }
}

impl Announcer {
    /// Starts the worker with the real network sender (one [`net::Announcer`]).
    pub(crate) fn spawn() -> std::io::Result<Self> {
        let mut a = net::Announcer::new();
        Self::spawn_with(Box::new(move |dev, addr| match addr {
            IpAddr::V4(ip) => a.garp(dev, ip),
            IpAddr::V6(ip) => a.na(dev, ip),
        }))
    }

    /// Starts the worker with `send` (tests pass a recording or deliberately slow one).
    pub(crate) fn spawn_with(mut send: SendFn) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_BOUND);
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("xvrrp-announce".into())
            .spawn(move || {
                let mut errors: u64 = 0;
                while let Ok(Msg::Job(job)) = rx.recv() {
                    if stop_flag.load(Ordering::Acquire) {
                        return;
                    }
                    if job.generation != job.target.current() {
                        continue; // queued while Master, and the instance has left Master since
                    }
                    for (dev, addr) in &job.target.addrs {
                        if let Err(e) = send(dev, *addr) {
                            errors += 1;
                            if errors < 10 || errors.is_power_of_two() {
                                warn!(
                                    "{}: announcing {addr} on {dev}: {e} ({errors} failures so far)",
                                    job.target.name
                                );
                            } else {
                                debug!("{}: announcing {addr} on {dev}: {e}", job.target.name);
                            }
                        }
                    }
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            stopping,
            dropped: Arc::new(AtomicU64::new(0)),
            thread: Some(thread),
        })
    }

    /// A cheap, cloneable way to queue jobs.
    pub(crate) fn queue(&self) -> AnnounceQueue {
        AnnounceQueue {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Stops the worker: the job being sent is finished, the queued ones are dropped (at
    /// shutdown every instance has left Master, so they are void anyway).
    pub(crate) fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Msg::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Queues announcement jobs for the worker. Never blocks.
#[derive(Clone, Debug)]
pub(crate) struct AnnounceQueue {
    tx: Option<mpsc::SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
}

impl AnnounceQueue {
    /// Queues one announcement of every address of `target`, valid while its generation is
    /// `generation`.
    fn push(&self, target: &Arc<AnnounceTarget>, generation: u64) {
        if let Some(tx) = &self.tx {
            let job = Msg::Job(Job {
                target: target.clone(),
                generation,
            });
            if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(job) {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    warn!("announcement queue full ({QUEUE_BOUND} jobs): {n} announcements dropped so far");
                }
            }
        }
    }

    /// Queues one announcement of every address of `target` now (no schedule).
    pub(crate) fn once(&self, target: &Arc<AnnounceTarget>) {
        self.push(target, target.current());
    }

    /// Announcements dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// keepalived's GARP schedule on becoming Master (or on a lower-priority advert): a burst of
/// `repeat` at once, another burst `delay` later, then `refresh_repeat` every `refresh` while
/// Master. The task only sleeps and queues jobs; abort it on leaving Master (and call
/// [`AnnounceTarget::invalidate`], so that what it already queued is dropped too).
pub(crate) fn spawn_schedule(
    garp: GarpPlan,
    target: Arc<AnnounceTarget>,
    queue: AnnounceQueue,
) -> TaskHandle<()> {
    let generation = target.current();
    tokio::task::spawn_local(async move {
        let gap = garp.arp_gap.max(garp.na_gap);
        let burst = |count: u32| {
            let (queue, target) = (&queue, &target);
            async move {
                for n in 0..count.max(1) {
                    queue.push(target, generation);
                    if n + 1 < count && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                }
            }
        };
        burst(garp.repeat).await;
        if !garp.delay.is_zero() {
            tokio::time::sleep(garp.delay).await;
            burst(garp.repeat).await;
        }
        if !garp.refresh.is_zero() {
            loop {
                tokio::time::sleep(garp.refresh).await;
                burst(garp.refresh_repeat).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::{sync::Mutex, time::Duration};

    fn wait(mut cond: impl FnMut() -> bool) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    type Seen = Arc<Mutex<Vec<(String, IpAddr)>>>;

    fn recorder() -> (SendFn, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Box::new(move |dev: &str, a| {
                s.lock().unwrap().push((dev.to_owned(), a));
                Ok(())
            }),
            seen,
        )
    }

    #[test]
    fn jobs_of_a_left_master_are_dropped() {
        let (send, seen) = recorder();
        let mut w = Announcer::spawn_with(send).unwrap();
        let q = w.queue();
        let t = AnnounceTarget::new("VI_1", vec![("eth1".into(), "10.0.0.1".parse().unwrap())]);
        let stale = t.current();
        t.invalidate(); // the instance left Master
        q.push(&t, stale); // queued before that, handled after: dropped
        q.push(&t, t.current());
        let sent = wait(|| seen.lock().unwrap().len() == 1);
        w.stop();
        assert!(sent);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn schedule_queues_bursts_without_sending_on_the_loop() {
        let (send, seen) = recorder();
        let mut w = Announcer::spawn_with(send).unwrap();
        let t = AnnounceTarget::new(
            "VI_1",
            vec![
                ("eth1".into(), "10.0.0.1".parse().unwrap()),
                ("eth1".into(), "fd00::1".parse().unwrap()),
            ],
        );
        let plan = GarpPlan {
            delay: Duration::from_millis(30),
            repeat: 3,
            refresh: Duration::ZERO,
            refresh_repeat: 1,
            arp_gap: Duration::ZERO,
            na_gap: Duration::ZERO,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let h = spawn_schedule(plan, t.clone(), w.queue());
            h.await.unwrap();
        });
        assert!(wait(|| seen.lock().unwrap().len() >= 12));
        w.stop();
        // Two bursts of three, two addresses each.
        assert_eq!(seen.lock().unwrap().len(), 12);
    }
}

//! `vrrp_track_listen` (xvrrp extension): healthy while something listens on the watched ports
//! and takes the connections that arrive, watched in the kernel.
//!
//! # How
//!
//! One task serves every `vrrp_track_listen`. It attaches the TCP state program
//! ([`crate::dataplane::tcp::TcpTracker`], one per agent, watching the union of the ports) and
//! waits on its ring buffer with an `AsyncFd`: the kernel pushes an event the moment a listener
//! of a watched port appears or closes in the agent's own network namespace, and the task
//! re-evaluates at once, so a Master whose nginx closes its listeners reports the tracker down
//! (and, with weight 0, sends priority 0 and enters FAULT) within a millisecond or so. The XDP
//! program of every interface it is attached to counts SYNs to the watched ports.
//!
//! Accept queues come from `sock_diag` ([`crate::net::diag`]): a dump of the **listening**
//! sockets of the watched ports only (state and ports filtered in the kernel, which walks its
//! listening table and never the established connections), on a netlink socket opened in the
//! agent's namespace. It costs tens of microseconds whatever the number of connections, so it
//! runs on the event loop, at every wake-up of the task (a dump slower than 1 ms is logged).
//! Loading and attaching the program, and seeding its gauges (one `sock_diag` dump of the
//! listening and established sockets of the watched ports, `/proc/net/tcp*` only if that
//! fails), run once at start on a blocking thread. `/proc/net/tcp*` is never read afterwards.
//!
//! Until the program is attached (its start takes from tens of milliseconds to a second), and
//! for good if it cannot be (no BTF, no eBPF; with a warning), the task polls the `sock_diag`
//! dump every 100 ms for the listeners too: the first verdict is reported at once, from the
//! first dump, without waiting for the program. Polling has no listener events (changes are
//! seen within 100 ms) and no connection counts.
//!
//! # Where each number comes from
//!
//! | | kernel program | start-up and fallback |
//! |---|---|---|
//! | listeners | program gauges (seeded at start) and ring events | `sock_diag` dump, polled |
//! | established, totals | program gauges and totals | not counted |
//! | accept queue | `sock_diag` dump (`idiag_rqueue`) | the same |
//! | SYNs | XDP program | XDP program |
//!
//! # Semantics
//!
//! - **Listening**: every `port` has at least one listening socket bound to `address` (or to the
//!   wildcard; IPv4-mapped IPv6 counts as IPv4), IPv4 or IPv6. Sockets of other namespaces never
//!   count.
//! - **Stall** (with `stall S`): the service is failing when for S seconds there was work waiting
//!   (connections in a listener's accept queue, or SYNs arriving) and the application took none
//!   of it (no connection left the accept queue). The kernel completes handshakes on behalf of a
//!   stopped process until its backlog is full, so "established in the kernel" alone would not
//!   show a hung nginx; the accept queue (the `sock_diag` dump, sampled every 100 ms while a
//!   stall tracker exists) does. Accepts are counted as connections established (the program's
//!   total) minus the growth of the accept queue; without the program, as the queue shrinking.
//! - **Checks** happen at every listener event, when the stall verdict changes, and every
//!   second. `fall N`: down after N failing checks in a row; `rise N`: up after N passing checks
//!   in a row (the first check of a change is the event itself, so with the defaults, 1 and 1,
//!   both are immediate). At start the current verdict is reported at once.
//! - **Status** (`xvrrp status`): per port, listeners, established connections, totals, SYNs
//!   counted by XDP and SYNs per second (over the last check interval), and the accept queue;
//!   `source` is `kernel`, or `sock_diag` while polling (where `established` and the totals
//!   are null).

mod ports;
#[cfg(test)]
mod tests;

use std::{cell::RefCell, collections::HashMap, net::IpAddr, rc::Rc, time::Duration};

use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
    time::Instant,
};
use tracing::{error, info, warn};

use self::ports::{accept_queues, syn_totals, view, Entry, Stall};
use super::types::{SharedStats, TrackerUpdate};
use crate::state::ListenerEvent;
use crate::{
    config::TrackListen,
    dataplane::{
        tcp::{self, PortCounts, SockOffsets, TcpTracker},
        XdpDataplane,
    },
    net::diag::{DiagSocket, SockDiag, TCP_LISTEN},
};

/// One tracked listen definition.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Object index in the registry.
    pub object: usize,
    /// The `vrrp_track_listen` block.
    pub spec: TrackListen,
    /// Live details (`ports`, `source`).
    pub stats: SharedStats,
}

/// How often checks run without events.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the accept queues are sampled for stall detection (and the fallback polls).
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// A `sock_diag` dump slower than this is logged (once): it runs on the loop that sends adverts.
const SLOW_DUMP: Duration = Duration::from_millis(1);
/// `source` in the status with the kernel program.
const SOURCE_KERNEL: &str = "kernel";
/// `source` in the status in the fallback.
const SOURCE_DIAG: &str = "sock_diag";

/// Where the listener and connection counts come from.
enum Source {
    /// The TCP state program: listener events and gauges, connection gauges and totals.
    Kernel(Box<AsyncFd<TcpTracker>>),
    /// No program: listeners from the `sock_diag` dumps, polled; no connection counts.
    Diag,
}

impl Source {
    /// The counts; `listeners` is the latest dump (the fallback's only source).
    fn counts(&self, listeners: &[DiagSocket]) -> Vec<PortCounts> {
        match self {
            Source::Kernel(fd) => match fd.get_ref().counts() {
                Ok(c) => c,
                Err(e) => {
                    warn!("vrrp_track_listen: reading kernel counts: {e}");
                    Vec::new()
                }
            },
            Source::Diag => diag_counts(listeners),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Source::Kernel(_) => SOURCE_KERNEL,
            Source::Diag => SOURCE_DIAG,
        }
    }
}

/// Listener counts per (port, address) of a dump.
fn diag_counts(socks: &[DiagSocket]) -> Vec<PortCounts> {
    let mut m: HashMap<(u16, IpAddr), PortCounts> = HashMap::new();
    for s in socks.iter().filter(|s| s.state == TCP_LISTEN) {
        m.entry((s.port, s.local))
            .or_insert(PortCounts {
                port: s.port,
                addr: Some(s.local),
                ..PortCounts::default()
            })
            .listeners += 1;
    }
    m.into_values().collect()
}

/// The listening sockets of the watched ports and their accept queues: `sock_diag` dumps
/// restricted in the kernel to the LISTEN state and the watched ports, so a dump costs the same
/// with 10 or 100 000 connections.
struct Listeners {
    /// Opened in the agent's namespace (the task's thread); reopened after a failure.
    diag: Option<SockDiag>,
    ports: Vec<u16>,
    /// The last good dump.
    last: Vec<DiagSocket>,
    /// Dumps fail (logged once, until one succeeds).
    failing: bool,
    slow_logged: bool,
}

impl Listeners {
    fn new(ports: &[u16]) -> Self {
        let diag = match SockDiag::open() {
            Ok(d) => Some(d),
            Err(e) => {
                warn!("vrrp_track_listen: sock_diag: {e}; accept queues unknown until it opens");
                None
            }
        };
        Self {
            diag,
            ports: ports.to_vec(),
            last: Vec::new(),
            failing: false,
            slow_logged: false,
        }
    }

    /// Dumps the listeners; after a failure the last good dump stays (and the failure is
    /// logged once).
    fn refresh(&mut self) -> &[DiagSocket] {
        let t0 = std::time::Instant::now();
        let r = match &mut self.diag {
            Some(d) => d.tcp_listeners(&self.ports),
            None => SockDiag::open().and_then(|d| self.diag.insert(d).tcp_listeners(&self.ports)),
        };
        let took = t0.elapsed();
        match r {
            Ok(v) => {
                if self.failing {
                    info!("vrrp_track_listen: sock_diag dumps work again");
                }
                self.failing = false;
                self.last = v;
            }
            Err(e) => {
                if !self.failing {
                    warn!("vrrp_track_listen: sock_diag dump of the listeners failed ({e}); keeping the last one");
                }
                self.failing = true;
            }
        }
        if took > SLOW_DUMP && !self.slow_logged {
            self.slow_logged = true;
            warn!(
                "vrrp_track_listen: a sock_diag dump of the listeners took {} µs (expected tens)",
                took.as_micros()
            );
        }
        &self.last
    }
}

/// Microseconds since the Unix epoch of a CLOCK_MONOTONIC timestamp (the kernel's).
fn mono_to_unix_us(mono: Duration) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now_mono = Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    );
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ago = now_mono.saturating_sub(mono);
    now_unix.saturating_sub(ago).as_micros() as u64
}

/// Starts the task watching every `vrrp_track_listen` (SYNs counted by the XDP programs in
/// `xdp`).
pub(crate) fn spawn(
    watched: Vec<Watched>,
    xdp: Vec<Rc<RefCell<XdpDataplane>>>,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut ports: Vec<u16> = watched
            .iter()
            .flat_map(|w| w.spec.ports.iter().copied())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        for dp in &xdp {
            if let Ok(mut dp) = dp.try_borrow_mut() {
                if let Err(e) = tcp::set_syn_ports(dp.object_mut(), &ports) {
                    warn!(
                        "vrrp_track_listen: SYNs on {} will not be counted: {e}",
                        dp.interface()
                    );
                }
            }
        }
        // The sock_diag socket answers for the namespace it is opened in: the agent's, here.
        let listeners = Listeners::new(&ports);
        // BTF parsing reads a few MB, the verifier and the seed take milliseconds: off the
        // event loop (blocking threads share the agent's namespace). Until the program is
        // attached, the task polls the dumps.
        let watch = ports.clone();
        let start = tokio::task::spawn_blocking(move || {
            let off = SockOffsets::from_kernel().map_err(|e| format!("kernel BTF: {e}"))?;
            TcpTracker::start_with(off, &watch).map_err(|e| e.to_string())
        });
        run(watched, &ports, xdp, start, listeners, tx).await;
    })
}

/// The kernel program being started on a blocking thread.
type Starting = tokio::task::JoinHandle<Result<TcpTracker, String>>;

/// The program once started (pending forever when there is nothing to wait for).
async fn started(start: &mut Option<Starting>) -> Result<TcpTracker, String> {
    match start {
        Some(h) => h.await.unwrap_or_else(|e| Err(e.to_string())),
        None => std::future::pending().await,
    }
}

/// The source to use once the program's start finished.
fn attach(started: Result<TcpTracker, String>, ports: &[u16]) -> Source {
    match started {
        Ok(t) => {
            // SAFETY: the AsyncFd owns the tracker, so the ring buffer's fd stays open and the
            // same for as long as the AsyncFd exists.
            match unsafe { AsyncFd::register_with_interest(t, Interest::READABLE) } {
                Ok(fd) => {
                    info!("vrrp_track_listen: watching TCP ports {ports:?} in the kernel");
                    Source::Kernel(Box::new(fd))
                }
                Err(e) => {
                    let e = std::io::Error::from(e);
                    warn!("vrrp_track_listen: cannot wait on the kernel ring ({e}); polling sock_diag instead");
                    Source::Diag
                }
            }
        }
        Err(e) => {
            warn!("vrrp_track_listen: kernel TCP tracking unavailable ({e}); polling sock_diag every {} ms instead", SAMPLE_INTERVAL.as_millis());
            Source::Diag
        }
    }
}

/// `all_ports`: every port of `watched`, sorted, once each.
async fn run(
    watched: Vec<Watched>,
    all_ports: &[u16],
    xdp: Vec<Rc<RefCell<XdpDataplane>>>,
    start: Starting,
    mut listeners: Listeners,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) {
    let now = Instant::now();
    // The dumps until the program is attached (the first verdict does not wait for it), and
    // for good if it cannot be.
    let mut source = Source::Diag;
    let mut start = Some(start);
    let any_stall = watched.iter().any(|w| w.spec.stall.is_some());
    let mut entries: Vec<Entry> = watched
        .into_iter()
        .map(|w| {
            let n = w.spec.ports.len();
            Entry {
                w,
                reported: None,
                ok_streak: 0,
                fail_streak: 0,
                stalls: Vec::new(),
                stalled: vec![false; n],
                last_syns: Vec::new(),
                last_check: now,
            }
        })
        .collect();

    // Everything the views need, read once per wake-up (a LISTEN-only dump: tens of µs).
    let snapshot = |source: &Source, listeners: &mut Listeners| {
        let socks = listeners.refresh().to_vec();
        let counts = source.counts(&socks);
        let syns = syn_totals(&xdp, all_ports);
        (counts, socks, syns)
    };
    let views_of =
        |e: &Entry, counts: &[PortCounts], socks: &[DiagSocket], syns: &HashMap<u16, u64>| {
            e.w.spec
                .ports
                .iter()
                .map(|p| {
                    let mut v = view(&e.w.spec, *p, counts);
                    v.accept_queue = accept_queues(&e.w.spec, socks, *p);
                    v.syns = syns.get(p).copied().unwrap_or(0);
                    v
                })
                .collect::<Vec<_>>()
        };

    let (counts, socks, syns) = snapshot(&source, &mut listeners);
    for e in &mut entries {
        let views = views_of(e, &counts, &socks, &syns);
        e.stalls = views.iter().map(|v| Stall::new(now, v)).collect();
        e.last_syns = views.iter().map(|v| v.syns).collect();
        e.publish(&views, source.name(), true);
        if let Some(u) = e.check(&views) {
            info!("vrrp_track_listen {}: {}", e.w.spec.name, u.reason);
            let _ = tx.send(u);
        }
    }

    let mut check_tick = tokio::time::interval(CHECK_INTERVAL);
    check_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check_tick.tick().await;
    let mut sample_tick = tokio::time::interval(SAMPLE_INTERVAL);
    sample_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sample_tick.tick().await;

    loop {
        enum Wake {
            Ring(Vec<tcp::ListenChange>),
            Started(Source),
            Check,
            Sample,
        }
        let wake = match &mut source {
            Source::Kernel(fd) => {
                tokio::select! {
                    biased;
                    r = fd.readable_mut() => match r {
                        Ok(mut guard) => {
                            let mut ev = guard.get_inner_mut().drain_events(256);
                            guard.clear_ready();
                            // An event queued between the drain and clear_ready is not lost.
                            ev.extend(guard.get_inner_mut().drain_events(256));
                            Wake::Ring(ev)
                        }
                        Err(e) => {
                            error!("vrrp_track_listen: waiting on the kernel ring: {e}");
                            tokio::time::sleep(SAMPLE_INTERVAL).await;
                            Wake::Check
                        }
                    },
                    _ = check_tick.tick() => Wake::Check,
                    _ = sample_tick.tick(), if any_stall => Wake::Sample,
                }
            }
            Source::Diag => {
                tokio::select! {
                    r = started(&mut start), if start.is_some() => Wake::Started(attach(r, all_ports)),
                    _ = check_tick.tick() => Wake::Check,
                    _ = sample_tick.tick() => Wake::Sample,
                }
            }
        };
        let (events, check_all, sample) = match wake {
            Wake::Ring(ev) if ev.is_empty() => continue,
            Wake::Ring(ev) => (ev, false, false),
            Wake::Started(s) => {
                start = None;
                source = s;
                // A full check with the new source.
                (Vec::new(), true, any_stall)
            }
            Wake::Check => (Vec::new(), true, any_stall),
            Wake::Sample => (Vec::new(), false, true),
        };
        let fallback = matches!(source, Source::Diag);
        let (counts, socks, syns) = snapshot(&source, &mut listeners);
        let now = Instant::now();
        for e in &mut entries {
            let touched = events.iter().any(|ev| e.w.spec.ports.contains(&ev.port));
            let views = views_of(e, &counts, &socks, &syns);
            let mut stall_changed = false;
            if sample {
                if let Some(limit) = e.w.spec.stall {
                    for (i, v) in views.iter().enumerate() {
                        let Some(st) = e.stalls.get_mut(i) else {
                            continue;
                        };
                        let s = st.sample(now, v, limit);
                        if e.stalled.get(i).copied() != Some(s) {
                            stall_changed = true;
                            if let Some(slot) = e.stalled.get_mut(i) {
                                *slot = s;
                            }
                        }
                    }
                }
            }
            // The fallback has no events: a changed listener count is its event.
            let poll_change = fallback && e.reported.is_some_and(|up| up != e.verdict(&views).0);
            if touched {
                if let Some(last) = events
                    .iter()
                    .filter(|ev| e.w.spec.ports.contains(&ev.port))
                    .max_by_key(|ev| ev.timestamp)
                {
                    let ev = ListenerEvent {
                        port: last.port,
                        address: last.addr.to_string(),
                        up: last.up,
                        at_unix_us: mono_to_unix_us(last.timestamp),
                    };
                    e.w.stats.update(|d| d.last_listener_event = Some(ev));
                }
            }
            if touched || check_all || stall_changed || poll_change {
                if let Some(u) = e.check(&views) {
                    info!("vrrp_track_listen {}: {}", e.w.spec.name, u.reason);
                    let _ = tx.send(u);
                }
                e.publish(&views, source.name(), check_all);
            }
        }
    }
}

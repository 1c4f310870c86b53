//! `vrrp_track_process`: native, event-driven process tracking with keepalived's semantics.
//!
//! # How
//!
//! A dedicated thread subscribes to the kernel's process events connector (netlink
//! `NETLINK_CONNECTOR`, group `CN_IDX_PROC`) and then scans `/proc` once, so nothing that happens
//! in between is lost. From then on it only reacts to events: `PROC_EVENT_EXEC` (a program
//! started: is it one we track?), `PROC_EVENT_FORK` (a tracked process forked: the child counts
//! too, as a daemonising or pre-forking server's children do), `PROC_EVENT_COMM` (a process
//! renamed itself) and `PROC_EVENT_EXIT`. When the kernel had to drop events (`ENOBUFS`), it
//! scans `/proc` again. There is no polling. The thread does all the `/proc` reading, so a busy
//! host (every exec on the machine is an event) never delays the VRRP event loop: the loop only
//! hears about tracked processes' counts changing.
//!
//! The connector only exists in the initial network namespace. When the agent runs in another
//! one, the thread opens its socket in the initial namespace (`setns` to the namespace of
//! `kthreadd` or pid 1, for that thread only, and back): the events are the same, the socket
//! just has to live there.
//!
//! # Which processes count
//!
//! **Only processes in the agent's own network namespace** (`/proc/PID/ns/net` is the same
//! namespace as `/proc/self/ns/net`): a VRRP instance is about the addresses of its namespace,
//! and an nginx in another namespace (another container, another test host) serves other
//! addresses, so it must not keep this one's priority up. keepalived counts every process on the
//! machine. A process that moves to another namespace without an `exec` (`setns` or `unshare`
//! after its start) is not noticed until its next `exec`; forked children are counted with their
//! parent.
//!
//! Matching, as keepalived's `track_process.c` does it:
//! - By default `process NAME` is compared with the process name (`/proc/PID/stat`'s comm, which
//!   the kernel truncates to 15 bytes, so `NAME` is compared truncated the same way).
//! - With parameters, `full_command`, or a `process` containing a `/`, the command line is used:
//!   `argv[0]` must equal `process`, and the arguments are compared with the parameters by
//!   `param_match`: `exact` (the default) all arguments equal the parameters; `partial` the
//!   parameters are the first arguments; `initial` like `partial`, but the last parameter may be
//!   the start of its argument (keepalived's `check_params`).
//! - Zombies do not count.
//!
//! Status: up while `quorum <= count <= quorum_max`. A gain of quorum counts after
//! `fork_delay`, a loss after `terminate_delay` (`delay` sets both), if it still holds then.
//! `xvrrp status` shows the current `processes` count.

use std::{collections::HashSet, os::fd::AsRawFd, time::Duration};

use nix::{
    errno::Errno,
    sys::socket::{recv, MsgFlags},
};
use tokio::{sync::mpsc, time::Instant};
use tracing::{error, info, warn};

use super::types::{SharedStats, TrackerUpdate};
use crate::config::{ParamMatch, TrackProcess};
use crate::net::proc_connector::{netns_id, open_connector, parse_datagram, ProcEvent, COMM_MAX};

/// One tracked process definition.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Object index in the registry.
    pub object: usize,
    /// The `vrrp_track_process` block.
    pub spec: TrackProcess,
    /// Live details (`processes`).
    pub stats: SharedStats,
}

// `/proc/PID/stat` and `cmdline` are read as bytes here, not through procfs: its `Stat::comm` is
// lossy UTF-8 and its `cmdline()` drops empty arguments and fails on non-UTF-8 ones, while
// keepalived compares bytes (a name the kernel cut at 15 bytes may end mid-character, and an
// empty argument counts in `param_match`). procfs lists the processes.

/// Splits `/proc/PID/stat` into (comm, state). The name is between the first `(` and the last
/// `)` (it may itself contain parentheses).
pub(crate) fn parse_stat(stat: &[u8]) -> Option<(Vec<u8>, u8)> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let comm = stat.get(open + 1..close)?.to_vec();
    let state = *stat.get(close + 2)?;
    Some((comm, state))
}

/// How one tracked process definition matches.
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    /// Match on the command line (else on the process name).
    pub cmdline: bool,
    /// `process`, truncated to [`COMM_MAX`] when matching names.
    pub name: Vec<u8>,
    /// Parameters to check (command-line matching only).
    pub params: Option<Vec<Vec<u8>>>,
    /// How parameters are compared.
    pub param_match: ParamMatch,
}

impl Matcher {
    /// The matcher of a `vrrp_track_process` block.
    pub(crate) fn new(spec: &TrackProcess) -> Self {
        let cmdline = spec.full_command || spec.params.is_some() || spec.process.contains('/');
        let mut name = spec.process.as_bytes().to_vec();
        if !cmdline {
            name.truncate(COMM_MAX);
        }
        Self {
            cmdline,
            name,
            params: spec.params.as_ref().map(|p| {
                p.split_whitespace()
                    .map(|w| w.as_bytes().to_vec())
                    .collect()
            }),
            param_match: spec.param_match,
        }
    }

    /// keepalived's `check_params`.
    pub(crate) fn params_match(&self, args: &[&[u8]]) -> bool {
        let Some(want) = &self.params else {
            return true;
        };
        match self.param_match {
            ParamMatch::Exact => {
                args.len() == want.len() && args.iter().zip(want).all(|(a, w)| *a == w.as_slice())
            }
            ParamMatch::Partial => {
                args.len() >= want.len() && args.iter().zip(want).all(|(a, w)| *a == w.as_slice())
            }
            ParamMatch::Initial => {
                if args.len() < want.len() {
                    return false;
                }
                let n = want.len();
                args.iter().zip(want).enumerate().all(|(i, (a, w))| {
                    if i + 1 == n {
                        a.starts_with(w)
                    } else {
                        *a == w.as_slice()
                    }
                })
            }
        }
    }

    /// Whether a process with this name (comm) and command line matches.
    pub(crate) fn matches(&self, comm: &[u8], cmdline: Option<&[u8]>) -> bool {
        if !self.cmdline {
            return comm == self.name.as_slice();
        }
        let Some(cmd) = cmdline else {
            return false;
        };
        let mut words: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if words.last().is_some_and(|w| w.is_empty()) {
            words.pop();
        }
        match words.split_first() {
            Some((argv0, args)) => *argv0 == self.name.as_slice() && self.params_match(args),
            None => false,
        }
    }
}

/// The matching state of the tracker thread.
struct Tracker {
    matchers: Vec<Matcher>,
    sets: Vec<HashSet<i32>>,
    own_netns: Option<(u64, u64)>,
    need_cmdline: bool,
}

impl Tracker {
    fn new(matchers: Vec<Matcher>) -> Self {
        let need_cmdline = matchers.iter().any(|m| m.cmdline);
        Self {
            sets: vec![HashSet::new(); matchers.len()],
            matchers,
            own_netns: netns_id("/proc/self/ns/net"),
            need_cmdline,
        }
    }

    /// Which trackers process `pid` matches now (all false when it is gone, a zombie, or in
    /// another network namespace). `comm` overrides the name read from `/proc`.
    fn evaluate(&self, pid: i32, comm: Option<&[u8]>) -> Vec<bool> {
        let none = vec![false; self.matchers.len()];
        if netns_id(&format!("/proc/{pid}/ns/net")) != self.own_netns || self.own_netns.is_none() {
            return none;
        }
        let stat = match std::fs::read(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            Some(s) => s,
            None => return none,
        };
        if stat.1 == b'Z' || stat.1 == b'X' {
            return none;
        }
        let name = comm.map_or(stat.0, <[u8]>::to_vec);
        let cmdline = if self.need_cmdline {
            std::fs::read(format!("/proc/{pid}/cmdline")).ok()
        } else {
            None
        };
        self.matchers
            .iter()
            .map(|m| m.matches(&name, cmdline.as_deref()))
            .collect()
    }

    /// Sets `pid`'s membership; returns whether anything changed.
    fn set(&mut self, pid: i32, matches: &[bool]) -> bool {
        let mut changed = false;
        for (set, &m) in self.sets.iter_mut().zip(matches) {
            changed |= if m { set.insert(pid) } else { set.remove(&pid) };
        }
        changed
    }

    fn rescan(&mut self) {
        for s in &mut self.sets {
            s.clear();
        }
        let Ok(all) = procfs::process::all_processes() else {
            return;
        };
        for pid in all.flatten().map(|p| p.pid()) {
            let m = self.evaluate(pid, None);
            self.set(pid, &m);
        }
    }

    /// Applies one event; returns a reason when a set changed.
    fn apply(&mut self, ev: &ProcEvent) -> Option<String> {
        match ev {
            ProcEvent::Exec { tgid } => {
                let m = self.evaluate(*tgid, None);
                self.set(*tgid, &m)
                    .then(|| format!("pid {tgid} executed a program"))
            }
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => {
                let m: Vec<bool> = self.sets.iter().map(|s| s.contains(parent_tgid)).collect();
                (m.iter().any(|x| *x) && self.set(*child_tgid, &m))
                    .then(|| format!("pid {parent_tgid} forked pid {child_tgid}"))
            }
            ProcEvent::Comm { pid, tgid, comm } if pid == tgid => {
                let m = self.evaluate(*tgid, Some(comm));
                self.set(*tgid, &m).then(|| {
                    format!(
                        "pid {tgid} renamed itself {:?}",
                        String::from_utf8_lossy(comm)
                    )
                })
            }
            ProcEvent::Exit { pid, tgid } if pid == tgid => {
                let m = vec![false; self.sets.len()];
                self.set(*tgid, &m).then(|| format!("pid {tgid} exited"))
            }
            _ => None,
        }
    }
}

/// What the thread tells the event loop.
#[derive(Debug)]
enum Msg {
    /// Counts of every tracker (index = position), and why they changed.
    Counts(Vec<usize>, String),
    /// The process events could not be set up.
    Failed(String),
}

fn thread_main(matchers: Vec<Matcher>, tx: mpsc::UnboundedSender<Msg>) {
    let fd = match open_connector() {
        Ok(fd) => fd,
        Err(e) => {
            let _ = tx.send(Msg::Failed(e.to_string()));
            return;
        }
    };
    let mut t = Tracker::new(matchers);
    if t.own_netns.is_none() {
        let _ = tx.send(Msg::Failed("cannot read /proc/self/ns/net".to_owned()));
        return;
    }
    let counts = |t: &Tracker| t.sets.iter().map(HashSet::len).collect::<Vec<_>>();
    t.rescan();
    let mut last = counts(&t);
    if tx
        .send(Msg::Counts(last.clone(), "initial /proc scan".to_owned()))
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if tx.is_closed() {
            return;
        }
        let mut reason = None;
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(Errno::ENOBUFS) => {
                t.rescan();
                reason = Some("process events were lost; /proc scanned again".to_owned());
            }
            Err(e) => {
                let _ = tx.send(Msg::Failed(format!(
                    "recv(process events): {}",
                    std::io::Error::from(e)
                )));
                return;
            }
            Ok(n) => match parse_datagram(buf.get(..n).unwrap_or_default()) {
                Ok(events) => {
                    for ev in &events {
                        if let Some(r) = t.apply(ev) {
                            reason = Some(r);
                        }
                    }
                }
                Err(_) => {
                    t.rescan();
                    reason = Some("unreadable process event; /proc scanned again".to_owned());
                }
            },
        }
        let now = counts(&t);
        if now != last {
            last = now.clone();
            if tx
                .send(Msg::Counts(now, reason.unwrap_or_default()))
                .is_err()
            {
                return;
            }
        }
    }
}

/// Quorum with keepalived's delays, for one tracked process definition.
#[derive(Debug)]
pub(crate) struct Quorum {
    min: usize,
    max: usize,
    fork_delay: Duration,
    terminate_delay: Duration,
    /// Last status reported (None before the first report).
    reported: Option<bool>,
    /// A change waiting for its delay: (new status, when).
    pending: Option<(bool, Instant)>,
}

impl Quorum {
    /// From a `vrrp_track_process` block.
    pub(crate) fn new(spec: &TrackProcess) -> Self {
        Self {
            min: spec.quorum as usize,
            max: spec.quorum_max.map_or(usize::MAX, |m| m as usize),
            fork_delay: spec.fork_delay,
            terminate_delay: spec.terminate_delay,
            reported: None,
            pending: None,
        }
    }

    /// Whether `count` processes make quorum.
    pub(crate) fn holds(&self, count: usize) -> bool {
        (self.min..=self.max).contains(&count)
    }

    /// A new count at `now`: returns the status to report now, if any (the first count is
    /// reported at once; later changes after their delay, see [`Quorum::due`]).
    pub(crate) fn update(&mut self, count: usize, now: Instant) -> Option<bool> {
        let want = self.holds(count);
        match self.reported {
            None => {
                self.reported = Some(want);
                Some(want)
            }
            Some(r) if r == want => {
                self.pending = None;
                None
            }
            Some(_) => {
                let delay = if want {
                    self.fork_delay
                } else {
                    self.terminate_delay
                };
                if delay.is_zero() {
                    self.pending = None;
                    self.reported = Some(want);
                    return Some(want);
                }
                if self.pending.map(|(w, _)| w) != Some(want) {
                    self.pending = Some((want, now + delay));
                }
                None
            }
        }
    }

    /// When a pending change is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, at)| at)
    }

    /// At `now`: the pending status, if its delay has passed.
    pub(crate) fn due(&mut self, now: Instant) -> Option<bool> {
        match self.pending {
            Some((want, at)) if at <= now => {
                self.pending = None;
                self.reported = Some(want);
                Some(want)
            }
            _ => None,
        }
    }
}

/// Starts the process tracker for `watched`: the event thread, and on the current `LocalSet`
/// the task that applies quorum and delays and reports.
pub(crate) fn spawn(
    watched: Vec<Watched>,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) -> Option<tokio::task::JoinHandle<()>> {
    let matchers: Vec<Matcher> = watched.iter().map(|w| Matcher::new(&w.spec)).collect();
    let (mtx, mut mrx) = mpsc::unbounded_channel::<Msg>();
    let started = std::thread::Builder::new()
        .name("xvrrp-proc".to_owned())
        .spawn(move || thread_main(matchers, mtx));
    if let Err(e) = started {
        error!("vrrp_track_process: cannot start the process event thread: {e}");
        for w in &watched {
            let _ = tx.send(TrackerUpdate::status(
                w.object,
                false,
                format!("process events unavailable: {e}"),
            ));
        }
        return None;
    }
    Some(tokio::task::spawn_local(async move {
        let mut quorums: Vec<Quorum> = watched.iter().map(|w| Quorum::new(&w.spec)).collect();
        let mut counts: Vec<usize> = vec![0; watched.len()];
        let mut why: Vec<String> = vec![String::new(); watched.len()];
        loop {
            let deadline = quorums.iter().filter_map(Quorum::deadline).min();
            let sleep = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                msg = mrx.recv() => match msg {
                    Some(Msg::Counts(c, reason)) => {
                        let now = Instant::now();
                        for (i, w) in watched.iter().enumerate() {
                            let n = c.get(i).copied().unwrap_or(0);
                            if counts.get(i) != Some(&n) || quorums[i].reported.is_none() {
                                why[i] = format!("{n} matching process(es): {reason}");
                            }
                            counts[i] = n;
                            w.stats.update(|d| d.processes = Some(n as u64));
                            if let Some(up) = quorums[i].update(n, now) {
                                report(&tx, w, up, &why[i]);
                            }
                        }
                    }
                    Some(Msg::Failed(e)) => {
                        error!("vrrp_track_process: process events unavailable: {e}; tracked processes count as down");
                        for w in &watched {
                            let _ = tx.send(TrackerUpdate::status(w.object, false, format!("process events unavailable: {e}")));
                        }
                        return;
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(sleep), if deadline.is_some() => {
                    let now = Instant::now();
                    for (i, w) in watched.iter().enumerate() {
                        if let Some(up) = quorums[i].due(now) {
                            report(&tx, w, up, &why[i]);
                        }
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }))
}

fn report(tx: &mpsc::UnboundedSender<TrackerUpdate>, w: &Watched, up: bool, why: &str) {
    let q = &w.spec;
    let range = match q.quorum_max {
        Some(m) => format!("{}..{m}", q.quorum),
        None => format!("at least {}", q.quorum),
    };
    let msg = format!(
        "{why} (quorum {range}: {})",
        if up { "met" } else { "lost" }
    );
    if up {
        info!("vrrp_track_process {}: {msg}", q.name);
    } else {
        warn!("vrrp_track_process {}: {msg}", q.name);
    }
    let _ = tx.send(TrackerUpdate::status(w.object, up, msg));
}

#[cfg(test)]
mod tests;

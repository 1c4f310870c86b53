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

use std::{
    collections::HashSet,
    fs::File,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use log::{error, info, warn};
use tokio::{sync::mpsc, time::Instant};

use super::trackers::{SharedStats, TrackerUpdate};
use crate::config::{ParamMatch, TrackProcess};

/// One tracked process definition.
#[derive(Debug)]
pub struct Watched {
    /// Object index in the registry.
    pub object: usize,
    /// The `vrrp_track_process` block.
    pub spec: TrackProcess,
    /// Live details (`processes`).
    pub stats: SharedStats,
}

// linux/netlink.h, linux/connector.h, linux/cn_proc.h
const NETLINK_CONNECTOR: i32 = 11;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const CN_MSG_LEN: usize = 20;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_COMM: u32 = 0x0000_0200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// Header of `struct proc_event` before `event_data`: what, cpu, timestamp_ns.
const PROC_EVENT_HDR: usize = 16;
/// The kernel's `TASK_COMM_LEN - 1`.
pub const COMM_MAX: usize = 15;

/// A process event from the connector (only those the tracker uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcEvent {
    /// A task was created. Threads have `child_pid != child_tgid`.
    Fork {
        /// The parent process (thread group id).
        parent_tgid: i32,
        /// The new task's id.
        child_pid: i32,
        /// The new task's thread group id.
        child_tgid: i32,
    },
    /// A process executed a new program.
    Exec {
        /// Thread group id.
        tgid: i32,
    },
    /// A task changed its name.
    Comm {
        /// Task id.
        pid: i32,
        /// Thread group id.
        tgid: i32,
        /// New name (up to 15 bytes).
        comm: Vec<u8>,
    },
    /// A task exited. The process is gone when `pid == tgid`.
    Exit {
        /// Task id.
        pid: i32,
        /// Thread group id.
        tgid: i32,
    },
}

/// A connector datagram that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcParseError {
    /// A netlink header or length is inconsistent.
    #[error("malformed netlink message at byte {0}")]
    Netlink(usize),
    /// A connector message is shorter than its header or its stated length.
    #[error("malformed connector message at byte {0}")]
    Connector(usize),
    /// The kernel reported lost messages in-band (`NLMSG_OVERRUN`).
    #[error("the kernel dropped process events")]
    Overrun,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| v as i32)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Parses one `struct proc_event`; `None` for events the tracker does not use or that are too
/// short.
fn parse_proc_event(d: &[u8]) -> Option<ProcEvent> {
    let what = u32_at(d, 0)?;
    let e = PROC_EVENT_HDR;
    match what {
        PROC_EVENT_FORK => Some(ProcEvent::Fork {
            parent_tgid: i32_at(d, e + 4)?,
            child_pid: i32_at(d, e + 8)?,
            child_tgid: i32_at(d, e + 12)?,
        }),
        PROC_EVENT_EXEC => Some(ProcEvent::Exec {
            tgid: i32_at(d, e + 4)?,
        }),
        PROC_EVENT_COMM => {
            let raw = d.get(e + 8..e + 8 + 16)?;
            let comm = raw.split(|b| *b == 0).next().unwrap_or_default().to_vec();
            Some(ProcEvent::Comm {
                pid: i32_at(d, e)?,
                tgid: i32_at(d, e + 4)?,
                comm,
            })
        }
        PROC_EVENT_EXIT => Some(ProcEvent::Exit {
            pid: i32_at(d, e)?,
            tgid: i32_at(d, e + 4)?,
        }),
        _ => None,
    }
}

/// Parses a datagram from the connector socket into the events the tracker uses. Never panics.
pub fn parse_datagram(buf: &[u8]) -> Result<Vec<ProcEvent>, ProcParseError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, at).ok_or(ProcParseError::Netlink(at))? as usize;
        let ty = u16_at(buf, at + 4).ok_or(ProcParseError::Netlink(at))?;
        if len < NLMSG_HDRLEN || at.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(ProcParseError::Netlink(at));
        }
        let payload = &buf[at + NLMSG_HDRLEN..at + len];
        match ty {
            NLMSG_OVERRUN => return Err(ProcParseError::Overrun),
            NLMSG_NOOP | NLMSG_ERROR => {}
            _ => {
                if payload.len() < CN_MSG_LEN {
                    return Err(ProcParseError::Connector(at));
                }
                let idx = u32_at(payload, 0).ok_or(ProcParseError::Connector(at))?;
                let val = u32_at(payload, 4).ok_or(ProcParseError::Connector(at))?;
                let dlen = u16_at(payload, 16).ok_or(ProcParseError::Connector(at))? as usize;
                let data = payload
                    .get(CN_MSG_LEN..CN_MSG_LEN + dlen)
                    .ok_or(ProcParseError::Connector(at))?;
                if idx == CN_IDX_PROC && val == CN_VAL_PROC {
                    if let Some(ev) = parse_proc_event(data) {
                        out.push(ev);
                    }
                }
            }
        }
        // NLMSG_ALIGN
        at += (len + 3) & !3;
    }
    Ok(out)
}

/// The subscription request (`PROC_CN_MCAST_LISTEN`) as sent to the kernel.
fn listen_request() -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + CN_MSG_LEN + 4);
    let total = (NLMSG_HDRLEN + CN_MSG_LEN + 4) as u32;
    m.extend_from_slice(&total.to_ne_bytes());
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: filled in by the kernel
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // ack
    m.extend_from_slice(&4u16.to_ne_bytes()); // len
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    m
}

fn last_err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens, binds and subscribes a connector socket in the calling thread's network namespace.
fn open_here() -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_CONNECTOR,
        )
    };
    if fd < 0 {
        return Err(last_err("socket(NETLINK_CONNECTOR)"));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A large buffer: every process event of the machine arrives here.
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt(2) with a valid int option value and its size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
    }
    // A receive timeout lets the thread notice that the agent is stopping.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: setsockopt(2) with a valid timeval and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // SAFETY: a zeroed sockaddr_nl is valid; the fields we need are set below.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = CN_IDX_PROC;
    let sa_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: bind(2) with a valid sockaddr_nl and its size.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            sa_len,
        )
    } < 0
    {
        return Err(last_err("bind(CN_IDX_PROC)"));
    }
    let msg = listen_request();
    sa.nl_groups = 0; // to the kernel
                      // SAFETY: sendto(2) with a buffer we own, its length, and a valid destination address.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            sa_len,
        )
    };
    if n < 0 {
        return Err(last_err("subscribing to process events"));
    }
    Ok(fd)
}

/// Switches the calling thread to the network namespace of `path`.
fn setns_to(path: &str) -> std::io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns(2) on an open namespace file; it affects the calling thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(last_err(&format!("setns({path})")));
    }
    Ok(())
}

/// Opens the connector socket: in our namespace when the connector answers there (the initial
/// namespace), else in the initial namespace: the calling thread enters it, opens the socket and
/// returns to its own namespace. The initial namespace is found through `kthreadd` (pid 2, a
/// kernel thread, always in it and readable by root even where pid 1 is not), else pid 1.
/// Only call this from the tracker's own thread.
fn open_connector() -> std::io::Result<OwnedFd> {
    match open_here() {
        Ok(fd) => Ok(fd),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let own = File::open("/proc/thread-self/ns/net")?;
            let mut last = e;
            for candidate in ["/proc/2/ns/net", "/proc/1/ns/net"] {
                if let Err(e) = setns_to(candidate) {
                    last = e;
                    continue;
                }
                let res = open_here();
                // SAFETY: setns(2) back to the namespace this thread was in.
                if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                    return Err(last_err("setns back to our namespace"));
                }
                match res {
                    Ok(fd) => return Ok(fd),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Err(e) => Err(e),
    }
}

/// `(st_dev, st_ino)` of a network namespace file.
fn netns_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Splits `/proc/PID/stat` into (comm, state). The name is between the first `(` and the last
/// `)` (it may itself contain parentheses).
pub fn parse_stat(stat: &[u8]) -> Option<(Vec<u8>, u8)> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let comm = stat.get(open + 1..close)?.to_vec();
    let state = *stat.get(close + 2)?;
    Some((comm, state))
}

/// How one tracked process definition matches.
#[derive(Clone, Debug)]
pub struct Matcher {
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
    pub fn new(spec: &TrackProcess) -> Self {
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
    pub fn params_match(&self, args: &[&[u8]]) -> bool {
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
    pub fn matches(&self, comm: &[u8], cmdline: Option<&[u8]>) -> bool {
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
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for ent in dir.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
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
        // SAFETY: recv(2) into a buffer we own, with its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let mut reason = None;
        if n < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                Some(libc::ENOBUFS) => {
                    t.rescan();
                    reason = Some("process events were lost; /proc scanned again".to_owned());
                }
                _ => {
                    let _ = tx.send(Msg::Failed(last_err("recv(process events)").to_string()));
                    return;
                }
            }
        } else {
            match parse_datagram(buf.get(..n as usize).unwrap_or_default()) {
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
            }
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

fn secs(f: f64) -> Duration {
    if f.is_finite() && f > 0.0 {
        Duration::from_secs_f64(f.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// Quorum with keepalived's delays, for one tracked process definition.
#[derive(Debug)]
pub struct Quorum {
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
    pub fn new(spec: &TrackProcess) -> Self {
        Self {
            min: spec.quorum as usize,
            max: spec.quorum_max.map_or(usize::MAX, |m| m as usize),
            fork_delay: secs(spec.fork_delay),
            terminate_delay: secs(spec.terminate_delay),
            reported: None,
            pending: None,
        }
    }

    /// Whether `count` processes make quorum.
    pub fn holds(&self, count: usize) -> bool {
        (self.min..=self.max).contains(&count)
    }

    /// A new count at `now`: returns the status to report now, if any (the first count is
    /// reported at once; later changes after their delay, see [`Quorum::due`]).
    pub fn update(&mut self, count: usize, now: Instant) -> Option<bool> {
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
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, at)| at)
    }

    /// At `now`: the pending status, if its delay has passed.
    pub fn due(&mut self, now: Instant) -> Option<bool> {
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
pub fn spawn(watched: Vec<Watched>, tx: mpsc::UnboundedSender<TrackerUpdate>) {
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
        return;
    }
    tokio::task::spawn_local(async move {
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
                            w.stats.set("processes", n);
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
    });
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
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    fn spec(process: &str, params: Option<&str>, pm: ParamMatch) -> TrackProcess {
        TrackProcess {
            name: "p".to_owned(),
            process: process.to_owned(),
            params: params.map(str::to_owned),
            param_match: pm,
            full_command: false,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: None,
            terminate_delay: 0.0,
            fork_delay: 0.0,
        }
    }

    /// A connector datagram with one proc_event of `what` and `data` after the 16-byte header.
    fn datagram(what: u32, data: &[u8]) -> Vec<u8> {
        let mut ev = Vec::new();
        ev.extend_from_slice(&what.to_ne_bytes());
        ev.extend_from_slice(&0u32.to_ne_bytes());
        ev.extend_from_slice(&0u64.to_ne_bytes());
        ev.extend_from_slice(data);
        let mut m = Vec::new();
        let total = (NLMSG_HDRLEN + CN_MSG_LEN + ev.len()) as u32;
        m.extend_from_slice(&total.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(ev.len() as u16).to_ne_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(&ev);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn ints(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    #[test]
    fn parses_fork_exec_comm_exit() {
        let mut buf = datagram(PROC_EVENT_FORK, &ints(&[10, 10, 11, 11]));
        buf.extend(datagram(PROC_EVENT_EXEC, &ints(&[11, 11])));
        let mut comm = ints(&[11, 11]);
        comm.extend_from_slice(b"nginx\0\0\0\0\0\0\0\0\0\0\0");
        buf.extend(datagram(PROC_EVENT_COMM, &comm));
        buf.extend(datagram(PROC_EVENT_EXIT, &ints(&[11, 11, 0, 9, 10, 10])));
        buf.extend(datagram(0x4, &ints(&[1, 1, 0, 0]))); // PROC_EVENT_UID: skipped
        assert_eq!(
            parse_datagram(&buf).unwrap(),
            vec![
                ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                ProcEvent::Exec { tgid: 11 },
                ProcEvent::Comm {
                    pid: 11,
                    tgid: 11,
                    comm: b"nginx".to_vec()
                },
                ProcEvent::Exit { pid: 11, tgid: 11 },
            ]
        );
    }

    #[test]
    fn rejects_malformed_datagrams() {
        let good = datagram(PROC_EVENT_EXEC, &ints(&[11, 11]));
        let mut bad_len = good.clone();
        bad_len[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_datagram(&bad_len), Err(ProcParseError::Netlink(0)));
        let mut tiny = good.clone();
        tiny[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(parse_datagram(&tiny), Err(ProcParseError::Netlink(0)));
        let mut short_cn = good.clone();
        short_cn[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&500u16.to_ne_bytes());
        assert_eq!(parse_datagram(&short_cn), Err(ProcParseError::Connector(0)));
        // An event shorter than its fields is skipped, not misread.
        let short_ev = datagram(PROC_EVENT_FORK, &ints(&[1]));
        assert_eq!(parse_datagram(&short_ev), Ok(vec![]));
        assert_eq!(parse_datagram(&[]), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn parser_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_datagram(&buf);
        }

        #[test]
        fn parser_never_panics_on_corrupted_real_messages(
            what in prop_oneof![Just(PROC_EVENT_FORK), Just(PROC_EVENT_EXEC), Just(PROC_EVENT_COMM), Just(PROC_EVENT_EXIT)],
            cut in 0usize..100,
            flip in 0usize..100,
            byte in any::<u8>(),
        ) {
            let mut d = datagram(what, &[7u8; 40]);
            if let Some(b) = d.get_mut(flip) { *b = byte; }
            d.truncate(cut.min(d.len()));
            let _ = parse_datagram(&d);
        }
    }

    #[test]
    fn subscribe_message_has_keepalived_layout() {
        let m = listen_request();
        assert_eq!(m.len(), 40);
        assert_eq!(u32_at(&m, 0), Some(40));
        assert_eq!(u16_at(&m, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&m, 16), Some(CN_IDX_PROC));
        assert_eq!(u16_at(&m, 32), Some(4));
        assert_eq!(u32_at(&m, 36), Some(PROC_CN_MCAST_LISTEN));
    }

    #[test]
    fn stat_parsing_handles_odd_names() {
        assert_eq!(
            parse_stat(b"123 (nginx) S 1 2 3"),
            Some((b"nginx".to_vec(), b'S'))
        );
        assert_eq!(
            parse_stat(b"5 (a (b) c) Z 1"),
            Some((b"a (b) c".to_vec(), b'Z'))
        );
        assert_eq!(parse_stat(b"5 (x"), None);
        assert_eq!(parse_stat(b"5 (x)"), None);
        assert_eq!(parse_stat(b""), None);
    }

    #[test]
    fn names_match_the_comm_truncated_to_15_bytes() {
        let m = Matcher::new(&spec("nginx", None, ParamMatch::Exact));
        assert!(!m.cmdline);
        assert!(m.matches(b"nginx", None));
        assert!(!m.matches(b"nginx2", None));
        let long = Matcher::new(&spec("a-very-long-daemon-name", None, ParamMatch::Exact));
        assert!(long.matches(b"a-very-long-dae", None));
    }

    #[test]
    fn params_match_like_keepalived_check_params() {
        let cmd = b"/usr/sbin/nginx\0-c\0/etc/nginx/nginx.conf\0";
        let exact = Matcher::new(&spec(
            "/usr/sbin/nginx",
            Some("-c /etc/nginx/nginx.conf"),
            ParamMatch::Exact,
        ));
        assert!(exact.cmdline);
        assert!(exact.matches(b"nginx", Some(cmd)));
        assert!(!exact.matches(b"nginx", Some(b"/usr/sbin/nginx\0-c\0")));
        assert!(!exact.matches(
            b"nginx",
            Some(b"/usr/sbin/nginx\0-c\0/etc/nginx/nginx.conf\0-g\0x\0")
        ));
        let partial = Matcher::new(&spec("/usr/sbin/nginx", Some("-c"), ParamMatch::Partial));
        assert!(partial.matches(b"", Some(cmd)));
        let partial_prefix = Matcher::new(&spec(
            "/usr/sbin/nginx",
            Some("-c /etc"),
            ParamMatch::Partial,
        ));
        assert!(
            !partial_prefix.matches(b"", Some(cmd)),
            "partial needs whole parameters"
        );
        let initial = Matcher::new(&spec(
            "/usr/sbin/nginx",
            Some("-c /etc"),
            ParamMatch::Initial,
        ));
        assert!(
            initial.matches(b"", Some(cmd)),
            "initial: the last may be a prefix"
        );
        assert!(!initial.matches(b"", Some(b"/usr/sbin/nginx\0-d\0/etc\0")));
        let path_only = Matcher::new(&spec("/usr/sbin/nginx", None, ParamMatch::Exact));
        assert!(path_only.cmdline);
        assert!(
            path_only.matches(b"", Some(cmd)),
            "no parameters: any arguments"
        );
        assert!(!path_only.matches(b"", Some(b"")));
        assert!(!path_only.matches(b"", None));
    }

    #[test]
    fn quorum_and_delays_follow_keepalived() {
        let mut s = spec("nginx", None, ParamMatch::Exact);
        s.quorum = 2;
        s.quorum_max = Some(3);
        s.fork_delay = 1.0;
        s.terminate_delay = 2.0;
        let mut q = Quorum::new(&s);
        let t0 = Instant::now();
        assert_eq!(q.update(1, t0), Some(false), "first count reported at once");
        assert_eq!(q.update(2, t0), None, "gain waits fork_delay");
        assert_eq!(q.deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.due(t0 + Duration::from_millis(500)), None);
        assert_eq!(q.due(t0 + Duration::from_secs(1)), Some(true));
        assert_eq!(
            q.update(4, t0),
            None,
            "above quorum_max: loss waits terminate_delay"
        );
        assert_eq!(q.update(3, t0), None, "back in range cancels");
        assert_eq!(q.deadline(), None);
        let mut nodelay = Quorum::new(&spec("nginx", None, ParamMatch::Exact));
        assert_eq!(nodelay.update(1, t0), Some(true));
        assert_eq!(nodelay.update(0, t0), Some(false));
        assert_eq!(nodelay.update(0, t0), None);
    }

    #[test]
    fn finds_our_own_process_in_proc_and_ignores_the_gone() {
        let me = std::process::id() as i32;
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let mut s = spec(comm.trim(), None, ParamMatch::Exact);
        s.name = "self".to_owned();
        let t = Tracker::new(vec![Matcher::new(&s)]);
        assert_eq!(t.evaluate(me, None), vec![true]);
        assert_eq!(t.evaluate(i32::MAX, None), vec![false], "no such pid");
    }
}

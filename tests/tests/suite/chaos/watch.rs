//! The chaos suite's observer: background threads that sample, for each server, whether the LAN
//! VIP is on its `eth1` (read with `getifaddrs`, i.e. an RTM_GETADDR dump, from a thread inside
//! the server's namespace, every [`VIP_EVERY`]) and the role its agent reports on the control
//! socket (every [`ROLE_EVERY`]), and the analysis of that timeline: when a condition came to
//! hold for good, and how long both servers held the VIP at once.
//!
//! Only changes are recorded; a value holds until the next change of the same node and kind.

use std::{
    ffi::CStr,
    fmt::Write as _,
    fs::File,
    io::{Read, Write},
    net::Ipv4Addr,
    os::{fd::AsRawFd, unix::net::UnixStream},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use xvrrp_tests::status::Status;

/// How often each namespace's addresses are read.
pub const VIP_EVERY: Duration = Duration::from_millis(20);
/// How often each agent's role is asked for.
pub const ROLE_EVERY: Duration = Duration::from_millis(40);
/// How long a status query may take before the agent counts as silent (a stopped agent accepts
/// the connection but never answers).
const ROLE_TIMEOUT: Duration = Duration::from_millis(200);

/// The role an agent reports for its (only) instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
    Fault,
    /// Any other state (`Init`, `Stopped`, ...).
    Other,
    /// No answer on the control socket (stopped, busy or gone).
    Silent,
}

/// One observed change.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub node: usize,
    pub seen: Seen,
}

/// What was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Whether the VIP is on the node's `eth1`.
    Vip(bool),
    /// The node's role.
    Role(Role),
}

/// What the two nodes looked like at one instant (`None`: not observed yet).
///
/// `role` is the last role a node answered with: a query that got no answer carries no news
/// about the role (a stopped Master is still a Master holding its VIP, and a slow answer on a
/// loaded machine must not read as a role change); `answering` says whether the last query was
/// answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub vip: [Option<bool>; 2],
    pub role: [Option<Role>; 2],
    pub answering: [bool; 2],
}

impl Now {
    fn apply(&mut self, s: &Sample) {
        match s.seen {
            Seen::Vip(v) => self.vip[s.node] = Some(v),
            Seen::Role(Role::Silent) => self.answering[s.node] = false,
            Seen::Role(r) => {
                self.role[s.node] = Some(r);
                self.answering[s.node] = true;
            }
        }
    }

    /// Both nodes hold the VIP.
    pub fn both_hold(&self) -> bool {
        self.vip == [Some(true), Some(true)]
    }

    /// Exactly one node reports Master and the other another role.
    pub fn one_master(&self) -> bool {
        let [a, b] = self.role;
        matches!(
            (a, b),
            (Some(Role::Master), Some(r)) | (Some(r), Some(Role::Master)) if r != Role::Master
        )
    }

    /// Node 0 (the primary) Master, node 1 Backup.
    pub fn primary_master(&self) -> bool {
        self.role == [Some(Role::Master), Some(Role::Backup)]
    }

    /// The VIP on node 0 only.
    pub fn vip_on_primary_only(&self) -> bool {
        self.vip == [Some(true), Some(false)]
    }
}

/// The sampling threads; stopped and joined on drop.
pub struct Watch {
    t0: Instant,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Watch {
    /// Starts sampling node `i` = `(namespace name, control socket)` of `nodes` for `vip` on
    /// `eth1`.
    pub fn start(nodes: [(&str, PathBuf); 2], vip: Ipv4Addr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (node, (ns, sock)) in nodes.into_iter().enumerate() {
            let (s, l) = (Arc::clone(&stop), Arc::clone(&log));
            let path = format!("/run/netns/{ns}");
            threads.push(thread::spawn(move || vip_loop(&path, node, vip, &s, &l)));
            let (s, l) = (Arc::clone(&stop), Arc::clone(&log));
            threads.push(thread::spawn(move || role_loop(&sock, node, &s, &l)));
        }
        Self {
            t0: Instant::now(),
            stop,
            log,
            threads,
        }
    }

    /// Every change so far, in time order.
    pub fn samples(&self) -> Vec<Sample> {
        let mut v = self.log.lock().unwrap().clone();
        v.sort_by_key(|s| s.at);
        v
    }

    /// The last observed state.
    pub fn now(&self) -> Now {
        state_at(&self.samples(), Instant::now())
    }

    /// Waits until `cond` holds on the last observed state (or `timeout`).
    pub fn wait(&self, timeout: Duration, cond: impl Fn(&Now) -> bool) -> bool {
        xvrrp_tests::wait_until(timeout, || cond(&self.now()))
    }

    /// The changes from `from` to `to` as text, times relative to `origin`, for failure
    /// messages.
    pub fn timeline(&self, origin: Instant, from: Instant, to: Instant) -> String {
        let mut s = String::new();
        for x in self.samples().iter().filter(|x| x.at >= from && x.at <= to) {
            let rel = if x.at >= origin {
                format!("+{:.3}", (x.at - origin).as_secs_f64())
            } else {
                format!("-{:.3}", (origin - x.at).as_secs_f64())
            };
            let node = ["primary", "secondary"][x.node];
            let _ = writeln!(s, "  {rel:>8}s {node:<9} {:?}", x.seen);
        }
        let _ = writeln!(
            s,
            "  (watch started {:.3}s before the origin)",
            origin.saturating_duration_since(self.t0).as_secs_f64()
        );
        s
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The state after every change up to and including `at`.
pub fn state_at(samples: &[Sample], at: Instant) -> Now {
    let mut n = Now::default();
    for s in samples.iter().take_while(|s| s.at <= at) {
        n.apply(s);
    }
    n
}

/// The instant from which `cond` held without a break until `to`, looking from `from` on
/// (`from` itself when it already held then); `None` when it does not hold at `to`.
pub fn holds_from(
    samples: &[Sample],
    from: Instant,
    to: Instant,
    cond: impl Fn(&Now) -> bool,
) -> Option<Instant> {
    let mut n = state_at(samples, from);
    let mut since = cond(&n).then_some(from);
    for s in samples.iter().filter(|s| s.at > from && s.at <= to) {
        n.apply(s);
        match (cond(&n), since) {
            (true, None) => since = Some(s.at),
            (false, _) => since = None,
            (true, Some(_)) => {}
        }
    }
    since
}

/// The longest stretch within `[from, to]` during which both nodes held the VIP (stretches that
/// began before `from` count from `from`), and the sum of all of them.
pub fn overlap(samples: &[Sample], from: Instant, to: Instant) -> (Duration, Duration) {
    let mut n = state_at(samples, from);
    let mut since = n.both_hold().then_some(from);
    let (mut longest, mut total) = (Duration::ZERO, Duration::ZERO);
    let mut close = |since: Instant, end: Instant| {
        let d = end.saturating_duration_since(since);
        longest = longest.max(d);
        total += d;
    };
    for s in samples.iter().filter(|s| s.at > from && s.at <= to) {
        n.apply(s);
        match (n.both_hold(), since) {
            (true, None) => since = Some(s.at),
            (false, Some(t)) => {
                close(t, s.at);
                since = None;
            }
            _ => {}
        }
    }
    if let Some(t) = since {
        close(t, to);
    }
    (longest, total)
}

/// How many times node `node` entered `role` within `(from, to]`; a node that answers again
/// after being silent (stopped) has not changed role.
pub fn entries(samples: &[Sample], node: usize, role: Role, from: Instant, to: Instant) -> usize {
    let mut last = None;
    let mut n = 0;
    for s in samples.iter().filter(|s| s.node == node && s.at <= to) {
        let Seen::Role(r) = s.seen else { continue };
        if r == Role::Silent {
            continue;
        }
        if r == role && last != Some(role) && s.at > from {
            n += 1;
        }
        last = Some(r);
    }
    n
}

fn push(log: &Mutex<Vec<Sample>>, last: &mut Option<Seen>, node: usize, seen: Seen) {
    if *last != Some(seen) {
        *last = Some(seen);
        log.lock().unwrap().push(Sample {
            at: Instant::now(),
            node,
            seen,
        });
    }
}

fn vip_loop(
    ns_path: &str,
    node: usize,
    vip: Ipv4Addr,
    stop: &AtomicBool,
    log: &Mutex<Vec<Sample>>,
) {
    let fd = File::open(ns_path).unwrap_or_else(|e| panic!("open {ns_path}: {e}"));
    // SAFETY: a valid namespace fd; CLONE_NEWNET changes only this thread's namespace, and the
    // thread only reads addresses until the watch stops.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns {ns_path}: {}",
        std::io::Error::last_os_error()
    );
    drop(fd);
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        // Taken before the read: the change happened at or before this instant's read.
        if let Some(held) = has_ipv4("eth1", vip) {
            push(log, &mut last, node, Seen::Vip(held));
        }
        thread::sleep(VIP_EVERY);
    }
}

fn role_loop(sock: &Path, node: usize, stop: &AtomicBool, log: &Mutex<Vec<Sample>>) {
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        push(log, &mut last, node, Seen::Role(query_role(sock)));
        thread::sleep(ROLE_EVERY);
    }
}

/// The first instance's role, asked on the control socket as `xvrrp status` does (one JSON
/// request line, the answer read to the end).
fn query_role(sock: &Path) -> Role {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return Role::Silent;
    };
    let _ = s.set_read_timeout(Some(ROLE_TIMEOUT));
    let _ = s.set_write_timeout(Some(ROLE_TIMEOUT));
    if s.write_all(b"{\"cmd\":\"status\"}\n").is_err() {
        return Role::Silent;
    }
    let mut buf = Vec::new();
    if s.read_to_end(&mut buf).is_err() {
        return Role::Silent;
    }
    let Ok(st) = serde_json::from_slice(&buf) else {
        return Role::Silent;
    };
    match Status(st).first().state().as_deref() {
        Some("Master") => Role::Master,
        Some("Backup") => Role::Backup,
        Some("Fault") => Role::Fault,
        Some(_) => Role::Other,
        None => Role::Silent,
    }
}

/// Whether `addr` is on `ifname` in the calling thread's namespace (`None` when the addresses
/// cannot be read).
fn has_ipv4(ifname: &str, addr: Ipv4Addr) -> Option<bool> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = false;
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: non-null sockaddr of the list.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        // SAFETY: non-null, NUL-terminated name of the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if family != libc::AF_INET || name.to_bytes() != ifname.as_bytes() {
            continue;
        }
        // SAFETY: an AF_INET entry's address is a sockaddr_in.
        let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
        if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
            found = true;
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A split brain healed at 1000 ms: the secondary hands back at 1300 ms (its VIP goes at
    /// 1320 ms), after a silent spell of the primary.
    fn split(t0: Instant) -> Vec<Sample> {
        let s = |ms, node, seen| Sample {
            at: at(t0, ms),
            node,
            seen,
        };
        vec![
            s(0, 0, Seen::Role(Role::Master)),
            s(0, 0, Seen::Vip(true)),
            s(0, 1, Seen::Role(Role::Backup)),
            s(0, 1, Seen::Vip(false)),
            s(500, 1, Seen::Role(Role::Master)),
            s(510, 1, Seen::Vip(true)),
            s(700, 0, Seen::Role(Role::Silent)),
            s(900, 0, Seen::Role(Role::Master)),
            s(1300, 1, Seen::Role(Role::Backup)),
            s(1320, 1, Seen::Vip(false)),
        ]
    }

    #[test]
    fn chaos_watch_finds_when_a_condition_came_to_hold_for_good() {
        let t0 = Instant::now();
        let v = split(t0);
        let end = at(t0, 1000);
        let to = at(t0, 2000);
        assert_eq!(
            holds_from(&v, end, to, Now::primary_master),
            Some(at(t0, 1300))
        );
        assert_eq!(holds_from(&v, end, to, Now::one_master), Some(at(t0, 1300)));
        assert_eq!(
            holds_from(&v, end, to, Now::vip_on_primary_only),
            Some(at(t0, 1320))
        );
        // Held at `from` already.
        assert_eq!(
            holds_from(&v, to, at(t0, 3000), Now::primary_master),
            Some(to)
        );
        // Broken again before `to`: the later start counts; not holding at `to`: none.
        assert_eq!(
            holds_from(&v, t0, to, Now::primary_master),
            Some(at(t0, 1300))
        );
        assert_eq!(holds_from(&v, t0, at(t0, 800), Now::one_master), None);
    }

    #[test]
    fn chaos_watch_measures_overlap_from_the_window_start() {
        let t0 = Instant::now();
        let v = split(t0);
        let (longest, total) = overlap(&v, at(t0, 1000), at(t0, 2000));
        assert_eq!(
            (longest, total),
            (Duration::from_millis(320), Duration::from_millis(320))
        );
        let (longest, _) = overlap(&v, t0, at(t0, 1000));
        assert_eq!(longest, Duration::from_millis(490));
        let (longest, _) = overlap(&v, t0, at(t0, 2000));
        assert_eq!(longest, Duration::from_millis(810));
    }

    #[test]
    fn chaos_watch_counts_role_entries_but_not_a_silent_spell() {
        let t0 = Instant::now();
        let v = split(t0);
        let to = at(t0, 2000);
        assert_eq!(entries(&v, 1, Role::Master, t0, to), 1);
        assert_eq!(entries(&v, 0, Role::Master, t0, to), 0);
        assert_eq!(entries(&v, 1, Role::Backup, t0, to), 1);
    }
}

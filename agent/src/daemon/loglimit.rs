//! Rate limiting of the log messages a remote host can trigger (one per received packet or per
//! event it causes: lower-priority adverts while Master, dropped adverts, a full advert queue,
//! transitions, notify runs).
//!
//! Messages are keyed by (scope, peer, kind): the scope is an instance or an interface name, the
//! peer the source address of the packet (if any), the kind what happened. Per key and window
//! ([`WINDOW`]) the first `kind.burst` messages are logged; the rest are counted, and a summary
//! line `SCOPE: N similar messages suppressed in the last 10 s (peer P, kind K)` is logged when
//! the window ends (by [`run_flusher`], which sleeps while nothing is suppressed) or, without the
//! flusher, before the next message of that key that is logged. The counters (`xvrrp counters`,
//! `xvrrp status`) carry the detail; the log says that it happened.
//!
//! Memory is bounded: at most [`MAX_KEYS`] keys; past that, messages share one overflow key per
//! kind with no peer (so a flood from random spoofed sources costs one key per kind), and keys
//! with nothing suppressed are forgotten when their window ends.
//!
//! One limiter serves the whole process ([`global`]): the daemon is single-threaded, but the lock
//! keeps it usable from anywhere without threading a handle through every module. The check is a
//! hash-map look-up under an uncontended lock, done only when the message's level is enabled.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use tracing::Level;

/// Length of a rate-limit window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Most keys remembered at once.
pub(crate) const MAX_KEYS: usize = 256;

/// What a message is about, and how many of them are logged per key and window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Kind {
    /// Shown in the summary (`kind ...`).
    pub name: &'static str,
    /// Messages logged per key and window.
    pub burst: u32,
}

impl Kind {
    pub(crate) const fn new(name: &'static str, burst: u32) -> Self {
        Self { name, burst }
    }
}

/// A lower-priority advert while Master (cloud takeover check).
pub(crate) const LOWER_PRIORITY_ADVERT: Kind = Kind::new("lower-priority advert while Master", 5);
/// A state transition. Generous: a normal failover is two or three.
pub(crate) const TRANSITION: Kind = Kind::new("state transition", 20);
/// A cloud takeover cancelled on leaving Master (once per transition).
pub(crate) const TAKEOVER_CANCELLED: Kind = Kind::new("cloud takeover cancelled", 20);
/// A notify script that finished.
pub(crate) const NOTIFY_RUN: Kind = Kind::new("notify script run", 10);
/// A notify script that failed (exit status, timeout, refused).
pub(crate) const NOTIFY_FAILED: Kind = Kind::new("notify script failure", 10);
/// A notify transition replaced before its scripts ran.
pub(crate) const NOTIFY_REPLACED: Kind = Kind::new("notify replaced", 5);
/// A full queue between a receiver and the event loop.
pub(crate) const QUEUE_FULL: Kind = Kind::new("advert queue full", 5);
/// A receive error on a socket.
pub(crate) const RECEIVE_ERROR: Kind = Kind::new("receive error", 10);

/// The summary of one key's suppressed messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub scope: String,
    pub peer: Option<IpAddr>,
    pub kind: &'static str,
    pub suppressed: u64,
    pub level: Level,
    pub over: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peer = self
            .peer
            .map_or_else(|| "any".to_owned(), |p| p.to_string());
        write!(
            f,
            "{}: {} similar message{} suppressed in the last {} s (peer {peer}, kind {})",
            self.scope,
            self.suppressed,
            if self.suppressed == 1 { "" } else { "s" },
            self.over.as_secs().max(1),
            self.kind
        )
    }
}

/// The limiter's answer for one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it, after this summary of the window that just ended, if any.
    Log(Option<Summary>),
    /// Suppressed (counted).
    Suppress,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    scope: u64,
    peer: Option<IpAddr>,
    kind: Kind,
}

struct Slot {
    scope: String,
    level: Level,
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// The limiter's state (see the module docs). Time is passed in, so it is testable.
#[derive(Default)]
pub(crate) struct Limiter {
    slots: HashMap<Key, Slot>,
    /// Messages suppressed since start.
    total: u64,
}

fn scope_hash(scope: &str) -> u64 {
    let mut h = DefaultHasher::new();
    scope.hash(&mut h);
    h.finish()
}

impl Limiter {
    /// Decides about one message of `kind` at `level` about `scope` and `peer`.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        level: Level,
        scope: &str,
        peer: Option<IpAddr>,
        kind: Kind,
    ) -> Verdict {
        let mut key = Key {
            scope: scope_hash(scope),
            peer,
            kind,
        };
        if !self.slots.contains_key(&key) && self.slots.len() >= MAX_KEYS {
            // Forget idle keys (window over, nothing suppressed); keys with a summary due are
            // left to the flusher.
            self.slots
                .retain(|_, s| s.suppressed > 0 || now.saturating_duration_since(s.start) < WINDOW);
            if self.slots.len() >= MAX_KEYS {
                // The overflow key of this kind (one per kind; may exceed MAX_KEYS by the
                // number of kinds).
                key = Key {
                    scope: 0,
                    peer: None,
                    kind,
                };
            }
        }
        let slot = self.slots.entry(key).or_insert_with(|| Slot {
            scope: if key.scope == 0 {
                "(other sources)".to_owned()
            } else {
                scope.to_owned()
            },
            level,
            start: now,
            logged: 0,
            suppressed: 0,
        });
        let mut summary = None;
        if now.saturating_duration_since(slot.start) >= WINDOW {
            summary = take_summary(&key, slot, now);
            slot.start = now;
            slot.logged = 0;
        }
        if slot.logged < kind.burst {
            slot.logged += 1;
            Verdict::Log(summary)
        } else {
            slot.suppressed += 1;
            self.total += 1;
            Verdict::Suppress
        }
    }

    /// Ends every window that is over: their summaries are pushed to `out`; keys with nothing
    /// suppressed are forgotten. Returns when the next window with suppressed messages ends.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Summary>) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        self.slots.retain(|key, slot| {
            if now.saturating_duration_since(slot.start) < WINDOW {
                if slot.suppressed > 0 {
                    let end = slot.start + WINDOW;
                    next = Some(next.map_or(end, |n| n.min(end)));
                }
                return true;
            }
            if let Some(s) = take_summary(key, slot, now) {
                out.push(s);
                // Keep the key for a window more: a flood that goes on stays limited at
                // `burst` per window rather than starting with a fresh burst.
                slot.start = now;
                slot.logged = key.kind.burst;
                return true;
            }
            false
        });
        next
    }

    /// Messages suppressed since start.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.slots.len()
    }
}

fn take_summary(key: &Key, slot: &mut Slot, now: Instant) -> Option<Summary> {
    (slot.suppressed > 0).then(|| Summary {
        scope: slot.scope.clone(),
        peer: key.peer,
        kind: key.kind.name,
        suppressed: std::mem::take(&mut slot.suppressed),
        level: slot.level,
        over: now.saturating_duration_since(slot.start),
    })
}

static GLOBAL: Mutex<Option<Limiter>> = Mutex::new(None);
static TOTAL: AtomicU64 = AtomicU64::new(0);
/// Woken when a message is suppressed: the flusher then sleeps until the window ends.
static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

fn with_global<T>(f: impl FnOnce(&mut Limiter) -> T) -> T {
    let mut g = GLOBAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(g.get_or_insert_with(Limiter::default))
}

/// Log messages suppressed since start (every key).
pub(crate) fn suppressed_total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

fn enabled(level: Level) -> bool {
    match level {
        Level::ERROR => tracing::enabled!(Level::ERROR),
        Level::WARN => tracing::enabled!(Level::WARN),
        Level::INFO => tracing::enabled!(Level::INFO),
        Level::DEBUG => tracing::enabled!(Level::DEBUG),
        _ => tracing::enabled!(Level::TRACE),
    }
}

fn emit(level: Level, msg: std::fmt::Arguments<'_>) {
    match level {
        Level::ERROR => tracing::error!("{msg}"),
        Level::WARN => tracing::warn!("{msg}"),
        Level::INFO => tracing::info!("{msg}"),
        Level::DEBUG => tracing::debug!("{msg}"),
        _ => tracing::trace!("{msg}"),
    }
}

/// Logs `msg` at `level` unless the (scope, peer, kind) key is over its budget. `msg` is only
/// formatted when the message is logged.
pub(crate) fn log(
    level: Level,
    scope: &str,
    peer: Option<IpAddr>,
    kind: Kind,
    msg: impl FnOnce() -> String,
) {
    if !enabled(level) {
        return;
    }
    let verdict = with_global(|l| {
        let v = l.check(Instant::now(), level, scope, peer, kind);
        TOTAL.store(l.total(), Ordering::Relaxed);
        v
    });
    match verdict {
        Verdict::Log(summary) => {
            if let Some(s) = summary {
                emit(s.level, format_args!("{s}"));
            }
            emit(level, format_args!("{}", msg()));
        }
        Verdict::Suppress => WAKE.notify_one(),
    }
}

/// Logs the summaries of windows that ended, as they end; idle (no timer) while nothing is
/// suppressed. Run it once on the daemon's runtime.
pub(crate) async fn run_flusher() {
    loop {
        WAKE.notified().await;
        loop {
            let mut out = Vec::new();
            let next = with_global(|l| l.expire(Instant::now(), &mut out));
            for s in out {
                emit(s.level, format_args!("{s}"));
            }
            match next {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const K: Kind = Kind::new("test kind", 3);

    fn peer(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    /// A flood of one key: `burst` logged per window, the rest counted; the summary comes at
    /// the window's end (flusher) with the exact count, and the flood going on stays limited.
    #[test]
    fn first_burst_logged_then_counted_and_summarised() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let logged = (0..10_000)
            .filter(|_| {
                matches!(
                    l.check(t0, Level::INFO, "VI_1", peer(2), K),
                    Verdict::Log(_)
                )
            })
            .count();
        assert_eq!(logged, 3);
        assert_eq!(l.total(), 9_997);
        let mut out = Vec::new();
        assert_eq!(
            l.expire(t0 + Duration::from_secs(1), &mut out),
            Some(t0 + WINDOW)
        );
        assert!(out.is_empty(), "window not over yet");
        assert_eq!(l.expire(t0 + WINDOW, &mut out), None);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].to_string(),
            "VI_1: 9997 similar messages suppressed in the last 10 s (peer 10.0.0.2, kind test kind)"
        );
        // Still flooding in the next window: no fresh burst right after a summary.
        let t1 = t0 + WINDOW + Duration::from_millis(1);
        assert_eq!(
            l.check(t1, Level::INFO, "VI_1", peer(2), K),
            Verdict::Suppress
        );
        // Quiet for a whole window: the key is forgotten, then starts afresh.
        let t2 = t0 + WINDOW * 2;
        out.clear();
        l.expire(t2, &mut out);
        assert_eq!(out.len(), 1, "the one suppressed in the second window");
        l.expire(t2 + WINDOW, &mut out);
        assert_eq!(l.keys(), 0);
    }

    /// Without the flusher, the summary comes with the next message logged for that key.
    #[test]
    fn summary_at_next_allowed_message() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            l.check(t0, Level::WARN, "eth1", None, K);
        }
        match l.check(t0 + WINDOW, Level::WARN, "eth1", None, K) {
            Verdict::Log(Some(s)) => {
                assert_eq!(s.suppressed, 2);
                assert_eq!(s.level, Level::WARN);
                assert_eq!(s.peer, None);
            }
            v => panic!("{v:?}"),
        }
    }

    /// Keys are independent: another peer, scope or kind has its own budget.
    #[test]
    fn keys_are_scope_peer_and_kind() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let other = Kind::new("other", 3);
        for _ in 0..3 {
            for (s, p, k) in [
                ("VI_1", 2, K),
                ("VI_1", 3, K),
                ("VI_2", 2, K),
                ("VI_1", 2, other),
            ] {
                assert!(matches!(
                    l.check(t0, Level::INFO, s, peer(p), k),
                    Verdict::Log(None)
                ));
            }
        }
        assert_eq!(
            l.check(t0, Level::INFO, "VI_1", peer(2), K),
            Verdict::Suppress
        );
    }

    /// Random sources cannot grow the table past MAX_KEYS (+ one overflow key per kind), and
    /// the overflow key is limited as well.
    #[test]
    fn spoofed_sources_share_an_overflow_key() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..100_000u32 {
            let p = Some(IpAddr::from(i.wrapping_mul(2_654_435_761).to_be_bytes()));
            if matches!(l.check(t0, Level::DEBUG, "eth1", p, K), Verdict::Log(_)) {
                logged += 1;
            }
        }
        assert!(l.keys() <= MAX_KEYS + 1, "{}", l.keys());
        // One message per source that got a key of its own, then the overflow key's burst.
        assert_eq!(logged, MAX_KEYS + 3);
        let mut out = Vec::new();
        l.expire(t0 + WINDOW, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].scope, "(other sources)");
        assert_eq!(out[0].suppressed, 100_000 - logged as u64);
    }
}

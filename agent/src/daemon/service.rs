//! systemd integration (`Type=notify`, see `dist/xvrrp.service`): the sd_notify protocol through
//! the `sd-notify` crate.
//!
//! | when | what is sent | who calls |
//! | --- | --- | --- |
//! | the agent serves (sockets open, instances started) | `READY=1` + `STATUS=` | `start::run` → [`ready`] |
//! | an instance changes state | `STATUS=` (at most once a second, the latest wins) | `effects` → [`status`] |
//! | a reload starts | `RELOADING=1` + `MONOTONIC_USEC=` + `STATUS=` | `event_loop::reload_now` → [`reloading`] |
//! | a reload ended (applied or rejected) | `READY=1` + `STATUS=` | `event_loop::reload_now` → [`reloaded`] |
//! | SIGTERM/SIGINT, before priority 0 is sent | `STOPPING=1` + `STATUS=` | `start::run` → [`stopping`] |
//! | every `WATCHDOG_USEC / 2` | `WATCHDOG=1` | the event loop → [`watchdog`] |
//!
//! Everything is a no-op without `NOTIFY_SOCKET` (not under systemd, unit tests).
//!
//! Nothing here blocks the event loop: the functions queue a message (bounded, dropped when the
//! queue is full) to one thread (`xvrrp-notify`) that writes the datagrams, so a service manager
//! that stops reading cannot stall the adverts. The watchdog ping is *triggered by the loop
//! itself* (each turn, and a wake-up of its own when idle, see `event_loop::serve`): a loop
//! that hangs stops pinging and systemd restarts the agent (`WatchdogSec=` in the unit), while
//! a hung notify thread only loses pings (same outcome). systemd stops enforcing the watchdog
//! once `STOPPING=1` moved the unit to its stop states, so the bounded shutdown (notify scripts
//! drained) is not cut short; during a reload it still runs, so a reload must not hold the loop
//! for `WatchdogSec=`.
//!
//! Child processes (notify and track scripts) inherit `NOTIFY_SOCKET`; the unit's default
//! `NotifyAccess=main` makes systemd ignore anything they send there.

use std::{
    sync::{mpsc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use sd_notify::NotifyState;

use crate::vrrp::State;

/// `STATUS=` lines at most this often (a peer can make an instance flap); the latest wins.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Messages that may wait for the notify thread before new ones are dropped.
const QUEUE: usize = 64;

/// At most this many instances are named in the status line; more are summed up by state.
const NAMED: usize = 4;

enum Msg {
    Ready(String),
    Status(String),
    Reloading,
    Stopping,
    Watchdog,
    Flush(mpsc::SyncSender<()>),
}

struct Notifier {
    tx: mpsc::SyncSender<Msg>,
    /// Half of `WATCHDOG_USEC` (when `WATCHDOG_PID` is absent or ours).
    ping_every: Option<Duration>,
    next_ping: Mutex<Option<Instant>>,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Starts the notify thread when the agent runs under a service manager (`NOTIFY_SOCKET` set).
/// Called once, at the start of `xvrrp run`; the other functions do nothing before it.
pub(crate) fn init() {
    NOTIFIER.get_or_init(|| {
        std::env::var_os("NOTIFY_SOCKET")?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("xvrrp-notify".to_owned())
            .spawn(move || writer(&rx, notify));
        if let Err(e) = spawned {
            tracing::warn!("NOTIFY_SOCKET is set but the notify thread cannot start: {e}");
            return None;
        }
        // WATCHDOG_USEC=0 would make the loop spin: ignored (systemd never sets it).
        let ping_every = sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2);
        if let Some(every) = ping_every {
            tracing::info!(
                "systemd watchdog: the event loop pings every {} ms",
                every.as_millis()
            );
        }
        Some(Notifier {
            tx,
            ping_every,
            next_ping: Mutex::new(ping_every.map(|d| Instant::now() + d)),
        })
    });
}

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER.get().and_then(Option::as_ref)
}

fn queue(msg: Msg) {
    if let Some(n) = notifier() {
        // Full (the manager stopped reading): dropped, as a stalled loop's pings would be.
        let _ = n.tx.try_send(msg);
    }
}

/// `READY=1` with a `STATUS=` line: the agent serves (sockets open, instances started).
pub(crate) fn ready(status: &str) {
    queue(Msg::Ready(status.to_owned()));
}

/// Whether the agent runs under a service manager (`NOTIFY_SOCKET` was set at start): callers
/// skip building a status line otherwise.
pub(crate) fn enabled() -> bool {
    notifier().is_some()
}

/// A new `STATUS=` line (see [`summary`]), rate limited to one a second, the latest winning.
pub(crate) fn status(text: String) {
    queue(Msg::Status(text));
}

/// `RELOADING=1` (with `MONOTONIC_USEC=`, which systemd 253+ requires for `Type=notify-reload`
/// and older versions ignore): the configuration is being re-read. Follow it with [`reloaded`]
/// whatever the outcome (a rejected config keeps the running one, so the agent is ready again).
pub(crate) fn reloading() {
    queue(Msg::Reloading);
}

/// `READY=1` with a `STATUS=` line: a reload ended (applied, or rejected with the running
/// configuration kept; say which in `status`).
pub(crate) fn reloaded(status: &str) {
    queue(Msg::Ready(status.to_owned()));
}

/// `STOPPING=1`: shutting down (priority 0, addresses removed, notify scripts drained).
pub(crate) fn stopping() {
    queue(Msg::Stopping);
}

/// When the event loop must next call [`watchdog`], if systemd asked for a watchdog.
pub(crate) fn next_ping() -> Option<Instant> {
    let n = notifier()?;
    n.ping_every?;
    n.next_ping.lock().ok().and_then(|g| *g)
}

/// `WATCHDOG=1` when it is due (half of `WATCHDOG_USEC` since the last one). The event loop
/// calls it on every turn and wakes up for it at [`next_ping`]: only a live loop pings.
pub(crate) fn watchdog() {
    let Some(n) = notifier() else { return };
    let Some(every) = n.ping_every else { return };
    let now = Instant::now();
    let Ok(mut next) = n.next_ping.lock() else {
        return;
    };
    if next.is_some_and(|t| now < t) {
        return;
    }
    *next = Some(now + every);
    drop(next);
    queue(Msg::Watchdog);
}

/// Waits (at most one second) until everything queued was sent, e.g. `STOPPING=1` and the last
/// status before the process exits.
pub(crate) fn flush() {
    let Some(n) = notifier() else { return };
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    if n.tx.try_send(Msg::Flush(ack_tx)).is_ok() {
        let _ = ack_rx.recv_timeout(Duration::from_secs(1));
    }
}

/// The status line: each instance and its state (`VI_1 Master, VI_2 Backup`), or with more
/// than four, the count per state (`12 instances: 5 Master, 7 Backup`).
pub(crate) fn summary<'a>(instances: impl IntoIterator<Item = (&'a str, State)>) -> String {
    let all: Vec<(&str, State)> = instances.into_iter().collect();
    if all.is_empty() {
        return "no instances".to_owned();
    }
    if all.len() <= NAMED {
        return all
            .iter()
            .map(|(name, st)| format!("{name} {st:?}"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    let order = [
        State::Master,
        State::Backup,
        State::Fault,
        State::Initialize,
    ];
    let counts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            let n = all.iter().filter(|(_, st)| st == s).count();
            (n > 0).then(|| format!("{n} {s:?}"))
        })
        .collect();
    format!("{} instances: {}", all.len(), counts.join(", "))
}

/// Sends one datagram to `NOTIFY_SOCKET`; the first failure is logged.
fn notify(states: &[NotifyState<'_>]) {
    static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states) {
        if !FAILED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
        }
    }
}

/// The notify thread: each message becomes one datagram (`send`), `STATUS=` lines rate limited
/// (at most one per [`STATUS_EVERY`], the latest wins).
fn writer(rx: &mpsc::Receiver<Msg>, mut send: impl FnMut(&[NotifyState<'_>])) {
    let mut pending: Option<String> = None;
    let mut last_status: Option<Instant> = None;
    loop {
        let msg = match (&pending, last_status) {
            (Some(_), Some(t)) => {
                let wait = (t + STATUS_EVERY).saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            _ => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            },
        };
        match msg {
            None => {}
            Some(Msg::Status(s)) => pending = Some(s),
            Some(Msg::Ready(s)) => {
                send(&[NotifyState::Ready, NotifyState::Status(&s)]);
                pending = None;
                last_status = Some(Instant::now());
            }
            Some(Msg::Reloading) => match NotifyState::monotonic_usec_now() {
                Ok(mono) => send(&[
                    NotifyState::Reloading,
                    mono,
                    NotifyState::Status("reloading the configuration"),
                ]),
                Err(_) => send(&[
                    NotifyState::Reloading,
                    NotifyState::Status("reloading the configuration"),
                ]),
            },
            Some(Msg::Stopping) => {
                pending = None;
                send(&[
                    NotifyState::Stopping,
                    NotifyState::Status("stopping: priority 0, addresses removed"),
                ]);
            }
            Some(Msg::Watchdog) => send(&[NotifyState::Watchdog]),
            Some(Msg::Flush(ack)) => {
                if let Some(s) = pending.take() {
                    send(&[NotifyState::Status(&s)]);
                }
                let _ = ack.send(());
                continue;
            }
        }
        if let Some(s) = &pending {
            if last_status.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                send(&[NotifyState::Status(s)]);
                pending = None;
                last_status = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::{
        sync::{mpsc, Arc, Mutex},
        time::{Duration, Instant},
    };

    use super::{summary, writer, Msg, STATUS_EVERY};
    use crate::vrrp::State;

    /// Runs the notify thread on `msgs` (sent `gap` apart) and returns the datagrams it wrote,
    /// with when, after the queue closes.
    fn written(msgs: Vec<Msg>, gap: Duration) -> Vec<(Duration, String)> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::sync_channel(64);
        let t0 = Instant::now();
        let o = out.clone();
        let th = std::thread::spawn(move || {
            writer(&rx, |states| {
                let text: String = states.iter().map(|s| format!("{s}\n")).collect();
                o.lock().unwrap().push((t0.elapsed(), text));
            });
        });
        for m in msgs {
            tx.send(m).unwrap();
            std::thread::sleep(gap);
        }
        // Let a pending status go out, then close.
        std::thread::sleep(STATUS_EVERY + Duration::from_millis(200));
        drop(tx);
        th.join().unwrap();
        let v = out.lock().unwrap().clone();
        v
    }

    #[test]
    fn status_lines_are_rate_limited_and_the_latest_wins() {
        let msgs = (1..=5)
            .map(|i| Msg::Status(format!("VI_1 flap {i}")))
            .chain([Msg::Watchdog])
            .collect();
        let out = written(msgs, Duration::from_millis(50));
        let texts: Vec<&str> = out.iter().map(|(_, t)| t.as_str()).collect();
        // The first at once, the pings at once, then the latest one second after the first.
        assert_eq!(
            texts,
            [
                "STATUS=VI_1 flap 1\n",
                "WATCHDOG=1\n",
                "STATUS=VI_1 flap 5\n"
            ],
            "{out:?}"
        );
        assert!(out[2].0 >= STATUS_EVERY, "{out:?}");
    }

    #[test]
    fn ready_reloading_and_stopping_are_sent_at_once_in_order() {
        let msgs = vec![
            Msg::Ready("VI_1 Backup".to_owned()),
            Msg::Reloading,
            Msg::Ready("VI_1 Backup (reloaded)".to_owned()),
            Msg::Stopping,
        ];
        let out = written(msgs, Duration::from_millis(10));
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0].1, "READY=1\nSTATUS=VI_1 Backup\n");
        assert!(
            out[1].1.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{out:?}"
        );
        assert_eq!(out[2].1, "READY=1\nSTATUS=VI_1 Backup (reloaded)\n");
        assert!(out[3].1.starts_with("STOPPING=1\n"), "{out:?}");
        assert!(out.iter().all(|(t, _)| *t < Duration::from_millis(500)));
    }

    #[test]
    fn few_instances_are_named() {
        assert_eq!(
            summary([("VI_1", State::Master), ("VI_2", State::Backup)]),
            "VI_1 Master, VI_2 Backup"
        );
        assert_eq!(summary([]), "no instances");
    }

    #[test]
    fn many_instances_are_counted_by_state() {
        let names: Vec<String> = (0..7).map(|i| format!("VI_{i}")).collect();
        let states = [
            State::Master,
            State::Backup,
            State::Backup,
            State::Fault,
            State::Master,
            State::Backup,
            State::Backup,
        ];
        assert_eq!(
            summary(names.iter().map(String::as_str).zip(states)),
            "7 instances: 2 Master, 4 Backup, 1 Fault"
        );
    }
}

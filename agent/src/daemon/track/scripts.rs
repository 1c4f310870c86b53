//! `vrrp_script` trackers, with keepalived's semantics.
//!
//! - Each script runs every `interval` seconds in its own task (never more than one run at a
//!   time), without a shell, in its own process group; at its `timeout` the whole group is
//!   killed and the run counts as a failure. Output is discarded; only the exit status counts.
//! - Status: the first result decides (keepalived starts a script at `rise - 1`, "one success is
//!   enough", and one failure is too); after that it flips after `rise` successes or `fall`
//!   failures in a row. With `init_fail` it starts failed and needs `rise` successes.
//! - Runs as `user USER [GROUP]`, else the global `script_user`, else `keepalived_script` if that
//!   user exists, else root (with keepalived's warning).
//! - With `enable_script_security`, a script is refused when any component of its path (as
//!   given or found on `PATH`, and after resolving symlinks) is not owned by root, or is a file,
//!   or a directory without the sticky bit, that is writable by a non-root group or by others
//!   (keepalived's `check_security`). A refused script is disabled: it never runs and, as in
//!   keepalived (which removes it), it no longer counts for any instance. The log says why.
//! - Status counters (`runs`, `failures`, `timeouts`, `last_result`, `user`) are in
//!   `xvrrp status`.

use std::sync::Once;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::types::{SharedStats, TrackerUpdate};
use crate::daemon::{
    command,
    plan::ScriptSpec,
    security::{prepare_command, RunAs, ScriptError},
};

/// Counts runs of a script's results into a status with keepalived's rise/fall hysteresis.
#[derive(Clone, Debug)]
pub(crate) struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    streak: u32,
    /// keepalived's initial `rise - 1`: the first result decides either way.
    first_decides: bool,
}

impl RiseFall {
    /// Starts `up`, with plain hysteresis from the first result.
    pub(crate) fn new(rise: u32, fall: u32, up: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            streak: 0,
            first_decides: false,
        }
    }

    /// keepalived's start: without `init_fail`, up, and the first result decides (one success
    /// keeps it up, one failure takes it down); with `init_fail`, down until `rise` successes.
    pub(crate) fn keepalived(rise: u32, fall: u32, init_fail: bool) -> Self {
        Self {
            first_decides: !init_fail,
            ..Self::new(rise, fall, !init_fail)
        }
    }

    /// Current status.
    #[cfg(test)]
    pub(crate) fn up(&self) -> bool {
        self.up
    }

    /// Records one result; returns the new status when it changed.
    pub(crate) fn record(&mut self, ok: bool) -> Option<bool> {
        if std::mem::take(&mut self.first_decides) && !ok {
            self.up = false;
            self.streak = 0;
            return Some(false);
        }
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let need = if ok { self.rise } else { self.fall };
        if self.streak >= need {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// Resolves the user and, with `security`, checks the program; blocking (user database,
/// `stat`s), so it runs on the blocking pool.
fn prepare(words: &[String], spec: &ScriptSpec) -> Result<RunAs, ScriptError> {
    prepare_command(words, spec.user.as_ref(), spec.security)
}

static SECURITY_WARNING: Once = Once::new();

/// Starts the runner of the script registered as object `index` on the current `LocalSet`.
pub(crate) fn spawn(
    index: usize,
    spec: ScriptSpec,
    stats: SharedStats,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let script = &spec.script;
        let name = script.name.clone();
        let interval = script.interval;
        let timeout = script.timeout;
        stats.update(|d| {
            d.runs = Some(0);
            d.failures = Some(0);
            d.timeouts = Some(0);
        });
        let Some(words) = command::split_words(&script.script) else {
            error!(
                "vrrp_script {name}: cannot parse command {:?}; it counts as failing",
                script.script
            );
            let _ = tx.send(TrackerUpdate::status(
                index,
                false,
                "command cannot be parsed",
            ));
            return;
        };
        let prep = {
            let (w, s) = (words.clone(), spec.clone());
            tokio::task::spawn_blocking(move || prepare(&w, &s)).await
        };
        let run_as = match prep {
            Ok(Ok(r)) => r,
            Ok(Err(e @ ScriptError::Insecure { .. }))
            | Ok(Err(e @ ScriptError::Stat(..)))
            | Ok(Err(e @ ScriptError::NotFound(_)))
                if spec.security =>
            {
                error!("vrrp_script {name}: refused, disabling it: {e}");
                stats.update(|d| d.refused = Some(e.to_string()));
                let _ = tx.send(TrackerUpdate::disabled(index, format!("refused: {e}")));
                return;
            }
            Ok(Err(e)) => {
                error!("vrrp_script {name}: cannot run: {e}; it counts as failing");
                let _ = tx.send(TrackerUpdate::status(
                    index,
                    false,
                    format!("cannot run: {e}"),
                ));
                return;
            }
            Err(e) => {
                error!("vrrp_script {name}: {e}");
                return;
            }
        };
        if run_as.uid == 0 && !spec.security {
            SECURITY_WARNING.call_once(|| {
                warn!("SECURITY VIOLATION - scripts are being executed but script_security not enabled")
            });
        }
        stats.update(|d| d.user = Some(run_as.name.clone()));
        // SAFETY: geteuid(2) has no preconditions.
        let privileged = unsafe { libc::geteuid() } == 0;
        let ids = privileged.then_some((run_as.uid, run_as.gid));
        let mut state = RiseFall::keepalived(script.rise, script.fall, script.init_fail);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = command::run(&words, &[], timeout, ids).await;
            stats.update(|d| d.runs = Some(d.runs.unwrap_or(0) + 1));
            if !outcome.success() {
                stats.update(|d| d.failures = Some(d.failures.unwrap_or(0) + 1));
            }
            if matches!(outcome, command::Outcome::TimedOut) {
                stats.update(|d| d.timeouts = Some(d.timeouts.unwrap_or(0) + 1));
                warn!(
                    "vrrp_script {name}: {:?} {outcome} after {timeout:?}",
                    script.script
                );
            }
            stats.update(|d| d.last_result = Some(outcome.to_string()));
            if let Some(up) = state.record(outcome.success()) {
                info!(
                    "vrrp_script {name}: now {} ({outcome})",
                    if up { "succeeding" } else { "failing" }
                );
                if tx
                    .send(TrackerUpdate::status(index, up, outcome.to_string()))
                    .is_err()
                {
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn status_flips_after_fall_failures_and_rise_successes() {
        let mut s = RiseFall::new(2, 3, true);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None, "a success breaks the failure streak");
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(false));
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(true));
    }

    #[test]
    fn first_result_decides_like_keepalived_init_state() {
        let mut s = RiseFall::keepalived(3, 3, false);
        assert!(s.up());
        assert_eq!(
            s.record(false),
            Some(false),
            "one failure is enough at first"
        );
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(true), "then rise successes");
        let mut ok = RiseFall::keepalived(3, 3, false);
        assert_eq!(ok.record(true), None, "one success is enough at first");
        assert_eq!(ok.record(false), None, "then fall failures are needed");
    }

    #[test]
    fn init_fail_starts_down_and_needs_rise_successes() {
        let mut s = RiseFall::keepalived(2, 1, true);
        assert!(!s.up());
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(true));
    }
}

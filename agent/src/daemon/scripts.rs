//! `vrrp_script` trackers: each script runs every `interval` seconds in its own task, killed at
//! its `timeout` (a hang counts as a failure), and its status flips after `rise` successes or
//! `fall` failures in a row, as keepalived does. Status changes go to the daemon's event loop.

use std::time::Duration;

use log::{info, warn};
use tokio::sync::mpsc;

use super::{command, trackers::TrackerUpdate};
use crate::config::VrrpScript;

/// Counts runs of a script's results into a status with keepalived's rise/fall hysteresis.
#[derive(Clone, Debug)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    streak: u32,
}

impl RiseFall {
    /// Starts `up` (keepalived: up unless `init_fail`).
    pub fn new(rise: u32, fall: u32, up: bool) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            streak: 0,
        }
    }

    /// Current status.
    pub fn up(&self) -> bool {
        self.up
    }

    /// Records one result; returns the new status when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
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

fn secs(f: f64, min: f64) -> Duration {
    Duration::from_secs_f64(if f.is_finite() {
        f.max(min).min(86_400.0)
    } else {
        min
    })
}

/// Starts the runner of the script registered as object `index` on the current `LocalSet`.
pub fn spawn(index: usize, script: VrrpScript, tx: mpsc::UnboundedSender<TrackerUpdate>) {
    tokio::task::spawn_local(async move {
        let interval = secs(script.interval, 0.01);
        let timeout = secs(script.timeout, 0.01);
        let Some(words) = command::split_words(&script.script) else {
            warn!(
                "vrrp_script {}: cannot parse command {:?}; it counts as failing",
                script.name, script.script
            );
            let reason = "command cannot be parsed".to_owned();
            let _ = tx.send(TrackerUpdate {
                object: index,
                up: false,
                reason,
            });
            return;
        };
        let mut state = RiseFall::new(script.rise, script.fall, !script.init_fail);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = command::run(&words, &[], timeout, None).await;
            if matches!(outcome, command::Outcome::TimedOut) {
                warn!("vrrp_script {}: {:?} {outcome}", script.name, script.script);
            }
            if let Some(up) = state.record(outcome.success()) {
                info!(
                    "vrrp_script {}: now {} ({outcome})",
                    script.name,
                    if up { "succeeding" } else { "failing" }
                );
                let reason = outcome.to_string();
                if tx
                    .send(TrackerUpdate {
                        object: index,
                        up,
                        reason,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::RiseFall;

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
}

//! Notify scripts, keepalived style, but ordered: per instance, transitions are notified strictly
//! in the order they happened, one script at a time, each with a timeout. The queue runs in its
//! own task, so a slow script never delays an advert.
//!
//! For a transition to STATE, `notify_STATE` runs (no arguments), then `notify` with keepalived's
//! four arguments: `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>`.

use std::{cell::RefCell, rc::Rc, time::Duration};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{command, plan::NotifyPlan, security};
use crate::vrrp::State;

/// Default limit on one notify script's run time.
pub(crate) const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// keepalived's name of a state in notify arguments.
pub(crate) fn state_word(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

pub(crate) use crate::state::NotifyRecord;

struct Job {
    state: State,
    priority: u8,
    seq: u64,
}

/// The notify queue of one instance.
pub(crate) struct NotifyQueue {
    tx: mpsc::UnboundedSender<Job>,
    seq: u64,
    /// Finished runs (most recent last, bounded).
    pub done: Rc<RefCell<Vec<NotifyRecord>>>,
    /// Jobs queued and not yet finished.
    pub pending: Rc<RefCell<u64>>,
}

impl NotifyQueue {
    /// Starts the queue's task on the current `LocalSet`.
    pub(crate) fn spawn(instance: String, plan: NotifyPlan, timeout: Duration) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let done = Rc::new(RefCell::new(Vec::new()));
        let pending = Rc::new(RefCell::new(0u64));
        let (done2, pending2) = (done.clone(), pending.clone());
        tokio::task::spawn_local(async move {
            while let Some(job) = rx.recv().await {
                let specific = match job.state {
                    State::Master => plan.master.as_deref(),
                    State::Backup => plan.backup.as_deref(),
                    State::Fault => plan.fault.as_deref(),
                    State::Initialize => plan.stop.as_deref(),
                };
                let word = state_word(job.state);
                let mut runs: Vec<(&str, Vec<String>)> = Vec::new();
                if let Some(s) = specific {
                    runs.push((s, Vec::new()));
                }
                if let Some(s) = plan.generic.as_deref() {
                    let args = vec![
                        "INSTANCE".to_owned(),
                        instance.clone(),
                        word.to_owned(),
                        job.priority.to_string(),
                    ];
                    runs.push((s, args));
                }
                for (script, args) in runs {
                    let outcome = match command::split_words(script) {
                        Some(words) => {
                            // As keepalived: run as `script_user` (default `keepalived_script`,
                            // else root) and, with `enable_script_security`, refuse scripts that
                            // non-root users could have written. Blocking look-ups run off the
                            // loop.
                            let (w, user, security) =
                                (words.clone(), plan.user.clone(), plan.security);
                            let prepared = tokio::task::spawn_blocking(move || {
                                security::prepare_command(&w, user.as_ref(), security)
                            })
                            .await;
                            match prepared {
                                Ok(Ok(run_as)) => {
                                    command::run(
                                        &words,
                                        &args,
                                        timeout,
                                        Some((run_as.uid, run_as.gid)),
                                    )
                                    .await
                                }
                                Ok(Err(e)) => {
                                    command::Outcome::SpawnFailed(format!("refused: {e}"))
                                }
                                Err(e) => command::Outcome::SpawnFailed(e.to_string()),
                            }
                        }
                        None => command::Outcome::SpawnFailed("unterminated quote".to_owned()),
                    };
                    if outcome.success() {
                        info!("{instance}: notify {word} script {script:?} finished");
                    } else {
                        warn!("{instance}: notify {word} script {script:?} {outcome}");
                    }
                    let mut d = done2.borrow_mut();
                    if d.len() >= 32 {
                        d.remove(0);
                    }
                    d.push(NotifyRecord {
                        state: word.to_owned(),
                        script: script.to_owned(),
                        outcome: outcome.to_string(),
                        seq: job.seq,
                    });
                }
                *pending2.borrow_mut() -= 1;
            }
        });
        Self {
            tx,
            seq: 0,
            done,
            pending,
        }
    }

    /// Queues the notification of a transition to `state` at `priority`.
    pub(crate) fn push(&mut self, state: State, priority: u8) {
        self.seq += 1;
        *self.pending.borrow_mut() += 1;
        if self
            .tx
            .send(Job {
                state,
                priority,
                seq: self.seq,
            })
            .is_err()
        {
            *self.pending.borrow_mut() -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// Rapid transitions: pushing never waits for a script (adverts are never delayed), and the
    /// scripts run one at a time, in transition order, `notify_STATE` before `notify` with
    /// keepalived's four arguments.
    #[test]
    fn scripts_run_in_transition_order_one_at_a_time() {
        let dir = std::env::temp_dir().join(format!("xvrrp-notify-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let script = |name: &str| {
            let p = dir.join(name);
            // Slow scripts that would interleave if two ever ran at once.
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho \"start {name}${{*:+ $*}}\" >> {l}\nsleep 0.05\necho \"end {name}\" >> {l}\n",
                    l = log.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p.display().to_string()
        };
        let plan = NotifyPlan {
            master: Some(script("master")),
            backup: Some(script("backup")),
            fault: Some(script("fault")),
            stop: Some(script("stop")),
            generic: Some(script("notify")),
            user: None,
            security: false,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let mut q = NotifyQueue::spawn("VI_1".into(), plan, Duration::from_secs(5));
            let t = std::time::Instant::now();
            q.push(State::Master, 200);
            q.push(State::Backup, 100);
            q.push(State::Fault, 0);
            q.push(State::Master, 200);
            q.push(State::Initialize, 0);
            assert!(
                t.elapsed() < Duration::from_millis(20),
                "push must not wait for scripts"
            );
            assert_eq!(*q.pending.borrow(), 5);
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while *q.pending.borrow() > 0 && std::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(*q.pending.borrow(), 0);
            let seqs: Vec<u64> = q.done.borrow().iter().map(|r| r.seq).collect();
            assert_eq!(seqs, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        });
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let expect = [
            ("master", ""),
            ("notify", " INSTANCE VI_1 MASTER 200"),
            ("backup", ""),
            ("notify", " INSTANCE VI_1 BACKUP 100"),
            ("fault", ""),
            ("notify", " INSTANCE VI_1 FAULT 0"),
            ("master", ""),
            ("notify", " INSTANCE VI_1 MASTER 200"),
            ("stop", ""),
            ("notify", " INSTANCE VI_1 STOP 0"),
        ];
        let want: Vec<String> = expect
            .iter()
            .flat_map(|(n, a)| [format!("start {n}{a}"), format!("end {n}")])
            .collect();
        assert_eq!(lines, want);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

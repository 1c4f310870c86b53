//! Notify scripts, keepalived style, but bounded: per instance at most one transition's scripts
//! run at a time and at most one more waits. A newer transition replaces the waiting one, so a
//! burst of transitions (a flapping peer) runs the scripts of the transition running now and of
//! the last one, never a backlog that acts on stale roles minutes later. The queue runs in its
//! own task, so a slow script never delays an advert.
//!
//! For a transition to STATE, `notify_STATE` runs (no arguments), then `notify` with keepalived's
//! four arguments: `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>` (the priority at the
//! transition). Each script run is limited to `notify_timeout` (default 30 s), then its process
//! group is killed.
//!
//! Choices where keepalived says nothing (it runs every notify script at once, unordered, with no
//! timeout): a running script is never cancelled by a newer transition (a half-run
//! `notify_master` could leave things worse than a complete one followed by `notify_backup`);
//! a waiting STOP (shutdown) is never replaced, and the daemon waits for it (see
//! [`NotifyQueue::drain_bound`]).

use std::{cell::RefCell, rc::Rc, time::Duration};

use tokio::sync::Notify;
use tracing::Level;

use super::{command, loglimit, plan::NotifyPlan, security};
use crate::vrrp::State;

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

/// The notification of one transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Job {
    pub state: State,
    pub priority: u8,
    /// The transition's sequence number (1 = first).
    pub seq: u64,
}

/// Finished runs kept for status.
const RECENT: usize = 32;

/// The queue's bookkeeping, without I/O: one running job, one waiting.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    running: Option<Job>,
    waiting: Option<Job>,
    /// Jobs replaced (or, behind a waiting STOP, dropped) before they ran.
    replaced: u64,
    /// Jobs started.
    started: u64,
    /// Finished runs (most recent last, bounded).
    done: Vec<NotifyRecord>,
    /// Scripts finished since start, and of those the failed ones.
    scripts_run: u64,
    scripts_failed: u64,
}

impl Slots {
    /// Queues `job` behind the running one. Returns the job it replaced, if any: the waiting
    /// one, or `job` itself when a STOP is waiting (STOP is the last word and is never replaced).
    pub(crate) fn push(&mut self, job: Job) -> Option<Job> {
        let stop_waiting = self.waiting.is_some_and(|w| w.state == State::Initialize);
        if stop_waiting && job.state != State::Initialize {
            self.replaced += 1;
            return Some(job);
        }
        let old = self.waiting.replace(job);
        if old.is_some() {
            self.replaced += 1;
        }
        old
    }

    /// Starts the waiting job, if nothing runs.
    pub(crate) fn start(&mut self) -> Option<Job> {
        if self.running.is_some() {
            return None;
        }
        let job = self.waiting.take()?;
        self.running = Some(job);
        self.started += 1;
        Some(job)
    }

    /// The running job finished with these runs, `failed` of them failed.
    pub(crate) fn finish(&mut self, records: Vec<NotifyRecord>, failed: u64) {
        self.running = None;
        self.scripts_run += records.len() as u64;
        self.scripts_failed += failed;
        for r in records {
            if self.done.len() >= RECENT {
                self.done.remove(0);
            }
            self.done.push(r);
        }
    }

    /// Jobs running or waiting (0, 1 or 2).
    pub(crate) fn busy(&self) -> u64 {
        u64::from(self.running.is_some()) + u64::from(self.waiting.is_some())
    }

    /// The status view.
    pub(crate) fn snapshot(&self, timeout: Duration) -> crate::state::NotifyState {
        crate::state::NotifyState {
            pending: self.busy(),
            recent: self.done.clone(),
            running: self.running.map(|j| state_word(j.state).to_owned()),
            waiting: self.waiting.map(|j| state_word(j.state).to_owned()),
            replaced: self.replaced,
            started: self.started,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            scripts_run: self.scripts_run,
            scripts_failed: self.scripts_failed,
        }
    }
}

/// The notify queue of one instance.
pub(crate) struct NotifyQueue {
    name: String,
    slots: Rc<RefCell<Slots>>,
    wake: Rc<Notify>,
    seq: u64,
    /// Scripts per job (0 when none is configured: nothing is queued).
    scripts: u32,
    timeout: Duration,
}

impl NotifyQueue {
    /// Starts the queue's task on the current `LocalSet`.
    pub(crate) fn spawn(instance: String, plan: NotifyPlan) -> Self {
        let slots = Rc::new(RefCell::new(Slots::default()));
        let wake = Rc::new(Notify::new());
        let timeout = plan.timeout;
        let any_specific = [&plan.master, &plan.backup, &plan.fault, &plan.stop]
            .iter()
            .any(|s| s.is_some());
        let scripts = u32::from(any_specific) + u32::from(plan.generic.is_some());
        let (slots2, wake2, name) = (slots.clone(), wake.clone(), instance.clone());
        tokio::task::spawn_local(async move {
            loop {
                let next = slots2.borrow_mut().start();
                let Some(job) = next else {
                    wake2.notified().await;
                    continue;
                };
                let (records, failed) = run_job(&name, &plan, job).await;
                slots2.borrow_mut().finish(records, failed);
            }
        });
        Self {
            name: instance,
            slots,
            wake,
            seq: 0,
            scripts,
            timeout,
        }
    }

    /// Queues the notification of a transition to `state` at `priority`; it replaces the one
    /// waiting, if any. Never waits.
    pub(crate) fn push(&mut self, state: State, priority: u8) {
        self.seq += 1;
        if self.scripts == 0 {
            return;
        }
        let job = Job {
            state,
            priority,
            seq: self.seq,
        };
        if let Some(old) = self.slots.borrow_mut().push(job) {
            let new = if old == job { None } else { Some(job) };
            loglimit::log(
                Level::INFO,
                &self.name,
                None,
                loglimit::NOTIFY_REPLACED,
                || {
                    match new {
                    Some(n) => format!(
                        "{}: notify {} (transition {}) not run: replaced by {} (transition {}) before it started",
                        self.name,
                        state_word(old.state),
                        old.seq,
                        state_word(n.state),
                        n.seq
                    ),
                    None => format!(
                        "{}: notify {} (transition {}) not run: STOP is waiting",
                        self.name,
                        state_word(old.state),
                        old.seq
                    ),
                }
                },
            );
        }
        self.wake.notify_one();
    }

    /// Jobs running or waiting.
    pub(crate) fn busy(&self) -> u64 {
        self.slots.borrow().busy()
    }

    /// The longest the queue can take to run what it holds now: every script of the running
    /// and the waiting job at its full timeout (the running one may have just started).
    pub(crate) fn drain_bound(&self) -> Duration {
        let jobs = u32::try_from(self.busy()).unwrap_or(2);
        self.timeout.saturating_mul(self.scripts * jobs)
    }

    /// The `notify` object of `xvrrp status`.
    pub(crate) fn snapshot(&self) -> crate::state::NotifyState {
        self.slots.borrow().snapshot(self.timeout)
    }

    #[cfg(test)]
    fn done(&self) -> Vec<NotifyRecord> {
        self.slots.borrow().done.clone()
    }
}

/// Runs the scripts of one job: `notify_STATE`, then `notify` with keepalived's arguments.
/// Returns their records and how many failed.
async fn run_job(instance: &str, plan: &NotifyPlan, job: Job) -> (Vec<NotifyRecord>, u64) {
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
            instance.to_owned(),
            word.to_owned(),
            job.priority.to_string(),
        ];
        runs.push((s, args));
    }
    let mut records = Vec::new();
    let mut failed = 0;
    for (script, args) in runs {
        let outcome = match command::split_words(script) {
            Some(words) => {
                // As keepalived: run as `script_user` (default `keepalived_script`, else root)
                // and, with `enable_script_security`, refuse scripts that non-root users could
                // have written. Blocking look-ups run off the loop.
                let (w, user, security) = (words.clone(), plan.user.clone(), plan.security);
                let prepared = tokio::task::spawn_blocking(move || {
                    security::prepare_command(&w, user.as_ref(), security)
                })
                .await;
                match prepared {
                    Ok(Ok(run_as)) => {
                        command::run(&words, &args, plan.timeout, Some((run_as.uid, run_as.gid)))
                            .await
                    }
                    Ok(Err(e)) => command::Outcome::SpawnFailed(format!("refused: {e}")),
                    Err(e) => command::Outcome::SpawnFailed(e.to_string()),
                }
            }
            None => command::Outcome::SpawnFailed("unterminated quote".to_owned()),
        };
        let (level, kind) = if outcome.success() {
            (Level::INFO, loglimit::NOTIFY_RUN)
        } else {
            failed += 1;
            (Level::WARN, loglimit::NOTIFY_FAILED)
        };
        loglimit::log(level, instance, None, kind, || {
            if outcome.success() {
                format!("{instance}: notify {word} script {script:?} finished")
            } else {
                format!("{instance}: notify {word} script {script:?} {outcome}")
            }
        });
        records.push(NotifyRecord {
            state: word.to_owned(),
            script: script.to_owned(),
            outcome: outcome.to_string(),
            seq: job.seq,
        });
    }
    (records, failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::config::DEFAULT_NOTIFY_TIMEOUT as NOTIFY_TIMEOUT;

    fn job(state: State, seq: u64) -> Job {
        Job {
            state,
            priority: 100,
            seq,
        }
    }

    /// One running, one waiting; a newer transition replaces the waiting one, never the
    /// running one; the last one always runs.
    #[test]
    fn one_running_one_waiting_newest_wins() {
        let mut s = Slots::default();
        assert_eq!(s.push(job(State::Master, 1)), None);
        assert_eq!(s.start(), Some(job(State::Master, 1)));
        assert_eq!(s.start(), None, "one at a time");
        assert_eq!(s.push(job(State::Backup, 2)), None);
        assert_eq!(s.push(job(State::Fault, 3)), Some(job(State::Backup, 2)));
        assert_eq!(s.push(job(State::Master, 4)), Some(job(State::Fault, 3)));
        assert_eq!(s.busy(), 2);
        assert_eq!(s.start(), None, "still running");
        s.finish(Vec::new(), 0);
        assert_eq!(s.busy(), 1);
        assert_eq!(s.start(), Some(job(State::Master, 4)), "the last one runs");
        s.finish(Vec::new(), 0);
        assert_eq!(s.busy(), 0);
        assert_eq!(s.start(), None);
        let st = s.snapshot(NOTIFY_TIMEOUT);
        assert_eq!((st.replaced, st.started, st.pending), (2, 2, 0));
        assert_eq!(st.timeout_ms, 30_000);
    }

    /// A waiting STOP (shutdown) is never replaced; a STOP replaces anything waiting.
    #[test]
    fn stop_is_never_dropped() {
        let mut s = Slots::default();
        s.push(job(State::Master, 1));
        s.start();
        s.push(job(State::Backup, 2));
        assert_eq!(
            s.push(job(State::Initialize, 3)),
            Some(job(State::Backup, 2))
        );
        assert_eq!(
            s.push(job(State::Master, 4)),
            Some(job(State::Master, 4)),
            "dropped behind STOP"
        );
        let st = s.snapshot(NOTIFY_TIMEOUT);
        assert_eq!(st.running.as_deref(), Some("MASTER"));
        assert_eq!(st.waiting.as_deref(), Some("STOP"));
        assert_eq!(st.replaced, 2);
        s.finish(Vec::new(), 0);
        assert_eq!(s.start(), Some(job(State::Initialize, 3)));
    }

    /// Whatever the sequence of transitions, at most two jobs are ever held and the last
    /// transition pushed is the last one started.
    #[test]
    fn bounded_under_any_burst() {
        let states = [State::Master, State::Backup, State::Fault];
        let mut s = Slots::default();
        let mut last_started = None;
        for seq in 1..=1000u64 {
            s.push(job(states[(seq * 7 % 3) as usize], seq));
            assert!(s.busy() <= 2);
            if seq % 97 == 0 {
                s.finish(Vec::new(), 0);
            }
            if let Some(j) = s.start() {
                last_started = Some(j.seq);
            }
        }
        s.finish(Vec::new(), 0);
        if let Some(j) = s.start() {
            last_started = Some(j.seq);
        }
        assert_eq!(last_started, Some(1000));
    }

    fn script_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xvrrp-notify-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A script that logs its start (with its arguments) and end to `log`, sleeping between.
    fn script(dir: &std::path::Path, log: &std::path::Path, name: &str, sleep: &str) -> String {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"start {name}${{*:+ $*}}\" >> {l}\nsleep {sleep}\necho \"end {name}\" >> {l}\n",
                l = log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    fn plan(
        dir: &std::path::Path,
        log: &std::path::Path,
        sleep: &str,
        timeout: Duration,
    ) -> NotifyPlan {
        NotifyPlan {
            master: Some(script(dir, log, "master", sleep)),
            backup: Some(script(dir, log, "backup", sleep)),
            fault: Some(script(dir, log, "fault", sleep)),
            stop: Some(script(dir, log, "stop", sleep)),
            generic: Some(script(dir, log, "notify", sleep)),
            user: None,
            security: false,
            timeout,
        }
    }

    fn local<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    async fn wait_idle(q: &NotifyQueue, within: Duration) {
        let until = std::time::Instant::now() + within;
        while q.busy() > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(q.busy(), 0, "the queue drained");
    }

    /// Rapid transitions: pushing never waits for a script (adverts are never delayed); the
    /// scripts of the first and of the last transition run, one at a time, `notify_STATE`
    /// before `notify` with keepalived's four arguments (the state and priority each was
    /// queued with); those in between are replaced.
    #[test]
    fn burst_runs_first_and_last_in_order_one_at_a_time() {
        let dir = script_dir("burst");
        let log = dir.join("log");
        let plan = plan(&dir, &log, "0.05", Duration::from_secs(5));
        local(async {
            let mut q = NotifyQueue::spawn("VI_1".into(), plan);
            let t = std::time::Instant::now();
            q.push(State::Master, 200);
            // Let the first job start, so the rest queue behind a running one.
            tokio::task::yield_now().await;
            q.push(State::Backup, 100);
            q.push(State::Fault, 0);
            q.push(State::Master, 200);
            q.push(State::Backup, 90);
            assert!(
                t.elapsed() < Duration::from_millis(20),
                "push must not wait for scripts"
            );
            assert_eq!(q.busy(), 2);
            wait_idle(&q, Duration::from_secs(20)).await;
            let seqs: Vec<u64> = q.done().iter().map(|r| r.seq).collect();
            assert_eq!(seqs, [1, 1, 5, 5]);
            let st = q.snapshot();
            assert_eq!((st.replaced, st.started), (3, 2));
            assert_eq!((st.scripts_run, st.scripts_failed), (4, 0));
        });
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let expect = [
            ("master", ""),
            ("notify", " INSTANCE VI_1 MASTER 200"),
            ("backup", ""),
            ("notify", " INSTANCE VI_1 BACKUP 90"),
        ];
        let want: Vec<String> = expect
            .iter()
            .flat_map(|(n, a)| [format!("start {n}{a}"), format!("end {n}")])
            .collect();
        assert_eq!(lines, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `notify_timeout` applies to each script, and STOP queued behind a running job still runs.
    #[test]
    fn timeout_applies_and_stop_runs_last() {
        let dir = script_dir("timeout");
        let log = dir.join("log");
        let plan = plan(&dir, &log, "30", Duration::from_millis(300));
        local(async {
            let mut q = NotifyQueue::spawn("VI_1".into(), plan);
            q.push(State::Master, 200);
            tokio::task::yield_now().await;
            q.push(State::Initialize, 0);
            q.push(State::Backup, 100);
            assert_eq!(q.drain_bound(), Duration::from_millis(300 * 2 * 2));
            let t = std::time::Instant::now();
            wait_idle(&q, Duration::from_secs(10)).await;
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
            let done = q.done();
            let got: Vec<(&str, u64)> = done.iter().map(|r| (r.state.as_str(), r.seq)).collect();
            assert_eq!(
                got,
                [("MASTER", 1), ("MASTER", 1), ("STOP", 2), ("STOP", 2)]
            );
            assert!(
                done.iter().all(|r| r.outcome.contains("timed out")),
                "{done:?}"
            );
            let st = q.snapshot();
            assert_eq!((st.scripts_run, st.scripts_failed), (4, 4));
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Without any notify script nothing is queued.
    #[test]
    fn no_scripts_no_jobs() {
        local(async {
            let mut q = NotifyQueue::spawn(
                "VI_1".into(),
                NotifyPlan {
                    timeout: NOTIFY_TIMEOUT,
                    ..NotifyPlan::default()
                },
            );
            q.push(State::Master, 100);
            assert_eq!(q.busy(), 0);
            assert_eq!(q.drain_bound(), Duration::ZERO);
        });
    }
}

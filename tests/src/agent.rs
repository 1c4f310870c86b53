//! `xvrrp run` inside a test namespace: its own config file, control socket and log file in a
//! private temp dir, killed on drop. Status is read through the real CLI (`xvrrp status --json`).
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a failed setup step should panic the test"
)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    status::{Counters, Instance, Status, Tracker},
    unique, wait_until, xvrrp_bin, Netns,
};

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `/tmp/{prefix}{pid}x{n}`.
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The receive path of `xvrrp run` (`--rx`). Labs that must hold on both run over this enum
/// (`#[rstest]` with `#[values(Rx::Xdp, Rx::Socket)]`), so the matrix is written once per test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// The XDP program (`--rx xdp`).
    Xdp,
    /// The raw-socket fallback (`--rx socket`).
    Socket,
}

impl Rx {
    /// The `--rx` argument.
    pub fn arg(self) -> &'static str {
        match self {
            Rx::Xdp => "xdp",
            Rx::Socket => "socket",
        }
    }

    /// `["--rx", MODE]`, the extra arguments of [`Agent::start`].
    pub fn args(self) -> [&'static str; 2] {
        ["--rx", self.arg()]
    }
}

impl std::fmt::Display for Rx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.arg())
    }
}

/// How [`Agent::start_with`] starts the agent besides its arguments.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// A command between `ip netns exec NS` and `xvrrp` that execs its arguments (so the
    /// child's pid stays the agent's), e.g. `setpriv --bounding-set=...`.
    pub wrapper: Vec<String>,
    /// Environment variables set for the agent.
    pub env: Vec<(String, String)>,
}

/// One running `xvrrp run` in a namespace.
#[derive(Debug)]
pub struct Agent {
    ns_name: String,
    dir: TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    launch: Launch,
}

impl Agent {
    /// Writes `config` and starts `xvrrp run -f CONFIG --control-socket SOCK EXTRA...` in `ns`.
    pub fn start(ns: &Netns, config: &str, extra: &[&str]) -> Self {
        Self::start_with(ns, config, extra, Launch::default())
    }

    /// [`Agent::start`] through `launch` (a wrapper command, environment variables).
    pub fn start_with(ns: &Netns, config: &str, extra: &[&str], launch: Launch) -> Self {
        let dir = TempDir::new("xagent");
        fs::write(dir.path().join("xvrrp.conf"), config).unwrap();
        let mut a = Self {
            ns_name: ns.name().to_owned(),
            dir,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            launch,
        };
        a.spawn();
        a
    }

    /// [`Agent::start`] with `--rx RX` and nothing else.
    pub fn with_rx(ns: &Netns, config: &str, rx: Rx) -> Self {
        Self::start(ns, config, &rx.args())
    }

    fn spawn(&mut self) {
        // A killed agent leaves its socket file behind; remove it so "the socket exists" below
        // means this run is up.
        let _ = fs::remove_file(self.socket());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns_name])
            .args(&self.launch.wrapper)
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .arg(xvrrp_bin())
            .arg("run")
            .arg("-f")
            .arg(self.dir.path().join("xvrrp.conf"))
            .arg("--control-socket")
            .arg(self.socket())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let sock = self.socket();
        assert!(
            wait_until(Duration::from_secs(10), || sock.exists() || !self.running()),
            "xvrrp did not come up; log:\n{}",
            self.log()
        );
    }

    /// The agent's pid while it runs (`ip netns exec` execs it, so the child is the agent).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// Starts it again with the same config (after a kill or stop).
    pub fn restart(&mut self) {
        self.stop_with(libc::SIGKILL);
        self.spawn();
    }

    /// Replaces the config file (takes effect at the next restart).
    pub fn set_config(&self, config: &str) {
        fs::write(self.dir.path().join("xvrrp.conf"), config).unwrap();
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("xvrrp.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("xvrrp.log")
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `xvrrp status --json`, or `None` when it does not answer.
    pub fn status(&self) -> Option<Status> {
        let out = self.query("status")?;
        serde_json::from_slice(&out).ok().map(Status)
    }

    /// `xvrrp counters --json`, or `None` when it does not answer.
    pub fn counters(&self) -> Option<Counters> {
        let out = self.query("counters")?;
        serde_json::from_slice(&out).ok().map(Counters)
    }

    /// The first instance's status, if it answers.
    pub fn instance(&self) -> Option<Instance> {
        self.status().map(|s| s.first())
    }

    /// The status of the first instance's tracker whose label is `label`.
    pub fn tracker(&self, label: &str) -> Option<Tracker> {
        self.instance()?.tracker(label)
    }

    /// Polls the tracker `label` until `pred` holds on one snapshot of it, for at most
    /// `timeout`: whether it did, and the last snapshot (`null` when none was read).
    pub fn wait_tracker(
        &self,
        label: &str,
        timeout: Duration,
        pred: impl Fn(&Tracker) -> bool,
    ) -> (bool, Tracker) {
        let mut last = Tracker::default();
        let held = wait_until(timeout, || match self.tracker(label) {
            Some(t) => {
                let ok = pred(&t);
                last = t;
                ok
            }
            None => false,
        });
        (held, last)
    }

    /// The `--json` answer of `xvrrp WHAT`, if the agent answered (exit 0, or 1 for a `status`
    /// that found a problem; 2 is no answer).
    fn query(&self, what: &str) -> Option<Vec<u8>> {
        let out = Command::new(xvrrp_bin())
            .arg(what)
            .arg("--json")
            .arg("--control-socket")
            .arg(self.socket())
            .output()
            .ok()?;
        matches!(out.status.code(), Some(0 | 1)).then_some(out.stdout)
    }

    /// `xvrrp status` (text) as a person reads it, with its exit code (`None`: killed).
    pub fn status_text_and_code(&self) -> (String, Option<i32>) {
        let out = Command::new(xvrrp_bin())
            .arg("status")
            .arg("--control-socket")
            .arg(self.socket())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    }

    /// `xvrrp reload --json`: its exit code, the typed report (if it printed one) and stderr.
    pub fn reload(&self) -> (Option<i32>, Option<xvrrp::state::ReloadReport>, String) {
        let out = Command::new(xvrrp_bin())
            .args(["reload", "--json", "--control-socket"])
            .arg(self.socket())
            .output()
            .expect("run xvrrp reload");
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).ok(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `xvrrp reload` as a person runs it: exit code and stderr.
    pub fn reload_text(&self) -> (Option<i32>, String) {
        let out = Command::new(xvrrp_bin())
            .args(["reload", "--control-socket"])
            .arg(self.socket())
            .output()
            .expect("run xvrrp reload");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `xvrrp status` as a person reads it (empty when it does not answer).
    pub fn status_text(&self) -> String {
        Command::new(xvrrp_bin())
            .arg("status")
            .arg("--control-socket")
            .arg(self.socket())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// State of the first instance (`"Master"`, `"Backup"`, ...), if it answers.
    pub fn state(&self) -> Option<String> {
        self.instance()?.state()
    }

    /// Waits until the first instance is in `state`; returns how long it took.
    pub fn wait_state(&self, state: &str, timeout: Duration) -> Option<Duration> {
        let t = Instant::now();
        wait_until(timeout, || self.state().as_deref() == Some(state)).then(|| t.elapsed())
    }

    /// Asserts that the first instance reaches `state` within `timeout` (with the log when not);
    /// returns how long it took.
    #[track_caller]
    pub fn expect_state(&self, state: &str, timeout: Duration) -> Duration {
        self.wait_state(state, timeout)
            .unwrap_or_else(|| panic!("never {state} within {timeout:?}; log:\n{}", self.log()))
    }

    /// Sends `signal` and waits for the process to exit; returns its exit code.
    pub fn stop_with(&mut self, signal: i32) -> Option<i32> {
        let mut child = self.child.take()?;
        // `ip netns exec` execs the program, so the child's pid is xvrrp's.
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid, signal) };
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "xvrrp did not exit after signal {signal}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `addr` (e.g. `"10.1.0.100"`) is configured on `ifname` in `ns`.
pub fn has_addr(ns: &Netns, ifname: &str, addr: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns.name(), "-o", "addr", "show", "dev", ifname])
        .output();
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(addr))
    })
}

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

use std::{
    ffi::CString,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Once,
    time::Duration,
};

use log::{error, info, warn};
use tokio::sync::mpsc;

use super::{
    command,
    plan::ScriptSpec,
    trackers::{SharedStats, TrackerUpdate},
};
use crate::config::ScriptUser;

/// Counts runs of a script's results into a status with keepalived's rise/fall hysteresis.
#[derive(Clone, Debug)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    streak: u32,
    /// keepalived's initial `rise - 1`: the first result decides either way.
    first_decides: bool,
}

impl RiseFall {
    /// Starts `up`, with plain hysteresis from the first result.
    pub fn new(rise: u32, fall: u32, up: bool) -> Self {
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
    pub fn keepalived(rise: u32, fall: u32, init_fail: bool) -> Self {
        Self {
            first_decides: !init_fail,
            ..Self::new(rise, fall, !init_fail)
        }
    }

    /// Current status.
    pub fn up(&self) -> bool {
        self.up
    }

    /// Records one result; returns the new status when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
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

fn secs(f: f64, min: f64) -> Duration {
    Duration::from_secs_f64(if f.is_finite() {
        f.max(min).min(86_400.0)
    } else {
        min
    })
}

/// Who a script runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// For logs and status: `user[:group]`.
    pub name: String,
}

/// Why a script cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    /// The configured user does not exist.
    #[error("user {0:?} does not exist")]
    NoUser(String),
    /// The configured group does not exist.
    #[error("group {0:?} does not exist")]
    NoGroup(String),
    /// The user database could not be read.
    #[error("cannot look up {0:?}: {1}")]
    Lookup(String, String),
    /// The program was not found on `PATH`.
    #[error("{0:?} not found on PATH")]
    NotFound(String),
    /// `enable_script_security` refused it.
    #[error("unsafe permissions on {path}: {why} (enable_script_security)")]
    Insecure {
        /// The path component at fault.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A path component could not be examined.
    #[error("cannot check {0}: {1}")]
    Stat(PathBuf, String),
}

/// Looks `name` up in the user database: (uid, primary gid), or `None` if there is no such user.
pub fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, ScriptError> {
    let cname = CString::new(name).map_err(|_| ScriptError::NoUser(name.to_owned()))?;
    let mut len = 4096usize;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: zeroed `passwd` is a valid out-parameter (plain integers and null pointers).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives it and its length is
        // passed; the result is only read through `pw` below, while `buf` is alive.
        let rc =
            unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr(), len, &mut res) };
        match rc {
            0 if res.is_null() => return Ok(None),
            0 => return Ok(Some((pw.pw_uid, pw.pw_gid))),
            libc::ERANGE if len < (1 << 20) => len *= 4,
            e => {
                return Err(ScriptError::Lookup(
                    name.to_owned(),
                    std::io::Error::from_raw_os_error(e).to_string(),
                ))
            }
        }
    }
}

/// Looks a group up: its gid, or `None` if there is no such group.
pub fn lookup_group(name: &str) -> Result<Option<u32>, ScriptError> {
    let cname = CString::new(name).map_err(|_| ScriptError::NoGroup(name.to_owned()))?;
    let mut len = 4096usize;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: zeroed `group` is a valid out-parameter (integers and null pointers).
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `lookup_user`.
        let rc =
            unsafe { libc::getgrnam_r(cname.as_ptr(), &mut gr, buf.as_mut_ptr(), len, &mut res) };
        match rc {
            0 if res.is_null() => return Ok(None),
            0 => return Ok(Some(gr.gr_gid)),
            libc::ERANGE if len < (1 << 20) => len *= 4,
            e => {
                return Err(ScriptError::Lookup(
                    name.to_owned(),
                    std::io::Error::from_raw_os_error(e).to_string(),
                ))
            }
        }
    }
}

/// keepalived's default script user.
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

static DEFAULT_USER_WARNING: Once = Once::new();

/// Resolves who a script runs as (see the module documentation).
pub fn resolve_user(user: Option<&ScriptUser>) -> Result<RunAs, ScriptError> {
    match user {
        Some(u) => {
            let (uid, mut gid) =
                lookup_user(&u.user)?.ok_or_else(|| ScriptError::NoUser(u.user.clone()))?;
            let mut name = u.user.clone();
            if let Some(g) = &u.group {
                gid = lookup_group(g)?.ok_or_else(|| ScriptError::NoGroup(g.clone()))?;
                name = format!("{}:{g}", u.user);
            }
            Ok(RunAs { uid, gid, name })
        }
        None => match lookup_user(DEFAULT_SCRIPT_USER)? {
            Some((uid, gid)) => Ok(RunAs {
                uid,
                gid,
                name: DEFAULT_SCRIPT_USER.to_owned(),
            }),
            None => {
                DEFAULT_USER_WARNING.call_once(|| {
                    warn!(
                        "default user '{DEFAULT_SCRIPT_USER}' for script execution does not exist; \
                         scripts run as root (set script_user, or create the user)"
                    )
                });
                Ok(RunAs {
                    uid: 0,
                    gid: 0,
                    name: "root".to_owned(),
                })
            }
        },
    }
}

/// Finds `prog` as `execvp` would: a name with a `/` is used as is; otherwise the first
/// executable regular file of that name in `PATH`.
pub fn find_program(prog: &str) -> Result<PathBuf, ScriptError> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| ScriptError::NotFound(prog.to_owned()))
}

/// The mode, owner and group of one path component, as keepalived's check looks at them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// keepalived's rule for one path component (`check_security`): unsafe when not owned by root,
/// or when it is a regular file or a directory without the sticky bit and is writable by a
/// non-root group or by others. Returns what is wrong.
pub fn insecure(p: Perm) -> Option<String> {
    let is_dir = p.mode & libc::S_IFMT == libc::S_IFDIR;
    let is_file = p.mode & libc::S_IFMT == libc::S_IFREG;
    if p.uid != 0 {
        return Some(format!("owned by uid {}, not root", p.uid));
    }
    let sticky = p.mode & libc::S_ISVTX != 0;
    if (is_dir && !sticky) || is_file {
        if p.gid != 0 && p.mode & libc::S_IWGRP != 0 {
            return Some(format!("writable by group {}", p.gid));
        }
        if p.mode & libc::S_IWOTH != 0 {
            return Some("writable by others".to_owned());
        }
    }
    None
}

fn check_components(path: &Path) -> Result<(), ScriptError> {
    let mut prefix = PathBuf::new();
    let comps: Vec<_> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        prefix.push(c);
        let md = std::fs::metadata(&prefix)
            .map_err(|e| ScriptError::Stat(prefix.clone(), e.to_string()))?;
        let last = i + 1 == comps.len();
        if !last && !md.is_dir() {
            return Err(ScriptError::Insecure {
                path: prefix,
                why: "not a directory".to_owned(),
            });
        }
        let perm = Perm {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
        };
        if let Some(why) = insecure(perm) {
            return Err(ScriptError::Insecure { path: prefix, why });
        }
    }
    Ok(())
}

/// `enable_script_security`'s check of a program: the path as found and its real path (after
/// symlinks), every component from `/` down.
pub fn check_secure(program: &Path) -> Result<(), ScriptError> {
    let abs = if program.is_absolute() {
        program.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| ScriptError::Stat(program.to_path_buf(), e.to_string()))?
            .join(program)
    };
    check_components(&abs)?;
    let real = std::fs::canonicalize(&abs).map_err(|e| ScriptError::Stat(abs, e.to_string()))?;
    check_components(&real)
}

/// Resolves the user and, with `security`, checks the program; blocking (user database,
/// `stat`s), so it runs on the blocking pool.
fn prepare(words: &[String], spec: &ScriptSpec) -> Result<RunAs, ScriptError> {
    prepare_command(words, spec.user.as_ref(), spec.security)
}

/// Who runs `words` and, with `security` (`enable_script_security`), whether keepalived's rule
/// allows it. Shared by track scripts and notify scripts. Blocking (user database, `stat`s).
pub fn prepare_command(
    words: &[String],
    user: Option<&ScriptUser>,
    security: bool,
) -> Result<RunAs, ScriptError> {
    let run_as = resolve_user(user)?;
    if security {
        let prog = words.first().map(String::as_str).unwrap_or_default();
        check_secure(&find_program(prog)?)?;
    }
    Ok(run_as)
}

static SECURITY_WARNING: Once = Once::new();

/// Starts the runner of the script registered as object `index` on the current `LocalSet`.
pub fn spawn(
    index: usize,
    spec: ScriptSpec,
    stats: SharedStats,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) {
    tokio::task::spawn_local(async move {
        let script = &spec.script;
        let name = script.name.clone();
        let interval = secs(script.interval, 0.01);
        let timeout = secs(script.timeout, 0.01);
        stats.set("runs", 0);
        stats.set("failures", 0);
        stats.set("timeouts", 0);
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
                stats.set("refused", e.to_string());
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
        stats.set("user", run_as.name.clone());
        // SAFETY: geteuid(2) has no preconditions.
        let privileged = unsafe { libc::geteuid() } == 0;
        let ids = privileged.then_some((run_as.uid, run_as.gid));
        let mut state = RiseFall::keepalived(script.rise, script.fall, script.init_fail);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = command::run(&words, &[], timeout, ids).await;
            stats.incr("runs");
            if !outcome.success() {
                stats.incr("failures");
            }
            if matches!(outcome, command::Outcome::TimedOut) {
                stats.incr("timeouts");
                warn!(
                    "vrrp_script {name}: {:?} {outcome} after {timeout:?}",
                    script.script
                );
            }
            stats.set("last_result", outcome.to_string());
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
    });
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

    const DIR: u32 = libc::S_IFDIR;
    const REG: u32 = libc::S_IFREG;

    fn perm(mode: u32, uid: u32, gid: u32) -> Perm {
        Perm { mode, uid, gid }
    }

    #[test]
    fn script_security_rule_matches_keepalived() {
        assert_eq!(insecure(perm(DIR | 0o755, 0, 0)), None);
        assert_eq!(insecure(perm(REG | 0o755, 0, 0)), None);
        assert_eq!(
            insecure(perm(DIR | 0o1777, 0, 0)),
            None,
            "sticky /tmp is fine"
        );
        assert_eq!(
            insecure(perm(REG | 0o775, 0, 0)),
            None,
            "root group may write"
        );
        assert!(
            insecure(perm(REG | 0o755, 1000, 0)).is_some(),
            "non-root owner"
        );
        assert!(
            insecure(perm(REG | 0o777, 0, 0)).is_some(),
            "world-writable file"
        );
        assert!(
            insecure(perm(REG | 0o1777, 0, 0)).is_some(),
            "sticky does not help files"
        );
        assert!(
            insecure(perm(DIR | 0o777, 0, 0)).is_some(),
            "world-writable dir"
        );
        assert!(
            insecure(perm(REG | 0o775, 0, 50)).is_some(),
            "non-root group writable"
        );
        assert_eq!(insecure(perm(REG | 0o755, 0, 50)), None);
    }

    #[test]
    fn checks_real_files_and_finds_programs_on_path() {
        let sh = find_program("sh").unwrap();
        assert!(sh.is_absolute());
        check_secure(&sh).unwrap();
        assert!(matches!(
            find_program("no-such-program-xvrrp"),
            Err(ScriptError::NotFound(_))
        ));
        let dir = std::env::temp_dir().join(format!("xvrrp-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.join("s.sh");
        std::fs::write(&f, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            check_secure(&f).unwrap();
        }
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            check_secure(&f),
            Err(ScriptError::Insecure { .. })
        ));
        assert!(matches!(
            check_secure(&dir.join("missing")),
            Err(ScriptError::Stat(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolves_root_and_refuses_unknown_users() {
        let root = resolve_user(Some(&ScriptUser {
            user: "root".to_owned(),
            group: None,
        }))
        .unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            resolve_user(Some(&ScriptUser {
                user: "no-such-user-xvrrp".to_owned(),
                group: None,
            })),
            Err(ScriptError::NoUser("no-such-user-xvrrp".to_owned()))
        );
        assert_eq!(
            resolve_user(Some(&ScriptUser {
                user: "root".to_owned(),
                group: Some("no-such-group-xvrrp".to_owned()),
            })),
            Err(ScriptError::NoGroup("no-such-group-xvrrp".to_owned()))
        );
        assert!(resolve_user(None).is_ok());
    }
}

//! Who a script runs as and keepalived's `enable_script_security` rule, shared by track scripts
//! and notify scripts. Everything here is blocking (user database, `stat`s): callers run it on
//! the blocking pool.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Once,
};

use tracing::warn;

use crate::config::ScriptUser;

/// Who a script runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// For logs and status: `user[:group]`.
    pub name: String,
}

/// Why a script cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ScriptError {
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
pub(crate) fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, ScriptError> {
    nix::unistd::User::from_name(name)
        .map(|u| u.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
        .map_err(|e| ScriptError::Lookup(name.to_owned(), std::io::Error::from(e).to_string()))
}

/// Looks a group up: its gid, or `None` if there is no such group.
pub(crate) fn lookup_group(name: &str) -> Result<Option<u32>, ScriptError> {
    nix::unistd::Group::from_name(name)
        .map(|g| g.map(|g| g.gid.as_raw()))
        .map_err(|e| ScriptError::Lookup(name.to_owned(), std::io::Error::from(e).to_string()))
}

/// keepalived's default script user.
pub(crate) const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

static DEFAULT_USER_WARNING: Once = Once::new();

/// Resolves who a script runs as (see the module documentation).
pub(crate) fn resolve_user(user: Option<&ScriptUser>) -> Result<RunAs, ScriptError> {
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
pub(crate) fn find_program(prog: &str) -> Result<PathBuf, ScriptError> {
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
pub(crate) struct Perm {
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
pub(crate) fn insecure(p: Perm) -> Option<String> {
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
pub(crate) fn check_secure(program: &Path) -> Result<(), ScriptError> {
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

/// Who runs `words` and, with `security` (`enable_script_security`), whether keepalived's rule
/// allows it. Shared by track scripts and notify scripts. Blocking (user database, `stat`s).
pub(crate) fn prepare_command(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

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

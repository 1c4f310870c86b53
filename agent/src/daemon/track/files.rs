//! `track_file`: a file holding an integer that moves the priority, with keepalived's semantics
//! (`vrrp_track.c`: `process_track_file`, `update_track_file_status`):
//!
//! - The value is the file's first 127 bytes read as C's `strtol(buf, NULL, 0)` would (leading
//!   blanks, a sign, `0x` hex or `0` octal prefixes, digits up to the first non-digit; no digits
//!   = 0), clamped to -254..=254. A missing or unreadable file reads as 0.
//! - What the value does to each instance (weight 0: non-zero = FAULT; otherwise
//!   `value × weight` added, -254 = FAULT) is the core's rule, see
//!   [`Tracker::value_contribution`](crate::vrrp::Tracker::value_contribution).
//! - `init_file [VALUE] [overwrite]` creates the file with `VALUE` at start (or rewrites it with
//!   `overwrite`).
//! - Watched with inotify on the file's *directory* (`IN_CLOSE_WRITE`, `IN_DELETE`, `IN_MOVED_FROM`,
//!   `IN_MOVED_TO`), so writing, creating, deleting, or replacing by rename are all seen, even when
//!   the file does not exist yet. A queue overflow (`IN_Q_OVERFLOW`) re-reads every file. No
//!   polling; file reads run on the blocking pool.

use std::{
    collections::HashMap,
    ffi::OsString,
    io::Read,
    os::fd::{AsFd, AsRawFd, RawFd},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor},
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
};
use tracing::{error, info, warn};

use super::types::{SharedStats, TrackerUpdate};
use crate::{config::TrackFile, vrrp::TRACK_VALUE_MAX};

/// One tracked file.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Object index in the registry.
    pub object: usize,
    /// The `track_file` block.
    pub spec: TrackFile,
    /// Live details (`path`, `value`).
    pub stats: SharedStats,
}

/// Parses a tracked file's content as keepalived does (`strtol(buf, NULL, 0)`), clamped to
/// ±254. Never fails: what is not a number reads as 0.
pub(crate) fn parse_value(buf: &[u8]) -> i32 {
    let mut s = buf;
    while let Some((c, rest)) = s.split_first() {
        if c.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    let mut neg = false;
    if let Some((c, rest)) = s.split_first() {
        if *c == b'-' || *c == b'+' {
            neg = *c == b'-';
            s = rest;
        }
    }
    let radix = match s {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => {
            s = &s[2..];
            16
        }
        [b'0', ..] => 8,
        _ => 10,
    };
    let mut v: i64 = 0;
    for c in s {
        let Some(d) = (*c as char).to_digit(radix) else {
            break;
        };
        v = v
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(d));
    }
    let v = if neg { -v } else { v };
    let max = i64::from(TRACK_VALUE_MAX);
    // Clamped to ±254, so the conversion cannot fail.
    i32::try_from(v.clamp(-max, max)).unwrap_or(0)
}

/// Reads a tracked file (at most 127 bytes, non-blocking open so a FIFO cannot hang us).
///
/// `own`: the agent owns the file (`init_file ... overwrite`). Then, as [`init_file`] refuses to
/// write through a symlink or to anything but a regular file, such a path is not read either:
/// it reads as 0 like an unreadable file (keepalived's rule above), with the reason in status.
pub(crate) fn read_value(path: &Path, own: bool) -> (i32, String) {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if own {
        libc::O_NONBLOCK | libc::O_NOFOLLOW
    } else {
        libc::O_NONBLOCK
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path);
    let mut f = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (0, format!("{} is missing (reads as 0)", path.display()))
        }
        Err(e) if own && e.raw_os_error() == Some(libc::ELOOP) => {
            return (
                0,
                format!(
                "{} is a symbolic link, not followed for an init_file with overwrite (reads as 0)",
                path.display()
            ),
            )
        }
        Err(e) => {
            return (
                0,
                format!("cannot open {}: {e} (reads as 0)", path.display()),
            )
        }
    };
    if own && !f.metadata().is_ok_and(|m| m.is_file()) {
        return (
            0,
            format!(
                "{} is not a regular file, not read for an init_file with overwrite (reads as 0)",
                path.display()
            ),
        );
    }
    let mut buf = [0u8; 127];
    match f.read(&mut buf) {
        Ok(n) => {
            let v = parse_value(buf.get(..n).unwrap_or_default());
            (v, format!("{} holds {v}", path.display()))
        }
        Err(e) => (
            0,
            format!("cannot read {}: {e} (reads as 0)", path.display()),
        ),
    }
}

struct Entry {
    w: Watched,
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
    wd: Option<WatchDescriptor>,
    last: Option<i32>,
}

/// Where a tracked file lives: (full path, directory, name in it). The directory is resolved
/// (symlinks) when it exists, as keepalived does.
fn locate(file: &str) -> (PathBuf, PathBuf, OsString) {
    let p = Path::new(file);
    let name = p.file_name().unwrap_or_default().to_owned();
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    (dir.join(p.file_name().unwrap_or_default()), dir, name)
}

/// Whether the agent owns the file: `init_file ... overwrite` (see [`read_value`]).
fn owned(spec: &TrackFile) -> bool {
    spec.init_file.as_ref().is_some_and(|i| i.overwrite)
}

/// `init_file`: writes the initial value, never through a symlink (the agent runs as root; a
/// link planted at the path must not turn this into a write to any file):
/// - without `overwrite`: `O_CREAT|O_EXCL|O_NOFOLLOW`, so an existing path of any kind (a file,
///   a symlink, even a dangling one) is left as it is;
/// - with `overwrite`: `O_NOFOLLOW` (a symlink fails with `ELOOP`), opened without truncating
///   and non-blocking (a FIFO cannot hang us), then refused unless `fstat` says regular file;
///   only then truncated and written.
///
/// `Err` says why nothing was written (logged by the caller).
fn init_file(spec: &TrackFile, path: &Path) -> Result<(), String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let Some(init) = &spec.init_file else {
        return Ok(());
    };
    let v = init.value.clamp(-254, 254);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o644);
    if init.overwrite {
        opts.create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    } else {
        opts.create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY);
    }
    let shown = path.display();
    let mut f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if !init.overwrite && e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Ok(()); // keepalived: an existing file is kept without `overwrite`
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!(
                "{shown} is a symbolic link; refusing to write through it"
            ))
        }
        Err(e) => return Err(format!("cannot open {shown}: {e}")),
    };
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot stat {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file; refusing to write to it"
        ));
    }
    f.set_len(0)
        .and_then(|()| f.write_all(format!("{v}\n").as_bytes()))
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    info!("track_file {}: wrote {v} to {shown}", spec.name);
    Ok(())
}

const WATCH_MASK: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO);

/// The inotify instance, as tokio's `AsyncFd` wants it (nix's `Inotify` is only `AsFd`).
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Reads the files at `idx` (on the blocking pool) and reports those whose value changed.
async fn reread(
    entries: &mut [Entry],
    idx: Vec<usize>,
    tx: &mpsc::UnboundedSender<TrackerUpdate>,
) -> bool {
    let paths: Vec<(usize, PathBuf, bool)> = idx
        .into_iter()
        .filter_map(|i| {
            entries
                .get(i)
                .map(|e| (i, e.path.clone(), owned(&e.w.spec)))
        })
        .collect();
    let Ok(values) = tokio::task::spawn_blocking(move || {
        paths
            .into_iter()
            .map(|(i, p, own)| (i, read_value(&p, own)))
            .collect::<Vec<_>>()
    })
    .await
    else {
        return true;
    };
    for (i, (v, reason)) in values {
        if let Some(e) = entries.get_mut(i) {
            report(e, v, reason, tx);
        }
    }
    !tx.is_closed()
}

fn report(e: &mut Entry, v: i32, reason: String, tx: &mpsc::UnboundedSender<TrackerUpdate>) {
    if e.last == Some(v) {
        return;
    }
    e.last = Some(v);
    let _ = tx.send(TrackerUpdate::value(e.w.object, v, reason));
}

/// Starts the watcher of `watched` on the current `LocalSet`.
pub(crate) fn spawn(
    watched: Vec<Watched>,
    tx: mpsc::UnboundedSender<TrackerUpdate>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let specs: Vec<TrackFile> = watched.iter().map(|w| w.spec.clone()).collect();
        let prepared = tokio::task::spawn_blocking(move || {
            specs
                .iter()
                .map(|spec| {
                    let (path, dir, name) = locate(&spec.file);
                    if let Err(why) = init_file(spec, &path) {
                        error!("track_file {}: init_file: {why}", spec.name);
                    }
                    (path, dir, name)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let located = match prepared {
            Ok(l) => l,
            Err(e) => {
                error!("track_file: {e}");
                return;
            }
        };
        let mut entries: Vec<Entry> = watched
            .into_iter()
            .zip(located)
            .map(|(w, (path, dir, name))| {
                w.stats
                    .update(|d| d.path = Some(path.display().to_string()));
                Entry {
                    w,
                    path,
                    dir,
                    name,
                    wd: None,
                    last: None,
                }
            })
            .collect();
        let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(i) => i,
            Err(e) => {
                error!("track_file: inotify_init1: {e}; tracked files will not be watched");
                let all = (0..entries.len()).collect();
                reread(&mut entries, all, &tx).await;
                return;
            }
        };
        let mut wds: HashMap<PathBuf, WatchDescriptor> = HashMap::new();
        for e in &mut entries {
            let wd = match wds.get(&e.dir) {
                Some(wd) => Some(*wd),
                None => match inotify.add_watch(&e.dir, WATCH_MASK) {
                    Ok(wd) => {
                        wds.insert(e.dir.clone(), wd);
                        Some(wd)
                    }
                    Err(err) => {
                        error!(
                            "track_file {}: cannot watch {}: {err}; changes will not be seen",
                            e.w.spec.name,
                            e.dir.display()
                        );
                        None
                    }
                },
            };
            e.wd = wd;
        }
        // Watches first, then the initial read: a change in between is seen by both.
        let all: Vec<usize> = (0..entries.len()).collect();
        if !reread(&mut entries, all, &tx).await {
            return;
        }
        // SAFETY: the descriptor stays open and the same until the AsyncFd (which owns it) drops.
        let afd = match unsafe {
            AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE)
        } {
            Ok(a) => a,
            Err(e) => {
                error!("track_file: cannot register the inotify fd: {e}");
                return;
            }
        };
        loop {
            let Ok(mut guard) = afd.readable().await else {
                return;
            };
            let mut dirty: Vec<usize> = Vec::new();
            let mut removed: Vec<usize> = Vec::new();
            loop {
                let events = match afd.get_ref().0.read_events() {
                    Ok(ev) => ev,
                    Err(Errno::EINTR) => continue,
                    Err(err) => {
                        if err != Errno::EAGAIN {
                            warn!("track_file: inotify read: {err}");
                        }
                        guard.clear_ready();
                        break;
                    }
                };
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        warn!("track_file: inotify queue overflow; reading every file again");
                        dirty.extend(0..entries.len());
                        continue;
                    }
                    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        for (i, e) in entries.iter_mut().enumerate() {
                            if e.wd == Some(ev.wd) {
                                warn!(
                                    "track_file {}: {} is gone; no longer watched",
                                    e.w.spec.name,
                                    e.dir.display()
                                );
                                e.wd = None;
                                removed.push(i);
                            }
                        }
                        continue;
                    }
                    if ev.mask.contains(AddWatchFlags::IN_ISDIR) {
                        continue;
                    }
                    for (i, e) in entries.iter().enumerate() {
                        if e.wd != Some(ev.wd) || ev.name.as_ref() != Some(&e.name) {
                            continue;
                        }
                        if ev
                            .mask
                            .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM)
                        {
                            removed.push(i);
                        } else {
                            dirty.push(i);
                        }
                    }
                }
            }
            for i in removed {
                if dirty.contains(&i) {
                    continue;
                }
                if let Some(e) = entries.get_mut(i) {
                    let reason = format!("{} was removed (reads as 0)", e.path.display());
                    report(e, 0, reason, &tx);
                }
            }
            dirty.sort_unstable();
            dirty.dedup();
            if !dirty.is_empty() && !reread(&mut entries, dirty, &tx).await {
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn values_parse_like_strtol_base_0() {
        assert_eq!(parse_value(b"0"), 0);
        assert_eq!(parse_value(b"12\n"), 12);
        assert_eq!(parse_value(b"  -7 trailing"), -7);
        assert_eq!(parse_value(b"+3"), 3);
        assert_eq!(parse_value(b"0x1f"), 31);
        assert_eq!(parse_value(b"0X1F"), 31);
        assert_eq!(parse_value(b"010"), 8, "octal");
        assert_eq!(parse_value(b"09"), 0, "octal stops at 9");
        assert_eq!(parse_value(b"0x"), 0);
        assert_eq!(parse_value(b"abc"), 0);
        assert_eq!(parse_value(b""), 0);
        assert_eq!(parse_value(b"1000"), 254, "clamped");
        assert_eq!(parse_value(b"-99999999999999999999999"), -254);
    }

    proptest! {
        #[test]
        fn value_parser_never_panics_and_stays_in_range(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let v = parse_value(&buf);
            prop_assert!((-254..=254).contains(&v));
        }
    }

    #[test]
    fn reads_missing_files_as_zero() {
        let (v, why) = read_value(Path::new("/nonexistent/xvrrp/file"), false);
        assert_eq!(v, 0);
        assert!(why.contains("missing"), "{why}");
    }
    fn spec(file: &Path, value: i64, overwrite: bool) -> TrackFile {
        TrackFile {
            name: "tf".into(),
            file: file.display().to_string(),
            weight: 1,
            reverse: false,
            init_file: Some(crate::config::InitFile { value, overwrite }),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d = std::env::temp_dir().join(format!("xvrrp-tf-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        d
    }

    fn text(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn init_file_creates_and_keeps_or_overwrites_regular_files() {
        let d = temp_dir("reg");
        let f = d.join("track");
        assert_eq!(init_file(&spec(&f, 7, false), &f), Ok(()));
        assert_eq!(text(&f), "7\n");
        // Exists, no overwrite: kept.
        assert_eq!(init_file(&spec(&f, 9, false), &f), Ok(()));
        assert_eq!(text(&f), "7\n");
        // Overwrite: a longer old content is truncated.
        std::fs::write(&f, "123456789").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(init_file(&spec(&f, -3, true), &f), Ok(()));
        assert_eq!(text(&f), "-3\n");
        assert_eq!(read_value(&f, true).0, -3);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn init_file_never_writes_through_a_symlink() {
        let d = temp_dir("link");
        let victim = d.join("victim");
        std::fs::write(&victim, "42 do not touch\n").unwrap_or_else(|e| panic!("{e}"));
        let link = d.join("track");
        std::os::unix::fs::symlink(&victim, &link).unwrap_or_else(|e| panic!("{e}"));
        // Without overwrite: the path exists (as a link): nothing written.
        assert_eq!(init_file(&spec(&link, 5, false), &link), Ok(()));
        assert_eq!(text(&victim), "42 do not touch\n");
        // With overwrite: refused, reported, and the tracker reads it as unreadable (0).
        let err = init_file(&spec(&link, 5, true), &link).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(text(&victim), "42 do not touch\n");
        let (v, why) = read_value(&link, true);
        assert_eq!(v, 0, "{why}");
        assert!(why.contains("symbolic link"), "{why}");
        // Not owned: read through the link as keepalived does.
        assert_eq!(read_value(&link, false).0, 42);
        // A dangling link to a file that does not exist yet: not created by either mode.
        let absent = d.join("absent");
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink(&absent, &dangling).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(init_file(&spec(&dangling, 1, false), &dangling), Ok(()));
        assert!(init_file(&spec(&dangling, 1, true), &dangling).is_err());
        assert!(!absent.exists(), "created through a dangling link");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn init_file_with_overwrite_refuses_non_regular_files() {
        let d = temp_dir("fifo");
        let fifo = d.join("track");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap_or_else(|e| panic!("mkfifo: {e}"));
        assert!(made.success());
        // No reader: the non-blocking open fails (ENXIO); it never hangs or writes.
        assert!(init_file(&spec(&fifo, 5, true), &fifo).is_err());
        // With a reader, the open succeeds but fstat refuses it.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = init_file(&spec(&fifo, 5, true), &fifo).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let mut buf = [0u8; 8];
        assert!(
            (&reader).read(&mut buf).map_or(true, |n| n == 0),
            "nothing written"
        );
        let (v, why) = read_value(&fifo, true);
        assert_eq!(v, 0);
        assert!(why.contains("not a regular file"), "{why}");
        let dir = d.join("adir");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(init_file(&spec(&dir, 5, true), &dir).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}

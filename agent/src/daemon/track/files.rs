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
    ffi::CString,
    io::Read,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::mpsc,
};
use tracing::{error, info, warn};

use super::{SharedStats, TrackerUpdate};
use crate::{config::TrackFile, vrrp::TRACK_VALUE_MAX};

/// One tracked file.
#[derive(Debug)]
pub struct Watched {
    /// Object index in the registry.
    pub object: usize,
    /// The `track_file` block.
    pub spec: TrackFile,
    /// Live details (`path`, `value`).
    pub stats: SharedStats,
}

/// Parses a tracked file's content as keepalived does (`strtol(buf, NULL, 0)`), clamped to
/// ±254. Never fails: what is not a number reads as 0.
pub fn parse_value(buf: &[u8]) -> i32 {
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
pub fn read_value(path: &Path) -> (i32, String) {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut f = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (0, format!("{} is missing (reads as 0)", path.display()))
        }
        Err(e) => {
            return (
                0,
                format!("cannot open {}: {e} (reads as 0)", path.display()),
            )
        }
    };
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

/// One inotify event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InotifyEvent {
    /// Watch descriptor.
    pub wd: i32,
    /// `IN_*` mask.
    pub mask: u32,
    /// The name within the watched directory (empty for events on the directory itself).
    pub name: Vec<u8>,
}

/// A buffer from an inotify fd that does not hold whole events.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("inotify event at byte {at} is truncated")]
pub struct TruncatedEvent {
    /// Offset of the bad event.
    pub at: usize,
}

const EVENT_HDR: usize = 16;

/// Parses what `read(2)` returned from an inotify fd. Never panics.
pub fn parse_events(buf: &[u8]) -> Result<Vec<InotifyEvent>, TruncatedEvent> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let hdr = buf.get(at..at + EVENT_HDR).ok_or(TruncatedEvent { at })?;
        let word = |i: usize| [hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]];
        let wd = i32::from_ne_bytes(word(0));
        let mask = u32::from_ne_bytes(word(4));
        let len = u32::from_ne_bytes(word(12)) as usize;
        let start = at + EVENT_HDR;
        let name = start
            .checked_add(len)
            .and_then(|end| buf.get(start..end))
            .ok_or(TruncatedEvent { at })?;
        let name = name.split(|b| *b == 0).next().unwrap_or_default().to_vec();
        out.push(InotifyEvent { wd, mask, name });
        at = start + len;
    }
    Ok(out)
}

struct Entry {
    w: Watched,
    path: PathBuf,
    dir: PathBuf,
    name: Vec<u8>,
    wd: Option<i32>,
    last: Option<i32>,
}

/// Where a tracked file lives: (full path, directory, name in it). The directory is resolved
/// (symlinks) when it exists, as keepalived does.
fn locate(file: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let p = Path::new(file);
    let name = p
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    (dir.join(p.file_name().unwrap_or_default()), dir, name)
}

fn init_file(spec: &TrackFile, path: &Path) {
    let Some(init) = &spec.init_file else {
        return;
    };
    if path.exists() && !init.overwrite {
        return;
    }
    let v = init.value.clamp(-254, 254);
    match std::fs::write(path, format!("{v}\n")) {
        Ok(()) => info!("track_file {}: wrote {v} to {}", spec.name, path.display()),
        Err(e) => error!(
            "track_file {}: init_file cannot write {}: {e}",
            spec.name,
            path.display()
        ),
    }
}

fn open_inotify() -> std::io::Result<OwnedFd> {
    // SAFETY: inotify_init1(2) with valid flags; the result is checked before use.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

const WATCH_MASK: u32 =
    libc::IN_CLOSE_WRITE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;

fn add_watch(fd: &OwnedFd, dir: &Path) -> std::io::Result<i32> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `fd` is an inotify descriptor and `c` a NUL-terminated path, both alive.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), WATCH_MASK) };
    if wd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(wd)
    }
}

/// Reads the files at `idx` (on the blocking pool) and reports those whose value changed.
async fn reread(
    entries: &mut [Entry],
    idx: Vec<usize>,
    tx: &mpsc::UnboundedSender<TrackerUpdate>,
) -> bool {
    let paths: Vec<(usize, PathBuf)> = idx
        .into_iter()
        .filter_map(|i| entries.get(i).map(|e| (i, e.path.clone())))
        .collect();
    let Ok(values) = tokio::task::spawn_blocking(move || {
        paths
            .into_iter()
            .map(|(i, p)| (i, read_value(&p)))
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
pub fn spawn(watched: Vec<Watched>, tx: mpsc::UnboundedSender<TrackerUpdate>) {
    tokio::task::spawn_local(async move {
        let specs: Vec<TrackFile> = watched.iter().map(|w| w.spec.clone()).collect();
        let prepared = tokio::task::spawn_blocking(move || {
            specs
                .iter()
                .map(|spec| {
                    let (path, dir, name) = locate(&spec.file);
                    init_file(spec, &path);
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
        let fd = match open_inotify() {
            Ok(fd) => fd,
            Err(e) => {
                error!("track_file: inotify_init1: {e}; tracked files will not be watched");
                let all = (0..entries.len()).collect();
                reread(&mut entries, all, &tx).await;
                return;
            }
        };
        let mut wds: HashMap<PathBuf, i32> = HashMap::new();
        for e in &mut entries {
            let wd = match wds.get(&e.dir) {
                Some(wd) => Some(*wd),
                None => match add_watch(&fd, &e.dir) {
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
        // SAFETY: the OwnedFd stays open and the same until the AsyncFd (which owns it) drops.
        let afd = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(a) => a,
            Err(e) => {
                error!("track_file: cannot register the inotify fd: {e}");
                return;
            }
        };
        // Room for many events (each 16 bytes + a name of up to NAME_MAX + 1).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut guard) = afd.readable().await else {
                return;
            };
            let mut dirty: Vec<usize> = Vec::new();
            let mut removed: Vec<usize> = Vec::new();
            loop {
                // SAFETY: reading into a buffer we own, with its length.
                let n = unsafe {
                    libc::read(
                        afd.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n < 0 {
                    let err = std::io::Error::last_os_error();
                    if err.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    if err.kind() != std::io::ErrorKind::WouldBlock {
                        warn!("track_file: inotify read: {err}");
                    }
                    guard.clear_ready();
                    break;
                }
                let chunk = buf.get(..n as usize).unwrap_or_default();
                let events = match parse_events(chunk) {
                    Ok(ev) => ev,
                    Err(e) => {
                        warn!("track_file: {e}; reading every file again");
                        dirty.extend(0..entries.len());
                        continue;
                    }
                };
                for ev in events {
                    if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                        warn!("track_file: inotify queue overflow; reading every file again");
                        dirty.extend(0..entries.len());
                        continue;
                    }
                    if ev.mask & libc::IN_IGNORED != 0 {
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
                    if ev.mask & libc::IN_ISDIR != 0 {
                        continue;
                    }
                    for (i, e) in entries.iter().enumerate() {
                        if e.wd != Some(ev.wd) || e.name != ev.name {
                            continue;
                        }
                        if ev.mask & (libc::IN_DELETE | libc::IN_MOVED_FROM) != 0 {
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
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    fn event(wd: i32, mask: u32, name: &[u8], pad: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&wd.to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&((name.len() + pad) as u32).to_ne_bytes());
        v.extend_from_slice(name);
        v.extend(std::iter::repeat_n(0u8, pad));
        v
    }

    #[test]
    fn parses_inotify_events_with_padded_names() {
        let mut buf = event(1, libc::IN_CLOSE_WRITE, b"state", 3);
        buf.extend(event(2, libc::IN_Q_OVERFLOW, b"", 0));
        let ev = parse_events(&buf).expect("well formed");
        assert_eq!(
            ev,
            vec![
                InotifyEvent {
                    wd: 1,
                    mask: libc::IN_CLOSE_WRITE,
                    name: b"state".to_vec()
                },
                InotifyEvent {
                    wd: 2,
                    mask: libc::IN_Q_OVERFLOW,
                    name: Vec::new()
                }
            ]
        );
        assert_eq!(parse_events(&buf[..10]), Err(TruncatedEvent { at: 0 }));
        let mut long = event(1, 0, b"x", 0);
        long[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(parse_events(&long), Err(TruncatedEvent { at: 0 }));
    }

    proptest! {
        #[test]
        fn inotify_parser_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_events(&buf);
        }

        #[test]
        fn value_parser_never_panics_and_stays_in_range(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let v = parse_value(&buf);
            prop_assert!((-254..=254).contains(&v));
        }
    }

    #[test]
    fn reads_missing_files_as_zero() {
        let (v, why) = read_value(Path::new("/nonexistent/xvrrp/file"));
        assert_eq!(v, 0);
        assert!(why.contains("missing"), "{why}");
    }
}

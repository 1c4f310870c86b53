//! Handing back the memory that only start-up (and a reload) needed.
//!
//! Starting touches much more of the agent than running does: the configuration parser and
//! validator, the command line, the eBPF loader (object parse, program verification), the first
//! netlink and `sock_diag` dumps, the trackers' set-up. At rest the agent runs a small part of
//! its code (the loop, the core, the advert sender, the ring readers). Two things would keep the
//! rest resident for the agent's life:
//!
//! - **heap** freed after start-up that glibc keeps mapped: `malloc_trim(0)` returns it;
//! - **pages of the executable** mapped by start-up: the kernel maps file pages around each
//!   fault (`fault_around_bytes`, 64 KiB), so start-up left about 70 % of the agent's code
//!   resident (3.6 of 5.2 MB), of which about 2 MB is used at rest. Unmapping them
//!   (`MADV_DONTNEED`) keeps them in the page cache: a later use is a minor fault, as the first
//!   one was, and the pages are reclaimable under memory pressure like any unmapped file page.
//!
//! Only mappings of the agent's own executable are unmapped, and only read-only ones that hold
//! no private page (`Anonymous: 0` in `/proc/self/smaps`): for those, a refault reads exactly
//! the bytes that were there. The relocated read-only data (RELRO, written at load time) and any
//! page changed by a debugger or a uprobe are private pages, so their mapping is left alone.
//!
//! [`Releaser::schedule`] runs [`trim_heap`] and [`release_code`] once the agent has settled
//! ([`SETTLE`] after start and after each reload; the listen tracker loads its kernel program on
//! a blocking thread in that time). It costs about a millisecond of the loop, once.

use std::{os::unix::fs::MetadataExt, time::Duration};

use procfs::process::{MMPermissions, MMapPath, MemoryMap, Process};
use tokio::task::JoinHandle;

/// How long after start or a reload the start-up memory is released.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);

/// What [`release_code`] handed back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    /// Resident bytes of the executable's read-only mappings that were unmapped.
    pub(crate) code_bytes: u64,
    /// Mappings left alone because they hold private pages.
    pub(crate) skipped: usize,
}

/// The pending release, if any: a new [`Releaser::schedule`] replaces it.
#[derive(Debug, Default)]
pub(crate) struct Releaser {
    task: Option<JoinHandle<()>>,
}

impl Releaser {
    /// Releases the start-up memory [`SETTLE`] from now, on the current `LocalSet`.
    pub(crate) fn schedule(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.task = Some(tokio::task::spawn_local(async {
            tokio::time::sleep(SETTLE).await;
            let t = std::time::Instant::now();
            let heap = trim_heap();
            match release_code() {
                Ok(r) => tracing::debug!(
                    "released start-up memory: {} KiB of code unmapped ({} mapping(s) with \
                     private pages kept), heap trimmed: {heap}, in {} µs",
                    r.code_bytes / 1024,
                    r.skipped,
                    t.elapsed().as_micros()
                ),
                Err(e) => tracing::debug!("start-up memory not released: {e}"),
            }
        }));
    }
}

impl Drop for Releaser {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Returns the heap's free memory to the kernel (glibc keeps freed memory mapped; other libcs
/// need nothing here). True when glibc released some.
pub(crate) fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Whether `map` maps the executable (`exe`: its `st_dev` and inode).
fn is_exe(map: &MemoryMap, exe: (u64, u64)) -> bool {
    let dev = (libc::major(exe.0), libc::minor(exe.0));
    matches!(map.pathname, MMapPath::Path(_))
        && map.inode == exe.1
        && u32::try_from(map.dev.0) == Ok(dev.0)
        && u32::try_from(map.dev.1) == Ok(dev.1)
}

/// Whether [`release_code`] may unmap `map`: read-only, private, with no private page.
fn releasable(map: &MemoryMap) -> bool {
    !map.perms.contains(MMPermissions::WRITE)
        && !map.perms.contains(MMPermissions::SHARED)
        && map.extension.map.get("Anonymous") == Some(&0)
}

/// Unmaps the resident pages of the executable's read-only mappings that hold no private page
/// (see the module's documentation).
pub(crate) fn release_code() -> std::io::Result<Released> {
    let meta = std::fs::metadata("/proc/self/exe")?;
    let exe = (meta.dev(), meta.ino());
    let maps = Process::myself()
        .and_then(|p| p.smaps())
        .map_err(std::io::Error::other)?;
    let mut released = Released::default();
    for map in maps {
        if !is_exe(&map, exe) {
            continue;
        }
        if !releasable(&map) {
            released.skipped += usize::from(!map.perms.contains(MMPermissions::WRITE));
            continue;
        }
        let (start, end) = map.address;
        let (Ok(addr), Ok(len)) = (usize::try_from(start), usize::try_from(end - start)) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of this process (page aligned, from smaps), of a
        // file, read-only and private with no private page (checked just above): MADV_DONTNEED
        // only drops page table entries, and the next access maps the same file page again.
        // Nothing in the process holds a reference into it that relies on it being resident.
        let r = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if r == 0 {
            released.code_bytes += map.extension.map.get("Rss").copied().unwrap_or(0);
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident size of the executable's read-only mappings, from smaps.
    fn exe_code_rss() -> u64 {
        let meta = std::fs::metadata("/proc/self/exe").expect("exe");
        let exe = (meta.dev(), meta.ino());
        let maps = Process::myself().and_then(|p| p.smaps()).expect("smaps");
        maps.iter()
            .filter(|m| is_exe(m, exe) && releasable(m))
            .map(|m| m.extension.map.get("Rss").copied().unwrap_or(0))
            .sum()
    }

    #[test]
    fn code_released_is_unmapped_and_still_runs() {
        let before = exe_code_rss();
        assert!(before > 0, "the test binary has resident code");
        let r = release_code().expect("release");
        assert!(r.code_bytes > 0, "{r:?}");
        // The relocated read-only data (RELRO) holds private pages: never unmapped.
        assert!(r.skipped >= 1, "{r:?}");
        // The code still runs after (the pages come back from the page cache) and the process
        // is smaller than before.
        let v: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
        let after = exe_code_rss();
        assert!(after < before, "resident code {before} -> {after}");
    }
}

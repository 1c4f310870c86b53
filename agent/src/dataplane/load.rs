//! Loading the embedded eBPF object: the object itself, the one shared BTF-less loader, and
//! [`load_object`], which every program of the agent (XDP filter, TCP tracker) is loaded with.

use std::sync::{Mutex, OnceLock, PoisonError};

use aya::{programs::Xdp, Ebpf, EbpfLoader};

use super::DataplaneError;

/// The eBPF object embedded at build time (empty when the agent was built without it).
pub(super) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvrrp-ebpf.o"));

/// True when the binary carries its eBPF object.
pub fn has_embedded_object() -> bool {
    !EBPF_OBJECT.is_empty()
}

/// What a load of the object is for. The object holds every program and every map, and each
/// load creates all of its maps; the ring buffers the load's programs do not use are made as
/// small as the kernel allows (one page, [`ring_bytes`]) instead of their full size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoadFor {
    /// The XDP filter (or its test run), with an advert event ring of this many bytes (a power
    /// of two multiple of the page size).
    Xdp { events_ring: u32 },
    /// The TCP listener tracker.
    Tcp,
}

/// A ring buffer size the kernel accepts for `wanted` bytes (a power of two): a ring must be a
/// power of two multiple of the page size, so at least one page (4 KiB here; 16 or 64 KiB on
/// some arm64 kernels).
pub(super) fn ring_bytes(wanted: u32) -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u32::try_from(page)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    wanted.max(page)
}

pub(super) fn load_object(what: LoadFor) -> Result<Ebpf, DataplaneError> {
    if !has_embedded_object() {
        return Err(DataplaneError::NoObject);
    }
    // The kernel charges BPF memory to the memory cgroup; raising RLIMIT_MEMLOCK is only needed on
    // old kernels and may be refused (no CAP_SYS_RESOURCE). Its failure is deliberately not fatal.
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised struct.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    let loaded = {
        // One load at a time: the loader is shared, and two loads at once (the XDP filter on the
        // event loop, the TCP tracker on a blocking thread) would add up their transient heaps.
        let mut loader = loader().lock().unwrap_or_else(PoisonError::into_inner);
        let (xdp_ring, tcp_ring) = match what {
            LoadFor::Xdp { events_ring } => (ring_bytes(events_ring), ring_bytes(0)),
            LoadFor::Tcp => (
                ring_bytes(0),
                ring_bytes(agent_common::tcp::EVENTS_RING_BYTES),
            ),
        };
        loader.map_max_entries(agent_common::XDP_EVENTS_MAP, xdp_ring);
        loader.map_max_entries(agent_common::tcp::EVENTS_MAP, tcp_ring);
        loader.load(EBPF_OBJECT)
    };
    // Loading leaves freed heap behind (the object's parse, the tracker's BTF offsets computed
    // just before); hand it back to the kernel now rather than keep it for the daemon's life.
    crate::memory::trim_heap();
    Ok(loaded?)
}

/// The process's one [`EbpfLoader`], made without the kernel's BTF.
///
/// `EbpfLoader::new()` (and so `Ebpf::load`) always parses `/sys/kernel/btf/vmlinux` for CO-RE
/// relocations: about 5 MB read and some 25 MB of heap while aya builds its type table, on every
/// load (the XDP filter per interface, the TCP tracker). Our object has no CO-RE relocations
/// (no `.BTF.ext`; the TCP program's field offsets come from
/// [`tcp::SockOffsets`](super::tcp::SockOffsets)), so that parse only costs memory. The loader
/// is built once, on a short-lived thread that cannot see the file ([`hide_kernel_btf`]), so
/// aya's parse fails at the `open` and the loader has no kernel BTF; when that thread cannot be
/// isolated, the loader is built normally and its BTF dropped at once. Every load then reuses it.
fn loader() -> &'static Mutex<EbpfLoader<'static>> {
    static LOADER: OnceLock<Mutex<EbpfLoader<'static>>> = OnceLock::new();
    LOADER.get_or_init(|| {
        if object_has_btf_ext(EBPF_OBJECT) {
            // CO-RE relocations need the kernel's types: keep aya's default.
            return Mutex::new(with_log_ring(EbpfLoader::new()));
        }
        let isolated = std::thread::Builder::new()
            .name("xvrrp-loader".to_owned())
            .spawn(|| hide_kernel_btf().then(EbpfLoader::new))
            .ok()
            .and_then(|t| t.join().ok())
            .flatten();
        // Not isolated: `EbpfLoader::default()` is `new()`, which parses; dropped right here.
        let mut loader = isolated.unwrap_or_default();
        loader.btf(None);
        Mutex::new(with_log_ring(loader))
    })
}

/// Size of each object's aya-log record ring (`AYA_LOGS`), instead of aya-log's 128 KiB.
///
/// The programs log only on rare error paths, and only when a per-CPU error count reaches a power
/// of two (see [`super::klog`]); a record takes 256-512 bytes, so 16 KiB holds dozens, more than
/// a burst produces before the agent reads the ring. The agent maps the ring's data twice (aya's
/// consumer view), so each object's ring cost 260 KiB of resident memory for the agent's life at
/// the default size, 36 KiB at this one.
pub(super) const LOG_RING_BYTES: u32 = 16 * 1024;

/// `loader` with the log ring set to [`LOG_RING_BYTES`] (an object without the map ignores it).
fn with_log_ring(mut loader: EbpfLoader<'static>) -> EbpfLoader<'static> {
    loader.map_max_entries("AYA_LOGS", ring_bytes(LOG_RING_BYTES));
    loader
}

/// Whether an ELF object has a `.BTF.ext` section (where CO-RE relocations live), by its name in
/// the section name table.
fn object_has_btf_ext(object: &[u8]) -> bool {
    const NAME: &[u8] = b".BTF.ext\0";
    object.windows(NAME.len()).any(|w| w == NAME)
}

/// Makes `/sys/kernel/btf/vmlinux` unreachable for the calling thread alone: it gets its own
/// filesystem context (`unshare(CLONE_FS)`: root, cwd and umask, not the mount namespace) and
/// its root is moved to an empty procfs directory. Only for a thread that exits right after.
/// False (and nothing changed) when either step is refused (no `CAP_SYS_CHROOT`, seccomp).
fn hide_kernel_btf() -> bool {
    // SAFETY: unshare(2) with CLONE_FS only: this thread stops sharing root/cwd/umask with the
    // others. Nothing else of the process changes.
    if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
        return false;
    }
    // `fdinfo` holds only numeric entries, so no `sys/...` below it. After the unshare above,
    // chroot(2) changes this thread's root alone.
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::chroot(c"/proc/self/fdinfo".as_ptr()) == 0 }
}

pub(super) fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<&'a mut Xdp, DataplaneError> {
    ebpf.program_mut(name)
        .ok_or(DataplaneError::Missing("the XDP program"))?
        .try_into()
        .map_err(|_| DataplaneError::Missing("an XDP program of the right type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_are_whole_pages() {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        assert_eq!(i64::from(ring_bytes(0)), page as i64);
        for wanted in [0, 4096, LOG_RING_BYTES, 64 * 1024, 256 * 1024] {
            let b = ring_bytes(wanted);
            assert!(
                b >= wanted && b.is_power_of_two() && i64::from(b) % page as i64 == 0,
                "{wanted}: {b}"
            );
        }
    }

    #[test]
    fn btf_ext_is_found_by_its_section_name() {
        assert!(!object_has_btf_ext(b""));
        assert!(!object_has_btf_ext(b"\0.text\0xdp\0.BTF\0.maps\0"));
        assert!(!object_has_btf_ext(b".BTF.extra\0"));
        assert!(object_has_btf_ext(b"\0.text\0.BTF\0.BTF.ext\0"));
        assert!(object_has_btf_ext(b"\0.rel.BTF.ext\0"));
    }

    #[test]
    fn hiding_the_kernel_btf_changes_the_calling_thread_alone() {
        let root = || std::fs::read_link("/proc/thread-self/root").ok();
        let before = root();
        let (hidden, sys_seen) = std::thread::spawn(|| {
            let hidden = hide_kernel_btf();
            (hidden, std::path::Path::new("/sys/kernel").exists())
        })
        .join()
        .unwrap_or((false, true));
        if hidden {
            assert!(!sys_seen, "the loader thread still sees /sys");
        }
        // Unprivileged, nothing happens; privileged, only the (exited) thread was moved.
        assert_eq!(root(), before);
        assert!(std::path::Path::new("/proc/self/fdinfo").is_dir());
    }

    #[test]
    fn the_embedded_object_needs_no_kernel_btf() {
        assert!(
            !object_has_btf_ext(EBPF_OBJECT),
            "the eBPF object has .BTF.ext now: every load parses the kernel's BTF again (some \
             25 MB of heap at start-up, see loader()); re-run the rest bench"
        );
    }
}

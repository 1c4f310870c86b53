//! The `xvrrp` binary: a thin shell over [`xvrrp::cli`].

fn main() -> std::process::ExitCode {
    tune_malloc();
    xvrrp::cli::main()
}

/// glibc's allocator, set for a small long-running daemon before any thread starts:
/// - one arena: by default every thread that allocates (the event loop, the log writer, the
///   announcer, tokio's blocking threads that start the TCP tracker and run scripts) gets an
///   arena of its own, and each keeps what its thread freed; the daemon's threads are idle
///   nearly always, so they gain nothing from separate arenas;
/// - a fixed mmap threshold: blocks of 256 KiB and more (the kernel BTF read at start-up) are
///   mapped on their own and unmapped when freed. By default glibc raises the threshold after
///   such a block is freed, so the next big ones land in the heap and stay resident.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

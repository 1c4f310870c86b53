//! The kernel programs' log records (`aya-log`), forwarded to the agent's `log` records.
//!
//! The programs log only on their rare error paths (an event ring buffer full, a failed kernel
//! read at the BTF offsets, the TCP program running unconfigured, its counts map full), and on
//! each only when the per-CPU count of that error reaches a power of two, so a flood costs a
//! handful of records. Each loaded object has its own record ring (`AYA_LOGS`, 16 KiB:
//! `load::LOG_RING_BYTES`).
//!
//! [`KernelLog::start`] takes that ring from a loaded object and, on the tokio runtime the
//! caller runs in (the agent's current-thread loop, also from a blocking thread of it), spawns
//! a task that waits for the ring's fd to become readable (`AsyncFd`: no timer, nothing runs at
//! rest) and hands the records to the `log` crate's logger of the moment. Without a runtime
//! (the synchronous benchmark), the ring is kept and read only by [`KernelLog::flush`]. An
//! object without the ring (built without aya-log) is not an error: nothing is forwarded.
//!
//! Start it after the programs are loaded: the programs refer to the ring, and a ring dropped
//! before their load (on an error here) would make the load fail.

use aya::Ebpf;
use aya_log::EbpfLogger;
use log::{Log, Metadata, Record};
use tokio::{
    io::{unix::AsyncFd, Interest},
    runtime::Handle,
    task::JoinHandle,
};

/// Where records go: by default [`GlobalLog`].
pub type Sink = Box<dyn Log>;

/// The `log` crate's logger, looked up for every record (so a logger installed after the
/// programs were loaded still gets them), with its level filter applied.
pub struct GlobalLog;

impl Log for GlobalLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && log::logger().enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            log::logger().log(record);
        }
    }

    fn flush(&self) {
        log::logger().flush();
    }
}

/// The forwarding of one loaded object's log records. Dropping it stops the forwarding.
#[derive(Default)]
pub struct KernelLog {
    /// The task reading the ring, on the runtime.
    task: Option<JoinHandle<()>>,
    /// The ring, when no runtime was there to read it.
    held: Option<EbpfLogger<Sink>>,
}

impl std::fmt::Debug for KernelLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelLog")
            .field("task", &self.task.is_some())
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl KernelLog {
    /// Forwards the records of `ebpf`'s programs to the `log` crate's logger (`what` names the
    /// object in the agent's own messages about this).
    pub fn start(ebpf: &mut Ebpf, what: &str) -> Self {
        Self::start_with(ebpf, what, Box::new(GlobalLog))
    }

    /// [`KernelLog::start`] to `sink`.
    pub fn start_with(ebpf: &mut Ebpf, what: &str, sink: Sink) -> Self {
        let logger = match EbpfLogger::init_with_logger(ebpf, sink) {
            Ok(l) => l,
            Err(aya_log::Error::MapNotFound) => {
                tracing::debug!("{what}: the kernel programs have no log ring (AYA_LOGS)");
                return Self::default();
            }
            Err(e) => {
                tracing::warn!("{what}: the kernel programs' log records are lost: {e}");
                return Self::default();
            }
        };
        let Ok(rt) = Handle::try_current() else {
            return Self {
                task: None,
                held: Some(logger),
            };
        };
        let _entered = rt.enter();
        // SAFETY: the logger owns the ring's map fd: it stays open, and the same, for as long
        // as the logger lives, which the `AsyncFd` owns; reading records does not replace it.
        match unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) } {
            Ok(fd) => Self {
                task: Some(rt.spawn(forward(fd))),
                held: None,
            },
            Err(e) => {
                let (logger, e) = e.into_parts();
                tracing::warn!("{what}: the kernel programs' log records are not forwarded: {e}");
                Self {
                    task: None,
                    held: Some(logger),
                }
            }
        }
    }

    /// Forwards the records queued so far, when no task does (started without a runtime).
    pub fn flush(&mut self) {
        if let Some(l) = &mut self.held {
            l.flush();
        }
    }

    /// Whether a task forwards the records as they come.
    pub fn is_forwarding(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Reads the ring each time it becomes readable. Only fails when the fd cannot be polled.
async fn forward(mut fd: AsyncFd<EbpfLogger<Sink>>) {
    loop {
        let Ok(mut ready) = fd.readable_mut().await else {
            tracing::warn!("kernel log records: the ring cannot be polled; no more records");
            return;
        };
        ready.get_inner_mut().flush();
        ready.clear_ready();
    }
}

/// For the tests of the kernel programs' error paths: a sink that keeps what it gets.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use log::{Level, Log, Metadata, Record};

    /// One record: level, target, message.
    pub(crate) type Kept = (Level, String, String);

    /// Keeps every record (shared between clones).
    #[derive(Clone, Default)]
    pub(crate) struct Capture(Arc<Mutex<Vec<Kept>>>);

    impl Capture {
        /// The records so far.
        pub(crate) fn records(&self) -> Vec<Kept> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }

        /// Lets the forwarding task run for `wait`, or until at least `want` records came.
        pub(crate) async fn settle(&self, want: usize, wait: Duration) -> Vec<Kept> {
            let until = tokio::time::Instant::now() + wait;
            loop {
                let got = self.records();
                if (want > 0 && got.len() >= want) || tokio::time::Instant::now() >= until {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    impl Log for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }

        fn log(&self, r: &Record<'_>) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
                r.level(),
                r.target().to_owned(),
                r.args().to_string(),
            ));
        }

        fn flush(&self) {}
    }

    /// Whether the kernel programs can be loaded here (root, and the object embedded).
    pub(crate) fn can_load() -> bool {
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !(root && super::super::has_embedded_object()) {
            eprintln!("skipped: needs root and the eBPF object (cargo xtask build-ebpf)");
            return false;
        }
        true
    }

    /// A current-thread runtime like the agent's.
    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    }
}

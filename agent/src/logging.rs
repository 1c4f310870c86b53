//! A small stderr logger: `LEVEL message`, one line per record, with an optional UTC timestamp
//! (off under systemd/journald, which stamps lines itself).
//!
//! Logging never blocks the event loop: records are formatted on the caller's thread and handed
//! to a writer thread through a bounded queue. When stderr stalls (a full pipe, a slow journald)
//! and the queue is full, lines are dropped and counted, and the writer reports how many were
//! lost once it can write again.
//!
//! Secrets never reach it: the types that hold them (DigitalOcean token, `auth_pass`) redact
//! themselves in `Debug` and `Display`.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{sync_channel, SyncSender, TrySendError},
        Arc,
    },
};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Lines that may wait for the writer thread before new ones are dropped.
const QUEUE: usize = 4096;

/// Lines queued and not yet written.
static PENDING: AtomicU64 = AtomicU64::new(0);

struct StderrLogger {
    level: LevelFilter,
    timestamps: bool,
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = if self.timestamps {
            format!("{} {level} {}\n", utc_now(), record.args())
        } else {
            format!("{level} {}\n", record.args())
        };
        PENDING.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                PENDING.fetch_sub(1, Ordering::SeqCst);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self) {
        flush();
    }
}

/// Installs the logger. `verbosity`: 0 info, 1 debug, 2+ trace; `quiet` lowers it to warnings.
/// Timestamps are printed unless stderr goes to journald (`JOURNAL_STREAM` is set).
pub fn init(verbosity: u8, quiet: bool) {
    let level = match (quiet, verbosity) {
        (true, _) => LevelFilter::Warn,
        (false, 0) => LevelFilter::Info,
        (false, 1) => LevelFilter::Debug,
        (false, _) => LevelFilter::Trace,
    };
    let timestamps = std::env::var_os("JOURNAL_STREAM").is_none();
    let (tx, rx) = sync_channel::<String>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let lost = dropped.clone();
    let writer = std::thread::Builder::new()
        .name("xvrrp-log".into())
        .spawn(move || {
            for line in rx {
                let mut out = std::io::stderr().lock();
                let n = lost.swap(0, Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "WARN {n} log line(s) dropped: stderr could not keep up"
                    );
                }
                let _ = out.write_all(line.as_bytes());
                PENDING.fetch_sub(1, Ordering::SeqCst);
            }
        });
    if writer.is_err() {
        return;
    }
    if log::set_boxed_logger(Box::new(StderrLogger {
        level,
        timestamps,
        tx,
        dropped,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}

/// Waits (at most one second) until queued log lines are written, e.g. before the process exits.
pub fn flush() {
    for _ in 0..200 {
        if PENDING.load(Ordering::SeqCst) == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = std::io::stderr().flush();
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, without a time-zone database.
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_secs(), now.subsec_millis())
}

/// Formats Unix seconds (+ milliseconds) as an ISO 8601 UTC timestamp.
pub fn format_utc(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format_utc(1_795_000_000, 999), "2026-11-18T11:06:40.999Z");
    }
}

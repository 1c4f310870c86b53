//! Logging on `tracing`: `LEVEL message` on stderr, one line per event, with an optional UTC
//! timestamp (off under systemd/journald, which stamps lines itself). `log` records (aya,
//! reqwest) are forwarded and printed the same way. `--log-format json` prints one JSON object
//! per line instead (see `json`), through the same queue, filter and writer.
//!
//! Logging never blocks the event loop: events are formatted on the caller's thread and handed
//! to a writer thread (`tracing-appender`, lossy). When stderr stalls (a full pipe, a slow
//! journald) and the queue is full, lines are dropped and counted, and the writer reports how
//! many were lost once it can write again.
//!
//! Secrets never reach it: the types that hold them (DigitalOcean token, `auth_pass`) redact
//! themselves in `Debug` and `Display`.

use std::{
    fmt,
    io::{self, Write},
    sync::{Arc, Mutex, OnceLock},
};

use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    filter::{filter_fn, LevelFilter},
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields, MakeWriter},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
    Layer,
};

mod json;

pub(crate) use self::json::set_instances;

/// How log lines look (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// `[TIMESTAMP ]LEVEL message fields...` (the default).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, instance, message, fields.
    Json,
}

/// Lines that may wait for the writer thread before new ones are dropped. The queue is an
/// array allocated in full at start (32 bytes a line: 128 KiB at 4096); the rate limits
/// (`daemon::loglimit`) keep floods far below this, and a start or reload of many instances
/// writes a few lines each.
const QUEUE: usize = 1024;

/// The writer thread's guard: dropping it writes what is queued (waiting at most one second).
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Flushes the log (see [`flush`]) when dropped.
#[must_use = "dropping it flushes the log"]
pub(crate) struct FlushOnDrop(());

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush();
    }
}

/// Installs the logger. `verbosity`: 0 info, 1 debug, 2+ trace; `quiet` lowers it to warnings.
/// Timestamps are printed unless stderr goes to journald (`JOURNAL_STREAM` is set). Keep the
/// returned value alive while the process logs: dropping it flushes the queue.
pub(crate) fn init(verbosity: u8, quiet: bool, format: LogFormat) -> FlushOnDrop {
    let level = match (quiet, verbosity) {
        (true, _) => LevelFilter::WARN,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let timestamps = std::env::var_os("JOURNAL_STREAM").is_none();
    let counter = Arc::new(OnceLock::new());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE)
        .thread_name("xvrrp-log")
        .finish(Stderr {
            dropped: counter.clone(),
            reported: 0,
            format,
        });
    let _ = counter.set(writer.error_counter());
    if let Ok(mut g) = GUARD.lock() {
        *g = Some(guard);
    }
    let _ = tracing_subscriber::registry()
        .with(layer(writer, timestamps, level, format))
        .try_init();
    FlushOnDrop(())
}

/// The stderr layer: [`Line`]s (or JSON objects), written by `writer`, filtered as the
/// `log`-based logger was.
fn layer<S, W>(
    writer: W,
    timestamps: bool,
    level: LevelFilter,
    format: LogFormat,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Our own events and every `log` record (aya, reqwest), as before; not the tracing-native
    // events of dependencies (hyper-util), which the `log`-based logger never saw.
    let ours = filter_fn(move |m| {
        *m.level() <= level
            && (m.target().starts_with("xvrrp") || m.fields().field("log.target").is_some())
    })
    .with_max_level_hint(level);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => fmt
            .event_format(Line { timestamps })
            .with_filter(ours)
            .boxed(),
        LogFormat::Json => fmt.event_format(json::Json).with_filter(ours).boxed(),
    }
}

/// One line: `[TIMESTAMP ]LEVEL message fields...`.
struct Line {
    timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.timestamps {
            write!(w, "{} ", utc_now())?;
        }
        write!(w, "{} ", event.metadata().level())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Stderr for the writer thread: first reports the lines dropped since it last wrote.
struct Stderr {
    dropped: Arc<OnceLock<ErrorCounter>>,
    reported: usize,
    format: LogFormat,
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write(buf)
    }

    fn write_all(&mut self, line: &[u8]) -> io::Result<()> {
        let mut out = io::stderr().lock();
        let dropped = self.dropped.get().map_or(0, ErrorCounter::dropped_lines);
        if dropped > self.reported {
            let n = dropped - self.reported;
            self.reported = dropped;
            let _ = match self.format {
                LogFormat::Text => writeln!(
                    out,
                    "{} {n} log line(s) dropped: stderr could not keep up",
                    Level::WARN
                ),
                LogFormat::Json => writeln!(out, "{}", json::dropped_line(n)),
            };
        }
        out.write_all(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Writes the queued log lines (waiting at most one second), e.g. before the process exits.
/// Lines logged after it are dropped.
pub(crate) fn flush() {
    let guard = GUARD.lock().ok().and_then(|mut g| g.take());
    drop(guard);
    let _ = io::stderr().flush();
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, without a time-zone database.
pub(crate) fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_secs(), now.subsec_millis())
}

/// Formats Unix seconds (+ milliseconds) as an ISO 8601 UTC timestamp.
pub(crate) fn format_utc(secs: u64, millis: u32) -> String {
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
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt};

    use super::{format_utc, layer, LevelFilter, LogFormat};
    use crate::config::Secret;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format_utc(1_795_000_000, 999), "2026-11-18T11:06:40.999Z");
    }

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// What `f` logs through the daemon's layer (no timestamps).
    fn capture(level: LevelFilter, f: impl FnOnce()) -> String {
        capture_as(LogFormat::Text, level, f)
    }

    /// What `f` logs through the daemon's layer in `format` (text without timestamps).
    fn capture_as(format: LogFormat, level: LevelFilter, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let subscriber =
            tracing_subscriber::registry().with(layer(buf.clone(), false, level, format));
        tracing::subscriber::with_default(subscriber, f);
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_level_then_message() {
        let out = capture(LevelFilter::INFO, || {
            tracing::info!("VI_1: Backup -> Master ({})", "master down");
            tracing::warn!("careful");
            tracing::debug!("hidden at info");
        });
        assert_eq!(
            out,
            "INFO VI_1: Backup -> Master (master down)\nWARN careful\n"
        );
        let out = capture(LevelFilter::WARN, || tracing::info!("hidden when quiet"));
        assert_eq!(out, "");
    }

    #[test]
    fn secrets_stay_redacted() {
        let token = Secret::new("dop_v1_0123456789abcdef");
        let pass = Secret::new("hunter22");
        let out = capture(LevelFilter::TRACE, || {
            tracing::info!(token = ?token, "token {token} {token:?}");
            tracing::warn!(auth_pass = %pass, "auth_pass {pass}");
            tracing::debug!(?token, %pass);
        });
        assert!(!out.contains("dop_v1"), "{out}");
        assert!(!out.contains("hunter22"), "{out}");
        assert_eq!(out.matches(crate::config::REDACTED).count(), 7, "{out}");
    }

    /// The JSON lines `f` logs, parsed.
    fn capture_json(level: LevelFilter, f: impl FnOnce()) -> Vec<serde_json::Value> {
        capture_as(LogFormat::Json, level, f)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn json_is_one_object_per_line_with_level_target_instance_message_and_fields() {
        super::set_instances(["VI_json", "VI_other"]);
        let lines = capture_json(LevelFilter::INFO, || {
            tracing::info!("VI_json: Backup -> Master ({})", "master down");
            tracing::warn!(
                peer = "10.0.0.2",
                count = 3_u64,
                ok = false,
                "VI_other: dropped"
            );
            tracing::info!(instance = "VI_x", "explicit: field wins");
            tracing::error!("SIGHUP: not an instance");
            tracing::debug!("hidden at info");
        });
        assert_eq!(lines.len(), 4, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], "xvrrp::logging::tests");
        assert_eq!(first["instance"], "VI_json");
        assert_eq!(first["message"], "VI_json: Backup -> Master (master down)");
        assert_eq!(first["fields"], serde_json::json!({}));
        let ts = first["timestamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["instance"], "VI_other");
        assert_eq!(
            lines[1]["fields"],
            serde_json::json!({"peer": "10.0.0.2", "count": 3, "ok": false})
        );
        assert_eq!(lines[2]["instance"], "VI_x");
        assert_eq!(lines[2]["fields"], serde_json::json!({}));
        assert_eq!(lines[3]["instance"], serde_json::Value::Null);
        assert_eq!(lines[3]["level"], "ERROR");
    }

    #[test]
    fn json_escapes_and_keeps_secrets_redacted() {
        let token = Secret::new("dop_v1_0123456789abcdef");
        let out = capture_as(LogFormat::Json, LevelFilter::TRACE, || {
            tracing::info!(token = ?token, "token {token}\nnext \"quoted\"");
            tracing::debug!(%token);
        });
        assert!(!out.contains("dop_v1"), "{out}");
        assert_eq!(out.lines().count(), 2, "one line per event: {out}");
        let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(
            first["message"],
            format!("token {}\nnext \"quoted\"", crate::config::REDACTED)
        );
        assert_eq!(first["fields"]["token"], crate::config::REDACTED);
    }

    #[test]
    fn forwarded_log_records_keep_their_target() {
        let buf = Buf::default();
        // `log` records arrive as events with `log.target` (tracing-log); emulate one.
        let subscriber = tracing_subscriber::registry().with(layer(
            buf.clone(),
            false,
            LevelFilter::INFO,
            LogFormat::Json,
        ));
        tracing::subscriber::with_default(subscriber, || {
            tracing::event!(
                target: "log",
                tracing::Level::INFO,
                log.target = "aya::bpf",
                log.module_path = "aya::bpf",
                "loaded"
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["target"], "aya::bpf", "{out}");
        assert_eq!(v["fields"], serde_json::json!({}), "{out}");
    }
}

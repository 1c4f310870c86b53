//! `--log-format json`: one JSON object per line,
//! `{"timestamp","level","target","instance","message","fields"}`.
//!
//! - `timestamp`: UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`, always present (unlike the text format, which
//!   leaves it to journald);
//! - `level`: `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`;
//! - `target`: the Rust module (`xvrrp::daemon::effects`), or the `log` target of forwarded
//!   records (aya, reqwest);
//! - `instance`: the `vrrp_instance` the line is about, else `null`. An explicit `instance`
//!   field wins; otherwise a message that starts with `NAME: ` where NAME is a configured
//!   instance (see [`set_instances`]) is about that instance. (Reading: the agent's messages
//!   name their instance that way, as keepalived's do; matching only configured names keeps
//!   `SIGHUP: ...` or `vrrp_script chk: ...` from being taken for an instance.)
//! - `message`: the same text as the text format prints;
//! - `fields`: the event's other fields (numbers and booleans as JSON values, the rest as
//!   their `Debug` form, so secrets stay redacted by their types), `{}` when none.

use std::{
    fmt,
    sync::{PoisonError, RwLock},
};

use serde_json::{Map, Value};
use tracing::{
    field::{Field, Visit},
    Event, Subscriber,
};
use tracing_subscriber::{
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields},
    registry::LookupSpan,
};

/// The configured instance names (see the module's `instance`).
static INSTANCES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Sets the instance names messages are attributed to (at start-up, and after a reload).
pub(crate) fn set_instances<I: IntoIterator<Item = S>, S: Into<String>>(names: I) {
    let mut v: Vec<String> = names.into_iter().map(Into::into).collect();
    v.sort_unstable();
    v.dedup();
    *INSTANCES.write().unwrap_or_else(PoisonError::into_inner) = v;
}

/// The instance a message is about, from its `NAME: ` prefix.
fn instance_of(message: &str) -> Option<String> {
    let (prefix, _) = message.split_once(": ")?;
    let names = INSTANCES.read().unwrap_or_else(PoisonError::into_inner);
    names
        .binary_search_by(|n| n.as_str().cmp(prefix))
        .ok()
        .map(|_| prefix.to_owned())
}

/// One JSON object per event.
pub(super) struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(w, "{}", to_line(event, &super::utc_now()))
    }
}

/// The JSON line of `event` (without the newline).
fn to_line(event: &Event<'_>, timestamp: &str) -> String {
    let mut f = Fields::default();
    event.record(&mut f);
    let meta = event.metadata();
    let message = f.message.unwrap_or_default();
    let instance = match f.instance {
        Some(i) => Value::String(i),
        None => instance_of(&message).map_or(Value::Null, Value::String),
    };
    let mut obj = Map::new();
    obj.insert("timestamp".into(), timestamp.into());
    obj.insert("level".into(), meta.level().as_str().into());
    obj.insert(
        "target".into(),
        f.log_target
            .unwrap_or_else(|| meta.target().to_owned())
            .into(),
    );
    obj.insert("instance".into(), instance);
    obj.insert("message".into(), message.into());
    obj.insert("fields".into(), Value::Object(f.rest));
    Value::Object(obj).to_string()
}

/// An event's fields, sorted into the object's parts.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    instance: Option<String>,
    log_target: Option<String>,
    rest: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        match (name, value) {
            ("message", Value::String(s)) => self.message = Some(s),
            ("instance", Value::String(s)) => self.instance = Some(s),
            ("log.target", Value::String(s)) => self.log_target = Some(s),
            // The rest of what `log` records carry (module path, file, line).
            (n, _) if n.starts_with("log.") => {}
            (n, v) => {
                self.rest.insert(n.to_owned(), v);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
}

/// The writer thread's own warning (lines dropped), in the same shape.
pub(super) fn dropped_line(n: usize) -> String {
    let mut obj = Map::new();
    obj.insert("timestamp".into(), super::utc_now().into());
    obj.insert("level".into(), "WARN".into());
    obj.insert("target".into(), "xvrrp::logging".into());
    obj.insert("instance".into(), Value::Null);
    obj.insert(
        "message".into(),
        format!("{n} log line(s) dropped: stderr could not keep up").into(),
    );
    obj.insert("fields".into(), Value::Object(Map::new()));
    Value::Object(obj).to_string()
}

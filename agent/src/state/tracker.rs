//! Trackers as `xvrrp status` shows them: one [`TrackerState`] per tracker of an instance.

use serde::{Deserialize, Serialize};

/// The kind of a tracked object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackerKind {
    /// `vrrp_script` (`track_script`).
    Script,
    /// `track_interface`.
    Interface,
    /// `track_file`.
    File,
    /// `vrrp_track_process` (`track_process`).
    Process,
    /// `vrrp_track_listen` (`track_listen`).
    Listen,
}

/// The status of one tracker of one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    /// A name for logs and status (`script chk_nginx`, `interface eth1`...).
    pub label: String,
    /// What is tracked.
    pub kind: TrackerKind,
    /// Whether the object is healthy from this instance's point of view: for an up/down object
    /// its status; for a valued one (`track_file`), that its value does not force FAULT.
    pub up: bool,
    /// When the status last changed (UTC), if it did since start.
    pub since: Option<String>,
    /// The watcher's reason for the last change.
    pub reason: Option<String>,
    /// This instance's weight for the object.
    pub weight: i16,
    /// This instance's `reverse` flag.
    pub reverse: bool,
    /// What the tracker currently adds to the priority (0 while it forces FAULT).
    pub priority_change: i32,
    /// A valued object's current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i32>,
    /// Refused (e.g. by `enable_script_security`): it no longer counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The object's live details, shared by every instance that tracks it.
    #[serde(flatten)]
    pub details: TrackerDetails,
}

/// Live details of a tracked object that change without a status change. Each watcher fills in
/// the fields of its kind; the others stay `None` (absent from the JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackerDetails {
    /// Script: runs so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u64>,
    /// Script: failed runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// Script: runs killed at `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<u64>,
    /// Script: how the last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// Script: who it runs as (`user[:group]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Script: why it was refused (`enable_script_security`, unknown user...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Interface: the link as last seen (`up`, `down`, `absent`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// File: the path watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Process: matching processes counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Listen: per watched port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortState>>,
    /// Listen: where the counts come from (`kernel events` or the `sock_diag` fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Listen: the last listener that opened or closed on a watched port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_listener_event: Option<ListenerEvent>,
}

/// One watched port of a `vrrp_track_listen`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortState {
    /// The port.
    pub port: u16,
    /// Listening sockets serving the tracked address.
    pub listeners: i64,
    /// Established connections (`None` where the source does not count them).
    pub established: Option<i64>,
    /// Connections established since start.
    pub established_total: Option<u64>,
    /// Connections closed since start.
    pub closed_total: Option<u64>,
    /// Connections waiting in the accept queues.
    pub accept_queue: u64,
    /// SYNs seen by XDP.
    pub syns: u64,
    /// SYNs per second over the last check.
    pub syns_per_sec: f64,
    /// The accept queue has not moved for `stall` while non-empty.
    pub stalled: bool,
}

/// A listener opening or closing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEvent {
    /// Port.
    pub port: u16,
    /// Local address.
    pub address: String,
    /// Opened (true) or closed.
    pub up: bool,
    /// When, in µs since the Unix epoch.
    pub at_unix_us: u64,
}

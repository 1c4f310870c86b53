//! The answer to `status`: the agent ([`Status`]) and each instance ([`InstanceState`]), plus what
//! `xvrrp xdp-probe` prints.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{cloud::CloudState, tracker::TrackerState};
use crate::vrrp::{Counters as InstanceCounters, State};

/// The answer to `status`: the agent and every instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Milliseconds since the agent started.
    pub uptime_ms: u64,
    /// How late the loop fires instance timers.
    pub timers: LoopTiming,
    /// The receive path of each interface.
    pub rx: Vec<RxPath>,
    /// GARP / NA announcements dropped because the announcer's queue was full.
    #[serde(default)]
    pub announcements_dropped: u64,
    /// Log messages suppressed by the rate limit (per instance / interface, peer and kind;
    /// the log says when and how many).
    #[serde(default)]
    pub logs_suppressed: u64,
    /// Every `vrrp_instance`, in configuration order.
    pub instances: Vec<InstanceState>,
    /// Where `/metrics` is served (`ADDR:PORT`, from `--metrics` or `metrics_address`), if
    /// anywhere.
    #[serde(default)]
    pub metrics: Option<String>,
}

impl Status {
    /// The instance called `name`.
    pub fn instance(&self, name: &str) -> Option<&InstanceState> {
        self.instances.iter().find(|i| i.name == name)
    }
}

/// How late the loop fires instance timers: the loop's own health. A timer fired late delays
/// that instance's advert by as much.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopTiming {
    /// Timer firings so far.
    pub fired: u64,
    /// Largest lateness seen (µs after the deadline).
    pub late_max_us: u64,
    /// Firings more than 10 ms late.
    pub late_over_10ms: u64,
}

/// How one interface receives adverts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxPath {
    /// Interface name.
    pub interface: String,
    /// The path.
    pub path: RxKind,
    /// Why the preferred path was not taken (XDP generic instead of native, a socket instead of
    /// XDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// With XDP: whether the program sees 802.1Q tags (see `net::offload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_tags: Option<VlanTags>,
}

/// A receive path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RxKind {
    /// A raw socket, checks in userspace.
    #[serde(rename = "socket")]
    Socket,
    /// XDP in driver mode.
    #[serde(rename = "xdp-native")]
    XdpNative,
    /// XDP in generic (SKB) mode.
    #[serde(rename = "xdp-generic")]
    XdpGeneric,
}

impl RxKind {
    /// True for both XDP modes.
    pub fn is_xdp(self) -> bool {
        self != RxKind::Socket
    }

    /// The JSON name (`socket`, `xdp-native`, `xdp-generic`).
    pub fn as_str(self) -> &'static str {
        match self {
            RxKind::Socket => "socket",
            RxKind::XdpNative => "xdp-native",
            RxKind::XdpGeneric => "xdp-generic",
        }
    }
}

/// Whether XDP sees the 802.1Q tags of received frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VlanTags {
    /// Tags stay in the frame (VLAN receive offload is off).
    InFrame,
    /// The NIC strips them and the offload could not be turned off.
    Stripped,
    /// A veth: the peer's transmit offload decides.
    VethPeerDecides,
    /// A bond, team, macvlan or ipvlan: the lower devices decide.
    LowerDevicesDecide,
}

/// One `vrrp_instance`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    /// The instance's name.
    pub name: String,
    /// Its interface.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// Protocol state.
    pub state: State,
    /// Configured priority.
    pub base_priority: u8,
    /// Priority after tracker weights.
    pub effective_priority: u8,
    /// The current Master's address (ours while Master), once known.
    pub master_address: Option<IpAddr>,
    /// The address adverts are sent from.
    pub source_address: IpAddr,
    /// Configured advert interval.
    pub advert_interval_ms: u64,
    /// Master_Adver_Interval in use (learned from the Master in v3).
    pub master_adver_interval_ms: u64,
    /// Master_Down_Interval.
    pub master_down_interval_ms: u64,
    /// The last transition, if any since start.
    pub last_transition: Option<Transition>,
    /// Transitions since start, by reason ([`crate::vrrp::Reason::name`], e.g.
    /// `master_no_response`).
    #[serde(default)]
    pub transitions: std::collections::BTreeMap<String, u64>,
    /// The core's counters.
    pub counters: InstanceCounters,
    /// Adverts that could not be encoded or sent.
    pub advert_send_errors: u64,
    /// Trackers, in configuration order.
    pub trackers: Vec<TrackerState>,
    /// Virtual addresses, as `ADDRESS/PREFIX dev DEV`.
    pub virtual_addresses: Vec<String>,
    /// Per virtual address: wanted by the role, present on the interface (read back at the
    /// time of the query), failed changes.
    #[serde(default)]
    pub addresses: Vec<VipState>,
    /// Notify scripts.
    pub notify: NotifyState,
    /// DigitalOcean reserved-IP takeover, with a `digitalocean { }` block.
    pub cloud: Option<CloudState>,
}

/// One virtual address of an instance: what the role wants and what the interface has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipState {
    /// `ADDRESS/PREFIX`.
    pub address: String,
    /// Its device.
    pub dev: String,
    /// The role wants it on the interface (Master); otherwise it should not be there, unless
    /// it was there before the agent added it.
    pub wanted: bool,
    /// On the interface now, read back from the kernel at the time of the query; absent when
    /// the interface's addresses cannot be read (the device is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// This agent added it (so it removes it on leaving Master).
    pub ours: bool,
    /// Refused adds and removes since start.
    pub failures: u64,
    /// A refused change being retried (`add` or `remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrying: Option<String>,
    /// The last refusal's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl InstanceState {
    /// The tracker labelled `label` (`script chk_nginx`, `interface eth1`...).
    pub fn tracker(&self, label: &str) -> Option<&TrackerState> {
        self.trackers.iter().find(|t| t.label == label)
    }
}

/// What `xvrrp xdp-probe` prints: the XDP program's counts on one interface after a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Interface.
    pub interface: String,
    /// Attach mode (`native` or `generic`).
    pub mode: String,
    /// VRRP frames of ours seen.
    pub vrrp: u64,
    /// Events lost to a full ring buffer.
    pub ring_full: u64,
    /// VRRP-like frames passed, not ours.
    pub not_ours: u64,
    /// Counters over every peer row, non-zero only.
    pub counters: std::collections::BTreeMap<crate::packet::Counter, u64>,
}

/// A state transition, with wall-clock time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// State left.
    pub from: State,
    /// State entered.
    pub to: State,
    /// Why (the core's `Reason`, in its debug form, e.g. `MasterNoResponse`).
    pub reason: String,
    /// When (UTC, RFC 3339 with milliseconds).
    pub at: String,
}

/// The notify scripts of an instance: at most one transition's scripts run, at most one more
/// waits (a newer transition replaces it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyState {
    /// Transitions whose scripts run or wait (0, 1 or 2).
    pub pending: u64,
    /// The last finished runs, oldest first.
    pub recent: Vec<NotifyRecord>,
    /// The state whose scripts are running (`MASTER`, `BACKUP`, `FAULT`, `STOP`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// The state whose scripts wait for the running ones, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Transitions replaced by a newer one before their scripts ran.
    #[serde(default)]
    pub replaced: u64,
    /// Transitions whose scripts were started.
    #[serde(default)]
    pub started: u64,
    /// `notify_timeout`, per script, in milliseconds.
    #[serde(default)]
    pub timeout_ms: u64,
    /// Scripts that finished (each `notify_STATE` and `notify` run counts once).
    #[serde(default)]
    pub scripts_run: u64,
    /// Of those, the ones that failed (non-zero exit, killed, timed out, not started).
    #[serde(default)]
    pub scripts_failed: u64,
}

/// One finished notify run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyRecord {
    /// The state notified (`MASTER`, `BACKUP`, `FAULT`, `STOP`).
    pub state: String,
    /// The script (its configured command line).
    pub script: String,
    /// How it ended.
    pub outcome: String,
    /// Sequence number of the transition (1 = first).
    pub seq: u64,
}

/// The answer to `reload`: whether the new configuration was applied and what it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The configuration was read, checked and applied. When false nothing changed and
    /// `errors` says why.
    pub applied: bool,
    /// Errors, as `FILE:LINE:COLUMN: keyword: message` for configuration errors.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Instances left exactly as they were (state, timers, sockets).
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// Instances changed in place (priority, trackers, addresses, scripts, cloud block...),
    /// keeping their state.
    #[serde(default)]
    pub changed: Vec<String>,
    /// Instances rebuilt (interface, VRID, version or family changed): they left as on
    /// shutdown and started again.
    #[serde(default)]
    pub rebuilt: Vec<String>,
    /// Instances removed (left as on shutdown: priority 0, addresses removed).
    #[serde(default)]
    pub removed: Vec<String>,
    /// Instances added (started).
    #[serde(default)]
    pub added: Vec<String>,
}

//! What the suite reads from `xvrrp status --json` and `xvrrp counters --json`: the agent's own
//! typed model (`xvrrp::state`), parsed with the same types the agent answers with, plus a few
//! accessors the tests share.
//!
//! The wrappers add what a test needs around the model: an absent instance, tracker or cloud
//! block (`None` inside, so a test can poll and print what it last saw), strings for states and
//! kinds as the JSON spells them, and sums over counter rows keyed by [`Counter`]. `Display`
//! prints the JSON for assertion messages.

use std::fmt;

pub use xvrrp::packet::Counter;
use xvrrp::state;

/// Prints a value as the JSON the agent sent (`null` for `None`).
fn json<T: serde::Serialize + ?Sized>(f: &mut fmt::Formatter<'_>, v: &T) -> fmt::Result {
    f.write_str(&serde_json::to_string(v).unwrap_or_default())
}

/// `xvrrp status --json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status(pub state::Status);

/// One `vrrp_instance` of the status (`None`: absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance(pub Option<state::InstanceState>);

/// One tracker of an instance (`None`: not read yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tracker(pub Option<state::TrackerState>);

/// An instance's `cloud` (DigitalOcean takeover) object (`None` without a `digitalocean` block).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cloud(pub Option<state::CloudState>);

/// `xvrrp counters --json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters(pub state::RxCounters);

/// One `(interface, VRID, peer)` row of the counters.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerRow(pub state::PeerRow);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        json(f, &self.0)
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        json(f, &self.0)
    }
}

impl fmt::Display for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        json(f, &self.0)
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        json(f, &self.0)
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        json(f, &self.0)
    }
}

impl fmt::Display for PeerRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        json(f, &self.0)
    }
}

/// The JSON spelling of a unit enum (`"Master"`, `"script"`, ...).
fn name_of<T: serde::Serialize>(v: &T) -> Option<String> {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
}

impl Status {
    /// Every instance, in config order.
    pub fn instances(&self) -> Vec<Instance> {
        self.0
            .instances
            .iter()
            .cloned()
            .map(|i| Instance(Some(i)))
            .collect()
    }

    /// The first instance (absent when there is none).
    pub fn first(&self) -> Instance {
        Instance(self.0.instances.first().cloned())
    }

    /// The receive path of the first interface (`"xdp-native"`, `"socket"`, ...).
    pub fn rx_path(&self) -> Option<String> {
        self.0.rx.first().map(|r| r.path.as_str().to_owned())
    }

    /// The receive paths of every interface, as printed JSON.
    pub fn rx_text(&self) -> String {
        serde_json::to_string(&self.0.rx).unwrap_or_default()
    }
}

impl Instance {
    /// Whether the instance is absent.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// `"Master"`, `"Backup"`, `"Fault"`, ...
    pub fn state(&self) -> Option<String> {
        name_of(&self.0.as_ref()?.state)
    }

    /// The VRID.
    pub fn vrid(&self) -> Option<u8> {
        Some(self.0.as_ref()?.vrid)
    }

    /// The priority after the trackers' weights.
    pub fn effective_priority(&self) -> Option<i64> {
        Some(i64::from(self.0.as_ref()?.effective_priority))
    }

    /// The address the last advert from the Master came from.
    pub fn master_address(&self) -> Option<String> {
        self.0.as_ref()?.master_address.map(|a| a.to_string())
    }

    /// The Master's advertised interval in ms (VRRPv3).
    pub fn master_adver_interval_ms(&self) -> Option<u64> {
        Some(self.0.as_ref()?.master_adver_interval_ms)
    }

    /// The core's counters (`become_master`, `release_master`, ...).
    pub fn counters(&self) -> Option<state::InstanceCounters> {
        Some(self.0.as_ref()?.counters)
    }

    /// The last transition: `(to, at)` as reported (`at` is an RFC 3339 UTC time).
    pub fn last_transition(&self) -> (Option<String>, Option<String>) {
        match self.0.as_ref().and_then(|i| i.last_transition.as_ref()) {
            Some(t) => (name_of(&t.to), Some(t.at.clone())),
            None => (None, None),
        }
    }

    /// The last transition's time, as printed JSON (changes whenever it transitions).
    pub fn last_transition_at_text(&self) -> String {
        let at = self
            .0
            .as_ref()
            .and_then(|i| i.last_transition.as_ref())
            .map(|t| &t.at);
        serde_json::to_string(&at).unwrap_or_default()
    }

    /// The recent notify runs: `(state, outcome)` each.
    pub fn notify_recent(&self) -> Option<Vec<(String, String)>> {
        let recent = &self.0.as_ref()?.notify.recent;
        Some(
            recent
                .iter()
                .map(|r| (r.state.clone(), r.outcome.clone()))
                .collect(),
        )
    }

    /// The tracker whose label is `label` (`"script chk_nginx"`, `"listen chk_http"`, ...).
    pub fn tracker(&self, label: &str) -> Option<Tracker> {
        let t = self.0.as_ref()?.tracker(label)?;
        Some(Tracker(Some(t.clone())))
    }

    /// The DigitalOcean takeover's status (absent without a `digitalocean` block).
    pub fn cloud(&self) -> Cloud {
        Cloud(self.0.as_ref().and_then(|i| i.cloud.clone()))
    }
}

impl Tracker {
    fn get(&self) -> Option<&state::TrackerState> {
        self.0.as_ref()
    }

    fn details(&self) -> Option<&state::TrackerDetails> {
        self.get().map(|t| &t.details)
    }

    fn port_state(&self, i: usize) -> Option<&state::PortState> {
        self.details()?.ports.as_ref()?.get(i)
    }

    /// `"script"`, `"file"`, `"process"`, `"interface"`, `"listen"`.
    pub fn kind(&self) -> Option<String> {
        name_of(&self.get()?.kind)
    }

    /// Whether it is up.
    pub fn up(&self) -> Option<bool> {
        Some(self.get()?.up)
    }

    /// Why it is down (or disabled).
    pub fn reason(&self) -> Option<String> {
        self.get()?.reason.clone()
    }

    /// Whether it is disabled (a refused script): `None` when the agent did not say.
    pub fn disabled(&self) -> Option<bool> {
        self.get()?.disabled.then_some(true)
    }

    /// Since when it is in its current state, when it says.
    pub fn since(&self) -> Option<String> {
        self.get()?.since.clone()
    }

    /// A file tracker's value.
    pub fn value(&self) -> Option<i64> {
        self.get()?.value.map(i64::from)
    }

    /// The priority change it applies.
    pub fn priority_change(&self) -> Option<i64> {
        Some(i64::from(self.get()?.priority_change))
    }

    /// A process tracker's count of matching processes.
    pub fn processes(&self) -> Option<u64> {
        self.details()?.processes
    }

    /// A script's failures.
    pub fn failures(&self) -> Option<u64> {
        self.details()?.failures
    }

    /// A script's timeouts.
    pub fn timeouts(&self) -> Option<u64> {
        self.details()?.timeouts
    }

    /// The user a script runs as.
    pub fn user(&self) -> Option<String> {
        self.details()?.user.clone()
    }

    /// An interface tracker's link (`"up"`, `"down"`, `"gone"`).
    pub fn link(&self) -> Option<String> {
        self.details()?.link.clone()
    }

    /// Where a listen tracker's verdict comes from (`"kernel"`, or a fallback).
    pub fn source(&self) -> Option<String> {
        self.details()?.source.clone()
    }

    /// A listen tracker's `i`-th port number.
    pub fn port(&self, i: usize) -> Option<u64> {
        self.port_state(i).map(|p| u64::from(p.port))
    }

    /// The listeners on a listen tracker's `i`-th port.
    pub fn listeners(&self, i: usize) -> Option<u64> {
        self.port_state(i)
            .and_then(|p| u64::try_from(p.listeners).ok())
    }

    /// The SYNs the XDP program counted for a listen tracker's `i`-th port.
    pub fn syns(&self, i: usize) -> Option<u64> {
        self.port_state(i).map(|p| p.syns)
    }

    /// When a listen tracker last saw a listener event (µs since the epoch, kernel time).
    pub fn last_listener_event_us(&self) -> Option<u64> {
        self.details()?
            .last_listener_event
            .as_ref()
            .map(|e| e.at_unix_us)
    }
}

impl Cloud {
    /// Whether the block is absent.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// `"ok"`, `"holder: ID"`, `"degraded: ..."` (empty when absent).
    pub fn state(&self) -> String {
        self.0.as_ref().map(|c| c.state.clone()).unwrap_or_default()
    }

    /// This droplet's id.
    pub fn droplet_id(&self) -> Option<u64> {
        self.0.as_ref()?.status.droplet_id
    }

    /// The reserved IP.
    pub fn reserved_ip(&self) -> Option<String> {
        Some(self.0.as_ref()?.status.reserved_ip.to_string())
    }

    /// `"digitalocean"`.
    pub fn provider(&self) -> Option<String> {
        Some(self.0.as_ref()?.status.provider.clone())
    }

    /// How long the last takeover took.
    pub fn last_takeover_ms(&self) -> Option<u64> {
        self.0.as_ref()?.status.last_takeover_ms
    }
}

impl Counters {
    /// Every `(VRID, peer)` row.
    pub fn peers(&self) -> Vec<PeerRow> {
        self.0.peers.iter().cloned().map(PeerRow).collect()
    }

    /// The first row for `peer` (an address, or `"unknown"`).
    pub fn peer(&self, peer: &str) -> Option<PeerRow> {
        self.peers().into_iter().find(|r| r.peer() == peer)
    }

    /// Counter `c` summed over the rows of `peer` (0 when there is none).
    pub fn sum(&self, peer: &str, c: Counter) -> u64 {
        self.0
            .peers
            .iter()
            .filter(|r| r.peer == peer)
            .map(|r| r.counters.get(c))
            .sum()
    }

    /// Counter `c` summed over every row.
    pub fn total(&self, c: Counter) -> u64 {
        self.0.peers.iter().map(|r| r.counters.get(c)).sum()
    }

    /// The `not_ours` count of interface `ifname`.
    pub fn not_ours(&self, ifname: &str) -> Option<u64> {
        self.0
            .interfaces
            .iter()
            .find(|i| i.interface == ifname)?
            .not_ours
    }
}

impl PeerRow {
    /// The peer's address (or `"unknown"`).
    pub fn peer(&self) -> String {
        self.0.peer.clone()
    }

    /// The VRID.
    pub fn vrid(&self) -> Option<u64> {
        Some(u64::from(self.0.vrid))
    }

    /// Counter `c` (0 when absent).
    pub fn get(&self, c: Counter) -> u64 {
        self.0.counters.get(c)
    }

    /// Counter `c`, `None` when the row does not have it.
    pub fn try_get(&self, c: Counter) -> Option<u64> {
        self.0.counters.0.get(&c).copied()
    }

    /// Every counter of the row but those in `except`, summed.
    pub fn sum_except(&self, except: &[Counter]) -> u64 {
        self.0
            .counters
            .0
            .iter()
            .filter(|(c, _)| !except.contains(c))
            .map(|(_, n)| n)
            .sum()
    }
}

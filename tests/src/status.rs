//! What the suite reads from `xvrrp status --json` and `xvrrp counters --json`, in one place.
//!
//! The tests never index the JSON themselves: they get a [`Status`], [`Instance`], [`Tracker`],
//! [`Cloud`] or [`Counters`] from [`Agent`](crate::agent::Agent) and call the accessors below,
//! so a change of the output (or a typed model from the agent crate) changes this file only.
//! A missing field reads as `None` (or 0 for a counter), as it did when the tests indexed the
//! JSON; `Display` prints the JSON for assertion messages.

use std::fmt;

use serde_json::Value;

/// Wraps one JSON value: `Display` and `Default` (JSON `null`).
macro_rules! json_view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name(Value);

        impl $name {
            /// Whether the object is absent (JSON `null`).
            pub fn is_none(&self) -> bool {
                self.0.is_null()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

json_view!(
    /// `xvrrp status --json`.
    Status
);
json_view!(
    /// One `vrrp_instance` of the status.
    Instance
);
json_view!(
    /// One tracker of an instance.
    Tracker
);
json_view!(
    /// An instance's `cloud` (DigitalOcean takeover) object.
    Cloud
);
json_view!(
    /// `xvrrp counters --json`.
    Counters
);
json_view!(
    /// One `(VRID, peer)` row of the counters.
    PeerRow
);

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

impl Status {
    pub(crate) fn from_json(v: Value) -> Self {
        Self(v)
    }

    /// Every instance, in config order.
    pub fn instances(&self) -> Vec<Instance> {
        self.0["instances"]
            .as_array()
            .map(|l| l.iter().cloned().map(Instance).collect())
            .unwrap_or_default()
    }

    /// The first instance (`null` when there is none).
    pub fn first(&self) -> Instance {
        Instance(self.0["instances"][0].clone())
    }

    /// The receive path of the first interface (`"xdp-native"`, `"socket"`, ...).
    pub fn rx_path(&self) -> Option<String> {
        str_of(&self.0["rx"][0]["path"])
    }

    /// The receive paths of every interface, as printed JSON.
    pub fn rx_text(&self) -> String {
        self.0["rx"].to_string()
    }
}

impl Instance {
    /// `"Master"`, `"Backup"`, `"Fault"`, ...
    pub fn state(&self) -> Option<String> {
        str_of(&self.0["state"])
    }

    /// The VRID.
    pub fn vrid(&self) -> Option<u8> {
        self.0["vrid"].as_u64().and_then(|v| u8::try_from(v).ok())
    }

    /// The priority after the trackers' weights.
    pub fn effective_priority(&self) -> Option<i64> {
        self.0["effective_priority"].as_i64()
    }

    /// The address the last advert from the Master came from.
    pub fn master_address(&self) -> Option<String> {
        str_of(&self.0["master_address"])
    }

    /// The Master's advertised interval in ms (VRRPv3).
    pub fn master_adver_interval_ms(&self) -> Option<u64> {
        self.0["master_adver_interval_ms"].as_u64()
    }

    /// The instance counter `name` (`become_master`, `release_master`, ...), if present.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.0["counters"][name].as_u64()
    }

    /// The last transition: `(to, at)` as reported (`at` is an RFC 3339 UTC time).
    pub fn last_transition(&self) -> (Option<String>, Option<String>) {
        let t = &self.0["last_transition"];
        (str_of(&t["to"]), str_of(&t["at"]))
    }

    /// The last transition's time, as printed JSON (changes whenever it transitions).
    pub fn last_transition_at_text(&self) -> String {
        self.0["last_transition"]["at"].to_string()
    }

    /// The recent notify runs: `(state, outcome)` each.
    pub fn notify_recent(&self) -> Option<Vec<(String, String)>> {
        let list = self.0["notify"]["recent"].as_array()?;
        Some(
            list.iter()
                .map(|r| {
                    (
                        str_of(&r["state"]).unwrap_or_default(),
                        str_of(&r["outcome"]).unwrap_or_default(),
                    )
                })
                .collect(),
        )
    }

    /// The tracker whose label is `label` (`"script chk_nginx"`, `"listen chk_http"`, ...).
    pub fn tracker(&self, label: &str) -> Option<Tracker> {
        self.0["trackers"]
            .as_array()?
            .iter()
            .find(|t| t["label"] == label)
            .cloned()
            .map(Tracker)
    }

    /// The DigitalOcean takeover's status (`null` without a `digitalocean` block).
    pub fn cloud(&self) -> Cloud {
        Cloud(self.0["cloud"].clone())
    }
}

impl Tracker {
    /// `"script"`, `"file"`, `"process"`, `"interface"`, `"listen"`.
    pub fn kind(&self) -> Option<String> {
        str_of(&self.0["kind"])
    }

    /// Whether it is up.
    pub fn up(&self) -> Option<bool> {
        self.0["up"].as_bool()
    }

    /// Why it is down (or disabled).
    pub fn reason(&self) -> Option<String> {
        str_of(&self.0["reason"])
    }

    /// Whether it is disabled (a refused script).
    pub fn disabled(&self) -> Option<bool> {
        self.0["disabled"].as_bool()
    }

    /// Since when it is in its current state, when it says.
    pub fn since(&self) -> Option<String> {
        str_of(&self.0["since"])
    }

    /// A file tracker's value.
    pub fn value(&self) -> Option<i64> {
        self.0["value"].as_i64()
    }

    /// The priority change it applies.
    pub fn priority_change(&self) -> Option<i64> {
        self.0["priority_change"].as_i64()
    }

    /// A process tracker's count of matching processes.
    pub fn processes(&self) -> Option<u64> {
        self.0["processes"].as_u64()
    }

    /// A script's failures.
    pub fn failures(&self) -> Option<u64> {
        self.0["failures"].as_u64()
    }

    /// A script's timeouts.
    pub fn timeouts(&self) -> Option<u64> {
        self.0["timeouts"].as_u64()
    }

    /// The user a script runs as.
    pub fn user(&self) -> Option<String> {
        str_of(&self.0["user"])
    }

    /// An interface tracker's link (`"up"`, `"down"`, `"gone"`).
    pub fn link(&self) -> Option<String> {
        str_of(&self.0["link"])
    }

    /// Where a listen tracker's verdict comes from (`"kernel"`, or a fallback).
    pub fn source(&self) -> Option<String> {
        str_of(&self.0["source"])
    }

    /// A listen tracker's `i`-th port number.
    pub fn port(&self, i: usize) -> Option<u64> {
        self.0["ports"][i]["port"].as_u64()
    }

    /// The listeners on a listen tracker's `i`-th port.
    pub fn listeners(&self, i: usize) -> Option<u64> {
        self.0["ports"][i]["listeners"].as_u64()
    }

    /// The SYNs the XDP program counted for a listen tracker's `i`-th port.
    pub fn syns(&self, i: usize) -> Option<u64> {
        self.0["ports"][i]["syns"].as_u64()
    }

    /// When a listen tracker last saw a listener event (µs since the epoch, kernel time).
    pub fn last_listener_event_us(&self) -> Option<u64> {
        self.0["last_listener_event"]["at_unix_us"].as_u64()
    }
}

impl Cloud {
    /// `"ok"`, `"holder: ID"`, `"degraded: ..."` (empty when absent).
    pub fn state(&self) -> String {
        str_of(&self.0["state"]).unwrap_or_default()
    }

    /// This droplet's id.
    pub fn droplet_id(&self) -> Option<u64> {
        self.0["droplet_id"].as_u64()
    }

    /// The reserved IP.
    pub fn reserved_ip(&self) -> Option<String> {
        str_of(&self.0["reserved_ip"])
    }

    /// `"digitalocean"`.
    pub fn provider(&self) -> Option<String> {
        str_of(&self.0["provider"])
    }

    /// How long the last takeover took.
    pub fn last_takeover_ms(&self) -> Option<u64> {
        self.0["last_takeover_ms"].as_u64()
    }
}

impl Counters {
    pub(crate) fn from_json(v: Value) -> Self {
        Self(v)
    }

    /// Every `(VRID, peer)` row.
    pub fn peers(&self) -> Vec<PeerRow> {
        self.0["peers"]
            .as_array()
            .map(|l| l.iter().cloned().map(PeerRow).collect())
            .unwrap_or_default()
    }

    /// The first row for `peer` (an address, or `"unknown"`).
    pub fn peer(&self, peer: &str) -> Option<PeerRow> {
        self.peers().into_iter().find(|r| r.peer() == peer)
    }

    /// Counter `name` summed over the rows of `peer` (0 when there is none).
    pub fn sum(&self, peer: &str, name: &str) -> u64 {
        self.peers()
            .iter()
            .filter(|r| r.peer() == peer)
            .map(|r| r.get(name))
            .sum()
    }

    /// Counter `name` summed over every row.
    pub fn total(&self, name: &str) -> u64 {
        self.peers().iter().map(|r| r.get(name)).sum()
    }

    /// The `not_ours` count of interface `ifname`.
    pub fn not_ours(&self, ifname: &str) -> Option<u64> {
        self.0["interfaces"]
            .as_array()?
            .iter()
            .find(|i| i["interface"] == ifname)?["not_ours"]
            .as_u64()
    }
}

impl PeerRow {
    /// The peer's address (or `"unknown"`).
    pub fn peer(&self) -> String {
        str_of(&self.0["peer"]).unwrap_or_default()
    }

    /// The VRID.
    pub fn vrid(&self) -> Option<u64> {
        self.0["vrid"].as_u64()
    }

    /// Counter `name` (0 when absent).
    pub fn get(&self, name: &str) -> u64 {
        self.0["counters"][name].as_u64().unwrap_or(0)
    }

    /// Counter `name`, `None` when absent.
    pub fn try_get(&self, name: &str) -> Option<u64> {
        self.0["counters"][name].as_u64()
    }

    /// Every counter of the row but those in `except`, summed.
    pub fn sum_except(&self, except: &[&str]) -> u64 {
        self.0["counters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !except.contains(&k.as_str()))
                    .map(|(_, v)| v.as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

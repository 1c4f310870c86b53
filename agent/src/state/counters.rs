//! The answer to `counters`: what each interface's receive path saw, per peer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::status::RxPath;
use crate::packet::Counter;

/// Receive counters of the whole agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RxCounters {
    /// The receive path of each interface (as in status).
    pub rx: Vec<RxPath>,
    /// Per interface: frames passed because they were not ours.
    pub interfaces: Vec<InterfaceRx>,
    /// Per (interface, VRID, peer).
    pub peers: Vec<PeerRow>,
}

impl RxCounters {
    /// The rows of `interface`.
    pub fn peers_on<'a>(&'a self, interface: &'a str) -> impl Iterator<Item = &'a PeerRow> + 'a {
        self.peers.iter().filter(move |p| p.interface == interface)
    }

    /// The row of (`interface`, `vrid`, `peer`), `peer` as shown (`10.0.0.1` or `unknown`).
    pub fn peer(&self, interface: &str, vrid: u8, peer: &str) -> Option<&PeerRow> {
        self.peers
            .iter()
            .find(|p| p.interface == interface && p.vrid == vrid && p.peer == peer)
    }
}

/// VRRP-like frames an interface passed because they belong to no instance of ours (another
/// VRID, family or VLAN).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceRx {
    /// Interface.
    pub interface: String,
    /// `xdp` or `socket`.
    pub path: String,
    /// The count (`None` when the kernel's map could not be read).
    pub not_ours: Option<u64>,
    /// Packets a bound unicast socket read and discarded because they were addressed
    /// elsewhere (IPv6 group packets; socket path only).
    #[serde(default)]
    pub other_destination: u64,
    /// Accepted adverts dropped because the queue to the event loop was full.
    #[serde(default)]
    pub queue_full: u64,
}

/// The counters of one peer of one VRID on one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRow {
    /// Interface.
    pub interface: String,
    /// VRID (0 for frames whose VRID could not be read).
    pub vrid: u8,
    /// The peer's address, or `unknown` (sources past the per-peer table, unreadable packets).
    pub peer: String,
    /// Accepted and dropped, by reason.
    pub counters: PeerCounts,
    /// Priority of its last accepted advert.
    pub last_priority: Option<u8>,
    /// Interval (centiseconds) of its last accepted advert.
    pub last_interval_cs: Option<u32>,
    /// When its last advert was accepted (UTC).
    pub last_seen: Option<String>,
    /// `xdp` or `socket`.
    pub path: String,
}

/// Counts by [`Counter`] (serialised with keepalived's counter names, e.g. `advert_rcvd`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerCounts(pub BTreeMap<Counter, u64>);

impl PeerCounts {
    /// The count of `c` (0 when absent).
    pub fn get(&self, c: Counter) -> u64 {
        self.0.get(&c).copied().unwrap_or(0)
    }

    /// Every drop (all counters but accepted adverts and priority-0 ones).
    pub fn dropped(&self) -> u64 {
        self.0
            .iter()
            .filter(|(c, _)| !matches!(c, Counter::AdvertRcvd | Counter::PriZeroRcvd))
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn counts_use_keepalived_names_and_round_trip() {
        let mut c = PeerCounts::default();
        c.0.insert(Counter::AdvertRcvd, 3);
        c.0.insert(Counter::ChecksumErr, 2);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"advert_rcvd":3,"checksum_err":2}"#);
        let back: PeerCounts = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.get(Counter::AuthFailure), 0);
        assert_eq!(back.dropped(), 2);
        assert!(serde_json::from_str::<PeerCounts>(r#"{"nope":1}"#).is_err());
    }
}

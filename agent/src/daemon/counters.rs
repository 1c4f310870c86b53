//! Per-peer receive counters of the userspace (raw socket) path, keyed like the XDP maps:
//! interface, VRID and source address. Sources that are not configured peers (unicast) or that
//! never sent a valid advert (multicast) share one bucket per interface, so a spoofed flood from
//! random addresses cannot grow the table.

use std::{collections::HashMap, net::IpAddr, time::SystemTime};

use serde::Serialize;

use crate::packet::Counter;

/// Most distinct sources remembered per interface before new ones go to the shared bucket.
pub(crate) const MAX_PEERS_PER_INTERFACE: usize = 256;

/// Counters of one (interface, VRID, source).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct PeerCounters {
    /// Count per [`Counter`] index.
    pub counts: Vec<u64>,
    /// Priority of the last accepted advert.
    pub last_priority: Option<u8>,
    /// Interval of the last accepted advert, in centiseconds.
    pub last_interval_cs: Option<u32>,
    /// When the last packet (accepted or not) was seen.
    #[serde(skip)]
    pub last_seen: Option<SystemTime>,
}

/// Key of a counter row. `src: None` is the shared bucket of unknown sources.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    /// Interface name.
    pub interface: String,
    /// VRID (0 when the packet was too broken to tell).
    pub vrid: u8,
    /// Source, or `None` for the shared bucket.
    pub src: Option<IpAddr>,
}

/// The userspace counter table.
#[derive(Debug, Default)]
pub(crate) struct CounterTable {
    rows: HashMap<Key, PeerCounters>,
    per_iface: HashMap<String, usize>,
    not_ours: HashMap<String, u64>,
    other_destination: HashMap<String, u64>,
    queue_full: HashMap<String, u64>,
}

impl CounterTable {
    /// Counts a VRRP message received on `interface` that is not ours (another VRID or family,
    /// see [`crate::packet::message_owner`]): once per interface, never per peer.
    pub(crate) fn not_ours(&mut self, interface: &str) {
        *self.not_ours.entry(interface.to_owned()).or_insert(0) += 1;
    }

    /// Counts a packet a bound unicast socket on `interface` read and discarded because it was
    /// addressed elsewhere (an IPv6 group packet).
    pub(crate) fn other_destination(&mut self, interface: &str) {
        *self
            .other_destination
            .entry(interface.to_owned())
            .or_insert(0) += 1;
    }

    /// How many packets for other destinations sockets on `interface` discarded.
    pub(crate) fn other_destination_on(&self, interface: &str) -> u64 {
        self.other_destination.get(interface).copied().unwrap_or(0)
    }

    /// Counts an accepted advert from `interface` dropped because the event loop's queue was
    /// full.
    pub(crate) fn queue_full(&mut self, interface: &str) {
        *self.queue_full.entry(interface.to_owned()).or_insert(0) += 1;
    }

    /// How many adverts from `interface` a full queue dropped.
    pub(crate) fn queue_full_on(&self, interface: &str) -> u64 {
        self.queue_full.get(interface).copied().unwrap_or(0)
    }

    /// How many messages that were not ours `interface` received.
    pub(crate) fn not_ours_on(&self, interface: &str) -> u64 {
        self.not_ours.get(interface).copied().unwrap_or(0)
    }

    fn row(
        &mut self,
        interface: &str,
        vrid: u8,
        src: Option<IpAddr>,
        known: bool,
    ) -> &mut PeerCounters {
        let n = self.per_iface.get(interface).copied().unwrap_or(0);
        let mut key = Key {
            interface: interface.to_owned(),
            vrid,
            src,
        };
        if !self.rows.contains_key(&key) && (!known || n >= MAX_PEERS_PER_INTERFACE) {
            key.src = None;
            key.vrid = 0;
        }
        if !self.rows.contains_key(&key) && key.src.is_some() {
            *self.per_iface.entry(interface.to_owned()).or_insert(0) += 1;
        }
        let row = self.rows.entry(key).or_default();
        if row.counts.len() < Counter::ALL.len() {
            row.counts.resize(Counter::ALL.len(), 0);
        }
        row
    }

    /// Counts a dropped packet. `known` says whether `src` may get a row of its own (a
    /// configured unicast peer); unknown sources only count in an existing row or the bucket.
    pub(crate) fn drop_packet(
        &mut self,
        interface: &str,
        vrid: u8,
        src: IpAddr,
        known: bool,
        reason: Counter,
    ) {
        let row = self.row(interface, vrid, Some(src), known);
        if let Some(c) = row.counts.get_mut(reason.index() as usize) {
            *c += 1;
        }
        row.last_seen = Some(SystemTime::now());
    }

    /// Counts an accepted advert.
    pub(crate) fn accept(
        &mut self,
        interface: &str,
        vrid: u8,
        src: IpAddr,
        priority: u8,
        interval_cs: u32,
    ) {
        let row = self.row(interface, vrid, Some(src), true);
        let mut bump = |c: Counter| {
            if let Some(v) = row.counts.get_mut(c.index() as usize) {
                *v += 1;
            }
        };
        bump(Counter::AdvertRcvd);
        if priority == 0 {
            bump(Counter::PriZeroRcvd);
        }
        row.last_priority = Some(priority);
        row.last_interval_cs = Some(interval_cs);
        row.last_seen = Some(SystemTime::now());
    }

    /// Records the last priority and interval of an advert accepted elsewhere (by the XDP
    /// program, which keeps the counts itself).
    pub(crate) fn note(
        &mut self,
        interface: &str,
        vrid: u8,
        src: IpAddr,
        priority: u8,
        interval_cs: u32,
    ) {
        let row = self.row(interface, vrid, Some(src), true);
        row.last_priority = Some(priority);
        row.last_interval_cs = Some(interval_cs);
        row.last_seen = Some(SystemTime::now());
    }

    /// The row of one peer, if any.
    pub(crate) fn last(&self, interface: &str, vrid: u8, src: IpAddr) -> Option<&PeerCounters> {
        self.rows.get(&Key {
            interface: interface.to_owned(),
            vrid,
            src: Some(src),
        })
    }

    /// Every row, sorted.
    pub(crate) fn rows(&self) -> Vec<(&Key, &PeerCounters)> {
        let mut v: Vec<_> = self.rows.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sources_share_one_bucket_and_cannot_grow_the_table() {
        let mut t = CounterTable::default();
        for i in 0..10_000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.drop_packet("eth1", 33, src, false, Counter::AuthFailure);
        }
        let rows = t.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0.src, None);
        assert_eq!(
            rows[0].1.counts[Counter::AuthFailure.index() as usize],
            10_000
        );
    }

    #[test]
    fn accepted_adverts_count_per_peer_with_last_priority() {
        let mut t = CounterTable::default();
        let p: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        t.accept("eth1", 33, p, 200, 100);
        t.accept("eth1", 33, p, 0, 100);
        t.drop_packet("eth1", 33, p, false, Counter::IpTtlErr);
        let rows = t.rows();
        assert_eq!(rows.len(), 1, "a known peer keeps its row for drops too");
        let c = &rows[0].1;
        assert_eq!(c.counts[Counter::AdvertRcvd.index() as usize], 2);
        assert_eq!(c.counts[Counter::PriZeroRcvd.index() as usize], 1);
        assert_eq!(c.counts[Counter::IpTtlErr.index() as usize], 1);
        assert_eq!(c.last_priority, Some(0));
    }
}

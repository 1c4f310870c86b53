//! Per-peer counter rows: which sender a row is about ([`PeerSlot`]), how configured unicast
//! peers get their rows, and reading the rows back from the maps.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
};

use agent_common::{
    family, row_state, PeerCounters, PeerKey, PeerPolicy, Policy, PolicyTable, COUNTER_SLOTS,
    INLINE_ROWS, XDP_BUCKET_MAP, XDP_COUNTERS_MAP, XDP_POLICY_MAP, XDP_ROWCNT_MAP,
};
use aya::{
    maps::{Array, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues},
    Ebpf,
};

use super::{addr_from, map_err, DataplaneError};
use crate::packet::{Counter, Family};

/// Which sender a row of per-peer counters is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSlot {
    /// A source address sending for a VRID: a configured unicast peer, or a source that sent a
    /// valid advert.
    Peer {
        /// The VRID.
        vrid: u8,
        /// The source address.
        addr: IpAddr,
    },
    /// The interface's unknown-source bucket: failures from any other source, and failures
    /// found before the VRRP header could be read.
    Unknown,
}

impl fmt::Display for PeerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSlot::Peer { vrid, addr } => write!(f, "vrid {vrid} from {addr}"),
            PeerSlot::Unknown => f.write_str("unknown sources"),
        }
    }
}

/// One row of per-peer counters, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCounterRow {
    /// Interface index.
    pub ifindex: u32,
    /// Which sender.
    pub slot: PeerSlot,
    /// One count per [`Counter`], indexed by [`Counter::index`].
    pub counts: [u64; COUNTER_SLOTS],
}

impl PeerCounterRow {
    /// The count of one counter.
    pub fn get(&self, counter: Counter) -> u64 {
        self.counts
            .get(counter.index() as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The non-zero counters.
    pub fn nonzero(&self) -> Vec<(Counter, u64)> {
        Counter::ALL
            .iter()
            .map(|c| (*c, self.get(*c)))
            .filter(|(_, n)| *n != 0)
            .collect()
    }
}

/// A policy slot, its value, and the unicast peers of the instance.
pub(super) type PolicyEntry = (u32, Policy, Vec<(PeerKey, PeerPolicy)>);

/// Gives each configured unicast peer of `entries` a counter row: a free inline row of its slot
/// (in the entry's row directory), else one in the LRU hash, whose key is returned and whose
/// slot is flagged `hashed` in its entry. A peer that owns a row already keeps it.
pub(super) fn give_peer_rows(entries: &mut [PolicyEntry]) -> Vec<PeerKey> {
    let mut hash_rows = Vec::new();
    for (_, value, peers) in entries.iter_mut() {
        let dir = &mut value.rows;
        for (key, _) in peers.iter() {
            let owned = dir
                .state
                .iter()
                .zip(dir.addrs.iter())
                .any(|(st, a)| *st == row_state::READY && *a == key.addr);
            if owned {
                continue;
            }
            match dir.state.iter().position(|st| *st == row_state::FREE) {
                Some(i) => {
                    dir.addrs[i] = key.addr;
                    dir.state[i] = row_state::READY;
                }
                None => {
                    value.hashed = 1;
                    hash_rows.push(*key);
                }
            }
        }
    }
    hash_rows
}

/// The kernel maps of one loaded object, for one interface index.
pub(super) struct Maps;

impl Maps {
    /// The rows of this copy's maps: the inline rows of `slots` (listed under `ifindex`, like the
    /// unknown-source bucket) and the LRU hash rows, one row per source.
    pub(super) fn peer_counters(
        ebpf: &Ebpf,
        ifindex: u32,
        slots: &BTreeSet<u32>,
    ) -> Result<Vec<PeerCounterRow>, DataplaneError> {
        let bucket = PerCpuArray::<_, PeerCounters>::try_from(
            ebpf.map(XDP_BUCKET_MAP)
                .ok_or(DataplaneError::Missing("the unknown-source bucket"))?,
        )
        .map_err(map_err(XDP_BUCKET_MAP))?;
        let mut counts = [0u64; COUNTER_SLOTS];
        for v in bucket.get(&0, 0).map_err(map_err(XDP_BUCKET_MAP))?.iter() {
            for (sum, n) in counts.iter_mut().zip(v.counts.iter()) {
                *sum = sum.wrapping_add(*n);
            }
        }
        let mut merged: BTreeMap<(u32, PeerSlot), [u64; COUNTER_SLOTS]> = BTreeMap::new();
        merged.insert((ifindex, PeerSlot::Unknown), counts);
        let add = |merged: &mut BTreeMap<(u32, PeerSlot), [u64; COUNTER_SLOTS]>,
                   key: (u32, PeerSlot),
                   values: &PerCpuValues<PeerCounters>| {
            let sums = merged.entry(key).or_insert([0; COUNTER_SLOTS]);
            for v in values.iter() {
                for (sum, n) in sums.iter_mut().zip(v.counts.iter()) {
                    *sum = sum.wrapping_add(*n);
                }
            }
        };
        let table: Array<_, PolicyTable> = Array::try_from(
            ebpf.map(XDP_POLICY_MAP)
                .ok_or(DataplaneError::Missing("the policy table"))?,
        )
        .map_err(map_err(XDP_POLICY_MAP))?;
        let table = Box::new(table.get(&0, 0).map_err(map_err(XDP_POLICY_MAP))?);
        let inline = PerCpuArray::<_, PeerCounters>::try_from(
            ebpf.map(XDP_ROWCNT_MAP)
                .ok_or(DataplaneError::Missing("the inline rows"))?,
        )
        .map_err(map_err(XDP_ROWCNT_MAP))?;
        for &slot in slots {
            let Some(dir) = table.entries.get(slot as usize).map(|p| p.rows) else {
                continue;
            };
            let (fam, vrid) = if slot >= 256 {
                (Family::V6, (slot - 256) as u8)
            } else {
                (Family::V4, slot as u8)
            };
            for (i, (state, addr)) in dir.state.iter().zip(dir.addrs.iter()).enumerate() {
                if *state != row_state::READY {
                    continue;
                }
                let idx = slot * INLINE_ROWS as u32 + i as u32;
                let values = inline.get(&idx, 0).map_err(map_err(XDP_ROWCNT_MAP))?;
                let peer = PeerSlot::Peer {
                    vrid,
                    addr: addr_from(fam, addr),
                };
                add(&mut merged, (ifindex, peer), &values);
            }
        }
        let map: PerCpuHashMap<_, PeerKey, PeerCounters> = PerCpuHashMap::try_from(
            ebpf.map(XDP_COUNTERS_MAP)
                .ok_or(DataplaneError::Missing("the counter map"))?,
        )
        .map_err(map_err(XDP_COUNTERS_MAP))?;
        for item in map.iter() {
            let (key, values) = match item {
                Ok(kv) => kv,
                // An entry evicted or deleted while iterating: skip it.
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(XDP_COUNTERS_MAP)(e)),
            };
            let fam = if key.family == family::V6 {
                Family::V6
            } else {
                Family::V4
            };
            let slot = PeerSlot::Peer {
                vrid: key.vrid,
                addr: addr_from(fam, &key.addr),
            };
            add(&mut merged, (key.ifindex, slot), &values);
        }
        Ok(merged
            .into_iter()
            .map(|((ifindex, slot), counts)| PeerCounterRow {
                ifindex,
                slot,
                counts,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::addr_bytes;

    fn entry(peers: &[u8]) -> PolicyEntry {
        let list = peers
            .iter()
            .map(|i| {
                let key = PeerKey {
                    ifindex: 7,
                    vrid: 51,
                    family: family::V4,
                    _pad: [0; 2],
                    addr: addr_bytes(&IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, *i))),
                };
                (key, PeerPolicy::default())
            })
            .collect();
        (51, Policy::default(), list)
    }

    #[test]
    fn peers_get_free_inline_rows_then_hash_rows() {
        let mut entries = vec![entry(&[1, 2])];
        assert!(give_peer_rows(&mut entries).is_empty());
        let rows = entries[0].1.rows;
        assert_eq!(rows.state[..2], [row_state::READY; 2]);
        assert_eq!(rows.state[2..], [row_state::FREE; 2]);
        assert_eq!(rows.addrs[1], entries[0].2[1].0.addr);
        assert_eq!(entries[0].1.hashed, 0);

        let mut entries = vec![entry(&[1, 2, 3, 4, 5, 6])];
        let hashed = give_peer_rows(&mut entries);
        assert_eq!(
            hashed,
            vec![entries[0].2[4].0, entries[0].2[5].0],
            "the peers beyond the inline rows"
        );
        assert_eq!(entries[0].1.hashed, 1);
    }

    #[test]
    fn a_peer_keeps_the_row_it_owns() {
        let mut entries = vec![entry(&[1, 2])];
        let b = entries[0].2[1].0.addr;
        entries[0].1.rows.state[2] = row_state::READY;
        entries[0].1.rows.addrs[2] = b;
        // A row being claimed by the program is not given away.
        entries[0].1.rows.state[0] = row_state::CLAIMED;
        assert!(give_peer_rows(&mut entries).is_empty());
        let rows = entries[0].1.rows;
        assert_eq!(rows.addrs[2], b);
        assert_eq!(rows.addrs[1], entries[0].2[0].0.addr);
        assert_eq!(rows.state[1], row_state::READY);
        assert_eq!(rows.state[3], row_state::FREE);
        let owners = rows.addrs.iter().filter(|a| **a == b).count();
        assert_eq!(owners, 1, "no second row for the same peer");
    }
}

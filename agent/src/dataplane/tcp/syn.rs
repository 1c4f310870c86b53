//! SYN counting in the XDP program: the watched-port slots and per-CPU counts in the maps of
//! an XDP object instance (the tracker itself only sees state changes).

use std::collections::HashMap as StdHashMap;

use agent_common::tcp::{
    syn_port_key, MAX_SYN_PORTS, SYN_COUNTS_MAP, SYN_OWNER_BASE, SYN_PORTS_MAP, SYN_SLOTS,
};
use aya::{
    maps::{Array, MapError, PerCpuArray, PerCpuValues},
    Ebpf,
};

use super::{map_err, DataplaneError, TcpError};

/// Makes the XDP program of `ebpf` count SYNs to `ports` (replacing the previous set; counts of
/// ports still watched are kept, ports no longer watched are forgotten).
///
/// Each watched port owns a count slot: a new port gets a free slot, zeroed on every CPU before
/// the port is pointed at it, so it starts from 0; a port that is no longer watched is unpointed
/// before its slot is freed.
pub fn set_syn_ports(ebpf: &mut Ebpf, ports: &[u16]) -> Result<(), TcpError> {
    let mut wanted: Vec<u16> = ports.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.len() > MAX_SYN_PORTS as usize {
        return Err(TcpError::TooManyPorts(wanted.len()));
    }
    let owners = slot_owners(ebpf)?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| TcpError::Map {
        map: SYN_COUNTS_MAP,
        source: MapError::SyscallError(aya::sys::SyscallError {
            call: "nr_cpus",
            io_error: e,
        }),
    })?;
    let mut map: Array<_, u32> = Array::try_from(
        ebpf.map_mut(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    let mut free: Vec<u32> = Vec::new();
    let mut kept: Vec<u16> = Vec::new();
    for (slot, owner) in owners.iter().enumerate().skip(1) {
        match owner {
            Some(p) if wanted.binary_search(p).is_ok() => kept.push(*p),
            Some(p) => {
                map.set(syn_port_key(*p), 0, 0)
                    .map_err(map_err(SYN_PORTS_MAP))?;
                map.set(SYN_OWNER_BASE + slot as u32, 0, 0)
                    .map_err(map_err(SYN_PORTS_MAP))?;
                free.push(slot as u32);
            }
            None => free.push(slot as u32),
        }
    }
    // Lowest slots first.
    free.reverse();
    let new: Vec<u16> = wanted.into_iter().filter(|p| !kept.contains(p)).collect();
    let mut assigned: Vec<(u16, u32)> = Vec::new();
    for p in new {
        let slot = free.pop().ok_or(TcpError::TooManyPorts(ports.len()))?;
        assigned.push((p, slot));
    }
    {
        let mut counts: PerCpuArray<_, u64> = PerCpuArray::try_from(
            ebpf.map_mut(SYN_COUNTS_MAP)
                .ok_or(DataplaneError::Missing("the SYN count map"))?,
        )
        .map_err(map_err(SYN_COUNTS_MAP))?;
        for (_, slot) in &assigned {
            let zero =
                PerCpuValues::try_from(vec![0u64; cpus]).map_err(|io_error| TcpError::Map {
                    map: SYN_COUNTS_MAP,
                    source: MapError::SyscallError(aya::sys::SyscallError {
                        call: "per-CPU values",
                        io_error,
                    }),
                })?;
            counts
                .set(*slot, zero, 0)
                .map_err(map_err(SYN_COUNTS_MAP))?;
        }
    }
    let mut map: Array<_, u32> = Array::try_from(
        ebpf.map_mut(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    for (p, slot) in assigned {
        map.set(SYN_OWNER_BASE + slot, u32::from(p) + 1, 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
        map.set(syn_port_key(p), slot, 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
    }
    Ok(())
}

/// The port owning each count slot (index 0 is never used).
fn slot_owners(ebpf: &Ebpf) -> Result<Vec<Option<u16>>, TcpError> {
    let map: Array<_, u32> = Array::try_from(
        ebpf.map(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    let mut out = vec![None; SYN_SLOTS as usize];
    for (slot, o) in out.iter_mut().enumerate().skip(1) {
        let v = map
            .get(&(SYN_OWNER_BASE + slot as u32), 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
        *o = v.checked_sub(1).and_then(|p| u16::try_from(p).ok());
    }
    Ok(out)
}

/// SYNs counted by the XDP program of `ebpf` (summed over CPUs) for those of `ports` that are
/// watched: two map reads per port (its slot, then the slot's per-CPU counts).
pub fn syn_counts(ebpf: &Ebpf, ports: &[u16]) -> Result<StdHashMap<u16, u64>, TcpError> {
    let slots: Array<_, u32> = Array::try_from(
        ebpf.map(SYN_PORTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN port map"))?,
    )
    .map_err(map_err(SYN_PORTS_MAP))?;
    let counts: PerCpuArray<_, u64> = PerCpuArray::try_from(
        ebpf.map(SYN_COUNTS_MAP)
            .ok_or(DataplaneError::Missing("the SYN count map"))?,
    )
    .map_err(map_err(SYN_COUNTS_MAP))?;
    let mut out = StdHashMap::new();
    for port in ports {
        let slot = slots
            .get(&syn_port_key(*port), 0)
            .map_err(map_err(SYN_PORTS_MAP))?;
        if slot == 0 {
            continue;
        }
        let v = counts.get(&slot, 0).map_err(map_err(SYN_COUNTS_MAP))?;
        out.insert(*port, v.iter().copied().sum());
    }
    Ok(out)
}

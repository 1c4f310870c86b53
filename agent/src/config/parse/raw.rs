//! The raw configuration the parser produces: every field optional and positioned, before the
//! semantic pass ([`super::super::validate`]) fills defaults and cross-checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::super::error::Pos;
use super::super::model::{
    Broadcast, InitialState, ScriptUser, Secret, TrackFile, TrackInterface, TrackListen,
    TrackProcess, UnicastPeer, VrrpScript,
};
use super::Sp;

/// Raw `global_defs` (all blocks merged).
#[derive(Debug, Default)]
pub(crate) struct RawGlobal {
    pub router_id: Option<String>,
    pub vrrp_version: Option<u8>,
    pub script_user: Option<ScriptUser>,
    pub enable_script_security: Option<bool>,
    pub garp_master_delay: Option<u32>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<u32>,
    pub garp_master_refresh_repeat: Option<u32>,
    pub garp_interval: Option<u64>,
    pub gna_interval: Option<u64>,
    pub strict: Option<bool>,
    pub skip_check_adv_addr: Option<bool>,
    pub check_unicast_src: Option<bool>,
    pub lower_prio_no_advert: Option<bool>,
    pub v3_checksum_rfc9568: Option<bool>,
    pub higher_prio_send_advert: Option<bool>,
    pub mcast_group4: Option<Ipv4Addr>,
    pub mcast_group6: Option<Ipv6Addr>,
    pub startup_delay: Option<u64>,
    pub notify_fifo: Option<(String, Option<ScriptUser>)>,
    pub notify_fifo_script: Sp<String>,
    pub vrrp_notify_fifo: Option<(String, Option<ScriptUser>)>,
    pub vrrp_notify_fifo_script: Sp<String>,
    pub notify_timeout: Option<u64>,
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// A reference to a tracker from an instance.
#[derive(Debug, Clone)]
pub(crate) struct RawRef {
    pub name: String,
    pub weight: Option<i32>,
    pub reverse: bool,
    pub pos: Pos,
}

/// A virtual address line before defaults.
#[derive(Debug, Clone)]
pub(crate) struct RawVip {
    pub address: IpAddr,
    pub prefix_len: Option<u8>,
    pub dev: Option<String>,
    pub brd: Option<Broadcast>,
    pub scope: Option<String>,
    pub label: Option<String>,
    pub pos: Pos,
}

/// Raw `authentication { }`.
#[derive(Debug, Clone)]
pub(crate) struct RawAuth {
    pub at: Pos,
    pub pass: Sp<Secret>,
}

/// Raw `digitalocean { }`.
#[derive(Debug, Clone)]
pub(crate) struct RawDo {
    pub at: Pos,
    pub reserved_ip: Option<Ipv4Addr>,
    pub token_file: Sp<PathBuf>,
    pub api_url: Sp<String>,
    pub metadata_url: Sp<String>,
    pub reconcile_interval: Option<u32>,
    pub insecure_http: Option<bool>,
}

/// Raw `vrrp_instance { }`.
#[derive(Debug, Clone)]
pub(crate) struct RawInstance {
    pub name: String,
    pub at: Pos,
    pub state: Sp<InitialState>,
    pub interface: Sp<String>,
    pub vrid: Sp<u8>,
    pub priority: Sp<u8>,
    pub advert_int: Sp<u64>,
    pub version: Sp<u8>,
    pub nopreempt: Sp<bool>,
    pub preempt_delay: Option<u64>,
    pub mcast_src_ip: Sp<IpAddr>,
    pub unicast_src_ip: Sp<IpAddr>,
    pub peers: Vec<(UnicastPeer, Pos)>,
    pub unicast_ttl: Sp<u8>,
    pub check_unicast_src: Option<bool>,
    pub auth: Option<RawAuth>,
    pub vips: Vec<RawVip>,
    pub vips_excluded: Vec<RawVip>,
    pub track_script: Vec<RawRef>,
    pub track_interface: Vec<TrackInterface>,
    pub track_file: Vec<RawRef>,
    pub track_process: Vec<RawRef>,
    pub track_listen: Vec<RawRef>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    pub notify: Option<String>,
    pub notify_timeout: Option<u64>,
    pub garp_master_delay: Option<u32>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<u32>,
    pub garp_master_refresh_repeat: Option<u32>,
    pub garp_interval: Option<u64>,
    pub gna_interval: Option<u64>,
    pub skip_check_adv_addr: Option<bool>,
    pub strict_mode: Option<bool>,
    pub accept: Option<bool>,
    pub dont_track_primary: bool,
    pub lower_prio_no_advert: Option<bool>,
    pub v3_checksum_rfc9568: Option<bool>,
    pub higher_prio_send_advert: Option<bool>,
    pub digitalocean: Option<RawDo>,
    /// Keywords present in the block (valid or not), so that a bad value is not also reported
    /// as a missing one.
    pub seen: std::collections::HashSet<String>,
}

impl RawInstance {
    pub(super) fn new(name: String, at: Pos) -> Self {
        Self {
            name,
            at,
            state: None,
            interface: None,
            vrid: None,
            priority: None,
            advert_int: None,
            version: None,
            nopreempt: None,
            preempt_delay: None,
            mcast_src_ip: None,
            unicast_src_ip: None,
            peers: Vec::new(),
            unicast_ttl: None,
            check_unicast_src: None,
            auth: None,
            vips: Vec::new(),
            vips_excluded: Vec::new(),
            track_script: Vec::new(),
            track_interface: Vec::new(),
            track_file: Vec::new(),
            track_process: Vec::new(),
            track_listen: Vec::new(),
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
            notify_timeout: None,
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            garp_interval: None,
            gna_interval: None,
            skip_check_adv_addr: None,
            strict_mode: None,
            accept: None,
            dont_track_primary: false,
            lower_prio_no_advert: None,
            v3_checksum_rfc9568: None,
            higher_prio_send_advert: None,
            digitalocean: None,
            seen: std::collections::HashSet::new(),
        }
    }
}

/// A named top-level item and where its name was written.
#[derive(Debug, Clone)]
pub(crate) struct Named<T> {
    pub item: T,
    pub pos: Pos,
}

/// Everything parsed, before defaults and cross-checks.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    pub global: RawGlobal,
    pub scripts: Vec<Named<VrrpScript>>,
    pub processes: Vec<Named<TrackProcess>>,
    pub files: Vec<Named<TrackFile>>,
    pub listens: Vec<Named<TrackListen>>,
    pub instances: Vec<RawInstance>,
}

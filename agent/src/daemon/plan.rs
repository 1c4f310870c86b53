//! From configuration to what the runtime needs for each instance: the core's [`Params`], the
//! receive policy, the transmit plan, the addresses to move, GARP timing and notify scripts.
//!
//! Pure: interface addresses are looked up through a closure, so this is unit-tested without a
//! network.

use std::{net::IpAddr, time::Duration};

use crate::{
    config::{self, Config, VrrpInstance},
    packet::{
        self, Auth, RxAuth, RxPolicy, SourcePolicy, TtlCheck, UnicastPeer, V3Ipv4Checksum,
        VersionPolicy, VRRP_GROUP_V4, VRRP_GROUP_V6,
    },
    vrrp::{self, InitialState, Params, Tracker, TrackerId},
};

/// Why an instance cannot be planned (configuration passed validation but the host disagrees).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PlanError {
    /// No source address: no `unicast_src_ip`/`mcast_src_ip` and none on the interface.
    #[error("vrrp_instance {instance}: interface {interface} has no {family} address to send adverts from (set unicast_src_ip or mcast_src_ip, or add an address)")]
    NoSourceAddress {
        /// Instance name.
        instance: String,
        /// Interface.
        interface: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The core refused the parameters.
    #[error("vrrp_instance {instance}: {source}")]
    Params {
        /// Instance name.
        instance: String,
        /// The core's reason.
        #[source]
        source: vrrp::ParamsError,
    },
}

/// What kind of object a tracker watches, and how to run it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TrackerSource {
    /// A `vrrp_script`, with the global settings that govern how it runs.
    Script(ScriptSpec),
    /// A `track_interface` entry: the link's state.
    Interface(String),
    /// A `track_file` entry.
    File(config::TrackFile),
    /// A `vrrp_track_process`.
    Process(config::TrackProcess),
    /// A `vrrp_track_listen` (xvrrp extension).
    Listen(config::TrackListen),
}

/// A `vrrp_script` and the global settings that apply to it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScriptSpec {
    /// The script block.
    pub script: config::VrrpScript,
    /// The user to run it as: its own `user`, else the global `script_user`; `None` means
    /// keepalived's default (`keepalived_script` if that user exists, else root).
    pub user: Option<config::ScriptUser>,
    /// Global `enable_script_security`.
    pub security: bool,
}

/// One tracker of one instance.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TrackerPlan {
    /// Id used in the core's events.
    pub id: TrackerId,
    /// A name for logs and status (`script chk_nginx`, `interface eth1`...).
    pub label: String,
    /// What it watches.
    pub source: TrackerSource,
}

/// How adverts are sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxPlan {
    /// Source address of our adverts (also the core's primary address).
    pub src: IpAddr,
    /// `src` is the interface's primary address (neither `unicast_src_ip` nor `mcast_src_ip`
    /// set): read again when the interface is re-created.
    pub src_from_interface: bool,
    /// Destinations: the unicast peers, or the VRRP group.
    pub dsts: Vec<IpAddr>,
    /// Unicast mode (sockets bind to `src`).
    pub unicast: bool,
    /// The advert's address list (virtual_ipaddress only, not the excluded ones).
    pub addresses: Vec<IpAddr>,
    /// v2 authentication.
    pub auth: Auth,
    /// v2: seconds; v3: centiseconds.
    pub interval_v2_secs: u8,
    /// v3 interval in centiseconds.
    pub interval_v3_cs: u16,
    /// v3/IPv4 checksum form on transmit (keepalived's pseudo-header form by default).
    pub v3_ipv4_checksum: V3Ipv4Checksum,
    /// TTL of unicast adverts (`unicast_ttl`; multicast always 255).
    pub unicast_ttl: u8,
}

/// keepalived's gratuitous ARP / NA timing for one instance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GarpPlan {
    /// Second burst this long after becoming Master (`garp_master_delay`, 0 = none).
    pub delay: Duration,
    /// Packets per burst (`garp_master_repeat`).
    pub repeat: u32,
    /// Refresh period while Master (`garp_master_refresh`, zero = off).
    pub refresh: Duration,
    /// Packets per refresh (`garp_master_refresh_repeat`).
    pub refresh_repeat: u32,
    /// Gap between ARP packets (`garp_interval`).
    pub arp_gap: Duration,
    /// Gap between NA packets (`gna_interval`).
    pub na_gap: Duration,
}

/// Notify scripts of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotifyPlan {
    /// `notify_master`.
    pub master: Option<String>,
    /// `notify_backup`.
    pub backup: Option<String>,
    /// `notify_fault`.
    pub fault: Option<String>,
    /// `notify_stop`.
    pub stop: Option<String>,
    /// `notify` (called with keepalived's four arguments).
    pub generic: Option<String>,
    /// Global `script_user` (keepalived runs notify scripts as it, like track scripts).
    pub user: Option<config::ScriptUser>,
    /// Global `enable_script_security`.
    pub security: bool,
    /// `notify_timeout`: the longest one script may run.
    pub timeout: Duration,
}

impl Default for NotifyPlan {
    fn default() -> Self {
        Self {
            master: None,
            backup: None,
            fault: None,
            stop: None,
            generic: None,
            user: None,
            security: false,
            timeout: config::DEFAULT_NOTIFY_TIMEOUT,
        }
    }
}

/// Everything the runtime needs for one `vrrp_instance`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InstancePlan {
    /// Instance name.
    pub name: String,
    /// Interface adverts are sent and received on.
    pub interface: String,
    /// Core parameters.
    pub params: Params,
    /// Receive checks.
    pub rx: RxPolicy,
    /// Transmit plan.
    pub tx: TxPlan,
    /// Addresses installed while Master (virtual_ipaddress and virtual_ipaddress_excluded).
    pub vips: Vec<config::VirtualAddress>,
    /// GARP timing.
    pub garp: GarpPlan,
    /// Notify scripts.
    pub notify: NotifyPlan,
    /// Trackers, in id order.
    pub trackers: Vec<TrackerPlan>,
    /// DigitalOcean reserved-IP settings, when configured.
    pub digitalocean: Option<config::DigitalOcean>,
}

/// Plans every instance. `iface_addr(interface, want_ipv6)` returns the interface's primary
/// address of that family (IPv4: the first global address; IPv6: the link-local one, which is
/// what VRRPv3 over IPv6 sends from).
pub(crate) fn plan(
    cfg: &Config,
    iface_addr: &dyn Fn(&str, bool) -> Option<IpAddr>,
) -> Result<Vec<InstancePlan>, Vec<PlanError>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for inst in &cfg.instances {
        match plan_instance(cfg, inst, iface_addr) {
            Ok(p) => out.push(p),
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn plan_instance(
    cfg: &Config,
    inst: &VrrpInstance,
    iface_addr: &dyn Fn(&str, bool) -> Option<IpAddr>,
) -> Result<InstancePlan, PlanError> {
    let v6 = inst.family == config::Family::Ipv6;
    let version = if inst.version == 3 {
        vrrp::Version::V3
    } else {
        vrrp::Version::V2
    };
    let unicast = !inst.unicast_peers.is_empty();
    let src = inst
        .unicast_src_ip
        .filter(|_| unicast)
        .or(inst.mcast_src_ip)
        .or_else(|| iface_addr(&inst.interface, v6))
        .ok_or_else(|| PlanError::NoSourceAddress {
            instance: inst.name.clone(),
            interface: inst.interface.clone(),
            family: if v6 { "IPv6" } else { "IPv4" },
        })?;

    let interval = inst.advert_int;
    let trackers = trackers_of(cfg, inst);
    let mut params = Params::new(inst.virtual_router_id, version, src);
    params.priority = inst.priority;
    params.advert_interval = interval;
    params.initial_state = match inst.state {
        config::InitialState::Master => InitialState::Master,
        config::InitialState::Backup => InitialState::Backup,
    };
    params.preempt = !inst.nopreempt;
    params.preempt_delay = inst.preempt_delay;
    params.advert_on_lower_priority = !cfg.global_defs.vrrp_lower_prio_no_advert;
    params.trackers = trackers
        .iter()
        .map(|(t, weight, reverse, initially_up)| Tracker {
            id: t.id,
            weight: (*weight).clamp(-254, 254) as i16,
            reverse: *reverse,
            initially_up: *initially_up,
            initial_value: match &t.source {
                // keepalived reads the file before starting; we start from what `init_file`
                // would write (or 0, what a missing file reads as) and the watcher reports the
                // real value as soon as it runs.
                TrackerSource::File(f) => Some(
                    f.init_file
                        .as_ref()
                        .map_or(0, |i| i.value.clamp(-254, 254) as i32),
                ),
                _ => None,
            },
        })
        .collect();
    let params_checked = vrrp::Instance::new(params.clone())
        .map(|_| params)
        .map_err(|source| PlanError::Params {
            instance: inst.name.clone(),
            source,
        })?;

    let pass = inst
        .authentication
        .as_ref()
        .map(|a| a.auth_pass.expose().to_owned());
    let (rx_version, auth) = match version {
        vrrp::Version::V2 => {
            let secs_u8 = u8::try_from(interval.as_secs().max(1)).unwrap_or(u8::MAX);
            let (rx_auth, auth) = match &pass {
                Some(p) => (RxAuth::pass(p), Auth::pass(p)),
                None => (RxAuth::None, Auth::None),
            };
            (
                VersionPolicy::V2 {
                    auth: rx_auth,
                    advert_interval_secs: secs_u8,
                },
                auth,
            )
        }
        vrrp::Version::V3 => (VersionPolicy::V3, Auth::None),
    };
    let source = if unicast {
        // keepalived does not require TTL 255 of unicast adverts (they may be routed); a peer's
        // `min_ttl` / `max_ttl` (default 0 and 255) bound the TTL accepted from it.
        // Choice: keepalived applies the range only with `check_unicast_src`, the option that
        // makes it drop adverts from non-peers. xvrrp always drops those (vrrp.md: in unicast
        // mode only configured peers are accepted), so a range the config gives always applies.
        SourcePolicy::Unicast {
            peers: inst
                .unicast_peers
                .iter()
                .map(|p| UnicastPeer {
                    addr: p.address,
                    ttl: TtlCheck {
                        min: p.min_ttl.unwrap_or(TtlCheck::ANY.min),
                        max: p.max_ttl.unwrap_or(TtlCheck::ANY.max),
                    },
                })
                .collect(),
        }
    } else {
        SourcePolicy::Multicast {
            ttl: TtlCheck::REQUIRE_255,
        }
    };
    let rx = RxPolicy {
        vrid: inst.virtual_router_id,
        family: if v6 {
            packet::Family::V6
        } else {
            packet::Family::V4
        },
        version: rx_version,
        owner: inst.priority == vrrp::PRIORITY_OWNER,
        source,
    };
    let dsts = if unicast {
        inst.unicast_peers.iter().map(|p| p.address).collect()
    } else if v6 {
        vec![IpAddr::V6(VRRP_GROUP_V6)]
    } else {
        vec![IpAddr::V4(VRRP_GROUP_V4)]
    };
    let tx = TxPlan {
        src,
        src_from_interface: inst.unicast_src_ip.filter(|_| unicast).is_none()
            && inst.mcast_src_ip.is_none(),
        dsts,
        unicast,
        addresses: advertised(inst),
        auth,
        interval_v2_secs: u8::try_from(interval.as_secs().max(1)).unwrap_or(u8::MAX),
        interval_v3_cs: u16::try_from(interval.as_millis() / 10)
            .unwrap_or(0x0fff)
            .clamp(1, 0x0fff),
        // Transmit form of the v3/IPv4 checksum: keepalived's (RFC 5798 pseudo-header) unless
        // `v3_checksum_rfc9568` asks for RFC 9568's. Receive accepts both (see packet::rx).
        v3_ipv4_checksum: if inst.v3_checksum_rfc9568 {
            V3Ipv4Checksum::Rfc9568
        } else {
            V3Ipv4Checksum::PseudoHeader
        },
        unicast_ttl: inst.unicast_ttl,
    };
    let vips = inst
        .virtual_ipaddress
        .iter()
        .chain(inst.virtual_ipaddress_excluded.iter())
        .cloned()
        .collect();
    let garp = GarpPlan {
        delay: inst.garp_master_delay,
        repeat: inst.garp_master_repeat,
        refresh: inst.garp_master_refresh,
        refresh_repeat: inst.garp_master_refresh_repeat,
        arp_gap: inst.garp_interval,
        na_gap: inst.gna_interval,
    };
    let notify = NotifyPlan {
        master: inst.notify_master.clone(),
        backup: inst.notify_backup.clone(),
        fault: inst.notify_fault.clone(),
        stop: inst.notify_stop.clone(),
        generic: inst.notify.clone(),
        user: cfg.global_defs.script_user.clone(),
        security: cfg.global_defs.enable_script_security,
        timeout: inst.notify_timeout,
    };
    Ok(InstancePlan {
        name: inst.name.clone(),
        interface: inst.interface.clone(),
        params: params_checked,
        rx,
        tx,
        vips,
        garp,
        notify,
        trackers: trackers.into_iter().map(|(t, ..)| t).collect(),
        digitalocean: inst.digitalocean.clone(),
    })
}

/// The advert's address list: the `virtual_ipaddress` entries.
///
/// A VRRPv2 instance without any (the DigitalOcean tutorial's configuration) advertises none,
/// exactly as keepalived does: keepalived rejects an advert whose address count differs from its
/// own VIP count, so advertising anything else would break a mixed xvrrp/keepalived pair. A
/// VRRPv3 advert needs an address (RFC 9568), so a v3 instance without VIPs but with a
/// `digitalocean` block advertises its reserved IP.
fn advertised(inst: &VrrpInstance) -> Vec<IpAddr> {
    let vips: Vec<IpAddr> = inst.virtual_ipaddress.iter().map(|v| v.address).collect();
    match (&inst.digitalocean, inst.family, inst.version) {
        (Some(d), config::Family::Ipv4, 3) if vips.is_empty() => vec![IpAddr::V4(d.reserved_ip)],
        _ => vips,
    }
}

/// Resolves the instance's track_* references. Returns (plan, weight, reverse, initially_up).
fn trackers_of(cfg: &Config, inst: &VrrpInstance) -> Vec<(TrackerPlan, i32, bool, bool)> {
    let mut out = Vec::new();
    let mut next = 0u32;
    let mut push = |label: String, source: TrackerSource, weight: i32, reverse: bool, up: bool| {
        out.push((
            TrackerPlan {
                id: TrackerId(next),
                label,
                source,
            },
            weight,
            reverse,
            up,
        ));
        next += 1;
    };
    for r in &inst.track_script {
        if let Some(s) = cfg.vrrp_scripts.iter().find(|s| s.name == r.name) {
            // keepalived: a script counts as up until proven otherwise, unless `init_fail`.
            let spec = ScriptSpec {
                script: s.clone(),
                user: s
                    .user
                    .clone()
                    .or_else(|| cfg.global_defs.script_user.clone()),
                security: cfg.global_defs.enable_script_security,
            };
            push(
                format!("script {}", s.name),
                TrackerSource::Script(spec),
                r.weight,
                r.reverse,
                !s.init_fail,
            );
        }
    }
    // keepalived tracks the instance's own interface unless `dont_track_primary`: the instance
    // is in FAULT while its link is down. Without it a Backup that lost its link would take over
    // (and, with a `digitalocean` block, move the reserved IP away from a healthy Master).
    if !inst.dont_track_primary
        && !inst
            .track_interface
            .iter()
            .any(|t| t.name == inst.interface)
    {
        push(
            format!("interface {} (the instance's own)", inst.interface),
            TrackerSource::Interface(inst.interface.clone()),
            0,
            false,
            true,
        );
    }
    for t in &inst.track_interface {
        push(
            format!("interface {}", t.name),
            TrackerSource::Interface(t.name.clone()),
            t.weight,
            t.reverse,
            true,
        );
    }
    for r in &inst.track_file {
        if let Some(f) = cfg.track_files.iter().find(|f| f.name == r.name) {
            push(
                format!("file {}", f.name),
                TrackerSource::File(f.clone()),
                r.weight,
                r.reverse,
                true,
            );
        }
    }
    for r in &inst.track_process {
        if let Some(p) = cfg.track_processes.iter().find(|p| p.name == r.name) {
            push(
                format!("process {}", p.name),
                TrackerSource::Process(p.clone()),
                r.weight,
                r.reverse,
                true,
            );
        }
    }
    for r in &inst.track_listen {
        if let Some(l) = cfg.track_listens.iter().find(|l| l.name == r.name) {
            push(
                format!("listen {}", l.name),
                TrackerSource::Listen(l.clone()),
                r.weight,
                r.reverse,
                true,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;

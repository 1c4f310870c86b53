//! Semantic pass: fills defaults (keepalived's rules), checks cross-field constraints, resolves
//! tracker references and the DigitalOcean token. All problems are collected.
//!
//! Choices documented here:
//! - The instance family is that of the first `virtual_ipaddress`, else `unicast_src_ip`, else
//!   the first `unicast_peer`, else IPv4. Every `virtual_ipaddress`, `unicast_src_ip`,
//!   `unicast_peer` and `mcast_src_ip` must have that family; `virtual_ipaddress_excluded` may mix
//!   families (they are not carried in adverts), as in keepalived.
//! - An IPv6 instance whose version comes from the global default 2 is switched to version 3 with
//!   a warning (keepalived does the same); an explicit `version 2` on an IPv6 instance is an error.
//! - Two instances with the same `virtual_router_id` on the same interface and family are an
//!   error, even in unicast mode.
//!
//! This file holds [`finish`] (global defaults, duplicate names and router ids); each instance is
//! resolved in `instance`, its `digitalocean { }` block and token in `cloud`.

use std::collections::HashMap;

use super::error::{Diags, Pos};
use super::model::{Config, Family, GlobalDefs, NotifyFifo, VrrpInstance};
use super::parse::{duration, whole_secs, Named, Raw};

mod cloud;
mod instance;

pub(crate) use cloud::read_token_file;
pub use cloud::TOKEN_ENV_VARS;
use instance::instance;

/// Looks up an environment variable.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Builds the effective [`Config`] from the raw parse.
pub(crate) fn finish(raw: Raw, d: &mut Diags, env: EnvLookup<'_>) -> Config {
    let g = &raw.global;
    let fifo = |f: &Option<(String, Option<super::model::ScriptUser>)>,
                s: &Option<(String, Pos)>,
                d: &mut Diags,
                name: &str| {
        match (f, s) {
            (Some((path, owner)), s) => Some(NotifyFifo {
                path: path.clone(),
                owner: owner.clone(),
                script: s.as_ref().map(|(c, _)| c.clone()),
            }),
            (None, Some((_, pos))) => {
                d.error(
                    pos,
                    &format!("{name}_script"),
                    format!("'{name}_script' needs '{name}' to be set"),
                );
                None
            }
            (None, None) => None,
        }
    };
    let defaults = GlobalDefs::default();
    let global = GlobalDefs {
        router_id: g.router_id.clone(),
        vrrp_version: g.vrrp_version.unwrap_or(defaults.vrrp_version),
        script_user: g.script_user.clone(),
        enable_script_security: g.enable_script_security.unwrap_or(false),
        vrrp_garp_master_delay: g
            .garp_master_delay
            .map_or(defaults.vrrp_garp_master_delay, whole_secs),
        vrrp_garp_master_repeat: g
            .garp_master_repeat
            .unwrap_or(defaults.vrrp_garp_master_repeat),
        vrrp_garp_master_refresh: g
            .garp_master_refresh
            .map_or(defaults.vrrp_garp_master_refresh, whole_secs),
        vrrp_garp_master_refresh_repeat: g
            .garp_master_refresh_repeat
            .unwrap_or(defaults.vrrp_garp_master_refresh_repeat),
        vrrp_garp_interval: duration(g.garp_interval.unwrap_or(0)),
        vrrp_gna_interval: duration(g.gna_interval.unwrap_or(0)),
        vrrp_strict: g.strict.unwrap_or(false),
        vrrp_skip_check_adv_addr: g.skip_check_adv_addr.unwrap_or(false),
        vrrp_check_unicast_src: g.check_unicast_src.unwrap_or(false),
        vrrp_lower_prio_no_advert: g.lower_prio_no_advert.unwrap_or(false),
        vrrp_v3_checksum_rfc9568: g.v3_checksum_rfc9568.unwrap_or(false),
        vrrp_higher_prio_send_advert: g.higher_prio_send_advert.unwrap_or(false),
        vrrp_mcast_group4: g.mcast_group4.unwrap_or(defaults.vrrp_mcast_group4),
        vrrp_mcast_group6: g.mcast_group6.unwrap_or(defaults.vrrp_mcast_group6),
        vrrp_startup_delay: duration(g.startup_delay.unwrap_or(0)),
        notify_fifo: fifo(&g.notify_fifo, &g.notify_fifo_script, d, "notify_fifo"),
        vrrp_notify_fifo: fifo(
            &g.vrrp_notify_fifo,
            &g.vrrp_notify_fifo_script,
            d,
            "vrrp_notify_fifo",
        ),
        notify_timeout: g.notify_timeout.map_or(defaults.notify_timeout, duration),
        metrics_address: g.metrics_address,
    };

    let scripts = dedup(raw.scripts, "vrrp_script", d, |s| &s.name);
    let processes = dedup(raw.processes, "vrrp_track_process", d, |s| &s.name);
    let files = dedup(raw.files, "track_file", d, |s| &s.name);
    let listens = dedup(raw.listens, "vrrp_track_listen", d, |s| &s.name);

    let mut instances: Vec<VrrpInstance> = Vec::new();
    let mut names: HashMap<String, Pos> = HashMap::new();
    // (interface, family, vrid) -> (instance name, position of its virtual_router_id)
    let mut vrids: HashMap<(String, Family, u8), (String, Pos)> = HashMap::new();
    for r in raw.instances {
        if let Some(prev) = names.get(&r.name) {
            d.error(
                &r.at,
                "vrrp_instance",
                format!(
                    "vrrp_instance '{}' is already defined at {}:{}",
                    r.name, prev.file, prev.line
                ),
            );
            continue;
        }
        names.insert(r.name.clone(), r.at.clone());
        let cx = Lookup {
            scripts: &scripts,
            processes: &processes,
            files: &files,
            listens: &listens,
        };
        let Some((inst, vrid_pos)) = instance(r, &global, &cx, d, env) else {
            continue;
        };
        let key = (inst.interface.clone(), inst.family, inst.virtual_router_id);
        if let Some((other, _)) = vrids.get(&key) {
            d.error(
                &vrid_pos,
                "virtual_router_id",
                format!(
                    "virtual_router_id {} is already used on {} ({}) by vrrp_instance '{}'",
                    inst.virtual_router_id, inst.interface, inst.family, other
                ),
            );
        } else {
            vrids.insert(key, (inst.name.clone(), vrid_pos));
        }
        instances.push(inst);
    }

    Config {
        global_defs: global,
        vrrp_scripts: scripts.into_iter().map(|n| n.item).collect(),
        track_processes: processes.into_iter().map(|n| n.item).collect(),
        track_files: files.into_iter().map(|n| n.item).collect(),
        track_listens: listens.into_iter().map(|n| n.item).collect(),
        instances,
    }
}

/// Drops (with an error) items whose name was already defined.
fn dedup<T>(
    items: Vec<Named<T>>,
    what: &str,
    d: &mut Diags,
    name: impl Fn(&T) -> &String,
) -> Vec<Named<T>> {
    let mut seen: HashMap<String, Pos> = HashMap::new();
    let mut out = Vec::new();
    for n in items {
        let nm = name(&n.item).clone();
        if let Some(prev) = seen.get(&nm) {
            d.error(
                &n.pos,
                what,
                format!(
                    "{what} '{nm}' is already defined at {}:{}",
                    prev.file, prev.line
                ),
            );
            continue;
        }
        seen.insert(nm, n.pos.clone());
        out.push(n);
    }
    out
}

struct Lookup<'a> {
    scripts: &'a [Named<super::model::VrrpScript>],
    processes: &'a [Named<super::model::TrackProcess>],
    files: &'a [Named<super::model::TrackFile>],
    listens: &'a [Named<super::model::TrackListen>],
}

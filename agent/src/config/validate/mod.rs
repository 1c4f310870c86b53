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

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::error::{Diags, Pos};
use super::model::{
    AuthType, Authentication, Config, DigitalOcean, Family, GlobalDefs, InitialState, NotifyFifo,
    Secret, Secs, TokenSource, TrackRef, VirtualAddress, VrrpInstance, DEFAULT_DO_API_URL,
    DEFAULT_DO_METADATA_URL, DEFAULT_DO_RECONCILE_INTERVAL,
};
use super::parse::{duration, whole_secs, Named, Raw, RawDo, RawInstance, RawRef, RawVip, MICROS};

/// Looks up an environment variable.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Environment variables consulted for the DigitalOcean token, in order.
pub const TOKEN_ENV_VARS: [&str; 2] = ["DO_TOKEN", "DIGITALOCEAN_TOKEN"];

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

/// Resolves tracker references: an undefined name is an error at the reference.
fn refs(
    list: Vec<RawRef>,
    kind: &str,
    def_kind: &str,
    defined: &dyn Fn(&str) -> Option<(i32, bool)>,
    inst: &str,
    d: &mut Diags,
) -> Vec<TrackRef> {
    let mut out: Vec<TrackRef> = Vec::new();
    for r in list {
        let Some((w, rev)) = defined(&r.name) else {
            d.error(
                &r.pos,
                kind,
                format!(
                    "vrrp_instance '{inst}' tracks '{}', but no {def_kind} '{}' is defined",
                    r.name, r.name
                ),
            );
            continue;
        };
        if out.iter().any(|o| o.name == r.name) {
            d.warn(
                &r.pos,
                kind,
                format!("'{}' is tracked twice; the last entry is used", r.name),
            );
            out.retain(|o| o.name != r.name);
        }
        let (weight, reverse) = match r.weight {
            Some(w) => (w, r.reverse),
            None => (w, rev),
        };
        out.push(TrackRef {
            name: r.name,
            weight,
            reverse,
        });
    }
    out
}

fn vip(v: RawVip, dev: &str) -> VirtualAddress {
    VirtualAddress {
        address: v.address,
        prefix_len: v
            .prefix_len
            .unwrap_or(if v.address.is_ipv4() { 32 } else { 128 }),
        dev: v.dev.unwrap_or_else(|| dev.to_string()),
        brd: v.brd,
        scope: v.scope.unwrap_or_else(|| "global".to_string()),
        label: v.label,
    }
}

fn instance(
    r: RawInstance,
    g: &GlobalDefs,
    cx: &Lookup<'_>,
    d: &mut Diags,
    env: EnvLookup<'_>,
) -> Option<(VrrpInstance, Pos)> {
    let name = r.name.clone();
    let at = r.at.clone();
    let mut ok = true;
    let interface = match &r.interface {
        Some((i, _)) => i.clone(),
        None => {
            d.error(
                &at,
                "interface",
                format!("vrrp_instance '{name}' has no 'interface' (required)"),
            );
            ok = false;
            String::new()
        }
    };
    let (vrid, vrid_pos) = match &r.vrid {
        Some((v, p)) => (*v, p.clone()),
        None => {
            if !r.seen.contains("virtual_router_id") {
                d.error(
                    &at,
                    "virtual_router_id",
                    format!("vrrp_instance '{name}' has no 'virtual_router_id' (required, 1..255)"),
                );
            }
            ok = false;
            (0, at.clone())
        }
    };

    // Family.
    let family = r
        .vips
        .first()
        .map(|v| Family::of(&v.address))
        .or(r.unicast_src_ip.as_ref().map(|(a, _)| Family::of(a)))
        .or(r.peers.first().map(|(p, _)| Family::of(&p.address)))
        .unwrap_or(Family::Ipv4);
    let check_family = |d: &mut Diags, a: &IpAddr, pos: &Pos, kw: &str, hint: &str| {
        if Family::of(a) != family {
            d.error(
                pos,
                kw,
                format!(
                    "{a} is {} but vrrp_instance '{name}' is {family}{hint}",
                    Family::of(a)
                ),
            );
        }
    };
    for v in &r.vips {
        check_family(
            d,
            &v.address,
            &v.pos,
            "virtual_ipaddress",
            "; put addresses of the other family in virtual_ipaddress_excluded",
        );
    }
    if let Some((a, p)) = &r.unicast_src_ip {
        check_family(d, a, p, "unicast_src_ip", "");
    }
    if let Some((a, p)) = &r.mcast_src_ip {
        check_family(d, a, p, "mcast_src_ip", "");
    }
    for (peer, p) in &r.peers {
        check_family(d, &peer.address, p, "unicast_peer", "");
    }
    let mut seen_peers: Vec<IpAddr> = Vec::new();
    for (peer, p) in &r.peers {
        if seen_peers.contains(&peer.address) {
            d.warn(
                p,
                "unicast_peer",
                format!("peer {} is listed twice", peer.address),
            );
        }
        if r.unicast_src_ip
            .as_ref()
            .is_some_and(|(s, _)| *s == peer.address)
        {
            d.error(
                p,
                "unicast_peer",
                format!("peer {} is this node's own unicast_src_ip", peer.address),
            );
        }
        seen_peers.push(peer.address);
        if let (Some(lo), Some(hi)) = (peer.min_ttl, peer.max_ttl) {
            if lo > hi {
                d.error(
                    p,
                    "unicast_peer",
                    format!("min_ttl {lo} is greater than max_ttl {hi}"),
                );
            }
        }
    }

    // Version.
    let mut version = r.version.as_ref().map_or(g.vrrp_version, |(v, _)| *v);
    if family == Family::Ipv6 && version == 2 {
        match &r.version {
            Some((_, p)) => d.error(
                p,
                "version",
                "VRRP version 2 does not support IPv6; use version 3",
            ),
            None => {
                d.warn(
                    &at,
                    "version",
                    format!("vrrp_instance '{name}' is IPv6, which needs VRRP version 3; using version 3"),
                );
                version = 3;
            }
        }
    }

    // Advert interval.
    let adv = r.advert_int.as_ref().map_or(MICROS, |(m, _)| *m);
    if let Some((m, p)) = &r.advert_int {
        if version == 2 && (m % MICROS != 0 || *m > 255 * MICROS) {
            d.error(
                p,
                "advert_int",
                format!(
                    "{} s is not valid for VRRPv2: whole seconds 1..255 (fractions need version 3)",
                    Secs(duration(*m))
                ),
            );
        } else if version == 3 && (m % 10_000 != 0 || *m > 40_950_000) {
            d.error(
                p,
                "advert_int",
                format!(
                    "{} s is not valid for VRRPv3: 0.01..40.95 s in steps of 0.01",
                    Secs(duration(*m))
                ),
            );
        }
    }

    // State and priority (keepalived derives either from the other).
    let (state, priority) = match (&r.state, &r.priority) {
        (Some((s, _)), Some((p, _))) => (*s, *p),
        (Some((InitialState::Master, _)), None) => (InitialState::Master, 255),
        (Some((InitialState::Backup, _)), None) => (InitialState::Backup, 100),
        (None, Some((p, _))) => (
            if *p == 255 {
                InitialState::Master
            } else {
                InitialState::Backup
            },
            *p,
        ),
        (None, None) => (InitialState::Backup, 100),
    };
    if let (Some((InitialState::Backup, sp)), 255) = (&r.state, priority) {
        d.warn(
            sp,
            "state",
            "priority 255 (address owner) always starts as MASTER; 'state BACKUP' has no effect",
        );
    }
    let nopreempt = r.nopreempt.as_ref().is_some_and(|(n, _)| *n);
    if let Some((true, np)) = &r.nopreempt {
        if state == InitialState::Master {
            d.warn(
                np,
                "nopreempt",
                "nopreempt needs 'state BACKUP' (keepalived ignores it with state MASTER)",
            );
        }
        if priority == 255 {
            d.warn(
                np,
                "nopreempt",
                "an address owner (priority 255) always preempts; nopreempt has no effect",
            );
        }
    }
    if let (Some((_, tp)), true) = (&r.unicast_ttl, r.peers.is_empty()) {
        // keepalived: "Cannot use unicast_ttl without unicast peers - resetting".
        d.warn(
            tp,
            "unicast_ttl",
            "unicast_ttl has no effect without unicast_peer (multicast adverts always carry TTL 255)",
        );
    }
    if r.preempt_delay.is_some_and(|m| m > 0) && nopreempt {
        d.warn(
            &at,
            "preempt_delay",
            "preempt_delay has no effect together with nopreempt",
        );
    }

    // Authentication.
    let authentication = match r.auth {
        None => None,
        Some(a) => {
            if version == 3 {
                d.error(
                    &a.at,
                    "authentication",
                    "authentication is only defined for VRRP version 2 (RFC 5798 removed it); remove it or use version 2",
                );
            }
            match a.pass {
                None => {
                    d.error(&a.at, "auth_pass", "auth_type PASS needs an 'auth_pass'");
                    None
                }
                Some((pass, p)) => {
                    if pass.expose().chars().count() > 8 {
                        d.warn(
                            &p,
                            "auth_pass",
                            "password is longer than 8 characters; only the first 8 are used",
                        );
                    }
                    Some(Authentication {
                        auth_type: AuthType::Pass,
                        auth_pass: pass,
                    })
                }
            }
        }
    };

    // Trackers.
    let script_w = |n: &str| {
        cx.scripts
            .iter()
            .find(|s| s.item.name == n)
            .map(|s| (s.item.weight, s.item.reverse))
    };
    let proc_w = |n: &str| {
        cx.processes
            .iter()
            .find(|s| s.item.name == n)
            .map(|s| (s.item.weight, s.item.reverse))
    };
    let file_w = |n: &str| {
        cx.files
            .iter()
            .find(|s| s.item.name == n)
            .map(|s| (s.item.weight, s.item.reverse))
    };
    let listen_w = |n: &str| {
        cx.listens
            .iter()
            .find(|s| s.item.name == n)
            .map(|s| (s.item.weight, false))
    };
    let track_script = refs(
        r.track_script,
        "track_script",
        "vrrp_script",
        &script_w,
        &name,
        d,
    );
    let track_process = refs(
        r.track_process,
        "track_process",
        "vrrp_track_process",
        &proc_w,
        &name,
        d,
    );
    let track_file = refs(r.track_file, "track_file", "track_file", &file_w, &name, d);
    let track_listen = refs(
        r.track_listen,
        "track_listen",
        "vrrp_track_listen",
        &listen_w,
        &name,
        d,
    );

    let digitalocean = r.digitalocean.and_then(|x| digitalocean(x, d, env));

    let strict_mode = r.strict_mode.unwrap_or(g.vrrp_strict);
    let inst = VrrpInstance {
        name,
        state,
        virtual_router_id: vrid,
        priority,
        advert_int: duration(adv),
        version,
        family,
        nopreempt,
        preempt_delay: duration(r.preempt_delay.unwrap_or(0)),
        mcast_src_ip: r.mcast_src_ip.map(|(a, _)| a),
        unicast_src_ip: r.unicast_src_ip.map(|(a, _)| a),
        unicast_peers: r.peers.into_iter().map(|(p, _)| p).collect(),
        unicast_ttl: r.unicast_ttl.map_or(255, |(t, _)| t),
        check_unicast_src: r.check_unicast_src.unwrap_or(g.vrrp_check_unicast_src),
        authentication,
        virtual_ipaddress: r.vips.into_iter().map(|v| vip(v, &interface)).collect(),
        virtual_ipaddress_excluded: r
            .vips_excluded
            .into_iter()
            .map(|v| vip(v, &interface))
            .collect(),
        track_script,
        track_interface: r.track_interface,
        track_file,
        track_process,
        track_listen,
        notify_master: r.notify_master,
        notify_backup: r.notify_backup,
        notify_fault: r.notify_fault,
        notify_stop: r.notify_stop,
        notify: r.notify,
        garp_master_delay: r
            .garp_master_delay
            .map_or(g.vrrp_garp_master_delay, whole_secs),
        garp_master_repeat: r.garp_master_repeat.unwrap_or(g.vrrp_garp_master_repeat),
        garp_master_refresh: r
            .garp_master_refresh
            .map_or(g.vrrp_garp_master_refresh, whole_secs),
        garp_master_refresh_repeat: r
            .garp_master_refresh_repeat
            .unwrap_or(g.vrrp_garp_master_refresh_repeat),
        garp_interval: r.garp_interval.map_or(g.vrrp_garp_interval, duration),
        gna_interval: r.gna_interval.map_or(g.vrrp_gna_interval, duration),
        skip_check_adv_addr: r.skip_check_adv_addr.unwrap_or(g.vrrp_skip_check_adv_addr),
        strict_mode,
        accept: r.accept.unwrap_or(!strict_mode),
        dont_track_primary: r.dont_track_primary,
        lower_prio_no_advert: r
            .lower_prio_no_advert
            .unwrap_or(g.vrrp_lower_prio_no_advert),
        v3_checksum_rfc9568: r.v3_checksum_rfc9568.unwrap_or(g.vrrp_v3_checksum_rfc9568),
        higher_prio_send_advert: r
            .higher_prio_send_advert
            .unwrap_or(g.vrrp_higher_prio_send_advert),
        digitalocean,
        interface,
    };
    ok.then_some((inst, vrid_pos))
}

/// Resolves the `digitalocean { }` block, including the token. Never puts the token in a message.
fn digitalocean(r: RawDo, d: &mut Diags, env: EnvLookup<'_>) -> Option<DigitalOcean> {
    let Some(reserved_ip) = r.reserved_ip else {
        d.error(
            &r.at,
            "reserved_ip",
            "digitalocean block has no 'reserved_ip' (required)",
        );
        return None;
    };
    let (token_source, token) = match &r.token_file {
        Some((path, pos)) => match read_token_file(path) {
            Ok(t) => (TokenSource::File(path.clone()), t),
            Err(msg) => {
                d.error(pos, "token_file", msg);
                return None;
            }
        },
        None => {
            let found = TOKEN_ENV_VARS.iter().find_map(|v| {
                env(v)
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .map(|t| (v.to_string(), t))
            });
            match found {
                Some((var, t)) => (TokenSource::Env(var), Secret::new(t)),
                None => {
                    d.error(
                        &r.at,
                        "digitalocean",
                        "no DigitalOcean API token: set 'token_file' (mode 0600), or the DO_TOKEN or DIGITALOCEAN_TOKEN environment variable",
                    );
                    return None;
                }
            }
        }
    };
    Some(DigitalOcean {
        reserved_ip,
        token_file: r.token_file.map(|(p, _)| p),
        token_source,
        token,
        api_url: r
            .api_url
            .map_or_else(|| DEFAULT_DO_API_URL.to_string(), |(u, _)| u),
        metadata_url: r
            .metadata_url
            .map_or_else(|| DEFAULT_DO_METADATA_URL.to_string(), |(u, _)| u),
        reconcile_interval: r
            .reconcile_interval
            .map_or(DEFAULT_DO_RECONCILE_INTERVAL, super::parse::whole_secs),
    })
}

/// Reads a token file, refusing one that group or others may access.
pub(crate) fn read_token_file(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("token_file '{shown}' must be an absolute path"));
    }
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read token_file '{shown}': {e}"))?;
    if !meta.is_file() {
        return Err(format!("token_file '{shown}' is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "token_file '{shown}' is accessible by group or others (mode {mode:04o}); run 'chmod 600 {shown}'"
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read token_file '{shown}': {e}"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("token_file '{shown}' is not UTF-8 text"))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("token_file '{shown}' is empty"));
    }
    if t.contains(char::is_whitespace) {
        return Err(format!(
            "token_file '{shown}' must hold exactly one token (it contains blanks)"
        ));
    }
    Ok(Secret::new(t))
}

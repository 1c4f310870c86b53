//! One `vrrp_instance`: defaults from `global_defs`, family and version rules, tracker
//! references and virtual addresses, checked field by field.

use std::net::IpAddr;

use super::super::error::{Diags, Pos};
use super::super::model::{
    AuthType, Authentication, Family, GlobalDefs, InitialState, Secs, TrackRef, VirtualAddress,
    VrrpInstance,
};
use super::super::parse::{duration, whole_secs, RawInstance, RawRef, RawVip, MICROS};
use super::cloud::digitalocean;
use super::{EnvLookup, Lookup};

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

pub(super) fn instance(
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
        notify_timeout: r.notify_timeout.map_or(g.notify_timeout, duration),
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

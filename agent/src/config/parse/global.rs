//! `global_defs` (all blocks merged into one [`RawGlobal`]) and its `notify_fifo` lines.

use std::collections::HashMap;
use std::net::IpAddr;

use super::super::keywords as kw;
use super::super::model::ScriptUser;
use super::super::tree::Stmt;
use super::raw::RawGlobal;
use super::{put, Parser};

impl Parser<'_> {
    pub(super) fn global(&mut self, body: &[Stmt], g: &mut RawGlobal) {
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "router_id" => {
                    if let Some(t) = self.one(s) {
                        g.router_id = Some(t.text.clone());
                    }
                }
                "vrrp_version" => {
                    if let Some(v) = self.u8v(s, 2, 3) {
                        g.vrrp_version = Some(v);
                    }
                }
                "script_user" => {
                    if let Some(u) = self.user(s) {
                        g.script_user = Some(u);
                    }
                }
                "enable_script_security" => {
                    if self.bare(s) {
                        g.enable_script_security = Some(true);
                    }
                }
                "vrrp_garp_master_delay" => put(&mut g.garp_master_delay, self.u32v(s, 0, 1000)),
                "vrrp_garp_master_repeat" => put(&mut g.garp_master_repeat, self.u32v(s, 1, 255)),
                "vrrp_garp_master_refresh" => {
                    put(&mut g.garp_master_refresh, self.u32v(s, 0, 1_000_000))
                }
                "vrrp_garp_master_refresh_repeat" => {
                    put(&mut g.garp_master_refresh_repeat, self.u32v(s, 1, 255))
                }
                "vrrp_garp_interval" => put(&mut g.garp_interval, self.secs(s, 0)),
                "vrrp_gna_interval" => put(&mut g.gna_interval, self.secs(s, 0)),
                "vrrp_strict" => {
                    if self.bare(s) {
                        g.strict = Some(true);
                    }
                }
                "vrrp_skip_check_adv_addr" => put(&mut g.skip_check_adv_addr, self.flag(s)),
                "vrrp_check_unicast_src" => {
                    if self.bare(s) {
                        g.check_unicast_src = Some(true);
                    }
                }
                "vrrp_lower_prio_no_advert" => put(&mut g.lower_prio_no_advert, self.flag(s)),
                "vrrp_v3_checksum_rfc9568" => put(&mut g.v3_checksum_rfc9568, self.flag(s)),
                "vrrp_higher_prio_send_advert" => put(&mut g.higher_prio_send_advert, self.flag(s)),
                "vrrp_mcast_group4" => match self.ip(s) {
                    Some(IpAddr::V4(a)) if a.is_multicast() => g.mcast_group4 = Some(a),
                    Some(_) => self.d.error(
                        s.pos(),
                        s.name(),
                        "expected an IPv4 multicast address (224.0.0.0/4)",
                    ),
                    None => {}
                },
                "vrrp_mcast_group6" => match self.ip(s) {
                    Some(IpAddr::V6(a)) if a.is_multicast() => g.mcast_group6 = Some(a),
                    Some(_) => self.d.error(
                        s.pos(),
                        s.name(),
                        "expected an IPv6 multicast address (ff00::/8)",
                    ),
                    None => {}
                },
                "vrrp_startup_delay" => put(&mut g.startup_delay, self.secs(s, 0)),
                // xvrrp extension (keepalived runs notify scripts without a time limit).
                "notify_timeout" => put(&mut g.notify_timeout, self.secs(s, 1)),
                // xvrrp extension: where `/metrics` is served (see `crate::metrics`).
                "metrics_address" => {
                    if let Some(t) = self.one(s) {
                        match super::super::parse_metrics_address(&t.text) {
                            Ok(a) => g.metrics_address = Some(a),
                            Err(e) => self.d.error(&t.pos, s.name(), e),
                        }
                    }
                }
                "notify_fifo" => put(&mut g.notify_fifo, self.fifo(s)),
                "vrrp_notify_fifo" => put(&mut g.vrrp_notify_fifo, self.fifo(s)),
                "notify_fifo_script" => {
                    if let Some(c) = self.command(s) {
                        g.notify_fifo_script = Some((c, s.pos().clone()));
                    }
                }
                "vrrp_notify_fifo_script" => {
                    if let Some(c) = self.command(s) {
                        g.vrrp_notify_fifo_script = Some((c, s.pos().clone()));
                    }
                }
                _ => self.other(
                    s,
                    "global_defs",
                    kw::GLOBAL,
                    kw::GLOBAL_IGNORED,
                    kw::GLOBAL_UNSUPPORTED,
                ),
            }
        }
    }

    /// `notify_fifo PATH [USER [GROUP]]`.
    fn fifo(&mut self, s: &Stmt) -> Option<(String, Option<ScriptUser>)> {
        if !self.no_block(s) {
            return None;
        }
        match s.args.as_slice() {
            [] => {
                self.d.error(s.pos(), s.name(), "needs a FIFO path");
                None
            }
            [p] => Some((p.text.clone(), None)),
            [p, u] => Some((
                p.text.clone(),
                Some(ScriptUser {
                    user: u.text.clone(),
                    group: None,
                }),
            )),
            [p, u, g] => Some((
                p.text.clone(),
                Some(ScriptUser {
                    user: u.text.clone(),
                    group: Some(g.text.clone()),
                }),
            )),
            [_, _, _, extra, ..] => {
                self.d.error(
                    &extra.pos,
                    s.name(),
                    format!(
                        "expected 'PATH [USER [GROUP]]'; unexpected '{}'",
                        extra.text
                    ),
                );
                None
            }
        }
    }
}

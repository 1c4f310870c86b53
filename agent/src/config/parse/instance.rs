//! `vrrp_instance { }` and its `authentication { }` block (the list blocks it holds are read in
//! `lists`, its `digitalocean { }` block in `cloud`).

use std::collections::HashMap;

use super::super::keywords as kw;
use super::super::model::{InitialState, Secret, TrackInterface};
use super::super::tree::Stmt;
use super::raw::{RawAuth, RawInstance};
use super::{put, Parser, MICROS};

impl Parser<'_> {
    pub(super) fn instance(&mut self, body: &[Stmt], v: &mut RawInstance) {
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            v.seen.insert(s.name().to_string());
            let here = s.pos().clone();
            match s.name() {
                "state" => {
                    if let Some(t) = self.one(s) {
                        match t.text.to_ascii_uppercase().as_str() {
                            "MASTER" => v.state = Some((InitialState::Master, here)),
                            "BACKUP" => v.state = Some((InitialState::Backup, here)),
                            _ => self.d.error(
                                &t.pos,
                                "state",
                                format!("'{}' is not MASTER or BACKUP", t.text),
                            ),
                        }
                    }
                }
                "interface" => {
                    if let Some(t) = self.one(s) {
                        if t.text.is_empty() || t.text.len() > 15 || t.text.contains('/') {
                            self.d.error(
                                &t.pos,
                                "interface",
                                format!(
                                    "'{}' is not a valid interface name (1..15 characters, no '/')",
                                    t.text
                                ),
                            );
                        } else {
                            v.interface = Some((t.text.clone(), here));
                        }
                    }
                }
                "virtual_router_id" => {
                    if let Some(x) = self.u8v(s, 1, 255) {
                        v.vrid = Some((x, here));
                    }
                }
                "priority" => {
                    if let Some(x) = self.u8v(s, 1, 255) {
                        v.priority = Some((x, here));
                    }
                }
                "advert_int" => {
                    if let Some(x) = self.secs(s, 1) {
                        v.advert_int = Some((x, here));
                    }
                }
                "version" => {
                    if let Some(x) = self.u8v(s, 2, 3) {
                        v.version = Some((x, here));
                    }
                }
                "nopreempt" => {
                    if self.bare(s) {
                        v.nopreempt = Some((true, here));
                    }
                }
                "preempt" => {
                    if self.bare(s) {
                        v.nopreempt = Some((false, here));
                    }
                }
                "preempt_delay" => {
                    if let Some(m) = self.secs(s, 0) {
                        if m > 1000 * MICROS {
                            self.d
                                .error(&here, "preempt_delay", "must be at most 1000 seconds");
                        } else {
                            v.preempt_delay = Some(m);
                        }
                    }
                }
                "mcast_src_ip" => {
                    if let Some(a) = self.ip(s) {
                        v.mcast_src_ip = Some((a, here));
                    }
                }
                "unicast_src_ip" => {
                    if let Some(a) = self.ip(s) {
                        v.unicast_src_ip = Some((a, here));
                    }
                }
                "unicast_peer" => {
                    for line in self.list_block(s) {
                        self.peer_line(line, &mut v.peers);
                    }
                }
                "unicast_ttl" => {
                    if let Some(t) = self.u8v(s, 1, 255) {
                        v.unicast_ttl = Some((t, here));
                    }
                }
                "check_unicast_src" => {
                    if self.bare(s) {
                        v.check_unicast_src = Some(true);
                    }
                }
                "authentication" => v.auth = Some(self.auth(s)),
                "virtual_ipaddress" => {
                    for line in self.list_block(s) {
                        if let Some(x) = self.vip_line(line) {
                            v.vips.push(x);
                        }
                    }
                }
                "virtual_ipaddress_excluded" => {
                    for line in self.list_block(s) {
                        if let Some(x) = self.vip_line(line) {
                            v.vips_excluded.push(x);
                        }
                    }
                }
                "track_script" => {
                    for line in self.list_block(s) {
                        self.ref_line("track_script", line, true, &mut v.track_script);
                    }
                }
                "track_file" => {
                    for line in self.list_block(s) {
                        self.ref_line("track_file", line, true, &mut v.track_file);
                    }
                }
                "track_process" => {
                    for line in self.list_block(s) {
                        self.ref_line("track_process", line, true, &mut v.track_process);
                    }
                }
                "track_listen" => {
                    for line in self.list_block(s) {
                        self.ref_line("track_listen", line, false, &mut v.track_listen);
                    }
                }
                "track_interface" => {
                    for line in self.list_block(s) {
                        let mut refs = Vec::new();
                        self.ref_line("track_interface", line, true, &mut refs);
                        v.track_interface
                            .extend(refs.into_iter().map(|r| TrackInterface {
                                name: r.name,
                                weight: r.weight.unwrap_or(0),
                                reverse: r.reverse,
                            }));
                    }
                }
                "notify_master" => put(&mut v.notify_master, self.command(s)),
                "notify_backup" => put(&mut v.notify_backup, self.command(s)),
                "notify_fault" => put(&mut v.notify_fault, self.command(s)),
                "notify_stop" => put(&mut v.notify_stop, self.command(s)),
                "notify" => put(&mut v.notify, self.command(s)),
                "notify_timeout" => put(&mut v.notify_timeout, self.secs(s, 1)),
                "garp_master_delay" => put(&mut v.garp_master_delay, self.u32v(s, 0, 1000)),
                "garp_master_repeat" => put(&mut v.garp_master_repeat, self.u32v(s, 1, 255)),
                "garp_master_refresh" => {
                    put(&mut v.garp_master_refresh, self.u32v(s, 0, 1_000_000))
                }
                "garp_master_refresh_repeat" => {
                    put(&mut v.garp_master_refresh_repeat, self.u32v(s, 1, 255))
                }
                "garp_interval" => put(&mut v.garp_interval, self.secs(s, 0)),
                "gna_interval" => put(&mut v.gna_interval, self.secs(s, 0)),
                "skip_check_adv_addr" => put(&mut v.skip_check_adv_addr, self.flag(s)),
                "strict_mode" => put(&mut v.strict_mode, self.flag(s)),
                "accept" => {
                    if self.bare(s) {
                        v.accept = Some(true);
                    }
                }
                "no_accept" => {
                    if self.bare(s) {
                        v.accept = Some(false);
                    }
                }
                "dont_track_primary" => {
                    if self.bare(s) {
                        v.dont_track_primary = true;
                    }
                }
                "lower_prio_no_advert" => put(&mut v.lower_prio_no_advert, self.flag(s)),
                "v3_checksum_rfc9568" => put(&mut v.v3_checksum_rfc9568, self.flag(s)),
                "higher_prio_send_advert" => put(&mut v.higher_prio_send_advert, self.flag(s)),
                "digitalocean" => {
                    if !s.args.is_empty() {
                        self.d.error(
                            &s.args[0].pos,
                            "digitalocean",
                            "'digitalocean' takes no arguments",
                        );
                    }
                    let body = self.block(s);
                    v.digitalocean = Some(self.digitalocean(here, body));
                }
                _ => self.other(
                    s,
                    "vrrp_instance",
                    kw::INSTANCE,
                    kw::INSTANCE_IGNORED,
                    kw::INSTANCE_UNSUPPORTED,
                ),
            }
        }
    }

    fn auth(&mut self, s: &Stmt) -> RawAuth {
        let mut a = RawAuth {
            at: s.pos().clone(),
            pass: None,
        };
        if !s.args.is_empty() {
            self.d.error(
                &s.args[0].pos,
                "authentication",
                "'authentication' takes no arguments",
            );
        }
        let body = self.block(s);
        let mut seen = HashMap::new();
        let mut have_type = false;
        for l in body {
            self.dup(&mut seen, l);
            match l.name() {
                "auth_type" => {
                    have_type = true;
                    if let Some(t) = self.one(l) {
                        match t.text.to_ascii_uppercase().as_str() {
                            "PASS" => {}
                            "AH" => self.d.error(
                                &t.pos,
                                "auth_type",
                                "'auth_type AH' is not supported by xvrrp (IPsec AH was removed from VRRP by RFC 3768); use PASS or no authentication",
                            ),
                            _ => self.d.error(
                                &t.pos,
                                "auth_type",
                                format!("'{}' is not an authentication type (PASS)", t.text),
                            ),
                        }
                    }
                }
                "auth_pass" => {
                    // Never echo the value in messages.
                    if l.block.is_some() {
                        self.d.error(
                            l.pos(),
                            "auth_pass",
                            "'auth_pass' does not take a { } block",
                        );
                    } else if l.args.len() != 1 {
                        self.d
                            .error(l.pos(), "auth_pass", "'auth_pass' takes exactly one value");
                    } else if l.args[0].text.is_empty() {
                        self.d
                            .error(l.pos(), "auth_pass", "'auth_pass' must not be empty");
                    } else {
                        a.pass = Some((Secret::new(l.args[0].text.clone()), l.pos().clone()));
                    }
                }
                _ => self.other(l, "authentication", kw::AUTH, &[], &[]),
            }
        }
        if !have_type && s.block.is_some() {
            self.d.error(
                s.pos(),
                "auth_type",
                "authentication has no 'auth_type' (required: PASS)",
            );
        }
        a
    }
}

//! Interprets the statement tree: one function per block, values checked where they are read.
//! The result is a "raw" configuration: optional fields with positions, so that the semantic
//! pass ([`super::validate`]) can fill defaults and report cross-field errors at the right place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::error::{Diags, Pos};
use super::keywords as kw;
use super::lexer::{Kind, Token};
use super::model::{
    Broadcast, InitFile, InitialState, ParamMatch, ScriptUser, Secret, Secs, TrackFile,
    TrackInterface, TrackListen, TrackProcess, UnicastPeer, VrrpScript,
};
use super::tree::Stmt;

/// A value and where it was written.
pub(crate) type Sp<T> = Option<(T, Pos)>;

/// Most seconds accepted by any duration keyword (about 31 years).
const MAX_SECS: u64 = 1_000_000_000;
/// Microseconds per second.
pub(crate) const MICROS: u64 = 1_000_000;

/// Shortest `vrrp_script` `interval` / `timeout` used (smaller values are raised to it, with a
/// warning): 0.01 s.
const SCRIPT_MIN_MICROS: u64 = 10_000;
/// Longest `vrrp_script` `interval` / `timeout` used (larger values are lowered to it, with a
/// warning): one day.
const SCRIPT_MAX_MICROS: u64 = 86_400 * MICROS;
/// Longest `vrrp_track_process` `delay` / `terminate_delay` / `fork_delay` used (larger values are
/// lowered to it, with a warning): one day.
const PROCESS_DELAY_MAX_MICROS: u64 = 86_400 * MICROS;

/// The configuration's one conversion to [`Duration`]: from the exact number of microseconds
/// the parser read ([`parse_micros`]) or whole seconds times [`MICROS`].
pub(crate) fn duration(micros: u64) -> Duration {
    Duration::from_micros(micros)
}

/// Whole seconds as a [`Duration`] (through [`duration`]).
pub(crate) fn whole_secs(secs: u32) -> Duration {
    duration(u64::from(secs) * MICROS)
}

/// Parses a non-negative decimal number of seconds exactly into microseconds.
pub(crate) fn parse_micros(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || int.len() > 10
    {
        return None;
    }
    let i: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        f *= 10;
    }
    i.checked_mul(MICROS)?.checked_add(f)
}

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
    fn new(name: String, at: Pos) -> Self {
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

/// Keywords that may be repeated in a block without a warning.
const REPEATABLE: &[&str] = &[
    "unicast_peer",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "track_script",
    "track_interface",
    "track_file",
    "track_process",
    "track_listen",
    "port",
    "notification_email",
];

/// The parser state: the diagnostics sink and the block being read (for "missing" errors).
pub(crate) struct Parser<'d> {
    pub d: &'d mut Diags,
    pub block_at: Pos,
}

fn is_true_false(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

impl Parser<'_> {
    /// Parses the top level.
    pub fn top(&mut self, stmts: &[Stmt]) -> Raw {
        let mut raw = Raw::default();
        for s in stmts {
            match s.name() {
                "global_defs" => {
                    if !s.args.is_empty() {
                        self.d.error(
                            &s.args[0].pos,
                            "global_defs",
                            "'global_defs' takes no arguments",
                        );
                    }
                    let body = self.block(s);
                    self.global(body, &mut raw.global);
                }
                "vrrp_script" => {
                    if s.block.is_none() {
                        let _ = self.block(s);
                    } else if let Some((name, pos)) = self.block_name(s) {
                        self.block_at = pos.clone();
                        let body = self.block(s);
                        let item = self.script(name, body);
                        raw.scripts.push(Named { item, pos });
                    }
                }
                "vrrp_track_process" => {
                    if s.block.is_none() {
                        let _ = self.block(s);
                    } else if let Some((name, pos)) = self.block_name(s) {
                        let body = self.block(s);
                        let item = self.process(name, s.pos(), body);
                        raw.processes.push(Named { item, pos });
                    }
                }
                "track_file" | "vrrp_track_file" => {
                    if s.block.is_none() {
                        let _ = self.block(s);
                    } else if let Some((name, pos)) = self.block_name(s) {
                        let body = self.block(s);
                        let item = self.file(name, s.pos(), body);
                        raw.files.push(Named { item, pos });
                    }
                }
                "vrrp_track_listen" => {
                    if s.block.is_none() {
                        let _ = self.block(s);
                    } else if let Some((name, pos)) = self.block_name(s) {
                        let body = self.block(s);
                        let item = self.listen(name, s.pos(), body);
                        raw.listens.push(Named { item, pos });
                    }
                }
                "vrrp_instance" => {
                    if s.block.is_none() {
                        let _ = self.block(s);
                    } else if let Some((name, pos)) = self.block_name(s) {
                        let mut inst = RawInstance::new(name, pos);
                        let body = self.block(s);
                        self.instance(body, &mut inst);
                        raw.instances.push(inst);
                    }
                }
                _ => self.other(s, "the top level", kw::TOP, &[], kw::TOP_UNSUPPORTED),
            }
        }
        raw
    }

    // ----- generic helpers -------------------------------------------------------------

    /// Handles a keyword the block's match did not: ignored, unsupported or unknown.
    fn other(
        &mut self,
        s: &Stmt,
        ctx: &str,
        known: &[&str],
        ignored: &[&str],
        unsupported: &[&str],
    ) {
        let name = s.name();
        if s.kw.kind == Kind::Word && (name.starts_with('$') || name.starts_with('@')) {
            self.d.error(
                s.pos(),
                name,
                "keepalived parameter substitution and conditional lines ('$NAME', '@ID') are not supported by xvrrp",
            );
            return;
        }
        if ignored.contains(&name) {
            self.d.warn(
                s.pos(),
                name,
                format!("'{name}' is accepted but ignored by xvrrp"),
            );
            return;
        }
        if unsupported.contains(&name)
            || kw::UNSUPPORTED_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            let hint = if name == "vrrp_sync_group" {
                " (configure independent vrrp_instances instead)"
            } else {
                ""
            };
            self.d.error(
                s.pos(),
                name,
                format!("'{name}' is not supported by xvrrp{hint}"),
            );
            return;
        }
        let mut all: Vec<&str> = known.to_vec();
        all.extend_from_slice(ignored);
        let mut msg = format!("unknown keyword '{name}' in {ctx}");
        if let Some(sug) = kw::suggest(name, &all) {
            msg.push_str(&format!("; did you mean '{sug}'?"));
        }
        self.d.error(s.pos(), name, msg);
    }

    /// The body of a block statement, with an error if the block is missing.
    fn block<'s>(&mut self, s: &'s Stmt) -> &'s [Stmt] {
        match &s.block {
            Some(b) => b,
            None => {
                self.d.error(
                    s.pos(),
                    s.name(),
                    format!("'{}' needs a {{ }} block", s.name()),
                );
                &[]
            }
        }
    }

    /// The single name argument of a named block (`vrrp_instance NAME {`).
    fn block_name(&mut self, s: &Stmt) -> Option<(String, Pos)> {
        match s.args.as_slice() {
            [n] => Some((n.text.clone(), s.pos().clone())),
            [] => {
                self.d
                    .error(s.pos(), s.name(), format!("'{}' needs a name", s.name()));
                None
            }
            [_, extra, ..] => {
                self.d.error(
                    &extra.pos,
                    s.name(),
                    format!("'{}' takes one name; unexpected '{}'", s.name(), extra.text),
                );
                None
            }
        }
    }

    /// Errors if a non-block statement has a block.
    fn no_block(&mut self, s: &Stmt) -> bool {
        if s.block.is_some() {
            self.d.error(
                s.pos(),
                s.name(),
                format!("'{}' does not take a {{ }} block", s.name()),
            );
            return false;
        }
        true
    }

    /// The single value of `keyword VALUE`.
    fn one<'s>(&mut self, s: &'s Stmt) -> Option<&'s Token> {
        if !self.no_block(s) {
            return None;
        }
        match s.args.as_slice() {
            [v] => Some(v),
            [] => {
                self.d
                    .error(s.pos(), s.name(), format!("'{}' needs a value", s.name()));
                None
            }
            [_, extra, ..] => {
                self.d.error(
                    &extra.pos,
                    s.name(),
                    format!(
                        "'{}' takes one value; unexpected '{}'",
                        s.name(),
                        extra.text
                    ),
                );
                None
            }
        }
    }

    /// A flag: `keyword` alone means true; `keyword true|false` (also on/off, yes/no).
    fn flag(&mut self, s: &Stmt) -> Option<bool> {
        if !self.no_block(s) {
            return None;
        }
        match s.args.as_slice() {
            [] => Some(true),
            [v] => {
                let r = is_true_false(&v.text);
                if r.is_none() {
                    self.d.error(
                        &v.pos,
                        s.name(),
                        format!("expected true or false, found '{}'", v.text),
                    );
                }
                r
            }
            [_, extra, ..] => {
                self.d.error(
                    &extra.pos,
                    s.name(),
                    format!("unexpected '{}' after '{}'", extra.text, s.name()),
                );
                None
            }
        }
    }

    /// A keyword with no value at all.
    fn bare(&mut self, s: &Stmt) -> bool {
        if !self.no_block(s) {
            return false;
        }
        if let Some(extra) = s.args.first() {
            self.d.error(
                &extra.pos,
                s.name(),
                format!("'{}' takes no value; unexpected '{}'", s.name(), extra.text),
            );
            return false;
        }
        true
    }

    /// Parses `t` as an integer in `min..=max`.
    fn int_tok(&mut self, keyword: &str, t: &Token, min: i64, max: i64) -> Option<i64> {
        match t.text.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.d.error(
                    &t.pos,
                    keyword,
                    format!("'{}' is not a whole number in {min}..{max}", t.text),
                );
                None
            }
        }
    }

    /// `keyword N` with N in `min..=max`.
    fn int(&mut self, s: &Stmt, min: i64, max: i64) -> Option<i64> {
        let t = self.one(s)?;
        self.int_tok(s.name(), t, min, max)
    }

    fn u32v(&mut self, s: &Stmt, min: u32, max: u32) -> Option<u32> {
        self.int(s, i64::from(min), i64::from(max))
            .and_then(|v| u32::try_from(v).ok())
    }

    fn u8v(&mut self, s: &Stmt, min: u8, max: u8) -> Option<u8> {
        self.int(s, i64::from(min), i64::from(max))
            .and_then(|v| u8::try_from(v).ok())
    }

    /// Parses `t` as seconds (decimal) into microseconds, at least `min_micros`.
    fn secs_tok(&mut self, keyword: &str, t: &Token, min_micros: u64) -> Option<u64> {
        match parse_micros(&t.text) {
            Some(m) if m >= min_micros && m <= MAX_SECS * MICROS => Some(m),
            Some(_) => {
                let what = if min_micros > 0 {
                    "greater than 0"
                } else {
                    "0 or more"
                };
                self.d.error(
                    &t.pos,
                    keyword,
                    format!(
                        "'{}' is out of range; expected seconds {what}, at most {MAX_SECS}",
                        t.text
                    ),
                );
                None
            }
            None => {
                self.d.error(
                    &t.pos,
                    keyword,
                    format!(
                        "'{}' is not a number of seconds (digits with at most 6 decimals, e.g. 1 or 0.5)",
                        t.text
                    ),
                );
                None
            }
        }
    }

    /// `keyword SECONDS`.
    fn secs(&mut self, s: &Stmt, min_micros: u64) -> Option<u64> {
        let t = self.one(s)?;
        self.secs_tok(s.name(), t, min_micros)
    }

    /// A `vrrp_track_process` delay: 0 or more seconds, at most a day.
    fn process_delay(&mut self, s: &Stmt) -> Option<u64> {
        self.secs_clamped(
            s,
            0,
            PROCESS_DELAY_MAX_MICROS,
            "for a vrrp_track_process delay",
        )
    }

    /// `keyword SECONDS` (at least 1 µs when `lo > 0`, else 0 or more), then brought into
    /// `lo..=hi` with a warning at the value when it is outside: the range the consumer can use.
    fn secs_clamped(&mut self, s: &Stmt, lo: u64, hi: u64, what: &str) -> Option<u64> {
        let t = self.one(s)?;
        let m = self.secs_tok(s.name(), t, lo.min(1))?;
        let c = m.clamp(lo, hi);
        if c != m {
            let b = Secs(duration(c));
            let side = if c > m {
                "below the minimum"
            } else {
                "above the maximum"
            };
            self.d.warn(
                &t.pos,
                s.name(),
                format!("'{}' is {side} of {b} s {what}; using {b} s", t.text),
            );
        }
        Some(c)
    }

    fn ip_tok(&mut self, keyword: &str, t: &Token) -> Option<IpAddr> {
        match t.text.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.d.error(
                    &t.pos,
                    keyword,
                    format!("'{}' is not a valid IPv4 or IPv6 address", t.text),
                );
                None
            }
        }
    }

    fn ip(&mut self, s: &Stmt) -> Option<IpAddr> {
        let t = self.one(s)?;
        self.ip_tok(s.name(), t)
    }

    /// A command line: all arguments (quoted or not) joined by single blanks.
    fn command(&mut self, s: &Stmt) -> Option<String> {
        if !self.no_block(s) {
            return None;
        }
        if s.args.is_empty() {
            self.d
                .error(s.pos(), s.name(), format!("'{}' needs a command", s.name()));
            return None;
        }
        let cmd = s
            .args
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if cmd.trim().is_empty() {
            self.d
                .error(s.pos(), s.name(), format!("'{}' needs a command", s.name()));
            return None;
        }
        Some(cmd)
    }

    /// `keyword USER [GROUP]`.
    fn user(&mut self, s: &Stmt) -> Option<ScriptUser> {
        if !self.no_block(s) {
            return None;
        }
        match s.args.as_slice() {
            [u] => Some(ScriptUser {
                user: u.text.clone(),
                group: None,
            }),
            [u, g] => Some(ScriptUser {
                user: u.text.clone(),
                group: Some(g.text.clone()),
            }),
            [] => {
                self.d.error(
                    s.pos(),
                    s.name(),
                    "needs a user name (and optionally a group)",
                );
                None
            }
            [_, _, extra, ..] => {
                self.d.error(
                    &extra.pos,
                    s.name(),
                    format!("takes a user and a group; unexpected '{}'", extra.text),
                );
                None
            }
        }
    }

    /// `weight N [reverse]` as the whole of a statement.
    fn weight(&mut self, s: &Stmt) -> Option<(i32, bool)> {
        if !self.no_block(s) {
            return None;
        }
        match s.args.as_slice() {
            [w] => self
                .int_tok("weight", w, -253, 253)
                .map(|v| (v as i32, false)),
            [w, r] if r.text == "reverse" => self
                .int_tok("weight", w, -253, 253)
                .map(|v| (v as i32, true)),
            [] => {
                self.d
                    .error(s.pos(), "weight", "'weight' needs a value in -253..253");
                None
            }
            [_, extra, ..] => {
                self.d.error(
                    &extra.pos,
                    "weight",
                    format!(
                        "unexpected '{}' (expected 'weight N [reverse]')",
                        extra.text
                    ),
                );
                None
            }
        }
    }

    /// Warns when a non-repeatable keyword is given twice in one block.
    fn dup(&mut self, seen: &mut HashMap<String, Pos>, s: &Stmt) {
        let name = s.name();
        if REPEATABLE.contains(&name) {
            return;
        }
        if let Some(prev) = seen.get(name) {
            let msg = format!(
                "'{name}' is given more than once in this block (first at line {}); the last one is used",
                prev.line
            );
            self.d.warn(s.pos(), name, msg);
        } else {
            seen.insert(name.to_string(), s.pos().clone());
        }
    }

    // ----- global_defs ---------------------------------------------------------------

    fn global(&mut self, body: &[Stmt], g: &mut RawGlobal) {
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

    // ----- trackers ------------------------------------------------------------------

    fn script(&mut self, name: String, body: &[Stmt]) -> VrrpScript {
        let mut v = VrrpScript {
            name,
            script: String::new(),
            interval: duration(MICROS),
            timeout: duration(MICROS),
            weight: 0,
            reverse: false,
            rise: 1,
            fall: 1,
            user: None,
            init_fail: false,
        };
        let mut interval = None;
        let mut timeout = None;
        let mut have_script = false;
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "script" => {
                    if let Some(c) = self.command(s) {
                        v.script = c;
                    }
                    have_script = true;
                }
                "interval" => put(
                    &mut interval,
                    self.secs_clamped(s, SCRIPT_MIN_MICROS, SCRIPT_MAX_MICROS, "for a vrrp_script"),
                ),
                "timeout" => put(
                    &mut timeout,
                    self.secs_clamped(s, SCRIPT_MIN_MICROS, SCRIPT_MAX_MICROS, "for a vrrp_script"),
                ),
                "weight" => {
                    if let Some((w, r)) = self.weight(s) {
                        v.weight = w;
                        v.reverse = r;
                    }
                }
                "rise" => set(&mut v.rise, self.u32v(s, 1, 1_000_000)),
                "fall" => set(&mut v.fall, self.u32v(s, 1, 1_000_000)),
                "user" => put(&mut v.user, self.user(s)),
                "init_fail" => {
                    if self.bare(s) {
                        v.init_fail = true;
                    }
                }
                _ => self.other(s, "vrrp_script", kw::SCRIPT, &[], &[]),
            }
        }
        if !have_script {
            self.missing("vrrp_script", &v.name, "script");
        }
        let interval = interval.unwrap_or(MICROS);
        v.interval = duration(interval);
        v.timeout = duration(timeout.unwrap_or(interval));
        v
    }

    /// Records a "required keyword missing" error; the position is fixed up by the caller via
    /// [`Parser::block_at`].
    fn missing(&mut self, block: &str, name: &str, keyword: &str) {
        let pos = self.block_at.clone();
        self.d.error(
            &pos,
            keyword,
            format!("{block} '{name}' has no '{keyword}' (required)"),
        );
    }

    fn process(&mut self, name: String, at: &Pos, body: &[Stmt]) -> TrackProcess {
        self.block_at = at.clone();
        let mut v = TrackProcess {
            name,
            process: String::new(),
            params: None,
            param_match: ParamMatch::Exact,
            full_command: false,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: None,
            terminate_delay: Duration::ZERO,
            fork_delay: Duration::ZERO,
        };
        let mut delay = None;
        let mut term = None;
        let mut fork = None;
        let mut have = false;
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "process" => {
                    have = true;
                    if !self.no_block(s) {
                        continue;
                    }
                    match s.args.split_first() {
                        Some((p, rest)) => {
                            v.process = p.text.clone();
                            if !rest.is_empty() {
                                v.params = Some(
                                    rest.iter()
                                        .map(|a| a.text.as_str())
                                        .collect::<Vec<_>>()
                                        .join(" "),
                                );
                            }
                        }
                        None => self
                            .d
                            .error(s.pos(), "process", "'process' needs a process name"),
                    }
                }
                "param_match" => {
                    if let Some(t) = self.one(s) {
                        match t.text.to_ascii_lowercase().as_str() {
                            "exact" => v.param_match = ParamMatch::Exact,
                            "partial" => v.param_match = ParamMatch::Partial,
                            "initial" => v.param_match = ParamMatch::Initial,
                            _ => self.d.error(
                                &t.pos,
                                "param_match",
                                format!("'{}' is not one of exact, partial, initial", t.text),
                            ),
                        }
                    }
                }
                "full_command" => {
                    if self.bare(s) {
                        v.full_command = true;
                    }
                }
                "weight" => {
                    if let Some((w, r)) = self.weight(s) {
                        v.weight = w;
                        v.reverse = r;
                    }
                }
                "quorum" => set(&mut v.quorum, self.u32v(s, 1, 65535)),
                "quorum_max" => put(&mut v.quorum_max, self.u32v(s, 1, 65535)),
                "delay" => put(&mut delay, self.process_delay(s)),
                "terminate_delay" => put(&mut term, self.process_delay(s)),
                "fork_delay" => put(&mut fork, self.process_delay(s)),
                _ => self.other(s, "vrrp_track_process", kw::PROCESS, &[], &[]),
            }
        }
        if !have {
            self.missing("vrrp_track_process", &v.name, "process");
        }
        if let Some(max) = v.quorum_max {
            if max < v.quorum {
                self.d.error(
                    at,
                    "quorum_max",
                    format!("quorum_max {max} is less than quorum {}", v.quorum),
                );
            }
        }
        v.terminate_delay = duration(term.or(delay).unwrap_or(0));
        v.fork_delay = duration(fork.or(delay).unwrap_or(0));
        v
    }

    fn file(&mut self, name: String, at: &Pos, body: &[Stmt]) -> TrackFile {
        self.block_at = at.clone();
        let mut v = TrackFile {
            name,
            file: String::new(),
            weight: 1,
            reverse: false,
            init_file: None,
        };
        let mut have = false;
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "file" => {
                    have = true;
                    if let Some(t) = self.one(s) {
                        v.file = t.text.clone();
                    }
                }
                "weight" => {
                    if let Some((w, r)) = self.weight(s) {
                        v.weight = w;
                        v.reverse = r;
                    }
                }
                "init_file" => {
                    if !self.no_block(s) {
                        continue;
                    }
                    let mut init = InitFile {
                        value: 0,
                        overwrite: false,
                    };
                    let mut ok = true;
                    for (i, a) in s.args.iter().enumerate() {
                        if a.text == "overwrite" && i + 1 == s.args.len() {
                            init.overwrite = true;
                        } else if i == 0 {
                            match self.int_tok("init_file", a, -1_000_000_000, 1_000_000_000) {
                                Some(n) => init.value = n,
                                None => ok = false,
                            }
                        } else {
                            self.d.error(
                                &a.pos,
                                "init_file",
                                format!(
                                    "unexpected '{}' (expected 'init_file [VALUE] [overwrite]')",
                                    a.text
                                ),
                            );
                            ok = false;
                        }
                    }
                    if ok {
                        v.init_file = Some(init);
                    }
                }
                _ => self.other(s, "track_file", kw::FILE, &[], &[]),
            }
        }
        if !have {
            self.missing("track_file", &v.name, "file");
        }
        v
    }

    fn listen(&mut self, name: String, at: &Pos, body: &[Stmt]) -> TrackListen {
        self.block_at = at.clone();
        let mut v = TrackListen {
            name,
            ports: Vec::new(),
            address: None,
            weight: 0,
            stall: None,
            rise: 1,
            fall: 1,
        };
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "port" => {
                    if !self.no_block(s) {
                        continue;
                    }
                    if s.args.is_empty() {
                        self.d.error(s.pos(), "port", "'port' needs a port number");
                    }
                    for a in &s.args {
                        if let Some(p) = self.int_tok("port", a, 1, 65535) {
                            let p = p as u16;
                            if v.ports.contains(&p) {
                                self.d
                                    .warn(&a.pos, "port", format!("port {p} is listed twice"));
                            } else {
                                v.ports.push(p);
                            }
                        }
                    }
                }
                "address" => put(&mut v.address, self.ip(s)),
                "weight" => {
                    if let Some((w, r)) = self.weight(s) {
                        if r {
                            self.d.error(
                                s.pos(),
                                "weight",
                                "'reverse' is not supported in vrrp_track_listen",
                            );
                        }
                        v.weight = w;
                    }
                }
                "stall" => set(&mut v.stall, self.secs(s, 1).map(|m| Some(duration(m)))),
                "rise" => set(&mut v.rise, self.u32v(s, 1, 1_000_000)),
                "fall" => set(&mut v.fall, self.u32v(s, 1, 1_000_000)),
                _ => self.other(s, "vrrp_track_listen", kw::LISTEN, &[], &[]),
            }
        }
        if v.ports.is_empty() {
            self.missing("vrrp_track_listen", &v.name, "port");
        }
        v
    }

    // ----- vrrp_instance -------------------------------------------------------------

    fn instance(&mut self, body: &[Stmt], v: &mut RawInstance) {
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

    /// The lines of a list block (`unicast_peer { ... }`): each line is its keyword + args.
    fn list_block<'s>(&mut self, s: &'s Stmt) -> Vec<Vec<&'s Token>> {
        if let Some(a) = s.args.first() {
            self.d.error(
                &a.pos,
                s.name(),
                format!(
                    "unexpected '{}'; '{}' takes a {{ }} block of entries",
                    a.text,
                    s.name()
                ),
            );
        }
        let body = self.block(s);
        let mut out = Vec::new();
        for line in body {
            if line.block.is_some() {
                self.d.error(
                    line.pos(),
                    s.name(),
                    format!("unexpected {{ }} block inside '{}'", s.name()),
                );
                continue;
            }
            let mut toks = vec![&line.kw];
            toks.extend(line.args.iter());
            out.push(toks);
        }
        out
    }

    /// `ADDR [min_ttl N] [max_ttl N] [ADDR ...]`.
    fn peer_line(&mut self, toks: Vec<&Token>, peers: &mut Vec<(UnicastPeer, Pos)>) {
        let mut it = toks.into_iter().peekable();
        let mut cur: Option<(UnicastPeer, Pos)> = None;
        while let Some(t) = it.next() {
            match t.text.as_str() {
                o @ ("min_ttl" | "max_ttl") => {
                    let Some(v) = it.next() else {
                        self.d.error(
                            &t.pos,
                            "unicast_peer",
                            format!("'{o}' needs a value in 0..255"),
                        );
                        break;
                    };
                    let val = self.int_tok(o, v, 0, 255).map(|x| x as u8);
                    match (&mut cur, val) {
                        (Some((p, _)), Some(x)) => {
                            if o == "min_ttl" {
                                p.min_ttl = Some(x);
                            } else {
                                p.max_ttl = Some(x);
                            }
                        }
                        (None, _) => self.d.error(
                            &t.pos,
                            "unicast_peer",
                            format!("'{o}' must follow a peer address"),
                        ),
                        _ => {}
                    }
                }
                _ => {
                    if let Some(p) = cur.take() {
                        peers.push(p);
                    }
                    match t.text.parse::<IpAddr>() {
                        Ok(a) => {
                            cur = Some((
                                UnicastPeer {
                                    address: a,
                                    min_ttl: None,
                                    max_ttl: None,
                                },
                                t.pos.clone(),
                            ))
                        }
                        Err(_) => {
                            let msg = if ["weight", "dev", "label"].contains(&t.text.as_str()) {
                                format!(
                                    "unicast_peer option '{}' is not supported by xvrrp",
                                    t.text
                                )
                            } else {
                                format!("'{}' is not a valid IPv4 or IPv6 peer address", t.text)
                            };
                            self.d.error(&t.pos, "unicast_peer", msg);
                            // Skip this peer's options.
                            while it.peek().is_some_and(|n| n.text.parse::<IpAddr>().is_err()) {
                                it.next();
                            }
                        }
                    }
                }
            }
        }
        if let Some(p) = cur.take() {
            peers.push(p);
        }
    }

    /// `NAME [weight N [reverse]] [NAME ...]`.
    fn ref_line(
        &mut self,
        block: &str,
        toks: Vec<&Token>,
        allow_reverse: bool,
        out: &mut Vec<RawRef>,
    ) {
        let mut it = toks.into_iter().peekable();
        while let Some(t) = it.next() {
            if t.text == "weight" {
                let Some(last) = out.last_mut() else {
                    self.d.error(&t.pos, block, "'weight' must follow a name");
                    continue;
                };
                let Some(v) = it.next() else {
                    self.d
                        .error(&t.pos, block, "'weight' needs a value in -253..253");
                    break;
                };
                if let Some(w) = self.int_tok("weight", v, -253, 253) {
                    last.weight = Some(w as i32);
                }
                if it.peek().is_some_and(|n| n.text == "reverse") {
                    let r = it.next();
                    if allow_reverse {
                        last.reverse = true;
                    } else if let Some(r) = r {
                        self.d.error(
                            &r.pos,
                            block,
                            format!("'reverse' is not supported in {block}"),
                        );
                    }
                }
            } else if t.text == "reverse" {
                self.d
                    .error(&t.pos, block, "'reverse' must follow 'weight N'");
            } else {
                out.push(RawRef {
                    name: t.text.clone(),
                    weight: None,
                    reverse: false,
                    pos: t.pos.clone(),
                });
            }
        }
    }

    /// `ADDR[/PREFIX] [brd X] [dev IF] [scope S] [label L]`.
    fn vip_line(&mut self, toks: Vec<&Token>) -> Option<RawVip> {
        let (first, rest) = toks.split_first()?;
        let (addr_s, prefix_s) = match first.text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (first.text.as_str(), None),
        };
        let Ok(address) = addr_s.parse::<IpAddr>() else {
            self.d.error(
                &first.pos,
                "virtual_ipaddress",
                format!(
                    "'{}' is not an address (expected ADDR[/PREFIX])",
                    first.text
                ),
            );
            return None;
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let mut ok = true;
        let prefix_len = match prefix_s {
            None => None,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => Some(n),
                _ => {
                    self.d.error(
                        &first.pos,
                        "virtual_ipaddress",
                        format!("'{p}' is not a prefix length in 0..{max}"),
                    );
                    ok = false;
                    None
                }
            },
        };
        let mut vip = RawVip {
            address,
            prefix_len,
            dev: None,
            brd: None,
            scope: None,
            label: None,
            pos: first.pos.clone(),
        };
        let mut it = rest.iter();
        while let Some(opt) = it.next() {
            let o = opt.text.as_str();
            if !["dev", "brd", "broadcast", "scope", "label"].contains(&o) {
                let msg = if [
                    "peer",
                    "home",
                    "-nodad",
                    "nodad",
                    "noprefixroute",
                    "autojoin",
                    "no_track",
                    "track_group",
                    "preferred_lft",
                ]
                .contains(&o)
                {
                    format!("virtual_ipaddress option '{o}' is not supported by xvrrp")
                } else {
                    let mut m = format!("unknown virtual_ipaddress option '{o}'");
                    if let Some(s) = kw::suggest(o, &["dev", "brd", "scope", "label"]) {
                        m.push_str(&format!("; did you mean '{s}'?"));
                    }
                    m
                };
                self.d.error(&opt.pos, "virtual_ipaddress", msg);
                ok = false;
                // Skip its probable value.
                it.next();
                continue;
            }
            let Some(val) = it.next() else {
                self.d.error(
                    &opt.pos,
                    "virtual_ipaddress",
                    format!("'{o}' needs a value"),
                );
                ok = false;
                break;
            };
            match o {
                "dev" => vip.dev = Some(val.text.clone()),
                "label" => vip.label = Some(val.text.clone()),
                "scope" => {
                    let s = val.text.to_ascii_lowercase();
                    if ["global", "site", "link", "host", "nowhere"].contains(&s.as_str())
                        || s.parse::<u8>().is_ok()
                    {
                        vip.scope = Some(s);
                    } else {
                        self.d.error(
                            &val.pos,
                            "virtual_ipaddress",
                            format!(
                                "'{}' is not a scope (global, site, link, host, nowhere or 0..255)",
                                val.text
                            ),
                        );
                        ok = false;
                    }
                }
                _ => {
                    // brd / broadcast
                    if !address.is_ipv4() {
                        self.d.error(
                            &opt.pos,
                            "virtual_ipaddress",
                            "'brd' applies to IPv4 addresses only",
                        );
                        ok = false;
                    } else {
                        match val.text.as_str() {
                            "+" => vip.brd = Some(Broadcast::Auto),
                            "-" => vip.brd = Some(Broadcast::Off),
                            t => match t.parse::<Ipv4Addr>() {
                                Ok(a) => vip.brd = Some(Broadcast::Addr(a)),
                                Err(_) => {
                                    self.d.error(
                                        &val.pos,
                                        "virtual_ipaddress",
                                        format!("'{t}' is not a broadcast address ('+', '-' or an IPv4 address)"),
                                    );
                                    ok = false;
                                }
                            },
                        }
                    }
                }
            }
        }
        ok.then_some(vip)
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

    fn digitalocean(&mut self, at: Pos, body: &[Stmt]) -> RawDo {
        let mut v = RawDo {
            at,
            reserved_ip: None,
            token_file: None,
            api_url: None,
            metadata_url: None,
            reconcile_interval: None,
        };
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "reserved_ip" => {
                    if let Some(t) = self.one(s) {
                        match t.text.parse::<Ipv4Addr>() {
                            Ok(a) => v.reserved_ip = Some(a),
                            Err(_) => self.d.error(
                                &t.pos,
                                "reserved_ip",
                                format!("'{}' is not a valid IPv4 address", t.text),
                            ),
                        }
                    }
                }
                "token_file" => {
                    if let Some(t) = self.one(s) {
                        v.token_file = Some((PathBuf::from(&t.text), t.pos.clone()));
                    }
                }
                "api_url" => {
                    if let Some(t) = self.one(s) {
                        if let Err(e) = check_url(&t.text) {
                            self.d.error(&t.pos, "api_url", e);
                        } else {
                            v.api_url =
                                Some((t.text.trim_end_matches('/').to_string(), t.pos.clone()));
                        }
                    }
                }
                "metadata_url" => {
                    if let Some(t) = self.one(s) {
                        if let Err(e) = check_url(&t.text) {
                            self.d.error(&t.pos, "metadata_url", e);
                        } else {
                            v.metadata_url =
                                Some((t.text.trim_end_matches('/').to_string(), t.pos.clone()));
                        }
                    }
                }
                "reconcile_interval" => put(&mut v.reconcile_interval, self.u32v(s, 1, 86_400)),
                _ => self.other(s, "digitalocean", kw::DIGITALOCEAN, &[], &[]),
            }
        }
        v
    }
}

/// Checks an `http://` or `https://` URL with a host and no blanks.
pub(crate) fn check_url(full: &str) -> Result<(), String> {
    // Error messages never echo what could be a credential: a userinfo part (`user:secret@`) is
    // refused outright and the query string is left out of every message.
    let u = full.split(['?', '#']).next().unwrap_or(full);
    let authority_of = |r: &str| r.split('/').next().unwrap_or("").to_owned();
    let after_scheme = full.split_once("://").map(|(_, r)| r).unwrap_or(full);
    if authority_of(after_scheme.split(['?', '#']).next().unwrap_or("")).contains('@') {
        return Err(
            "URLs with credentials (user:password@host) are not accepted; the API token comes from \
             token_file or the environment"
                .to_owned(),
        );
    }
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("'{u}' is not an http:// or https:// URL"))?;
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{u}' is not a valid URL (blanks or control characters)"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(format!("'{u}' is not a valid URL (bad host)")),
            },
            None => return Err(format!("'{u}' is not a valid URL (bad host)")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', '[', ']']) {
        return Err(format!("'{u}' is not a valid URL (missing or bad host)"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(format!("'{u}' is not a valid URL (bad port '{p}')"));
        }
    }
    Ok(())
}

/// Stores `v` in the optional `slot` when present.
fn put<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

/// Stores `v` in `slot` when present (a helper for `Option` results).
fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::path::Path;

    use super::*;
    use crate::config::{parse_str_with_env, Config, Loaded};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(text: &str) -> Loaded {
        parse_str_with_env("k.conf", text, Path::new("/nonexistent"), &no_env)
            .unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
    }

    fn warnings(l: &Loaded) -> Vec<String> {
        l.warnings.iter().map(ToString::to_string).collect()
    }

    fn first_error(text: &str) -> String {
        match parse_str_with_env("k.conf", text, Path::new("/nonexistent"), &no_env) {
            Ok(l) => panic!("expected an error, got {:#?}", l.config),
            Err(e) => e.errors[0].to_string(),
        }
    }

    const INST: &str = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n";

    #[test]
    fn decimal_seconds_arrive_exactly() {
        let l = load(&format!(
            "global_defs {{\n vrrp_garp_interval 0.000250\n vrrp_startup_delay 2.5\n}}\n\
             vrrp_script s {{\n script /bin/true\n interval 1.5\n timeout 0.3\n}}\n\
             vrrp_track_process p {{\n process nginx\n terminate_delay 0.000001\n fork_delay 0.1\n}}\n\
             vrrp_track_listen l {{\n port 80\n stall 0.25\n}}\n\
             {INST} version 3\n advert_int 0.35\n preempt_delay 0.7\n gna_interval 0.0005\n}}\n"
        ));
        assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
        let c: &Config = &l.config;
        let g = &c.global_defs;
        assert_eq!(g.vrrp_garp_interval, Duration::from_micros(250));
        assert_eq!(g.vrrp_startup_delay, Duration::from_millis(2500));
        let s = &c.vrrp_scripts[0];
        assert_eq!(s.interval, Duration::from_millis(1500));
        assert_eq!(s.timeout, Duration::from_millis(300));
        let p = &c.track_processes[0];
        assert_eq!(p.terminate_delay, Duration::from_micros(1));
        assert_eq!(p.fork_delay, Duration::from_millis(100));
        assert_eq!(c.track_listens[0].stall, Some(Duration::from_millis(250)));
        let i = &c.instances[0];
        assert_eq!(i.advert_int, Duration::from_millis(350));
        assert_eq!(i.advert_int_centis(), 35);
        assert_eq!(i.preempt_delay, Duration::from_millis(700));
        assert_eq!(i.garp_interval, Duration::from_micros(250), "from global");
        assert_eq!(i.gna_interval, Duration::from_micros(500));
        assert_eq!(i.garp_master_delay, Duration::from_secs(5));

        // Printed back as written (what the f64 model printed), and JSON as before.
        let r = c.render();
        for want in [
            "vrrp_garp_interval 0.00025\n",
            "vrrp_startup_delay 2.5\n",
            "interval 1.5\n",
            "timeout 0.3\n",
            "terminate_delay 0.000001\n",
            "fork_delay 0.1\n",
            "stall 0.25\n",
            "advert_int 0.35\n",
            "preempt_delay 0.7\n",
            "garp_master_delay 5\n",
            "garp_master_refresh 0\n",
            "gna_interval 0.0005\n",
        ] {
            assert!(r.contains(want), "{want:?} not in:\n{r}");
        }
        let j: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(j["instances"][0]["advert_int"], 0.35);
        assert_eq!(j["instances"][0]["garp_master_delay"], 5);
        assert_eq!(j["track_listens"][0]["stall"], 0.25);
        assert_eq!(j["vrrp_scripts"][0]["interval"], 1.5);
    }

    #[test]
    fn secs_prints_what_the_f64_model_printed() {
        let mut m: u64 = 0;
        let mut step: u64 = 1;
        while m <= MAX_SECS * MICROS {
            for x in [m, m + 1, m + 9, m + 250, m + 999_999, m.saturating_sub(1)] {
                let old = format!("{}", x as f64 / MICROS as f64);
                assert_eq!(Secs(duration(x)).to_string(), old, "{x} µs");
            }
            m += step;
            step = step * 3 / 2 + 7;
        }
        for int in [0, 1, 7, 255, 86_400, 123_456_789, 999_999_999] {
            for frac in (0..MICROS).step_by(37) {
                let x = int * MICROS + frac;
                let old = format!("{}", x as f64 / MICROS as f64);
                assert_eq!(Secs(duration(x)).to_string(), old, "{x} µs");
            }
        }
        assert_eq!(Secs(Duration::from_nanos(1_500)).to_string(), "0.0000015");
        assert_eq!(Secs(Duration::from_secs(86_400)).to_string(), "86400");
    }

    #[test]
    fn script_interval_and_timeout_are_brought_into_range_with_a_warning() {
        let l = load(
            "vrrp_script s {\n script /bin/true\n interval 0.005\n timeout 100000\n}\n\
             vrrp_script t {\n script /bin/true\n interval 86400.000001\n}\n\
             vrrp_script u {\n script /bin/true\n interval 0.01\n timeout 86400\n}\n",
        );
        let s = &l.config.vrrp_scripts;
        assert_eq!(s[0].interval, Duration::from_millis(10));
        assert_eq!(s[0].timeout, Duration::from_secs(86_400));
        assert_eq!(s[1].interval, Duration::from_secs(86_400));
        assert_eq!(
            s[1].timeout,
            Duration::from_secs(86_400),
            "the interval, as used"
        );
        assert_eq!(s[2].interval, Duration::from_millis(10), "bounds are kept");
        assert_eq!(s[2].timeout, Duration::from_secs(86_400));
        assert_eq!(
            warnings(&l),
            [
                "k.conf:3:11: interval: '0.005' is below the minimum of 0.01 s for a vrrp_script; using 0.01 s",
                "k.conf:4:10: timeout: '100000' is above the maximum of 86400 s for a vrrp_script; using 86400 s",
                "k.conf:8:11: interval: '86400.000001' is above the maximum of 86400 s for a vrrp_script; using 86400 s",
            ]
        );
        // Zero stays an error, as before.
        assert_eq!(
            first_error("vrrp_script s {\n script /bin/true\n interval 0\n}\n"),
            "k.conf:3:11: interval: '0' is out of range; expected seconds greater than 0, at most 1000000000"
        );
    }

    #[test]
    fn process_delays_are_capped_at_a_day_with_a_warning() {
        let l = load(
            "vrrp_track_process p {\n process a\n delay 90000\n}\n\
             vrrp_track_process q {\n process b\n terminate_delay 86400\n fork_delay 1000000000\n}\n",
        );
        let p = &l.config.track_processes;
        let day = Duration::from_secs(86_400);
        assert_eq!((p[0].terminate_delay, p[0].fork_delay), (day, day));
        assert_eq!((p[1].terminate_delay, p[1].fork_delay), (day, day));
        assert_eq!(
            warnings(&l),
            [
                "k.conf:3:8: delay: '90000' is above the maximum of 86400 s for a vrrp_track_process delay; using 86400 s",
                "k.conf:8:13: fork_delay: '1000000000' is above the maximum of 86400 s for a vrrp_track_process delay; using 86400 s",
            ]
        );
    }

    /// The daemon's former clamps of `advert_int`, `preempt_delay`, `garp_interval`,
    /// `gna_interval` (1e9 s) and `stall` (0..1e9 s) are the parser's bounds: at most 1e9 s, never
    /// negative or NaN; `stall` and `advert_int` more than 0.
    #[test]
    fn every_duration_is_bounded_by_the_parser() {
        let l = load(&format!(
            "vrrp_track_listen l {{\n port 80\n stall 1000000000\n}}\n\
             {INST} garp_interval 1000000000\n}}\n"
        ));
        assert_eq!(
            l.config.track_listens[0].stall,
            Some(Duration::from_secs(1_000_000_000))
        );
        assert_eq!(
            l.config.instances[0].garp_interval,
            Duration::from_secs(1_000_000_000)
        );
        for (text, want) in [
            (
                format!("{INST} gna_interval 1000000000.000001\n}}\n"),
                "k.conf:4:15: gna_interval: '1000000000.000001' is out of range; expected seconds 0 or more, at most 1000000000",
            ),
            (
                "vrrp_track_listen l {\n port 80\n stall 0\n}\n".to_owned(),
                "k.conf:3:8: stall: '0' is out of range; expected seconds greater than 0, at most 1000000000",
            ),
            (
                format!("{INST} advert_int -1\n}}\n"),
                "k.conf:4:13: advert_int: '-1' is not a number of seconds (digits with at most 6 decimals, e.g. 1 or 0.5)",
            ),
            (
                format!("{INST} preempt_delay 1000.000001\n}}\n"),
                "k.conf:4:2: preempt_delay: must be at most 1000 seconds",
            ),
        ] {
            assert_eq!(first_error(&text), want, "for:\n{text}");
        }
    }
}

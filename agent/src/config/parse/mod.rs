//! Interprets the statement tree: one function per block, values checked where they are read.
//! The result is a "raw" configuration: optional fields with positions, so that the semantic
//! pass ([`super::validate`]) can fill defaults and report cross-field errors at the right place.
//!
//! This file holds the [`Parser`] core (the top level, unknown keywords, block shapes, duplicate
//! warnings) and the duration helpers; the statement value readers are in `value`, the blocks in
//! `global`, `track`, `instance` (with its list blocks in `lists`) and `cloud`, the
//! [`Raw`] types in `raw`.

use std::collections::HashMap;
use std::time::Duration;

use super::error::{Diags, Pos};
use super::keywords as kw;
use super::lexer::Kind;
use super::tree::Stmt;

mod cloud;
mod global;
mod instance;
mod lists;
mod raw;
#[cfg(test)]
mod tests;
mod track;
mod value;

pub(crate) use cloud::plain_http_to_remote;
pub(crate) use raw::{Named, Raw, RawDo, RawInstance, RawRef, RawVip};

/// A value and where it was written.
pub(crate) type Sp<T> = Option<(T, Pos)>;

/// Most seconds accepted by any duration keyword (about 31 years).
const MAX_SECS: u64 = 1_000_000_000;
/// Microseconds per second.
pub(crate) const MICROS: u64 = 1_000_000;

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

impl Parser<'_> {
    /// Parses the top level.
    pub(super) fn top(&mut self, stmts: &[Stmt]) -> Raw {
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

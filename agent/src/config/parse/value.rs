//! Statement value readers shared by every block: single values, flags, integers, seconds,
//! addresses, commands, users and `weight N [reverse]`.

use std::net::IpAddr;

use super::super::lexer::Token;
use super::super::model::{ScriptUser, Secs};
use super::super::tree::Stmt;
use super::{duration, parse_micros, Parser, MAX_SECS, MICROS};

fn is_true_false(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => Some(true),
        "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

impl Parser<'_> {
    /// The single value of `keyword VALUE`.
    pub(super) fn one<'s>(&mut self, s: &'s Stmt) -> Option<&'s Token> {
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
    pub(super) fn flag(&mut self, s: &Stmt) -> Option<bool> {
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
    pub(super) fn bare(&mut self, s: &Stmt) -> bool {
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
    pub(super) fn int_tok(&mut self, keyword: &str, t: &Token, min: i64, max: i64) -> Option<i64> {
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

    pub(super) fn u32v(&mut self, s: &Stmt, min: u32, max: u32) -> Option<u32> {
        self.int(s, i64::from(min), i64::from(max))
            .and_then(|v| u32::try_from(v).ok())
    }

    pub(super) fn u8v(&mut self, s: &Stmt, min: u8, max: u8) -> Option<u8> {
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
    pub(super) fn secs(&mut self, s: &Stmt, min_micros: u64) -> Option<u64> {
        let t = self.one(s)?;
        self.secs_tok(s.name(), t, min_micros)
    }

    /// `keyword SECONDS` (at least 1 µs when `lo > 0`, else 0 or more), then brought into
    /// `lo..=hi` with a warning at the value when it is outside: the range the consumer can use.
    pub(super) fn secs_clamped(&mut self, s: &Stmt, lo: u64, hi: u64, what: &str) -> Option<u64> {
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

    pub(super) fn ip(&mut self, s: &Stmt) -> Option<IpAddr> {
        let t = self.one(s)?;
        self.ip_tok(s.name(), t)
    }

    /// A command line: all arguments (quoted or not) joined by single blanks.
    pub(super) fn command(&mut self, s: &Stmt) -> Option<String> {
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
    pub(super) fn user(&mut self, s: &Stmt) -> Option<ScriptUser> {
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
    pub(super) fn weight(&mut self, s: &Stmt) -> Option<(i32, bool)> {
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
}

//! The top-level tracker blocks: `vrrp_script`, `vrrp_track_process`, `track_file` /
//! `vrrp_track_file` and `vrrp_track_listen`.

use std::collections::HashMap;
use std::time::Duration;

use super::super::error::Pos;
use super::super::keywords as kw;
use super::super::model::{InitFile, ParamMatch, TrackFile, TrackListen, TrackProcess, VrrpScript};
use super::super::tree::Stmt;
use super::{duration, put, set, Parser, MICROS};

/// Shortest `vrrp_script` `interval` / `timeout` used (smaller values are raised to it, with a
/// warning): 0.01 s.
const SCRIPT_MIN_MICROS: u64 = 10_000;
/// Longest `vrrp_script` `interval` / `timeout` used (larger values are lowered to it, with a
/// warning): one day.
const SCRIPT_MAX_MICROS: u64 = 86_400 * MICROS;
/// Longest `vrrp_track_process` `delay` / `terminate_delay` / `fork_delay` used (larger values are
/// lowered to it, with a warning): one day.
const PROCESS_DELAY_MAX_MICROS: u64 = 86_400 * MICROS;

impl Parser<'_> {
    pub(super) fn script(&mut self, name: String, body: &[Stmt]) -> VrrpScript {
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

    pub(super) fn process(&mut self, name: String, at: &Pos, body: &[Stmt]) -> TrackProcess {
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

    /// A `vrrp_track_process` delay: 0 or more seconds, at most a day.
    fn process_delay(&mut self, s: &Stmt) -> Option<u64> {
        self.secs_clamped(
            s,
            0,
            PROCESS_DELAY_MAX_MICROS,
            "for a vrrp_track_process delay",
        )
    }

    pub(super) fn file(&mut self, name: String, at: &Pos, body: &[Stmt]) -> TrackFile {
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

    pub(super) fn listen(&mut self, name: String, at: &Pos, body: &[Stmt]) -> TrackListen {
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
}

//! The list blocks of `vrrp_instance`: `unicast_peer`, `virtual_ipaddress[_excluded]` and the
//! `track_*` references, one entry line at a time.

use std::net::{IpAddr, Ipv4Addr};

use super::super::error::Pos;
use super::super::keywords as kw;
use super::super::lexer::Token;
use super::super::model::{Broadcast, UnicastPeer};
use super::super::tree::Stmt;
use super::raw::{RawRef, RawVip};
use super::Parser;

impl Parser<'_> {
    /// The lines of a list block (`unicast_peer { ... }`): each line is its keyword + args.
    pub(super) fn list_block<'s>(&mut self, s: &'s Stmt) -> Vec<Vec<&'s Token>> {
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
    pub(super) fn peer_line(&mut self, toks: Vec<&Token>, peers: &mut Vec<(UnicastPeer, Pos)>) {
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
    pub(super) fn ref_line(
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
    pub(super) fn vip_line(&mut self, toks: Vec<&Token>) -> Option<RawVip> {
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
}

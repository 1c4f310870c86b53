//! The effective-config printer: keepalived syntax with every default written out.

use std::fmt::Write as _;

use super::model::{
    Broadcast, Config, NotifyFifo, ParamMatch, ScriptUser, Secs, TokenSource, TrackRef,
    VirtualAddress, VrrpInstance, REDACTED,
};

/// Quotes `s` when it would not lex back as one bare word.
fn word(s: &str) -> String {
    let bare = !s.is_empty()
        && !s.starts_with(['#', '!', '"'])
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '{' | '}' | '\\'));
    if bare {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// Always quotes `s` (escaping `"` and `\`).
fn quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('"');
    o
}

fn user(u: &ScriptUser) -> String {
    match &u.group {
        Some(g) => format!("{} {}", word(&u.user), word(g)),
        None => word(&u.user),
    }
}

struct W {
    out: String,
    secrets: bool,
}

impl W {
    fn line(&mut self, depth: usize, s: impl AsRef<str>) {
        for _ in 0..depth {
            self.out.push_str("    ");
        }
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    /// A bare flag: the keyword when on, a comment when off.
    fn flag(&mut self, depth: usize, kw: &str, on: bool) {
        if on {
            self.line(depth, kw);
        } else {
            self.line(depth, format!("# {kw} (off)"));
        }
    }

    fn bool(&mut self, depth: usize, kw: &str, v: bool) {
        self.line(depth, format!("{kw} {v}"));
    }

    fn fifo(&mut self, kw: &str, f: &NotifyFifo) {
        match &f.owner {
            Some(u) => self.line(1, format!("{kw} {} {}", word(&f.path), user(u))),
            None => self.line(1, format!("{kw} {}", word(&f.path))),
        }
        if let Some(s) = &f.script {
            self.line(1, format!("{kw}_script {}", quoted(s)));
        }
    }

    fn refs(&mut self, kw: &str, list: &[TrackRef], reverse_ok: bool) {
        if list.is_empty() {
            return;
        }
        self.line(1, format!("{kw} {{"));
        for r in list {
            let rev = if r.reverse && reverse_ok {
                " reverse"
            } else {
                ""
            };
            self.line(2, format!("{} weight {}{rev}", word(&r.name), r.weight));
        }
        self.line(1, "}");
    }

    fn vips(&mut self, kw: &str, list: &[VirtualAddress]) {
        if list.is_empty() {
            return;
        }
        self.line(1, format!("{kw} {{"));
        for v in list {
            let mut l = format!("{}/{} dev {}", v.address, v.prefix_len, word(&v.dev));
            match &v.brd {
                Some(Broadcast::Addr(a)) => {
                    let _ = write!(l, " brd {a}");
                }
                Some(Broadcast::Auto) => l.push_str(" brd +"),
                Some(Broadcast::Off) => l.push_str(" brd -"),
                None => {}
            }
            let _ = write!(l, " scope {}", v.scope);
            if let Some(lb) = &v.label {
                let _ = write!(l, " label {}", word(lb));
            }
            self.line(2, l);
        }
        self.line(1, "}");
    }

    fn instance(&mut self, i: &VrrpInstance) {
        self.line(0, format!("vrrp_instance {} {{", word(&i.name)));
        let state = match i.state {
            super::model::InitialState::Master => "MASTER",
            super::model::InitialState::Backup => "BACKUP",
        };
        self.line(1, format!("state {state}"));
        self.line(1, format!("interface {}", word(&i.interface)));
        self.line(1, format!("virtual_router_id {}", i.virtual_router_id));
        self.line(1, format!("priority {}", i.priority));
        self.line(1, format!("advert_int {}", Secs(i.advert_int)));
        self.line(1, format!("version {}", i.version));
        self.line(1, format!("# family {}", i.family));
        self.line(1, if i.nopreempt { "nopreempt" } else { "preempt" });
        self.line(1, format!("preempt_delay {}", Secs(i.preempt_delay)));
        if let Some(a) = i.mcast_src_ip {
            self.line(1, format!("mcast_src_ip {a}"));
        }
        if let Some(a) = i.unicast_src_ip {
            self.line(1, format!("unicast_src_ip {a}"));
        }
        if !i.unicast_peers.is_empty() {
            self.line(1, "unicast_peer {");
            for p in &i.unicast_peers {
                let mut l = p.address.to_string();
                if let Some(t) = p.min_ttl {
                    let _ = write!(l, " min_ttl {t}");
                }
                if let Some(t) = p.max_ttl {
                    let _ = write!(l, " max_ttl {t}");
                }
                self.line(2, l);
            }
            self.line(1, "}");
        }
        self.line(1, format!("unicast_ttl {}", i.unicast_ttl));
        self.flag(1, "check_unicast_src", i.check_unicast_src);
        if let Some(a) = &i.authentication {
            self.line(1, "authentication {");
            self.line(2, "auth_type PASS");
            let pass = if self.secrets {
                word(a.auth_pass.expose())
            } else {
                REDACTED.to_string()
            };
            self.line(2, format!("auth_pass {pass}"));
            self.line(1, "}");
        }
        self.vips("virtual_ipaddress", &i.virtual_ipaddress);
        self.vips("virtual_ipaddress_excluded", &i.virtual_ipaddress_excluded);
        self.refs("track_script", &i.track_script, true);
        if !i.track_interface.is_empty() {
            self.line(1, "track_interface {");
            for t in &i.track_interface {
                let rev = if t.reverse { " reverse" } else { "" };
                self.line(2, format!("{} weight {}{rev}", word(&t.name), t.weight));
            }
            self.line(1, "}");
        }
        self.refs("track_file", &i.track_file, true);
        self.refs("track_process", &i.track_process, true);
        self.refs("track_listen", &i.track_listen, false);
        for (kw, v) in [
            ("notify_master", &i.notify_master),
            ("notify_backup", &i.notify_backup),
            ("notify_fault", &i.notify_fault),
            ("notify_stop", &i.notify_stop),
            ("notify", &i.notify),
        ] {
            if let Some(c) = v {
                self.line(1, format!("{kw} {}", quoted(c)));
            }
        }
        self.line(1, format!("notify_timeout {}", Secs(i.notify_timeout)));
        self.line(
            1,
            format!("garp_master_delay {}", Secs(i.garp_master_delay)),
        );
        self.line(1, format!("garp_master_repeat {}", i.garp_master_repeat));
        self.line(
            1,
            format!("garp_master_refresh {}", Secs(i.garp_master_refresh)),
        );
        self.line(
            1,
            format!(
                "garp_master_refresh_repeat {}",
                i.garp_master_refresh_repeat
            ),
        );
        self.line(1, format!("garp_interval {}", Secs(i.garp_interval)));
        self.line(1, format!("gna_interval {}", Secs(i.gna_interval)));
        self.bool(1, "skip_check_adv_addr", i.skip_check_adv_addr);
        self.bool(1, "strict_mode", i.strict_mode);
        self.line(1, if i.accept { "accept" } else { "no_accept" });
        self.flag(1, "dont_track_primary", i.dont_track_primary);
        self.bool(1, "lower_prio_no_advert", i.lower_prio_no_advert);
        self.bool(1, "v3_checksum_rfc9568", i.v3_checksum_rfc9568);
        self.bool(1, "higher_prio_send_advert", i.higher_prio_send_advert);
        if let Some(d) = &i.digitalocean {
            self.line(1, "digitalocean {");
            self.line(2, format!("reserved_ip {}", d.reserved_ip));
            match &d.token_source {
                TokenSource::File(p) => {
                    self.line(2, format!("token_file {}", word(&p.to_string_lossy())))
                }
                TokenSource::Env(v) => {
                    self.line(2, format!("# token from the environment variable {v}"))
                }
            }
            self.line(2, format!("api_url {}", word(&d.api_url)));
            self.line(2, format!("metadata_url {}", word(&d.metadata_url)));
            self.line(
                2,
                format!("reconcile_interval {}", Secs(d.reconcile_interval)),
            );
            if d.insecure_http {
                self.line(2, "insecure_http");
            }
            self.line(1, "}");
        }
        self.line(0, "}");
    }
}

/// Renders `c`; secrets are written only when `secrets` is true.
pub(crate) fn render(c: &Config, secrets: bool) -> String {
    let mut w = W {
        out: String::new(),
        secrets,
    };
    w.line(
        0,
        "! Effective configuration printed by xvrrp: includes expanded, every default written out.",
    );
    if !secrets {
        w.line(0, "! Secrets are shown as <redacted>.");
    }
    w.line(0, "");
    let g = &c.global_defs;
    w.line(0, "global_defs {");
    match &g.router_id {
        Some(r) => w.line(1, format!("router_id {}", word(r))),
        None => w.line(1, "# router_id (default: the host name)"),
    }
    w.line(1, format!("vrrp_version {}", g.vrrp_version));
    match &g.script_user {
        Some(u) => w.line(1, format!("script_user {}", user(u))),
        None => w.line(
            1,
            "# script_user (default: keepalived_script if it exists, else root)",
        ),
    }
    w.flag(1, "enable_script_security", g.enable_script_security);
    w.line(
        1,
        format!("vrrp_garp_master_delay {}", Secs(g.vrrp_garp_master_delay)),
    );
    w.line(
        1,
        format!("vrrp_garp_master_repeat {}", g.vrrp_garp_master_repeat),
    );
    w.line(
        1,
        format!(
            "vrrp_garp_master_refresh {}",
            Secs(g.vrrp_garp_master_refresh)
        ),
    );
    w.line(
        1,
        format!(
            "vrrp_garp_master_refresh_repeat {}",
            g.vrrp_garp_master_refresh_repeat
        ),
    );
    w.line(
        1,
        format!("vrrp_garp_interval {}", Secs(g.vrrp_garp_interval)),
    );
    w.line(
        1,
        format!("vrrp_gna_interval {}", Secs(g.vrrp_gna_interval)),
    );
    w.flag(1, "vrrp_strict", g.vrrp_strict);
    w.bool(1, "vrrp_skip_check_adv_addr", g.vrrp_skip_check_adv_addr);
    w.flag(1, "vrrp_check_unicast_src", g.vrrp_check_unicast_src);
    w.bool(1, "vrrp_lower_prio_no_advert", g.vrrp_lower_prio_no_advert);
    w.bool(1, "vrrp_v3_checksum_rfc9568", g.vrrp_v3_checksum_rfc9568);
    w.bool(
        1,
        "vrrp_higher_prio_send_advert",
        g.vrrp_higher_prio_send_advert,
    );
    w.line(1, format!("vrrp_mcast_group4 {}", g.vrrp_mcast_group4));
    w.line(1, format!("vrrp_mcast_group6 {}", g.vrrp_mcast_group6));
    w.line(
        1,
        format!("vrrp_startup_delay {}", Secs(g.vrrp_startup_delay)),
    );
    w.line(1, format!("notify_timeout {}", Secs(g.notify_timeout)));
    match g.metrics_address {
        Some(a) => w.line(1, format!("metrics_address {a}")),
        None => w.line(1, "# metrics_address (default: no metrics served)"),
    }
    if let Some(f) = &g.notify_fifo {
        w.fifo("notify_fifo", f);
    }
    if let Some(f) = &g.vrrp_notify_fifo {
        w.fifo("vrrp_notify_fifo", f);
    }
    w.line(0, "}");

    for s in &c.vrrp_scripts {
        w.line(0, "");
        w.line(0, format!("vrrp_script {} {{", word(&s.name)));
        w.line(1, format!("script {}", quoted(&s.script)));
        w.line(1, format!("interval {}", Secs(s.interval)));
        w.line(1, format!("timeout {}", Secs(s.timeout)));
        let rev = if s.reverse { " reverse" } else { "" };
        w.line(1, format!("weight {}{rev}", s.weight));
        w.line(1, format!("rise {}", s.rise));
        w.line(1, format!("fall {}", s.fall));
        if let Some(u) = &s.user {
            w.line(1, format!("user {}", user(u)));
        }
        w.flag(1, "init_fail", s.init_fail);
        w.line(0, "}");
    }
    for p in &c.track_processes {
        w.line(0, "");
        w.line(0, format!("vrrp_track_process {} {{", word(&p.name)));
        match &p.params {
            Some(a) => w.line(1, format!("process {} {a}", word(&p.process))),
            None => w.line(1, format!("process {}", word(&p.process))),
        }
        let m = match p.param_match {
            ParamMatch::Exact => "exact",
            ParamMatch::Partial => "partial",
            ParamMatch::Initial => "initial",
        };
        w.line(1, format!("param_match {m}"));
        w.flag(1, "full_command", p.full_command);
        let rev = if p.reverse { " reverse" } else { "" };
        w.line(1, format!("weight {}{rev}", p.weight));
        w.line(1, format!("quorum {}", p.quorum));
        if let Some(q) = p.quorum_max {
            w.line(1, format!("quorum_max {q}"));
        }
        w.line(1, format!("terminate_delay {}", Secs(p.terminate_delay)));
        w.line(1, format!("fork_delay {}", Secs(p.fork_delay)));
        w.line(0, "}");
    }
    for f in &c.track_files {
        w.line(0, "");
        w.line(0, format!("track_file {} {{", word(&f.name)));
        w.line(1, format!("file {}", word(&f.file)));
        let rev = if f.reverse { " reverse" } else { "" };
        w.line(1, format!("weight {}{rev}", f.weight));
        if let Some(i) = &f.init_file {
            let ow = if i.overwrite { " overwrite" } else { "" };
            w.line(1, format!("init_file {}{ow}", i.value));
        }
        w.line(0, "}");
    }
    for l in &c.track_listens {
        w.line(0, "");
        w.line(0, format!("vrrp_track_listen {} {{", word(&l.name)));
        for p in &l.ports {
            w.line(1, format!("port {p}"));
        }
        if let Some(a) = l.address {
            w.line(1, format!("address {a}"));
        }
        w.line(1, format!("weight {}", l.weight));
        if let Some(s) = l.stall {
            w.line(1, format!("stall {}", Secs(s)));
        }
        w.line(1, format!("rise {}", l.rise));
        w.line(1, format!("fall {}", l.fall));
        w.line(0, "}");
    }
    for i in &c.instances {
        w.line(0, "");
        w.instance(i);
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(word("eth0"), "eth0");
        assert_eq!(word("a b"), "\"a b\"");
        assert_eq!(word("#x"), "\"#x\"");
        assert_eq!(word(""), "\"\"");
        assert_eq!(quoted("a\"b\\"), "\"a\\\"b\\\\\"");
    }
}

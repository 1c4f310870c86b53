//! Property tests: generated configurations round-trip through the printer, and no input makes
//! the parser panic.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;
use xvrrp::config;

fn no_env(_: &str) -> Option<String> {
    None
}

#[derive(Debug, Clone)]
struct Script {
    interval_ms: u32,
    timeout: Option<u8>,
    weight: i32,
    reverse: bool,
    rise: u8,
    fall: u8,
}

#[derive(Debug, Clone)]
struct Inst {
    iface: u8,
    state: Option<bool>,
    priority: Option<u8>,
    v3: Option<bool>,
    advert: u16,
    nopreempt: bool,
    peers: Vec<[u8; 2]>,
    vips: Vec<([u8; 2], Option<u8>, bool)>,
    auth: Option<String>,
    tracks: Vec<(usize, Option<i32>)>,
    notify: Option<String>,
    garp: Option<u8>,
}

fn script() -> impl Strategy<Value = Script> {
    (
        1u32..20_000,
        proptest::option::of(1u8..30),
        -253i32..=253,
        any::<bool>(),
        1u8..5,
        1u8..5,
    )
        .prop_map(
            |(interval_ms, timeout, weight, reverse, rise, fall)| Script {
                interval_ms,
                timeout,
                weight,
                reverse,
                rise,
                fall,
            },
        )
}

fn inst() -> impl Strategy<Value = Inst> {
    (
        (
            0u8..3,
            proptest::option::of(any::<bool>()),
            proptest::option::of(1u8..=255),
            proptest::option::of(any::<bool>()),
            1u16..=255,
            any::<bool>(),
        ),
        proptest::collection::vec(any::<[u8; 2]>(), 0..3),
        proptest::collection::vec(
            (
                any::<[u8; 2]>(),
                proptest::option::of(8u8..=32),
                any::<bool>(),
            ),
            0..3,
        ),
        proptest::option::of("[a-zA-Z0-9#!{}\" ]{1,12}"),
        proptest::collection::vec((0usize..8, proptest::option::of(-253i32..=253)), 0..3),
        proptest::option::of("/[a-z/ .-]{0,20}"),
        proptest::option::of(0u8..20),
    )
        .prop_map(
            |(
                (iface, state, priority, v3, advert, nopreempt),
                peers,
                vips,
                auth,
                tracks,
                notify,
                garp,
            )| Inst {
                iface,
                state,
                priority,
                v3,
                advert,
                nopreempt,
                peers,
                vips,
                auth,
                tracks,
                notify,
                garp,
            },
        )
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn build(global_v3: bool, scripts: &[Script], insts: &[Inst]) -> String {
    let mut t = String::new();
    if global_v3 {
        t.push_str("global_defs {\n  vrrp_version 3\n}\n");
    }
    for (i, s) in scripts.iter().enumerate() {
        let _ = write!(
            t,
            "vrrp_script s{i} {{\n  script \"/bin/check {i}\"\n  interval {}.{:03}\n",
            s.interval_ms / 1000,
            s.interval_ms % 1000
        );
        if let Some(to) = s.timeout {
            let _ = writeln!(t, "  timeout {to}");
        }
        let rev = if s.reverse { " reverse" } else { "" };
        let _ = write!(
            t,
            "  weight {}{rev}\n  rise {}\n  fall {}\n}}\n",
            s.weight, s.rise, s.fall
        );
    }
    for (n, i) in insts.iter().enumerate() {
        let _ = write!(
            t,
            "vrrp_instance VI_{n} {{\n interface eth{}\n virtual_router_id {}\n",
            i.iface,
            n + 1
        );
        if let Some(m) = i.state {
            let _ = writeln!(t, " state {}", if m { "master" } else { "BACKUP" });
        }
        if let Some(p) = i.priority {
            let _ = writeln!(t, " priority {p}");
        }
        let v3 = i.v3.unwrap_or(global_v3);
        if let Some(v) = i.v3 {
            let _ = writeln!(t, " version {}", if v { 3 } else { 2 });
        }
        if v3 {
            let a = i.advert.max(1);
            let _ = writeln!(t, " advert_int {}.{:02}", a / 100, a % 100);
        } else {
            let _ = writeln!(t, " advert_int {}", i.advert);
        }
        if i.nopreempt {
            t.push_str(" nopreempt\n");
        }
        if !i.peers.is_empty() {
            t.push_str(" unicast_peer {\n");
            for p in &i.peers {
                let _ = writeln!(t, "  10.1.{}.{}", p[0], p[1]);
            }
            t.push_str(" }\n");
        }
        if !i.vips.is_empty() {
            t.push_str(" virtual_ipaddress {\n");
            for (a, pfx, label) in &i.vips {
                let _ = write!(t, "  192.168.{}.{}", a[0], a[1]);
                if let Some(p) = pfx {
                    let _ = write!(t, "/{p}");
                }
                if *label {
                    t.push_str(" label eth0:x dev eth0 scope link brd 192.168.255.255");
                }
                t.push('\n');
            }
            t.push_str(" }\n");
        }
        if let (Some(p), false) = (&i.auth, v3) {
            let _ = write!(
                t,
                " authentication {{\n  auth_type PASS\n  auth_pass {}\n }}\n",
                quote(p)
            );
        }
        let tracks: Vec<_> = i
            .tracks
            .iter()
            .filter(|(k, _)| *k < scripts.len())
            .collect();
        if !tracks.is_empty() {
            t.push_str(" track_script {\n");
            let mut seen = Vec::new();
            for (k, w) in tracks {
                if seen.contains(k) {
                    continue;
                }
                seen.push(*k);
                match w {
                    Some(w) => {
                        let _ = writeln!(t, "  s{k} weight {w}");
                    }
                    None => {
                        let _ = writeln!(t, "  s{k}");
                    }
                }
            }
            t.push_str(" }\n");
        }
        if let Some(c) = &i.notify {
            let _ = writeln!(t, " notify_master {}", quote(c));
        }
        if let Some(g) = i.garp {
            let _ = writeln!(t, " garp_master_delay {g}");
        }
        t.push_str("}\n");
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_round_trip(
        global_v3 in any::<bool>(),
        scripts in proptest::collection::vec(script(), 0..4),
        insts in proptest::collection::vec(inst(), 1..4),
    ) {
        let text = build(global_v3, &scripts, &insts);
        let l = config::parse_str_with_env("gen.conf", &text, Path::new("/"), &no_env)
            .unwrap_or_else(|e| panic!("generated config failed:\n{e}\n---\n{text}"));
        let out = l.config.render_with_secrets();
        let again = config::parse_str_with_env("out.conf", &out, Path::new("/"), &no_env)
            .unwrap_or_else(|e| panic!("rendered config failed:\n{e}\n---\n{out}"));
        prop_assert_eq!(&again.config, &l.config);
        prop_assert_eq!(again.config.render_with_secrets(), out);
    }

    #[test]
    fn token_soup_never_panics(toks in proptest::collection::vec(prop_oneof![
        Just("{".to_string()), Just("}".to_string()), Just("\n".to_string()), Just("\"".to_string()),
        Just("#".to_string()), Just("!".to_string()), Just("include".to_string()),
        Just("include *".to_string()), Just("vrrp_instance".to_string()), Just("vrrp_script".to_string()),
        Just("global_defs".to_string()), Just("vrrp_track_listen".to_string()), Just("track_listen".to_string()),
        Just("interface".to_string()), Just("virtual_router_id".to_string()), Just("priority".to_string()),
        Just("advert_int".to_string()), Just("version".to_string()), Just("authentication".to_string()),
        Just("auth_type".to_string()), Just("auth_pass".to_string()), Just("unicast_peer".to_string()),
        Just("virtual_ipaddress".to_string()), Just("track_script".to_string()), Just("weight".to_string()),
        Just("reverse".to_string()), Just("digitalocean".to_string()), Just("reserved_ip".to_string()),
        Just("token_file".to_string()), Just("api_url".to_string()), Just("state".to_string()),
        Just("dev".to_string()), Just("brd".to_string()), Just("min_ttl".to_string()),
        Just("10.0.0.1/24".to_string()), Just("::1".to_string()), Just("255".to_string()),
        Just("-1".to_string()), Just("0.01".to_string()), Just("99999999999999999999".to_string()),
        "[ -~]{0,8}".prop_map(|s| s),
        "\\PC{0,4}".prop_map(|s| s),
    ], 0..60)) {
        let text = toks.join(" ");
        let _ = config::parse_str_with_env("soup.conf", &text, Path::new("/nonexistent-dir"), &no_env);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = config::parse_str_with_env("any.conf", &text, Path::new("/nonexistent-dir"), &no_env);
    }
}

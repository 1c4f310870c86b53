//! Unit tests of the parser: exact decimal seconds, their printing, and the duration bounds.

#![allow(clippy::unwrap_used, reason = "tests")]
use std::path::Path;

use super::*;
use crate::config::{parse_str_with_env, Config, Loaded, Secs};

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

/// `notify_timeout` (xvrrp extension): 30 s by default, set in `global_defs` for every
/// instance, overridden per instance; printed back; bad values are errors at their position.
#[test]
fn notify_timeout_global_default_and_instance_override() {
    let l = load(&format!(
        "{INST}}}\nvrrp_instance W {{\n interface eth0\n virtual_router_id 2\n notify_timeout 2.5\n}}\n"
    ));
    assert_eq!(l.config.global_defs.notify_timeout, Duration::from_secs(30));
    assert_eq!(
        l.config.instances[0].notify_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        l.config.instances[1].notify_timeout,
        Duration::from_millis(2500)
    );
    let l = load(&format!(
        "global_defs {{\n notify_timeout 5\n}}\n{INST}}}\nvrrp_instance W {{\n interface eth0\n virtual_router_id 2\n notify_timeout 0.5\n}}\n"
    ));
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    assert_eq!(l.config.global_defs.notify_timeout, Duration::from_secs(5));
    assert_eq!(l.config.instances[0].notify_timeout, Duration::from_secs(5));
    assert_eq!(
        l.config.instances[1].notify_timeout,
        Duration::from_millis(500)
    );
    let r = l.config.render();
    assert!(r.contains(" notify_timeout 5\n"), "{r}");
    assert!(r.contains(" notify_timeout 0.5\n"), "{r}");
    let j: serde_json::Value = serde_json::from_str(&l.config.to_json()).unwrap();
    assert_eq!(j["instances"][1]["notify_timeout"], 0.5);
    for (text, want) in [
        (
            format!("{INST} notify_timeout 0\n}}\n"),
            "k.conf:4:17: notify_timeout: '0' is out of range; expected seconds greater than 0, at most 1000000000",
        ),
        (
            "global_defs {\n notify_timeout soon\n}\n".to_owned(),
            "k.conf:2:17: notify_timeout: 'soon' is not a number of seconds (digits with at most 6 decimals, e.g. 1 or 0.5)",
        ),
        (
            "global_defs {\n notify_timeout\n}\n".to_owned(),
            "k.conf:2:2: notify_timeout: ",
        ),
    ] {
        let got = first_error(&text);
        assert!(got.starts_with(want), "{got:?} for:\n{text}");
    }
}

/// `metrics_address ADDR:PORT` (xvrrp extension): none by default; printed back; bad values are
/// errors at the value's position.
#[test]
fn metrics_address_in_global_defs() {
    let l = load(&format!("{INST}}}\n"));
    assert_eq!(l.config.global_defs.metrics_address, None);
    assert!(l.config.render().contains("# metrics_address"));
    let l = load(&format!(
        "global_defs {{\n metrics_address [::1]:9650\n}}\n{INST}}}\n"
    ));
    assert!(l.warnings.is_empty(), "{:?}", warnings(&l));
    let want: std::net::SocketAddr = "[::1]:9650".parse().unwrap();
    assert_eq!(l.config.global_defs.metrics_address, Some(want));
    let r = l.config.render_with_secrets();
    assert!(r.contains(" metrics_address [::1]:9650\n"), "{r}");
    assert_eq!(
        load(&r).config,
        l.config,
        "the rendered config loads back the same"
    );
    for (text, want) in [
        (
            "global_defs {\n metrics_address localhost:9650\n}\n",
            "k.conf:2:18: metrics_address: 'localhost:9650' is not ADDR:PORT",
        ),
        (
            "global_defs {\n metrics_address 127.0.0.1\n}\n",
            "k.conf:2:18: metrics_address: '127.0.0.1' is not ADDR:PORT",
        ),
        (
            "global_defs {\n metrics_address 127.0.0.1:0\n}\n",
            "k.conf:2:18: metrics_address: '127.0.0.1:0': the port must not be 0",
        ),
        (
            "global_defs {\n metrics_address\n}\n",
            "k.conf:2:2: metrics_address: 'metrics_address' needs a value",
        ),
    ] {
        let got = first_error(text);
        assert!(got.starts_with(want), "{got:?} for:\n{text}");
    }
}

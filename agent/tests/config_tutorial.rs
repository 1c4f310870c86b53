//! The DigitalOcean tutorial's keepalived.conf files (primary and secondary) parse unchanged.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xvrrp::config::{self, AuthType, Family, InitialState, TrackRef, UnicastPeer};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn check_common(c: &config::Config) {
    assert_eq!(c.global_defs, config::GlobalDefs::default());
    assert_eq!(c.vrrp_scripts.len(), 1);
    let s = &c.vrrp_scripts[0];
    assert_eq!(s.name, "chk_nginx");
    assert_eq!(s.script, "pidof nginx");
    assert_eq!(s.interval, Duration::from_secs(2));
    assert_eq!(
        s.timeout,
        Duration::from_secs(2),
        "timeout defaults to the interval"
    );
    assert_eq!((s.weight, s.reverse, s.rise, s.fall), (0, false, 1, 1));
    assert_eq!(c.instances.len(), 1);
    let i = &c.instances[0];
    assert_eq!(i.name, "VI_1");
    assert_eq!(i.interface, "eth1");
    assert_eq!(i.virtual_router_id, 33);
    assert_eq!(i.advert_int, Duration::from_secs(1));
    assert_eq!(i.advert_int_centis(), 100);
    assert_eq!(i.version, 2);
    assert_eq!(i.family, Family::Ipv4);
    assert!(!i.nopreempt);
    assert_eq!(i.unicast_ttl, 255);
    let a = i.authentication.as_ref().unwrap();
    assert_eq!(a.auth_type, AuthType::Pass);
    assert_eq!(a.auth_pass.expose(), "password");
    assert_eq!(
        i.track_script,
        vec![TrackRef {
            name: "chk_nginx".into(),
            weight: 0,
            reverse: false
        }]
    );
    assert_eq!(
        i.notify_master.as_deref(),
        Some("/etc/keepalived/master.sh")
    );
    assert!(i.virtual_ipaddress.is_empty());
    assert_eq!(
        (i.garp_master_delay, i.garp_master_repeat),
        (Duration::from_secs(5), 5)
    );
    assert_eq!(
        (i.garp_master_refresh, i.garp_master_refresh_repeat),
        (Duration::ZERO, 1)
    );
    assert!(i.accept);
    assert!(i.digitalocean.is_none());
}

#[test]
fn primary_parses_unchanged() {
    let l = config::load(&data("tutorial-primary.conf")).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    check_common(&l.config);
    let i = &l.config.instances[0];
    assert_eq!(i.state, InitialState::Master);
    assert_eq!(i.priority, 200);
    assert_eq!(i.unicast_src_ip, Some(ip("10.132.7.107")));
    assert_eq!(
        i.unicast_peers,
        vec![UnicastPeer {
            address: ip("10.132.7.108"),
            min_ttl: None,
            max_ttl: None
        }]
    );
}

#[test]
fn secondary_parses_unchanged() {
    let l = config::load(&data("tutorial-secondary.conf")).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    check_common(&l.config);
    let i = &l.config.instances[0];
    assert_eq!(i.state, InitialState::Backup);
    assert_eq!(i.priority, 100);
    assert_eq!(i.unicast_src_ip, Some(ip("10.132.7.108")));
    assert_eq!(i.unicast_peers[0].address, ip("10.132.7.107"));
}

#[test]
fn tutorial_render_reparses_to_same_model() {
    for f in [
        "tutorial-primary.conf",
        "tutorial-secondary.conf",
        "full.conf",
    ] {
        let l = config::load(&data(f)).unwrap();
        let text = l.config.render_with_secrets();
        let again = config::parse_str("rendered.conf", &text, Path::new("/"))
            .unwrap_or_else(|e| panic!("{f}: rendered config does not parse:\n{e}\n---\n{text}"));
        assert_eq!(again.config, l.config, "{f}:\n{text}");
        // And rendering is a fixed point.
        assert_eq!(again.config.render_with_secrets(), text);
    }
}

#[test]
fn render_fills_defaults_and_redacts() {
    let l = config::load(&data("tutorial-primary.conf")).unwrap();
    let text = l.config.render();
    for needle in [
        "vrrp_version 2",
        "advert_int 1",
        "timeout 2",
        "garp_master_delay 5",
        "garp_master_repeat 5",
        "garp_master_refresh 0",
        "auth_pass <redacted>",
        "notify_master \"/etc/keepalived/master.sh\"",
        "chk_nginx weight 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("password"), "{text}");
    let json = l.config.to_json();
    assert!(json.contains("\"auth_pass\": \"<redacted>\""), "{json}");
    assert!(!json.contains("password"));
}

#[test]
fn full_example_model() {
    let l = config::load(&data("full.conf")).unwrap();
    let c = &l.config;
    let kws: Vec<&str> = l.warnings.iter().map(|w| w.keyword.as_str()).collect();
    assert_eq!(
        kws,
        vec![
            "notification_email",
            "smtp_server",
            "smtp_alert",
            "preempt_delay"
        ],
        "{:#?}",
        l.warnings
    );
    let g = &c.global_defs;
    assert_eq!(g.router_id.as_deref(), Some("lb-1"));
    assert_eq!(
        g.script_user.as_ref().unwrap().group.as_deref(),
        Some("nogroup")
    );
    assert!(g.enable_script_security && g.vrrp_skip_check_adv_addr);
    assert_eq!(g.vrrp_garp_interval, Duration::from_millis(1));
    assert_eq!(g.vrrp_gna_interval, Duration::from_micros(1));
    let f = g.notify_fifo.as_ref().unwrap();
    assert_eq!(
        f.script.as_deref(),
        Some("/usr/local/bin/fifo-reader --verbose")
    );

    let s = &c.vrrp_scripts[0];
    assert_eq!(
        (s.interval, s.timeout, s.weight, s.rise, s.fall),
        (
            Duration::from_millis(500),
            Duration::from_secs(3),
            -20,
            2,
            3
        )
    );
    assert!(s.init_fail);
    let p = &c.track_processes[0];
    assert_eq!(p.process, "nginx");
    assert_eq!(p.params.as_deref(), Some("-g daemon"));
    assert_eq!(p.param_match, config::ParamMatch::Partial);
    assert_eq!(
        (p.weight, p.reverse, p.quorum, p.quorum_max),
        (10, true, 2, Some(8))
    );
    assert_eq!(
        (p.terminate_delay, p.fork_delay),
        (Duration::from_millis(500), Duration::from_secs(1))
    );
    let tf = &c.track_files[0];
    assert_eq!(
        tf.init_file,
        Some(config::InitFile {
            value: 0,
            overwrite: true
        })
    );
    let tl = &c.track_listens[0];
    assert_eq!(tl.ports, vec![80, 443]);
    assert_eq!(tl.stall, Some(Duration::from_secs(5)));

    let i = &c.instances[0];
    assert_eq!(i.unicast_peers.len(), 2);
    assert_eq!(i.unicast_peers[1].max_ttl, Some(64));
    assert_eq!(i.virtual_ipaddress[0].prefix_len, 24);
    assert_eq!(i.virtual_ipaddress[0].label.as_deref(), Some("eth0:vip"));
    assert_eq!(i.virtual_ipaddress[0].brd, Some(config::Broadcast::Auto));
    assert_eq!(i.virtual_ipaddress[1].prefix_len, 32);
    assert_eq!(i.virtual_ipaddress[1].dev, "eth0");
    assert_eq!(i.virtual_ipaddress[1].scope, "global");
    assert_eq!(i.virtual_ipaddress_excluded[0].scope, "link");
    assert_eq!(i.track_script[0].weight, -30);
    assert_eq!(i.track_interface[0].weight, -5);
    assert_eq!(i.track_interface[1].weight, 0);
    assert_eq!(
        i.track_file[0].weight, -10,
        "inherits the track_file weight"
    );
    assert_eq!(
        (i.track_process[0].weight, i.track_process[0].reverse),
        (10, true)
    );
    assert_eq!(i.track_listen[0].weight, -40);
    assert_eq!(
        i.notify_master.as_deref(),
        Some("/etc/xvrrp/notify.sh master")
    );
    assert_eq!(
        i.notify_backup.as_deref(),
        Some("/etc/xvrrp/notify.sh backup")
    );
    assert_eq!(
        (
            i.garp_master_delay,
            i.garp_master_repeat,
            i.garp_master_refresh
        ),
        (Duration::from_secs(1), 2, Duration::from_secs(30))
    );
    assert!(i.check_unicast_src);

    let v6 = &c.instances[1];
    assert_eq!(v6.family, Family::Ipv6);
    assert_eq!(v6.version, 3);
    assert_eq!(v6.advert_int_centis(), 10);
    assert_eq!(v6.state, InitialState::Backup);
    assert_eq!(v6.priority, 100);
}

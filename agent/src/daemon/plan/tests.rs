//! Unit tests for `daemon::plan`.

#![allow(clippy::unwrap_used, reason = "tests")]
use std::path::Path;

use super::*;
use crate::packet::{decode_vrrp, ChecksumForm, IpMeta, TxMeta};

fn load(text: &str) -> Config {
    crate::config::parse_str("t.conf", text, Path::new("/"))
        .unwrap()
        .config
}

fn no_iface(_: &str, _: bool) -> Option<IpAddr> {
    None
}

const TUTORIAL_PRIMARY: &str = r#"
vrrp_script chk_nginx {
    script "pidof nginx"
    interval 2
}
vrrp_instance VI_1 {
    interface eth1
    state MASTER
    priority 200
    virtual_router_id 33
    unicast_src_ip 10.132.7.107
    unicast_peer {
        10.132.7.108
    }
    authentication {
        auth_type PASS
        auth_pass password
    }
    track_script {
        chk_nginx
    }
    notify_master /etc/keepalived/master.sh
}
"#;

#[test]
fn tutorial_primary_plans_to_unicast_v2_with_pass_and_a_script_tracker() {
    let p = plan(&load(TUTORIAL_PRIMARY), &no_iface).unwrap().remove(0);
    assert_eq!(p.params.priority, 200);
    assert_eq!(p.params.version, vrrp::Version::V2);
    assert_eq!(p.params.initial_state, InitialState::Master);
    assert_eq!(p.params.advert_interval, Duration::from_secs(1));
    assert_eq!(p.tx.src, "10.132.7.107".parse::<IpAddr>().unwrap());
    assert_eq!(p.tx.dsts, vec!["10.132.7.108".parse::<IpAddr>().unwrap()]);
    assert!(p.tx.unicast);
    assert_eq!(p.tx.auth, Auth::pass("password"));
    assert_eq!(
        p.rx.version,
        VersionPolicy::V2 {
            auth: RxAuth::pass("password"),
            advert_interval_secs: 1
        }
    );
    match &p.rx.source {
        SourcePolicy::Unicast { peers } => {
            assert_eq!(peers.len(), 1);
            assert_eq!(
                peers[0].ttl,
                TtlCheck::ANY,
                "keepalived does not check unicast TTL"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.trackers.len(),
        2,
        "the script and the instance's own interface"
    );
    assert_eq!(
        p.params.trackers[0].weight, 0,
        "weight 0: the script forces FAULT"
    );
    assert!(matches!(&p.trackers[1].source, TrackerSource::Interface(i) if i == "eth1"));
    assert_eq!(
        p.params.trackers[1].weight, 0,
        "its own link down forces FAULT"
    );
    assert_eq!(
        p.notify.master.as_deref(),
        Some("/etc/keepalived/master.sh")
    );
}

#[test]
fn the_pass_password_never_shows_in_debug_output() {
    let p = plan(&load(TUTORIAL_PRIMARY), &no_iface).unwrap().remove(0);
    let dump = format!("{p:?}");
    assert!(!dump.contains("password"), "{dump}");
    // Nor as bytes: "pass" is 112, 97, 115, 115.
    assert!(!dump.contains("112, 97, 115, 115"), "{dump}");
    assert!(dump.contains("<redacted>"));
}

#[test]
fn multicast_source_comes_from_the_interface_and_missing_one_is_an_error() {
    let text = "vrrp_instance V { interface eth9\n virtual_router_id 7\n version 3\n advert_int 0.1\n virtual_ipaddress {\n 10.0.0.9/24\n }\n}\n";
    let cfg = load(text);
    let err = plan(&cfg, &no_iface).unwrap_err();
    assert!(err[0].to_string().contains("eth9"), "{}", err[0]);
    let p = plan(&cfg, &|_, v6| (!v6).then(|| "10.0.0.1".parse().unwrap()))
        .unwrap()
        .remove(0);
    assert_eq!(p.tx.dsts, vec![IpAddr::V4(VRRP_GROUP_V4)]);
    assert_eq!(p.tx.interval_v3_cs, 10);
    assert_eq!(p.params.advert_interval, Duration::from_millis(100));
    assert_eq!(
        p.rx.source,
        SourcePolicy::Multicast {
            ttl: TtlCheck::REQUIRE_255
        }
    );
}

#[test]
fn unicast_ttl_and_each_peers_min_ttl_max_ttl_are_planned_as_configured() {
    let text = "vrrp_instance V { interface eth1\n virtual_router_id 7\n \
            unicast_src_ip 10.0.0.1\n unicast_ttl 64\n \
            unicast_peer {\n 10.0.0.2 min_ttl 60 max_ttl 64\n 10.0.0.3 max_ttl 100\n 10.0.0.4\n }\n}\n";
    let p = plan(&load(text), &no_iface).unwrap().remove(0);
    assert_eq!(p.tx.unicast_ttl, 64);
    let SourcePolicy::Unicast { peers } = &p.rx.source else {
        panic!("{:?}", p.rx.source);
    };
    let ranges: Vec<(u8, u8)> = peers.iter().map(|p| (p.ttl.min, p.ttl.max)).collect();
    assert_eq!(ranges, [(60, 64), (0, 100), (0, 255)]);
}

fn sent_checksum_form(extra: &str) -> ChecksumForm {
    let text = format!(
            "{extra}vrrp_instance V {{ interface eth1\n virtual_router_id 7\n version 3\n virtual_ipaddress {{\n 10.0.0.9/24\n }}\n}}\n"
        );
    let p = plan(&load(&text), &|_, _| Some("10.0.0.1".parse().unwrap()))
        .unwrap()
        .remove(0);
    let advert = Advert::v3(7, 100, p.tx.addresses.clone(), p.tx.interval_v3_cs);
    let mut meta = TxMeta::new(p.tx.src, p.tx.dsts[0]);
    meta.v3_ipv4_checksum = p.tx.v3_ipv4_checksum;
    let bytes = packet::encode_vrrp(&advert, &meta).unwrap();
    let rx = decode_vrrp(
        &bytes,
        &IpMeta {
            src: p.tx.src,
            dst: p.tx.dsts[0],
            ttl_or_hop_limit: 255,
        },
    )
    .unwrap();
    rx.checksum
}

use crate::packet::Advert;

#[test]
fn v3_ipv4_checksum_is_sent_in_keepalived_form_unless_rfc9568_is_asked_for() {
    assert_eq!(sent_checksum_form(""), ChecksumForm::PseudoHeader);
    assert_eq!(
        sent_checksum_form("global_defs {\n vrrp_v3_checksum_rfc9568\n}\n"),
        ChecksumForm::Rfc9568
    );
}

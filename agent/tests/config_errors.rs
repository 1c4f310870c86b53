//! Every error kind: exact file:line:column, keyword and message (with suggestions).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use xvrrp::config::{self, ConfigErrors, Diagnostic};

fn no_env(_: &str) -> Option<String> {
    None
}

fn errs(text: &str) -> ConfigErrors {
    match config::parse_str_with_env("keepalived.conf", text, Path::new("/nonexistent"), &no_env) {
        Ok(l) => panic!("expected errors, got {:#?}", l.config),
        Err(e) => e,
    }
}

fn lines(e: &ConfigErrors) -> Vec<String> {
    e.errors.iter().map(Diagnostic::to_string).collect()
}

/// Asserts there is exactly one error and it renders as `want`.
fn one(text: &str, want: &str) {
    let e = errs(text);
    assert_eq!(lines(&e), vec![want.to_string()], "for:\n{text}");
}

fn ok(text: &str) -> config::Loaded {
    config::parse_str_with_env("keepalived.conf", text, Path::new("/nonexistent"), &no_env)
        .unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

const BASE: &str = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n";

fn inst(extra: &str) -> String {
    format!("{BASE}{extra}}}\n")
}

#[test]
fn unknown_keyword_suggests_nearest() {
    let text = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n    state BACKUP\n    # comment\n    ! other comment\n    priorty 100\n}\n";
    one(
        text,
        "keepalived.conf:7:5: priorty: unknown keyword 'priorty' in vrrp_instance; did you mean 'priority'?",
    );
    one(
        "global_defs {\n  router_di x\n}\n",
        "keepalived.conf:2:3: router_di: unknown keyword 'router_di' in global_defs; did you mean 'router_id'?",
    );
    one(
        "vrrp_scirpt x {\n script y\n}\n",
        "keepalived.conf:1:1: vrrp_scirpt: unknown keyword 'vrrp_scirpt' in the top level; did you mean 'vrrp_script'?",
    );
    one(
        "vrrp_script x {\n  script y\n  intreval 3\n}\n",
        "keepalived.conf:3:3: intreval: unknown keyword 'intreval' in vrrp_script; did you mean 'interval'?",
    );
    one(
        &inst("    completely_unrelated_word 3\n"),
        "keepalived.conf:4:5: completely_unrelated_word: unknown keyword 'completely_unrelated_word' in vrrp_instance",
    );
}

#[test]
fn keywords_are_case_sensitive_values_are_not() {
    one(
        &inst("    Priority 100\n"),
        "keepalived.conf:4:5: Priority: unknown keyword 'Priority' in vrrp_instance; did you mean 'priority'?",
    );
    let l = ok(&inst("    state master\n    authentication {\n        auth_type pass\n        auth_pass x\n    }\n"));
    assert_eq!(l.config.instances[0].state, config::InitialState::Master);
}

#[test]
fn not_supported_by_xvrrp() {
    for (text, want) in [
        ("virtual_server 10.0.0.1 80 {\n}\n", "keepalived.conf:1:1: virtual_server: 'virtual_server' is not supported by xvrrp"),
        ("vrrp_sync_group G {\n group {\n VI_1\n }\n}\n", "keepalived.conf:1:1: vrrp_sync_group: 'vrrp_sync_group' is not supported by xvrrp (configure independent vrrp_instances instead)"),
        ("global_defs {\n    enable_snmp_vrrp\n}\n", "keepalived.conf:2:5: enable_snmp_vrrp: 'enable_snmp_vrrp' is not supported by xvrrp"),
        ("global_defs {\n    lvs_id x\n}\n", "keepalived.conf:2:5: lvs_id: 'lvs_id' is not supported by xvrrp"),
        ("global_defs {\n    enable_dbus\n}\n", "keepalived.conf:2:5: enable_dbus: 'enable_dbus' is not supported by xvrrp"),
        ("static_ipaddress {\n 10.0.0.1/24 dev eth0\n}\n", "keepalived.conf:1:1: static_ipaddress: 'static_ipaddress' is not supported by xvrrp"),
        ("$IF=eth0\n", "keepalived.conf:1:1: $IF=eth0: keepalived parameter substitution and conditional lines ('$NAME', '@ID') are not supported by xvrrp"),
    ] {
        one(text, want);
    }
    one(
        &inst("    use_vmac\n"),
        "keepalived.conf:4:5: use_vmac: 'use_vmac' is not supported by xvrrp",
    );
    one(
        &inst("    authentication {\n        auth_type AH\n        auth_pass x\n    }\n"),
        "keepalived.conf:5:19: auth_type: 'auth_type AH' is not supported by xvrrp (IPsec AH was removed from VRRP by RFC 3768); use PASS or no authentication",
    );
    one(
        &inst("    virtual_ipaddress {\n        10.0.0.1/24 dev eth0 home\n    }\n"),
        "keepalived.conf:5:30: virtual_ipaddress: virtual_ipaddress option 'home' is not supported by xvrrp",
    );
}

#[test]
fn accepted_and_ignored_warns() {
    let l = ok(
        "global_defs {\n    notification_email {\n        a@b\n    }\n    max_auto_priority 5\n}\n",
    );
    let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        vec![
            "keepalived.conf:2:5: notification_email: 'notification_email' is accepted but ignored by xvrrp",
            "keepalived.conf:5:5: max_auto_priority: 'max_auto_priority' is accepted but ignored by xvrrp",
        ]
    );
}

#[test]
fn value_errors_point_at_the_value() {
    one(
        &inst("    priority 0\n"),
        "keepalived.conf:4:14: priority: '0' is not a whole number in 1..255",
    );
    one(
        &inst("    priority 256\n"),
        "keepalived.conf:4:14: priority: '256' is not a whole number in 1..255",
    );
    one(
        &inst("    priority high\n"),
        "keepalived.conf:4:14: priority: 'high' is not a whole number in 1..255",
    );
    one(
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 0\n}\n",
        "keepalived.conf:3:23: virtual_router_id: '0' is not a whole number in 1..255",
    );
    one(
        &inst("    version 4\n"),
        "keepalived.conf:4:13: version: '4' is not a whole number in 2..3",
    );
    one(
        &inst("    state LEADER\n"),
        "keepalived.conf:4:11: state: 'LEADER' is not MASTER or BACKUP",
    );
    one(&inst("    advert_int 0\n"), "keepalived.conf:4:16: advert_int: '0' is out of range; expected seconds greater than 0, at most 1000000000");
    one(&inst("    advert_int -1\n"), "keepalived.conf:4:16: advert_int: '-1' is not a number of seconds (digits with at most 6 decimals, e.g. 1 or 0.5)");
    one(
        &inst("    priority 1 2\n"),
        "keepalived.conf:4:16: priority: 'priority' takes one value; unexpected '2'",
    );
    one(
        &inst("    priority\n"),
        "keepalived.conf:4:5: priority: 'priority' needs a value",
    );
    one(
        &inst("    unicast_src_ip 10.0.0.300\n"),
        "keepalived.conf:4:20: unicast_src_ip: '10.0.0.300' is not a valid IPv4 or IPv6 address",
    );
    one(
        &inst("    unicast_peer {\n        10.0.0.2\n        bogus\n    }\n"),
        "keepalived.conf:6:9: unicast_peer: 'bogus' is not a valid IPv4 or IPv6 peer address",
    );
    one(
        &inst("    virtual_ipaddress {\n        10.0.0.1/33\n    }\n"),
        "keepalived.conf:5:9: virtual_ipaddress: '33' is not a prefix length in 0..32",
    );
    one(&inst("    virtual_ipaddress {\n        10.0.0.1 devv eth0\n    }\n"), "keepalived.conf:5:18: virtual_ipaddress: unknown virtual_ipaddress option 'devv'; did you mean 'dev'?");
    one(
        &format!(
            "vrrp_script chk {{\n script x\n}}\n{}",
            inst("    track_script {\n        chk weight 300\n    }\n")
        ),
        "keepalived.conf:8:20: weight: '300' is not a whole number in -253..253",
    );
    one(
        &inst("    nopreempt yes\n"),
        "keepalived.conf:4:15: nopreempt: 'nopreempt' takes no value; unexpected 'yes'",
    );
}

#[test]
fn syntax_errors() {
    one(
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 9\n",
        "keepalived.conf:1:20: {: block is never closed (missing '}')",
    );
    let e = errs("}\nvrrp_script \"unterminated {\n");
    assert_eq!(
        lines(&e),
        vec![
            "keepalived.conf:2:13: \": unterminated quoted string (a closing '\"' is required on the same line)",
            "keepalived.conf:1:1: }: unexpected '}' with no open block",
            "keepalived.conf:2:1: vrrp_script: 'vrrp_script' needs a { } block",
        ]
    );
    one(
        "vrrp_instance {\n}\n",
        "keepalived.conf:1:1: vrrp_instance: 'vrrp_instance' needs a name",
    );
    one(
        &inst("    interface eth0 {\n    }\n"),
        "keepalived.conf:4:5: interface: 'interface' does not take a { } block",
    );
}

#[test]
fn required_fields() {
    one("vrrp_instance VI_1 {\n    interface eth0\n}\n", "keepalived.conf:1:1: virtual_router_id: vrrp_instance 'VI_1' has no 'virtual_router_id' (required, 1..255)");
    one(
        "vrrp_instance VI_1 {\n    virtual_router_id 1\n}\n",
        "keepalived.conf:1:1: interface: vrrp_instance 'VI_1' has no 'interface' (required)",
    );
    one(
        "vrrp_script chk {\n    interval 2\n}\n",
        "keepalived.conf:1:1: script: vrrp_script 'chk' has no 'script' (required)",
    );
    one(
        "track_file f {\n    weight 2\n}\n",
        "keepalived.conf:1:1: file: track_file 'f' has no 'file' (required)",
    );
    one(
        "vrrp_track_process p {\n    weight 2\n}\n",
        "keepalived.conf:1:1: process: vrrp_track_process 'p' has no 'process' (required)",
    );
    one(
        "vrrp_track_listen l {\n    weight 2\n}\n",
        "keepalived.conf:1:1: port: vrrp_track_listen 'l' has no 'port' (required)",
    );
    one(
        &inst("    authentication {\n        auth_type PASS\n    }\n"),
        "keepalived.conf:4:5: auth_pass: auth_type PASS needs an 'auth_pass'",
    );
}

#[test]
fn advert_int_by_version() {
    one(&inst("    advert_int 0.5\n"), "keepalived.conf:4:5: advert_int: 0.5 s is not valid for VRRPv2: whole seconds 1..255 (fractions need version 3)");
    one(&inst("    advert_int 256\n"), "keepalived.conf:4:5: advert_int: 256 s is not valid for VRRPv2: whole seconds 1..255 (fractions need version 3)");
    one(&inst("    version 3\n    advert_int 0.005\n"), "keepalived.conf:5:5: advert_int: 0.005 s is not valid for VRRPv3: 0.01..40.95 s in steps of 0.01");
    one(&inst("    version 3\n    advert_int 41\n"), "keepalived.conf:5:5: advert_int: 41 s is not valid for VRRPv3: 0.01..40.95 s in steps of 0.01");
    let l = ok(&inst("    version 3\n    advert_int 0.01\n"));
    assert_eq!(l.config.instances[0].advert_int_centis(), 1);
    let l = ok(&format!(
        "global_defs {{\n vrrp_version 3\n}}\n{}",
        inst("    advert_int 40.95\n")
    ));
    assert_eq!(l.config.instances[0].version, 3);
    assert_eq!(l.config.instances[0].advert_int_centis(), 4095);
}

#[test]
fn duplicates() {
    let text = format!("{}{}", inst(""), inst(""));
    one(&text, "keepalived.conf:5:1: vrrp_instance: vrrp_instance 'VI_1' is already defined at keepalived.conf:1");
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 7\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 7\n}\n";
    one(text, "keepalived.conf:7:2: virtual_router_id: virtual_router_id 7 is already used on eth0 (IPv4) by vrrp_instance 'A'");
    // Same VRID on another interface, or another family, is fine.
    ok("vrrp_instance A {\n interface eth0\n virtual_router_id 7\n}\nvrrp_instance B {\n interface eth1\n virtual_router_id 7\n}\n");
    ok("vrrp_instance A {\n interface eth0\n virtual_router_id 7\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  fe80::1\n }\n}\n");
    one(
        "vrrp_script a {\n script x\n}\nvrrp_script a {\n script y\n}\n",
        "keepalived.conf:4:1: vrrp_script: vrrp_script 'a' is already defined at keepalived.conf:1",
    );
}

#[test]
fn families() {
    one(
        &inst("    unicast_src_ip 10.0.0.1\n    unicast_peer {\n        2001:db8::2\n    }\n"),
        "keepalived.conf:6:9: unicast_peer: 2001:db8::2 is IPv6 but vrrp_instance 'VI_1' is IPv4",
    );
    one(
        &inst("    virtual_ipaddress {\n        10.0.0.1\n        2001:db8::1\n    }\n"),
        "keepalived.conf:6:9: virtual_ipaddress: 2001:db8::1 is IPv6 but vrrp_instance 'VI_1' is IPv4; put addresses of the other family in virtual_ipaddress_excluded",
    );
    // Mixing is allowed through virtual_ipaddress_excluded.
    ok(&inst("    virtual_ipaddress {\n        10.0.0.1\n    }\n    virtual_ipaddress_excluded {\n        2001:db8::1\n    }\n"));
    one(
        &inst("    version 2\n    virtual_ipaddress {\n        2001:db8::1\n    }\n"),
        "keepalived.conf:4:5: version: VRRP version 2 does not support IPv6; use version 3",
    );
}

#[test]
fn authentication_rules() {
    one(
        &inst("    version 3\n    authentication {\n        auth_type PASS\n        auth_pass x\n    }\n"),
        "keepalived.conf:5:5: authentication: authentication is only defined for VRRP version 2 (RFC 5798 removed it); remove it or use version 2",
    );
    let l = ok(&inst(
        "    authentication {\n        auth_type PASS\n        auth_pass 123456789\n    }\n",
    ));
    assert_eq!(
        l.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["keepalived.conf:6:9: auth_pass: password is longer than 8 characters; only the first 8 are used"]
    );
}

#[test]
fn preempt_warnings() {
    let l = ok(&inst("    state MASTER\n    priority 150\n    nopreempt\n"));
    assert_eq!(
        l.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["keepalived.conf:6:5: nopreempt: nopreempt needs 'state BACKUP' (keepalived ignores it with state MASTER)"]
    );
    let l = ok(&inst("    state BACKUP\n    priority 255\n    nopreempt\n"));
    let w: Vec<&str> = l.warnings.iter().map(|w| w.keyword.as_str()).collect();
    assert_eq!(w, vec!["state", "nopreempt"]);
    assert_eq!(l.config.instances[0].state, config::InitialState::Backup);
    // keepalived: state MASTER without a priority means 255; priority 255 without a state MASTER.
    let l = ok(&inst("    state MASTER\n"));
    assert_eq!(l.config.instances[0].priority, 255);
    let l = ok(&inst("    priority 255\n"));
    assert_eq!(l.config.instances[0].state, config::InitialState::Master);
}

#[test]
fn unicast_ttl_without_unicast_peers_is_a_warning() {
    let l = ok(&inst("    unicast_ttl 64\n"));
    assert_eq!(
        l.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["keepalived.conf:4:5: unicast_ttl: unicast_ttl has no effect without unicast_peer (multicast adverts always carry TTL 255)"]
    );
    let l = ok(&inst(
        "    unicast_ttl 64\n    unicast_src_ip 10.0.0.1\n    unicast_peer {\n        10.0.0.2\n    }\n",
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config.instances[0].unicast_ttl, 64);
}

#[test]
fn undefined_references() {
    let text = "vrrp_script chk {\n script x\n}\nvrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n track_script {\n  chk\n  chk_missing weight 5\n }\n track_process {\n  p\n }\n track_file {\n  f\n }\n track_listen {\n  l\n }\n}\n";
    let e = errs(text);
    assert_eq!(
        lines(&e),
        vec![
            "keepalived.conf:9:3: track_script: vrrp_instance 'VI_1' tracks 'chk_missing', but no vrrp_script 'chk_missing' is defined",
            "keepalived.conf:12:3: track_process: vrrp_instance 'VI_1' tracks 'p', but no vrrp_track_process 'p' is defined",
            "keepalived.conf:15:3: track_file: vrrp_instance 'VI_1' tracks 'f', but no track_file 'f' is defined",
            "keepalived.conf:18:3: track_listen: vrrp_instance 'VI_1' tracks 'l', but no vrrp_track_listen 'l' is defined",
        ]
    );
}

#[test]
fn all_errors_reported_at_once() {
    let text = "global_defs {\n  vrrp_verison 2\n}\nvrrp_instance VI_1 {\n  priorty 1\n  interface eth0\n  virtual_router_id 300\n  advert_int x\n}\nvrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 2\n  bogus\n}\n";
    let e = errs(text);
    let at: Vec<(u32, u32, &str)> = e
        .errors
        .iter()
        .map(|d| (d.pos.line, d.pos.column, d.keyword.as_str()))
        .collect();
    assert_eq!(
        at,
        vec![
            (2, 3, "vrrp_verison"),
            (5, 3, "priorty"),
            (7, 21, "virtual_router_id"),
            (8, 14, "advert_int"),
            (13, 3, "bogus"),
        ]
    );
    // Display is one error per line.
    assert_eq!(e.to_string().lines().count(), 5);
}

#[test]
fn one_line_blocks_and_loose_syntax() {
    let l = ok("vrrp_script chk { \n script \"a b\"\n}\nvrrp_instance VI_1\n{\n interface eth0\n virtual_router_id 1\n unicast_peer { 10.0.0.2 10.0.0.3 }\n track_script { chk }\n virtual_ipaddress { 10.0.0.9/24 }\n}");
    let i = &l.config.instances[0];
    assert_eq!(i.unicast_peers.len(), 2);
    assert_eq!(i.track_script[0].name, "chk");
    assert_eq!(i.virtual_ipaddress[0].prefix_len, 24);
}

#[test]
fn absurd_nesting_is_an_error_not_a_crash() {
    let text = format!("{}{}", "a {\n".repeat(100_000), "}\n".repeat(100_000));
    let e = errs(&text);
    assert!(
        e.errors
            .iter()
            .any(|d| d.message.starts_with("blocks nested deeper than 16 levels")),
        "{e}"
    );
    let text = "{".repeat(200_000);
    let _ = errs(&text);
}

#[test]
fn repeated_keyword_warns_and_last_wins() {
    let l = ok(&inst("    priority 10\n    priority 20\n"));
    assert_eq!(l.config.instances[0].priority, 20);
    assert_eq!(
        l.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["keepalived.conf:5:5: priority: 'priority' is given more than once in this block (first at line 4); the last one is used"]
    );
}

#[test]
fn json_shape() {
    let l = ok(&inst(
        "    state MASTER\n    virtual_ipaddress {\n        10.0.0.5/24\n    }\n",
    ));
    let v: serde_json::Value = serde_json::from_str(&l.config.to_json()).unwrap();
    let i = &v["instances"][0];
    assert_eq!(i["state"], "MASTER");
    assert_eq!(i["priority"], 255);
    assert_eq!(i["family"], "ipv4");
    assert_eq!(i["advert_int"], 1.0);
    assert_eq!(i["virtual_ipaddress"][0]["address"], "10.0.0.5");
    assert_eq!(i["virtual_ipaddress"][0]["dev"], "eth0");
    assert_eq!(v["global_defs"]["vrrp_mcast_group4"], "224.0.0.18");
}

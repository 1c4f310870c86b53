//! Keyword tables per block: supported, accepted-and-ignored, and not supported by xvrrp.

/// Top-level keywords xvrrp implements.
pub const TOP: &[&str] = &[
    "global_defs",
    "vrrp_script",
    "vrrp_track_process",
    "track_file",
    "vrrp_track_file",
    "vrrp_instance",
    "vrrp_track_listen",
    "include",
];

/// Top-level keepalived keywords that xvrrp rejects.
pub const TOP_UNSUPPORTED: &[&str] = &[
    "virtual_server",
    "virtual_server_group",
    "real_server",
    "vrrp_sync_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "virtual_routes",
    "virtual_rules",
    "bfd_instance",
    "linkbeat_use_polling",
    "garp_group",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "vrrp_track_bfd",
    "track_bfd",
];

/// `global_defs` keywords xvrrp implements.
pub const GLOBAL: &[&str] = &[
    "router_id",
    "vrrp_version",
    "script_user",
    "enable_script_security",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "vrrp_strict",
    "vrrp_skip_check_adv_addr",
    "vrrp_check_unicast_src",
    "vrrp_lower_prio_no_advert",
    "vrrp_v3_checksum_rfc9568",
    "vrrp_higher_prio_send_advert",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_startup_delay",
    "notify_fifo",
    "notify_fifo_script",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "notify_timeout",
    "metrics_address",
];

/// `global_defs` keywords accepted and ignored (with a warning): e-mail alerts, scheduling and
/// process tuning, firewall integration.
pub const GLOBAL_IGNORED: &[&str] = &[
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "max_auto_priority",
    "vrrp_priority",
    "vrrp_no_swap",
    "vrrp_rt_priority",
    "vrrp_rlimit_rttime",
    "vrrp_cpu_affinity",
    "process_names",
    "vrrp_process_name",
    "dynamic_interfaces",
    "vrrp_iptables",
    "vrrp_ipsets",
    "vrrp_nftables",
    "default_interface",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "umask",
    "script_max",
];

/// `global_defs` keywords rejected (besides the `lvs_`, `snmp_`, `enable_snmp_`, `checker_` and
/// `bfd_` families).
pub const GLOBAL_UNSUPPORTED: &[&str] = &[
    "enable_traps",
    "enable_dbus",
    "enable_dbus_instance_name",
    "dbus_service_name",
    "linkbeat_use_polling",
    "net_namespace",
    "vrrp_dont_track_primary",
    "enable_script_fifo",
];

/// Keyword prefixes rejected as not supported, in any block.
pub const UNSUPPORTED_PREFIXES: &[&str] = &["lvs_", "snmp_", "enable_snmp", "checker_", "bfd_"];

/// `vrrp_instance` keywords xvrrp implements.
pub const INSTANCE: &[&str] = &[
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "version",
    "nopreempt",
    "preempt",
    "preempt_delay",
    "mcast_src_ip",
    "unicast_src_ip",
    "unicast_peer",
    "unicast_ttl",
    "check_unicast_src",
    "authentication",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "track_script",
    "track_interface",
    "track_file",
    "track_process",
    "track_listen",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "notify_timeout",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_interval",
    "gna_interval",
    "skip_check_adv_addr",
    "strict_mode",
    "accept",
    "no_accept",
    "dont_track_primary",
    "lower_prio_no_advert",
    "v3_checksum_rfc9568",
    "higher_prio_send_advert",
    "digitalocean",
];

/// `vrrp_instance` keywords accepted and ignored (with a warning).
pub const INSTANCE_IGNORED: &[&str] = &[
    "smtp_alert",
    "debug",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "kernel_rx_buf_size",
    "notify_priority_changes",
];

/// `vrrp_instance` keywords rejected.
pub const INSTANCE_UNSUPPORTED: &[&str] = &[
    "use_vmac",
    "vmac_xmit_base",
    "native_ipv6",
    "virtual_routes",
    "virtual_rules",
    "track_bfd",
    "linkbeat_use_polling",
    "old_unicast_checksum",
    "sync_group_tracking_weight",
    "track_src_ip",
    "notify_master_rx_lower_pri",
    "notify_deleted",
    "unicast_fault_no_peer",
];

/// `vrrp_script` keywords.
pub const SCRIPT: &[&str] = &[
    "script",
    "interval",
    "timeout",
    "weight",
    "rise",
    "fall",
    "user",
    "init_fail",
];

/// `vrrp_track_process` keywords.
pub const PROCESS: &[&str] = &[
    "process",
    "param_match",
    "full_command",
    "weight",
    "quorum",
    "quorum_max",
    "delay",
    "terminate_delay",
    "fork_delay",
];

/// `track_file` keywords.
pub const FILE: &[&str] = &["file", "weight", "init_file"];

/// `vrrp_track_listen` keywords.
pub const LISTEN: &[&str] = &["port", "address", "weight", "stall", "rise", "fall"];

/// `digitalocean` keywords.
pub const DIGITALOCEAN: &[&str] = &[
    "reserved_ip",
    "token_file",
    "api_url",
    "metadata_url",
    "reconcile_interval",
    "insecure_http",
];

/// `authentication` keywords.
pub const AUTH: &[&str] = &["auth_type", "auth_pass"];

/// Levenshtein distance between two strings (by characters).
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The nearest keyword to `word` among `candidates`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let n = word.chars().count();
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= 2 || *d * 3 <= n)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("priorty", "priority"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(suggest("priorty", INSTANCE), Some("priority"));
        assert_eq!(suggest("zzzzzzzz", INSTANCE), None);
    }
}

//! `xvrrp run` between two namespaces: who is Master, who holds the virtual address, and how
//! fast it moves when the Master stops (SIGTERM: priority 0, Skew_Time) or dies (SIGKILL:
//! Master_Down_Interval). Timing bounds are generous: the figures are printed, the benchmarks
//! measure them properly.

use std::time::{Duration, Instant};

use rstest::rstest;
use xvrrp_tests::{
    agent::{has_addr, Agent, Rx},
    lab::LabSpec,
    site::{Site, Timers},
    status::Counter,
    veth, wait_until, Netns,
};

const VIP: &str = "10.60.0.100";

/// The tutorial's layout on 10.60.0.0/24: primary (`a`) .1, secondary (`b`) .2, VIP .100.
fn pair() -> Site {
    Site::with(
        LabSpec {
            net4: [10, 60, 0],
            net6: None,
        },
        Timers::Tutorial,
    )
}

/// The tutorial's instance on both servers (`a` MASTER 200, `b` BACKUP 100, over the socket
/// path) with `extra` lines in `b`'s; waits until `a` is Master.
fn tutorial_pair(site: &Site, extra_b: &str) -> [Agent; 2] {
    let agents = site.start_each(Some(Rx::Socket), [("", ""), ("", extra_b)]);
    agents[0].expect_state("Master", Duration::from_secs(10));
    agents
}

fn v3_multicast(prio: u8, extra: &str) -> String {
    format!(
        r#"vrrp_instance VI_6 {{
    interface eth1
    state BACKUP
    priority {prio}
    virtual_router_id 51
    version 3
    advert_int 0.1
    virtual_ipaddress {{
        {VIP}/24
    }}
{extra}}}
"#
    )
}

fn holder(a: &Netns, b: &Netns) -> (bool, bool) {
    (has_addr(a, "eth1", VIP), has_addr(b, "eth1", VIP))
}

#[test]
fn tutorial_unicast_pass_master_election_sigterm_handover_and_preemption() {
    let site = pair();
    let (a, b) = (site.primary.ns(), site.secondary.ns());
    let [mut pa, pb] = tutorial_pair(&site, "");
    pb.expect_state("Backup", Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(5), || holder(a, b) == (true, false)),
        "VIP only on the primary"
    );
    let st = pb.status().unwrap();
    assert_eq!(st.first().master_address().as_deref(), Some("10.60.0.1"));

    // SIGTERM: the Master sends priority 0; the Backup takes over after Skew_Time (0.609 s).
    let t = Instant::now();
    assert_eq!(
        pa.stop_with(libc::SIGTERM),
        Some(0),
        "clean exit; log:\n{}",
        pa.log()
    );
    let took = pb
        .wait_state("Master", Duration::from_secs(3))
        .unwrap_or_else(|| panic!("{}", pb.log()));
    eprintln!(
        "SIGTERM handover took {:?} (Skew_Time 0.609 s)",
        t.elapsed()
    );
    assert!(took < Duration::from_secs(3));
    assert!(
        wait_until(Duration::from_secs(3), || holder(a, b) == (false, true)),
        "VIP moved to the secondary"
    );
    let c = pb.counters().unwrap();
    let peer = c.peer("10.60.0.1").unwrap();
    assert!(
        peer.try_get(Counter::PriZeroRcvd).unwrap() >= 1,
        "priority 0 seen: {c}"
    );

    // The primary comes back and preempts.
    pa.restart();
    pa.expect_state("Master", Duration::from_secs(10));
    pb.expect_state("Backup", Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(5), || holder(a, b) == (true, false)));
}

#[test]
fn sigkill_of_master_fails_over_within_master_down_interval_and_stale_vip_is_cleaned_at_start() {
    let site = pair();
    let (a, b) = (site.primary.ns(), site.secondary.ns());
    let [mut pa, pb] = tutorial_pair(&site, "");
    assert!(wait_until(Duration::from_secs(5), || holder(a, b) == (true, false)));

    let t = Instant::now();
    pa.stop_with(libc::SIGKILL);
    pb.expect_state("Master", Duration::from_secs(8));
    let took = t.elapsed();
    eprintln!("SIGKILL failover took {took:?} (Master_Down_Interval 3.609 s)");
    assert!(
        took > Duration::from_millis(2500),
        "not before the master is declared down: {took:?}"
    );
    assert!(has_addr(b, "eth1", VIP));
    assert!(
        has_addr(a, "eth1", VIP),
        "a killed agent cannot clean up: the VIP is left behind"
    );

    // Restart the old primary with a lower priority: it removes the stale VIP at start and
    // stays Backup.
    pa.set_config(&site.conf(&site.primary, "BACKUP", 50, "", ""));
    pa.restart();
    pa.expect_state("Backup", Duration::from_secs(5));
    assert!(!has_addr(a, "eth1", VIP), "stale VIP removed at start");
    assert!(pa.log().contains("left behind"), "{}", pa.log());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(holder(a, b), (false, true));
}

#[test]
fn nopreempt_backup_does_not_take_back_mastership() {
    let site = pair();
    let (a, b) = (site.primary.ns(), site.secondary.ns());
    let extra = "    nopreempt\n";
    let mut pa = Agent::start(
        a,
        &site.conf(&site.primary, "BACKUP", 200, "", extra),
        &Rx::Socket.args(),
    );
    // With both nopreempt, the first to time out wins for good: the primary is let win before
    // the secondary starts (its lead would otherwise be Master_Down_Interval's 0.39 s minus the
    // start-up gap).
    pa.expect_state("Master", Duration::from_secs(10));
    let pb = Agent::start(
        b,
        &site.conf(&site.secondary, "BACKUP", 100, "", extra),
        &Rx::Socket.args(),
    );
    assert!(pb.wait_state("Backup", Duration::from_secs(5)).is_some());
    pa.stop_with(libc::SIGTERM);
    assert!(pb.wait_state("Master", Duration::from_secs(3)).is_some());
    pa.restart();
    assert!(pa.wait_state("Backup", Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        pa.state().as_deref(),
        Some("Backup"),
        "nopreempt: the higher priority stays Backup"
    );
    assert_eq!(pb.state().as_deref(), Some("Master"));
    assert_eq!(holder(a, b), (false, true));
}

#[test]
fn v3_multicast_tenth_second_adverts_fail_over_fast() {
    let site = pair();
    let (a, b) = (site.primary.ns(), site.secondary.ns());
    let mut pa = Agent::start(a, &v3_multicast(200, ""), &Rx::Socket.args());
    // The Backup is configured with 1 s adverts: it must adopt the Master's 0.1 s (RFC 5798
    // 6.4.2), so it times the Master out after 0.36 s, not 3.6 s.
    let slow = v3_multicast(100, "").replace("advert_int 0.1", "advert_int 1");
    let pb = Agent::start(b, &slow, &Rx::Socket.args());
    pa.expect_state("Master", Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(3), || holder(a, b) == (true, false)));
    let st = pb.status().unwrap();
    assert_eq!(
        st.first().master_adver_interval_ms(),
        Some(100),
        "backup adopted the master's interval"
    );

    let t = Instant::now();
    pa.stop_with(libc::SIGKILL);
    pb.expect_state("Master", Duration::from_secs(3));
    let took = t.elapsed();
    eprintln!("v3 0.1 s SIGKILL failover took {took:?} (Master_Down_Interval 0.361 s)");
    // Without adoption the Backup's own 1 s interval would give 3.6 s.
    assert!(
        took < Duration::from_secs(2),
        "the adopted interval decides: {took:?}"
    );
    assert!(wait_until(Duration::from_secs(2), || has_addr(
        b, "eth1", VIP
    )));
}

#[test]
fn a_second_agent_on_the_same_control_socket_is_refused() {
    let site = pair();
    let a = site.primary.ns();
    let pa = Agent::start(a, &v3_multicast(100, ""), &Rx::Socket.args());
    pa.expect_state("Master", Duration::from_secs(5));
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", a.name()])
        .arg(xvrrp_tests::xvrrp_bin())
        .args(["run", "-f", "/dev/null", "--control-socket"])
        .arg(pa.socket())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(
        pa.state().as_deref(),
        Some("Master"),
        "the first agent is unaffected"
    );
}

#[test]
fn status_answers_every_query_while_timers_and_adverts_keep_the_loop_busy() {
    // 20 ms adverts: the event loop wakes up ~100 times a second on each side. A control request
    // must never be lost when a timer or an advert wins the loop's race (cancel safety).
    let site = pair();
    let (a, b) = (site.primary.ns(), site.secondary.ns());
    let busy = |prio: u8| v3_multicast(prio, "").replace("advert_int 0.1", "advert_int 0.02");
    let pa = Agent::start(a, &busy(200), &Rx::Socket.args());
    let _pb = Agent::start(b, &busy(100), &Rx::Socket.args());
    pa.expect_state("Master", Duration::from_secs(5));
    let lost = (0..150).filter(|_| pa.status().is_none()).count();
    assert_eq!(lost, 0, "status queries lost out of 150:\n{}", pa.log());
}

fn v3_ipv6_election_and_failover(rx: Rx) {
    let a = Netns::new("r6a");
    let b = Netns::new("r6b");
    a.disable_dad();
    b.disable_dad();
    veth(&a, "eth1", &b, "eth1");
    a.ip(&["addr", "add", "fd00:60::1/64", "dev", "eth1", "nodad"]);
    b.ip(&["addr", "add", "fd00:60::2/64", "dev", "eth1", "nodad"]);
    let conf = |prio: u8| {
        format!(
            "vrrp_instance VI_V6 {{\n    interface eth1\n    priority {prio}\n    virtual_router_id 61\n    \
             version 3\n    advert_int 0.1\n    virtual_ipaddress {{\n        fd00:60::100/64\n    }}\n}}\n"
        )
    };
    let vip = "fd00:60::100";
    // Wait for the link-local addresses the adverts are sent from.
    assert!(wait_until(Duration::from_secs(5), || a
        .ip(&["-6", "addr", "show", "dev", "eth1", "scope", "link"])
        .contains("fe80")));
    let mut pa = Agent::start(&a, &conf(200), &rx.args());
    let pb = Agent::start(&b, &conf(100), &rx.args());
    pa.expect_state("Master", Duration::from_secs(5));
    pb.expect_state("Backup", Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(3), || has_addr(
        &a, "eth1", vip
    ) && !has_addr(
        &b, "eth1", vip
    )));
    let master = pb
        .status()
        .unwrap()
        .first()
        .master_address()
        .unwrap_or_default();
    assert!(
        master.starts_with("fe80"),
        "IPv6 adverts come from the link-local address: {master}"
    );
    let t = Instant::now();
    pa.stop_with(libc::SIGTERM);
    pb.expect_state("Master", Duration::from_secs(3));
    eprintln!("v3 IPv6 SIGTERM handover took {:?}", t.elapsed());
    assert!(wait_until(Duration::from_secs(3), || has_addr(
        &b, "eth1", vip
    ) && !has_addr(
        &a, "eth1", vip
    )));
}

#[rstest]
fn v3_ipv6_multicast_election_and_handover(#[values(Rx::Xdp, Rx::Socket)] rx: Rx) {
    v3_ipv6_election_and_failover(rx);
}

#[test]
fn own_interface_down_puts_the_instance_in_fault_unless_dont_track_primary() {
    let site = pair();
    let a = site.primary.ns();
    let [pa, _pb] = tutorial_pair(&site, "    dont_track_primary\n");
    // The primary's link goes down: keepalived semantics put it in FAULT and release the VIP.
    a.ip(&["link", "set", "eth1", "down"]);
    pa.expect_state("Fault", Duration::from_secs(3));
    assert!(
        wait_until(Duration::from_secs(3), || !has_addr(a, "eth1", VIP)),
        "VIP released in FAULT"
    );
    a.ip(&["link", "set", "eth1", "up"]);
    assert!(
        pa.wait_state("Master", Duration::from_secs(10)).is_some(),
        "back after link up:\n{}",
        pa.log()
    );

    // With dont_track_primary the secondary ignores its own link: it times out and becomes
    // Master (nothing is heard), and does not go to FAULT.
    let site2 = pair();
    let c = site2.primary.ns();
    let pc = Agent::start(
        c,
        &site2.conf(
            &site2.primary,
            "BACKUP",
            100,
            "",
            "    dont_track_primary\n",
        ),
        &Rx::Socket.args(),
    );
    c.ip(&["link", "set", "eth1", "down"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_ne!(pc.state().as_deref(), Some("Fault"), "{}", pc.log());
    drop(site2);
}

#[test]
fn the_owner_keeps_its_own_address_when_it_stops() {
    // Priority 255: the VIP is the interface's real address. xvrrp did not add it, so it must
    // not remove it on shutdown (keepalived's behaviour).
    let site = pair();
    let a = site.primary.ns();
    let conf =
        "vrrp_instance OWN {\n    interface eth1\n    priority 255\n    virtual_router_id 9\n    \
                virtual_ipaddress {\n        10.60.0.1/24\n    }\n}\n";
    let mut pa = Agent::start(a, conf, &Rx::Socket.args());
    pa.expect_state("Master", Duration::from_secs(5));
    assert_eq!(pa.stop_with(libc::SIGTERM), Some(0));
    assert!(
        has_addr(a, "eth1", "10.60.0.1"),
        "the owner's own address survives:\n{}",
        pa.log()
    );
}

#[test]
fn mcast_src_ip_is_the_source_on_the_wire_and_in_the_v3_checksum() {
    let site = pair();
    let (a, b) = (site.primary.ns(), site.secondary.ns());
    a.ip(&["addr", "add", "10.60.0.77/24", "dev", "eth1"]); // a secondary address
    let with_src = v3_multicast(200, "    mcast_src_ip 10.60.0.77\n");
    let pa = Agent::start(a, &with_src, &Rx::Socket.args());
    let pb = Agent::start(b, &v3_multicast(100, ""), &Rx::Socket.args());
    pa.expect_state("Master", Duration::from_secs(5));
    pb.expect_state("Backup", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        pb.state().as_deref(),
        Some("Backup"),
        "adverts accepted, no dual master"
    );
    let st = pb.status().unwrap();
    assert_eq!(st.first().master_address().as_deref(), Some("10.60.0.77"));
    let c = pb.counters().unwrap();
    let bad: u64 = c.total(Counter::ChecksumErr);
    assert_eq!(bad, 0, "{c}");
}

#[test]
fn notify_scripts_run_as_script_user_and_respect_script_security() {
    use std::os::unix::fs::PermissionsExt;
    let site = pair();
    let a = site.primary.ns();
    let dir = xvrrp_tests::agent::TempDir::new("xnotify");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let good = dir.path().join("master.sh");
    std::fs::write(&good, format!("#!/bin/sh\nid -u > {}/uid\n", out.display())).unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bad = dir.path().join("backup.sh");
    std::fs::write(
        &bad,
        format!("#!/bin/sh\ntouch {}/backup-ran\n", out.display()),
    )
    .unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o777)).unwrap();
    let conf = format!(
        "global_defs {{\n    script_user nobody\n    enable_script_security\n}}\n{}",
        v3_multicast(
            200,
            &format!(
                "    notify_master {}\n    notify_backup {}\n",
                good.display(),
                bad.display()
            )
        )
    );
    let pa = Agent::start(a, &conf, &Rx::Socket.args());
    pa.expect_state("Master", Duration::from_secs(5));
    let uid_file = out.join("uid");
    assert!(
        // The shell creates the file before `id` writes to it: wait for a whole line.
        wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&uid_file).is_ok_and(|s| s.ends_with('\n'))
        }),
        "notify_master ran:\n{}",
        pa.log()
    );
    let uid = std::fs::read_to_string(&uid_file).unwrap();
    assert_eq!(uid.trim(), "65534", "ran as nobody");
    // The world-writable notify_backup (run at startup, Initialize -> Backup) was refused.
    assert!(
        !out.join("backup-ran").exists(),
        "an insecure script must not run"
    );
    let st = pa.status().unwrap();
    let recent = st.first().notify_recent().unwrap();
    assert!(
        recent
            .iter()
            .any(|(state, outcome)| state == "BACKUP" && outcome.contains("refused")),
        "{recent:?}"
    );
}

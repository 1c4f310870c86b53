//! Real keepalived 2.2.7 and real nginx in the namespace lab: the DigitalOcean tutorial's setup
//! (two web servers, unicast VRRPv2 with PASS auth, an nginx health check), with a LAN virtual IP
//! as the observable (the tutorial moves a cloud floating IP from `notify_master` instead), and a
//! VRRPv3 multicast variant with sub-second adverts.
//!
//! Every test prints the timings it measured (`cargo test -- --nocapture`).
//!
//! The tutorial's check is `script "pidof nginx"`. In a lab on one machine `pidof` sees the nginx
//! of every namespace (and of every other test running in parallel), so the check would never
//! fail. The tests use [`Host::nginx_check_script`], `pidof nginx` restricted to the host's own
//! namespace; the literal tutorial config is only used for the config test.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use xvrrp_tests::{
    lab::{tutorial_keepalived_conf, with_instance_block, Host, Keepalived, Lab, Nginx, State},
    site::{Site, Timers},
};

/// keepalived's script interval (2 s) + fall 1 + the backup's skew, with a wide margin for a
/// loaded CI machine.
const FAILOVER: Duration = Duration::from_secs(15);
/// First election: a backup waits 3 x advert_int + skew before taking over.
const ELECTION: Duration = Duration::from_secs(20);

/// The tutorial's [`Site`] with nginx and keepalived running on both servers.
struct Tutorial {
    site: Site,
    web: [Nginx; 2],
    ka: [Keepalived; 2],
}

impl std::ops::Deref for Tutorial {
    type Target = Site;

    fn deref(&self) -> &Site {
        &self.site
    }
}

/// The tutorial's two servers and a client; nginx and keepalived running on both servers, and
/// the primary holding the VIP.
fn tutorial() -> Tutorial {
    let site = Site::new(Timers::Tutorial);
    let web = site.start_web();
    let ka = site.start_tutorial();
    let vip = site.vip;
    let t = Tutorial { site, web, ka };
    let took = t
        .lab
        .wait_body(&t.client, vip, "Primary", ELECTION)
        .unwrap_or_else(|| panic!("the VIP never served Primary:\n{}", t.logs()));
    eprintln!("[tutorial] start -> client sees Primary at the VIP: {took:?}");
    assert!(t.primary.has_addr(vip), "{}", t.logs());
    assert!(!t.secondary.has_addr(vip), "{}", t.logs());
    t
}

impl Tutorial {
    fn logs(&self) -> String {
        format!(
            "--- primary keepalived ---\n{}\n--- secondary keepalived ---\n{}",
            self.ka[0].log(),
            self.ka[1].log()
        )
    }

    /// Waits until the client sees `body` at the VIP after `what`, which happened at `since`;
    /// prints and returns the time from `since`.
    fn wait(&self, what: &str, since: Instant, timeout: Duration, body: &str) -> Duration {
        if self
            .lab
            .wait_body(&self.client, self.vip, body, timeout)
            .is_none()
        {
            panic!("{what}: the client never saw {body}:\n{}", self.logs());
        }
        let took = since.elapsed();
        eprintln!("[tutorial] {what} -> client sees {body}: {took:?}");
        took
    }
}

/// `keepalived --config-test` of `conf` on `h`: its output and its stderr.
fn config_test(h: &Host, conf: &str) -> (std::process::Output, String) {
    let path = h.dir().join("tutorial.conf");
    std::fs::write(&path, conf).unwrap();
    let out = xvrrp_tests::sh(
        h.ns()
            .command("keepalived")
            .arg("--config-test")
            .arg("--use-file")
            .arg(&path),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

#[test]
fn tutorial_config_as_written_passes_keepalived_config_test() {
    let lab = Lab::new();
    let h = lab.add_host("primary");
    let conf = tutorial_keepalived_conf(
        State::Master,
        200,
        Ipv4Addr::new(10, 88, 0, 1),
        Ipv4Addr::new(10, 88, 0, 2),
        "pidof nginx",
        Some("/etc/keepalived/master.sh"),
    );
    let (out, err) = config_test(&h, &conf);
    // keepalived 2.2.7 parses it but `--config-test` exits non-zero (6) on two warnings: scripts
    // run as root without `enable_script_security`, and an instance without a VIP (the tutorial
    // moves a cloud floating IP from notify_master instead). Nothing else is flagged.
    let known = [
        "SECURITY VIOLATION - scripts are being executed but script_security not enabled.",
        "(VI_1) No VIP specified; at least one is sensible",
    ];
    let unknown: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !known.contains(&l.trim()))
        .collect();
    assert!(
        unknown.is_empty(),
        "unexpected keepalived -t diagnostics ({}): {unknown:?}",
        out.status
    );
    assert!(err.contains(known[0]), "{err}");

    // With a VIP added, the only complaint left is script security, and keepalived still runs
    // the check as root: the tutorial config works as is.
    let with_vip =
        with_instance_block(&conf, "virtual_ipaddress {\n    10.88.0.100/24 dev eth1\n}");
    let (out, err) = config_test(&h, &with_vip);
    assert_eq!(err.trim(), known[0], "{}", out.status);
}

#[test]
fn tutorial_nginx_stop_fails_over_to_secondary_and_start_preempts_back() {
    let mut t = tutorial();
    let cap = t.lab.capture_switch("ip proto 112");

    // Healthy: the primary advertises priority 200 to the secondary (unicast VRRPv2, VRID 33).
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(5), || !cap.adverts().is_empty()),
        "no adverts captured"
    );
    let first = cap.adverts()[0].clone();
    assert_eq!(first.src, t.primary.ip4());
    assert_eq!(first.dst, t.secondary.ip4());
    assert_eq!((first.version, first.vrid, first.prio), (2, 33, 200));
    assert!(cap
        .adverts()
        .iter()
        .all(|a| a.src == t.primary.ip4() && a.prio == 200));

    // nginx stops on the primary: its check fails, it goes FAULT, the secondary takes the VIP.
    let at = Instant::now();
    t.web[0].stop();
    t.wait("nginx stop on primary", at, FAILOVER, "Secondary");
    assert!(
        t.ka[0].wait_log("Entering FAULT STATE", FAILOVER).is_some(),
        "{}",
        t.logs()
    );
    assert!(t.ka[0].log().contains("VRRP_Script(chk_nginx) failed"));
    assert!(t.secondary.has_addr(t.vip));
    assert!(!t.primary.has_addr(t.vip), "a FAULT node releases the VIP");
    // Leaving MASTER for FAULT, the primary said goodbye with priority 0.
    // tcpdump -w writes in blocks (up to 1 s late): wait for it.
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(3), || cap
            .adverts()
            .iter()
            .any(|a| a.src == t.primary.ip4() && a.prio == 0)),
        "{}",
        cap.text()
    );
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(5), || cap
            .adverts()
            .iter()
            .any(|a| a.src == t.secondary.ip4() && a.prio == 100)),
        "the new master advertises: {}",
        cap.text()
    );

    // nginx is back: the primary leaves FAULT and preempts (higher priority).
    let at = Instant::now();
    t.web[0].start();
    t.wait("nginx start on primary", at, ELECTION, "Primary");
    assert!(t.primary.has_addr(t.vip));
    assert!(
        xvrrp_tests::wait_until(FAILOVER, || !t.secondary.has_addr(t.vip)),
        "the secondary released the VIP:\n{}",
        t.logs()
    );
}

#[test]
fn tutorial_keepalived_sigkill_on_primary_fails_over_but_leaves_the_vip_behind() {
    let mut t = tutorial();

    // kill -9 of the whole service (parent and VRRP child): no goodbye advert, the secondary
    // waits out Master_Down_Interval (3 x 1 s + skew 0.61 s) and takes over; GARP moves the
    // client's ARP entry.
    let at = Instant::now();
    t.ka[0].kill();
    t.wait("SIGKILL keepalived on primary", at, FAILOVER, "Secondary");
    assert!(t.secondary.has_addr(t.vip));
    // keepalived's flaw (users' complaint "VIPs left behind after kill -9"): nobody removes the
    // VIP from the killed primary, so two hosts now hold it; only ARP decides who gets traffic.
    assert!(
        t.primary.has_addr(t.vip),
        "keepalived 2.2.7 leaves the VIP on a SIGKILLed node"
    );
    // Clean up like an operator (or a reboot) would, then restart keepalived: it preempts back.
    t.primary
        .ns()
        .ip(&["addr", "del", &format!("{}/24", t.vip), "dev", "eth1"]);
    let at = Instant::now();
    t.ka[0].start();
    t.wait("keepalived restart on primary", at, ELECTION, "Primary");

    // SIGTERM instead: keepalived sends priority 0 and removes its VIP; the secondary takes
    // over after its skew time only (0.61 s), not the full down interval.
    let at = Instant::now();
    t.ka[0].stop();
    assert!(!t.primary.has_addr(t.vip), "SIGTERM releases the VIP");
    assert!(t.ka[0].log().contains("sent 0 priority"), "{}", t.logs());
    t.wait("SIGTERM keepalived on primary", at, FAILOVER, "Secondary");
    assert!(t.secondary.has_addr(t.vip));
}

fn v3_conf(check: &Host, priority: u8, vip: Ipv4Addr) -> String {
    let script = check.nginx_check_script("chk_nginx.sh");
    format!(
        "global_defs {{
    vrrp_version 3
}}

vrrp_script chk_nginx {{
    script \"{}\"
    interval 1
}}

vrrp_instance VI_1 {{
    interface eth1
    state BACKUP
    priority {priority}
    virtual_router_id 33
    advert_int 0.1

    track_script {{
        chk_nginx
    }}

    virtual_ipaddress {{
        {vip}/24 dev eth1
    }}
}}
",
        script.display()
    )
}

#[test]
fn v3_multicast_subsecond_adverts_fail_over_fast() {
    let site = Site::new(Timers::V3Fast);
    let (lab, primary, secondary, client, vip) = (
        &site.lab,
        &site.primary,
        &site.secondary,
        &site.client,
        site.vip,
    );
    let _web = site.start_web();
    let cap = lab.capture_switch("ip proto 112");
    let ka = [
        primary.start_keepalived(&v3_conf(primary, 200, vip)),
        secondary.start_keepalived(&v3_conf(secondary, 100, vip)),
    ];
    let logs = || {
        format!(
            "--- primary ---\n{}\n--- secondary ---\n{}",
            ka[0].log(),
            ka[1].log()
        )
    };
    let took = lab
        .wait_body(client, vip, "Primary", ELECTION)
        .unwrap_or_else(|| panic!("never Primary:\n{}", logs()));
    eprintln!("[v3] start -> client sees Primary: {took:?}");

    // Multicast VRRPv3 to 224.0.0.18 at 10 adverts a second.
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(5), || cap.adverts().len() >= 5),
        "{}",
        cap.text()
    );
    let ads = cap.adverts();
    let from_primary: Vec<_> = ads
        .iter()
        .filter(|a| a.src == primary.ip4() && a.prio == 200)
        .collect();
    assert!(!from_primary.is_empty(), "{}", cap.text());
    assert!(from_primary
        .iter()
        .all(|a| a.version == 3 && a.vrid == 33 && a.dst == Ipv4Addr::new(224, 0, 0, 18)));

    // A hung primary (SIGSTOP): the secondary takes over after 3 x 0.1 s + skew (0.06 s).
    ka[0].pause();
    let took = lab
        .wait_body(client, vip, "Secondary", FAILOVER)
        .unwrap_or_else(|| panic!("no failover:\n{}", logs()));
    eprintln!("[v3] SIGSTOP keepalived on primary -> client sees Secondary: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "sub-second adverts: {took:?}"
    );
    assert!(secondary.has_addr(vip));

    // It wakes up: it is still MASTER, sees a lower priority and keeps the VIP; the secondary
    // sees the higher priority and steps back.
    ka[0].resume();
    let took = lab
        .wait_body(client, vip, "Primary", ELECTION)
        .unwrap_or_else(|| panic!("no failback:\n{}", logs()));
    eprintln!("[v3] SIGCONT keepalived on primary -> client sees Primary: {took:?}");
    assert!(
        xvrrp_tests::wait_until(FAILOVER, || !secondary.has_addr(vip)),
        "{}",
        logs()
    );

    // Split brain: the primary is partitioned (link up). Both are MASTER and hold the VIP.
    lab.cut(primary);
    let took = lab
        .wait_body(client, vip, "Secondary", FAILOVER)
        .unwrap_or_else(|| panic!("no failover on partition:\n{}", logs()));
    eprintln!("[v3] partition primary -> client sees Secondary: {took:?}");
    assert!(primary.has_addr(vip) && secondary.has_addr(vip));
    let at = Instant::now();
    lab.heal(primary);
    if lab.wait_body(client, vip, "Primary", ELECTION).is_none() {
        panic!("client never back on Primary after heal:\n{}", logs());
    }
    eprintln!(
        "[v3] heal partition -> client sees Primary: {:?}",
        at.elapsed()
    );
    assert!(
        xvrrp_tests::wait_until(FAILOVER, || !secondary.has_addr(vip)),
        "the split brain heals: the lower priority steps back\n{}",
        logs()
    );
}

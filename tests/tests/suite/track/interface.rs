//! `track_interface` in the namespace lab with the tutorial's timers: a tracked link losing
//! carrier, going admin down, or disappearing moves mastership (weight 0: FAULT; weighted: the
//! priority drops below the Backup's), and coming back brings it back. Link state comes from
//! netlink events.

use std::time::{Duration, Instant};

use xvrrp_tests::lab::Host;
use xvrrp_tests::site::{expect_instance, expect_state, wait_instance, Site, Timers, FAILOVER};

/// A veth pair `up0` <-> `up0p` inside the host (both up): `up0` is the tracked "uplink"; setting
/// `up0p` down takes `up0`'s carrier away.
fn uplink(h: &Host) {
    h.ns()
        .ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    h.ns().ip(&["link", "set", "up0", "up"]);
    h.ns().ip(&["link", "set", "up0p", "up"]);
}

#[test]
fn tracked_link_down_faults_the_master_and_up_brings_it_back() {
    let site = Site::new(Timers::Tutorial);
    uplink(&site.primary);
    let extra = "    track_interface {\n        up0\n    }\n";
    let agents = site.start_tracking("", extra);
    let t = agents[0].tracker("interface up0").unwrap();
    assert_eq!(t.kind().as_deref(), Some("interface"));
    assert_eq!(t.link().as_deref(), Some("up"), "{t}");

    // Carrier lost.
    let t0 = Instant::now();
    site.primary.ns().ip(&["link", "set", "up0p", "down"]);
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Fault")
    });
    eprintln!("carrier lost -> Fault after {:?}", t0.elapsed());
    assert!(agents[1].wait_state("Master", FAILOVER).is_some());
    assert_eq!(
        agents[0]
            .tracker("interface up0")
            .unwrap()
            .link()
            .as_deref(),
        Some("no carrier")
    );

    site.primary.ns().ip(&["link", "set", "up0p", "up"]);
    expect_state(&agents, 0, "Master", FAILOVER);

    // Administratively down, then deleted: down and missing.
    site.primary.ns().ip(&["link", "set", "up0", "down"]);
    assert!(wait_instance(&agents[0], Duration::from_secs(5), |i| i
        .state()
        .as_deref()
        == Some("Fault")));
    site.primary.ns().ip(&["link", "set", "up0", "up"]);
    assert!(agents[0].wait_state("Master", FAILOVER).is_some());
    site.primary.ns().ip(&["link", "del", "up0"]);
    assert!(wait_instance(&agents[0], Duration::from_secs(5), |i| i
        .state()
        .as_deref()
        == Some("Fault")));
    assert_eq!(
        agents[0]
            .tracker("interface up0")
            .unwrap()
            .link()
            .as_deref(),
        Some("missing")
    );
    // Created again under the same name: up.
    uplink(&site.primary);
    expect_state(&agents, 0, "Master", FAILOVER);
}

#[test]
fn weighted_tracked_link_down_lowers_priority_below_the_backup() {
    let site = Site::new(Timers::Tutorial);
    uplink(&site.primary);
    let extra = "    track_interface {\n        up0 weight -150\n    }\n";
    let agents = site.start_tracking("", extra);
    site.primary.ns().ip(&["link", "set", "up0p", "down"]);
    expect_state(&agents, 1, "Master", FAILOVER);
    // The primary steps down once the new Master's first advert reaches it.
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Backup")
    });
    let i = agents[0].instance().unwrap();
    assert_eq!(i.effective_priority(), Some(50));
    site.primary.ns().ip(&["link", "set", "up0p", "up"]);
    expect_state(&agents, 0, "Master", FAILOVER);
}

//! `vrrp_script` trackers of `xvrrp run` in the namespace lab, with the tutorial's timers
//! (VRRPv2, advert_int 1, priorities 200/100): the tutorial's nginx check moving the client
//! between "Primary" and "Secondary", a hanging script killed at its timeout and counted while
//! adverts keep flowing, `enable_script_security` refusing a world-writable script, and `user`.
//!
//! The tutorial's check is `pidof nginx`; on one machine that sees every namespace's nginx, so
//! the tests use the lab's per-namespace equivalent ([`Host::nginx_check_script`]).

use std::{os::unix::fs::PermissionsExt, time::Duration, time::Instant};

use xvrrp_tests::agent::Agent;
use xvrrp_tests::agent::Rx;
use xvrrp_tests::site::{
    expect_state, hanging_script, logs, stays, wait_instance, Site, Timers, ELECTION, FAILOVER,
};

#[test]
fn tutorial_nginx_check_moves_the_client_to_secondary_and_back_to_primary() {
    let site = Site::new(Timers::Tutorial);
    let mut web = site.start_web();
    let agents = site.start_tutorial_xvrrp(Some(Rx::Socket));
    let took = site.expect_client("Primary", ELECTION, &agents);
    eprintln!("start -> client sees Primary: {took:?}");
    assert_eq!(agents[0].state().as_deref(), Some("Master"));
    let t = agents[0].tracker("script chk_nginx").unwrap();
    assert_eq!(t.kind().as_deref(), Some("script"));
    assert_eq!(t.up(), Some(true));

    // nginx stops on the Master: its check fails (weight 0: FAULT), the Backup takes over.
    let t0 = Instant::now();
    web[0].stop();
    let took = site.expect_client("Secondary", FAILOVER, &agents);
    eprintln!("nginx stopped on the Master -> client sees Secondary: {took:?} (check every 2 s)");
    expect_state(&agents, 1, "Master", Duration::from_secs(5));
    assert_eq!(agents[0].state().as_deref(), Some("Fault"));
    let t = agents[0].tracker("script chk_nginx").unwrap();
    assert_eq!(t.up(), Some(false), "{t}");
    assert!(t.failures().unwrap() >= 1, "{t}");
    assert!(t.since().is_some(), "{t}");
    assert!(t0.elapsed() < FAILOVER);

    // nginx back: the check succeeds, the primary leaves FAULT and preempts (priority 200).
    web[0].start();
    let took = site.expect_client("Primary", FAILOVER, &agents);
    eprintln!("nginx started again -> client sees Primary: {took:?}");
    assert!(agents[0]
        .wait_state("Master", Duration::from_secs(5))
        .is_some());
    assert!(agents[1]
        .wait_state("Backup", Duration::from_secs(5))
        .is_some());
}

#[test]
fn hanging_script_is_killed_at_its_timeout_counted_and_adverts_keep_flowing() {
    let site = Site::new(Timers::Tutorial);
    let (flag, top, extra) = hanging_script(&site.primary, 2);
    let agents = site.start_tracking(&top, extra);
    assert!(agents[1].wait_state("Backup", ELECTION).is_some());

    // The script hangs from now on. Each run is killed after 2 s; only the third failure in a
    // row (fall 3, about 6 s) counts. Meanwhile the Master keeps advertising every second, so
    // the Backup (Master_Down_Interval 3.6 s) must not take over.
    std::fs::write(&flag, "").unwrap();
    let t0 = Instant::now();
    if let Err(e) = stays(&agents[1], "Backup", Duration::from_millis(4800)) {
        panic!(
            "the Backup took over while the Master's script hung: {e}\n{}",
            logs(&agents)
        );
    }
    assert_eq!(agents[0].state().as_deref(), Some("Master"));
    // The first hanging run is killed at about the end of that window: poll for its count
    // (fall 3 is still more than a second away, so `up` holds in the same snapshot).
    let (counted, t) =
        agents[0].wait_tracker("script chk_hang", Duration::from_millis(1500), |t| {
            t.timeouts().unwrap_or(0) >= 1
        });
    assert!(counted, "{t}");
    assert_eq!(t.up(), Some(true), "fall 3 not reached yet: {t}");

    // Then it is a failure: FAULT, and the Backup takes over.
    expect_state(&agents, 1, "Master", FAILOVER);
    eprintln!(
        "script hangs -> Backup is Master after {:?} (timeout 2 s x fall 3)",
        t0.elapsed()
    );
    assert!(wait_instance(&agents[0], Duration::from_secs(5), |i| i
        .state()
        .as_deref()
        == Some("Fault")));
    let t = agents[0].tracker("script chk_hang").unwrap();
    assert_eq!(t.up(), Some(false), "{t}");
    assert!(t.timeouts().unwrap() >= 3, "{t}");
    assert!(t.failures().unwrap() >= 3, "{t}");
    assert!(t.reason().unwrap().contains("timed out"), "{t}");
    assert!(agents[0].log().contains("timed out"), "{}", agents[0].log());

    // The script is fixed: the primary recovers (rise 1) and preempts.
    std::fs::remove_file(&flag).unwrap();
    expect_state(&agents, 0, "Master", FAILOVER);
}

#[test]
fn script_security_refuses_a_world_writable_script_and_scripts_run_as_their_user() {
    let site = Site::new(Timers::Tutorial);
    let h = &site.primary;
    // Fails, and is world-writable: refused and disabled (keepalived drops it), so its weight 0
    // does not put the instance in FAULT.
    let ww = h.script("ww.sh", "exit 1\n");
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Fails, and is safe: runs and lowers the priority by 50.
    let fails = h.script("fails.sh", "exit 1\n");
    // Succeeds only when run as nobody.
    let whoami = h.script("whoami.sh", "[ \"$(id -u)\" = \"$(id -u nobody)\" ]\n");
    let top = format!(
        "global_defs {{\n    enable_script_security\n}}\n\
         vrrp_script chk_ww {{\n    script \"{}\"\n    interval 1\n}}\n\
         vrrp_script chk_fails {{\n    script \"{}\"\n    interval 1\n    weight -50\n}}\n\
         vrrp_script chk_user {{\n    script \"{}\"\n    interval 1\n    weight -20\n    user nobody\n}}\n",
        ww.display(),
        fails.display(),
        whoami.display()
    );
    let extra = "    track_script {\n        chk_ww\n        chk_fails\n        chk_user\n    }\n";
    let a = Agent::start(
        h.ns(),
        &site.conf(h, "MASTER", 200, &top, extra),
        &["--rx", "socket"],
    );
    assert!(
        a.wait_state("Master", ELECTION).is_some(),
        "a refused script must not cause FAULT:\n{}",
        a.log()
    );
    assert!(
        wait_instance(&a, Duration::from_secs(10), |i| i.effective_priority()
            == Some(150)),
        "200 - 50 for chk_fails only:\n{:?}\n{}",
        a.status(),
        a.log()
    );
    let t = a.tracker("script chk_ww").unwrap();
    assert_eq!(t.disabled(), Some(true), "{t}");
    assert!(t.reason().unwrap().contains("writable by others"), "{t}");
    assert!(a.log().contains("refused"), "{}", a.log());
    let t = a.tracker("script chk_fails").unwrap();
    assert_eq!(t.up(), Some(false), "{t}");
    assert_eq!(
        t.user().as_deref(),
        Some("root"),
        "no keepalived_script user: root ({t})"
    );
    let t = a.tracker("script chk_user").unwrap();
    assert_eq!(t.user().as_deref(), Some("nobody"), "{t}");
    assert_eq!(t.up(), Some(true), "ran as nobody: {t}");
    assert_eq!(t.failures(), Some(0), "{t}");
}

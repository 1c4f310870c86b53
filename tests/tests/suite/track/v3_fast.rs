//! The `track_script` and `track_process` scenarios with VRRPv3 at 0.1 s adverts (the
//! `track_*` tests use the tutorial's timers): nginx stopping moves the client to "Secondary"
//! and starting it brings "Primary" back; a hanging script is killed at its timeout and counted
//! while adverts keep flowing, so the Backup (Master_Down_Interval 0.36 s) never takes over
//! before `fall` is reached: the event loop is never blocked for more than a few advert
//! intervals.

use std::time::{Duration, Instant};

use xvrrp_tests::site::{
    hanging_script, logs, wait_instance, wait_state, Site, Timers, ELECTION, FAILOVER,
};

/// Asserts that the first instance stays in `state` for `d` (polling every 50 ms).
fn stays(a: &xvrrp_tests::agent::Agent, state: &str, d: Duration) -> Result<(), String> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        match a.state() {
            Some(s) if s == state => {}
            other => return Err(format!("left {state}: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn nginx_stop_start(
    top: impl Fn(&Site, &xvrrp_tests::lab::Host) -> String,
    extra: &str,
    label: &str,
) {
    let site = Site::new(Timers::V3Fast);
    let mut web = site.start_web();
    let (top_p, top_s) = (top(&site, &site.primary), top(&site, &site.secondary));
    let agents = site.start_each(None, [(&top_p, extra), (&top_s, extra)]);
    site.expect_client("Primary", ELECTION, &agents);
    assert!(wait_state(&agents[0], "Master", ELECTION));
    let t0 = Instant::now();
    web[0].stop();
    let took = site.expect_client("Secondary", FAILOVER, &agents);
    eprintln!("[v3 0.1 s] {label}: nginx stopped -> client sees Secondary {took:?}");
    assert!(wait_instance(&agents[0], Duration::from_secs(5), |i| i
        .state()
        .as_deref()
        == Some("Fault")));
    assert_eq!(agents[0].tracker(label).unwrap().up(), Some(false));
    assert!(t0.elapsed() < FAILOVER);
    web[0].start();
    let took = site.expect_client("Primary", FAILOVER, &agents);
    eprintln!("[v3 0.1 s] {label}: nginx started -> client sees Primary {took:?}");
    assert!(wait_state(&agents[0], "Master", FAILOVER));
}

#[test]
fn v3_fast_script_tracker_nginx_stop_and_start() {
    nginx_stop_start(
        |_, me| {
            let check = me.nginx_check_script("chk_nginx.sh");
            format!(
                "vrrp_script chk_nginx {{\n    script \"{}\"\n    interval 2\n}}\n",
                check.display()
            )
        },
        "    track_script {\n        chk_nginx\n    }\n",
        "script chk_nginx",
    );
}

#[test]
fn v3_fast_process_tracker_nginx_stop_and_start() {
    nginx_stop_start(
        |_, _| "vrrp_track_process chk_nginx {\n    process nginx\n    weight 0\n}\n".to_owned(),
        "    track_process {\n        chk_nginx\n    }\n",
        "process chk_nginx",
    );
}

#[test]
fn v3_fast_hanging_script_is_killed_and_counted_while_adverts_flow() {
    let site = Site::new(Timers::V3Fast);
    let (flag, top, extra) = hanging_script(&site.primary, 1);
    let agents = site.start_each(None, [(&top, extra), ("", "")]);
    assert!(
        wait_state(&agents[0], "Master", ELECTION),
        "{}",
        logs(&agents)
    );
    assert!(wait_state(&agents[1], "Backup", ELECTION));
    std::fs::write(&flag, "").unwrap();
    let t0 = Instant::now();
    // Two timeouts (about 2 s) without a failover: adverts kept flowing every 0.1 s.
    if let Err(e) = stays(&agents[1], "Backup", Duration::from_millis(1900)) {
        panic!(
            "the Backup took over while the script hung: {e}\n{}",
            logs(&agents)
        );
    }
    // The first hanging run is killed at about the end of that window: poll for its count
    // (fall 3 is still more than a second away, so `up` holds in the same snapshot).
    let (counted, t) =
        agents[0].wait_tracker("script chk_hang", Duration::from_millis(1500), |t| {
            t.timeouts().unwrap_or(0) >= 1
        });
    assert!(counted, "{t}");
    assert_eq!(t.up(), Some(true), "fall 3 not reached yet: {t}");
    assert!(
        wait_state(&agents[1], "Master", FAILOVER),
        "{}",
        logs(&agents)
    );
    eprintln!(
        "[v3 0.1 s] script hangs -> Backup is Master after {:?} (timeout 1 s x fall 3)",
        t0.elapsed()
    );
    let t = agents[0].tracker("script chk_hang").unwrap();
    assert!(t.timeouts().unwrap() >= 3, "{t}");
    std::fs::remove_file(&flag).unwrap();
    assert!(
        wait_state(&agents[0], "Master", FAILOVER),
        "{}",
        logs(&agents)
    );
}

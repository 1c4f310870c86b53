//! `vrrp_track_process` in the namespace lab with the tutorial's timers: the tracker sees nginx
//! exit (process events, no polling) and moves the client to "Secondary", sees it start again
//! ("Primary" back), and counts only the nginx of its own network namespace: the Backup's nginx
//! and a decoy host's nginx, on the same machine, do not keep the Master up.

use std::time::{Duration, Instant};

use xvrrp_tests::agent::Rx;
use xvrrp_tests::site::{expect_instance, expect_state, Site, Timers, ELECTION, FAILOVER};

const TOP: &str = "vrrp_track_process chk_nginx {\n    process nginx\n    weight 0\n}\n";
const EXTRA: &str = "    track_process {\n        chk_nginx\n    }\n";

#[test]
fn process_tracker_sees_nginx_exit_and_is_not_fooled_by_other_namespaces() {
    let site = Site::new(Timers::Tutorial);
    let decoy = site.lab.add_host("decoy");
    let _decoy_web = decoy.start_nginx("<h1>Decoy</h1>\n");
    let mut web = site.start_web();
    let agents = site.start_each(Some(Rx::Socket), [(TOP, EXTRA), (TOP, EXTRA)]);
    site.expect_client("Primary", ELECTION, &agents);
    assert!(agents[0].wait_state("Master", ELECTION).is_some());
    // nginx = a master and one worker, in this namespace only.
    let t = agents[0].tracker("process chk_nginx").unwrap();
    assert_eq!(t.kind().as_deref(), Some("process"));
    assert_eq!(t.up(), Some(true), "{t}");
    assert_eq!(t.processes(), Some(2), "only this namespace's nginx: {t}");

    // nginx exits on the Master while nginx keeps running in two other namespaces.
    let t0 = Instant::now();
    web[0].kill();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Fault")
    });
    let detect = t0.elapsed();
    let took = site.expect_client("Secondary", FAILOVER, &agents);
    eprintln!(
        "nginx killed -> Master in Fault after {detect:?}, client sees Secondary after {took:?}"
    );
    assert!(detect < Duration::from_secs(2), "event-driven: {detect:?}");
    let t = agents[0].tracker("process chk_nginx").unwrap();
    assert_eq!(t.up(), Some(false), "{t}");
    assert_eq!(t.processes(), Some(0), "{t}");
    assert!(t.reason().unwrap().contains("exited"), "{t}");
    assert!(agents[1].wait_state("Master", FAILOVER).is_some());

    // nginx starts again: quorum is back, the primary leaves FAULT and preempts.
    web[0].start();
    let took = site.expect_client("Primary", FAILOVER, &agents);
    eprintln!("nginx started again -> client sees Primary after {took:?}");
    assert!(agents[0].wait_state("Master", FAILOVER).is_some());
    assert_eq!(
        agents[0].tracker("process chk_nginx").unwrap().processes(),
        Some(2)
    );

    // Graceful stop (SIGQUIT: workers first, then the master) is seen as well.
    web[0].stop();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Fault")
    });
}

#[test]
fn quorum_and_terminate_delay() {
    let site = Site::new(Timers::Tutorial);
    let mut web = site.primary.start_nginx("<h1>Primary</h1>\n");
    // Master + 1 worker = 2 processes; quorum 2. A loss counts after 2 s.
    let top = "vrrp_track_process chk_nginx {\n    process nginx\n    quorum 2\n    terminate_delay 2\n    weight 0\n}\n";
    let agents = site.start_tracking(top, EXTRA);
    let t0 = Instant::now();
    web.kill();
    expect_instance(&agents, 0, Duration::from_secs(10), |i| {
        i.state().as_deref() == Some("Fault")
    });
    let took = t0.elapsed();
    eprintln!("nginx killed with terminate_delay 2 -> Fault after {took:?}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    web.start();
    expect_state(&agents, 0, "Master", FAILOVER);
}

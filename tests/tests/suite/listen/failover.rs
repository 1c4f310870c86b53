//! `vrrp_track_listen` end to end in the namespace lab, with the tutorial's timers (v2,
//! advert_int 1, priorities 200/100) and with v3 at 0.1 s: stopping nginx on the Master moves
//! the client to "Secondary" (the Master sends priority 0 and enters FAULT the moment its last
//! listener closes), starting it again brings "Primary" back; nginx on port 80 in the Backup and
//! in a decoy namespace never keeps the Master's tracker up; `kill -STOP` of nginx with a `stall`
//! tracker fails over once connections stall, and `kill -CONT` brings it back.
//!
//! Figures printed: listener close -> priority-0 advert on the wire (the capture socket's
//! receive time against the kernel's timestamp of the listener event), listener close -> FAULT
//! in the status (millisecond resolution), and client-side failover times.

use std::time::{Duration, Instant};

use xvrrp_tests::site::listen::{
    capture_vrrp, first_priority_zero_us, listen_block, wait_kernel_source,
};
use xvrrp_tests::site::{expect_instance, logs, wait_state, Site, Timers, ELECTION, FAILOVER};

/// The generous bound asserted on listener close -> priority 0 on the wire (the target is
/// 10 ms; a loaded CI machine gets slack).
const DETECT_BOUND: Duration = Duration::from_millis(250);

fn stop_start(timers: Timers) {
    let site = Site::new(timers);
    let decoy = site.lab.add_host("decoy");
    let _decoy_web = decoy.start_nginx("<h1>Decoy</h1>\n");
    let mut web = site.start_web();
    let (top, extra) = listen_block(None);
    let agents = site.start(&top, &extra);
    site.expect_client("Primary", ELECTION, &agents);
    assert!(
        wait_state(&agents[0], "Master", ELECTION),
        "{}",
        logs(&agents)
    );
    let (kernel, t) = wait_kernel_source(&agents[0]);
    assert!(kernel, "{t}\n{}", logs(&agents));
    assert_eq!(t.kind().as_deref(), Some("listen"));
    assert_eq!(t.up(), Some(true), "{t}");
    // nginx listens on 0.0.0.0:80 and [::]:80 in this namespace; the Backup's and the decoy's
    // listeners on the same port do not count.
    assert_eq!(t.port(0), Some(80), "{t}");
    assert_eq!(t.listeners(0), Some(2), "{t}");

    // nginx stops on the Master.
    let mut cap = capture_vrrp(&site.primary);
    let t0 = Instant::now();
    web[0].stop();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Fault")
    });
    let took = site.expect_client("Secondary", FAILOVER, &agents);
    let t = agents[0].tracker("listen chk_http").unwrap();
    assert_eq!(t.up(), Some(false), "{t}");
    assert_eq!(t.listeners(0), Some(0), "{t}");
    assert!(
        t.reason().unwrap().contains("no listener on port 80"),
        "{t}"
    );
    let closed_us = t.last_listener_event_us().expect("a listener event");
    let wire_us = first_priority_zero_us(&mut cap, site.primary.ip4())
        .expect("a priority-0 advert from the Master");
    let detect = Duration::from_micros(wire_us.saturating_sub(closed_us));
    let st = agents[0].status().unwrap();
    eprintln!(
        "[{timers:?}] nginx stopped: last listener closed -> priority 0 on the wire {detect:?}; \
         FAULT recorded at {} (listener event at {closed_us} us); client sees Secondary {took:?} \
         after the stop began",
        st.first().last_transition_at_text()
    );
    assert!(detect < DETECT_BOUND, "{detect:?}");
    assert!(t0.elapsed() < FAILOVER);
    assert!(
        wait_state(&agents[1], "Master", FAILOVER),
        "{}",
        logs(&agents)
    );

    // nginx back: the tracker is up again (rise 1), the primary leaves FAULT and preempts.
    let t1 = Instant::now();
    web[0].start();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() != Some("Fault")
    });
    let left_fault = t1.elapsed();
    let took = site.expect_client("Primary", FAILOVER, &agents);
    eprintln!(
        "[{timers:?}] nginx started -> out of FAULT {left_fault:?}, client sees Primary {took:?}"
    );
    assert!(wait_state(&agents[0], "Master", FAILOVER));
    let t = agents[0].tracker("listen chk_http").unwrap();
    assert_eq!(t.listeners(0), Some(2), "{t}");
    // The decoy and the Backup kept their nginx all along.
    assert_eq!(
        agents[1].tracker("listen chk_http").unwrap().listeners(0),
        Some(2)
    );
}

#[test]
fn tutorial_timers_nginx_stop_and_start() {
    stop_start(Timers::Tutorial);
}

#[test]
fn v3_fast_nginx_stop_and_start() {
    stop_start(Timers::V3Fast);
}

fn stall(timers: Timers) {
    let site = Site::new(timers);
    let web = site.start_web();
    let (top, extra) = listen_block(Some(2));
    let agents = site.start(&top, &extra);
    site.expect_client("Primary", ELECTION, &agents);
    assert!(wait_state(&agents[0], "Master", ELECTION));
    let (kernel, t) = wait_kernel_source(&agents[0]);
    assert!(kernel, "{t}\n{}", logs(&agents));

    // nginx hangs: it still listens (a pidof check passes), the kernel still completes
    // handshakes into the accept queue, but nothing is accepted. The client keeps trying.
    let t0 = Instant::now();
    web[0].pause();
    let took = site.expect_client("Secondary", FAILOVER, &agents);
    let t = agents[0].tracker("listen chk_http").unwrap();
    eprintln!(
        "[{timers:?}] nginx stopped (SIGSTOP), stall 2 -> client sees Secondary {took:?}: {t}"
    );
    assert_eq!(
        agents[0].state().as_deref(),
        Some("Fault"),
        "{}",
        logs(&agents)
    );
    assert_eq!(t.up(), Some(false), "{t}");
    assert!(t.reason().unwrap().contains("stalled"), "{t}");
    assert!(t.listeners(0).unwrap() > 0, "{t}");
    assert!(t.syns(0).unwrap() > 0, "XDP counted SYNs: {t}");
    assert!(t0.elapsed() >= Duration::from_secs(2));

    // nginx continues: it accepts the queued connections, the stall ends, Primary is back.
    web[0].resume();
    let took = site.expect_client("Primary", FAILOVER, &agents);
    eprintln!("[{timers:?}] nginx continued (SIGCONT) -> client sees Primary {took:?}");
    assert!(wait_state(&agents[0], "Master", FAILOVER));
    let t = agents[0].tracker("listen chk_http").unwrap();
    assert_eq!(t.up(), Some(true), "{t}");
}

#[test]
fn tutorial_timers_stall_of_a_stopped_nginx() {
    stall(Timers::Tutorial);
}

#[test]
fn v3_fast_stall_of_a_stopped_nginx() {
    stall(Timers::V3Fast);
}

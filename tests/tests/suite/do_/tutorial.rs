//! Issue 5, item 7 a-c: the DigitalOcean tutorial end to end in namespaces, with xvrrp moving
//! the reserved IP (the `digitalocean { }` block) or the tutorial's own `notify_master master.sh`,
//! against the API / metadata double. Every test also greps all logs for the tokens (item 7g).

use std::time::{Duration, Instant};

use xvrrp_tests::site::cloud::{DoLab, Mover, Opts, A, B, IP};
use xvrrp_tests::wait_until;

/// (a) The client sees Primary; stop nginx on the primary: Secondary; start it: Primary.
#[test]
fn nginx_stop_moves_the_reserved_ip_and_back() {
    let mut l = DoLab::new(Opts::default());
    assert!(
        l.wait_cloud(0, Duration::from_secs(10), |s| s == "ok"),
        "{}",
        l.logs()
    );
    // The primary already held the IP: it read it and assigned nothing.
    assert_eq!(l.posts(0), 0, "{}", l.logs());
    // The backup probed once at start-up and shows the holder.
    assert!(l.wait_cloud(1, Duration::from_secs(10), |s| s == format!("holder: {A}")));
    let c0 = l.cloud(0);
    assert_eq!(c0.droplet_id(), Some(A));
    assert_eq!(c0.reserved_ip(), Some(IP.to_string()));
    assert_eq!(c0.provider().as_deref(), Some("digitalocean"));
    assert_eq!(l.api_requests(1).len(), 1, "{}", l.logs());

    let t = Instant::now();
    l.web[0].stop();
    l.wait_client("nginx stopped on the primary", "Secondary");
    assert!(l.wait_holder(B), "{}", l.logs());
    assert!(l.servers[1]
        .ns()
        .ip(&["addr", "show", "dev", "lo"])
        .contains(&format!("{IP}/32")));
    assert_eq!(l.posts(1), 1, "{}", l.logs());
    assert!(l.wait_cloud(1, Duration::from_secs(10), |s| s == "ok"));
    eprintln!("[do] failover total {:?}", t.elapsed());

    l.web[0].start();
    l.wait_client("nginx started on the primary", "Primary");
    assert!(l.wait_holder(A), "{}", l.logs());
    assert_eq!(l.posts(0), 1, "{}", l.logs());
    assert!(l.agents[1]
        .wait_state("Backup", Duration::from_secs(10))
        .is_some());
    // The backup calls nothing any more.
    let n = l.api_requests(1).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(l.api_requests(1).len(), n, "{}", l.logs());
    assert_eq!(l.double.moves().len(), 2);
    l.assert_no_token();
}

/// (b) Kill the primary's agent (the tutorial's reboot test): Secondary; restart: Primary.
#[test]
fn agent_killed_and_restarted() {
    let mut l = DoLab::new(Opts::default());
    l.agents[0].stop_with(libc::SIGKILL);
    l.wait_client("primary agent killed", "Secondary");
    assert!(l.wait_holder(B), "{}", l.logs());
    l.agents[0].restart();
    l.wait_client("primary agent restarted", "Primary");
    assert!(l.wait_holder(A), "{}", l.logs());
    assert!(l.agents[1]
        .wait_state("Backup", Duration::from_secs(10))
        .is_some());
    assert!(l.wait_cloud(0, Duration::from_secs(10), |s| s == "ok"));
    assert!(l.cloud(0).last_takeover_ms().is_some());
    assert_eq!((l.posts(0), l.posts(1)), (1, 1), "{}", l.logs());
    l.assert_no_token();
}

/// (c) The same with the tutorial's original route: `notify_master master.sh` (no `#!` line,
/// run with /bin/sh) calling `assign-ip` against the double, no `digitalocean` block.
#[test]
fn tutorial_master_sh_route_still_works() {
    let mut l = DoLab::new(Opts {
        mover: Mover::MasterSh,
        ..Opts::default()
    });
    // At start the primary runs master.sh: the metadata says it holds the IP: no POST.
    assert!(wait_until(Duration::from_secs(10), || l
        .double
        .count("GET", "/metadata/v1/floating_ip/ipv4/active")
        >= 1));
    assert_eq!(l.double.count("POST", "/v2/"), 0);
    assert!(l.agents[0].status().unwrap().first().cloud().is_none());

    l.web[0].stop();
    l.wait_client("nginx stopped (master.sh)", "Secondary");
    assert!(l.wait_holder(B), "{}", l.logs());
    l.web[0].start();
    l.wait_client("nginx started (master.sh)", "Primary");
    l.agents[0].stop_with(libc::SIGKILL);
    l.wait_client("primary agent killed (master.sh)", "Secondary");
    l.agents[0].restart();
    l.wait_client("primary agent restarted (master.sh)", "Primary");
    assert!(l.wait_holder(A), "{}", l.logs());
    // The notify runs are recorded in status.
    let st = l.agents[1].status().unwrap();
    let recent = st.first().notify_recent().unwrap();
    assert!(
        recent
            .iter()
            .any(|(state, outcome)| state == "MASTER" && outcome == "exit status 0"),
        "{recent:?}"
    );
    assert_eq!(l.posts(0), 2, "{}", l.logs());
    assert_eq!(l.posts(1), 2, "{}", l.logs());
    l.assert_no_token();
}

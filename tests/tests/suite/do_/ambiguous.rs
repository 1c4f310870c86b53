//! Issue 11 item 5: no permanent give-up on an ambiguous answer. A 404 from the actions
//! sub-resources during a 422 "pending event" (it stopped the takeover until reload, leaving the
//! reserved IP on the dead server), and the periodic re-check of a Master going on after a
//! refused token and after the reserved IP itself vanished, without any SIGHUP.

use std::time::{Duration, Instant};

use xvrrp_tests::site::cloud::{DoLab, Opts, A, B, IP};

/// The new Master meets three 422 "pending event" answers while the action list and every
/// action status answer 404. Each 404 makes it read the reserved IP itself, which exists, and go
/// on: the IP ends on the new Master, the client reaches it, nothing says STOPPED.
#[test]
fn actions_404_during_pending_event_still_moves_the_ip() {
    let mut l = DoLab::new(Opts::default());
    l.double.pending_event_for(3);
    l.double.actions_404(true);
    l.web[0].stop();
    l.expect_state(1, "Master", Duration::from_secs(20));
    // The policy's waits: 0.5-1 + 1-2 + 2-4 s between the 422s, then the action.
    l.expect(Duration::from_secs(30), || l.double.holder(IP) == Some(B));
    l.wait_client("failover through 404s for the actions", "Secondary");
    let reqs = l.api_requests(1);
    let list = format!("/v2/reserved_ips/{IP}/actions");
    let ip = format!("/v2/reserved_ips/{IP}");
    let list_404: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "GET" && r.path == list && r.status == Some(404))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(list_404.len(), 3, "one list per 422\n{}", l.logs());
    for i in list_404 {
        let next = reqs.get(i + 1).unwrap_or_else(|| panic!("{}", l.logs()));
        assert_eq!(
            (next.method.as_str(), next.path.as_str(), next.status),
            ("GET", ip.as_str(), Some(200)),
            "a 404 for the list is followed by a read of the IP\n{}",
            l.logs()
        );
    }
    // The assign's own action answered 404 too: followed by reading the IP, not given up.
    assert_eq!(l.posts(1), 4, "{}", l.logs());
    assert!(!l.agents[1].log().contains("STOPPED"), "{}", l.logs());
    assert!(
        l.wait_cloud(1, Duration::from_secs(10), |s| s == "ok"),
        "{}",
        l.cloud_state(1)
    );
    l.double.actions_404(false);
    l.assert_no_token();
}

/// While Master, `reconcile_interval` re-checks go on after errors: a refused token stops the
/// effort (one check per interval, no retry storm) and the takeover resumes by itself when the
/// token is accepted again; the reserved IP vanishing (404) is reported and read again until it
/// exists. Each time someone moved the IP meanwhile, and the Master takes it back. No SIGHUP.
#[test]
fn master_rechecks_every_interval_after_errors() {
    let reconcile = 3u64;
    let l = DoLab::new(Opts {
        reconcile: reconcile as u32,
        ..Opts::default()
    });
    assert!(l.wait_cloud(0, Duration::from_secs(10), |s| s == "ok"));
    let interval = Duration::from_secs(reconcile);

    // 1. The token is refused (401) at the next re-check; meanwhile the IP is moved by hand.
    l.double.unauthorized(true);
    assert!(
        l.wait_cloud(0, interval * 3, |s| s
            .starts_with("degraded: the API refused the token")),
        "{}\n{}",
        l.cloud_state(0),
        l.logs()
    );
    assert!(l.agents[0].log().contains("DigitalOcean takeover STOPPED"));
    l.double.set_holder(IP, Some(B));
    let t = Instant::now();
    let refused_before = count(&l, 401);
    std::thread::sleep(interval * 4);
    let refused = count(&l, 401) - refused_before;
    let window = t.elapsed().as_secs_f64() / reconcile as f64;
    eprintln!("[do] {refused} refused checks in {window:.1} intervals");
    assert!(
        refused >= 2 && refused as f64 <= window + 1.0,
        "one check per interval while refused: {refused} in {window:.1}\n{}",
        l.logs()
    );
    l.double.unauthorized(false);
    let t = Instant::now();
    l.expect(interval + Duration::from_secs(5), || {
        l.double.holder(IP) == Some(A)
    });
    eprintln!(
        "[do] token accepted again: IP back on the Master after {:?}",
        t.elapsed()
    );
    assert!(l.wait_cloud(0, Duration::from_secs(10), |s| s == "ok"));
    assert!(l.agents[0].log().contains("accepts the token again"));

    // 2. The reserved IP itself vanishes: reported loudly, read again, never given up.
    assert!(l.double.remove_reserved_ip(IP));
    assert!(
        l.wait_cloud(0, interval * 3, |s| s
            .starts_with("degraded: the reserved IP is unknown to the API")),
        "{}\n{}",
        l.cloud_state(0),
        l.logs()
    );
    let gone_before = count(&l, 404);
    std::thread::sleep(interval * 3);
    assert!(
        count(&l, 404) - gone_before >= 2,
        "still reading it\n{}",
        l.logs()
    );
    assert!(l.agents[0].log().contains("does not exist for the API"));
    // It is back, held by the other droplet: the Master takes it within an interval.
    l.double.add_reserved_ip(IP, "nyc3", Some(B));
    let t = Instant::now();
    l.expect(interval + Duration::from_secs(5), || {
        l.double.holder(IP) == Some(A)
    });
    eprintln!(
        "[do] IP re-created: back on the Master after {:?}",
        t.elapsed()
    );
    assert!(l.wait_cloud(0, Duration::from_secs(10), |s| s == "ok"));
    assert_eq!(l.agents[0].state().as_deref(), Some("Master"));
    assert_eq!(l.posts(1), 0, "the Backup never called");
    l.wait_client("after the errors", "Primary");
    l.assert_no_token();
}

/// API answers with `status` to the primary's token.
fn count(l: &DoLab, status: u16) -> usize {
    l.api_requests(0)
        .iter()
        .filter(|r| r.status == Some(status))
        .count()
}

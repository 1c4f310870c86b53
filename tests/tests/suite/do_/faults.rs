//! Issue 5, item 7 d-g: the tutorial's failover with the API misbehaving, a node losing
//! mastership mid-retry, a split brain, and start-up with a refused token or no metadata. Each
//! test bounds the calls in the double's request log by the retry policy and greps every log
//! line for the tokens.

use std::time::{Duration, Instant};

use xvrrp::cloud::policy::{max_attempts_within, PENDING_BASE};
use xvrrp_tests::site::cloud::{last_transition, DoLab, Opts, A, B, IP};
use xvrrp_tests::{
    do_double::{Outage, Scope, Service},
    wait_until,
};

/// (d) 422 "pending event" for the first three assigns: the new Master waits between them
/// (pending backoff), then moves the IP; exactly four POSTs.
#[test]
fn pending_events_are_waited_out() {
    let mut l = DoLab::new(Opts::default());
    l.double.pending_event_for(3);
    l.web[0].stop();
    l.wait_client("failover with 3 pending events", "Secondary");
    assert!(l.wait_holder(B), "{}", l.logs());
    let posts: Vec<_> = l
        .api_requests(1)
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 4, "{}", l.logs());
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Some(422), Some(422), Some(422), Some(201)]
    );
    for (n, w) in posts.windows(2).enumerate() {
        let gap = w[1].since_start - w[0].since_start;
        let min = (PENDING_BASE * (1 << n)) / 2;
        assert!(gap >= min, "gap {n}: {gap:?} < {min:?}\n{}", l.logs());
    }
    // Per 422: a read, the POST, the list of pending actions; then polls and one verify read.
    assert!(l.api_requests(1).len() <= 1 + 4 * 3 + 8, "{}", l.logs());
    assert!(l.wait_cloud(1, Duration::from_secs(10), |s| s == "ok"));
    l.assert_no_token();
}

/// (d) 429 with `retry-after: 3`: the next call comes no sooner.
#[test]
fn rate_limit_honours_retry_after() {
    let mut l = DoLab::new(Opts::default());
    l.double.rate_limit_next(1, 3);
    l.web[0].stop();
    l.wait_client("failover after a 429", "Secondary");
    assert!(l.wait_holder(B), "{}", l.logs());
    let reqs = l.api_requests(1);
    let i = reqs
        .iter()
        .position(|r| r.status == Some(429))
        .unwrap_or_else(|| panic!("no 429\n{}", l.logs()));
    let gap = reqs[i + 1].since_start - reqs[i].since_start;
    assert!(gap >= Duration::from_millis(2900), "{gap:?}\n{}", l.logs());
    assert_eq!(l.posts(1), 1);
    assert!(reqs.len() <= 1 + 2 + 1 + 8, "{}", l.logs());
    l.assert_no_token();
}

/// (d) A 30 s API outage during the failover: retries back off (bounded by the policy), and
/// the IP moves soon after the API is back.
#[test]
fn api_outage_during_failover() {
    let mut l = DoLab::new(Opts::default());
    let outage = Duration::from_secs(30);
    let begin = l.double.requests().len();
    l.double.outage(outage, Outage::Close);
    let t = Instant::now();
    l.web[0].stop();
    l.expect_state(1, "Master", Duration::from_secs(20));
    assert!(wait_until(Duration::from_secs(10), || l
        .cloud_state(1)
        .starts_with("degraded")));
    assert!(
        wait_until(outage + Duration::from_secs(30), || l.double.holder(IP)
            == Some(B)),
        "{}",
        l.logs()
    );
    eprintln!(
        "[do] IP on the secondary {:?} after a 30 s outage began",
        t.elapsed()
    );
    l.wait_client("after the outage", "Secondary");
    // During the outage only the new Master called (the old one is in FAULT): no more
    // attempts than the backoff allows in 30 s (+1 for the attempt that straddles the end).
    let during: Vec<_> = l.double.requests()[begin..]
        .iter()
        .filter(|r| r.service == Service::Api && r.status.is_none())
        .cloned()
        .collect();
    let bound = max_attempts_within(outage) as usize + 1;
    assert!(
        !during.is_empty() && during.len() <= bound,
        "{} attempts during the outage, bound {bound}\n{}",
        during.len(),
        l.logs()
    );
    assert!(l.wait_cloud(1, Duration::from_secs(10), |s| s == "ok"));
    l.assert_no_token();
}

/// (e) A node that loses mastership while its assign is being retried makes no further calls.
#[test]
fn losing_mastership_cancels_the_retries() {
    let mut l = DoLab::new(Opts::default());
    l.double.pending_event_for(10_000);
    l.web[0].stop();
    l.expect_state(1, "Master", Duration::from_secs(20));
    // Let it retry a few assigns.
    l.expect(Duration::from_secs(15), || l.posts(1) >= 2);
    l.web[0].start();
    l.expect_state(1, "Backup", Duration::from_secs(20));
    let left = last_transition(&l.agents[1], "Backup").unwrap();
    // Long enough for several more retries had they not been cancelled.
    std::thread::sleep(Duration::from_secs(8));
    let after: Vec<_> = l
        .api_requests(1)
        .into_iter()
        .filter(|r| r.at > left + Duration::from_millis(100))
        .collect();
    assert!(
        after.is_empty(),
        "calls after leaving Master: {after:?}\n{}",
        l.logs()
    );
    assert!(l.agents[1].log().contains("takeover cancelled"));
    l.double.clear_faults();
    assert!(
        l.wait_cloud(0, Duration::from_secs(20), |s| s == "ok"),
        "{}",
        l.logs()
    );
    assert_eq!(l.double.holder(IP), Some(A));
    l.wait_client("primary back", "Primary");
    l.assert_no_token();
}

/// (f) Split brain: the link between the servers is cut, both become Master and both assign;
/// healed, the IP is on the rightful Master within reconcile_interval + an advert interval,
/// and stays there.
#[test]
fn split_brain_then_healed() {
    let reconcile = 5;
    let l = DoLab::new(Opts {
        reconcile,
        ..Opts::default()
    });
    let secondary = l.servers[1].clone();
    l.lab.cut(&secondary);
    l.expect_state(1, "Master", Duration::from_secs(20));
    l.expect(Duration::from_secs(20), || l.posts(1) >= 1);
    // The primary (still Master) takes it back at its next reconcile: both assigned.
    l.expect(Duration::from_secs(20), || l.posts(0) >= 1);
    assert_eq!(l.agents[0].state().as_deref(), Some("Master"));
    l.expect(Duration::from_secs(10), || {
        l.agents[0].log().contains("took it back")
    });
    // Heal while the secondary holds it (it reclaims it at its own reconcile).
    l.expect(Duration::from_secs(20), || {
        l.double.holder(IP) == Some(B) && !l.double.locked(IP)
    });
    let t = Instant::now();
    l.lab.heal(&secondary);
    let bound = Duration::from_secs(u64::from(reconcile) + 1);
    assert!(
        wait_until(bound + Duration::from_secs(4), || l.double.holder(IP)
            == Some(A)),
        "{}",
        l.logs()
    );
    let took = t.elapsed();
    eprintln!("[do] healed split brain: IP back on the rightful Master in {took:?}");
    assert!(took <= bound + Duration::from_secs(3), "{took:?}");
    assert!(l.agents[1]
        .wait_state("Backup", Duration::from_secs(5))
        .is_some());
    // Stays there across more than one reconcile interval.
    let moves = l.double.moves().len();
    std::thread::sleep(Duration::from_secs(u64::from(reconcile) * 2));
    assert_eq!(l.double.holder(IP), Some(A));
    assert_eq!(l.double.moves().len(), moves, "{}", l.logs());
    l.wait_client("healed", "Primary");
    l.assert_no_token();
}

/// Start-up (item 2) and 7g: the primary starts with the metadata service down, the secondary
/// with a token the API refuses. VRRP runs regardless; both show `degraded` in status; the
/// primary recovers when the metadata service is back; the secondary after the token is fixed
/// and SIGHUP. No token in any log line.
#[test]
fn degraded_start_then_recovery() {
    let mut l = DoLab::new(Opts {
        start: false,
        ..Opts::default()
    });
    l.double.metadata_down(true);
    // The secondary's token is not (yet) known to the API: 401.
    let good = l.tokens[1].clone();
    let bad = format!("{good}-revoked");
    let tf = l.servers[1].dir().join("do-token");
    std::fs::write(&tf, format!("{bad}\n")).unwrap();
    l.tokens = [l.tokens[0].clone(), bad.clone()];
    for i in 0..2 {
        let a =
            xvrrp_tests::agent::Agent::start(l.servers[i].ns(), &l.configs[i], &["--rx", "socket"]);
        l.agents.push(a);
    }
    l.expect_state(0, "Master", Duration::from_secs(20));
    l.expect_state(1, "Backup", Duration::from_secs(20));
    assert!(
        l.wait_cloud(0, Duration::from_secs(10), |s| s
            .starts_with("degraded: droplet id unknown")),
        "{}",
        l.cloud_state(0)
    );
    assert!(
        l.wait_cloud(1, Duration::from_secs(10), |s| s
            .starts_with("degraded: the API refused the token")),
        "{}",
        l.cloud_state(1)
    );
    assert!(l.agents[1].log().contains("DigitalOcean takeover STOPPED"));
    // The refused token is not retried: one probe only.
    std::thread::sleep(Duration::from_secs(2));
    let refused = l
        .double
        .requests()
        .iter()
        .filter(|r| r.service == Service::Api && r.status == Some(401))
        .count();
    assert_eq!(refused, 1, "{}", l.logs());

    l.double.metadata_down(false);
    assert!(
        l.wait_cloud(0, Duration::from_secs(40), |s| s == "ok"),
        "{}",
        l.logs()
    );

    // Fix the token (the API now knows it) and reload.
    l.double
        .add_token(&bad, "secondary-fixed", Scope::ReadWrite);
    l.sighup(1);
    assert!(
        l.wait_cloud(1, Duration::from_secs(10), |s| s == format!("holder: {A}")),
        "{}",
        l.cloud_state(1)
    );
    l.assert_no_token();
    // Nor the secondary's first token (never used here), for good measure.
    for a in &l.agents {
        assert!(!a.log().contains(good.as_str()));
    }
}

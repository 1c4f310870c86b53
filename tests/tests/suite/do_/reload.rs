//! Reload with a changed `digitalocean { }` block (issue 13, item 5): the Master keeps its
//! state (no transition) and the takeover restarts with the new settings at once: a reserved
//! IP moved away by hand comes back without waiting for the old `reconcile_interval`.

use std::time::Duration;

use xvrrp_tests::site::cloud::{DoLab, Opts, A, B, IP};

#[test]
fn a_changed_cloud_block_is_applied_in_place_on_the_master() {
    let l = DoLab::new(Opts {
        reconcile: 600,
        ..Opts::default()
    });
    assert!(
        l.wait_cloud(0, Duration::from_secs(10), |s| s == "ok"),
        "{}",
        l.logs()
    );
    let before = l.agents[0]
        .instance()
        .expect("status")
        .last_transition_at_text();
    // Moved away by hand: with a 600 s reconcile the Master would not notice for 10 minutes.
    l.double.set_holder(IP, Some(B));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(l.double.holder(IP), Some(B), "nothing re-checks yet");

    let conf = l.configs[0].replace("reconcile_interval 600", "reconcile_interval 5");
    assert_ne!(conf, l.configs[0]);
    l.agents[0].set_config(&conf);
    let (code, report, err) = l.agents[0].reload();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.expect("a report").changed, ["VI_1"]);
    assert!(
        l.wait_holder(A),
        "the new takeover task checks at once and takes the IP back:\n{}",
        l.logs()
    );
    let i = l.agents[0].instance().expect("status");
    assert_eq!(i.state().as_deref(), Some("Master"));
    assert_eq!(i.last_transition_at_text(), before, "no transition");
    l.assert_no_token();
}

//! The Master's interface deleted and created again under the same name (issue 11, item 1), as
//! NetworkManager, ifupdown and container runtimes do with veth, bond and VLAN devices. The new
//! device has a new ifindex: sockets bound to the old one hear and send nothing, XDP stays on
//! the dead device. Required: the instance is in Fault while the interface is gone, the Backup
//! takes over, and when the device is back the agent re-opens its sockets (group joined, XDP
//! attached again, source read again) and the primary preempts, hearing its peer on the new
//! device; no address is held by two nodes for longer than an election takes.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rstest::rstest;
use xvrrp_tests::{agent::Rx, status::Counter};

use super::xvrrp::{Flavour, Site, Speaker};

/// Samples who holds the VIP every ~20 ms until `stop`; returns the longest time both held it.
fn longest_overlap(site: &Site, stop: &AtomicBool) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<Instant> = None;
    // Reads every interface (eth1 may not exist), never panics.
    let holds = |i: usize| {
        let out = site
            .host(i)
            .ns()
            .command("ip")
            .args(["-o", "addr", "show"])
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {}/", site.vip)))
    };
    while !stop.load(Ordering::Relaxed) {
        let both = holds(0) && holds(1);
        match (both, since) {
            (true, None) => since = Some(Instant::now()),
            (true, Some(t)) => longest = longest.max(t.elapsed()),
            (false, _) => since = None,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    longest
}

fn agent(s: &Speaker) -> &xvrrp_tests::agent::Agent {
    match s {
        Speaker::X(a) => a,
        Speaker::K(_) => unreachable!("xvrrp on both servers"),
    }
}

#[rstest]
fn recreated_interface_faults_then_rejoins(
    #[values(Rx::Xdp, Rx::Socket)] rx: Rx,
    #[values(Flavour::TutorialV2, Flavour::V3Fast)] f: Flavour,
) {
    let site = Site::new(f, rx, [false, false], "");
    let (primary, secondary) = (agent(&site.vrrp[0]), agent(&site.vrrp[1]));
    let peer = site.host(1).ip4().to_string();
    // Two advert intervals plus Master_Down_Interval: the bound on any overlap.
    let bound = 2 * f.interval() + f.down();
    let stop = AtomicBool::new(false);
    /// Stops the sampler also when an assertion fails (the scope waits for it).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let sampler = s.spawn(|| longest_overlap(&site, &stop));
        let guard = StopOnDrop(&stop);

        // Deleted: the primary is in Fault while its interface is gone; the Backup takes over.
        let t0 = Instant::now();
        site.lab.delete_link(site.host(0));
        site.expect(
            "primary's eth1 deleted",
            t0,
            "Secondary",
            f.down() + Duration::from_secs(5),
        );
        assert!(
            primary
                .wait_state("Fault", Duration::from_secs(5))
                .is_some(),
            "the primary is in Fault while its interface is gone:\n{}",
            site.logs()
        );
        // ...and stays there: nothing to send on, so never Master.
        std::thread::sleep(f.down() + f.interval());
        assert_eq!(primary.state().as_deref(), Some("Fault"), "{}", site.logs());
        let before = primary
            .counters()
            .map_or(0, |c| c.sum(&peer, Counter::AdvertRcvd));

        // Created again: re-opened, it hears the secondary on the new device and preempts.
        let t1 = Instant::now();
        site.lab.recreate_link(site.host(0));
        site.expect(
            "primary's eth1 re-created",
            t1,
            "Primary",
            Duration::from_secs(15),
        );
        assert!(
            secondary.wait_state("Backup", bound).is_some(),
            "the secondary hears the primary on its new device:\n{}",
            site.logs()
        );
        let after = primary
            .counters()
            .map_or(0, |c| c.sum(&peer, Counter::AdvertRcvd));
        assert!(
            after > before,
            "the primary received the secondary's adverts on the new device ({before} -> \
             {after}):\n{}",
            site.logs()
        );
        let st = primary.status().expect("status");
        let path = st.rx_path().unwrap_or_default();
        assert_eq!(
            path.starts_with("xdp"),
            rx == Rx::Xdp,
            "receive path after re-open: {path}"
        );
        // Settled: the primary alone holds the VIP.
        std::thread::sleep(bound);
        assert_eq!(site.holder(), [true, false], "{}", site.logs());
        drop(guard);
        let overlap = sampler.join().expect("sampler");
        eprintln!(
            "[recreate {f:?} {rx}] longest time both held the VIP: {overlap:?} (bound {bound:?})"
        );
        assert!(
            overlap <= bound,
            "both held the VIP for {overlap:?} (> {bound:?}):\n{}",
            site.logs()
        );
    });
    let log = primary.log();
    assert!(log.contains("re-opened on the new device"), "{log}");
}

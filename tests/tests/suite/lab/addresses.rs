//! Address changes that fail (issue 11, item 2): a virtual address whose add the kernel refuses
//! (here: its device does not exist yet, as with a bond or VLAN brought up after the agent) is
//! retried with backoff while the instance is Master, shown in `xvrrp status` as configured but
//! absent (read back from the interface), reported loudly, and added as soon as it can be; the
//! instance's other address is not held back by it.

use std::time::{Duration, Instant};

use xvrrp::state::VipState;
use xvrrp_tests::{
    agent::{has_addr, Agent},
    site::{expect_state, Site, Timers, ELECTION},
};

fn addresses(a: &Agent) -> Vec<VipState> {
    a.status()
        .and_then(|s| s.0.instances.first().map(|i| i.addresses.clone()))
        .unwrap_or_default()
}

fn find<'a>(v: &'a [VipState], addr: &str) -> &'a VipState {
    v.iter()
        .find(|a| a.address == addr)
        .unwrap_or_else(|| panic!("{addr} in {v:?}"))
}

#[test]
fn a_refused_address_is_retried_shown_absent_and_added_once_possible() {
    let site = Site::new(Timers::Tutorial);
    let extra = "    virtual_ipaddress_excluded {\n        10.99.0.1/24 dev eth2\n    }\n";
    // eth2 exists on neither server yet; the primary's add is refused (ENODEV).
    let mut agents = site.start_each(None, [("", extra), ("", "")]);
    expect_state(&agents, 0, "Master", ELECTION);
    let vip = format!("{}/24", site.vip);
    let t0 = Instant::now();
    let mut seen_retrying = None;
    while t0.elapsed() < Duration::from_secs(5) {
        let a = addresses(&agents[0]);
        let bad = find(&a, "10.99.0.1/24");
        if bad.failures >= 3 {
            seen_retrying = Some(a);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = seen_retrying.unwrap_or_else(|| {
        panic!(
            "the refused add is retried: {:?}\n{}",
            addresses(&agents[0]),
            agents[0].log()
        )
    });
    let good = find(&a, &vip);
    assert_eq!(
        (good.wanted, good.present, good.ours),
        (true, Some(true), true),
        "the other address is not held back: {good:?}"
    );
    let bad = find(&a, "10.99.0.1/24");
    assert!(bad.wanted, "{bad:?}");
    assert_eq!(bad.present, None, "eth2 cannot be read: {bad:?}");
    assert_eq!(bad.retrying.as_deref(), Some("add"), "{bad:?}");
    assert!(bad.last_error.is_some(), "{bad:?}");
    let log = agents[0].log();
    assert!(
        log.contains("ERROR VI_1: cannot add 10.99.0.1/24 on eth2"),
        "reported loudly:\n{log}"
    );
    let text = agents[0].status_text();
    assert!(
        text.contains("address 10.99.0.1/24 dev eth2: unreadable (NOT AS WANTED)"),
        "{text}"
    );

    // The device appears: the address follows within one retry gap (at most 5 s).
    let t1 = Instant::now();
    // (This kernel has no dummy devices: a veth pair inside the namespace.)
    let ns = site.primary.ns();
    ns.ip(&[
        "link", "add", "eth2", "type", "veth", "peer", "name", "eth2p",
    ]);
    ns.ip(&["link", "set", "eth2", "up"]);
    ns.ip(&["link", "set", "eth2p", "up"]);
    let mut added = None;
    while t1.elapsed() < Duration::from_secs(8) {
        if has_addr(site.primary.ns(), "eth2", "10.99.0.1") {
            added = Some(t1.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = added.unwrap_or_else(|| panic!("never added:\n{}", agents[0].log()));
    eprintln!("[addresses] added {took:?} after eth2 appeared");
    let bad = find(&addresses(&agents[0]), "10.99.0.1/24").clone();
    assert_eq!(
        (bad.present, bad.ours, bad.retrying.clone()),
        (Some(true), true, None),
        "{bad:?}"
    );
    assert!(agents[0].log().contains("added 10.99.0.1/24 on eth2 after"));

    // Leaving Master removes it (ours), and status says so.
    agents[0].stop_with(libc::SIGTERM);
    assert!(
        !has_addr(site.primary.ns(), "eth2", "10.99.0.1"),
        "removed at shutdown"
    );
}

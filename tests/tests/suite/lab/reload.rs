//! Reload without a flap (issue 13, item 5): `xvrrp reload` (and SIGHUP) on the running Master
//! of the tutorial pair, asserting on the adverts captured on the switch and on status.

use std::time::{Duration, Instant};

use xvrrp_tests::{
    agent::{has_addr, Agent},
    lab::{Advert, Capture},
    site::{expect_state, Site, Timers, ELECTION},
};

/// The primary's adverts for `vrid` captured since `since` (capture time, seconds).
fn adverts_of(cap: &Capture, src: &str, vrid: u8, since: f64) -> Vec<(f64, Advert)> {
    cap.timed_adverts()
        .into_iter()
        .filter(|(t, a)| *t >= since && a.src.to_string() == src && a.vrid == vrid)
        .collect()
}

fn largest_gap(adverts: &[(f64, Advert)]) -> Duration {
    adverts
        .windows(2)
        .map(|w| Duration::from_secs_f64(w[1].0 - w[0].0))
        .max()
        .unwrap_or_default()
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn transitions(a: &Agent) -> (u64, u64, Option<String>) {
    let i = a.instance().expect("status");
    let c = i.counters().expect("counters");
    (
        c.become_master,
        c.release_master,
        i.last_transition_at_text().into(),
    )
}

#[test]
fn reload_keeps_unchanged_instances_and_changes_others_in_place() {
    let site = Site::new(Timers::Tutorial);
    let agents = site.start("", "");
    expect_state(&agents, 0, "Master", ELECTION);
    let primary = &agents[0];
    let src = site.primary.ip4().to_string();
    let cap = site.lab.capture_switch("ip proto 112");
    std::thread::sleep(Duration::from_millis(2500));
    let before = transitions(primary);

    // 1. The same configuration (a comment added): nothing changes.
    let t0 = now_epoch();
    let conf = site.conf(&site.primary, "MASTER", 200, "", "");
    primary.set_config(&format!("# reloaded\n{conf}"));
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(0), "{err}");
    let report = report.expect("a report");
    assert_eq!(report.unchanged, ["VI_1"], "{report:?}");
    assert!(
        report.changed.is_empty() && report.rebuilt.is_empty(),
        "{report:?}"
    );
    std::thread::sleep(Duration::from_millis(3500));
    let seen = adverts_of(&cap, &src, 33, t0 - 1.5);
    assert!(seen.len() >= 4, "adverts kept flowing: {seen:?}");
    assert!(seen.iter().all(|(_, a)| a.prio == 200), "{seen:?}");
    let gap = largest_gap(&seen);
    eprintln!("[reload] unchanged: largest advert gap {gap:?}");
    assert!(gap <= Duration::from_millis(1150), "gap {gap:?}");
    assert_eq!(transitions(primary), before, "no transition");

    // 2. Priority 200 -> 180 and one more address: changed in place, no transition.
    let extra = "    virtual_ipaddress_excluded {\n        10.88.0.101/24 dev eth1\n    }\n";
    let t1 = now_epoch();
    primary.set_config(&site.conf(&site.primary, "MASTER", 180, "", extra));
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.expect("a report").changed, ["VI_1"]);
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(2), || has_addr(
            site.primary.ns(),
            "eth1",
            "10.88.0.101"
        )),
        "the new address is added at once"
    );
    std::thread::sleep(Duration::from_millis(3500));
    let seen = adverts_of(&cap, &src, 33, t1 - 1.5);
    assert!(
        seen.iter().all(|(_, a)| a.prio != 0),
        "no priority 0: {seen:?}"
    );
    assert!(
        seen.iter().rev().take(2).all(|(_, a)| a.prio == 180),
        "the new priority is advertised: {seen:?}"
    );
    let gap = largest_gap(&seen);
    eprintln!("[reload] priority and address changed: largest advert gap {gap:?}");
    assert!(gap <= Duration::from_millis(1150), "gap {gap:?}");
    assert_eq!(transitions(primary), before, "no transition");
    let i = primary.instance().expect("status");
    assert_eq!(i.0.as_ref().map(|i| i.base_priority), Some(180));
    assert_eq!(agents[1].state().as_deref(), Some("Backup"));

    // 3. A broken file: rejected with FILE:LINE:COLUMN, exit 1, nothing changes.
    primary.set_config(&format!(
        "{}\nvrrp_instance VI_9 {{\n    priority 300\n}}\n",
        site.conf(&site.primary, "MASTER", 180, "", extra)
    ));
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(1), "{err} {report:?}");
    let report = report.expect("a report");
    assert!(!report.applied);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("xvrrp.conf:") && e.contains("priority")),
        "{report:?}"
    );
    let (code, err) = primary.reload_text();
    assert_eq!(code, Some(1));
    assert!(
        err.contains("xvrrp.conf:") && err.contains("reload rejected"),
        "{err}"
    );
    assert_eq!(primary.state().as_deref(), Some("Master"));
    assert!(has_addr(site.primary.ns(), "eth1", "10.88.0.101"));

    // 4. The address removed again (by SIGHUP this time): it leaves the interface.
    primary.set_config(&site.conf(&site.primary, "MASTER", 180, "", ""));
    let pid = primary.pid().expect("pid");
    // SAFETY: kill(2) on the agent we started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(3), || !has_addr(
            site.primary.ns(),
            "eth1",
            "10.88.0.101"
        )),
        "removed on reload:\n{}",
        primary.log()
    );
    assert!(has_addr(site.primary.ns(), "eth1", &site.vip.to_string()));
    assert_eq!(transitions(primary), before, "no transition");
}

#[test]
fn reload_rebuilds_removes_and_adds_instances() {
    let site = Site::new(Timers::V3Fast);
    let agents = site.start("", "");
    expect_state(&agents, 0, "Master", ELECTION);
    let primary = &agents[0];
    let src = site.primary.ip4().to_string();
    let cap = site.lab.capture_switch("ip proto 112");
    std::thread::sleep(Duration::from_millis(500));
    let second = "vrrp_instance VI_2 {
    interface eth1
    state BACKUP
    priority 150
    virtual_router_id 35
    version 3
    advert_int 0.1
    virtual_ipaddress {
        10.88.0.102/24 dev eth1
    }
}
";

    // A new instance starts; the running one is left alone.
    let t0 = Instant::now();
    primary.set_config(&site.conf(&site.primary, "MASTER", 200, second, ""));
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(0), "{err}");
    let report = report.expect("a report");
    assert_eq!(
        (report.unchanged.clone(), report.added.clone()),
        (vec!["VI_1".to_owned()], vec!["VI_2".to_owned()]),
        "{report:?}"
    );
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(3), || has_addr(
            site.primary.ns(),
            "eth1",
            "10.88.0.102"
        )),
        "VI_2 becomes Master and adds its address:\n{}",
        primary.log()
    );
    eprintln!("[reload] VI_2 Master {:?} after the reload", t0.elapsed());
    assert_eq!(
        agents[1].state().as_deref(),
        Some("Backup"),
        "VI_1 undisturbed"
    );

    // VI_2 removed: it leaves as on shutdown (priority 0, address removed).
    let t1 = now_epoch();
    primary.set_config(&site.conf(&site.primary, "MASTER", 200, "", ""));
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.expect("a report").removed, ["VI_2"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_addr(site.primary.ns(), "eth1", "10.88.0.102"));
    let left = adverts_of(&cap, &src, 35, t1 - 0.05);
    assert!(
        left.iter().any(|(_, a)| a.prio == 0),
        "VI_2 sent priority 0 when removed: {left:?}\n{}\n{}",
        cap.text()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        primary.log()
    );
    assert_eq!(
        agents[1].state().as_deref(),
        Some("Backup"),
        "VI_1 undisturbed"
    );

    // VI_1's VRID changed: rebuilt. The old router leaves with priority 0, the new one starts.
    let t2 = now_epoch();
    let conf = site
        .conf(&site.primary, "MASTER", 200, "", "")
        .replace("virtual_router_id 33", "virtual_router_id 34");
    primary.set_config(&conf);
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.expect("a report").rebuilt, ["VI_1"]);
    std::thread::sleep(Duration::from_millis(1500));
    let old = adverts_of(&cap, &src, 33, t2 - 0.05);
    let new = adverts_of(&cap, &src, 34, t2 - 0.05);
    assert!(
        old.iter().any(|(_, a)| a.prio == 0),
        "VRID 33 left: {old:?}"
    );
    assert!(new.len() >= 3, "VRID 34 advertised: {new:?}");
    // The secondary (still VRID 33) takes over 33, as it would on a shutdown.
    expect_state(&agents, 1, "Master", Duration::from_secs(5));
    assert_eq!(primary.state().as_deref(), Some("Master"));
}

#[test]
fn reload_changes_trackers_and_notify_scripts_in_place() {
    let site = Site::new(Timers::Tutorial);
    let h = &site.primary;
    let log_a = h.dir().join("a.log");
    let log_b = h.dir().join("b.log");
    let a = h.script("a.sh", &format!("echo \"$3\" >> {}\n", log_a.display()));
    let b = h.script("b.sh", &format!("echo \"$3\" >> {}\n", log_b.display()));
    let notify = |p: &std::path::Path| format!("    notify \"{}\"\n", p.display());
    let agents = site.start_each(None, [("", &notify(&a)), ("", "")]);
    expect_state(&agents, 0, "Master", ELECTION);
    let primary = &agents[0];
    assert!(xvrrp_tests::wait_until(Duration::from_secs(3), || {
        std::fs::read_to_string(&log_a).is_ok_and(|s| s.contains("MASTER"))
    }));
    let src = site.primary.ip4().to_string();
    let cap = site.lab.capture_switch("ip proto 112");
    let a_before = std::fs::read_to_string(&log_a).unwrap_or_default();

    // A failing tracker with weight -150 and another notify script, in place.
    let top =
        "vrrp_script chk_down {\n    script \"/bin/false\"\n    interval 1\n    weight -150\n}\n";
    let extra = format!(
        "{}    track_script {{\n        chk_down\n    }}\n",
        notify(&b)
    );
    let t0 = now_epoch();
    primary.set_config(&site.conf(&site.primary, "MASTER", 200, top, &extra));
    let (code, report, err) = primary.reload();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.expect("a report").changed, ["VI_1"]);
    // The tracker runs and fails: 200 - 150 = 50 < 100, the secondary preempts (the RFC's
    // election, not a flap of the reload itself).
    expect_state(&agents, 1, "Master", Duration::from_secs(10));
    expect_state(&agents, 0, "Backup", Duration::from_secs(5));
    let i = primary.instance().expect("status");
    assert_eq!(i.effective_priority(), Some(50));
    assert!(i.tracker("script chk_down").is_some(), "{i:?}");
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(3), || {
            std::fs::read_to_string(&log_b).is_ok_and(|s| s.contains("BACKUP"))
        }),
        "the new notify script ran for the new role:\n{}",
        primary.log()
    );
    let a_after = std::fs::read_to_string(&log_a).unwrap_or_default();
    assert_eq!(a_after, a_before, "the old script ran no more");
    let seen = adverts_of(&cap, &src, 33, t0 - 1.5);
    assert!(
        seen.iter().all(|(_, a)| a.prio != 0),
        "no priority 0: {seen:?}"
    );
    assert!(
        seen.iter().any(|(_, a)| a.prio == 50),
        "priority 50 advertised: {seen:?}"
    );
}

/// VRID 33's adverts from `peer` that the node's receive path counted as valid.
fn adverts_heard(a: &Agent, peer: &str) -> u64 {
    let Some(c) = a.counters() else { return 0 };
    c.0.peers
        .iter()
        .filter(|r| r.vrid == 33 && r.peer == peer)
        .filter_map(|r| {
            r.counters
                .0
                .get(&xvrrp::packet::Counter::AdvertRcvd)
                .copied()
        })
        .sum()
}

/// The XDP advert ring is sized for the interface's instances at attach time (the tutorial's
/// one instance at 1 s: the 64 KiB floor). A reload that adds instances advertising faster than
/// it holds (six at 10 ms: 600 adverts/s, 128 KiB) attaches XDP again with a larger ring: the
/// receive path stays XDP and the Backup keeps hearing its Master through it, with no transition.
#[test]
fn reload_that_outgrows_the_advert_ring_attaches_again() {
    let site = Site::new(Timers::Tutorial);
    let agents = site.start("", "");
    expect_state(&agents, 0, "Master", ELECTION);
    let backup = &agents[1];
    let master_ip = site.primary.ip4().to_string();
    let rx = backup.status().map(|s| s.rx_text()).unwrap_or_default();
    if !rx.contains("xdp") {
        eprintln!("SKIP: XDP does not attach here ({rx})");
        return;
    }
    let before = transitions(backup);
    let fast: String = (40..46)
        .map(|v| {
            format!(
                "vrrp_instance F_{v} {{\n    interface eth1\n    state BACKUP\n    priority 100\n    \
                 virtual_router_id {v}\n    version 3\n    advert_int 0.01\n    \
                 virtual_ipaddress {{\n        10.88.0.{v}/32 dev eth1\n    }}\n}}\n"
            )
        })
        .collect();
    backup.set_config(&site.conf(&site.secondary, "BACKUP", 100, &fast, ""));
    let (code, report, err) = backup.reload();
    assert_eq!(code, Some(0), "{err}");
    let report = report.expect("a report");
    assert_eq!(report.added.len(), 6, "{report:?}");
    assert_eq!(report.unchanged, ["VI_1"], "{report:?}");
    assert!(
        backup.log().contains("advert ring"),
        "the ring was found too small and XDP attached again:\n{}",
        backup.log()
    );
    // Through the new program: the Master's adverts are counted again (the new program's
    // counters start from zero) and keep coming.
    let heard = |n: u64| {
        xvrrp_tests::wait_until(Duration::from_secs(5), || {
            adverts_heard(backup, &master_ip) >= n
        })
    };
    assert!(
        heard(1),
        "the Backup hears its Master again:\n{}",
        backup.log()
    );
    let now = adverts_heard(backup, &master_ip);
    assert!(heard(now + 2), "and keeps hearing it:\n{}", backup.log());
    let rx = backup.status().map(|s| s.rx_text()).unwrap_or_default();
    assert!(rx.contains("xdp"), "still received by XDP: {rx}");
    // VI_1 (VRID 33; the new instances come first in the file).
    let vi_1 = backup
        .status()
        .and_then(|s| s.instances().into_iter().find(|i| i.vrid() == Some(33)))
        .expect("VI_1 in status");
    assert_eq!(vi_1.state().as_deref(), Some("Backup"));
    let become_master = vi_1.counters().map(|c| c.become_master);
    assert_eq!(become_master, Some(before.0), "VI_1 never became Master");
    assert_eq!(agents[0].state().as_deref(), Some("Master"));
}

/// An instance a reload adds on an interface the agent did not use before is watched like the
/// others: when its device is deleted the instance goes to Fault at once, also as a Backup (which
/// sends nothing, so no send error would tell it) with `dont_track_primary` (so the link state
/// of its own interface does not either), and when a device of that name is back it is opened
/// again and the instance rejoins.
#[test]
fn reload_added_interface_is_watched_for_deletion() {
    let site = Site::new(Timers::Tutorial);
    let agents = site.start("", "");
    expect_state(&agents, 0, "Master", ELECTION);
    let (primary, secondary) = (&agents[0], &agents[1]);
    let (ns, ns2) = (site.primary.ns(), site.secondary.ns());
    // A second link between the two servers: eth9 on the primary, eth9p on the secondary.
    let make = || {
        ns.ip(&[
            "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p",
        ]);
        ns.ip(&["link", "set", "eth9p", "netns", ns2.name()]);
        ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "eth9"]);
        ns2.ip(&["addr", "add", "10.99.0.2/24", "dev", "eth9p"]);
        ns.ip(&["link", "set", "eth9", "up"]);
        ns2.ip(&["link", "set", "eth9p", "up"]);
    };
    make();
    let vi_9 = |dev: &str, prio: u8| {
        format!(
            "vrrp_instance VI_9 {{\n    interface {dev}\n    state BACKUP\n    priority {prio}\n    \
             dont_track_primary\n    virtual_router_id 9\n    \
             virtual_ipaddress {{\n        10.99.0.100/24 dev {dev}\n    }}\n}}\n"
        )
    };
    secondary.set_config(&site.conf(&site.secondary, "BACKUP", 100, &vi_9("eth9p", 200), ""));
    primary.set_config(&site.conf(&site.primary, "MASTER", 200, &vi_9("eth9", 150), ""));
    for a in [secondary, primary] {
        let (code, report, err) = a.reload();
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(report.expect("a report").added, ["VI_9"]);
    }
    let state_of = |a: &Agent, vrid: u8| {
        a.status()
            .and_then(|s| s.instances().into_iter().find(|i| i.vrid() == Some(vrid)))
            .and_then(|i| i.state())
    };
    let wait = |a: &Agent, state: &str, secs: u64| {
        xvrrp_tests::wait_until(Duration::from_secs(secs), || {
            state_of(a, 9).as_deref() == Some(state)
        })
    };
    assert!(wait(secondary, "Master", 8), "{}", secondary.log());
    assert!(
        wait(primary, "Backup", 3),
        "the primary's VI_9 hears the secondary's: Backup, was {:?}\n{}",
        state_of(primary, 9),
        primary.log()
    );

    // The link is deleted (both ends). A Backup sends nothing: only the device watch tells it,
    // well before its Master_Down_Interval (3.4 s) would make it try to become Master.
    ns.ip(&["link", "del", "eth9"]);
    let t = Instant::now();
    assert!(
        wait(primary, "Fault", 1),
        "VI_9 in Fault once eth9 is gone, was {:?}\n{}",
        state_of(primary, 9),
        primary.log()
    );
    eprintln!(
        "[reload] VI_9 in Fault {:?} after its device was deleted",
        t.elapsed()
    );
    assert_eq!(
        state_of(primary, 33).as_deref(),
        Some("Master"),
        "VI_1 undisturbed"
    );

    make();
    assert!(
        wait(primary, "Backup", 10),
        "VI_9 rejoins once eth9 is re-created, was {:?}\n{}",
        state_of(primary, 9),
        primary.log()
    );
    assert!(wait(secondary, "Master", 10), "{}", secondary.log());
    assert!(!has_addr(ns, "eth9", "10.99.0.100"));
}

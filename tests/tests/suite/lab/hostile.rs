//! Issue 11: a hostile host on the segment. Item 3: forged adverts flap an instance ten times in
//! a second while its notify script is slow; the scripts that run end with the final role and
//! nothing runs long after. Item 7: a flood to ff02::12 on the IPv6 unicast socket path is
//! discarded a bounded batch at a time and counted, while the real adverts keep the Backup a
//! Backup.

use std::{
    net::{IpAddr, Ipv6Addr},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use xvrrp::packet::{self, Advert, EthParams, TxMeta};
use xvrrp_tests::{
    agent::Agent,
    forge::{flood_frames, send_frames_paced},
    in_netns,
    lab::Lab,
    wait_until,
};

/// An Ethernet frame carrying `advert` from `src` to `dst` (TTL / hop limit 255).
fn frame(advert: &Advert, src: IpAddr, dst: IpAddr, dst_mac: [u8; 6]) -> Vec<u8> {
    let meta = TxMeta::new(src, dst);
    let eth = EthParams {
        dst_mac,
        src_mac: [0x02, 0, 0, 0, 0, 0x66],
        vlan: None,
    };
    packet::build_frame(advert, &meta, &eth).unwrap()
}

/// Item 3. The victim (VRRPv3, 0.1 s, priority 100, unicast with `peer`) runs a `notify` script
/// that records its start, sleeps 1 s and records the role it was given. `peer` forges its
/// adverts: priority 200 keeps the victim Backup; then five times priority 0 (the victim
/// becomes Master after Skew_Time, 61 ms) and priority 200 (back to Backup at once), 100 ms
/// apart, and a last priority 0 (Master, which it stays: nobody else speaks). Eleven
/// transitions in about a second, each 1 s script run.
#[test]
fn notify_scripts_under_flapping_end_with_the_final_role() {
    let lab = Lab::new();
    let victim = lab.add_host("victim");
    let peer = lab.add_host("peer");
    let vip = lab.addr4(100);
    let roles = victim.dir().join("roles");
    let script = victim.script(
        "notify.sh",
        &format!(
            "echo \"start $3\" >> {r}\nsleep 1\necho \"$3\" >> {r}\n",
            r = roles.display()
        ),
    );
    let conf = format!(
        "vrrp_instance VI_1 {{
    interface eth1
    state BACKUP
    priority 100
    virtual_router_id 44
    version 3
    advert_int 0.1
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth1
    }}
    notify \"{script}\"
    notify_timeout 5
}}
",
        me = victim.ip4(),
        peer = peer.ip4(),
        script = script.display()
    );
    let (src, dst) = (IpAddr::V4(peer.ip4()), IpAddr::V4(victim.ip4()));
    let mac = victim.ns().mac("eth1");
    let advert = |prio: u8| {
        frame(
            &Advert::v3(44, prio, vec![IpAddr::V4(vip)], 10),
            src,
            dst,
            mac,
        )
    };
    let (higher, zero) = (advert(200), advert(0));

    // A Master at 200 before the victim starts, so it never takes over on its own.
    let stop = Arc::new(AtomicBool::new(false));
    let keepalive = {
        let (stop, f, ns) = (stop.clone(), higher.clone(), peer.ns().name().to_owned());
        std::thread::spawn(move || {
            in_netns(&ns, move || {
                while !stop.load(Ordering::Relaxed) {
                    send_frames_paced("eth1", std::slice::from_ref(&f));
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        })
    };
    let mut a = Agent::start(victim.ns(), &conf, &["--rx", "socket"]);
    let read = || std::fs::read_to_string(&roles).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read().ends_with("BACKUP\n")
            && a.instance().is_some_and(|i| i
                .0
                .as_ref()
                .is_some_and(|s| s.notify.pending == 0))),
        "startup BACKUP notified: {:?}\n{}",
        read(),
        a.log()
    );
    assert_eq!(a.state().as_deref(), Some("Backup"), "{}", a.log());
    let counters = || a.instance().and_then(|i| i.counters()).unwrap();
    let before = counters();
    let lines_before = read().lines().count();

    // Watch the queue while it flaps: never more than one running and one waiting.
    let max_pending = AtomicU64::new(0);
    let watching = AtomicBool::new(true);
    let t_last = std::thread::scope(|s| {
        s.spawn(|| {
            while watching.load(Ordering::Relaxed) {
                if let Some(n) = a
                    .status()
                    .and_then(|st| st.0.instances.first().map(|i| i.notify.pending))
                {
                    max_pending.fetch_max(n, Ordering::Relaxed);
                }
            }
        });
        stop.store(true, Ordering::Relaxed);
        keepalive.join().unwrap();
        let ns = peer.ns().name().to_owned();
        let (h, z) = (higher.clone(), zero.clone());
        let t = in_netns(&ns, move || {
            for _ in 0..5 {
                send_frames_paced("eth1", std::slice::from_ref(&z));
                std::thread::sleep(Duration::from_millis(100));
                send_frames_paced("eth1", std::slice::from_ref(&h));
                std::thread::sleep(Duration::from_millis(100));
            }
            send_frames_paced("eth1", std::slice::from_ref(&z));
            Instant::now()
        });
        // Let the watcher see the queue settle too.
        std::thread::sleep(Duration::from_millis(500));
        watching.store(false, Ordering::Relaxed);
        t
    });
    let flap = t_last.elapsed();
    assert!(
        wait_until(Duration::from_secs(2), || a.state().as_deref()
            == Some("Master")),
        "the last priority 0 made it Master\n{}",
        a.log()
    );
    let after = counters();
    let became = after.become_master - before.become_master;
    let released = after.release_master - before.release_master;
    eprintln!(
        "[notify flap] {became} x Master, {released} x released, max queued {}",
        max_pending.load(Ordering::Relaxed)
    );
    assert!(
        became >= 5 && released >= 4,
        "the forged adverts flapped it ({became} up, {released} down)\n{}",
        a.log()
    );

    // Within 3 s of the last transition every script has run, the last one with the final
    // role.
    let done = wait_until(Duration::from_secs(3).saturating_sub(flap), || {
        a.instance()
            .and_then(|i| i.0.map(|s| s.notify.pending == 0))
            .unwrap_or(false)
    });
    let text = read();
    assert!(
        done,
        "scripts still queued 3 s after the last transition: {text:?}\n{}",
        a.log()
    );
    let new: Vec<&str> = text.lines().skip(lines_before).collect();
    assert_eq!(new.last().copied(), Some("MASTER"), "{new:?}");
    // One at a time: each start is followed by its own end.
    for pair in new.chunks(2) {
        assert!(
            pair.len() == 2 && pair[0] == format!("start {}", pair[1]),
            "interleaved runs: {new:?}"
        );
    }
    let runs = new.len() / 2;
    assert!(
        (2..=4).contains(&runs),
        "the first transition's scripts and the last ones ran, not a backlog: {new:?}"
    );
    let st = a.instance().unwrap().0.unwrap();
    assert!(
        st.notify.replaced as usize + runs >= usize::try_from(became + released).unwrap(),
        "every transition ran or was replaced: {:?}",
        st.notify
    );
    assert!(
        max_pending.load(Ordering::Relaxed) <= 2,
        "at most one running and one waiting"
    );

    // Nothing runs long after.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read(), text, "a script ran long after the flapping stopped");
    assert_eq!(a.state().as_deref(), Some("Master"));

    // Shutdown while a script runs: STOP waits behind it, is not dropped, and the agent waits
    // for it (each script up to notify_timeout) before it exits.
    let ns = peer.ns().name().to_owned();
    in_netns(&ns, move || {
        send_frames_paced("eth1", std::slice::from_ref(&higher))
    });
    assert!(
        wait_until(Duration::from_secs(2), || a
            .instance()
            .and_then(|i| i.0)
            .is_some_and(|s| s.notify.running.as_deref() == Some("BACKUP"))),
        "the BACKUP script runs\n{}",
        a.log()
    );
    let t = Instant::now();
    assert_eq!(a.stop_with(libc::SIGTERM), Some(0), "{}", a.log());
    let took = t.elapsed();
    let text = read();
    eprintln!("[notify flap] shutdown waited {took:?} for BACKUP and STOP");
    assert!(
        text.ends_with("start BACKUP\nBACKUP\nstart STOP\nSTOP\n"),
        "BACKUP finished, then STOP ran: {text:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "the agent waited for both scripts, no longer: {took:?}"
    );
}

/// Item 7. Two xvrrp servers, VRRPv3 over IPv6 unicast at 0.1 s, receiving on raw sockets (`--rx
/// socket`). A third host floods forged higher-priority adverts to ff02::12 for 3 s: the bound
/// unicast sockets are handed every one of them (they joined the group) and must discard them a
/// bounded batch at a time while the Master's adverts keep flowing. The Backup stays Backup,
/// the Master stays Master, and the discards are counted (`interfaces[].other_destination`).
#[test]
fn group_flood_on_ipv6_unicast_socket_is_bounded_and_counted() {
    let lab = Lab::new();
    let primary = lab.add_host("primary");
    let secondary = lab.add_host("secondary");
    let attacker = lab.add_host("attacker");
    let vip: Ipv6Addr = lab.addr6(0x100);
    let conf =
        |me: &xvrrp_tests::lab::Host, peer: &xvrrp_tests::lab::Host, state: &str, prio: u8| {
            format!(
                "vrrp_instance VI_6 {{
    interface eth1
    state {state}
    priority {prio}
    virtual_router_id 61
    version 3
    advert_int 0.1
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/64 dev eth1
    }}
}}
",
                me = me.ip6().unwrap(),
                peer = peer.ip6().unwrap(),
            )
        };
    let master = Agent::start(
        primary.ns(),
        &conf(&primary, &secondary, "MASTER", 200),
        &["--rx", "socket"],
    );
    let backup = Agent::start(
        secondary.ns(),
        &conf(&secondary, &primary, "BACKUP", 100),
        &["--rx", "socket"],
    );
    assert!(
        master
            .wait_state("Master", Duration::from_secs(10))
            .is_some(),
        "{}",
        master.log()
    );
    assert!(
        backup
            .wait_state("Backup", Duration::from_secs(10))
            .is_some(),
        "{}",
        backup.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let transition = |a: &Agent| {
        a.instance()
            .map(|i| i.last_transition_at_text())
            .unwrap_or_default()
    };
    let rcvd = |a: &Agent| {
        a.instance()
            .and_then(|i| i.counters())
            .map_or(0, |c| c.advert_rcvd)
    };
    let discarded = |a: &Agent| {
        a.counters()
            .map(|c| {
                c.0.interfaces
                    .iter()
                    .map(|i| i.other_destination)
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let (t_backup, t_master) = (transition(&backup), transition(&master));
    let rcvd_before = rcvd(&backup);
    assert_eq!(discarded(&backup), 0, "nothing to discard before the flood");

    let group: Ipv6Addr = "ff02::12".parse().unwrap();
    let mac = [0x33, 0x33, 0, 0, 0, 0x12];
    let frames: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let src = IpAddr::V6(lab.addr6(0x200 + i));
            frame(
                &Advert::v3(61, 254, vec![IpAddr::V6(vip)], 10),
                src,
                IpAddr::V6(group),
                mac,
            )
        })
        .collect();
    let t0 = Instant::now();
    let sent = flood_frames(
        attacker.ns(),
        "eth1",
        frames,
        Duration::from_secs(3),
        400_000,
    );
    let took = t0.elapsed();
    eprintln!("[ff02::12 flood] sent {sent} frames in {took:?}");
    std::thread::sleep(Duration::from_millis(300));

    assert_eq!(
        backup.state().as_deref(),
        Some("Backup"),
        "{}",
        backup.log()
    );
    assert_eq!(
        master.state().as_deref(),
        Some("Master"),
        "{}",
        master.log()
    );
    assert_eq!(
        transition(&backup),
        t_backup,
        "the Backup never took over:\n{}",
        backup.log()
    );
    assert_eq!(
        transition(&master),
        t_master,
        "the Master never stepped down:\n{}",
        master.log()
    );
    // The Master's adverts (10 a second) kept arriving during the flood.
    let got = rcvd(&backup) - rcvd_before;
    let expected = took.as_millis() as u64 / 100;
    assert!(got * 10 >= expected * 8, "{got} adverts in {took:?}");
    let (d_backup, d_master) = (discarded(&backup), discarded(&master));
    let timers = master.status().map(|s| s.0.timers);
    eprintln!(
        "[ff02::12 flood] discarded: backup {d_backup}, master {d_master}; master's timers {timers:?}"
    );
    assert!(
        d_backup >= 1000 && d_master >= 1000,
        "the flood was read and counted: backup {d_backup}, master {d_master} of {sent}"
    );
}

//! The lab itself: switching, addresses, nginx lifecycle, HTTP client, partition, loss, capture,
//! and that everything is gone once the guards drop.

use std::{path::Path, time::Duration};

use xvrrp_tests::lab::{alive, Lab, Loss};

fn ns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn ping(from: &xvrrp_tests::lab::Host, to: &str) -> bool {
    xvrrp_tests::sh(from.ns().command("ping").args(["-c1", "-W1", to]))
        .status
        .success()
}

#[test]
fn hosts_talk_over_the_bridge_and_everything_is_torn_down() {
    let (names, dir, nginx_pids);
    {
        let lab = Lab::new();
        let a = lab.add_host("a");
        let b = lab.add_host("b");
        assert_eq!(a.ip4().to_string(), "10.88.0.1");
        assert_eq!(b.ip6().unwrap().to_string(), "fd00:88::2");
        assert!(a.addrs("eth1").contains(&a.ip4().into()));
        assert!(a.has_addr(a.ip6().unwrap()));
        assert!(ping(&a, "10.88.0.2"), "IPv4 across the bridge");
        assert!(ping(&a, "fd00:88::2"), "IPv6 across the bridge");

        let mut web = b.start_nginx("<h1>B</h1>\n");
        assert_eq!(lab.get(&a, b.ip4()).as_deref(), Some("<h1>B</h1>\n"));
        assert_eq!(
            lab.get(&a, b.ip6().unwrap()).as_deref(),
            Some("<h1>B</h1>\n")
        );
        assert!(web.pids().len() >= 2, "master and a worker");

        web.pause();
        let t = std::time::Instant::now();
        assert_eq!(lab.get(&a, b.ip4()), None, "a paused nginx answers nothing");
        assert!(t.elapsed() < Duration::from_secs(3), "the client times out");
        web.resume();
        assert!(lab
            .wait_body(&a, b.ip4(), "B", Duration::from_secs(5))
            .is_some());

        web.stop();
        assert!(
            !web.pid_file().exists(),
            "graceful quit removes the pid file"
        );
        assert_eq!(lab.get(&a, b.ip4()), None);
        web.start();
        let took = lab
            .wait_body(&a, b.ip4(), "B", Duration::from_secs(5))
            .unwrap();
        eprintln!("nginx restart -> first answer: {took:?}");
        web.kill();
        assert!(web.pid_file().exists(), "SIGKILL leaves the pid file");
        assert_eq!(lab.get(&a, b.ip4()), None, "workers die with the master");
        web.start();

        lab.cut(&b);
        assert!(!ping(&a, "10.88.0.2"), "cut partitions the host");
        assert!(
            b.ns().ip(&["link", "show", "eth1"]).contains("LOWER_UP"),
            "the link stays up"
        );
        lab.heal(&b);
        assert!(ping(&a, "10.88.0.2"), "heal restores it");

        lab.unplug(&b);
        assert!(xvrrp_tests::wait_until(Duration::from_secs(5), || b
            .ns()
            .ip(&["link", "show", "eth1"])
            .contains("NO-CARRIER")));
        lab.plug(&b);
        assert!(xvrrp_tests::wait_until(Duration::from_secs(5), || ping(
            &a,
            "10.88.0.2"
        )));

        lab.loss(&b, 100, Loss::All);
        assert!(!ping(&a, "10.88.0.2"), "100% loss");
        lab.loss(&b, 0, Loss::All);
        assert!(ping(&a, "10.88.0.2"), "loss removed");

        names = vec![
            lab.switch().name().to_owned(),
            a.ns().name().to_owned(),
            b.ns().name().to_owned(),
        ];
        dir = lab.dir().to_owned();
        nginx_pids = web.pids();
        assert!(names.iter().all(|n| ns_exists(n)));
        assert!(dir.exists());
        // `web` drops here, after `lab` in reverse order; either order must clean up.
    }
    for n in &names {
        assert!(!ns_exists(n), "namespace {n} left behind");
    }
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    for p in nginx_pids {
        assert!(
            xvrrp_tests::wait_until(Duration::from_secs(5), || !alive(p)),
            "nginx process {p} left behind"
        );
    }
}

#[test]
fn capture_sees_vrrp_from_a_host_and_on_the_switch() {
    let lab = Lab::new();
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let on_b = b.capture("eth1", "ip proto 112");
    let on_switch = lab.capture_switch("ip proto 112");
    // A hand-made VRRPv2 advert (vrid 9, prio 150) from a to b.
    let mut adv = vec![0x21, 9, 150, 1, 0, 1, 0, 0, 10, 88, 0, 100];
    adv.extend([0u8; 8]);
    let sum = checksum(&adv);
    adv[6..8].copy_from_slice(&sum.to_be_bytes());
    let dst = b.ip4();
    a.ns()
        .run(move || xvrrp_tests::send_raw_ipv4(dst, 112, &adv, 3));
    for cap in [&on_b, &on_switch] {
        assert!(
            xvrrp_tests::wait_until(Duration::from_secs(5), || cap.adverts().len() >= 3),
            "{}",
            cap.text()
        );
        let ads = cap.adverts();
        assert_eq!(ads[0].src, a.ip4());
        assert_eq!(ads[0].dst, b.ip4());
        assert_eq!((ads[0].version, ads[0].vrid, ads[0].prio), (2, 9, 150));
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

//! xvrrp in the namespace lab, as a user sees it (issue 3, item 6): two web servers running nginx
//! ("Primary" / "Secondary") and xvrrp, a client requesting the virtual address, and real
//! keepalived 2.2.7 peers for interop. Each scenario runs with the tutorial's config (VRRPv2,
//! unicast, PASS) and with a VRRPv3 multicast config with 0.1 s adverts, over the raw-socket
//! receive path (`--rx socket`) and over the XDP path (`--rx xdp`).
//!
//! Timing bounds are generous (a loaded CI machine); the measured figures are printed.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use rstest::rstest;
use xvrrp::packet::{self, Advert, Auth, EthParams, TxMeta};
use xvrrp_tests::{
    agent::{Agent, Rx},
    forge::{flood_frames, send_frames},
    lab::{tutorial_keepalived_conf, Host, Keepalived, Nginx, State},
    site::{self, tutorial_conf_with_vip},
    status::Counter,
};

/// Which VRRP flavour a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Flavour {
    /// The tutorial: v2, unicast, PASS, advert_int 1.
    TutorialV2,
    /// v3 multicast, advert_int 0.1.
    V3Fast,
}

impl Flavour {
    /// Master_Down_Interval of the priority-100 backup.
    pub(crate) fn down(self) -> Duration {
        match self {
            Flavour::TutorialV2 => Duration::from_micros(3_609_375),
            Flavour::V3Fast => Duration::from_micros(360_937),
        }
    }

    /// Advertisement_Interval.
    pub(crate) fn interval(self) -> Duration {
        match self {
            Flavour::TutorialV2 => Duration::from_secs(1),
            Flavour::V3Fast => Duration::from_millis(100),
        }
    }

    /// Skew_Time of the priority-100 backup.
    fn skew(self) -> Duration {
        match self {
            Flavour::TutorialV2 => Duration::from_micros(609_375),
            Flavour::V3Fast => Duration::from_micros(60_937),
        }
    }
}

fn conf(
    f: Flavour,
    me: &Host,
    peer: &Host,
    state: State,
    prio: u8,
    vip: Ipv4Addr,
    extra: &str,
) -> String {
    match f {
        Flavour::TutorialV2 => tutorial_conf_with_vip(me, peer, state, prio, vip, extra),
        Flavour::V3Fast => {
            let state = state.as_str();
            format!(
                "vrrp_instance VI_6 {{\n    interface eth1\n    state {state}\n    priority {prio}\n    \
                 virtual_router_id 51\n    version 3\n    advert_int 0.1\n    \
                 virtual_ipaddress {{\n        {vip}/24 dev eth1\n    }}\n{extra}}}\n"
            )
        }
    }
}

/// One server's VRRP speaker: xvrrp or keepalived.
pub(super) enum Speaker {
    X(Agent),
    K(Keepalived),
}

impl Speaker {
    fn log(&self) -> String {
        match self {
            Speaker::X(a) => a.log(),
            Speaker::K(k) => k.log(),
        }
    }

    /// Graceful stop: priority 0 from a Master.
    fn stop(&mut self) {
        match self {
            Speaker::X(a) => assert_eq!(a.stop_with(libc::SIGTERM), Some(0), "{}", a.log()),
            Speaker::K(k) => k.stop(),
        }
    }

    /// A crash: SIGKILL.
    fn kill(&mut self) {
        match self {
            Speaker::X(a) => {
                a.stop_with(libc::SIGKILL);
            }
            Speaker::K(k) => k.kill(),
        }
    }

    fn start(&mut self) {
        match self {
            Speaker::X(a) => a.restart(),
            Speaker::K(k) => k.start(),
        }
    }
}

/// The shared [`site::Site`] (its lab, servers, client and VIP) with nginx and a VRRP speaker on
/// each server.
pub(super) struct Site {
    base: site::Site,
    _web: [Nginx; 2],
    pub(super) vrrp: [Speaker; 2],
}

impl std::ops::Deref for Site {
    type Target = site::Site;

    fn deref(&self) -> &site::Site {
        &self.base
    }
}

impl Site {
    /// Two servers (index 0 primary, priority 200; index 1 secondary, 100) and a client.
    /// `keepalived[i]` puts keepalived instead of xvrrp on server i.
    pub(super) fn new(f: Flavour, rx: Rx, keepalived: [bool; 2], extra: &str) -> Site {
        Site::new_edited(f, rx, keepalived, extra, |_, c| c)
    }

    /// [`Site::new`], with each server's config passed through `edit` (given the peer's
    /// address) before it starts.
    fn new_edited(
        f: Flavour,
        rx: Rx,
        keepalived: [bool; 2],
        extra: &str,
        edit: impl Fn(Ipv4Addr, String) -> String,
    ) -> Site {
        let base = site::Site::new(site::Timers::Tutorial);
        let web = base.start_web();
        let mk = |i: usize| {
            let (me, state, prio) = base.servers()[i];
            let peer = base.peer_of(me);
            let c = edit(peer.ip4(), conf(f, me, peer, state, prio, base.vip, extra));
            if keepalived[i] {
                Speaker::K(me.start_keepalived(&c))
            } else {
                Speaker::X(Agent::with_rx(me.ns(), &c, rx))
            }
        };
        let vrrp = [mk(0), mk(1)];
        let site = Site {
            base,
            _web: web,
            vrrp,
        };
        site.expect("start", Instant::now(), "Primary", Duration::from_secs(20));
        for v in &site.vrrp {
            if let Speaker::X(a) = v {
                let st = a.status().unwrap();
                let path = st.rx_path().unwrap_or_default();
                assert_eq!(
                    path.starts_with("xdp"),
                    rx == Rx::Xdp,
                    "receive path {path} for --rx {rx}: {st}"
                );
            }
        }
        site
    }

    pub(super) fn logs(&self) -> String {
        format!(
            "--- primary ---\n{}\n--- secondary ---\n{}",
            self.vrrp[0].log(),
            self.vrrp[1].log()
        )
    }

    /// Waits until the client gets `body` from the VIP; prints and returns the time since `t0`.
    pub(super) fn expect(
        &self,
        what: &str,
        t0: Instant,
        body: &str,
        timeout: Duration,
    ) -> Duration {
        if self
            .lab
            .wait_body(&self.client, self.vip, body, timeout)
            .is_none()
        {
            panic!(
                "{what}: the client never got {body} from {}:\n{}",
                self.vip,
                self.logs()
            );
        }
        let took = t0.elapsed();
        eprintln!("[{what}] client sees {body} after {took:?}");
        took
    }

    /// After `settle`, nothing moved: `backup` is still Backup, the primary holds the VIP and
    /// serves the client.
    #[track_caller]
    fn assert_unmoved(&self, backup: &Agent, settle: Duration) {
        std::thread::sleep(settle);
        assert_eq!(backup.state().as_deref(), Some("Backup"));
        assert_eq!(self.holder(), [true, false]);
        assert!(self
            .lab
            .get(&self.client, self.vip)
            .is_some_and(|b| b.contains("Primary")));
    }

    /// Server `i`: 0 the primary, 1 the secondary.
    pub(super) fn host(&self, i: usize) -> &Host {
        self.base.servers()[i].0
    }

    /// Does `act` to the primary's speaker, then waits until the client gets `body` from the
    /// VIP (see [`Site::expect`]); returns the time since the act.
    fn primary_then(
        &mut self,
        what: &str,
        act: fn(&mut Speaker),
        body: &str,
        timeout: Duration,
    ) -> Duration {
        let t = Instant::now();
        act(&mut self.vrrp[0]);
        self.expect(what, t, body, timeout)
    }

    pub(super) fn holder(&self) -> [bool; 2] {
        [
            self.host(0).has_addr(self.vip),
            self.host(1).has_addr(self.vip),
        ]
    }
}

/// a–d: election, SIGKILL failover, SIGTERM handover, return and preemption.
fn failover_scenarios(f: Flavour, rx: Rx) {
    let mut site = Site::new(f, rx, [false, false], "");
    assert_eq!(
        site.holder(),
        [true, false],
        "only the primary holds the VIP:\n{}",
        site.logs()
    );

    // b. SIGKILL of the Master's agent: the Backup answers within Master_Down_Interval + margin.
    let took = site.primary_then(
        "SIGKILL master",
        Speaker::kill,
        "Secondary",
        f.down() + Duration::from_secs(5),
    );
    // The Backup's timer runs from the last advert it received, which may be up to one
    // interval older than the kill.
    assert!(
        took + Duration::from_millis(50) >= f.down() - f.interval(),
        "not before Master_Down_Interval: {took:?}"
    );

    // d. The primary comes back (removing the VIP its killed agent left) and preempts.
    site.primary_then(
        "primary restarted",
        Speaker::start,
        "Primary",
        Duration::from_secs(15),
    );

    // c. SIGTERM: priority 0, the Backup takes over within Skew_Time + margin.
    site.primary_then(
        "SIGTERM master",
        Speaker::stop,
        "Secondary",
        f.skew() + Duration::from_secs(2),
    );
    assert_eq!(
        site.holder(),
        [false, true],
        "the stopped primary released the VIP"
    );

    site.primary_then(
        "primary back",
        Speaker::start,
        "Primary",
        Duration::from_secs(15),
    );
    assert!(xvrrp_tests::wait_until(Duration::from_secs(5), || site
        .holder()
        == [true, false]));
}

/// d. With `nopreempt` (both BACKUP), the returning primary stays Backup.
fn nopreempt_scenario(f: Flavour, rx: Rx) {
    let site = site::Site::new(site::Timers::Tutorial);
    let (lab, p, s, client, vip) = (
        &site.lab,
        &site.primary,
        &site.secondary,
        &site.client,
        site.vip,
    );
    let _web = site.start_web();
    let mut a = Agent::start(
        p.ns(),
        &conf(f, p, s, State::Backup, 200, vip, "nopreempt\n"),
        &rx.args(),
    );
    // With `nopreempt` on both, whichever Master_Down_Timer fires first wins for good; with the
    // 0.1 s timers the primary's lead over the secondary's is only ~40 ms, which a busy machine
    // can eat. The primary is let become Master before the secondary starts.
    a.expect_state("Master", Duration::from_secs(10));
    let b = Agent::start(
        s.ns(),
        &conf(f, s, p, State::Backup, 100, vip, "nopreempt\n"),
        &rx.args(),
    );
    assert!(
        lab.wait_body(client, vip, "Primary", Duration::from_secs(20))
            .is_some(),
        "{}",
        a.log()
    );
    // The secondary must be receiving (its XDP attach and instance start follow the control
    // socket that Agent::start waits for) before the primary says goodbye.
    b.expect_state("Backup", Duration::from_secs(10));
    a.stop_with(libc::SIGTERM);
    assert!(
        lab.wait_body(client, vip, "Secondary", Duration::from_secs(5))
            .is_some(),
        "{}",
        b.log()
    );
    a.restart();
    assert!(a.wait_state("Backup", Duration::from_secs(5)).is_some());
    std::thread::sleep(f.down() * 2);
    assert_eq!(
        a.state().as_deref(),
        Some("Backup"),
        "nopreempt: no preemption\n{}",
        a.log()
    );
    assert_eq!(
        lab.get(client, vip)
            .as_deref()
            .map(|b| b.contains("Secondary")),
        Some(true)
    );
}

/// e. Interop with keepalived 2.2.7: `ka_primary` puts keepalived on the primary (and xvrrp on
/// the secondary), else the other way round; the Master fails over both ways.
fn interop_scenario(f: Flavour, rx: Rx, ka_primary: bool) {
    let mut site = Site::new(f, rx, [ka_primary, !ka_primary], "");
    // The primary leaves (priority 0): the secondary takes over.
    site.primary_then(
        "interop: primary stops",
        Speaker::stop,
        "Secondary",
        f.skew() + Duration::from_secs(3),
    );
    // It comes back and preempts.
    site.primary_then(
        "interop: primary returns",
        Speaker::start,
        "Primary",
        Duration::from_secs(15),
    );
    // The primary crashes: the secondary times it out.
    site.primary_then(
        "interop: primary crashes",
        Speaker::kill,
        "Secondary",
        f.down() + Duration::from_secs(5),
    );
    // The secondary now leaves while the primary is down and comes back... and the primary
    // returns: it preempts the secondary.
    site.primary_then(
        "interop: primary back after crash",
        Speaker::start,
        "Primary",
        Duration::from_secs(15),
    );
    if let Speaker::X(a) = &site.vrrp[usize::from(ka_primary)] {
        let c = a.counters().unwrap();
        let peer = site.host(usize::from(!ka_primary)).ip4().to_string();
        let row = c.peer(&peer);
        let row = row.unwrap_or_else(|| panic!("no counters for keepalived peer {peer}: {c}"));
        assert!(row.try_get(Counter::AdvertRcvd).unwrap() > 0, "{c}");
        let drops: u64 = row.sum_except(&[Counter::AdvertRcvd, Counter::PriZeroRcvd]);
        assert_eq!(drops, 0, "keepalived's adverts pass every check: {c}");
    }
}

fn frame(advert: &Advert, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, dst_mac: [u8; 6]) -> Vec<u8> {
    let mut meta = TxMeta::new(IpAddr::V4(src), IpAddr::V4(dst));
    meta.ttl = ttl;
    let eth = EthParams {
        dst_mac,
        src_mac: [0x02, 0, 0, 0, 0, 0x66],
        vlan: None,
    };
    packet::build_frame(advert, &meta, &eth).unwrap()
}

fn counter(agent: &Agent, peer: &str, c: Counter) -> u64 {
    agent.counters().unwrap().sum(peer, c)
}

/// f. Forged adverts from a third host change nothing and are counted under the right reason.
fn forged_scenario(rx: Rx) {
    // Tutorial (unicast v2 PASS): wrong auth from a spoofed peer, a higher priority from an
    // unknown source.
    let site = Site::new(Flavour::TutorialV2, rx, [false, false], "");
    let attacker = site.lab.add_host("attacker");
    let Speaker::X(backup) = &site.vrrp[1] else {
        unreachable!()
    };
    let backup_mac = site.host(1).ns().mac("eth1");
    let (p, s) = (site.host(0).ip4(), site.host(1).ip4());
    let vip = IpAddr::V4(site.vip);
    let wrong_auth = Advert::v2(33, 254, vec![vip], 1, Auth::pass("letmein"));
    let higher = Advert::v2(33, 254, vec![vip], 1, Auth::pass("password"));
    let frames = vec![
        frame(&wrong_auth, p, s, 255, backup_mac),
        frame(&wrong_auth, p, s, 255, backup_mac),
        frame(&higher, attacker.ip4(), s, 255, backup_mac),
        frame(&higher, attacker.ip4(), s, 255, backup_mac),
        frame(&higher, attacker.ip4(), s, 255, backup_mac),
    ];
    send_frames(attacker.ns(), "eth1", frames);
    let p_s = p.to_string();
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(5), || counter(
            backup,
            &p_s,
            Counter::AuthFailure
        ) == 2
            && counter(backup, "unknown", Counter::UnknownPeer) == 3),
        "{}",
        backup.counters().unwrap()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(backup.state().as_deref(), Some("Backup"));
    assert_eq!(
        backup.status().unwrap().first().master_address(),
        Some(p_s.clone())
    );
    assert_eq!(site.holder(), [true, false]);
    assert!(site
        .lab
        .get(&site.client, site.vip)
        .is_some_and(|b| b.contains("Primary")));

    // v3 multicast: TTL 64 and a bad checksum from an unknown source, both higher priority.
    let site = Site::new(Flavour::V3Fast, rx, [false, false], "");
    let attacker = site.lab.add_host("attacker");
    let Speaker::X(backup) = &site.vrrp[1] else {
        unreachable!()
    };
    let group = Ipv4Addr::new(224, 0, 0, 18);
    let mcast_mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
    let higher = Advert::v3(51, 254, vec![IpAddr::V4(site.vip)], 10);
    let ttl64 = frame(&higher, attacker.ip4(), group, 64, mcast_mac);
    let mut bad_sum = frame(&higher, attacker.ip4(), group, 255, mcast_mac);
    bad_sum[14 + 20 + 6] ^= 0xff;
    send_frames(
        attacker.ns(),
        "eth1",
        vec![
            ttl64.clone(),
            ttl64,
            bad_sum.clone(),
            bad_sum.clone(),
            bad_sum,
        ],
    );
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(5), || counter(
            backup,
            "unknown",
            Counter::IpTtlErr
        ) == 2
            && counter(backup, "unknown", Counter::ChecksumErr) == 3),
        "{}",
        backup.counters().unwrap()
    );
    site.assert_unmoved(backup, Duration::from_millis(500));
}

/// keepalived's `unicast_ttl` and each peer's `min_ttl` / `max_ttl`, end to end: both servers
/// send with TTL 64 and accept 60..=64 from each other (`ka` puts keepalived, which only checks
/// the range with `check_unicast_src`, on one of them). Adverts at 255 would be outside the
/// range: the backup would count them as `ip_ttl_err` and become Master as well. Then adverts
/// forged with the primary's address at TTL 255, 59 and 65 are counted and change nothing.
fn unicast_ttl_scenario(rx: Rx, ka: [bool; 2]) {
    let site = Site::new_edited(
        Flavour::TutorialV2,
        rx,
        ka,
        "    unicast_ttl 64\n    check_unicast_src\n",
        |peer, c| {
            let line = format!("        {peer}\n");
            assert!(c.contains(&line), "{c}");
            c.replace(&line, &format!("        {peer} min_ttl 60 max_ttl 64\n"))
        },
    );
    let p_s = site.host(0).ip4().to_string();
    // Several adverts pass without a failover or a TTL error.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(site.holder(), [true, false], "{}", site.logs());
    for (i, v) in site.vrrp.iter().enumerate() {
        if let Speaker::X(a) = v {
            let st = a.status().unwrap();
            let want = if i == 0 { "Master" } else { "Backup" };
            assert_eq!(a.state().as_deref(), Some(want), "{st}\n{}", site.logs());
            let peer = site.host(1 - i).ip4().to_string();
            assert_eq!(
                counter(a, &peer, Counter::IpTtlErr),
                0,
                "{}",
                a.counters().unwrap()
            );
            if i == 1 {
                assert!(
                    counter(a, &peer, Counter::AdvertRcvd) >= 3,
                    "{}",
                    a.counters().unwrap()
                );
                assert_eq!(st.first().master_address(), Some(p_s.clone()));
            }
        }
    }
    let Speaker::X(backup) = &site.vrrp[1] else {
        return;
    };
    let attacker = site.lab.add_host("attacker");
    let backup_mac = site.host(1).ns().mac("eth1");
    let (p, s) = (site.host(0).ip4(), site.host(1).ip4());
    let higher = Advert::v2(
        33,
        254,
        vec![IpAddr::V4(site.vip)],
        1,
        Auth::pass("password"),
    );
    let frames = [255, 255, 59, 59, 65]
        .into_iter()
        .map(|ttl| frame(&higher, p, s, ttl, backup_mac))
        .collect();
    send_frames(attacker.ns(), "eth1", frames);
    assert!(
        xvrrp_tests::wait_until(Duration::from_secs(5), || counter(
            backup,
            &p_s,
            Counter::IpTtlErr
        ) == 5),
        "{}",
        backup.counters().unwrap()
    );
    site.assert_unmoved(backup, Duration::from_secs(1));
}

/// The tutorial's keepalived.conf exactly as published (no `virtual_ipaddress`: VRRPv2 adverts
/// carry no addresses) on a mixed xvrrp / keepalived pair: each accepts the other's adverts, so
/// there is one Master, and the Backup takes over when it goes.
fn tutorial_as_is_mixed_pair(rx: Rx, ka_primary: bool) {
    let site = site::Site::new(site::Timers::Tutorial);
    let (p, s) = (&site.primary, &site.secondary);
    let conf = |me: &Host, peer: &Host, state, prio| {
        let check = me.nginx_check_script("chk_nginx.sh");
        tutorial_keepalived_conf(
            state,
            prio,
            me.ip4(),
            peer.ip4(),
            check.to_str().unwrap(),
            None,
        )
    };
    let _web = site.start_web();
    let (pc, sc) = (
        conf(p, s, State::Master, 200),
        conf(s, p, State::Backup, 100),
    );
    let (mut ka, x) = if ka_primary {
        (
            p.start_keepalived(&pc),
            Agent::start(s.ns(), &sc, &rx.args()),
        )
    } else {
        (
            s.start_keepalived(&sc),
            Agent::start(p.ns(), &pc, &rx.args()),
        )
    };
    let x_state = if ka_primary { "Backup" } else { "Master" };
    if ka_primary {
        // keepalived's `state MASTER` below 255 starts as Backup and takes over after ~3.2 s.
        let took = ka.wait_log("Entering MASTER STATE", Duration::from_secs(10));
        assert!(took.is_some(), "{}", ka.log());
    }
    assert!(
        x.wait_state(x_state, Duration::from_secs(10)).is_some(),
        "{}",
        x.log()
    );
    // Stable for several advert intervals: no dual Master.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        x.state().as_deref(),
        Some(x_state),
        "{}\n{}",
        x.log(),
        ka.log()
    );
    let ka_log = ka.log();
    let ka_masters = ka_log.matches("Entering MASTER STATE").count();
    assert_eq!(
        ka_masters,
        usize::from(ka_primary),
        "keepalived's view:\n{ka_log}"
    );
    let peer = if ka_primary { p.ip4() } else { s.ip4() }.to_string();
    let c = x.counters().unwrap();
    let row = c.peer(&peer);
    if ka_primary {
        let row = row.unwrap_or_else(|| panic!("no row for {peer}: {c}"));
        assert!(row.try_get(Counter::AdvertRcvd).unwrap() >= 3, "{c}");
        assert_eq!(row.try_get(Counter::AddrListErr), Some(0), "{c}");
        // The keepalived primary leaves: xvrrp takes over after Skew_Time.
        ka.stop();
        x.expect_state("Master", Duration::from_secs(3));
    } else {
        assert!(
            !ka_log.contains("invalid ip number count"),
            "keepalived rejected our adverts:\n{ka_log}"
        );
    }
}

/// A flood of junk adverts (bad checksum, random-looking sources) from a third host must not
/// starve the Master's timers: with 0.1 s adverts the Backup would take over after 0.36 s of
/// silence. Bounded: 3 s or 400k frames.
///
/// Over XDP the flood goes to the VRRP group, so both nodes get it, and the kernel drops every
/// junk frame before userspace. Over the raw-socket path (the fallback) only the Master is
/// flooded (unicast): a multicast flood that overruns a socket's receive buffer makes the kernel
/// drop real adverts too, as it does for keepalived; that is what the XDP path is for.
fn flood_scenario(rx: Rx) {
    let site = Site::new(Flavour::V3Fast, rx, [false, false], "");
    let attacker = site.lab.add_host("attacker");
    let Speaker::X(master) = &site.vrrp[0] else {
        unreachable!()
    };
    let Speaker::X(backup) = &site.vrrp[1] else {
        unreachable!()
    };
    let (dst, dst_mac) = if rx == Rx::Xdp {
        (
            Ipv4Addr::new(224, 0, 0, 18),
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12],
        )
    } else {
        (site.host(0).ip4(), site.host(0).ns().mac("eth1"))
    };
    let frames: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            let junk = Advert::v3(51, 254, vec![IpAddr::V4(site.vip)], 10);
            let mut f = frame(
                &junk,
                Ipv4Addr::new(10, 88, 0, 150 + (i % 50)),
                dst,
                255,
                dst_mac,
            );
            f[14 + 20 + 6] ^= 0x5a; // bad checksum
            f
        })
        .collect();
    let before = backup_transitions(backup);
    let sent = flood_frames(
        attacker.ns(),
        "eth1",
        frames,
        Duration::from_secs(3),
        400_000,
    );
    eprintln!("[flood {rx}] sent {sent} junk frames");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        master.state().as_deref(),
        Some("Master"),
        "{}",
        master.log()
    );
    assert_eq!(
        backup.state().as_deref(),
        Some("Backup"),
        "{}",
        backup.log()
    );
    assert_eq!(
        backup_transitions(backup),
        before,
        "the Backup never took over:\n{}",
        backup.log()
    );
    if rx == Rx::Xdp {
        let dropped = counter(master, "unknown", Counter::ChecksumErr);
        eprintln!("[flood {rx}] master's XDP dropped and counted {dropped} junk frames");
        assert!(dropped > 1000, "the junk was seen and counted: {dropped}");
    }
    assert!(site
        .lab
        .get(&site.client, site.vip)
        .is_some_and(|b| b.contains("Primary")));
}

/// The Backup's last transition time (changes whenever it transitions).
fn backup_transitions(a: &Agent) -> String {
    a.instance()
        .map(|i| i.last_transition_at_text())
        .unwrap_or_default()
}

// Every scenario runs over both receive paths (`rx`); the flavours and roles as listed.

#[rstest]
fn unicast_ttl_and_peer_ttl_range(#[values(Rx::Xdp, Rx::Socket)] rx: Rx) {
    unicast_ttl_scenario(rx, [false, false]);
}

/// keepalived on the primary (`[true, false]`) or on the backup; over XDP only, as before.
#[rstest]
fn unicast_ttl_interop(#[values([true, false], [false, true])] keepalived: [bool; 2]) {
    unicast_ttl_scenario(Rx::Xdp, keepalived);
}

#[rstest]
fn failover(
    #[values(Rx::Xdp, Rx::Socket)] rx: Rx,
    #[values(Flavour::TutorialV2, Flavour::V3Fast)] f: Flavour,
) {
    failover_scenarios(f, rx);
}

#[rstest]
fn nopreempt(
    #[values(Rx::Xdp, Rx::Socket)] rx: Rx,
    #[values(Flavour::TutorialV2, Flavour::V3Fast)] f: Flavour,
) {
    nopreempt_scenario(f, rx);
}

/// `keepalived_primary`: keepalived on the primary and xvrrp on the backup, else the reverse.
#[rstest]
fn interop(
    #[values(Rx::Xdp, Rx::Socket)] rx: Rx,
    #[values(Flavour::TutorialV2, Flavour::V3Fast)] f: Flavour,
    #[values(true, false)] keepalived_primary: bool,
) {
    interop_scenario(f, rx, keepalived_primary);
}

#[rstest]
fn forged_adverts_change_nothing_and_are_counted(#[values(Rx::Xdp, Rx::Socket)] rx: Rx) {
    forged_scenario(rx);
}

#[rstest]
fn tutorial_as_is(
    #[values(Rx::Xdp, Rx::Socket)] rx: Rx,
    #[values(true, false)] keepalived_primary: bool,
) {
    tutorial_as_is_mixed_pair(rx, keepalived_primary);
}

#[rstest]
fn junk_flood_does_not_cause_failover(#[values(Rx::Xdp, Rx::Socket)] rx: Rx) {
    flood_scenario(rx);
}

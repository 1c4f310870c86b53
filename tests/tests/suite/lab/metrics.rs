//! `/metrics` of two agents (the tutorial's pair), scraped over real HTTP from the client's
//! namespace: instance state and counters as keepalived's exporters name them, per-peer drops
//! equal to `xvrrp counters`, values that follow a failover and a preemption, output that
//! `promtool check metrics` accepts, scrapes that cost the advert loop nothing measurable, idle
//! clients that cannot hurt the agent, and a clear start error when the address cannot be bound.

use std::{
    io::Write,
    net::{IpAddr, SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use xvrrp::packet::{self, Advert, Auth, Counter, EthParams, TxMeta};
use xvrrp_tests::{
    agent::Agent,
    do_double::client::request,
    forge::send_frames,
    lab::LabSpec,
    site::{Site, Timers},
    wait_until, Netns,
};

const PORT: u16 = 9650;
const SERIES: &str = r#"{iname="VI_1",intf="eth1",vrid="33"}"#;

fn site() -> Site {
    Site::with(
        LabSpec {
            net4: [10, 67, 0],
            net6: None,
        },
        Timers::Tutorial,
    )
}

/// `GET /metrics` from `from`: status 200 with the Prometheus text content type; the body.
fn scrape(from: &Netns, addr: SocketAddr) -> String {
    let r = from
        .run(move || request(addr, "GET", "/metrics", None, None))
        .unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.body
}

/// The value of the series `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The transitions counter of VI_1 for `reason`.
fn transitions(reason: &str) -> String {
    format!(
        r#"xvrrp_vrrp_transitions_total{{iname="VI_1",intf="eth1",vrid="33",reason="{reason}"}}"#
    )
}

/// `value`, or a panic showing the text.
#[track_caller]
fn get(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// `promtool check metrics` (Debian's `prometheus` package) accepts `text`: it parses, and the
/// linter has nothing to say (names, units, `_total` suffixes, HELP/TYPE).
#[track_caller]
fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; `cargo xtask setup` does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until a scrape of `addr` shows `series` at `want` (snapshots are up to 0.5 s old).
#[track_caller]
fn wait_value(from: &Netns, addr: SocketAddr, series: &str, want: f64) -> String {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        last = scrape(from, addr);
        value(&last, series) == Some(want)
    });
    assert!(ok, "{series} never became {want}:\n{last}");
    last
}

/// A VRRPv2 advert from `src` to `dst` (TTL 255) with `password`.
fn forged(src: IpAddr, dst: IpAddr, dst_mac: [u8; 6], vip: IpAddr, password: &str) -> Vec<u8> {
    let advert = Advert::v2(33, 200, vec![vip], 1, Auth::pass(password));
    let eth = EthParams {
        dst_mac,
        src_mac: [0x02, 0, 0, 0, 0, 0x67],
        vlan: None,
    };
    packet::build_frame(&advert, &TxMeta::new(src, dst), &eth).unwrap()
}

#[test]
fn metrics_follow_state_failover_and_counters_and_pass_promtool() {
    let site = site();
    let (p, s, client) = (&site.primary, &site.secondary, site.client.ns());
    let (pm, sm) = (
        SocketAddr::from((p.ip4(), PORT)),
        SocketAddr::from((s.ip4(), PORT)),
    );
    // The primary: `metrics_address` in the file, overridden by `--metrics`. The secondary:
    // `metrics_address` only.
    let top_p = "global_defs {\n    metrics_address 127.0.0.1:1\n}\n";
    let top_s = format!("global_defs {{\n    metrics_address {sm}\n}}\n");
    let mut pa = Agent::start(
        p.ns(),
        &site.conf(p, "MASTER", 200, top_p, ""),
        &["--metrics", &pm.to_string()],
    );
    let sa = Agent::start(s.ns(), &site.conf(s, "BACKUP", 100, &top_s, ""), &[]);
    pa.expect_state("Master", Duration::from_secs(20));
    sa.expect_state("Backup", Duration::from_secs(5));

    // State as keepalived_vrrp_state: 2 MASTER, 1 BACKUP; priorities; status shows where.
    let t = wait_value(client, pm, &format!("xvrrp_vrrp_state{SERIES}"), 2.0);
    assert_eq!(get(&t, &format!("xvrrp_vrrp_base_priority{SERIES}")), 200.0);
    assert_eq!(
        get(&t, &format!("xvrrp_vrrp_effective_priority{SERIES}")),
        200.0
    );
    assert_eq!(get(&t, &format!("xvrrp_become_master_total{SERIES}")), 1.0);
    assert!(get(&t, &format!("xvrrp_advertisements_sent_total{SERIES}")) >= 1.0);
    assert_eq!(get(&t, "xvrrp_up"), 1.0);
    promtool(&t);
    let ts = wait_value(client, sm, &format!("xvrrp_vrrp_state{SERIES}"), 1.0);
    assert_eq!(get(&ts, &transitions("startup")), 1.0);
    promtool(&ts);
    assert_eq!(pa.status().unwrap().0.metrics, Some(pm.to_string()));
    assert_eq!(sa.status().unwrap().0.metrics, Some(sm.to_string()));
    assert!(
        pa.status_text()
            .contains(&format!("metrics: http://{pm}/metrics")),
        "{}",
        pa.status_text()
    );
    let vip = format!(
        "xvrrp_vip_present{{iname=\"VI_1\",intf=\"eth1\",vrid=\"33\",ip_address=\"{}\",dev=\"eth1\"}}",
        site.vip
    );
    assert_eq!(get(&t, &vip), 1.0);
    assert_eq!(get(&ts, &vip), 0.0);

    // Per-peer counters: forged adverts with a wrong password "from the primary" are dropped
    // at the secondary and counted for that peer; the metrics equal `xvrrp counters`.
    let (src, dst) = (IpAddr::V4(p.ip4()), IpAddr::V4(s.ip4()));
    let bad = forged(src, dst, s.ns().mac("eth1"), IpAddr::V4(site.vip), "wrong");
    send_frames(client, "eth1", vec![bad; 25]);
    let peer = format!(
        "iname=\"VI_1\",intf=\"eth1\",vrid=\"33\",peer=\"{}\"",
        p.ip4()
    );
    let auth = format!("xvrrp_peer_adverts_dropped_total{{{peer},reason=\"auth_failure\"}}");
    let ts = wait_value(client, sm, &auth, 25.0);
    let c = sa.counters().unwrap();
    assert_eq!(
        c.sum(&p.ip4().to_string(), Counter::AuthFailure),
        25,
        "xvrrp counters agrees: {c}"
    );
    promtool(&ts);
    // Accepted adverts keep arriving: counters before <= metrics <= counters after (the
    // snapshot is taken after the first read, at most 0.5 s before the scrape).
    let accepted = format!("xvrrp_peer_adverts_accepted_total{{{peer}}}");
    let before = sa
        .counters()
        .unwrap()
        .sum(&p.ip4().to_string(), Counter::AdvertRcvd);
    std::thread::sleep(Duration::from_millis(700));
    let m = get(&scrape(client, sm), &accepted);
    let after = sa
        .counters()
        .unwrap()
        .sum(&p.ip4().to_string(), Counter::AdvertRcvd);
    assert!(
        before as f64 <= m && m <= after as f64,
        "{before} <= {m} <= {after}"
    );
    assert!(before >= 1, "adverts were accepted: {before}");

    // Failover: the primary leaves (SIGTERM, priority 0); the secondary's metrics follow.
    assert_eq!(pa.stop_with(libc::SIGTERM), Some(0), "{}", pa.log());
    sa.expect_state("Master", Duration::from_secs(5));
    let ts = wait_value(client, sm, &format!("xvrrp_vrrp_state{SERIES}"), 2.0);
    assert_eq!(get(&ts, &format!("xvrrp_become_master_total{SERIES}")), 1.0);
    assert_eq!(get(&ts, &transitions("master_left")), 1.0, "{ts}");
    assert!(get(&ts, &format!("xvrrp_priority_zero_received_total{SERIES}")) >= 1.0);
    assert_eq!(get(&ts, &vip), 1.0, "the VIP moved here:\n{ts}");
    promtool(&ts);

    // The primary comes back (same `--metrics`) and preempts: Backup again, released once.
    pa.restart();
    pa.expect_state("Master", Duration::from_secs(20));
    let ts = wait_value(client, sm, &format!("xvrrp_vrrp_state{SERIES}"), 1.0);
    assert_eq!(
        get(&ts, &format!("xvrrp_release_master_total{SERIES}")),
        1.0
    );
    assert_eq!(
        get(&ts, &transitions("higher_priority_advert")),
        1.0,
        "{ts}"
    );
    let t = wait_value(client, pm, &format!("xvrrp_vrrp_state{SERIES}"), 2.0);
    promtool(&t);
}

/// Scraping the Master (VRRPv3, adverts every 0.1 s) 20 times a second for 5 s: the loop
/// builds at most 2 snapshots a second whatever the scrape rate, no instance timer fires later
/// than it did before (or by more than 10 ms); the figures are printed.
#[test]
fn scraping_does_not_delay_the_advert_loop() {
    let site = Site::with(
        LabSpec {
            net4: [10, 67, 0],
            net6: None,
        },
        Timers::V3Fast,
    );
    let (p, s, client) = (&site.primary, &site.secondary, site.client.ns());
    let pm = SocketAddr::from((p.ip4(), PORT));
    let top = format!("global_defs {{\n    metrics_address {pm}\n}}\n");
    let pa = Agent::start(p.ns(), &site.conf(p, "MASTER", 200, &top, ""), &[]);
    let sa = Agent::start(s.ns(), &site.conf(s, "BACKUP", 100, "", ""), &[]);
    pa.expect_state("Master", Duration::from_secs(20));
    sa.expect_state("Backup", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    let first = scrape(client, pm);
    let before = pa.status().unwrap().0.timers;
    let scrapes = client.run(move || {
        let mut took = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let t = Instant::now();
            let r = request(pm, "GET", "/metrics", None, None).unwrap();
            assert_eq!(r.status, 200);
            took.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(50).saturating_sub(t.elapsed()));
        }
        took
    });
    let after = pa.status().unwrap().0.timers;
    std::thread::sleep(Duration::from_millis(600));
    let last = scrape(client, pm);
    let snapshots =
        get(&last, "xvrrp_metrics_snapshots_total") - get(&first, "xvrrp_metrics_snapshots_total");
    let cost_max = get(&last, "xvrrp_metrics_snapshot_max_seconds");
    let mut sorted = scrapes.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    eprintln!(
        "{} scrapes in 5 s (HTTP: median {median:?}, max {max:?}) -> {snapshots} snapshots built \
         by the loop, each at most {:.0} µs of loop time; loop timers: fired {} -> {}, \
         late_max_us {} -> {}, late_over_10ms {} -> {}",
        scrapes.len(),
        cost_max * 1e6,
        before.fired,
        after.fired,
        before.late_max_us,
        after.late_max_us,
        before.late_over_10ms,
        after.late_over_10ms
    );
    assert!(scrapes.len() >= 80, "{} scrapes", scrapes.len());
    assert!(
        (5.0..=13.0).contains(&snapshots),
        "{snapshots} snapshots for {} scrapes",
        scrapes.len()
    );
    assert!(
        after.fired >= before.fired + 40,
        "the Master kept advertising"
    );
    assert!(
        after.late_max_us <= before.late_max_us.max(10_000),
        "a timer fired {} µs late while scraping",
        after.late_max_us
    );
    assert_eq!(after.late_over_10ms, before.late_over_10ms);
    assert_eq!(sa.state().as_deref(), Some("Backup"), "no failover");
}

/// Clients that connect and send nothing take every connection slot for a while: the agent
/// keeps advertising (the Backup stays Backup) and answers `status`; once they go, scrapes
/// work again. Other paths and methods get 404 / 405.
#[test]
fn idle_clients_cannot_hurt_the_agent() {
    let site = site();
    let (p, s, client) = (&site.primary, &site.secondary, site.client.ns());
    let pm = SocketAddr::from((p.ip4(), PORT));
    let pa = Agent::start(
        p.ns(),
        &site.conf(p, "MASTER", 200, "", ""),
        &["--metrics", &pm.to_string()],
    );
    let sa = Agent::start(s.ns(), &site.conf(s, "BACKUP", 100, "", ""), &[]);
    pa.expect_state("Master", Duration::from_secs(20));
    sa.expect_state("Backup", Duration::from_secs(5));
    let idle = client.run(move || {
        (0..20)
            .map(|_| TcpStream::connect_timeout(&pm, Duration::from_secs(2)).unwrap())
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        sa.state().as_deref(),
        Some("Backup"),
        "adverts kept flowing"
    );
    assert_eq!(pa.state().as_deref(), Some("Master"), "status answers");
    drop(idle);
    let t = wait_value(client, pm, &format!("xvrrp_vrrp_state{SERIES}"), 2.0);
    promtool(&t);
    let r = client
        .run(move || request(pm, "GET", "/nope", None, None))
        .unwrap();
    assert_eq!(r.status, 404);
    let r = client
        .run(move || request(pm, "POST", "/metrics", None, Some("{}")))
        .unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

/// An address the agent cannot bind (not on any interface; a port in use): it says so and
/// exits 3 before touching the network (no XDP program attached, no address added).
#[test]
fn unbindable_metrics_address_stops_the_start() {
    let site = site();
    let p = &site.primary;
    let conf = site.conf(p, "MASTER", 200, "", "");
    let mut a = Agent::start(p.ns(), &conf, &["--metrics", "10.99.0.9:9650"]);
    assert_eq!(a.stop_with(0), Some(3), "{}", a.log());
    assert!(
        a.log()
            .contains("metrics: cannot listen on 10.99.0.9:9650: Cannot assign requested address"),
        "{}",
        a.log()
    );
    let taken = SocketAddr::from((p.ip4(), PORT));
    let holder = p
        .ns()
        .run(move || std::net::TcpListener::bind(taken).unwrap());
    let mut a = Agent::start(p.ns(), &conf, &["--metrics", &taken.to_string()]);
    assert_eq!(a.stop_with(0), Some(3), "{}", a.log());
    assert!(
        a.log().contains(&format!(
            "metrics: cannot listen on {taken}: Address already in use"
        )),
        "{}",
        a.log()
    );
    drop(holder);
    let link = p.ns().ip(&["link", "show", "eth1"]);
    assert!(!link.contains("xdp"), "no XDP program attached: {link}");
    assert!(!p.has_addr(site.vip), "no address added");
    // A bad value is refused by the command line with the expected form.
    let out = Command::new(xvrrp_tests::xvrrp_bin())
        .args(["run", "--metrics", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not ADDR:PORT"), "{err}");
}

/// The tutorial with a DigitalOcean reserved IP (the API double): the takeover's state, the
/// tracker, and the API requests' latency histogram, whose count of assign requests equals the
/// POSTs the double received. Scraped inside each server's namespace on 127.0.0.1.
#[test]
fn cloud_takeover_and_api_latency_with_the_do_double() {
    use xvrrp_tests::site::cloud::{DoLab, Opts, IP};
    let mut l = DoLab::new(Opts {
        start: false,
        ..Opts::default()
    });
    let local = SocketAddr::from(([127, 0, 0, 1], PORT));
    for c in &mut l.configs {
        *c = format!("global_defs {{\n    metrics_address {local}\n}}\n{c}");
    }
    l.start_agents();
    l.expect(Duration::from_secs(30), || l.cloud_state(0) == "ok");
    let cloud = format!(r#"iname="VI_1",intf="eth1",vrid="33",reserved_ip="{IP}""#);
    let t = wait_value(
        l.servers[0].ns(),
        local,
        &format!("xvrrp_cloud_takeover_state{{{cloud},state=\"verified\"}}"),
        1.0,
    );
    assert_eq!(
        get(&t, &format!("xvrrp_cloud_reserved_ip_held{{{cloud}}}")),
        1.0
    );
    assert_eq!(get(&t, &format!("xvrrp_cloud_degraded{{{cloud}}}")), 0.0);
    let chk =
        r#"xvrrp_tracker_up{iname="VI_1",intf="eth1",vrid="33",tracker="chk_nginx",kind="script"}"#;
    assert_eq!(get(&t, chk), 1.0);
    let h = "xvrrp_cloud_api_request_duration_seconds_count";
    assert!(
        get(
            &t,
            &format!("{h}{{operation=\"get_reserved_ip\",target=\"{IP}\",outcome=\"ok\"}}")
        ) >= 1.0,
        "{t}"
    );
    assert!(
        get(
            &t,
            &format!("{h}{{operation=\"metadata_droplet_id\",target=\"metadata\",outcome=\"ok\"}}")
        ) >= 1.0,
        "{t}"
    );
    promtool(&t);

    // nginx stops on the primary: the secondary takes over and moves the IP with the API.
    l.web[0].stop();
    l.expect_state(1, "Master", Duration::from_secs(30));
    l.expect(Duration::from_secs(30), || l.cloud_state(1) == "ok");
    let s = l.servers[1].ns();
    let t = wait_value(
        s,
        local,
        &format!("xvrrp_cloud_moves_total{{{cloud}}}"),
        1.0,
    );
    assert_eq!(
        get(&t, &format!("xvrrp_cloud_reserved_ip_held{{{cloud}}}")),
        1.0
    );
    assert!(get(&t, &format!("xvrrp_cloud_last_takeover_seconds{{{cloud}}}")) > 0.0);
    let assigns: f64 = t
        .lines()
        .filter(|line| line.starts_with(&format!("{h}{{operation=\"assign\",")))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(
        assigns,
        l.posts(1) as f64,
        "assign requests in the histogram = POSTs the double saw:\n{t}"
    );
    assert!(assigns >= 1.0);
    let t0 = wait_value(l.servers[0].ns(), local, chk, 0.0);
    assert_eq!(
        get(&t0, &format!("xvrrp_vrrp_state{SERIES}")),
        3.0,
        "FAULT:\n{t0}"
    );
    promtool(&t);
    promtool(&t0);
    l.assert_no_token();
    for i in 0..2 {
        let t = scrape(l.servers[i].ns(), local);
        assert!(
            !t.contains(&l.tokens[i]),
            "the token never appears in the metrics"
        );
    }
}

/// `vrrp_track_listen` on port 80 (nginx on the primary, default receive path so XDP counts
/// SYNs): listeners, SYNs and connections as status shows them; nginx stops: no listener, the
/// tracker down, the instance in FAULT (3).
#[test]
fn listen_tracker_ports_follow_nginx() {
    use xvrrp_tests::site::listen::{listen_block, wait_kernel_source};
    let site = Site::new(Timers::Tutorial);
    let mut web = site.start_web();
    let (block, reference) = listen_block(None);
    let local = SocketAddr::from(([127, 0, 0, 1], PORT));
    let top = format!("global_defs {{\n    metrics_address {local}\n}}\n{block}");
    let agents = site.start(&top, &reference);
    site.expect_client("Primary", Duration::from_secs(20), &agents);
    let (kernel, t) = wait_kernel_source(&agents[0]);
    assert!(kernel, "{t}");
    let ns = site.primary.ns();
    let port = r#"{tracker="chk_http",kind="listen",port="80"}"#;
    let m = wait_value(ns, local, &format!("xvrrp_listen_listeners{port}"), 2.0);
    assert_eq!(t.listeners(0), Some(2), "status agrees: {t}");
    let up =
        r#"xvrrp_tracker_up{iname="VI_1",intf="eth1",vrid="33",tracker="chk_http",kind="listen"}"#;
    assert_eq!(get(&m, up), 1.0);
    let syns0 = get(&m, &format!("xvrrp_listen_syns_total{port}"));
    let est0 = get(
        &m,
        &format!("xvrrp_listen_connections_established_total{port}"),
    );
    for _ in 0..5 {
        assert!(site.lab.get(&site.client, site.vip).is_some());
    }
    // The tracker refreshes its counts once a second.
    let mut m = String::new();
    let counted = wait_until(Duration::from_secs(5), || {
        m = scrape(ns, local);
        get(&m, &format!("xvrrp_listen_syns_total{port}")) >= syns0 + 5.0
            && get(
                &m,
                &format!("xvrrp_listen_connections_established_total{port}"),
            ) >= est0 + 5.0
    });
    let syns = get(&m, &format!("xvrrp_listen_syns_total{port}"));
    let est = get(
        &m,
        &format!("xvrrp_listen_connections_established_total{port}"),
    );
    assert!(
        counted,
        "SYNs {syns0} -> {syns}, established {est0} -> {est}"
    );
    let status_syns = agents[0]
        .tracker("listen chk_http")
        .and_then(|t| t.syns(0))
        .unwrap();
    assert!(
        status_syns as f64 >= syns,
        "status {status_syns} >= metrics {syns}"
    );
    promtool(&m);

    web[0].stop();
    wait_value(ns, local, &format!("xvrrp_listen_listeners{port}"), 0.0);
    wait_value(ns, local, up, 0.0);
    let m = wait_value(ns, local, &format!("xvrrp_vrrp_state{SERIES}"), 3.0);
    promtool(&m);
}

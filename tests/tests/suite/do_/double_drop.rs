//! Dropping the double leaves no thread behind, even with keep-alive connections open, a request
//! hung by an outage, a slow answer in flight and an action still running. (Alone in its test
//! binary so the process's thread count is meaningful.)

use std::{
    io::Write,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use xvrrp_tests::{
    do_double::{Config, DoDouble, DropletSpec, Outage, Scope},
    wait_until,
};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn drop_joins_every_thread_and_closes_every_socket() {
    let before = threads();
    let ip = Ipv4Addr::new(45, 55, 96, 47);
    let d = DoDouble::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Config {
            action_delay: Duration::from_secs(30),
            ..Config::default()
        },
    )
    .unwrap();
    d.add_token("dop_v1_x", "x", Scope::ReadWrite);
    d.add_droplet(DropletSpec::new(1, "a", "nyc3"));
    d.add_droplet(DropletSpec::new(2, "b", "nyc3"));
    d.add_reserved_ip(ip, "nyc3", Some(1));
    let meta: SocketAddr = d
        .serve_metadata(1)
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let api = d.api_addr();

    // An action that will not finish before the drop.
    let r = xvrrp_tests::do_double::client::request(
        api,
        "POST",
        &format!("/v2/reserved_ips/{ip}/actions"),
        Some("dop_v1_x"),
        Some(r#"{"type":"assign","droplet_id":2}"#),
    )
    .unwrap();
    assert_eq!(r.status, 201);
    // Idle keep-alive connections to both servers.
    let _idle = [
        TcpStream::connect(api).unwrap(),
        TcpStream::connect(meta).unwrap(),
    ];
    // A request hung by an outage.
    d.down(Some(Outage::Hang));
    let mut hung = TcpStream::connect(api).unwrap();
    write!(hung, "GET /v2/reserved_ips/{ip} HTTP/1.1\r\n\r\n").unwrap();
    // A slow metadata answer in flight.
    d.metadata_latency(Duration::from_secs(30));
    let mut slow = TcpStream::connect(meta).unwrap();
    write!(slow, "GET /metadata/v1/id HTTP/1.1\r\n\r\n").unwrap();
    // (The slow one is logged only when answered.)
    assert!(wait_until(Duration::from_secs(2), || d.requests().len() >= 2));
    std::thread::sleep(Duration::from_millis(100));
    assert!(threads() > before);

    let t = Instant::now();
    drop(d);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(1), || threads() == before),
        "{} threads left, {before} before",
        threads()
    );
    assert!(TcpStream::connect(api).is_err());
    assert!(TcpStream::connect(meta).is_err());
}

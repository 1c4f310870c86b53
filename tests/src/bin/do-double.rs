//! Demo: runs the DigitalOcean double on loopback until stdin closes (or the process is killed).
//!
//! `do-double [PORT]` registers droplets 2756294 (`lb-a`) and 2756295 (`lb-b`) in nyc3, reserved
//! IP 45.55.96.47 held by the first, and the read-write token from `$DO_DOUBLE_TOKEN` (default
//! `dop_v1_demo`); prints the API URL and each droplet's metadata URL, then logs every request
//! (never the token) as it answers it.

use std::{
    io::Read,
    net::{Ipv4Addr, SocketAddr},
    sync::mpsc,
    thread,
    time::Duration,
};

use xvrrp_tests::do_double::{DoDouble, DropletSpec, Scope};

fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse()?,
        None => 0,
    };
    let token = std::env::var("DO_DOUBLE_TOKEN").unwrap_or_else(|_| "dop_v1_demo".into());
    let d = DoDouble::start(SocketAddr::from(([127, 0, 0, 1], port)))?;
    d.add_token(&token, "demo", Scope::ReadWrite);
    d.add_reserved_ip(Ipv4Addr::new(45, 55, 96, 47), "nyc3", Some(2_756_294));
    println!("api      {}", d.api_url());
    for (id, name) in [(2_756_294, "lb-a"), (2_756_295, "lb-b")] {
        d.add_droplet(DropletSpec::new(id, name, "nyc3"));
        println!("metadata {} droplet {id} ({name})", d.serve_metadata(id)?);
    }
    d.on_assign(|m| {
        println!(
            "move     {} {:?} -> {:?} ({:?})",
            m.ip, m.old, m.new, m.cause
        )
    });
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let mut shown = 0;
    loop {
        let done = rx.recv_timeout(Duration::from_millis(100)).is_ok();
        let reqs = d.requests();
        for r in &reqs[shown..] {
            println!(
                "{:>8.3}s {:?} {} {} -> {:?}",
                r.since_start.as_secs_f64(),
                r.service,
                r.method,
                r.path,
                r.status
            );
        }
        shown = reqs.len();
        if done {
            return Ok(());
        }
    }
}

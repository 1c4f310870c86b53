//! Shared set-up of the `listen_*` tests and of `cargo xtask bench failover`: the tutorial's two
//! web servers and a client in the namespace lab, xvrrp on both servers with a
//! `vrrp_track_listen` on port 80, with the tutorial's timers (v2, unicast, PASS, advert_int 1,
//! priorities 200/100) or v3 with 0.1 s adverts. Agents run with the default receive path (XDP
//! where it attaches), so the XDP program counts SYNs.
#![allow(clippy::unwrap_used, dead_code, reason = "test support")]

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;
use xvrrp_tests::{agent::Agent, lab::Host, lab::Lab, wait_until, Capture};

/// First election, generous for a loaded machine.
pub const ELECTION: Duration = Duration::from_secs(20);
/// A failover or a preemption, with a wide margin.
pub const FAILOVER: Duration = Duration::from_secs(15);

/// Advert timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timers {
    /// The tutorial: VRRPv2, unicast, PASS auth, advert_int 1.
    Tutorial,
    /// VRRPv3, unicast, advert_int 0.1.
    V3Fast,
}

/// The tracker block with weight 0 on port 80, and its reference.
pub fn listen_block(stall: Option<u32>) -> (String, String) {
    let stall = stall.map_or(String::new(), |s| format!("    stall {s}\n"));
    (
        format!("vrrp_track_listen chk_http {{\n    port 80\n    weight 0\n{stall}}}\n"),
        "    track_listen {\n        chk_http\n    }\n".to_owned(),
    )
}

/// A lab with `primary`, `secondary`, `client`, and the virtual IP `.100`.
pub struct Site {
    pub lab: Lab,
    pub primary: Host,
    pub secondary: Host,
    pub client: Host,
    pub vip: Ipv4Addr,
    pub timers: Timers,
}

impl Site {
    pub fn new(timers: Timers) -> Self {
        let lab = Lab::new();
        let primary = lab.add_host("primary");
        let secondary = lab.add_host("secondary");
        let client = lab.add_host("client");
        let vip = lab.addr4(100);
        Self {
            lab,
            primary,
            secondary,
            client,
            vip,
            timers,
        }
    }

    /// The instance for `me`, with `top` blocks before it and `extra` lines inside it.
    pub fn conf(&self, me: &Host, state: &str, prio: u8, top: &str, extra: &str) -> String {
        let peer = if me.name() == self.primary.name() {
            &self.secondary
        } else {
            &self.primary
        };
        let timers = match self.timers {
            Timers::Tutorial => {
                "    authentication {\n        auth_type PASS\n        auth_pass password\n    }\n"
            }
            Timers::V3Fast => "    version 3\n    advert_int 0.1\n",
        };
        format!(
            "{top}
vrrp_instance VI_1 {{
    interface eth1
    state {state}
    priority {prio}

    virtual_router_id 33
    unicast_src_ip {src}
    unicast_peer {{
        {peer_ip}
    }}
{timers}    virtual_ipaddress {{
        {vip}/24 dev eth1
    }}
{extra}
}}
",
            src = me.ip4(),
            peer_ip = peer.ip4(),
            vip = self.vip,
        )
    }

    /// xvrrp on both servers (primary MASTER 200, secondary BACKUP 100) with the same blocks.
    pub fn start(&self, top: &str, extra: &str) -> [Agent; 2] {
        [
            Agent::start(
                self.primary.ns(),
                &self.conf(&self.primary, "MASTER", 200, top, extra),
                &[],
            ),
            Agent::start(
                self.secondary.ns(),
                &self.conf(&self.secondary, "BACKUP", 100, top, extra),
                &[],
            ),
        ]
    }

    /// Waits until the client reads `body` at the virtual IP (the lab's 500 ms client).
    pub fn client_sees(&self, body: &str, timeout: Duration) -> Option<Duration> {
        self.lab.wait_body(&self.client, self.vip, body, timeout)
    }
}

/// Both agents' logs, for assertion messages.
pub fn logs(agents: &[Agent]) -> String {
    agents
        .iter()
        .enumerate()
        .map(|(i, a)| format!("--- agent {i} ---\n{}", a.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first instance's tracker whose label is `label`.
pub fn tracker(a: &Agent, label: &str) -> Option<Value> {
    let st = a.status()?;
    st["instances"][0]["trackers"]
        .as_array()?
        .iter()
        .find(|t| t["label"] == label)
        .cloned()
}

/// Waits until the first instance's state is `state`.
pub fn wait_state(a: &Agent, state: &str, timeout: Duration) -> bool {
    a.wait_state(state, timeout).is_some()
}

/// The VRRP priority of an IPv4 advert from `src` in an Ethernet frame, if it is one.
pub fn advert_priority(frame: &[u8], src: Ipv4Addr) -> Option<u8> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 112 {
        return None;
    }
    if frame[26..30] != src.octets() {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame.get(14 + ihl + 2).copied()
}

/// Starts watching `host`'s eth1 for a priority-0 advert from it; the handle yields when it was
/// seen (wall clock, when the capture socket received it).
pub fn watch_priority_zero(
    host: &Host,
    timeout: Duration,
) -> std::thread::JoinHandle<Option<SystemTime>> {
    let cap = Capture::open(host.ns(), "eth1");
    let src = host.ip4();
    std::thread::spawn(move || {
        cap.wait_for(timeout, |f| advert_priority(f, src) == Some(0))
            .map(|_| SystemTime::now())
    })
}

/// Microseconds since the epoch.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// When the tracker last saw a listener event (µs since the epoch, from the kernel timestamp).
pub fn listener_event_us(t: &Value) -> Option<u64> {
    t["last_listener_event"]["at_unix_us"].as_u64()
}

/// One `GET /` with a tight connect timeout (non-blocking connect + poll), for sub-second
/// timing: the body of a 200 answer, or `None`.
pub fn fast_get(
    client: &Host,
    addr: Ipv4Addr,
    connect: Duration,
    read: Duration,
) -> Option<String> {
    let sa = SocketAddr::from((addr, 80));
    client.ns().run(move || {
        let mut s = TcpStream::connect_timeout(&sa, connect).ok()?;
        s.set_read_timeout(Some(read)).ok()?;
        s.set_write_timeout(Some(read)).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.starts_with("HTTP/1.1 200").then_some(text)
    })
}

/// A client loop in the client's namespace with 20 ms connect timeouts, retrying at once: how
/// long until the body contains `expected`, measured from `from`.
pub fn fast_wait_body(
    site: &Site,
    expected: &str,
    from: Instant,
    timeout: Duration,
) -> Option<Duration> {
    let client = site.client.clone();
    let vip = site.vip;
    let expected = expected.to_owned();
    let ok = client.ns().run(move || {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let sa = SocketAddr::from((vip, 80));
            if let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_millis(20)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                if s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").is_ok() {
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    if String::from_utf8_lossy(&buf).contains(&expected) {
                        return Some(Instant::now());
                    }
                }
            }
        }
        None
    });
    ok.map(|t| t.duration_since(from))
}

/// Sorted copy; median and worst.
pub fn median_worst(v: &[Duration]) -> (Duration, Duration) {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    (s[s.len() / 2], s[s.len() - 1])
}

/// Waits until `pred` holds on the first instance's status.
pub fn wait_instance(a: &Agent, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
    wait_until(timeout, || {
        a.status().is_some_and(|s| pred(&s["instances"][0]))
    })
}

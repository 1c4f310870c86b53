//! Shared set-up of the `track_*` tests: the tutorial's two web servers and a client in the
//! namespace lab, each server running `xvrrp run` with the tutorial's timers (VRRPv2, unicast,
//! PASS auth, advert_int 1, priorities 200/100) plus the trackers under test.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use crate::{
    agent::Agent,
    lab::{Host, Lab},
    wait_until,
};
use serde_json::Value;

/// First election: a Backup waits 3 x advert_int + skew; generous for a loaded machine.
pub const ELECTION: Duration = Duration::from_secs(20);
/// A failover or a preemption, with a wide margin.
pub const FAILOVER: Duration = Duration::from_secs(15);

/// A lab with `primary`, `secondary` and `client`, and the virtual IP `.100`.
pub struct Site {
    pub lab: Lab,
    pub primary: Host,
    pub secondary: Host,
    pub client: Host,
    pub vip: Ipv4Addr,
}

impl Site {
    pub fn new() -> Self {
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
        }
    }

    /// The tutorial's instance for `me` (its peer is the other server), with `globals` and
    /// `blocks` before it and `extra` inside it.
    pub fn conf(&self, me: &Host, state: &str, prio: u8, top: &str, extra: &str) -> String {
        let peer = if me.name() == self.primary.name() {
            &self.secondary
        } else {
            &self.primary
        };
        format!(
            r#"{top}
vrrp_instance VI_1 {{
    interface eth1
    state {state}
    priority {prio}

    virtual_router_id 33
    unicast_src_ip {src}
    unicast_peer {{
        {peer_ip}
    }}

    authentication {{
        auth_type PASS
        auth_pass password
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth1
    }}
{extra}
}}
"#,
            src = me.ip4(),
            peer_ip = peer.ip4(),
            vip = self.vip,
        )
    }

    /// Starts xvrrp on both servers (`primary`: MASTER 200, `secondary`: BACKUP 100), with the
    /// same `top` blocks and the same `extra` instance lines, and waits for the election.
    pub fn start(&self, top_p: &str, extra_p: &str, top_s: &str, extra_s: &str) -> [Agent; 2] {
        let a = Agent::start(
            self.primary.ns(),
            &self.conf(&self.primary, "MASTER", 200, top_p, extra_p),
            &["--rx", "socket"],
        );
        let b = Agent::start(
            self.secondary.ns(),
            &self.conf(&self.secondary, "BACKUP", 100, top_s, extra_s),
            &["--rx", "socket"],
        );
        [a, b]
    }

    /// Waits until the client reads `body` at the virtual IP; how long it took.
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

/// The status of the first instance's tracker whose label is `label`.
pub fn tracker(a: &Agent, label: &str) -> Option<Value> {
    a.tracker(label)
}

/// The first instance's status.
pub fn instance(a: &Agent) -> Option<Value> {
    a.status().map(|s| s["instances"][0].clone())
}

/// Waits until `pred` holds on the first instance's status.
pub fn wait_instance(a: &Agent, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
    wait_until(timeout, || instance(a).is_some_and(|v| pred(&v)))
}

/// Asserts that the first instance stays in `state` for `d` (polling every 100 ms).
pub fn stays(a: &Agent, state: &str, d: Duration) -> Result<(), String> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        match a.state() {
            Some(s) if s == state => {}
            other => return Err(format!("left {state}: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

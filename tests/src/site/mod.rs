//! Sites: the lab, hosts, daemons and configs of a test, built the same way by every test.
//!
//! [`Site`] is the tutorial's layout: two web servers (`primary`, priority 200, and
//! `secondary`, 100) and a `client`, the virtual IP `.100` on the lab's /24, one VRRP instance
//! (VRID 33, unicast between the two servers) with the tutorial's timers (VRRPv2, PASS auth,
//! advert_int 1) or VRRPv3 at 0.1 s. [`cloud`] adds a DigitalOcean reserved IP and its API
//! double, [`listen`] what the `vrrp_track_listen` tests measure.

pub mod cloud;
pub mod listen;

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use crate::{
    agent::{Agent, Rx},
    lab::{
        tutorial_keepalived_conf, with_instance_block, Host, Keepalived, Lab, LabSpec, Nginx, State,
    },
    status::Instance,
    wait_until,
};

/// First election: a Backup waits 3 x advert_int + skew; generous for a loaded machine.
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
    /// The site on the default lab (10.88.0.0/24, primary .1, secondary .2, client .3).
    pub fn new(timers: Timers) -> Self {
        Self::with(LabSpec::default(), timers)
    }

    /// The site on a lab with the address plan `spec`.
    pub fn with(spec: LabSpec, timers: Timers) -> Self {
        let lab = Lab::with(spec);
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

    /// The other server.
    pub fn peer_of(&self, me: &Host) -> &Host {
        if me.name() == self.primary.name() {
            &self.secondary
        } else {
            &self.primary
        }
    }

    /// Both servers, as `(server, state, priority)`: the primary MASTER 200, the secondary
    /// BACKUP 100.
    pub fn servers(&self) -> [(&Host, State, u8); 2] {
        [
            (&self.primary, State::Master, 200),
            (&self.secondary, State::Backup, 100),
        ]
    }

    /// nginx on both servers, serving "Primary" and "Secondary".
    pub fn start_web(&self) -> [Nginx; 2] {
        [
            self.primary.start_nginx("<h1>Primary</h1>\n"),
            self.secondary.start_nginx("<h1>Secondary</h1>\n"),
        ]
    }

    /// The xvrrp instance for `me` (its peer is the other server), with `top` blocks before it
    /// and `extra` lines inside it.
    pub fn conf(&self, me: &Host, state: &str, prio: u8, top: &str, extra: &str) -> String {
        let peer = self.peer_of(me);
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

    /// The tutorial's keepalived.conf for `me` with the lab's per-namespace `pidof nginx` check
    /// and the virtual IP, plus `extra` lines in the instance (for keepalived or xvrrp).
    pub fn tutorial_conf(&self, me: &Host, state: State, prio: u8, extra: &str) -> String {
        tutorial_conf_with_vip(me, self.peer_of(me), state, prio, self.vip, extra)
    }

    /// xvrrp on both servers (primary MASTER 200, secondary BACKUP 100) with the same blocks,
    /// on the default receive path.
    pub fn start(&self, top: &str, extra: &str) -> [Agent; 2] {
        self.start_each(None, [(top, extra), (top, extra)])
    }

    /// xvrrp on both servers (primary MASTER 200, secondary BACKUP 100), each with its own
    /// `(top, extra)`, with `--rx` when `rx` is given.
    pub fn start_each(&self, rx: Option<Rx>, blocks: [(&str, &str); 2]) -> [Agent; 2] {
        let args = rx.map(Rx::args);
        let args: &[&str] = args.as_ref().map_or(&[], |a| a);
        let [(p, p_state, p_prio), (s, s_state, s_prio)] = self.servers();
        [
            Agent::start(
                p.ns(),
                &self.conf(p, p_state.as_str(), p_prio, blocks[0].0, blocks[0].1),
                args,
            ),
            Agent::start(
                s.ns(),
                &self.conf(s, s_state.as_str(), s_prio, blocks[1].0, blocks[1].1),
                args,
            ),
        ]
    }

    /// The tutorial's keepalived.conf (see [`Site::tutorial_conf`]) on both servers under
    /// keepalived 2.2.7.
    pub fn start_tutorial(&self) -> [Keepalived; 2] {
        self.servers()
            .map(|(me, state, prio)| me.start_keepalived(&self.tutorial_conf(me, state, prio, "")))
    }

    /// The tutorial's keepalived.conf (see [`Site::tutorial_conf`]) on both servers under
    /// xvrrp, with `--rx` when `rx` is given.
    pub fn start_tutorial_xvrrp(&self, rx: Option<Rx>) -> [Agent; 2] {
        let args = rx.map(Rx::args);
        let args: &[&str] = args.as_ref().map_or(&[], |a| a);
        self.servers().map(|(me, state, prio)| {
            Agent::start(me.ns(), &self.tutorial_conf(me, state, prio, ""), args)
        })
    }

    /// xvrrp on both servers over the socket path, `top` and `extra` (the trackers under test)
    /// on the primary only; waits for the primary to be Master.
    pub fn start_tracking(&self, top: &str, extra: &str) -> [Agent; 2] {
        let agents = self.start_each(Some(Rx::Socket), [(top, extra), ("", "")]);
        expect_state(&agents, 0, "Master", ELECTION);
        agents
    }

    /// Asserts that the client reads `body` at the virtual IP within `timeout` (with the
    /// `agents`' logs when not); how long it took.
    #[track_caller]
    pub fn expect_client(&self, body: &str, timeout: Duration, agents: &[Agent]) -> Duration {
        self.client_sees(body, timeout)
            .unwrap_or_else(|| panic!("the client never saw {body}\n{}", logs(agents)))
    }

    /// Waits until the client reads `body` at the virtual IP (the lab's 500 ms client); how long
    /// it took.
    pub fn client_sees(&self, body: &str, timeout: Duration) -> Option<Duration> {
        self.lab.wait_body(&self.client, self.vip, body, timeout)
    }
}

/// The tutorial's keepalived.conf for `me` and `peer` with the lab's per-namespace
/// `pidof nginx` check, the virtual IP `vip` and `extra` lines in the instance.
pub fn tutorial_conf_with_vip(
    me: &Host,
    peer: &Host,
    state: State,
    prio: u8,
    vip: Ipv4Addr,
    extra: &str,
) -> String {
    let check = me.nginx_check_script("chk_nginx.sh");
    with_instance_block(
        &tutorial_keepalived_conf(
            state,
            prio,
            me.ip4(),
            peer.ip4(),
            check.to_str().unwrap(),
            None,
        ),
        &format!("virtual_ipaddress {{\n    {vip}/24 dev eth1\n}}\n{extra}"),
    )
}

/// A script on `host` that hangs (sleeps 30 s) while the returned flag file exists, as
/// `vrrp_script chk_hang` with `timeout`, fall 3, rise 1: `(flag, top, extra)`.
pub fn hanging_script(host: &Host, timeout: u32) -> (std::path::PathBuf, String, &'static str) {
    let flag = host.dir().join("hang");
    let script = host.script(
        "maybe_hang.sh",
        &format!("[ -e {} ] && exec sleep 30\nexit 0\n", flag.display()),
    );
    let top = format!(
        "vrrp_script chk_hang {{\n    script \"{}\"\n    interval 1\n    timeout {timeout}\n    fall 3\n    rise 1\n}}\n",
        script.display()
    );
    (flag, top, "    track_script {\n        chk_hang\n    }\n")
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

/// Asserts that agent `i` of `agents` reaches `state` within `timeout` (with every log when not).
#[track_caller]
pub fn expect_state(agents: &[Agent], i: usize, state: &str, timeout: Duration) {
    assert!(
        agents[i].wait_state(state, timeout).is_some(),
        "agent {i} never {state}\n{}",
        logs(agents)
    );
}

/// Asserts that `pred` comes to hold on agent `i`'s first instance within `timeout` (with every
/// log when not).
#[track_caller]
pub fn expect_instance(
    agents: &[Agent],
    i: usize,
    timeout: Duration,
    pred: impl Fn(&Instance) -> bool,
) {
    assert!(
        wait_instance(&agents[i], timeout, pred),
        "agent {i}'s instance never got there\n{}",
        logs(agents)
    );
}

/// Waits until `pred` holds on the first instance's status.
pub fn wait_instance(a: &Agent, timeout: Duration, pred: impl Fn(&Instance) -> bool) -> bool {
    wait_until(timeout, || a.instance().is_some_and(|i| pred(&i)))
}

/// Waits until the first instance's state is `state`.
pub fn wait_state(a: &Agent, state: &str, timeout: Duration) -> bool {
    a.wait_state(state, timeout).is_some()
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

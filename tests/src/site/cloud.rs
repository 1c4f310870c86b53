//! The tutorial's setup with a DigitalOcean reserved IP, in the namespace lab, shared by the
//! `do_*` end-to-end tests.
//!
//! ```text
//!   primary (droplet A)      secondary (droplet B)     client
//!   nginx "Primary"          nginx "Secondary"         GET http://RESERVED_IP/
//!   xvrrp (prio 200)         xvrrp (prio 100)          route RESERVED_IP via <holder>
//!   metadata 169.254.169.254 metadata 169.254.169.254
//!   API 127.0.0.1:port       API 127.0.0.1:port        (listeners of one DoDouble)
//! ```
//!
//! The double's `on_assign` hook plays the cloud's network: when an assign completes it moves
//! the reserved IP (a /32 on `lo`) from the old holder's namespace to the new one's and points
//! the client's route for it at the new holder, so the client reaches whichever server the API
//! says holds it (and gets "no route" in between, never a stale server).
//!
//! The tutorial's check is `pidof nginx`; in one machine that sees every namespace's nginx, so
//! the config uses the lab's per-host `nginx_check_script` (pidof restricted to the host's own
//! namespace), everything else as in the tutorial (unicast, PASS, priorities 200/100).

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    agent::Agent,
    do_double::{Config, DoDouble, DropletSpec, RecordedRequest, Scope, Service},
    lab::{tutorial_keepalived_conf, with_instance_block, Host, Lab, Nginx, State},
    must,
    status::Cloud,
    unique, wait_until,
};

/// The reserved IP (TEST-NET-2).
pub const IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// Droplet ids of the primary and the secondary.
pub const A: u64 = 2_756_294;
/// Droplet id of the secondary.
pub const B: u64 = 2_756_295;
/// Token labels in the double's request log.
pub const LABELS: [&str; 2] = ["primary", "secondary"];
/// First election, failover after nginx stops (script interval 2 s), with CI margin.
pub const FAILOVER: Duration = Duration::from_secs(30);

/// How the servers move the IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mover {
    /// xvrrp's `digitalocean { }` block.
    Block,
    /// The tutorial's `notify_master master.sh` (+ `assign-ip`), no `digitalocean` block.
    MasterSh,
}

/// Options of [`DoLab::new`].
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// How the IP is moved.
    pub mover: Mover,
    /// `reconcile_interval`.
    pub reconcile: u32,
    /// The double's action delay.
    pub action_delay: Duration,
    /// Start the agents (and wait for the primary to be Master with the IP verified).
    pub start: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            mover: Mover::Block,
            reconcile: 60,
            action_delay: Duration::from_millis(300),
            start: true,
        }
    }
}

/// Stand-in for the tutorial's `assign-ip` (http://do.co/assign-ip): one POST with the droplet
/// id as a JSON string, prints `id: message` and exits 1 when the answer has a `message`, never
/// looks at the status, never waits for the action, no timeout, no rate-limit handling.
/// The only change: the API base comes from `DO_API_BASE` (no default, so it can never reach the
/// real API) and `urllib` replaces `requests`.
pub const ASSIGN_IP: &str = r#"#!/usr/bin/env python3
import json
import os
import sys
import urllib.error
import urllib.request


def usage():
    print('{} [floating_ip] [droplet_id]'.format(sys.argv[0]))
    print('\nYour DigitalOcean API token must be in the "DO_TOKEN"'
          ' environmental variable.')


def main(floating_ip, droplet_id):
    api_base = os.environ['DO_API_BASE']
    payload = {'type': 'assign', 'droplet_id': droplet_id}
    headers = {'Authorization': 'Bearer {}'.format(os.environ['DO_TOKEN']),
               'Content-type': 'application/json'}
    url = api_base + "/floating_ips/{}/actions".format(floating_ip)
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers=headers, method='POST')
    try:
        body = urllib.request.urlopen(req).read()
    except urllib.error.HTTPError as e:
        body = e.read()  # like requests.post: the status is never looked at

    resp = json.loads(body)
    if 'message' in resp:
        print('{0}: {1}'.format(resp['id'], resp['message']))
        sys.exit(1)
    else:
        print('Moving IP address: {}'.format(resp['action']['status']))


if __name__ == "__main__":
    if 'DO_API_BASE' not in os.environ:
        print('DO_API_BASE must point at the test double')
        sys.exit(2)
    if 'DO_TOKEN' not in os.environ or not len(sys.argv) > 2:
        usage()
        sys.exit()
    main(sys.argv[1], sys.argv[2])
"#;

/// The tutorial's `/etc/keepalived/master.sh`, as printed but with the `[ ... ]` spaces the
/// page lost (`[$HAS_FLOATING_IP` is a command-not-found, so the printed text never assigns),
/// no `#!` line (as in the tutorial: xvrrp runs it with /bin/sh like keepalived). Added lines:
/// the proxy variables are cleared and `DO_API_BASE` points `assign-ip` at the double.
pub fn master_sh(token: &str, api: SocketAddr, assign_ip: &str) -> String {
    format!(
        r#"unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export DO_API_BASE='http://{api}/v2'
export DO_TOKEN='{token}'
IP='{IP}'
ID=$(curl -s http://169.254.169.254/metadata/v1/id)
HAS_FLOATING_IP=$(curl -s http://169.254.169.254/metadata/v1/floating_ip/ipv4/active)

if [ $HAS_FLOATING_IP = "false" ]; then
    n=0
    while [ $n -lt 10 ]
    do
        python3 {assign_ip} $IP $ID && break
        n=$((n+1))
        sleep 3
    done
fi
"#
    )
}

/// The lab.
pub struct DoLab {
    pub lab: Lab,
    pub servers: [Host; 2],
    pub client: Host,
    pub double: DoDouble,
    pub api: [SocketAddr; 2],
    pub tokens: [String; 2],
    pub web: [Nginx; 2],
    pub agents: Vec<Agent>,
    pub configs: [String; 2],
}

fn route_via(client: &str, via: Option<Ipv4Addr>) {
    let cidr = format!("{IP}/32");
    let _ = Command::new("ip")
        .args(["-n", client, "route", "del", &cidr])
        .output();
    if let Some(v) = via {
        let _ = Command::new("ip")
            .args([
                "-n",
                client,
                "route",
                "replace",
                &cidr,
                "via",
                &v.to_string(),
                "dev",
                "eth1",
            ])
            .output();
    }
}

impl DoLab {
    /// Builds the lab; the IP starts on the primary (assigned "in the console", as in the
    /// tutorial).
    pub fn new(opts: Opts) -> Self {
        let lab = Lab::new();
        let primary = lab.add_host("primary");
        let secondary = lab.add_host("secondary");
        let client = lab.add_host("client");
        let double = DoDouble::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Config {
                action_delay: opts.action_delay,
                ..Config::default()
            },
        )
        .unwrap();
        let tokens = [
            format!("dop_v1_{}a", unique("tok").replace('x', "f")),
            format!("dop_v1_{}b", unique("tok").replace('x', "f")),
        ];
        let servers = [primary, secondary];
        let mut api = [SocketAddr::from(([0, 0, 0, 0], 0)); 2];
        for (i, (h, id)) in servers.iter().zip([A, B]).enumerate() {
            double.add_token(&tokens[i], LABELS[i], Scope::ReadWrite);
            double.add_droplet(DropletSpec::new(id, &format!("web-{i}"), "nyc3"));
            // nginx listens on 0.0.0.0:80, so the metadata listener cannot bind
            // 169.254.169.254:80 next to it: it listens on :8080 and an nftables DNAT rule in
            // the server's namespace (output hook) sends 169.254.169.254:80 there, so clients
            // (xvrrp, the tutorial's `curl http://169.254.169.254/...`) use the real address.
            h.ns()
                .ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
            double
                .serve_metadata_in(h.ns(), SocketAddr::from(([169, 254, 169, 254], 8080)), id)
                .unwrap();
            for args in [
                &["add", "table", "ip", "xdo_meta"][..],
                &[
                    "add",
                    "chain",
                    "ip",
                    "xdo_meta",
                    "out",
                    "{ type nat hook output priority -100 ; }",
                ],
                &[
                    "add",
                    "rule",
                    "ip",
                    "xdo_meta",
                    "out",
                    "ip",
                    "daddr",
                    "169.254.169.254",
                    "tcp",
                    "dport",
                    "80",
                    "dnat",
                    "to",
                    "169.254.169.254:8080",
                ],
            ] {
                must(h.ns().command("nft").args(args));
            }
            api[i] = double
                .serve_api_in(h.ns(), SocketAddr::from(([127, 0, 0, 1], 0)))
                .unwrap();
        }
        double.add_reserved_ip(IP, "nyc3", Some(A));
        servers[0]
            .ns()
            .ip(&["addr", "add", &format!("{IP}/32"), "dev", "lo"]);
        route_via(client.ns().name(), Some(servers[0].ip4()));
        let names = [
            servers[0].ns().name().to_owned(),
            servers[1].ns().name().to_owned(),
        ];
        let lan = [servers[0].ip4(), servers[1].ip4()];
        let cname = client.ns().name().to_owned();
        double.on_assign(move |m| {
            let idx = |id: Option<u64>| match id {
                Some(A) => Some(0),
                Some(B) => Some(1),
                _ => None,
            };
            let cidr = format!("{}/32", m.ip);
            route_via(&cname, None);
            if let Some(o) = idx(m.old) {
                let _ = Command::new("ip")
                    .args(["-n", &names[o], "addr", "del", &cidr, "dev", "lo"])
                    .output();
            }
            if let Some(n) = idx(m.new) {
                let _ = Command::new("ip")
                    .args(["-n", &names[n], "addr", "add", &cidr, "dev", "lo"])
                    .output();
                route_via(&cname, Some(lan[n]));
            }
        });
        let web = [
            servers[0].start_nginx("<h1>Primary</h1>\n"),
            servers[1].start_nginx("<h1>Secondary</h1>\n"),
        ];
        let assign_ip = lab.dir().join("assign-ip");
        std::fs::write(&assign_ip, ASSIGN_IP).unwrap();
        let mut configs = [String::new(), String::new()];
        for i in 0..2 {
            let (me, peer) = (&servers[i], &servers[1 - i]);
            let check = me.nginx_check_script("chk_nginx.sh");
            let (state, prio) = if i == 0 {
                (State::Master, 200)
            } else {
                (State::Backup, 100)
            };
            let notify = match opts.mover {
                Mover::Block => None,
                Mover::MasterSh => {
                    let p = me.dir().join("master.sh");
                    std::fs::write(
                        &p,
                        master_sh(&tokens[i], api[i], assign_ip.to_str().unwrap()),
                    )
                    .unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                    Some(p.display().to_string())
                }
            };
            let conf = tutorial_keepalived_conf(
                state,
                prio,
                me.ip4(),
                peer.ip4(),
                check.to_str().unwrap(),
                notify.as_deref(),
            );
            configs[i] = match opts.mover {
                // The tutorial's keepalived.conf as it is (only the check script is the
                // per-namespace `pidof nginx`): no virtual_ipaddress, so VRRPv2 adverts with no
                // addresses, as keepalived sends them.
                Mover::MasterSh => conf,
                Mover::Block => {
                    let tf = me.dir().join("do-token");
                    std::fs::write(&tf, format!("{}\n", tokens[i])).unwrap();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
                    with_instance_block(
                        &conf,
                        &format!(
                            // The double listens on a namespace address over plain http:
                            // `insecure_http` says so (refused otherwise, issue 11 item 5).
                            "digitalocean {{\n    reserved_ip {IP}\n    token_file {}\n    api_url http://{}\n    insecure_http\n    metadata_url http://169.254.169.254\n    reconcile_interval {}\n}}",
                            tf.display(),
                            api[i],
                            opts.reconcile
                        ),
                    )
                }
            };
        }
        let mut l = Self {
            lab,
            servers,
            client,
            double,
            api,
            tokens,
            web,
            agents: Vec::new(),
            configs,
        };
        if opts.start {
            l.start_agents();
        }
        l
    }

    /// Starts both agents; waits for the primary to be Master and the client to see Primary
    /// (and, with the block, the primary's cloud state `ok`).
    pub fn start_agents(&mut self) {
        for i in 0..2 {
            let a = Agent::start(self.servers[i].ns(), &self.configs[i], &["--rx", "socket"]);
            self.agents.push(a);
        }
        assert!(
            self.agents[0].wait_state("Master", FAILOVER).is_some(),
            "{}",
            self.logs()
        );
        assert!(
            self.agents[1].wait_state("Backup", FAILOVER).is_some(),
            "{}",
            self.logs()
        );
        self.wait_client("start", "Primary");
    }

    /// Asserts that agent `i` reaches `state` within `timeout` (with every log when not).
    #[track_caller]
    pub fn expect_state(&self, i: usize, state: &str, timeout: Duration) {
        assert!(
            self.agents[i].wait_state(state, timeout).is_some(),
            "agent {i} never {state}\n{}",
            self.logs()
        );
    }

    /// Asserts that `cond` comes true within `timeout` (with every log when not).
    #[track_caller]
    pub fn expect(&self, timeout: Duration, cond: impl FnMut() -> bool) {
        assert!(wait_until(timeout, cond), "{}", self.logs());
    }

    /// The `cloud` status object of agent `i`.
    pub fn cloud(&self, i: usize) -> Cloud {
        self.agents[i]
            .instance()
            .map(|s| s.cloud())
            .unwrap_or_default()
    }

    /// The cloud state string of agent `i`.
    pub fn cloud_state(&self, i: usize) -> String {
        self.cloud(i).state()
    }

    /// Waits until agent `i`'s cloud state satisfies `f`.
    pub fn wait_cloud(&self, i: usize, timeout: Duration, f: impl Fn(&str) -> bool) -> bool {
        wait_until(timeout, || f(&self.cloud_state(i)))
    }

    /// Waits until the client sees `body` at the reserved IP; prints the time.
    pub fn wait_client(&self, what: &str, body: &str) -> Duration {
        let t = Instant::now();
        if self
            .lab
            .wait_body(&self.client, IP, body, FAILOVER)
            .is_none()
        {
            panic!("{what}: the client never saw {body}\n{}", self.logs());
        }
        eprintln!("[do] {what}: client sees {body} after {:?}", t.elapsed());
        t.elapsed()
    }

    /// Waits until the API says `id` holds the IP (the hook moves the address just before the
    /// double records the new holder).
    pub fn wait_holder(&self, id: u64) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.double.holder(IP) == Some(id)
        })
    }

    /// Both agents' logs and the double's request log.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, a) in self.agents.iter().enumerate() {
            s.push_str(&format!("--- {} xvrrp ---\n{}\n", LABELS[i], a.log()));
        }
        s.push_str("--- double ---\n");
        for r in self.double.requests() {
            s.push_str(&format!(
                "{:>8.3}s {:?} {} {} {:?} {:?}\n",
                r.since_start.as_secs_f64(),
                r.service,
                r.method,
                r.path,
                r.status,
                r.token_label
            ));
        }
        s
    }

    /// API requests made with server `i`'s token.
    pub fn api_requests(&self, i: usize) -> Vec<RecordedRequest> {
        self.double
            .requests()
            .into_iter()
            .filter(|r| r.service == Service::Api && r.token_label.as_deref() == Some(LABELS[i]))
            .collect()
    }

    /// Assign POSTs made with server `i`'s token.
    pub fn posts(&self, i: usize) -> usize {
        self.api_requests(i)
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }

    /// Item 7g: neither token appears in any log line, status output or the request log.
    pub fn assert_no_token(&self) {
        for (i, a) in self.agents.iter().enumerate() {
            let log = a.log();
            let status = a.status().map(|s| s.to_string()).unwrap_or_default();
            for t in &self.tokens {
                for (n, line) in log.lines().enumerate() {
                    assert!(
                        !line.contains(t.as_str()),
                        "token in {} log line {n}: {line}",
                        LABELS[i]
                    );
                }
                assert!(!status.contains(t.as_str()), "token in status");
            }
            assert!(!log.is_empty());
        }
        for r in self.double.requests() {
            for t in &self.tokens {
                assert!(!format!("{r:?}").contains(t.as_str()));
            }
        }
    }

    /// SIGHUP to agent `i` (found by name among the namespace's processes).
    pub fn sighup(&self, i: usize) {
        let out = Command::new("ip")
            .args(["netns", "pids", self.servers[i].ns().name()])
            .output()
            .unwrap();
        let mut sent = false;
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "xvrrp" {
                if let Ok(p) = pid.parse::<i32>() {
                    // SAFETY: kill(2) on the agent this test started.
                    unsafe { libc::kill(p, libc::SIGHUP) };
                    sent = true;
                }
            }
        }
        assert!(sent, "no xvrrp in {}", self.servers[i].name());
    }
}

/// Wall-clock time of an ISO 8601 UTC timestamp as xvrrp prints it
/// (`2024-05-01T12:00:00.123Z`).
pub fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<u64>());
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let ms: u64 = format!("{ms:0<3}").get(..3)?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_millis((days * 86_400 + h * 3600 + mi * 60 + se) * 1000 + ms))
}

/// When agent `a`'s last transition happened, if it reports one to `to`.
pub fn last_transition(a: &Agent, to: &str) -> Option<SystemTime> {
    let (t_to, at) = a.instance()?.last_transition();
    (t_to.as_deref() == Some(to))
        .then(|| at.as_deref().and_then(parse_utc))
        .flatten()
}

//! The faults the chaos suite injects, each undone by a guard (also when the test panics):
//! nftables tables in the lab's switch namespace (the kernel has no netem), a link set down in a
//! server's namespace, a stopped agent.
//!
//! The network faults sit where frames enter the switch (bridge family, `forward` hook, matched
//! on the server ports), so whatever receives them on the servers (the XDP program or the raw
//! socket) never sees the dropped frames: the XDP path is partitioned as much as the socket
//! path. Nothing is configured in the root namespace.

use xvrrp_tests::{lab::nft_apply, must, sh, Netns};

/// A bridge-family nftables table in the switch namespace, deleted on drop.
pub struct SwitchTable<'a> {
    ns: &'a Netns,
    name: &'static str,
}

impl<'a> SwitchTable<'a> {
    /// Loads `table bridge NAME { chain drops { type filter hook forward priority 0; RULES } }`.
    fn load(ns: &'a Netns, name: &'static str, rules: &[String]) -> Self {
        let body: String = rules.iter().map(|r| format!("  {r}\n")).collect();
        let text = format!(
            "table bridge {name} {{\n chain drops {{\n  type filter hook forward priority 0;\n{body} }}\n}}\n"
        );
        let _ = sh(ns.command("nft").args(["delete", "table", "bridge", name]));
        nft_apply(ns, &text);
        Self { ns, name }
    }

    /// Drops VRRP (IP protocol 112) as it enters the switch from any of `ports`: the servers
    /// stop hearing each other (both become Master) while everything else still flows.
    pub fn partition(ns: &'a Netns, ports: [&str; 2]) -> Self {
        let set = port_set(ports);
        Self::load(
            ns,
            "xchaos_partition",
            &[format!("iifname {set} ip protocol 112 counter drop")],
        )
    }

    /// Drops `percent`% of the frames on the links of `ports`, at random (`numgen`), once per
    /// frame: frames entering from those ports, and frames from other ports leaving by them.
    pub fn loss(ns: &'a Netns, ports: [&str; 2], percent: u8) -> Self {
        let set = port_set(ports);
        let chance = format!("numgen random mod 100 < {percent}");
        Self::load(
            ns,
            "xchaos_loss",
            &[
                format!("iifname {set} {chance} counter drop"),
                format!("iifname != {set} oifname {set} {chance} counter drop"),
            ],
        )
    }

    /// How many frames the table's rules dropped so far (the sum of their counters).
    pub fn dropped(&self) -> u64 {
        let text = self.list();
        let mut words = text.split_whitespace();
        let mut n = 0;
        while let Some(w) = words.next() {
            if w == "packets" {
                n += words
                    .next()
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        n
    }

    /// The table's rules with their counters (what the fault dropped).
    pub fn list(&self) -> String {
        must(
            self.ns
                .command("nft")
                .args(["list", "table", "bridge", self.name]),
        )
    }
}

impl Drop for SwitchTable<'_> {
    fn drop(&mut self) {
        let _ = sh(self
            .ns
            .command("nft")
            .args(["delete", "table", "bridge", self.name]));
    }
}

fn port_set(ports: [&str; 2]) -> String {
    format!("{{ \"{}\", \"{}\" }}", ports[0], ports[1])
}

/// `eth1` of a server set down; set up again on drop.
pub struct LinkDown<'a> {
    ns: &'a Netns,
}

impl<'a> LinkDown<'a> {
    /// `ip link set eth1 down` in `ns`.
    pub fn new(ns: &'a Netns) -> Self {
        ns.ip(&["link", "set", "eth1", "down"]);
        Self { ns }
    }
}

impl Drop for LinkDown<'_> {
    fn drop(&mut self) {
        let _ = sh(std::process::Command::new("ip").args([
            "-n",
            self.ns.name(),
            "link",
            "set",
            "eth1",
            "up",
        ]));
    }
}

/// A process stopped with SIGSTOP; continued (SIGCONT) on drop.
pub struct Frozen {
    pid: i32,
}

impl Frozen {
    /// SIGSTOP to `pid`.
    pub fn new(pid: i32) -> Self {
        // SAFETY: kill(2) on the agent this test started.
        let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(rc, 0, "SIGSTOP {pid}");
        Self { pid }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the agent this test started.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
    }
}

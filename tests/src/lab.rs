//! A switched LAN of network namespaces for end-to-end tests, with real peers in it.
//!
//! ```text
//!   host "primary"      host "secondary"     host "client"        (one namespace each)
//!      eth1                 eth1                 eth1             (10.88.0.N/24, fd00:88::N/64)
//!       |                    |                    |
//!      p1 ------------------ p2 ----------------- p3 ── br0       (switch namespace)
//! ```
//!
//! * [`Lab`] owns the switch namespace (a Linux bridge `br0`, multicast snooping off so VRRP
//!   multicast floods to every port) and a private temp dir; [`Lab::add_host`] adds a host
//!   namespace whose `eth1` is a veth plugged into the bridge.
//! * Every resource is a guard: namespaces are deleted (with every process still inside), processes
//!   are killed and reaped, temp dirs are removed, on drop, also when the test panics. Guards keep
//!   what they need alive (a [`Nginx`] guard keeps its host namespace and the lab's temp dir), so
//!   drop order does not matter.
//! * Names (namespaces, temp dirs) come from [`unique`], so tests can run in parallel threads.
//! * Nothing is configured in the root namespace: addresses, routes and nftables rules live only
//!   in namespaces the lab created, and all traffic stays between them.
//!
//! keepalived 2.2.7 in the lab (observed):
//! * Runs as `keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp` with private
//!   `--pid/--vrrp_pid/--checkers_pid/--bfd_pid`; "Startup complete" marks readiness.
//! * Without `enable_script_security` it runs scripts as root and logs "Script user
//!   'keepalived_script' does not exist" + "SECURITY VIOLATION - scripts are being executed but
//!   script_security not enabled."; `--config-test` then exits 6, but the daemon runs fine.
//!   A bare `pidof` is found by PATH search with a warning asking for a full path.
//! * `state MASTER` with priority < 255 still starts in BACKUP and takes over only after
//!   Master_Down_Interval (about 3.2 s at priority 200).
//! * SIGKILL of the parent alone is not a crash: the VRRP child sees its parent die and shuts
//!   down cleanly (priority 0, VIPs removed). [`Keepalived::kill`] kills the whole group, which
//!   leaves the VIPs on the interface.
//! * Orphaned zombies (nginx workers after a SIGKILL) are reaped by this machine's init with a
//!   delay, so `pgrep nginx` may briefly list `<defunct>` entries; see [`alive`].
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a failed setup step should panic the test"
)]

use std::{
    fmt::Write as _,
    fs,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{must, sh, unique, wait_until, Netns};

/// Connect + read timeout of [`Lab::get`].
pub const HTTP_TIMEOUT: Duration = Duration::from_millis(500);
/// How often [`Lab::wait_body`] polls.
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Temp dirs
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/{prefix}{pid}x{n}`.
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(prefix));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn write_script(path: &Path, text: &str) {
    write_file(path, text);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Whether `pid` is a live process (not a zombie: a zombie still accepts signals, and orphans on
/// this machine are reaped by init with some delay).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(state_of(&stat), Some('Z' | 'X')),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/PID/stat` line (after the parenthesised command name).
fn state_of(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Pids whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Spawns `cmd` in its own process group with stdout and stderr appended to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"))
}

/// SIGKILLs a process group and reaps its leader.
fn kill_group(child: &mut Child) {
    let pid = child.id() as i32;
    // SAFETY: plain kill(2) on the group this guard created with process_group(0).
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// The lab
// ---------------------------------------------------------------------------------------------

/// What every host of a lab shares: the switch namespace and the temp dir.
#[derive(Debug)]
struct Shared {
    // Field order is drop order: the namespace first, then the files.
    switch: Netns,
    dir: TempDir,
}

/// A LAN: one switch namespace with a bridge, and hosts plugged into it.
#[derive(Debug)]
pub struct Lab {
    shared: Arc<Shared>,
    net4: [u8; 3],
    net6: Option<u16>,
    hosts: Mutex<Vec<Host>>,
}

/// Options for [`Lab::with`].
#[derive(Debug, Clone, Copy)]
pub struct LabSpec {
    /// The IPv4 /24, as its first three octets (default 10.88.0).
    pub net4: [u8; 3],
    /// IPv6 ULA /64 `fd00:N::/64` for every host (`nodad`), or none (default `Some(0x88)`).
    pub net6: Option<u16>,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self {
            net4: [10, 88, 0],
            net6: Some(0x88),
        }
    }
}

impl Lab {
    /// A lab on 10.88.0.0/24 and fd00:88::/64.
    pub fn new() -> Self {
        Self::with(LabSpec::default())
    }

    /// A lab with the given address plan. Addresses only exist inside the lab's namespaces, so
    /// parallel labs may use the same plan.
    pub fn with(spec: LabSpec) -> Self {
        let switch = Netns::new("xlsw");
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        switch.ip(&["link", "set", "br0", "up"]);
        let dir = TempDir::new("xvrrp-lab-");
        Self {
            shared: Arc::new(Shared { switch, dir }),
            net4: spec.net4,
            net6: spec.net6,
            hosts: Mutex::new(Vec::new()),
        }
    }

    /// The switch namespace (holds `br0` and the ports `p1`, `p2`, ...).
    pub fn switch(&self) -> &Netns {
        &self.shared.switch
    }

    /// The lab's temp dir (removed when the lab and every guard are gone).
    pub fn dir(&self) -> &Path {
        self.shared.dir.path()
    }

    /// `net4.last`, e.g. `lab.addr4(100)` for a virtual IP.
    pub fn addr4(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.net4;
        Ipv4Addr::new(a, b, c, last)
    }

    /// `fd00:N::last` (panics if the lab has no IPv6).
    pub fn addr6(&self, last: u16) -> Ipv6Addr {
        let n = self.net6.expect("this lab has no IPv6");
        Ipv6Addr::new(0xfd00, n, 0, 0, 0, 0, 0, last)
    }

    /// Adds a host with the next free addresses (host number N gets `.N` and `::N`).
    pub fn add_host(&self, name: &str) -> Host {
        let n = self.hosts.lock().unwrap().len() + 1;
        let n = u8::try_from(n).expect("at most 254 hosts");
        let ip6 = self.net6.map(|_| self.addr6(u16::from(n)));
        self.add_host_with(name, self.addr4(n), ip6)
    }

    /// Adds a host with the given addresses (/24 and /64) on `eth1`.
    pub fn add_host_with(&self, name: &str, ip4: Ipv4Addr, ip6: Option<Ipv6Addr>) -> Host {
        let mut hosts = self.hosts.lock().unwrap();
        let port = format!("p{}", hosts.len() + 1);
        let short: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect();
        let ns = Netns::new(&format!("xl{short}-"));
        self.plug_veth(&ns, "eth1", &port);
        ns.ip(&["addr", "add", &format!("{ip4}/24"), "dev", "eth1"]);
        if let Some(ip6) = ip6 {
            ns.ip(&["addr", "add", &format!("{ip6}/64"), "dev", "eth1", "nodad"]);
        }
        ns.ip(&["link", "set", "eth1", "up"]);
        let dir = self.shared.dir.path().join(ns.name());
        fs::create_dir_all(&dir).unwrap();
        let host = Host {
            inner: Arc::new(HostInner {
                name: name.to_owned(),
                ns,
                port,
                ip4,
                ip6,
                dir,
                _lab: Arc::clone(&self.shared),
            }),
        };
        hosts.push(host.clone());
        host
    }

    /// A veth pair: `ifname` in `ns`, `port` in the switch, in the bridge and up.
    fn plug_veth(&self, ns: &Netns, ifname: &str, port: &str) {
        must(Command::new("ip").args([
            "link",
            "add",
            ifname,
            "netns",
            ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            self.shared.switch.name(),
        ]));
        let sw = &self.shared.switch;
        sw.ip(&["link", "set", port, "master", "br0"]);
        sw.ip(&["link", "set", port, "up"]);
    }

    /// Gives `host` one more interface `ifname` on the switch (a new veth into the bridge,
    /// port `PORTxN` for `ethN`), with `ip4`/24, up.
    pub fn add_link(&self, host: &Host, ifname: &str, ip4: Ipv4Addr) {
        let port = format!("{}x{}", host.inner.port, ifname.trim_start_matches("eth"));
        self.plug_veth(host.ns(), ifname, &port);
        host.ns()
            .ip(&["addr", "add", &format!("{ip4}/24"), "dev", ifname]);
        host.ns().ip(&["link", "set", ifname, "up"]);
    }

    /// Deletes the host's `eth1` (its bridge port goes with it), as a device being removed
    /// (NetworkManager, ifupdown, a container runtime).
    pub fn delete_link(&self, host: &Host) {
        host.ns().ip(&["link", "del", "eth1"]);
    }

    /// Creates the host's `eth1` again after [`Lab::delete_link`]: a new device (new ifindex)
    /// under the same name, on the same bridge port, with the same addresses, up.
    pub fn recreate_link(&self, host: &Host) {
        self.plug_veth(host.ns(), "eth1", &host.inner.port);
        let ns = host.ns();
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", host.inner.ip4),
            "dev",
            "eth1",
        ]);
        if let Some(ip6) = host.inner.ip6 {
            ns.ip(&["addr", "add", &format!("{ip6}/64"), "dev", "eth1", "nodad"]);
        }
        ns.ip(&["link", "set", "eth1", "up"]);
    }

    /// The host added under `name`.
    pub fn host(&self, name: &str) -> Host {
        self.hosts
            .lock()
            .unwrap()
            .iter()
            .find(|h| h.name() == name)
            .cloned()
            .unwrap_or_else(|| panic!("no host {name} in this lab"))
    }

    /// Partitions `host` from the LAN while its link stays up (a split brain, not a link
    /// failure): a bridge-family nftables rule in the switch drops every frame (ARP included)
    /// from and to the host's port. Idempotent.
    pub fn cut(&self, host: &Host) {
        let t = format!("cut_{}", host.inner.port);
        let p = &host.inner.port;
        let rules = format!(
            "table bridge {t} {{\n chain forward_cut {{\n  type filter hook forward priority 0;\n  \
             iifname \"{p}\" drop\n  oifname \"{p}\" drop\n }}\n}}\n"
        );
        let _ = sh(self
            .switch()
            .command("nft")
            .args(["delete", "table", "bridge", &t]));
        nft_apply(self.switch(), &rules);
    }

    /// Undoes [`Lab::cut`]. Idempotent.
    pub fn heal(&self, host: &Host) {
        let t = format!("cut_{}", host.inner.port);
        let _ = sh(self
            .switch()
            .command("nft")
            .args(["delete", "table", "bridge", &t]));
    }

    /// Sets the host's bridge port down: the host's `eth1` loses carrier (a link failure, which
    /// keepalived sees as FAULT).
    pub fn unplug(&self, host: &Host) {
        self.switch().ip(&["link", "set", &host.inner.port, "down"]);
    }

    /// Sets the host's bridge port up again.
    pub fn plug(&self, host: &Host) {
        self.switch().ip(&["link", "set", &host.inner.port, "up"]);
    }

    /// Random loss of `percent`% of the host's inbound and outbound packets on `eth1`
    /// (nftables `numgen random` in the host namespace; the kernel has no netem). `0` removes it.
    pub fn loss(&self, host: &Host, percent: u8, what: Loss) {
        assert!(percent <= 100, "loss is a percentage");
        let ns = host.ns();
        let _ = sh(ns
            .command("nft")
            .args(["delete", "table", "inet", "xlab_loss"]));
        if percent == 0 {
            return;
        }
        let sel = match what {
            Loss::Vrrp => "meta l4proto 112 ",
            Loss::All => "",
        };
        let chance = if percent == 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {percent} ")
        };
        let rules = format!(
            "table inet xlab_loss {{\n chain rx {{\n  type filter hook input priority 0;\n  \
             iifname \"eth1\" {sel}{chance}drop\n }}\n \
             chain tx {{\n  type filter hook output priority 0;\n  \
             oifname \"eth1\" {sel}{chance}drop\n }}\n}}\n"
        );
        nft_apply(ns, &rules);
    }

    /// `GET /` on `addr` port 80 from inside `client`'s namespace (HTTP/1.0, [`HTTP_TIMEOUT`] to
    /// connect and to read). The body of a 200 answer, or `None`.
    pub fn get(&self, client: &Host, addr: impl Into<IpAddr>) -> Option<String> {
        http_get(client.ns(), SocketAddr::new(addr.into(), 80))
    }

    /// Polls [`Lab::get`] every [`POLL`] until the body contains `expected`; how long it took,
    /// or `None` after `timeout`.
    pub fn wait_body(
        &self,
        client: &Host,
        addr: impl Into<IpAddr>,
        expected: &str,
        timeout: Duration,
    ) -> Option<Duration> {
        let addr = addr.into();
        let start = Instant::now();
        let ok = wait_until(timeout, || {
            self.get(client, addr).is_some_and(|b| b.contains(expected))
        });
        ok.then(|| start.elapsed())
    }

    /// Captures on the bridge in the switch namespace (sees every frame of the LAN).
    pub fn capture_switch(&self, filter: &str) -> Capture {
        Capture::start(self.switch(), "br0", filter, self.dir())
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Lab::loss`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Only VRRP (IP protocol 112).
    Vrrp,
    /// Every IPv4/IPv6 packet.
    All,
}

/// Loads an nftables ruleset (`nft -f -`) in `ns`; panics with nft's error when it fails.
pub fn nft_apply(ns: &Netns, rules: &str) {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft -f failed in {}: {}\n{rules}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http_get(ns: &Netns, to: SocketAddr) -> Option<String> {
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&to, HTTP_TIMEOUT).ok()?;
        s.set_read_timeout(Some(HTTP_TIMEOUT)).ok()?;
        s.set_write_timeout(Some(HTTP_TIMEOUT)).ok()?;
        write!(s, "GET / HTTP/1.0\r\nHost: {to}\r\n\r\n").ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?;
        (status == "200").then(|| body.to_owned())
    })
}

// ---------------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct HostInner {
    name: String,
    // Field order is drop order: the namespace goes before the shared lab state.
    ns: Netns,
    port: String,
    ip4: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    dir: PathBuf,
    /// Keeps the switch namespace and the temp dir alive as long as this host.
    _lab: Arc<Shared>,
}

/// A host of a [`Lab`]: a namespace with `eth1` on the LAN. Cheap to clone; the namespace is
/// deleted when the lab and every clone and guard of the host are gone.
#[derive(Debug, Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

impl Host {
    /// The name given to [`Lab::add_host`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The host's port on the switch (`p1`, `p2`, ...).
    pub fn port(&self) -> &str {
        &self.inner.port
    }

    /// The host's namespace.
    pub fn ns(&self) -> &Netns {
        &self.inner.ns
    }

    /// The host's IPv4 address on `eth1`.
    pub fn ip4(&self) -> Ipv4Addr {
        self.inner.ip4
    }

    /// The host's IPv6 ULA on `eth1`, if the lab has IPv6.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.inner.ip6
    }

    /// A private directory for this host's files (inside the lab's temp dir).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The addresses (v4 and v6, without prefix length) currently on `ifname`.
    pub fn addrs(&self, ifname: &str) -> Vec<IpAddr> {
        let out = self.ns().ip(&["-o", "addr", "show", "dev", ifname]);
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|t| *t == "inet" || *t == "inet6")?;
                w.next()?.split('/').next()?.parse().ok()
            })
            .collect()
    }

    /// Whether `addr` is currently on `eth1`.
    pub fn has_addr(&self, addr: impl Into<IpAddr>) -> bool {
        self.addrs("eth1").contains(&addr.into())
    }

    /// Writes an executable script `name` in the host's dir that exits 0 iff an nginx process
    /// runs in *this host's* network namespace. It is the per-host equivalent of the tutorial's
    /// `pidof nginx`, which sees the nginx of every namespace on the machine (and so only works
    /// when each server is a separate machine).
    pub fn nginx_check_script(&self, name: &str) -> PathBuf {
        let path = self.dir().join(name);
        write_script(
            &path,
            "#!/bin/sh\n\
             # pidof nginx, restricted to the caller's network namespace\n\
             me=$(readlink /proc/self/ns/net)\n\
             for p in $(pidof nginx); do\n\
             \x20 [ \"$(readlink /proc/$p/ns/net 2>/dev/null)\" = \"$me\" ] && exit 0\n\
             done\n\
             exit 1\n",
        );
        path
    }

    /// Writes an executable script `name` in the host's dir with `body` after a `#!/bin/sh` line.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir().join(name);
        write_script(&path, &format!("#!/bin/sh\n{body}"));
        path
    }

    /// Starts nginx in this host serving `body` at `/` on port 80 (v4 and v6); waits until it
    /// listens.
    pub fn start_nginx(&self, body: &str) -> Nginx {
        let dir = self.dir().join(unique("nginx"));
        for sub in ["html", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        write_file(&dir.join("html/index.html"), body);
        let d = dir.display();
        let v6 = if self.ip6().is_some() {
            "    listen [::]:80 ipv6only=on;\n"
        } else {
            ""
        };
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
             pid {d}/nginx.pid;\nlock_file {d}/nginx.lock;\nerror_log {d}/error.log notice;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             \x20   access_log {d}/access.log;\n\
             \x20   client_body_temp_path {d}/tmp/body;\n\
             \x20   proxy_temp_path {d}/tmp/proxy;\n\
             \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
             \x20   scgi_temp_path {d}/tmp/scgi;\n\
             \x20   default_type text/html;\n\
             \x20   server {{\n\
             \x20   listen 0.0.0.0:80;\n{v6}\
             \x20   root {d}/html;\n\
             \x20   location / {{ index index.html; }}\n\
             \x20   }}\n}}\n"
        );
        write_file(&dir.join("nginx.conf"), &conf);
        let mut n = Nginx {
            host: self.clone(),
            dir,
            child: None,
        };
        n.start();
        n
    }

    /// Starts keepalived (VRRP only) in this host with `config`; waits until it has logged
    /// "Startup complete" (panics with its log if it exits or does not get there).
    pub fn start_keepalived(&self, config: &str) -> Keepalived {
        let dir = self.dir().join(unique("keepalived"));
        fs::create_dir_all(&dir).unwrap();
        write_file(&dir.join("keepalived.conf"), config);
        let mut k = Keepalived {
            host: self.clone(),
            dir,
            child: None,
        };
        k.start();
        k
    }

    /// Starts `tcpdump -i IFNAME -w FILE FILTER` in this host; waits until it listens.
    pub fn capture(&self, ifname: &str, filter: &str) -> Capture {
        Capture::start(self.ns(), ifname, filter, self.dir())
    }
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// An nginx master (+ one worker) in a host, with a private config, pid file, logs, temp paths
/// and html root. The whole process group is killed on drop.
#[derive(Debug)]
pub struct Nginx {
    host: Host,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// The private directory (config, `nginx.pid`, `error.log`, `access.log`, `html/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pid file nginx writes.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("nginx.pid")
    }

    /// The master's pid, while it runs.
    pub fn master_pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Master and workers.
    pub fn pids(&self) -> Vec<i32> {
        let Some(m) = self.master_pid() else {
            return Vec::new();
        };
        let mut v = vec![m];
        v.extend(children_of(m));
        v
    }

    /// Whether the master runs.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Starts nginx again (after [`Nginx::stop`] or [`Nginx::kill`]); waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "nginx already runs");
        let d = &self.dir;
        let pid_file = self.pid_file();
        let _ = fs::remove_file(&pid_file);
        let mut cmd = self.host.ns().command("nginx");
        cmd.arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("error.log"));
        let mut child = spawn_logged(&mut cmd, &d.join("stderr.log"));
        let pid = child.id() as i32;
        let ok = wait_until(Duration::from_secs(10), || {
            read_pid(&pid_file) == Some(pid) && !children_of(pid).is_empty()
                || child.try_wait().ok().flatten().is_some()
        });
        if !ok || child.try_wait().ok().flatten().is_some() {
            kill_group(&mut child);
            panic!(
                "nginx did not start in {}: {}{}",
                self.host.ns().name(),
                self.error_log(),
                fs::read_to_string(d.join("stderr.log")).unwrap_or_default()
            );
        }
        self.child = Some(child);
    }

    /// Graceful stop (SIGQUIT, as `nginx -s quit` sends); waits until the master has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as i32;
        signal(pid, libc::SIGCONT);
        signal(pid, libc::SIGQUIT);
        let exited = wait_until(Duration::from_secs(10), || {
            child.try_wait().ok().flatten().is_some()
        });
        if !exited {
            kill_group(&mut child);
            panic!("nginx did not quit within 10 s: {}", self.error_log());
        }
    }

    /// SIGKILL to master and workers (the pid file stays behind, as after a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// SIGSTOP to master and workers: nginx still holds its port (connections queue) but
    /// answers nothing; a `pidof`-style check still passes.
    pub fn pause(&self) {
        for p in self.pids() {
            signal(p, libc::SIGSTOP);
        }
    }

    /// SIGCONT to master and workers.
    pub fn resume(&self) {
        for p in self.pids() {
            signal(p, libc::SIGCONT);
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// keepalived
// ---------------------------------------------------------------------------------------------

/// A keepalived (VRRP subsystem only, `--dont-fork`) in a host: private config and pid files,
/// console log captured to a file. Its whole process group (parent, VRRP child, scripts) is
/// SIGKILLed on drop.
#[derive(Debug)]
pub struct Keepalived {
    host: Host,
    dir: PathBuf,
    child: Option<Child>,
}

impl Keepalived {
    /// The private directory (`keepalived.conf`, pid files, `keepalived.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }

    /// The parent process's pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The VRRP child's pid (from its pid file), while it runs.
    pub fn vrrp_pid(&self) -> Option<i32> {
        self.child.as_ref()?;
        read_pid(&self.dir.join("vrrp.pid")).filter(|p| alive(*p))
    }

    /// Whether the parent still runs.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Everything keepalived logged so far (all of its runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; how long it took, or `None`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        wait_until(timeout, || self.log().contains(needle)).then(|| start.elapsed())
    }

    /// Starts keepalived (again) with the same config; waits for "Startup complete".
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "keepalived already runs");
        let d = &self.dir;
        let log = d.join("keepalived.log");
        let before = fs::read_to_string(&log).map(|s| s.len()).unwrap_or(0);
        let mut cmd = self.host.ns().command("keepalived");
        cmd.args([
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--vrrp",
        ])
        .arg("--use-file")
        .arg(d.join("keepalived.conf"))
        .arg("--pid")
        .arg(d.join("keepalived.pid"))
        .arg("--vrrp_pid")
        .arg(d.join("vrrp.pid"))
        .arg("--checkers_pid")
        .arg(d.join("checkers.pid"))
        .arg("--bfd_pid")
        .arg(d.join("bfd.pid"));
        let mut child = spawn_logged(&mut cmd, &log);
        let started = wait_until(Duration::from_secs(10), || {
            fs::read_to_string(&log)
                .map(|s| s[before.min(s.len())..].contains("Startup complete"))
                .unwrap_or(false)
                || child.try_wait().ok().flatten().is_some()
        });
        if !started || child.try_wait().ok().flatten().is_some() {
            kill_group(&mut child);
            panic!(
                "keepalived did not start in {}:\n{}",
                self.host.ns().name(),
                self.log()
            );
        }
        self.child = Some(child);
    }

    /// SIGTERM: keepalived sends priority 0, removes its VIPs and exits; waits for the exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id() as i32, libc::SIGTERM);
        if !wait_until(Duration::from_secs(10), || {
            child.try_wait().ok().flatten().is_some()
        }) {
            kill_group(&mut child);
            panic!("keepalived ignored SIGTERM for 10 s:\n{}", self.log());
        }
        // Scripts it started are in its group; make sure none outlives it.
        kill_group(&mut child);
    }

    /// SIGKILL to every keepalived process (parent and VRRP child at once, as `kill -9` of the
    /// whole service or a crash): nothing is cleaned up, the VIPs stay on the interface.
    /// (SIGKILL of the parent alone is *not* a hard kill: the VRRP child notices its parent's
    /// death and shuts down cleanly, removing the VIPs.)
    ///
    /// Its pid files are removed afterwards: the killed VRRP child can linger as an unreaped
    /// zombie on this machine, and keepalived refuses to start ("daemon is already running")
    /// while a pid file names a pid that still exists. After a real crash and reboot they would
    /// not matter.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
        for f in ["keepalived.pid", "vrrp.pid", "checkers.pid", "bfd.pid"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
    }

    /// SIGSTOP to parent and VRRP child: a daemon that hangs (adverts stop, VIPs stay).
    pub fn pause(&self) {
        for p in self.pid().into_iter().chain(self.vrrp_pid()) {
            signal(p, libc::SIGSTOP);
        }
    }

    /// SIGCONT to parent and VRRP child.
    pub fn resume(&self) {
        for p in self.pid().into_iter().chain(self.vrrp_pid()) {
            signal(p, libc::SIGCONT);
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill();
    }
}

/// VRRP state of the tutorial's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `state MASTER`
    Master,
    /// `state BACKUP`
    Backup,
}

impl State {
    /// The config keyword: `MASTER` or `BACKUP`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Master => "MASTER",
            State::Backup => "BACKUP",
        }
    }
}

/// The tutorial's `/etc/keepalived/keepalived.conf`, text for text, with its placeholders
/// filled in: `state`, `priority`, `unicast_src_ip`, the one `unicast_peer`, the check script
/// (the tutorial has `pidof nginx`) and the `notify_master` line (omitted when `None`).
/// Interface `eth1`, VRID 33, PASS auth `password`, default `advert_int` (1 s).
pub fn tutorial_keepalived_conf(
    state: State,
    priority: u8,
    src_ip: Ipv4Addr,
    peer_ip: Ipv4Addr,
    check_script: &str,
    notify_master: Option<&str>,
) -> String {
    let state = match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
    };
    let mut s = format!(
        "vrrp_script chk_nginx {{
    script \"{check_script}\"
    interval 2
}}

vrrp_instance VI_1 {{
    interface eth1
    state {state}
    priority {priority}

    virtual_router_id 33
    unicast_src_ip {src_ip}
    unicast_peer {{
        {peer_ip}
    }}

    authentication {{
        auth_type PASS
        auth_pass password
    }}

    track_script {{
        chk_nginx
    }}
"
    );
    if let Some(n) = notify_master {
        let _ = write!(s, "\n    notify_master {n}\n");
    }
    s.push_str("}\n");
    s
}

/// Adds `block` (e.g. `virtual_ipaddress { 10.88.0.100/24 dev eth1 }`) at the end of the first
/// `vrrp_instance` of a config rendered by [`tutorial_keepalived_conf`].
pub fn with_instance_block(conf: &str, block: &str) -> String {
    let end = conf.rfind('}').expect("a vrrp_instance block");
    let mut s = conf[..end].to_owned();
    for l in block.lines() {
        let _ = writeln!(s, "    {l}");
    }
    s.push_str(&conf[end..]);
    s
}

// ---------------------------------------------------------------------------------------------
// Packet capture
// ---------------------------------------------------------------------------------------------

/// A `tcpdump -U -w FILE` running in a namespace; killed on drop (the file goes with the lab's
/// temp dir).
#[derive(Debug)]
pub struct Capture {
    file: PathBuf,
    child: Option<Child>,
}

/// One VRRP advertisement read back from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// IP source.
    pub src: IpAddr,
    /// IP destination (the peer in unicast mode, 224.0.0.18 / ff02::12 in multicast).
    pub dst: IpAddr,
    /// 2 or 3.
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Advertised priority (0: the master is leaving).
    pub prio: u8,
}

impl Capture {
    fn start(ns: &Netns, ifname: &str, filter: &str, dir: &Path) -> Capture {
        let file = dir.join(format!("{}.pcap", unique("cap")));
        let log = dir.join(format!("{}.log", unique("cap")));
        let mut cmd = ns.command("tcpdump");
        cmd.args(["-i", ifname, "-n", "-U", "-Z", "root", "-w"])
            .arg(&file);
        if !filter.is_empty() {
            cmd.args(filter.split_whitespace());
        }
        let mut child = spawn_logged(&mut cmd, &log);
        let ok = wait_until(Duration::from_secs(10), || {
            fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on"))
                || child.try_wait().ok().flatten().is_some()
        });
        if !ok || child.try_wait().ok().flatten().is_some() {
            kill_group(&mut child);
            panic!(
                "tcpdump did not start: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Capture {
            file,
            child: Some(child),
        }
    }

    /// The pcap file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// `tcpdump -r FILE -n -v` of what was captured so far (packets are flushed as they come).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(
            &sh(Command::new("tcpdump")
                .arg("-r")
                .arg(&self.file)
                .args(["-n", "-v"]))
            .stdout,
        )
        .into_owned()
    }

    /// The VRRP advertisements captured so far, in order.
    pub fn adverts(&self) -> Vec<Advert> {
        parse_adverts(&self.text())
    }

    /// The VRRP advertisements captured so far with their capture time (seconds since the
    /// epoch, µs resolution; `tcpdump -tt`), in order. On the switch this is the time the frame
    /// crossed the bridge, independent of what the receivers do with it.
    pub fn timed_adverts(&self) -> Vec<(f64, Advert)> {
        let text = String::from_utf8_lossy(
            &sh(Command::new("tcpdump")
                .arg("-r")
                .arg(&self.file)
                .args(["-n", "-tt"]))
            .stdout,
        )
        .into_owned();
        text.lines()
            .filter_map(|line| {
                let t: f64 = line.split_whitespace().next()?.parse().ok()?;
                let a = parse_adverts(line).pop()?;
                Some((t, a))
            })
            .collect()
    }

    /// Stops tcpdump (the file stays readable).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id() as i32, libc::SIGINT);
            if !wait_until(Duration::from_secs(5), || {
                c.try_wait().ok().flatten().is_some()
            }) {
                kill_group(&mut c);
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }
}

/// Parses `tcpdump -n -v` output lines like
/// `10.88.0.1 > 10.88.0.2: VRRPv2, Advertisement, vrid 33, prio 200, ...`.
pub fn parse_adverts(text: &str) -> Vec<Advert> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(pos) = line.find(": VRRPv") else {
            continue;
        };
        let head = line[..pos].trim();
        let Some((src, dst)) = head.rsplit_once(" > ") else {
            continue;
        };
        let src = src.split_whitespace().last().unwrap_or("");
        let rest = &line[pos + ": VRRPv".len()..];
        let version = rest.chars().next().and_then(|c| c.to_digit(10));
        let field = |name: &str| -> Option<u8> {
            let i = rest.find(name)? + name.len();
            rest[i..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        if let (Ok(src), Ok(dst), Some(version), Some(vrid), Some(prio)) = (
            src.parse(),
            dst.trim().parse(),
            version,
            field("vrid "),
            field("prio "),
        ) {
            out.push(Advert {
                src,
                dst,
                version: version as u8,
                vrid,
                prio,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcpdump_vrrp_lines() {
        let t = "08:00:00.1 IP (tos 0xc0, ttl 255, id 1, offset 0, flags [none], proto VRRP (112), length 40)\n    10.88.0.1 > 10.88.0.2: VRRPv2, Advertisement, vrid 33, prio 200, authtype simple, intvl 1s, length 20, addrs: 10.88.0.100 auth \"password\"\n08:00:00.2 IP6 (class 0xc0, hlim 255, next-header VRRP (112) payload length: 24) fe80::1 > ff02::12: VRRPv3, Advertisement, vrid 7, prio 0, intvl 10cs, length 24, addrs: fd00:88::100\n";
        let a = parse_adverts(t);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(a[0].src, "10.88.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(a[0].dst, "10.88.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((a[0].version, a[0].vrid, a[0].prio), (2, 33, 200));
        assert_eq!((a[1].version, a[1].vrid, a[1].prio), (3, 7, 0));
        assert_eq!(a[1].dst, "ff02::12".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn tutorial_conf_matches_the_tutorial_text() {
        let c = tutorial_keepalived_conf(
            State::Backup,
            100,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            "pidof nginx",
            Some("/etc/keepalived/master.sh"),
        );
        let expected = "vrrp_script chk_nginx {
    script \"pidof nginx\"
    interval 2
}

vrrp_instance VI_1 {
    interface eth1
    state BACKUP
    priority 100

    virtual_router_id 33
    unicast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.1
    }

    authentication {
        auth_type PASS
        auth_pass password
    }

    track_script {
        chk_nginx
    }

    notify_master /etc/keepalived/master.sh
}
";
        assert_eq!(c, expected);
        let v = with_instance_block(&c, "virtual_ipaddress {\n    10.0.0.100/24 dev eth1\n}");
        assert!(v.ends_with(
            "notify_master /etc/keepalived/master.sh\n    virtual_ipaddress {\n        10.0.0.100/24 dev eth1\n    }\n}\n"
        ));
    }
}

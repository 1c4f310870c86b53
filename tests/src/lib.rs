//! Test labs for the xvrrp end-to-end suite: network namespaces, veth pairs and processes inside
//! them, each owned by a guard that tears it down on drop, also when the test fails.
//!
//! Names are unique per process and per call, so tests can run in parallel. Traffic only ever
//! goes to addresses inside namespaces these guards created.
#![allow(
    clippy::unwrap_used,
    reason = "test support code: a failed setup step should panic the test"
)]

pub mod agent;
pub mod bench;
pub mod do_double;
pub mod forge;
pub mod lab;
pub mod site;
pub mod status;
pub mod vlan;

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// Panics with a clear message unless the suite runs as root (it needs namespaces and XDP).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the namespace tests need root: run `cargo xtask test` as root"
    );
}

/// Path of the `xvrrp` binary under test (`$XVRRP_BIN`, else the workspace's debug build).
pub fn xvrrp_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("XVRRP_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/xvrrp")
}

/// A name unique to this process and call: `{prefix}{pid}x{n}`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command and returns its output; panics (naming the command) if it cannot start.
pub fn sh(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn must(cmd: &mut Command) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with every process still in it) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `{prefix}{pid}x{n}` with loopback up (and `-{tag}` after it when
    /// `XVRRP_RUN_TAG` is set: `cargo xtask bench` tags the namespaces of its run, so that after
    /// an interrupt it removes those and no others).
    pub fn new(prefix: &str) -> Self {
        require_root();
        let name = match std::env::var("XVRRP_RUN_TAG") {
            Ok(tag) if !tag.is_empty() => format!("{}-{tag}", unique(prefix)),
            _ => unique(prefix),
        };
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        must(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs inside the namespace (`ip netns exec NAME PROGRAM`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Starts a process inside the namespace; it is killed when the guard drops.
    pub fn spawn(&self, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Proc { child: Some(child) }
    }

    /// Runs `f` on a thread that has entered this namespace (sockets it opens live there).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.name, f)
    }
}

/// Runs `f` on a thread that has entered the namespace called `name` (sockets it opens live
/// there).
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    thread::spawn(move || {
        let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: valid namespace fd; CLONE_NEWNET only changes this thread's namespace.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside, then delete the namespace (which destroys its
        // interfaces, and so detaches XDP programs attached to them).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: plain kill(2).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Creates a veth pair with one end in each namespace, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    must(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]));
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// Two namespaces `{prefix}a` and `{prefix}b` joined by a veth pair `va` <-> `vb`, with
/// `{net4}.1/24` on `va` and `{net4}.2/24` on `vb`; with `ipv6`, DAD off on both and
/// `fd00::1/64`, `fd00::2/64`.
pub fn veth_pair(prefix: &str, net4: &str, ipv6: bool) -> (Netns, Netns) {
    let a = Netns::new(&format!("{prefix}a"));
    let b = Netns::new(&format!("{prefix}b"));
    if ipv6 {
        a.disable_dad();
        b.disable_dad();
    }
    veth(&a, "va", &b, "vb");
    a.ip(&["addr", "add", &format!("{net4}.1/24"), "dev", "va"]);
    b.ip(&["addr", "add", &format!("{net4}.2/24"), "dev", "vb"]);
    if ipv6 {
        a.ip(&["addr", "add", "fd00::1/64", "dev", "va", "nodad"]);
        b.ip(&["addr", "add", "fd00::2/64", "dev", "vb", "nodad"]);
    }
    (a, b)
}

/// A child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// Waits up to `timeout` for the process to exit and returns its output.
    pub fn wait_output(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "process did not exit within {timeout:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

static ABORTED: AtomicBool = AtomicBool::new(false);

/// From now on every [`wait_until`] gives up at once. The demo's Ctrl-C handler calls it: the
/// step in progress then fails fast and the guards tear the lab down, as after a failed test.
pub fn abort_waits() {
    ABORTED.store(true, Ordering::SeqCst);
}

/// Whether [`abort_waits`] was called.
pub fn waits_aborted() -> bool {
    ABORTED.load(Ordering::SeqCst)
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held (false
/// at once after [`abort_waits`]).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline || waits_aborted() {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `count` raw IPv4 packets of protocol `proto` with `payload` to `dst`, from the calling
/// thread's namespace.
pub fn send_raw_ipv4(dst: std::net::Ipv4Addr, proto: i32, payload: &[u8], count: usize) {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
    assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    for _ in 0..count {
        // SAFETY: valid buffer and sockaddr_in of the stated size.
        let n = unsafe {
            libc::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert!(n >= 0, "sendto {dst}: {}", io::Error::last_os_error());
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

impl Netns {
    /// Writes `value` to `/proc/sys/{key}` (slash-separated) as seen from inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{key}");
        let value = value.to_owned();
        self.run(move || {
            std::fs::write(&path, &value).unwrap_or_else(|e| panic!("write {path}: {e}"));
        });
    }

    /// Turns IPv6 duplicate address detection off for interfaces created from now on, so
    /// link-local and test addresses are usable at once.
    pub fn disable_dad(&self) {
        self.sysctl("net/ipv6/conf/all/accept_dad", "0");
        self.sysctl("net/ipv6/conf/default/accept_dad", "0");
    }

    /// The Ethernet address of `ifname`, from `ip link show`.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = self.ip(&["link", "show", ifname]);
        let hex = out
            .split("link/ether ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no link/ether in {out}"));
        let v: Vec<u8> = hex
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }
}

/// An `AF_PACKET` capture of every frame (both directions) on one interface of a namespace.
#[derive(Debug)]
pub struct Capture {
    fd: std::os::fd::OwnedFd,
}

/// An `AF_PACKET` socket bound to `ifname`, receiving every protocol, opened in the calling
/// thread's namespace (call it inside [`Netns::run`]).
pub fn packet_socket(ifname: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let c = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: valid C string.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(ifindex, 0, "no interface {ifname}");
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); ownership taken at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
    // SAFETY: fd is new and ours.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: valid sockaddr_ll of the stated size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
    fd
}

impl Capture {
    /// Starts capturing on `ifname` inside `ns`.
    pub fn open(ns: &Netns, ifname: &str) -> Self {
        let ifname = ifname.to_owned();
        ns.run(move || Self {
            fd: packet_socket(&ifname),
        })
    }

    /// The first frame (Ethernet header included) within `timeout` for which `pred` holds.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 50) } <= 0 {
                continue;
            }
            // SAFETY: valid writable buffer of the stated length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 && pred(&buf[..n as usize]) {
                return Some(buf[..n as usize].to_vec());
            }
        }
        None
    }
}

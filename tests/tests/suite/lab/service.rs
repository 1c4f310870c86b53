//! Issue 13, items 3 and 4: xvrrp as a service.
//!
//! - `dist/xvrrp.service` passes `systemd-analyze verify` (when systemd-analyze is installed);
//! - the agent runs with exactly the unit's capability bounding set, no_new_privs and the
//!   unit's read-only file system (XDP, the `vrrp_track_listen` tracepoint program, scripts as
//!   another user killed at their timeout, the virtual address), and without CAP_BPF /
//!   CAP_KILL what needs them fails;
//! - sd_notify: READY=1 with STATUS, STATUS on transitions, WATCHDOG=1 at half of
//!   WATCHDOG_USEC from the event loop, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on
//!   SIGTERM, read from a `NOTIFY_SOCKET` the test listens on;
//! - `--log-format json`: one object per line with level, target, instance, message, fields;
//! - `xvrrp status` exit codes (0 healthy, 1 a problem, 2 no agent), 80 columns, `--watch`.

use std::{
    fs,
    io::Read,
    os::unix::{fs::PermissionsExt, net::UnixDatagram},
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use xvrrp_tests::{
    agent::{has_addr, Agent, Launch, Rx, TempDir},
    site::{Site, Timers, ELECTION},
    wait_until, xvrrp_bin,
};

/// The unit file as shipped.
const UNIT: &str = include_str!("../../../../dist/xvrrp.service");

/// The unit's `CapabilityBoundingSet=` as a `setpriv --bounding-set` list (`-all,+net_admin...`),
/// minus `without` and plus `with` (lower-case names without `cap_`).
fn unit_bounding_set(without: &[&str], with: &[&str]) -> String {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=");
    let mut caps: Vec<String> = line
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .filter(|c| !without.contains(&c.as_str()))
        .collect();
    caps.extend(with.iter().map(|c| (*c).to_owned()));
    let mut spec = "-all".to_owned();
    for c in caps {
        spec.push_str(",+");
        spec.push_str(&c);
    }
    spec
}

/// `setpriv` with the bounding set `spec` (and no inheritable capabilities): the agent, started
/// as root, gets exactly these (as a unit's CapabilityBoundingSet= gives them).
fn capped(spec: &str) -> Launch {
    Launch {
        wrapper: vec![
            "setpriv".to_owned(),
            "--inh-caps=-all".to_owned(),
            format!("--bounding-set={spec}"),
        ],
        env: Vec::new(),
    }
}

/// As [`capped`], plus what of the unit's hardening can run without systemd: a private mount
/// namespace where `/usr`, `/boot`, `/etc` (ProtectSystem=full), `/home`, `/root`
/// (ProtectHome=read-only), `/sys` and `/proc/sys` (ProtectKernelTunables=yes) are read-only,
/// and no_new_privs (NoNewPrivileges=yes). (PrivateTmp is left out: the test's files are in
/// /tmp; the agent itself writes nothing there.)
fn hardened(spec: &str) -> Launch {
    let script = format!(
        "set -e\n\
         ro() {{ [ -e \"$1\" ] || return 0; mount --bind \"$1\" \"$1\"; mount -o remount,bind,ro \"$1\"; }}\n\
         for d in /usr /boot /etc /home /root /sys /proc/sys; do ro \"$d\"; done\n\
         exec setpriv --no-new-privs --inh-caps=-all --bounding-set={spec} \"$@\"\n"
    );
    Launch {
        wrapper: vec![
            "unshare".to_owned(),
            "--mount".to_owned(),
            "--propagation".to_owned(),
            "private".to_owned(),
            "sh".to_owned(),
            "-c".to_owned(),
            script,
            "sh".to_owned(),
        ],
        env: Vec::new(),
    }
}

/// The capability bounding set (hex) and NoNewPrivs of process `pid`, and whether `/usr` and
/// `/etc` are mounted read-only in its mount namespace.
fn confinement(pid: i32) -> (String, String, bool) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let ro = |at: &str| {
        mounts.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(4) == Some(&at) && f.get(5).is_some_and(|o| o.split(',').any(|x| x == "ro"))
        })
    };
    (
        field("CapBnd:"),
        field("NoNewPrivs:"),
        ro("/usr") && ro("/etc"),
    )
}

/// The number of capability `name` (`net_admin`), from linux/capability.h.
fn cap_number(name: &str) -> u32 {
    match name {
        "kill" => 5,
        "setgid" => 6,
        "setuid" => 7,
        "net_admin" => 12,
        "net_raw" => 13,
        "sys_ptrace" => 19,
        "sys_admin" => 21,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("add CAP_{} to cap_number", other.to_uppercase()),
    }
}

fn has_program(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `systemd-analyze verify --man=no` of `unit` in a temp dir: exit code and output.
fn verify(unit: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("xunit");
    let path = dir.path().join("xvrrp.service");
    fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    for want in [
        "Type=notify",
        "Restart=on-failure",
        "ExecReload=/usr/sbin/xvrrp reload",
        "ExecStart=/usr/sbin/xvrrp run -f ${XVRRP_CONFIG}",
        "WatchdogSec=",
        "RuntimeDirectory=xvrrp",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_PERFMON",
    ] {
        assert!(UNIT.contains(want), "dist/xvrrp.service lacks {want:?}");
    }
    if !has_program("systemd-analyze") {
        eprintln!("systemd-analyze not installed (cargo xtask setup installs it): skipped");
        return;
    }
    // verify checks that ExecStart's program exists: the binary under test stands in for the
    // installed /usr/sbin/xvrrp. The man page comes with the package (`cargo xtask dist`).
    let bin = xvrrp_bin().canonicalize().unwrap();
    let unit = UNIT.replace("/usr/sbin/xvrrp", &bin.display().to_string());
    let (code, out) = verify(&unit);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), "", "no warnings either");
    // The check can fail: a misspelled key is reported.
    let (_, out) = verify(&unit.replace("ProtectHome=", "ProtectHomes="));
    assert!(out.contains("Unknown key"), "{out}");
}

/// The tutorial pair's primary alone (VRRPv3 at 0.1 s), with `top` and `extra`.
fn site_conf(site: &Site, top: &str, extra: &str) -> String {
    site.conf(&site.primary, "MASTER", 200, top, extra)
}

/// A listen tracker on port 80 and two scripts run as `nobody`: one that succeeds, one that
/// hangs past its 1 s timeout (weight -10, so the instance stays Master).
fn capability_blocks(dir: &Path) -> (String, String) {
    let hang = dir.join("hang.sh");
    fs::write(&hang, "#!/bin/sh\nexec sleep 30\n").unwrap();
    fs::set_permissions(&hang, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let top = format!(
        "vrrp_track_listen chk_http {{\n    port 80\n    weight 0\n}}\n\
         vrrp_script chk_user {{\n    script \"/bin/true\"\n    interval 1\n    user nobody\n}}\n\
         vrrp_script chk_hang {{\n    script \"{}\"\n    interval 1\n    timeout 1\n    user nobody\n}}\n",
        hang.display()
    );
    let extra = "    track_listen {\n        chk_http\n    }\n    track_script {\n        \
                 chk_user\n        chk_hang weight -10\n    }\n"
        .to_owned();
    (top, extra)
}

#[test]
fn the_units_confinement_runs_xdp_the_listen_program_and_scripts_as_another_user() {
    let site = Site::new(Timers::V3Fast);
    let _web = site.primary.start_nginx("<h1>Primary</h1>\n");
    let scripts = TempDir::new("xcaps");
    let (top, extra) = capability_blocks(scripts.path());
    let conf = site_conf(&site, &top, &extra);
    let a = Agent::start_with(
        site.primary.ns(),
        &conf,
        &Rx::Xdp.args(),
        hardened(&unit_bounding_set(&[], &[])),
    );
    a.expect_state("Master", ELECTION);
    // It really runs confined: the unit's capabilities and nothing else, no_new_privs, /usr and
    // /etc read-only.
    let want: u64 = unit_bounding_set(&[], &[])
        .split(",+")
        .skip(1)
        .map(|c| 1u64 << cap_number(c))
        .sum();
    let (bnd, nnp, ro) = confinement(a.pid().unwrap());
    assert_eq!(bnd, format!("{want:016x}"), "bounding set");
    assert_eq!(nnp, "1", "no_new_privs");
    assert!(ro, "/usr and /etc read-only");
    let st = a.status().unwrap();
    assert!(
        st.rx_text().contains("xdp"),
        "XDP attached: {}",
        st.rx_text()
    );
    assert!(has_addr(site.primary.ns(), "eth1", &site.vip.to_string()));
    let (kernel, t) = a.wait_tracker("listen chk_http", ELECTION, |t| {
        t.source().as_deref() == Some("kernel")
    });
    assert!(kernel, "the tracepoint program loaded: {t}\n{}", a.log());
    let (ok, t) = a.wait_tracker("script chk_user", ELECTION, |t| {
        t.up() == Some(true) && t.failures() == Some(0)
    });
    assert!(ok, "a script as nobody starts: {t}\n{}", a.log());
    let (killed, t) = a.wait_tracker("script chk_hang", ELECTION, |t| {
        t.timeouts().unwrap_or(0) >= 1
    });
    assert!(
        killed,
        "a hung script of nobody is killed at its timeout: {t}\n{}",
        a.log()
    );
    let (text, code) = a.status_text_and_code();
    assert_eq!(code, Some(0), "healthy:\n{text}");
}

#[test]
fn without_cap_bpf_xdp_cannot_start_and_without_cap_kill_a_hung_script_is_never_killed() {
    let site = Site::new(Timers::V3Fast);
    let scripts = TempDir::new("xcaps");
    let (top, extra) = capability_blocks(scripts.path());
    let _web = site.primary.start_nginx("<h1>Primary</h1>\n");
    let conf = site_conf(&site, &top, &extra);

    let mut a = Agent::start_with(
        site.primary.ns(),
        &conf,
        &Rx::Xdp.args(),
        capped(&unit_bounding_set(&["bpf"], &[])),
    );
    assert!(
        wait_until(Duration::from_secs(10), || !a.running()),
        "still running without CAP_BPF:\n{}",
        a.log()
    );
    assert_eq!(
        a.stop_with(libc::SIGKILL),
        Some(3),
        "exit 3: network set-up failed"
    );
    assert!(a.log().contains("ERROR"), "{}", a.log());
    assert!(a.status().is_none());

    let a = Agent::start_with(
        site.primary.ns(),
        &conf,
        &Rx::Socket.args(),
        capped(&unit_bounding_set(&["kill"], &[])),
    );
    a.expect_state("Master", ELECTION);
    std::thread::sleep(Duration::from_secs(4));
    let t = a.tracker("script chk_hang").unwrap();
    assert_eq!(t.timeouts(), Some(0), "never killed without CAP_KILL: {t}");
}

/// Datagrams received on `sock` until `until` returns true or `timeout` passes, with the time
/// each arrived.
fn collect(
    sock: &UnixDatagram,
    timeout: Duration,
    got: &mut Vec<(Instant, String)>,
    mut until: impl FnMut(&[(Instant, String)]) -> bool,
) -> bool {
    let end = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if until(got) {
            return true;
        }
        if let Ok(n) = sock.recv(&mut buf) {
            got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    until(got)
}

#[test]
fn notify_socket_gets_ready_status_watchdog_and_stopping() {
    let site = Site::new(Timers::V3Fast);
    let dir = TempDir::new("xnotify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // WATCHDOG_PID is the agent's pid: `sh` exports its own pid and execs `xvrrp` (as `ip netns
    // exec` execs `sh`), so all three are one process.
    let launch = Launch {
        wrapper: vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "export WATCHDOG_PID=$$; exec \"$@\"".to_owned(),
            "sh".to_owned(),
        ],
        env: vec![
            ("NOTIFY_SOCKET".to_owned(), path.display().to_string()),
            ("WATCHDOG_USEC".to_owned(), "400000".to_owned()),
        ],
    };
    let conf = site_conf(&site, "", "");
    let mut a = Agent::start_with(site.primary.ns(), &conf, &Rx::Socket.args(), launch);
    let mut got = Vec::new();
    let ready = collect(&sock, ELECTION, &mut got, |g| {
        g.iter().any(|(_, m)| m.contains("READY=1"))
    });
    assert!(ready, "READY=1: {got:?}\n{}", a.log());
    let first_ready = got.iter().find(|(_, m)| m.contains("READY=1")).unwrap();
    assert!(
        first_ready.1.lines().any(|l| l.starts_with("STATUS=VI_1 ")),
        "READY=1 comes with a STATUS line: {:?}",
        first_ready.1
    );
    // The instance becomes Master: a STATUS line says so (rate limited to one a second).
    let master = collect(&sock, ELECTION, &mut got, |g| {
        g.iter().any(|(_, m)| m.contains("STATUS=VI_1 Master"))
    });
    assert!(master, "STATUS=VI_1 Master: {got:?}\n{}", a.log());
    // WATCHDOG=1 every 200 ms (half of WATCHDOG_USEC), never 400 ms apart.
    let t0 = Instant::now();
    collect(&sock, Duration::from_secs(2), &mut got, |_| false);
    let pings: Vec<Instant> = got
        .iter()
        .filter(|(t, m)| *t >= t0 && m.trim() == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 6, "{} pings in 2 s: {got:?}", pings.len());
    let worst = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        worst < Duration::from_millis(400),
        "largest gap between pings {worst:?}"
    );
    let statuses = got
        .iter()
        .filter(|(_, m)| m.starts_with("STATUS=") && !m.contains("READY=1"))
        .count();
    eprintln!(
        "{} datagrams; {} pings in 2 s, largest gap {worst:?}; {statuses} STATUS updates",
        got.len(),
        pings.len()
    );
    // SIGHUP (`systemctl reload`): RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    let pid = a.pid().unwrap();
    let before = got.len();
    // SAFETY: kill(2) on the agent this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloaded = collect(&sock, Duration::from_secs(10), &mut got, |g| {
        g[before..].iter().any(|(_, m)| m.contains("READY=1"))
    });
    assert!(reloaded, "READY=1 after the reload: {:?}", &got[before..]);
    let reloading = got[before..]
        .iter()
        .position(|(_, m)| m.starts_with("RELOADING=1\nMONOTONIC_USEC="));
    let ready = got[before..]
        .iter()
        .position(|(_, m)| m.contains("READY=1"));
    assert!(
        reloading.is_some() && reloading < ready,
        "RELOADING=1 then READY=1: {:?}",
        &got[before..]
    );
    // SIGTERM: STOPPING=1 before it exits.
    // SAFETY: kill(2) on the agent this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let stopping = collect(&sock, Duration::from_secs(10), &mut got, |g| {
        g.iter().any(|(_, m)| m.contains("STOPPING=1"))
    });
    assert!(stopping, "STOPPING=1: {got:?}\n{}", a.log());
    assert_eq!(a.stop_with(libc::SIGTERM), Some(0), "{}", a.log());
}

#[test]
fn the_watchdog_is_off_when_watchdog_pid_is_another_process() {
    let site = Site::new(Timers::V3Fast);
    let dir = TempDir::new("xnotify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let launch = Launch {
        wrapper: Vec::new(),
        env: vec![
            ("NOTIFY_SOCKET".to_owned(), path.display().to_string()),
            ("WATCHDOG_USEC".to_owned(), "200000".to_owned()),
            ("WATCHDOG_PID".to_owned(), "1".to_owned()),
        ],
    };
    let a = Agent::start_with(
        site.primary.ns(),
        &site_conf(&site, "", ""),
        &Rx::Socket.args(),
        launch,
    );
    let mut got = Vec::new();
    assert!(
        collect(&sock, ELECTION, &mut got, |g| g
            .iter()
            .any(|(_, m)| m.contains("READY=1"))),
        "{got:?}\n{}",
        a.log()
    );
    collect(&sock, Duration::from_secs(1), &mut got, |_| false);
    assert!(
        !got.iter().any(|(_, m)| m.contains("WATCHDOG=1")),
        "{got:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_instance() {
    let site = Site::new(Timers::V3Fast);
    let mut a = Agent::start(
        site.primary.ns(),
        &site_conf(&site, "", ""),
        &["--rx", "socket", "--log-format", "json"],
    );
    a.expect_state("Master", ELECTION);
    assert_eq!(a.stop_with(libc::SIGTERM), Some(0));
    let log = a.log();
    let mut transitions = 0;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{log}"));
        for key in [
            "timestamp",
            "level",
            "target",
            "instance",
            "message",
            "fields",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {line}");
        }
        assert!(v["fields"].is_object(), "{line}");
        let msg = v["message"].as_str().unwrap();
        if msg.starts_with("VI_1: ") {
            assert_eq!(v["instance"], "VI_1", "{line}");
        }
        if msg.contains("-> Master") {
            transitions += 1;
            assert_eq!(v["level"], "INFO", "{line}");
            assert!(
                v["target"].as_str().unwrap().starts_with("xvrrp::"),
                "{line}"
            );
        }
    }
    assert!(transitions >= 1, "a transition to Master logged:\n{log}");
    assert!(
        log.lines().last().unwrap().contains("xvrrp stopped"),
        "{log}"
    );
}

/// `xvrrp ARGS --control-socket SOCK`.
fn cli(sock: &Path, args: &[&str]) -> Output {
    Command::new(xvrrp_bin())
        .args(args)
        .arg("--control-socket")
        .arg(sock)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_80_columns(text: &str) {
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "{} columns: {l:?}", l.len());
    }
}

#[test]
fn status_exits_0_healthy_1_with_a_problem_2_without_an_agent_and_watch_redraws() {
    let site = Site::new(Timers::V3Fast);
    let file = site.primary.dir().join("state");
    let top = format!(
        "track_file tf {{\n    file {}\n    init_file 0\n}}\n",
        file.display()
    );
    let extra = "    track_file {\n        tf weight 0\n    }\n";
    let mut a = Agent::start(
        site.primary.ns(),
        &site_conf(&site, &top, extra),
        &Rx::Socket.args(),
    );
    a.expect_state("Master", ELECTION);
    let sock = a.socket();

    let o = cli(&sock, &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert_80_columns(&t);
    assert!(t.starts_with("xvrrp up "), "{t}");
    assert!(t.contains("\nmetrics: off\n"), "{t}");
    assert!(
        t.contains(&format!("address {}/24 dev eth1: present", site.vip)),
        "{t}"
    );
    assert!(t.ends_with("health: ok\n"), "{t}");
    assert_eq!(cli(&sock, &["status", "-q"]).stdout.len(), 0);
    assert_eq!(cli(&sock, &["counters"]).status.code(), Some(0));

    // A weight-0 file with a non-zero value: FAULT, a problem.
    fs::write(&file, "1\n").unwrap();
    assert!(a.wait_state("Fault", Duration::from_secs(5)).is_some());
    let o = cli(&sock, &["status"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("health: 1 problem(s)\n  VI_1: FAULT\n"), "{t}");
    let o = cli(&sock, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instances"][0]["state"], "Fault");
    assert_eq!(v["metrics"], serde_json::Value::Null);
    assert_eq!(cli(&sock, &["status", "-q"]).status.code(), Some(1));
    fs::write(&file, "0\n").unwrap();
    assert!(a.wait_state("Master", ELECTION).is_some());
    assert_eq!(cli(&sock, &["status"]).status.code(), Some(0));

    // --watch 0.2: redrawn in place (clear screen, home) several times a second.
    let mut w = Command::new(xvrrp_bin())
        .args(["status", "--watch", "0.2", "--control-socket"])
        .arg(&sock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let _ = w.kill();
    let _ = w.wait();
    let mut out = String::new();
    w.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let frames = out.matches("\x1b[H\x1b[2J").count();
    assert!((3..=7).contains(&frames), "{frames} frames:\n{out}");
    assert!(out.contains("every 0.2s: xvrrp status"), "{out}");
    assert_eq!(out.matches("health: ok").count(), frames, "{out}");

    // No agent: 2, with the reason on stderr.
    assert_eq!(a.stop_with(libc::SIGTERM), Some(0));
    for cmd in ["status", "counters"] {
        let o = cli(&sock, &[cmd]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no xvrrp agent answers"), "{cmd}: {err}");
    }
    // A bad --watch value is a usage error.
    let o = cli(&sock, &["status", "--watch", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

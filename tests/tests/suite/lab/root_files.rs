//! Issue 11 item 6: files and sockets the agent touches as root. A mistyped `--control-socket`
//! never deletes what is at the path (the agent exits with an error naming it), and
//! `track_file`'s `init_file ... overwrite` never writes through a symlink planted at the path.

use std::{
    fs,
    io::Read,
    os::unix::fs::symlink,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use xvrrp_tests::{
    agent::Agent,
    site::{Site, Timers},
    xvrrp_bin, Netns,
};

/// Runs `xvrrp run` in `ns` with `--control-socket sock`; its exit code and output, or a panic
/// if it is still running after 10 s.
fn run_once(ns: &Netns, conf: &Path, sock: &Path) -> (Option<i32>, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(xvrrp_bin())
        .args(["run", "-f"])
        .arg(conf)
        .arg("--control-socket")
        .arg(sock)
        .args(["--rx", "socket"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "xvrrp kept running with --control-socket {}",
                sock.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    (status.code(), out)
}

#[test]
fn control_socket_path_that_is_not_a_socket_is_never_deleted() {
    let site = Site::new(Timers::Tutorial);
    let me = &site.primary;
    let conf = me.dir().join("xvrrp-ctl.conf");
    fs::write(&conf, site.conf(me, "MASTER", 200, "", "")).unwrap();

    // A regular file (a typo such as --control-socket /etc/xvrrp/xvrrp.conf).
    let file = me.dir().join("precious.conf");
    fs::write(&file, "keep me\n").unwrap();
    let (code, out) = run_once(me.ns(), &conf, &file);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains(&*file.to_string_lossy()) && out.contains("a regular file, not a socket"),
        "the error names the path and what is there:\n{out}"
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me\n");

    // A symlink to a victim: neither is touched.
    let victim = me.dir().join("victim");
    fs::write(&victim, "victim\n").unwrap();
    let link = me.dir().join("link.sock");
    symlink(&victim, &link).unwrap();
    let (code, out) = run_once(me.ns(), &conf, &link);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("a symbolic link, not a socket"), "{out}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "victim\n");

    // A stale socket (no listener) is still replaced: an agent starts on it and answers.
    let stale = me.dir().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut child = Command::new("ip")
        .args(["netns", "exec", me.ns().name()])
        .arg(xvrrp_bin())
        .args(["run", "-f"])
        .arg(&conf)
        .arg("--control-socket")
        .arg(&stale)
        .args(["--rx", "socket"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = xvrrp_tests::wait_until(Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&stale).is_ok()
    });
    // SAFETY: SIGTERM to the agent this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(up, "no agent on the replaced stale socket");
    // A live agent's socket is never taken over (covered with a running agent too).
    let a = Agent::start(
        me.ns(),
        &site.conf(me, "MASTER", 200, "", ""),
        &["--rx", "socket"],
    );
    let (code, out) = run_once(me.ns(), &conf, &a.socket());
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("already running"), "{out}");
    assert!(a.status().is_some(), "the first agent still answers");
}

#[test]
fn init_file_overwrite_never_writes_through_a_symlink() {
    let site = Site::new(Timers::Tutorial);
    let victim = site.primary.dir().join("victim");
    fs::write(&victim, "3\n").unwrap();
    let link = site.primary.dir().join("state");
    symlink(&victim, &link).unwrap();
    let top = format!(
        "track_file tf {{\n    file {}\n    init_file 9 overwrite\n}}\n",
        link.display()
    );
    // Weight 0: a non-zero value would mean FAULT. Read through the link (3) the primary could
    // never become Master; refused, the file reads as unreadable (0) and it does.
    let extra = "    track_file {\n        tf weight 0\n    }\n";
    let agents = site.start_tracking(&top, extra);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "3\n",
        "victim unchanged"
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let t = agents[0].tracker("file tf").unwrap();
    assert_eq!(t.value(), Some(0), "{t}");
    let log = agents[0].log();
    assert!(
        log.contains("is a symbolic link; refusing to write through it"),
        "{log}"
    );
    // Replacing the link with a regular file is seen (inotify) and read again.
    fs::remove_file(&link).unwrap();
    fs::write(&link, "1\n").unwrap();
    assert!(
        xvrrp_tests::site::wait_instance(&agents[0], Duration::from_secs(5), |i| i
            .state()
            .as_deref()
            == Some("Fault")),
        "{}",
        agents[0].log()
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "3\n");
}

//! Issue 13 item 1: `cargo xtask demo` (the `xvrrp-demo` binary it runs) end to end: the
//! tutorial's steps end with the expected holder of the reserved IP, and nothing is left behind,
//! also after Ctrl-C mid-way.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use xvrrp_tests::{require_root, xvrrp_bin};

fn spawn_demo() -> (Child, mpsc::Receiver<String>) {
    require_root();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xvrrp-demo"))
        .env("XVRRP_BIN", xvrrp_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for the demo to exit (killing it after `timeout`); its exit code and every line.
fn finish(mut child: Child, rx: &mpsc::Receiver<String>, timeout: Duration) -> (i32, Vec<String>) {
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    let code = loop {
        lines.extend(rx.try_iter());
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the demo ran longer than {timeout:?}:\n{}",
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    lines.extend(rx.try_iter());
    (code, lines)
}

/// What a demo with process id `pid` left: namespaces tagged with it, processes started from its
/// temp dirs (agents, nginx), and the temp dirs.
fn leftovers(pid: u32) -> Vec<String> {
    let mut left = Vec::new();
    let tag = format!("-xdemo{pid}");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for ns in String::from_utf8_lossy(&list.stdout).lines() {
        if ns
            .split_whitespace()
            .next()
            .is_some_and(|n| n.ends_with(&tag))
        {
            left.push(format!("namespace {ns}"));
        }
    }
    let dirs = [format!("xagent{pid}x"), format!("xvrrp-lab-{pid}x")];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if dirs.iter().any(|d| cmd.contains(&format!("/{d}"))) {
            left.push(format!(
                "process {}: {cmd}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if dirs.iter().any(|d| name.starts_with(d)) {
            left.push(format!("temp dir {name}"));
        }
    }
    left
}

#[test]
fn demo_replays_the_tutorial_with_the_expected_holders() {
    let (child, rx) = spawn_demo();
    let pid = child.id();
    let (code, lines) = finish(child, &rx, Duration::from_secs(150));
    let text = lines.join("\n");
    assert_eq!(code, 0, "{text}");
    // The summary: step, expected holder, holder (from the API double), what the client got.
    let at = lines
        .iter()
        .position(|l| l == "Summary")
        .unwrap_or_else(|| panic!("no summary:\n{text}"));
    let rows: Vec<Vec<&str>> = lines[at + 2..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let want = [
        ("start", "primary", "Primary"),
        ("nginx stopped on primary", "secondary", "Secondary"),
        ("nginx started on primary", "primary", "Primary"),
        ("primary agent killed", "secondary", "Secondary"),
        ("primary agent restarted", "primary", "Primary"),
        ("forged advert flood", "primary", "Primary"),
    ];
    assert_eq!(rows.len(), want.len(), "{text}");
    for (row, (step, holder, body)) in rows.iter().zip(want) {
        assert_eq!(&row[..4], &[step, holder, holder, body], "{text}");
    }
    assert!(rows[5][4].starts_with("harmless"), "{text}");
    // Failover times are measured, not printed as constants.
    for row in &rows[1..5] {
        let secs: f64 = row[4].trim_end_matches(" s").parse().unwrap();
        assert!(secs > 0.0 && secs < 30.0, "{text}");
    }
    assert!(text.contains("All steps ended as the tutorial says."));
    // The timeline named the transitions and their reasons.
    assert!(
        text.contains("Master -> Fault: a tracked check failed"),
        "{text}"
    );
    assert!(
        text.contains("Backup -> Master: no advert from the Master"),
        "{text}"
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn demo_ctrl_c_mid_way_leaves_nothing() {
    let (mut child, rx) = spawn_demo();
    let pid = child.id();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.contains("== 2.")) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => seen.push(l),
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("the demo never reached step 2:\n{}", seen.join("\n"));
            }
            Err(_) => {}
        }
    }
    // Mid-way the lab is up: namespaces, agents, nginx (so the check below can fail).
    let running = leftovers(pid);
    assert!(
        running
            .iter()
            .filter(|l| l.starts_with("namespace"))
            .count()
            >= 3
            && running.iter().any(|l| l.contains("xvrrp run"))
            && running.iter().any(|l| l.contains("nginx")),
        "{running:#?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGINT) };
    let (code, lines) = finish(child, &rx, Duration::from_secs(30));
    assert_eq!(code, 130, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("interrupted")));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

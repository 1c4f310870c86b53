//! `cargo xtask demo [--keep | --clean]`: sets up if needed, builds the agent and the demo
//! driver (`xvrrp-tests`' `xvrrp-demo` binary), and becomes it (exec), so Ctrl-C reaches the
//! demo directly and it tears its lab down. See `tests/src/bin/demo/main.rs`.
//!
//! `--clean` stops a demo kept with `--keep` (SIGTERM to the pid in its pid file; it tears its
//! lab down) and removes what a killed demo left: the namespaces tagged `-xdemo<pid>` of demos
//! that no longer run (with whatever still runs in them), and their temp dirs.

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use crate::{build_ebpf, cargo, is_root, output, run, setup};

/// Written by a kept demo (`tests/src/bin/demo/main.rs`).
const PID_FILE: &str = "/run/xvrrp-demo.pid";

/// Runs the demo (never returns on success: the process becomes the demo).
pub fn demo(root: &Path, keep: bool, clean: bool) -> Result<()> {
    if !is_root() {
        bail!(
            "the demo builds network namespaces, veth links and XDP programs, which needs root: \
             run `sudo -E cargo xtask demo` (or as root)"
        );
    }
    if clean {
        return clean_up();
    }
    setup()?;
    build_ebpf(root)?;
    run(Command::new(cargo()).args(["build", "-p", "agent", "--bins"]))?;
    run(Command::new(cargo()).args(["build", "-p", "xvrrp-tests", "--bin", "xvrrp-demo"]))?;
    let target = root.join("target").join("debug");
    let mut cmd = Command::new(target.join("xvrrp-demo"));
    cmd.env("XVRRP_BIN", target.join("xvrrp"));
    if keep {
        cmd.arg("--keep");
    }
    let err = cmd.exec();
    bail!("cannot run the demo: {err}")
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn clean_up() -> Result<()> {
    let mut did = false;
    if let Some(pid) = std::fs::read_to_string(PID_FILE)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "xvrrp-demo" {
            eprintln!("xtask: stopping the kept demo (pid {pid}) ...");
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let t = Instant::now();
            while alive(pid) && t.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                bail!("the kept demo (pid {pid}) did not stop within 30 s");
            }
            did = true;
        }
        let _ = std::fs::remove_file(PID_FILE);
    }
    // Leftovers of demos that no longer run (killed with SIGKILL, say).
    let namespaces = output(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    for ns in namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = ns
            .rsplit_once("-xdemo")
            .and_then(|(_, p)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        if let Some(pids) = output(Command::new("ip").args(["netns", "pids", ns])) {
            for p in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", p]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
        eprintln!("xtask: removed namespace {ns} (demo {pid} is gone)");
        did = true;
        for prefix in ["xvrrp-lab-", "xagent"] {
            let tmp = std::env::temp_dir();
            for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{prefix}{pid}x")) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    eprintln!(
        "xtask: {}",
        if did {
            "demo lab removed"
        } else {
            "no demo lab to remove"
        }
    );
    Ok(())
}

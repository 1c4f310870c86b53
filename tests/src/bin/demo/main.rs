//! `xvrrp-demo` (run by `cargo xtask demo`): the DigitalOcean keepalived tutorial replayed on
//! this machine, in network namespaces, with xvrrp moving the reserved IP.
//!
//! Two "droplets" (`primary`, `secondary`) run nginx ("Primary" / "Secondary") and xvrrp with
//! the tutorial's keepalived.conf plus a `digitalocean { }` block, against the DigitalOcean API
//! double; a `client` requests the reserved IP. A live timeline shows who holds the reserved IP
//! (from the API double), each state transition and its reason (`xvrrp status --json` of both
//! agents), what the client receives, and how long each failover took, through the tutorial's
//! tests (stop nginx on the primary, start it, "reboot" the primary by killing its agent, bring
//! it back), then a forged-advert flood at the backup, shown harmless with the backup's per-peer
//! drop counters. It ends with a summary table; exit 0 when every step ended as expected.
//!
//! Clean-up: every namespace, process (agents, nginx) and temp dir is a guard of the test
//! crate's lab, removed on drop; XDP programs go with the namespaces' interfaces. Ctrl-C (SIGINT,
//! SIGTERM, SIGHUP) makes every wait give up (`xvrrp_tests::abort_waits`), so the step in
//! progress unwinds and the same guards tear everything down; exit 130. The namespaces carry the
//! tag `xdemo<pid>` (`XVRRP_RUN_TAG`), so `cargo xtask demo --clean` can remove what a killed
//! demo left.
//!
//! `--keep`: the lab stays up after the summary, held by a background copy of this program
//! (the API double lives in it), and instructions are printed; `cargo xtask demo --clean` (or
//! SIGTERM to the pid in [`PID_FILE`]) tears it down.
#![allow(
    clippy::unwrap_used,
    reason = "demo driver: a failed setup step panics and unwinds"
)]

mod scenario;
mod timeline;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, ExitCode, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

/// Where a kept demo writes its pid (read by `cargo xtask demo --clean`).
pub const PID_FILE: &str = "/run/xvrrp-demo.pid";
/// The line a kept demo prints when it detaches (the foreground copy then exits).
const DETACHED: &str = "xvrrp-demo: detached";

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keep = args.iter().any(|a| a == "--keep");
    let background = args.iter().any(|a| a == "--background");
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--keep" | "--background"))
    {
        eprintln!("xvrrp-demo: unknown argument {bad}\nusage: xvrrp-demo [--keep]");
        return ExitCode::from(2);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "xvrrp-demo: the demo builds network namespaces, veth links and XDP programs, which \
             needs root.\nRun it as root: sudo -E cargo xtask demo"
        );
        return ExitCode::from(1);
    }
    if keep && !background {
        return foreground_of_kept();
    }
    // Before any thread starts: the tag every namespace of this run carries.
    // SAFETY (edition 2021 `set_var`): no other thread exists yet.
    std::env::set_var("XVRRP_RUN_TAG", format!("xdemo{}", std::process::id()));
    handle_signals();
    // Panics are the steps' way of failing (the lab's asserts); after Ctrl-C they are expected.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !xvrrp_tests::waits_aborted() {
            default_hook(info);
        }
    }));
    let outcome = std::panic::catch_unwind(|| scenario::run(keep));
    // The guards have run by now (the lab was dropped inside `run`, or while unwinding).
    if STOP_REQUESTED.load(Ordering::SeqCst) && !keep {
        println!("\ninterrupted: the lab was torn down (namespaces, agents, nginx, temp dirs)");
        return ExitCode::from(130);
    }
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("xvrrp-demo: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("xvrrp-demo: a step failed (see above); the lab was torn down");
            ExitCode::from(1)
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by one thread with
/// `sigwait` (children start with an empty mask: std resets it at spawn). The first one asks
/// every wait to give up; the guards then do the teardown as the steps unwind.
fn handle_signals() {
    // SAFETY: sigset operations on a local set; SIG_DFL first so an inherited "ignore" does
    // not discard them; the mask is set before any other thread exists.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(s, libc::SIG_DFL);
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: valid set and out pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if !STOP_REQUESTED.swap(true, Ordering::SeqCst) {
            println!("\n*** signal {sig}: stopping, tearing the lab down ...");
            let _ = std::io::stdout().flush();
        }
        xvrrp_tests::abort_waits();
    });
}

/// Whether a stop was requested (a signal).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// `--keep` in the foreground: runs the demo in a child (`--keep --background`) and relays its
/// output until it detaches, then exits and leaves it holding the lab. Ctrl-C reaches both (one
/// process group); the child tears down and this one reports its exit status.
fn foreground_of_kept() -> ExitCode {
    // SAFETY: ignoring SIGINT here only; the child resets it (handle_signals).
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("xvrrp-demo: {e}");
            return ExitCode::from(1);
        }
    };
    let mut child = match Command::new(exe)
        .args(["--keep", "--background"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xvrrp-demo: cannot start the demo: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line == DETACHED {
                return ExitCode::SUCCESS;
            }
            println!("{line}");
        }
    }
    match child.wait() {
        Ok(st) => ExitCode::from(u8::try_from(st.code().unwrap_or(1)).unwrap_or(1)),
        Err(_) => ExitCode::from(1),
    }
}

/// `--keep --background`: after the summary, leave the terminal (own session, output to the
/// lab's log), write [`PID_FILE`], and hold the lab until a signal.
pub fn hold_lab(log: &std::path::Path) {
    let _ = std::fs::write(PID_FILE, format!("{}\n", std::process::id()));
    println!("{DETACHED}");
    let _ = std::io::stdout().flush();
    // SAFETY: setsid/dup2 on our own process and fds; the log file stays open for the process.
    unsafe {
        libc::setsid();
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            use std::os::fd::IntoRawFd;
            let fd = f.into_raw_fd();
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
        }
    }
    while !stop_requested() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(PID_FILE);
    println!("stop requested: tearing the kept lab down");
}

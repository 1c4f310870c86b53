//! `cargo xtask bench [NAME]`: every benchmark, or one, side by side with keepalived 2.2.7, and
//! the report in `bench/RESULTS.md` and `bench/results.json`.
//!
//! A benchmark is a module `bench::NAME` of the `xvrrp-tests` suite (the one test binary
//! `suite`) run with `XVRRP_BENCH_RUNS` set (it then measures in earnest; in the normal suite the
//! same test runs a short smoke version). It prints its own table, and one line per figure starting with `XVRRP_BENCH_RESULT ` followed by
//! a JSON object (`bench`, `scenario`, `impl`, `metric`, `value`), which are collected here. A
//! run of one benchmark replaces that benchmark's figures in the report and keeps the others.
//!
//! Clean-up: the labs remove their namespaces when they end, also when they fail. When a run is
//! interrupted (Ctrl-C reaches the test process and kills it before its guards run), this process
//! only notes the interrupt (a handler, which the test process does not inherit), waits for the
//! test to end, kills what runs in every network namespace of this run and deletes them (XDP
//! programs go with their interfaces), and runs no further benchmark. The run's namespaces are
//! told apart by a tag in their names (`XVRRP_RUN_TAG`, see `xvrrp_tests::Netns::new`), so
//! nobody else's namespaces are touched.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use anyhow::{bail, Context, Result};

/// One benchmark: its name, the test that runs it, how many runs by default, and what it
/// measures (printed in the report).
pub struct Spec {
    /// `cargo xtask bench NAME`.
    pub name: &'static str,
    /// The module of the suite (`tests/tests/suite/bench/`) whose tests it runs: a filter on the
    /// test names of the `suite` test binary.
    test: &'static str,
    /// Runs (`XVRRP_BENCH_RUNS`) by default.
    runs: u32,
    /// The exact scenario, for the report.
    pub about: &'static str,
    /// Programs it needs besides the build.
    tools: &'static [&'static str],
}

/// Every benchmark, in the order `cargo xtask bench` runs them.
pub const ALL: &[Spec] = &[
    Spec {
        name: "xdp",
        test: "bench::xdp::",
        runs: 11,
        about: "The XDP advert filter alone: ns per packet from BPF_PROG_TEST_RUN (10^6 repeats, \
                median of 11 runs, on one CPU) per frame kind, next to a trivial XDP_PASS program. keepalived \
                has no kernel filter, so there is no keepalived column.",
        tools: &[],
    },
    Spec {
        name: "flood",
        test: "bench::flood::",
        runs: 1,
        about: "Forged VRRPv3 adverts (VRID of the pair, priority 254, bad checksum, 64 spoofed \
                sources) sent to the VRRP group by trafgen as fast as it goes for 10 s, at a \
                two-node pair (v3, 0.1 s adverts, Master priority 200); xvrrp with --rx xdp, xvrrp \
                with --rx socket, keepalived: packets offered, CPU of the Backup's daemon, \
                state changes during the flood.",
        tools: &["trafgen", "keepalived"],
    },
    Spec {
        name: "failover",
        test: "bench::listen::",
        runs: 10,
        about: "nginx stopped on the primary -> the client receives the Backup's page at the VIP: \
                keepalived 2.2.7 with the tutorial's pidof check (2 s) next to xvrrp with \
                vrrp_track_listen, at the tutorial's timers and at VRRPv3 0.1 s.",
        tools: &["keepalived", "nginx", "curl"],
    },
    Spec {
        name: "takeover",
        test: "bench::do_::",
        runs: 5,
        about: "DigitalOcean reserved-IP takeover against the API double (0 and 200 ms latency): \
                Master transition -> assign POST -> client reaches the new holder.",
        tools: &["curl"],
    },
    Spec {
        name: "rest",
        test: "bench::rest::",
        runs: 1,
        about: "The tutorial's two nodes at rest (nginx, unicast VRRPv2, 1 s adverts): per node \
                CPU-seconds per hour, RSS and peak RSS; keepalived with the tutorial's 2 s script \
                check (forks counted), xvrrp with vrrp_track_listen.",
        tools: &["keepalived", "nginx"],
    },
    Spec {
        name: "scale",
        test: "bench::scale::",
        runs: 1,
        about: "255 VRIDs (VRRPv3, 1 s, /32 VIP each, masters split across two hosts) on one \
                interface, and 252 over four interfaces: convergence, CPU per host over 30 s, \
                memory, and the takeover of every VIP after the other host's daemon is killed.",
        tools: &["keepalived"],
    },
    Spec {
        name: "busy",
        test: "bench::busy::",
        runs: 1,
        about: "A busy front end: ~60k established TCP sockets in the Master's namespace (idle \
                loopback connections), VRRPv3 at 0.1 s, vrrp_track_listen with stall: the \
                Master's daemon CPU, Backup takeovers, and the Master's advert interval jitter \
                on the wire.",
        tools: &["keepalived", "nginx", "python3", "tcpdump"],
    },
    Spec {
        name: "timing",
        test: "bench::timing::",
        runs: 1,
        about:
            "Advert interval jitter on the wire (switch capture) for 1, 50 and 255 VRIDs at 1 s \
                and 50 at 0.1 s between two hosts.",
        tools: &["keepalived", "tcpdump"],
    },
];

/// The spec named `name`.
pub fn spec(name: &str) -> Result<&'static Spec> {
    ALL.iter().find(|s| s.name == name).with_context(|| {
        format!(
            "no benchmark {name:?}; there are: {}",
            ALL.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Refuses to start, with a clear message, when the benchmark cannot run here.
pub fn preflight(specs: &[&Spec]) -> Result<()> {
    if !super::is_root() {
        bail!("`cargo xtask bench` uses network namespaces and eBPF and must run as root");
    }
    let mut missing = BTreeSet::new();
    for s in specs {
        for t in s.tools.iter().chain(&["ip", "nft", "tcpdump"]) {
            if !super::succeeds(Command::new("sh").args(["-c", &format!("command -v {t}")])) {
                missing.insert(*t);
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "missing tools: {} (run `cargo xtask setup` as root)",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C was pressed during a benchmark.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The tag of this run's namespaces.
fn run_tag() -> String {
    format!("xb{}", std::process::id())
}

fn namespaces() -> BTreeSet<String> {
    super::output(Command::new("ip").args(["netns", "list"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Kills what runs in every namespace of this run that is still there, and deletes it.
fn clean_up() {
    let suffix = format!("-{}", run_tag());
    for ns in namespaces().into_iter().filter(|n| n.ends_with(&suffix)) {
        if let Some(pids) = super::output(Command::new("ip").args(["netns", "pids", &ns])) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        eprintln!("xtask: removed namespace {ns} left by an interrupted benchmark");
    }
}

/// Runs one benchmark against `agent` (the release binary) with `runs`, echoing its output,
/// and returns its result lines (parsed).
pub fn run_one(spec: &Spec, agent: &Path, runs: Option<u32>) -> Result<Vec<serde_json::Value>> {
    let runs = runs.unwrap_or(spec.runs);
    let mut cmd = Command::new(super::cargo());
    cmd.args([
        "test",
        "-p",
        "xvrrp-tests",
        "--test",
        "suite",
        "--",
        spec.test,
        "--nocapture",
        "--test-threads=1",
    ])
    .env("XVRRP_BIN", agent)
    .env("XVRRP_BENCH_RUNS", runs.to_string())
    .env("XVRRP_BENCH", "1")
    .env("XVRRP_RUN_TAG", run_tag())
    .stdout(Stdio::piped());
    eprintln!("xtask: bench {}: $ {}", spec.name, super::show(&cmd));
    // SAFETY: the handler only stores to an atomic (async-signal-safe). A handled signal is
    // reset to its default in the child at exec (an ignored one would be inherited), so Ctrl-C
    // stops the benchmark (same process group) and this process cleans up after it.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        )
    };
    let t = Instant::now();
    let mut child = cmd.spawn().context("starting cargo test")?;
    let mut results = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            // Anywhere in the line: the first one a test prints follows libtest's "test NAME ... ".
            if let Some(json) = line
                .find("XVRRP_BENCH_RESULT ")
                .map(|at| &line[at + "XVRRP_BENCH_RESULT ".len()..])
            {
                match serde_json::from_str::<serde_json::Value>(json) {
                    Ok(v) => results.push(v),
                    Err(e) => eprintln!("xtask: unreadable result line ({e}): {line}"),
                }
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    clean_up();
    if interrupted() {
        bail!("benchmark {} interrupted", spec.name);
    }
    if !status.success() {
        bail!("benchmark {} failed ({status})", spec.name);
    }
    eprintln!(
        "xtask: bench {} done in {:.0} s, {} figures",
        spec.name,
        t.elapsed().as_secs_f64(),
        results.len()
    );
    Ok(results)
}

fn first_line(cmd: &mut Command) -> String {
    let out = cmd.output().ok();
    out.map(|o| {
        let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&o.stderr));
        s.lines().next().unwrap_or_default().trim().to_owned()
    })
    .unwrap_or_default()
}

/// The machine and versions, for the report.
fn environment(root: &Path) -> serde_json::Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    serde_json::json!({
        "cpu": model,
        "cores": cores,
        "memory": first_line(Command::new("sh").args(["-c", "grep MemTotal /proc/meminfo"])),
        "kernel": first_line(Command::new("uname").arg("-r")),
        "os": first_line(Command::new("sh").args(["-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        "xvrrp": first_line(Command::new("git").args(["-C", &root.display().to_string(), "describe", "--always", "--dirty"])),
        "keepalived": first_line(Command::new("keepalived").arg("--version")),
        "nginx": first_line(Command::new("nginx").arg("-v")),
        "rustc": first_line(Command::new("rustc").arg("--version")),
    })
}

/// Rewrites `bench/RESULTS.md` from `bench/results.json` (after a change to the report's
/// layout, or to results.json by hand).
pub fn rewrite_markdown(root: &Path) -> Result<()> {
    let dir = root.join("bench");
    let all: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.join("results.json")).context("reading bench/results.json")?,
    )
    .context("parsing bench/results.json")?;
    fs::write(dir.join("RESULTS.md"), markdown(&all))?;
    Ok(())
}

/// Merges `fresh` (bench name -> results) into `bench/results.json` and rewrites
/// `bench/RESULTS.md` from it.
pub fn write_report(root: &Path, fresh: &[(&Spec, Vec<serde_json::Value>)]) -> Result<()> {
    let dir = root.join("bench");
    fs::create_dir_all(&dir)?;
    let json_path = dir.join("results.json");
    let mut all: serde_json::Value = fs::read_to_string(&json_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| serde_json::json!({ "benches": {} }));
    let date = first_line(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]));
    for (spec, results) in fresh {
        all["benches"][spec.name] = serde_json::json!({
            "about": spec.about,
            "run_at": date,
            "environment": environment(root),
            "results": results,
        });
    }
    fs::write(&json_path, serde_json::to_string_pretty(&all)? + "\n")?;
    fs::write(dir.join("RESULTS.md"), markdown(&all))?;
    eprintln!(
        "xtask: wrote {} and {}",
        json_path.display(),
        dir.join("RESULTS.md").display()
    );
    Ok(())
}

fn fmt_value(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
        None => "n/a".to_owned(),
    }
}

/// The report: per benchmark what it measures, where and with what, and a table with xvrrp's
/// figure next to keepalived's for every scenario and metric.
fn markdown(all: &serde_json::Value) -> String {
    let mut md = String::from(
        "# xvrrp benchmarks\n\nWritten by `cargo xtask bench` (all) or `cargo xtask bench NAME` \
         (one; the others keep their last figures). Every keepalived figure was measured in the \
         same run as the xvrrp figure next to it, on the same lab and configuration. Figures are \
         printed by the benchmarks and never asserted by tests.\n",
    );
    let Some(benches) = all["benches"].as_object() else {
        return md;
    };
    for spec in ALL {
        let Some(b) = benches.get(spec.name) else {
            continue;
        };
        let env = &b["environment"];
        let _ = write!(
            md,
            "\n## {}\n\n{}\n\nRun {} on {} ({} cores, {}), kernel {}, {}; xvrrp {}, {}, {}.\n\n",
            spec.name,
            spec.about,
            b["run_at"].as_str().unwrap_or("?"),
            env["cpu"].as_str().unwrap_or("?"),
            env["cores"],
            env["memory"].as_str().unwrap_or("?"),
            env["kernel"].as_str().unwrap_or("?"),
            env["os"].as_str().unwrap_or("?"),
            env["xvrrp"].as_str().unwrap_or("?"),
            env["keepalived"].as_str().unwrap_or("?"),
            env["nginx"].as_str().unwrap_or("?"),
        );
        md.push_str("| scenario | metric | xvrrp | keepalived 2.2.7 |\n|---|---|---|---|\n");
        let empty = Vec::new();
        let results = b["results"].as_array().unwrap_or(&empty);
        let mut keys: Vec<(String, String)> = Vec::new();
        for r in results {
            let k = (
                r["scenario"].as_str().unwrap_or("").to_owned(),
                r["metric"].as_str().unwrap_or("").to_owned(),
            );
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for (scenario, metric) in keys {
            let cell = |imp: &str| {
                results
                    .iter()
                    .find(|r| {
                        r["scenario"] == scenario && r["metric"] == metric && r["impl"] == imp
                    })
                    .map_or_else(|| "-".to_owned(), |r| fmt_value(&r["value"]))
            };
            let _ = writeln!(
                md,
                "| {scenario} | {metric} | {} | {} |",
                cell("xvrrp"),
                cell("keepalived")
            );
        }
    }
    md
}

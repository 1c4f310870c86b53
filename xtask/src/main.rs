//! Developer and CI entry points: `cargo xtask setup | build-ebpf | build | test | lint | fuzz |
//! bench | dist | demo`.
//!
//! Everything the build and the test suite need on a fresh Debian 12 machine is installed by
//! `setup`, idempotently: a second run only checks and returns in about a second.

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod dist;

/// Debian packages the build and the full test suite need.
const APT_PACKAGES: &[&str] = &[
    // eBPF build: bpf-linker is built against LLVM 22.
    "llvm-22-dev",
    "libpolly-22-dev",
    "build-essential",
    "pkg-config",
    // Network-namespace labs and real peers.
    "iproute2",
    "nftables",
    "iputils-ping",
    "curl",
    "nginx-light",
    "keepalived",
    "python3",
    // Packet tools for tests and floods.
    "tcpdump",
    "netsniff-ng",
    "bpftool",
    // Switch ports that put VLAN tags in the frame data (tests/src/vlan.rs).
    "ethtool",
    // `systemd-analyze verify` of dist/xvrrp.service (tests/tests/suite/lab/service.rs).
    "systemd",
    // `promtool check metrics` on the agent's /metrics (tests lab::metrics); the server it
    // also installs is not started (see apt_packages).
    "prometheus",
];

/// bpf-linker version known to work with LLVM 22 and aya 0.14 (see shared/docs/toolchain.md).
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const EBPF_TARGET: &str = "bpfel-unknown-none";

#[derive(Parser)]
#[command(name = "cargo xtask", about = "xvrrp developer and CI tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install everything the build and the tests need (Debian packages, bpf-linker, a `core`
    /// for bpfel-unknown-none). Idempotent and quick when already done.
    Setup,
    /// Build the eBPF programs (agent-ebpf) for bpfel-unknown-none.
    BuildEbpf,
    /// Build the eBPF programs, then the agent (which embeds them).
    Build {
        /// Build the agent in release mode.
        #[arg(long)]
        release: bool,
    },
    /// Set up if needed, build everything and run every test (unit, simulator, namespace labs).
    /// Must run as root (namespace tests). Extra arguments go to `cargo test`.
    Test {
        /// Arguments passed to `cargo test` after `--`, e.g. a test name filter.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `cargo fmt --check` and `cargo clippy --all-targets -- -D warnings`.
    Lint,
    /// Benchmarks, xvrrp next to keepalived 2.2.7 in the same run (must run as root: they use
    /// network-namespace labs). Without a name, every one; writes bench/RESULTS.md and
    /// bench/results.json.
    Bench {
        /// Which benchmark (default: all, in order).
        #[command(subcommand)]
        what: Option<Bench>,
    },
    /// Rewrite bench/RESULTS.md from bench/results.json (no benchmark runs).
    BenchReport,
    /// Build a release a person can install: the release binary (eBPF programs embedded), man
    /// pages, shell completions and a .deb (binary, systemd unit, man pages, completions, an
    /// example config; starts nothing), in target/dist/.
    Dist {
        /// Output directory.
        #[arg(long, default_value = "target/dist")]
        out_dir: PathBuf,
    },
    /// The tutorial, replayed locally (root): two "droplets" with nginx and xvrrp moving a
    /// DigitalOcean reserved IP (API double), a client, nginx stopped, an agent killed, a
    /// forged-advert flood; a live timeline and a summary. Sets up and builds first if needed.
    Demo {
        /// Leave the lab running afterwards and print how to look at it.
        #[arg(long, conflicts_with = "clean")]
        keep: bool,
        /// Tear down a lab left by `--keep` (or by an interrupted run).
        #[arg(long)]
        clean: bool,
    },
    /// Run the packet decoder fuzz target for a while (installs cargo-fuzz if missing).
    Fuzz {
        /// How long to fuzz, in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The XDP advert filter: ns per packet from BPF_PROG_TEST_RUN (10^6 repeats, median of 7
    /// runs) next to a trivial XDP_PASS program.
    Xdp,
    /// Forged-advert flood at the highest rate trafgen reaches: xvrrp --rx xdp, --rx socket and
    /// keepalived (false transitions, daemon CPU, packets offered).
    Flood,
    /// DigitalOcean reserved-IP takeover: time from a Master transition to the assign POST and
    /// to the client reaching the new holder, against the API double with 0 and 200 ms latency.
    Takeover {
        /// Failover + failback runs per latency (two samples each).
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
    /// nginx stopped on the primary -> client receives "Secondary", for keepalived 2.2.7 with
    /// the tutorial's pidof check, xvrrp with vrrp_track_listen (tutorial timers and v3 0.1 s):
    /// median and worst, plus listener-gone -> priority-0 advert on the wire.
    Failover {
        /// Runs per variant (at least 10 for the figures).
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// The tutorial's two nodes at rest: CPU-seconds per hour, RSS, peak RSS per node.
    Rest,
    /// 255 VRIDs on one interface and over four: CPU per host, convergence, takeover.
    Scale,
    /// ~60k established connections on the Master, v3 at 0.1 s, track_listen with stall.
    Busy,
    /// Advert interval jitter on the wire (switch capture), xvrrp next to keepalived 2.2.7 in
    /// the same run: 1, 50 and 255 VRIDs at 1 s and 50 at 0.1 s between two hosts (~6 min).
    Timing,
}

impl Bench {
    fn name_and_runs(&self) -> (&'static str, Option<u32>) {
        match self {
            Bench::Xdp => ("xdp", None),
            Bench::Flood => ("flood", None),
            Bench::Takeover { runs } => ("takeover", Some(*runs)),
            Bench::Failover { runs } => ("failover", Some(*runs)),
            Bench::Rest => ("rest", None),
            Bench::Scale => ("scale", None),
            Bench::Busy => ("busy", None),
            Bench::Timing => ("timing", None),
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    env::set_current_dir(&root).context("entering the workspace root")?;
    match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::BuildEbpf => build_ebpf(&root),
        Cmd::Build { release } => {
            build_ebpf(&root)?;
            let mut args = vec!["build", "--workspace", "--bins"];
            if release {
                args.push("--release");
            }
            run(Command::new(cargo()).args(args))
        }
        Cmd::Test { args } => test(&root, &args),
        Cmd::Lint => lint(),
        Cmd::Fuzz { seconds } => fuzz(&root, seconds),
        Cmd::Bench { what } => bench_cmd(&root, what.as_ref()),
        Cmd::BenchReport => bench::rewrite_markdown(&root),
        Cmd::Dist { out_dir } => dist_cmd(&root, &out_dir),
        Cmd::Demo { keep, clean } => demo::demo(&root, keep, clean),
    }
}

fn workspace_root() -> Result<PathBuf> {
    let dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .context("run this through `cargo xtask`")?;
    Ok(dir
        .parent()
        .context("xtask has a parent directory")?
        .to_path_buf())
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Runs a command, echoing it, and fails with its exit status.
fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", show(cmd));
    }
    Ok(())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn setup() -> Result<()> {
    let t = Instant::now();
    apt_packages()?;
    bpf_linker()?;
    ebpf_core()?;
    mount_tracefs();
    eprintln!("xtask: setup complete in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", p]))
                .is_none_or(|s| s.trim() != "installed")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "Debian packages missing ({}); run `cargo xtask setup` as root",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    // Debian starts daemons on install where it can; the suite runs its own per namespace, so
    // forbid service starts for the duration of the install (policy-rc.d exit 101), instead of
    // killing processes afterwards (which could hit ones this task did not start).
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let had_policy = policy.exists();
    if !had_policy {
        std::fs::write(
            policy,
            "#!/bin/sh\n# cargo xtask setup: no service starts during install\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let res = run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    if !had_policy {
        let _ = std::fs::remove_file(policy);
    }
    res
}

fn bpf_linker() -> Result<()> {
    let have = output(Command::new("bpf-linker").arg("--version"));
    if have
        .as_deref()
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22");
    let path = format!("{LLVM_PREFIX}/bin:{}", env::var("PATH").unwrap_or_default());
    run(Command::new(cargo())
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--force",
        ])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .env("PATH", path))
}

/// How `core` for bpfel-unknown-none is obtained (see shared/docs/toolchain.md).
enum CoreSource {
    /// rustup nightly with rust-src: `-Z build-std=core`.
    NightlyBuildStd,
    /// Debian's rustc-web with a prebuilt bpfel `core`.
    DebianPrebuilt,
}

fn nightly_has_rust_src() -> bool {
    output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")))
}

fn debian_core_present() -> bool {
    Path::new("/usr/bin/rustc").exists()
        && Path::new("/usr/lib/rustlib")
            .join(EBPF_TARGET)
            .join("lib")
            .exists()
}

/// `XVRRP_EBPF_CORE=debian` forces the Debian route (to test the fallback); `nightly` forces rustup.
fn core_source() -> Option<CoreSource> {
    match env::var("XVRRP_EBPF_CORE").as_deref() {
        Ok("debian") => return debian_core_present().then_some(CoreSource::DebianPrebuilt),
        Ok("nightly") => return nightly_has_rust_src().then_some(CoreSource::NightlyBuildStd),
        _ => {}
    }
    if nightly_has_rust_src() {
        Some(CoreSource::NightlyBuildStd)
    } else if debian_core_present() {
        Some(CoreSource::DebianPrebuilt)
    } else {
        None
    }
}

fn ebpf_core() -> Result<()> {
    if core_source().is_some() {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the nightly toolchain");
    if run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
        .is_ok()
        && nightly_has_rust_src()
    {
        return Ok(());
    }
    eprintln!("xtask: rust-src unavailable; falling back to Debian's prebuilt bpfel core");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "rustc-web",
            "libstd-rust-web-dev-bpf",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if !debian_core_present() {
        bail!("no core for {EBPF_TARGET}: neither nightly rust-src nor Debian's libstd-rust-web-dev-bpf");
    }
    Ok(())
}

fn mount_tracefs() {
    if Path::new("/sys/kernel/tracing/events").exists() || !is_root() {
        return;
    }
    let _ = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .status();
}

fn build_ebpf(root: &Path) -> Result<()> {
    let target_dir = root.join("target");
    let crate_dir = root.join("agent-ebpf");
    let mut cmd = match core_source() {
        Some(CoreSource::NightlyBuildStd) => {
            let mut c = Command::new("cargo");
            c.args(["+nightly", "build", "--release", "-Z", "build-std=core"]);
            c
        }
        Some(CoreSource::DebianPrebuilt) => {
            let mut c = Command::new("cargo");
            c.args(["build", "--release"])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTC", "/usr/bin/rustc");
            c
        }
        None => bail!("no core for {EBPF_TARGET}: run `cargo xtask setup`"),
    };
    // The outer `cargo xtask` sets variables that would leak into the inner, different toolchain.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "CARGO_MANIFEST_DIR",
    ] {
        if !(var == "RUSTC" && matches!(core_source(), Some(CoreSource::DebianPrebuilt))) {
            cmd.env_remove(var);
        }
    }
    cmd.args(["--target", EBPF_TARGET, "--locked", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&crate_dir);
    run(&mut cmd)?;
    let obj = target_dir
        .join(EBPF_TARGET)
        .join("release")
        .join("xvrrp-ebpf");
    if !obj.exists() {
        bail!("eBPF build succeeded but {} is missing", obj.display());
    }
    Ok(())
}

fn test(root: &Path, args: &[String]) -> Result<()> {
    if !is_root() {
        bail!("`cargo xtask test` runs network-namespace tests and must run as root");
    }
    let t = Instant::now();
    setup()?;
    build_ebpf(root)?;
    run(Command::new(cargo()).args(["build", "--workspace", "--all-targets"]))?;
    let bin = root.join("target").join("debug").join("xvrrp");
    // Unit, property and simulator tests run in parallel. The namespace labs (xvrrp-tests) run
    // one test at a time: they are parallel-safe, but several labs at once on a 2-core machine
    // make sub-second VRRP timers (0.36 s Master_Down_Interval at 0.1 s adverts) race the
    // scheduler, and a test's timing bounds should measure xvrrp, not its neighbours.
    let mut unit = Command::new(cargo());
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "xvrrp-tests",
        "--no-fail-fast",
    ])
    .env("XVRRP_BIN", &bin);
    if !args.is_empty() {
        unit.arg("--").args(args.iter().map(OsStr::new));
    }
    let unit_res = run(&mut unit);
    let mut labs = Command::new(cargo());
    labs.args(["test", "-p", "xvrrp-tests", "--no-fail-fast"])
        .env("XVRRP_BIN", &bin)
        .arg("--")
        .arg("--test-threads=1")
        .args(args.iter().map(OsStr::new));
    let labs_res = run(&mut labs);
    unit_res?;
    labs_res?;
    eprintln!(
        "xtask: test suite finished in {:.0}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn lint() -> Result<()> {
    run(Command::new(cargo()).args(["fmt", "--all", "--check"]))?;
    run(Command::new(cargo()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

fn fuzz(root: &Path, seconds: u64) -> Result<()> {
    if !succeeds(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let mut cmd = Command::new("cargo");
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC"] {
        cmd.env_remove(var);
    }
    run(cmd
        .args([
            "+nightly",
            "fuzz",
            "run",
            "decode",
            "--",
            &format!("-max_total_time={seconds}"),
        ])
        .current_dir(root))
}

/// Builds the eBPF object and the release `xvrrp` (what users run: the lab benches measured
/// with the debug build saw detection outliers of 15-20 ms that the release build does not
/// have), and returns its path.
fn release_agent(root: &Path) -> Result<PathBuf> {
    build_ebpf(root)?;
    // The agent's build script embeds the object just built.
    run(Command::new(cargo()).args(["build", "--release", "-p", "agent", "--bins"]))?;
    Ok(root.join("target").join("release").join("xvrrp"))
}

/// `cargo xtask bench [NAME]`: builds the eBPF object and the release agent, runs the
/// benchmarks (see [`bench`]) and writes the report. One failing benchmark does not stop the
/// others; the report keeps what was measured, and the command fails at the end.
fn bench_cmd(root: &Path, what: Option<&Bench>) -> Result<()> {
    let specs: Vec<(&bench::Spec, Option<u32>)> = match what {
        Some(b) => {
            let (name, runs) = b.name_and_runs();
            vec![(bench::spec(name)?, runs)]
        }
        None => bench::ALL.iter().map(|s| (s, None)).collect(),
    };
    bench::preflight(&specs.iter().map(|(s, _)| *s).collect::<Vec<_>>())?;
    let agent = release_agent(root)?;
    let mut fresh = Vec::new();
    let mut failed = Vec::new();
    for (spec, runs) in specs {
        match bench::run_one(spec, &agent, runs) {
            Ok(results) => fresh.push((spec, results)),
            Err(e) => {
                eprintln!("xtask: {e:#}");
                failed.push(spec.name);
                if bench::interrupted() {
                    break;
                }
            }
        }
    }
    bench::write_report(root, &fresh)?;
    if !failed.is_empty() {
        bail!("benchmarks failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo xtask dist`: the release agent, packaged (see [`dist`]).
fn dist_cmd(root: &Path, out_dir: &Path) -> Result<()> {
    // Fail before the long release build when the unit is not there.
    if !root.join(dist::UNIT).is_file() {
        bail!(
            "{} is missing: the package ships the systemd unit from there",
            dist::UNIT
        );
    }
    let bin = release_agent(root)?;
    let out = root.join(out_dir);
    let pkg = dist::package(root, &bin, &out, dist::Compression::Best)?;
    eprintln!(
        "xtask: built {}\n  binary {} (installs as {}), man pages in {}, completions in {}\n  \
         install: dpkg -i {}  (starts nothing; see /usr/share/doc/xvrrp/examples/xvrrp.conf)",
        pkg.deb.display(),
        bin.display(),
        pkg.installed_bin,
        out.join("man").display(),
        out.join("completions").display(),
        pkg.deb.display()
    );
    Ok(())
}

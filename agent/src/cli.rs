//! The `xvrrp` command line.
//!
//! Exit codes scripts can rely on: 0 success, 1 the input was rejected (for example a config with
//! errors), 2 usage errors (clap's own), 3 an operational failure (cannot attach, cannot load).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

pub mod generate;

use crate::{
    dataplane::{AttachMode, XdpDataplane},
    state::{ProbeReport, ReloadReport, RxCounters, Status, TrackerState, VipState},
};

/// Default configuration path. `-f /etc/keepalived/keepalived.conf` runs an existing keepalived
/// configuration as it is.
pub const DEFAULT_CONFIG: &str = "/etc/xvrrp/xvrrp.conf";

/// xvrrp: a VRRP router that runs keepalived.conf, with an XDP fast path.
#[derive(Debug, Parser)]
#[command(name = "xvrrp", version = generate::VERSION, about, long_about = None)]
pub struct Cli {
    /// Control socket of the agent (so several agents can run on one host).
    #[arg(long, global = true, default_value = crate::control::DEFAULT_SOCKET)]
    pub control_socket: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the VRRP router: load the configuration, take part in elections, move the addresses.
    /// Stops on SIGTERM/SIGINT, sending priority 0 first when Master.
    Run {
        /// Configuration file (keepalived.conf syntax).
        #[arg(short = 'f', long = "config-file", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// How adverts are received: XDP (native, then generic) falling back to a raw socket,
        /// XDP only, or a raw socket only.
        #[arg(long, value_enum, default_value_t = RxArg::Auto)]
        rx: RxArg,
        /// With XDP, also pass our own valid adverts on to the network stack after handling
        /// them, so tcpdump and other listeners still see them (default: dropped once handled).
        /// Invalid adverts of ours are always dropped; frames that are not ours (other VRIDs,
        /// families or VLANs) are always passed, with or without this flag.
        #[arg(long)]
        xdp_pass: bool,
        /// Serve Prometheus metrics on http://ADDR:PORT/metrics (e.g. 127.0.0.1:9650);
        /// overrides `metrics_address` in `global_defs`.
        #[arg(long, value_name = "ADDR:PORT", value_parser = crate::config::parse_metrics_address)]
        metrics: Option<std::net::SocketAddr>,
        /// More logging (-v debug, -vv trace).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Only warnings and errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show each instance of the running agent: state, priorities, master, last transition,
    /// trackers.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the running agent's receive counters per interface, VRID and peer.
    Counters {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make the running agent read its configuration file again and apply it without a flap
    /// (as SIGHUP does): unchanged instances keep their state and advert rhythm, changed ones
    /// are changed in place, instances whose interface, VRID or version changed are rebuilt,
    /// removed ones leave as on shutdown, new ones start. With an error in the file nothing
    /// changes: the errors are printed (FILE:LINE:COLUMN) and the exit code is 1.
    Reload {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration: print the effective configuration (defaults filled in) and exit 0,
    /// or print every error as FILE:LINE:COLUMN and exit 1.
    Check {
        /// Configuration file (keepalived.conf syntax).
        #[arg(short = 'f', long = "config-file", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the effective configuration as JSON instead of keepalived syntax.
        #[arg(long)]
        json: bool,
    },
    /// Attach the embedded XDP program to an interface for a while, owning the given IPv4 v3
    /// VRIDs (none by default), and print its packet counts as JSON (a self-test of the eBPF
    /// pipeline).
    #[command(hide = true)]
    XdpProbe {
        /// Interface to attach to.
        #[arg(short, long)]
        interface: String,
        /// Attach mode.
        #[arg(long, value_enum, default_value_t = ProbeMode::Auto)]
        mode: ProbeMode,
        /// How long to stay attached, in seconds.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// A VRID to own (VRRPv3, IPv4, multicast); repeatable.
        #[arg(long = "vrid")]
        vrids: Vec<u8>,
    },
    /// Shell completions and man pages, for packagers (`cargo xtask dist` uses it).
    #[command(hide = true)]
    Generate {
        /// What to generate.
        #[command(subcommand)]
        what: generate::What,
    },
}

/// Receive path for `run`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum RxArg {
    /// XDP, else a raw socket.
    Auto,
    /// XDP only.
    Xdp,
    /// Raw socket only.
    Socket,
}

/// Attach mode for `xdp-probe`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProbeMode {
    /// Native, falling back to generic.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// Entry point of the `xvrrp` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            rx,
            xdp_pass,
            metrics,
            verbose,
            quiet,
        } => {
            let _flush = crate::logging::init(verbose, quiet);
            let rx = match rx {
                RxArg::Auto => crate::daemon::RxMode::Auto,
                RxArg::Xdp => crate::daemon::RxMode::Xdp,
                RxArg::Socket => crate::daemon::RxMode::Socket,
            };
            crate::daemon::run(crate::daemon::RunOptions {
                config,
                rx,
                control_socket: cli.control_socket,
                xdp_pass,
                metrics,
            })
        }
        Command::Status { json } => show(
            &cli.control_socket,
            crate::control::Command::Status,
            json,
            print_status,
        ),
        Command::Counters { json } => show(
            &cli.control_socket,
            crate::control::Command::Counters,
            json,
            print_counters,
        ),
        Command::Reload { json } => reload(&cli.control_socket, json),
        Command::Check { config, json } => check(&config, json),
        Command::XdpProbe {
            interface,
            mode,
            seconds,
            vrids,
        } => xdp_probe(&interface, mode, seconds, &vrids),
        Command::Generate { what } => generate::run(what),
    }
}

fn check(path: &std::path::Path, json: bool) -> ExitCode {
    match crate::config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                println!("{}", loaded.config.to_json());
            } else {
                print!("{}", loaded.config.render());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            // One line per problem, FILE:LINE:COLUMN first, so editors and scripts can jump there.
            eprint!("{errors}");
            if !errors.to_string().ends_with('\n') {
                eprintln!();
            }
            eprintln!(
                "xvrrp: {} error(s) in {}; nothing was applied",
                errors.errors.len(),
                path.display()
            );
            ExitCode::from(1)
        }
    }
}

fn show<T: serde::de::DeserializeOwned + serde::Serialize>(
    socket: &std::path::Path,
    cmd: crate::control::Command,
    json: bool,
    table: fn(&T),
) -> ExitCode {
    match crate::control::query::<T>(socket, cmd) {
        Ok(v) if json => match serde_json::to_string(&v) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xvrrp: {e}");
                ExitCode::from(1)
            }
        },
        Ok(v) => {
            table(&v);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xvrrp: {e}");
            ExitCode::from(3)
        }
    }
}

/// `xvrrp reload`: 0 when applied, 1 when the configuration was rejected, 3 when no agent
/// answers.
fn reload(socket: &std::path::Path, json: bool) -> ExitCode {
    let r = match crate::control::query::<ReloadReport>(socket, crate::control::Command::Reload) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xvrrp: {e}");
            return ExitCode::from(3);
        }
    };
    if json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else if r.applied {
        let list = |what: &str, v: &[String]| {
            if !v.is_empty() {
                println!("{what}: {}", v.join(", "));
            }
        };
        println!("configuration reloaded");
        list("unchanged", &r.unchanged);
        list("changed in place", &r.changed);
        list("rebuilt", &r.rebuilt);
        list("removed", &r.removed);
        list("added", &r.added);
        for e in &r.errors {
            eprintln!("{e}");
        }
    } else {
        for e in &r.errors {
            eprintln!("{e}");
        }
        eprintln!(
            "xvrrp: reload rejected ({} error(s)); the agent keeps its running configuration",
            r.errors.len()
        );
    }
    if r.applied && r.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `-` for a missing value.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn print_status(v: &Status) {
    for i in &v.instances {
        println!(
            "{} (VRID {} on {}, VRRPv{}): {:?}",
            i.name, i.vrid, i.interface, i.version, i.state
        );
        println!(
            "  priority {} (base {}), master {}, advert interval {} ms",
            i.effective_priority,
            i.base_priority,
            opt(i.master_address),
            i.master_adver_interval_ms
        );
        if let Some(t) = &i.last_transition {
            println!(
                "  last transition {:?} -> {:?} at {} ({})",
                t.from, t.to, t.at, t.reason
            );
        }
        for a in &i.addresses {
            println!("  {}", address_line(a));
        }
        for tr in &i.trackers {
            println!("  {}", tracker_line(tr));
        }
        let n = &i.notify;
        if n.started > 0 || n.pending > 0 {
            println!(
                "  notify: running {}, waiting {}, {} started, {} replaced before running",
                opt(n.running.as_deref()),
                opt(n.waiting.as_deref()),
                n.started,
                n.replaced
            );
        }
    }
    if let Some(m) = &v.metrics {
        println!("metrics: http://{m}/metrics");
    }
    if v.logs_suppressed > 0 {
        println!(
            "log messages suppressed by the rate limit: {}",
            v.logs_suppressed
        );
    }
}

/// One virtual address of `xvrrp status`: present or not (read back), and why not.
fn address_line(a: &VipState) -> String {
    let present = match a.present {
        Some(true) => "present",
        Some(false) => "absent",
        None => "unreadable",
    };
    // What is wrong: wanted and absent, or unwanted and still there because we added it.
    let wrong = match a.present {
        Some(p) => p != a.wanted && (a.wanted || a.ours),
        None => a.wanted,
    };
    let mut line = format!(
        "address {} dev {}: {present}{}",
        a.address,
        a.dev,
        if wrong { " (NOT AS WANTED)" } else { "" }
    );
    if a.failures > 0 {
        line.push_str(&format!(", {} failed change(s)", a.failures));
    }
    if let Some(op) = &a.retrying {
        line.push_str(&format!(", retrying {op}"));
    }
    if let Some(e) = &a.last_error {
        line.push_str(&format!(": {e}"));
    }
    line
}

/// One tracker of `xvrrp status`: kind, name, state, last change, reason and counters.
fn tracker_line(tr: &TrackerState) -> String {
    let state = if tr.disabled {
        "DISABLED"
    } else if tr.up {
        "up"
    } else {
        "DOWN"
    };
    let mut line = format!("tracker {}: {state}", tr.label);
    if let Some(v) = tr.value {
        line.push_str(&format!(" value {v}"));
    }
    if tr.priority_change != 0 {
        line.push_str(&format!(" priority {:+}", tr.priority_change));
    }
    if let Some(since) = &tr.since {
        line.push_str(&format!(" since {since}"));
    }
    if let Some(r) = &tr.reason {
        line.push_str(&format!(" ({r})"));
    }
    let d = &tr.details;
    let counters: Vec<String> = [
        ("processes", d.processes.map(|n| n.to_string())),
        ("link", d.link.clone()),
        ("runs", d.runs.map(|n| n.to_string())),
        ("failures", d.failures.map(|n| n.to_string())),
        ("timeouts", d.timeouts.map(|n| n.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
    .collect();
    if !counters.is_empty() {
        line.push_str(&format!(" [{}]", counters.join(", ")));
    }
    // vrrp_track_listen: per watched port.
    for p in d.ports.as_deref().unwrap_or_default() {
        line.push_str(&format!(
            " [port {}: {} listener(s), {} established, {} SYN/s{}]",
            p.port,
            p.listeners,
            opt(p.established),
            p.syns_per_sec,
            if p.stalled { ", STALLED" } else { "" }
        ));
    }
    line
}

fn print_counters(v: &RxCounters) {
    for i in &v.interfaces {
        println!(
            "{} ({}): {} VRRP frames passed, not ours (other VRIDs, families or VLANs)",
            i.interface,
            i.path,
            opt(i.not_ours)
        );
        if i.other_destination > 0 || i.queue_full > 0 {
            println!(
                "  {} packets for other destinations discarded, {} adverts dropped on a full queue",
                i.other_destination, i.queue_full
            );
        }
    }
    for p in &v.peers {
        println!(
            "{} VRID {} peer {}: last priority {}, last interval {} cs, last seen {}",
            p.interface,
            p.vrid,
            p.peer,
            opt(p.last_priority),
            opt(p.last_interval_cs),
            opt(p.last_seen.as_deref())
        );
        let nonzero: Vec<String> = p
            .counters
            .0
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "  {}",
            if nonzero.is_empty() {
                "(no packets)".to_owned()
            } else {
                nonzero.join(" ")
            }
        );
    }
}

fn xdp_probe(iface: &str, mode: ProbeMode, seconds: f64, vrids: &[u8]) -> ExitCode {
    let mode = match mode {
        ProbeMode::Auto => AttachMode::Auto,
        ProbeMode::Native => AttachMode::Native,
        ProbeMode::Generic => AttachMode::Generic,
    };
    // Frames of the owned VRIDs are checked, counted and dropped; every other frame passes
    // (VRRP-like ones counted as not ours).
    let policies: Vec<crate::packet::RxPolicy> = vrids
        .iter()
        .map(|&v| crate::packet::RxPolicy::v3(v, crate::packet::Family::V4))
        .collect();
    let att = match XdpDataplane::attach(iface, mode, &policies, false) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xvrrp: {e}");
            return ExitCode::from(3);
        }
    };
    if let Some(why) = att.fallback_reason() {
        eprintln!("xvrrp: {why}");
    }
    eprintln!(
        "xvrrp: XDP attached to {} in {} mode",
        att.interface(),
        att.mode()
    );
    let secs = if seconds.is_finite() && seconds > 0.0 {
        seconds.min(3600.0)
    } else {
        0.0
    };
    std::thread::sleep(Duration::from_secs_f64(secs));
    let report = att.stats().and_then(|stats| {
        let rows = att.peer_counters()?;
        let mut counters = std::collections::BTreeMap::new();
        for row in &rows {
            for (c, n) in row.nonzero() {
                *counters.entry(c).or_insert(0u64) += n;
            }
        }
        Ok(ProbeReport {
            interface: att.interface().to_owned(),
            mode: att.mode().to_string(),
            vrrp: stats.vrrp,
            ring_full: stats.ring_full,
            not_ours: stats.not_ours,
            counters,
        })
    });
    match report {
        Ok(out) => {
            println!("{}", serde_json::to_string(&out).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xvrrp: {e}");
            ExitCode::from(3)
        }
    }
}

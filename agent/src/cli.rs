//! The `xvrrp` command line.
//!
//! Exit codes scripts can rely on (also in `xvrrp --help`):
//! - `run`: 0 after a clean stop, 1 a configuration error (nothing applied), 3 the network could
//!   not be set up (cannot attach, cannot bind);
//! - `check`: 0 valid, 1 errors (printed as FILE:LINE:COLUMN);
//! - `status`: 0 healthy, 1 unhealthy (see `state::health`), 2 the agent cannot be reached;
//!   `counters`: 0 answered, 2 the agent cannot be reached;
//! - 2 is also clap's code for a usage error (a wrong option). Reading: "2 cannot reach the
//!   agent" (issue 13) and clap's usage code coincide; both mean "no answer was obtained", so
//!   scripts can treat 2 as "unknown" either way, and 1 keeps meaning "the answer is bad".

mod help;
mod render;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use self::help::{
    CHECK_AFTER_HELP, COUNTERS_AFTER_HELP, MAIN_AFTER_HELP, RELOAD_AFTER_HELP, RUN_AFTER_HELP,
    STATUS_AFTER_HELP,
};

pub mod generate;

use crate::{
    dataplane::{AttachMode, XdpDataplane},
    state::{ProbeReport, ReloadReport, RxCounters, Status},
};

/// Default configuration path. `-f /etc/keepalived/keepalived.conf` runs an existing keepalived
/// configuration as it is.
pub const DEFAULT_CONFIG: &str = "/etc/xvrrp/xvrrp.conf";

/// Exit code of `status` / `counters` when no agent answers on the control socket.
const UNREACHABLE: u8 = 2;

/// xvrrp: a VRRP router that runs keepalived.conf, with an XDP fast path.
///
/// Runs keepalived's vrrp_instance blocks (VRRPv2/v3, IPv4/IPv6, trackers, notify scripts),
/// receives adverts through XDP (or a raw socket), and moves DigitalOcean reserved IPs. The
/// other subcommands talk to the running agent through its control socket.
#[derive(Debug, Parser)]
#[command(
    name = "xvrrp",
    version = generate::VERSION,
    about,
    after_help = MAIN_AFTER_HELP,
    max_term_width = 80
)]
pub struct Cli {
    /// Control socket of the agent: where `run` listens and `status`/`counters` ask (so
    /// several agents can run on one host).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = crate::control::DEFAULT_SOCKET
    )]
    pub control_socket: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the VRRP router: load the configuration, take part in elections, move the addresses.
    ///
    /// Stops on SIGTERM/SIGINT, sending priority 0 first when Master.
    #[command(after_help = RUN_AFTER_HELP)]
    Run {
        /// Configuration file (keepalived.conf syntax).
        #[arg(
            short = 'f',
            long = "config-file",
            value_name = "FILE",
            default_value = DEFAULT_CONFIG
        )]
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
        /// Log line format on stderr: `text` (LEVEL message) or `json` (one object per line:
        /// timestamp, level, target, instance, message, fields).
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormatArg::Text)]
        log_format: LogFormatArg,
    },
    /// Show each instance of the running agent: state, priorities, master, last transition,
    /// addresses, trackers, cloud takeover, and whether all is healthy.
    #[command(after_help = STATUS_AFTER_HELP)]
    Status {
        /// JSON instead of text (with --watch: one JSON document per line).
        #[arg(long)]
        json: bool,
        /// Redraw every SECS seconds (default 2) until Ctrl-C.
        #[arg(
            long,
            value_name = "SECS",
            num_args = 0..=1,
            default_missing_value = "2",
            value_parser = parse_secs
        )]
        watch: Option<f64>,
        /// Print nothing: only the exit code (0 healthy, 1 a problem, 2 no agent).
        #[arg(short, long, conflicts_with_all = ["json", "watch"])]
        quiet: bool,
    },
    /// Show the running agent's receive counters per interface, VRID and peer.
    #[command(after_help = COUNTERS_AFTER_HELP)]
    Counters {
        /// JSON instead of text (with --watch: one JSON document per line).
        #[arg(long)]
        json: bool,
        /// Redraw every SECS seconds (default 2) until Ctrl-C.
        #[arg(
            long,
            value_name = "SECS",
            num_args = 0..=1,
            default_missing_value = "2",
            value_parser = parse_secs
        )]
        watch: Option<f64>,
    },
    /// Make the running agent read its configuration file again and apply it without a flap
    /// (as SIGHUP does): unchanged instances keep their state and advert rhythm, changed ones
    /// are changed in place, instances whose interface, VRID or version changed are rebuilt,
    /// removed ones leave as on shutdown, new ones start. With an error in the file nothing
    /// changes: the errors are printed (FILE:LINE:COLUMN) and the exit code is 1.
    #[command(after_help = RELOAD_AFTER_HELP)]
    Reload {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration: print the effective configuration (defaults filled in) and exit 0,
    /// or print every error as FILE:LINE:COLUMN and exit 1.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check {
        /// Configuration file (keepalived.conf syntax).
        #[arg(
            short = 'f',
            long = "config-file",
            value_name = "FILE",
            default_value = DEFAULT_CONFIG
        )]
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

/// Log format for `run`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormatArg {
    /// `LEVEL message`, one line per event (with a UTC timestamp unless under journald).
    Text,
    /// One JSON object per line: timestamp, level, target, instance, message, fields.
    Json,
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

/// `--watch SECS`: a number of seconds from 0.1 to one day.
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds from 0.1 to 86400"
        )),
    }
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
            log_format,
        } => {
            let format = match log_format {
                LogFormatArg::Text => crate::logging::LogFormat::Text,
                LogFormatArg::Json => crate::logging::LogFormat::Json,
            };
            let _flush = crate::logging::init(verbose, quiet, format);
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
        Command::Status { json, watch, quiet } => {
            let view = View {
                cmd: crate::control::Command::Status,
                name: "status",
                json,
                quiet,
                text: render::status,
                verdict: status_verdict,
            };
            view.run(&cli.control_socket, watch)
        }
        Command::Counters { json, watch } => {
            let view = View {
                cmd: crate::control::Command::Counters,
                name: "counters",
                json,
                quiet: false,
                text: render::counters,
                verdict: |_: &RxCounters| ExitCode::SUCCESS,
            };
            view.run(&cli.control_socket, watch)
        }
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

/// `status`: 0 healthy, 1 not (see `state::health`).
fn status_verdict(s: &Status) -> ExitCode {
    if s.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A query of the agent shown as text or JSON, once or with `--watch`.
struct View<T> {
    cmd: crate::control::Command,
    /// The subcommand's name, for the `--watch` header.
    name: &'static str,
    json: bool,
    quiet: bool,
    text: fn(&T) -> String,
    verdict: fn(&T) -> ExitCode,
}

impl<T: serde::de::DeserializeOwned + serde::Serialize> View<T> {
    /// Asks the agent once: what to print (stdout or stderr) and the exit code.
    fn frame(&self, socket: &std::path::Path) -> (Result<String, String>, ExitCode) {
        match crate::control::query::<T>(socket, self.cmd) {
            Ok(v) => {
                let code = (self.verdict)(&v);
                let out = if self.json {
                    serde_json::to_string(&v)
                        .map(|t| t + "\n")
                        .map_err(|e| format!("xvrrp: {e}\n"))
                } else {
                    Ok((self.text)(&v))
                };
                (out, code)
            }
            Err(e) => (Err(format!("xvrrp: {e}\n")), ExitCode::from(UNREACHABLE)),
        }
    }

    fn run(&self, socket: &std::path::Path, watch: Option<f64>) -> ExitCode {
        use std::io::Write as _;
        let Some(secs) = watch else {
            let (out, code) = self.frame(socket);
            match out {
                // A closed pipe (`| head`) is not an error worth a panic.
                Ok(text) if !self.quiet => {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
                Ok(_) => {}
                Err(e) => eprint!("{e}"),
            }
            return code;
        };
        // Until Ctrl-C (SIGINT's default action ends the process). Text: clear the screen and
        // redraw in one write; JSON: one document per line, nothing cleared (for pipes).
        loop {
            let (out, _) = self.frame(socket);
            let body = out.unwrap_or_else(|e| e);
            let frame = if self.json {
                body
            } else {
                format!(
                    "\x1b[H\x1b[2J{}\n{body}",
                    render::wrap(
                        &format!(
                            "every {secs}s: xvrrp {}  {}  (Ctrl-C to stop)",
                            self.name,
                            crate::logging::utc_now()
                        ),
                        render::WIDTH
                    )
                    .join("\n")
                )
            };
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(frame.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                // The reader went away (a closed pipe): stop.
                return ExitCode::SUCCESS;
            }
            drop(stdout);
            std::thread::sleep(Duration::from_secs_f64(secs));
        }
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

/// `xvrrp reload`: 0 when applied, 1 when the configuration was rejected, 2 when no agent
/// answers.
fn reload(socket: &std::path::Path, json: bool) -> ExitCode {
    let r = match crate::control::query::<ReloadReport>(socket, crate::control::Command::Reload) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xvrrp: {e}");
            return ExitCode::from(UNREACHABLE);
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

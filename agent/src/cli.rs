//! The `xvrrp` command line.
//!
//! Exit codes scripts can rely on: 0 success, 1 the input was rejected (for example a config with
//! errors), 2 usage errors (clap's own), 3 an operational failure (cannot attach, cannot load).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::dataplane::{AttachMode, XdpDataplane};

/// Default configuration path. `-f /etc/keepalived/keepalived.conf` runs an existing keepalived
/// configuration as it is.
pub const DEFAULT_CONFIG: &str = "/etc/xvrrp/xvrrp.conf";

/// xvrrp: a VRRP router that runs keepalived.conf, with an XDP fast path.
#[derive(Debug, Parser)]
#[command(name = "xvrrp", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Attach the embedded XDP program (with no VRRP instance configured) to an interface for a
    /// while and print its packet counts as JSON (a self-test of the eBPF pipeline).
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
    },
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
        Command::Check { config, json } => check(&config, json),
        Command::XdpProbe {
            interface,
            mode,
            seconds,
        } => xdp_probe(&interface, mode, seconds),
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

fn xdp_probe(iface: &str, mode: ProbeMode, seconds: f64) -> ExitCode {
    let mode = match mode {
        ProbeMode::Auto => AttachMode::Auto,
        ProbeMode::Native => AttachMode::Native,
        ProbeMode::Generic => AttachMode::Generic,
    };
    // No policies: every VRRP frame is dropped and counted (vrid_err or earlier), everything else
    // passes.
    let att = match XdpDataplane::attach(iface, mode, &[], false) {
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
        let mut totals = serde_json::Map::new();
        for row in &rows {
            for (c, n) in row.nonzero() {
                let t = totals
                    .entry(c.as_str())
                    .or_insert(serde_json::Value::from(0u64));
                *t = serde_json::Value::from(t.as_u64().unwrap_or(0) + n);
            }
        }
        Ok(serde_json::json!({
            "interface": att.interface(),
            "mode": att.mode(),
            "vrrp": stats.vrrp,
            "ring_full": stats.ring_full,
            "counters": totals,
        }))
    });
    match report {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xvrrp: {e}");
            ExitCode::from(3)
        }
    }
}

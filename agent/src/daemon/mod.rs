//! The running agent (`xvrrp run`): configuration in, a VRRP router on the network out.

//!
//! | module | what |
//! | --- | --- |
//! | `options` | `RunOptions`, `RxMode`, `StartError` (a leaf) |
//! | `edges` | the loop's I/O as traits: `AdvertTx`, `AddressOps` (a leaf) |
//! | `plan` | config to one `InstancePlan` per instance (pure) |
//! | `start` | receive paths, sockets, the loop's inputs; runs until a stop signal |
//! | `event_loop` | `Daemon`: timers, adverts, tracker changes, signals, control requests to core events |
//! | `receive` | XDP ring buffer and raw-socket readers, bounded batches |
//! | `effects` | the core's actions: adverts, addresses, announcements, notify, cloud |
//! | `status` | snapshots in the typed model (`crate::state`) for the control socket |
//! | `service` | systemd's sd_notify: READY, STATUS, RELOADING, STOPPING, the watchdog ping |
//! | `track/` | trackers: the registry (`mod.rs`), shared types (`types.rs`), one watcher per kind |
//! | `announce`, `notify`, `command`, `security`, `counters`, `takeover` | GARP/NA schedule, notify queue, running commands, script users and security, socket-path counters, cloud glue |

mod addresses;
pub(crate) mod announce;
pub(crate) mod command;
pub(crate) mod counters;
mod edges;
mod effects;
mod event_loop;
mod iface;
mod links;
pub(crate) mod loglimit;
pub(crate) mod notify;
mod options;
pub(crate) mod plan;
mod receive;
mod reload;
mod reopen;
pub(crate) mod security;
pub(crate) mod service;
mod start;
mod status;
pub(crate) mod takeover;
pub(crate) mod track;

pub(crate) use self::options::{RunOptions, RxMode};

use std::process::ExitCode;

use tracing::error;

/// `xvrrp run`: loads and checks the configuration (nothing is applied when it has errors),
/// plans every instance, and runs until SIGTERM/SIGINT. Exit codes: 0 after a clean stop, 1 for a
/// configuration error, 3 when the network could not be set up.
pub(crate) fn run(opts: RunOptions) -> ExitCode {
    let loaded = match crate::config::load(&opts.config) {
        Ok(l) => l,
        Err(errors) => {
            for line in errors.to_string().lines() {
                error!("{line}");
            }
            error!(
                "{} error(s) in {}; nothing was applied",
                errors.errors.len(),
                opts.config.display()
            );
            return ExitCode::from(1);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let cfg = loaded.config;
    // `--log-format json`: lines naming an instance carry it in `instance`.
    crate::logging::set_instances(cfg.instances.iter().map(|i| i.name.clone()));
    let lookup = |ifname: &str, v6: bool| interface_address(ifname, v6);
    let plans = match plan::plan(&cfg, &lookup) {
        Ok(p) => p,
        Err(errs) => {
            for e in errs {
                error!("{e}");
            }
            return ExitCode::from(1);
        }
    };
    // Under systemd (`Type=notify`): READY/STATUS/STOPPING/WATCHDOG from here on.
    service::init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let local = tokio::task::LocalSet::new();
    let code = match local.block_on(&rt, start::run(cfg, plans, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(3)
        }
    };
    service::flush();
    crate::logging::flush();
    code
}

/// The interface's primary address of a family: IPv4, the first non-secondary address; IPv6,
/// the link-local address (what VRRPv3 over IPv6 sends from).
pub(super) fn interface_address(ifname: &str, v6: bool) -> Option<std::net::IpAddr> {
    let idx = crate::net::ifindex(ifname).ok()?;
    let addrs = crate::net::list_addresses(idx).ok()?;
    addrs
        .iter()
        // The same rule as the socket layer: a tentative (DAD pending) link-local address cannot
        // be sent from yet.
        .filter(|a| !a.is_secondary() && !a.is_tentative())
        .map(|a| a.addr)
        .find(|a| match a {
            std::net::IpAddr::V4(_) => !v6,
            std::net::IpAddr::V6(x) => v6 && (x.segments()[0] & 0xffc0) == 0xfe80,
        })
}

//! xvrrp: a VRRP router that runs keepalived.conf, with an XDP fast path.
//!
//! Module map (after holo-vrrp):
//! - [`packet`]: VRRPv2/v3 wire codec, checksums, PASS authentication, typed decode errors.
//! - [`vrrp`]: the sans-IO protocol core (`Instance`: events in, actions out).
//! - `sim` (feature `testing`): a deterministic simulator of many instances on a lossy segment in virtual time.
//! - [`config`]: keepalived.conf lexer, parser, model and semantic validation.
//! - [`dataplane`]: loading and attaching the embedded eBPF programs.
//! - [`net`]: raw VRRP sockets, netlink addresses and link events, GARP / unsolicited NA.
//! - [`state`]: one typed model of the agent's state (status, counters, trackers, cloud).
//! - [`daemon`]: the running agent (`xvrrp run`).
//! - [`control`]: the control socket (`xvrrp status`, `xvrrp counters`).
//! - `memory`: handing back what only start-up needed (heap, pages of the executable).
//! - `metrics`: Prometheus metrics over HTTP (`xvrrp run --metrics`), from the same model.
//! - [`logging`]: the stderr logger.
//! - [`cli`]: the `xvrrp` command line.
//! - [`cloud`]: DigitalOcean reserved-IP takeover (API client, retry policy, takeover task).

// Items the binary and the tests do not reach stay `pub(crate)`.
#![warn(unreachable_pub)]

pub mod cli;
pub mod cloud;
pub mod config;
mod control;
mod daemon;
pub mod dataplane;
mod logging;
mod memory;
mod metrics;
pub mod net;
pub mod packet;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
pub mod state;
pub mod vrrp;

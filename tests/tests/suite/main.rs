//! The xvrrp end-to-end suite, one test binary with a module per area: network-namespace labs
//! with real peers (keepalived, nginx, a DigitalOcean API double), the kernel pieces (netlink,
//! sockets, XDP) and the benchmarks' smoke runs. `cargo xtask test` runs it one test at a time;
//! `cargo xtask bench NAME` runs one `bench::` module with full figures.
//!
//! Areas: `demo` (`cargo xtask demo` end to end), `lab` (VRRP between peers, keepalived interop,
//! scale), `chaos` (the tutorial pair through partitions, link flaps, a frozen agent, loss and a
//! flapping nginx), `track` (trackers), `listen` (vrrp_track_listen), `do_` (DigitalOcean
//! reserved IP and its API double), `net` (netlink, sockets, announcements), `xdp` (the XDP
//! program), `bench` (benchmarks).
#![allow(clippy::unwrap_used, reason = "tests panic on failed steps")]

mod bench;
mod chaos;
mod demo;
mod do_;
mod lab;
mod listen;
mod net;
mod track;
mod xdp;

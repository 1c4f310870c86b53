//! The running agent (`xvrrp run`): configuration in, a VRRP router on the network out.

pub mod command;
pub mod counters;
pub mod notify;
pub mod plan;
pub mod scripts;
pub mod runtime;

//! Sites: a lab with its hosts, their daemons and configs, built the same way by every test of
//! an area.

pub mod cloud;
pub mod listen;
pub mod track;

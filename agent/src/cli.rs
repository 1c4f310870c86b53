//! The `xvrrp` command line.

use std::process::ExitCode;

/// Entry point of the `xvrrp` binary.
pub fn main() -> ExitCode {
    eprintln!("xvrrp: not yet wired");
    ExitCode::from(2)
}

//! The `xvrrp` binary: a thin shell over [`xvrrp::cli`].

fn main() -> std::process::ExitCode {
    xvrrp::cli::main()
}

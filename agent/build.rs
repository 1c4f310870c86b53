//! Embeds the eBPF object built by `cargo xtask build-ebpf`, so a built `xvrrp` is self-contained.
//!
//! The object is looked up at `$XVRRP_EBPF_OBJ`, else at the path `cargo xtask build-ebpf` writes
//! (`target/bpfel-unknown-none/release/xvrrp-ebpf` under the workspace). Without it the build
//! fails and says how to make it: an agent without its kernel programs would silently lack its
//! fast path (XDP advert filter, listener tracking), so `cargo build` and
//! `cargo install --path agent` either embed it or refuse.
use std::{env, fs, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let Some(manifest) = env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        eprintln!("xvrrp build: cargo did not set CARGO_MANIFEST_DIR");
        return ExitCode::FAILURE;
    };
    let default = manifest.join("../target/bpfel-unknown-none/release/xvrrp-ebpf");
    let src = env::var_os("XVRRP_EBPF_OBJ")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo:rerun-if-env-changed=XVRRP_EBPF_OBJ");
    println!("cargo:rerun-if-changed={}", src.display());
    let Some(out) = env::var_os("OUT_DIR").map(|d| PathBuf::from(d).join("xvrrp-ebpf.o")) else {
        eprintln!("xvrrp build: cargo did not set OUT_DIR");
        return ExitCode::FAILURE;
    };
    let bytes = match fs::read(&src) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) | Err(_) => {
            eprintln!(
                "\nxvrrp build: the eBPF object (the kernel programs xvrrp embeds) is missing at\n  \
                 {}\n\nBuild it first, from the repository root:\n  \
                 cargo xtask setup        # once: nightly toolchain, bpf-linker, packages\n  \
                 cargo xtask build-ebpf   # writes target/bpfel-unknown-none/release/xvrrp-ebpf\n\
                 or point XVRRP_EBPF_OBJ at an object built elsewhere. Then build again \
                 (`cargo xtask build`, `cargo build`, or `cargo install --path agent`).\n",
                src.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = fs::write(&out, bytes) {
        eprintln!("xvrrp build: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

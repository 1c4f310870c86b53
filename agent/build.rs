//! Embeds the eBPF object built by `cargo xtask build-ebpf`, so a built `xvrrp` is self-contained.
//!
//! The object is looked up at `$XVRRP_EBPF_OBJ`, else at the path `cargo xtask build-ebpf` writes
//! (`target/bpfel-unknown-none/release/xvrrp-ebpf` under the workspace). When it is missing (for
//! example `cargo clippy` before the first eBPF build) an empty object is embedded, a build warning
//! says so, and the agent reports at run time that it was built without its kernel programs.
use std::{env, fs, path::PathBuf};

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let default = manifest.join("../target/bpfel-unknown-none/release/xvrrp-ebpf");
    let src = env::var_os("XVRRP_EBPF_OBJ")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo:rerun-if-env-changed=XVRRP_EBPF_OBJ");
    println!("cargo:rerun-if-changed={}", src.display());
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xvrrp-ebpf.o");
    match fs::read(&src) {
        Ok(bytes) => fs::write(&out, bytes).expect("write embedded eBPF object"),
        Err(_) => {
            println!(
                "cargo:warning=eBPF object not found at {}: run `cargo xtask build-ebpf`; embedding none",
                src.display()
            );
            fs::write(&out, []).expect("write empty eBPF object");
        }
    }
}

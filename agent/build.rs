//! Embeds the eBPF object built by `cargo xtask build-ebpf`, so a built `xvrrp` is self-contained.
//!
//! The object is looked up at `$XVRRP_EBPF_OBJ`, else at the path `cargo xtask build-ebpf` writes
//! (`target/bpfel-unknown-none/release/xvrrp-ebpf` under the workspace). Without it the build
//! fails and says how to make it: an agent without its kernel programs would silently lack its
//! fast path (XDP advert filter, listener tracking), so `cargo build` and
//! `cargo install --path agent` either embed it or refuse.
//!
//! It also records what `xvrrp --version` reports: the git commit (`$XVRRP_GIT_COMMIT`, else
//! `git rev-parse HEAD` in the source tree, else "unknown", e.g. from a source tarball) and the
//! size of the embedded object.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

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
    println!("cargo:rustc-env=XVRRP_EBPF_BYTES={}", bytes.len());
    println!("cargo:rustc-env=XVRRP_GIT_COMMIT={}", git_commit(&manifest));
    if let Err(e) = fs::write(&out, bytes) {
        eprintln!("xvrrp build: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `git` in `dir`, trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// The commit the source tree is at (12 hex digits), or "unknown" outside git. Reruns when HEAD
/// moves (checkout, commit), so `--version` never names an older commit.
fn git_commit(manifest: &Path) -> String {
    println!("cargo:rerun-if-env-changed=XVRRP_GIT_COMMIT");
    if let Some(c) = env::var("XVRRP_GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        return c;
    }
    let Some(commit) = git(manifest, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // HEAD lives in the (worktree's) git dir; the branch it points at in the common dir, loose
    // or packed. Only existing paths: cargo reruns every time for a missing one.
    let dirs = [
        git(manifest, &["rev-parse", "--absolute-git-dir"]),
        git(
            manifest,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        ),
    ];
    let mut watch: Vec<PathBuf> = Vec::new();
    if let Some(d) = &dirs[0] {
        watch.push(Path::new(d).join("HEAD"));
    }
    if let Some(c) = &dirs[1] {
        watch.push(Path::new(c).join("packed-refs"));
        if let Some(r) = git(manifest, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(Path::new(c).join(r));
        }
    }
    for p in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    commit
}

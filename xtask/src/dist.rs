//! `cargo xtask dist`: a release a person can install. Builds the release `xvrrp` (eBPF object
//! embedded), its man pages and shell completions (from the binary itself: `xvrrp generate`), and
//! a `.deb` made with `dpkg-deb` from a staged tree: nothing to install beyond dpkg, works
//! offline.
//!
//! The package installs the binary (where the unit's `ExecStart=` runs it), the systemd unit
//! `dist/xvrrp.service`, the man pages (section 8), bash / zsh / fish completions, and the
//! commented example configuration `dist/xvrrp.conf.example` as
//! `/usr/share/doc/xvrrp/examples/xvrrp.conf`. It has no maintainer scripts: installing it
//! starts, enables and configures nothing (`systemctl enable --now xvrrp` is the operator's
//! step, after writing `/etc/xvrrp/xvrrp.conf`).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{output, run};

/// The systemd unit, in the repository.
pub const UNIT: &str = "dist/xvrrp.service";
/// The example configuration, in the repository.
pub const EXAMPLE: &str = "dist/xvrrp.conf.example";
/// Where the binary goes when the unit does not say (keepalived's place).
const DEFAULT_BIN: &str = "/usr/sbin/xvrrp";

/// What `package` made.
#[derive(Debug)]
pub struct Package {
    /// The `.deb`.
    pub deb: PathBuf,
    /// The binary's path once installed (`/usr/sbin/xvrrp`).
    pub installed_bin: String,
}

/// How hard `dpkg-deb` compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// xz, dpkg-deb's default: the release package.
    Best,
    /// gzip -1: the test's package of the (unstripped, ~140 MB) debug binary.
    Fast,
}

/// Packages the binary `bin` (built already) with the files of the repository at `root` into
/// `out_dir`: `xvrrp_VERSION_ARCH.deb`, plus `man/` and `completions/` next to it.
pub fn package(root: &Path, bin: &Path, out_dir: &Path, z: Compression) -> Result<Package> {
    let unit_src = root.join(UNIT);
    let unit = fs::read_to_string(&unit_src).with_context(|| {
        format!(
            "{} is missing or unreadable: the package ships the systemd unit from there",
            unit_src.display()
        )
    })?;
    let example = root.join(EXAMPLE);
    if !example.is_file() {
        bail!("{} is missing", example.display());
    }
    let installed_bin = exec_start_binary(&unit)?;
    let version = binary_version(bin)?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .context("`dpkg --print-architecture` failed: is this a Debian system?")?;

    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let name = format!("xvrrp_{version}_{arch}");
    let stage = out_dir.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    // Man pages and completions, straight from the binary; also kept next to the .deb.
    let man = out_dir.join("man");
    let completions = out_dir.join("completions");
    for d in [&man, &completions] {
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
        fs::create_dir_all(d)?;
    }
    run(Command::new(bin).args(["generate", "man"]).arg(&man))?;
    for (shell, file) in [("bash", "xvrrp"), ("zsh", "_xvrrp"), ("fish", "xvrrp.fish")] {
        let text = output(Command::new(bin).args(["generate", "completions", shell]))
            .with_context(|| format!("`{} generate completions {shell}` failed", bin.display()))?;
        fs::write(completions.join(file), text)?;
    }

    let put = |rel: &str, src: &Path, mode: u32| -> Result<()> {
        let dst = stage.join(rel.trim_start_matches('/'));
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(src, &dst).with_context(|| format!("copying {}", src.display()))?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put(&installed_bin, bin, 0o755)?;
    put("/usr/lib/systemd/system/xvrrp.service", &unit_src, 0o644)?;
    put("/usr/share/doc/xvrrp/examples/xvrrp.conf", &example, 0o644)?;
    put(
        "/usr/share/bash-completion/completions/xvrrp",
        &completions.join("xvrrp"),
        0o644,
    )?;
    put(
        "/usr/share/zsh/vendor-completions/_xvrrp",
        &completions.join("_xvrrp"),
        0o644,
    )?;
    put(
        "/usr/share/fish/vendor_completions.d/xvrrp.fish",
        &completions.join("xvrrp.fish"),
        0o644,
    )?;
    let man8 = stage.join("usr/share/man/man8");
    fs::create_dir_all(&man8)?;
    for e in fs::read_dir(&man)? {
        let page = e?.path();
        let Some(file) = page.file_name() else {
            continue;
        };
        let gz = man8.join(format!("{}.gz", file.to_string_lossy()));
        let out = Command::new("gzip")
            .args(["-9n", "-c"])
            .arg(&page)
            .output()
            .context("running gzip")?;
        if !out.status.success() {
            bail!("gzip {} failed", page.display());
        }
        fs::write(&gz, out.stdout)?;
        fs::set_permissions(&gz, fs::Permissions::from_mode(0o644))?;
    }
    let doc = stage.join("usr/share/doc/xvrrp");
    fs::write(
        doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: xvrrp\n\n\
         Files: *\nCopyright: the xvrrp authors\nLicense: MIT or Apache-2.0\n",
    )?;
    // The configuration directory the unit reads from; empty (the operator writes the config).
    fs::create_dir_all(stage.join("etc/xvrrp"))?;

    let control_dir = stage.join("DEBIAN");
    fs::create_dir_all(&control_dir)?;
    let size_kib = dir_size(&stage)?.div_ceil(1024);
    fs::write(
        control_dir.join("control"),
        format!(
            "Package: xvrrp\n\
             Version: {version}\n\
             Architecture: {arch}\n\
             Maintainer: xvrrp developers <xvrrp@localhost>\n\
             Installed-Size: {size_kib}\n\
             Depends: libc6\n\
             Section: net\n\
             Priority: optional\n\
             Description: VRRP router that runs keepalived.conf, with an XDP fast path\n \
             xvrrp replaces keepalived's VRRP side: it reads keepalived.conf, takes part in\n \
             VRRPv2/v3 elections, moves virtual addresses and DigitalOcean reserved IPs, and\n \
             filters adverts in the kernel with XDP.\n \
             .\n \
             The package starts and enables nothing: write /etc/xvrrp/xvrrp.conf (see\n \
             /usr/share/doc/xvrrp/examples/xvrrp.conf), check it with `xvrrp check`, then\n \
             `systemctl enable --now xvrrp`.\n"
        ),
    )?;
    let deb = out_dir.join(format!("{name}.deb"));
    let mut build = Command::new("dpkg-deb");
    if z == Compression::Fast {
        build.args(["-Zgzip", "-z1"]);
    }
    run(build
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    fs::remove_dir_all(&stage)?;
    Ok(Package { deb, installed_bin })
}

/// The absolute path the unit's `ExecStart=` runs (prefixes `-@:+!` stripped), so the binary
/// lands where the unit looks for it; [`DEFAULT_BIN`] when the unit has no `ExecStart=`.
fn exec_start_binary(unit: &str) -> Result<String> {
    let Some(line) = unit
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("ExecStart="))
    else {
        return Ok(DEFAULT_BIN.to_owned());
    };
    let prog = line
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .split_whitespace()
        .next()
        .unwrap_or_default();
    if !prog.starts_with("/usr/") || !prog.ends_with("/xvrrp") {
        bail!("{UNIT}: ExecStart= runs '{prog}'; the package installs /usr/.../xvrrp");
    }
    Ok(prog.to_owned())
}

/// The version `bin --version` reports (`xvrrp 0.1.0 (commit ...)` -> `0.1.0`).
fn binary_version(bin: &Path) -> Result<String> {
    let text = output(Command::new(bin).arg("--version"))
        .with_context(|| format!("`{} --version` failed", bin.display()))?;
    text.split_whitespace()
        .nth(1)
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .with_context(|| format!("no version in `{}`", text.trim()))
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

#[cfg(test)]
#[path = "dist_tests.rs"]
mod tests;

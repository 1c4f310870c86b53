//! The `.deb` installed into a throwaway root (`dpkg -x`): the installed binary runs, reports
//! its version, commit and eBPF programs, and accepts the installed example configuration.
//! Packages the debug build (`$XVRRP_BIN`, which `cargo xtask test` sets, else
//! `target/debug/xvrrp`); `cargo xtask dist` packages the release build the same way.
#![allow(clippy::unwrap_used, reason = "test")]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use super::*;

struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn agent_bin() -> PathBuf {
    let bin = std::env::var_os("XVRRP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/xvrrp"));
    assert!(
        bin.is_file(),
        "{} is missing: build the agent first (`cargo xtask build` or `cargo build`)",
        bin.display()
    );
    bin
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn deb_installs_into_a_throwaway_root_and_runs() {
    let tmp = Tmp(std::env::temp_dir().join(format!("xvrrp-dist-test-{}", std::process::id())));
    let pkg = package(&root(), &agent_bin(), &tmp.0.join("out"), Compression::Fast).unwrap();
    assert!(pkg.deb.is_file());

    // Nothing runs at install: the package has no maintainer scripts.
    let control = tmp.0.join("control");
    let o = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&pkg.deb)
        .arg(&control)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(!control.join(script).exists(), "{script} in the package");
    }
    let fields = fs::read_to_string(control.join("control")).unwrap();
    assert!(fields.contains("Package: xvrrp\n"), "{fields}");

    let inst = tmp.0.join("root");
    let o = Command::new("dpkg")
        .arg("-x")
        .arg(&pkg.deb)
        .arg(&inst)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "usr/lib/systemd/system/xvrrp.service",
        "usr/share/man/man8/xvrrp.8.gz",
        "usr/share/man/man8/xvrrp-run.8.gz",
        "usr/share/man/man8/xvrrp-check.8.gz",
        "usr/share/bash-completion/completions/xvrrp",
        "usr/share/zsh/vendor-completions/_xvrrp",
        "usr/share/fish/vendor_completions.d/xvrrp.fish",
        "usr/share/doc/xvrrp/examples/xvrrp.conf",
        "usr/share/doc/xvrrp/copyright",
    ] {
        assert!(inst.join(f).is_file(), "{f} not installed");
    }
    assert_eq!(
        fs::read(inst.join("usr/lib/systemd/system/xvrrp.service")).unwrap(),
        fs::read(root().join(UNIT)).unwrap()
    );
    let bash =
        fs::read_to_string(inst.join("usr/share/bash-completion/completions/xvrrp")).unwrap();
    assert!(
        bash.contains("complete") && bash.contains("check"),
        "{bash}"
    );

    // The installed binary, where the unit runs it.
    let bin = inst.join(pkg.installed_bin.trim_start_matches('/'));
    let o = Command::new(&bin).arg("--version").output().unwrap();
    let version = text(&o);
    assert!(o.status.success(), "{version}");
    assert!(
        version.starts_with(&format!("xvrrp {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(version.contains("eBPF programs embedded"), "{version}");
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_default();
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()) && commit.len() >= 7,
        "{version}"
    );

    // The example config, as installed: accepted with a token in the environment (it names no
    // token_file), rejected with a clear message without one.
    let example = inst.join("usr/share/doc/xvrrp/examples/xvrrp.conf");
    let check = |token: Option<&str>| {
        let mut c = Command::new(&bin);
        c.args(["check", "-f"])
            .arg(&example)
            .env_remove("DO_TOKEN")
            .env_remove("DIGITALOCEAN_TOKEN");
        if let Some(t) = token {
            c.env("DO_TOKEN", t);
        }
        c.output().unwrap()
    };
    let ok = check(Some("dop_v1_example"));
    assert!(ok.status.success(), "{}", text(&ok));
    let effective = String::from_utf8_lossy(&ok.stdout);
    assert!(
        effective.contains("reserved_ip 203.0.113.10"),
        "{effective}"
    );
    assert!(effective.contains("vrrp_instance VI_1"), "{effective}");
    assert!(
        !text(&ok).contains("dop_v1_example"),
        "the token is never shown"
    );
    let no_token = check(None);
    assert_eq!(no_token.status.code(), Some(1), "{}", text(&no_token));
    assert!(text(&no_token).contains("DO_TOKEN"), "{}", text(&no_token));
}

#[test]
fn binary_goes_where_the_unit_runs_it() {
    assert_eq!(
        exec_start_binary("[Service]\nExecStart=/usr/bin/xvrrp run -f /etc/xvrrp/xvrrp.conf\n")
            .unwrap(),
        "/usr/bin/xvrrp"
    );
    assert_eq!(
        exec_start_binary("ExecStart=-/usr/sbin/xvrrp run\n").unwrap(),
        "/usr/sbin/xvrrp"
    );
    assert_eq!(exec_start_binary("[Unit]\n").unwrap(), DEFAULT_BIN);
    assert!(exec_start_binary("ExecStart=/opt/x/xvrrp run\n").is_err());
}

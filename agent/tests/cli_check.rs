//! `xvrrp check` as a user runs it: exit codes, output streams, positions, redaction.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{path::PathBuf, process::Command};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xvrrp"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tutorial_config_checks_clean_and_prints_effective_config_without_the_password() {
    let primary = fixture("tutorial-primary.conf");
    let (code, out, _) = check(&["-f", primary.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("virtual_router_id 33") && out.contains("priority 200"),
        "{out}"
    );
    assert!(
        out.contains("garp_master_delay 5"),
        "defaults are filled in: {out}"
    );
    assert!(
        out.contains("auth_pass <redacted>") && !out.contains("password"),
        "{out}"
    );

    let (code, out, _) = check(&["-f", primary.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["instances"][0]["priority"], 200);
    assert!(!out.contains("password"));
}

#[test]
fn errors_name_file_line_column_and_keyword_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("xvrrp-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    let text = std::fs::read_to_string(fixture("tutorial-secondary.conf"))
        .unwrap()
        .replace("priority 100", "priorty 100")
        .replace("virtual_router_id 33", "virtual_router_id 0");
    std::fs::write(&conf, text).unwrap();
    let (code, out, err) = check(&["-f", conf.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "nothing printed as if valid: {out}");
    let name = conf.display().to_string();
    assert!(
        err.lines().any(|l| l.starts_with(&name)
            && l.contains(": priorty:")
            && l.contains("did you mean 'priority'")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with(&name) && l.contains("virtual_router_id")),
        "{err}"
    );
    assert!(
        err.contains("2 error(s)"),
        "every error reported at once: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let (code, _, err) = check(&["-f", "/nonexistent/xvrrp.conf"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/xvrrp.conf"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

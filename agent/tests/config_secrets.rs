//! Secrets never leak; the digitalocean block's token sources and file permission checks.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use xvrrp::config::{self, TokenSource};

const TOKEN: &str = "dop_v1_0123456789abcdefSECRETTOKEN";
const PASS: &str = "hunter2pw";

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "xvrrp-secrets-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn token_file(dir: &Path, mode: u32) -> PathBuf {
    let p = dir.join("do-token");
    fs::write(&p, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn conf(do_body: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n    interface eth1\n    virtual_router_id 33\n    authentication {{\n        auth_type PASS\n        auth_pass {PASS}\n    }}\n    digitalocean {{\n{do_body}    }}\n}}\n"
    )
}

fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<config::Loaded, config::ConfigErrors> {
    config::parse_str_with_env("xvrrp.conf", text, Path::new("/"), env)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn assert_no_secret(s: &str) {
    assert!(!s.contains(TOKEN), "token leaked in:\n{s}");
    assert!(!s.contains(PASS), "auth_pass leaked in:\n{s}");
    assert!(!s.contains("hunter2p"), "auth_pass prefix leaked in:\n{s}");
}

#[test]
fn token_from_file_with_mode_0600_and_defaults() {
    let d = temp_dir("ok");
    let tf = token_file(&d, 0o600);
    let text = conf(&format!(
        "        reserved_ip 203.0.113.10\n        token_file {}\n",
        tf.display()
    ));
    let l = parse(&text, &no_env).unwrap();
    let i = &l.config.instances[0];
    let dobj = i.digitalocean.as_ref().unwrap();
    assert_eq!(dobj.token.expose(), TOKEN);
    assert_eq!(dobj.token_source, TokenSource::File(tf.clone()));
    assert_eq!(dobj.reserved_ip.to_string(), "203.0.113.10");
    assert_eq!(dobj.api_url, "https://api.digitalocean.com");
    assert_eq!(dobj.metadata_url, "http://169.254.169.254");
    assert_eq!(dobj.reconcile_interval, std::time::Duration::from_secs(60));
    assert_eq!(i.authentication.as_ref().unwrap().auth_pass.expose(), PASS);

    // Nothing printable leaks either secret.
    assert_no_secret(&format!("{:?}", l));
    assert_no_secret(&format!("{:#?}", l.config));
    assert_no_secret(&format!("{}", dobj.token));
    assert_no_secret(&l.config.render());
    assert_no_secret(&l.config.to_json());
    assert_no_secret(&serde_json::to_string(&l).unwrap());
    assert!(l.config.render().contains("auth_pass <redacted>"));
    assert!(l.config.to_json().contains("\"token\": \"<redacted>\""));
    // render_with_secrets writes auth_pass (to reload) but never the token itself.
    let full = l.config.render_with_secrets();
    assert!(full.contains(PASS));
    assert!(!full.contains(TOKEN));
    let again = parse(&full, &no_env).unwrap();
    assert_eq!(again.config, l.config);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn token_file_readable_by_others_is_refused() {
    let d = temp_dir("perm");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let tf = token_file(&d, mode);
        let text = conf(&format!(
            "        reserved_ip 203.0.113.10\n        token_file {}\n",
            tf.display()
        ));
        let e = parse(&text, &no_env).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        let err = &e.errors[0];
        assert_eq!(
            (err.pos.line, err.pos.column, err.keyword.as_str()),
            (10, 20, "token_file")
        );
        assert_eq!(
            err.message,
            format!(
                "token_file '{}' is accessible by group or others (mode {mode:04o}); run 'chmod 600 {}'",
                tf.display(),
                tf.display()
            )
        );
        assert_no_secret(&e.to_string());
        assert_no_secret(&format!("{e:?}"));
    }
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn token_file_problems() {
    let d = temp_dir("problems");
    let missing = d.join("nope");
    let e = parse(
        &conf(&format!(
            "        reserved_ip 203.0.113.10\n        token_file {}\n",
            missing.display()
        )),
        &no_env,
    )
    .unwrap_err();
    assert!(
        e.errors[0]
            .message
            .starts_with(&format!("cannot read token_file '{}'", missing.display())),
        "{e}"
    );

    let e = parse(
        &conf("        reserved_ip 203.0.113.10\n        token_file relative/token\n"),
        &no_env,
    )
    .unwrap_err();
    assert_eq!(
        e.errors[0].message,
        "token_file 'relative/token' must be an absolute path"
    );

    let empty = d.join("empty");
    fs::write(&empty, "\n").unwrap();
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o600)).unwrap();
    let e = parse(
        &conf(&format!(
            "        reserved_ip 203.0.113.10\n        token_file {}\n",
            empty.display()
        )),
        &no_env,
    )
    .unwrap_err();
    assert!(e.errors[0].message.ends_with("is empty"), "{e}");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn token_file_that_is_not_a_regular_file() {
    // Root can read any regular file, so the unreadable case is a directory: refused for every
    // user, including the root the suite runs as.
    let d = temp_dir("unreadable");
    let tf = d.join("token-dir");
    fs::create_dir(&tf).unwrap();
    fs::set_permissions(&tf, fs::Permissions::from_mode(0o700)).unwrap();
    let e = parse(
        &conf(&format!(
            "        reserved_ip 203.0.113.10\n        token_file {}\n",
            tf.display()
        )),
        &no_env,
    )
    .unwrap_err();
    assert!(e.errors[0].message.contains("is not a regular file"), "{e}");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn token_from_environment() {
    let text = conf("        reserved_ip 203.0.113.10\n");
    let env = |k: &str| (k == "DIGITALOCEAN_TOKEN").then(|| TOKEN.to_string());
    let l = parse(&text, &env).unwrap();
    let dobj = l.config.instances[0].digitalocean.as_ref().unwrap();
    assert_eq!(
        dobj.token_source,
        TokenSource::Env("DIGITALOCEAN_TOKEN".into())
    );
    assert_eq!(dobj.token.expose(), TOKEN);
    // DO_TOKEN wins over DIGITALOCEAN_TOKEN.
    let env = |k: &str| Some(format!("{k}-value"));
    let l = parse(&text, &env).unwrap();
    let dobj = l.config.instances[0].digitalocean.as_ref().unwrap();
    assert_eq!(dobj.token.expose(), "DO_TOKEN-value");
    let r = l.config.render();
    assert!(
        r.contains("# token from the environment variable DO_TOKEN"),
        "{r}"
    );
    assert!(!r.contains("DO_TOKEN-value"));
}

#[test]
fn missing_token_and_bad_values() {
    let e = parse(&conf("        reserved_ip 203.0.113.10\n"), &no_env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "xvrrp.conf:8:5: digitalocean: no DigitalOcean API token: set 'token_file' (mode 0600), or the DO_TOKEN or DIGITALOCEAN_TOKEN environment variable"
    );
    let env = |_: &str| Some(TOKEN.to_string());
    let e = parse(
        &conf("        reserved_ip 203.0.113.300\n        api_url ftp://x\n        metadata_url http://\n        reconcile_interval 0\n        tokn_file /x\n"),
        &env,
    )
    .unwrap_err();
    let got: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        vec![
            "xvrrp.conf:9:21: reserved_ip: '203.0.113.300' is not a valid IPv4 address",
            "xvrrp.conf:10:17: api_url: 'ftp://x' is not an http:// or https:// URL",
            "xvrrp.conf:11:22: metadata_url: 'http://' is not a valid URL (missing or bad host)",
            "xvrrp.conf:12:28: reconcile_interval: '0' is not a whole number in 1..86400",
            "xvrrp.conf:13:9: tokn_file: unknown keyword 'tokn_file' in digitalocean; did you mean 'token_file'?",
            "xvrrp.conf:8:5: reserved_ip: digitalocean block has no 'reserved_ip' (required)",
        ]
    );
    for e in &e.errors {
        assert_no_secret(&e.to_string());
    }
    // A URL with credentials is refused without echoing them; a query string is never echoed.
    let e = parse(
        &conf("        reserved_ip 203.0.113.10\n        api_url https://user:s3cr3tpw@api.example:bad/\n        metadata_url http://h:0?key=s3cr3tpw\n"),
        &env,
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("s3cr3tpw"), "{text}");
    assert!(text.contains("credentials"), "{text}");
    assert!(text.contains("bad port '0'"), "{text}");
    let l = parse(
        &conf("        reserved_ip 203.0.113.10\n        api_url http://127.0.0.1:8080/\n        metadata_url http://[::1]:9000\n        reconcile_interval 5\n"),
        &env,
    )
    .unwrap();
    let dobj = l.config.instances[0].digitalocean.as_ref().unwrap();
    assert_eq!(dobj.api_url, "http://127.0.0.1:8080");
    assert_eq!(dobj.metadata_url, "http://[::1]:9000");
    assert_eq!(dobj.reconcile_interval, std::time::Duration::from_secs(5));
}

#[test]
fn auth_pass_never_in_errors() {
    let text = "vrrp_instance VI_1 {\n    interface eth1\n    virtual_router_id 33\n    version 3\n    authentication {\n        auth_type PASS\n        auth_pass hunter2pw extra\n    }\n}\n";
    let e = parse(text, &no_env).unwrap_err();
    assert_no_secret(&e.to_string());
    assert_no_secret(&format!("{e:?}"));
    assert_no_secret(&serde_json::to_string(&e).unwrap());
}

/// Issue 11 item 5: plain http to a host that is not a loopback address would send the token in
/// clear: refused at the api_url (file:line:column, keyword) unless the block says
/// `insecure_http`, which the printer keeps.
#[test]
fn plain_http_api_url_needs_insecure_http() {
    let env = |_: &str| Some(TOKEN.to_string());
    let e = parse(
        &conf(
            "        reserved_ip 203.0.113.10\n        api_url http://10.99.0.1:8080/?k=s3cr3tpw\n",
        ),
        &env,
    )
    .unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    let err = &e.errors[0];
    assert_eq!(
        (err.pos.line, err.pos.column, err.keyword.as_str()),
        (10, 17, "api_url")
    );
    assert_eq!(
        err.to_string(),
        "xvrrp.conf:10:17: api_url: 'http://10.99.0.1:8080/' is plain http to a host that is not a loopback address: the API token would travel in clear; use https://, or add 'insecure_http' to the digitalocean block (test setups only)"
    );
    assert_no_secret(&e.to_string());
    // Either order of the keywords; the flag is kept by the printer.
    for body in [
        "        reserved_ip 203.0.113.10\n        api_url http://10.99.0.1:8080\n        insecure_http\n",
        "        insecure_http\n        reserved_ip 203.0.113.10\n        api_url http://10.99.0.1:8080\n",
    ] {
        let l = parse(&conf(body), &env).unwrap();
        let d = l.config.instances[0].digitalocean.as_ref().unwrap();
        assert!(d.insecure_http);
        assert_eq!(d.api_url, "http://10.99.0.1:8080");
        let r = l.config.render();
        assert!(r.contains("        insecure_http\n"), "{r}");
        let again = parse(&l.config.render_with_secrets(), &env).unwrap();
        assert_eq!(again.config, l.config);
    }
    // https, loopback http and `insecure_http false` behave as expected.
    for (url, flag, ok) in [
        ("https://10.99.0.1:8443", "", true),
        ("http://127.0.0.1:8080", "", true),
        ("http://[::1]:8080", "", true),
        ("http://localhost:8080", "", true),
        (
            "http://10.99.0.1:8080",
            "        insecure_http false\n",
            false,
        ),
        (
            "http://10.99.0.1:8080",
            "        insecure_http true\n",
            true,
        ),
    ] {
        let body = format!("        reserved_ip 203.0.113.10\n        api_url {url}\n{flag}");
        let r = parse(&conf(&body), &env);
        assert_eq!(
            r.is_ok(),
            ok,
            "{url} {flag}: {:?}",
            r.err().map(|e| e.to_string())
        );
        if let Ok(l) = r {
            assert!(!l.config.render().contains("insecure_http") || flag.contains("true"));
        }
    }
    // A value that is not a boolean is an error of its own.
    let e = parse(
        &conf("        reserved_ip 203.0.113.10\n        insecure_http maybe\n"),
        &env,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("insecure_http: expected true or false, found 'maybe'"),
        "{e}"
    );
}

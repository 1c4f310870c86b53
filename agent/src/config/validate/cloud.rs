//! The `digitalocean { }` block of an instance: defaults, and the API token from `token_file`
//! (mode 0600) or the environment, never echoed in a message.

use std::path::Path;

use zeroize::Zeroizing;

use super::super::error::Diags;
use super::super::model::{
    DigitalOcean, Secret, TokenSource, DEFAULT_DO_API_URL, DEFAULT_DO_METADATA_URL,
    DEFAULT_DO_RECONCILE_INTERVAL,
};
use super::super::parse::{plain_http_to_remote, whole_secs, RawDo};
use super::EnvLookup;

/// Environment variables consulted for the DigitalOcean token, in order.
pub const TOKEN_ENV_VARS: [&str; 2] = ["DO_TOKEN", "DIGITALOCEAN_TOKEN"];

/// Resolves the `digitalocean { }` block, including the token. Never puts the token in a message.
pub(super) fn digitalocean(r: RawDo, d: &mut Diags, env: EnvLookup<'_>) -> Option<DigitalOcean> {
    let Some(reserved_ip) = r.reserved_ip else {
        d.error(
            &r.at,
            "reserved_ip",
            "digitalocean block has no 'reserved_ip' (required)",
        );
        return None;
    };
    // Plain http to anything but this host would send the token in clear: refused unless the
    // block says so explicitly (the labs' API double listens on a namespace address).
    let insecure_http = r.insecure_http.unwrap_or(false);
    if let Some((url, pos)) = &r.api_url {
        if !insecure_http && plain_http_to_remote(url) {
            d.error(
                pos,
                "api_url",
                format!(
                    "'{}' is plain http to a host that is not a loopback address: the API token \
                     would travel in clear; use https://, or add 'insecure_http' to the \
                     digitalocean block (test setups only)",
                    url.split(['?', '#']).next().unwrap_or(url)
                ),
            );
        }
    }
    let (token_source, token) = match &r.token_file {
        Some((path, pos)) => match read_token_file(path) {
            Ok(t) => (TokenSource::File(path.clone()), t),
            Err(msg) => {
                d.error(pos, "token_file", msg);
                return None;
            }
        },
        None => {
            // The lookup's copy is cleared when dropped. The process environment itself keeps
            // the variable: it cannot be changed safely once threads run (setenv is not
            // thread-safe); /proc/PID/environ is readable by root only, and core dumps are off.
            let found = TOKEN_ENV_VARS.iter().find_map(|v| {
                let value = Zeroizing::new(env(v)?);
                let t = value.trim();
                (!t.is_empty()).then(|| (v.to_string(), Secret::new(t)))
            });
            match found {
                Some((var, t)) => (TokenSource::Env(var), t),
                None => {
                    d.error(
                        &r.at,
                        "digitalocean",
                        "no DigitalOcean API token: set 'token_file' (mode 0600), or the DO_TOKEN or DIGITALOCEAN_TOKEN environment variable",
                    );
                    return None;
                }
            }
        }
    };
    no_core_dumps();
    Some(DigitalOcean {
        reserved_ip,
        token_file: r.token_file.map(|(p, _)| p),
        token_source,
        token,
        api_url: r
            .api_url
            .map_or_else(|| DEFAULT_DO_API_URL.to_string(), |(u, _)| u),
        metadata_url: r
            .metadata_url
            .map_or_else(|| DEFAULT_DO_METADATA_URL.to_string(), |(u, _)| u),
        reconcile_interval: r
            .reconcile_interval
            .map_or(DEFAULT_DO_RECONCILE_INTERVAL, whole_secs),
        insecure_http,
    })
}

/// Marks the process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`) once it holds an API token:
/// no core dump, and `/proc/PID/mem` and ptrace are root only. Kept until exit (the token is
/// held until then; `execve` of a notify script resets the flag for that program, whose memory
/// no longer holds the token). A failure is only logged: the token is still never printed.
fn no_core_dumps() {
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if r != 0 {
        tracing::warn!(
            "prctl(PR_SET_DUMPABLE, 0) failed: {}; a core dump could hold the API token",
            std::io::Error::last_os_error()
        );
    }
}

/// `prctl(PR_GET_DUMPABLE)`: 0 once a token was loaded.
#[cfg(test)]
fn dumpable() -> i32 {
    // SAFETY: PR_GET_DUMPABLE takes no pointer argument.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }
}

/// Reads a token file, refusing one that group or others may access.
pub(crate) fn read_token_file(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("token_file '{shown}' must be an absolute path"));
    }
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read token_file '{shown}': {e}"))?;
    if !meta.is_file() {
        return Err(format!("token_file '{shown}' is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "token_file '{shown}' is accessible by group or others (mode {mode:04o}); run 'chmod 600 {shown}'"
        ));
    }
    // Read into a buffer sized up front (no reallocation leaves a copy behind) and cleared on
    // drop; only the trimmed token is kept, in a `Secret` (itself cleared on drop).
    let bytes = read_zeroizing(path, meta.len())
        .map_err(|e| format!("cannot read token_file '{shown}': {e}"))?;
    let t = std::str::from_utf8(&bytes)
        .map_err(|_| format!("token_file '{shown}' is not UTF-8 text"))?
        .trim();
    if t.is_empty() {
        return Err(format!("token_file '{shown}' is empty"));
    }
    if t.contains(char::is_whitespace) {
        return Err(format!(
            "token_file '{shown}' must hold exactly one token (it contains blanks)"
        ));
    }
    Ok(Secret::new(t))
}

/// Reads at most `expected` + 1 bytes (a token file is small) into a buffer that is cleared on
/// drop and never reallocated.
fn read_zeroizing(path: &Path, expected: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    const MAX: u64 = 64 * 1024;
    let cap = usize::try_from(expected.min(MAX) + 1).unwrap_or(1);
    let mut buf = Zeroizing::new(vec![0u8; cap]);
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const CHILD: &str = "config::validate::cloud::tests::dumpable_child";

    fn load(with_token: bool) {
        let text = "vrrp_instance VI_1 {\n    interface eth1\n    virtual_router_id 33\n    digitalocean {\n        reserved_ip 203.0.113.10\n    }\n}\n";
        let env = move |v: &str| (with_token && v == "DO_TOKEN").then(|| "dop_v1_x".to_owned());
        let r = crate::config::parse_str_with_env("x.conf", text, Path::new("/"), &env);
        assert_eq!(r.is_ok(), with_token, "{r:?}");
    }

    /// Run by [`process_is_not_dumpable_once_it_holds_a_token`] in a child process of its own
    /// (the flag is per process; the other tests must not be affected). Prints the flag before
    /// and after loading a config without, then with a token.
    #[test]
    #[ignore = "run in a child process by process_is_not_dumpable_once_it_holds_a_token"]
    fn dumpable_child() {
        let before = dumpable();
        load(false);
        let without = dumpable();
        load(true);
        let after = dumpable();
        println!("XVRRP-DUMPABLE before={before} without-token={without} after={after}");
    }

    #[test]
    fn process_is_not_dumpable_once_it_holds_a_token() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                CHILD,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("XVRRP-DUMPABLE before=1 without-token=1 after=0"),
            "child output:\n{text}"
        );
    }
}

//! The `digitalocean { }` block of an instance: defaults, and the API token from `token_file`
//! (mode 0600) or the environment, never echoed in a message.

use std::path::Path;

use super::super::error::Diags;
use super::super::model::{
    DigitalOcean, Secret, TokenSource, DEFAULT_DO_API_URL, DEFAULT_DO_METADATA_URL,
    DEFAULT_DO_RECONCILE_INTERVAL,
};
use super::super::parse::{whole_secs, RawDo};
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
    let (token_source, token) = match &r.token_file {
        Some((path, pos)) => match read_token_file(path) {
            Ok(t) => (TokenSource::File(path.clone()), t),
            Err(msg) => {
                d.error(pos, "token_file", msg);
                return None;
            }
        },
        None => {
            let found = TOKEN_ENV_VARS.iter().find_map(|v| {
                env(v)
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .map(|t| (v.to_string(), t))
            });
            match found {
                Some((var, t)) => (TokenSource::Env(var), Secret::new(t)),
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
    })
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
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read token_file '{shown}': {e}"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("token_file '{shown}' is not UTF-8 text"))?;
    let t = text.trim();
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

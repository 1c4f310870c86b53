//! keepalived.conf: lexer, parser, typed model, semantic validation and the effective-config
//! printer.
//!
//! Existing keepalived 2.2 configurations (VRRP side) load unchanged. Entry points:
//! - [`load`] reads a file (and its includes), [`parse_str`] parses text (tests, `-`),
//! - both return a [`Loaded`] (the effective [`Config`] with every default filled in, plus
//!   warnings) or [`ConfigErrors`] (every error found, each with `file:line:column`),
//! - [`Config::render`] prints the effective configuration in keepalived syntax (secrets
//!   redacted), and `Config` serializes to JSON with serde.
//!
//! Keywords fall in three groups (see [`keywords`]): implemented; accepted but ignored (with a
//! warning); and keepalived features xvrrp does not implement, which are errors saying
//! "'X' is not supported by xvrrp". Unknown keywords are errors with a "did you mean" suggestion.
//!
//! Extension blocks (xvrrp's own): `digitalocean { }` inside `vrrp_instance`,
//! `vrrp_track_listen NAME { }` at the top level, and `track_listen { }` inside `vrrp_instance`.
//!
//! Secrets (`auth_pass`, the DigitalOcean token) are held in [`Secret`], whose `Debug`,
//! `Display` and `Serialize` print `<redacted>`; no error message ever contains them.

mod error;
pub mod keywords;
mod lexer;
mod model;
mod parse;
mod render;
mod tree;
mod validate;

use std::path::Path;

pub use error::{ConfigErrors, Diagnostic, Pos};
pub use model::*;
pub(crate) use validate::read_token_file;
pub use validate::{EnvLookup, TOKEN_ENV_VARS};

use error::Diags;
use parse::Parser;
use serde::Serialize;
use tree::TreeBuilder;

/// A successfully loaded configuration and the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Warnings (ignored keywords, `auth_pass` longer than 8 characters, ...). They do not fail
    /// the load; `xvrrp check` prints them.
    pub warnings: Vec<Diagnostic>,
}

/// An `ADDR:PORT` to serve metrics on (`metrics_address`, `xvrrp run --metrics`): an IPv4
/// address or a bracketed IPv6 address, and a port other than 0 (`127.0.0.1:9650`,
/// `[::1]:9650`, `0.0.0.0:9650` for every IPv4 address). Host names are refused: the agent
/// binds before anything else and must not depend on name resolution.
pub fn parse_metrics_address(text: &str) -> Result<std::net::SocketAddr, String> {
    match text.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() == 0 => Err(format!("'{text}': the port must not be 0")),
        Ok(a) => Ok(a),
        Err(_) => Err(format!(
            "'{text}' is not ADDR:PORT (e.g. 127.0.0.1:9650, [::1]:9650 or 0.0.0.0:9650)"
        )),
    }
}

fn real_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the configuration file at `path` (and everything it includes), reading the
/// DigitalOcean token from the process environment when a `digitalocean` block needs it.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    load_with_env(path, &real_env)
}

/// Like [`load`], with an explicit environment lookup (for tests and embedding).
pub fn load_with_env(path: &Path, env: EnvLookup<'_>) -> Result<Loaded, ConfigErrors> {
    let name = path.to_string_lossy().into_owned();
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            let file: std::sync::Arc<str> = std::sync::Arc::from(name.as_str());
            return Err(ConfigErrors {
                errors: vec![Diagnostic::new(
                    &Pos::new(&file, 1, 1),
                    "include",
                    format!("cannot read configuration file: {e}"),
                )],
                warnings: Vec::new(),
            });
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let canonical = std::fs::canonicalize(path).ok();
    run(&name, &text, &base, canonical, env)
}

/// Parses configuration `text` named `name` (used in positions); relative `include` patterns
/// resolve against `base_dir`. The DigitalOcean token comes from the process environment.
pub fn parse_str(name: &str, text: &str, base_dir: &Path) -> Result<Loaded, ConfigErrors> {
    parse_str_with_env(name, text, base_dir, &real_env)
}

/// Like [`parse_str`], with an explicit environment lookup.
pub fn parse_str_with_env(
    name: &str,
    text: &str,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Loaded, ConfigErrors> {
    run(name, text, base_dir, None, env)
}

fn run(
    name: &str,
    text: &str,
    base: &Path,
    canonical: Option<std::path::PathBuf>,
    env: EnvLookup<'_>,
) -> Result<Loaded, ConfigErrors> {
    let mut d = Diags::default();
    let stmts = TreeBuilder::new(&mut d).parse_file(name, text, base, canonical);
    let file: std::sync::Arc<str> = std::sync::Arc::from(name);
    let raw = Parser {
        d: &mut d,
        block_at: Pos::new(&file, 1, 1),
    }
    .top(&stmts);
    let config = validate::finish(raw, &mut d, env);
    if d.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: d.warnings,
        })
    } else {
        Err(ConfigErrors {
            errors: d.errors,
            warnings: d.warnings,
        })
    }
}

impl Config {
    /// The effective configuration in keepalived syntax, every default written out and secrets
    /// shown as `<redacted>`. This is what `xvrrp check` prints.
    pub fn render(&self) -> String {
        render::render(self, false)
    }

    /// Like [`Config::render`] but with the real `auth_pass` values, so the output loads back
    /// to an identical model. For writing configuration files; never print or log it. (The
    /// DigitalOcean token is never written: only its `token_file`.)
    pub fn render_with_secrets(&self) -> String {
        render::render(self, true)
    }

    /// The configuration as pretty JSON (secrets redacted), for `xvrrp check --json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

//! xvrrp's `digitalocean { }` block inside `vrrp_instance`, and the URL check for its
//! `api_url` / `metadata_url`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::super::error::Pos;
use super::super::keywords as kw;
use super::super::tree::Stmt;
use super::raw::RawDo;
use super::{put, Parser};

impl Parser<'_> {
    pub(super) fn digitalocean(&mut self, at: Pos, body: &[Stmt]) -> RawDo {
        let mut v = RawDo {
            at,
            reserved_ip: None,
            token_file: None,
            api_url: None,
            metadata_url: None,
            reconcile_interval: None,
            insecure_http: None,
        };
        let mut seen = HashMap::new();
        for s in body {
            self.dup(&mut seen, s);
            match s.name() {
                "reserved_ip" => {
                    if let Some(t) = self.one(s) {
                        match t.text.parse::<Ipv4Addr>() {
                            Ok(a) => v.reserved_ip = Some(a),
                            Err(_) => self.d.error(
                                &t.pos,
                                "reserved_ip",
                                format!("'{}' is not a valid IPv4 address", t.text),
                            ),
                        }
                    }
                }
                "token_file" => {
                    if let Some(t) = self.one(s) {
                        v.token_file = Some((PathBuf::from(&t.text), t.pos.clone()));
                    }
                }
                "api_url" => {
                    if let Some(t) = self.one(s) {
                        if let Err(e) = check_url(&t.text) {
                            self.d.error(&t.pos, "api_url", e);
                        } else {
                            v.api_url =
                                Some((t.text.trim_end_matches('/').to_string(), t.pos.clone()));
                        }
                    }
                }
                "metadata_url" => {
                    if let Some(t) = self.one(s) {
                        if let Err(e) = check_url(&t.text) {
                            self.d.error(&t.pos, "metadata_url", e);
                        } else {
                            v.metadata_url =
                                Some((t.text.trim_end_matches('/').to_string(), t.pos.clone()));
                        }
                    }
                }
                "reconcile_interval" => put(&mut v.reconcile_interval, self.u32v(s, 1, 86_400)),
                "insecure_http" => put(&mut v.insecure_http, self.flag(s)),
                _ => self.other(s, "digitalocean", kw::DIGITALOCEAN, &[], &[]),
            }
        }
        v
    }
}

/// Whether `url` is plain `http://` to a host that is not a loopback address (127.0.0.0/8,
/// `::1`, `localhost`): the API token would cross a network in clear. `url` has passed
/// [`check_url`]. Names other than `localhost` count as remote even if they resolve to a
/// loopback address: the check is about what the file says, not what DNS answers today.
pub(crate) fn plain_http_to_remote(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|a| match a {
            std::net::IpAddr::V4(a) => a.is_loopback(),
            std::net::IpAddr::V6(a) => a.is_loopback(),
        });
    !loopback
}

/// Checks an `http://` or `https://` URL with a host and no blanks.
pub(crate) fn check_url(full: &str) -> Result<(), String> {
    // Error messages never echo what could be a credential: a userinfo part (`user:secret@`) is
    // refused outright and the query string is left out of every message.
    let u = full.split(['?', '#']).next().unwrap_or(full);
    let authority_of = |r: &str| r.split('/').next().unwrap_or("").to_owned();
    let after_scheme = full.split_once("://").map(|(_, r)| r).unwrap_or(full);
    if authority_of(after_scheme.split(['?', '#']).next().unwrap_or("")).contains('@') {
        return Err(
            "URLs with credentials (user:password@host) are not accepted; the API token comes from \
             token_file or the environment"
                .to_owned(),
        );
    }
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("'{u}' is not an http:// or https:// URL"))?;
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{u}' is not a valid URL (blanks or control characters)"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(format!("'{u}' is not a valid URL (bad host)")),
            },
            None => return Err(format!("'{u}' is not a valid URL (bad host)")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['@', '[', ']']) {
        return Err(format!("'{u}' is not a valid URL (missing or bad host)"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(format!("'{u}' is not a valid URL (bad port '{p}')"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::plain_http_to_remote as remote;

    #[test]
    fn plain_http_is_remote_unless_loopback() {
        for url in [
            "http://10.99.0.1:8080",
            "http://api.example",
            "http://[2001:db8::1]:80/v2",
            "http://128.0.0.1",
            "http://localhost.example",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(remote(url), "{url}");
        }
        for url in [
            "https://api.digitalocean.com",
            "https://10.99.0.1:8443",
            "http://127.0.0.1:8080",
            "http://127.45.6.7",
            "http://[::1]:9000/",
            "http://localhost",
            "http://LocalHost:81/x",
        ] {
            assert!(!remote(url), "{url}");
        }
    }
}

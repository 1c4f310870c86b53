//! Running external commands (notify and track scripts) the way keepalived does: the command
//! line is split into words (single or double quotes group, backslash escapes outside single
//! quotes), the program is found on
//! `PATH` when not absolute, it runs without a shell (a script without a `#!` line is run with
//! `/bin/sh`, as keepalived and `execvp` do), in its own process group, and is killed
//! (the whole group) when its timeout expires.

use std::{process::Stdio, time::Duration};

use tokio::process::Command;

/// Splits a keepalived command line into words. Returns `None` for an empty line or an
/// unterminated quote.
pub(crate) fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', None | Some('"')) => {
                cur.push(chars.next()?);
                in_word = true;
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                in_word = true;
            }
            (c, Some(q)) if c == q => quote = None,
            (c, None) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (c, _) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(cur);
    }
    (!words.is_empty()).then_some(words)
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exited with this status code.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signalled(i32),
    /// Still running at the timeout: the process group was killed.
    TimedOut,
    /// Could not be started.
    SpawnFailed(String),
}

impl Outcome {
    /// Exit status 0.
    pub(crate) fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(c) => write!(f, "exit status {c}"),
            Outcome::Signalled(s) => write!(f, "killed by signal {s}"),
            Outcome::TimedOut => f.write_str("timed out and was killed"),
            Outcome::SpawnFailed(e) => write!(f, "could not be started: {e}"),
        }
    }
}

/// Runs `words` (program + arguments, plus `extra` arguments) with a timeout.
/// Output goes to /dev/null: scripts talk through their exit status, as with keepalived.
pub(crate) async fn run(
    words: &[String],
    extra: &[String],
    timeout: Duration,
    uid_gid: Option<(u32, u32)>,
) -> Outcome {
    let Some((prog, args)) = words.split_first() else {
        return Outcome::SpawnFailed("empty command".to_owned());
    };
    let command = |shell: bool| {
        let mut cmd = if shell {
            let mut c = Command::new("/bin/sh");
            c.arg(prog);
            c
        } else {
            Command::new(prog)
        };
        cmd.args(args)
            .args(extra)
            // The DigitalOcean token may be in the agent's environment (its fallback source);
            // scripts, possibly running as an unprivileged user, must not inherit it.
            .env_remove(crate::config::TOKEN_ENV_VARS[0])
            .env_remove(crate::config::TOKEN_ENV_VARS[1])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if let Some((uid, gid)) = uid_gid {
            cmd.uid(uid).gid(gid);
        }
        cmd
    };
    // A script without a `#!` line (the tutorial's master.sh) fails with ENOEXEC; like
    // keepalived (and execvp), run it with /bin/sh then.
    let spawned = match command(false).spawn() {
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => command(true).spawn(),
        other => other,
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(e.to_string()),
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Outcome::Exited(c),
                (None, Some(s)) => Outcome::Signalled(s),
                (None, None) => Outcome::Exited(-1),
            }
        }
        Ok(Err(e)) => Outcome::SpawnFailed(e.to_string()),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the process group we created for the child.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn splits_like_keepalived() {
        assert_eq!(split_words("pidof nginx").unwrap(), ["pidof", "nginx"]);
        assert_eq!(split_words("  /a/b.sh   x  ").unwrap(), ["/a/b.sh", "x"]);
        assert_eq!(
            split_words(r#"/s "two words" a\ b"#).unwrap(),
            ["/s", "two words", "a b"]
        );
        assert_eq!(split_words(""), None);
        assert_eq!(split_words("\"open"), None);
        assert_eq!(
            split_words("sh -c 'a \"b\" c'").unwrap(),
            ["sh", "-c", "a \"b\" c"]
        );
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn scripts_do_not_inherit_the_digitalocean_token() {
        // std serialises environment access (set_var and Command's spawn share a lock).
        std::env::set_var("DO_TOKEN", "dop_v1_secret_for_test");
        std::env::set_var("DIGITALOCEAN_TOKEN", "dop_v1_secret_for_test");
        let w = split_words(r#"sh -c 'test -z "$DO_TOKEN$DIGITALOCEAN_TOKEN"'"#).unwrap();
        let out = rt().block_on(run(&w, &[], Duration::from_secs(5), None));
        std::env::remove_var("DO_TOKEN");
        std::env::remove_var("DIGITALOCEAN_TOKEN");
        assert!(out.success(), "the script saw a token: {out}");
    }

    #[test]
    fn reports_exit_status_and_kills_on_timeout() {
        rt().block_on(async {
            let w = |s: &str| split_words(s).unwrap();
            assert!(run(&w("true"), &[], Duration::from_secs(5), None)
                .await
                .success());
            assert_eq!(
                run(&w("sh -c 'exit 3'"), &[], Duration::from_secs(5), None).await,
                Outcome::Exited(3)
            );
            assert_eq!(
                run(&w("sh -c \"exit 3\""), &[], Duration::from_secs(5), None).await,
                Outcome::Exited(3)
            );
            let t = std::time::Instant::now();
            // The child of the shell is in the same group and dies with it.
            let out = run(
                &w("sh -c \"sleep 30; true\""),
                &[],
                Duration::from_millis(200),
                None,
            )
            .await;
            assert_eq!(out, Outcome::TimedOut);
            assert!(t.elapsed() < Duration::from_secs(5));
            assert!(matches!(
                run(&w("/nonexistent/prog"), &[], Duration::from_secs(1), None).await,
                Outcome::SpawnFailed(_)
            ));
        });
    }

    #[test]
    fn script_without_shebang_runs_with_sh() {
        let dir = std::env::temp_dir().join(format!("xvrrp-noshebang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("master.sh");
        let out = dir.join("out");
        // Like the tutorial's master.sh: no `#!` line, bash-free shell syntax.
        std::fs::write(
            &script,
            format!(
                "IP='x'\nif [ \"$1\" = \"arg\" ]; then echo ran > {}; fi\nexit 4\n",
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let words = vec![script.display().to_string()];
        let got = rt().block_on(run(
            &words,
            &["arg".to_owned()],
            Duration::from_secs(5),
            None,
        ));
        assert_eq!(got, Outcome::Exited(4));
        assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "ran");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

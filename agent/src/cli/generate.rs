//! `xvrrp generate`: shell completions and man pages, made from the command-line definition so
//! they always match the binary. For packagers: `cargo xtask dist` puts them in the `.deb`.
//! Hidden from `--help` (people get the files from the package).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// What to generate.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Print the completion script for SHELL on stdout (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages into DIR: xvrrp.8 and one per subcommand (xvrrp-run.8, ...).
    Man {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
}

/// `xvrrp version (commit C, eBPF programs embedded (N bytes))`, the text of `--version`. The
/// build refuses to finish without the eBPF object (see `build.rs`), so a built binary always
/// embeds it; the size tells two builds apart.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("XVRRP_GIT_COMMIT"),
    ", eBPF programs embedded, ",
    env!("XVRRP_EBPF_BYTES"),
    " bytes)"
);

/// Runs `xvrrp generate WHAT`.
pub fn run(what: What) -> ExitCode {
    let res = match what {
        What::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "xvrrp", &mut out);
            out.flush().map_err(|e| format!("stdout: {e}"))
        }
        What::Man { dir } => man_pages(&dir),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvrrp: {e}");
            ExitCode::from(3)
        }
    }
}

/// Section 8 (system administration), as keepalived(8): xvrrp.8 and xvrrp-SUB.8 for every
/// visible subcommand.
fn man_pages(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![cmd.clone()];
    pages.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    for page in pages {
        let man = clap_mangen::Man::new(page).section("8").manual("xvrrp");
        let path = man
            .generate_to(dir)
            .map_err(|e| format!("cannot write a man page in {}: {e}", dir.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_commit_and_ebpf() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains("commit "));
        assert!(VERSION.contains("eBPF programs embedded"));
    }

    #[test]
    fn man_pages_for_every_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("xvrrp-man-{}", std::process::id()));
        man_pages(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let _ = std::fs::remove_dir_all(&dir);
        for want in ["xvrrp.8", "xvrrp-run.8", "xvrrp-status.8", "xvrrp-check.8"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        // Hidden subcommands (xdp-probe, generate) get no page.
        assert!(!names
            .iter()
            .any(|n| n.contains("generate") || n.contains("probe")));
    }
}

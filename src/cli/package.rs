//! `cloudnap package-files DIR` (hidden): the man pages and the shell
//! completions, generated from the command line's own clap definitions so
//! they never drift from it. build/deb.sh puts them in the package.

use anyhow::{Context, Result};
use clap_complete::Shell;
use std::path::Path;

/// Writes into `dir` (creating it) the bash (`cloudnap.bash`), zsh
/// (`_cloudnap`) and fish (`cloudnap.fish`) completions of `cmd`, its man
/// page `cloudnap.1` and one per visible subcommand (`cloudnap-hold.1`,
/// `cloudnap-team-init.1`, ...), which the main page refers to.
pub(crate) fn write_package_files(mut cmd: clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = cmd.get_name().to_string();
    // Before the completions build it (adding `help` subcommands, which
    // would get pages of their own).
    let pages = cmd.clone();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, dir)
            .with_context(|| format!("writing the {shell} completion into {}", dir.display()))?;
    }
    clap_mangen::generate_to(pages, dir)
        .with_context(|| format!("writing the man pages into {}", dir.display()))
}

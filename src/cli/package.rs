//! `cloudnap package-files DIR` (hidden): the man page and the shell
//! completions, generated from the command line's own clap definitions so
//! they never drift from it. build/deb.sh puts them in the package.

use anyhow::{Context, Result};
use clap_complete::Shell;
use std::path::Path;

/// Writes `cloudnap.1` and the bash (`cloudnap.bash`), zsh (`_cloudnap`) and
/// fish (`cloudnap.fish`) completions of `cmd` into `dir`, creating it.
pub(crate) fn write_package_files(mut cmd: clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, &name, dir)
            .with_context(|| format!("writing the {shell} completion into {}", dir.display()))?;
        println!("{}", path.display());
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

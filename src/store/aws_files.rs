//! Saving a named profile to the standard AWS shared files, so the aws CLI
//! and every SDK can use it too. Other profiles are kept as they are.

use crate::core::config::ini::upsert_section;
use crate::store::atomic::write_atomic_private;
use std::io;
use std::path::{Path, PathBuf};

/// What the credential dialog saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For temporary (`ASIA…`) keys.
    pub session_token: Option<String>,
    pub region: String,
}

/// `~/.aws/credentials` and `~/.aws/config`, or where `AWS_SHARED_CREDENTIALS_FILE`
/// and `AWS_CONFIG_FILE` point.
pub fn files() -> io::Result<(PathBuf, PathBuf)> {
    let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
    let home = || {
        directories::BaseDirs::new()
            .map(|d| d.home_dir().join(".aws"))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no home directory"))
    };
    let credentials = match from_env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => p,
        None => home()?.join("credentials"),
    };
    let config = match from_env("AWS_CONFIG_FILE") {
        Some(p) => p,
        None => home()?.join("config"),
    };
    Ok((credentials, config))
}

/// Writes `profile` into the `credentials` file (keys) and the `config` file
/// (region), both mode 0600.
pub fn save(profile: &Profile, credentials: &Path, config: &Path) -> io::Result<()> {
    let mut keys = vec![
        ("aws_access_key_id", profile.access_key_id.as_str()),
        ("aws_secret_access_key", profile.secret_access_key.as_str()),
    ];
    if let Some(token) = &profile.session_token {
        keys.push(("aws_session_token", token.as_str()));
    }
    update(credentials, &profile.name, &keys)?;
    let header = if profile.name == "default" {
        "default".to_string()
    } else {
        format!("profile {}", profile.name)
    };
    update(config, &header, &[("region", profile.region.as_str())])
}

fn update(path: &Path, header: &str, pairs: &[(&str, &str)]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    write_atomic_private(path, upsert_section(&text, header, pairs).as_bytes())
}

//! Where cloudnap's files live, and reading `settings.json` and `services.yaml`.

use crate::core::config::registry::{Registry, RegistryError};
use crate::core::config::settings::{Settings, SettingsError, DEFAULT_SETTINGS_JSON};
use crate::store::atomic::{write_atomic, write_atomic_private};
use std::io;
use std::path::{Path, PathBuf};

/// The default `services.yaml` written on first run.
pub const DEFAULT_SERVICES_YAML: &str = include_str!("../../services.yaml");

/// Errors loading configuration files.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error("no home directory found: pass --config-dir")]
    NoHome,
}

/// The files cloudnap reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub settings: PathBuf,
    pub services: PathBuf,
    pub state: PathBuf,
    pub log_dir: PathBuf,
}

impl Paths {
    /// Everything in one directory (`--config-dir`).
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            settings: dir.join("settings.json"),
            services: dir.join("services.yaml"),
            state: dir.join("state.json"),
            log_dir: dir.join("logs"),
        }
    }

    /// A number that tells this install (its config directory) apart from
    /// others of the same user on the same host: the same on every run.
    pub fn install_id(&self) -> u64 {
        let dir = self
            .settings
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .unwrap_or_else(|| self.settings.clone());
        crate::core::fnv1a(dir.to_string_lossy().bytes())
    }

    /// The platform's locations: config in the config dir (XDG_CONFIG_HOME on
    /// Linux), state and logs in the local data dir.
    pub fn platform() -> Result<Paths, ConfigError> {
        let dirs = directories::ProjectDirs::from("", "", "cloudnap").ok_or(ConfigError::NoHome)?;
        let data = dirs.state_dir().unwrap_or(dirs.data_local_dir());
        Ok(Paths {
            settings: dirs.config_dir().join("settings.json"),
            services: dirs.config_dir().join("services.yaml"),
            state: data.join("state.json"),
            log_dir: data.join("logs"),
        })
    }

    /// Writes the commented default `settings.json` and `services.yaml` where
    /// they are missing. Returns the files created.
    pub fn create_defaults(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let mut created = Vec::new();
        for (path, body) in [
            (&self.settings, DEFAULT_SETTINGS_JSON),
            (&self.services, DEFAULT_SERVICES_YAML),
        ] {
            if path.exists() {
                continue;
            }
            let io = |source| ConfigError::Io {
                path: path.clone(),
                source,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            // settings.json may come to hold the UDP token: owner only.
            if path == &self.settings {
                write_atomic_private(path, body.as_bytes()).map_err(io)?;
            } else {
                write_atomic(path, body.as_bytes()).map_err(io)?;
            }
            created.push(path.clone());
        }
        Ok(created)
    }

    /// Reads and validates `settings.json`; returns warnings alongside.
    pub fn load_settings(&self) -> Result<(Settings, Vec<String>), ConfigError> {
        load_settings_file(&self.settings)
    }

    /// Reads and validates `services.yaml`.
    pub fn load_registry(&self) -> Result<Registry, ConfigError> {
        Ok(Registry::parse(&read(&self.services)?)?)
    }
}

/// Reads and validates the settings file at `path`; also returns warnings,
/// among them one when the file holds a token that other users can read.
pub fn load_settings_file(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let (settings, mut warnings) = Settings::parse(&read(path)?)?;
    if settings.udp.token.is_some() {
        warnings.extend(readable_by_others(path));
    }
    Ok((settings, warnings))
}

/// A warning when `path` can be read by users other than its owner.
fn readable_by_others(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then(|| {
            format!(
                "{} holds udp_server.token and other users can read it (mode {mode:o}): chmod 600 {}",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path; // file ACLs are not checked on this platform
        None
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn settings_are_created_private_and_a_readable_token_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        paths.create_defaults().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.settings), 0o600);
        std::fs::write(
            &paths.settings,
            r#"{"udp_server": {"token": "s3cr3t-t0ken"}}"#,
        )
        .unwrap();
        assert!(paths.load_settings().unwrap().1.is_empty());
        std::fs::set_permissions(&paths.settings, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warnings = paths.load_settings().unwrap().1;
        assert!(
            warnings[0].contains("other users can read it (mode 644)"),
            "{warnings:?}"
        );
        assert!(!warnings[0].contains("s3cr3t-t0ken"));
    }

    #[test]
    fn defaults_are_written_once_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(&dir.path().join("cfg"));
        assert_eq!(paths.create_defaults().unwrap().len(), 2);
        assert!(paths.create_defaults().unwrap().is_empty());
        assert_eq!(paths.load_settings().unwrap().0, Settings::default());
        assert!(paths.load_registry().unwrap().entries.is_empty());
    }
}

//! Where cloudnap's files live, and reading `settings.json` and `services.yaml`.

use crate::core::registry::{Registry, RegistryError};
use crate::core::settings::{Settings, SettingsError, DEFAULT_SETTINGS_JSON};
use crate::store::atomic::write_atomic;
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
            write_atomic(path, body.as_bytes()).map_err(io)?;
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

/// Reads and validates the settings file at `path`; also returns warnings.
pub fn load_settings_file(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    Ok(Settings::parse(&read(path)?)?)
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

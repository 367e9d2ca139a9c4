//! The sleep records (state.json): what cloudnap put to sleep and at what capacity.
//! Written atomically before each batch of mutating calls and after it.

use crate::core::model::resource::ResourceId;
use crate::core::policy::decide::SleepRecord;
use crate::store::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Sleep records keyed by resource.
pub type Records = BTreeMap<ResourceId, SleepRecord>;

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    sleeping: Vec<SleepRecord>,
}

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("sleep records {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("sleep records {path} are corrupt ({message}); it was kept as {backup}")]
    Corrupt {
        path: PathBuf,
        backup: PathBuf,
        message: String,
    },
}

/// The state file on disk.
#[derive(Debug, Clone)]
pub struct RecordsFile {
    path: PathBuf,
}

impl RecordsFile {
    /// A state file at `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RecordsFile { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the records; a missing file means none. A corrupt file is moved
    /// aside (never silently overwritten) and reported; AWS tags still
    /// identify what is asleep.
    pub fn load(&self) -> Result<Records, RecordsError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Records::new()),
            Err(source) => {
                return Err(RecordsError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        match serde_json::from_slice::<FileFormat>(&bytes) {
            Ok(f) => Ok(f
                .sleeping
                .into_iter()
                .map(|r| (r.resource.clone(), r))
                .collect()),
            Err(e) => {
                let backup = self.path.with_extension("json.corrupt");
                let _ = std::fs::rename(&self.path, &backup);
                Err(RecordsError::Corrupt {
                    path: self.path.clone(),
                    backup,
                    message: e.to_string(),
                })
            }
        }
    }

    /// Atomically replaces the file with `records`.
    pub fn save(&self, records: &Records) -> Result<(), RecordsError> {
        let body = FileFormat {
            version: 1,
            sleeping: records.values().cloned().collect(),
        };
        let json = serde_json::to_vec_pretty(&body).expect("records serialize");
        write_atomic(&self.path, &json).map_err(|source| RecordsError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Capacity;
    use crate::core::model::resource::{Kind, Scaling};
    use crate::core::policy::decide::Phase;

    #[test]
    fn round_trips_and_handles_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = RecordsFile::new(dir.path().join("state.json"));
        assert!(f.load().unwrap().is_empty());
        let id = ResourceId::new(Kind::Eks, ["c", "n"], "us-east-1");
        let mut r = Records::new();
        r.insert(
            id.clone(),
            SleepRecord {
                resource: id.clone(),
                profile: None,
                saved: Capacity::of(
                    Kind::Eks,
                    Scaling {
                        min: 1,
                        desired: 2,
                        max: 4,
                    },
                ),
                phase: Phase::Asleep,
                since: 7,
            },
        );
        f.save(&r).unwrap();
        assert_eq!(f.load().unwrap(), r);

        std::fs::write(f.path(), b"{not json").unwrap();
        assert!(matches!(f.load(), Err(RecordsError::Corrupt { .. })));
        assert!(dir.path().join("state.json.corrupt").exists());
        assert!(f.load().unwrap().is_empty());
    }
}

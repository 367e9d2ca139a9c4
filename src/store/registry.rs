//! `services.yaml` on disk: read fresh on every use (so hand edits are seen),
//! the last valid registry kept when an edit is invalid, and registration
//! edits made one writer at a time, atomically, keeping comments.

use crate::core::config::registry::{Entry, Registry};
use crate::core::config::registry_edit::{insert_entry, remove_entry, render};
use crate::core::model::resource::ResourceId;
use crate::core::policy::order::WakePolicy;
use crate::store::atomic::write_atomic;
use crate::store::config::ConfigError;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a registration change was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0} is already registered")]
    Duplicate(ResourceId),
    #[error("{0} is not registered")]
    NotRegistered(ResourceId),
    #[error("services.yaml is invalid, fix it first: {0}")]
    Invalid(ConfigError),
    #[error("writing services.yaml: {0}")]
    Io(std::io::Error),
    /// The edit would break an `after:` (it names what is unregistered, or
    /// becomes ambiguous): refused, the file unchanged.
    #[error("refused: {}", .0.join("; "))]
    Order(Vec<String>),
}

/// The registry file.
pub struct RegistryFile {
    path: PathBuf,
    /// One writer at a time; also guards the last good registry.
    last_good: Mutex<Option<Registry>>,
}

impl RegistryFile {
    /// The registry at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RegistryFile {
            path: path.into(),
            last_good: Mutex::new(None),
        }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<(String, Registry), ConfigError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Io {
            path: self.path.clone(),
            source,
        })?;
        let registry = Registry::parse(&text)?;
        Ok((text, registry))
    }

    /// The registry as the file says now; if the file is invalid, the last
    /// valid registry and the error (the file itself is never rewritten).
    pub fn current(&self) -> (Registry, Option<ConfigError>) {
        let mut last = self.last_good.lock().expect("registry lock");
        match self.read() {
            Ok((_, r)) => {
                *last = Some(r.clone());
                (r, None)
            }
            Err(e) => (last.clone().unwrap_or_default(), Some(e)),
        }
    }

    /// How many entries the last valid registry had (no I/O).
    pub fn cached_len(&self) -> usize {
        self.last_good
            .lock()
            .expect("registry lock")
            .as_ref()
            .map_or(0, |r| r.entries.len())
    }

    /// The entries of the last valid registry (no I/O).
    pub fn cached_entries(&self) -> Vec<Entry> {
        let last = self.last_good.lock().expect("registry lock");
        last.iter().flat_map(|r| r.entries.clone()).collect()
    }

    /// The entries of the last valid registry whose `wake:` is not `auto`,
    /// with it (no I/O): what STATUS marks among what is asleep.
    pub fn cached_wake_policies(&self) -> Vec<(ResourceId, WakePolicy)> {
        let last = self.last_good.lock().expect("registry lock");
        (last.iter().flat_map(|r| &r.entries))
            .filter(|e| e.wake != WakePolicy::Auto)
            .map(|e| (e.id.clone(), e.wake))
            .collect()
    }

    /// Adds `entry`; refuses duplicates. Returns the new registry.
    pub fn register(&self, entry: Entry) -> Result<Registry, EditError> {
        self.edit(|text, registry| {
            if registry.get(&entry.id).is_some() {
                return Err(EditError::Duplicate(entry.id.clone()));
            }
            let mut expected = registry.clone();
            expected.entries.push(entry.clone());
            Ok((insert_entry(text, &entry), expected))
        })
    }

    /// Removes the entry for `id`. Returns the new registry.
    pub fn unregister(&self, id: &ResourceId) -> Result<Registry, EditError> {
        self.edit(|text, registry| {
            if registry.get(id).is_none() {
                return Err(EditError::NotRegistered(id.clone()));
            }
            let mut expected = registry.clone();
            expected.entries.retain(|e| &e.id != id);
            Ok((remove_entry(text, id), expected))
        })
    }

    /// Reads the file fresh, applies `change` (which returns the edited text,
    /// if it could edit in place, and the registry expected afterwards),
    /// checks the result, and writes it atomically.
    fn edit(
        &self,
        change: impl FnOnce(&str, &Registry) -> Result<(Option<String>, Registry), EditError>,
    ) -> Result<Registry, EditError> {
        let mut last = self.last_good.lock().expect("registry lock");
        let (text, registry) = match self.read() {
            Ok(read) => read,
            Err(ConfigError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                (String::new(), Registry::default())
            }
            Err(e) => return Err(EditError::Invalid(e)),
        };
        let (edited, expected) = change(&text, &registry)?;
        let broken = crate::core::config::registry::check_order(&expected.entries);
        if !broken.is_empty() {
            return Err(EditError::Order(broken));
        }
        let same = |t: &str| {
            Registry::parse(t).is_ok_and(|r| {
                let mut a = r.entries;
                let mut b = expected.entries.clone();
                a.sort_by(|x, y| x.id.cmp(&y.id));
                b.sort_by(|x, y| x.id.cmp(&y.id));
                a == b
            })
        };
        let new_text = match edited.filter(|t| same(t)) {
            Some(t) => t,
            None => render(&expected),
        };
        write_atomic(&self.path, new_text.as_bytes()).map_err(EditError::Io)?;
        *last = Some(expected.clone());
        Ok(expected)
    }
}

/// An entry with only an id and description.
pub fn entry(id: ResourceId, description: String) -> Entry {
    Entry {
        description,
        ..Entry::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;

    fn id(n: u32) -> ResourceId {
        ResourceId::new(Kind::Ec2, [format!("i-{n}")], "us-east-1")
    }

    #[test]
    fn register_unregister_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let f = RegistryFile::new(dir.path().join("services.yaml"));
        std::fs::write(f.path(), "# keep me\nec2_instances: []\n").unwrap();
        f.register(entry(id(1), "one".into())).unwrap();
        f.register(entry(id(2), String::new())).unwrap();
        assert!(matches!(
            f.register(entry(id(1), String::new())),
            Err(EditError::Duplicate(_))
        ));
        f.unregister(&id(1)).unwrap();
        assert!(matches!(
            f.unregister(&id(1)),
            Err(EditError::NotRegistered(_))
        ));
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(text.starts_with("# keep me\n"), "{text}");
        assert_eq!(f.current().0.entries, vec![entry(id(2), String::new())]);
    }

    #[test]
    fn an_edit_that_would_break_an_after_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = RegistryFile::new(dir.path().join("services.yaml"));
        let text = "ec2_instances:\n  - instance_id: i-1\n    region: us-east-1\n  - instance_id: i-2\n    region: us-east-1\n    after: i-1\n";
        std::fs::write(f.path(), text).unwrap();
        let e = f.unregister(&id(1)).unwrap_err().to_string();
        assert_eq!(
            e,
            "refused: EC2 i-2 (us-east-1): after `i-1`: no registered resource has that name"
        );
        let twin = ResourceId::new(Kind::Ec2, ["i-1"], "eu-west-1");
        let e = f
            .register(entry(twin, String::new()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("after `i-1` names 2 registered resources"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), text);
        f.unregister(&id(2)).unwrap();
        f.unregister(&id(1)).unwrap();
    }

    #[test]
    fn invalid_file_keeps_last_good_and_is_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let f = RegistryFile::new(dir.path().join("services.yaml"));
        std::fs::write(f.path(), "ec2_instances: []\n").unwrap();
        f.register(entry(id(1), String::new())).unwrap();
        std::fs::write(f.path(), "ec2_instances: [\n").unwrap();
        let (r, err) = f.current();
        assert_eq!(r.entries.len(), 1);
        assert!(err.is_some());
        assert!(matches!(
            f.register(entry(id(2), String::new())),
            Err(EditError::Invalid(_))
        ));
        assert_eq!(
            std::fs::read_to_string(f.path()).unwrap(),
            "ec2_instances: [\n"
        );
    }

    #[test]
    fn flow_style_falls_back_to_canonical_form_without_losing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let f = RegistryFile::new(dir.path().join("services.yaml"));
        std::fs::write(
            f.path(),
            "ec2_instances: [{instance_id: i-1, region: us-east-1}]\n",
        )
        .unwrap();
        f.register(entry(id(2), String::new())).unwrap();
        assert_eq!(f.current().0.entries.len(), 2);
    }
}

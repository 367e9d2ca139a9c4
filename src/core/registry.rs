//! `services.yaml`: the registry of resources cloudnap puts to sleep.
//!
//! Parsed with serde_yaml into raw entries, then validated into [`Entry`]s.
//! Every error names the line it is about.

use crate::core::resource::ResourceId;
use crate::core::settings::is_valid_region;
use serde::Deserialize;
use std::collections::HashMap;

/// Why `services.yaml` could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryError {
    /// Not YAML of the expected shape.
    #[error("services.yaml line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// Well-formed but with invalid entries; each message names its line.
    #[error("services.yaml is invalid:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// One registered resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Which resource.
    pub id: ResourceId,
    /// Named AWS profile for this entry; falls back to `aws.profile`.
    pub profile: Option<String>,
    /// Free text for humans.
    pub description: String,
    /// EKS only: desired size used by `START` when no sleep record exists.
    pub desired_size: Option<i32>,
}

/// The parsed registry, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registry {
    pub entries: Vec<Entry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    ec2_instances: Option<Vec<RawEc2>>,
    ecs_services: Option<Vec<RawEcs>>,
    eks_nodegroups: Option<Vec<RawEks>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEc2 {
    instance_id: String,
    region: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEcs {
    cluster_name: String,
    service_name: String,
    region: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEks {
    cluster_name: String,
    nodegroup_name: String,
    region: String,
    #[serde(default)]
    desired_size: Option<i32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

/// Checks a resource name: non-empty, no `:` (the UDP field separator), no whitespace.
pub fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err(format!("{what} is empty"))
    } else if value.contains(':') || value.contains(char::is_whitespace) || value.len() > 255 {
        Err(format!(
            "{what} `{value}` must be at most 255 characters with no ':' or spaces"
        ))
    } else {
        Ok(())
    }
}

/// Checks every field of a resource id; the messages name the field.
pub fn check_id(id: &ResourceId) -> Result<(), String> {
    if !is_valid_region(id.region()) {
        return Err(format!(
            "region `{}` is not an AWS region name such as us-east-1",
            id.region()
        ));
    }
    match id {
        ResourceId::Ec2 { instance_id, .. } => {
            check_name("instance_id", instance_id)?;
            if !instance_id.starts_with("i-") {
                return Err(format!(
                    "instance_id `{instance_id}` must look like i-0123456789abcdef0"
                ));
            }
            Ok(())
        }
        ResourceId::Ecs {
            cluster_name,
            service_name,
            ..
        } => check_name("cluster_name", cluster_name).and(check_name("service_name", service_name)),
        ResourceId::Eks {
            cluster_name,
            nodegroup_name,
            ..
        } => check_name("cluster_name", cluster_name)
            .and(check_name("nodegroup_name", nodegroup_name)),
    }
}

/// The 1-based line of the `nth` (0-based) occurrence of `needle` after a
/// `key:` in `text`, or of the section header if not found.
fn line_of(text: &str, key: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with(key) && l.contains(needle)
        })
        .nth(nth)
        .map_or(1, |(i, _)| i + 1)
}

impl Registry {
    /// Parses and validates `services.yaml` text.
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let raw: RawFile = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            RawFile::default()
        } else {
            serde_yaml::from_str::<Option<RawFile>>(text)
                .map_err(|e| RegistryError::Syntax {
                    line: e.location().map_or(1, |l| l.line()),
                    message: e.to_string(),
                })?
                .unwrap_or_default()
        };

        let mut entries = Vec::new();
        let mut errors = Vec::new();
        // Where each entry was first seen, as (key, needle, nth occurrence):
        // lines are only looked up for error messages.
        let mut seen: HashMap<ResourceId, (&'static str, String, usize)> = HashMap::new();
        let mut occurrences: HashMap<(&'static str, String), usize> = HashMap::new();
        let mut push = |id: ResourceId,
                        key: &'static str,
                        needle: &str,
                        profile: Option<String>,
                        description: Option<String>,
                        desired_size: Option<i32>,
                        errors: &mut Vec<String>| {
            let n = occurrences.entry((key, needle.to_string())).or_insert(0);
            let here = (key, needle.to_string(), *n);
            *n += 1;
            let line =
                |(key, needle, nth): &(&str, String, usize)| line_of(text, key, needle, *nth);
            let check = check_id(&id)
                .and(match &profile {
                    Some(p) if p.is_empty() || p.contains(char::is_whitespace) => Err(format!(
                        "profile `{p}` must be a profile name without spaces"
                    )),
                    _ => Ok(()),
                })
                .and(match desired_size {
                    Some(d) if d < 0 => Err(format!("desired_size {d} must be 0 or more")),
                    _ => Ok(()),
                });
            if let Err(e) = check {
                errors.push(format!("line {}: {e}", line(&here)));
                return;
            }
            if let Some(first) = seen.get(&id) {
                errors.push(format!(
                    "line {}: {id} is already registered at line {}",
                    line(&here),
                    line(first)
                ));
                return;
            }
            seen.insert(id.clone(), here);
            entries.push(Entry {
                id,
                profile,
                description: description.unwrap_or_default(),
                desired_size,
            });
        };
        let ec2 = raw.ec2_instances.unwrap_or_default().into_iter().map(|e| {
            let needle = e.instance_id.clone();
            let id = ResourceId::Ec2 {
                instance_id: e.instance_id,
                region: e.region,
            };
            (id, "instance_id", needle, e.profile, e.description, None)
        });
        let ecs = raw.ecs_services.unwrap_or_default().into_iter().map(|e| {
            let needle = e.cluster_name.clone();
            let id = ResourceId::Ecs {
                cluster_name: e.cluster_name,
                service_name: e.service_name,
                region: e.region,
            };
            (id, "cluster_name", needle, e.profile, e.description, None)
        });
        let eks = raw.eks_nodegroups.unwrap_or_default().into_iter().map(|e| {
            let needle = e.cluster_name.clone();
            let id = ResourceId::Eks {
                cluster_name: e.cluster_name,
                nodegroup_name: e.nodegroup_name,
                region: e.region,
            };
            let desired = e.desired_size;
            (
                id,
                "cluster_name",
                needle,
                e.profile,
                e.description,
                desired,
            )
        });
        for (id, key, needle, profile, description, desired) in ec2.chain(ecs).chain(eks) {
            push(id, key, &needle, profile, description, desired, &mut errors);
        }
        if errors.is_empty() {
            Ok(Registry { entries })
        } else {
            Err(RegistryError::Invalid(errors))
        }
    }

    /// The entry for `id`, if registered.
    pub fn get(&self, id: &ResourceId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# my resources
ec2_instances:
  - instance_id: i-0abc
    region: us-east-1
    description: dev box
ecs_services:
  - cluster_name: dev
    service_name: api
    region: eu-west-1
    profile: work
eks_nodegroups:
  - cluster_name: k8s
    nodegroup_name: workers
    region: us-west-2
    desired_size: 2
";

    #[test]
    fn parses_all_kinds() {
        let r = Registry::parse(SAMPLE).unwrap();
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.entries[0].description, "dev box");
        assert_eq!(r.entries[1].profile.as_deref(), Some("work"));
        assert_eq!(r.entries[2].desired_size, Some(2));
        assert_eq!(r.entries[2].id.name(), "k8s/workers");
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_registries() {
        for t in ["", "# nothing\n", "ec2_instances:\n", "ec2_instances: []\n"] {
            assert_eq!(Registry::parse(t).unwrap().entries.len(), 0, "{t:?}");
        }
    }

    #[test]
    fn syntax_errors_report_the_line() {
        let err =
            Registry::parse("ec2_instances:\n  - instance_id: i-1\n    region: [\n").unwrap_err();
        assert!(matches!(err, RegistryError::Syntax { .. }), "{err:?}");
        let err = Registry::parse("ec2_instances:\n  - instance_id: i-1\n    regoin: us-east-1\n")
            .unwrap_err();
        let RegistryError::Syntax { line, message } = err else {
            panic!()
        };
        assert_eq!(line, 3);
        assert!(message.contains("regoin"), "{message}");
    }

    #[test]
    fn invalid_entries_name_their_line() {
        let text = "ec2_instances:\n  - instance_id: i-1\n    region: us-east-1\n  - instance_id: i-2\n    region: moon-1\n  - instance_id: i-1\n    region: us-east-1\n";
        let RegistryError::Invalid(errs) = Registry::parse(text).unwrap_err() else {
            panic!()
        };
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("line 4:") && errs[0].contains("moon-1"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("line 6:") && errs[1].contains("already registered at line 2"),
            "{errs:?}"
        );
    }

    #[test]
    fn names_with_colons_are_rejected() {
        let text =
            "ecs_services:\n  - cluster_name: 'a:b'\n    service_name: s\n    region: us-east-1\n";
        assert!(Registry::parse(text)
            .unwrap_err()
            .to_string()
            .contains("no ':'"));
    }
}

//! `services.yaml`: the registry of resources cloudnap puts to sleep.
//!
//! Parsed with serde_yaml into raw entries, then validated into [`Entry`]s.
//! Every error names the line it is about.

use crate::core::model::resource::{Kind, ResourceId};
use crate::core::policy::order::{self, WakePolicy};
use crate::kinds::Spec;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

mod checks;
pub use checks::{check_id, check_name, check_order, minutes};
use checks::{check_options, own_timeout, wake_policy};

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
    /// EC2 only: sleep hibernates the instance when AWS allows it.
    pub hibernate: bool,
    /// EC2 only: after a wake, ready when this TCP port answers on the
    /// instance's address (instead of its status checks).
    pub ready_port: Option<u16>,
    /// Found by its `cloudnap:managed=true` tag, not in services.yaml.
    pub tagged: bool,
    /// A team resource (`shared: true`, or the tag `cloudnap:shared=true`):
    /// with team mode on it sleeps only when every member is away (see
    /// [`crate::core::policy::team`]), never by this member's own sleep.
    pub shared: bool,
    /// EC2 only: another name `cloudnap ssh-proxy` knows the instance by
    /// (`Host devbox` in ~/.ssh/config).
    pub ssh_host: Option<String>,
    /// EC2 only: where `cloudnap ssh-proxy` connects instead of the
    /// instance's current address (`HOST` or `HOST:PORT`): a bastion, a VPN
    /// address, a port forward.
    pub ssh_address: Option<String>,
    /// What may wake it (`wake:`; see [`WakePolicy`]).
    pub wake: WakePolicy,
    /// `after:`: the registered resource (by name or id) this one starts
    /// after, once that one is ready; a sleep stops them in reverse.
    pub after: Option<String>,
    /// `timeout_minutes`: its own idle timeout, instead of
    /// `activity_monitor.inactivity_timeout_minutes` (see
    /// [`crate::core::policy::idle`]).
    pub timeout: Option<Duration>,
}

impl Entry {
    /// An entry for `id` with no profile, description or options.
    pub fn new(id: ResourceId) -> Entry {
        Entry {
            id,
            profile: None,
            description: String::new(),
            desired_size: None,
            hibernate: false,
            ready_port: None,
            tagged: false,
            shared: false,
            ssh_host: None,
            ssh_address: None,
            wake: WakePolicy::Auto,
            after: None,
            timeout: None,
        }
    }

    /// The timeout of its group: its own, else `default`.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.timeout.unwrap_or(default)
    }

    /// Its policy as `LIST_REGISTERED_SERVICES` and `cloudnap check` show
    /// it: `timeout 10 min, wake manual, after i-0abc`; empty for the default.
    pub fn policy(&self) -> String {
        let timeout = self.timeout.map(|t| format!("timeout {} min", minutes(t)));
        let wake = (self.wake != WakePolicy::Auto).then(|| format!("wake {}", self.wake.name()));
        let after = self.after.as_ref().map(|a| format!("after {a}"));
        [timeout, wake, after]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where the entry comes from, as `status` and `LIST_REGISTERED_SERVICES`
    /// show it: `services.yaml` or `tag`.
    pub fn source(&self) -> &'static str {
        if self.tagged {
            "tag"
        } else {
            "services.yaml"
        }
    }
}

/// The parsed registry, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registry {
    pub entries: Vec<Entry>,
}

/// One entry of a section, as written: its kind's name fields in order.
struct RawEntry {
    kind: Kind,
    names: Vec<String>,
    region: String,
    description: Option<String>,
    profile: Option<String>,
    desired_size: Option<i32>,
    hibernate: bool,
    ready_port: Option<u16>,
    shared: bool,
    ssh_host: Option<String>,
    ssh_address: Option<String>,
    wake: Option<String>,
    after: Option<String>,
    timeout_minutes: Option<f64>,
}

/// The file's entries, section by section, with serde's errors (and so
/// their lines) for unknown sections and fields.
#[derive(Default)]
struct RawFile(Vec<RawEntry>);

/// Every section key.
static SECTIONS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| Kind::ALL.iter().map(|k| k.spec().section).collect());

impl<'de> Deserialize<'de> for RawFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct File;
        impl<'de> Visitor<'de> for File {
            type Value = RawFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "sections {}", SECTIONS.join(", "))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFile, A::Error> {
                let mut sections = Vec::new();
                while let Some(key) = map.next_key_seed(Key(None))? {
                    let Named::Section(kind) = key else {
                        return Err(A::Error::custom("a field outside an entry"));
                    };
                    let entries: Option<Entries> = map.next_value_seed(Section(kind))?;
                    sections.push((kind, entries.map_or_else(Vec::new, |e| e.0)));
                }
                sections.sort_by_key(|(kind, _)| *kind);
                Ok(RawFile(sections.into_iter().flat_map(|(_, e)| e).collect()))
            }
        }
        d.deserialize_map(File)
    }
}

/// A key of the file (`Key(None)`: a section) or of an entry of a kind.
/// Unknown keys are errors at their line.
struct Key(Option<Kind>);

/// What a [`Key`] named.
enum Named {
    Section(Kind),
    /// The name field at this index.
    Name(usize),
    /// One of [`OTHER_FIELDS`].
    Other(&'static str),
}

/// The fields of an entry after its names (`desired_size` and `hibernate`
/// only for kinds that take them).
const OTHER_FIELDS: [&str; 12] = [
    "region",
    "desired_size",
    "hibernate",
    "ready_port",
    "shared",
    "description",
    "profile",
    "ssh_host",
    "ssh_address",
    "wake",
    "after",
    "timeout_minutes",
];

/// Whether entries of `spec` take the field `field` of [`OTHER_FIELDS`].
fn takes(spec: &Spec, field: &str) -> bool {
    match field {
        "desired_size" => spec.desired_size,
        "hibernate" => spec.hibernates,
        "ssh_host" | "ssh_address" => spec.ssh,
        "ready_port" => spec.ready_port,
        _ => true,
    }
}

impl Key {
    /// What `key` names, if it is known here.
    fn named(&self, key: &str) -> Option<Named> {
        let Some(kind) = self.0 else {
            return Kind::ALL
                .into_iter()
                .find(|k| k.spec().section == key)
                .map(Named::Section);
        };
        let spec = kind.spec();
        if let Some(i) = spec.names.iter().position(|f| f.key == key) {
            return Some(Named::Name(i));
        }
        OTHER_FIELDS
            .into_iter()
            .find(|f| *f == key && takes(spec, f))
            .map(Named::Other)
    }

    /// Every key known here, for the error message.
    fn known(&self) -> Vec<&'static str> {
        let Some(kind) = self.0 else {
            return SECTIONS.clone();
        };
        let spec = kind.spec();
        let names = spec.names.iter().map(|f| f.key);
        let others = OTHER_FIELDS.into_iter().filter(|f| takes(spec, f));
        names.chain(others).collect()
    }
}

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Named;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Named, D::Error> {
        // Checked inside the visitor, so serde_yaml puts the key's line on errors.
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Named;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Named, E> {
        self.named(key).ok_or_else(|| {
            let known: Vec<String> = self.known().iter().map(|k| format!("`{k}`")).collect();
            E::custom(format!(
                "unknown field `{key}`, expected one of {}",
                known.join(", ")
            ))
        })
    }
}

/// A section's entries.
struct Entries(Vec<RawEntry>);

/// The seed of a section of `kind`.
struct Section(Kind);

impl<'de> DeserializeSeed<'de> for Section {
    type Value = Option<Entries>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Entries>, D::Error> {
        struct Items(Kind);
        impl<'de> Visitor<'de> for Items {
            type Value = Option<Entries>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of {}", self.0.spec().section)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_seq(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element_seed(Item(self.0))? {
                    out.push(e);
                }
                Ok(Some(Entries(out)))
            }
        }
        d.deserialize_option(Items(self.0))
    }
}

/// The seed of one entry of `kind`.
struct Item(Kind);

impl<'de> DeserializeSeed<'de> for Item {
    type Value = RawEntry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawEntry, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Item {
    type Value = RawEntry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} entry", self.0.spec().noun)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let spec = self.0.spec();
        let mut names: Vec<Option<String>> = vec![None; spec.names.len()];
        let (mut region, mut description, mut profile, mut desired_size) = (None, None, None, None);
        let (mut ssh_host, mut ssh_address, mut wake, mut after) = (None, None, None, None);
        let (mut hibernate, mut shared, mut ready_port) = (false, false, None);
        let mut timeout_minutes = None;
        while let Some(key) = map.next_key_seed(Key(Some(self.0)))? {
            let (slot, field) = match key {
                Named::Name(i) => (&mut names[i], spec.names[i].key),
                Named::Other("region") => (&mut region, "region"),
                Named::Other("description") => (&mut description, "description"),
                Named::Other("profile") => (&mut profile, "profile"),
                Named::Other("ssh_host") => (&mut ssh_host, "ssh_host"),
                Named::Other("ssh_address") => (&mut ssh_address, "ssh_address"),
                Named::Other("wake") => (&mut wake, "wake"),
                Named::Other("after") => (&mut after, "after"),
                Named::Other("hibernate") => {
                    hibernate = map.next_value::<Option<bool>>()?.unwrap_or(false);
                    continue;
                }
                Named::Other("ready_port") => {
                    ready_port = map.next_value::<Option<u16>>()?;
                    continue;
                }
                Named::Other("timeout_minutes") => {
                    timeout_minutes = map.next_value::<Option<f64>>()?;
                    continue;
                }
                Named::Other("shared") => {
                    shared = map.next_value::<Option<bool>>()?.unwrap_or(false);
                    continue;
                }
                Named::Other(_) => {
                    desired_size = map.next_value::<Option<i32>>()?;
                    continue;
                }
                Named::Section(_) => return Err(A::Error::custom("a section inside an entry")),
            };
            if slot.is_some() {
                return Err(A::Error::duplicate_field(field));
            }
            *slot = match field {
                "description" | "profile" | "ssh_host" | "ssh_address" | "wake" | "after" => {
                    map.next_value::<Option<String>>()?
                }
                _ => Some(map.next_value::<String>()?),
            };
        }
        let names = names
            .into_iter()
            .zip(spec.names)
            .map(|(name, f)| name.ok_or_else(|| A::Error::missing_field(f.key)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RawEntry {
            kind: self.0,
            names,
            region: region.ok_or_else(|| A::Error::missing_field("region"))?,
            description,
            profile,
            desired_size,
            hibernate,
            ready_port,
            shared,
            ssh_host,
            ssh_address,
            wake,
            after,
            timeout_minutes,
        })
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
                        e: RawEntry,
                        errors: &mut Vec<String>| {
            let n = occurrences.entry((key, needle.to_string())).or_insert(0);
            let here = (key, needle.to_string(), *n);
            *n += 1;
            let line =
                |(key, needle, nth): &(&str, String, usize)| line_of(text, key, needle, *nth);
            if let Err(e) = check_id(&id).and(check_options(&e)) {
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
            let wake = wake_policy(&e).unwrap_or_default();
            let timeout = own_timeout(&e).unwrap_or_default();
            entries.push(Entry {
                id,
                profile: e.profile,
                description: e.description.unwrap_or_default(),
                desired_size: e.desired_size,
                hibernate: e.hibernate,
                ready_port: e.ready_port,
                tagged: false,
                shared: e.shared,
                ssh_host: e.ssh_host,
                ssh_address: e.ssh_address,
                wake,
                after: e.after,
                timeout,
            });
        };
        for e in raw.0 {
            let id = ResourceId::new(e.kind, e.names.clone(), e.region.clone());
            let (key, needle) = (e.kind.spec().names[0].key, id.part(0).to_string());
            push(id, key, &needle, e, &mut errors);
        }
        if errors.is_empty() {
            errors.extend(check_order(&entries));
        }
        if errors.is_empty() {
            Ok(Registry { entries })
        } else {
            Err(RegistryError::Invalid(errors))
        }
    }

    /// Each entry with the resource its `after:` names (see
    /// [`order::resolve`]); none where that cannot be resolved (a registry
    /// that parsed always can).
    pub fn order(entries: &[Entry]) -> Vec<(ResourceId, Option<ResourceId>)> {
        let named: Vec<(ResourceId, Option<String>)> = (entries.iter())
            .map(|e| (e.id.clone(), e.after.clone()))
            .collect();
        let resolved = order::resolve(&named).unwrap_or_else(|_| vec![None; named.len()]);
        named.into_iter().map(|(id, _)| id).zip(resolved).collect()
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
    fn hibernate_and_ready_port_are_ec2_options_only() {
        let ec2 = "ec2_instances:\n  - instance_id: i-0abc\n    region: us-east-1\n    hibernate: true\n    ready_port: 22\n";
        let r = Registry::parse(ec2).unwrap();
        assert!(r.entries[0].hibernate);
        assert_eq!(r.entries[0].ready_port, Some(22));
        let zero = Registry::parse(&ec2.replace(": 22", ": 0")).unwrap_err();
        assert!(zero.to_string().contains("ready_port 0"), "{zero}");
        let ecs = "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n    ready_port: 80\n";
        let e = Registry::parse(ecs).unwrap_err().to_string();
        assert!(e.contains("unknown field `ready_port`"), "{e}");
        let edited = crate::core::config::registry_edit::insert_entry("", &r.entries[0]).unwrap();
        assert_eq!(Registry::parse(&edited).unwrap(), r, "{edited}");
        let ecs = "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n    hibernate: true\n";
        let e = Registry::parse(ecs).unwrap_err().to_string();
        assert!(
            e.contains("line 5") && e.contains("unknown field `hibernate`"),
            "{e}"
        );
        assert!(!Registry::parse(SAMPLE).unwrap().entries[0].hibernate);
    }

    #[test]
    fn shared_is_an_option_of_every_kind_and_round_trips() {
        for kind in Kind::ALL {
            let spec = kind.spec();
            let name = |i| match kind {
                Kind::Ec2 => "i-0123456789abcdef0".to_string(),
                Kind::Workspace => "ws-0123abcde".to_string(),
                _ => format!("n{i}"),
            };
            let names: String = (spec.names.iter().enumerate())
                .map(|(i, f)| format!("    {}: {}\n", f.key, name(i)))
                .collect::<String>()
                .replacen("    ", "  - ", 1);
            let text = format!(
                "{}:\n{names}    region: us-east-1\n    shared: true\n",
                spec.section
            );
            let r = Registry::parse(&text).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(r.entries[0].shared, "{text}");
            let edited =
                crate::core::config::registry_edit::insert_entry("", &r.entries[0]).unwrap();
            assert_eq!(Registry::parse(&edited).unwrap(), r, "{edited}");
            let off = text.replace("shared: true", "shared: false");
            assert!(!Registry::parse(&off).unwrap().entries[0].shared);
        }
        assert!(!Registry::parse(SAMPLE).unwrap().entries[1].shared);
        // Unknown fields are named as before, with `shared` among the known.
        let e = Registry::parse("ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n    sharde: true\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 5") && e.contains("unknown field `sharde`") && e.contains("`shared`"),
            "{e}"
        );
    }

    #[test]
    fn ssh_fields_are_ec2_options_and_round_trip() {
        let ec2 = "ec2_instances:\n  - instance_id: i-0abc\n    region: us-east-1\n    ssh_host: devbox\n    ssh_address: 127.0.0.1:2222\n";
        let r = Registry::parse(ec2).unwrap();
        assert_eq!(r.entries[0].ssh_host.as_deref(), Some("devbox"));
        assert_eq!(r.entries[0].ssh_address.as_deref(), Some("127.0.0.1:2222"));
        let edited = crate::core::config::registry_edit::insert_entry("", &r.entries[0]).unwrap();
        assert_eq!(Registry::parse(&edited).unwrap(), r, "{edited}");
        let spaced = ec2.replace("ssh_host: devbox", "ssh_host: 'dev box'");
        let e = Registry::parse(&spaced).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("ssh_host `dev box`"),
            "{e}"
        );
        let ecs = "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n    ssh_host: x\n";
        let e = Registry::parse(ecs).unwrap_err().to_string();
        assert!(e.contains("unknown field `ssh_host`"), "{e}");
    }

    #[test]
    fn wake_and_after_are_options_of_every_kind_and_round_trip() {
        let text = "ec2_instances:\n  - instance_id: i-0db\n    region: us-east-1\n    wake: manual\n\
            ecs_services:\n  - cluster_name: c\n    service_name: api\n    region: us-east-1\n    after: i-0db\n    wake: on_connect\n\
            eks_nodegroups:\n  - cluster_name: k\n    nodegroup_name: n\n    region: us-east-1\n    after: 'ECS c/api (us-east-1)'\n";
        let r = Registry::parse(text).unwrap();
        let policies: Vec<(WakePolicy, Option<&str>)> = (r.entries.iter())
            .map(|e| (e.wake, e.after.as_deref()))
            .collect();
        assert_eq!(
            policies,
            [
                (WakePolicy::Manual, None),
                (WakePolicy::OnConnect, Some("i-0db")),
                (WakePolicy::Auto, Some("ECS c/api (us-east-1)")),
            ]
        );
        assert_eq!(r.entries[1].policy(), "wake on_connect, after i-0db");
        assert_eq!(r.entries[2].policy(), "after ECS c/api (us-east-1)");
        let order = Registry::order(&r.entries);
        assert_eq!(order[1].1.as_ref(), Some(&r.entries[0].id));
        assert_eq!(order[2].1.as_ref(), Some(&r.entries[1].id));
        let mut rebuilt = String::new();
        for e in &r.entries {
            rebuilt = crate::core::config::registry_edit::insert_entry(&rebuilt, e).unwrap();
        }
        assert_eq!(Registry::parse(&rebuilt).unwrap(), r, "{rebuilt}");
        let e = Registry::parse(&text.replace("wake: manual", "wake: later"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2")
                && e.contains("wake `later` must be one of auto, manual, on_connect"),
            "{e}"
        );
    }

    #[test]
    fn timeout_minutes_is_an_option_of_every_kind_and_round_trips() {
        let text = "ec2_instances:\n  - instance_id: i-0nb\n    region: us-east-1\n    timeout_minutes: 10\n\
            ecs_services:\n  - cluster_name: c\n    service_name: api\n    region: us-east-1\n    timeout_minutes: 0.34\n\
            eks_nodegroups:\n  - cluster_name: k\n    nodegroup_name: n\n    region: us-east-1\n";
        let r = Registry::parse(text).unwrap();
        let timeouts: Vec<Option<Duration>> = r.entries.iter().map(|e| e.timeout).collect();
        let s = Duration::from_millis;
        assert_eq!(timeouts, [Some(s(600_000)), Some(s(20_400)), None]);
        assert_eq!(r.entries[1].policy(), "timeout 0.34 min");
        assert_eq!(r.entries[2].timeout_or(s(7)), s(7));
        let mut rebuilt = String::new();
        for e in &r.entries {
            rebuilt = crate::core::config::registry_edit::insert_entry(&rebuilt, e).unwrap();
        }
        assert!(rebuilt.contains("timeout_minutes: 0.34\n"), "{rebuilt}");
        assert_eq!(Registry::parse(&rebuilt).unwrap(), r, "{rebuilt}");
        for (bad, says) in [
            (
                "0",
                "timeout_minutes 0 must be more than 0 and at most 10080",
            ),
            ("-5", "timeout_minutes -5 must be more than 0"),
            ("ten", "invalid type"),
        ] {
            let e = Registry::parse(
                &text.replace("timeout_minutes: 10", &format!("timeout_minutes: {bad}")),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("line ") && e.contains(says), "{e}");
        }
        let shared = text.replace(
            "timeout_minutes: 10",
            "timeout_minutes: 10\n    shared: true",
        );
        let e = Registry::parse(&shared).unwrap_err().to_string();
        assert!(
            e.contains("a shared resource sleeps when every team member is away"),
            "{e}"
        );
    }

    #[test]
    fn unknown_afters_and_cycles_are_refused_naming_the_resources() {
        let text = "ecs_services:\n  - cluster_name: c\n    service_name: a\n    region: us-east-1\n    after: c/b\n  - cluster_name: c\n    service_name: b\n    region: us-east-1\n    after: c/a\n";
        let e = Registry::parse(text).unwrap_err().to_string();
        assert!(
            e.contains(
                "after: a cycle: ECS c/a (us-east-1) -> ECS c/b (us-east-1) -> ECS c/a (us-east-1)"
            ),
            "{e}"
        );
        let e = Registry::parse(&text.replace("after: c/a", "after: c/gone"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ECS c/b (us-east-1): after `c/gone`: no registered resource"),
            "{e}"
        );
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

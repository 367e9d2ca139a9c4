//! Domain types for the cloud resources cloudnap manages: what a resource is,
//! what capacity it has, and how a saved capacity is written into an AWS tag.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::core::kinds::Kind;
use crate::core::kinds::Shape;

/// Which resource, in which region: the identity of a registered resource.
/// Serialized as `{"type": "ECS", "cluster_name": ..., "service_name": ...,
/// "region": ...}`: the kind's label, its name fields, the region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId {
    kind: Kind,
    names: Vec<String>,
    region: String,
}

impl ResourceId {
    /// The resource of `kind` named by `names` (in the order of its spec's
    /// name fields) in `region`.
    pub fn new<S: Into<String>>(
        kind: Kind,
        names: impl IntoIterator<Item = S>,
        region: impl Into<String>,
    ) -> Self {
        ResourceId {
            kind,
            names: names.into_iter().map(Into::into).collect(),
            region: region.into(),
        }
    }

    /// The kind of resource.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The AWS region the resource lives in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The name fields, in the order of the kind's spec.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name field at `index` (empty if there is none).
    pub fn part(&self, index: usize) -> &str {
        self.names.get(index).map_or("", String::as_str)
    }

    /// A short name within its region: `i-123`, `cluster/service`, `cluster/nodegroup`.
    pub fn name(&self) -> String {
        self.names.join("/")
    }

    /// The last name field: `i-123`, `service`, `nodegroup`.
    pub fn short_name(&self) -> &str {
        self.names.last().map_or("", String::as_str)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind(), self.name(), self.region())
    }
}

impl Serialize for ResourceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.kind.spec().names;
        let mut map = s.serialize_map(Some(fields.len() + 2))?;
        map.serialize_entry("type", &self.kind)?;
        for (field, name) in fields.iter().zip(&self.names) {
            map.serialize_entry(field.key, name)?;
        }
        map.serialize_entry("region", &self.region)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = std::collections::HashMap::<String, String>::deserialize(d)?;
        let label = map
            .remove("type")
            .ok_or_else(|| D::Error::missing_field("type"))?;
        let kind = Kind::from_label(&label)
            .ok_or_else(|| D::Error::custom(format!("unknown resource type `{label}`")))?;
        let mut take =
            |key: &'static str| map.remove(key).ok_or_else(|| D::Error::missing_field(key));
        let names = kind
            .spec()
            .names
            .iter()
            .map(|f| take(f.key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResourceId::new(kind, names, take("region")?))
    }
}

/// The capacity of a resource: what "up" means for it, and what sleep saves.
/// Serialized as `{"type": "EKS", "min": 1, "desired": 2, "max": 3}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CapacityRepr", try_from = "CapacityRepr")]
pub struct Capacity {
    /// The kind of resource this capacity belongs to.
    pub kind: Kind,
    pub level: Level,
}

/// A capacity's value, of its kind's [`Shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Running (or starting) or not.
    Running(bool),
    /// A desired task count.
    Desired(i32),
    /// A group's scaling configuration.
    Scaling { min: i32, desired: i32, max: i32 },
}

pub use Level::{Desired, Running, Scaling};

#[derive(Serialize, Deserialize)]
struct CapacityRepr {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    running: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    desired: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<i32>,
}

impl From<Capacity> for CapacityRepr {
    fn from(c: Capacity) -> Self {
        let mut r = CapacityRepr {
            kind: c.kind,
            running: None,
            min: None,
            desired: None,
            max: None,
        };
        match c.level {
            Running(running) => r.running = Some(running),
            Desired(desired) => r.desired = Some(desired),
            Scaling { min, desired, max } => {
                (r.min, r.desired, r.max) = (Some(min), Some(desired), Some(max))
            }
        }
        r
    }
}

impl TryFrom<CapacityRepr> for Capacity {
    type Error = String;

    fn try_from(r: CapacityRepr) -> Result<Self, String> {
        let level = match (r.kind.spec().shape, r.running, r.min, r.desired, r.max) {
            (Shape::Running, Some(running), ..) => Running(running),
            (Shape::Desired, _, _, Some(desired), _) => Desired(desired),
            (Shape::Scaling, _, Some(min), Some(desired), Some(max)) => {
                Scaling { min, desired, max }
            }
            _ => return Err(format!("not a capacity of {}", r.kind)),
        };
        Ok(Capacity::of(r.kind, level))
    }
}

impl Capacity {
    /// A capacity of `kind` (whose shape `level` must have).
    pub const fn of(kind: Kind, level: Level) -> Capacity {
        Capacity { kind, level }
    }

    /// The kind of resource this capacity belongs to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the resource is up (costs money and can be put to sleep).
    pub fn is_up(&self) -> bool {
        match self.level {
            Running(running) => running,
            Desired(desired) => desired > 0,
            Scaling { desired, min, .. } => desired > 0 || min > 0,
        }
    }

    /// The capacity sleep sets: stopped, 0 tasks, or min and desired 0 with max
    /// unchanged (AWS rejects a nodegroup max of 0).
    pub fn asleep(&self) -> Capacity {
        let level = match self.level {
            Running(_) => Running(false),
            Desired(_) => Desired(0),
            Scaling { max, .. } => Scaling {
                min: 0,
                desired: 0,
                max,
            },
        };
        Capacity::of(self.kind, level)
    }

    /// The value stored in the `cloudnap:sleeping` tag.
    pub fn to_tag(&self) -> String {
        match self.level {
            Running(running) => if running { "running" } else { "stopped" }.to_string(),
            Desired(desired) => format!("desired={desired}"),
            Scaling { min, desired, max } => format!("min={min} desired={desired} max={max}"),
        }
    }

    /// Parses a `cloudnap:sleeping` tag value written by [`Capacity::to_tag`].
    /// (Fields are separated by spaces: ECS and EKS tag values allow no commas.)
    pub fn from_tag(kind: Kind, value: &str) -> Option<Capacity> {
        let field = |name: &str| -> Option<i32> {
            value.split([' ', ',']).find_map(|part| {
                let (k, v) = part.split_once('=')?;
                (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
            })
        };
        let level = match kind.spec().shape {
            Shape::Running => match value.trim() {
                "running" => Running(true),
                "stopped" => Running(false),
                _ => return None,
            },
            Shape::Desired => Desired(field("desired").filter(|d| *d >= 0)?),
            Shape::Scaling => {
                let (min, desired, max) = (field("min")?, field("desired")?, field("max")?);
                if !(min >= 0 && desired >= min && max >= desired && max > 0) {
                    return None;
                }
                Scaling { min, desired, max }
            }
        };
        Some(Capacity::of(kind, level))
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Running(running) => f.write_str(if running { "running" } else { "stopped" }),
            Desired(desired) => write!(f, "desired {desired}"),
            Scaling { min, desired, max } => write!(f, "{min}/{desired}/{max}"),
        }
    }
}

/// What cloudnap sees of a registered resource right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Current capacity.
    pub capacity: Capacity,
    /// Tagged `cloudnap:protect=true`: never stopped.
    pub protected: bool,
    /// The capacity saved in the resource's `cloudnap:sleeping` tag, if any.
    pub sleep_tag: Option<Capacity>,
    /// AWS status text (EC2 state name, ECS/EKS status), for display.
    pub status: String,
    /// An ECS service's deployments (empty for other kinds), for the busy
    /// veto.
    pub deployments: Vec<crate::core::busy::Deployment>,
    /// Why it is never stopped on its own, if it is part of a group that
    /// manages it (`in_autoscaling_group: web`): register the group instead.
    pub part_of: Option<String>,
}

/// What a resource is made of, for pricing: read from AWS when it is put to
/// sleep and kept in the history, so reports need no AWS calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// An EC2 instance's type (`t3.micro`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// An EC2 instance's OS as AWS reports it (`Linux/UNIX`, `Windows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// An EKS nodegroup's instance types (the first one is priced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_types: Vec<String>,
    /// An ECS service's launch type: `FARGATE`, `EC2` or `EXTERNAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    /// An ECS task's CPU units (1024 = 1 vCPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_cpu_units: Option<u32>,
    /// An ECS task's memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_memory_mib: Option<u32>,
    /// EBS volumes attached to an EC2 instance (they keep costing while it
    /// is stopped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Public IPv4 addresses that stay allocated while stopped (Elastic IPs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub public_ipv4: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An EBS volume: size and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub gb: u32,
    pub volume_type: String,
}

/// An EC2 instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ec2Instance {
    pub instance_id: String,
    pub region: String,
    pub instance_type: String,
    pub state: String,
    pub name: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
}

/// An ECS service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcsService {
    pub cluster_name: String,
    pub service_name: String,
    pub region: String,
    pub status: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
}

/// An Auto Scaling group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoScalingGroup {
    pub group_name: String,
    pub region: String,
    pub status: String,
    pub min_size: i32,
    pub desired_size: i32,
    pub max_size: i32,
    /// How many instances it has now.
    pub instances: usize,
}

/// An RDS DB instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RdsInstance {
    pub db_instance_identifier: String,
    pub region: String,
    pub status: String,
    pub engine: String,
    pub db_instance_class: String,
    /// The Aurora cluster it belongs to, if any (register that instead).
    pub db_cluster_identifier: Option<String>,
}

/// An Aurora DB cluster as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RdsCluster {
    pub db_cluster_identifier: String,
    pub region: String,
    pub status: String,
    pub engine: String,
    /// Its DB instances.
    pub members: Vec<String>,
}

/// An EKS nodegroup as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EksNodegroup {
    pub cluster_name: String,
    pub nodegroup_name: String,
    pub region: String,
    pub status: String,
    pub min_size: i32,
    pub desired_size: i32,
    pub max_size: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for c in [
            Capacity::of(Kind::Ec2, Running(true)),
            Capacity::of(Kind::Ecs, Desired(3)),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 1,
                    desired: 2,
                    max: 4,
                },
            ),
        ] {
            assert_eq!(Capacity::from_tag(c.kind(), &c.to_tag()), Some(c));
        }
    }

    #[test]
    fn bad_tags_are_rejected() {
        assert_eq!(Capacity::from_tag(Kind::Ecs, "desired=-1"), None);
        assert_eq!(Capacity::from_tag(Kind::Ecs, "garbage"), None);
        assert_eq!(Capacity::from_tag(Kind::Eks, "min=1 desired=2"), None);
        assert_eq!(Capacity::from_tag(Kind::Eks, "min=3,desired=2,max=4"), None);
        assert_eq!(Capacity::from_tag(Kind::Ec2, "maybe"), None);
    }

    #[test]
    fn asleep_keeps_nodegroup_max() {
        let up = Capacity::of(
            Kind::Eks,
            Scaling {
                min: 1,
                desired: 2,
                max: 4,
            },
        );
        assert_eq!(
            up.asleep(),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 0,
                    desired: 0,
                    max: 4
                }
            )
        );
        assert!(up.is_up());
        assert!(!up.asleep().is_up());
        assert!(!Capacity::of(Kind::Ecs, Desired(3)).asleep().is_up());
    }
}

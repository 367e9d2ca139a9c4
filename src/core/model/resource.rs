//! Domain types for the cloud resources cloudnap manages: what a resource is,
//! what capacity it has, and how a saved capacity is written into an AWS tag.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::SystemTime;

pub use crate::kinds::Kind;
use crate::kinds::Shape;

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
    /// The resource an ARN names, if it is of a kind found by tag (see
    /// [`crate::kinds::Tagged`]).
    pub fn from_arn(arn: &str) -> Option<ResourceId> {
        let mut parts = arn.splitn(6, ':').skip(2);
        let (service, region) = (parts.next()?, parts.next()?);
        let resource = parts.nth(1)?;
        Kind::ALL.into_iter().find_map(|kind| {
            let spec = kind.spec();
            let tagged = spec.tagged.as_ref()?;
            let (s, r) = tagged.resource_type.split_once(':')?;
            if s != service || !resource.starts_with(r) || region.is_empty() {
                return None;
            }
            let at = resource.find(tagged.names_after)? + tagged.names_after.len();
            let names: Vec<&str> = resource[at..].split('/').take(spec.names.len()).collect();
            (names.len() == spec.names.len() && names.iter().all(|n| !n.is_empty()))
                .then(|| ResourceId::new(kind, names, region))
        })
    }

    /// The resource's ARN in `account`, as IAM policies name it (`*` for
    /// parts cloudnap does not know, such as an Auto Scaling group's id).
    pub fn arn(&self, account: &str) -> Option<String> {
        let tagged = self.kind.spec().tagged.as_ref()?;
        let (service, resource) = tagged.arn.split_once(':')?;
        Some(format!(
            "arn:aws:{service}:{}:{account}:{}",
            self.region,
            resource.replace("{}", &self.names.join("/"))
        ))
    }

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
    /// The Application Auto Scaling target that scales the resource, if it
    /// has one: sleep must hold it down too, or AWS scales the resource
    /// straight back up.
    pub target: Option<ScalableTarget>,
    /// A stop that hibernates the EC2 instance (its memory saved to its
    /// root volume) instead of shutting it down. Only a capacity that sleep
    /// sets has it; what AWS shows and what sleep saves never do.
    pub hibernate: bool,
}

/// An Application Auto Scaling scalable target's bounds and suspended
/// scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalableTarget {
    pub min: i32,
    pub max: i32,
    #[serde(default)]
    pub suspended: Suspended,
}

/// Which scaling of a scalable target is suspended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    /// Dynamic scaling in (target tracking, step scaling).
    #[serde(default)]
    pub dynamic_in: bool,
    /// Dynamic scaling out.
    #[serde(default)]
    pub dynamic_out: bool,
    /// Scheduled actions.
    #[serde(default)]
    pub scheduled: bool,
}

impl Suspended {
    /// Everything suspended: what sleep sets.
    pub const ALL: Suspended = Suspended {
        dynamic_in: true,
        dynamic_out: true,
        scheduled: true,
    };

    const NAMES: [&'static str; 3] = ["in", "out", "scheduled"];

    fn flags(self) -> [bool; 3] {
        [self.dynamic_in, self.dynamic_out, self.scheduled]
    }

    /// `none`, or the suspended parts joined by `+` (`in+out+scheduled`):
    /// the form of the sleep tag (whose values allow no commas) and of
    /// display.
    fn to_text(self) -> String {
        let on: Vec<&str> = Self::NAMES
            .into_iter()
            .zip(self.flags())
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
        if on.is_empty() {
            "none".to_string()
        } else {
            on.join("+")
        }
    }

    fn from_text(text: &str) -> Option<Suspended> {
        let mut s = Suspended::default();
        for part in text.split('+').filter(|p| *p != "none") {
            match part {
                "in" => s.dynamic_in = true,
                "out" => s.dynamic_out = true,
                "scheduled" => s.scheduled = true,
                _ => return None,
            }
        }
        Some(s)
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<ScalableTarget>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    hibernate: bool,
}

impl From<Capacity> for CapacityRepr {
    fn from(c: Capacity) -> Self {
        let mut r = CapacityRepr {
            kind: c.kind,
            running: None,
            min: None,
            desired: None,
            max: None,
            target: c.target,
            hibernate: c.hibernate,
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
        Ok(Capacity {
            target: r.target,
            hibernate: r.hibernate && level == Running(false),
            ..Capacity::of(r.kind, level)
        })
    }
}

impl Capacity {
    /// A capacity of `kind` (whose shape `level` must have).
    pub const fn of(kind: Kind, level: Level) -> Capacity {
        Capacity {
            kind,
            level,
            target: None,
            hibernate: false,
        }
    }

    /// This capacity, hibernating when it is an EC2 instance's stop and
    /// `hibernate` is asked for.
    pub fn hibernating(self, hibernate: bool) -> Capacity {
        Capacity {
            hibernate: hibernate && self.level == Running(false),
            ..self
        }
    }

    /// This capacity with the scalable target `target`.
    pub const fn with_target(self, target: Option<ScalableTarget>) -> Capacity {
        Capacity { target, ..self }
    }

    /// The kind of resource this capacity belongs to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the resource is up (costs money and can be put to sleep).
    pub fn is_up(&self) -> bool {
        match self.level {
            Running(running) => running,
            Desired(desired) => desired > 0 || self.target.is_some_and(|t| t.min > 0),
            Scaling { desired, min, .. } => desired > 0 || min > 0,
        }
    }

    /// The capacity sleep sets: stopped, 0 tasks, or min and desired 0 with max
    /// unchanged (AWS rejects a nodegroup max of 0); a scalable target at
    /// min 0 with all its scaling suspended.
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
        Capacity::of(self.kind, level).with_target(self.target.map(|t| ScalableTarget {
            min: 0,
            max: t.max,
            suspended: Suspended::ALL,
        }))
    }

    /// The value stored in the `cloudnap:sleeping` tag.
    pub fn to_tag(&self) -> String {
        let level = match self.level {
            Running(running) => if running { "running" } else { "stopped" }.to_string(),
            Desired(desired) => format!("desired={desired}"),
            Scaling { min, desired, max } => format!("min={min} desired={desired} max={max}"),
        };
        match self.target {
            Some(t) => format!(
                "{level} target_min={} target_max={} suspended={}",
                t.min,
                t.max,
                t.suspended.to_text()
            ),
            None => level,
        }
    }

    /// Parses a `cloudnap:sleeping` tag value written by [`Capacity::to_tag`].
    /// (Fields are separated by spaces: ECS and EKS tag values allow no commas.)
    pub fn from_tag(kind: Kind, value: &str) -> Option<Capacity> {
        let text = |name: &str| -> Option<&str> {
            value.split([' ', ',']).find_map(|part| {
                let (k, v) = part.split_once('=')?;
                (k.trim() == name).then_some(v.trim())
            })
        };
        let field = |name: &str| -> Option<i32> { text(name)?.parse().ok() };
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
        let target = match (text("target_min"), text("target_max")) {
            (None, None) => None,
            _ => {
                let (min, max) = (field("target_min")?, field("target_max")?);
                let suspended = Suspended::from_text(text("suspended").unwrap_or("none"))?;
                if !(0 <= min && min <= max) {
                    return None;
                }
                Some(ScalableTarget {
                    min,
                    max,
                    suspended,
                })
            }
        };
        Some(Capacity::of(kind, level).with_target(target))
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Running(true) => f.write_str("running"),
            Running(false) if self.hibernate => f.write_str("hibernated"),
            Running(false) => f.write_str("stopped"),
            Desired(desired) => write!(f, "desired {desired}"),
            Scaling { min, desired, max } => write!(f, "{min}/{desired}/{max}"),
        }?;
        match self.target {
            Some(t) if t.suspended == Suspended::default() => {
                write!(f, " (scaling {}..{})", t.min, t.max)
            }
            Some(t) => write!(
                f,
                " (scaling {}..{}, suspended: {})",
                t.min,
                t.max,
                t.suspended.to_text()
            ),
            None => Ok(()),
        }
    }
}

/// An ECS deployment as described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// `rolloutState` is `IN_PROGRESS`.
    pub in_progress: bool,
    /// When it was created, if known.
    pub created: Option<SystemTime>,
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
    pub deployments: Vec<Deployment>,
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
    /// A Redshift cluster's number of nodes (of `instance_type`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nodes: u32,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_arn_that_names_it_again() {
        for kind in Kind::ALL {
            let names: Vec<String> = (0..kind.spec().names.len())
                .map(|i| format!("n{i}"))
                .collect();
            let id = ResourceId::new(kind, names, "eu-west-1");
            let arn = id.arn("123456789012").unwrap();
            assert!(arn.starts_with("arn:aws:") && arn.contains(":eu-west-1:123456789012:"));
            assert_eq!(ResourceId::from_arn(&arn), Some(id), "{arn}");
        }
        let asg = ResourceId::new(Kind::Asg, ["web"], "us-east-1");
        assert_eq!(
            asg.arn("1").unwrap(),
            "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:*:autoScalingGroupName/web"
        );
    }

    #[test]
    fn arns_of_tagged_resources_name_them() {
        let id = |arn: &str| ResourceId::from_arn(arn).map(|id| id.to_string());
        let ids = [
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc",
            "arn:aws:ecs:eu-west-1:123456789012:service/web/api",
            "arn:aws:eks:eu-west-1:123456789012:nodegroup/dev/ng-1/8ec2a4b0-1234",
            "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:9f2e:autoScalingGroupName/web",
        ]
        .map(|arn| ResourceId::from_arn(arn).unwrap());
        assert_eq!(ids[0], ResourceId::new(Kind::Ec2, ["i-0abc"], "eu-west-1"));
        assert_eq!(
            ids[1],
            ResourceId::new(Kind::Ecs, ["web", "api"], "eu-west-1")
        );
        assert_eq!(
            ids[2],
            ResourceId::new(Kind::Eks, ["dev", "ng-1"], "eu-west-1")
        );
        assert_eq!(ids[3], ResourceId::new(Kind::Asg, ["web"], "eu-west-1"));
        assert_eq!(
            id("arn:aws:rds:eu-west-1:1:db:orders"),
            Some(ResourceId::new(Kind::Rds, ["orders"], "eu-west-1").to_string())
        );
        assert_eq!(
            id("arn:aws:rds:eu-west-1:1:cluster:aurora-1"),
            Some(ResourceId::new(Kind::RdsCluster, ["aurora-1"], "eu-west-1").to_string())
        );
        // An old-format ECS service ARN has no cluster; other resources
        // and garbage name nothing.
        assert_eq!(id("arn:aws:ecs:eu-west-1:1:service/api"), None);
        assert_eq!(id("arn:aws:ecs:eu-west-1:1:cluster/web"), None);
        assert_eq!(id("arn:aws:ec2:eu-west-1:1:volume/vol-1"), None);
        assert_eq!(id("arn:aws:ec2::1:instance/i-1"), None);
        assert_eq!(id("not an arn"), None);
        assert_eq!(id("arn:aws:ec2:eu-west-1:1:instance/"), None);
    }

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

    fn scaled(desired: i32, min: i32, max: i32, suspended: Suspended) -> Capacity {
        Capacity::of(Kind::Ecs, Desired(desired)).with_target(Some(ScalableTarget {
            min,
            max,
            suspended,
        }))
    }

    #[test]
    fn a_scalable_target_is_held_down_in_sleep_and_kept_in_the_tag_and_json() {
        let some = Suspended {
            scheduled: true,
            ..Suspended::default()
        };
        let up = scaled(3, 2, 6, some);
        assert_eq!(
            up.to_tag(),
            "desired=3 target_min=2 target_max=6 suspended=scheduled"
        );
        assert_eq!(Capacity::from_tag(Kind::Ecs, &up.to_tag()), Some(up));
        let json = serde_json::to_string(&up).unwrap();
        assert_eq!(serde_json::from_str::<Capacity>(&json).unwrap(), up);
        // A capacity saved before targets were known reads back without one.
        assert_eq!(
            serde_json::from_str::<Capacity>(r#"{"type":"ECS","desired":3}"#).unwrap(),
            Capacity::of(Kind::Ecs, Desired(3))
        );

        let asleep = up.asleep();
        assert_eq!(asleep, scaled(0, 0, 6, Suspended::ALL));
        assert_eq!(
            asleep.to_tag(),
            "desired=0 target_min=0 target_max=6 suspended=in+out+scheduled"
        );
        assert!(!asleep.is_up());
        // Desired 0 with a minimum above 0 is up: AWS scales it back.
        assert!(scaled(0, 2, 6, Suspended::default()).is_up());
        assert_eq!(
            up.to_string(),
            "desired 3 (scaling 2..6, suspended: scheduled)"
        );
        assert_eq!(
            Capacity::from_tag(Kind::Ecs, "desired=3 target_min=4 target_max=2"),
            None
        );
        assert_eq!(
            Capacity::from_tag(Kind::Ecs, "desired=3 target_min=1 target_max=2 suspended=x"),
            None
        );
    }
}

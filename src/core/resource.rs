//! Domain types for the cloud resources cloudnap manages: what a resource is,
//! what capacity it has, and how a saved capacity is written into an AWS tag.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three kinds of resource cloudnap can put to sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    /// An EC2 instance.
    Ec2,
    /// An ECS service.
    Ecs,
    /// An EKS managed nodegroup.
    Eks,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Ec2 => "EC2",
            Kind::Ecs => "ECS",
            Kind::Eks => "EKS",
        })
    }
}

/// Which resource, in which region: the identity of a registered resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum ResourceId {
    /// An EC2 instance.
    Ec2 { instance_id: String, region: String },
    /// An ECS service in a cluster.
    Ecs {
        cluster_name: String,
        service_name: String,
        region: String,
    },
    /// An EKS nodegroup in a cluster.
    Eks {
        cluster_name: String,
        nodegroup_name: String,
        region: String,
    },
}

impl ResourceId {
    /// The kind of resource.
    pub fn kind(&self) -> Kind {
        match self {
            ResourceId::Ec2 { .. } => Kind::Ec2,
            ResourceId::Ecs { .. } => Kind::Ecs,
            ResourceId::Eks { .. } => Kind::Eks,
        }
    }

    /// The AWS region the resource lives in.
    pub fn region(&self) -> &str {
        match self {
            ResourceId::Ec2 { region, .. }
            | ResourceId::Ecs { region, .. }
            | ResourceId::Eks { region, .. } => region,
        }
    }

    /// A short name within its region: `i-123`, `cluster/service`, `cluster/nodegroup`.
    pub fn name(&self) -> String {
        match self {
            ResourceId::Ec2 { instance_id, .. } => instance_id.clone(),
            ResourceId::Ecs {
                cluster_name,
                service_name,
                ..
            } => format!("{cluster_name}/{service_name}"),
            ResourceId::Eks {
                cluster_name,
                nodegroup_name,
                ..
            } => format!("{cluster_name}/{nodegroup_name}"),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind(), self.name(), self.region())
    }
}

/// The capacity of a resource: what "up" means for it, and what sleep saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Capacity {
    /// An EC2 instance is either running (or starting) or not.
    Ec2 { running: bool },
    /// An ECS service's desired task count.
    Ecs { desired: i32 },
    /// An EKS nodegroup's scaling configuration.
    Eks { min: i32, desired: i32, max: i32 },
}

impl Capacity {
    /// Whether the resource is up (costs money and can be put to sleep).
    pub fn is_up(&self) -> bool {
        match *self {
            Capacity::Ec2 { running } => running,
            Capacity::Ecs { desired } => desired > 0,
            Capacity::Eks { desired, min, .. } => desired > 0 || min > 0,
        }
    }

    /// The capacity sleep sets: stopped, 0 tasks, or min and desired 0 with max
    /// unchanged (AWS rejects a nodegroup max of 0).
    pub fn asleep(&self) -> Capacity {
        match *self {
            Capacity::Ec2 { .. } => Capacity::Ec2 { running: false },
            Capacity::Ecs { .. } => Capacity::Ecs { desired: 0 },
            Capacity::Eks { max, .. } => Capacity::Eks {
                min: 0,
                desired: 0,
                max,
            },
        }
    }

    /// The value stored in the `cloudnap:sleeping` tag.
    pub fn to_tag(&self) -> String {
        match *self {
            Capacity::Ec2 { running } => if running { "running" } else { "stopped" }.to_string(),
            Capacity::Ecs { desired } => format!("desired={desired}"),
            Capacity::Eks { min, desired, max } => {
                format!("min={min} desired={desired} max={max}")
            }
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
        match kind {
            Kind::Ec2 => match value.trim() {
                "running" => Some(Capacity::Ec2 { running: true }),
                "stopped" => Some(Capacity::Ec2 { running: false }),
                _ => None,
            },
            Kind::Ecs => Some(Capacity::Ecs {
                desired: field("desired").filter(|d| *d >= 0)?,
            }),
            Kind::Eks => {
                let (min, desired, max) = (field("min")?, field("desired")?, field("max")?);
                (min >= 0 && desired >= min && max >= desired && max > 0).then_some(Capacity::Eks {
                    min,
                    desired,
                    max,
                })
            }
        }
    }
}

impl Capacity {
    /// The kind of resource this capacity belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Capacity::Ec2 { .. } => Kind::Ec2,
            Capacity::Ecs { .. } => Kind::Ecs,
            Capacity::Eks { .. } => Kind::Eks,
        }
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Capacity::Ec2 { running } => f.write_str(if running { "running" } else { "stopped" }),
            Capacity::Ecs { desired } => write!(f, "desired {desired}"),
            Capacity::Eks { min, desired, max } => write!(f, "{min}/{desired}/{max}"),
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
            Capacity::Ec2 { running: true },
            Capacity::Ecs { desired: 3 },
            Capacity::Eks {
                min: 1,
                desired: 2,
                max: 4,
            },
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
        let up = Capacity::Eks {
            min: 1,
            desired: 2,
            max: 4,
        };
        assert_eq!(
            up.asleep(),
            Capacity::Eks {
                min: 0,
                desired: 0,
                max: 4
            }
        );
        assert!(up.is_up());
        assert!(!up.asleep().is_up());
        assert!(!Capacity::Ecs { desired: 3 }.asleep().is_up());
    }
}

//! One module per kind of resource: everything the generic code (protocol,
//! registry, records, policy, view) needs to know about a kind, as one
//! [`Spec`]. Adding a kind is a module here with its `SPEC`, a [`Kind`]
//! variant listed in [`Kind::ALL`] and [`Kind::spec`], and its adapter in
//! `src/cloud/aws/`.

pub mod asg;
mod ec2;
mod ecs;
mod eks;
pub mod rds;

use crate::core::deadline::SleepCall;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of resource cloudnap can put to sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// An EC2 instance.
    Ec2,
    /// An ECS service.
    Ecs,
    /// An EKS managed nodegroup.
    Eks,
    /// An EC2 Auto Scaling group.
    Asg,
    /// An RDS DB instance.
    Rds,
    /// An Aurora DB cluster.
    RdsCluster,
}

impl Kind {
    /// Every kind, in the order of services.yaml, the command tables and listings.
    pub const ALL: [Kind; 6] = [
        Kind::Ec2,
        Kind::Ecs,
        Kind::Eks,
        Kind::Asg,
        Kind::Rds,
        Kind::RdsCluster,
    ];

    /// What this kind is.
    pub fn spec(self) -> &'static Spec {
        match self {
            Kind::Ec2 => &ec2::SPEC,
            Kind::Ecs => &ecs::SPEC,
            Kind::Eks => &eks::SPEC,
            Kind::Asg => &asg::SPEC,
            Kind::Rds => &rds::INSTANCE,
            Kind::RdsCluster => &rds::CLUSTER,
        }
    }

    /// The kind whose label (`EC2`) this is, in any case.
    pub fn from_label(label: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.spec().label.eq_ignore_ascii_case(label))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().label)
    }
}

/// One name field of a resource id.
#[derive(Debug)]
pub struct NameField {
    /// Its key in services.yaml, JSON commands and state.json (`cluster_name`).
    pub key: &'static str,
    /// Its label in text commands (`cluster`).
    pub label: &'static str,
}

/// What a kind's capacity is made of (see [`crate::core::resource::Level`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Running or stopped.
    Running,
    /// A desired count.
    Desired,
    /// min/desired/max of a group of instances; sleep keeps max.
    Scaling,
}

/// Everything generic code knows about a kind.
#[derive(Debug)]
pub struct Spec {
    /// `EC2`: the `type` of ids and capacities in JSON and state.json, the
    /// `service_type` of JSON commands, the suffix of text commands.
    pub label: &'static str,
    /// Its services.yaml section (`ec2_instances`).
    pub section: &'static str,
    /// What one resource is called (`instance`).
    pub noun: &'static str,
    /// The fields naming a resource within its region, in order.
    pub names: &'static [NameField],
    /// Checks of the names beyond [`crate::core::registry::check_name`].
    pub check: fn(&[String]) -> Result<(), String>,
    /// What its capacity is made of.
    pub shape: Shape,
    /// Whether its services.yaml entries take `desired_size` (for `START`
    /// without a saved capacity).
    pub desired_size: bool,
    /// Whether its services.yaml entries take `hibernate: true` (and
    /// `aws.ec2_hibernate` applies to it).
    pub hibernates: bool,
    /// What `LIST_<label>` answers, for `HELP` and docs/protocol.md.
    pub list: &'static str,
    /// The reply key of `LIST_<label>` (`instances`, `clusters`).
    pub list_key: &'static str,
    /// The label of `START_<label>`'s optional count, if it takes one.
    pub start_count: Option<&'static str>,
    /// What `START_<label>` does.
    pub start: &'static str,
    /// What `STOP_<label>` does.
    pub stop: &'static str,
    /// What `SCALE_<label>` does, if it exists.
    pub scale: Option<&'static str>,
    /// Whether `REGISTER_*` looks at the resource first: it may be part of
    /// a group that must be registered instead.
    pub checked_on_register: bool,
    /// After how many seconds stopped AWS starts it again by itself (RDS:
    /// 7 days), if it does.
    pub restarts_after: Option<u64>,
    /// CloudWatch dimensions of its metrics, each with the index of the name
    /// field holding its value (none: never busy by metrics).
    pub dimensions: &'static [(&'static str, usize)],
    /// How its resources are found by their `cloudnap:managed=true` tag, if
    /// they can be.
    pub tagged: Option<Tagged>,
    /// The API call that puts a resource (named by its name fields) to
    /// sleep as cloudnap's own sleep does, for the AWS-side deadline (see
    /// [`crate::core::deadline`]).
    pub sleep_call: fn(&[String]) -> SleepCall,
}

/// How resources of a kind are found by tag (Resource Groups Tagging API)
/// and named from their ARN.
#[derive(Debug)]
pub struct Tagged {
    /// The API's resource type filter, `service:resource` (`ec2:instance`):
    /// the ARN's service and the start of its resource part.
    pub resource_type: &'static str,
    /// What precedes the name fields, `/`-separated, in the ARN's resource
    /// part (`instance/` in `instance/i-0abc`); parts after them (a
    /// nodegroup's id) are ignored.
    pub names_after: &'static str,
    /// The ARN's service and resource parts, `{}` standing for the name
    /// fields joined by `/` (`ec2:instance/{}`), `*` for parts cloudnap
    /// does not know: what IAM policies name.
    pub arn: &'static str,
}

/// The name field at `index` (empty if there is none).
fn field(names: &[String], index: usize) -> &str {
    names.get(index).map_or("", String::as_str)
}

/// No checks beyond the generic ones.
fn no_check(_: &[String]) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_serialized_as_its_label() {
        for kind in Kind::ALL {
            let label = kind.spec().label;
            assert_eq!(serde_json::to_value(kind).unwrap(), label);
            assert_eq!(Kind::from_label(&label.to_lowercase()), Some(kind));
            assert_eq!(serde_json::from_value::<Kind>(label.into()).unwrap(), kind);
        }
    }
}

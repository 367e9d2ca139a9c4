//! What a command returns: [`Reply`] on success, [`CommandError`] on
//! failure. The server turns them into JSON; the tray and tests read the
//! fields.

use crate::core::holds::HoldRow;
use crate::core::report::Outcome;
use crate::core::resource::{
    AutoScalingGroup, Capacity, Ec2Instance, EcsService, EksNodegroup, RdsCluster, RdsInstance,
    ResourceId,
};
use crate::core::status::Status;
use serde::Serialize;
use std::collections::BTreeMap;

/// A command's result. Serialized untagged: each variant has its own keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `STATUS`, `PAUSE`, `RESUME`, `USER_ACTIVITY`.
    Status(Box<Status>),
    /// `SLEEP_NOW`, `WAKE_NOW`: one row per resource.
    Report(Vec<Outcome>),
    /// `LIST_*`.
    Listing(Listing),
    /// `START_*`, `STOP_*`, `SCALE_EKS`: the capacity set.
    Changed {
        resource: ResourceId,
        capacity: Capacity,
        dry_run: bool,
    },
    /// `REGISTER_*`.
    Registered {
        registered: ResourceId,
        count: usize,
    },
    /// `UNREGISTER_*`.
    Unregistered {
        unregistered: ResourceId,
        count: usize,
    },
    /// `LIST_REGISTERED_SERVICES`.
    Registry {
        services: Vec<RegisteredRow>,
        config_error: Option<String>,
    },
    /// `HOLD`, `HOLD_RENEW`: the hold.
    Hold { hold: HoldRow },
    /// `HOLD_RELEASE`: the hold that ended.
    Released { released: HoldRow },
    /// `LIST_HOLDS`.
    Holds { holds: Vec<HoldRow> },
    /// `REPORT`: the savings report.
    Savings(Box<crate::core::savings::SavingsReport>),
    /// `HELP`: every text command and JSON type.
    Help {
        commands: Vec<HelpRow>,
        json_types: Vec<HelpRow>,
    },
    /// `USER_ACTIVITY` from a sender that could not be identified: counted
    /// as presence, and nothing more said (`{"activity": "counted"}`).
    Counted { activity: &'static str },
}

impl Reply {
    /// [`Reply::Counted`].
    pub fn counted() -> Reply {
        Reply::Counted {
            activity: "counted",
        }
    }
}

/// One entry of services.yaml, as `LIST_REGISTERED_SERVICES` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredRow {
    pub resource: ResourceId,
    pub description: String,
    pub profile: Option<String>,
    pub desired_size: Option<i32>,
    /// `services.yaml`, or `tag` for a resource found by its
    /// `cloudnap:managed=true` tag.
    pub source: &'static str,
}

/// One command of the protocol, as `HELP` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelpRow {
    pub form: String,
    pub does: String,
}

/// What `LIST_*` found. The keys are those of the original cloudnap
/// protocol: `instances` for EC2, `clusters` for ECS and EKS.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Listing {
    Ec2 {
        instances: Vec<Ec2Instance>,
    },
    Ecs {
        clusters: Vec<EcsCluster>,
    },
    Eks {
        clusters: Vec<EksCluster>,
    },
    Asg {
        groups: Vec<AutoScalingGroup>,
    },
    Rds {
        instances: Vec<RdsInstance>,
    },
    RdsClusters {
        clusters: Vec<RdsCluster>,
    },
    /// `LIST_ALL_SERVICES`.
    All {
        ec2: Vec<Ec2Instance>,
        ecs: Vec<EcsCluster>,
        eks: Vec<EksCluster>,
    },
}

/// An ECS cluster and its services.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EcsCluster {
    pub cluster_name: String,
    pub region: String,
    pub services: Vec<EcsService>,
}

/// An EKS cluster and its nodegroups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EksCluster {
    pub cluster_name: String,
    pub region: String,
    pub nodegroups: Vec<EksNodegroup>,
}

/// Groups rows by (region, cluster), keeping each group's order.
fn by_cluster<T, C>(
    rows: Vec<T>,
    key: impl Fn(&T) -> (String, String),
    make: impl Fn(String, String, Vec<T>) -> C,
) -> Vec<C> {
    let mut groups: BTreeMap<(String, String), Vec<T>> = BTreeMap::new();
    for row in rows {
        groups.entry(key(&row)).or_default().push(row);
    }
    groups
        .into_iter()
        .map(|((region, cluster), rows)| make(cluster, region, rows))
        .collect()
}

/// ECS services grouped into their clusters.
pub fn ecs_clusters(services: Vec<EcsService>) -> Vec<EcsCluster> {
    by_cluster(
        services,
        |s| (s.region.clone(), s.cluster_name.clone()),
        |cluster_name, region, services| EcsCluster {
            cluster_name,
            region,
            services,
        },
    )
}

/// EKS nodegroups grouped into their clusters.
pub fn eks_clusters(nodegroups: Vec<EksNodegroup>) -> Vec<EksCluster> {
    by_cluster(
        nodegroups,
        |n| (n.region.clone(), n.cluster_name.clone()),
        |cluster_name, region, nodegroups| EksCluster {
            cluster_name,
            region,
            nodegroups,
        },
    )
}

/// Why a command failed. Bad input changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The datagram or its fields are not a valid command.
    #[error("{0}")]
    Invalid(String),
    /// Refused before running: wrong token, rate limit, busy, too large.
    #[error("{0}")]
    Refused(String),
    /// An AWS call failed; `code` is AWS's error code when it sent one.
    #[error("{subject}: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Cloud {
        /// The resource or region the call was about.
        subject: String,
        code: Option<String>,
        message: String,
    },
    /// services.yaml could not be changed.
    #[error("{0}")]
    Registry(String),
    /// A hold could not be made or was not found.
    #[error("{0}")]
    Hold(String),
    /// The state file could not be read or written.
    #[error("{0}")]
    State(String),
}

impl CommandError {
    /// AWS's error code, if the failure came from AWS.
    pub fn code(&self) -> Option<&str> {
        match self {
            CommandError::Cloud { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(cluster: &str, name: &str, region: &str) -> EcsService {
        EcsService {
            cluster_name: cluster.into(),
            service_name: name.into(),
            region: region.into(),
            status: "ACTIVE".into(),
            desired_count: 1,
            running_count: 1,
            pending_count: 0,
        }
    }

    #[test]
    fn services_are_nested_in_their_clusters_per_region() {
        let clusters = ecs_clusters(vec![
            svc("a", "api", "us-east-1"),
            svc("b", "web", "us-east-1"),
            svc("a", "db", "us-east-1"),
            svc("a", "api", "eu-west-1"),
        ]);
        let names: Vec<_> = clusters
            .iter()
            .map(|c| (c.region.as_str(), c.cluster_name.as_str(), c.services.len()))
            .collect();
        assert_eq!(
            names,
            [
                ("eu-west-1", "a", 1),
                ("us-east-1", "a", 2),
                ("us-east-1", "b", 1)
            ]
        );
    }

    #[test]
    fn cloud_errors_keep_their_code() {
        let e = CommandError::Cloud {
            subject: "EC2 i-1 (us-east-1)".into(),
            code: Some("UnauthorizedOperation".into()),
            message: "not allowed".into(),
        };
        assert_eq!(e.code(), Some("UnauthorizedOperation"));
        assert_eq!(
            e.to_string(),
            "EC2 i-1 (us-east-1): UnauthorizedOperation: not allowed"
        );
    }
}

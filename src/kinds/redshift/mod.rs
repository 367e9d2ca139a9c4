//! Redshift provisioned clusters: paused and resumed (`available` ↔
//! `paused`; a paused cluster bills only its storage). Busy while clients
//! are connected (CloudWatch `AWS/Redshift` `DatabaseConnections`).

pub mod aws;
mod xml;

use crate::kinds::spec::{
    field, no_check, Batch, Metric, NameField, Reduce, Shape, SleepCall, Spec, Tagged,
};
use serde_json::json;
use std::time::Duration;

/// A Redshift provisioned cluster.
pub static CLUSTER: Spec = Spec {
    label: "REDSHIFT_CLUSTER",
    section: "redshift_clusters",
    noun: "cluster",
    names: &[NameField {
        key: "cluster_identifier",
        label: "cluster",
    }],
    check: no_check,
    shape: Shape::Running,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "Redshift provisioned clusters: `{\"clusters\": [{cluster_identifier, region, status, node_type, number_of_nodes}]}`",
    list_key: "clusters",
    start_count: None,
    start: "resumes the cluster (waits while it is still pausing)",
    stop: "pauses the cluster (its storage is kept and still billed)",
    scale: None,
    checked_on_register: false,
    restarts_after: None,
    dimensions: &[("ClusterIdentifier", 0)],
    tagged: Some(Tagged {
        resource_type: "redshift:cluster",
        names_after: "cluster:",
        arn: "redshift:cluster:{}",
    }),
    sleep_call,
    batch: Batch::Region,
    busy: &[Metric {
        setting: "redshift_connections",
        default: 1.0,
        max: 500.0,
        label: "database",
        unit: "connections",
        namespace: "AWS/Redshift",
        metrics: &["DatabaseConnections"],
        reduce: Reduce::Mean,
    }],
    list_group: None,
    list_all: false,
    control_plane: false,
    ready_within: 1800,
    ready_port: false,
    ready_in: Duration::from_secs(600),
};

/// PauseCluster.
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "redshift:pauseCluster",
        input: json!({"ClusterIdentifier": field(names, 0)}),
    }
}

/// Whether a cluster in `status` costs compute: everything but `paused`,
/// `pausing` and `deleting`.
pub fn is_up(status: &str) -> bool {
    !matches!(status, "paused" | "pausing" | "deleting")
}

/// Whether a cluster in `status` is usable.
pub fn ready(status: &str) -> bool {
    status == "available"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_costs_until_paused_and_is_usable_when_available() {
        assert!(is_up("available") && is_up("resuming") && is_up("modifying"));
        assert!(!is_up("pausing") && !is_up("paused"));
        assert!(ready("available") && !ready("resuming"));
        let call = sleep_call(&["dw".into()]);
        assert_eq!(
            call.arn(),
            "arn:aws:scheduler:::aws-sdk:redshift:pauseCluster"
        );
        assert_eq!(call.input, json!({"ClusterIdentifier": "dw"}));
    }
}

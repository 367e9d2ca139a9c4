//! RDS: DB instances and Aurora clusters, stopped and started. An instance
//! of a cluster is never stopped alone (AWS refuses it: the cluster is
//! stopped as a whole). AWS starts a database by itself after 7 days
//! stopped: while the user is away cloudnap stops it again (see
//! [`crate::core::policy::decide::decide_refresh`]).

pub mod aws;

use crate::kinds::spec::{field, no_check, Batch, NameField, Shape, SleepCall, Spec, Tagged};
use serde_json::json;
use std::time::Duration;

/// How long AWS lets a database stay stopped before it starts it again.
const RESTARTS_AFTER: u64 = 7 * 24 * 3600;

/// An RDS DB instance.
pub static INSTANCE: Spec = Spec {
    label: "RDS",
    section: "rds_instances",
    noun: "database",
    names: &[NameField {
        key: "db_instance_identifier",
        label: "db_instance",
    }],
    check: no_check,
    shape: Shape::Running,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "RDS DB instances: `{\"instances\": [{db_instance_identifier, region, status, engine, db_instance_class, db_cluster_identifier}]}`",
    list_key: "instances",
    start_count: None,
    start: "starts the database (waits while it is still stopping)",
    stop: "stops the database",
    scale: None,
    checked_on_register: true,
    restarts_after: Some(RESTARTS_AFTER),
    dimensions: &[],
    tagged: Some(Tagged {
        resource_type: "rds:db",
        names_after: "db:",
        arn: "rds:db:{}",
    }),
    sleep_call: stop_instance,
    batch: Batch::Region,
    busy: &[],
    list_group: None,
    list_all: false,
    control_plane: false,
    ready_within: 1200,
    ready_port: false,
    ready_in: Duration::from_secs(600),
};

/// An Aurora DB cluster.
pub static CLUSTER: Spec = Spec {
    label: "RDS_CLUSTER",
    section: "rds_clusters",
    noun: "cluster",
    names: &[NameField {
        key: "db_cluster_identifier",
        label: "db_cluster",
    }],
    check: no_check,
    shape: Shape::Running,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "Aurora DB clusters: `{\"clusters\": [{db_cluster_identifier, region, status, engine, members}]}`",
    list_key: "clusters",
    start_count: None,
    start: "starts the cluster (waits while it is still stopping)",
    stop: "stops the cluster and its instances",
    scale: None,
    checked_on_register: false,
    restarts_after: Some(RESTARTS_AFTER),
    dimensions: &[],
    tagged: Some(Tagged {
        resource_type: "rds:cluster",
        names_after: "cluster:",
        arn: "rds:cluster:{}",
    }),
    sleep_call: stop_cluster,
    batch: Batch::Region,
    busy: &[],
    list_group: None,
    list_all: false,
    control_plane: false,
    ready_within: 1200,
    ready_port: false,
    ready_in: Duration::from_secs(600),
};

/// Why an instance of cluster `cluster` is never stopped on its own.
pub fn member_reason(cluster: &str) -> String {
    format!("in_rds_cluster: {cluster}")
}

/// StopDBInstance.
fn stop_instance(names: &[String]) -> SleepCall {
    SleepCall {
        action: "rds:stopDBInstance",
        input: json!({"DbInstanceIdentifier": field(names, 0)}),
    }
}

/// StopDBCluster.
fn stop_cluster(names: &[String]) -> SleepCall {
    SleepCall {
        action: "rds:stopDBCluster",
        input: json!({"DbClusterIdentifier": field(names, 0)}),
    }
}

/// Whether a DB instance or Aurora cluster in `status` is usable.
pub fn ready(status: &str) -> bool {
    status == "available"
}

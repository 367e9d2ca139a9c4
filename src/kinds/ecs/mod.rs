//! ECS services: desired count 0 and back.

pub mod aws;

use crate::kinds::spec::{
    field, no_check, Batch, Metric, NameField, Reduce, Shape, SleepCall, Spec, Tagged,
};
use serde_json::json;
use std::time::Duration;

/// An ECS service in a cluster.
pub static ECS: Spec = Spec {
    label: "ECS",
    section: "ecs_services",
    noun: "service",
    names: &[
        NameField {
            key: "cluster_name",
            label: "cluster",
        },
        NameField {
            key: "service_name",
            label: "service",
        },
    ],
    check: no_check,
    shape: Shape::Desired,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "ECS clusters with their services: `{\"clusters\": [{cluster_name, region, services: [{service_name, status, desired_count, running_count, pending_count, ...}]}]}`",
    list_key: "clusters",
    start_count: Some("count"),
    start: "sets the desired count to `count`, else the count cloudnap saved when it put the service to sleep, else 1",
    stop: "desired count 0",
    scale: None,
    checked_on_register: false,
    restarts_after: None,
    dimensions: &[("ClusterName", 0), ("ServiceName", 1)],
    tagged: Some(Tagged {
        resource_type: "ecs:service",
        names_after: "service/",
        arn: "ecs:service/{}",
    }),
    sleep_call,
    batch: Batch::Field(0),
    busy: &[Metric {
        setting: "ecs_cpu_percent",
        default: 10.0,
        max: 100.0,
        label: "CPU",
        unit: "%",
        namespace: "AWS/ECS",
        metrics: &["CPUUtilization"],
        reduce: Reduce::Mean,
    }],
    list_group: Some("services"),
    list_all: true,
    control_plane: false,
    ready_within: 600,
    ready_port: false,
    ready_in: Duration::from_secs(120),
};

/// UpdateService with desired count 0.
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "ecs:updateService",
        input: json!({"Cluster": field(names, 0), "Service": field(names, 1), "DesiredCount": 0}),
    }
}

/// Whether a service is usable: as many tasks running as desired, and its
/// PRIMARY deployment's rollout `COMPLETED` (`None`: a deployment
/// controller that reports no rollout state, judged by the counts alone).
pub fn ready(running: i32, desired: i32, primary_rollout: Option<&str>) -> bool {
    running == desired && primary_rollout.is_none_or(|r| r == "COMPLETED")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_service_is_ready_with_every_task_running_and_its_rollout_done() {
        assert!(super::ready(2, 2, Some("COMPLETED")));
        assert!(super::ready(2, 2, None));
        assert!(!super::ready(1, 2, Some("COMPLETED")));
        assert!(!super::ready(2, 2, Some("IN_PROGRESS")));
    }
}

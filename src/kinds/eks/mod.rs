//! EKS managed nodegroups: min 0 / desired 0 (max kept) and back.

pub mod aws;

use crate::kinds::spec::{field, no_check, Batch, NameField, Shape, SleepCall, Spec, Tagged};
use serde_json::json;
use std::time::Duration;

/// An EKS nodegroup in a cluster.
pub static EKS: Spec = Spec {
    label: "EKS",
    section: "eks_nodegroups",
    noun: "nodegroup",
    names: &[
        NameField {
            key: "cluster_name",
            label: "cluster",
        },
        NameField {
            key: "nodegroup_name",
            label: "nodegroup",
        },
    ],
    check: no_check,
    shape: Shape::Scaling,
    desired_size: true,
    hibernates: false,
    ssh: false,
    list: "EKS clusters with their nodegroups: `{\"clusters\": [{cluster_name, region, nodegroups: [{nodegroup_name, status, min_size, desired_size, max_size, ...}]}]}`",
    list_key: "clusters",
    start_count: Some("desired"),
    start: "`desired`, else the saved min/desired/max, else the entry's `desired_size` (default 1)",
    stop: "min and desired 0, max unchanged",
    scale: Some("desired `count`; min lowered / max raised if needed"),
    checked_on_register: false,
    restarts_after: None,
    dimensions: &[],
    tagged: Some(Tagged {
        resource_type: "eks:nodegroup",
        names_after: "nodegroup/",
        arn: "eks:nodegroup/{}/*",
    }),
    sleep_call,
    batch: Batch::Region,
    busy: &[],
    list_group: Some("nodegroups"),
    list_all: true,
    control_plane: true,
    ready_within: 900,
    ready_port: false,
    ready_in: Duration::from_secs(300),
};

/// UpdateNodegroupConfig with min and desired 0 (max kept).
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "eks:updateNodegroupConfig",
        input: json!({
            "ClusterName": field(names, 0),
            "NodegroupName": field(names, 1),
            "ScalingConfig": {"MinSize": 0, "DesiredSize": 0},
        }),
    }
}

/// Whether a nodegroup is usable: `ACTIVE`, and, where its Auto Scaling
/// groups can be read (`in_service`: their InService instances), its
/// desired size reached.
pub fn ready(status: &str, desired: i32, in_service: Option<i32>) -> bool {
    status == "ACTIVE" && in_service.is_none_or(|n| n >= desired)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nodegroup_is_ready_when_active_with_its_nodes_in_service() {
        assert!(super::ready("ACTIVE", 2, None));
        assert!(super::ready("ACTIVE", 2, Some(2)));
        assert!(!super::ready("ACTIVE", 2, Some(1)));
        assert!(!super::ready("UPDATING", 2, Some(2)));
    }
}

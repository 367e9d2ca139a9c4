//! EC2 Auto Scaling groups: min 0 / desired 0 (max kept) and back. Their
//! instances are never stopped alone (the group would replace them).

pub mod aws;

use crate::kinds::spec::{field, no_check, Batch, NameField, Shape, SleepCall, Spec, Tagged};
use serde_json::json;
use std::time::Duration;

/// An Auto Scaling group.
pub static ASG: Spec = Spec {
    label: "ASG",
    section: "autoscaling_groups",
    noun: "group",
    names: &[NameField {
        key: "group_name",
        label: "group",
    }],
    check: no_check,
    shape: Shape::Scaling,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "Auto Scaling groups: `{\"groups\": [{group_name, region, status, min_size, desired_size, max_size, instances}]}`",
    list_key: "groups",
    start_count: Some("desired"),
    start: "`desired`, else the saved min/desired/max, else desired 1",
    stop: "min and desired 0, max unchanged",
    scale: None,
    checked_on_register: false,
    restarts_after: None,
    dimensions: &[],
    tagged: Some(Tagged {
        resource_type: "autoscaling:autoScalingGroup",
        names_after: "autoScalingGroupName/",
        arn: "autoscaling:autoScalingGroup:*:autoScalingGroupName/{}",
    }),
    sleep_call,
    batch: Batch::Region,
    busy: &[],
    list_group: None,
    list_all: false,
    control_plane: false,
    ready_within: 600,
    ready_port: false,
    ready_in: Duration::from_secs(180),
};

/// The tag AWS puts on every instance of a group: its value names the group.
pub const MEMBER_TAG: &str = "aws:autoscaling:groupName";

/// Why an instance of group `group` is never stopped on its own.
pub fn member_reason(group: &str) -> String {
    format!("in_autoscaling_group: {group}")
}

/// UpdateAutoScalingGroup with min and desired 0 (max kept).
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "autoscaling:updateAutoScalingGroup",
        input: json!({"AutoScalingGroupName": field(names, 0), "MinSize": 0, "DesiredCapacity": 0}),
    }
}

/// Whether a group is usable: as many instances `InService` as desired.
pub fn ready(in_service: i32, desired: i32) -> bool {
    in_service >= desired
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_group_is_ready_with_its_desired_instances_in_service() {
        assert!(super::ready(3, 3));
        assert!(!super::ready(2, 3));
    }
}

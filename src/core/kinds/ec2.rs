//! EC2 instances: stopped and started.

use super::{field, NameField, Shape, Spec, Tagged};
use crate::core::deadline::SleepCall;
use serde_json::json;

/// An EC2 instance.
pub static SPEC: Spec = Spec {
    label: "EC2",
    section: "ec2_instances",
    noun: "instance",
    names: &[NameField {
        key: "instance_id",
        label: "instance_id",
    }],
    check,
    shape: Shape::Running,
    desired_size: false,
    hibernates: true,
    list: "EC2 instances: `{\"instances\": [{instance_id, region, instance_type, state, name, public_ip, private_ip}]}`",
    list_key: "instances",
    start_count: None,
    start: "starts the instance (waits while it is still stopping)",
    stop: "stops the instance",
    scale: None,
    checked_on_register: true,
    restarts_after: None,
    dimensions: &[("InstanceId", 0)],
    tagged: Some(Tagged {
        resource_type: "ec2:instance",
        names_after: "instance/",
        arn: "ec2:instance/{}",
    }),
    sleep_call,
};

fn check(names: &[String]) -> Result<(), String> {
    match names {
        [id] if !id.starts_with("i-") => Err(format!(
            "instance_id `{id}` must look like i-0123456789abcdef0"
        )),
        _ => Ok(()),
    }
}

/// StopInstances.
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "ec2:stopInstances",
        input: json!({"InstanceIds": [field(names, 0)]}),
    }
}

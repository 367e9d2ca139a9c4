//! EC2 instances: stopped and started.

pub mod aws;
mod ready;

use crate::kinds::spec::{field, Batch, Metric, NameField, Reduce, Shape, SleepCall, Spec, Tagged};
use serde_json::json;
use std::time::Duration;

/// An EC2 instance.
pub static EC2: Spec = Spec {
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
    ssh: true,
    list: "EC2 instances: `{\"instances\": [{instance_id, region, instance_type, state, name, public_ip, private_ip, public_dns, private_dns}]}`",
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
    batch: Batch::Region,
    busy: &[
        Metric {
            setting: "ec2_cpu_percent",
            default: 10.0,
            max: 100.0,
            label: "CPU",
            unit: "%",
            namespace: "AWS/EC2",
            metrics: &["CPUUtilization"],
            reduce: Reduce::Mean,
        },
        Metric {
            setting: "ec2_network_kb_per_second",
            default: 100.0,
            max: 10_000_000.0,
            label: "network",
            unit: "kB/s",
            namespace: "AWS/EC2",
            metrics: &["NetworkIn", "NetworkOut"],
            reduce: Reduce::KilobytesPerSecond,
        },
    ],
    list_group: None,
    list_all: true,
    control_plane: false,
    ready_within: 300,
    ready_port: true,
    ready_in: Duration::from_secs(60),
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

/// Whether an instance in `state` whose instance and system status checks
/// say `instance` and `system` is usable: running, both checks passed
/// (`ok`, or `not-applicable` where AWS runs none).
pub fn ready(state: &str, instance: &str, system: &str) -> bool {
    let passed = |c: &str| matches!(c, "ok" | "not-applicable");
    state == "running" && passed(instance) && passed(system)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_instance_is_ready_once_running_with_both_checks_passed() {
        assert!(super::ready("running", "ok", "ok"));
        assert!(super::ready("running", "not-applicable", "ok"));
        assert!(!super::ready("running", "initializing", "ok"));
        assert!(!super::ready("running", "ok", "impaired"));
        assert!(!super::ready("pending", "ok", "ok"));
    }
}

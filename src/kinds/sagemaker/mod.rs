//! SageMaker notebook instances: stopped and started (`InService` ↔
//! `Stopped`). Never busy by metrics: a notebook instance publishes no
//! CloudWatch metric of its own (kernel activity is only readable through
//! Jupyter on the instance itself), so its user's own activity decides.

pub mod aws;

use crate::kinds::spec::{field, no_check, Batch, NameField, Shape, SleepCall, Spec, Tagged};
use serde_json::json;
use std::time::Duration;

/// A SageMaker notebook instance.
pub static NOTEBOOK: Spec = Spec {
    label: "SAGEMAKER_NOTEBOOK",
    section: "sagemaker_notebooks",
    noun: "notebook instance",
    names: &[NameField {
        key: "notebook_instance_name",
        label: "notebook",
    }],
    check: no_check,
    shape: Shape::Running,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "SageMaker notebook instances: `{\"notebooks\": [{notebook_instance_name, region, status, instance_type}]}`",
    list_key: "notebooks",
    start_count: None,
    start: "starts the notebook instance (waits while it is still stopping)",
    stop: "stops the notebook instance (its ML storage volume is kept)",
    scale: None,
    checked_on_register: false,
    restarts_after: None,
    dimensions: &[],
    tagged: Some(Tagged {
        resource_type: "sagemaker:notebook-instance",
        names_after: "notebook-instance/",
        arn: "sagemaker:notebook-instance/{}",
    }),
    sleep_call,
    batch: Batch::Region,
    busy: &[],
    list_group: None,
    list_all: false,
    control_plane: false,
    ready_within: 900,
    ready_port: false,
    ready_in: Duration::from_secs(300),
};

/// StopNotebookInstance.
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "sagemaker:stopNotebookInstance",
        input: json!({"NotebookInstanceName": field(names, 0)}),
    }
}

/// Whether a notebook instance in `status` costs: everything but `Stopped`,
/// `Stopping`, `Failed` and `Deleting` (`Pending`, `InService`, `Updating`).
pub fn is_up(status: &str) -> bool {
    !matches!(status, "Stopped" | "Stopping" | "Failed" | "Deleting")
}

/// Whether a notebook instance in `status` is usable.
pub fn ready(status: &str) -> bool {
    status == "InService"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notebook_costs_until_it_stops_and_is_usable_in_service() {
        assert!(is_up("Pending") && is_up("InService") && is_up("Updating"));
        assert!(!is_up("Stopping") && !is_up("Stopped") && !is_up("Failed"));
        assert!(ready("InService") && !ready("Pending"));
        let call = sleep_call(&["nb".into()]);
        assert_eq!(
            call.arn(),
            "arn:aws:scheduler:::aws-sdk:sagemaker:stopNotebookInstance"
        );
        assert_eq!(call.input, json!({"NotebookInstanceName": "nb"}));
    }
}

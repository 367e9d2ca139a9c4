//! Amazon WorkSpaces (personal): stopped and started (`AVAILABLE` ↔
//! `STOPPED`). Only a WorkSpace billed by the hour can be stopped: running
//! mode `AUTO_STOP` (or `MANUAL`); an `ALWAYS_ON` one is billed monthly and
//! AWS refuses to stop it, so cloudnap refuses it by name and never sends
//! its stop. Never busy by metrics: the WorkSpace's user is cloudnap's
//! user, whose keyboard and mouse in the WorkSpaces client are input on
//! this machine; a client left connected without input is the idle cost
//! cloudnap cuts (`AWS/WorkSpaces` `UserConnected` would keep it up).

pub mod aws;

use crate::kinds::spec::{field, Batch, NameField, Shape, SleepCall, Spec, Tagged};
use serde_json::json;
use std::time::Duration;

/// A WorkSpace.
pub static WORKSPACE: Spec = Spec {
    label: "WORKSPACE",
    section: "workspaces",
    noun: "WorkSpace",
    names: &[NameField {
        key: "workspace_id",
        label: "workspace_id",
    }],
    check,
    shape: Shape::Running,
    desired_size: false,
    hibernates: false,
    ssh: false,
    list: "Amazon WorkSpaces: `{\"workspaces\": [{workspace_id, region, state, running_mode, compute_type, bundle_id, user_name}]}`",
    list_key: "workspaces",
    start_count: None,
    start: "starts the WorkSpace (waits while it is still stopping)",
    stop: "stops the WorkSpace (AUTO_STOP or MANUAL running mode; an ALWAYS_ON one is refused)",
    scale: None,
    checked_on_register: false,
    restarts_after: None,
    dimensions: &[],
    tagged: Some(Tagged {
        resource_type: "workspaces:workspace",
        names_after: "workspace/",
        arn: "workspaces:workspace/{}",
    }),
    sleep_call,
    batch: Batch::Region,
    busy: &[],
    list_group: None,
    list_all: false,
    control_plane: false,
    ready_within: 900,
    ready_port: false,
    ready_in: Duration::from_secs(180),
};

/// The most WorkSpaces one DescribeWorkspaces (by id), StopWorkspaces or
/// StartWorkspaces takes.
pub const PER_CALL: usize = 25;

fn check(names: &[String]) -> Result<(), String> {
    match names {
        [id] if !id.starts_with("ws-") => {
            Err(format!("workspace_id `{id}` must look like ws-0123abcde"))
        }
        _ => Ok(()),
    }
}

/// StopWorkspaces.
fn sleep_call(names: &[String]) -> SleepCall {
    SleepCall {
        action: "workspaces:stopWorkspaces",
        input: json!({"StopWorkspaceRequests": [{"WorkspaceId": field(names, 0)}]}),
    }
}

/// Whether a WorkSpace in `state` costs by the hour: everything but
/// `STOPPED`, `STOPPING`, `SUSPENDED`, `TERMINATING` and `TERMINATED`
/// (`PENDING`, `STARTING`, `AVAILABLE`, `REBOOTING`, `MAINTENANCE`,
/// `ERROR`...: AWS stops one in `ERROR`, `IMPAIRED` or `UNHEALTHY` too).
pub fn is_up(state: &str) -> bool {
    !matches!(
        state,
        "STOPPED" | "STOPPING" | "SUSPENDED" | "TERMINATING" | "TERMINATED"
    )
}

/// Whether a WorkSpace in `state` is usable.
pub fn ready(state: &str) -> bool {
    state == "AVAILABLE"
}

/// Why WorkSpace `id` in running mode `mode` is never stopped, if it is
/// not: an `ALWAYS_ON` one is billed monthly (stopping it saves nothing)
/// and AWS stops only `AUTO_STOP` and `MANUAL` ones.
pub fn never_stopped(id: &str, mode: &str) -> Option<String> {
    (mode == "ALWAYS_ON").then(|| {
        format!(
            "WorkSpace {id} cannot be stopped: its running mode is ALWAYS_ON (billed monthly); \
             AWS stops only AUTO_STOP and MANUAL WorkSpaces"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_costs_until_it_stops_and_is_usable_when_available() {
        for up in ["PENDING", "STARTING", "AVAILABLE", "REBOOTING", "ERROR"] {
            assert!(is_up(up), "{up}");
        }
        for down in ["STOPPING", "STOPPED", "TERMINATED"] {
            assert!(!is_up(down), "{down}");
        }
        assert!(ready("AVAILABLE") && !ready("STARTING"));
        let call = sleep_call(&["ws-0123abcde".into()]);
        assert_eq!(
            call.arn(),
            "arn:aws:scheduler:::aws-sdk:workspaces:stopWorkspaces"
        );
        assert_eq!(
            call.input,
            json!({"StopWorkspaceRequests": [{"WorkspaceId": "ws-0123abcde"}]})
        );
    }

    #[test]
    fn only_an_always_on_workspace_is_never_stopped_and_ids_are_checked() {
        let why = never_stopped("ws-1", "ALWAYS_ON").unwrap();
        assert!(why.starts_with("WorkSpace ws-1 cannot be stopped"), "{why}");
        assert!(why.contains("ALWAYS_ON") && why.contains("billed monthly"));
        assert_eq!(never_stopped("ws-1", "AUTO_STOP"), None);
        assert_eq!(never_stopped("ws-1", "MANUAL"), None);
        assert!(check(&["ws-0123abcde".into()]).is_ok());
        assert!(check(&["i-0123".into()]).unwrap_err().contains("ws-"));
    }
}

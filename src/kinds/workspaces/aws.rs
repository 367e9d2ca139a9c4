//! Amazon WorkSpaces over the signed JSON transport
//! ([`crate::cloud::aws::signed`]): a region's WorkSpaces read with
//! DescribeWorkspaces by id, 25 a call, all calls at once, their tags with
//! one DescribeTags each beside it; StopWorkspaces and StartWorkspaces 25 a
//! call, each item of an answer's `FailedRequests` that WorkSpace's error
//! (a start waits while one is still stopping); an `ALWAYS_ON` WorkSpace
//! refused by name before any stop is sent; the sleep tag on the WorkSpace's
//! id (CreateTags / DeleteTags); listing.

use crate::cloud::aws::signed::{text, Signed, WORKSPACES};
use crate::cloud::aws::{observed_running, SLEEP_TAG};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Running};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{
    by_value, each, rows, set_running_all, wrong_shape, Cx, Each, KindAdapter, Lifecycle,
};
use crate::kinds::workspaces::{self, never_stopped, PER_CALL};
use futures::future::{join_all, BoxFuture};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// A WorkSpace as DescribeWorkspaces tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Workspace {
    id: String,
    state: String,
    running_mode: String,
    compute_type: String,
    bundle_id: String,
    user_name: String,
}

impl Workspace {
    fn of(w: &Value) -> Self {
        let properties = &w["WorkspaceProperties"];
        Workspace {
            id: text(w, "WorkspaceId"),
            state: text(w, "State"),
            running_mode: text(properties, "RunningMode"),
            compute_type: text(properties, "ComputeTypeName"),
            bundle_id: text(w, "BundleId"),
            user_name: text(w, "UserName"),
        }
    }
}

fn not_found(id: &str) -> CloudError {
    CloudError::new(ErrorKind::NotFound, format!("WorkSpace {id} not found"))
}

/// Each of `ids` (at most [`PER_CALL`]) as one DescribeWorkspaces tells it.
async fn describe_some(api: &Signed, ids: &[&str]) -> Vec<Result<Workspace, CloudError>> {
    let input = json!({"WorkspaceIds": ids});
    let out = match api.json(&WORKSPACES, "DescribeWorkspaces", &input).await {
        Ok(out) => out,
        Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut by_id: HashMap<String, Workspace> = (out["Workspaces"].as_array().into_iter())
        .flatten()
        .map(|w| (text(w, "WorkspaceId"), Workspace::of(w)))
        .collect();
    (ids.iter())
        .map(|id| by_id.remove(*id).ok_or_else(|| not_found(id)))
        .collect()
}

/// Each of `ids`: one DescribeWorkspaces per [`PER_CALL`], all at once.
async fn describe(api: &Signed, ids: &[&str]) -> Vec<Result<Workspace, CloudError>> {
    let calls = ids.chunks(PER_CALL).map(|some| describe_some(api, some));
    join_all(calls).await.into_iter().flatten().collect()
}

/// The tags of WorkSpace `id`, as (key, value).
async fn tags(api: &Signed, id: &str) -> Result<Vec<(String, String)>, CloudError> {
    let input = json!({"ResourceId": id});
    let out = api.json(&WORKSPACES, "DescribeTags", &input).await?;
    Ok((out["TagList"].as_array().into_iter().flatten())
        .map(|t| (text(t, "Key"), text(t, "Value")))
        .collect())
}

/// Writes (`Some`) or removes (`None`) the sleep tag of WorkSpace `id`.
async fn set_sleep_tag(api: &Signed, id: &str, saved: Option<Capacity>) -> Result<(), CloudError> {
    let (op, input) = match saved {
        Some(saved) => (
            "CreateTags",
            json!({"ResourceId": id, "Tags": [{"Key": SLEEP_TAG, "Value": saved.to_tag()}]}),
        ),
        None => (
            "DeleteTags",
            json!({"ResourceId": id, "TagKeys": [SLEEP_TAG]}),
        ),
    };
    api.json(&WORKSPACES, op, &input).await.map(drop)
}

/// The StartWorkspaces (`running`) or StopWorkspaces calls for `ids`:
/// [`PER_CALL`] WorkSpaces each.
fn requests(ids: &[&str], running: bool) -> Vec<(&'static str, Value)> {
    let (op, key) = if running {
        ("StartWorkspaces", "StartWorkspaceRequests")
    } else {
        ("StopWorkspaces", "StopWorkspaceRequests")
    };
    (ids.chunks(PER_CALL))
        .map(|some| {
            let items: Vec<Value> = some.iter().map(|id| json!({"WorkspaceId": id})).collect();
            (op, json!({ key: items }))
        })
        .collect()
}

/// How each of `ids` fared in a start or stop call that answered `out`:
/// one named in its `FailedRequests` was left as it was, with AWS's code
/// and reason (a refusal in its state unless the code says otherwise).
fn fared(ids: &[&str], out: &Value) -> Vec<Result<(), CloudError>> {
    let mut failed: HashMap<String, CloudError> = (out["FailedRequests"].as_array())
        .into_iter()
        .flatten()
        .map(|f| {
            let (id, code) = (text(f, "WorkspaceId"), text(f, "ErrorCode"));
            let why = format!("WorkSpace {id}: {}", text(f, "ErrorMessage"));
            let mut e = CloudError::from_code(Some(code.as_str()).filter(|c| !c.is_empty()), why);
            if e.kind == ErrorKind::Other {
                e.kind = ErrorKind::InvalidState;
            }
            (id, e)
        })
        .collect();
    (ids.iter())
        .map(|id| failed.remove(*id).map_or(Ok(()), Err))
        .collect()
}

/// Starts (`running`) or stops `ids`: one call per [`PER_CALL`], all at once.
async fn start_or_stop(api: &Signed, ids: &[&str], running: bool) -> Vec<Result<(), CloudError>> {
    let calls =
        (ids.chunks(PER_CALL).zip(requests(ids, running))).map(|(some, (op, input))| async move {
            match api.json(&WORKSPACES, op, &input).await {
                Ok(out) => fared(some, &out),
                Err(e) => some.iter().map(|_| Err(e.clone())).collect(),
            }
        });
    join_all(calls).await.into_iter().flatten().collect()
}

/// A WorkSpace AWS did not start or stop is named in `FailedRequests`
/// (read as [`ErrorKind::InvalidState`] by [`fared`]).
const LIFE: Lifecycle = Lifecycle {
    is_up: workspaces::is_up,
    stopping: "STOPPING",
    refused: |e| e.kind == ErrorKind::InvalidState,
};

/// Starts (`running`) or stops `ids`. Before a stop their running mode
/// is read: an `ALWAYS_ON` one is refused by name, never sent.
async fn start_or_stop_all(
    api: &Signed,
    ids: Vec<&ResourceId>,
    running: bool,
) -> Vec<Result<(), CloudError>> {
    let names: Vec<&str> = ids.iter().map(|id| id.part(0)).collect();
    let refused: Vec<Option<CloudError>> = if running {
        vec![None; names.len()]
    } else {
        let found = describe(api, &names).await;
        (found.into_iter())
            .map(|w| match w {
                Ok(w) => never_stopped(&w.id, &w.running_mode)
                    .map(|why| CloudError::new(ErrorKind::Unsupported, why)),
                Err(e) => Some(e),
            })
            .collect()
    };
    let free: Vec<usize> = (0..names.len()).filter(|&i| refused[i].is_none()).collect();
    let what: Vec<String> = free.iter().map(|&i| ids[i].to_string()).collect();
    let pick =
        |chosen: Vec<usize>| -> Vec<&str> { chosen.iter().map(|&j| names[free[j]]).collect() };
    let call = |chosen| {
        let some = pick(chosen);
        async move { start_or_stop(api, &some, running).await }
    };
    let status = |chosen| {
        let some = pick(chosen);
        async move {
            let found = describe(api, &some).await;
            found.into_iter().map(|w| w.map(|w| w.state)).collect()
        }
    };
    let mut set = set_running_all(&what, running, &LIFE, call, status)
        .await
        .into_iter();
    (refused.into_iter())
        .map(|refusal| match refusal {
            Some(e) => Err(e),
            None => set.next().expect("one result per WorkSpace set"),
        })
        .collect()
}

/// A WorkSpace as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub workspace_id: String,
    pub region: String,
    pub state: String,
    pub running_mode: String,
    pub compute_type: String,
    pub bundle_id: String,
    pub user_name: String,
}

/// Amazon WorkSpaces' adapter: 25 WorkSpaces a describe, stop or start
/// call; tags one WorkSpace a call.
pub struct Workspaces;

/// Amazon WorkSpaces' adapter.
pub static WORKSPACE: Workspaces = Workspaces;

impl KindAdapter for Workspaces {
    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(async move {
            let api = &cx.clients.signed;
            let names: Vec<&str> = ids.iter().map(|id| id.part(0)).collect();
            let tagged = each(ids, |id| tags(api, id.part(0)));
            let (found, tagged) = futures::join!(describe(api, &names), tagged);
            (found.into_iter().zip(tagged))
                .map(|(w, tags)| {
                    let w = w?;
                    let kind = Kind::Workspace;
                    Ok(observed_running(kind, w.state, workspaces::is_up, &tags?))
                })
                .collect()
        })
    }

    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(by_value(items, move |to, ids| async move {
            match to.level {
                Running(running) => start_or_stop_all(&cx.clients.signed, ids, running).await,
                _ => ids.iter().map(|id| Err(wrong_shape(id, to))).collect(),
            }
        }))
    }

    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, saved)| {
            set_sleep_tag(&cx.clients.signed, id.part(0), *saved)
        }))
    }

    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(async move {
            let names: Vec<&str> = items.iter().map(|(id, _)| id.part(0)).collect();
            let found = describe(&cx.clients.signed, &names).await;
            (found.into_iter())
                .map(|w| {
                    w.map(|w| Probe {
                        ready: workspaces::ready(&w.state),
                        detail: w.state,
                    })
                })
                .collect()
        })
    }

    /// Not priced: a WorkSpace's hourly fee depends on its bundle, OS,
    /// licence and region, and no shipped table or Price List query of
    /// cloudnap's covers it.
    fn facts<'a>(&'a self, _cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(async move { ids.iter().map(|_| Ok(Facts::default())).collect() })
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CloudError>> {
        Box::pin(async move {
            let api = &cx.clients.signed;
            let all = (api.json_pages(&WORKSPACES, "DescribeWorkspaces", json!({}), "Workspaces"))
                .await?;
            rows(
                (all.iter().map(Workspace::of))
                    .map(|w| Listed {
                        workspace_id: w.id,
                        region: region.to_string(),
                        state: w.state,
                        running_mode: w.running_mode,
                        compute_type: w.compute_type,
                        bundle_id: w.bundle_id,
                        user_name: w.user_name,
                    })
                    .collect(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_workspaces_are_stopped_in_two_calls_of_25_and_5() {
        let ids: Vec<String> = (0..30).map(|i| format!("ws-{i:09}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let calls = requests(&ids, false);
        let sizes: Vec<usize> = (calls.iter())
            .map(|(op, input)| {
                assert_eq!(*op, "StopWorkspaces");
                input["StopWorkspaceRequests"].as_array().unwrap().len()
            })
            .collect();
        assert_eq!(sizes, [25, 5]);
        assert_eq!(
            calls[1].1["StopWorkspaceRequests"][0],
            json!({"WorkspaceId": "ws-000000025"})
        );
        let (op, input) = &requests(&ids[..1], true)[0];
        assert_eq!(*op, "StartWorkspaces");
        assert_eq!(
            *input,
            json!({"StartWorkspaceRequests": [{"WorkspaceId": "ws-000000000"}]})
        );
    }

    #[test]
    fn each_failed_request_is_its_workspaces_error_and_the_rest_went_through() {
        let out = json!({"FailedRequests": [
            {"WorkspaceId": "ws-b", "ErrorCode": "InvalidResourceState",
             "ErrorMessage": "The WorkSpace is STOPPING."},
            {"WorkspaceId": "ws-c", "ErrorCode": "ResourceNotFound.Workspace",
             "ErrorMessage": "not found"}
        ]});
        let each = fared(&["ws-a", "ws-b", "ws-c"], &out);
        assert_eq!(each[0], Ok(()));
        let refused = each[1].clone().unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidState);
        assert!((LIFE.refused)(&refused));
        assert_eq!(refused.code.as_deref(), Some("InvalidResourceState"));
        assert!(refused
            .message
            .contains("WorkSpace ws-b: The WorkSpace is STOPPING."));
        assert_eq!(each[2].clone().unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(fared(&["ws-a"], &json!({})), [Ok(())]);
    }

    #[test]
    fn a_workspace_is_read_from_describe_workspaces() {
        let w = Workspace::of(&json!({
            "WorkspaceId": "ws-a", "State": "AVAILABLE", "BundleId": "wsb-1",
            "UserName": "dev", "WorkspaceProperties": {
                "RunningMode": "AUTO_STOP", "ComputeTypeName": "STANDARD"}
        }));
        assert_eq!(
            (w.id.as_str(), w.state.as_str(), w.running_mode.as_str()),
            ("ws-a", "AVAILABLE", "AUTO_STOP")
        );
        assert_eq!(
            (w.compute_type.as_str(), w.bundle_id.as_str()),
            ("STANDARD", "wsb-1")
        );
        assert_eq!(w.user_name, "dev");
    }
}

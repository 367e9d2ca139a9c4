//! SageMaker notebook instances over the signed JSON transport
//! ([`crate::cloud::aws::signed`]): describe, stop and start (waiting while
//! one is still stopping), the sleep tag on their ARN, and listing.

use crate::cloud::aws::signed::{text, Signed, SAGEMAKER};
use crate::cloud::aws::{observed_running, SLEEP_TAG};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Running};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{
    each, rows, set_running, wrong_shape, Cx, Each, KindAdapter, Lifecycle,
};
use crate::kinds::sagemaker;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};

/// A notebook instance as DescribeNotebookInstance tells it.
struct Notebook {
    arn: String,
    status: String,
    instance_type: String,
}

/// SageMaker answers an unknown name with `ValidationException:
/// RecordNotFound`: that is `NotFound`.
fn found(e: CloudError, name: &str) -> CloudError {
    if e.code.as_deref() == Some("ValidationException") && e.message.contains("RecordNotFound") {
        CloudError::new(
            ErrorKind::NotFound,
            format!("SageMaker notebook instance {name} not found"),
        )
    } else {
        e
    }
}

/// DescribeNotebookInstance.
async fn describe(api: &Signed, name: &str) -> Result<Notebook, CloudError> {
    let input = json!({"NotebookInstanceName": name});
    let out = api
        .json(&SAGEMAKER, "DescribeNotebookInstance", &input)
        .await
        .map_err(|e| found(e, name))?;
    Ok(Notebook {
        arn: text(&out, "NotebookInstanceArn"),
        status: text(&out, "NotebookInstanceStatus"),
        instance_type: text(&out, "InstanceType"),
    })
}

/// The tags of the resource `arn`, as (key, value).
async fn tags(api: &Signed, arn: &str) -> Result<Vec<(String, String)>, CloudError> {
    let input = json!({"ResourceArn": arn});
    let tags = api
        .json_pages(&SAGEMAKER, "ListTags", input, "Tags")
        .await?;
    Ok(tags
        .iter()
        .map(|t| (text(t, "Key"), text(t, "Value")))
        .collect())
}

/// Writes (`Some`) or removes (`None`) the sleep tag of `arn`.
async fn set_sleep_tag(api: &Signed, arn: &str, saved: Option<Capacity>) -> Result<(), CloudError> {
    let (op, input) = match saved {
        Some(saved) => (
            "AddTags",
            json!({"ResourceArn": arn, "Tags": [{"Key": SLEEP_TAG, "Value": saved.to_tag()}]}),
        ),
        None => (
            "DeleteTags",
            json!({"ResourceArn": arn, "TagKeys": [SLEEP_TAG]}),
        ),
    };
    api.json(&SAGEMAKER, op, &input).await.map(drop)
}

/// The notebook's API refuses a start or stop in the wrong state with a
/// `ValidationException` (`Status (Stopping) not in ([Stopped, Failed])`).
const LIFE: Lifecycle = Lifecycle {
    is_up: sagemaker::is_up,
    stopping: "Stopping",
    refused: |e| e.code.as_deref() == Some("ValidationException"),
};

/// Starts (`running`) or stops notebook instance `name`.
async fn start_or_stop(api: &Signed, name: &str, running: bool) -> Result<(), CloudError> {
    let op = if running {
        "StartNotebookInstance"
    } else {
        "StopNotebookInstance"
    };
    let input = json!({"NotebookInstanceName": name});
    api.json(&SAGEMAKER, op, &input).await.map(drop)
}

/// A notebook instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub notebook_instance_name: String,
    pub region: String,
    pub status: String,
    pub instance_type: String,
}

/// Every notebook instance in `region`.
async fn list(api: &Signed, region: &str) -> Result<Vec<Listed>, CloudError> {
    let op = "ListNotebookInstances";
    let found = (api.json_pages(&SAGEMAKER, op, json!({}), "NotebookInstances")).await?;
    Ok(found
        .iter()
        .map(|n| Listed {
            notebook_instance_name: text(n, "NotebookInstanceName"),
            region: region.to_string(),
            status: text(n, "NotebookInstanceStatus"),
            instance_type: text(n, "InstanceType"),
        })
        .collect())
}

/// SageMaker notebook instances' adapter: one notebook at a time (the API
/// takes one name a call).
pub struct Notebooks;

/// SageMaker notebook instances' adapter.
pub static NOTEBOOK: Notebooks = Notebooks;

impl Notebooks {
    /// What notebook `id` is now (describe and its tags), remembering its ARN.
    async fn observe_one(&self, cx: Cx<'_>, id: &ResourceId) -> Result<Observed, CloudError> {
        let api = &cx.clients.signed;
        let nb = describe(api, id.part(0)).await?;
        cx.arns.remember(id, Some(&nb.arn));
        let tags = tags(api, &nb.arn).await?;
        let kind = Kind::SagemakerNotebook;
        Ok(observed_running(kind, nb.status, sagemaker::is_up, &tags))
    }
}

impl KindAdapter for Notebooks {
    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(each(ids, move |id| self.observe_one(cx, id)))
    }

    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, to)| async move {
            let Running(running) = to.level else {
                return Err(wrong_shape(id, *to));
            };
            let (api, name) = (&cx.clients.signed, id.part(0));
            let call = |running| start_or_stop(api, name, running);
            let status = || async move { Ok(describe(api, name).await?.status) };
            set_running(&id.to_string(), running, &LIFE, call, status).await
        }))
    }

    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, saved)| async move {
            let learn = async { self.observe_one(cx, id).await.map(drop) };
            let arn = cx.arns.of(id, learn).await?;
            set_sleep_tag(&cx.clients.signed, &arn, *saved).await
        }))
    }

    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(each(items, move |(id, _)| async move {
            let status = describe(&cx.clients.signed, id.part(0)).await?.status;
            Ok(Probe {
                ready: sagemaker::ready(&status),
                detail: status,
            })
        }))
    }

    /// Its ML instance type (`ml.t3.medium`), priced as a notebook instance.
    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(each(ids, move |id| async move {
            let nb = describe(&cx.clients.signed, id.part(0)).await?;
            Ok(Facts {
                instance_type: Some(nb.instance_type).filter(|t| !t.is_empty()),
                ..Facts::default()
            })
        }))
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CloudError>> {
        Box::pin(async move { rows(list(&cx.clients.signed, region).await?) })
    }
}

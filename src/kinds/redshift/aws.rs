//! Redshift provisioned clusters over the signed Query transport
//! ([`crate::cloud::aws::signed`]): one DescribeClusters for a region's
//! clusters (their tags come with them), pause and resume one at a time
//! (waiting while one is still pausing), the sleep tag on the cluster's ARN
//! (its account from STS), and listing.

use super::xml::{self, Cluster};
use crate::cloud::aws::clients::identity;
use crate::cloud::aws::signed::{Signed, REDSHIFT};
use crate::cloud::aws::{observed_running, SLEEP_TAG};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Running};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{
    each, rows, set_running, wrong_shape, Cx, Each, KindAdapter, Lifecycle,
};
use crate::kinds::redshift;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every page of DescribeClusters (of cluster `one`, if given).
async fn describe(api: &Signed, one: Option<&str>) -> Result<Vec<Cluster>, CloudError> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = pairs(&[("ClusterIdentifier", one.unwrap_or_default())]);
        params.retain(|(_, v)| !v.is_empty());
        params.extend(marker.map(|m| ("Marker".to_string(), m)));
        let answer = api.query(&REDSHIFT, "DescribeClusters", &params).await?;
        let page = xml::page(&answer).map_err(|e| {
            CloudError::new(
                ErrorKind::Other,
                format!("unreadable DescribeClusters: {e}"),
            )
        })?;
        all.extend(page.clusters);
        match page.marker {
            Some(next) => marker = Some(next),
            None => return Ok(all),
        }
    }
}

/// Cluster `name`, or `NotFound`.
async fn one(api: &Signed, name: &str) -> Result<Cluster, CloudError> {
    describe(api, Some(name))
        .await?
        .into_iter()
        .find(|c| c.identifier == name)
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> CloudError {
    CloudError::new(
        ErrorKind::NotFound,
        format!("Redshift cluster {name} not found"),
    )
}

/// Each of `ids` among the region's clusters (one DescribeClusters).
async fn clusters_of(api: &Signed, ids: &[ResourceId]) -> Vec<Result<Cluster, CloudError>> {
    let all = match describe(api, None).await {
        Ok(all) => all,
        Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut by_name: HashMap<&str, &Cluster> =
        all.iter().map(|c| (c.identifier.as_str(), c)).collect();
    ids.iter()
        .map(|id| {
            by_name
                .remove(id.part(0))
                .cloned()
                .ok_or_else(|| not_found(id.part(0)))
        })
        .collect()
}

/// Writes (`Some`) or removes (`None`) the sleep tag of `arn`.
async fn set_sleep_tag(api: &Signed, arn: &str, saved: Option<Capacity>) -> Result<(), CloudError> {
    let params = match saved {
        Some(saved) => pairs(&[
            ("ResourceName", arn),
            ("Tags.Tag.1.Key", SLEEP_TAG),
            ("Tags.Tag.1.Value", &saved.to_tag()),
        ]),
        None => pairs(&[("ResourceName", arn), ("TagKeys.TagKey.1", SLEEP_TAG)]),
    };
    let action = if saved.is_some() {
        "CreateTags"
    } else {
        "DeleteTags"
    };
    api.query(&REDSHIFT, action, &params).await.map(drop)
}

/// Redshift refuses a pause or resume in the wrong state with
/// `InvalidClusterState`.
const LIFE: Lifecycle = Lifecycle {
    is_up: redshift::is_up,
    stopping: "pausing",
    refused: |e| e.code.as_deref() == Some("InvalidClusterState"),
};

/// Resumes (`running`) or pauses cluster `name`; a cluster AWS cannot pause
/// (`UnsupportedOperation`) is named with AWS's reason.
async fn pause_or_resume(api: &Signed, name: &str, running: bool) -> Result<(), CloudError> {
    let action = if running {
        "ResumeCluster"
    } else {
        "PauseCluster"
    };
    let params = pairs(&[("ClusterIdentifier", name)]);
    match api.query(&REDSHIFT, action, &params).await {
        Err(e) if e.kind == ErrorKind::Unsupported => {
            let verb = if running { "resumed" } else { "paused" };
            let why = format!("Redshift cluster {name} cannot be {verb}: {}", e.message);
            Err(CloudError { message: why, ..e })
        }
        done => done.map(drop),
    }
}

/// A cluster as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub cluster_identifier: String,
    pub region: String,
    pub status: String,
    pub node_type: String,
    pub number_of_nodes: u32,
}

/// Redshift provisioned clusters' adapter: a region's clusters are read
/// with one DescribeClusters; pause, resume and tags take one cluster a call.
pub struct Clusters;

/// Redshift provisioned clusters' adapter.
pub static CLUSTER: Clusters = Clusters;

/// What cluster `c` is now.
fn observed(c: Cluster) -> Observed {
    observed_running(Kind::RedshiftCluster, c.status, redshift::is_up, &c.tags)
}

impl KindAdapter for Clusters {
    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(async move {
            let found = clusters_of(&cx.clients.signed, ids).await;
            found.into_iter().map(|c| c.map(observed)).collect()
        })
    }

    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, to)| async move {
            let Running(running) = to.level else {
                return Err(wrong_shape(id, *to));
            };
            let (api, name) = (&cx.clients.signed, id.part(0));
            let call = |running| pause_or_resume(api, name, running);
            let status = || async move { Ok(one(api, name).await?.status) };
            set_running(&id.to_string(), running, &LIFE, call, status).await
        }))
    }

    /// Tags the cluster's ARN, its account read once from STS.
    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(async move {
            if items.iter().any(|(id, _)| cx.arns.known(id).is_none()) {
                match identity(&cx.clients.sts).await {
                    Ok(who) => {
                        for (id, _) in items {
                            cx.arns.remember(id, id.arn(&who.account).as_deref());
                        }
                    }
                    Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
                }
            }
            each(items, move |(id, saved)| async move {
                let arn = cx
                    .arns
                    .known(id)
                    .ok_or_else(|| CloudError::new(ErrorKind::Other, format!("{id} has no ARN")))?;
                set_sleep_tag(&cx.clients.signed, &arn, *saved).await
            })
            .await
        })
    }

    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(async move {
            let ids: Vec<ResourceId> = items.iter().map(|(id, _)| id.clone()).collect();
            let found = clusters_of(&cx.clients.signed, &ids).await;
            found
                .into_iter()
                .map(|c| {
                    c.map(|c| Probe {
                        ready: redshift::ready(&c.status),
                        detail: c.status,
                    })
                })
                .collect()
        })
    }

    /// Its node type (`ra3.xlplus`) and number of nodes, priced per node.
    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(async move {
            let found = clusters_of(&cx.clients.signed, ids).await;
            found
                .into_iter()
                .map(|c| {
                    c.map(|c| Facts {
                        instance_type: Some(c.node_type).filter(|t| !t.is_empty()),
                        nodes: c.nodes,
                        ..Facts::default()
                    })
                })
                .collect()
        })
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CloudError>> {
        Box::pin(async move {
            let all = describe(&cx.clients.signed, None).await?;
            rows(
                all.into_iter()
                    .map(|c| Listed {
                        cluster_identifier: c.identifier,
                        region: region.to_string(),
                        status: c.status,
                        node_type: c.node_type,
                        number_of_nodes: c.nodes,
                    })
                    .collect(),
            )
        })
    }
}

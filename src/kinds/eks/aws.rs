//! EKS nodegroups: describe, scaling, the sleep tag (kept on the cluster, one
//! key per nodegroup), and listing.

use crate::cloud::aws::error::{aws_err, not_found};
use crate::cloud::aws::{all_items, has_protect, sleep_tag, SLEEP_TAG};
use crate::cloud::CloudError;
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Scaling};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{each, rows, wrong_shape, Cx, Each, KindAdapter};
use crate::kinds::eks;
use aws_sdk_eks::types::{Cluster, Nodegroup, NodegroupScalingConfig};
use aws_sdk_eks::Client;
use futures::future::BoxFuture;
use serde::Serialize;

/// A cluster, or `NotFound`.
async fn cluster(eks: &Client, cluster: &str) -> Result<Cluster, CloudError> {
    eks.describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(aws_err)?
        .cluster
        .ok_or_else(|| not_found(format!("EKS cluster {cluster}")))
}

/// A nodegroup, or `NotFound`.
async fn nodegroup(eks: &Client, cluster: &str, nodegroup: &str) -> Result<Nodegroup, CloudError> {
    eks.describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .send()
        .await
        .map_err(aws_err)?
        .nodegroup
        .ok_or_else(|| not_found(format!("EKS nodegroup {cluster}/{nodegroup}")))
}

/// `(min, desired, max)` of a nodegroup; 0 where unset.
fn scaling(ng: &Nodegroup) -> (i32, i32, i32) {
    let s = ng.scaling_config();
    (
        s.and_then(|s| s.min_size()).unwrap_or(0),
        s.and_then(|s| s.desired_size()).unwrap_or(0),
        s.and_then(|s| s.max_size()).unwrap_or(0),
    )
}

/// The cluster tag holding the sleep tag of one nodegroup.
fn sleep_tag_key(nodegroup: &str) -> String {
    format!("{SLEEP_TAG}:{nodegroup}")
}

/// Capacity, protection (a nodegroup tag), sleep tag (a cluster tag) and
/// status of nodegroup `ng` named `name` in `cluster`.
fn observe(ng: &Nodegroup, cluster: &Cluster, name: &str) -> Observed {
    let (min, desired, max) = scaling(ng);
    Observed {
        capacity: Capacity::of(Kind::Eks, Scaling { min, desired, max }),
        protected: has_protect(ng.tags().into_iter().flatten()),
        sleep_tag: sleep_tag(
            Kind::Eks,
            cluster
                .tags()
                .and_then(|t| t.get(&sleep_tag_key(name)))
                .map(String::as_str),
        ),
        status: ng
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        deployments: Vec::new(),
        part_of: None,
    }
}

/// What a nodegroup's nodes are, for pricing.
fn facts(ng: &Nodegroup) -> Facts {
    Facts {
        instance_types: ng.instance_types().to_vec(),
        ..Facts::default()
    }
}

/// Sets a nodegroup's min, desired and max size.
async fn set_scaling(
    eks: &Client,
    cluster: &str,
    nodegroup: &str,
    (min, desired, max): (i32, i32, i32),
) -> Result<(), CloudError> {
    eks.update_nodegroup_config()
        .cluster_name(cluster)
        .nodegroup_name(nodegroup)
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(min)
                .desired_size(desired)
                .max_size(max)
                .build(),
        )
        .send()
        .await
        .map_err(aws_err)?;
    Ok(())
}

/// Writes (`Some`) or removes (`None`) the sleep tag of `nodegroup` on
/// the cluster `arn`.
async fn set_sleep_tag(
    eks: &Client,
    arn: String,
    nodegroup: &str,
    saved: Option<Capacity>,
) -> Result<(), CloudError> {
    match saved {
        Some(saved) => {
            eks.tag_resource()
                .resource_arn(arn)
                .tags(sleep_tag_key(nodegroup), saved.to_tag())
                .send()
                .await
                .map_err(aws_err)?;
        }
        None => {
            eks.untag_resource()
                .resource_arn(arn)
                .tag_keys(sleep_tag_key(nodegroup))
                .send()
                .await
                .map_err(aws_err)?;
        }
    }
    Ok(())
}

/// All nodegroups of all clusters in `region`.
async fn list(eks: &Client, region: &str) -> Result<Vec<EksNodegroup>, CloudError> {
    let clusters = all_items!(eks.list_clusters())?;
    let mut out = Vec::new();
    for cluster in clusters {
        let groups = all_items!(eks.list_nodegroups().cluster_name(&cluster))?;
        for name in groups {
            let ng = nodegroup(eks, &cluster, &name).await?;
            let (min, desired, max) = scaling(&ng);
            out.push(EksNodegroup {
                cluster_name: cluster.clone(),
                nodegroup_name: name,
                region: region.to_string(),
                status: ng
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                min_size: min,
                desired_size: desired,
                max_size: max,
            });
        }
    }
    Ok(out)
}
/// An EKS nodegroup as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EksNodegroup {
    pub cluster_name: String,
    pub nodegroup_name: String,
    pub region: String,
    pub status: String,
    pub min_size: i32,
    pub desired_size: i32,
    pub max_size: i32,
}

/// The EKS adapter: one nodegroup at a time (the API has no batch call).
pub struct Eks;

/// EKS nodegroups' adapter.
pub static EKS: Eks = Eks;

/// Whether nodegroup `id` is usable: `ACTIVE`, with as many instances
/// InService in its Auto Scaling groups as desired where they can be read.
async fn ready_one(cx: Cx<'_>, id: &ResourceId) -> Result<Probe, CloudError> {
    let ng = nodegroup(&cx.clients.eks, id.part(0), id.part(1)).await?;
    let status = ng.status().map_or("unknown", |s| s.as_str()).to_string();
    let (_, desired, _) = scaling(&ng);
    let groups: Vec<String> = (ng.resources().map(|r| r.auto_scaling_groups()))
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g.name().map(String::from))
        .collect();
    let in_service = match groups.is_empty() {
        true => None,
        false => crate::kinds::asg::aws::in_service(&cx.clients.autoscaling, &groups).await,
    };
    Ok(Probe {
        ready: eks::ready(&status, desired, in_service),
        detail: match in_service {
            Some(n) => format!("{status}, {n} of {desired} nodes in service"),
            None => status,
        },
    })
}

impl KindAdapter for Eks {
    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(each(items, move |(id, _)| ready_one(cx, id)))
    }

    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(each(ids, move |id| async move {
            let (name, group) = (id.part(0), id.part(1));
            let (ng, cluster) = tokio::join!(
                nodegroup(&cx.clients.eks, name, group),
                cluster(&cx.clients.eks, name)
            );
            let (ng, cluster) = (ng?, cluster?);
            cx.arns.remember(id, cluster.arn());
            Ok(observe(&ng, &cluster, group))
        }))
    }

    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, to)| async move {
            let Scaling { min, desired, max } = to.level else {
                return Err(wrong_shape(id, *to));
            };
            set_scaling(&cx.clients.eks, id.part(0), id.part(1), (min, desired, max)).await
        }))
    }

    /// The tag is the cluster's (nodegroup ARNs take no tags everywhere).
    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, saved)| async move {
            let learn = async {
                let c = cluster(&cx.clients.eks, id.part(0)).await?;
                cx.arns.remember(id, c.arn());
                Ok(())
            };
            let arn = cx.arns.of(id, learn).await?;
            set_sleep_tag(&cx.clients.eks, arn, id.part(1), *saved).await
        }))
    }

    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(each(ids, move |id| async move {
            Ok(facts(
                &nodegroup(&cx.clients.eks, id.part(0), id.part(1)).await?,
            ))
        }))
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, CloudError>> {
        Box::pin(async move { rows(list(&cx.clients.eks, region).await?) })
    }
}

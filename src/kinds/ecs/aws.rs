//! ECS services: describe, desired count, the sleep tag, and listing.

use crate::cloud::aws::appscaling::{self, Dimension};
use crate::cloud::aws::error::{aws_err, not_found};
use crate::cloud::aws::{all_items, has_protect, only, sleep_tag, SLEEP_TAG};
use crate::cloud::{CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Desired, Facts, Kind, Observed, ResourceId};
use crate::core::policy::busy::Deployment;
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{each, rows, wrong_shape, Cx, Each, KindAdapter};
use crate::kinds::ecs;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::{DeploymentRolloutState, LaunchType, Service, ServiceField, Tag};
use aws_sdk_ecs::Client;
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::HashMap;
use std::time::SystemTime;

/// Each of `services` (names or ARNs) of `cluster` that is not `INACTIVE`,
/// with its tags, or `NotFound`; described 10 at a time (the API's limit).
/// `Err` when a call fails.
async fn describe_many(
    ecs: &Client,
    cluster: &str,
    services: &[String],
) -> Result<Vec<Result<Service, CloudError>>, CloudError> {
    let mut found: HashMap<String, Service> = HashMap::new();
    for chunk in services.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(aws_err)?;
        for s in out
            .services()
            .iter()
            .filter(|s| s.status() != Some("INACTIVE"))
        {
            for key in [s.service_name(), s.service_arn()].into_iter().flatten() {
                found.insert(key.to_string(), s.clone());
            }
        }
    }
    Ok(services
        .iter()
        .map(|name| {
            found
                .get(name)
                .cloned()
                .ok_or_else(|| not_found(format!("ECS service {cluster}/{name}")))
        })
        .collect())
}

/// What Application Auto Scaling scales a service by.
const SCALING: Dimension = Dimension {
    namespace: ServiceNamespace::Ecs,
    dimension: ScalableDimension::EcsServiceDesiredCount,
};

/// A service's id in Application Auto Scaling.
fn scaling_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// A service that is not `INACTIVE`, with its tags, or `NotFound`.
async fn describe(ecs: &Client, cluster: &str, service: &str) -> Result<Service, CloudError> {
    only(describe_many(ecs, cluster, &[service.to_string()]).await?)
}

/// Capacity, protection, sleep tag and status of a described service.
fn observe(s: &Service) -> Observed {
    let tags = s
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    Observed {
        capacity: Capacity::of(Kind::Ecs, Desired(s.desired_count())),
        protected: has_protect(tags.clone()),
        sleep_tag: sleep_tag(
            Kind::Ecs,
            tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status: s.status().unwrap_or("unknown").to_string(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| Deployment {
                in_progress: d.rollout_state() == Some(&DeploymentRolloutState::InProgress),
                created: d.created_at().and_then(|t| SystemTime::try_from(*t).ok()),
            })
            .collect(),
        part_of: None,
    }
}

/// The launch type and task size of each of `services` of `cluster`, for
/// pricing: the services described 10 a call, each task definition once.
async fn facts_many(
    ecs: &Client,
    cluster: &str,
    services: &[String],
) -> Vec<Result<Facts, CloudError>> {
    let described = match describe_many(ecs, cluster, services).await {
        Ok(d) => d,
        Err(e) => return vec![Err(e); services.len()],
    };
    let mut sizes: HashMap<&str, Result<TaskSize, CloudError>> = HashMap::new();
    for arn in described
        .iter()
        .flatten()
        .filter_map(|s| s.task_definition())
    {
        if sizes.contains_key(arn) {
            continue;
        }
        let size = ecs
            .describe_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(aws_err)
            .map(|def| {
                def.task_definition().map_or((None, None), |td| {
                    (
                        td.cpu().and_then(|c| units(c, "vcpu")),
                        td.memory().and_then(|m| units(m, "gb")),
                    )
                })
            });
        sizes.insert(arn, size);
    }
    described
        .iter()
        .map(|s| {
            let s = s.as_ref().map_err(Clone::clone)?;
            let (task_cpu_units, task_memory_mib) = match s.task_definition() {
                Some(arn) => sizes[arn].clone()?,
                None => (None, None),
            };
            Ok(Facts {
                launch_type: Some(launch_type(s)),
                task_cpu_units,
                task_memory_mib,
                ..Facts::default()
            })
        })
        .collect()
}

/// A task definition's vCPU units and memory in MiB, where it sets them.
type TaskSize = (Option<u32>, Option<u32>);

/// `FARGATE` (by launch type or capacity provider), or the launch type
/// (`EC2` when none is given).
fn launch_type(s: &Service) -> String {
    let fargate = s.launch_type() == Some(&LaunchType::Fargate)
        || s.capacity_provider_strategy()
            .iter()
            .any(|c| c.capacity_provider().starts_with("FARGATE"));
    if fargate {
        "FARGATE".to_string()
    } else {
        s.launch_type()
            .map_or_else(|| "EC2".to_string(), |l| l.as_str().to_string())
    }
}

/// A task size as ECS writes it: `512` (units, MiB) or `1 vCPU`/`2 GB`
/// (times 1024).
fn units(text: &str, big: &str) -> Option<u32> {
    let t = text.trim().to_ascii_lowercase();
    match t.strip_suffix(big) {
        Some(n) => n.trim().parse::<f64>().ok().map(|n| (n * 1024.0) as u32),
        None => t.parse().ok(),
    }
}

/// Sets an ECS service's desired count.
pub(crate) async fn set_desired(
    ecs: &Client,
    cluster: &str,
    service: &str,
    desired: i32,
) -> Result<(), CloudError> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(desired)
        .send()
        .await
        .map_err(aws_err)?;
    Ok(())
}

/// Writes (`Some`) or removes (`None`) the sleep tag of the service `arn`.
async fn set_sleep_tag(
    ecs: &Client,
    arn: String,
    saved: Option<Capacity>,
) -> Result<(), CloudError> {
    match saved {
        Some(saved) => {
            let tag = Tag::builder().key(SLEEP_TAG).value(saved.to_tag()).build();
            ecs.tag_resource()
                .resource_arn(arn)
                .tags(tag)
                .send()
                .await
                .map_err(aws_err)?;
        }
        None => {
            ecs.untag_resource()
                .resource_arn(arn)
                .tag_keys(SLEEP_TAG)
                .send()
                .await
                .map_err(aws_err)?;
        }
    }
    Ok(())
}

/// All services of all clusters in `region`.
async fn list(ecs: &Client, region: &str) -> Result<Vec<EcsService>, CloudError> {
    let clusters = all_items!(ecs.list_clusters())?;
    let mut out = Vec::new();
    for cluster_arn in clusters {
        let cluster_name = cluster_arn
            .rsplit('/')
            .next()
            .unwrap_or(&cluster_arn)
            .to_string();
        let arns = all_items!(ecs.list_services().cluster(&cluster_arn))?;
        for chunk in arns.chunks(10) {
            let described = ecs
                .describe_services()
                .cluster(&cluster_arn)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(aws_err)?;
            out.extend(described.services().iter().map(|s| EcsService {
                cluster_name: cluster_name.clone(),
                service_name: s.service_name().unwrap_or_default().to_string(),
                region: region.to_string(),
                status: s.status().unwrap_or_default().to_string(),
                desired_count: s.desired_count(),
                running_count: s.running_count(),
                pending_count: s.pending_count(),
            }));
        }
    }
    Ok(out)
}
/// An ECS service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcsService {
    pub cluster_name: String,
    pub service_name: String,
    pub region: String,
    pub status: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
}

/// The ECS adapter: the services of a cluster described 10 a call, with
/// their Application Auto Scaling targets in one call.
pub struct Ecs;

/// ECS services' adapter.
pub static ECS: Ecs = Ecs;

/// What each of the services `ids` (of one cluster) is, remembering their
/// ARNs for tagging. Without permission to read scalable targets, services
/// are seen without them (warned once).
async fn observe_cluster(cx: Cx<'_>, ids: &[ResourceId]) -> Vec<Result<Observed, CloudError>> {
    let Some(cluster) = ids.first().map(|id| id.part(0)) else {
        return Vec::new();
    };
    let c = cx.clients;
    let services: Vec<String> = ids.iter().map(|id| id.part(1).to_string()).collect();
    let scaling_ids: Vec<String> = services.iter().map(|s| scaling_id(cluster, s)).collect();
    let (described, targets) = tokio::join!(
        describe_many(&c.ecs, cluster, &services),
        appscaling::targets(&c.appscaling, &SCALING, &scaling_ids)
    );
    let targets = match targets {
        Ok(t) => t,
        Err(e) if e.kind == ErrorKind::AccessDenied => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "ECS services are put to sleep without their Application Auto Scaling \
                     targets (AWS may scale them back up): {e}"
                )
            });
            HashMap::new()
        }
        Err(e) => return vec![Err(e); ids.len()],
    };
    let described = match described {
        Ok(d) => d,
        Err(e) => return vec![Err(e); ids.len()],
    };
    ids.iter()
        .zip(described)
        .map(|(id, s)| {
            let s = s?;
            cx.arns.remember(id, s.service_arn());
            let mut observed = observe(&s);
            let scaling_id = scaling_id(cluster, s.service_name().unwrap_or_default());
            observed.capacity.target = targets.get(&scaling_id).copied();
            Ok(observed)
        })
        .collect()
}

/// Whether each of the services `items` (of one cluster) is usable: one
/// `DescribeServices` per 10.
async fn ready_cluster(
    cx: Cx<'_>,
    items: &[(ResourceId, Option<u16>)],
) -> Vec<Result<Probe, CloudError>> {
    let Some(cluster) = items.first().map(|(id, _)| id.part(0)) else {
        return Vec::new();
    };
    let services: Vec<String> = items.iter().map(|(id, _)| id.part(1).to_string()).collect();
    let described = match describe_many(&cx.clients.ecs, cluster, &services).await {
        Ok(d) => d,
        Err(e) => return vec![Err(e); items.len()],
    };
    (described.into_iter())
        .map(|s| {
            let s = s?;
            let rollout = (s.deployments().iter())
                .find(|d| d.status() == Some("PRIMARY"))
                .and_then(|d| d.rollout_state())
                .map(|r| r.as_str());
            let (running, desired) = (s.running_count(), s.desired_count());
            Ok(Probe {
                ready: ecs::ready(running, desired, rollout),
                detail: format!(
                    "{running} of {desired} tasks running, rollout {}",
                    rollout.unwrap_or("-")
                ),
            })
        })
        .collect()
}

impl KindAdapter for Ecs {
    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(ready_cluster(cx, items))
    }

    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(observe_cluster(cx, ids))
    }

    /// The scalable target first, both ways: held down before the count goes
    /// to 0, back before the count comes back.
    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, to)| async move {
            let Desired(desired) = to.level else {
                return Err(wrong_shape(id, *to));
            };
            let (cluster, service) = (id.part(0), id.part(1));
            if let Some(target) = to.target {
                let scaling_id = scaling_id(cluster, service);
                appscaling::set(&cx.clients.appscaling, &SCALING, &scaling_id, target).await?;
            }
            set_desired(&cx.clients.ecs, cluster, service, desired).await
        }))
    }

    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(each(items, move |(id, saved)| async move {
            let learn = async {
                let svc = describe(&cx.clients.ecs, id.part(0), id.part(1)).await?;
                cx.arns.remember(id, svc.service_arn());
                Ok(())
            };
            let arn = cx.arns.of(id, learn).await?;
            set_sleep_tag(&cx.clients.ecs, arn, *saved).await
        }))
    }

    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(async move {
            let Some(cluster) = ids.first().map(|id| id.part(0)) else {
                return Vec::new();
            };
            let services: Vec<String> = ids.iter().map(|id| id.part(1).to_string()).collect();
            facts_many(&cx.clients.ecs, cluster, &services).await
        })
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, CloudError>> {
        Box::pin(async move { rows(list(&cx.clients.ecs, region).await?) })
    }
}

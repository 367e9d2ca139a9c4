//! ECS services: describe, desired count, the sleep tag, and listing.

use super::appscaling::Dimension;
use super::error::{aws_err, not_found};
use super::{all_items, has_protect, only, sleep_tag, SLEEP_TAG};
use crate::cloud::CloudError;
use crate::core::busy::Deployment;
use crate::core::resource::{Capacity, Desired, EcsService, Facts, Kind, Observed, ResourceId};
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::{DeploymentRolloutState, LaunchType, Service, ServiceField, Tag};
use aws_sdk_ecs::Client;
use std::collections::HashMap;
use std::time::SystemTime;

/// The services of one cluster (`(region, cluster, services)`) when all of
/// `ids` are ECS services of the same region and cluster.
pub(super) fn same_cluster<'a>(
    ids: impl IntoIterator<Item = &'a ResourceId>,
) -> Option<(&'a str, &'a str, Vec<String>)> {
    let mut place = None;
    let mut services = Vec::new();
    for id in ids {
        let here = (id.region(), id.part(0));
        if id.kind() != Kind::Ecs || place.is_some_and(|p| p != here) {
            return None;
        }
        place = Some(here);
        services.push(id.part(1).to_string());
    }
    place.map(|(region, cluster)| (region, cluster, services))
}

/// Each of `services` (names or ARNs) of `cluster` that is not `INACTIVE`,
/// with its tags, or `NotFound`; described 10 at a time (the API's limit).
/// `Err` when a call fails.
pub(super) async fn describe_many(
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
pub(super) const SCALING: Dimension = Dimension {
    namespace: ServiceNamespace::Ecs,
    dimension: ScalableDimension::EcsServiceDesiredCount,
};

/// A service's id in Application Auto Scaling.
pub(super) fn scaling_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// A service that is not `INACTIVE`, with its tags, or `NotFound`.
pub(super) async fn describe(
    ecs: &Client,
    cluster: &str,
    service: &str,
) -> Result<Service, CloudError> {
    only(describe_many(ecs, cluster, &[service.to_string()]).await?)
}

/// Capacity, protection, sleep tag and status of a described service.
pub(super) fn observe(s: &Service) -> Observed {
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
pub(super) async fn facts_many(
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
pub(super) async fn set_desired(
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
pub(super) async fn set_sleep_tag(
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
pub(super) async fn list(ecs: &Client, region: &str) -> Result<Vec<EcsService>, CloudError> {
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

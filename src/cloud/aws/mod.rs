//! [`CloudControl`] over the AWS SDK: EC2, ECS, EKS, CloudWatch and STS clients per
//! (region, profile), the standard credential chain, an optional endpoint
//! override, and retries with backoff for throttling and 5xx answers.
//!
//! [`AwsCloud`] dispatches by resource kind to one module per service.

mod clients;
mod cloudwatch;
mod ec2;
mod ecs;
mod eks;
mod error;
pub mod pricing;

pub use clients::{whoami_with_keys, Keys};
pub use error::retry_config;

use super::{each_in_order, CloudControl, CloudError, ErrorKind, Identity};
use crate::core::busy::{Datapoint, MetricQuery};
use crate::core::resource::{
    Capacity, Ec2Instance, EcsService, EksNodegroup, Facts, Kind, Observed, ResourceId,
};
use crate::core::settings::AwsSettings;
use clients::{ClientCache, Clients};
use std::collections::HashMap;
use std::slice;
use std::time::SystemTime;

/// Tag holding the capacity a sleeping resource had.
pub const SLEEP_TAG: &str = "cloudnap:sleeping";
/// Tag that protects a resource from ever being stopped.
pub const PROTECT_TAG: &str = "cloudnap:protect";

/// Every item of a paginated request, or the first error.
macro_rules! all_items {
    ($request:expr) => {
        $request
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err($crate::cloud::aws::error::aws_err)
    };
}
use all_items;

/// Whether the tags hold `cloudnap:protect=true` (any case).
fn has_protect(tags: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>) -> bool {
    tags.into_iter()
        .any(|(k, v)| k.as_ref() == PROTECT_TAG && v.as_ref().eq_ignore_ascii_case("true"))
}

/// The capacity saved in a sleep tag's value, if it is one.
fn sleep_tag(kind: Kind, value: Option<&str>) -> Option<Capacity> {
    value.and_then(|v| Capacity::from_tag(kind, v))
}

/// The only result of a call for one item.
fn only<T>(results: Vec<T>) -> T {
    results.into_iter().next().expect("one result per item")
}

/// AWS implementation of [`CloudControl`].
pub struct AwsCloud {
    clients: ClientCache,
    /// ARNs learnt by `inspect`, needed to tag ECS services and EKS clusters.
    arns: std::sync::Mutex<HashMap<ResourceId, String>>,
}

impl AwsCloud {
    /// An adapter using the settings' default profile and endpoint override.
    pub fn new(aws: &AwsSettings) -> Self {
        AwsCloud {
            clients: ClientCache::new(aws),
            arns: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn remember_arn(&self, id: &ResourceId, arn: Option<&str>) {
        if let Some(arn) = arn {
            self.arns
                .lock()
                .expect("arn cache")
                .insert(id.clone(), arn.to_string());
        }
    }

    fn known_arn(&self, id: &ResourceId) -> Option<String> {
        self.arns.lock().expect("arn cache").get(id).cloned()
    }

    /// What each of the ECS services `ids` is, from their description (one
    /// result per id), remembering their ARNs for tagging.
    fn observe_ecs(
        &self,
        ids: &[ResourceId],
        described: Result<Vec<Result<aws_sdk_ecs::types::Service, CloudError>>, CloudError>,
    ) -> Vec<Result<Observed, CloudError>> {
        match described {
            Ok(all) => ids
                .iter()
                .zip(all)
                .map(|(id, s)| {
                    let s = s?;
                    self.remember_arn(id, s.service_arn());
                    Ok(ecs::observe(&s))
                })
                .collect(),
            Err(e) => vec![Err(e); ids.len()],
        }
    }

    /// The ARN that tags of `id` are written to: the instance id, the ECS
    /// service, or the EKS cluster.
    async fn arn_of(&self, c: &Clients, id: &ResourceId) -> Result<String, CloudError> {
        if let Some(arn) = self.known_arn(id) {
            return Ok(arn);
        }
        match id {
            ResourceId::Ecs {
                cluster_name,
                service_name,
                ..
            } => {
                let svc = ecs::describe(&c.ecs, cluster_name, service_name).await?;
                self.remember_arn(id, svc.service_arn());
            }
            ResourceId::Eks { cluster_name, .. } => {
                let cluster = eks::cluster(&c.eks, cluster_name).await?;
                self.remember_arn(id, cluster.arn());
            }
            ResourceId::Ec2 { instance_id, .. } => return Ok(instance_id.clone()),
        }
        self.known_arn(id)
            .ok_or_else(|| CloudError::new(ErrorKind::Other, format!("{id} has no ARN")))
    }
}

impl CloudControl for AwsCloud {
    async fn inspect(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
    ) -> Result<Observed, CloudError> {
        let c = self.clients.get(id.region(), profile).await;
        match id {
            ResourceId::Ec2 { instance_id, .. } => {
                only(ec2::inspect(&c.ec2, slice::from_ref(instance_id)).await)
            }
            ResourceId::Ecs {
                cluster_name,
                service_name,
                ..
            } => {
                let described =
                    ecs::describe_many(&c.ecs, cluster_name, slice::from_ref(service_name)).await;
                only(self.observe_ecs(slice::from_ref(id), described))
            }
            ResourceId::Eks {
                cluster_name,
                nodegroup_name,
                ..
            } => {
                let (ng, cluster) = tokio::join!(
                    eks::nodegroup(&c.eks, cluster_name, nodegroup_name),
                    eks::cluster(&c.eks, cluster_name)
                );
                let (ng, cluster) = (ng?, cluster?);
                self.remember_arn(id, cluster.arn());
                Ok(eks::observe(&ng, &cluster, nodegroup_name))
            }
        }
    }

    async fn set_capacity(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        capacity: Capacity,
    ) -> Result<(), CloudError> {
        let c = self.clients.get(id.region(), profile).await;
        match (id, capacity) {
            (ResourceId::Ec2 { instance_id, .. }, Capacity::Ec2 { running }) => {
                only(ec2::set_running(&c.ec2, slice::from_ref(instance_id), running).await)
            }
            (
                ResourceId::Ecs {
                    cluster_name,
                    service_name,
                    ..
                },
                Capacity::Ecs { desired },
            ) => ecs::set_desired(&c.ecs, cluster_name, service_name, desired).await,
            (
                ResourceId::Eks {
                    cluster_name,
                    nodegroup_name,
                    ..
                },
                Capacity::Eks { min, desired, max },
            ) => eks::set_scaling(&c.eks, cluster_name, nodegroup_name, (min, desired, max)).await,
            _ => Err(CloudError::new(
                ErrorKind::Other,
                format!("capacity {capacity} does not apply to {id}"),
            )),
        }
    }

    async fn set_sleep_tag(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        saved: Option<Capacity>,
    ) -> Result<(), CloudError> {
        let c = self.clients.get(id.region(), profile).await;
        let arn = self.arn_of(&c, id).await?;
        match id {
            ResourceId::Ec2 { .. } => only(ec2::set_sleep_tag(&c.ec2, &[arn], saved).await),
            ResourceId::Ecs { .. } => ecs::set_sleep_tag(&c.ecs, arn, saved).await,
            ResourceId::Eks { nodegroup_name, .. } => {
                eks::set_sleep_tag(&c.eks, arn, nodegroup_name, saved).await
            }
        }
    }

    async fn metric_data(
        &self,
        region: &str,
        profile: Option<&str>,
        queries: &[MetricQuery],
        range: (SystemTime, SystemTime),
    ) -> Result<Vec<Vec<Datapoint>>, CloudError> {
        let c = self.clients.get(region, profile).await;
        cloudwatch::metric_data(&c.cloudwatch, queries, range).await
    }

    async fn facts_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> Vec<Result<Facts, CloudError>> {
        if let Some((region, instances)) = ec2::same_region(ids) {
            let c = self.clients.get(region, profile).await;
            return ec2::facts(&c.ec2, &instances).await;
        }
        if let Some((region, cluster, services)) = ecs::same_cluster(ids) {
            let c = self.clients.get(region, profile).await;
            return ecs::facts_many(&c.ecs, cluster, &services).await;
        }
        each_in_order(ids, 16, |id| async move {
            let c = self.clients.get(id.region(), profile).await;
            match id {
                ResourceId::Ec2 { instance_id, .. } => {
                    only(ec2::facts(&c.ec2, slice::from_ref(instance_id)).await)
                }
                ResourceId::Ecs {
                    cluster_name,
                    service_name,
                    ..
                } => {
                    only(ecs::facts_many(&c.ecs, cluster_name, slice::from_ref(service_name)).await)
                }
                ResourceId::Eks {
                    cluster_name,
                    nodegroup_name,
                    ..
                } => Ok(eks::facts(
                    &eks::nodegroup(&c.eks, cluster_name, nodegroup_name).await?,
                )),
            }
        })
        .await
    }

    async fn list_ec2(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<Ec2Instance>, CloudError> {
        ec2::list(&self.clients.get(region, profile).await.ec2, region).await
    }

    async fn list_ecs(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<EcsService>, CloudError> {
        ecs::list(&self.clients.get(region, profile).await.ecs, region).await
    }

    async fn list_eks(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<EksNodegroup>, CloudError> {
        eks::list(&self.clients.get(region, profile).await.eks, region).await
    }

    /// EC2 instances of one region are described in one call; if that call
    /// fails (one id vanished), they are asked one by one for exact errors.
    /// ECS services of one cluster are described 10 a call.
    async fn inspect_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> Vec<Result<Observed, CloudError>> {
        if let Some((region, instances)) = ec2::same_region(ids) {
            let c = self.clients.get(region, profile).await;
            return ec2::inspect(&c.ec2, &instances).await;
        }
        if let Some((region, cluster, services)) = ecs::same_cluster(ids) {
            let c = self.clients.get(region, profile).await;
            let described = ecs::describe_many(&c.ecs, cluster, &services).await;
            return self.observe_ecs(ids, described);
        }
        each_in_order(ids, 16, |id| self.inspect(id, profile)).await
    }

    /// EC2 instances of one region are started, and stopped, with one call
    /// each; if it fails, one by one.
    async fn set_capacity_many(
        &self,
        items: &[(ResourceId, Capacity)],
        profile: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        match ec2::group(items) {
            Some((region, ids, Capacity::Ec2 { running })) => {
                let c = self.clients.get(region, profile).await;
                ec2::set_running(&c.ec2, &ids, running).await
            }
            _ => {
                each_in_order(items, 16, |(id, capacity)| {
                    self.set_capacity(id, profile, *capacity)
                })
                .await
            }
        }
    }

    /// EC2 instances of one region are tagged (or untagged) with one call;
    /// if it fails, one by one.
    async fn set_sleep_tags(
        &self,
        items: &[(ResourceId, Option<Capacity>)],
        profile: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        match ec2::group(items) {
            Some((region, ids, saved)) => {
                let c = self.clients.get(region, profile).await;
                ec2::set_sleep_tag(&c.ec2, &ids, saved).await
            }
            None => {
                each_in_order(items, 16, |(id, saved)| {
                    self.set_sleep_tag(id, profile, *saved)
                })
                .await
            }
        }
    }

    fn reconfigure(&self, aws: &AwsSettings) {
        self.clients.reconfigure(aws);
    }

    async fn whoami(&self, region: &str, profile: Option<&str>) -> Result<Identity, CloudError> {
        clients::identity(&self.clients.get(region, profile).await.sts).await
    }
}

//! [`CloudControl`] over the AWS SDK: EC2, ECS, EKS, Auto Scaling, RDS, CloudWatch, EventBridge
//! Scheduler and STS clients per
//! (region, profile), the standard credential chain, an optional endpoint
//! override, and retries with backoff for throttling and 5xx answers.
//!
//! [`AwsCloud`] dispatches by resource kind to one module per service.
//! [`dynamodb`] is the team table of team mode, outside [`CloudControl`].

/// In tests: an SDK client of `$sdk` (`aws_sdk_ec2`) answering by the
/// aws-smithy-mocks `$rules` only (any order).
#[cfg(test)]
macro_rules! mocked {
    ($sdk:ident, $rules:expr) => {{
        let mut mocks = aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
        for rule in $rules {
            mocks = mocks.with_rule(rule);
        }
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider($sdk::config::Credentials::new(
                    "AKIDTEST", "secret", None, None, "test",
                ))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(mocks)
                .build(),
        )
    }};
}

mod appscaling;
mod autoscaling;
mod clients;
mod cloudwatch;
pub mod dynamodb;
mod ec2;
mod ecs;
mod eks;
mod error;
mod iam;
pub mod pricing;
mod rds;
mod scheduler;
mod tagging;

pub use clients::{http_client, whoami_with_keys, Keys};
pub use error::retry_config;

use super::{each_in_order, CloudControl, CloudError, ErrorKind, Identity};
use crate::core::busy::{Datapoint, MetricQuery};
use crate::core::deadline::Schedule;
use crate::core::resource::{
    AutoScalingGroup, Capacity, Desired, Ec2Instance, EcsService, EksNodegroup, Facts, Kind,
    Observed, RdsCluster, RdsInstance, ResourceId, Running, Scaling,
};
use crate::core::settings::AwsSettings;
use clients::{ClientCache, Clients};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// Tag holding the capacity a sleeping resource had.
pub const SLEEP_TAG: &str = "cloudnap:sleeping";
/// Tag that protects a resource from ever being stopped.
pub const PROTECT_TAG: &str = "cloudnap:protect";
/// Tag (`=true`) that puts a resource under cloudnap without services.yaml.
pub const MANAGED_TAG: &str = "cloudnap:managed";
/// Tag (`=true`) that makes a resource found by [`MANAGED_TAG`] a team
/// resource (as `shared: true` in services.yaml).
pub const SHARED_TAG: &str = "cloudnap:shared";

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
    /// ARNs learnt by `inspect`, needed to tag ECS services, EKS clusters
    /// and RDS databases.
    arns: std::sync::Mutex<HashMap<ResourceId, String>>,
    /// The regions and profiles whose deadline schedule group exists.
    schedule_groups: std::sync::Mutex<HashSet<(String, Option<String>)>>,
}

impl AwsCloud {
    /// An adapter using the settings' default profile and endpoint override.
    pub fn new(aws: &AwsSettings) -> Self {
        AwsCloud {
            clients: ClientCache::new(aws),
            arns: std::sync::Mutex::new(HashMap::new()),
            schedule_groups: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// Creates or updates the IAM `role` (see [`crate::core::iam`]) with
    /// the credentials of `profile`. Returns its ARN and whether it was
    /// created.
    pub async fn put_role(
        &self,
        region: &str,
        profile: Option<&str>,
        role: &crate::core::iam::Role,
    ) -> Result<(String, bool), CloudError> {
        iam::put_role(&self.clients.get(region, profile).await.iam, role).await
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

    /// What each of the ECS services `ids` of `cluster` is (one result per
    /// id): described 10 a call, their scalable targets in one call,
    /// remembering their ARNs for tagging. Without permission to read
    /// scalable targets, services are seen without them (warned once).
    async fn observe_ecs(
        &self,
        c: &Clients,
        cluster: &str,
        ids: &[ResourceId],
    ) -> Vec<Result<Observed, CloudError>> {
        let services: Vec<String> = ids.iter().map(|id| id.part(1).to_string()).collect();
        let scaling_ids: Vec<String> = services
            .iter()
            .map(|s| ecs::scaling_id(cluster, s))
            .collect();
        let (described, targets) = tokio::join!(
            ecs::describe_many(&c.ecs, cluster, &services),
            appscaling::targets(&c.appscaling, &ecs::SCALING, &scaling_ids)
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
                self.remember_arn(id, s.service_arn());
                let mut observed = ecs::observe(&s);
                let scaling_id = ecs::scaling_id(cluster, s.service_name().unwrap_or_default());
                observed.capacity.target = targets.get(&scaling_id).copied();
                Ok(observed)
            })
            .collect()
    }

    /// The ARN that tags of `id` are written to: the instance id, the ECS
    /// service, the EKS cluster, or the RDS database.
    async fn arn_of(&self, c: &Clients, id: &ResourceId) -> Result<String, CloudError> {
        if let Some(arn) = self.known_arn(id) {
            return Ok(arn);
        }
        let (first, second) = (id.part(0), id.part(1));
        match id.kind() {
            Kind::Ecs => {
                let svc = ecs::describe(&c.ecs, first, second).await?;
                self.remember_arn(id, svc.service_arn());
            }
            Kind::Eks => {
                let cluster = eks::cluster(&c.eks, first).await?;
                self.remember_arn(id, cluster.arn());
            }
            Kind::Rds => {
                let db = rds::instance(&c.rds, first).await?;
                self.remember_arn(id, db.db_instance_arn());
            }
            Kind::RdsCluster => {
                let cluster = rds::cluster(&c.rds, first).await?;
                self.remember_arn(id, cluster.db_cluster_arn());
            }
            Kind::Ec2 | Kind::Asg => return Ok(first.to_string()),
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
        let (first, second) = (id.part(0), id.part(1));
        match id.kind() {
            Kind::Ec2 => only(ec2::inspect(&c.ec2, &[first.to_string()]).await),
            Kind::Ecs => only(self.observe_ecs(&c, first, std::slice::from_ref(id)).await),
            Kind::Eks => {
                let (ng, cluster) = tokio::join!(
                    eks::nodegroup(&c.eks, first, second),
                    eks::cluster(&c.eks, first)
                );
                let (ng, cluster) = (ng?, cluster?);
                self.remember_arn(id, cluster.arn());
                Ok(eks::observe(&ng, &cluster, second))
            }
            Kind::Asg => Ok(autoscaling::observe(
                &autoscaling::describe(&c.autoscaling, first).await?,
            )),
            Kind::Rds => {
                let db = rds::instance(&c.rds, first).await?;
                self.remember_arn(id, db.db_instance_arn());
                Ok(rds::observe_instance(&db))
            }
            Kind::RdsCluster => {
                let cluster = rds::cluster(&c.rds, first).await?;
                self.remember_arn(id, cluster.db_cluster_arn());
                Ok(rds::observe_cluster(&cluster))
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
        let (first, second) = (id.part(0), id.part(1));
        match (id.kind(), capacity.level) {
            _ if capacity.kind != id.kind() => Err(CloudError::new(
                ErrorKind::Other,
                format!("capacity {capacity} does not apply to {id}"),
            )),
            (Kind::Ec2, Running(_)) => {
                only(ec2::set_running(&c.ec2, &[first.to_string()], capacity).await)
            }
            // The scalable target first, both ways: held down before the
            // count goes to 0, back before the count comes back.
            (Kind::Ecs, Desired(desired)) => {
                if let Some(target) = capacity.target {
                    let scaling_id = ecs::scaling_id(first, second);
                    appscaling::set(&c.appscaling, &ecs::SCALING, &scaling_id, target).await?;
                }
                ecs::set_desired(&c.ecs, first, second, desired).await
            }
            (Kind::Eks, Scaling { min, desired, max }) => {
                eks::set_scaling(&c.eks, first, second, (min, desired, max)).await
            }
            (Kind::Asg, Scaling { min, desired, max }) => {
                autoscaling::set_scaling(&c.autoscaling, first, (min, desired, max)).await
            }
            (kind @ (Kind::Rds | Kind::RdsCluster), Running(running)) => {
                rds::set_running(&c.rds, kind, first, running).await
            }
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
        match id.kind() {
            Kind::Ec2 => only(ec2::set_sleep_tag(&c.ec2, &[arn], saved).await),
            Kind::Ecs => ecs::set_sleep_tag(&c.ecs, arn, saved).await,
            Kind::Eks => eks::set_sleep_tag(&c.eks, arn, id.part(1), saved).await,
            Kind::Asg => autoscaling::set_sleep_tag(&c.autoscaling, &arn, saved).await,
            Kind::Rds | Kind::RdsCluster => rds::set_sleep_tag(&c.rds, &arn, saved).await,
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
            let (first, second) = (id.part(0), id.part(1));
            match id.kind() {
                Kind::Ec2 => only(ec2::facts(&c.ec2, &[first.to_string()]).await),
                Kind::Ecs => only(ecs::facts_many(&c.ecs, first, &[second.to_string()]).await),
                Kind::Eks => Ok(eks::facts(&eks::nodegroup(&c.eks, first, second).await?)),
                Kind::Asg => Ok(autoscaling::facts(
                    &autoscaling::describe(&c.autoscaling, first).await?,
                )),
                // Not priced yet: the report notes the type as unknown.
                Kind::Rds | Kind::RdsCluster => Ok(Facts::default()),
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

    async fn list_asg(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<AutoScalingGroup>, CloudError> {
        autoscaling::list(&self.clients.get(region, profile).await.autoscaling, region).await
    }

    async fn discover(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<(ResourceId, bool)>, CloudError> {
        let c = self.clients.get(region, profile).await;
        tagging::discover(&c.tagging).await
    }

    async fn list_rds(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<RdsInstance>, CloudError> {
        rds::list(&self.clients.get(region, profile).await.rds, region).await
    }

    async fn list_rds_clusters(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<RdsCluster>, CloudError> {
        rds::list_clusters(&self.clients.get(region, profile).await.rds, region).await
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
        if let Some((region, cluster, _)) = ecs::same_cluster(ids) {
            let c = self.clients.get(region, profile).await;
            return self.observe_ecs(&c, cluster, ids).await;
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
            Some((region, ids, to)) if to.kind == Kind::Ec2 => {
                let c = self.clients.get(region, profile).await;
                ec2::set_running(&c.ec2, &ids, to).await
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

    async fn put_schedules(
        &self,
        region: &str,
        profile: Option<&str>,
        schedules: &[Schedule],
        role_arn: &str,
    ) -> Vec<Result<(), CloudError>> {
        let c = self.clients.get(region, profile).await;
        let key = (region.to_string(), profile.map(String::from));
        if !self.schedule_groups.lock().expect("groups").contains(&key) {
            if let Err(e) = scheduler::ensure_group(&c.scheduler).await {
                return schedules.iter().map(|_| Err(e.clone())).collect();
            }
            self.schedule_groups.lock().expect("groups").insert(key);
        }
        let c = &c;
        each_in_order(schedules, 8, |s| scheduler::put(&c.scheduler, s, role_arn)).await
    }

    async fn delete_schedules(
        &self,
        region: &str,
        profile: Option<&str>,
        names: &[String],
    ) -> Vec<Result<(), CloudError>> {
        let c = self.clients.get(region, profile).await;
        let c = &c;
        each_in_order(names, 8, |n| scheduler::delete(&c.scheduler, n)).await
    }

    async fn list_schedules(
        &self,
        region: &str,
        profile: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<String>, CloudError> {
        let c = self.clients.get(region, profile).await;
        scheduler::list(&c.scheduler, prefix).await
    }

    fn reconfigure(&self, aws: &AwsSettings) {
        self.clients.reconfigure(aws);
    }

    async fn reachable(&self, region: &str) -> bool {
        let connect = tokio::net::TcpStream::connect(self.clients.address(region));
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), connect).await,
            Ok(Ok(_))
        )
    }

    async fn whoami(&self, region: &str, profile: Option<&str>) -> Result<Identity, CloudError> {
        clients::identity(&self.clients.get(region, profile).await.sts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::history::Trigger;
    use crate::core::registry::Entry;
    use crate::core::report::Action;
    use crate::core::settings::Settings;
    use crate::manager::Manager;
    use crate::store::records::RecordsFile;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_applicationautoscaling::operation::describe_scalable_targets::DescribeScalableTargetsOutput;
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    use aws_sdk_ecs::types::Service;
    use aws_smithy_mocks::{mock, Rule};
    use std::sync::Arc;

    const R: &str = "us-east-1";

    #[tokio::test(start_paused = true)]
    async fn a_stop_aws_accepts_but_that_does_not_happen_is_did_not_reach() {
        // AWS takes the UpdateService, but the service stays at 3.
        let describe = mock!(aws_sdk_ecs::Client::describe_services)
            .sequence()
            .output(|| {
                DescribeServicesOutput::builder()
                    .services(
                        Service::builder()
                            .service_name("api")
                            .service_arn("arn:aws:ecs:us-east-1:1:service/c/api")
                            .status("ACTIVE")
                            .desired_count(3)
                            .build(),
                    )
                    .build()
            })
            .repeatedly()
            .build();
        let update = mock!(aws_sdk_ecs::Client::update_service)
            .then_output(|| UpdateServiceOutput::builder().build());
        let tag = mock!(aws_sdk_ecs::Client::tag_resource)
            .sequence()
            .output(|| TagResourceOutput::builder().build())
            .repeatedly()
            .build();
        let targets = mock!(aws_sdk_applicationautoscaling::Client::describe_scalable_targets)
            .sequence()
            .output(|| DescribeScalableTargetsOutput::builder().build())
            .repeatedly()
            .build();
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(R))
            .build();
        let clients = Clients {
            ecs: mocked!(aws_sdk_ecs, [&describe, &update, &tag] as [&Rule; 3]),
            appscaling: mocked!(aws_sdk_applicationautoscaling, [&targets]),
            ..Clients::new(&conf)
        };
        let cloud = AwsCloud {
            clients: ClientCache::with(R, clients),
            arns: std::sync::Mutex::new(HashMap::new()),
            schedule_groups: std::sync::Mutex::new(HashSet::new()),
        };
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let m = Manager::new(Arc::new(cloud), RecordsFile::new(&state), 4, false);
        let entry = Entry::new(ResourceId::new(Kind::Ecs, ["c", "api"], R));

        let out = m
            .sleep(&[entry], &Settings::default().busy, Trigger::Command)
            .await
            .unwrap();

        assert_eq!(out[0].action, Action::DidNotReach, "{out:?}");
        assert_eq!(
            out[0].error.as_deref(),
            Some("did_not_reach: AWS shows desired 3 (ACTIVE), not desired 0")
        );
        assert_eq!(update.num_calls(), 1);
        // Read back five times (the first inspect, the facts, then 5 reads).
        assert_eq!(describe.num_calls(), 7);
        // Still recorded, as stopping: the next sleep tries again.
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.contains(r#""phase": "stopping""#), "{text}");
    }
}

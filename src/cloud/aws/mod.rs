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

#[cfg(test)]
pub(crate) use mocked;

pub(crate) mod appscaling;
pub(crate) mod clients;
mod cloudwatch;
pub mod dynamodb;
pub(crate) mod error;
mod iam;
pub mod pricing;
mod scheduler;
pub mod signed;
pub mod sso;
mod tagging;

pub use clients::{http_client, whoami_with_keys, Keys};
pub use error::retry_config;

use super::{
    each_in_order, group_by, in_item_order, CloudControl, CloudError, ErrorKind, Identity,
};
use crate::core::config::settings::AwsSettings;
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Running};
use crate::core::policy::busy::{Datapoint, MetricQuery};
use crate::core::policy::deadline::Schedule;
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{Arns, Cx, Each, KindAdapter, Seen};
use crate::kinds::aws::adapter;
use clients::ClientCache;
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
pub(crate) use all_items;

/// Whether the tags hold `cloudnap:protect=true` (any case).
pub(crate) fn has_protect(
    tags: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
) -> bool {
    tags.into_iter()
        .any(|(k, v)| k.as_ref() == PROTECT_TAG && v.as_ref().eq_ignore_ascii_case("true"))
}

/// The capacity saved in a sleep tag's value, if it is one.
pub(crate) fn sleep_tag(kind: Kind, value: Option<&str>) -> Option<Capacity> {
    value.and_then(|v| Capacity::from_tag(kind, v))
}

/// What a resource of a kind that is running or stopped
/// ([`crate::kinds::Shape::Running`]) is, from its AWS `status` (up when
/// `is_up` says so) and its tags.
pub(crate) fn observed_running(
    kind: Kind,
    status: String,
    is_up: fn(&str) -> bool,
    tags: &[(String, String)],
) -> Observed {
    let pairs = tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    Observed {
        capacity: Capacity::of(kind, Running(is_up(&status))),
        protected: has_protect(pairs.clone()),
        sleep_tag: sleep_tag(
            kind,
            pairs.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status,
        deployments: Vec::new(),
        part_of: None,
    }
}

/// The only result of a call for one item.
pub(crate) fn only<T>(results: Vec<T>) -> T {
    results.into_iter().next().expect("one result per item")
}

/// AWS implementation of [`CloudControl`]: each resource kind's calls are
/// its [`KindAdapter`]'s (see [`crate::kinds`]).
pub struct AwsCloud {
    clients: ClientCache,
    /// ARNs learnt by observing, needed to tag some kinds.
    arns: Arns,
    /// What observing showed of what resources are made of.
    seen: Seen,
    /// The regions and profiles whose deadline schedule group exists.
    schedule_groups: std::sync::Mutex<HashSet<(String, Option<String>)>>,
}

impl AwsCloud {
    /// An adapter using the settings' default profile and endpoint override.
    pub fn new(aws: &AwsSettings) -> Self {
        AwsCloud {
            clients: ClientCache::new(aws),
            arns: Arns::default(),
            seen: Seen::default(),
            schedule_groups: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// Creates or updates the IAM `role` (see [`crate::core::config::iam`]) with
    /// the credentials of `profile`. Returns its ARN and whether it was
    /// created.
    pub async fn put_role(
        &self,
        region: &str,
        profile: Option<&str>,
        role: &crate::core::config::iam::Role,
    ) -> Result<(String, bool), CloudError> {
        iam::put_role(&self.clients.get(region, profile).await.iam, role).await
    }

    /// `C` by each kind's adapter for `items`: the items of one region, kind
    /// and batch key (see [`crate::kinds::Batch`]) go together, the batches
    /// at once; results keep the order of `items`.
    async fn by_batch<C: Call>(
        &self,
        items: &[C::Item],
        profile: Option<&str>,
    ) -> Vec<Result<C::Out, CloudError>> {
        let groups: Vec<(BatchKey, Vec<usize>)> = group_by(items, |item| {
            let id = C::id(item);
            let batch = id.kind().spec().batch.key(id.names());
            (id.region().to_string(), id.kind(), batch)
        });
        let mut clients = HashMap::new();
        for ((region, _, _), _) in &groups {
            if !clients.contains_key(region) {
                clients.insert(region.clone(), self.clients.get(region, profile).await);
            }
        }
        let batches: Vec<Vec<C::Item>> = groups
            .iter()
            .map(|(_, members)| members.iter().map(|&i| items[i].clone()).collect())
            .collect();
        let calls = groups
            .iter()
            .zip(&batches)
            .map(|(((region, kind, _), _), batch)| {
                let cx = Cx {
                    clients: &clients[region],
                    arns: &self.arns,
                    seen: &self.seen,
                };
                C::call(adapter(*kind), cx, batch)
            });
        let answers = futures::future::join_all(calls).await;
        in_item_order(items.len(), &groups, answers)
    }
}

/// Resources answered together: region, kind, [`crate::kinds::Batch`] key.
type BatchKey = (String, Kind, String);

/// One of the calls every kind's adapter makes, on a batch of items.
trait Call {
    type Item: Clone;
    type Out;
    /// The resource an item is about.
    fn id(item: &Self::Item) -> &ResourceId;
    /// The adapter's call for `items`.
    fn call<'a>(
        adapter: &'static dyn KindAdapter,
        cx: Cx<'a>,
        items: &'a [Self::Item],
    ) -> Each<'a, Self::Out>;
}

/// [`KindAdapter::observe`].
struct Observe;

impl Call for Observe {
    type Item = ResourceId;
    type Out = Observed;
    fn id(item: &ResourceId) -> &ResourceId {
        item
    }
    fn call<'a>(
        a: &'static dyn KindAdapter,
        cx: Cx<'a>,
        ids: &'a [ResourceId],
    ) -> Each<'a, Observed> {
        a.observe(cx, ids)
    }
}

/// [`KindAdapter::facts`].
struct GetFacts;

impl Call for GetFacts {
    type Item = ResourceId;
    type Out = Facts;
    fn id(item: &ResourceId) -> &ResourceId {
        item
    }
    fn call<'a>(a: &'static dyn KindAdapter, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        a.facts(cx, ids)
    }
}

/// [`KindAdapter::ready`].
struct Ready;

impl Call for Ready {
    type Item = (ResourceId, Option<u16>);
    type Out = Probe;
    fn id(item: &Self::Item) -> &ResourceId {
        &item.0
    }
    fn call<'a>(
        a: &'static dyn KindAdapter,
        cx: Cx<'a>,
        items: &'a [Self::Item],
    ) -> Each<'a, Probe> {
        a.ready(cx, items)
    }
}

/// [`KindAdapter::set_capacity`].
struct SetCapacity;

impl Call for SetCapacity {
    type Item = (ResourceId, Capacity);
    type Out = ();
    fn id(item: &Self::Item) -> &ResourceId {
        &item.0
    }
    fn call<'a>(a: &'static dyn KindAdapter, cx: Cx<'a>, items: &'a [Self::Item]) -> Each<'a, ()> {
        a.set_capacity(cx, items)
    }
}

/// [`KindAdapter::set_sleep_tags`].
struct SetSleepTags;

impl Call for SetSleepTags {
    type Item = (ResourceId, Option<Capacity>);
    type Out = ();
    fn id(item: &Self::Item) -> &ResourceId {
        &item.0
    }
    fn call<'a>(a: &'static dyn KindAdapter, cx: Cx<'a>, items: &'a [Self::Item]) -> Each<'a, ()> {
        a.set_sleep_tags(cx, items)
    }
}

impl CloudControl for AwsCloud {
    async fn inspect(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
    ) -> Result<Observed, CloudError> {
        only(self.inspect_many(std::slice::from_ref(id), profile).await)
    }

    async fn set_capacity(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        capacity: Capacity,
    ) -> Result<(), CloudError> {
        only(
            self.set_capacity_many(&[(id.clone(), capacity)], profile)
                .await,
        )
    }

    async fn set_sleep_tag(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        saved: Option<Capacity>,
    ) -> Result<(), CloudError> {
        only(self.set_sleep_tags(&[(id.clone(), saved)], profile).await)
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

    async fn ready_many(
        &self,
        items: &[(ResourceId, Option<u16>)],
        profile: Option<&str>,
    ) -> Vec<Result<Probe, CloudError>> {
        self.by_batch::<Ready>(items, profile).await
    }

    async fn facts_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> Vec<Result<Facts, CloudError>> {
        self.by_batch::<GetFacts>(ids, profile).await
    }

    async fn list(
        &self,
        kind: Kind,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, CloudError> {
        let clients = self.clients.get(region, profile).await;
        let cx = Cx {
            clients: &clients,
            arns: &self.arns,
            seen: &self.seen,
        };
        adapter(kind).list(cx, region).await
    }

    async fn discover(
        &self,
        region: &str,
        profile: Option<&str>,
    ) -> Result<Vec<(ResourceId, bool)>, CloudError> {
        let c = self.clients.get(region, profile).await;
        tagging::discover(&c.tagging).await
    }

    /// Each kind's batches at once (see [`crate::kinds::Batch`]).
    async fn inspect_many(
        &self,
        ids: &[ResourceId],
        profile: Option<&str>,
    ) -> Vec<Result<Observed, CloudError>> {
        self.by_batch::<Observe>(ids, profile).await
    }

    /// A capacity of another kind than its resource's is refused.
    async fn set_capacity_many(
        &self,
        items: &[(ResourceId, Capacity)],
        profile: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        let fits = |(id, c): &&(ResourceId, Capacity)| c.kind == id.kind();
        let fitting: Vec<_> = items.iter().filter(fits).cloned().collect();
        let mut done = self
            .by_batch::<SetCapacity>(&fitting, profile)
            .await
            .into_iter();
        items
            .iter()
            .map(|item| match fits(&item) {
                true => done
                    .next()
                    .unwrap_or_else(|| Err(CloudError::new(ErrorKind::Other, "no answer"))),
                false => Err(crate::kinds::adapter::wrong_shape(&item.0, item.1)),
            })
            .collect()
    }

    async fn set_sleep_tags(
        &self,
        items: &[(ResourceId, Option<Capacity>)],
        profile: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        self.by_batch::<SetSleepTags>(items, profile).await
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
    use crate::core::config::registry::Entry;
    use crate::core::config::settings::Settings;
    use crate::core::model::history::Trigger;
    use crate::core::model::outcome::Action;
    use crate::manager::Manager;
    use crate::store::records::RecordsFile;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_applicationautoscaling::operation::describe_scalable_targets::DescribeScalableTargetsOutput;
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    use aws_sdk_ecs::types::Service;
    use aws_smithy_mocks::{mock, Rule};
    use clients::Clients;
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
            arns: Arns::default(),
            seen: Seen::default(),
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

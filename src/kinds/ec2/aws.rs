//! EC2 instances: describe, start and stop, the sleep tag, and listing.
//!
//! Every operation takes a slice of instance ids of one region: more than one
//! is served by one call, and a single id, or the ids of a failed batch call,
//! one by one for exact errors.

use crate::cloud::aws::error::{aws_err, not_found};
use crate::cloud::aws::{all_items, has_protect, only, sleep_tag, SLEEP_TAG};
use crate::cloud::{each_in_order, CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId, Running, Volume};
use crate::core::policy::readiness::Probe;
use crate::kinds::adapter::{by_value, rows, wrong_shape, Cx, Each, KindAdapter};
use crate::kinds::asg;
use aws_sdk_ec2::types::{Filter, Instance, Tag};
use aws_sdk_ec2::Client;
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::slice;
use std::time::Duration;

/// One result per id: `batch` for all of them when there is more than one;
/// if it fails, or for a single id, `each` id on its own, 16 at a time.
async fn batch_or_each<'a, T, F>(
    ids: &'a [String],
    batch: impl Future<Output = Result<Vec<Result<T, CloudError>>, CloudError>>,
    each: impl Fn(&'a String) -> F,
) -> Vec<Result<T, CloudError>>
where
    F: Future<Output = Result<T, CloudError>>,
{
    if ids.len() > 1 {
        if let Ok(all) = batch.await {
            return all;
        }
    }
    each_in_order(ids, 16, each).await
}

/// `Ok` for each of `ids` when a call for all of them worked.
fn all_ok(
    ids: &[String],
    call: Result<(), CloudError>,
) -> Result<Vec<Result<(), CloudError>>, CloudError> {
    call.map(|()| vec![Ok(()); ids.len()])
}

/// What is done with each instance described (see
/// [`crate::kinds::adapter::Seen`]).
type Remember<'a> = &'a (dyn Fn(&Instance) + Sync);

/// Capacity, protection, sleep tag and state of each of `ids`.
async fn inspect(
    ec2: &Client,
    ids: &[String],
    remember: Remember<'_>,
) -> Vec<Result<Observed, CloudError>> {
    batch_or_each(ids, observe_all(ec2, ids, remember), move |id| async move {
        only(observe_all(ec2, slice::from_ref(id), remember).await?)
    })
    .await
}

/// [`observe`] for each of `ids`, `NotFound` for those that do not exist;
/// one call per 500 ids.
async fn observe_all(
    ec2: &Client,
    ids: &[String],
    remember: Remember<'_>,
) -> Result<Vec<Result<Observed, CloudError>>, CloudError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let reservations = all_items!(ec2
            .describe_instances()
            .set_instance_ids(Some(chunk.to_vec())))?;
        for i in reservations.iter().flat_map(|r| r.instances()) {
            if let Some(id) = i.instance_id() {
                remember(i);
                found.insert(id.to_string(), i.clone());
            }
        }
    }
    Ok(ids
        .iter()
        .map(|i| {
            found
                .get(i)
                .map(observe)
                .ok_or_else(|| not_found(format!("instance {i}")))
        })
        .collect())
}

/// Capacity, protection, sleep tag and state of an instance.
fn observe(i: &Instance) -> Observed {
    let state = state(i);
    let tags = i
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    Observed {
        capacity: Capacity::of(
            Kind::Ec2,
            Running(matches!(state.as_str(), "pending" | "running")),
        ),
        protected: has_protect(tags.clone()),
        sleep_tag: sleep_tag(
            Kind::Ec2,
            tags.clone().find(|(k, _)| *k == SLEEP_TAG).map(|(_, v)| v),
        ),
        status: state,
        deployments: Vec::new(),
        part_of: tags
            .clone()
            .find(|(k, _)| *k == asg::MEMBER_TAG)
            .map(|(_, group)| asg::member_reason(group)),
    }
}

/// Type, OS, attached EBS volumes and Elastic IPs of each of `ids`: from
/// what the look saw if it saw them all (then one describe of their volumes
/// per 200 ids), else with one describe of the instances too, or one by one
/// if that fails.
async fn facts(cx: Cx<'_>, rids: &[ResourceId]) -> Vec<Result<Facts, CloudError>> {
    let (ec2, ids) = (&cx.clients.ec2, instance_ids(rids));
    if let Some(seen) = cx.seen.take_all(rids) {
        if let Ok(volumes) = volumes_of(ec2, &ids).await {
            return (seen.into_iter())
                .map(|s| Ok(with_volumes(s, &volumes)))
                .collect();
        }
    }
    batch_or_each(&ids, facts_all(ec2, &ids), move |id| async move {
        only(facts_all(ec2, slice::from_ref(id)).await?)
    })
    .await
}

async fn facts_all(
    ec2: &Client,
    ids: &[String],
) -> Result<Vec<Result<Facts, CloudError>>, CloudError> {
    let mut found: HashMap<String, (Facts, Vec<String>)> = HashMap::new();
    for chunk in ids.chunks(200) {
        let reservations = all_items!(ec2
            .describe_instances()
            .set_instance_ids(Some(chunk.to_vec())))?;
        for i in reservations.iter().flat_map(|r| r.instances()) {
            if let Some(id) = i.instance_id() {
                found.insert(id.to_string(), seen(i));
            }
        }
    }
    let volumes = volumes_of(ec2, ids).await?;
    Ok(ids
        .iter()
        .map(|i| {
            let seen = found
                .remove(i)
                .ok_or_else(|| not_found(format!("instance {i}")))?;
            Ok(with_volumes(seen, &volumes))
        })
        .collect())
}

/// What an instance's description shows of what it is made of: its facts
/// but the volumes, and its volumes' ids.
fn seen(i: &Instance) -> (Facts, Vec<String>) {
    let volume_ids = i
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()).map(String::from))
        .collect();
    let elastic = i
        .network_interfaces()
        .iter()
        .filter_map(|n| n.association())
        .filter(|a| a.ip_owner_id().is_some_and(|o| o != "amazon"))
        .count();
    let facts = Facts {
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        os: i.platform_details().map(String::from),
        public_ipv4: u32::try_from(elastic).unwrap_or(u32::MAX),
        ..Facts::default()
    };
    (facts, volume_ids)
}

/// The EBS volumes attached to `ids`, by volume id: one call per 200.
async fn volumes_of(ec2: &Client, ids: &[String]) -> Result<HashMap<String, Volume>, CloudError> {
    let mut volumes = HashMap::new();
    for chunk in ids.chunks(200) {
        let described = all_items!(ec2.describe_volumes().filters(
            Filter::builder()
                .name("attachment.instance-id")
                .set_values(Some(chunk.to_vec()))
                .build()
        ))?;
        for v in described {
            if let Some(id) = v.volume_id() {
                let volume = Volume {
                    gb: u32::try_from(v.size().unwrap_or(0)).unwrap_or(0),
                    volume_type: v
                        .volume_type()
                        .map_or_else(|| "gp2".into(), |t| t.as_str().to_string()),
                };
                volumes.insert(id.to_string(), volume);
            }
        }
    }
    Ok(volumes)
}

/// `seen` with its volumes filled in from `volumes`.
fn with_volumes(
    (mut facts, volume_ids): (Facts, Vec<String>),
    volumes: &HashMap<String, Volume>,
) -> Facts {
    facts.volumes = (volume_ids.iter())
        .filter_map(|v| volumes.get(v).cloned())
        .collect();
    facts
}

fn state(i: &Instance) -> String {
    i.state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Starts each of `ids`, or stops it (hibernating it when `to` says so).
async fn set_running(ec2: &Client, ids: &[String], to: Capacity) -> Vec<Result<(), CloudError>> {
    let running = to.level == Running(true);
    let batch = async { all_ok(ids, start_or_stop(ec2, ids, to).await) };
    batch_or_each(ids, batch, move |id| async move {
        if running {
            start_when_stopped(ec2, id).await
        } else {
            start_or_stop(ec2, slice::from_ref(id), to).await
        }
    })
    .await
}

/// One call starting or stopping (or hibernating) all of `ids`.
async fn start_or_stop(ec2: &Client, ids: &[String], to: Capacity) -> Result<(), CloudError> {
    if to.level == Running(true) {
        ec2.start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(aws_err)?;
    } else {
        ec2.stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .set_hibernate(to.hibernate.then_some(true))
            .send()
            .await
            .map_err(aws_err)?;
    }
    Ok(())
}

/// Starts an instance; if it is still stopping, waits for it to stop first.
async fn start_when_stopped(ec2: &Client, instance_id: &str) -> Result<(), CloudError> {
    let ids = [instance_id.to_string()];
    for _ in 0..60 {
        match start_or_stop(ec2, &ids, Capacity::of(Kind::Ec2, Running(true))).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrorKind::InvalidState => {
                tokio::time::sleep(Duration::from_secs(2)).await
            }
            Err(e) => return Err(e),
        }
    }
    Err(CloudError::new(
        ErrorKind::InvalidState,
        format!("instance {instance_id} did not reach a startable state in 2 minutes"),
    ))
}

/// Writes (`Some`) or removes (`None`) the sleep tag of each of `ids`.
async fn set_sleep_tag(
    ec2: &Client,
    ids: &[String],
    saved: Option<Capacity>,
) -> Vec<Result<(), CloudError>> {
    let batch = async { all_ok(ids, tag(ec2, ids, saved).await) };
    batch_or_each(ids, batch, move |id| tag(ec2, slice::from_ref(id), saved)).await
}

/// One call writing or removing the sleep tag of all of `ids`.
async fn tag(ec2: &Client, ids: &[String], saved: Option<Capacity>) -> Result<(), CloudError> {
    let tag = Tag::builder().key(SLEEP_TAG);
    match saved {
        Some(saved) => {
            ec2.create_tags()
                .set_resources(Some(ids.to_vec()))
                .tags(tag.value(saved.to_tag()).build())
                .send()
                .await
                .map_err(aws_err)?;
        }
        None => {
            ec2.delete_tags()
                .set_resources(Some(ids.to_vec()))
                .tags(tag.build())
                .send()
                .await
                .map_err(aws_err)?;
        }
    }
    Ok(())
}

/// All instances in `region`.
async fn list(ec2: &Client, region: &str) -> Result<Vec<Ec2Instance>, CloudError> {
    let reservations = all_items!(ec2.describe_instances())?;
    Ok(reservations
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| Ec2Instance {
            instance_id: i.instance_id().unwrap_or_default().to_string(),
            region: region.to_string(),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            state: state(i),
            name: i
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .map(String::from),
            public_ip: i.public_ip_address().map(String::from),
            private_ip: i.private_ip_address().map(String::from),
            public_dns: i
                .public_dns_name()
                .filter(|d| !d.is_empty())
                .map(String::from),
            private_dns: i
                .private_dns_name()
                .filter(|d| !d.is_empty())
                .map(String::from),
        })
        .collect())
}

/// An EC2 instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ec2Instance {
    pub instance_id: String,
    pub region: String,
    pub instance_type: String,
    pub state: String,
    pub name: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub public_dns: Option<String>,
    pub private_dns: Option<String>,
}

/// The EC2 adapter: the instances of a region in one call per operation.
pub struct Ec2;

/// EC2 instances' adapter.
pub static EC2: Ec2 = Ec2;

/// The instance ids of `ids`.
fn instance_ids<'a>(ids: impl IntoIterator<Item = &'a ResourceId>) -> Vec<String> {
    ids.into_iter().map(|id| id.part(0).to_string()).collect()
}

impl KindAdapter for Ec2 {
    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed> {
        Box::pin(async move {
            let of: HashMap<&str, &ResourceId> = ids.iter().map(|id| (id.part(0), id)).collect();
            let remember = |i: &Instance| {
                if let Some(id) = i.instance_id().and_then(|i| of.get(i)) {
                    let (facts, volumes) = seen(i);
                    cx.seen.remember(id, facts, volumes);
                }
            };
            inspect(&cx.clients.ec2, &instance_ids(ids), &remember).await
        })
    }

    /// Instances going to the same capacity are started, or stopped, with
    /// one call.
    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()> {
        Box::pin(by_value(items, move |to, ids| async move {
            match to.level {
                Running(_) => set_running(&cx.clients.ec2, &instance_ids(ids), to).await,
                _ => ids.iter().map(|id| Err(wrong_shape(id, to))).collect(),
            }
        }))
    }

    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()> {
        Box::pin(by_value(items, move |saved, ids| async move {
            set_sleep_tag(&cx.clients.ec2, &instance_ids(ids), saved).await
        }))
    }

    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe> {
        Box::pin(super::ready::probe_all(&cx.clients.ec2, items))
    }

    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts> {
        Box::pin(facts(cx, ids))
    }

    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, CloudError>> {
        Box::pin(async move { rows(list(&cx.clients.ec2, region).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::aws::mocked;
    use aws_sdk_ec2::error::ErrorMetadata;
    use aws_sdk_ec2::operation::describe_instances::{
        DescribeInstancesError, DescribeInstancesInput, DescribeInstancesOutput,
    };
    use aws_sdk_ec2::operation::start_instances::{StartInstancesError, StartInstancesOutput};
    use aws_sdk_ec2::operation::stop_instances::{StopInstancesError, StopInstancesOutput};
    use aws_sdk_ec2::types::{InstanceState, InstanceStateName, Reservation};
    use aws_smithy_mocks::{mock, Rule};

    fn client(rules: &[&Rule]) -> Client {
        mocked!(aws_sdk_ec2, rules)
    }

    fn error(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder()
            .code(code)
            .message("from the mock")
            .build()
    }

    /// A describe call for exactly `ids`.
    fn asks_for(ids: &'static [&'static str]) -> impl Fn(&DescribeInstancesInput) -> bool {
        move |req| req.instance_ids() == ids
    }

    fn running(id: &str) -> DescribeInstancesOutput {
        let instance = Instance::builder()
            .instance_id(id)
            .state(
                InstanceState::builder()
                    .name(InstanceStateName::Running)
                    .build(),
            )
            .build();
        DescribeInstancesOutput::builder()
            .reservations(Reservation::builder().instances(instance).build())
            .build()
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|i| i.to_string()).collect()
    }

    #[tokio::test]
    async fn a_failed_batch_is_asked_again_one_instance_at_a_time() {
        let batch = mock!(Client::describe_instances)
            .match_requests(asks_for(&["i-a", "i-gone"]))
            .then_error(|| DescribeInstancesError::generic(error("InvalidInstanceID.NotFound")));
        let a = mock!(Client::describe_instances)
            .match_requests(asks_for(&["i-a"]))
            .then_output(|| running("i-a"));
        let gone = mock!(Client::describe_instances)
            .match_requests(asks_for(&["i-gone"]))
            .then_error(|| DescribeInstancesError::generic(error("InvalidInstanceID.NotFound")));
        let ec2 = client(&[&batch, &a, &gone]);

        let out = inspect(&ec2, &ids(&["i-a", "i-gone"]), &|_| ()).await;

        assert_eq!(out[0].as_ref().unwrap().status, "running");
        assert_eq!(out[1].as_ref().unwrap_err().kind, ErrorKind::NotFound);
        let calls = [&batch, &a, &gone].map(|r| r.num_calls());
        assert_eq!(calls, [1, 1, 1]);
    }

    #[tokio::test]
    async fn one_instance_is_one_call_with_its_own_error() {
        let gone = mock!(Client::describe_instances)
            .match_requests(asks_for(&["i-gone"]))
            .then_error(|| DescribeInstancesError::generic(error("InvalidInstanceID.NotFound")));
        let ec2 = client(&[&gone]);

        let out = inspect(&ec2, &ids(&["i-gone"]), &|_| ()).await;

        let err = out[0].as_ref().unwrap_err();
        assert_eq!(err.code.as_deref(), Some("InvalidInstanceID.NotFound"));
        assert_eq!(gone.num_calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_instance_is_started_once_it_has_stopped() {
        let start = mock!(Client::start_instances)
            .sequence()
            .error(|| StartInstancesError::generic(error("IncorrectInstanceState")))
            .times(2)
            .output(|| StartInstancesOutput::builder().build())
            .build();
        let ec2 = client(&[&start]);

        let out = set_running(&ec2, &ids(&["i-a"]), Capacity::of(Kind::Ec2, Running(true))).await;

        assert_eq!(out, vec![Ok(())]);
        assert_eq!(start.num_calls(), 3);
    }

    fn stopped() -> Capacity {
        Capacity::of(Kind::Ec2, Running(false))
    }

    #[tokio::test]
    async fn a_hibernation_aws_refuses_is_cannot_hibernate_for_that_instance_only() {
        // One StopInstances with Hibernate for both fails (one is not
        // configured for it): each is asked again on its own.
        let both = mock!(Client::stop_instances)
            .match_requests(|r| r.instance_ids().len() == 2 && r.hibernate() == Some(true))
            .then_error(|| {
                StopInstancesError::generic(error("UnsupportedHibernationConfiguration"))
            });
        let can = mock!(Client::stop_instances)
            .match_requests(|r| r.instance_ids() == ["i-a"] && r.hibernate() == Some(true))
            .then_output(|| StopInstancesOutput::builder().build());
        let cannot = mock!(Client::stop_instances)
            .match_requests(|r| r.instance_ids() == ["i-b"] && r.hibernate() == Some(true))
            .then_error(|| {
                StopInstancesError::generic(error("UnsupportedHibernationConfiguration"))
            });
        let ec2 = client(&[&both, &can, &cannot]);

        let out = set_running(&ec2, &ids(&["i-a", "i-b"]), stopped().hibernating(true)).await;

        assert_eq!(out[0], Ok(()));
        assert_eq!(
            out[1].as_ref().unwrap_err().kind,
            ErrorKind::CannotHibernate
        );
        assert_eq!([&both, &can, &cannot].map(|r| r.num_calls()), [1, 1, 1]);
    }

    #[tokio::test]
    async fn a_spot_instance_that_cannot_stop_is_reported_with_aws_reason_once() {
        let spot = mock!(Client::stop_instances)
            .match_requests(|r| r.hibernate().is_none())
            .then_error(|| {
                StopInstancesError::generic(
                    ErrorMetadata::builder()
                        .code("UnsupportedOperation")
                        .message("You can't stop the Spot Instance 'i-a' because it is associated with a one-time Spot Instance request.")
                        .build(),
                )
            });
        let ec2 = client(&[&spot]);

        let out = set_running(&ec2, &ids(&["i-a"]), stopped()).await;

        let e = out[0].as_ref().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(
            e.to_string().contains("can't stop the Spot Instance 'i-a'"),
            "{e}"
        );
        assert_eq!(spot.num_calls(), 1, "not retried");
    }
}

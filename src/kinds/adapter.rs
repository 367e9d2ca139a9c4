//! The AWS side of a kind: the [`KindAdapter`] trait each kind's `aws.rs`
//! implements, and what its calls work with ([`Cx`]).

use crate::cloud::aws::clients::Clients;
use crate::cloud::{each_in_order, group_by, in_item_order, CloudError, ErrorKind};
use crate::core::model::resource::{Capacity, Facts, Observed, ResourceId};
use crate::core::policy::readiness::Probe;
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// ARNs learnt while observing resources, needed to tag some kinds (an ECS
/// service, an EKS cluster, an RDS database).
#[derive(Debug, Default)]
pub struct Arns(Mutex<HashMap<ResourceId, String>>);

impl Arns {
    /// Remembers `arn` (if any) as the ARN of `id`.
    pub fn remember(&self, id: &ResourceId, arn: Option<&str>) {
        if let Some(arn) = arn {
            self.0
                .lock()
                .expect("arn cache")
                .insert(id.clone(), arn.to_string());
        }
    }

    /// The ARN of `id`, if it was learnt.
    pub fn known(&self, id: &ResourceId) -> Option<String> {
        self.0.lock().expect("arn cache").get(id).cloned()
    }

    /// The ARN of `id`, learnt now by `learn` (which remembers it) if it was
    /// not known yet.
    pub async fn of<F>(&self, id: &ResourceId, learn: F) -> Result<String, CloudError>
    where
        F: Future<Output = Result<(), CloudError>>,
    {
        if let Some(arn) = self.known(id) {
            return Ok(arn);
        }
        learn.await?;
        self.known(id)
            .ok_or_else(|| CloudError::new(ErrorKind::Other, format!("{id} has no ARN")))
    }
}

/// What the look of a sleep showed of what resources are made of, so
/// reading their facts (for pricing) does not describe them again: per
/// resource the facts seen and the ids of the parts still to read (an EC2
/// instance's EBS volumes). Each is taken once.
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashMap<ResourceId, (Facts, Vec<String>)>>);

impl Seen {
    /// Remembers what observing `id` showed.
    pub fn remember(&self, id: &ResourceId, facts: Facts, parts: Vec<String>) {
        let mut seen = self.0.lock().expect("seen cache");
        seen.insert(id.clone(), (facts, parts));
    }

    /// What was seen of each of `ids` if every one was seen (then taken),
    /// else `None` (and nothing taken).
    pub fn take_all(&self, ids: &[ResourceId]) -> Option<Vec<(Facts, Vec<String>)>> {
        let mut seen = self.0.lock().expect("seen cache");
        if !ids.iter().all(|id| seen.contains_key(id)) {
            return None;
        }
        ids.iter().map(|id| seen.remove(id)).collect()
    }
}

/// What an adapter's calls work with: the SDK clients of one region and
/// profile, and what was learnt so far.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    pub(crate) clients: &'a Clients,
    pub arns: &'a Arns,
    pub seen: &'a Seen,
}

/// A list of results, one per item of the call's input, in its order.
pub type Each<'a, T> = BoxFuture<'a, Vec<Result<T, CloudError>>>;

/// What cloudnap does with one kind of resource on AWS. Every call gets
/// resources of one region and profile that share their
/// [`crate::kinds::Batch`] key (any number of them): an adapter serves them
/// with as few calls as its API allows, at once.
pub trait KindAdapter: Sync {
    /// Current capacity, protection, sleep tag and status of each resource.
    fn observe<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Observed>;

    /// Sets each resource to its capacity (of this kind's shape).
    fn set_capacity<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Capacity)]) -> Each<'a, ()>;

    /// Writes (`Some`) or removes (`None`) each resource's sleep tag.
    fn set_sleep_tags<'a>(
        &'a self,
        cx: Cx<'a>,
        items: &'a [(ResourceId, Option<Capacity>)],
    ) -> Each<'a, ()>;

    /// Whether each resource (with its `ready_port`, for kinds that take
    /// one) is usable now, by its kind's rule: called after a wake until it
    /// is, with as few calls as [`Self::observe`].
    fn ready<'a>(&'a self, cx: Cx<'a>, items: &'a [(ResourceId, Option<u16>)]) -> Each<'a, Probe>;

    /// What each resource is made of, for pricing.
    fn facts<'a>(&'a self, cx: Cx<'a>, ids: &'a [ResourceId]) -> Each<'a, Facts>;

    /// Every resource of the kind in `region`, as `LIST_*` rows (flat: see
    /// [`crate::kinds::Spec::list_group`]).
    fn list<'a>(
        &'a self,
        cx: Cx<'a>,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CloudError>>;
}

/// `call` for each item, 16 at a time: for kinds whose API takes one
/// resource a call.
pub async fn each<'a, I, T, F>(items: &'a [I], call: impl Fn(&'a I) -> F) -> Vec<T>
where
    F: Future<Output = T>,
{
    each_in_order(items, 16, call).await
}

/// The error for a capacity of another shape than the resource's kind.
pub fn wrong_shape(id: &ResourceId, capacity: Capacity) -> CloudError {
    CloudError::new(
        ErrorKind::Other,
        format!("capacity {capacity} does not apply to {id}"),
    )
}

/// Listing rows as the reply sends them.
pub fn rows<T: serde::Serialize>(rows: Vec<T>) -> Result<Vec<Value>, CloudError> {
    rows.into_iter()
        .map(|r| {
            serde_json::to_value(r).map_err(|e| CloudError::new(ErrorKind::Other, e.to_string()))
        })
        .collect()
}

/// Serves `items` with one `call` per distinct value (concurrently), each
/// given the ids having that value; results keep the order of `items`.
pub async fn by_value<'a, V, T, F>(
    items: &'a [(ResourceId, V)],
    call: impl Fn(V, Vec<&'a ResourceId>) -> F,
) -> Vec<Result<T, CloudError>>
where
    V: PartialEq + Copy,
    F: Future<Output = Vec<Result<T, CloudError>>>,
{
    let groups = group_by(items, |(_, value)| *value);
    let calls = groups
        .iter()
        .map(|(value, members)| call(*value, members.iter().map(|&i| &items[i].0).collect()));
    let answers = futures::future::join_all(calls).await;
    in_item_order(items.len(), &groups, answers)
}

/// How a start/stop API reports states, for [`set_running`].
pub struct Lifecycle {
    /// Whether a resource in this status costs (is up).
    pub is_up: fn(&str) -> bool,
    /// The status of a resource still stopping (a start waits it out).
    pub stopping: &'static str,
    /// Whether an error is the API refusing the call in the current state.
    pub refused: fn(&CloudError) -> bool,
}

/// Starts (`running`) or stops one resource with `call` (`running` given),
/// reading its status with `status`: one already there (or stopping, for a
/// stop) is left as it is; a start waits while it is still stopping (at
/// most 2 minutes); any other refusal is that refusal.
pub async fn set_running<C, S>(
    what: &str,
    running: bool,
    life: &Lifecycle,
    call: impl Fn(bool) -> C,
    status: impl Fn() -> S,
) -> Result<(), CloudError>
where
    C: Future<Output = Result<(), CloudError>>,
    S: Future<Output = Result<String, CloudError>>,
{
    let what = [what.to_string()];
    let call = |_| async { vec![call(running).await] };
    let status = |_| async { vec![status().await] };
    let mut done = set_running_all(&what, running, life, call, status).await;
    done.pop().expect("one answer for one resource")
}

/// [`set_running`] for an API that takes many resources a call: `call`
/// starts or stops those at the given indexes of `what` (the names of
/// all), answering each; `status` reads the status of those at the given
/// indexes. Each round sends one `call` for all still to set and reads
/// the statuses of those refused at once.
pub async fn set_running_all<C, S>(
    what: &[String],
    running: bool,
    life: &Lifecycle,
    call: impl Fn(Vec<usize>) -> C,
    status: impl Fn(Vec<usize>) -> S,
) -> Vec<Result<(), CloudError>>
where
    C: Future<Output = Vec<Result<(), CloudError>>>,
    S: Future<Output = Vec<Result<String, CloudError>>>,
{
    let mut done: Vec<Option<Result<(), CloudError>>> = vec![None; what.len()];
    let mut pending: Vec<usize> = (0..what.len()).collect();
    for _ in 0..60 {
        if pending.is_empty() {
            break;
        }
        let answers = call(pending.clone()).await;
        let mut refused = Vec::new();
        for (i, answer) in pending.drain(..).zip(answers) {
            match answer {
                Err(e) if (life.refused)(&e) => refused.push((i, e)),
                answer => done[i] = Some(answer),
            }
        }
        if refused.is_empty() {
            break;
        }
        let now = status(refused.iter().map(|(i, _)| *i).collect()).await;
        for ((i, refusal), now) in refused.into_iter().zip(now) {
            match now {
                Ok(now) if now == life.stopping && running => pending.push(i),
                Ok(now) if (life.is_up)(&now) == running => done[i] = Some(Ok(())),
                Ok(_) => done[i] = Some(Err(refusal)),
                Err(e) => done[i] = Some(Err(e)),
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
    (done.into_iter().zip(what))
        .map(|(done, what)| {
            done.unwrap_or_else(|| {
                Err(CloudError::new(
                    ErrorKind::InvalidState,
                    format!("{what} did not stop in 2 minutes, so it could not be started"),
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal() -> CloudError {
        CloudError::new(ErrorKind::InvalidState, "not in this state")
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_started_in_one_call_a_round_waiting_out_the_stopping_ones() {
        const LIFE: Lifecycle = Lifecycle {
            is_up: |s| s == "up",
            stopping: "stopping",
            refused: |e| e.kind == ErrorKind::InvalidState,
        };
        // a starts; b is stopping for one round; c is up already; d is gone.
        let what: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let calls = Mutex::new(Vec::new());
        let call = |chosen: Vec<usize>| {
            let round = {
                let mut calls = calls.lock().unwrap();
                calls.push(chosen.clone());
                calls.len()
            };
            async move {
                (chosen.iter())
                    .map(|&i| match (i, round) {
                        (0, _) | (1, 2) => Ok(()),
                        _ => Err(refusal()),
                    })
                    .collect()
            }
        };
        let status = |chosen: Vec<usize>| async move {
            (chosen.iter())
                .map(|&i| Ok(["up", "stopping", "up", "terminated"][i].to_string()))
                .collect()
        };
        let done = set_running_all(&what, true, &LIFE, call, status).await;
        assert_eq!(done[..3], [Ok(()), Ok(()), Ok(())]);
        assert_eq!(done[3], Err(refusal()));
        assert_eq!(*calls.lock().unwrap(), [vec![0, 1, 2, 3], vec![1]]);
    }
}

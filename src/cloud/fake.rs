//! An in-memory [`CloudControl`] for unit tests of the core and the manager.

use super::{CloudControl, CloudError, ErrorKind, Identity, TeamTable};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId};
use crate::core::policy::busy::{Datapoint, Deployment, MetricQuery};
use crate::core::policy::deadline::Schedule;
use crate::core::policy::holds::Scope;
use crate::core::policy::team::{Lock, Presence, State, Written};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// One fake resource.
#[derive(Debug, Clone)]
pub struct FakeResource {
    pub capacity: Capacity,
    pub protected: bool,
    pub sleep_tag: Option<Capacity>,
    pub deployments: Vec<Deployment>,
    /// Why it is never stopped alone (see [`Observed::part_of`]).
    pub part_of: Option<String>,
}

/// Resources in memory, a log of mutating calls, and injectable failures.
#[derive(Default)]
pub struct FakeCloud {
    pub resources: Mutex<HashMap<ResourceId, FakeResource>>,
    /// Mutating calls, in order: `("set_capacity" | "set_sleep_tag", id)`.
    pub calls: Mutex<Vec<(&'static str, ResourceId)>>,
    /// Every `set_capacity` that went through, with the capacity set.
    pub set: Mutex<Vec<(ResourceId, Capacity)>>,
    /// Resources whose mutating calls fail with AccessDenied.
    pub deny: Mutex<Vec<ResourceId>>,
    /// The value every datapoint of a metric has, by (metric name, last
    /// dimension's value: instance id, service name); a metric not here
    /// has no datapoints.
    pub metrics: Mutex<HashMap<(String, String), f64>>,
    /// The regions of the `metric_data` calls, in order.
    pub metric_calls: Mutex<Vec<String>>,
    /// Whether `metric_data` fails with AccessDenied.
    pub deny_metrics: Mutex<bool>,
    /// What `discover` finds (tagged `cloudnap:managed=true`).
    pub tagged: Mutex<Vec<ResourceId>>,
    /// Which of `tagged` are tagged `cloudnap:shared=true` too.
    pub shared: Mutex<Vec<ResourceId>>,
    /// What `facts_many` answers per resource (default: nothing known).
    pub facts: Mutex<HashMap<ResourceId, Facts>>,
    /// Instances that refuse to hibernate (as AWS does those not
    /// configured for it).
    pub no_hibernation: Mutex<Vec<ResourceId>>,
    /// The instances that were hibernated, in order.
    pub hibernated: Mutex<Vec<ResourceId>>,
    /// Whether the network is down: every call fails with a connection
    /// refused, and `reachable` says no.
    pub offline: Mutex<bool>,
    /// Whether the credentials have expired: every call fails as a
    /// credential process reporting an expired SSO session does.
    pub expired: Mutex<bool>,
    /// Resources whose `set_capacity` calls fail with ThrottlingException.
    pub throttle: Mutex<Vec<ResourceId>>,
    /// Resources whose `set_capacity` AWS accepts but never carries out:
    /// they read back as they were.
    pub stuck: Mutex<Vec<ResourceId>>,
    /// The deadline schedules by region and name.
    pub schedules: Mutex<BTreeMap<(String, String), Schedule>>,
    /// Whether schedule calls fail with AccessDenied.
    pub deny_schedules: Mutex<bool>,
    /// How long every call takes (on tokio's clock, so a paused test
    /// controls it); a call for many resources takes it once, as AWS
    /// answers a batch.
    pub latency: Mutex<Duration>,
}

impl FakeCloud {
    /// Adds a resource at `capacity`.
    pub fn add(&self, id: &ResourceId, capacity: Capacity) {
        self.resources.lock().unwrap().insert(
            id.clone(),
            FakeResource {
                capacity,
                protected: false,
                sleep_tag: None,
                deployments: Vec::new(),
                part_of: None,
            },
        );
    }

    /// The resource's current state.
    pub fn get(&self, id: &ResourceId) -> FakeResource {
        self.resources.lock().unwrap()[id].clone()
    }

    /// A connection refused while [`Self::offline`], a credentials error
    /// while [`Self::expired`].
    fn online(&self) -> Result<(), CloudError> {
        if *self.offline.lock().unwrap() {
            return Err(CloudError::new(
                ErrorKind::Network,
                "dispatch failure: tcp connect error: Connection refused (os error 111)",
            ));
        }
        if *self.expired.lock().unwrap() {
            return Err(CloudError::new(
                ErrorKind::Credentials,
                "dispatch failure: an error occurred while loading credentials: \
                 Token has expired and refresh failed",
            ));
        }
        Ok(())
    }

    /// Waits as long as a call takes.
    async fn call(&self) {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    fn look(&self, id: &ResourceId) -> Result<Observed, CloudError> {
        self.online()?;
        let map = self.resources.lock().unwrap();
        let r = map
            .get(id)
            .ok_or_else(|| CloudError::new(ErrorKind::NotFound, format!("{id} not found")))?;
        Ok(Observed {
            capacity: r.capacity,
            protected: r.protected,
            sleep_tag: r.sleep_tag,
            status: r.capacity.to_string(),
            deployments: r.deployments.clone(),
            part_of: r.part_of.clone(),
        })
    }

    fn set_now(&self, id: &ResourceId, c: Capacity) -> Result<(), CloudError> {
        if c.hibernate {
            if self.no_hibernation.lock().unwrap().contains(id) {
                return Err(CloudError::from_code(
                    Some("UnsupportedHibernationConfiguration"),
                    "not configured for hibernation",
                ));
            }
            self.hibernated.lock().unwrap().push(id.clone());
        }
        if self.stuck.lock().unwrap().contains(id) {
            return self.mutate("set_capacity", id, |_| {});
        }
        self.mutate("set_capacity", id, |r| r.capacity = c.hibernating(false))?;
        self.set.lock().unwrap().push((id.clone(), c));
        Ok(())
    }

    /// A schedule call: AccessDenied while [`Self::deny_schedules`].
    fn schedule_call(&self) -> Result<(), CloudError> {
        self.online()?;
        if *self.deny_schedules.lock().unwrap() {
            return Err(CloudError::from_code(
                Some("AccessDeniedException"),
                "not authorized to perform: scheduler:CreateSchedule",
            ));
        }
        Ok(())
    }

    fn mutate(
        &self,
        call: &'static str,
        id: &ResourceId,
        f: impl FnOnce(&mut FakeResource),
    ) -> Result<(), CloudError> {
        self.calls.lock().unwrap().push((call, id.clone()));
        self.online()?;
        if call == "set_capacity" && self.throttle.lock().unwrap().contains(id) {
            return Err(CloudError::from_code(
                Some("ThrottlingException"),
                "Rate exceeded",
            ));
        }
        if self.deny.lock().unwrap().contains(id) {
            return Err(CloudError::from_code(
                Some("AccessDeniedException"),
                "denied",
            ));
        }
        let mut map = self.resources.lock().unwrap();
        let r = map
            .get_mut(id)
            .ok_or_else(|| CloudError::new(ErrorKind::NotFound, format!("{id} not found")))?;
        f(r);
        Ok(())
    }
}

impl CloudControl for FakeCloud {
    async fn inspect(&self, id: &ResourceId, _: Option<&str>) -> Result<Observed, CloudError> {
        self.call().await;
        self.look(id)
    }

    async fn inspect_many(
        &self,
        ids: &[ResourceId],
        _: Option<&str>,
    ) -> Vec<Result<Observed, CloudError>> {
        self.call().await;
        ids.iter().map(|id| self.look(id)).collect()
    }

    async fn set_capacity(
        &self,
        id: &ResourceId,
        _: Option<&str>,
        c: Capacity,
    ) -> Result<(), CloudError> {
        self.call().await;
        self.set_now(id, c)
    }

    async fn set_capacity_many(
        &self,
        items: &[(ResourceId, Capacity)],
        _: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        self.call().await;
        items.iter().map(|(id, c)| self.set_now(id, *c)).collect()
    }

    async fn set_sleep_tag(
        &self,
        id: &ResourceId,
        _: Option<&str>,
        saved: Option<Capacity>,
    ) -> Result<(), CloudError> {
        self.call().await;
        self.mutate("set_sleep_tag", id, |r| r.sleep_tag = saved)
    }

    async fn set_sleep_tags(
        &self,
        items: &[(ResourceId, Option<Capacity>)],
        _: Option<&str>,
    ) -> Vec<Result<(), CloudError>> {
        self.call().await;
        (items.iter())
            .map(|(id, saved)| self.mutate("set_sleep_tag", id, |r| r.sleep_tag = *saved))
            .collect()
    }

    async fn metric_data(
        &self,
        region: &str,
        _: Option<&str>,
        queries: &[MetricQuery],
        (_, end): (SystemTime, SystemTime),
    ) -> Result<Vec<Vec<Datapoint>>, CloudError> {
        self.call().await;
        self.metric_calls.lock().unwrap().push(region.to_string());
        if *self.deny_metrics.lock().unwrap() {
            return Err(CloudError::from_code(
                Some("AccessDeniedException"),
                "denied",
            ));
        }
        let metrics = self.metrics.lock().unwrap();
        Ok(queries
            .iter()
            .map(|q| {
                let key = (
                    q.metric.to_string(),
                    q.dimensions.last().map(|d| d.1.clone()).unwrap_or_default(),
                );
                metrics
                    .get(&key)
                    .map(|&value| vec![Datapoint { at: end, value }])
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn facts_many(
        &self,
        ids: &[ResourceId],
        _: Option<&str>,
    ) -> Vec<Result<Facts, CloudError>> {
        self.call().await;
        let facts = self.facts.lock().unwrap();
        ids.iter()
            .map(|id| Ok(facts.get(id).cloned().unwrap_or_default()))
            .collect()
    }

    /// Its resources of `kind` in `region`, named and with their capacity.
    async fn list(
        &self,
        kind: Kind,
        region: &str,
        _: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, CloudError> {
        let resources = self.resources.lock().unwrap();
        Ok(resources
            .iter()
            .filter(|(id, _)| id.kind() == kind && id.region() == region)
            .map(|(id, r)| serde_json::json!({"id": id, "region": region, "capacity": r.capacity}))
            .collect())
    }

    async fn discover(
        &self,
        region: &str,
        _: Option<&str>,
    ) -> Result<Vec<(ResourceId, bool)>, CloudError> {
        self.call().await;
        let shared = self.shared.lock().unwrap();
        Ok(self
            .tagged
            .lock()
            .unwrap()
            .iter()
            .filter(|id| id.region() == region)
            .map(|id| (id.clone(), shared.contains(id)))
            .collect())
    }

    async fn reachable(&self, _: &str) -> bool {
        !*self.offline.lock().unwrap()
    }

    async fn put_schedules(
        &self,
        region: &str,
        _: Option<&str>,
        schedules: &[Schedule],
        _: &str,
    ) -> Vec<Result<(), CloudError>> {
        schedules
            .iter()
            .map(|s| {
                self.schedule_call()?;
                let key = (region.to_string(), s.name.clone());
                self.schedules.lock().unwrap().insert(key, s.clone());
                Ok(())
            })
            .collect()
    }

    async fn delete_schedules(
        &self,
        region: &str,
        _: Option<&str>,
        names: &[String],
    ) -> Vec<Result<(), CloudError>> {
        names
            .iter()
            .map(|n| {
                self.schedule_call()?;
                let key = (region.to_string(), n.clone());
                self.schedules.lock().unwrap().remove(&key);
                Ok(())
            })
            .collect()
    }

    async fn list_schedules(
        &self,
        region: &str,
        _: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<String>, CloudError> {
        self.schedule_call()?;
        Ok(self
            .schedules
            .lock()
            .unwrap()
            .keys()
            .filter(|(r, n)| r == region && n.starts_with(prefix))
            .map(|(_, n)| n.clone())
            .collect())
    }

    async fn whoami(&self, _: &str, _: Option<&str>) -> Result<Identity, CloudError> {
        Ok(Identity {
            account: "000000000000".into(),
            arn: "arn:aws:iam::000000000000:user/fake".into(),
        })
    }
}

/// An in-memory [`TeamTable`]: the table's clock is tokio's (so paused
/// time moves it), writes are compare-and-set on the version, and `down`
/// makes every call fail as an unreachable DynamoDB does.
pub struct FakeTable {
    start: (tokio::time::Instant, SystemTime),
    pub presence: Mutex<BTreeMap<String, Presence>>,
    pub locks: Mutex<BTreeMap<ResourceId, Lock>>,
    /// Every call fails with a connection refused while set.
    pub down: Mutex<bool>,
}

impl Default for FakeTable {
    fn default() -> Self {
        FakeTable {
            start: (tokio::time::Instant::now(), SystemTime::now()),
            presence: Mutex::new(BTreeMap::new()),
            locks: Mutex::new(BTreeMap::new()),
            down: Mutex::new(false),
        }
    }
}

impl FakeTable {
    fn up(&self) -> Result<(), CloudError> {
        if *self.down.lock().unwrap() {
            return Err(CloudError::new(
                ErrorKind::Network,
                "dispatch failure: io error: Connection refused (os error 111)",
            ));
        }
        Ok(())
    }

    /// Another member's presence item, as its cloudnap would write it.
    pub fn put_member(&self, member: &str, state: State, lease: Duration) {
        let now = TeamTable::now(self);
        self.presence.lock().unwrap().insert(
            member.to_string(),
            Presence {
                member: member.to_string(),
                state,
                since: now,
                expires: now + lease,
                holds: Vec::new(),
            },
        );
    }
}

impl TeamTable for FakeTable {
    fn now(&self) -> SystemTime {
        self.start.1 + (tokio::time::Instant::now() - self.start.0)
    }

    fn put_presence<'a>(
        &'a self,
        member: &'a str,
        state: State,
        since: SystemTime,
        holds: &'a [Scope],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Presence, CloudError>> {
        Box::pin(async move {
            self.up()?;
            let p = Presence {
                member: member.to_string(),
                state,
                since,
                expires: TeamTable::now(self) + lease,
                holds: holds.to_vec(),
            };
            (self.presence.lock().unwrap()).insert(member.to_string(), p.clone());
            Ok(p)
        })
    }

    fn presence(&self) -> BoxFuture<'_, Result<Vec<Presence>, CloudError>> {
        Box::pin(async move {
            self.up()?;
            Ok(self.presence.lock().unwrap().values().cloned().collect())
        })
    }

    fn lock<'a>(&'a self, resource: &'a ResourceId) -> BoxFuture<'a, Result<Lock, CloudError>> {
        Box::pin(async move {
            self.up()?;
            Ok((self.locks.lock().unwrap().get(resource).cloned())
                .unwrap_or_else(|| Lock::none(resource.clone())))
        })
    }

    fn put_lock<'a>(&'a self, lock: &'a Lock) -> BoxFuture<'a, Result<Written, CloudError>> {
        Box::pin(async move {
            self.up()?;
            let mut locks = self.locks.lock().unwrap();
            let before = locks.get(&lock.resource).map_or(0, |l| l.version);
            if before + 1 == lock.version {
                locks.insert(lock.resource.clone(), lock.clone());
                Ok(Written::Done)
            } else {
                let now = locks.get(&lock.resource).cloned();
                Ok(Written::Conflict(
                    now.unwrap_or_else(|| Lock::none(lock.resource.clone())),
                ))
            }
        })
    }
}

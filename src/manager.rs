//! The service manager: puts registered resources to sleep and wakes them
//! exactly as they were, following [`crate::core::policy::decide`], recording every
//! sleep in the state file (before the mutating calls) and in AWS tags.

use crate::cloud::aws::MANAGED_TAG;
use crate::cloud::{CloudControl, CloudError, ErrorKind};
use crate::core::config::registry::Entry;
use crate::core::config::settings::{AwsSettings, BusySettings};
use crate::core::model::history::{Change, HistoryEvent, Trigger};
use crate::core::model::outcome::{Action, Outcome, StatusRow};
use crate::core::model::resource::{Capacity, Facts, Kind, Observed, ResourceId};
use crate::core::policy::busy::{self, Check};
use crate::core::policy::deadline::Schedule;
use crate::core::policy::decide::{
    decide_refresh, decide_sleep, decide_wake, reached, tagged_asleep, Phase, RefreshDecision,
    SleepDecision, SleepRecord, WakeDecision,
};
use crate::core::policy::retry::Cause;
use crate::core::savings::prices::PriceBook;
use crate::core::savings::report::{self as savings, SavingsReport};
use crate::store::history::{HistoryError, HistoryFile};
use crate::store::records::{Records, RecordsError, RecordsFile};
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reads of a transition's result before it counts as `did_not_reach`, and
/// the pause before the second (doubling after): 1 + 2 + 4 + 8 s.
const CONFIRM_READS: u32 = 5;
const CONFIRM_FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Runs sleep, wake and status against a [`CloudControl`].
pub struct Manager<C> {
    cloud: Arc<C>,
    state: RecordsFile,
    concurrency: usize,
    dry_run: bool,
    /// One sleep or wake at a time in this process.
    busy: tokio::sync::Mutex<()>,
    /// The records as last read or written, for cheap status reads.
    cached: std::sync::Mutex<Records>,
    /// Records a wake made that the state file could not take yet (a wake
    /// goes ahead anyway: the sleep tags hold the capacities): newer than
    /// the file, written as soon as it can be.
    unsaved: std::sync::Mutex<Option<Records>>,
    /// Where every sleep and wake is logged, if anywhere.
    history: Option<HistoryFile>,
    /// Makes the price book each savings figure uses.
    prices: Box<dyn Fn() -> PriceBook + Send + Sync>,
    /// This week's saving and when it was computed (recomputed after a
    /// minute, or after a sleep or wake).
    week: std::sync::Mutex<Option<(std::time::Instant, Option<f64>)>>,
}

/// Unix time now, in fractional seconds.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A history line for `change` of `id` now.
fn event(
    change: Change,
    id: &ResourceId,
    saved: Option<Capacity>,
    trigger: Trigger,
    facts: Option<Facts>,
) -> HistoryEvent {
    HistoryEvent {
        at: now_seconds(),
        change,
        resource: id.clone(),
        saved,
        trigger,
        facts,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `f` over `items` with at most `limit` in flight, keeping order.
async fn bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = R>,
{
    stream::iter(items)
        .map(f)
        .buffered(limit.max(1))
        .collect()
        .await
}

impl<C: CloudControl> Manager<C> {
    /// A manager with at most `concurrency` cloud calls in flight; with
    /// `dry_run` no mutating call is made and nothing is recorded.
    pub fn new(cloud: Arc<C>, state: RecordsFile, concurrency: usize, dry_run: bool) -> Self {
        Manager {
            cloud,
            state,
            concurrency,
            dry_run,
            busy: tokio::sync::Mutex::new(()),
            cached: std::sync::Mutex::new(Records::new()),
            unsaved: std::sync::Mutex::new(None),
            history: None,
            prices: Box::new(PriceBook::default),
            week: std::sync::Mutex::new(None),
        }
    }

    /// Prices each savings figure with the book `prices` makes then (e.g.
    /// the cached Price List answers in front of the shipped table);
    /// without it, the shipped table alone.
    pub fn with_prices(mut self, prices: impl Fn() -> PriceBook + Send + Sync + 'static) -> Self {
        self.prices = Box::new(prices);
        self
    }

    /// Dollars saved over the last 7 days (`None` without a history or when
    /// it cannot be read); computed at most once a minute, and after each
    /// sleep or wake.
    pub fn saved_this_week(&self) -> Option<f64> {
        let mut week = self.week.lock().unwrap_or_else(|e| e.into_inner());
        match *week {
            Some((at, saved)) if at.elapsed() < std::time::Duration::from_secs(60) => saved,
            _ => {
                let now = now_seconds();
                let saved = self.history.as_ref().and_then(|_| {
                    self.savings(now - 7.0 * 86_400.0, now)
                        .map_err(|e| tracing::warn!("{e}"))
                        .ok()
                        .map(|r| r.totals.saved_usd)
                });
                *week = Some((std::time::Instant::now(), saved));
                saved
            }
        }
    }

    /// The savings report over `[since, now]` from the history (none kept:
    /// an empty report).
    pub fn savings(&self, since: f64, now: f64) -> Result<SavingsReport, HistoryError> {
        match &self.history {
            Some(h) => h.report(since, now, |_| (self.prices)()),
            None => Ok(savings::compute(&[], since, now, &(self.prices)())),
        }
    }

    /// Logs every sleep and wake to `history`.
    pub fn with_history(mut self, history: HistoryFile) -> Self {
        self.history = Some(history);
        self
    }

    /// Appends `events` to the history (compacting earlier months first);
    /// a failure is logged, never fatal: the sleep or wake happened.
    fn log_history(&self, events: &[HistoryEvent]) {
        let Some(history) = &self.history else {
            return;
        };
        if events.is_empty() {
            return;
        }
        if let Err(e) = history.compact(now_seconds()) {
            tracing::warn!("compacting the history: {e}");
        }
        if let Err(e) = history.append(events) {
            tracing::warn!("{e}");
        }
        *self.week.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// What each of `targets` is made of, for the savings report; `None`
    /// (with a warning) where AWS could not tell.
    async fn facts_of(&self, targets: Vec<(ResourceId, Option<String>)>) -> Vec<Option<Facts>> {
        let cloud = &self.cloud;
        let items: Vec<_> = targets.into_iter().map(|(id, p)| (id, p, ())).collect();
        let ids: Vec<ResourceId> = items.iter().map(|(id, _, _)| id.clone()).collect();
        let results = self
            .grouped(
                items,
                |group, p| async move {
                    let ids: Vec<ResourceId> = group.into_iter().map(|(id, ())| id).collect();
                    cloud.facts_many(&ids, p.as_deref()).await
                },
                |(id, p, ())| async move {
                    let mut one = cloud
                        .facts_many(std::slice::from_ref(&id), p.as_deref())
                        .await;
                    one.pop()
                        .unwrap_or_else(|| Err(CloudError::new(ErrorKind::Other, "no answer")))
                },
            )
            .await;
        ids.iter()
            .zip(results)
            .map(|(id, r)| {
                r.map_err(|e| {
                    tracing::warn!(
                        "{id}: reading what it is made of: {e}; its savings are not priced"
                    )
                })
                .ok()
            })
            .collect()
    }

    /// Waits until no sleep, wake or manual change is in progress.
    pub async fn quiesce(&self) {
        drop(self.busy.lock().await);
    }

    /// What is asleep, as last read or written (no I/O).
    pub fn asleep(&self) -> Records {
        self.cached.lock().expect("records cache").clone()
    }

    /// Whether sleep and wake only report what they would do.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn save(&self, records: &Records) -> Result<(), RecordsError> {
        self.state.save(records)?;
        *self.unsaved.lock().expect("unsaved records") = None;
        *self.cached.lock().expect("records cache") = records.clone();
        Ok(())
    }

    /// [`Self::save`] for a wake, which goes on when the state file cannot
    /// be written: the records are kept here, newer than the file, and
    /// written by the next [`Self::flush`] or save. Returns why they are
    /// not written, if they are not.
    fn save_waking(&self, records: &Records) -> Option<Cause> {
        let e = self.save(records).err()?;
        tracing::warn!("{e}: the wake goes ahead; the records are written once they can be");
        *self.unsaved.lock().expect("unsaved records") = Some(records.clone());
        *self.cached.lock().expect("records cache") = records.clone();
        Some(state_cause(&e))
    }

    /// Whether a wake left records the state file could not take yet.
    pub fn unsaved(&self) -> bool {
        self.unsaved.lock().expect("unsaved records").is_some()
    }

    /// Writes the records a wake could not write, if any; `Err` while they
    /// cannot be.
    pub fn flush(&self) -> Result<(), RecordsError> {
        let mut unsaved = self.unsaved.lock().expect("unsaved records");
        let Some(records) = unsaved.as_ref() else {
            return Ok(());
        };
        self.state.save(records)?;
        tracing::info!("the state file is written again");
        *unsaved = None;
        Ok(())
    }
    /// The cloud this manager drives.
    pub fn cloud(&self) -> &Arc<C> {
        &self.cloud
    }

    /// The records in the state file. A corrupt file is moved aside and
    /// reported; the AWS tags still say what is asleep.
    pub fn records(&self) -> Result<Records, RecordsError> {
        let unsaved = self.unsaved.lock().expect("unsaved records").clone();
        if let Some(records) = unsaved {
            // Newer than the file, which is written now if it can be.
            let _ = self.flush();
            return Ok(records);
        }
        let records = match self.state.load() {
            Err(e @ RecordsError::Corrupt { .. }) => {
                tracing::warn!("{e}; relying on AWS tags");
                Records::new()
            }
            other => other?,
        };
        *self.cached.lock().expect("records cache") = records.clone();
        Ok(records)
    }

    /// `many` for each group of EC2 instances sharing a region and profile,
    /// and of ECS services sharing a cluster (one AWS call per group where
    /// the API allows), `one` for everything else, at most `concurrency` at
    /// a time. Results keep the input order.
    async fn grouped<T, R, M, MF, O, OF>(
        &self,
        items: Vec<(ResourceId, Option<String>, T)>,
        many: M,
        one: O,
    ) -> Vec<R>
    where
        T: Clone,
        M: Fn(Vec<(ResourceId, T)>, Option<String>) -> MF,
        MF: Future<Output = Vec<R>>,
        O: FnMut((ResourceId, Option<String>, T)) -> OF,
        OF: Future<Output = R>,
    {
        // Each kind batches as its spec says (EC2 by region, ECS by cluster).
        let mut groups: BTreeMap<(String, Option<String>, Kind, String), Vec<usize>> =
            BTreeMap::new();
        let mut singles = Vec::new();
        for (i, (id, profile, _)) in items.iter().enumerate() {
            let Some(key) = id.kind().spec().batch.key(id.names()) else {
                singles.push(i);
                continue;
            };
            groups
                .entry((id.region().to_string(), profile.clone(), id.kind(), key))
                .or_default()
                .push(i);
        }
        let groups: Vec<Vec<usize>> = groups.into_values().collect();
        let batches = futures::future::join_all(groups.iter().map(|g| {
            let members = g
                .iter()
                .map(|&i| (items[i].0.clone(), items[i].2.clone()))
                .collect();
            many(members, items[g[0]].1.clone())
        }));
        let rest = bounded(
            singles.iter().map(|&i| items[i].clone()).collect(),
            self.concurrency,
            one,
        );
        let (batches, rest) = tokio::join!(batches, rest);
        let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
        for (g, results) in groups.iter().zip(batches) {
            for (&i, r) in g.iter().zip(results) {
                out[i] = Some(r);
            }
        }
        for (&i, r) in singles.iter().zip(rest) {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.expect("every item has a result"))
            .collect()
    }

    async fn inspect_all(
        &self,
        targets: Vec<(ResourceId, Option<String>)>,
    ) -> Vec<Result<Observed, CloudError>> {
        let cloud = &self.cloud;
        let items = targets.into_iter().map(|(id, p)| (id, p, ())).collect();
        self.grouped(
            items,
            |group, p| async move {
                let ids: Vec<ResourceId> = group.into_iter().map(|(id, ())| id).collect();
                cloud.inspect_many(&ids, p.as_deref()).await
            },
            |(id, p, ())| async move { cloud.inspect(&id, p.as_deref()).await },
        )
        .await
    }

    /// Reads back each of `items` until it shows the capacity set on it (see
    /// [`reached`]), for a bounded time: `Err(what AWS shows)` for one that
    /// did not get there.
    async fn confirm(
        &self,
        items: Vec<(ResourceId, Option<String>, Capacity)>,
    ) -> Vec<Result<(), String>> {
        let mut results: Vec<Option<Result<(), String>>> = vec![None; items.len()];
        let mut pause = CONFIRM_FIRST_PAUSE;
        for attempt in 1..=CONFIRM_READS {
            let pending: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
            if pending.is_empty() {
                break;
            }
            if attempt > 1 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let observed = self
                .inspect_all(
                    pending
                        .iter()
                        .map(|&i| (items[i].0.clone(), items[i].1.clone()))
                        .collect(),
                )
                .await;
            let last = attempt == CONFIRM_READS;
            for (&i, obs) in pending.iter().zip(observed) {
                let set = items[i].2;
                results[i] = match obs {
                    Ok(o) if reached(o.capacity, set) => Some(Ok(())),
                    Ok(o) if last => Some(Err(format!(
                        "did_not_reach: AWS shows {} ({}), not {set}",
                        o.capacity, o.status
                    ))),
                    Err(e) if last => Some(Err(format!("did_not_reach: not read back: {e}"))),
                    _ => None,
                };
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    async fn set_capacities(
        &self,
        items: Vec<(ResourceId, Option<String>, Capacity)>,
    ) -> Vec<Result<(), CloudError>> {
        let cloud = &self.cloud;
        self.grouped(
            items,
            |group, p| async move { cloud.set_capacity_many(&group, p.as_deref()).await },
            |(id, p, c)| async move { cloud.set_capacity(&id, p.as_deref(), c).await },
        )
        .await
    }

    /// Sets each item's sleep capacity. An EC2 instance AWS will not
    /// hibernate is stopped instead, with a note saying so.
    async fn stop(
        &self,
        items: Vec<(ResourceId, Option<String>, Capacity)>,
    ) -> Vec<Result<Option<String>, CloudError>> {
        let first = self.set_capacities(items.clone()).await;
        let refused: Vec<usize> = (0..items.len())
            .filter(|&i| {
                items[i].2.hibernate
                    && matches!(&first[i], Err(e) if e.kind == ErrorKind::CannotHibernate)
            })
            .collect();
        let plain = self
            .set_capacities(
                refused
                    .iter()
                    .map(|&i| {
                        let (id, profile, to) = items[i].clone();
                        (id, profile, to.hibernating(false))
                    })
                    .collect(),
            )
            .await;
        let mut out: Vec<_> = first.into_iter().map(|r| r.map(|()| None)).collect();
        for (i, stopped) in refused.into_iter().zip(plain) {
            let why = out[i].as_ref().err().map(ToString::to_string);
            out[i] = stopped.map(|()| {
                Some(format!(
                    "stopped, not hibernated: {}",
                    why.unwrap_or_default()
                ))
            });
        }
        out
    }

    async fn write_sleep_tags(
        &self,
        items: Vec<(ResourceId, Option<String>, Option<Capacity>)>,
    ) -> Vec<Result<(), CloudError>> {
        let cloud = &self.cloud;
        self.grouped(
            items,
            |group, p| async move { cloud.set_sleep_tags(&group, p.as_deref()).await },
            |(id, p, m)| async move { cloud.set_sleep_tag(&id, p.as_deref(), m).await },
        )
        .await
    }

    /// Whether each candidate (entry and what it looks like) is at work:
    /// an ECS deployment in progress, or its metrics over the thresholds,
    /// read in one `GetMetricData` call per region and profile (and 500
    /// queries).
    async fn busy_checks(
        &self,
        candidates: &[(&Entry, &Observed)],
        settings: &BusySettings,
    ) -> Vec<Check> {
        if !settings.enabled || candidates.is_empty() {
            return vec![Check::Idle; candidates.len()];
        }
        let now = SystemTime::now();
        let deploying: Vec<Option<String>> = candidates
            .iter()
            .map(|(_, obs)| {
                settings
                    .ecs_deployments
                    .then(|| busy::deploying(now, &obs.deployments))
                    .flatten()
            })
            .collect();
        // What a deployment already shows busy needs no metrics.
        let targets: Vec<(ResourceId, Option<String>)> = candidates
            .iter()
            .zip(&deploying)
            .filter(|(_, d)| d.is_none())
            .map(|((e, _), _)| (e.id.clone(), e.profile.clone()))
            .collect();
        let batches = busy::plan(&targets, settings);
        let range = busy::range(now, settings);
        let cloud = &self.cloud;
        let results = futures::future::join_all(batches.iter().map(|b| async move {
            cloud
                .metric_data(&b.region, b.profile.as_deref(), &b.queries, range)
                .await
                .map_err(|e| e.to_string())
        }))
        .await;
        for (batch, result) in batches.iter().zip(&results) {
            if let Err(e) = result {
                // Fail safe toward the user's intent: the timeout they set
                // is the contract, so an unreadable metric does not keep a
                // resource up (a missing cloudwatch:GetMetricData permission
                // must not quietly turn cloudnap off); it is noted instead.
                tracing::warn!(
                    "CloudWatch in {}: {e}; {} metric(s) unread, their resources sleep \
                     without a busy check",
                    batch.region,
                    batch.queries.len()
                );
            }
        }
        let mut checks = busy::judge(targets.len(), &batches, results, settings, now).into_iter();
        deploying
            .into_iter()
            .map(|d| match d {
                Some(reason) => Check::Busy(reason),
                None => checks.next().unwrap_or(Check::Idle),
            })
            .collect()
    }

    /// Stops every registered resource that is up, saving its capacity
    /// first; a resource at work (see [`crate::core::policy::busy`]) is left running
    /// and reported as busy.
    pub async fn sleep(
        &self,
        entries: &[Entry],
        veto: &BusySettings,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let _busy = self.busy.lock().await;
        let mut records = self.records()?;
        let observed = self.inspect_all(targets_of(entries)).await;

        let mut outcomes = Vec::new();
        let mut candidates = Vec::new();
        let mut to_stop = Vec::new();
        let mut to_forget = Vec::new();
        let mut logged = Vec::new();
        for (entry, obs) in entries.iter().zip(observed) {
            let obs = match obs {
                Ok(o) => o,
                Err(e) => {
                    outcomes.push(failed(&entry.id, None, e));
                    continue;
                }
            };
            let before = Some(obs.capacity);
            let decision = decide_sleep(&obs, records.get(&entry.id));
            let (action, saved) = match decision {
                SleepDecision::Stop { saved } => {
                    // A recorded sleep cut short is finished without a check.
                    let fresh = !records.contains_key(&entry.id);
                    candidates.push((entry, obs, saved, fresh));
                    continue;
                }
                SleepDecision::AlreadyAsleep { saved } => {
                    if !self.dry_run {
                        // Adopted, or a wake that never got through.
                        let r = records
                            .entry(entry.id.clone())
                            .or_insert_with(|| record(entry, saved, Phase::Asleep));
                        if r.phase == Phase::Waking {
                            r.phase = Phase::Asleep;
                        }
                    }
                    (Action::AlreadyAsleep, Some(saved))
                }
                SleepDecision::LeaveDown => (Action::LeftDown, None),
                SleepDecision::Protected => (Action::Protected, None),
                SleepDecision::NotAlone => {
                    let reason = obs.part_of.clone().unwrap_or_default();
                    tracing::warn!("{}: left running, {reason}", entry.id);
                    outcomes.push(Outcome {
                        resource: entry.id.clone(),
                        action: Action::Failed,
                        before,
                        saved: None,
                        error: Some(reason),
                        retrying: None,
                    });
                    continue;
                }
                SleepDecision::StartedByHand => {
                    if !self.dry_run {
                        if records.remove(&entry.id).is_some() {
                            logged.push(event(
                                Change::Wake,
                                &entry.id,
                                None,
                                Trigger::Refresh,
                                None,
                            ));
                        }
                        to_forget.push(entry.clone());
                    }
                    (Action::StartedByHand, None)
                }
            };
            outcomes.push(Outcome {
                resource: entry.id.clone(),
                action,
                before,
                saved,
                error: None,
                retrying: None,
            });
        }
        let fresh: Vec<(&Entry, &Observed)> = candidates
            .iter()
            .filter(|c| c.3)
            .map(|(e, obs, _, _)| (*e, obs))
            .collect();
        let mut checks = self.busy_checks(&fresh, veto).await.into_iter();
        for (entry, obs, saved, fresh) in &candidates {
            let check = if *fresh {
                checks.next().unwrap_or(Check::Idle)
            } else {
                Check::Idle
            };
            let note = match check {
                Check::Busy(reason) => {
                    tracing::info!("{}: left running, {reason}", entry.id);
                    outcomes.push(Outcome {
                        resource: entry.id.clone(),
                        action: Action::Busy,
                        before: Some(obs.capacity),
                        saved: None,
                        error: Some(reason),
                        retrying: None,
                    });
                    continue;
                }
                Check::Unread(note) => Some(note),
                Check::Idle => None,
            };
            if self.dry_run {
                outcomes.push(Outcome {
                    resource: entry.id.clone(),
                    action: Action::WouldStop,
                    before: Some(obs.capacity),
                    saved: Some(*saved),
                    error: note,
                    retrying: None,
                });
            } else {
                records.insert(entry.id.clone(), record(entry, *saved, Phase::Stopping));
                to_stop.push(((*entry).clone(), *saved, obs.capacity, note));
            }
        }
        if self.dry_run {
            sort(&mut outcomes);
            return Ok(outcomes);
        }
        // The record is on disk before any mutating call.
        self.save(&records)?;

        // Tag, then stop; a resource whose stop failed for good loses its
        // tag again (one that failed for a passing reason keeps it and its
        // record: the sleep is tried again).
        // What each is made of is read meanwhile, for the history.
        let (tagged, facts) = tokio::join!(
            self.write_sleep_tags(
                to_stop
                    .iter()
                    .map(|(e, saved, _, _)| (e.id.clone(), e.profile.clone(), Some(*saved)))
                    .collect(),
            ),
            self.facts_of(
                to_stop
                    .iter()
                    .map(|(e, _, _, _)| (e.id.clone(), e.profile.clone()))
                    .collect()
            )
        );
        let stops = self
            .stop(
                to_stop
                    .iter()
                    .map(|(e, saved, _, _)| {
                        let asleep = saved.asleep().hibernating(e.hibernate);
                        (e.id.clone(), e.profile.clone(), asleep)
                    })
                    .collect(),
            )
            .await;
        let undo = to_stop
            .iter()
            .zip(tagged.iter().zip(&stops))
            .filter(|(_, (tag, stop))| {
                tag.is_ok() && matches!(stop, Err(e) if e.transient().is_none())
            })
            .map(|((e, _, _, _), _)| (e.id.clone(), e.profile.clone(), None));
        let forget = to_forget
            .iter()
            .map(|e| (e.id.clone(), e.profile.clone(), None));
        let _ = self.write_sleep_tags(undo.chain(forget).collect()).await;
        let mut reached = self
            .confirm(
                to_stop
                    .iter()
                    .zip(&stops)
                    .filter(|(_, stop)| stop.is_ok())
                    .map(|((e, saved, _, _), _)| (e.id.clone(), e.profile.clone(), saved.asleep()))
                    .collect(),
            )
            .await
            .into_iter();
        let stopped = to_stop.into_iter().zip(tagged.into_iter().zip(stops)).map(
            |((entry, saved, before, note), (tagged, stop))| {
                let (action, error, retrying) = match stop {
                    Err(e) => (Action::Failed, Some(e.to_string()), e.transient()),
                    Ok(how) => match (reached.next().expect("one check per stop"), tagged) {
                        (Err(shows), _) => {
                            (Action::DidNotReach, Some(shows), Some(Cause::NotConfirmed))
                        }
                        (Ok(()), Err(e)) => (
                            Action::Stopped,
                            Some(format!("stopped, but the sleep tag was not written: {e}")),
                            None,
                        ),
                        (Ok(()), Ok(())) => {
                            let notes: Vec<String> = how.into_iter().chain(note).collect();
                            (
                                Action::Stopped,
                                (!notes.is_empty()).then(|| notes.join("; ")),
                                None,
                            )
                        }
                    },
                };
                (entry, before, saved, action, error, retrying)
            },
        );

        for ((entry, before, saved, action, error, retrying), facts) in stopped.zip(facts) {
            match action {
                Action::Stopped => {
                    if let Some(r) = records.get_mut(&entry.id) {
                        r.phase = Phase::Asleep;
                    }
                    logged.push(event(Change::Sleep, &entry.id, Some(saved), trigger, facts));
                }
                // Still recorded as stopping, with its tag: the sleep is
                // tried again, a wake restores it.
                _ if retrying.is_some() => {
                    tracing::warn!("{}: {}", entry.id, error.as_deref().unwrap_or(""))
                }
                _ => {
                    records.remove(&entry.id);
                }
            }
            outcomes.push(Outcome {
                resource: entry.id.clone(),
                action,
                before: Some(before),
                saved: Some(saved),
                error,
                retrying,
            });
        }
        self.save(&records)?;
        self.log_history(&logged);
        sort(&mut outcomes);
        Ok(outcomes)
    }

    /// Restores everything cloudnap put to sleep (from the state file, or the
    /// AWS tags of registered resources) to exactly its saved capacity.
    pub async fn wake(
        &self,
        entries: &[Entry],
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let _busy = self.busy.lock().await;
        self.wake_where(entries, |_| true, trigger).await
    }

    /// [`Self::wake`] of `entries` and of the recorded resources that
    /// `recorded` picks (the others' records are left alone: team
    /// resources, which the team wakes).
    pub async fn wake_personal(
        &self,
        entries: &[Entry],
        recorded: impl Fn(&ResourceId) -> bool,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let _busy = self.busy.lock().await;
        self.wake_where(entries, recorded, trigger).await
    }

    /// Wakes one team resource to `saved` (the capacity in its lock item,
    /// which any member may have saved): recorded as waking first, as a
    /// wake of this member's own; the record is gone afterwards whatever
    /// the outcome (the lock item keeps the truth).
    pub async fn wake_shared(
        &self,
        entry: &Entry,
        saved: Capacity,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let _busy = self.busy.lock().await;
        if !self.dry_run {
            let mut records = self.records()?;
            records.insert(entry.id.clone(), record(entry, saved, Phase::Waking));
            self.save(&records)?;
        }
        let woken = self
            .wake_where(std::slice::from_ref(entry), |id| *id == entry.id, trigger)
            .await;
        self.forget(&entry.id)?;
        woken
    }

    /// Sleeps one team resource (the busy veto already checked, so none
    /// here); its record is gone afterwards (the lock item and the tag keep
    /// the capacity).
    pub async fn sleep_shared(
        &self,
        entry: &Entry,
        busy: &BusySettings,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let veto = BusySettings {
            enabled: false,
            ..busy.clone()
        };
        let slept = self
            .sleep(std::slice::from_ref(entry), &veto, trigger)
            .await;
        let _busy = self.busy.lock().await;
        self.forget(&entry.id)?;
        slept
    }

    /// Drops the record of `id`, if any.
    fn forget(&self, id: &ResourceId) -> Result<(), RecordsError> {
        let mut records = self.records()?;
        if records.remove(id).is_some() {
            self.save(&records)?;
        }
        Ok(())
    }

    /// What `entry` looks like now and whether it is at work (the busy
    /// veto of a sleep, see [`crate::core::policy::busy`]).
    pub async fn busy_check(
        &self,
        entry: &Entry,
        settings: &BusySettings,
    ) -> Result<(Observed, Check), CloudError> {
        let obs = self
            .cloud
            .inspect(&entry.id, entry.profile.as_deref())
            .await?;
        let check = self.busy_checks(&[(entry, &obs)], settings).await;
        Ok((obs, check.into_iter().next().unwrap_or(Check::Idle)))
    }

    async fn wake_where(
        &self,
        entries: &[Entry],
        recorded: impl Fn(&ResourceId) -> bool,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let mut records = self.records()?;
        // Every record stays, as waking, until its wake is confirmed. A
        // state file that cannot take it does not stop the wake: the sleep
        // tags hold the capacities until the records are written.
        let mine = |id: &ResourceId| recorded(id) || entries.iter().any(|e| &e.id == id);
        if !self.dry_run
            && (records.values()).any(|r| mine(&r.resource) && r.phase != Phase::Waking)
        {
            for r in records.values_mut().filter(|r| mine(&r.resource)) {
                r.phase = Phase::Waking;
            }
            self.save_waking(&records);
        }
        // Registered resources, plus recorded ones no longer registered.
        let mut targets: BTreeMap<ResourceId, Option<String>> = entries
            .iter()
            .map(|e| (e.id.clone(), e.profile.clone()))
            .collect();
        for r in records.values().filter(|r| recorded(&r.resource)) {
            targets
                .entry(r.resource.clone())
                .or_insert(r.profile.clone());
        }
        let observed = self
            .inspect_all(
                targets
                    .iter()
                    .map(|(id, p)| (id.clone(), p.clone()))
                    .collect(),
            )
            .await;

        let mut outcomes = Vec::new();
        let mut to_wake = Vec::new();
        let mut logged = Vec::new();
        for ((id, profile), obs) in targets.iter().zip(observed) {
            let recorded = records.get(id).map(|r| r.saved);
            let obs = match obs {
                Ok(o) => o,
                Err(e) => {
                    if e.kind == ErrorKind::NotFound && recorded.is_some() && !self.dry_run {
                        records.remove(id);
                    }
                    let retrying = e.cause();
                    outcomes.push(Outcome {
                        retrying,
                        ..failed(id, None, e)
                    });
                    continue;
                }
            };
            let Some(saved) = recorded.or(tagged_asleep(&obs)) else {
                continue;
            };
            match decide_wake(&obs, saved) {
                WakeDecision::Restore { saved } if self.dry_run => {
                    outcomes.push(row(id, Action::WouldRestore, &obs, saved));
                }
                WakeDecision::Restore { saved } => {
                    to_wake.push((id.clone(), profile.clone(), obs, saved, true))
                }
                WakeDecision::AlreadyUp => {
                    outcomes.push(row(id, Action::AlreadyUp, &obs, saved));
                    if !self.dry_run {
                        if records.remove(id).is_some() {
                            logged.push(event(Change::Wake, id, Some(saved), trigger, None));
                        }
                        if obs.sleep_tag.is_some() {
                            to_wake.push((id.clone(), profile.clone(), obs, saved, false));
                        }
                    }
                }
            }
        }
        if self.dry_run {
            return Ok(outcomes);
        }

        // Restore what is down, then remove the tags of what is up again.
        let mut restored = self
            .set_capacities(
                to_wake
                    .iter()
                    .filter(|(_, _, _, _, restore)| *restore)
                    .map(|(id, p, _, saved, _)| (id.clone(), p.clone(), *saved))
                    .collect(),
            )
            .await
            .into_iter();
        let restores: Vec<Result<(), CloudError>> = to_wake
            .iter()
            .map(|(_, _, _, _, restore)| {
                if *restore {
                    restored.next().expect("one result per restore")
                } else {
                    Ok(())
                }
            })
            .collect();
        // What was restored is read back; what did not come back keeps its
        // record and tag for the next wake.
        let mut reached = self
            .confirm(
                to_wake
                    .iter()
                    .zip(&restores)
                    .filter(|((.., restore), r)| *restore && r.is_ok())
                    .map(|((id, p, _, saved, _), _)| (id.clone(), p.clone(), *saved))
                    .collect(),
            )
            .await
            .into_iter();
        let restores: Vec<Result<Result<(), String>, CloudError>> = to_wake
            .iter()
            .zip(restores)
            .map(|((.., restore), r)| {
                r.map(|()| match restore {
                    true => reached.next().expect("one check per restore"),
                    false => Ok(()),
                })
            })
            .collect();
        let mut untagged = self
            .write_sleep_tags(
                to_wake
                    .iter()
                    .zip(&restores)
                    .filter(|(_, r)| matches!(r, Ok(Ok(()))))
                    .map(|((id, p, _, _, _), _)| (id.clone(), p.clone(), None))
                    .collect(),
            )
            .await
            .into_iter();
        let woken =
            to_wake
                .into_iter()
                .zip(restores)
                .map(|((id, _, obs, saved, restored), restore)| {
                    let untag = match restore {
                        Ok(Ok(())) => untagged.next().expect("one result per untag"),
                        _ => Ok(()),
                    };
                    (id, obs, saved, restored, restore, untag)
                });
        for (id, obs, saved, restored, restore, untag) in woken {
            if !restored {
                continue; // reported above as AlreadyUp
            }
            let mut out = row(&id, Action::Restored, &obs, saved);
            match (restore, untag) {
                (Err(e), _) => {
                    out.action = Action::Failed;
                    out.error = Some(e.to_string());
                    out.retrying = e.cause();
                }
                (Ok(Err(shows)), _) => {
                    tracing::warn!("{id}: {shows}");
                    out.action = Action::DidNotReach;
                    out.error = Some(shows);
                    out.retrying = Some(Cause::NotConfirmed);
                }
                (Ok(Ok(())), untag) => {
                    records.remove(&id);
                    logged.push(event(Change::Wake, &id, Some(saved), trigger, None));
                    out.error = untag
                        .err()
                        .map(|e| format!("restored, but the sleep tag was not removed: {e}"));
                }
            }
            outcomes.push(out);
        }
        if let Some(cause) = self.save_waking(&records) {
            // Up, but not yet recorded so: the retry writes the records.
            for o in outcomes.iter_mut().filter(|o| o.retrying.is_none()) {
                o.retrying = Some(cause);
            }
        }
        self.log_history(&logged);
        sort(&mut outcomes);
        Ok(outcomes)
    }

    /// Sets one resource by hand (UDP `START_*`, `STOP_*`, `SCALE_EKS`):
    /// `target` maps what it is now and what cloudnap saved for it to the
    /// capacity to set. A resource set up again is no longer cloudnap's to
    /// wake: its record and tag are dropped. Returns the capacity set.
    pub async fn set_by_hand(
        &self,
        id: &ResourceId,
        profile: Option<&str>,
        target: impl FnOnce(Capacity, Option<Capacity>) -> Capacity,
    ) -> Result<Capacity, CloudError> {
        let _busy = self.busy.lock().await;
        let obs = self.cloud.inspect(id, profile).await?;
        let mut records = self.records().unwrap_or_default();
        let saved = records.get(id).map(|r| r.saved).or(tagged_asleep(&obs));
        let capacity = target(obs.capacity, saved);
        if let (Some(part), true) = (&obs.part_of, obs.capacity.is_up() && !capacity.is_up()) {
            // Stopped alone, it would be replaced by its group.
            return Err(CloudError::new(
                ErrorKind::InvalidState,
                format!("{part}: stop the group, not one of its members"),
            ));
        }
        if self.dry_run {
            return Ok(capacity);
        }
        self.cloud.set_capacity(id, profile, capacity).await?;
        if capacity.is_up() && saved.is_some() {
            if records.remove(id).is_some() {
                self.log_history(&[event(
                    Change::Wake,
                    id,
                    Some(capacity),
                    Trigger::Command,
                    None,
                )]);
                if let Err(e) = self.save(&records) {
                    tracing::warn!("{e}");
                }
            }
            if obs.sleep_tag.is_some() {
                self.cloud.set_sleep_tag(id, profile, None).await?;
            }
        } else if !capacity.is_up() && records.get(id).is_some_and(|r| r.phase == Phase::Waking) {
            // Stopped by hand while its wake was tried again: the user has
            // taken over, the wake no longer starts it.
            records.remove(id);
            self.save_waking(&records);
            self.cloud.set_sleep_tag(id, profile, None).await?;
        } else if !capacity.is_up() && saved.is_none() && obs.sleep_tag.is_some() {
            // Stopped by hand while up: the tag the deadline wrote ahead
            // must not make a wake start it again.
            self.cloud.set_sleep_tag(id, profile, None).await?;
        }
        Ok(capacity)
    }

    /// Arms (or moves) the AWS-side deadline of every entry that is up and
    /// could be put to sleep now (see [`crate::core::policy::deadline`]): its
    /// capacity is written to its sleep tag first (when the tag does not
    /// hold it already), as a sleep does, so that a wake restores exactly
    /// after AWS put it to sleep; then its schedule (`schedule_of`) is set,
    /// run as `role_arn`. What is down, asleep by cloudnap, protected or
    /// part of a group gets none. Calls: the batched inspect of a sleep, a
    /// tag write per resource whose capacity changed, and one call per
    /// schedule. `None` (nothing done) while a sleep or wake runs; else per
    /// entry: whether it is armed, or why not.
    pub async fn arm_deadline(
        &self,
        entries: &[Entry],
        schedule_of: impl Fn(&ResourceId) -> Schedule,
        role_arn: &str,
    ) -> Option<Vec<(ResourceId, Option<String>, Result<bool, CloudError>)>> {
        let _busy = self.busy.try_lock().ok()?;
        let records = self.records().ok()?;
        let free: Vec<&Entry> = entries
            .iter()
            .filter(|e| !records.contains_key(&e.id))
            .collect();
        let observed = self
            .inspect_all(
                free.iter()
                    .map(|e| (e.id.clone(), e.profile.clone()))
                    .collect(),
            )
            .await;
        let mut out: Vec<(ResourceId, Option<String>, Result<bool, CloudError>)> = Vec::new();
        let mut tags = Vec::new();
        for (e, obs) in free.iter().zip(observed) {
            let armable = match obs.map(|o| (decide_sleep(&o, None), o.sleep_tag)) {
                Err(err) => Err(err),
                Ok((SleepDecision::Stop { saved }, tag)) => {
                    if tag != Some(saved) {
                        tags.push((e.id.clone(), e.profile.clone(), Some(saved)));
                    }
                    Ok(true)
                }
                Ok(_) => Ok(false),
            };
            out.push((e.id.clone(), e.profile.clone(), armable));
        }
        let tagged = self.write_sleep_tags(tags.clone()).await;
        for ((id, ..), result) in tags.iter().zip(tagged) {
            if let (Err(e), Some(o)) = (result, out.iter_mut().find(|o| &o.0 == id)) {
                o.2 = Err(e);
            }
        }
        let mut regions: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
        for (i, (id, profile, armed)) in out.iter().enumerate() {
            if matches!(armed, Ok(true)) {
                let key = (id.region().to_string(), profile.clone());
                regions.entry(key).or_default().push(i);
            }
        }
        let cloud = &self.cloud;
        let put = futures::future::join_all(regions.iter().map(|((region, profile), at)| {
            let schedules: Vec<Schedule> = at.iter().map(|&i| schedule_of(&out[i].0)).collect();
            async move {
                cloud
                    .put_schedules(region, profile.as_deref(), &schedules, role_arn)
                    .await
            }
        }))
        .await;
        for (at, results) in regions.values().zip(put) {
            for (&i, result) in at.iter().zip(results) {
                if let Err(e) = result {
                    out[i].2 = Err(e);
                }
            }
        }
        Some(out)
    }

    /// Checks what cloudnap holds asleep against AWS (see
    /// [`decide_refresh`]): a resource someone started by hand is no longer
    /// cloudnap's to wake or to stop again, so its record and tag are
    /// dropped; a database AWS started by itself while the user is `away` is
    /// stopped again. Skipped (empty) while a sleep or wake runs. Returns
    /// what was dropped or stopped again.
    pub async fn refresh(&self, away: bool) -> Result<Vec<Outcome>, RecordsError> {
        let Ok(_busy) = self.busy.try_lock() else {
            return Ok(Vec::new());
        };
        let mut records = self.records()?;
        let asleep: Vec<(ResourceId, Option<String>)> = records
            .values()
            .filter(|r| r.phase == Phase::Asleep)
            .map(|r| (r.resource.clone(), r.profile.clone()))
            .collect();
        let observed = self.inspect_all(asleep.clone()).await;
        let mut outcomes = Vec::new();
        for ((id, profile), obs) in asleep.into_iter().zip(observed) {
            let Ok(obs) = obs else { continue };
            let Some(record) = records.get(&id) else {
                continue;
            };
            let why = match decide_refresh(&obs, record, away, now_unix()) {
                RefreshDecision::Keep => continue,
                RefreshDecision::StopAgain { why } => why,
                RefreshDecision::LetGo => {
                    outcomes.push(self.let_go(&mut records, id, profile, &obs).await);
                    continue;
                }
            };
            if self.dry_run {
                tracing::info!("{id} is up again while you are away ({why}): would stop it again");
                outcomes.push(row(&id, Action::WouldStop, &obs, record.saved));
                continue;
            }
            let asleep = record.saved.asleep();
            let stop = self
                .cloud
                .set_capacity(&id, profile.as_deref(), asleep)
                .await;
            let error = match stop {
                Ok(()) => {
                    tracing::warn!(
                        "{id} was up again while you are away ({why}): stopped it again"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(
                        "{id} was up again while you are away ({why}); stopping it again \
                         failed, tried again at the next check: {e}"
                    );
                    Some(e.to_string())
                }
            };
            outcomes.push(Outcome {
                action: if error.is_none() {
                    Action::Stopped
                } else {
                    Action::Failed
                },
                before: Some(obs.capacity),
                saved: Some(record.saved),
                error: error.or(Some(why)),
                resource: id,
                retrying: None,
            });
        }
        if outcomes.iter().any(|o| o.action == Action::StartedByHand) {
            self.save(&records)?;
        }
        Ok(outcomes)
    }

    /// `registered` and, when `aws.tag_discovery` is on, the resources of
    /// `aws.regions` tagged `cloudnap:managed=true` that are not in it
    /// (marked [`Entry::tagged`]), each hibernating if `aws.ec2_hibernate`
    /// says so. A region that cannot be searched is skipped with a warning:
    /// its tagged resources are left alone (they stay up).
    pub async fn with_tagged(&self, registered: Vec<Entry>, aws: &AwsSettings) -> Vec<Entry> {
        let mut entries = registered;
        if aws.tag_discovery {
            self.discover_into(&mut entries, &aws.regions).await;
        }
        for e in &mut entries {
            e.hibernate |= aws.ec2_hibernate && e.id.kind().spec().hibernates;
        }
        entries
    }

    /// Adds to `entries` the resources of `regions` tagged
    /// `cloudnap:managed=true` that are not in it.
    async fn discover_into(&self, entries: &mut Vec<Entry>, regions: &[String]) {
        let found = futures::future::join_all(
            regions
                .iter()
                .map(|region| self.cloud.discover(region, None)),
        )
        .await;
        for (region, found) in regions.iter().zip(found) {
            match found {
                Ok(ids) => {
                    for (id, shared) in ids {
                        if !entries.iter().any(|e| e.id == id) {
                            entries.push(Entry {
                                description: format!("tagged {MANAGED_TAG}=true"),
                                tagged: true,
                                shared,
                                ..Entry::new(id)
                            });
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    "resources tagged {MANAGED_TAG}=true in {region} not searched: {e}"
                ),
            }
        }
    }

    /// Forgets `id`, which someone started by hand: its record (logged as a
    /// wake) and its sleep tag.
    async fn let_go(
        &self,
        records: &mut Records,
        id: ResourceId,
        profile: Option<String>,
        obs: &Observed,
    ) -> Outcome {
        tracing::info!("{id} was started by hand; cloudnap no longer holds it asleep");
        records.remove(&id);
        self.log_history(&[event(
            Change::Wake,
            &id,
            Some(obs.capacity),
            Trigger::Refresh,
            None,
        )]);
        if obs.sleep_tag.is_some() && !self.dry_run {
            if let Err(e) = self
                .cloud
                .set_sleep_tag(&id, profile.as_deref(), None)
                .await
            {
                tracing::warn!("{id}: removing the sleep tag: {e}");
            }
        }
        Outcome {
            resource: id,
            action: Action::StartedByHand,
            before: Some(obs.capacity),
            saved: None,
            error: None,
            retrying: None,
        }
    }

    /// The current state of every registered resource and what is asleep.
    pub async fn status(&self, entries: &[Entry]) -> Result<Vec<StatusRow>, RecordsError> {
        let records = self.records()?;
        let observed = self.inspect_all(targets_of(entries)).await;
        Ok(entries
            .iter()
            .zip(observed)
            .map(|(e, obs)| {
                let recorded = records.get(&e.id).map(|r| r.saved);
                match obs {
                    Ok(o) => StatusRow {
                        resource: e.id.clone(),
                        description: e.description.clone(),
                        asleep: recorded.or(tagged_asleep(&o)),
                        status: o.status,
                        capacity: Some(o.capacity),
                        protected: o.protected,
                        source: e.source(),
                        error: None,
                    },
                    Err(err) => StatusRow {
                        resource: e.id.clone(),
                        description: e.description.clone(),
                        status: "error".into(),
                        capacity: None,
                        asleep: recorded,
                        protected: false,
                        source: e.source(),
                        error: Some(err.to_string()),
                    },
                }
            })
            .collect())
    }
}

fn targets_of(entries: &[Entry]) -> Vec<(ResourceId, Option<String>)> {
    entries
        .iter()
        .map(|e| (e.id.clone(), e.profile.clone()))
        .collect()
}

fn record(entry: &Entry, saved: Capacity, phase: Phase) -> SleepRecord {
    SleepRecord {
        resource: entry.id.clone(),
        profile: entry.profile.clone(),
        saved,
        phase,
        since: now_unix(),
    }
}

/// Why the state file could not be written, for the retry.
fn state_cause(e: &RecordsError) -> Cause {
    match e {
        RecordsError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            Cause::DiskFull
        }
        _ => Cause::StateDir,
    }
}

fn failed(id: &ResourceId, saved: Option<Capacity>, e: CloudError) -> Outcome {
    Outcome {
        resource: id.clone(),
        action: Action::Failed,
        before: None,
        saved,
        error: Some(e.to_string()),
        retrying: e.transient(),
    }
}

fn row(id: &ResourceId, action: Action, obs: &Observed, saved: Capacity) -> Outcome {
    Outcome {
        resource: id.clone(),
        action,
        before: Some(obs.capacity),
        saved: Some(saved),
        error: None,
        retrying: None,
    }
}

fn sort(outcomes: &mut [Outcome]) {
    outcomes.sort_by(|a, b| a.resource.cmp(&b.resource));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::resource::{Desired, Running};

    fn ecs(name: &str) -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", name], "us-east-1")
    }

    fn entries(ids: &[&ResourceId]) -> Vec<Entry> {
        ids.iter().map(|id| Entry::new((*id).clone())).collect()
    }

    #[tokio::test]
    async fn a_tag_written_ahead_by_the_deadline_is_kept_until_aws_sleeps_it() {
        let (_dir, cloud, m) = setup(false);
        let web = ecs("web");
        let up = Capacity::of(Kind::Ecs, Desired(2));
        cloud.add(&web, up);
        let armed = m
            .arm_deadline(
                &entries(&[&web]),
                |id| crate::core::policy::deadline::schedule("m", id, 100),
                "role",
            )
            .await
            .unwrap();
        assert!(matches!(armed[0].2, Ok(true)), "{armed:?}");
        assert_eq!(cloud.get(&web).sleep_tag, Some(up));
        assert_eq!(cloud.schedules.lock().unwrap().len(), 1);
        // Up with its tag: not asleep, and a wake leaves the tag.
        let rows = m.status(&entries(&[&web])).await.unwrap();
        assert_eq!(rows[0].asleep, None);
        let woken = m.wake(&entries(&[&web]), Trigger::Command).await.unwrap();
        assert!(woken.is_empty(), "{woken:?}");
        assert_eq!(cloud.get(&web).sleep_tag, Some(up));
        // AWS put it to sleep: a wake restores it exactly.
        cloud
            .resources
            .lock()
            .unwrap()
            .get_mut(&web)
            .unwrap()
            .capacity = Capacity::of(Kind::Ecs, Desired(0));
        let armed = m
            .arm_deadline(
                &entries(&[&web]),
                |id| crate::core::policy::deadline::schedule("m", id, 200),
                "role",
            )
            .await
            .unwrap();
        assert!(matches!(armed[0].2, Ok(false)), "down: no deadline");
        m.wake(&entries(&[&web]), Trigger::Command).await.unwrap();
        assert_eq!(cloud.get(&web).capacity, up);
        assert_eq!(cloud.get(&web).sleep_tag, None);

        // Armed again, then stopped by hand: a wake leaves it down.
        let schedule_of = |id: &ResourceId| crate::core::policy::deadline::schedule("m", id, 300);
        m.arm_deadline(&entries(&[&web]), schedule_of, "role")
            .await
            .unwrap();
        assert_eq!(cloud.get(&web).sleep_tag, Some(up));
        m.set_by_hand(&web, None, |now, _| now.asleep())
            .await
            .unwrap();
        assert_eq!(cloud.get(&web).sleep_tag, None);
        m.wake(&entries(&[&web]), Trigger::Command).await.unwrap();
        assert_eq!(
            cloud.get(&web).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
    }

    #[tokio::test]
    async fn tagged_resources_join_the_registered_ones_once() {
        let (_dir, cloud, m) = setup(false);
        let (a, b) = (ec2(1, "us-east-1"), ec2(2, "us-east-1"));
        *cloud.tagged.lock().unwrap() = vec![a.clone(), b.clone(), ec2(3, "eu-west-1")];
        *cloud.shared.lock().unwrap() = vec![b.clone()];
        let mut aws = crate::core::config::settings::Settings::default().aws;
        aws.regions = vec!["us-east-1".to_string()];

        let all = m.with_tagged(entries(&[&a]), &aws).await;
        let found: Vec<(&ResourceId, &str, bool)> = (all.iter())
            .map(|e| (&e.id, e.source(), e.shared))
            .collect();
        assert_eq!(
            found,
            [(&a, "services.yaml", false), (&b, "tag", true)],
            "tagged cloudnap:shared=true: a team resource"
        );
        assert!(all.iter().all(|e| !e.hibernate));
        aws.tag_discovery = false;
        let off = m.with_tagged(entries(&[&a, &ecs("web")]), &aws).await;
        assert_eq!(off.len(), 2);
        // `aws.ec2_hibernate`: every EC2 entry hibernates, nothing else does.
        aws.ec2_hibernate = true;
        let all = m.with_tagged(entries(&[&a, &ecs("web")]), &aws).await;
        assert_eq!(
            all.iter().map(|e| e.hibernate).collect::<Vec<_>>(),
            [true, false]
        );
    }

    #[tokio::test]
    async fn hibernation_falls_back_to_a_stop_with_a_note_and_wake_restores_both() {
        let (_d, cloud, m) = setup(false);
        let (can, cannot, plain) = (
            ec2(1, "us-east-1"),
            ec2(2, "us-east-1"),
            ec2(3, "us-east-1"),
        );
        for id in [&can, &cannot, &plain] {
            cloud.add(id, Capacity::of(Kind::Ec2, Running(true)));
        }
        cloud.no_hibernation.lock().unwrap().push(cannot.clone());
        let mut all = entries(&[&can, &cannot, &plain]);
        all[0].hibernate = true;
        all[1].hibernate = true;

        let out = m
            .sleep(&all, &busy_settings(), Trigger::Command)
            .await
            .unwrap();

        let of = |id: &ResourceId| out.iter().find(|o| &o.resource == id).unwrap();
        assert!(out.iter().all(|o| o.action == Action::Stopped), "{out:?}");
        assert_eq!(of(&can).error, None);
        assert_eq!(
            of(&cannot).error.as_deref(),
            Some("stopped, not hibernated: UnsupportedHibernationConfiguration: not configured for hibernation")
        );
        assert_eq!(
            *cloud.hibernated.lock().unwrap(),
            std::slice::from_ref(&can)
        );
        for id in [&can, &cannot, &plain] {
            assert_eq!(
                cloud.get(id).capacity,
                Capacity::of(Kind::Ec2, Running(false))
            );
        }
        // What was saved is "running", however it went to sleep.
        m.wake(&all, Trigger::Command).await.unwrap();
        for id in [&can, &cannot, &plain] {
            assert_eq!(
                cloud.get(id).capacity,
                Capacity::of(Kind::Ec2, Running(true))
            );
        }
    }

    fn busy_settings() -> BusySettings {
        crate::core::config::settings::Settings::default().busy
    }

    fn ec2(n: u32, region: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [format!("i-{n:017x}")], region)
    }

    fn setup(dry_run: bool) -> (tempfile::TempDir, Arc<FakeCloud>, Manager<FakeCloud>) {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let m = Manager::new(
            cloud.clone(),
            RecordsFile::new(dir.path().join("state.json")),
            4,
            dry_run,
        );
        (dir, cloud, m)
    }

    #[tokio::test]
    async fn one_failure_does_not_stop_the_others() {
        let (_d, cloud, m) = setup(false);
        let (a, b, missing) = (ecs("a"), ecs("b"), ecs("missing"));
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(3)));
        cloud.add(&b, Capacity::of(Kind::Ecs, Desired(1)));
        cloud.deny.lock().unwrap().push(b.clone());
        let out = m
            .sleep(
                &entries(&[&a, &b, &missing]),
                &busy_settings(),
                Trigger::Command,
            )
            .await
            .unwrap();
        let action = |id: &ResourceId| out.iter().find(|o| &o.resource == id).unwrap().action;
        assert_eq!(action(&a), Action::Stopped);
        assert_eq!(action(&b), Action::Failed);
        assert_eq!(action(&missing), Action::Failed);
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(0)));
        assert_eq!(cloud.get(&b).capacity, Capacity::of(Kind::Ecs, Desired(1)));
        // The failed one is not recorded, so wake leaves it alone.
        let records = m.records().unwrap();
        assert_eq!(records.keys().collect::<Vec<_>>(), vec![&a]);

        cloud.deny.lock().unwrap().clear();
        let out = m.wake(&entries(&[&a, &b]), Trigger::Command).await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(3)));
        assert_eq!(cloud.get(&a).sleep_tag, None);
        assert!(m.records().unwrap().is_empty());
    }

    /// An ECS service at 3 and a running EC2 instance, both put to sleep:
    /// the service and both entries.
    async fn two_asleep(cloud: &FakeCloud, m: &Manager<FakeCloud>) -> (ResourceId, Vec<Entry>) {
        let (a, b) = (ecs("a"), ec2(1, "us-east-1"));
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(3)));
        cloud.add(&b, Capacity::of(Kind::Ec2, Running(true)));
        let all = entries(&[&a, &b]);
        m.sleep(&all, &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        (a, all)
    }

    #[tokio::test]
    async fn a_wake_cut_off_keeps_its_records_waking_until_a_later_try_succeeds() {
        let (_d, cloud, m) = setup(false);
        let (a, all) = two_asleep(&cloud, &m).await;

        *cloud.offline.lock().unwrap() = true;
        let out = m.wake(&all, Trigger::Idle).await.unwrap();
        assert!(
            out.iter()
                .all(|o| o.action == Action::Failed && o.retrying == Some(Cause::Network)),
            "{out:?}"
        );
        let records = m.records().unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.values().all(|r| r.phase == Phase::Waking));

        *cloud.offline.lock().unwrap() = false;
        let out = m.wake(&all, Trigger::Idle).await.unwrap();
        assert!(out.iter().all(|o| o.action == Action::Restored), "{out:?}");
        assert!(m.records().unwrap().is_empty());
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(3)));
        assert_eq!(cloud.get(&a).sleep_tag, None);
    }

    #[tokio::test]
    async fn a_wake_goes_ahead_when_the_state_file_cannot_be_written_and_a_sleep_does_not() {
        let (d, cloud, m) = setup(false);
        let (a, all) = two_asleep(&cloud, &m).await;
        let b = &all[1].id;
        // The state file's temporary file cannot be created: writes fail,
        // reads work (as on a full disk).
        let blocker = d
            .path()
            .join(format!(".state.json.{}.tmp", std::process::id()));
        std::fs::create_dir(&blocker).unwrap();
        let on_disk = || {
            RecordsFile::new(d.path().join("state.json"))
                .load()
                .unwrap()
        };

        let out = m.wake(&all, Trigger::Idle).await.unwrap();
        assert!(
            out.iter()
                .all(|o| o.action == Action::Restored && o.retrying == Some(Cause::StateDir)),
            "{out:?}"
        );
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(3)));
        assert_eq!(cloud.get(&a).sleep_tag, None);
        assert_eq!(
            cloud.get(b).capacity,
            Capacity::of(Kind::Ec2, Running(true))
        );
        assert!(
            m.asleep().is_empty(),
            "nothing asleep, as far as cloudnap knows"
        );
        assert!(m.records().unwrap().is_empty());
        assert_eq!(on_disk().len(), 2, "the file still has the sleep");
        assert!(m.flush().is_err());
        // A sleep meanwhile: no record, no stop.
        assert!(m
            .sleep(&all, &busy_settings(), Trigger::Idle)
            .await
            .is_err());
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(3)));
        assert_eq!(cloud.get(&a).sleep_tag, None);

        std::fs::remove_dir(&blocker).unwrap();
        m.flush().unwrap();
        assert!(on_disk().is_empty(), "written once it can be");
    }

    #[tokio::test]
    async fn a_wake_that_never_got_through_is_asleep_again_at_the_next_sleep() {
        let (_d, cloud, m) = setup(false);
        let a = ecs("a");
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(2)));
        m.sleep(&entries(&[&a]), &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        *cloud.offline.lock().unwrap() = true;
        m.wake(&entries(&[&a]), Trigger::Idle).await.unwrap();
        *cloud.offline.lock().unwrap() = false;
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::AlreadyAsleep);
        assert_eq!(m.records().unwrap()[&a].phase, Phase::Asleep);
        assert_eq!(
            m.records().unwrap()[&a].saved,
            Capacity::of(Kind::Ecs, Desired(2))
        );
    }

    #[tokio::test]
    async fn a_throttled_stop_keeps_its_record_and_tag_and_is_finished_when_tried_again() {
        let (_d, cloud, m) = setup(false);
        let (slow, denied) = (ecs("slow"), ecs("denied"));
        cloud.add(&slow, Capacity::of(Kind::Ecs, Desired(2)));
        cloud.add(&denied, Capacity::of(Kind::Ecs, Desired(1)));
        cloud.throttle.lock().unwrap().push(slow.clone());
        cloud.deny.lock().unwrap().push(denied.clone());
        let both = entries(&[&slow, &denied]);
        let out = m
            .sleep(&both, &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        let of = |id: &ResourceId| out.iter().find(|o| &o.resource == id).unwrap().clone();
        assert_eq!(of(&slow).action, Action::Failed);
        assert_eq!(of(&slow).retrying, Some(Cause::Throttled));
        assert_eq!(of(&denied).retrying, None, "AccessDenied is not retried");
        let records = m.records().unwrap();
        assert_eq!(records.keys().collect::<Vec<_>>(), [&slow]);
        assert_eq!(records[&slow].phase, Phase::Stopping);
        assert_eq!(
            cloud.get(&slow).sleep_tag,
            Some(Capacity::of(Kind::Ecs, Desired(2)))
        );

        cloud.throttle.lock().unwrap().clear();
        let out = m
            .sleep(&entries(&[&slow]), &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Stopped);
        assert_eq!(m.records().unwrap()[&slow].phase, Phase::Asleep);
        assert_eq!(
            cloud.get(&slow).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
    }

    #[tokio::test]
    async fn state_is_recorded_before_any_mutating_call() {
        let (_d, cloud, m) = setup(false);
        let a = ecs("a");
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(2)));
        // Deny everything: the record must have been written, then dropped.
        cloud.deny.lock().unwrap().push(a.clone());
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Failed);
        assert!(m.state.path().exists(), "written before the calls");
        assert!(m.records().unwrap().is_empty());
    }

    #[tokio::test]
    async fn dry_run_makes_no_mutating_call() {
        let (_d, cloud, m) = setup(true);
        let a = ecs("a");
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(2)));
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::WouldStop);
        assert!(cloud.calls.lock().unwrap().is_empty());
        assert!(!m.state.path().exists());
    }

    #[tokio::test]
    async fn started_by_hand_while_asleep_is_forgotten_not_stopped_again() {
        let (_d, cloud, m) = setup(false);
        let a = ecs("a");
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(2)));
        m.sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        // Someone scales it to 5 by hand.
        cloud
            .resources
            .lock()
            .unwrap()
            .get_mut(&a)
            .unwrap()
            .capacity = Capacity::of(Kind::Ecs, Desired(5));
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::StartedByHand);
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(5)));
        assert_eq!(cloud.get(&a).sleep_tag, None);
        // And wake does not override the user's 5.
        m.wake(&entries(&[&a]), Trigger::Command).await.unwrap();
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(5)));
    }

    #[tokio::test]
    async fn a_database_up_again_is_stopped_again_while_away_and_let_go_when_present() {
        let (_d, cloud, m) = setup(false);
        let db = ResourceId::new(Kind::Rds, ["db1"], "us-east-1");
        let (up, down) = (
            Capacity::of(Kind::Rds, Running(true)),
            Capacity::of(Kind::Rds, Running(false)),
        );
        cloud.add(&db, up);
        m.sleep(&entries(&[&db]), &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        let restart = || {
            cloud
                .resources
                .lock()
                .unwrap()
                .get_mut(&db)
                .unwrap()
                .capacity = up
        };
        restart(); // AWS starts it by itself
        let out = m.refresh(true).await.unwrap();
        assert_eq!(out[0].action, Action::Stopped);
        assert_eq!(cloud.get(&db).capacity, down);
        assert_eq!(cloud.get(&db).sleep_tag, Some(up), "still held asleep");
        assert!(
            m.refresh(true).await.unwrap().is_empty(),
            "asleep: nothing to do"
        );
        restart(); // the user, present, starts it
        let out = m.refresh(false).await.unwrap();
        assert_eq!(out[0].action, Action::StartedByHand);
        assert_eq!(cloud.get(&db).capacity, up);
        assert!(m.records().unwrap().is_empty());
    }

    #[tokio::test]
    async fn wake_covers_recorded_resources_that_were_unregistered() {
        let (_d, cloud, m) = setup(false);
        let a = ecs("a");
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(4)));
        m.sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        let out = m.wake(&[], Trigger::Command).await.unwrap();
        assert_eq!(out[0].action, Action::Restored);
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(4)));
    }

    #[tokio::test]
    async fn busy_resources_stay_up_with_the_reason_in_one_metric_read_per_region() {
        let (_d, cloud, m) = setup(false);
        let (busy, idle, quiet, other) = (
            ec2(1, "eu-west-1"),
            ec2(2, "eu-west-1"),
            ecs("quiet"),
            ec2(3, "us-west-2"),
        );
        for id in [&busy, &idle, &other] {
            cloud.add(id, Capacity::of(Kind::Ec2, Running(true)));
        }
        cloud.add(&quiet, Capacity::of(Kind::Ecs, Desired(2)));
        let cpu = |id: &ResourceId| ("CPUUtilization".to_string(), id.name());
        cloud.metrics.lock().unwrap().extend([
            (cpu(&busy), 63.0),
            (cpu(&idle), 2.0),
            (("CPUUtilization".into(), "quiet".into()), 1.0),
        ]);

        let out = m
            .sleep(
                &entries(&[&busy, &idle, &quiet, &other]),
                &busy_settings(),
                Trigger::Command,
            )
            .await
            .unwrap();
        let row = |id: &ResourceId| out.iter().find(|o| &o.resource == id).unwrap().clone();
        assert_eq!(row(&busy).action, Action::Busy);
        assert_eq!(
            row(&busy).error.as_deref(),
            Some("busy: CPU 63 % over 10 min")
        );
        assert_eq!(
            cloud.get(&busy).capacity,
            Capacity::of(Kind::Ec2, Running(true))
        );
        assert_eq!(cloud.get(&busy).sleep_tag, None, "not tagged either");
        assert!(!m.records().unwrap().contains_key(&busy), "not recorded");
        for id in [&idle, &quiet, &other] {
            assert_eq!(row(id).action, Action::Stopped, "{id}");
            assert_eq!(row(id).error, None);
        }
        let mut calls = cloud.metric_calls.lock().unwrap().clone();
        calls.sort();
        // The ECS service is in us-east-1.
        assert_eq!(
            calls,
            ["eu-west-1", "us-east-1", "us-west-2"],
            "one read per region"
        );

        // Once its CPU drops, the next sleep puts it to sleep too; what is
        // asleep already is not read again.
        cloud.metrics.lock().unwrap().insert(cpu(&busy), 4.0);
        cloud.metric_calls.lock().unwrap().clear();
        let out = m
            .sleep(
                &entries(&[&busy, &idle]),
                &busy_settings(),
                Trigger::Command,
            )
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Stopped);
        assert_eq!(out[1].action, Action::AlreadyAsleep);
        assert_eq!(cloud.metric_calls.lock().unwrap().len(), 1);
        assert_eq!(
            cloud.get(&busy).capacity,
            Capacity::of(Kind::Ec2, Running(false))
        );
    }

    #[tokio::test]
    async fn an_ecs_deployment_in_progress_is_busy_and_the_veto_can_be_turned_off() {
        let (_d, cloud, m) = setup(false);
        let a = ecs("deploying");
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(2)));
        cloud
            .resources
            .lock()
            .unwrap()
            .get_mut(&a)
            .unwrap()
            .deployments = vec![busy::Deployment {
            in_progress: true,
            created: Some(SystemTime::now()),
        }];
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Busy);
        assert_eq!(
            out[0].error.as_deref(),
            Some("busy: ECS deployment in progress")
        );
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(2)));
        assert!(
            cloud.metric_calls.lock().unwrap().is_empty(),
            "a deployment needs no metrics"
        );

        let mut off = busy_settings();
        off.enabled = false;
        let out = m
            .sleep(&entries(&[&a]), &off, Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Stopped);
        assert!(
            cloud.metric_calls.lock().unwrap().is_empty(),
            "not read when off"
        );
    }

    #[tokio::test]
    async fn unreadable_metrics_do_not_keep_anything_up_but_are_noted() {
        let (_d, cloud, m) = setup(false);
        let a = ec2(1, "eu-west-1");
        cloud.add(&a, Capacity::of(Kind::Ec2, Running(true)));
        cloud
            .metrics
            .lock()
            .unwrap()
            .insert(("CPUUtilization".into(), a.name()), 99.0);
        *cloud.deny_metrics.lock().unwrap() = true;
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Stopped);
        assert_eq!(
            out[0].error.as_deref(),
            Some("busy check skipped: CloudWatch: AccessDeniedException: denied")
        );
        assert_eq!(
            cloud.get(&a).capacity,
            Capacity::of(Kind::Ec2, Running(false))
        );
    }

    #[tokio::test]
    async fn dry_run_reports_busy_resources_too() {
        let (_d, cloud, m) = setup(true);
        let a = ec2(1, "eu-west-1");
        cloud.add(&a, Capacity::of(Kind::Ec2, Running(true)));
        cloud
            .metrics
            .lock()
            .unwrap()
            .insert(("CPUUtilization".into(), a.name()), 50.0);
        let out = m
            .sleep(&entries(&[&a]), &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        assert_eq!(out[0].action, Action::Busy);
        assert!(cloud.calls.lock().unwrap().is_empty());
    }
}

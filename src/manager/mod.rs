//! The service manager: puts registered resources to sleep and wakes them
//! exactly as they were, following [`crate::core::policy::decide`], recording every
//! sleep in the state file (before the mutating calls) and in AWS tags.

mod by_hand;
mod refresh;
mod rounds;
mod saved;
mod sleep;
mod stopping;
mod veto;
mod wake;

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
use std::collections::{BTreeMap, BTreeSet};
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
    /// This week's saving and when it was computed (see
    /// [`Manager::saved_this_week`]).
    week: std::sync::Mutex<Option<(std::time::Instant, Option<f64>)>>,
    /// Changes when the user is back: a sleep in progress then stops
    /// where it is and puts back what it did.
    returned: tokio::sync::watch::Sender<u64>,
    /// What the last sleep the user cut short had just looked at: the wake
    /// that follows looks at them no more (what is down of them is
    /// recorded), so the return is no slower than a wake.
    seen_by_cut: std::sync::Mutex<BTreeSet<ResourceId>>,
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
        ready_after_seconds: None,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
            returned: tokio::sync::watch::Sender::new(0),
            seen_by_cut: std::sync::Mutex::default(),
        }
    }

    /// The user is back: a sleep in progress sends no stop more, wakes at
    /// once what it stopped, and leaves the rest up, with no record or
    /// tag (see [`crate::core::policy::cut_short`]). No effect on a sleep
    /// that starts later.
    pub fn cut_sleep_short(&self) {
        self.returned.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Prices each savings figure with the book `prices` makes then (e.g.
    /// the cached Price List answers in front of the shipped table);
    /// without it, the shipped table alone.
    pub fn with_prices(mut self, prices: impl Fn() -> PriceBook + Send + Sync + 'static) -> Self {
        self.prices = Box::new(prices);
        self
    }

    /// Logs every sleep and wake to `history`.
    pub fn with_history(mut self, history: HistoryFile) -> Self {
        self.history = Some(history);
        self
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

    /// `many` for each batch of `items` (by region, profile, kind and its
    /// [`crate::kinds::Batch`] key: one adapter call each), at most
    /// `concurrency` batches at a time. Results keep the input order.
    async fn grouped<T, R, M, MF>(
        &self,
        items: Vec<(ResourceId, Option<String>, T)>,
        many: M,
    ) -> Vec<R>
    where
        T: Clone,
        M: Fn(Vec<(ResourceId, T)>, Option<String>) -> MF,
        MF: Future<Output = Vec<R>>,
    {
        let mut groups: BTreeMap<BatchOf, Vec<usize>> = BTreeMap::new();
        for (i, (id, profile, _)) in items.iter().enumerate() {
            groups.entry(batch_of(id, profile)).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = groups.into_values().collect();
        let calls: Vec<MF> = (groups.iter())
            .map(|g| {
                let members = g
                    .iter()
                    .map(|&i| (items[i].0.clone(), items[i].2.clone()))
                    .collect();
                many(members, items[g[0]].1.clone())
            })
            .collect();
        let batches: Vec<Vec<R>> = stream::iter(calls)
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
        for (g, results) in groups.iter().zip(batches) {
            for (&i, r) in g.iter().zip(results) {
                out[i] = Some(r);
            }
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
        self.grouped(items, |group, p| async move {
            let ids: Vec<ResourceId> = group.into_iter().map(|(id, ())| id).collect();
            cloud.inspect_many(&ids, p.as_deref()).await
        })
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
        self.grouped(items, |group, p| async move {
            cloud.set_capacity_many(&group, p.as_deref()).await
        })
        .await
    }
}

/// What resources go to the adapter together: region, profile, kind and
/// its [`crate::kinds::Batch`] key.
type BatchOf = (String, Option<String>, Kind, String);

fn batch_of(id: &ResourceId, profile: &Option<String>) -> BatchOf {
    let key = id.kind().spec().batch.key(id.names());
    (id.region().to_string(), profile.clone(), id.kind(), key)
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
    seen_row(id, obs, action, Some(saved), None)
}

/// The outcome of a resource as observed (not retried).
fn seen_row(
    id: &ResourceId,
    obs: &Observed,
    action: Action,
    saved: Option<Capacity>,
    error: Option<String>,
) -> Outcome {
    Outcome {
        resource: id.clone(),
        action,
        before: Some(obs.capacity),
        saved,
        error,
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

    pub(super) fn ecs(name: &str) -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", name], "us-east-1")
    }

    pub(super) fn entries(ids: &[&ResourceId]) -> Vec<Entry> {
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

    pub(super) fn busy_settings() -> BusySettings {
        crate::core::config::settings::Settings::default().busy
    }

    fn ec2(n: u32, region: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [format!("i-{n:017x}")], region)
    }

    pub(super) fn setup(dry_run: bool) -> (tempfile::TempDir, Arc<FakeCloud>, Manager<FakeCloud>) {
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

    #[tokio::test(start_paused = true)]
    async fn a_wake_that_does_not_come_back_keeps_its_record_and_its_tag() {
        let (_d, cloud, m) = setup(false);
        let (a, b) = (ecs("a"), ecs("b"));
        let two = Capacity::of(Kind::Ecs, Desired(2));
        cloud.add(&a, two);
        cloud.add(&b, two);
        let both = entries(&[&a, &b]);
        m.sleep(&both, &busy_settings(), Trigger::Idle)
            .await
            .unwrap();
        cloud.stuck.lock().unwrap().push(a.clone());
        let out = m.wake(&both, Trigger::Idle).await.unwrap();
        let of = |id: &ResourceId| out.iter().find(|o| &o.resource == id).unwrap();
        assert_eq!(of(&a).action, Action::DidNotReach, "{out:?}");
        assert_eq!(of(&b).action, Action::Restored, "{out:?}");
        // The untag went out beside the read back; the one that did not
        // come back has its tag written again, and its record stays.
        assert_eq!(cloud.get(&a).sleep_tag, Some(two));
        assert_eq!(m.records().unwrap()[&a].saved, two);
        assert_eq!(cloud.get(&b).sleep_tag, None);
        assert!(!m.records().unwrap().contains_key(&b));
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
    async fn wake_only_wakes_that_resource_and_keeps_the_other_records() {
        let (_d, cloud, m) = setup(false);
        let (a, b) = (ecs("a"), ecs("b"));
        cloud.add(&a, Capacity::of(Kind::Ecs, Desired(4)));
        cloud.add(&b, Capacity::of(Kind::Ecs, Desired(2)));
        let both = entries(&[&a, &b]);
        m.sleep(&both, &busy_settings(), Trigger::Command)
            .await
            .unwrap();
        let out = m.wake_only(&both[1], Trigger::Command).await.unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((&out[0].resource, out[0].action), (&b, Action::Restored));
        assert_eq!(cloud.get(&b).capacity, Capacity::of(Kind::Ecs, Desired(2)));
        assert_eq!(cloud.get(&a).capacity, Capacity::of(Kind::Ecs, Desired(0)));
        let records = m.records().unwrap();
        assert_eq!(records.keys().collect::<Vec<_>>(), [&a], "{records:?}");
        assert_eq!(records[&a].phase, Phase::Asleep);
        // The full wake still finds the other one.
        m.wake(&both, Trigger::Command).await.unwrap();
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
        // Its metrics were read with the look, before its deployment was seen.
        assert_eq!(cloud.metric_calls.lock().unwrap().len(), 1);
        cloud.metric_calls.lock().unwrap().clear();

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

//! Sleep: decide per resource, record, tag and stop, read back; the busy veto.

use super::stopping::{self, PutBack, Stopped, ToStop};
use super::*;

impl<C: CloudControl> Manager<C> {
    /// Sets each item's sleep capacity. An EC2 instance AWS will not
    /// hibernate is stopped instead, with a note saying so.
    pub(super) async fn stop(
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

    pub(super) async fn write_sleep_tags(
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
    pub(super) async fn busy_checks(
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
    /// and reported as busy. Decides first (from one batched look), records
    /// (before any mutating call), acts (tag, stop, read back, batch by
    /// batch), then records what happened. A return meanwhile
    /// ([`Self::cut_sleep_short`]) stops it where it is: what it stopped
    /// is woken at once, the rest left up, their outcomes `cancelled`.
    pub async fn sleep(
        &self,
        entries: &[Entry],
        veto: &BusySettings,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        // A return from now on cuts this sleep short.
        let back = self.returned.subscribe();
        let _busy = self.busy.lock().await;
        let mut records = self.records()?;
        let observed = self.inspect_all(targets_of(entries)).await;
        let mut plan = self.decide_sleeps(entries, observed, &mut records);
        let mut to_stop = self
            .vet(&plan.candidates, veto, &mut records, &mut plan.outcomes)
            .await;
        if self.dry_run {
            sort(&mut plan.outcomes);
            return Ok(plan.outcomes);
        }
        if back.has_changed().unwrap_or(false) {
            // Back before anything was sent: all of it stays up.
            for s in to_stop.drain(..) {
                records.remove(&s.0.id);
                plan.outcomes.push(stopping::cut_short(&s, None));
            }
        }
        // The record is on disk before any mutating call.
        self.save(&records)?;
        match self.tag_and_stop(to_stop, &plan.to_forget, back).await {
            Ok(ended) => {
                for e in ended {
                    if let Some(stopped) = e.end {
                        record_stop(stopped, e.facts, trigger, &mut records, &mut plan);
                    }
                }
            }
            Err(put_back) => {
                for p in put_back {
                    record_put_back(p, trigger, &mut records, &mut plan);
                }
            }
        }
        self.save(&records)?;
        self.log_history(&plan.logged);
        sort(&mut plan.outcomes);
        Ok(plan.outcomes)
    }

    /// What to do with each of `entries`, as observed: the candidates to
    /// stop, and the outcome of every other (records adopted or forgotten).
    fn decide_sleeps<'e>(
        &self,
        entries: &'e [Entry],
        observed: Vec<Result<Observed, CloudError>>,
        records: &mut Records,
    ) -> SleepPlan<'e> {
        let mut plan = SleepPlan::default();
        for (entry, obs) in entries.iter().zip(observed) {
            let obs = match obs {
                Ok(o) => o,
                Err(e) => {
                    plan.outcomes.push(failed(&entry.id, None, e));
                    continue;
                }
            };
            let decision = decide_sleep(&obs, records.get(&entry.id));
            let (action, saved, error) = match decision {
                SleepDecision::Stop { saved } => {
                    // A recorded sleep cut short is finished without a check.
                    let fresh = !records.contains_key(&entry.id);
                    plan.candidates.push((entry, obs, saved, fresh));
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
                    (Action::AlreadyAsleep, Some(saved), None)
                }
                SleepDecision::LeaveDown => (Action::LeftDown, None, None),
                SleepDecision::Protected => (Action::Protected, None, None),
                SleepDecision::NotAlone => {
                    let reason = obs.part_of.clone().unwrap_or_default();
                    tracing::warn!("{}: left running, {reason}", entry.id);
                    (Action::Failed, None, Some(reason))
                }
                SleepDecision::StartedByHand => {
                    if !self.dry_run {
                        if records.remove(&entry.id).is_some() {
                            let id = &entry.id;
                            let wake = event(Change::Wake, id, None, Trigger::Refresh, None);
                            plan.logged.push(wake);
                        }
                        plan.to_forget.push(entry.clone());
                    }
                    (Action::StartedByHand, None, None)
                }
            };
            plan.outcomes.push(Outcome {
                resource: entry.id.clone(),
                action,
                before: Some(obs.capacity),
                saved,
                error,
                retrying: None,
            });
        }
        plan
    }

    /// The busy veto over the candidates not yet recorded: those at work
    /// get their outcome; the others are recorded as stopping (or, in a dry
    /// run, reported) and returned to be stopped.
    async fn vet(
        &self,
        candidates: &[(&Entry, Observed, Capacity, bool)],
        veto: &BusySettings,
        records: &mut Records,
        outcomes: &mut Vec<Outcome>,
    ) -> Vec<ToStop> {
        let fresh: Vec<(&Entry, &Observed)> = candidates
            .iter()
            .filter(|c| c.3)
            .map(|(e, obs, _, _)| (*e, obs))
            .collect();
        let mut checks = self.busy_checks(&fresh, veto).await.into_iter();
        let mut to_stop = Vec::new();
        for (entry, obs, saved, fresh) in candidates {
            let check = match fresh {
                true => checks.next().unwrap_or(Check::Idle),
                false => Check::Idle,
            };
            let outcome = |action, saved, error| Outcome {
                resource: entry.id.clone(),
                action,
                before: Some(obs.capacity),
                saved,
                error,
                retrying: None,
            };
            let note = match check {
                Check::Busy(reason) => {
                    tracing::info!("{}: left running, {reason}", entry.id);
                    outcomes.push(outcome(Action::Busy, None, Some(reason)));
                    continue;
                }
                Check::Unread(note) => Some(note),
                Check::Idle => None,
            };
            if self.dry_run {
                outcomes.push(outcome(Action::WouldStop, Some(*saved), note));
            } else {
                records.insert(entry.id.clone(), record(entry, *saved, Phase::Stopping));
                to_stop.push(((*entry).clone(), *saved, obs.clone(), note));
            }
        }
        to_stop
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
}

/// What a sleep decided before calling AWS.
#[derive(Default)]
struct SleepPlan<'e> {
    outcomes: Vec<Outcome>,
    /// Up, to be stopped unless at work: entry, as observed, capacity to
    /// save, and whether it is not recorded yet (a recorded sleep cut short
    /// is finished without a busy check).
    candidates: Vec<(&'e Entry, Observed, Capacity, bool)>,
    /// Started by hand while asleep: their records are gone, their tags go.
    to_forget: Vec<Entry>,
    logged: Vec<HistoryEvent>,
}

/// Records how one stop ended: asleep (and logged), still stopping (tried
/// again), or forgotten.
fn record_stop(
    (entry, before, saved, action, error, retrying): Stopped,
    facts: Option<Facts>,
    trigger: Trigger,
    records: &mut Records,
    plan: &mut SleepPlan,
) {
    match action {
        Action::Stopped => {
            if let Some(r) = records.get_mut(&entry.id) {
                r.phase = Phase::Asleep;
            }
            let sleep = event(Change::Sleep, &entry.id, Some(saved), trigger, facts);
            plan.logged.push(sleep);
        }
        // Still recorded as stopping, with its tag: the sleep is tried
        // again, a wake restores it.
        _ if retrying.is_some() => {
            tracing::warn!("{}: {}", entry.id, error.as_deref().unwrap_or(""))
        }
        _ => {
            records.remove(&entry.id);
        }
    }
    plan.outcomes.push(Outcome {
        resource: entry.id.clone(),
        action,
        before: Some(before),
        saved: Some(saved),
        error,
        retrying,
    });
}

/// Records how a return put one resource back: up (record gone; a sleep
/// and a wake logged if it was stopped), or asleep still (the wake that
/// follows the return restores it).
fn record_put_back(p: PutBack, trigger: Trigger, records: &mut Records, plan: &mut SleepPlan) {
    let (id, saved) = (&p.stop.0.id, p.stop.1);
    if p.up {
        records.remove(id);
    } else if let Some(r) = records.get_mut(id) {
        r.phase = Phase::Asleep;
    }
    if p.woken || !p.up {
        let sleep = event(Change::Sleep, id, Some(saved), trigger, p.facts);
        plan.logged.push(sleep);
    }
    if p.woken {
        let wake = event(Change::Wake, id, Some(saved), Trigger::Idle, None);
        plan.logged.push(wake);
    }
    plan.outcomes.push(p.outcome);
}

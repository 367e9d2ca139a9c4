//! Sleep: decide per resource, record, tag and stop, read back; the busy veto.

use super::stopping::{self, PutBack, Stopped};
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
        self.grouped(items, |group, p| async move {
            cloud.set_sleep_tags(&group, p.as_deref()).await
        })
        .await
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
        // The busy veto's metrics are read with the look (for what is not
        // recorded yet: a recorded sleep cut short is finished unchecked).
        let fresh = (targets_of(entries).into_iter())
            .filter(|(id, _)| !records.contains_key(id))
            .collect();
        let (observed, metrics) = tokio::join!(
            self.inspect_all(targets_of(entries)),
            self.metric_checks(fresh, veto)
        );
        // Seen with no sleep tag: should the user cut this sleep short, the
        // wake that follows need not look at them again (one with a tag may
        // be partly down from an earlier sleep: that wake looks).
        let seen: BTreeSet<ResourceId> = (entries.iter().zip(&observed))
            .filter(|(_, o)| matches!(o, Ok(o) if o.sleep_tag.is_none()))
            .map(|(e, _)| e.id.clone())
            .collect();
        let mut plan = self.decide_sleeps(entries, observed, &mut records);
        let mut to_stop = self.vet(&mut plan, veto, metrics, &mut records);
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
        match (self.tag_and_stop(to_stop, &plan.to_forget, back.clone())).await {
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
        if back.has_changed().unwrap_or(false) {
            *self.seen_by_cut.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        }
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
            plan.outcomes
                .push(seen_row(&entry.id, &obs, action, saved, error));
        }
        plan
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
}

/// What a sleep decided before calling AWS.
#[derive(Default)]
pub(super) struct SleepPlan<'e> {
    pub outcomes: Vec<Outcome>,
    /// Up, to be stopped unless at work: entry, as observed, capacity to
    /// save, and whether it is not recorded yet (a recorded sleep cut short
    /// is finished without a busy check).
    pub candidates: Vec<(&'e Entry, Observed, Capacity, bool)>,
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

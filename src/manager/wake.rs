//! Wake: restore each record's saved capacity, read it back, forget the record.

use super::*;

impl<C: CloudControl> Manager<C> {
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

    /// [`Self::wake`] of one resource: `entry` alone is restored and its
    /// record removed; every other record stays (what else is asleep stays
    /// asleep). For `HOLD` with `only` while that resource is asleep.
    pub async fn wake_only(
        &self,
        entry: &Entry,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let _busy = self.busy.lock().await;
        self.wake_where(std::slice::from_ref(entry), |id| *id == entry.id, trigger)
            .await
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

    /// Drops the record of `id`, if any.
    pub(super) fn forget(&self, id: &ResourceId) -> Result<(), RecordsError> {
        let mut records = self.records()?;
        if records.remove(id).is_some() {
            self.save(&records)?;
        }
        Ok(())
    }

    /// Wakes the registered `entries` and the recorded resources `recorded`
    /// names: decides from one batched look, restores, reads back, untags,
    /// then records what happened.
    pub(super) async fn wake_where(
        &self,
        entries: &[Entry],
        recorded: impl Fn(&ResourceId) -> bool,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let mut records = self.records()?;
        self.mark_waking(&mut records, |id| {
            recorded(id) || entries.iter().any(|e| &e.id == id)
        });
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
        let mut plan = self.decide_wakes(&targets, observed, &mut records, trigger);
        if self.dry_run {
            return Ok(plan.outcomes);
        }
        for (waking, restore, untag) in self.restore(plan.to_wake).await {
            record_wake(
                waking,
                restore,
                untag,
                trigger,
                &mut records,
                &mut plan.outcomes,
                &mut plan.logged,
            );
        }
        if let Some(cause) = self.save_waking(&records) {
            // Up, but not yet recorded so: the retry writes the records.
            for o in plan.outcomes.iter_mut().filter(|o| o.retrying.is_none()) {
                o.retrying = Some(cause);
            }
        }
        self.log_history(&plan.logged);
        sort(&mut plan.outcomes);
        Ok(plan.outcomes)
    }

    /// Every record `mine` names stays, as waking, until its wake is
    /// confirmed. A state file that cannot take it does not stop the wake:
    /// the sleep tags hold the capacities until the records are written.
    fn mark_waking(&self, records: &mut Records, mine: impl Fn(&ResourceId) -> bool) {
        if !self.dry_run
            && (records.values()).any(|r| mine(&r.resource) && r.phase != Phase::Waking)
        {
            for r in records.values_mut().filter(|r| mine(&r.resource)) {
                r.phase = Phase::Waking;
            }
            self.save_waking(records);
        }
    }

    /// What to do with each target, as observed: restore it, only untag it
    /// (up already), or report it.
    fn decide_wakes(
        &self,
        targets: &BTreeMap<ResourceId, Option<String>>,
        observed: Vec<Result<Observed, CloudError>>,
        records: &mut Records,
        trigger: Trigger,
    ) -> WakePlan {
        let mut plan = WakePlan::default();
        for ((id, profile), obs) in targets.iter().zip(observed) {
            let recorded = records.get(id).map(|r| r.saved);
            let obs = match obs {
                Ok(o) => o,
                Err(e) => {
                    if e.kind == ErrorKind::NotFound && recorded.is_some() && !self.dry_run {
                        records.remove(id);
                    }
                    let retrying = e.cause();
                    plan.outcomes.push(Outcome {
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
                    plan.outcomes
                        .push(row(id, Action::WouldRestore, &obs, saved));
                }
                WakeDecision::Restore { saved } => {
                    plan.to_wake
                        .push((id.clone(), profile.clone(), obs, saved, true))
                }
                WakeDecision::AlreadyUp => {
                    plan.outcomes.push(row(id, Action::AlreadyUp, &obs, saved));
                    if !self.dry_run {
                        if records.remove(id).is_some() {
                            let wake = event(Change::Wake, id, Some(saved), trigger, None);
                            plan.logged.push(wake);
                        }
                        if obs.sleep_tag.is_some() {
                            plan.to_wake
                                .push((id.clone(), profile.clone(), obs, saved, false));
                        }
                    }
                }
            }
        }
        plan
    }

    /// Restores what is down, reads it back, then removes the tags of what
    /// is up again: how each went (what did not come back keeps its record
    /// and tag for the next wake).
    pub(super) async fn restore(
        &self,
        to_wake: Vec<Waking>,
    ) -> Vec<(Waking, Restore, Result<(), CloudError>)> {
        let mut restored = self
            .set_capacities(
                to_wake
                    .iter()
                    .filter(|(.., restore)| *restore)
                    .map(|(id, p, _, saved, _)| (id.clone(), p.clone(), *saved))
                    .collect(),
            )
            .await
            .into_iter();
        let no_answer = || Err(CloudError::new(ErrorKind::Other, "no answer"));
        let restores: Vec<Result<(), CloudError>> = to_wake
            .iter()
            .map(|(.., restore)| match restore {
                true => restored.next().unwrap_or_else(no_answer),
                false => Ok(()),
            })
            .collect();
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
        let restores: Vec<Restore> = to_wake
            .iter()
            .zip(restores)
            .map(|((.., restore), r)| {
                r.map(|()| match restore {
                    true => reached
                        .next()
                        .unwrap_or_else(|| Err("not read back".into())),
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
        to_wake
            .into_iter()
            .zip(restores)
            .map(|(waking, restore)| {
                let untag = match restore {
                    Ok(Ok(())) => untagged.next().unwrap_or_else(no_answer),
                    _ => Ok(()),
                };
                (waking, restore, untag)
            })
            .collect()
    }
}

/// What a wake decided before calling AWS.
#[derive(Default)]
struct WakePlan {
    outcomes: Vec<Outcome>,
    to_wake: Vec<Waking>,
    logged: Vec<HistoryEvent>,
}

/// A resource to wake: its id, profile, as observed, the capacity to
/// restore, and whether to restore it (else only untag it: it is up).
pub(super) type Waking = (ResourceId, Option<String>, Observed, Capacity, bool);

/// How a restore went: the call, then its read back.
type Restore = Result<Result<(), String>, CloudError>;

/// Records how one wake went: awake (record gone, logged), or failed and
/// kept for the next wake.
fn record_wake(
    (id, _, obs, saved, restored): Waking,
    restore: Restore,
    untag: Result<(), CloudError>,
    trigger: Trigger,
    records: &mut Records,
    outcomes: &mut Vec<Outcome>,
    logged: &mut Vec<HistoryEvent>,
) {
    if !restored {
        return; // reported as AlreadyUp
    }
    let mut out = row(&id, Action::Restored, &obs, saved);
    match restore {
        Err(e) => {
            out.action = Action::Failed;
            out.error = Some(e.to_string());
            out.retrying = e.cause();
        }
        Ok(Err(shows)) => {
            tracing::warn!("{id}: {shows}");
            out.action = Action::DidNotReach;
            out.error = Some(shows);
            out.retrying = Some(Cause::NotConfirmed);
        }
        Ok(Ok(())) => {
            records.remove(&id);
            logged.push(event(Change::Wake, &id, Some(saved), trigger, None));
            out.error = untag
                .err()
                .map(|e| format!("restored, but the sleep tag was not removed: {e}"));
        }
    }
    outcomes.push(out);
}

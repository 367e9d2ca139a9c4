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
        // Registered resources (but those a sleep cut short by this return
        // just looked at), plus recorded ones.
        let seen = std::mem::take(&mut *self.seen_by_cut.lock().unwrap_or_else(|e| e.into_inner()));
        let mut targets: BTreeMap<ResourceId, Option<String>> = (entries.iter())
            .filter(|e| !seen.contains(&e.id))
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

    /// Restores what is down, then reads it back while removing the sleep
    /// tags of what AWS accepted (one round, not two): how each went. What
    /// did not come back keeps its record, and its tag is written again,
    /// for the next wake.
    pub(super) async fn restore(
        &self,
        to_wake: Vec<Waking>,
    ) -> Vec<(Waking, Restore, Result<(), CloudError>)> {
        let n = to_wake.len();
        let saved = |i: usize| {
            let (id, p, _, saved, _) = &to_wake[i];
            (id.clone(), p.clone(), *saved)
        };
        let tag = |i: usize, to: Option<Capacity>| {
            let (id, p, ..) = &to_wake[i];
            (id.clone(), p.clone(), to)
        };
        let down: Vec<usize> = (0..n).filter(|&i| to_wake[i].4).collect();
        let set = self.set_capacities(down.iter().map(|&i| saved(i)).collect());
        let mut calls: Vec<Result<(), CloudError>> = (0..n).map(|_| Ok(())).collect();
        spread(&mut calls, &down, set.await);
        let accepted: Vec<usize> = (0..n).filter(|&i| calls[i].is_ok()).collect();
        let read: Vec<usize> = (down.iter().copied())
            .filter(|&i| calls[i].is_ok())
            .collect();
        let (reached, untagged) = tokio::join!(
            self.confirm(read.iter().map(|&i| saved(i)).collect()),
            self.write_sleep_tags(accepted.iter().map(|&i| tag(i, None)).collect()),
        );
        let mut reach: Vec<Result<(), String>> = (0..n).map(|_| Ok(())).collect();
        spread(&mut reach, &read, reached);
        let mut untag: Vec<Result<(), CloudError>> = (0..n).map(|_| Ok(())).collect();
        spread(&mut untag, &accepted, untagged);
        let missed: Vec<usize> = (read.iter().copied())
            .filter(|&i| reach[i].is_err() && untag[i].is_ok())
            .collect();
        if !missed.is_empty() {
            let again = missed.iter().map(|&i| tag(i, Some(to_wake[i].3))).collect();
            for (&i, back) in missed.iter().zip(self.write_sleep_tags(again).await) {
                if let Err(e) = back {
                    tracing::warn!("{}: its sleep tag was not written back: {e}", to_wake[i].0);
                }
            }
        }
        (to_wake.into_iter().zip(calls).zip(reach).zip(untag))
            .map(|(((waking, call), reach), untag)| {
                let restore = call.map(|()| reach);
                let untag = if matches!(restore, Ok(Ok(()))) {
                    untag
                } else {
                    Ok(())
                };
                (waking, restore, untag)
            })
            .collect()
    }
}

/// Puts each of `results` at its index of `picked` in `all`.
fn spread<T>(all: &mut [T], picked: &[usize], results: Vec<T>) {
    for (&i, r) in picked.iter().zip(results) {
        all[i] = r;
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

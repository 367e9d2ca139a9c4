//! The busy veto of a sleep (see [`crate::core::policy::busy`]): an ECS
//! deployment in progress, or metrics over the thresholds, keep a resource
//! up.

use super::sleep::SleepPlan;
use super::stopping::ToStop;
use super::*;
use std::collections::HashMap;

impl<C: CloudControl> Manager<C> {
    /// The metric part of the veto for `targets`, read in one
    /// `GetMetricData` call per region and profile (and 500 queries): each
    /// target's check by id (none when the veto is off).
    pub(super) async fn metric_checks(
        &self,
        targets: Vec<(ResourceId, Option<String>)>,
        settings: &BusySettings,
    ) -> HashMap<ResourceId, Check> {
        if !settings.enabled || targets.is_empty() {
            return HashMap::new();
        }
        let now = SystemTime::now();
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
        let checks = busy::judge(targets.len(), &batches, results, settings, now);
        (targets.into_iter().map(|(id, _)| id))
            .zip(checks)
            .collect()
    }

    /// The busy veto over the candidates not yet recorded, with their
    /// metrics read ahead (`metrics`): those at work get their outcome; the
    /// others are recorded as stopping (or, in a dry run, reported) and
    /// returned to be stopped.
    pub(super) fn vet(
        &self,
        plan: &mut SleepPlan,
        settings: &BusySettings,
        mut metrics: HashMap<ResourceId, Check>,
        records: &mut Records,
    ) -> Vec<ToStop> {
        let now = SystemTime::now();
        let mut to_stop = Vec::new();
        for (entry, obs, saved, fresh) in &plan.candidates {
            let check = match fresh {
                true => veto(settings, now, obs, metrics.remove(&entry.id)),
                false => Check::Idle,
            };
            let outcome = |action, saved, error| seen_row(&entry.id, obs, action, saved, error);
            let note = match check {
                Check::Busy(reason) => {
                    tracing::info!("{}: left running, {reason}", entry.id);
                    plan.outcomes
                        .push(outcome(Action::Busy, None, Some(reason)));
                    continue;
                }
                Check::Unread(note) => Some(note),
                Check::Idle => None,
            };
            if self.dry_run {
                plan.outcomes
                    .push(outcome(Action::WouldStop, Some(*saved), note));
            } else {
                records.insert(entry.id.clone(), record(entry, *saved, Phase::Stopping));
                to_stop.push(((*entry).clone(), *saved, obs.clone(), note));
            }
        }
        to_stop
    }

    /// What `entry` looks like now and whether it is at work.
    pub async fn busy_check(
        &self,
        entry: &Entry,
        settings: &BusySettings,
    ) -> Result<(Observed, Check), CloudError> {
        let obs = self
            .cloud
            .inspect(&entry.id, entry.profile.as_deref())
            .await?;
        let target = vec![(entry.id.clone(), entry.profile.clone())];
        let metric = self.metric_checks(target, settings).await.remove(&entry.id);
        let check = veto(settings, SystemTime::now(), &obs, metric);
        Ok((obs, check))
    }
}

/// The veto for one resource, as observed: an ECS deployment in progress,
/// else what its metrics showed.
fn veto(settings: &BusySettings, now: SystemTime, obs: &Observed, metric: Option<Check>) -> Check {
    let deploying = (settings.enabled && settings.ecs_deployments)
        .then(|| busy::deploying(now, &obs.deployments))
        .flatten();
    match deploying {
        Some(reason) => Check::Busy(reason),
        None => metric.unwrap_or(Check::Idle),
    }
}

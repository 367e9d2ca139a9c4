//! What AWS shows of what is asleep: refresh (let go what was started by hand), tag discovery, status rows.

use super::*;

impl<C: CloudControl> Manager<C> {
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

    /// Forgets `id`, which someone started by hand: its record (logged as a
    /// wake) and its sleep tag.
    pub(super) async fn let_go(
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
        hibernating(entries, aws)
    }

    /// Runs `work` (a sleep or a wake) on `known` while the search of
    /// [`Self::with_tagged`] runs beside its first look, then on those found
    /// that `known` lacks and `work` did not reach, if any: the search costs
    /// no round trip before the work. Returns the tagged resources found
    /// and the outcomes of both runs.
    pub async fn beside_search<Fut>(
        &self,
        known: Vec<Entry>,
        aws: &AwsSettings,
        work: impl Fn(Vec<Entry>) -> Fut,
    ) -> (Vec<Entry>, Result<Vec<Outcome>, RecordsError>)
    where
        Fut: std::future::Future<Output = Result<Vec<Outcome>, RecordsError>>,
    {
        let known = hibernating(known, aws);
        let search = self.with_tagged(Vec::new(), aws);
        let (found, first) = tokio::join!(search, work(known.clone()));
        let Ok(mut outcomes) = first else {
            return (found, first);
        };
        let new: Vec<Entry> = (found.iter())
            .filter(|f| !known.iter().any(|k| k.id == f.id))
            .filter(|f| !outcomes.iter().any(|o| o.resource == f.id))
            .cloned()
            .collect();
        if new.is_empty() {
            return (found, Ok(outcomes));
        }
        let more = work(new).await.map(|more| {
            outcomes.extend(more);
            outcomes
        });
        (found, more)
    }

    /// Adds to `entries` the resources of `regions` tagged
    /// `cloudnap:managed=true` that are not in it.
    pub(super) async fn discover_into(&self, entries: &mut Vec<Entry>, regions: &[String]) {
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

/// `entries`, each EC2 one hibernating if `aws.ec2_hibernate` says so.
fn hibernating(mut entries: Vec<Entry>, aws: &AwsSettings) -> Vec<Entry> {
    for e in &mut entries {
        e.hibernate |= aws.ec2_hibernate && e.id.kind().spec().hibernates;
    }
    entries
}

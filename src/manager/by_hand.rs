//! Changes by hand (`START_*`/`STOP_*`/`SCALE_*`) and the AWS-side deadline's arming.

use super::*;

impl<C: CloudControl> Manager<C> {
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
}

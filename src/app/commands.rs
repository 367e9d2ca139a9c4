//! Commands from UDP and the tray: holds, STATUS, listings, changes by hand.

use super::*;
use crate::core::policy::order::WakePolicy;
use crate::core::protocol::status::TimeoutRow;

impl<C: CloudControl> App<C> {
    /// `HOLD`: adds a hold (on the registered resource named `only`, if
    /// given). A hold on everything made while asleep wakes everything; a
    /// hold on one resource wakes that one only, if it is asleep (the
    /// others stay asleep, and so does the idle state).
    pub(super) fn hold(
        &self,
        minutes: Option<f64>,
        reason: String,
        only: Option<String>,
        lease_seconds: Option<f64>,
    ) -> Result<Reply, CommandError> {
        let scope = match only {
            None => Scope::All,
            Some(name) => {
                let found: Vec<ResourceId> = self
                    .entries()
                    .into_iter()
                    .map(|e| e.id)
                    .filter(|id| crate::core::policy::order::names(id, &name))
                    .collect();
                match found.as_slice() {
                    [id] => Scope::Only(id.clone()),
                    [] => {
                        return Err(CommandError::Hold(format!(
                            "no registered resource `{name}`: name it as in `cloudnap status` (i-0abc, cluster/service, cluster/nodegroup)"
                        )))
                    }
                    _ => {
                        return Err(CommandError::Hold(format!(
                            "`{name}` names {} registered resources: add its kind and region, e.g. `EC2 i-0abc (us-east-1)`",
                            found.len()
                        )))
                    }
                }
            }
        };
        let t = now();
        let (hold, event) = {
            let mut state = self.lock();
            let only = scope != Scope::All;
            let hold = state
                .holds
                .add(
                    t,
                    reason,
                    scope,
                    minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
                    lease_seconds.map(Duration::from_secs_f64),
                )
                .map_err(|e| CommandError::Hold(e.to_string()))?;
            // One resource held: the countdown runs on; sleeps leave it up.
            let event = (!only).then(|| state.follow_holds(t)).flatten();
            (hold, event)
        };
        tracing::info!("hold {}: {} ({:?})", hold.id, hold.reason, hold.scope);
        if let Some(e) = event {
            self.react(e, Trigger::Command);
        }
        if let Scope::Only(id) = &hold.scope {
            self.wake_held(id);
        }
        Ok(Reply::Hold { hold: hold.row(t) })
    }

    /// Wakes `id` alone if cloudnap holds it asleep (a personal resource:
    /// the team wakes shared ones), in the background; STATUS shows it
    /// `starting` in `readiness` from now until it is usable. While the user
    /// stays away it is then listed as held among what the sleep left up,
    /// so it sleeps again once no hold covers it (see
    /// [`Self::recheck_left_up`]).
    fn wake_held(&self, id: &ResourceId) {
        let asleep = (self.manager.records()).is_ok_and(|r| r.contains_key(id));
        let entry = self.split_shared(self.entry_of(id).into_iter().collect()).0;
        let (Some(app), [entry], true) = (self.me.upgrade(), entry.as_slice(), asleep) else {
            return;
        };
        let entry = entry.clone();
        // Followed from the hold: a client waiting for it to be ready
        // never sees it not asleep and not yet followed.
        self.follow(vec![entry.id.clone()], Trigger::Command);
        tokio::spawn(async move {
            let outcomes = match app.manager.wake_only(&entry, Trigger::Command).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    tracing::error!("waking {} for its hold: {e}", entry.id);
                    return;
                }
            };
            tracing::info!("woken for a hold:\n{}", format_outcomes(&outcomes));
            {
                let mut state = app.lock();
                if state.tracker.anything_asleep() {
                    state.last_sleep.retain(|o| o.resource != entry.id);
                    state.last_sleep.push(held_up(&entry.id));
                }
            }
            let failed: Vec<Outcome> = (outcomes.iter())
                .filter(|o| o.action.is_failure())
                .cloned()
                .collect();
            if !failed.is_empty() {
                app.emit(Event::Error {
                    operation: Operation::Waking,
                    failed,
                    error: None,
                });
            } else if outcomes.iter().any(|o| o.action == Action::Restored) {
                app.emit(Event::Awake(outcomes));
            }
        });
    }

    /// `HOLD_RENEW` and `HOLD_RELEASE`.
    pub(super) fn hold_changed(&self, id: u64, release: bool) -> Result<Reply, CommandError> {
        let t = now();
        let mut state = self.lock();
        let hold = if release {
            state.holds.release(t, id)
        } else {
            state.holds.renew(t, id)
        }
        .map_err(|e| CommandError::Hold(e.to_string()))?;
        let event = state.follow_holds(t);
        let away = state.tracker.anything_asleep();
        drop(state);
        if let Some(e) = event {
            self.react(e, Trigger::HoldEnded);
        }
        if let (true, true, Some(app)) = (release, away, self.me.upgrade()) {
            // What only this hold kept up while the user is away sleeps now.
            tokio::spawn(async move { app.recheck_left_up().await });
        }
        let hold = hold.row(t);
        if release {
            tracing::info!("hold {id} released: {}", hold.reason);
            Ok(Reply::Released { released: hold })
        } else {
            Ok(Reply::Hold { hold })
        }
    }

    pub(super) fn status_reply(&self) -> Result<Reply, CommandError> {
        Ok(Reply::Status(Box::new(self.status())))
    }

    /// Why `id` must not be registered alone, if its kind is checked on
    /// registration and AWS shows it is part of a group (see
    /// [`crate::core::model::resource::Observed::part_of`]). When AWS cannot be
    /// asked, it may be registered: sleep checks again.
    pub(super) async fn part_of(&self, id: &ResourceId) -> Option<String> {
        if !id.kind().spec().checked_on_register {
            return None;
        }
        self.manager.cloud().inspect(id, None).await.ok()?.part_of
    }

    pub(super) fn entry_of(&self, id: &ResourceId) -> Option<Entry> {
        self.entries().into_iter().find(|e| &e.id == id)
    }

    /// `LIST_*`: the resources of `kind` (`None`: the kinds
    /// `LIST_ALL_SERVICES` shows) in `region` or every configured region.
    pub(super) async fn list(
        &self,
        kind: Option<Kind>,
        region: Option<String>,
    ) -> Result<Listing, CommandError> {
        let regions = region.map_or_else(|| self.settings().aws.regions.clone(), |r| vec![r]);
        let (cloud, regions) = (self.manager.cloud(), regions.as_slice());
        let rows = |kind| per_region(regions, move |r| cloud.list(kind, r, None));
        Ok(match kind {
            Some(kind) => Listing::of(kind, rows(kind).await?),
            None => {
                let kinds = Kind::ALL.into_iter().filter(|k| k.spec().list_all);
                let lists = try_join_all(
                    kinds.map(|k| async move { Ok::<_, CommandError>((k, rows(k).await?)) }),
                )
                .await?;
                Listing::all(lists)
            }
        })
    }

    pub(super) async fn by_hand(
        &self,
        id: &ResourceId,
        target: impl FnOnce(Capacity, Option<Capacity>, Option<i32>) -> Capacity,
    ) -> Result<Reply, CommandError> {
        let entry = self.entry_of(id);
        let profile = entry.as_ref().and_then(|e| e.profile.clone());
        let entry_desired = entry.and_then(|e| e.desired_size);
        let capacity = self
            .manager
            .set_by_hand(id, profile.as_deref(), |now, saved| {
                target(now, saved, entry_desired)
            })
            .await
            .map_err(|e| cloud_error(id, e))?;
        // Set by hand: what the user chose, no longer the retry's to do.
        let mut state = self.lock();
        if let Some(retry) = state.retry.as_mut() {
            if retry.covers(id) && !retry.let_go(id) {
                tracing::info!("{id} set by hand: nothing is left for the retry");
                state.retry = None;
            }
        }
        drop(state);
        Ok(Reply::Changed {
            resource: id.clone(),
            capacity,
            dry_run: self.manager.dry_run(),
        })
    }

    /// Told of every change of the app's state (what STATUS shows may
    /// have changed).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.state.subscribe()
    }

    /// The app's state as STATUS reports it, with what the tray shows for
    /// it.
    pub fn status(&self) -> Status {
        let mut status = self.status_now();
        let view = crate::ui::view::tray_view(&status);
        status.tray = TrayLine {
            icon: view.icon.name(),
            line: view.line,
        };
        status
    }

    /// The app's state, without the tray's view of it.
    /// STATUS's `asleep`: each record, with its wake retry and wake policy.
    fn asleep_rows(&self, retry: Option<&Retry>) -> Vec<AsleepRow> {
        let policies: BTreeMap<ResourceId, WakePolicy> = self
            .registry_file
            .cached_wake_policies()
            .into_iter()
            .collect();
        (self.manager.asleep().into_values())
            .map(|r| AsleepRow {
                saved: r.saved,
                phase: r.phase,
                since: r.since,
                retrying: retry.and_then(|x| x.text_for(&r.resource)),
                wake: policies.get(&r.resource).map(|p| p.name()),
                resource: r.resource,
            })
            .collect()
    }

    pub(super) fn status_now(&self) -> Status {
        let saved_this_week_usd = self.manager.saved_this_week();
        let (team, team_error) = self.team_status();
        let mut sleeping: Vec<String> = (self.manager.asleep().keys())
            .filter_map(|id| self.profile_of(id))
            .collect();
        sleeping.sort_unstable();
        sleeping.dedup();
        let sign_in = self.sign_in_needed(&sleeping);
        let (registered, _) = self.split_shared(self.registry_file.cached_entries());
        let t = now();
        let state = self.lock();
        let retry = state.retry.as_ref();
        let (name, sleep_in, paused_for) = match state.tracker.state(t) {
            IdleState::Active { sleep_in } => (StateName::Active, Some(sleep_in), None),
            IdleState::Warning { sleep_in } => (StateName::Warning, Some(sleep_in), None),
            IdleState::PartlyAsleep { sleep_in } => (StateName::PartlyAsleep, Some(sleep_in), None),
            IdleState::Asleep => (StateName::Asleep, None, None),
            IdleState::Paused { remaining } => (StateName::Paused, None, Some(remaining)),
            IdleState::Blind => (StateName::Blind, None, None),
        };
        let inhibitors = state.inhibitor_rows(t);
        Status {
            state: name,
            last_activity: state.last_activity.map(|(kind, at)| LastActivity {
                kind,
                presence: kind.is_presence(),
                seconds_ago: t.saturating_duration_since(at).as_secs_f64(),
            }),
            locked: state.tracker.locked(),
            sleep_in_seconds: sleep_in.map(|d| d.as_secs_f64()),
            timeouts: timeout_rows(&state, t, &registered),
            paused_for_seconds: paused_for.map(|d| d.as_secs_f64()),
            asleep: self.asleep_rows(retry),
            busy: busy_rows(&state.last_sleep),
            registered: self.registry_file.cached_len(),
            operation: state.operation.or(retry.map(|r| r.operation)),
            retrying: retry.map(|r| r.row(t)),
            dry_run: self.manager.dry_run(),
            config_error: (!state.config_errors.is_empty()).then(|| {
                state
                    .config_errors
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            inputs: Inputs::of(&state.detectors),
            detectors: state.detectors.clone(),
            holds: state.holds.active(t).iter().map(|h| h.row(t)).collect(),
            kept_awake_by: (name != StateName::Asleep)
                .then(|| crate::core::policy::inhibitors::kept_awake_by(&inhibitors))
                .flatten(),
            inhibitors,
            saved_this_week_usd,
            deadline_off: state.deadline.off.clone(),
            team,
            team_error,
            sign_in,
            awake: if matches!(name, StateName::Asleep | StateName::PartlyAsleep) {
                why_awake(&state.last_sleep, &state.holds, t, &|at| clock_at(t, at))
            } else {
                Vec::new()
            },
            readiness: (state.readiness.as_ref()).map_or_else(Vec::new, |f| f.rows()),
            prewake: (state.prewake.plan.as_ref()).map(|p| p.line()),
            tray: TrayLine::default(),
        }
    }

    /// The idle state now.
    pub fn state(&self) -> IdleState {
        self.lock().tracker.state(now())
    }

    /// `PAUSE`: kept awake for `minutes`.
    pub(super) fn pause(&self, minutes: f64) -> Result<Reply, CommandError> {
        let t = now();
        let event = {
            let mut state = self.lock();
            state
                .holds
                .pause(t, Duration::from_secs_f64(minutes * 60.0));
            state.follow_holds(t)
        };
        if let Some(e) = event {
            self.react(e, Trigger::Command);
        }
        self.emit(Event::Paused { minutes });
        self.status_reply()
    }

    /// `RESUME`: every hold ends, the idle countdown starts again.
    pub(super) fn resume(&self) -> Result<Reply, CommandError> {
        let t = now();
        {
            let mut state = self.lock();
            state.holds.clear(t);
            state.tracker.resume(t);
        }
        self.status_reply()
    }

    /// `LIST_HOLDS`.
    pub(super) fn list_holds(&self) -> Result<Reply, CommandError> {
        let t = now();
        let holds = self.lock().holds.active(t);
        Ok(Reply::Holds {
            holds: holds.iter().map(|h| h.row(t)).collect(),
        })
    }

    /// `REPORT`: what sleeping saved over the last `days`.
    pub(super) fn report(&self, days: u32) -> Result<Reply, CommandError> {
        let now = crate::manager::now_seconds();
        let since = now - f64::from(days) * 86_400.0;
        self.manager
            .savings(since, now)
            .map(|r| Reply::Savings(Box::new(r)))
            .map_err(|e| CommandError::State(e.to_string()))
    }

    /// `SLEEP_NOW`: sleeping by hand ends every hold.
    pub(super) async fn sleep_now(&self, trigger: Trigger) -> Result<Reply, CommandError> {
        let t = now();
        {
            let mut state = self.lock();
            if state.holds.clear(t) > 0 {
                tracing::info!("SLEEP_NOW: every hold ended");
            }
            state.tracker.force_sleep(t);
        }
        self.run(Operation::Sleeping, trigger)
            .await
            .map(Reply::Report)
    }

    /// `WAKE_NOW`.
    pub(super) async fn wake_now(&self, trigger: Trigger) -> Result<Reply, CommandError> {
        self.lock().tracker.activity(now());
        self.run(Operation::Waking, trigger)
            .await
            .map(Reply::Report)
    }

    /// `REGISTER_*`: refused for a part of a group (register the group).
    pub(super) async fn register(
        &self,
        id: ResourceId,
        description: String,
    ) -> Result<Reply, CommandError> {
        if let Some(reason) = self.part_of(&id).await {
            return Err(CommandError::Invalid(format!(
                "{id} is {reason}: register the group instead"
            )));
        }
        let new = entry(id.clone(), description);
        let count = self.edit_registry(move |s| s.register(new)).await?;
        Ok(Reply::Registered {
            registered: id,
            count,
        })
    }

    /// `UNREGISTER_*`.
    pub(super) async fn unregister(&self, id: ResourceId) -> Result<Reply, CommandError> {
        let target = id.clone();
        let count = self.edit_registry(move |s| s.unregister(&target)).await?;
        Ok(Reply::Unregistered {
            unregistered: id,
            count,
        })
    }

    /// `LIST_REGISTERED_SERVICES`.
    pub(super) fn registered(&self) -> Reply {
        let error = self.registry_file.current().1;
        let default = self.lock().tracker.config().timeout;
        Reply::Registry {
            services: self
                .entries()
                .into_iter()
                .map(|e| RegisteredRow {
                    timeout_minutes: crate::core::config::registry::minutes(e.timeout_or(default)),
                    source: e.source(),
                    resource: e.id,
                    description: e.description,
                    profile: e.profile,
                    desired_size: e.desired_size,
                    wake: e.wake.name(),
                    after: e.after,
                })
                .collect(),
            config_error: error.map(|e| e.to_string()),
        }
    }
}

/// STATUS's `timeouts`: each timeout group of the tracker at `t`, with the
/// resources of `registered` (and those found by tag) it puts to sleep.
fn timeout_rows(state: &State, t: Instant, registered: &[Entry]) -> Vec<TimeoutRow> {
    let default = state.tracker.config().timeout;
    let tagged = state.tagged.iter().filter(|e| !e.shared);
    (state.tracker.groups(t).into_iter())
        .map(|g| TimeoutRow {
            timeout_minutes: crate::core::config::registry::minutes(g.timeout),
            default: g.timeout == default,
            resources: (registered.iter().chain(tagged.clone()))
                .filter(|e| e.timeout_or(default) == g.timeout)
                .map(|e| e.id.clone())
                .collect(),
            asleep: g.asleep,
            warned: g.warned,
            sleep_in_seconds: g.sleep_in.map(|d| d.as_secs_f64()),
        })
        .collect()
}

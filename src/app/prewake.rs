//! The pre-wake loop: while the user is away, wakes each asleep resource
//! ahead of their usual arrival (see [`crate::core::policy::prewake`]) and
//! puts it back to sleep if they do not come within the grace.

use super::state::{Prewake, State};
use super::{now, App};
use crate::cloud::CloudControl;
use crate::core::config::settings::PrewakeSettings;
use crate::core::model::history::Trigger;
use crate::core::policy::idle::IdleState;
use crate::core::policy::prewake::{self, Plan, Sleeper};
use crate::core::protocol::status::Operation;
use crate::manager::now_seconds;
use chrono::{NaiveDateTime, TimeDelta};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How far back the history is read for the user's habits.
const HISTORY: TimeDelta = TimeDelta::weeks(8);

/// The local time of a Unix time.
fn local(at: f64) -> NaiveDateTime {
    let nanos = (at.fract() * 1e9) as u32;
    chrono::DateTime::from_timestamp(at.floor() as i64, nanos)
        .unwrap_or_default()
        .with_timezone(&chrono::Local)
        .naive_local()
}

/// What the pre-wake follows besides the time: whether the user is away,
/// each sleep or wake that ended, and its settings.
fn prewake_key(s: &State) -> (bool, u64, PrewakeSettings) {
    let away = s.tracker.state(now()) == IdleState::Asleep;
    (away, s.finished, s.settings.prewake)
}

impl<C: CloudControl> App<C> {
    /// Keeps the pre-wake as the history and the user's state want it,
    /// until `shutdown` resolves.
    pub async fn run_prewake(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let seen = prewake_key(&self.lock());
            let next = self.keep_prewake().await;
            let wait = async {
                match next {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.state.changed(&seen, prewake_key) => {}
                _ = wait => {}
            }
        }
    }

    /// One step: the user back, what the pre-wake started is theirs (and
    /// logged as their return); away past the grace, it sleeps again; away
    /// at a planned time, what is due is woken. Returns how long until the
    /// next step (none: only a change of state brings one).
    async fn keep_prewake(&self) -> Option<Duration> {
        let t = local(now_seconds());
        let (away, started) = {
            let state = self.lock();
            let away = state.tracker.state(now()) == IdleState::Asleep;
            (away, state.prewake.started.clone())
        };
        if !away {
            let prewake = std::mem::take(&mut self.lock().prewake);
            if !prewake.woken.is_empty() {
                tracing::info!("you are back: the pre-wake had {} up", prewake.woken.len());
                self.manager.log_arrival(&prewake.woken);
            }
            return None;
        }
        if let Some(plan) = started.filter(|p| t >= p.give_up) {
            tracing::info!(
                "nobody came by {}: back to sleep",
                plan.give_up.format("%H:%M")
            );
            self.lock().prewake = Prewake::default();
            let _ = self.run(Operation::Sleeping, Trigger::PreWake).await;
            return Some(Duration::ZERO);
        }
        let plan = self.prewake_plan(t);
        self.lock().prewake.plan = plan.clone();
        if let Some(plan) = &plan {
            let due = plan.due(t);
            if !due.is_empty() {
                self.wake_ahead(plan, due).await;
            }
        }
        // The next start still to come, or the end of the grace of what
        // was started (even with nothing left asleep).
        let give_up = self.lock().prewake.started.as_ref().map(|p| p.give_up);
        let next = (plan.iter().flat_map(|p| p.wakes.iter().map(|(_, at)| *at)))
            .filter(|at| *at > t)
            .chain(give_up)
            .min()?;
        Some((next - t).to_std().unwrap_or_default())
    }

    /// The plan for what is asleep now, from the history of the last weeks.
    fn prewake_plan(&self, t: NaiveDateTime) -> Option<Plan> {
        let settings = self.settings().prewake;
        let records = self.manager.asleep();
        if !settings.enabled || records.is_empty() {
            return None;
        }
        let since = now_seconds() - HISTORY.num_seconds() as f64;
        let events = self.manager.history_since(since);
        // Measured times to ready, else the kind's usual one.
        let measured = prewake::measured(&events);
        // What the return would leave asleep is not started ahead of it.
        let asleep: Vec<Sleeper> = (records.into_values())
            .filter(|r| self.woken_on_return(&r.resource))
            .map(|r| Sleeper {
                ready_in: (measured.get(&r.resource).copied())
                    .unwrap_or(r.resource.kind().spec().ready_in),
                since: local(r.since as f64),
                resource: r.resource,
            })
            .collect();
        let first_day = local(events.first()?.at.max(since)).date();
        let arrivals = prewake::arrivals(&events, local);
        prewake::plan(t, &arrivals, first_day, &asleep, &settings)
    }

    /// Wakes `due` (and only them) ahead of `plan`'s usual arrival.
    async fn wake_ahead(&self, plan: &Plan, due: Vec<crate::core::model::resource::ResourceId>) {
        tracing::info!(
            "{}: waking {} resource(s) ahead of your usual {}",
            plan.line(),
            due.len(),
            plan.usual.format("%H:%M")
        );
        let entries: Vec<_> = (self.entries().into_iter())
            .filter(|e| due.contains(&e.id))
            .collect();
        let woken = (self.manager)
            .wake_personal(&entries, |id| due.contains(id), Trigger::PreWake)
            .await;
        if let Err(e) = &woken {
            tracing::warn!("the pre-wake failed: {e}");
        }
        let mut state = self.lock();
        state.prewake.woken.extend(due);
        state.prewake.started = Some(plan.clone());
    }
}

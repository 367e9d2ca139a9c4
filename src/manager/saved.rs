//! What sleeping saved: this week's figure, reports, the history log, and the facts priced.

use super::*;

impl<C: CloudControl> Manager<C> {
    /// Dollars saved over the last 7 days (`None` without a history or when
    /// it cannot be read); computed after each sleep or wake, then again at
    /// most once a minute while something is asleep (its saving grows) and
    /// once an hour while nothing is (only the week's start moves): the
    /// tray, which shows it, must not read the history every minute all day.
    pub fn saved_this_week(&self) -> Option<f64> {
        let asleep = !self.cached.lock().expect("records cache").is_empty();
        let fresh = std::time::Duration::from_secs(if asleep { 60 } else { 3600 });
        let mut week = self.week.lock().unwrap_or_else(|e| e.into_inner());
        match *week {
            Some((at, saved)) if at.elapsed() < fresh => saved,
            _ => {
                let now = now_seconds();
                let saved = self.history.as_ref().and_then(|_| {
                    self.savings(now - 7.0 * 86_400.0, now)
                        .map_err(|e| tracing::warn!("{e}"))
                        .ok()
                        .map(|r| r.totals.saved_usd)
                });
                *week = Some((std::time::Instant::now(), saved));
                saved
            }
        }
    }

    /// The savings report over `[since, now]` from the history (none kept:
    /// an empty report).
    pub fn savings(&self, since: f64, now: f64) -> Result<SavingsReport, HistoryError> {
        match &self.history {
            Some(h) => h.report(since, now, |_| (self.prices)()),
            None => Ok(savings::compute(&[], since, now, &(self.prices)())),
        }
    }

    /// The history since `since` (Unix seconds), oldest first; none kept
    /// or unreadable: empty (logged).
    pub fn history_since(&self, since: f64) -> Vec<HistoryEvent> {
        let Some(history) = &self.history else {
            return Vec::new();
        };
        match history.events_since(since) {
            Ok((events, _)) => events,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }

    /// The user came back while `ids`, started ahead of them by the
    /// pre-wake, were up: logged as the user's wake of each, which teaches
    /// the next pre-wake (savings ignore a wake of what is up).
    pub fn log_arrival(&self, ids: &[ResourceId]) {
        let events: Vec<HistoryEvent> = (ids.iter())
            .map(|id| event(Change::Wake, id, None, Trigger::Idle, None))
            .collect();
        self.log_history(&events);
    }

    /// Appends `events` to the history (compacting earlier months first);
    /// a failure is logged, never fatal: the sleep or wake happened.
    pub(super) fn log_history(&self, events: &[HistoryEvent]) {
        let Some(history) = &self.history else {
            return;
        };
        if events.is_empty() {
            return;
        }
        if let Err(e) = history.compact(now_seconds()) {
            tracing::warn!("compacting the history: {e}");
        }
        if let Err(e) = history.append(events) {
            tracing::warn!("{e}");
        }
        *self.week.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Appends a `ready` line for each woken resource now usable, with what
    /// woke it and how long it took (see [`crate::core::policy::readiness`]).
    pub fn log_ready(&self, ready: &[(ResourceId, Trigger, std::time::Duration)]) {
        let lines: Vec<HistoryEvent> = (ready.iter())
            .map(|(id, trigger, after)| HistoryEvent {
                ready_after_seconds: Some(after.as_secs_f64()),
                ..event(Change::Ready, id, None, *trigger, None)
            })
            .collect();
        self.log_history(&lines);
    }

    /// What each of `targets` is made of, for the savings report; `None`
    /// (with a warning) where AWS could not tell.
    pub(super) async fn facts_of(
        &self,
        targets: Vec<(ResourceId, Option<String>)>,
    ) -> Vec<Option<Facts>> {
        let cloud = &self.cloud;
        let items: Vec<_> = targets.into_iter().map(|(id, p)| (id, p, ())).collect();
        let ids: Vec<ResourceId> = items.iter().map(|(id, _, _)| id.clone()).collect();
        let results = self
            .grouped(items, |group, p| async move {
                let ids: Vec<ResourceId> = group.into_iter().map(|(id, ())| id).collect();
                cloud.facts_many(&ids, p.as_deref()).await
            })
            .await;
        ids.iter()
            .zip(results)
            .map(|(id, r)| {
                r.map_err(|e| {
                    tracing::warn!(
                        "{id}: reading what it is made of: {e}; its savings are not priced"
                    )
                })
                .ok()
            })
            .collect()
    }
}

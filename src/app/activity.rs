//! Activity in, idle events out: the activity loop and what an idle event
//! starts (the idle timer is in timer.rs).

use super::*;
use crate::core::policy::inhibitors::{self, Inhibitor};
use tokio::sync::watch;

impl<C: CloudControl> App<C> {
    /// The detectors' states changed: applies the blind rule (no input
    /// detector runs: nothing sleeps by itself) and says so once.
    pub fn detectors_changed(&self, detectors: Vec<DetectorRow>) {
        let blind = Inputs::of(&detectors) == Inputs::Blind;
        let mut state = self.lock();
        let was_blind = Inputs::of(&state.detectors) == Inputs::Blind;
        if state.tracker.set_blind(now(), blind) == Some(IdleEvent::WarningCancelled) {
            self.emit(Event::WarningCancelled);
        }
        if blind && !was_blind {
            tracing::warn!(
                "no detector can see user input: nothing sleeps by itself until one runs ({})",
                describe(&detectors)
            );
            self.emit(Event::Blind {
                detectors: detectors.clone(),
            });
        } else if was_blind && !blind {
            tracing::info!("an input detector runs again: the idle countdown restarts");
            self.emit(Event::Seeing);
        }
        state.detectors = detectors;
    }

    /// The user did something, at `activity.at`; or the session locked.
    pub fn activity(&self, activity: Activity) {
        let Activity { kind, at } = activity;
        if !kind.is_activity() {
            tracing::info!(
                "session lock: sleep comes after the lock grace unless the user returns"
            );
            self.lock().tracker.lock(at);
            return;
        }
        let event = {
            let mut state = self.lock();
            state.last_activity = Some((kind, at));
            let event = if kind == ActivityKind::Unlocked {
                state.tracker.unlock(at)
            } else {
                state.tracker.activity(at)
            };
            if kind.is_input() {
                state.last_input = state.last_input.max(at);
                state.follow_inhibitors(at);
            }
            event
        };
        if let Some(event) = event {
            tracing::info!("activity ({})", kind.name());
            self.react(event, Trigger::Idle);
        } else {
            self.hurry_wake("activity");
        }
    }

    /// The idle inhibitors other programs hold changed: presence, with a
    /// limit (see [`crate::core::policy::inhibitors`]).
    pub fn inhibitors_changed(&self, held: Vec<Inhibitor>) {
        let t = now();
        let (event, kept) = {
            let mut state = self.lock();
            state.inhibitors = held;
            let event = state.follow_inhibitors(t);
            (event, inhibitors::kept_awake_by(&state.inhibitor_rows(t)))
        };
        match kept {
            Some(kept) => tracing::info!("inhibitors: {kept}"),
            None => tracing::info!("inhibitors: none counts"),
        }
        if let Some(event) = event {
            self.react(event, Trigger::Idle);
        }
    }

    /// Follows the inhibitors the detectors report until they stop.
    pub async fn run_inhibitors(&self, mut held: watch::Receiver<Vec<Inhibitor>>) {
        while held.changed().await.is_ok() {
            let now = held.borrow_and_update().clone();
            self.inhibitors_changed(now);
        }
    }

    /// Feeds activity from the detectors until the channel closes.
    pub async fn run_activity(&self, mut activity: mpsc::UnboundedReceiver<Activity>) {
        while let Some(a) = activity.recv().await {
            self.activity(a);
        }
    }

    pub(super) fn react(&self, event: IdleEvent, trigger: Trigger) {
        let Some(app) = self.me.upgrade() else {
            return;
        };
        match event {
            IdleEvent::Warn { sleep_in } => {
                let t = now();
                let (entries, _) = self.split_shared(self.entries());
                let names: Vec<String> = {
                    let state = self.lock();
                    entries
                        .iter()
                        .filter(|e| state.holds.covering(t, &e.id).is_empty())
                        .map(|e| e.id.name())
                        .collect()
                };
                let (timeout, last) = {
                    let state = self.lock();
                    (state.tracker.config().timeout, state.last_activity)
                };
                tracing::info!(
                    "{} resource(s) will sleep in {}s",
                    names.len(),
                    sleep_in.as_secs()
                );
                self.emit(Event::Warning {
                    sleep_in_seconds: sleep_in.as_secs_f64(),
                    resources: names.len(),
                    names,
                    sleep_at: clock_at(t, t + sleep_in),
                    idle_seconds: last
                        .map_or(timeout.saturating_sub(sleep_in), |(_, at)| {
                            t.saturating_duration_since(at)
                        })
                        .as_secs_f64(),
                    last_input: last
                        .map(|(kind, at)| format!("{} {}", kind.name(), clock_at(t, at))),
                });
            }
            IdleEvent::WarningCancelled => {
                tracing::info!("activity during the warning: sleep cancelled");
                self.emit(Event::WarningCancelled);
            }
            IdleEvent::Sleep => {
                tokio::spawn(async move { app.run(Operation::Sleeping, trigger).await });
            }
            IdleEvent::Wake => {
                tokio::spawn(async move { app.run(Operation::Waking, trigger).await });
            }
        }
    }
}

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
            IdleEvent::Warn { timeout, sleep_in } => {
                let t = now();
                let (entries, _) = self.split_shared(self.entries());
                let (names, last, grouped) = {
                    let state = self.lock();
                    let grouped = !state.tracker.own_timeouts().is_empty();
                    let default = state.tracker.config().timeout;
                    let names: Vec<String> = (entries.iter())
                        .filter(|e| e.timeout_or(default) == timeout)
                        .filter(|e| state.holds.covering(t, &e.id).is_empty())
                        .map(|e| e.id.name())
                        .collect();
                    (names, state.last_activity, grouped)
                };
                if names.is_empty() && grouped {
                    // With timeouts of their own in use, a warning about
                    // nothing known (all held, or only tagged) is noise.
                    return;
                }
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
            IdleEvent::Sleep(timeouts) => {
                let only = Some(timeouts);
                tokio::spawn(async move { app.run_for(Operation::Sleeping, trigger, only).await });
            }
            IdleEvent::Wake => {
                tokio::spawn(async move { app.run(Operation::Waking, trigger).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{app_in, next_event, press};
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::activity::ActivityKind;
    use crate::core::model::resource::{Capacity, Desired, Kind, ResourceId, Running};
    use crate::core::protocol::commands::Command;
    use crate::server::Handler;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;

    /// 24 resources in 12 batches (two instances in each of six regions,
    /// two services in each of six clusters), at their capacity before, and
    /// their services.yaml.
    fn fleet(cloud: &FakeCloud) -> (Vec<(ResourceId, Capacity)>, String) {
        let regions = [
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "us-east-1",
            "us-east-2",
            "us-west-2",
        ];
        let mut all = Vec::new();
        let (mut ec2, mut ecs) = (
            String::from("ec2_instances:\n"),
            String::from("ecs_services:\n"),
        );
        for (n, region) in regions.iter().enumerate() {
            for k in 0..2 {
                let id = format!("i-{:017x}", n * 2 + k);
                ec2 += &format!("  - instance_id: {id}\n    region: {region}\n");
                let ec2_id = ResourceId::new(Kind::Ec2, [id], *region);
                all.push((ec2_id, Capacity::of(Kind::Ec2, Running(true))));
                let (cluster, service) = (format!("c{n}"), format!("s{k}"));
                ecs += &format!(
                    "  - cluster_name: {cluster}\n    service_name: {service}\n    region: us-east-1\n"
                );
                let ecs_id = ResourceId::new(Kind::Ecs, [cluster, service], "us-east-1");
                all.push((ecs_id, Capacity::of(Kind::Ecs, Desired(1 + (n + k) as i32))));
            }
        }
        for (id, c) in &all {
            cloud.add(id, *c);
        }
        (all, ec2 + &ecs)
    }

    /// Polls every millisecond until every resource is at its capacity
    /// before; when that was.
    async fn all_up(cloud: &FakeCloud, all: &[(ResourceId, Capacity)]) -> Instant {
        while !all.iter().all(|(id, c)| cloud.get(id).capacity == *c) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    }

    /// The resources of `all` that were ever stopped.
    fn stopped(cloud: &FakeCloud, all: &[(ResourceId, Capacity)]) -> Vec<ResourceId> {
        let set = cloud.set.lock().unwrap();
        let down = |(id, c): &&(ResourceId, Capacity)| {
            set.iter().any(|(s, to)| s == id && *to == c.asleep())
        };
        all.iter().filter(down).map(|(id, _)| id.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn activity_mid_sleep_wakes_what_was_stopped_at_once_and_stops_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let (all, yaml) = fleet(&cloud);
        *cloud.latency.lock().unwrap() = Duration::from_millis(100);
        let settings =
            r#"{"activity_monitor":{"inactivity_timeout_minutes":10,"warning_minutes":1}}"#;
        let (app, mut rx) = app_in(dir.path(), cloud.clone(), settings, &yaml);
        let stopped = |cloud: &FakeCloud| stopped(cloud, &all);

        // The sleep (four batches at a time: tags, stop, read back, 100 ms
        // each) runs; the user comes back while the second four stop.
        let sleeping = tokio::spawn({
            let app = app.clone();
            async move { app.handle(Command::SleepNow).await }
        });
        while stopped(&cloud).len() < 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pressed = Instant::now();
        press(&app, ActivityKind::Keyboard);
        let returned = all_up(&cloud, &all).await - pressed;
        let slept = sleeping.await.unwrap().unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(next_event(&mut rx).await, "awake");

        let ever_stopped = stopped(&cloud);
        assert_eq!(
            ever_stopped.len(),
            16,
            "two waves of four batches: {ever_stopped:?}"
        );
        let set = cloud.set.lock().unwrap().clone();
        let calls = cloud.calls.lock().unwrap().clone();
        for (id, before) in &all {
            let sets: Vec<Capacity> = set
                .iter()
                .filter(|(s, _)| s == id)
                .map(|(_, c)| *c)
                .collect();
            if ever_stopped.contains(id) {
                assert_eq!(
                    sets,
                    [before.asleep(), *before],
                    "{id}: stopped, then woken"
                );
            } else {
                assert!(
                    calls.iter().all(|(_, c)| c != id),
                    "{id}: never touched: {calls:?}"
                );
            }
            let now = cloud.get(id);
            assert_eq!((now.capacity, now.sleep_tag), (*before, None), "{id}");
        }
        let report = serde_json::to_value(&slept).unwrap();
        let rows = report.as_array().unwrap();
        assert!(rows.iter().all(|r| r["action"] == "cancelled"), "{report}");
        assert_eq!(
            rows.iter()
                .filter(|r| r["error"] == "stopped, then woken: you came back")
                .count(),
            16
        );
        app.quiesce().await;
        assert!(app.manager.records().unwrap().is_empty());
        let status = app.status();
        assert!(status.asleep.is_empty() && status.operation.is_none());

        // The same wake from fully asleep.
        app.handle(Command::SleepNow).await.unwrap();
        assert!(all
            .iter()
            .all(|(id, c)| cloud.get(id).capacity == c.asleep()));
        let pressed = Instant::now();
        press(&app, ActivityKind::Keyboard);
        let plain = all_up(&cloud, &all).await - pressed;
        eprintln!("all up {returned:?} after a mid-sleep return, {plain:?} after a plain wake");
        assert!(returned <= plain, "{returned:?} > {plain:?}");
    }
}

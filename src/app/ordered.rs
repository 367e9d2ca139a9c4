//! A wake or sleep of everything, by each resource's policy (see
//! [`crate::core::policy::order`]): a wake leaves asleep what its `wake:`
//! keeps for a request by hand, and starts each resource once what it
//! starts `after:` is ready; a sleep stops them in reverse, and leaves up
//! what a resource left running starts after.

use super::{held_up, App, State};
use crate::cloud::CloudControl;
use crate::core::config::registry::{Entry, Registry};
use crate::core::model::history::Trigger;
use crate::core::model::outcome::{Action, Outcome};
use crate::core::model::resource::ResourceId;
use crate::core::policy::order::{self, Asked};
use crate::core::policy::readiness::{laggard_after, ReadyState};
use crate::store::records::RecordsError;
use std::collections::BTreeSet;

/// Each of `entries` with the resource it starts after (resolved among
/// `registered`).
fn items(registered: &[Entry], entries: &[Entry]) -> Vec<(ResourceId, Option<ResourceId>)> {
    let order = Registry::order(registered);
    (entries.iter())
        .map(|e| {
            let after = order.iter().find(|(id, _)| *id == e.id);
            (e.id.clone(), after.and_then(|(_, a)| a.clone()))
        })
        .collect()
}

/// The stages of `items`, or all at once should they not be ordered (the
/// registry refuses cycles, so they always are).
fn stages_of(items: &[(ResourceId, Option<ResourceId>)]) -> Vec<Vec<ResourceId>> {
    order::stages(items).unwrap_or_else(|e| {
        tracing::warn!("{e}: started all at once");
        vec![items.iter().map(|(id, _)| id.clone()).collect()]
    })
}

/// Whether the last wake's follower has seen each of `ids` ready.
fn all_ready(state: &State, ids: &[ResourceId]) -> bool {
    let Some(follow) = &state.readiness else {
        return false;
    };
    let rows = follow.rows();
    ids.iter()
        .all(|id| (rows.iter()).any(|r| &r.resource == id && r.state == ReadyState::Ready))
}

/// Whether a sleep's outcome left the resource down.
fn down(o: &Outcome) -> bool {
    matches!(
        o.action,
        Action::Stopped | Action::WouldStop | Action::AlreadyAsleep | Action::LeftDown
    )
}

impl<C: CloudControl> App<C> {
    /// Wakes this member's own `entries` (and the recorded resources no
    /// longer registered) that a wake by `trigger` wakes, stage by stage;
    /// the others' records stay as they are, so a later wake by hand
    /// restores them exactly. `shared`: the team's, which the team wakes.
    pub(super) async fn wake_ordered(
        &self,
        entries: Vec<Entry>,
        shared: &[Entry],
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let asked = Asked::of(trigger);
        let registered = self.registry().entries;
        let (entries, kept): (Vec<Entry>, Vec<Entry>) =
            entries.into_iter().partition(|e| e.wake.wakes(asked));
        if !kept.is_empty() {
            let names: Vec<String> = kept.iter().map(|e| e.id.name()).collect();
            tracing::info!("left asleep by their wake policy: {}", names.join(", "));
        }
        let items = items(&registered, &entries);
        let mut stages = stages_of(&items);
        if stages.is_empty() {
            // Nothing registered to wake: the records alone.
            stages.push(Vec::new());
        }
        let not_now: BTreeSet<&ResourceId> = (shared.iter().chain(&kept).map(|e| &e.id))
            .chain(stages.iter().skip(1).flatten())
            .collect();
        let mut outcomes = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            if i > 0 {
                let started: Vec<ResourceId> = (outcomes.iter())
                    .filter(|o: &&Outcome| o.action == Action::Restored)
                    .map(|o| o.resource.clone())
                    .collect();
                self.until_ready(&order::waits_for(stage, &items, &started))
                    .await;
            }
            let these: Vec<Entry> = (entries.iter())
                .filter(|e| stage.contains(&e.id))
                .cloned()
                .collect();
            let first = i == 0;
            let recorded = |id: &ResourceId| match first {
                true => !not_now.contains(id),
                false => stage.contains(id),
            };
            let woken = (self.manager)
                .wake_personal(&these, recorded, trigger)
                .await?;
            self.follow_wake(&woken, trigger);
            outcomes.extend(woken);
        }
        Ok(outcomes)
    }

    /// Waits until the readiness follower has seen each of `ids` ready; at
    /// most the longest of their kinds' times to ready (then the next stage
    /// starts anyway: never left down for want of a look).
    async fn until_ready(&self, ids: &[ResourceId]) {
        let Some(limit) = ids.iter().map(laggard_after).max() else {
            return;
        };
        let names: Vec<String> = ids.iter().map(ResourceId::name).collect();
        tracing::info!("waiting for {} to be ready", names.join(", "));
        let ready = self.state.changed(&false, |s| all_ready(s, ids));
        if tokio::time::timeout(limit, ready).await.is_err() {
            tracing::warn!(
                "{} not ready after {} s: starting what follows anyway",
                names.join(", "),
                limit.as_secs()
            );
        }
    }

    /// Sleeps `entries` stage by stage in reverse start order (see
    /// [`Self::sleep_unheld`] for each stage); what a resource left up
    /// starts after is left up too, reported busy with the reason.
    pub(super) async fn sleep_ordered(
        &self,
        entries: Vec<Entry>,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let items = items(&self.registry().entries, &entries);
        let stages = stages_of(&items);
        if stages.len() <= 1 {
            return self.sleep_unheld(entries, trigger).await;
        }
        let mut outcomes: Vec<Outcome> = Vec::new();
        for (i, stage) in stages.iter().rev().enumerate() {
            if i > 0 && !self.lock().tracker.anything_asleep() {
                // The user is back (the wake cut the last stage short): the
                // stages left stay up.
                let left = (entries.iter())
                    .filter(|e| stages.iter().rev().skip(i).flatten().any(|id| *id == e.id));
                outcomes.extend(left.map(|e| Outcome {
                    action: Action::Cancelled,
                    ..held_up(&e.id)
                }));
                break;
            }
            let up: Vec<ResourceId> = (outcomes.iter())
                .filter(|o| !down(o))
                .map(|o| o.resource.clone())
                .collect();
            let needed = order::needed_by(stage, &items, &up);
            let these: Vec<Entry> = (entries.iter())
                .filter(|e| stage.contains(&e.id) && !needed.iter().any(|(n, _)| *n == e.id))
                .cloned()
                .collect();
            outcomes.extend(self.sleep_unheld(these, trigger).await?);
            outcomes.extend(needed.into_iter().map(|(id, user)| Outcome {
                action: Action::Busy,
                error: Some(format!("needed by {}, which stays up", user.name())),
                ..held_up(&id)
            }));
        }
        Ok(outcomes)
    }

    /// Whether the user's return wakes `id` by its wake policy (for the
    /// pre-wake, which must not start what the return would not).
    pub(super) fn woken_on_return(&self, id: &ResourceId) -> bool {
        self.entry_of(id)
            .is_none_or(|e| e.wake.wakes(Asked::of(Trigger::Idle)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{app, next_event, press, svc};
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::activity::ActivityKind;
    use crate::core::model::resource::{Capacity, Desired, Kind};
    use crate::core::protocol::commands::Command;
    use crate::server::Handler;
    use std::sync::Arc;
    use std::time::Duration;

    fn service(name: &str) -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", name], "us-east-1")
    }

    /// An app whose services.yaml is `yaml` (ECS services of cluster `c`,
    /// each at 2), with its timer running, all put to sleep.
    async fn asleep(
        yaml: &str,
        names: &[&str],
    ) -> (
        tempfile::TempDir,
        Arc<FakeCloud>,
        Arc<super::super::App<FakeCloud>>,
        tokio::sync::mpsc::UnboundedReceiver<crate::core::protocol::status::Event>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        for n in names {
            cloud.add(&service(n), Capacity::of(Kind::Ecs, Desired(2)));
        }
        let (app, mut rx) = app(dir.path(), cloud.clone());
        std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
        app.config_changed(&dir.path().join("services.yaml"));
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");
        for n in names {
            assert_eq!(
                cloud.get(&service(n)).capacity,
                Capacity::of(Kind::Ecs, Desired(0))
            );
        }
        (dir, cloud, app, rx)
    }

    fn entry(name: &str, extra: &str) -> String {
        format!("  - cluster_name: c\n    service_name: {name}\n    region: us-east-1\n{extra}")
    }

    #[tokio::test(start_paused = true)]
    async fn the_return_leaves_manual_and_on_connect_asleep_and_each_wakes_as_its_policy_says() {
        let yaml = format!(
            "ecs_services:\n{}{}{}",
            entry("s", ""),
            entry("m", "    wake: manual\n"),
            entry("o", "    wake: on_connect\n")
        );
        let (_dir, cloud, app, mut rx) = asleep(&yaml, &["s", "m", "o"]).await;
        let (up, down) = (
            Capacity::of(Kind::Ecs, Desired(2)),
            Capacity::of(Kind::Ecs, Desired(0)),
        );
        press(&app, ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(cloud.get(&svc()).capacity, up);
        assert_eq!(cloud.get(&service("m")).capacity, down);
        assert_eq!(cloud.get(&service("o")).capacity, down);
        let status = app.status();
        let kept: Vec<(String, Option<&str>)> = (status.asleep.iter())
            .map(|r| (r.resource.name(), r.wake))
            .collect();
        assert_eq!(
            kept,
            [
                ("c/m".into(), Some("manual")),
                ("c/o".into(), Some("on_connect"))
            ]
        );
        assert!(
            status
                .tray
                .line
                .contains("; asleep until woken by hand: m, o"),
            "{}",
            status.tray.line
        );
        // WAKE_NOW: by hand, for everything: manual wakes, on_connect not.
        app.handle(Command::WakeNow).await.unwrap();
        while next_event(&mut rx).await != "awake" {}
        assert_eq!(cloud.get(&service("m")).capacity, up, "restored exactly");
        assert_eq!(cloud.get(&service("o")).capacity, down);
        // A hold naming it (what `cloudnap ssh-proxy` sends) wakes it.
        app.hold(None, "ssh-proxy".into(), Some("c/o".into()), Some(30.0))
            .unwrap();
        while next_event(&mut rx).await != "awake" {}
        assert_eq!(cloud.get(&service("o")).capacity, up);
        assert!(app.status().asleep.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn after_starts_once_what_it_follows_is_ready_and_a_sleep_stops_in_reverse() {
        let yaml = format!(
            "ecs_services:\n{}{}{}",
            entry("web", "    after: c/api\n"),
            entry("api", "    after: c/db\n"),
            entry("db", "")
        );
        let (_dir, cloud, app, mut rx) = asleep(&yaml, &["web", "api", "db"]).await;
        let stops: Vec<String> = (cloud.set.lock().unwrap().iter())
            .map(|(id, _)| id.short_name().to_string())
            .collect();
        assert_eq!(stops, ["web", "api", "db"], "stopped in reverse order");
        cloud.set.lock().unwrap().clear();
        tokio::spawn(app.clone().run_readiness(std::future::pending()));
        let t0 = tokio::time::Instant::now();
        app.handle(Command::WakeNow).await.unwrap();
        // Each started at the readiness follower's first look at the one
        // before it (2 s after its start).
        assert_eq!(t0.elapsed(), Duration::from_secs(4));
        let starts: Vec<String> = (cloud.set.lock().unwrap().iter())
            .map(|(id, _)| id.short_name().to_string())
            .collect();
        assert_eq!(starts, ["db", "api", "web"]);
        // Each stage's readiness is said as it comes; the wake once done.
        let events = [next_event(&mut rx).await, next_event(&mut rx).await];
        assert_eq!(events, ["ready", "ready"]);
        assert_eq!(next_event(&mut rx).await, "awake");
    }

    #[tokio::test(start_paused = true)]
    async fn with_nothing_to_say_it_is_ready_the_next_starts_after_its_kinds_time() {
        let yaml = format!(
            "ecs_services:\n{}{}",
            entry("s", "    after: c/db\n"),
            entry("db", "")
        );
        let (_dir, cloud, app, _rx) = asleep(&yaml, &["s", "db"]).await;
        // No readiness follower: fail safe, it is started anyway.
        let t0 = tokio::time::Instant::now();
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(t0.elapsed(), laggard_after(&svc()));
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_leaves_up_what_a_resource_left_running_starts_after() {
        let yaml = format!(
            "ecs_services:\n{}{}",
            entry("s", "    after: c/db\n"),
            entry("db", "")
        );
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let up = Capacity::of(Kind::Ecs, Desired(2));
        cloud.add(&svc(), up);
        cloud.add(&service("db"), up);
        let cpu = ("CPUUtilization".to_string(), "s".to_string());
        cloud.metrics.lock().unwrap().insert(cpu, 80.0);
        let (app, _rx) = app(dir.path(), cloud.clone());
        std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
        app.config_changed(&dir.path().join("services.yaml"));
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(cloud.get(&svc()).capacity, up, "busy");
        assert_eq!(cloud.get(&service("db")).capacity, up, "s needs it");
        let busy = app.status().busy;
        let reasons: Vec<(String, &str)> = (busy.iter())
            .map(|b| (b.resource.name(), b.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("c/s".into(), "busy: CPU 80 % over 10 min"),
                ("c/db".into(), "needed by c/s, which stays up")
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_return_during_a_staged_sleep_starts_no_later_stage() {
        // Stopped in two stages: s, then db and t (t follows nothing).
        let yaml = format!(
            "ecs_services:\n{}{}{}",
            entry("s", "    after: c/db\n"),
            entry("db", ""),
            entry("t", "")
        );
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let up = Capacity::of(Kind::Ecs, Desired(2));
        for n in ["s", "db", "t"] {
            cloud.add(&service(n), up);
        }
        *cloud.latency.lock().unwrap() = Duration::from_millis(100);
        let (app, _rx) = app(dir.path(), cloud.clone());
        std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
        app.config_changed(&dir.path().join("services.yaml"));
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        let sleeping = tokio::spawn({
            let app = app.clone();
            async move { app.handle(Command::SleepNow).await }
        });
        // The first stage (s) is being stopped: the user is back.
        while cloud.set.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        press(&app, ActivityKind::Keyboard);
        let reply = sleeping.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        for n in ["s", "db", "t"] {
            assert_eq!(cloud.get(&service(n)).capacity, up, "{n}: {reply:?}");
        }
        let stopped: Vec<String> = (cloud.set.lock().unwrap().iter())
            .filter(|(_, to)| !to.is_up())
            .map(|(id, _)| id.short_name().to_string())
            .collect();
        assert_eq!(stopped, ["s"], "the second stage never stopped");
    }
}

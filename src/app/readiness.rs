//! Following a wake until every woken resource is usable: the thin loop
//! around [`crate::core::policy::readiness::Follow`] (when to look, what to
//! say), one `CloudControl::ready_many` per look and profile (each kind's
//! adapter batches as it does for describes).

use super::{now, App};
use crate::cloud::CloudControl;
use crate::core::model::history::Trigger;
use crate::core::model::outcome::{Action, Outcome};
use crate::core::model::resource::ResourceId;
use crate::core::policy::readiness::{Follow, Notice};
use crate::core::protocol::status::Event;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

impl<C: CloudControl> App<C> {
    /// Follows what `outcomes` (a wake's report) restored until it is
    /// usable; the readiness loop (woken by the change) looks when the
    /// backoff says.
    pub(super) fn follow_wake(&self, outcomes: &[Outcome], trigger: Trigger) {
        let woken: Vec<ResourceId> = (outcomes.iter())
            .filter(|o| o.action == Action::Restored)
            .map(|o| o.resource.clone())
            .collect();
        self.follow(woken, trigger);
    }

    /// Follows `woken` (from now) until each is usable.
    pub(super) fn follow(&self, woken: Vec<ResourceId>, trigger: Trigger) {
        if woken.is_empty() {
            return;
        }
        {
            let mut state = self.lock();
            let current = state.readiness.take();
            state.readiness = Some(Follow::after_wake(current, woken, trigger, now()));
        }
    }

    /// Looks at the last wake's resources until each is usable (at the
    /// backoff of [`Follow::next_poll`]), and says when all are, or which
    /// one is late (once). Until `shutdown` resolves.
    pub async fn run_readiness(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let t = now();
            let followed = self.lock().readiness.clone();
            let (poll, notice) = match &followed {
                Some(f) => (f.next_poll(t), f.next_notice()),
                None => (None, None),
            };
            let due = [poll, notice].into_iter().flatten().min();
            tokio::select! {
                _ = &mut shutdown => return,
                // A new wake to follow.
                _ = self.state.changed(&followed, |s| s.readiness.clone()) => continue,
                _ = super::until(due) => {}
            }
            if poll.is_some_and(|p| p <= now()) {
                self.look().await;
            } else {
                let notices = (self.lock().readiness.as_mut()).map(|f| f.notices(now()));
                self.announce(notices.unwrap_or_default());
            }
        }
    }

    /// One look at what is still starting: one `ready_many` per profile.
    async fn look(&self) {
        let starting = match &self.lock().readiness {
            Some(f) => f.starting(),
            None => return,
        };
        let mut by_profile: BTreeMap<Option<String>, Vec<(ResourceId, Option<u16>)>> =
            BTreeMap::new();
        for id in starting {
            let port = self.entry_of(&id).and_then(|e| e.ready_port);
            by_profile
                .entry(self.profile_of(&id))
                .or_default()
                .push((id, port));
        }
        let mut ready = Vec::new();
        for (profile, items) in &by_profile {
            let probes = self.cloud().ready_many(items, profile.as_deref()).await;
            for ((id, _), probe) in items.iter().zip(probes) {
                match probe {
                    Ok(p) => {
                        tracing::debug!("{id}: {}", p.detail);
                        ready.push((id.clone(), p.ready));
                    }
                    Err(e) => tracing::info!("{id}: readiness not known: {e}"),
                }
            }
        }
        let t = now();
        let (notices, lines) = match self.lock().readiness.as_mut() {
            Some(f) => (f.looked(t, &ready), f.ready_at(t)),
            None => return,
        };
        for (id, _, after) in &lines {
            tracing::info!("{id}: ready {:.0} s after its wake", after.as_secs_f64());
        }
        self.manager.log_ready(&lines);
        self.announce(notices);
    }

    /// The notices as events (notifications, the events port).
    fn announce(&self, notices: Vec<Notice>) {
        for n in notices {
            self.emit(match n {
                Notice::AllReady { resources, after } => Event::Ready {
                    resources,
                    after_seconds: after.as_secs_f64(),
                },
                Notice::StillStarting { resource, after } => Event::StillStarting {
                    resource: resource.short_name().to_string(),
                    after_seconds: after.as_secs_f64(),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{app, next_event, svc};
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::resource::{Capacity, Desired, Kind};
    use crate::core::protocol::commands::Command;
    use crate::server::Handler;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_wake_is_followed_the_laggard_named_once_and_all_ready_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(3)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_readiness(std::future::pending()));
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");
        assert!(app.status().readiness.is_empty());

        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "awake");
        let woke = tokio::time::Instant::now();
        // AWS cannot be asked: the service stays `starting`, looked at
        // every 15 s at most, and is named once after ECS's 10 minutes.
        *cloud.offline.lock().unwrap() = true;
        let row = &app.status().readiness[0];
        assert_eq!(
            (row.resource.clone(), row.ready_after_seconds),
            (svc(), None)
        );
        assert!(app.status().tray.line.ends_with("waking: 0 of 1 ready"));
        assert_eq!(next_event(&mut rx).await, "still_starting");
        assert_eq!(woke.elapsed(), Duration::from_secs(600));
        *cloud.offline.lock().unwrap() = false;
        assert_eq!(next_event(&mut rx).await, "ready");
        let took = woke.elapsed();
        assert!(took > Duration::from_secs(600), "{took:?}");
        assert!(took <= Duration::from_secs(615), "{took:?}");
        let row = &app.status().readiness[0];
        assert_eq!(row.ready_after_seconds, Some(took.as_secs_f64()));
        // Nothing more: no look, no notice.
        let quiet = tokio::time::timeout(Duration::from_secs(3600), rx.recv()).await;
        assert!(quiet.is_err(), "{quiet:?}");
        let report = app.manager.savings(0.0, 4e9).unwrap();
        assert_eq!(report.waits.unwrap().resources, 1);
    }
}

//! The AWS-side deadline in the orchestrator: the schedules of
//! [`crate::core::policy::deadline`] armed, moved and removed as the idle state
//! changes, and brought forward while the machine suspends or shuts down
//! (see [`crate::detect::power`]).

use super::state::State;
use super::{clock_at, now, App};
use crate::cloud::{CloudControl, ErrorKind};
use crate::core::config::registry::Entry;
use crate::core::config::settings::{AwsSettings, Settings};
use crate::core::model::resource::ResourceId;
use crate::core::policy::deadline::{self, any_needs_move, move_every};
use crate::core::protocol::status::{Event, Operation};
use crate::manager::now_seconds;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the deadline follows besides the time (see [`deadline_key`]).
type DeadlineKey = (
    (Option<Operation>, u64),
    Arc<Settings>,
    Vec<bool>,
    Option<u64>,
);

/// What the deadline follows besides the time: a sleep or wake under way
/// or ended, the settings, which timeout groups are asleep (or blind), and
/// the cap a suspend puts on it (lifted by the resume).
/// How often the deadline is looked at while it is off (no role, turned
/// off, or a dry run): a change of the settings or the state brings a
/// look at once anyway.
const OFF_POLL: Duration = Duration::from_secs(3600);

fn deadline_key(s: &State) -> DeadlineKey {
    let away: Vec<bool> = (s.tracker.groups(now()).iter())
        .map(|g| g.sleep_in.is_none())
        .collect();
    let operation = (s.operation, s.finished);
    (operation, s.settings.clone(), away, s.deadline.cap)
}

impl<C: CloudControl> App<C> {
    /// Keeps the AWS-side deadline as the idle state wants it (see
    /// [`Self::keep_deadline`]) until `shutdown` resolves. The schedules
    /// stay armed when cloudnap stops: that is what they are for.
    pub async fn run_deadline(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            // What the deadline is kept for, seen before keeping it: a
            // change meanwhile is looked at again at once.
            let seen = deadline_key(&self.lock());
            let pause = self.keep_deadline().await;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.state.changed(&seen, deadline_key) => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Arms, moves or removes the AWS-side deadline: every registered
    /// resource that is up, not held and of a timeout group not asleep has
    /// one, at the end of its group's timeout plus
    /// `aws.deadline_margin_minutes`, moved when it lags by its group's
    /// [`move_every`]; its group asleep, blind, `aws.deadline` off or dry
    /// run: none.
    /// The first time, also deletes this machine's schedules that are not
    /// wanted (a crashed run's, a resource no longer registered or up).
    /// Returns when to look again.
    pub(super) async fn keep_deadline(&self) -> Duration {
        let _turn = self.deadline_turn.lock().await;
        let settings = self.settings();
        let aws = &settings.aws;
        let t = now();
        let (lefts, default) = {
            let state = self.lock();
            if state.operation.is_some() {
                return Duration::from_secs(1);
            }
            // Each timeout group still to sleep: when, at the earliest.
            let lefts: BTreeMap<Duration, Duration> = (state.tracker.groups(t).into_iter())
                .filter_map(|g| Some((g.timeout, g.sleep_in?)))
                .collect();
            (lefts, state.tracker.config().timeout)
        };
        let shortest = lefts.keys().next().copied().unwrap_or(default);
        let every = move_every(shortest, aws.deadline_margin);
        let poll = (every / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        self.say_if_off(aws);
        let role = aws.deadline_role_arn.as_deref();
        let wanted: Vec<Entry> = match role {
            Some(_) if aws.deadline && !self.manager.dry_run() => {
                let (entries, _) = self.split_shared(self.entries());
                let state = self.lock();
                (entries.into_iter())
                    .filter(|e| lefts.contains_key(&e.timeout_or(default)))
                    .filter(|e| state.holds.covering(t, &e.id).is_empty())
                    .collect()
            }
            _ => Vec::new(),
        };
        // Sorted, as the deadline keeps them.
        let mut ids: Vec<ResourceId> = wanted.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        let (armed, same, ats) = {
            let state = self.lock();
            let ats = deadline::by_timeout(now_seconds() as u64, &lefts, aws.deadline_margin);
            let ats: BTreeMap<Duration, u64> = (ats.into_iter())
                .map(|(g, at)| (g, state.deadline.cap.map_or(at, |cap| cap.min(at))))
                .collect();
            (
                state.deadline.groups.clone(),
                state.deadline.wanted == ids,
                ats,
            )
        };
        if !ids.is_empty() && (!same || any_needs_move(&armed, &ats, aws.deadline_margin)) {
            let at_of = |e: &Entry| {
                let group = e.timeout_or(default);
                (e.id.clone(), (group, ats[&group]))
            };
            let at: BTreeMap<ResourceId, (Duration, u64)> = wanted.iter().map(at_of).collect();
            if self
                .arm(&wanted, at, role.unwrap_or_default(), t)
                .await
                .is_none()
            {
                return Duration::from_secs(1);
            }
        } else if ids.is_empty() {
            self.disarm().await;
        }
        // Only where the deadline was set up: without a role, none can
        // have been armed.
        if role.is_some() && !std::mem::replace(&mut self.lock().deadline.cleaned, true) {
            self.clean_deadlines().await;
        }
        match role {
            // Nothing to keep until the settings change (a change of state
            // brings the next look).
            Some(_) if aws.deadline && !self.manager.dry_run() => poll,
            _ => OFF_POLL,
        }
    }

    /// Arms (or moves) the deadline of `wanted` (named `ids`) at `at`, run
    /// as `role`; drops the schedules of what is no longer wanted. `None`
    /// when a sleep or wake is under way (tried again in a second).
    async fn arm(
        &self,
        wanted: &[Entry],
        at: BTreeMap<ResourceId, (Duration, u64)>,
        role: &str,
        t: Instant,
    ) -> Option<()> {
        let member = self.member.clone();
        let schedule_of = |id: &ResourceId| deadline::schedule(&member, id, at[id].1);
        let results = self.manager.arm_deadline(wanted, schedule_of, role).await?;
        let mut armed = BTreeMap::new();
        let mut denied = None;
        for (id, profile, result) in results {
            match result {
                Ok(true) => {
                    let name = deadline::name(&member, &id);
                    armed.insert(id, (profile, name));
                }
                Ok(false) => {}
                Err(e) if e.kind == ErrorKind::AccessDenied => denied = Some(e.to_string()),
                Err(e) => tracing::warn!("{id}: its AWS-side deadline is not set: {e}"),
            }
        }
        // The groups of what is armed, and when.
        let groups: BTreeMap<Duration, u64> = (armed.keys())
            .filter_map(|id| at.get(id).copied())
            .collect();
        let first = groups.values().copied().min();
        if let Some(first) = first {
            tracing::info!(
                "AWS-side deadline for {} resource(s), the first at {}",
                armed.len(),
                clock_at(
                    t,
                    t + Duration::from_secs(first.saturating_sub(now_seconds() as u64))
                )
            );
        }
        let gone = {
            let mut state = self.lock();
            let previous = std::mem::take(&mut state.deadline.armed);
            state.deadline.at = first;
            state.deadline.groups = groups;
            state.deadline.wanted = at.into_keys().collect();
            let gone: Vec<(ResourceId, Option<String>, String)> = previous
                .into_iter()
                .filter(|(id, _)| !armed.contains_key(id))
                .map(|(id, (profile, name))| (id, profile, name))
                .collect();
            state.deadline.armed = armed;
            gone
        };
        self.delete_schedules(gone).await;
        if let Some(why) = denied {
            self.deadline_off(format!("no permission to set it: {why}"));
        } else {
            let mut state = self.lock();
            if !state.deadline.armed.is_empty() {
                if let Some(was) = state.deadline.off.take() {
                    tracing::info!("AWS-side deadline armed (it was off: {was})");
                }
            }
        }
        Some(())
    }

    /// Drops every schedule armed: nothing is wanted.
    async fn disarm(&self) {
        let gone: Vec<(ResourceId, Option<String>, String)> = {
            let mut state = self.lock();
            let d = &state.deadline;
            if d.at.is_none() && d.groups.is_empty() && d.wanted.is_empty() && d.armed.is_empty() {
                return;
            }
            state.deadline.at = None;
            state.deadline.groups.clear();
            state.deadline.wanted.clear();
            std::mem::take(&mut state.deadline.armed)
                .into_iter()
                .map(|(id, (profile, name))| (id, profile, name))
                .collect()
        };
        self.delete_schedules(gone).await;
    }

    /// Deletes the schedules `gone` (resource, profile, name).
    async fn delete_schedules(&self, gone: Vec<(ResourceId, Option<String>, String)>) {
        let mut by_region: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
        for (id, profile, name) in gone {
            (by_region
                .entry((id.region().to_string(), profile))
                .or_default())
            .push(name);
        }
        self.delete_in_regions(by_region).await;
    }

    /// Deletes schedules by region and profile, saying what failed.
    async fn delete_in_regions(&self, names: BTreeMap<(String, Option<String>), Vec<String>>) {
        let cloud = self.manager.cloud();
        let results =
            futures::future::join_all(names.iter().map(|((region, profile), n)| {
                cloud.delete_schedules(region, profile.as_deref(), n)
            }))
            .await;
        for ((region, _), results) in names.keys().zip(results) {
            for e in results.into_iter().filter_map(Result::err) {
                tracing::warn!("deleting an AWS-side deadline in {region}: {e}");
            }
        }
    }

    /// Deletes this machine's schedules, in every region of the registered
    /// resources and of `aws.regions`, that are for no resource armed now:
    /// left by a crashed run, or for a resource no longer registered or up.
    async fn clean_deadlines(&self) {
        let mut regions: BTreeMap<(String, Option<String>), ()> = BTreeMap::new();
        for e in self.entries() {
            regions.insert((e.id.region().to_string(), e.profile.clone()), ());
        }
        for r in &self.settings().aws.regions {
            regions.insert((r.clone(), None), ());
        }
        let prefix = deadline::prefix(&self.member);
        let cloud = self.manager.cloud();
        let found =
            futures::future::join_all(regions.keys().map(|(region, profile)| {
                cloud.list_schedules(region, profile.as_deref(), &prefix)
            }))
            .await;
        let armed: Vec<String> = (self.lock().deadline.armed.values())
            .map(|(_, name)| name.clone())
            .collect();
        let mut stale = BTreeMap::new();
        for (key, found) in regions.into_keys().zip(found) {
            match found {
                Ok(found) => {
                    let names: Vec<String> = deadline::stale(&self.member, &found, &armed)
                        .into_iter()
                        .map(String::from)
                        .collect();
                    if !names.is_empty() {
                        tracing::info!(
                            "{} stale AWS-side deadline(s) in {} deleted",
                            names.len(),
                            key.0
                        );
                        stale.insert(key, names);
                    }
                }
                Err(e) if e.kind == ErrorKind::AccessDenied => {
                    self.deadline_off(format!("no permission to list it: {e}"));
                }
                Err(e) => tracing::warn!("AWS-side deadlines in {}: {e}", key.0),
            }
        }
        self.delete_in_regions(stale).await;
    }

    /// Says once (log, notification; STATUS while it lasts) why the
    /// AWS-side deadline cannot be armed: cloudnap works on without it.
    /// Says the deadline is off when it has no role; clears that when it is
    /// turned off (read before written: a write wakes every loop that
    /// follows the state).
    fn say_if_off(&self, aws: &AwsSettings) {
        match (aws.deadline, &aws.deadline_role_arn) {
            (true, None) => self.deadline_off(
                "aws.deadline_role_arn is not set: `cloudnap aws-setup` makes the role and sets it"
                    .into(),
            ),
            (false, _) => {
                let mut state = self.lock();
                if state.deadline.off.is_some() {
                    state.deadline.off = None;
                }
            }
            (true, Some(_)) => {}
        }
    }

    fn deadline_off(&self, why: String) {
        let mut state = self.lock();
        if state.deadline.off.as_ref() == Some(&why) {
            return;
        }
        if state.deadline.off.is_none() {
            tracing::warn!(
                "no AWS-side deadline: {why}; if this machine sleeps or cloudnap stops, \
                 resources stay up until it is back"
            );
            self.emit(Event::DeadlineOff { why: why.clone() });
        }
        state.deadline.off = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::{app, app_with, next_event, press, schedules, svc, WITH_ROLE};
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::activity::ActivityKind;
    use crate::core::model::resource::{Capacity, Desired, Kind};
    use crate::core::protocol::commands::Command;
    use crate::detect::power::PowerEvent;
    use crate::server::Handler;
    use tokio::sync::mpsc;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_armed_at_start_dropped_by_sleep_and_set_again_by_wake() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let up = Capacity::of(Kind::Ecs, Desired(3));
        cloud.add(&svc(), up);
        let (app, mut rx) = app_with(dir.path(), cloud.clone(), WITH_ROLE);
        // A crashed run's schedule for a resource no longer registered, and
        // another machine's.
        let gone = ResourceId::new(Kind::Ec2, ["i-9"], "us-east-1");
        let stale = deadline::schedule(&app.member, &gone, 1);
        let theirs = deadline::schedule("other-host", &gone, 1);
        for s in [&stale, &theirs] {
            let key = ("us-east-1".to_string(), s.name.clone());
            cloud.schedules.lock().unwrap().insert(key, s.clone());
        }
        tokio::spawn(app.clone().run_deadline(std::future::pending()));
        tokio::time::sleep(Duration::from_secs(1)).await;

        let armed = schedules(&cloud);
        let mine = deadline::name(&app.member, &svc());
        let mut expected_names = vec![theirs.name.clone(), mine.clone()];
        expected_names.sort();
        assert_eq!(
            armed.keys().cloned().collect::<Vec<_>>(),
            expected_names,
            "the stale one deleted"
        );
        let at = armed[&mine].at;
        let expected = now_seconds() as u64 + 15 * 60;
        assert!(
            (expected - 3..=expected + 1).contains(&at),
            "{at} {expected}"
        );
        assert_eq!(armed[&mine].call.action, "ecs:updateService");
        assert_eq!(cloud.get(&svc()).sleep_tag, Some(up), "written ahead");
        assert!(app.status().asleep.is_empty(), "not taken for asleep");
        assert_eq!(app.status().deadline_off, None);

        // cloudnap's own sleep: no deadline; the wake sets it again.
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!schedules(&cloud).contains_key(&mine));
        press(&app, ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(cloud.get(&svc()).capacity, up);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(schedules(&cloud).contains_key(&mine));
        assert_eq!(cloud.get(&svc()).sleep_tag, Some(up));
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspend_brings_the_deadline_to_the_grace_until_the_machine_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(3)));
        let settings = WITH_ROLE.replacen('{', r#"{"power":{"suspend_grace_minutes":1},"#, 1);
        let (app, _rx) = app_with(dir.path(), cloud.clone(), &settings);
        tokio::spawn(app.clone().run_deadline(std::future::pending()));
        let (power, events) = mpsc::unbounded_channel();
        tokio::spawn({
            let app = app.clone();
            async move { app.run_power(events).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mine = deadline::name(&app.member, &svc());
        let at = || schedules(&cloud)[&mine].at;
        let normal = now_seconds() as u64 + 15 * 60;
        assert!(at() + 3 >= normal, "{} {normal}", at());

        // Going down: moved to the grace before cloudnap says it is ready.
        let (ready, answered) = std::sync::mpsc::sync_channel(1);
        power
            .send(PowerEvent::Leaving {
                shutdown: false,
                ready,
            })
            .unwrap();
        while answered.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let soon = now_seconds() as u64 + 60;
        assert!((soon - 2..=soon).contains(&at()), "{} {soon}", at());
        // Activity before the machine is down does not move it back.
        press(&app, ActivityKind::Keyboard);
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert!(at() <= soon, "moved back: {}", at());

        // Back: that is the user, and the deadline is normal again (it had
        // not come, so nothing is woken).
        power.send(PowerEvent::Resumed).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(at() + 3 >= now_seconds() as u64 + 15 * 60, "{}", at());
        assert_eq!(
            app.status().last_activity.map(|a| a.kind),
            Some(ActivityKind::Resumed)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_role_or_permission_the_deadline_is_off_and_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(3)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_deadline(std::future::pending()));
        assert_eq!(next_event(&mut rx).await, "deadline_off");
        let why = app.status().deadline_off.unwrap();
        assert!(why.contains("aws.deadline_role_arn is not set"), "{why}");
        // Off, it leaves the state alone: no loop that follows it (the
        // tray among them) is woken for nothing.
        let mut changes = app.changes();
        changes.mark_unchanged();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!changes.has_changed().unwrap(), "the state written");
        assert!(rx.try_recv().is_err(), "said once");
        assert!(schedules(&cloud).is_empty());
        assert_eq!(
            cloud.get(&svc()).sleep_tag,
            None,
            "no tag without a deadline"
        );

        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(3)));
        *cloud.deny_schedules.lock().unwrap() = true;
        let (app, mut rx) = app_with(dir.path(), cloud.clone(), WITH_ROLE);
        tokio::spawn(app.clone().run_deadline(std::future::pending()));
        assert_eq!(next_event(&mut rx).await, "deadline_off");
        let why = app.status().deadline_off.unwrap();
        assert!(why.contains("AccessDenied"), "{why}");
        assert!(
            matches!(
                app.state(),
                crate::core::policy::idle::IdleState::Active { .. }
            ),
            "works on"
        );
    }
}

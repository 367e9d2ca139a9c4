//! The orchestrator: owns the idle tracker, the service manager, the registry
//! and the live settings; turns activity, timer deadlines, commands (UDP and
//! tray), config edits and periodic refreshes into sleep and wake.

mod activity;
mod commands;
mod config;
mod deadline;
mod memory;
mod ordered;
mod power;
mod prewake;
mod readiness;
mod refresh;
mod retry;
mod sign_in;
mod state;
mod team;
mod timer;

use crate::cloud::{CloudControl, CloudError, TeamTable};
use crate::core::config::registry::{Entry, Registry};
use crate::core::config::settings::Settings;
use crate::core::model::activity::{Activity, ActivityKind};
use crate::core::model::history::Trigger;
use crate::core::model::outcome::{format_outcomes, Action, Outcome};
use crate::core::model::resource::{Capacity, Kind, ResourceId};
use crate::core::policy::decide::{scale_target, start_target};
use crate::core::policy::holds::{why_awake, Holds, Scope};
use crate::core::policy::idle::{IdleConfig, IdleEvent, IdleState, IdleTracker};
use crate::core::policy::retry::{tried_again, Cause, Pending, Retry};
use crate::core::protocol::commands::{self as protocol, Command};
use crate::core::protocol::reply::{CommandError, Listing, RegisteredRow, Reply};
use crate::core::protocol::status::{
    describe, AsleepRow, BusyRow, ConfigFile, DetectorRow, Event, Inputs, LastActivity, Operation,
    StateName, Status, TrayLine,
};
use crate::detect;
use crate::manager::Manager;
use crate::server::Handler;
use crate::store::config::load_settings_file;
use crate::store::records::RecordsError;
use crate::store::registry::{entry, EditError, RegistryFile};
use futures::future::try_join_all;
use state::{host_name, Guard, Shared, State};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The longest the timer waits between ticks; a much longer gap means the
/// machine was suspended.
const MAX_TICK: Duration = Duration::from_secs(30);

/// How often, while a sleep or wake waits to be tried again because the
/// network was down, cloudnap looks whether AWS answers a TCP connection
/// again (to try at once rather than at the end of the pause).
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The monotonic clock, through tokio so tests can pause it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `due`; forever when there is none.
async fn until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn idle_config(settings: &Settings) -> IdleConfig {
    IdleConfig {
        timeout: settings.activity.inactivity_timeout,
        warning: settings.activity.warning,
        max_tick: MAX_TICK,
        lock_grace: detect::lock::grace(&settings.detectors),
    }
}

/// What of a change from `current` to `new` settings takes effect only
/// when cloudnap restarts: settings keys, and `detectors (screen, ...)`
/// for the detectors whose sections changed (see
/// [`detect::list::needing_restart`]).
fn needs_restart(current: &Settings, new: &Settings) -> Vec<String> {
    let mut restart: Vec<String> = [
        ("udp_server", current.udp != new.udp),
        ("aws.dry_run", current.aws.dry_run != new.aws.dry_run),
        (
            "aws.max_concurrent_calls",
            current.aws.max_concurrent_calls != new.aws.max_concurrent_calls,
        ),
        ("desktop.tray", current.desktop.tray != new.desktop.tray),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(name, _)| name.to_string())
    .collect();
    let detectors = detect::list::needing_restart(&current.detectors, &new.detectors);
    if !detectors.is_empty() {
        let names: Vec<&str> = detectors.iter().map(|d| d.name).collect();
        restart.push(format!("detectors ({})", names.join(", ")));
    }
    restart
}

/// The local wall-clock time of `at` (seen at `now`): "14:00", or
/// "Tue 08:00" when not today.
fn clock_at(now: Instant, at: Instant) -> String {
    let wall = chrono::Local::now();
    let then = match at.checked_duration_since(now) {
        Some(ahead) => wall + chrono::Duration::from_std(ahead).unwrap_or_default(),
        None => wall - chrono::Duration::from_std(now - at).unwrap_or_default(),
    };
    if then.date_naive() == wall.date_naive() {
        then.format("%H:%M").to_string()
    } else {
        then.format("%a %H:%M").to_string()
    }
}

/// A failed AWS call about `subject` (a resource or a region).
fn cloud_error(subject: impl std::fmt::Display, e: CloudError) -> CommandError {
    CommandError::Cloud {
        subject: subject.to_string(),
        code: e.code,
        message: e.message,
    }
}

/// `list` in every region at once, concatenated in the order of `regions`.
async fn per_region<'a, T, Fut>(
    regions: &'a [String],
    list: impl Fn(&'a str) -> Fut,
) -> Result<Vec<T>, CommandError>
where
    Fut: Future<Output = Result<Vec<T>, CloudError>>,
{
    let list = &list;
    let lists = try_join_all(
        regions
            .iter()
            .map(|r| async move { list(r).await.map_err(|e| cloud_error(r, e)) }),
    )
    .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// The application state and its reactions.
pub struct App<C> {
    /// The state; each loop wakes when the part it follows changes.
    state: Shared,
    settings_file: PathBuf,
    manager: Manager<C>,
    registry_file: Arc<RegistryFile>,
    events: mpsc::UnboundedSender<Event>,
    /// This app, for spawning sleep and wake tasks from `&self`.
    me: std::sync::Weak<App<C>>,
    /// Taken while the deadline is being armed or moved: one at a time.
    deadline_turn: tokio::sync::Mutex<()>,
    /// This machine and user, in the deadline's schedule names.
    member: String,
    /// The team table, once team mode runs.
    team_table: std::sync::OnceLock<Arc<dyn TeamTable>>,
}

impl<C: CloudControl> App<C> {
    /// A new app; state changes are sent to the returned receiver.
    pub fn new(
        settings: Settings,
        settings_file: PathBuf,
        manager: Manager<C>,
        registry_file: RegistryFile,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let mut tracker = IdleTracker::new(idle_config(&settings), now());
        tracker.set_timeouts(Self::own_timeouts(&registry_file.current().0));
        match manager.records() {
            // Resources are still asleep from an earlier run (or a crash):
            // the first activity wakes them.
            Ok(records) if !records.is_empty() => {
                tracing::info!("{} resource(s) asleep since an earlier run", records.len());
                tracker.force_sleep(now());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}"),
        }
        let member = state::member(&settings_file);
        let app = Arc::new_cyclic(|me| App {
            me: me.clone(),
            state: Shared::new(State {
                settings: Arc::new(settings),
                config_errors: BTreeMap::new(),
                tracker,
                operation: None,
                finished: 0,
                last_activity: None,
                last_input: now(),
                inhibitors: Vec::new(),
                detectors: Vec::new(),
                holds: Holds::default(),
                last_sleep: Vec::new(),
                tagged: Vec::new(),
                retry: None,
                deadline: state::Deadline::default(),
                team: state::Team::default(),
                readiness: None,
                prewake: state::Prewake::default(),
            }),
            settings_file,
            manager,
            registry_file: Arc::new(registry_file),
            events,
            deadline_turn: tokio::sync::Mutex::new(()),
            member,
            team_table: std::sync::OnceLock::new(),
        });
        (app, rx)
    }

    /// The state (see [`Shared::lock`]).
    fn lock(&self) -> Guard<'_> {
        self.state.lock()
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Runs a sleep or a wake of the registered resources and reports it.
    async fn run(&self, op: Operation, trigger: Trigger) -> Result<Vec<Outcome>, CommandError> {
        self.run_for(op, trigger, None).await
    }

    /// [`Self::run`]; a sleep puts to sleep the resources whose timeout
    /// group the idle tracker has asleep (all, after `SLEEP_NOW`), and of
    /// those only the groups of `only`, if given (the ones just due).
    async fn run_for(
        &self,
        op: Operation,
        trigger: Trigger,
        only: Option<Vec<Duration>>,
    ) -> Result<Vec<Outcome>, CommandError> {
        if op == Operation::Waking {
            // The return never waits for a sleep: one in progress stops
            // where it is and puts back what it did.
            self.manager.cut_sleep_short();
        }
        self.lock().operation = Some(op);
        let result = match op {
            Operation::Sleeping => self.sleep_searching(only.as_deref(), trigger).await,
            Operation::Waking => {
                let (entries, shared) = self.split_shared(self.entries());
                self.wake_ordered(entries, &shared, trigger).await
            }
        };
        {
            let mut state = self.lock();
            if state.operation == Some(op) {
                // (A wake that cut this sleep short is still going.)
                state.operation = None;
            }
            state.finished += 1;
            match (&result, op) {
                // Each timeout's sleep adds to the report until the wake.
                (Ok(outcomes), Operation::Sleeping) => {
                    let new = |o: &Outcome| outcomes.iter().any(|n| n.resource == o.resource);
                    state.last_sleep.retain(|o| !new(o));
                    state.last_sleep.extend(outcomes.iter().cloned());
                }
                _ => state.last_sleep.clear(),
            }
        }
        self.tell(op, trigger, result)
    }

    /// Those of `entries` whose timeout group the idle tracker has asleep
    /// and, if `only` is given, is one of them: what a sleep may stop.
    /// Fail safe: a timeout the tracker does not know is not asleep.
    fn asleep_by_timeout(&self, entries: Vec<Entry>, only: Option<&[Duration]>) -> Vec<Entry> {
        let state = self.lock();
        let default = state.tracker.config().timeout;
        entries
            .into_iter()
            .filter(|e| {
                let t = e.timeout_or(default);
                state.tracker.sleeps(t) && only.is_none_or(|o| o.contains(&t))
            })
            .collect()
    }

    /// The resources' own timeouts in services.yaml, for the idle tracker.
    fn own_timeouts(registry: &Registry) -> std::collections::BTreeSet<Duration> {
        registry.entries.iter().filter_map(|e| e.timeout).collect()
    }

    /// Sleeps `entries`, but what a hold covers: that is left up and
    /// reported as held.
    async fn sleep_unheld(
        &self,
        entries: Vec<Entry>,
        trigger: Trigger,
    ) -> Result<Vec<Outcome>, RecordsError> {
        let (held, free): (Vec<Entry>, Vec<Entry>) = {
            let (t, state) = (now(), self.lock());
            entries
                .into_iter()
                .partition(|e| !state.holds.covering(t, &e.id).is_empty())
        };
        let busy = self.settings().busy.clone();
        let mut outcomes = self.manager.sleep(&free, &busy, trigger).await?;
        outcomes.extend(held.iter().map(|e| held_up(&e.id)));
        Ok(outcomes)
    }

    /// Reports how a sleep or wake went (log, events), arming a retry for
    /// what may pass.
    fn tell(
        &self,
        op: Operation,
        trigger: Trigger,
        result: Result<Vec<Outcome>, RecordsError>,
    ) -> Result<Vec<Outcome>, CommandError> {
        match result {
            Ok(outcomes) => {
                tracing::info!("{}:\n{}", op.done(), format_outcomes(&outcomes));
                let retrying = self.follow_up(op, trigger, &outcomes);
                // What is tried again is reported when it is given up.
                let failed: Vec<Outcome> = outcomes
                    .iter()
                    .filter(|o| o.action.is_failure() && (o.retrying.is_none() || !retrying))
                    .cloned()
                    .collect();
                if !failed.is_empty() {
                    self.emit(Event::Error {
                        operation: op,
                        failed,
                        error: None,
                    });
                }
                // A try that did nothing is not reported: the retry is.
                let done = (outcomes.iter())
                    .any(|o| matches!(o.action, Action::Stopped | Action::Restored));
                if !retrying || done {
                    self.emit(match op {
                        Operation::Sleeping => Event::Asleep(outcomes.clone()),
                        Operation::Waking => Event::Awake(outcomes.clone()),
                    });
                }
                Ok(outcomes)
            }
            Err(e) => {
                tracing::error!("{}: {e}", op.name());
                // The state file cannot be read: a sleep is not tried again,
                // a wake is, as long as the user is present.
                if !self.follow_up(op, trigger, &self.unread(op)) {
                    self.lock().retry = None;
                }
                self.emit(Event::Error {
                    operation: op,
                    failed: Vec::new(),
                    error: Some(e.to_string()),
                });
                Err(CommandError::State(e.to_string()))
            }
        }
    }

    /// The cloud the app drives.
    pub fn cloud(&self) -> &Arc<C> {
        self.manager.cloud()
    }

    /// Waits until no sleep or wake is in progress.
    pub async fn quiesce(&self) {
        self.manager.quiesce().await;
    }
}

/// `id` left up by a sleep because a hold covers it.
fn held_up(id: &ResourceId) -> Outcome {
    Outcome {
        resource: id.clone(),
        action: Action::Held,
        before: None,
        saved: None,
        error: None,
        retrying: None,
    }
}

/// The resources a sleep's report shows as busy, with the reason.
fn busy_rows(outcomes: &[Outcome]) -> Vec<BusyRow> {
    outcomes
        .iter()
        .filter(|o| o.action == Action::Busy)
        .map(|o| BusyRow {
            resource: o.resource.clone(),
            reason: o.error.clone().unwrap_or_default(),
        })
        .collect()
}

impl<C: CloudControl> Handler for App<C> {
    async fn handle(&self, command: Command) -> Result<Reply, CommandError> {
        self.handle_as(command, Trigger::Command).await
    }
}

impl<C: CloudControl> App<C> {
    /// Carries out one command; a sleep or wake it causes is logged as
    /// caused by `trigger` (a command, or the tray). The arms that call AWS
    /// are boxed: their futures are large, and every command's future is as
    /// large as its largest arm, so STATUS would otherwise copy kilobytes
    /// per datagram.
    pub async fn handle_as(
        &self,
        command: Command,
        trigger: Trigger,
    ) -> Result<Reply, CommandError> {
        match command {
            Command::Status => self.status_reply(),
            Command::Help => Ok(protocol::help()),
            Command::UserActivity => {
                let at = now();
                self.activity(Activity {
                    kind: ActivityKind::Command,
                    at,
                });
                self.status_reply()
            }
            Command::Pause { minutes } => self.pause(minutes),
            Command::Resume => self.resume(),
            Command::Hold {
                minutes,
                reason,
                only,
                lease_seconds,
            } => self.hold(minutes, reason, only, lease_seconds),
            Command::HoldRenew { id } => self.hold_changed(id, false),
            Command::HoldRelease { id } => self.hold_changed(id, true),
            Command::ListHolds => self.list_holds(),
            Command::Report { days } => self.report(days),
            Command::SleepNow => Box::pin(self.sleep_now(trigger)).await,
            Command::WakeNow => Box::pin(self.wake_now(trigger)).await,
            Command::List { kind, region } => {
                Box::pin(self.list(kind, region)).await.map(Reply::Listing)
            }
            Command::Start { id, count } => {
                Box::pin(self.by_hand(&id, |now, saved, entry_desired| {
                    start_target(now, saved, count, entry_desired)
                }))
                .await
            }
            Command::Stop { id } => Box::pin(self.by_hand(&id, |now, _, _| now.asleep())).await,
            Command::Scale { id, desired } => {
                Box::pin(self.by_hand(&id, |now, _, _| scale_target(now, desired))).await
            }
            Command::Register { id, description } => Box::pin(self.register(id, description)).await,
            Command::Unregister { id } => Box::pin(self.unregister(id)).await,
            Command::ListRegistered => Ok(self.registered()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::resource::Desired;
    use crate::store::records::RecordsFile;
    use serde_json::Value;

    /// A command's reply as the server would send it.
    async fn ask(app: &App<FakeCloud>, command: Command) -> Value {
        serde_json::to_value(app.handle(command).await.unwrap()).unwrap()
    }

    pub(super) fn press(app: &App<FakeCloud>, kind: ActivityKind) {
        app.activity(Activity { kind, at: now() });
    }

    pub(super) fn app(
        dir: &std::path::Path,
        cloud: Arc<FakeCloud>,
    ) -> (Arc<App<FakeCloud>>, mpsc::UnboundedReceiver<Event>) {
        app_with(
            dir,
            cloud,
            r#"{"activity_monitor":{"inactivity_timeout_minutes":10,"warning_minutes":1}}"#,
        )
    }

    pub(super) fn app_with(
        dir: &std::path::Path,
        cloud: Arc<FakeCloud>,
        settings: &str,
    ) -> (Arc<App<FakeCloud>>, mpsc::UnboundedReceiver<Event>) {
        let services =
            "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n";
        app_in(dir, cloud, settings, services)
    }

    /// An app with `settings` and `services` (services.yaml).
    pub(super) fn app_in(
        dir: &std::path::Path,
        cloud: Arc<FakeCloud>,
        settings: &str,
        services: &str,
    ) -> (Arc<App<FakeCloud>>, mpsc::UnboundedReceiver<Event>) {
        let (settings, _) = Settings::parse(settings).unwrap();
        std::fs::write(dir.join("services.yaml"), services).unwrap();
        let manager = Manager::new(cloud, RecordsFile::new(dir.join("state.json")), 4, false)
            .with_history(crate::store::history::HistoryFile::beside(
                &dir.join("state.json"),
            ));
        App::new(
            settings,
            dir.join("settings.json"),
            manager,
            RegistryFile::new(dir.join("services.yaml")),
        )
    }

    pub(super) fn svc() -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", "s"], "us-east-1")
    }

    pub(super) async fn next_event(rx: &mut mpsc::UnboundedReceiver<Event>) -> String {
        let event = serde_json::to_value(rx.recv().await.unwrap()).unwrap();
        event["event"].as_str().unwrap().to_string()
    }

    pub(super) const WITH_ROLE: &str = r#"{"activity_monitor":{"inactivity_timeout_minutes":10,"warning_minutes":1},
        "aws":{"deadline_role_arn":"arn:aws:iam::123456789012:role/d","deadline_margin_minutes":5}}"#;

    /// The deadline schedules in the fake cloud, by name.
    pub(super) fn schedules(
        cloud: &FakeCloud,
    ) -> BTreeMap<String, crate::core::policy::deadline::Schedule> {
        (cloud.schedules.lock().unwrap().iter())
            .map(|((_, name), s)| (name.clone(), s.clone()))
            .collect()
    }

    #[test]
    fn a_detector_section_change_needs_a_restart_of_that_detector_only() {
        let parse = |json: &str| Settings::parse(json).unwrap().0;
        let base = parse("{}");
        let restart = |json: &str| needs_restart(&base, &parse(json));
        assert_eq!(
            restart(r#"{"activity_monitor":{"screen":{"change_threshold":0.5}}}"#),
            vec!["detectors (screen)"]
        );
        assert_eq!(
            restart(r#"{"keyboard":{"enabled":false},"udp_server":{"port":1234}}"#),
            vec!["udp_server", "detectors (keyboard/mouse)"]
        );
        // Idle timing and the graces apply at once.
        assert!(restart(
            r#"{"activity_monitor":{"warning_minutes":1,"screen_lock":{"lock_grace_minutes":9}},
                "power":{"suspend_grace_minutes":3}}"#
        )
        .is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_warns_sleeps_and_first_activity_wakes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(3)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));

        let start = tokio::time::Instant::now();
        assert_eq!(next_event(&mut rx).await, "warning");
        assert_eq!(start.elapsed().as_secs(), 9 * 60);
        assert_eq!(
            app.state(),
            IdleState::Warning {
                sleep_in: Duration::from_secs(60)
            }
        );
        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(start.elapsed().as_secs(), 10 * 60);
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );

        // An hour later, one key press wakes it at once.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let pressed = tokio::time::Instant::now();
        press(&app, ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(pressed.elapsed(), Duration::ZERO);
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(3))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_cut_off_by_the_network_is_retried_without_new_input() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(3)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        tokio::spawn(app.clone().run_retry(std::future::pending()));
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");

        // The network is down at the key press.
        *cloud.offline.lock().unwrap() = true;
        let pressed = tokio::time::Instant::now();
        press(&app, ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "retrying");
        let status = app.status();
        let retry = status.retrying.clone().unwrap();
        assert_eq!(
            retry.text,
            "waking: retrying (network unreachable, attempt 1)"
        );
        assert_eq!(status.operation, Some(Operation::Waking));
        assert_eq!(status.asleep.len(), 1);
        assert_eq!(
            status.asleep[0].phase,
            crate::core::policy::decide::Phase::Waking
        );
        assert_eq!(
            status.asleep[0].retrying.as_deref(),
            Some(retry.text.as_str())
        );

        // Tried at 1, 3 and 7 s; back at 8 s, tried within the probe's second.
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(app.status().retrying.unwrap().attempts, 4);
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
        *cloud.offline.lock().unwrap() = false;
        let back = tokio::time::Instant::now();
        assert_eq!(next_event(&mut rx).await, "awake");
        assert!(back.elapsed() <= PROBE_EVERY, "{:?}", back.elapsed());
        assert!(pressed.elapsed() <= Duration::from_secs(9));
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(3))
        );
        let status = app.status();
        assert_eq!((status.retrying, status.operation), (None, None));
        assert!(status.asleep.is_empty());
        assert!(matches!(app.state(), IdleState::Active { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_wake_waits_out_its_pause_and_a_permanent_error_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_retry(std::future::pending()));
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");

        cloud.throttle.lock().unwrap().push(svc());
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "retrying");
        // Throttling: no probe, the pauses are waited out (1, then 2 s).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(app.status().retrying.unwrap().attempts, 2);
        cloud.throttle.lock().unwrap().clear();
        let back = tokio::time::Instant::now();
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(back.elapsed(), Duration::from_millis(500));
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2))
        );

        // AccessDenied on a sleep: an error at once, and nothing pending.
        cloud.deny.lock().unwrap().push(svc());
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "error");
        assert_eq!(app.status().retrying, None);
        let calls = cloud.calls.lock().unwrap().len();
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(cloud.calls.lock().unwrap().len(), calls, "not tried again");
    }

    /// An app with `settings` and its timer and retry loops running, its
    /// service (at `desired`) put to sleep.
    async fn asleep_at(
        desired: i32,
        settings: &str,
    ) -> (
        tempfile::TempDir,
        Arc<FakeCloud>,
        Arc<App<FakeCloud>>,
        mpsc::UnboundedReceiver<Event>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(desired)));
        let (app, mut rx) = app_with(dir.path(), cloud.clone(), settings);
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        tokio::spawn(app.clone().run_retry(std::future::pending()));
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");
        (dir, cloud, app, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_waiting_for_credentials_is_never_given_up_and_done_once_they_work() {
        let (_dir, cloud, app, mut rx) = asleep_at(
            3,
            r#"{"aws":{"profile":"work"},"activity_monitor":{"inactivity_timeout_minutes":600,"warning_minutes":0}}"#,
        )
        .await;

        *cloud.expired.lock().unwrap() = true;
        press(&app, ActivityKind::Keyboard);
        let event = serde_json::to_value(rx.recv().await.unwrap()).unwrap();
        assert_eq!(event["event"], "retrying", "{event}");
        let advice = "credentials expired for profile work: sign in to wake 1 resource";
        assert_eq!(event["detail"]["advice"], advice, "{event}");
        // Two hours present: still tried, at most 5 s apart, said once.
        for _ in 0..24 {
            tokio::time::sleep(Duration::from_secs(300)).await;
            press(&app, ActivityKind::Keyboard);
        }
        let status = app.status();
        let retry = status.retrying.clone().expect("still retrying");
        assert!(retry.attempts > 1000, "{retry:?}");
        assert!(retry.next_in_seconds <= 5.0, "{retry:?}");
        assert_eq!(retry.advice.as_deref(), Some(advice));
        assert_eq!(
            status.asleep[0].retrying.as_deref(),
            Some(
                format!(
                    "waking: retrying (credentials expired for profile work, attempt {})",
                    retry.attempts
                )
                .as_str()
            )
        );
        let view = crate::ui::view::tray_view(&status);
        assert_eq!(view.icon, crate::ui::view::IconState::Error);
        assert_eq!(
            view.line,
            "Credentials expired for profile work: sign in to wake 1 resource"
        );
        assert!(rx.try_recv().is_err(), "one notification");

        // Signed in again; no further input.
        *cloud.expired.lock().unwrap() = false;
        let back = tokio::time::Instant::now();
        assert_eq!(next_event(&mut rx).await, "awake");
        assert!(
            back.elapsed() <= Duration::from_secs(5),
            "{:?}",
            back.elapsed()
        );
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(3))
        );
        assert_eq!(app.status().retrying, None);
    }

    /// [`asleep_at`], then a wake denied for `waited`: its tries are 30 s
    /// apart by then; the permission is granted again (by nothing the app
    /// can see).
    async fn denied_for(
        waited: Duration,
    ) -> (
        tempfile::TempDir,
        Arc<FakeCloud>,
        Arc<App<FakeCloud>>,
        mpsc::UnboundedReceiver<Event>,
    ) {
        let (dir, cloud, app, mut rx) = asleep_at(
            2,
            r#"{"activity_monitor":{"inactivity_timeout_minutes":60,"warning_minutes":1}}"#,
        )
        .await;
        cloud.deny.lock().unwrap().push(svc());
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "retrying");
        tokio::time::sleep(waited).await;
        let status = app.status().retrying.unwrap();
        assert_eq!(
            status.cause,
            crate::core::policy::retry::Cause::AccessDenied
        );
        assert!(status.next_in_seconds > 10.0, "{status:?}");
        cloud.deny.lock().unwrap().clear();
        (dir, cloud, app, rx)
    }

    /// The wake is done within a second of `since`, exactly.
    async fn awake_within_a_second(
        rx: &mut mpsc::UnboundedReceiver<Event>,
        cloud: &FakeCloud,
        since: tokio::time::Instant,
    ) {
        assert_eq!(next_event(rx).await, "awake");
        let took = since.elapsed();
        assert!(took <= Duration::from_secs(1), "{took:?}");
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_aws_file_edited_tries_a_waiting_wake_at_once() {
        let (dir, cloud, app, mut rx) = denied_for(Duration::from_secs(125)).await;
        // New keys saved: tried again within the second, with no input.
        let saved = tokio::time::Instant::now();
        app.aws_files_changed(&dir.path().join("credentials"));
        awake_within_a_second(&mut rx, &cloud, saved).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_activity_tries_a_waiting_wake_at_once_and_a_stop_by_hand_ends_it() {
        let (_dir, cloud, app, mut rx) = denied_for(Duration::from_secs(605)).await;
        // The permission granted, then an activity: tried within a second.
        let pressed = tokio::time::Instant::now();
        press(&app, ActivityKind::Mouse);
        awake_within_a_second(&mut rx, &cloud, pressed).await;

        // Asleep again, the wake denied, then the user stops it by hand:
        // the wake no longer starts it.
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "asleep");
        cloud.deny.lock().unwrap().push(svc());
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(next_event(&mut rx).await, "retrying");
        cloud.deny.lock().unwrap().clear();
        app.handle(Command::Stop { id: svc() }).await.unwrap();
        assert_eq!(app.status().retrying, None);
        assert!(
            app.status().asleep.is_empty(),
            "no longer cloudnap's to wake"
        );
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
        assert_eq!(cloud.get(&svc()).sleep_tag, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_inhibitor_keeps_awake_until_max_minutes_after_the_last_input() {
        use crate::core::policy::inhibitors::{Inhibitor, Via};
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let (app, mut rx) = app_with(
            dir.path(),
            cloud.clone(),
            r#"{"activity_monitor":{"inactivity_timeout_minutes":10,"warning_minutes":1},
                "inhibitors":{"max_minutes":30}}"#,
        );
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        let start = tokio::time::Instant::now();
        app.inhibitors_changed(vec![Inhibitor {
            via: Via::GnomeSession,
            app: "Firefox".into(),
            reason: "video call".into(),
        }]);
        // Sound is not input: the limit still counts from the start.
        tokio::time::sleep(Duration::from_secs(20 * 60)).await;
        press(&app, ActivityKind::Audio);
        let status = app.status();
        assert_eq!(
            status.kept_awake_by.as_deref(),
            Some("kept awake by Firefox: \"video call\"")
        );
        assert!(status
            .tray
            .line
            .ends_with("kept awake by Firefox: \"video call\""));
        assert_eq!(next_event(&mut rx).await, "warning");
        assert_eq!(
            start.elapsed().as_secs(),
            39 * 60,
            "the limit, then the timeout"
        );
        assert_eq!(app.status().kept_awake_by, None);
        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(start.elapsed().as_secs(), 40 * 60);
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn activity_during_the_warning_cancels_the_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        assert_eq!(next_event(&mut rx).await, "warning");
        press(&app, ActivityKind::Mouse);
        assert_eq!(next_event(&mut rx).await, "warning_cancelled");
        tokio::time::sleep(Duration::from_secs(5 * 60)).await;
        assert!(matches!(app.state(), IdleState::Active { .. }));
        assert!(cloud.calls.lock().unwrap().is_empty(), "nothing stopped");
    }

    #[tokio::test]
    async fn every_sleep_and_wake_is_in_the_history_and_report_tells_it() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        cloud.facts.lock().unwrap().insert(
            svc(),
            crate::core::model::resource::Facts {
                launch_type: Some("FARGATE".into()),
                task_cpu_units: Some(1024),
                task_memory_mib: Some(2048),
                ..Default::default()
            },
        );
        let (app, _rx) = app(dir.path(), cloud.clone());
        app.handle(Command::SleepNow).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.handle_as(Command::WakeNow, Trigger::Tray)
            .await
            .unwrap();
        let history = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
        let lines: Vec<&str> = history.lines().collect();
        assert_eq!(lines.len(), 2, "{history}");
        assert!(
            lines[0].contains(r#""change":"sleep""#) && lines[0].contains(r#""trigger":"command""#)
        );
        assert!(lines[0].contains(r#""task_cpu_units":1024"#), "{history}");
        assert!(
            lines[1].contains(r#""change":"wake""#) && lines[1].contains(r#""trigger":"tray""#)
        );

        let report = ask(&app, Command::Report { days: 7 }).await;
        let row = &report["resources"][0];
        assert_eq!(row["id"], "c/s");
        assert!(row["asleep_seconds"].as_f64().unwrap() >= 0.05);
        assert!(row["saved_usd"].as_f64().unwrap() > 0.0);
        assert_eq!(row["sources"][0], "estimate");
        assert!(app.status().saved_this_week_usd.unwrap() > 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_while_asleep_wakes_on_the_first_activity() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(4)));
        let (first, _rx) = app(dir.path(), cloud.clone());
        first.handle(Command::SleepNow).await.unwrap();
        drop(first);

        let (app, mut rx) = app(dir.path(), cloud.clone());
        assert_eq!(app.state(), IdleState::Asleep);
        press(&app, ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(4))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_refresh_lets_go_of_a_resource_started_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(app.status().asleep.len(), 1);
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(5))); // started by hand
        tokio::spawn(app.clone().run_refresh(std::future::pending()));
        loop {
            if next_event(&mut rx).await == "refreshed" {
                break;
            }
        }
        assert!(app.status().asleep.is_empty());
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(5)),
            "left as the user set it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_settings_edit_changes_the_timeout_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (app, mut rx) = app(dir.path(), Arc::new(FakeCloud::default()));
        let file = dir.path().join("settings.json");
        std::fs::write(
            &file,
            r#"{"activity_monitor":{"inactivity_timeout_minutes":45}}"#,
        )
        .unwrap();
        app.config_changed(&file);
        assert_eq!(app.status().sleep_in_seconds, Some(45.0 * 60.0));
        std::fs::write(
            &file,
            r#"{"activity_monitor":{"inactivity_timeout_minutes":-1}}"#,
        )
        .unwrap();
        app.config_changed(&file);
        assert_eq!(next_event(&mut rx).await, "config_error");
        let status = app.status();
        assert!(status
            .config_error
            .unwrap()
            .contains("inactivity_timeout_minutes"));
        assert_eq!(
            status.sleep_in_seconds,
            Some(45.0 * 60.0),
            "last good settings kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_on_one_resource_is_left_up_and_status_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        let hold = |only: &str| Command::Hold {
            minutes: Some(60.0),
            reason: "deploy".into(),
            only: Some(only.into()),
            lease_seconds: None,
        };
        let err = app.handle(hold("c/nope")).await.unwrap_err();
        assert!(err.to_string().contains("no registered resource"), "{err}");
        let held = ask(&app, hold("c/s")).await;
        assert_eq!(held["hold"]["only"]["service_name"], "s");
        assert_eq!(app.status().state, StateName::Active, "the countdown runs");
        while next_event(&mut rx).await != "asleep" {}
        assert!(cloud.calls.lock().unwrap().is_empty(), "nothing stopped");
        let status = ask(&app, Command::Status).await;
        assert_eq!(status["state"], "asleep");
        let why = status["awake"][0]["why"][0].as_str().unwrap();
        assert!(why.starts_with("held by deploy until "), "{status}");
        // RESUME ends every hold: the next sleep stops it.
        ask(&app, Command::Resume).await;
        assert_eq!(
            ask(&app, Command::ListHolds).await["holds"],
            serde_json::json!([])
        );
        let report = ask(&app, Command::SleepNow).await;
        assert_eq!(report[0]["action"], "stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_on_one_asleep_resource_wakes_it_alone_until_its_lease_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let up = Capacity::of(Kind::Ecs, Desired(2));
        cloud.add(&svc(), up);
        let (app, mut rx) = app(dir.path(), cloud.clone());
        ask(&app, Command::SleepNow).await;
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
        let held = ask(
            &app,
            Command::Hold {
                minutes: None,
                reason: "ssh-proxy devbox".into(),
                only: Some("c/s".into()),
                lease_seconds: Some(5.0),
            },
        )
        .await;
        assert_eq!(held["hold"]["only"]["service_name"], "s");
        // Followed from the reply on: a client waiting for it to be ready
        // sees it starting.
        let status = app.status();
        assert_eq!(status.readiness.len(), 1);
        assert_eq!(status.readiness[0].resource, svc());
        while next_event(&mut rx).await != "awake" {}
        assert_eq!(cloud.get(&svc()).capacity, up);
        let status = ask(&app, Command::Status).await;
        assert_eq!(
            status["state"], "asleep",
            "the user is still away: {status}"
        );
        assert_eq!(status["asleep"], serde_json::json!([]));
        assert_eq!(
            status["awake"][0]["why"][0]
                .as_str()
                .unwrap()
                .split(' ')
                .next(),
            Some("held")
        );
        // Held: the check of what was left up leaves it.
        app.recheck_left_up().await;
        assert_eq!(cloud.get(&svc()).capacity, up);
        // Its lease runs out unrenewed (a killed client): it sleeps again.
        tokio::time::sleep(Duration::from_secs(6)).await;
        app.recheck_left_up().await;
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
        assert_eq!(
            ask(&app, Command::Status).await["asleep"][0]["resource"]["service_name"],
            "s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pause_keeps_awake_and_commands_report_status() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let (app, _rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        let status = ask(&app, Command::Pause { minutes: 60.0 }).await;
        assert_eq!(status["state"], "paused");
        assert_eq!(status["holds"][0]["reason"], "PAUSE");
        // A new PAUSE sets the time, as before holds existed.
        let status = ask(&app, Command::Pause { minutes: 70.0 }).await;
        assert_eq!(status["holds"].as_array().unwrap().len(), 1);
        assert_eq!(status["paused_for_seconds"], 4200.0);
        tokio::time::sleep(Duration::from_secs(59 * 60)).await;
        assert!(cloud.calls.lock().unwrap().is_empty());
        let status = ask(&app, Command::Resume).await;
        assert_eq!(status["state"], "active");
        assert_eq!(status["sleep_in_seconds"], 600.0);

        let report = ask(&app, Command::SleepNow).await;
        assert_eq!(report[0]["action"], "stopped");
        let status = ask(&app, Command::Status).await;
        assert_eq!(status["state"], "asleep");
        assert_eq!(status["asleep"][0]["saved"]["desired"], 2);
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_resource_sleeps_at_a_later_check_once_it_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let cpu = ("CPUUtilization".to_string(), "s".to_string());
        cloud.metrics.lock().unwrap().insert(cpu.clone(), 80.0);
        let (app, mut rx) = app(dir.path(), cloud.clone());
        let report = ask(&app, Command::SleepNow).await;
        assert_eq!(report[0]["action"], "busy");
        assert_eq!(report[0]["error"], "busy: CPU 80 % over 10 min");
        assert_eq!(next_event(&mut rx).await, "asleep");
        let status = ask(&app, Command::Status).await;
        assert_eq!(status["state"], "asleep");
        assert_eq!(status["busy"][0]["reason"], "busy: CPU 80 % over 10 min");

        tokio::spawn(app.clone().run_refresh(std::future::pending()));
        // The first check (5 min) finds it still at work.
        tokio::time::sleep(Duration::from_secs(5 * 60 + 1)).await;
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2))
        );
        assert_eq!(app.status().busy.len(), 1);
        // Then it goes quiet: the next check puts it to sleep.
        cloud.metrics.lock().unwrap().insert(cpu, 3.0);
        assert_eq!(next_event(&mut rx).await, "asleep");
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
        assert!(app.status().busy.is_empty());
        // And the user's return wakes it exactly.
        press(&app, ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn busy_resources_are_not_checked_again_once_the_user_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::of(Kind::Ecs, Desired(2)));
        let cpu = ("CPUUtilization".to_string(), "s".to_string());
        cloud.metrics.lock().unwrap().insert(cpu.clone(), 80.0);
        let (app, _rx) = app(dir.path(), cloud.clone());
        app.handle(Command::SleepNow).await.unwrap();
        app.handle(Command::WakeNow).await.unwrap();
        assert!(app.status().busy.is_empty());
        cloud.metrics.lock().unwrap().insert(cpu, 3.0);
        tokio::spawn(app.clone().run_refresh(std::future::pending()));
        tokio::time::sleep(Duration::from_secs(11 * 60)).await;
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::of(Kind::Ecs, Desired(2)),
            "the user is here: not stopped"
        );
    }

    /// Team mode with a fake table: `c/s` is this member's, `c/shared` the
    /// team's; B is another member whose presence the test writes.
    #[tokio::test(start_paused = true)]
    async fn a_shared_resource_sleeps_only_when_every_member_is_away_and_fails_safe() {
        use crate::cloud::fake::FakeTable;
        use crate::core::policy::team::{Phase, State as Presence};
        const B: &str = "dev-b@laptop-2";
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let shared = ResourceId::new(Kind::Ecs, ["c", "shared"], "us-east-1");
        let three = Capacity::of(Kind::Ecs, Desired(3));
        let zero = Capacity::of(Kind::Ecs, Desired(0));
        cloud.add(&svc(), three);
        cloud.add(&shared, three);
        let (app, _rx) = app_with(
            dir.path(),
            cloud.clone(),
            r#"{"activity_monitor":{"inactivity_timeout_minutes":10,"warning_minutes":1},
                "aws":{"deadline_role_arn":"arn:aws:iam::123456789012:role/d"},
                "team":{"table":"team","region":"us-east-1","member":"dev-a@laptop-1",
                        "heartbeat_seconds":1,"lease_seconds":3}}"#,
        );
        std::fs::write(
            dir.path().join("services.yaml"),
            "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n  - cluster_name: c\n    service_name: shared\n    region: us-east-1\n    shared: true\n",
        )
        .unwrap();
        app.config_changed(&dir.path().join("services.yaml"));
        let table = Arc::new(FakeTable::default());
        let lease = Duration::from_secs(3);
        table.put_member(B, Presence::Active, Duration::from_secs(600));
        tokio::spawn(app.clone().run_team(table.clone(), std::future::pending()));
        tokio::spawn(app.clone().run_deadline(std::future::pending()));
        let settle = || tokio::time::sleep(Duration::from_millis(1500));
        settle().await;
        // No AWS-side deadline for the shared one.
        let armed: Vec<String> = schedules(&cloud).into_keys().collect();
        assert_eq!(
            armed,
            [crate::core::policy::deadline::name(&app.member, &svc())]
        );

        // A goes away while B is present: only A's own resource sleeps.
        app.handle(Command::SleepNow).await.unwrap();
        settle().await;
        assert_eq!(cloud.get(&svc()).capacity, zero);
        assert_eq!(cloud.get(&shared).capacity, three, "B is present");
        let team = app.status().team.unwrap();
        assert_eq!(team.member, "dev-a@laptop-1");
        assert_eq!(team.presence_line, format!("1 of 2 present: {B}"));
        assert_eq!(team.resources[0].phase, "idle");

        // B's lease runs out (a kill -9): A puts it to sleep, saving 3.
        table.put_member(B, Presence::Active, lease);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(cloud.get(&shared).capacity, zero);
        assert_eq!(cloud.get(&shared).sleep_tag, Some(three), "in the tag");
        let lock = table.locks.lock().unwrap()[&shared].clone();
        assert_eq!((lock.phase, lock.saved), (Phase::Asleep, Some(three)));
        assert!(app.status().asleep.iter().all(|r| r.resource != shared));
        assert!(app
            .status()
            .team
            .unwrap()
            .presence_line
            .starts_with("all away since"));

        // B is back: A (still away) wakes it, exactly.
        table.put_member(B, Presence::Active, Duration::from_secs(600));
        settle().await;
        assert_eq!(cloud.get(&shared).capacity, three);
        assert_eq!(cloud.get(&svc()).capacity, zero, "A's own stays asleep");
        let lock = table.locks.lock().unwrap()[&shared].clone();
        assert_eq!((lock.phase, lock.saved), (Phase::Idle, None));

        // The table unreachable, B gone: nothing shared sleeps, the error
        // shows, A's own resources wake and sleep as before.
        *table.down.lock().unwrap() = true;
        table.put_member(B, Presence::Away, lease);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(cloud.get(&shared).capacity, three, "fail safe");
        let error = app.status().team_error.unwrap();
        assert!(error.contains("Connection refused"), "{error}");
        press(&app, ActivityKind::Keyboard);
        settle().await;
        assert_eq!(cloud.get(&svc()).capacity, three);
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(cloud.get(&svc()).capacity, zero);
        // Back: coordination resumes.
        *table.down.lock().unwrap() = false;
        settle().await;
        assert_eq!(app.status().team_error, None);
        assert_eq!(cloud.get(&shared).capacity, zero);

        // A's hold keeps it up across members: A comes back, holds, leaves.
        press(&app, ActivityKind::Keyboard);
        settle().await;
        assert_eq!(cloud.get(&shared).capacity, three);
        app.hold(Some(60.0), "demo".into(), Some("c/shared".into()), None)
            .unwrap();
        // Away by the idle timer (SLEEP_NOW would end the hold).
        app.lock().tracker.force_sleep(now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(cloud.get(&shared).capacity, three, "held");
        let row = app.status().team.unwrap().resources[0].clone();
        assert_eq!(
            row.note.as_deref(),
            Some("held by dev-a@laptop-1"),
            "{row:?}"
        );
    }
}

//! The orchestrator: owns the idle tracker, the service manager, the registry
//! and the live settings; turns activity, timer deadlines, commands (UDP and
//! tray), config edits and periodic refreshes into sleep and wake.

use crate::cloud::CloudControl;
use crate::core::activity::{Activity, ActivityKind};
use crate::core::idle::{IdleConfig, IdleEvent, IdleState, IdleTracker};
use crate::core::policy::{scale_target, start_target};
use crate::core::protocol::Command;
use crate::core::registry::Entry;
use crate::core::resource::{Capacity, Kind, ResourceId};
use crate::core::settings::Settings;
use crate::manager::{format_outcomes, Action, Manager, Outcome};
use crate::server::Handler;
use crate::store::config::load_settings_file;
use crate::store::services::{entry, EditError, ServicesFile};
use futures::future::try_join_all;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// The longest the timer waits between ticks; a much longer gap means the
/// machine was suspended.
const MAX_TICK: Duration = Duration::from_secs(30);

/// The monotonic clock, through tokio so tests can pause it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn idle_config(settings: &Settings) -> IdleConfig {
    IdleConfig {
        timeout: settings.activity.inactivity_timeout,
        warning: settings.activity.warning,
        max_tick: MAX_TICK,
    }
}

/// Something the app reports: state changes and errors.
pub type Event = Value;

/// The application state and its reactions.
pub struct App<C> {
    /// The settings in use: the last valid settings.json.
    settings: Mutex<Arc<Settings>>,
    settings_file: PathBuf,
    /// Config files that are invalid now, with their error.
    config_errors: Mutex<BTreeMap<&'static str, String>>,
    manager: Manager<C>,
    services: Arc<ServicesFile>,
    tracker: Mutex<IdleTracker>,
    /// Wakes the timer when the tracker changed outside it.
    changed: Notify,
    /// "sleeping" / "waking" while one runs.
    operation: Mutex<Option<&'static str>>,
    /// The latest activity seen, for STATUS ("what keeps me awake?").
    last_activity: Mutex<Option<(ActivityKind, std::time::Instant)>>,
    events: mpsc::UnboundedSender<Event>,
    /// This app, for spawning sleep and wake tasks from `&self`.
    me: std::sync::Weak<App<C>>,
}

impl<C: CloudControl> App<C> {
    /// A new app; state changes are sent to the returned receiver.
    pub fn new(
        settings: Settings,
        settings_file: PathBuf,
        manager: Manager<C>,
        services: ServicesFile,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let cfg = idle_config(&settings);
        let mut tracker = IdleTracker::new(cfg, now());
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
        services.current();
        let app = Arc::new_cyclic(|me| App {
            me: me.clone(),
            settings: Mutex::new(Arc::new(settings)),
            settings_file,
            config_errors: Mutex::new(BTreeMap::new()),
            manager,
            services: Arc::new(services),
            tracker: Mutex::new(tracker),
            changed: Notify::new(),
            operation: Mutex::new(None),
            last_activity: Mutex::new(None),
            events,
        });
        (app, rx)
    }

    /// A config file changed on disk: use it if valid; otherwise keep the
    /// last valid version and report the error (the file is not touched).
    pub fn config_changed(&self, path: &Path) {
        if path == self.services.path() {
            let (_, error) = self.services.current();
            self.config_error("services.yaml", error.map(|e| e.to_string()));
        } else if path == self.settings_file {
            match load_settings_file(path) {
                Ok((new, warnings)) => {
                    for w in warnings {
                        tracing::warn!("{w}");
                    }
                    self.apply(new);
                    self.config_error("settings.json", None);
                }
                Err(e) => self.config_error("settings.json", Some(e.to_string())),
            }
        }
    }

    fn config_error(&self, file: &'static str, error: Option<String>) {
        let mut errors = self.config_errors.lock().expect("config errors");
        let changed = errors.get(file) != error.as_ref();
        match error {
            Some(e) if changed => {
                tracing::error!("{e}\n{file} is invalid: the last valid version stays in use");
                self.emit("config_error", json!({"file": file, "error": e}));
                errors.insert(file, e);
            }
            None if errors.remove(file).is_some() => {
                tracing::info!("{file} is valid again");
                self.emit("config_ok", json!({"file": file}));
            }
            _ => {}
        }
    }

    /// Switches to new, valid settings. Idle timing, notifications, regions,
    /// profile and endpoint apply at once; the rest needs a restart.
    fn apply(&self, new: Settings) {
        let mut current = self.settings.lock().expect("settings");
        if **current == new {
            return;
        }
        if current.activity != new.activity {
            self.tracker
                .lock()
                .expect("tracker")
                .set_config(idle_config(&new));
            self.changed.notify_one();
        }
        if current.aws != new.aws {
            self.manager.cloud().reconfigure(&new.aws);
        }
        let restart: Vec<&str> = [
            ("udp_server", current.udp != new.udp),
            ("aws.dry_run", current.aws.dry_run != new.aws.dry_run),
            (
                "aws.max_concurrent_calls",
                current.aws.max_concurrent_calls != new.aws.max_concurrent_calls,
            ),
            (
                "detectors",
                (
                    &current.keyboard,
                    &current.mouse,
                    &current.screen,
                    &current.audio,
                ) != (&new.keyboard, &new.mouse, &new.screen, &new.audio)
                    || (&current.window, &current.system_idle) != (&new.window, &new.system_idle),
            ),
            ("desktop.tray", current.desktop.tray != new.desktop.tray),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        if !restart.is_empty() {
            tracing::warn!(
                "settings.json: changes to {} take effect when cloudnap restarts",
                restart.join(", ")
            );
        }
        tracing::info!("settings.json reloaded");
        *current = Arc::new(new);
    }

    fn emit(&self, event: &str, detail: Value) {
        let _ = self.events.send(json!({"event": event, "detail": detail}));
    }

    fn entries(&self) -> Vec<Entry> {
        let (registry, error) = self.services.current();
        if let Some(e) = error {
            tracing::warn!("{e}; using the last valid services.yaml");
        }
        registry.entries
    }

    /// The user did something.
    pub fn activity(&self, kind: ActivityKind) {
        let t = now();
        *self.last_activity.lock().expect("last activity") = Some((kind, t));
        let event = self.tracker.lock().expect("tracker").activity(t);
        if let Some(event) = event {
            tracing::info!("activity ({})", kind.name());
            self.react(event);
        }
        self.changed.notify_one();
    }

    /// Feeds activity from the detectors until the channel closes.
    pub async fn run_activity(&self, mut activity: mpsc::UnboundedReceiver<Activity>) {
        while let Some(a) = activity.recv().await {
            self.activity(a.kind);
        }
    }

    fn react(&self, event: IdleEvent) {
        let Some(app) = self.me.upgrade() else {
            return;
        };
        match event {
            IdleEvent::Warn { sleep_in } => {
                let n = self.services.cached_len();
                tracing::info!("{n} resource(s) will sleep in {}s", sleep_in.as_secs());
                self.emit(
                    "warning",
                    json!({"sleep_in_seconds": sleep_in.as_secs_f64(), "resources": n}),
                );
            }
            IdleEvent::WarningCancelled => {
                tracing::info!("activity during the warning: sleep cancelled");
                self.emit("warning_cancelled", Value::Null);
            }
            IdleEvent::Sleep => {
                tokio::spawn(async move { app.run_sleep().await });
            }
            IdleEvent::Wake => {
                tokio::spawn(async move { app.run_wake().await });
            }
        }
    }

    async fn run_sleep(&self) -> Result<Vec<Outcome>, String> {
        self.run_op("sleeping", "asleep", true).await
    }

    async fn run_wake(&self) -> Result<Vec<Outcome>, String> {
        self.run_op("waking", "awake", false).await
    }

    async fn run_op(
        &self,
        doing: &'static str,
        done: &str,
        sleep: bool,
    ) -> Result<Vec<Outcome>, String> {
        *self.operation.lock().expect("op") = Some(doing);
        let entries = self.entries();
        let result = if sleep {
            self.manager.sleep(&entries).await
        } else {
            self.manager.wake(&entries).await
        };
        *self.operation.lock().expect("op") = None;
        match result {
            Ok(outcomes) => {
                tracing::info!("{done}:\n{}", format_outcomes(&outcomes));
                let failed: Vec<_> = outcomes
                    .iter()
                    .filter(|o| o.action == Action::Failed)
                    .collect();
                if !failed.is_empty() {
                    self.emit("error", json!({"operation": doing, "failed": failed}));
                }
                self.emit(done, json!(outcomes));
                Ok(outcomes)
            }
            Err(e) => {
                tracing::error!("{doing}: {e}");
                self.emit("error", json!({"operation": doing, "error": e.to_string()}));
                Err(e.to_string())
            }
        }
    }

    /// Ticks the idle tracker at its deadlines until `shutdown` resolves.
    pub async fn run_timer(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let deadline = self.tracker.lock().expect("tracker").next_deadline(now());
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.changed.notified() => continue,
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            let event = self.tracker.lock().expect("tracker").tick(now());
            if let Some(event) = event {
                self.react(event);
            }
        }
    }

    /// Runs a services.yaml edit off the async workers (it fsyncs); returns
    /// the number of entries afterwards.
    async fn edit_services(
        &self,
        edit: impl FnOnce(&ServicesFile) -> Result<crate::core::registry::Registry, EditError>
            + Send
            + 'static,
    ) -> Result<usize, String> {
        let services = self.services.clone();
        let registry = tokio::task::spawn_blocking(move || edit(&services))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(registry.entries.len())
    }

    /// The settings in use now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.lock().expect("settings").clone()
    }

    /// Every `service_state_check_interval`, checks what is held asleep
    /// against AWS (see [`Manager::refresh`]) until `shutdown` resolves.
    pub async fn run_refresh(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let every = self.settings().aws.service_state_check_interval;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.manager.refresh().await {
                Ok(dropped) if !dropped.is_empty() => self.emit("refreshed", json!(dropped)),
                Ok(_) => {}
                Err(e) => tracing::warn!("refreshing the state: {e}"),
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

    /// The idle state now.
    pub fn state(&self) -> IdleState {
        self.tracker.lock().expect("tracker").state(now())
    }

    /// The app's state as STATUS reports it.
    pub fn status(&self) -> Value {
        let (state, sleep_in, paused_for) = match self.state() {
            IdleState::Active { sleep_in } => ("active", Some(sleep_in), None),
            IdleState::Warning { sleep_in } => ("warning", Some(sleep_in), None),
            IdleState::Asleep => ("asleep", None, None),
            IdleState::Paused { remaining } => ("paused", None, Some(remaining)),
        };
        let asleep: Vec<Value> = self
            .manager
            .asleep()
            .values()
            .map(|r| json!({"resource": r.resource, "saved": r.saved, "phase": r.phase, "since": r.since}))
            .collect();
        let last = *self.last_activity.lock().expect("last activity");
        json!({
            "state": state,
            "last_activity": last.map(|(kind, at)| json!({
                "kind": kind,
                "seconds_ago": now().saturating_duration_since(at).as_secs_f64(),
            })),
            "sleep_in_seconds": sleep_in.map(|d| d.as_secs_f64()),
            "paused_for_seconds": paused_for.map(|d| d.as_secs_f64()),
            "asleep": asleep,
            "registered": self.services.cached_len(),
            "operation": *self.operation.lock().expect("op"),
            "dry_run": self.manager.dry_run(),
            "config_error": self.config_errors_text(),
        })
    }

    /// Every current config error, one per line; `None` when all are valid.
    fn config_errors_text(&self) -> Option<String> {
        let errors = self.config_errors.lock().expect("config errors");
        (!errors.is_empty()).then(|| errors.values().cloned().collect::<Vec<_>>().join("\n"))
    }

    fn profile_of(&self, id: &ResourceId) -> (Option<String>, Option<i32>) {
        self.entries()
            .into_iter()
            .find(|e| &e.id == id)
            .map_or((None, None), |e| (e.profile, e.desired_size))
    }

    async fn list(&self, kind: Option<Kind>, region: Option<String>) -> Result<Value, String> {
        let regions = region.map_or_else(|| self.settings().aws.regions.clone(), |r| vec![r]);
        let cloud = self.manager.cloud();
        let per_region = |k: Kind| {
            try_join_all(regions.iter().map(move |r| async move {
                let v = match k {
                    Kind::Ec2 => cloud.list_ec2(r, None).await.map(|l| json!(l)),
                    Kind::Ecs => cloud.list_ecs(r, None).await.map(|l| json!(l)),
                    Kind::Eks => cloud.list_eks(r, None).await.map(|l| json!(l)),
                };
                v.map_err(|e| format!("{r}: {e}"))
            }))
        };
        let flat = |lists: Vec<Value>| -> Value {
            Value::Array(
                lists
                    .into_iter()
                    .flat_map(|l| l.as_array().cloned().unwrap_or_default())
                    .collect(),
            )
        };
        match kind {
            Some(k) => Ok(flat(per_region(k).await?)),
            None => {
                let (ec2, ecs, eks) = tokio::try_join!(
                    per_region(Kind::Ec2),
                    per_region(Kind::Ecs),
                    per_region(Kind::Eks)
                )?;
                Ok(json!({"ec2": flat(ec2), "ecs": flat(ecs), "eks": flat(eks)}))
            }
        }
    }

    async fn by_hand(
        &self,
        id: &ResourceId,
        target: impl FnOnce(Capacity, Option<Capacity>, Option<i32>) -> Capacity,
    ) -> Result<Value, String> {
        let (profile, entry_desired) = self.profile_of(id);
        let capacity = self
            .manager
            .set_by_hand(id, profile.as_deref(), |now, saved| {
                target(now, saved, entry_desired)
            })
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        Ok(json!({"resource": id, "capacity": capacity, "dry_run": self.manager.dry_run()}))
    }
}

impl<C: CloudControl> Handler for App<C> {
    /// Carries out one command and returns its result or an error message.
    async fn handle(&self, command: Command) -> Result<Value, String> {
        let report = |r: Result<Vec<Outcome>, String>| r.map(|o| json!(o));
        match command {
            Command::Status => Ok(self.status()),
            Command::UserActivity => {
                self.activity(ActivityKind::Command);
                Ok(self.status())
            }
            Command::Pause { minutes } => {
                let t = now();
                let until = t + Duration::from_secs_f64(minutes * 60.0);
                let event = self.tracker.lock().expect("tracker").pause_until(t, until);
                if let Some(e) = event {
                    self.react(e);
                }
                self.changed.notify_one();
                self.emit("paused", json!({"minutes": minutes}));
                Ok(self.status())
            }
            Command::Resume => {
                self.tracker.lock().expect("tracker").resume(now());
                self.changed.notify_one();
                Ok(self.status())
            }
            Command::SleepNow => {
                self.tracker.lock().expect("tracker").force_sleep(now());
                self.changed.notify_one();
                report(self.run_sleep().await)
            }
            Command::WakeNow => {
                self.tracker.lock().expect("tracker").activity(now());
                self.changed.notify_one();
                report(self.run_wake().await)
            }
            Command::List { kind, region } => self.list(kind, region).await,
            Command::Start { id, count } => {
                self.by_hand(&id, |now, saved, entry_desired| {
                    start_target(now, saved, count, entry_desired)
                })
                .await
            }
            Command::Stop { id } => self.by_hand(&id, |now, _, _| now.asleep()).await,
            Command::ScaleEks { id, desired } => {
                self.by_hand(&id, |now, _, _| scale_target(now, desired))
                    .await
            }
            Command::Register { id, description } => {
                let new = entry(id.clone(), description);
                let count = self.edit_services(move |s| s.register(new)).await?;
                Ok(json!({"registered": id, "count": count}))
            }
            Command::Unregister { id } => {
                let target = id.clone();
                let count = self.edit_services(move |s| s.unregister(&target)).await?;
                Ok(json!({"unregistered": id, "count": count}))
            }
            Command::ListRegistered => {
                let (registry, error) = self.services.current();
                let entries: Vec<Value> = registry
                    .entries
                    .iter()
                    .map(|e| {
                        json!({
                            "resource": e.id,
                            "description": e.description,
                            "profile": e.profile,
                            "desired_size": e.desired_size,
                        })
                    })
                    .collect();
                Ok(json!({
                    "services": entries,
                    "config_error": error.map(|e| e.to_string()),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::store::state::StateFile;

    fn app(
        dir: &std::path::Path,
        cloud: Arc<FakeCloud>,
    ) -> (Arc<App<FakeCloud>>, mpsc::UnboundedReceiver<Event>) {
        let (settings, _) = Settings::parse(
            r#"{"activity_monitor":{"inactivity_timeout_minutes":10,"warning_minutes":1}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("services.yaml"),
            "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n",
        )
        .unwrap();
        let manager = Manager::new(cloud, StateFile::new(dir.join("state.json")), 4, false);
        App::new(
            settings,
            dir.join("settings.json"),
            manager,
            ServicesFile::new(dir.join("services.yaml")),
        )
    }

    fn svc() -> ResourceId {
        ResourceId::Ecs {
            cluster_name: "c".into(),
            service_name: "s".into(),
            region: "us-east-1".into(),
        }
    }

    async fn next_event(rx: &mut mpsc::UnboundedReceiver<Event>) -> String {
        rx.recv().await.unwrap()["event"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn idle_warns_sleeps_and_first_activity_wakes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::Ecs { desired: 3 });
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
        assert_eq!(cloud.get(&svc()).capacity, Capacity::Ecs { desired: 0 });

        // An hour later, one key press wakes it at once.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let pressed = tokio::time::Instant::now();
        app.activity(ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(pressed.elapsed(), Duration::ZERO);
        assert_eq!(cloud.get(&svc()).capacity, Capacity::Ecs { desired: 3 });
    }

    #[tokio::test(start_paused = true)]
    async fn activity_during_the_warning_cancels_the_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::Ecs { desired: 2 });
        let (app, mut rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        assert_eq!(next_event(&mut rx).await, "warning");
        app.activity(ActivityKind::Mouse);
        assert_eq!(next_event(&mut rx).await, "warning_cancelled");
        tokio::time::sleep(Duration::from_secs(5 * 60)).await;
        assert!(matches!(app.state(), IdleState::Active { .. }));
        assert!(cloud.calls.lock().unwrap().is_empty(), "nothing stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_while_asleep_wakes_on_the_first_activity() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::Ecs { desired: 4 });
        let (first, _rx) = app(dir.path(), cloud.clone());
        first.handle(Command::SleepNow).await.unwrap();
        drop(first);

        let (app, mut rx) = app(dir.path(), cloud.clone());
        assert_eq!(app.state(), IdleState::Asleep);
        app.activity(ActivityKind::Keyboard);
        assert_eq!(next_event(&mut rx).await, "awake");
        assert_eq!(cloud.get(&svc()).capacity, Capacity::Ecs { desired: 4 });
    }

    #[tokio::test(start_paused = true)]
    async fn the_refresh_lets_go_of_a_resource_started_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::Ecs { desired: 2 });
        let (app, mut rx) = app(dir.path(), cloud.clone());
        app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(app.status()["asleep"].as_array().unwrap().len(), 1);
        cloud.add(&svc(), Capacity::Ecs { desired: 5 }); // started by hand
        tokio::spawn(app.clone().run_refresh(std::future::pending()));
        loop {
            if next_event(&mut rx).await == "refreshed" {
                break;
            }
        }
        assert!(app.status()["asleep"].as_array().unwrap().is_empty());
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(
            cloud.get(&svc()).capacity,
            Capacity::Ecs { desired: 5 },
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
        assert_eq!(app.status()["sleep_in_seconds"], 45.0 * 60.0);
        std::fs::write(
            &file,
            r#"{"activity_monitor":{"inactivity_timeout_minutes":-1}}"#,
        )
        .unwrap();
        app.config_changed(&file);
        assert_eq!(next_event(&mut rx).await, "config_error");
        let status = app.status();
        assert!(status["config_error"]
            .as_str()
            .unwrap()
            .contains("inactivity_timeout_minutes"));
        assert_eq!(
            status["sleep_in_seconds"],
            45.0 * 60.0,
            "last good settings kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pause_keeps_awake_and_commands_report_status() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::default());
        cloud.add(&svc(), Capacity::Ecs { desired: 2 });
        let (app, _rx) = app(dir.path(), cloud.clone());
        tokio::spawn(app.clone().run_timer(std::future::pending()));
        let status = app.handle(Command::Pause { minutes: 60.0 }).await.unwrap();
        assert_eq!(status["state"], "paused");
        tokio::time::sleep(Duration::from_secs(59 * 60)).await;
        assert!(cloud.calls.lock().unwrap().is_empty());
        let status = app.handle(Command::Resume).await.unwrap();
        assert_eq!(status["state"], "active");
        assert_eq!(status["sleep_in_seconds"], 600.0);

        let report = app.handle(Command::SleepNow).await.unwrap();
        assert_eq!(report[0]["action"], "stopped");
        let status = app.handle(Command::Status).await.unwrap();
        assert_eq!(status["state"], "asleep");
        assert_eq!(status["asleep"][0]["saved"]["desired"], 2);
        app.handle(Command::WakeNow).await.unwrap();
        assert_eq!(cloud.get(&svc()).capacity, Capacity::Ecs { desired: 2 });
    }
}

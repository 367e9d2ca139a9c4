//! The daemon (`cloudnap run`) as a library function: the idle timer, the
//! activity detectors, the UDP server, the config watcher, the periodic
//! refresh and the tray, until a shutdown future resolves or the tray's Quit.
//! Its long-lived tasks run in one `JoinSet`: one that ends or panics is
//! logged and ends the daemon cleanly (a sleep or wake in progress finishes).

use crate::app::App;
use crate::cloud::aws::pricing;
use crate::cloud::aws::sso::Progress;
use crate::cloud::{CloudControl, ErrorKind, TeamTable};
use crate::core::config::settings::Settings;
use crate::core::model::history::Trigger;
use crate::core::protocol::auth::Policy;
use crate::core::protocol::commands::Command;
use crate::detect;
use crate::manager::Manager;
use crate::server;
use crate::store::config::Paths;
use crate::store::history::HistoryFile;
use crate::store::price_cache;
use crate::store::records::RecordsFile;
use crate::store::registry::RegistryFile;
use crate::store::watch::watch;
use crate::ui::notify::{message, notify};
use crate::ui::shell::{open_path, open_url, spawn_dialog};
use crate::ui::tray::{self, MenuAction};
use crate::ui::view::{minutes_until, EVENING, MORNING};
use futures::FutureExt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the daemon runs with.
pub struct Config<C> {
    pub paths: Paths,
    /// The valid settings.json read at start.
    pub settings: Settings,
    pub cloud: Arc<C>,
    /// The UDP socket to serve on; `None`: bind `udp_server.ip:port` when
    /// the server is enabled.
    pub socket: Option<UdpSocket>,
    /// Whether to start the desktop parts: the activity detectors, the tray
    /// and the credentials dialog (off in in-process tests).
    pub desktop: bool,
    /// The team table, when team mode is on (`team` in settings.json).
    pub team: Option<Arc<dyn TeamTable>>,
}

/// Why the daemon stopped other than by its shutdown future.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the {0} stopped unexpectedly; cloudnap quit (see the log)")]
    TaskEnded(&'static str),
}

/// A future that resolves once `quit` turns true.
fn quit_future(quit: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = quit.clone();
    async move {
        let _ = rx.wait_for(|q| *q).await;
    }
}

/// Runs `task` in `tasks`; it yields its `name` when it ends, panicked
/// or not (a panic is logged).
fn keep(
    tasks: &mut JoinSet<&'static str>,
    name: &'static str,
    task: impl Future<Output = ()> + Send + 'static,
) {
    tasks.spawn(async move {
        if AssertUnwindSafe(task).catch_unwind().await.is_err() {
            tracing::error!("the {name} panicked");
        }
        name
    });
}

/// Runs the daemon until `shutdown` resolves (or the tray's Quit).
pub async fn run<C: CloudControl>(
    config: Config<C>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let Config {
        paths,
        settings,
        cloud,
        socket,
        desktop,
        team,
    } = config;
    let udp = settings.udp.clone();
    let manager = Manager::new(
        cloud,
        RecordsFile::new(&paths.state),
        settings.aws.max_concurrent_calls,
        settings.aws.dry_run,
    )
    .with_history(HistoryFile::beside(&paths.state))
    .with_prices(pricing::books_from(price_cache::beside(&paths.state)));
    let (app, events) = App::new(
        settings,
        paths.settings.clone(),
        manager,
        RegistryFile::new(&paths.services),
    );
    let (quit_tx, quit_rx) = watch::channel(false);
    let mut tasks: JoinSet<&'static str> = JoinSet::new();
    let echo = udp
        .events_port
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    // Menu choices and notification buttons, carried out in one place.
    let (actions_tx, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let act = act_on(app.clone(), paths.clone(), actions_rx, quit_tx.clone());
    keep(&mut tasks, "menu actions", act);
    let report = report_events(&app, events, echo, actions_tx.clone());
    keep(&mut tasks, "event reporter", report);
    // Watching starts before the server answers: an edit made as soon as
    // it does is seen.
    let _watches = watch_files(&app, &paths);
    if let Some(socket) = bind(socket, &udp)? {
        let opts = server_options(&udp, echo);
        let serve = server::serve(socket, opts, app.clone(), quit_future(&quit_rx));
        keep(&mut tasks, "UDP server", serve);
    }
    spawn_loops(&mut tasks, &app, team, &quit_rx);
    let (activity_tx, activity_rx) = tokio::sync::mpsc::unbounded_channel();
    // Held until the end: the activity channel stays open even when every
    // detector failed to start. Locks reach the app (they start the grace).
    let sink = detect::Sink::new(activity_tx).forwarding_locks();
    let feeder = app.clone();
    keep(&mut tasks, "activity feed", async move {
        feeder.run_activity(activity_rx).await
    });
    let (feeder, held) = (app.clone(), sink.inhibitors());
    keep(&mut tasks, "inhibitors feed", async move {
        feeder.run_inhibitors(held).await
    });
    // Held until the end, like the sink: its channel feeds a task.
    let _health = desktop.then(|| start_desktop(&mut tasks, &app, &sink, &paths, actions_tx));

    // Tagged resources show in LIST_REGISTERED_SERVICES from the start
    // (each sleep searches again).
    let searcher = app.clone();
    tokio::spawn(async move { searcher.discover().await });

    tracing::info!("cloudnap is running; state: {:?}", app.state());
    let quit = quit_future(&quit_rx);
    tokio::pin!(quit);
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        _ = &mut quit => Ok(()),
        Some(ended) = tasks.join_next() => {
            let name = ended.unwrap_or("task");
            tracing::error!("the {name} stopped unexpectedly; quitting");
            Err(DaemonError::TaskEnded(name))
        }
    };
    tracing::info!("quitting");
    let _ = quit_tx.send(true);
    // Let a sleep or wake in progress finish and record its result.
    app.quiesce().await;
    tasks.shutdown().await;
    drop(sink);
    result
}

/// Echoes every event to the events port and shows it as a notification
/// (whose buttons send their actions).
fn report_events<C: CloudControl>(
    app: &Arc<App<C>>,
    events: UnboundedReceiver<crate::core::protocol::status::Event>,
    echo: Option<SocketAddr>,
    buttons: UnboundedSender<MenuAction>,
) -> impl Future<Output = ()> + Send + 'static {
    let notifier = app.clone();
    server::echo_events(events, echo, move |event| {
        let prefs = notifier.settings().desktop.notifications.clone();
        let event = event.clone();
        let buttons = buttons.clone();
        tokio::task::spawn_blocking(move || {
            notify(&event, &prefs, move |key| match tray::action_for(key) {
                Some(action) => {
                    let _ = buttons.send(action);
                }
                None => tracing::debug!("notification: {key}"),
            })
        });
    })
}

/// Watches the config files (edits reload them) and the AWS files (a
/// sign-in or new keys: a wake waiting for credentials tries again); the
/// watches last as long as what is returned.
fn watch_files<C: CloudControl>(
    app: &Arc<App<C>>,
    paths: &Paths,
) -> Vec<crate::store::watch::Watch> {
    let watched = app.clone();
    let config = watch(
        vec![paths.settings.clone(), paths.services.clone()],
        move |file| watched.config_changed(file),
    )
    .map_err(|e| tracing::warn!("config files are not watched for edits: {e}"));
    let aws_watched = app.clone();
    let aws = watch(aws_files(), move |file| aws_watched.aws_files_changed(file))
        .map_err(|e| tracing::warn!("AWS credentials files are not watched: {e}"));
    [config, aws].into_iter().flatten().collect()
}

/// The UDP socket: the one given (tests), else bound as settings.json says
/// (none when the server is off).
fn bind(
    socket: Option<UdpSocket>,
    udp: &crate::core::config::settings::UdpSettings,
) -> Result<Option<UdpSocket>, DaemonError> {
    let socket = match socket {
        Some(s) => Some(s),
        None if udp.enabled => {
            let addr = SocketAddr::new(udp.ip, udp.port);
            Some(server::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?)
        }
        None => None,
    };
    if let Some(addr) = socket.as_ref().and_then(|s| s.local_addr().ok()) {
        tracing::info!("listening on {addr}");
    }
    Ok(socket)
}

/// How the server admits commands, from settings.json.
fn server_options(
    udp: &crate::core::config::settings::UdpSettings,
    echo: Option<SocketAddr>,
) -> server::Options {
    if udp.allow_other_users {
        tracing::warn!("udp_server.allow_other_users is on: every local user can command this cloudnap, which acts with your AWS credentials");
    }
    server::Options {
        auth: Policy {
            token: udp.token.clone(),
            require_signature: udp.require_signature,
        },
        check_sender: !udp.allow_other_users,
        max_datagram: udp.buffer_size,
        aws_rate: udp.rate_limit_per_second,
        echo,
    }
}

/// The app's long-running loops: idle timer, refresh, retries, the
/// AWS-side deadline, team heartbeat (in team mode) and power events.
fn spawn_loops<C: CloudControl>(
    tasks: &mut JoinSet<&'static str>,
    app: &Arc<App<C>>,
    team: Option<Arc<dyn TeamTable>>,
    quit_rx: &watch::Receiver<bool>,
) {
    let quit = || quit_future(quit_rx);
    keep(tasks, "idle timer", app.clone().run_timer(quit()));
    keep(tasks, "state refresh", app.clone().run_refresh(quit()));
    keep(tasks, "retries", app.clone().run_retry(quit()));
    keep(tasks, "AWS-side deadline", app.clone().run_deadline(quit()));
    keep(tasks, "readiness", app.clone().run_readiness(quit()));
    keep(tasks, "pre-wake", app.clone().run_prewake(quit()));
    keep(tasks, "memory release", app.clone().run_memory(quit()));
    if let Some(table) = team {
        keep(tasks, "team heartbeat", app.clone().run_team(table, quit()));
    }
    if detect::power::DETECTOR.enabled(&app.settings().detectors) {
        follow_power(app);
    }
}

/// Suspend, resume and shutdown events to the app, from their own thread.
fn follow_power<C: CloudControl>(app: &Arc<App<C>>) {
    let (power_tx, power_rx) = tokio::sync::mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("power".into())
        .spawn(move || {
            if let Err(e) = detect::power::follow(power_tx) {
                tracing::info!("{e}: the AWS-side deadline is not moved before a suspend");
            }
        });
    match spawned {
        // Ends when the thread does (no logind, say): not a failure.
        Ok(_) => drop(tokio::spawn({
            let app = app.clone();
            async move { app.run_power(power_rx).await }
        })),
        Err(e) => tracing::warn!("power events are not followed: {e}"),
    }
}

/// The desktop side: the detectors fitting this session (their health to
/// the app), the tray and the credentials dialog. The returned health must
/// be held while they run.
fn start_desktop<C: CloudControl>(
    tasks: &mut JoinSet<&'static str>,
    app: &Arc<App<C>>,
    sink: &detect::Sink,
    paths: &Paths,
    actions_tx: UnboundedSender<MenuAction>,
) -> Arc<detect::Health> {
    let env = detect::session::SessionEnv::from_env();
    let (rows, planned) = detect::plan(&app.settings(), &env);
    app.detectors_changed(rows.clone());
    let (health_tx, mut health_rx) = tokio::sync::mpsc::unbounded_channel();
    let health = detect::Health::new(rows, move |rows| {
        let _ = health_tx.send(rows);
    });
    let watcher = app.clone();
    keep(tasks, "detector health", async move {
        while let Some(rows) = health_rx.recv().await {
            watcher.detectors_changed(rows);
        }
    });
    detect::start(planned, sink, &health);
    let desktop_settings = app.settings().desktop.clone();
    if desktop_settings.tray {
        start_tray(app, actions_tx);
    }
    if desktop_settings.credentials_dialog {
        let app = app.clone();
        let settings_file = paths.settings.clone();
        tokio::spawn(async move { offer_credentials_dialog(&app, &settings_file).await });
    }
    health
}

/// The AWS config and credentials files and the SSO token cache
/// (`~/.aws/sso/cache`), where their directories exist.
fn aws_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = crate::store::aws_files::files()
        .map(|(credentials, config)| vec![credentials, config])
        .unwrap_or_default();
    if let Some(home) = directories::BaseDirs::new() {
        files.push(home.home_dir().join(".aws").join("sso").join("cache"));
    }
    files.retain(|f| f.is_dir() || f.parent().is_some_and(Path::is_dir));
    files
}

/// Shows the tray icon; its menu choices go to `actions`.
fn start_tray<C: CloudControl>(app: &Arc<App<C>>, actions: UnboundedSender<MenuAction>) {
    let status_of = app.clone();
    let (changed, changes) = std::sync::mpsc::channel();
    let mut watch = app.changes();
    tokio::spawn(async move { while watch.changed().await.is_ok() && changed.send(()).is_ok() {} });
    let status = Arc::new(move || status_of.status());
    let started = tray::spawn(status, changes, move |action| {
        let _ = actions.send(action);
    });
    match started {
        Ok(()) => tracing::info!("tray icon shown"),
        Err(e) => {
            tracing::warn!("no tray icon ({e}); cloudnap keeps running: use `cloudnap send STATUS`")
        }
    }
}

/// A hold on everything for `minutes`, asked for by the user in the tray
/// or a notification.
fn keep_awake(minutes: f64) -> Command {
    Command::Hold {
        minutes: Some(minutes),
        reason: "you".into(),
        only: None,
        lease_seconds: None,
    }
}

/// Turns menu choices and notification buttons into the same commands as
/// UDP (or opens files, or quits), until the channel closes.
async fn act_on<C: CloudControl>(
    app: Arc<App<C>>,
    paths: Paths,
    mut actions: UnboundedReceiver<MenuAction>,
    quit: watch::Sender<bool>,
) {
    // One sign-in at a time: a second click while one waits does nothing.
    let signing_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
    while let Some(action) = actions.recv().await {
        let local = || chrono::Local::now().naive_local();
        let command = match action {
            MenuAction::SleepNow => Command::SleepNow,
            MenuAction::WakeNow => Command::WakeNow,
            MenuAction::KeepAwakeHour => keep_awake(60.0),
            MenuAction::KeepAwakeUntilEvening => keep_awake(minutes_until(local(), EVENING)),
            MenuAction::KeepAwakeUntilMorning => keep_awake(minutes_until(local(), MORNING)),
            MenuAction::Resume => Command::Resume,
            MenuAction::OpenServices => {
                opened(open_path(&paths.services), &paths.services);
                continue;
            }
            MenuAction::OpenLog => {
                let log = latest_log(&paths.log_dir).unwrap_or(paths.log_dir.clone());
                opened(open_path(&log), &log);
                continue;
            }
            MenuAction::Credentials => {
                opened(spawn_dialog(&paths.settings), &paths.settings);
                continue;
            }
            MenuAction::SignIn => {
                use std::sync::atomic::Ordering;
                if signing_in.swap(true, Ordering::AcqRel) {
                    tracing::info!("a sign-in already waits for its approval");
                    continue;
                }
                let (app, signing_in) = (app.clone(), signing_in.clone());
                tokio::spawn(async move {
                    sign_in(app).await;
                    signing_in.store(false, Ordering::Release);
                });
                continue;
            }
            MenuAction::Quit => {
                let _ = quit.send(true);
                continue;
            }
        };
        tracing::info!("{action:?}: {command:?}");
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = app.handle_as(command, Trigger::Tray).await {
                tracing::error!("{action:?}: {e}");
            }
        });
    }
}

/// The SSO sign-in asked for in the tray or a notification: the page opened
/// in the browser, the code in a notification (and the log), the result in
/// another; a waiting wake is then tried at once.
async fn sign_in<C: CloudControl>(app: Arc<App<C>>) {
    let mut progress = |p: Progress| {
        if let Progress::Prompt(prompt) = p {
            let text = format!(
                "Open {} and enter the code {}",
                prompt.verification_uri, prompt.user_code
            );
            tracing::info!("sign-in: {text}");
            if let Err(e) = open_url(prompt.url()) {
                tracing::warn!("no browser opened ({e})");
            }
            message("cloudnap: sign in", &text);
        }
    };
    match app.sign_in(&mut progress).await {
        Ok(s) => message(
            "cloudnap: signed in",
            &format!("Profile {}: what waits wakes now.", s.profile.describe()),
        ),
        Err(e) => {
            tracing::error!("sign-in: {e}");
            message("cloudnap: sign-in failed", &e.to_string());
        }
    }
}

fn opened(result: std::io::Result<()>, path: &Path) {
    if let Err(e) = result {
        tracing::warn!("cannot open {}: {e}", path.display());
    }
}

/// The newest daily log file in `dir`.
fn latest_log(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("cloudnap.") && n.ends_with(".log"))
        })
        .max()
}

/// Opens the credentials dialog when no credentials work (first run).
async fn offer_credentials_dialog<C: CloudControl>(app: &App<C>, settings_file: &Path) {
    let region = app.settings().aws.regions[0].clone();
    match app.cloud().whoami(&region, None).await {
        Ok(id) => tracing::info!("AWS account {} ({})", id.account, id.arn),
        Err(e) if e.kind == ErrorKind::Credentials => {
            tracing::warn!("AWS credentials do not work ({e}); opening the credentials dialog");
            if let Err(e) = spawn_dialog(settings_file) {
                tracing::warn!("cannot open the credentials dialog: {e}");
            }
        }
        Err(e) => tracing::warn!("checking AWS credentials: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use crate::core::model::resource::{Capacity, ResourceId};
    use crate::core::model::resource::{Desired, Kind};
    use crate::server::client;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_in_process_answers_commands_and_shuts_down_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::in_dir(dir.path());
        std::fs::write(
            &paths.services,
            "ecs_services:\n  - cluster_name: c\n    service_name: s\n    region: us-east-1\n",
        )
        .unwrap();
        let (settings, _) = Settings::parse("{}").unwrap();
        let cloud = Arc::new(FakeCloud::default());
        let svc = ResourceId::new(Kind::Ecs, ["c", "s"], "us-east-1");
        cloud.add(&svc, Capacity::of(Kind::Ecs, Desired(3)));
        let socket = server::bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = socket.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(run(
            Config {
                paths,
                settings,
                cloud: cloud.clone(),
                socket: Some(socket),
                desktop: false,
                team: None,
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let ask_within = move |cmd: &'static str, secs: f64| {
            client::request(addr, cmd.as_bytes(), Duration::from_secs_f64(secs))
        };
        let ask = |cmd: &'static str| ask_within(cmd, 5.0);
        let status = ask("STATUS").await.unwrap();
        assert_eq!(status["result"]["state"], "active", "{status}");
        assert_eq!(status["result"]["registered"], 1);
        let slept = ask("SLEEP_NOW").await.unwrap();
        assert_eq!(slept["result"][0]["action"], "stopped", "{slept}");
        assert_eq!(
            cloud.get(&svc).capacity,
            Capacity::of(Kind::Ecs, Desired(0))
        );
        let woke = ask(r#"{"id":"w","type":"WAKE_NOW","timestamp":1621234567}"#)
            .await
            .unwrap();
        assert_eq!(woke["content"][0]["action"], "restored", "{woke}");
        assert!(woke["timestamp"].is_u64(), "{woke}");
        assert_eq!(
            cloud.get(&svc).capacity,
            Capacity::of(Kind::Ecs, Desired(3))
        );

        let asked = std::time::Instant::now();
        stop_tx.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(1), daemon)
            .await
            .expect("the daemon stops within a second")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(asked.elapsed() < Duration::from_secs(1));
        assert!(
            ask_within("STATUS", 0.3).await.is_err(),
            "nothing answers after shutdown"
        );
    }
}

//! The `cloudnap` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use cloudnap::cloud::aws::dynamodb::{Init, TeamTable};
use cloudnap::cloud::aws::pricing::{self, PriceList};
use cloudnap::cloud::aws::AwsCloud;
use cloudnap::cloud::CloudControl;
use cloudnap::core::config::iam;
use cloudnap::core::config::registry::Registry;
use cloudnap::core::config::settings::Settings;
use cloudnap::core::config::settings_edit::set_aws_string;
use cloudnap::core::model::history::{HistoryEvent, Trigger};
use cloudnap::core::model::outcome::{format_outcomes, format_status, Outcome, StatusRow};
use cloudnap::core::model::resource::{Kind, Observed};
use cloudnap::core::policy::team;
use cloudnap::core::protocol::status::{DetectorRow, Inputs};
use cloudnap::core::savings::prices::PriceBook;
use cloudnap::core::savings::report::{self as savings, format_html, format_text, parse_since};
use cloudnap::daemon;
use cloudnap::manager::{now_seconds, Manager};
use cloudnap::server::client;
use cloudnap::store::atomic::write_atomic;
use cloudnap::store::config::Paths;
use cloudnap::store::history::HistoryFile;
use cloudnap::store::price_cache::{self, PriceCache};
use cloudnap::store::records::RecordsFile;
use cloudnap::ui::shell::{dialog_command, DIALOG_BIN};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Exit code when some resource failed or credentials do not work.
const EXIT_FAILED: u8 = 1;
/// Exit code when settings.json or services.yaml is invalid.
const EXIT_CONFIG: u8 = 2;
/// Exit code of `send` when no reply came.
const EXIT_NO_REPLY: u8 = 3;
/// Exit code of `run` when cloudnap already runs for this config dir.
const EXIT_ALREADY_RUNNING: u8 = 4;

#[derive(Parser)]
#[command(name = "cloudnap", version, about)]
struct Cli {
    /// Read settings.json and services.yaml from DIR and keep state and logs there.
    #[arg(long, global = true, env = "CLOUDNAP_CONFIG_DIR", value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate settings, services and credentials, and print what was found.
    Check,
    /// Put every registered resource that is up to sleep, saving its capacity.
    Sleep,
    /// Wake everything cloudnap put to sleep, at exactly its saved capacity.
    Wake,
    /// Print the state of every registered resource.
    Status,
    /// Run in the background: idle timer, detectors, UDP command server,
    /// tray icon (the default).
    Run,
    /// Open the AWS credentials dialog.
    Credentials,
    /// Create (or update) the IAM role the AWS-side deadline runs as, with
    /// a policy allowing only the sleep calls on registered resources and
    /// on those tagged cloudnap:managed=true, and set aws.deadline_role_arn.
    AwsSetup {
        /// Print the role and its policies; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Team mode: `init` creates (or checks) the team table; `status` prints
    /// the table's view (members, states, leases, locks).
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Send a command to the running cloudnap and print its reply.
    Send {
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Address of the running cloudnap (default: from settings.json).
        #[arg(long)]
        to: Option<SocketAddr>,
        /// A text command such as STATUS or START_EC2:i-123:us-east-1, or a JSON envelope.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Savings: per resource the hours awake and asleep, money saved and
    /// what kept costing while asleep, from the history (no AWS calls).
    Report {
        /// The period: 7d, 30d, 12h or a date (2026-11-01, UTC).
        #[arg(long, default_value = "7d")]
        since: String,
        /// Also write a self-contained HTML page with a timeline per resource.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Keep resources awake for DURATION, or for exactly as long as COMMAND
    /// runs (its exit code is passed through).
    Hold {
        /// How long: 90m, 1h, 2h30m, 45s, or a number of minutes.
        duration: Option<String>,
        /// Why, as STATUS and the tray show it (default: the command).
        #[arg(long)]
        reason: Option<String>,
        /// Only this registered resource (i-0abc, cluster/service, cluster/nodegroup).
        #[arg(long, value_name = "RESOURCE")]
        only: Option<String>,
        /// Address of the running cloudnap (default: from settings.json).
        #[arg(long)]
        to: Option<SocketAddr>,
        /// The lease renewed while COMMAND runs, in seconds (at most 120).
        #[arg(long, default_value_t = 120.0, hide = true)]
        lease_seconds: f64,
        /// The command to run while held, after `--`.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum TeamAction {
    /// Create the team table (on-demand billing, TTL) if it is missing,
    /// check its schema if it exists.
    Init,
    /// Print the team table's view: members, states, leases, locks.
    Status,
}

/// Logs to stderr and, for `run`, to a daily file in `log_dir` (the newest
/// `keep_days` files are kept). `RUST_LOG` overrides the levels.
fn init_logging(log_dir: Option<(&std::path::Path, usize)>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,cloudnap=info".into());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let file = log_dir.and_then(|(dir, keep)| {
        let _ = std::fs::create_dir_all(dir);
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("cloudnap")
            .filename_suffix("log")
            .max_log_files(keep)
            .build(dir)
            .map_err(|e| eprintln!("warning: no log file in {}: {e}", dir.display()))
            .ok()
    });
    let file = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(f)
            .with_ansi(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Loaded configuration, or the exit code for a configuration error.
fn load(paths: &Paths) -> Result<(Settings, Registry), ExitCode> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    };
    match paths.create_defaults() {
        Ok(created) => {
            for p in created {
                eprintln!("created {}", p.display());
            }
        }
        Err(e) => return Err(fail(&e)),
    }
    let (settings, warnings) = paths.load_settings().map_err(|e| fail(&e))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let registry = paths.load_registry().map_err(|e| fail(&e))?;
    Ok((settings, registry))
}

fn run(cli: Cli) -> Result<ExitCode> {
    let paths = match &cli.config_dir {
        Some(dir) => Paths::in_dir(dir),
        None => Paths::platform()?,
    };
    if let Some(Command::Send {
        timeout,
        to,
        command,
    }) = &cli.command
    {
        init_logging(None);
        return send(&paths, *timeout, *to, &command.join(" "));
    }
    if let Some(Command::Report { since, html }) = &cli.command {
        init_logging(None);
        return savings_report(&paths, since, cli.json, html.as_deref());
    }
    if let Some(Command::Hold {
        duration,
        reason,
        only,
        to,
        lease_seconds,
        command,
    }) = cli.command
    {
        init_logging(None);
        return hold(&paths, duration, reason, only, to, lease_seconds, command);
    }
    let daemon = matches!(cli.command, None | Some(Command::Run));
    // Held for as long as this process runs.
    let _instance = if daemon {
        match single_instance(&paths)? {
            Some(guard) => Some(guard),
            None => {
                eprintln!("cloudnap is already running (use `cloudnap send STATUS`)");
                return Ok(ExitCode::from(EXIT_ALREADY_RUNNING));
            }
        }
    } else {
        None
    };
    if let Some(Command::Credentials) = cli.command {
        init_logging(None);
        return credentials(&paths);
    }
    let (settings, registry) = match load(&paths) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    init_logging(daemon.then_some((paths.log_dir.as_path(), settings.desktop.log_keep_days)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cloud = Arc::new(AwsCloud::new(&settings.aws));
    let manager = Manager::new(
        cloud.clone(),
        RecordsFile::new(&paths.state),
        settings.aws.max_concurrent_calls,
        settings.aws.dry_run,
    )
    .with_history(HistoryFile::beside(&paths.state));
    // services.yaml and the resources tagged `cloudnap:managed=true`.
    let aws = settings.aws.clone();
    let tagged = || manager.with_tagged(registry.entries.clone(), &aws);
    rt.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => run_daemon(&paths, settings, cloud.clone()).await,
            Command::Send { .. }
            | Command::Credentials
            | Command::Hold { .. }
            | Command::Report { .. } => {
                unreachable!("handled above")
            }
            Command::Check => check(&paths, &settings, &registry, &*cloud).await,
            Command::Team { action } => team_command(&settings, action, cli.json).await,
            Command::AwsSetup { dry_run } => {
                aws_setup(&paths, &settings, &registry, &cloud, dry_run).await
            }
            Command::Sleep => report(
                cli.json,
                manager
                    .sleep(&tagged().await, &settings.busy, Trigger::Command)
                    .await?,
            ),
            Command::Wake => report(
                cli.json,
                manager.wake(&tagged().await, Trigger::Command).await?,
            ),
            Command::Status => {
                status(&settings, &manager.status(&tagged().await).await?, cli.json).await
            }
        }
    })
}

/// `cloudnap hold`: checks its arguments, then holds.
fn hold(
    paths: &Paths,
    duration: Option<String>,
    reason: Option<String>,
    only: Option<String>,
    to: Option<SocketAddr>,
    lease_seconds: f64,
    command: Vec<String>,
) -> Result<ExitCode> {
    let minutes = match duration.as_deref().map(parse_minutes).transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if minutes.is_none() && command.is_empty() {
        eprintln!(
            "error: give a DURATION (cloudnap hold 1h) or a command (cloudnap hold -- make test)"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let hold = HoldArgs {
        minutes,
        reason: reason.unwrap_or_else(|| {
            if command.is_empty() {
                "cloudnap hold".into()
            } else {
                command.join(" ")
            }
        }),
        only,
        lease: Duration::from_secs_f64(lease_seconds.clamp(1.0, 120.0)),
        command,
    };
    hold_awake(paths, to, hold)
}

/// `cloudnap run`: the daemon, with the team table in team mode.
async fn run_daemon(paths: &Paths, settings: Settings, cloud: Arc<AwsCloud>) -> Result<ExitCode> {
    let team = match &settings.team {
        Some(team) => {
            let table = TeamTable::connect(team, &settings.aws).await;
            Some(Arc::new(table) as Arc<dyn cloudnap::cloud::TeamTable>)
        }
        None => None,
    };
    let config = daemon::Config {
        paths: paths.clone(),
        settings,
        cloud,
        socket: None,
        desktop: true,
        team,
    };
    daemon::run(config, quit_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `cloudnap status`: the resources, then the detectors and the team.
async fn status(settings: &Settings, rows: &[StatusRow], json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else {
        print!("{}", format_status(rows));
        print_detectors(settings).await;
        print_team(settings, rows).await;
    }
    let failed = rows.iter().any(|r| r.error.is_some());
    Ok(ExitCode::from(if failed { EXIT_FAILED } else { 0 }))
}

/// The price book of a report over `events`: the Price List is asked first
/// for the prices it covers that are not cached yet (cached 30 days beside
/// the state), then [`pricing::price_book`], as the daemon prices.
fn price_book(paths: &Paths, events: &[HistoryEvent], since: f64, now: f64) -> PriceBook {
    let at = SystemTime::now();
    let cache = PriceCache::load(&price_cache::beside(&paths.state));
    let missing = pricing::uncached(&cache, &savings::items_to_price(events, since, now), at);
    if missing.is_empty() {
        return pricing::price_book(cache, at);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!("no runtime to ask the AWS Price List: {e}");
            return pricing::price_book(cache, at);
        }
    };
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let cache = rt.block_on(async {
        let list = PriceList::new(&settings.aws, cache).await;
        list.fill(&missing, at).await;
        list.into_cache()
    });
    pricing::price_book(cache, at)
}

/// `cloudnap report`: reads the history, prints the table (or JSON) and
/// writes the HTML page if asked. Skipped history lines are warnings.
fn savings_report(
    paths: &Paths,
    since: &str,
    json: bool,
    html: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let now = now_seconds();
    let since = match parse_since(since, now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let report = HistoryFile::beside(&paths.state)
        .report(since, now, |events| price_book(paths, events, since, now))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(file) = html {
        write_atomic(file, format_html(&report).as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        eprintln!("wrote {}", file.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", format_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for Ctrl-C or SIGTERM.
async fn quit_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Claims "the cloudnap of this config dir"; `None` if another one holds it.
fn single_instance(paths: &Paths) -> Result<Option<single_instance::SingleInstance>> {
    let hash = paths.install_id();
    let guard = single_instance::SingleInstance::new(&format!("cloudnap-{hash:016x}"))?;
    Ok(guard.is_single().then_some(guard))
}

/// `cloudnap credentials`: runs the dialog binary for this config dir.
fn credentials(paths: &Paths) -> Result<ExitCode> {
    let status = dialog_command(&paths.settings)?
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start {DIALOG_BIN}: {e}"))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// `cloudnap send`: one command to the running instance.
/// Where the running cloudnap of `settings` listens, and `command` as it
/// must be sent there (signed with the token, if one is set).
fn daemon_request(settings: &Settings, command: &str) -> (SocketAddr, String) {
    let ip = if settings.udp.ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        settings.udp.ip
    };
    let datagram = match &settings.udp.token {
        Some(token) => client::signed(command, token, SystemTime::now()),
        None => command.to_string(),
    };
    (SocketAddr::new(ip, settings.udp.port), datagram)
}

/// The running daemon's detectors, holds, and why what is up while the
/// user is away is up (`cloudnap status`): it alone knows them.
async fn print_detectors(settings: &Settings) {
    let (to, datagram) = daemon_request(settings, "STATUS");
    let reply = client::request(to, datagram.as_bytes(), Duration::from_millis(500)).await;
    let status = match reply {
        Ok(reply) if !client::is_error(&reply) => reply["result"].clone(),
        _ => {
            println!("\ndetectors: cloudnap run is not answering on {to}");
            return;
        }
    };
    /// The part of `STATUS` about the detectors.
    #[derive(serde::Deserialize)]
    struct Seeing {
        inputs: Inputs,
        detectors: Vec<DetectorRow>,
    }
    match serde_json::from_value::<Seeing>(status.clone()) {
        Ok(seeing) => {
            println!(
                "\ndetectors (cloudnap run on {to}): inputs {}",
                seeing.inputs.words()
            );
            for row in &seeing.detectors {
                let why = (row.state.why())
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                let (name, state) = (row.detector.name, row.state.words());
                println!("  {name:<16} {state}{why}");
            }
        }
        Err(e) => println!("\ndetectors: cannot read the reply of cloudnap run on {to}: {e}"),
    }
    let holds = status["holds"].as_array().cloned().unwrap_or_default();
    if !holds.is_empty() {
        println!("\nholds (nothing they cover sleeps):");
    }
    for h in &holds {
        let only = h["only"]
            .as_object()
            .map(|_| {
                let id: Option<cloudnap::core::model::resource::ResourceId> =
                    serde_json::from_value(h["only"].clone()).ok();
                id.map_or_else(|| " (one resource)".into(), |id| format!(" ({id} only)"))
            })
            .unwrap_or_default();
        let until = match h["ends_in_seconds"].as_f64() {
            Some(secs) => {
                let at = chrono::Local::now() + chrono::Duration::seconds(secs as i64);
                format!("until {}", at.format("%H:%M"))
            }
            None => "while it runs".into(),
        };
        println!(
            "  {:<4} {}{only}: {until}",
            h["id"],
            h["reason"].as_str().unwrap_or("?")
        );
    }
    let awake = status["awake"].as_array().cloned().unwrap_or_default();
    if !awake.is_empty() {
        println!("\nnot asleep while you are away:");
    }
    for row in &awake {
        let id: Option<cloudnap::core::model::resource::ResourceId> =
            serde_json::from_value(row["resource"].clone()).ok();
        let why: Vec<&str> = row["why"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str())
            .collect();
        println!(
            "  {}: {}",
            id.map_or_else(|| row["resource"].to_string(), |id| id.to_string()),
            why.join("; ")
        );
    }
}

/// "90m", "1h", "2h30m", "45s" or a plain number of minutes, in minutes.
fn parse_minutes(s: &str) -> Result<f64> {
    let minutes = match s.trim().parse::<f64>() {
        Ok(m) => m,
        Err(_) => {
            humantime::parse_duration(s.trim())
                .map_err(|e| anyhow::anyhow!("duration `{s}`: {e} (e.g. 90m, 1h, 2h30m)"))?
                .as_secs_f64()
                / 60.0
        }
    };
    if minutes > 0.0 && minutes <= 7.0 * 24.0 * 60.0 {
        Ok(minutes)
    } else {
        anyhow::bail!("duration `{s}` must be above 0 and at most a week")
    }
}

/// What `cloudnap hold` asks for.
struct HoldArgs {
    minutes: Option<f64>,
    reason: String,
    only: Option<String>,
    lease: Duration,
    command: Vec<String>,
}

/// How long `cloudnap hold` waits for a reply to its first and last request.
const ASK_WAIT: Duration = Duration::from_secs(5);

/// Sends one command to the running cloudnap and waits up to `wait` for its
/// reply; the reply, or why none came.
async fn ask(
    settings: &Settings,
    to: Option<SocketAddr>,
    command: &str,
    wait: Duration,
) -> Result<serde_json::Value, String> {
    let (default_to, datagram) = daemon_request(settings, command);
    let reply = client::request(to.unwrap_or(default_to), datagram.as_bytes(), wait)
        .await
        .map_err(|e| e.to_string())?;
    if client::is_error(&reply) {
        let message = reply["error"]
            .as_str()
            .or(reply["content"]["message"].as_str())
            .unwrap_or("error");
        return Err(message.to_string());
    }
    Ok(reply)
}

/// `cloudnap hold`: a hold for a duration (returns at once), or a leased
/// hold renewed while the command runs, released when it ends; exits with
/// the command's exit code.
fn hold_awake(paths: &Paths, to: Option<SocketAddr>, args: HoldArgs) -> Result<ExitCode> {
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let with_command = !args.command.is_empty();
    let request = serde_json::json!({
        "type": "HOLD",
        "content": {
            "minutes": args.minutes,
            "reason": args.reason,
            "only": args.only,
            "lease_seconds": with_command.then_some(args.lease.as_secs_f64()),
        }
    })
    .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let held = rt.block_on(ask(&settings, to, &request, ASK_WAIT));
    let id = match (&held, with_command) {
        (Ok(reply), _) => reply["content"]["hold"]["id"].as_u64(),
        (Err(e), true) => {
            eprintln!("warning: not held ({e}); running the command anyway");
            None
        }
        (Err(e), false) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    if !with_command {
        let id = id.unwrap_or_default();
        let until = chrono::Local::now()
            + chrono::Duration::seconds((args.minutes.unwrap_or_default() * 60.0) as i64);
        println!(
            "held until {} (hold {id}): end it with `cloudnap send HOLD_RELEASE:{id}`",
            until.format("%H:%M")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut child = match std::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", args.command[0]);
            if let Some(id) = id {
                let _ = rt.block_on(ask(&settings, to, &format!("HOLD_RELEASE:{id}"), ASK_WAIT));
            }
            return Ok(ExitCode::from(127));
        }
    };
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = rt.block_on(async {
        // A renewal waits one period at most: a lost datagram or a busy
        // daemon is retried at the next tick, well inside the lease.
        let period = args.lease / 3;
        let mut renew = tokio::time::interval(period);
        renew.tick().await;
        let mut renewing = id;
        loop {
            tokio::select! {
                status = &mut done_rx => break status,
                // Ctrl-C reaches the command too: wait for it to end.
                _ = tokio::signal::ctrl_c() => {}
                _ = renew.tick() => {
                    if let Some(id) = renewing {
                        if let Err(e) = ask(&settings, to, &format!("HOLD_RENEW:{id}"), period).await {
                            eprintln!("warning: hold {id} not renewed: {e}");
                            if !e.starts_with("no reply") {
                                renewing = None;
                            }
                        }
                    }
                }
            }
        }
    });
    if let Some(id) = id {
        if let Err(e) = rt.block_on(ask(&settings, to, &format!("HOLD_RELEASE:{id}"), ASK_WAIT)) {
            eprintln!("warning: hold {id} not released ({e}); its lease ends it");
        }
    }
    let code = match status {
        Ok(Ok(status)) => exit_code_of(status),
        Ok(Err(e)) => {
            eprintln!("error: waiting for {}: {e}", args.command[0]);
            EXIT_FAILED
        }
        Err(_) => EXIT_FAILED,
    };
    Ok(ExitCode::from(code))
}

/// The exit code of a finished command, as a shell reports it (128 + the
/// signal that killed it).
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return (128 + signal).clamp(0, 255) as u8;
        }
    }
    status.code().unwrap_or(1).clamp(0, 255) as u8
}

fn send(paths: &Paths, timeout: f64, to: Option<SocketAddr>, command: &str) -> Result<ExitCode> {
    let settings = paths.load_settings().map(|(s, _)| s).unwrap_or_default();
    let (default_to, datagram) = daemon_request(&settings, command);
    let to = to.unwrap_or(default_to);
    let timeout = Duration::from_secs_f64(timeout.clamp(0.1, 3600.0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(client::request(to, datagram.as_bytes(), timeout)) {
        Ok(reply) => {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            Ok(ExitCode::from(if client::is_error(&reply) {
                EXIT_FAILED
            } else {
                0
            }))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_NO_REPLY))
        }
    }
}

fn report(json: bool, outcomes: Vec<Outcome>) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print!("{}", format_outcomes(&outcomes));
    }
    let failed = outcomes.iter().filter(|o| o.action.is_failure()).count();
    if failed > 0 {
        eprintln!("{failed} resource(s) failed");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// `cloudnap aws-setup`: the deadline's role (see [`iam::deadline_role`])
/// in the account of the default credentials, for the resources registered
/// without a profile of their own.
async fn aws_setup(
    paths: &Paths,
    settings: &Settings,
    registry: &Registry,
    cloud: &AwsCloud,
    dry_run: bool,
) -> Result<ExitCode> {
    let region = &settings.aws.regions[0];
    let who = match cloud.whoami(region, None).await {
        Ok(who) => who,
        Err(e) => {
            println!("credentials: FAILED: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let (mine, other): (Vec<_>, Vec<_>) =
        (registry.entries.iter()).partition(|e| e.profile.is_none());
    let ids: Vec<_> = mine.iter().map(|e| e.id.clone()).collect();
    let role = iam::deadline_role(&who.account, &ids);
    for e in other {
        println!(
            "note: {} uses profile {}: not covered (its account needs its own role)",
            e.id,
            e.profile.as_deref().unwrap_or_default()
        );
    }
    if dry_run {
        println!(
            "role {} (dry run: nothing changed)",
            iam::role_arn(&who.account)
        );
        println!("trust policy:\n{:#}", role.trust);
        println!("policy {}:\n{:#}", role.policy_name, role.policy);
        return Ok(ExitCode::SUCCESS);
    }
    let (arn, created) = match cloud.put_role(region, None, &role).await {
        Ok(done) => done,
        Err(e) => {
            println!("IAM: FAILED: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    println!(
        "role {arn} {} (policy {}: {} registered resource(s) and those tagged cloudnap:managed=true)",
        if created { "created" } else { "updated" },
        role.policy_name,
        ids.len()
    );
    if settings.aws.deadline_role_arn.as_deref() != Some(arn.as_str()) {
        let text = std::fs::read_to_string(&paths.settings)?;
        let updated = set_aws_string(&text, "deadline_role_arn", &arn)?;
        write_atomic(&paths.settings, updated.as_bytes())?;
        println!(
            "settings: aws.deadline_role_arn set in {}",
            paths.settings.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(
    paths: &Paths,
    settings: &Settings,
    registry: &Registry,
    cloud: &impl CloudControl,
) -> Result<ExitCode> {
    println!("settings:  {} (valid)", paths.settings.display());
    println!(
        "  inactivity timeout {:?}, warning {:?}, regions {}, profile {}, endpoint {}{}",
        settings.activity.inactivity_timeout,
        settings.activity.warning,
        settings.aws.regions.join(","),
        settings.aws.profile.as_deref().unwrap_or("(default chain)"),
        settings.aws.endpoint_url.as_deref().unwrap_or("(AWS)"),
        if settings.aws.dry_run {
            ", DRY RUN"
        } else {
            ""
        }
    );
    println!(
        "  udp server {}:{} ({})",
        settings.udp.ip,
        settings.udp.port,
        if settings.udp.enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
    let count = |k: Kind| registry.entries.iter().filter(|e| e.id.kind() == k).count();
    println!("services:  {} (valid)", paths.services.display());
    let counts: Vec<String> = Kind::ALL
        .iter()
        .map(|&k| format!("{} {k} {}(s)", count(k), k.spec().noun))
        .collect();
    println!("  {}", counts.join(", "));
    for e in registry
        .entries
        .iter()
        .filter(|e| e.id.kind().spec().checked_on_register)
    {
        if let Ok(Observed {
            part_of: Some(reason),
            ..
        }) = cloud.inspect(&e.id, e.profile.as_deref()).await
        {
            println!(
                "  warning: {} is {reason}: sleep leaves it running; register the group instead",
                e.id
            );
        }
    }
    println!("state:     {}", paths.state.display());
    let region = &settings.aws.regions[0];
    let aws = &settings.aws;
    // The deadline's state; cloudnap works without it, so it never fails
    // the check.
    match (&aws.deadline_role_arn, aws.deadline) {
        (_, false) => println!("deadline:  off (aws.deadline: false)"),
        (None, true) => println!(
            "deadline:  NOT ARMED: aws.deadline_role_arn is not set; if this machine sleeps or \
             cloudnap stops, resources keep running until it is back (`cloudnap aws-setup` \
             makes the role and sets it)"
        ),
        (Some(role), true) => match cloud.list_schedules(region, None, "").await {
            Ok(_) => println!(
                "deadline:  on, {:?} after the idle timeout, run as {role}",
                aws.deadline_margin
            ),
            Err(e) => println!("deadline:  NOT ARMED: EventBridge Scheduler in {region}: {e}"),
        },
    }
    match cloud.whoami(region, None).await {
        Ok(id) => {
            println!("credentials: account {} ({})", id.account, id.arn);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("credentials: FAILED: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// Every presence item and every lock item of `table`.
async fn team_view(
    table: &TeamTable,
) -> Result<(Vec<team::Presence>, Vec<team::Lock>), cloudnap::cloud::CloudError> {
    Ok((table.presence().await?, table.locks().await?))
}

/// A table time as a local wall-clock time: "14:05".
fn wall(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%H:%M")
        .to_string()
}

/// `cloudnap team init|status`.
async fn team_command(settings: &Settings, action: TeamAction, json: bool) -> Result<ExitCode> {
    let Some(team) = &settings.team else {
        eprintln!("error: team mode is off: set team.table and team.region in settings.json");
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let table = TeamTable::connect(team, &settings.aws).await;
    match action {
        TeamAction::Init => match table.init().await {
            Ok(Init::Created) => {
                println!(
                    "table {} created in {} (on-demand billing, TTL on `ttl`)",
                    team.table, team.region
                );
                Ok(ExitCode::SUCCESS)
            }
            Ok(Init::Existed) => {
                println!(
                    "table {} in {}: key schema ok, TTL on",
                    team.table, team.region
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("table {}: FAILED: {e}", team.table);
                Ok(ExitCode::from(EXIT_FAILED))
            }
        },
        TeamAction::Status => {
            let (members, locks) = match team_view(&table).await {
                Ok(found) => found,
                Err(e) => {
                    println!("table {}: FAILED: {e}", team.table);
                    return Ok(ExitCode::from(EXIT_FAILED));
                }
            };
            let now = table.now();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&team::table_json(&members, &locks, now))?
                );
            } else {
                print!("{}", team::format_table(&members, &locks, now, &wall));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The team's lines of `cloudnap status`: who is present, and the lock of
/// each shared resource (read from the team table).
async fn print_team(settings: &Settings, rows: &[cloudnap::core::model::outcome::StatusRow]) {
    let Some(team) = &settings.team else {
        return;
    };
    let table = TeamTable::connect(team, &settings.aws).await;
    match team_view(&table).await {
        Ok((members, locks)) => {
            println!(
                "team:      {}",
                team::presence_line(&members, table.now(), &wall)
            );
            for l in locks
                .iter()
                .filter(|l| rows.iter().any(|r| r.resource == l.resource))
            {
                println!(
                    "  {} (shared): {}, last by {}",
                    l.resource,
                    l.phase.as_str(),
                    team::display_name(&l.owner)
                );
            }
        }
        Err(e) => println!(
            "team:      table {} unreachable: {e} (shared resources stay up)",
            team.table
        ),
    }
}

//! The `cloudnap` command line.

mod cli;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use cli::*;
use cloudnap::cloud::aws::dynamodb::{Init, TeamTable};
use cloudnap::cloud::aws::pricing::{self, PriceList};
use cloudnap::cloud::aws::AwsCloud;
use cloudnap::cloud::CloudControl;
use cloudnap::core::config::iam;
use cloudnap::core::config::registry::{Entry, Registry};
use cloudnap::core::config::settings::Settings;
use cloudnap::core::config::settings_edit::set_aws_string;
use cloudnap::core::model::history::{HistoryEvent, Trigger};
use cloudnap::core::model::outcome::{format_outcomes, format_status, Outcome, StatusRow};
use cloudnap::core::model::resource::{Kind, Observed};
use cloudnap::core::policy::team;
use cloudnap::core::protocol::status::{DetectorRow, Inputs, TimeoutRow};
use cloudnap::core::savings::prices::PriceBook;
use cloudnap::core::savings::report::{self as savings, format_html, format_text, parse_since};
use cloudnap::daemon;
use cloudnap::manager::{now_seconds, Manager};
use cloudnap::server::client;
use cloudnap::store::atomic::write_atomic;
use cloudnap::store::config::Paths;
use cloudnap::store::history::HistoryFile;
use cloudnap::store::price_cache::{self, PriceCache};
use cloudnap::store::records::{RecordsError, RecordsFile};
use cloudnap::ui::shell::{dialog_command, DIALOG_BIN};
use cloudnap::ui::view::human;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    /// Sign in to IAM Identity Center (SSO) as `aws sso login` does: print
    /// the page and code, wait for the approval, save the token where the
    /// AWS CLI and SDKs read it, and tell the running cloudnap.
    Login {
        /// The SSO profile of ~/.aws/config (default: the settings' profile
        /// if it is one, else the only SSO profile).
        #[arg(long)]
        profile: Option<String>,
        /// Do not open the page in the browser.
        #[arg(long)]
        no_browser: bool,
        /// Address of the running cloudnap (default: from settings.json).
        #[arg(long)]
        to: Option<SocketAddr>,
    },
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
        /// Only this registered resource (i-0abc, cluster/service, cluster/nodegroup);
        /// wakes it alone if it is asleep.
        #[arg(long, value_name = "RESOURCE")]
        only: Option<String>,
        /// With --only and a COMMAND: start the command once the resource
        /// is ready (usable, as STATUS `readiness` says), not just started.
        #[arg(long, requires_all = ["only", "command"])]
        ready: bool,
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
    /// ssh's ProxyCommand (`ProxyCommand cloudnap ssh-proxy %h %p`): wakes
    /// the registered EC2 instance HOST names (its ssh_host, Name tag, id
    /// or address) if it is asleep, and only it, waits until PORT answers on
    /// its current address and relays the connection, holding the instance
    /// while it lasts. Any other HOST is relayed untouched.
    SshProxy {
        host: String,
        port: u16,
        /// Wake (and hold) also while you are away (cloudnap asleep, screen
        /// locked).
        #[arg(long)]
        wake: bool,
        /// Address of the running cloudnap (default: from settings.json).
        #[arg(long)]
        to: Option<SocketAddr>,
        /// How long to wait for the instance and its port, in seconds.
        #[arg(long, default_value_t = 600.0)]
        wait_seconds: f64,
        /// The lease renewed while connected, in seconds (at most 120).
        #[arg(long, default_value_t = 60.0, hide = true)]
        lease_seconds: f64,
    },
    /// Write the man pages and the bash, zsh and fish completions into DIR
    /// (for packagers: build/deb.sh).
    #[command(hide = true)]
    PackageFiles {
        /// Where to write cloudnap.1 (and cloudnap-SUBCOMMAND.1), cloudnap.bash,
        /// _cloudnap and cloudnap.fish.
        dir: PathBuf,
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
    // Before any thread starts: malloc sizes its arena limit once, the
    // blocking pool reads its limit once.
    cloudnap::memory::limit_arenas();
    cloudnap::memory::limit_blocking_pool();
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
    let json = cli.json;
    let local = matches!(
        cli.command,
        Some(
            Command::Send { .. }
                | Command::Report { .. }
                | Command::Hold { .. }
                | Command::Credentials
                | Command::Login { .. }
                | Command::PackageFiles { .. }
        )
    );
    if local {
        init_logging(None);
    }
    match cli.command {
        Some(Command::Send {
            timeout,
            to,
            command,
        }) => send(&paths, timeout, to, &command.join(" ")),
        Some(Command::Report { since, html }) => {
            savings_report(&paths, &since, json, html.as_deref())
        }
        Some(Command::Hold {
            duration,
            reason,
            only,
            ready,
            to,
            lease_seconds,
            command,
        }) => {
            let only = only.map(|name| (name, ready));
            hold(&paths, duration, reason, only, to, lease_seconds, command)
        }
        Some(Command::Credentials) => credentials(&paths),
        Some(Command::Login {
            profile,
            no_browser,
            to,
        }) => login(&paths, profile, !no_browser, to),
        Some(Command::PackageFiles { dir }) => {
            write_package_files(Cli::command(), &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        command => with_aws(&paths, command.unwrap_or(Command::Run), json),
    }
}

/// The subcommands that call AWS (`run` among them: one per config dir).
fn with_aws(paths: &Paths, command: Command, json: bool) -> Result<ExitCode> {
    let daemon = matches!(command, Command::Run);
    // Held for as long as this process runs.
    let _instance = if daemon {
        match single_instance(paths)? {
            Some(guard) => Some(guard),
            None => {
                eprintln!("cloudnap is already running (use `cloudnap send STATUS`)");
                return Ok(ExitCode::from(EXIT_ALREADY_RUNNING));
            }
        }
    } else {
        None
    };
    let (settings, registry) = match load(paths) {
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
        match command {
            Command::Run => run_daemon(paths, settings, cloud.clone()).await,
            Command::Send { .. }
            | Command::Credentials
            | Command::Login { .. }
            | Command::Hold { .. }
            | Command::Report { .. }
            | Command::PackageFiles { .. } => {
                unreachable!("handled above")
            }
            Command::Check => check(paths, &settings, &registry, &*cloud).await,
            Command::SshProxy {
                host,
                port,
                wake,
                to,
                wait_seconds,
                lease_seconds,
            } => {
                let args = ProxyArgs {
                    host,
                    port,
                    wake,
                    to,
                    lease: Duration::from_secs_f64(lease_seconds.clamp(1.0, 120.0)),
                    wait: Duration::from_secs_f64(wait_seconds.clamp(1.0, 3600.0)),
                };
                ssh_proxy(&settings, &registry, &cloud, args).await
            }
            Command::Team { action } => team_command(&settings, action, json).await,
            Command::AwsSetup { dry_run } => {
                aws_setup(paths, &settings, &registry, &cloud, dry_run).await
            }
            Command::Sleep | Command::Wake => {
                let entries = registry.entries.clone();
                report(
                    json,
                    sleep_or_wake(&manager, entries, &settings, command).await?,
                )
            }
            Command::Status => {
                status(&settings, &manager.status(&tagged().await).await?, json).await
            }
        }
    })
}

/// `cloudnap sleep` or `cloudnap wake` of `registered`, the search for
/// tagged resources beside the first look (see [`Manager::beside_search`]).
async fn sleep_or_wake(
    manager: &Manager<AwsCloud>,
    registered: Vec<Entry>,
    settings: &Settings,
    command: Command,
) -> Result<Vec<Outcome>, RecordsError> {
    let sleep = matches!(command, Command::Sleep);
    let run = |e: Vec<Entry>| async move {
        match sleep {
            true => manager.sleep(&e, &settings.busy, Trigger::Command).await,
            false => manager.wake(&e, Trigger::Command).await,
        }
    };
    let (_, outcomes) = manager.beside_search(registered, &settings.aws, run).await;
    outcomes
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

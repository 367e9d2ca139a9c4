//! The `cloudnap` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use cloudnap::cloud::aws::AwsCloud;
use cloudnap::cloud::CloudControl;
use cloudnap::core::registry::Registry;
use cloudnap::core::report::{format_outcomes, format_status, Action, Outcome};
use cloudnap::core::resource::Kind;
use cloudnap::core::settings::Settings;
use cloudnap::daemon;
use cloudnap::manager::Manager;
use cloudnap::server::client;
use cloudnap::store::config::Paths;
use cloudnap::store::records::RecordsFile;
use cloudnap::ui::shell::{dialog_command, DIALOG_BIN};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    );
    rt.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => {
                let config = daemon::Config {
                    paths: paths.clone(),
                    settings,
                    cloud: cloud.clone(),
                    socket: None,
                    desktop: true,
                };
                daemon::run(config, quit_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Send { .. } | Command::Credentials => unreachable!("handled above"),
            Command::Check => check(&paths, &settings, &registry, &*cloud).await,
            Command::Sleep => report(
                cli.json,
                manager.sleep(&registry.entries, &settings.busy).await?,
            ),
            Command::Wake => report(cli.json, manager.wake(&registry.entries).await?),
            Command::Status => {
                let rows = manager.status(&registry.entries).await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", format_status(&rows));
                    print_detectors(&settings).await;
                }
                let failed = rows.iter().any(|r| r.error.is_some());
                Ok(ExitCode::from(if failed { EXIT_FAILED } else { 0 }))
            }
        }
    })
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
    let dir = paths
        .settings
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .unwrap_or_else(|| paths.settings.clone());
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
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
/// must be sent there (with the token, if one is set).
fn daemon_request(settings: &Settings, command: &str) -> (SocketAddr, String) {
    let ip = if settings.udp.ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        settings.udp.ip
    };
    let datagram = match &settings.udp.token {
        Some(token) => client::with_token(command, token),
        None => command.to_string(),
    };
    (SocketAddr::new(ip, settings.udp.port), datagram)
}

/// The running daemon's detectors (`cloudnap status`): it alone knows
/// which of them run.
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
    println!(
        "\ndetectors (cloudnap run on {to}): inputs {}",
        status["inputs"].as_str().unwrap_or("?")
    );
    for d in status["detectors"].as_array().into_iter().flatten() {
        let why = d["why"]
            .as_str()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        println!(
            "  {:<16} {}{why}",
            d["name"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?").replace('_', " ")
        );
    }
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
    let failed = outcomes
        .iter()
        .filter(|o| o.action == Action::Failed)
        .count();
    if failed > 0 {
        eprintln!("{failed} resource(s) failed");
        return Ok(ExitCode::from(EXIT_FAILED));
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
    println!(
        "  {} EC2 instance(s), {} ECS service(s), {} EKS nodegroup(s)",
        count(Kind::Ec2),
        count(Kind::Ecs),
        count(Kind::Eks)
    );
    println!("state:     {}", paths.state.display());
    let region = &settings.aws.regions[0];
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

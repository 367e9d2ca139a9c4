//! The `cloudnap` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use cloudnap::cloud::aws::AwsCloud;
use cloudnap::cloud::CloudControl;
use cloudnap::core::registry::Registry;
use cloudnap::core::resource::Kind;
use cloudnap::core::settings::Settings;
use cloudnap::manager::{format_outcomes, format_status, Action, Manager, Outcome};
use cloudnap::store::config::Paths;
use cloudnap::store::state::StateFile;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code when some resource failed or credentials do not work.
const EXIT_FAILED: u8 = 1;
/// Exit code when settings.json or services.yaml is invalid.
const EXIT_CONFIG: u8 = 2;

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
    command: Command,
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,cloudnap=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
    let (settings, registry) = match load(&paths) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cloud = Arc::new(AwsCloud::new(&settings.aws));
    let manager = Manager::new(
        cloud.clone(),
        StateFile::new(&paths.state),
        settings.aws.max_concurrent_calls,
        settings.aws.dry_run,
    );
    rt.block_on(async {
        match cli.command {
            Command::Check => check(&paths, &settings, &registry, &*cloud).await,
            Command::Sleep => report(cli.json, manager.sleep(&registry.entries).await?),
            Command::Wake => report(cli.json, manager.wake(&registry.entries).await?),
            Command::Status => {
                let rows = manager.status(&registry.entries).await?;
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", format_status(&rows));
                }
                let failed = rows.iter().any(|r| r.error.is_some());
                Ok(ExitCode::from(if failed { EXIT_FAILED } else { 0 }))
            }
        }
    })
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

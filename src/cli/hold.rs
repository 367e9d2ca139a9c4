//! `cloudnap hold`: keeps resources awake while a command runs or for a while.

use crate::*;
use cloudnap::core::policy::connect;
use cloudnap::core::policy::readiness::ReadyState;

/// `cloudnap hold`: checks its arguments, then holds.
pub(crate) fn hold(
    paths: &Paths,
    duration: Option<String>,
    reason: Option<String>,
    only: Option<(String, bool)>,
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
        ready: only.as_ref().is_some_and(|(_, ready)| *ready),
        only: only.map(|(name, _)| name),
        lease: Duration::from_secs_f64(lease_seconds.clamp(1.0, 120.0)),
        command,
    };
    hold_awake(paths, to, hold)
}

/// "90m", "1h", "2h30m", "45s" or a plain number of minutes, in minutes.
pub(crate) fn parse_minutes(s: &str) -> Result<f64> {
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
pub(crate) struct HoldArgs {
    minutes: Option<f64>,
    reason: String,
    only: Option<String>,
    /// Run the command once `only` is ready.
    ready: bool,
    lease: Duration,
    command: Vec<String>,
}

/// How long `cloudnap hold` waits for a reply to its first and last request.
pub(crate) const ASK_WAIT: Duration = Duration::from_secs(5);

/// Sends one command to the running cloudnap and waits up to `wait` for its
/// reply; the reply, or why none came.
pub(crate) async fn ask(
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
pub(crate) fn hold_awake(
    paths: &Paths,
    to: Option<SocketAddr>,
    args: HoldArgs,
) -> Result<ExitCode> {
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
        (Ok(reply), _) if args.ready => {
            let hold = &reply["content"]["hold"];
            let wait = wait_ready(&settings, to, &hold["only"]);
            let id = hold["id"].as_u64();
            rt.block_on(renew_while(&settings, to, args.lease, id, wait));
            id
        }
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
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = rt.block_on(renew_while(&settings, to, args.lease, id, done_rx));
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

/// Renews hold `id` (if any) every third of `lease` until `done` (the
/// command, the connection) ends; what it gave. Ctrl-C reaches the command
/// too: this waits for it to end.
pub(crate) async fn renew_while<T>(
    settings: &Settings,
    to: Option<SocketAddr>,
    lease: Duration,
    id: Option<u64>,
    done: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(done);
    // A renewal waits one period at most: a lost datagram or a busy daemon
    // is retried at the next tick, well inside the lease.
    let period = lease / 3;
    let mut renew = tokio::time::interval(period);
    renew.tick().await;
    let mut renewing = id;
    loop {
        tokio::select! {
            status = &mut done => break status,
            _ = tokio::signal::ctrl_c() => {}
            _ = renew.tick() => {
                let Some(id) = renewing else { continue };
                if let Err(e) = ask(settings, to, &format!("HOLD_RENEW:{id}"), period).await {
                    eprintln!("warning: hold {id} not renewed: {e}");
                    if !e.starts_with("no reply") {
                        renewing = None;
                    }
                }
            }
        }
    }
}

/// Waits until `resource` (as replies show it) is ready, by STATUS every
/// second (see [`connect::may_start`]); says so on stderr.
async fn wait_ready(settings: &Settings, to: Option<SocketAddr>, resource: &serde_json::Value) {
    let t0 = Instant::now();
    let name = resource_name(resource);
    let mut said = false;
    loop {
        if let Ok(reply) = ask(settings, to, "STATUS", ASK_WAIT).await {
            let status = &reply["result"];
            let of = |key: &str| {
                (status[key].as_array().into_iter().flatten()).find(|r| &r["resource"] == resource)
            };
            let row = of("readiness").and_then(|r| match r["state"].as_str() {
                Some("ready") => Some(ReadyState::Ready),
                Some("starting") => Some(ReadyState::Starting),
                _ => None,
            });
            if connect::may_start(of("asleep").is_some(), row) {
                if said {
                    eprintln!("{name} ready after {} s", t0.elapsed().as_secs());
                }
                return;
            }
        }
        if !std::mem::replace(&mut said, true) {
            eprintln!("waiting for {name} to be ready...");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `i-0abc`, `dev/api`: a resource's name fields from its JSON.
fn resource_name(resource: &serde_json::Value) -> String {
    let names = resource.as_object().into_iter().flatten();
    let names: Vec<&str> = names
        .filter(|(k, _)| !matches!(k.as_str(), "type" | "region"))
        .filter_map(|(_, v)| v.as_str())
        .collect();
    names.join("/")
}

/// The exit code of a finished command, as a shell reports it (128 + the
/// signal that killed it).
pub(crate) fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return (128 + signal).clamp(0, 255) as u8;
        }
    }
    status.code().unwrap_or(1).clamp(0, 255) as u8
}

//! `cloudnap ssh-proxy HOST PORT`: ssh's `ProxyCommand`. Wakes the
//! registered EC2 instance HOST names (and only it) if it is asleep, waits
//! until PORT answers on its current address, then relays stdin/stdout to
//! it under a hold on that instance; any other host is relayed untouched.
//! The decisions are [`cloudnap::core::policy::connect`]'s.

use crate::*;
use cloudnap::core::config::registry::Entry;
use cloudnap::core::policy::connect::{self, Away, DaemonView, Named, Plan, Seen, Step};
use std::io::{Read, Write};

/// What `cloudnap ssh-proxy` was asked.
pub(crate) struct ProxyArgs {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Wake (and hold) also while the user is away.
    pub(crate) wake: bool,
    pub(crate) to: Option<SocketAddr>,
    pub(crate) lease: Duration,
    /// How long to wait for the instance and its port.
    pub(crate) wait: Duration,
}

/// `cloudnap ssh-proxy`: resolves HOST, plans, wakes and waits if need be,
/// then relays until either side closes.
pub(crate) async fn ssh_proxy(
    settings: &Settings,
    registry: &Registry,
    cloud: &AwsCloud,
    args: ProxyArgs,
) -> Result<ExitCode> {
    let entries = &registry.entries;
    let mut named = connect::by_config(&args.host, entries);
    let mut seen = Vec::new();
    if named == Named::Unknown {
        seen = describe(cloud, entries).await;
        named = connect::by_aws(&args.host, entries, &seen);
    }
    let entry = match named {
        Named::Unknown => return relay_to(&format!("{}:{}", args.host, args.port), ended()).await,
        Named::Several(ids) => {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            eprintln!(
                "error: `{}` names {} registered instances ({}): give one an ssh_host in services.yaml",
                args.host,
                ids.len(),
                ids.join(", ")
            );
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Named::One(entry) => entry,
    };
    let name = connect::label(entry, seen_for(&seen, entry));
    let status = ask(settings, args.to, "STATUS", ASK_WAIT).await.ok();
    let view = status.as_ref().map(|s| daemon_view(&s["result"], entry));
    let wake = match connect::plan(&name, view, args.wake) {
        Plan::Refuse(why) => {
            eprintln!("cloudnap: {why}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Plan::Unheld(note) => {
            eprintln!("cloudnap: {note}");
            let to = reach(cloud, entry, &name, args.port, args.wait, None).await?;
            return relay_to(&to, ended()).await;
        }
        Plan::Hold { wake } => wake,
    };
    let held = hold_on(settings, &args, entry).await;
    let id = match (held, wake) {
        (Ok(id), _) => Some(id),
        (Err(e), true) => anyhow::bail!("{name} is asleep and cloudnap did not wake it: {e}"),
        (Err(e), false) => {
            eprintln!("cloudnap: warning: {name} not held ({e}); connecting anyway");
            None
        }
    };
    let started = wake.then(|| {
        eprint!("{}", connect::progress(&name, Step::Waking));
        Instant::now()
    });
    let reached = reach(cloud, entry, &name, args.port, args.wait, started).await;
    let code = match reached {
        Ok(to) => relay_held(settings, &args, id, &to).await,
        Err(e) => {
            eprintln!("\nerror: {e:#}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    };
    if let Some(id) = id {
        let _ = ask(settings, args.to, &format!("HOLD_RELEASE:{id}"), ASK_WAIT).await;
    }
    code
}

/// The registered EC2 instances as AWS reports them: one listing per
/// region and profile.
async fn describe(cloud: &AwsCloud, entries: &[Entry]) -> Vec<Seen> {
    let mut places: Vec<(Kind, &str, Option<&str>)> = (entries.iter())
        .filter(|e| e.id.kind().spec().ssh)
        .map(|e| (e.id.kind(), e.id.region(), e.profile.as_deref()))
        .collect();
    places.sort();
    places.dedup();
    let mut seen = Vec::new();
    for (kind, region, profile) in places {
        match cloud.list(kind, region, profile).await {
            Ok(rows) => seen.extend(rows.iter().map(seen_of)),
            Err(e) => eprintln!("cloudnap: warning: EC2 instances in {region} not listed: {e}"),
        }
    }
    seen
}

/// What AWS reports for `entry`, among `seen`.
fn seen_for<'a>(seen: &'a [Seen], entry: &Entry) -> Option<&'a Seen> {
    (seen.iter()).find(|s| s.instance_id == entry.id.part(0) && s.region == entry.id.region())
}

/// One `LIST_EC2` row.
fn seen_of(row: &serde_json::Value) -> Seen {
    let text = |k: &str| row[k].as_str().map(String::from);
    Seen {
        instance_id: text("instance_id").unwrap_or_default(),
        region: text("region").unwrap_or_default(),
        name: text("name"),
        state: text("state").unwrap_or_default(),
        public_ip: text("public_ip"),
        private_ip: text("private_ip"),
        public_dns: text("public_dns"),
        private_dns: text("private_dns"),
    }
}

/// What STATUS says for `entry`: whether it is held asleep, and whether
/// the user is away.
fn daemon_view(status: &serde_json::Value, entry: &Entry) -> DaemonView {
    let id = serde_json::to_value(&entry.id).unwrap_or_default();
    let asleep =
        (status["asleep"].as_array()).is_some_and(|rows| rows.iter().any(|r| r["resource"] == id));
    let away = if status["state"] == "asleep" {
        Some(Away::Asleep)
    } else if status["locked"] == true {
        Some(Away::Locked)
    } else {
        None
    };
    DaemonView { asleep, away }
}

/// Asks the running cloudnap for a leased hold on `entry` alone (which
/// wakes it if it is asleep); the hold's id.
async fn hold_on(settings: &Settings, args: &ProxyArgs, entry: &Entry) -> Result<u64, String> {
    let request = serde_json::json!({
        "type": "HOLD",
        "content": {
            "reason": format!("ssh-proxy {}", args.host),
            "only": entry.id.to_string(),
            "lease_seconds": args.lease.as_secs_f64(),
        }
    });
    let reply = ask(settings, args.to, &request.to_string(), ASK_WAIT).await?;
    reply["content"]["hold"]["id"]
        .as_u64()
        .ok_or_else(|| format!("unexpected reply {reply}"))
}

/// Waits until `port` answers on the instance's current address (asking
/// AWS for it every 2 s; with an `ssh_address`, only until it runs when
/// waking, else not at all), for at most `wait`; prints progress from
/// `started` when it is waking. The address.
async fn reach(
    cloud: &AwsCloud,
    entry: &Entry,
    name: &str,
    port: u16,
    wait: Duration,
    started: Option<Instant>,
) -> Result<String> {
    let t0 = Instant::now();
    let mut running = false;
    loop {
        let seen = match entry.ssh_address {
            Some(_) if running || started.is_none() => None,
            _ => seen_for(&describe(cloud, std::slice::from_ref(entry)).await, entry).cloned(),
        };
        let is_running = running || seen.as_ref().is_some_and(|s| s.state == "running");
        if let (Some(t), false, true) = (started, running, is_running) {
            eprint!(
                "{}",
                connect::progress(name, Step::Running { after: t.elapsed() })
            );
        }
        running = is_running;
        // Waking, the port is tried once AWS shows it running: an
        // `ssh_address` (a bastion, a forward) may answer before.
        let address = (running || started.is_none())
            .then(|| connect::address(entry, seen.as_ref(), port))
            .flatten();
        if let Some(to) = address {
            let answered =
                tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&to))
                    .await;
            if let Ok(Ok(_)) = answered {
                if let Some(t) = started {
                    eprint!(
                        "{}",
                        connect::progress(
                            name,
                            Step::Up {
                                port,
                                after: t.elapsed()
                            }
                        )
                    );
                }
                return Ok(to);
            }
        }
        if t0.elapsed() > wait {
            let state = seen.map_or_else(|| "no answer".into(), |s| s.state);
            anyhow::bail!(
                "{name} ({}): port {port} not reached after {} s ({state})",
                entry.id,
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Relays under hold `id`, renewing it every third of the lease until the
/// connection ends (or ssh ends this process: SIGHUP, SIGTERM, Ctrl-C).
async fn relay_held(
    settings: &Settings,
    args: &ProxyArgs,
    id: Option<u64>,
    to: &str,
) -> Result<ExitCode> {
    renew_while(settings, args.to, args.lease, id, relay_to(to, ended())).await
}

/// Resolves when ssh ends this process (SIGHUP on Unix, SIGTERM, Ctrl-C).
async fn ended() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut hup), Ok(mut term)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! {
                _ = hup.recv() => {}
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Connects to `to` and copies stdin to it and it to stdout until it
/// closes, or `end` resolves.
async fn relay_to(to: &str, end: impl std::future::Future<Output = ()>) -> Result<ExitCode> {
    let stream = match std::net::TcpStream::connect(to) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: connecting to {to}: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let done = relay(stream)?;
    tokio::select! {
        _ = done => {}
        () = end => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies stdin to `stream` (then shuts its writing half) and `stream` to
/// stdout, each on a thread of its own; resolves when `stream` closes.
fn relay(stream: std::net::TcpStream) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let mut up = stream.try_clone()?;
    let mut down = stream;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        // stdout is line-buffered: flushed after every read.
        let mut out = std::io::stdout().lock();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = down.read(&mut buf) {
            if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
        let _ = tx.send(());
    });
    Ok(rx)
}

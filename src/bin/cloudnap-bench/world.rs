//! The network a laptop far from its region sees: the fleet's sleep and
//! wake through a forwarder in front of moto that adds a round-trip time to
//! each request and counts the requests and the round trips deep (the
//! longest chain of requests each sent after the one before was answered);
//! the user's return in the middle of a sleep against a plain wake; and
//! what following readiness after a wake costs.

use super::{runtime, timed, wait_event, Daemon, Table};
use crate::forwarder::Forwarder;
use cloudnap::server::client::request;
use cloudnap::store::config::Paths;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A copy of the config dir `dir` whose AWS endpoint is `url`, with an
/// events port (`events`, if any), no tray and a long timeout.
pub fn through(dir: &Path, url: &str, name: &str, events: Option<&UdpSocket>) -> PathBuf {
    let copy = std::env::temp_dir().join(format!("cloudnap-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&copy).unwrap();
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("settings.json")).unwrap()).unwrap();
    s["aws"]["endpoint_url"] = url.into();
    s["activity_monitor"]["inactivity_timeout_minutes"] = 600.into();
    s["desktop"] = serde_json::json!({"tray": false, "credentials_dialog": false});
    if let Some(events) = events {
        s["udp_server"]["events_port"] = events.local_addr().unwrap().port().into();
    }
    std::fs::write(copy.join("settings.json"), s.to_string()).unwrap();
    std::fs::copy(dir.join("services.yaml"), copy.join("services.yaml")).unwrap();
    copy
}

/// A sleep or a wake as the wire saw it.
struct Run {
    took: Duration,
    requests: usize,
    depth: usize,
    /// The operations at each round trip.
    chain: Vec<String>,
}

impl Run {
    /// The row at a round trip of `ms`: the target holds at 200 ms; with no
    /// round trip, moto's own time (one request at a time) splits rounds.
    fn row(&self, target: usize, ms: u64) -> String {
        let target = match ms {
            0 => "moto's own time, one request at a time, splits rounds".to_string(),
            _ => format!("target ≤ {target}"),
        };
        format!(
            "{:.2} s, {} requests, {} round trips deep ({target})",
            self.took.as_secs_f64(),
            self.requests,
            self.depth
        )
    }
}

fn requests(fwd: &Forwarder) -> usize {
    fwd.counts().values().sum()
}

/// `cloudnap CMD` on `dir` through `fwd`, which every one of the `n`
/// resources must pass as `action`.
fn measured(bin: &str, dir: &Path, fwd: &Forwarder, cmd: &str, action: &str, n: usize) -> Run {
    let before = requests(fwd);
    fwd.take_depth();
    fwd.take_chain();
    let (took, done) = timed(bin, dir, cmd, action);
    assert_eq!(done, n, "`cloudnap {cmd}`: every resource {action}");
    Run {
        took,
        requests: requests(fwd) - before,
        depth: fwd.take_depth(),
        chain: fwd.take_chain(),
    }
}

/// The sleep and the wake of `dir`'s fleet (through `fwd`) at each round
/// trip of `rtts`.
pub fn round_trips(bin: &str, dir: &Path, fwd: &Forwarder, rtts: &[u64], table: &mut Table) {
    let n = Paths::in_dir(dir).load_registry().unwrap().entries.len();
    for &ms in rtts {
        fwd.latency(Duration::from_millis(ms));
        let sleep = measured(bin, dir, fwd, "sleep", "stopped", n);
        let wake = measured(bin, dir, fwd, "wake", "restored", n);
        table.push((
            format!("sleep {n} mixed resources (3 regions), {ms} ms round trip"),
            sleep.row(6, ms),
        ));
        table.push((
            format!("wake the same {n}, {ms} ms round trip"),
            wake.row(5, ms),
        ));
        if Some(&ms) == rtts.last() {
            // What each round trip is, as the wire saw it at the longest
            // round trip time (at 0 ms, moto's own time can split one).
            for (what, run) in [("sleep", &sleep), ("wake", &wake)] {
                table.push((format!("{what} {n}: round trips"), run.chain.join("; ")));
            }
        }
    }
    fwd.latency(Duration::ZERO);
}

fn send(addr: SocketAddr, command: &str) -> serde_json::Value {
    let reply = runtime()
        .block_on(request(addr, command.as_bytes(), Duration::from_secs(120)))
        .expect("a reply");
    assert_eq!(reply["ok"], true, "{command}: {reply}");
    reply
}

/// The user back 1 s into a sleep of `dir`'s fleet (a daemon, through
/// `fwd` at `rtt`): activity to every wake call done, against the same
/// from fully asleep.
pub fn mid_sleep_return(bin: &str, dir: &Path, fwd: &Forwarder, rtt: u64, table: &mut Table) {
    let events = UdpSocket::bind("127.0.0.1:0").unwrap();
    events
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let dir = through(dir, &fwd.url, "midsleep", Some(&events));
    let d = Daemon::start(bin, &dir, "warn,cloudnap=info");
    fwd.latency(Duration::from_millis(rtt));
    send(d.addr, "SLEEP_NOW");
    let t0 = Instant::now();
    send(d.addr, "USER_ACTIVITY");
    let plain = wait_event(&events, "awake", Duration::from_secs(120)) - t0;

    let addr = d.addr;
    let sleeping = std::thread::spawn(move || send(addr, "SLEEP_NOW"));
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    send(d.addr, "USER_ACTIVITY");
    let mid = wait_event(&events, "awake", Duration::from_secs(120)) - t0;
    let _ = sleeping.join();
    fwd.latency(Duration::ZERO);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    table.push((
        format!("the user back 1 s into a sleep ({rtt} ms round trip): activity to all up"),
        format!(
            "{:.2} s (target ≤ the wake from fully asleep: {:.2} s)",
            mid.as_secs_f64(),
            plain.as_secs_f64()
        ),
    ));
}

/// Readiness after a wake of `dir`'s fleet: the forwarder says each
/// instance, ECS service and database is not ready yet for a minute after
/// the wake; the AWS calls in that minute, and the time from their being
/// ready on AWS's side to the `ready` event (the notification's).
pub fn readiness(bin: &str, dir: &Path, fwd: &Forwarder, table: &mut Table) {
    let events = UdpSocket::bind("127.0.0.1:0").unwrap();
    events
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let names: Vec<String> = (Paths::in_dir(dir).load_registry().unwrap().entries)
        .iter()
        .filter_map(|e| e.id.names().last().cloned())
        .collect();
    let dir = through(dir, &fwd.url, "ready", Some(&events));
    let d = Daemon::start(bin, &dir, "warn,cloudnap=info");
    send(d.addr, "SLEEP_NOW");
    for name in &names {
        fwd.slow(name, Instant::now() + Duration::from_secs(3600));
    }
    send(d.addr, "WAKE_NOW");
    let minute = Duration::from_secs(60);
    let t0 = Instant::now();
    for name in &names {
        fwd.slow(name, t0 + minute);
    }
    let before = requests(fwd);
    std::thread::sleep(minute);
    let calls = requests(fwd) - before;
    let ready = wait_event(&events, "ready", minute) - (t0 + minute);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    table.push((
        format!(
            "readiness after waking {}: AWS calls in the first minute",
            names.len()
        ),
        format!("{calls} (one look per region and kind; per resource it would be ≥ 1200)"),
    ));
    table.push((
        "readiness: ready on AWS's side to the `ready` event (the notification)".into(),
        format!(
            "{:.1} s (looks back off to every 15 s)",
            ready.as_secs_f64()
        ),
    ));
}

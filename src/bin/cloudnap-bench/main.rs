//! Benchmarks (not tests), printed as a table. Drives the real release
//! `cloudnap` binary: idle footprint with every detector on, UDP latency and
//! throughput, wake latency after a real key press (xdotool), and the time to
//! put 200 resources in 3 regions to sleep on moto against a sequential loop
//! of the same per-resource SDK calls, measured in the same run; then the
//! same fleet and one of 1000 through a forwarder that adds a round trip
//! to each request (world.rs).
//!
//! Usage (see build/bench.sh, which sets up X, PulseAudio, moto and the
//! config dirs): cloudnap-bench BIN LOAD_SECS IDLE_SECS FLEET_DIR WAKE_DIR FLEET_1000_DIR

#[path = "../../../tests/common/forwarder.rs"]
mod forwarder;
mod load;
mod world;

use cloudnap::cloud::aws::AwsCloud;
use cloudnap::cloud::CloudControl;
use cloudnap::server::client::request;
use cloudnap::store::config::Paths;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The rows printed: measure, value.
type Table = Vec<(String, String)>;

/// A running `cloudnap run` and its log lines.
struct Daemon {
    child: Child,
    /// When it was started.
    started: Instant,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(bin: &str, dir: &Path, rust_log: &str) -> Daemon {
        Self::start_in(bin, dir, rust_log, |_| {})
    }

    /// [`start`](Self::start) with the environment changed by `env`.
    fn start_in(bin: &str, dir: &Path, rust_log: &str, env: impl FnOnce(&mut Command)) -> Daemon {
        let started = Instant::now();
        let mut command = Command::new(bin);
        env(&mut command);
        let mut child = command
            .arg("--config-dir")
            .arg(dir)
            .arg("run")
            .env("RUST_LOG", rust_log)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start cloudnap");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr: SocketAddr = loop {
            let line = lines.next().expect("cloudnap exited").unwrap();
            if let Some(a) = line.split("listening on ").nth(1) {
                break a.trim().parse().unwrap();
            }
        };
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            started,
            addr,
            log,
        }
    }
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU time of a process's threads, in seconds, to the nanosecond
/// (`/proc/PID/task/*/schedstat`): an idle daemon uses a few ms a minute,
/// under the 10 ms resolution of [`cpu_ticks`].
fn cpu_secs(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// How long after it starts the daemon gives back what startup used
/// (`src/app/memory.rs`), and a little more: idle is measured after it.
const SETTLED: Duration = Duration::from_secs(35);

/// A config dir for a footprint run: the wake fleet's resources and moto
/// endpoint (so the SDK is in use, as on a real laptop), a long timeout, and
/// the tray on or off.
fn footprint_dir(name: &str, wake_dir: &Path, tray: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cloudnap-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wake_dir.join("settings.json")).unwrap())
            .unwrap();
    s["udp_server"] = serde_json::json!({"port": 0});
    s["activity_monitor"]["inactivity_timeout_minutes"] = 600.into();
    s["desktop"] = serde_json::json!({ "tray": tray });
    std::fs::write(dir.join("settings.json"), s.to_string()).unwrap();
    std::fs::copy(wake_dir.join("services.yaml"), dir.join("services.yaml")).unwrap();
    dir
}

/// A single-threaded tokio runtime for the driver's async calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Lists every AWS resource through the daemon (with `cloudnap send`'s
/// client), so its SDK clients for EC2, ECS and EKS are built and used.
fn use_sdk(d: &Daemon) {
    let rt = runtime();
    let listed = rt
        .block_on(request(
            d.addr,
            b"LIST_ALL_SERVICES",
            Duration::from_secs(30),
        ))
        .expect("reply");
    assert_eq!(listed["ok"], true, "{listed}");
}

/// Idle footprint with every detector on and the SDK in use, then UDP
/// latency and throughput.
fn footprint_and_load(bin: &str, wake_dir: &Path, secs: f64, idle_secs: u64, table: &mut Table) {
    let dir = footprint_dir("tray", wake_dir, true);
    let started = Instant::now();
    let d = Daemon::start(bin, &dir, "warn,cloudnap=info,cloudnap::detect=debug");
    let ready = started.elapsed();
    use_sdk(&d);
    let mut row = |k: String, v: String| table.push((k, v));
    row(
        "startup to ready (listening)".into(),
        format!("{:.0} ms", ready.as_secs_f64() * 1e3),
    );
    load::idle_footprint(&d, idle_secs, &mut row);
    load::status_latency(d.addr, &mut row);
    load::status_throughput(&d, secs, &mut row);
    drop(d);
    if let Ok(baseline) = std::env::var("CLOUDNAP_BENCH_BASELINE") {
        load::status_against(bin, &baseline, &dir, secs, 5, &mut row);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RSS of a daemon with `desktop.tray` off and the SDK in use, once
/// settled.
fn rss_without_tray(bin: &str, wake_dir: &Path, table: &mut Table) {
    let dir = footprint_dir("notray", wake_dir, false);
    let d = Daemon::start(bin, &dir, "warn,cloudnap=info");
    use_sdk(&d);
    std::thread::sleep(SETTLED.saturating_sub(d.started.elapsed()));
    let pid = d.child.id();
    let rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let pss = proc_field(pid, "smaps_rollup", "Pss:").unwrap_or(0);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    table.push((
        "idle RSS / PSS, tray off, all detectors on (target ≤ 16 MB)".into(),
        format!("{:.1} MB / {:.1} MB", load::mb(rss), load::mb(pss)),
    ));
}

/// Waits for the app event `name` on the events socket.
fn wait_event(events: &UdpSocket, name: &str, limit: Duration) -> Instant {
    let t0 = Instant::now();
    let mut buf = vec![0u8; 65536];
    while t0.elapsed() < limit {
        if let Ok((n, _)) = events.recv_from(&mut buf) {
            let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap_or_default();
            if v["content"]["event"] == name {
                return Instant::now();
            }
        }
    }
    panic!("no `{name}` event within {limit:?}");
}

/// Key press (xdotool) to the app's `awake` event, which it sends once every
/// wake call has returned; `rounds` times, each after real idleness.
fn wake_latency(bin: &str, dir: &Path, rounds: usize, table: &mut Table) {
    let events = UdpSocket::bind("127.0.0.1:0").unwrap();
    events
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let settings = dir.join("settings.json");
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    s["udp_server"]["events_port"] = events.local_addr().unwrap().port().into();
    s["desktop"] = serde_json::json!({"tray": false, "credentials_dialog": false});
    std::fs::write(&settings, s.to_string()).unwrap();
    let d = Daemon::start(bin, dir, "warn,cloudnap=info");
    let mut took = Vec::new();
    for _ in 0..rounds {
        wait_event(&events, "asleep", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(500));
        let pressed = Instant::now();
        assert!(Command::new("xdotool")
            .args(["key", "shift"])
            .status()
            .unwrap()
            .success());
        took.push(wait_event(&events, "awake", Duration::from_secs(10)) - pressed);
    }
    drop(d);
    took.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    table.push((
        format!("key press to all wake calls done (4 resources, {rounds} rounds)"),
        format!(
            "median {:.0} ms, max {:.0} ms (target ≤ 1000 ms)",
            ms(&took[took.len() / 2]),
            ms(took.last().unwrap())
        ),
    ));
}

/// Runs `cloudnap --json CMD` in `dir`; returns its time and how many
/// resources got `action`.
fn timed(bin: &str, dir: &Path, cmd: &str, action: &str) -> (Duration, usize) {
    let t0 = Instant::now();
    let out = Command::new(bin)
        .arg("--config-dir")
        .arg(dir)
        .args(["--json", cmd])
        .output()
        .unwrap();
    let took = t0.elapsed();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let n = rows
        .as_array()
        .map_or(0, |r| r.iter().filter(|o| o["action"] == action).count());
    (took, n)
}

/// 200 resources in 3 regions: `cloudnap sleep` against a sequential loop
/// of the same per-resource calls (describe, tag, stop) through the same
/// AWS adapter.
fn fleet_sleep(bin: &str, dir: &Path, table: &mut Table) {
    let paths = Paths::in_dir(dir);
    let (settings, _) = paths.load_settings().unwrap();
    let entries = paths.load_registry().unwrap().entries;
    let n = entries.len();

    let (sleep, stopped) = timed(bin, dir, "sleep", "stopped");
    let (wake, restored) = timed(bin, dir, "wake", "restored");
    assert_eq!(
        (stopped, restored),
        (n, n),
        "cloudnap slept and woke every resource"
    );

    let rt = runtime();
    let cloud = AwsCloud::new(&settings.aws);
    let baseline = rt.block_on(async {
        // Clients are built before the clock starts, as the app has them warm.
        for region in &settings.aws.regions {
            cloud.whoami(region, None).await.unwrap();
        }
        let t0 = Instant::now();
        for e in &entries {
            let obs = cloud.inspect(&e.id, None).await.unwrap();
            cloud
                .set_sleep_tag(&e.id, None, Some(obs.capacity))
                .await
                .unwrap();
            cloud
                .set_capacity(&e.id, None, obs.capacity.asleep())
                .await
                .unwrap();
        }
        t0.elapsed()
    });
    let (_, restored) = timed(bin, dir, "wake", "restored");
    assert_eq!(restored, n, "the baseline's sleep tags woke everything");
    let s = |d: Duration| d.as_secs_f64();
    table.push((
        format!("sleep {n} resources in 3 regions (moto), `cloudnap sleep`"),
        format!(
            "{:.2} s (target ≤ 3 s), {:.1}x faster than the baseline",
            s(sleep),
            s(baseline) / s(sleep)
        ),
    ));
    table.push((
        format!("baseline: sequential describe+tag+stop per resource, {n}"),
        format!("{:.2} s", s(baseline)),
    ));
    table.push((
        format!("wake the same {n}, `cloudnap wake`"),
        format!("{:.2} s", s(wake)),
    ));
}

/// Idle CPU and RSS of a daemon in a headless sway session (Wayland only:
/// no X display), with every detector enabled, over `idle_secs`; skipped
/// (and said so) when `CLOUDNAP_SWAY_DISPLAY` is not set.
fn idle_under_sway(bin: &str, wake_dir: &Path, idle_secs: u64, table: &mut Table) {
    let (Ok(display), Ok(runtime_dir)) = (
        std::env::var("CLOUDNAP_SWAY_DISPLAY"),
        std::env::var("CLOUDNAP_SWAY_RUNTIME_DIR"),
    ) else {
        table.push((
            "idle under sway".into(),
            "not measured: no sway session".into(),
        ));
        return;
    };
    let dir = footprint_dir("sway", wake_dir, false);
    let d = Daemon::start_in(bin, &dir, "warn,cloudnap=info", |c| {
        c.env_remove("DISPLAY")
            .env("WAYLAND_DISPLAY", &display)
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env("XDG_SESSION_TYPE", "wayland");
    });
    use_sdk(&d);
    std::thread::sleep(SETTLED.saturating_sub(d.started.elapsed()));
    let pid = d.child.id();
    let t0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let cpu = (cpu_secs(pid) - t0) / idle_secs as f64 * 100.0;
    let rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    let pss = proc_field(pid, "smaps_rollup", "Pss:").unwrap_or(0);
    let running = d
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("detector running"))
        .filter_map(|l| l.split_whitespace().rev().nth(2).map(String::from))
        .collect::<Vec<_>>();
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    table.push((
        format!("idle CPU under headless sway (Wayland), {idle_secs} s"),
        format!(
            "{cpu:.3} % of one core, target ≤ 0.02 % (detectors running: {})",
            running.join(", ")
        ),
    ));
    table.push((
        "idle RSS / PSS under headless sway, tray off (target ≤ 16 MB)".into(),
        format!("{:.1} MB / {:.1} MB", load::mb(rss), load::mb(pss)),
    ));
}

/// What the daemon's same-user check costs per datagram: the kernel lookup
/// of a sending socket's owner, timed in this process.
fn owner_lookup_micros() -> f64 {
    let mut peers = cloudnap::server::peer::system()
        .expect("a sender lookup on this platform")
        .expect("a sock_diag socket");
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (s, c) = (server.local_addr().unwrap(), client.local_addr().unwrap());
    const N: u32 = 100_000;
    let t = Instant::now();
    for _ in 0..N {
        peers.sender(s, c).expect("the client's owner");
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(N)
}

/// `cloudnap report --since 365d --json` over a synthetic year of history:
/// 200 resources slept every evening and woken every morning (146k lines),
/// compacted into monthly files as the daemon would.
fn report_year(bin: &str, table: &mut Table) {
    use cloudnap::core::model::history::{Change, HistoryEvent, Trigger};
    use cloudnap::core::model::resource::{Capacity, Facts, Kind, ResourceId, Running, Volume};
    use cloudnap::store::history::HistoryFile;
    let dir = std::env::temp_dir().join(format!("cloudnap-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let facts = Facts {
        instance_type: Some("t3.micro".into()),
        os: Some("Linux/UNIX".into()),
        volumes: vec![Volume {
            gb: 8,
            volume_type: "gp3".into(),
        }],
        ..Facts::default()
    };
    // The history of 200 EC2 instances, as the daemon writes it.
    let ec2 = Kind::from_label("EC2").expect("EC2 is a kind");
    let mut events = Vec::new();
    for day in 0..365 {
        let evening = now - f64::from(365 - day) * 86_400.0;
        for n in 0..200 {
            let resource = ResourceId::new(ec2, [format!("i-{n:017x}")], "us-east-1");
            let line = |at, change, facts| HistoryEvent {
                at,
                change,
                resource: resource.clone(),
                saved: Some(Capacity::of(ec2, Running(true))),
                trigger: Trigger::Idle,
                facts,
                ready_after_seconds: None,
            };
            events.push(line(evening, Change::Sleep, Some(facts.clone())));
            events.push(line(evening + 13.0 * 3600.0, Change::Wake, None));
        }
    }
    let history = HistoryFile::beside(&dir.join("state.json"));
    history.append(&events).unwrap();
    history.compact(now).unwrap();
    let t = Instant::now();
    let out = Command::new(bin)
        .args([
            "--config-dir",
            dir.to_str().unwrap(),
            "report",
            "--since",
            "365d",
            "--json",
        ])
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    table.push((
        format!(
            "savings report, 1 year x 200 resources ({} history lines), `cloudnap report --json`",
            events.len()
        ),
        format!("{} ms (target ≤ 1000 ms)", took.as_millis()),
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fleets through the latency forwarder: 200 and 1000 resources at
/// 0 and 200 ms, the mid-sleep return, readiness.
fn the_world(bin: &str, fleet: &Path, fleet_1000: &Path, table: &mut Table) {
    let upstream = Paths::in_dir(fleet)
        .load_settings()
        .unwrap()
        .0
        .aws
        .endpoint_url;
    let fwd = forwarder::Forwarder::start(upstream.as_deref().expect("moto's URL"));
    for (name, dir) in [("fleet", fleet), ("fleet1000", fleet_1000)] {
        let via = world::through(dir, &fwd.url, name, None);
        world::round_trips(bin, &via, &fwd, &[0, 200], table);
        let _ = std::fs::remove_dir_all(&via);
    }
    world::mid_sleep_return(bin, fleet, &fwd, 50, table);
    world::readiness(bin, fleet, &fwd, table);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!(
            "usage: cloudnap-bench BIN LOAD_SECS IDLE_SECS FLEET_DIR WAKE_DIR FLEET_1000_DIR"
        );
        std::process::exit(2);
    }
    let bin = &args[1];
    let secs: f64 = args[2].parse().expect("LOAD_SECS");
    let idle_secs: u64 = args[3].parse().expect("IDLE_SECS");
    let mut table = vec![(
        "release binary size".to_string(),
        format!(
            "{:.1} MB",
            std::fs::metadata(bin).unwrap().len() as f64 / 1e6
        ),
    )];
    let wake_dir = Path::new(&args[5]);
    let fleet = Path::new(&args[4]);
    // `CLOUDNAP_BENCH_ONLY=world,idle`: only those parts (all by default).
    let only = std::env::var("CLOUDNAP_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p == name);
    if part("idle") {
        footprint_and_load(bin, wake_dir, secs, idle_secs, &mut table);
        rss_without_tray(bin, wake_dir, &mut table);
        idle_under_sway(bin, wake_dir, idle_secs, &mut table);
    }
    if part("wake") {
        wake_latency(bin, wake_dir, 5, &mut table);
        fleet_sleep(bin, fleet, &mut table);
    }
    if part("world") {
        the_world(bin, fleet, Path::new(&args[6]), &mut table);
    }
    if part("report") {
        report_year(bin, &mut table);
    }
    println!("| measure | value |");
    println!("| --- | --- |");
    for (k, v) in table {
        println!("| {k} | {v} |");
    }
}

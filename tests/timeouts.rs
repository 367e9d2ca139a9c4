//! A timeout per resource (services.yaml's `timeout_minutes`) through the
//! real binary, real UDP commands and events, and real SDK calls to moto:
//! two instances with timeouts of 6 s and 20.4 s are each warned and put to
//! sleep at their own time, STATUS shows which is asleep and when the other
//! sleeps, each is armed for its own AWS-side deadline (dropped once it
//! sleeps), `cloudnap status` prints each group, and the user's return
//! wakes both.

mod common;
// (Its `fire` is for the tests that fire a deadline.)
#[allow(dead_code)]
#[path = "common/scheduler.rs"]
mod scheduler;

use common::*;
use scheduler::{schedule_of, schedules, unix_now, ROLE};
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const R: &str = "ap-south-1";

/// The events the daemon sent, each with when it came.
type Events = Arc<Mutex<Vec<(Instant, Value)>>>;

/// The events the daemon sends to `socket`, each with when it came.
fn follow_events(socket: UdpSocket) -> Events {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = socket.recv(&mut buf) {
            let Ok(v) = serde_json::from_slice::<Value>(&buf[..n]) else {
                continue;
            };
            if v["type"] == "EVENT" {
                sink.lock()
                    .unwrap()
                    .push((Instant::now(), v["content"].clone()));
            }
        }
    });
    events
}

/// When (after `t0`) the first event `name` naming `id` came: a warning
/// by its `names`, a sleep by its report's resources.
fn came(
    events: &Mutex<Vec<(Instant, Value)>>,
    t0: Instant,
    name: &str,
    id: &str,
) -> Option<Duration> {
    let events = events.lock().unwrap();
    let names = |e: &Value| -> bool {
        match name {
            "warning" => (e["detail"]["names"].as_array().unwrap().iter()).any(|n| n == id),
            _ => (e["detail"].as_array().unwrap().iter())
                .any(|r| r["resource"]["instance_id"] == id && r["action"] == "stopped"),
        }
    };
    (events.iter())
        .filter(|(at, e)| *at >= t0 && e["event"] == name && names(e))
        .map(|(at, _)| *at - t0)
        .next()
}

/// The daemon for instances `short` (0.1 min) and `long` (0.34 min),
/// warning 3 s ahead, its events followed; `check` and
/// `LIST_REGISTERED_SERVICES` show each one's timeout.
async fn start(short: &str, long: &str) -> (ConfigDir, Daemon, Events) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let events = follow_events(socket);
    let services = format!(
        "ec2_instances:\n  - instance_id: {short}\n    region: {R}\n    timeout_minutes: 0.1\n\
         \x20 - instance_id: {long}\n    region: {R}\n    timeout_minutes: 0.34\n"
    );
    let settings = daemon_settings(
        &[R],
        detectors_off(json!({
            "activity_monitor": {"inactivity_timeout_minutes": 30, "warning_minutes": 0.05},
            // A port of its own, where `cloudnap status` finds it.
            "udp_server": {"events_port": port, "port": free_udp_port()},
            "aws": {"deadline_role_arn": ROLE, "deadline_margin_minutes": 0.1}
        })),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);
    let out = String::from_utf8_lossy(&cfg.run(&["check"]).stdout).to_string();
    assert!(
        out.contains(&format!("EC2 {short} ({R}): timeout 0.1 min")),
        "{out}"
    );
    assert!(
        out.contains(&format!("EC2 {long} ({R}): timeout 0.34 min")),
        "{out}"
    );
    let d = Daemon::start(&cfg);
    let listed = d.ok("LIST_REGISTERED_SERVICES").await;
    let timeouts: Vec<f64> = (listed["services"].as_array().unwrap().iter())
        .map(|s| s["timeout_minutes"].as_f64().unwrap())
        .collect();
    assert_eq!(timeouts, [0.1, 0.34], "{listed}");
    (cfg, d, events)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_timeouts_warn_and_sleep_each_at_its_time_and_the_return_wakes_both() {
    let short = ec2_instance(R, false, &[]).await;
    let long = ec2_instance(R, false, &[]).await;
    let (cfg, d, events) = start(&short, &long).await;
    d.ok("USER_ACTIVITY").await;
    let t0 = Instant::now();
    // Each one's AWS-side deadline: its own timeout plus the 6 s margin.
    let start = unix_now();
    for (id, timeout) in [(&short, 6), (&long, 20)] {
        let window =
            |a: &scheduler::Armed| (start + timeout + 4..=start + timeout + 8).contains(&a.at);
        schedule_of(R, id, Duration::from_secs(3), window).await;
    }
    let status = d.ok("STATUS").await;
    let rows: Vec<(f64, usize, bool)> = (status["timeouts"].as_array().unwrap().iter())
        .map(|r| {
            let n = r["resources"].as_array().unwrap().len();
            (
                r["timeout_minutes"].as_f64().unwrap(),
                n,
                r["default"] == true,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [(0.1, 1, false), (0.34, 1, false), (30.0, 0, true)],
        "{status}"
    );
    assert_eq!(status["state"], "active", "{status}");

    // At 4 s both are up; by ~7 s the 6 s one sleeps, alone.
    tokio::time::sleep_until((t0 + Duration::from_secs(4)).into()).await;
    assert_eq!(ec2_state(R, &short).await.0, "running");

    until_stopped(&d, &short, t0 + Duration::from_secs(10)).await;
    let short_at = t0.elapsed();
    eprintln!("the 6 s instance stopped by {short_at:?}");
    assert!(short_at >= Duration::from_secs(6), "{short_at:?}");
    assert_eq!(ec2_state(R, &long).await.0, "running");
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "partly_asleep", "{status}");
    assert_eq!(status["timeouts"][0]["asleep"], true, "{status}");
    assert_eq!(status["timeouts"][1]["asleep"], false, "{status}");
    let left = status["timeouts"][1]["sleep_in_seconds"].as_f64().unwrap();
    let expected = 20.4 - t0.elapsed().as_secs_f64();
    assert!((left - expected).abs() < 1.5, "{left} {expected}: {status}");
    assert_eq!(status["asleep"].as_array().unwrap().len(), 1, "{status}");
    deadline_only_for(&long, &short).await;
    // `cloudnap status` prints each group: which sleeps, which is asleep.
    let out = cfg.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("  6 s: EC2 {short} ({R}): asleep")),
        "{text}"
    );
    assert!(
        text.contains(&format!("  20 s: EC2 {long} ({R}): sleeps in ")),
        "{text}"
    );
    assert!(
        text.contains("  30 min (default): the rest: sleeps in "),
        "{text}"
    );

    // At 18 s the other is still up; by ~21 s it sleeps too.
    tokio::time::sleep_until((t0 + Duration::from_secs(18)).into()).await;
    assert_eq!(ec2_state(R, &long).await.0, "running");
    until_stopped(&d, &long, t0 + Duration::from_secs(26)).await;
    let long_at = t0.elapsed();
    eprintln!("the 20.4 s instance stopped by {long_at:?}");
    assert!(long_at >= Duration::from_millis(20_400), "{long_at:?}");

    warned_before_each(&events, t0, &short, &long).await;

    // The return wakes both.
    d.ok("USER_ACTIVITY").await;
    let status = d
        .wait_status(Duration::from_secs(30), "awake", |s| {
            s["state"] == "active" && s["operation"].is_null() && s["asleep"] == json!([])
        })
        .await;
    assert_eq!(ec2_state(R, &short).await.0, "running");
    assert_eq!(ec2_state(R, &long).await.0, "running");
    assert_eq!(status["timeouts"][0]["asleep"], false, "{status}");
}

/// Each of `short` and `long` was warned (3 s ahead) before its own sleep,
/// and each sleep stopped only its own instance.
async fn warned_before_each(
    events: &Mutex<Vec<(Instant, Value)>>,
    t0: Instant,
    short: &str,
    long: &str,
) {
    let at = |name, id: &str| came(events, t0, name, id);
    // (The sleep's event follows its read-back of the stop.)
    let t = Instant::now();
    while at("asleep", long).is_none() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (warn_short, sleep_short) = (at("warning", short), at("asleep", short));
    let (warn_long, sleep_long) = (at("warning", long), at("asleep", long));
    eprintln!("warned {warn_short:?} / {warn_long:?}, asleep {sleep_short:?} / {sleep_long:?}");
    let (warn_short, sleep_short) = (warn_short.unwrap(), sleep_short.unwrap());
    let (warn_long, sleep_long) = (warn_long.unwrap(), sleep_long.unwrap());
    assert!(warn_short >= Duration::from_secs(2) && warn_short < sleep_short);
    assert!(sleep_short < warn_long && warn_long < sleep_long);
    assert!(warn_long >= Duration::from_secs(16), "{warn_long:?}");
    assert_eq!(at("warning", "i-none"), None);
}

/// Polls until instance `id` is stopped; fails with the daemon's log at `by`.
async fn until_stopped(d: &Daemon, id: &str, by: Instant) {
    while ec2_state(R, id).await.0 != "stopped" {
        assert!(
            Instant::now() < by,
            "{id} not stopped: {}",
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `up` alone has its AWS-side deadline: `asleep`'s is gone.
async fn deadline_only_for(up: &str, asleep: &str) {
    let armed = || async {
        (
            schedules(R, asleep).await.len(),
            schedules(R, up).await.len(),
        )
    };
    let t = Instant::now();
    while armed().await != (0, 1) {
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", armed().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The Wayland idle source in the real `cloudnap run`, in headless sway
//! (started by build/test.sh as an unprivileged user, foot focused) with
//! real key presses through `wtype`, and no X display at all. sway 1.7
//! offers only `org_kde_kwin_idle`, so that is what this exercises.

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// One test at a time: they share the seat's idle state.
static SEAT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The source's notification timeout (`detect::wayland::NOTIFY_TIMEOUT`).
const NOTIFY: Duration = Duration::from_secs(5);

/// Starts `cloudnap run` in the sway session and waits until its Wayland
/// source is listening and the seat has gone idle (a notification reports
/// nothing until its first idle → active transition).
fn start(sway: &Sway, cfg: &ConfigDir) -> Daemon {
    let mut command = cfg.command(&["run"]);
    sway.session(&mut command);
    let d = Daemon::spawn(command);
    wait_log(
        &d.log,
        "wayland_idle: org_kde_kwin_idle",
        Duration::from_secs(5),
    );
    std::thread::sleep(NOTIFY + Duration::from_millis(500));
    d
}

#[tokio::test]
async fn one_wtype_key_is_wayland_activity_and_it_stops_when_idle() {
    let sway = Sway::from_env();
    let _seat = SEAT.lock().await;
    let cfg = ConfigDir::with_settings(&daemon_settings(&["eu-west-3"], only_session_idle()), "");
    let d = start(&sway, &cfg);
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.contains("Wayland session") && log.contains("detectors for it: wayland_idle"),
        "{log}"
    );
    assert!(!log.contains("system_idle detector started"), "{log}");
    assert!(
        d.ok("STATUS").await["last_activity"].is_null(),
        "nothing reported without input"
    );

    sway.wtype("a");
    let status = d
        .wait_status(Duration::from_secs(2), "wayland activity", |s| {
            s["last_activity"]["kind"] == "wayland_idle"
        })
        .await;
    assert!(status["last_activity"]["seconds_ago"].as_f64().unwrap() < 1.0);

    // No more input: at most one re-assertion, then silence.
    tokio::time::sleep(NOTIFY * 2 + Duration::from_secs(1)).await;
    let ago = d.ok("STATUS").await["last_activity"]["seconds_ago"]
        .as_f64()
        .unwrap();
    assert!(
        ago > 5.0,
        "still re-asserting after the seat went idle: {ago}"
    );
}

/// The scenario, through AWS (moto): typing every 2 s for 40 s with
/// an 18 s timeout sleeps nothing; without typing it sleeps after the
/// timeout; one key wakes it at exactly its capacity.
#[tokio::test]
async fn typing_keeps_it_awake_idleness_sleeps_it_and_one_key_wakes_it() {
    const REGION: &str = "eu-west-3";
    let sway = Sway::from_env();
    let _seat = SEAT.lock().await;
    let id = ec2_instance(REGION, false, &[]).await;
    let mut settings = only_session_idle();
    settings["activity_monitor"] = json!({
        "inactivity_timeout_minutes": 18.0 / 60.0,
        "warning_minutes": 3.0 / 60.0
    });
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[REGION], settings),
        &format!("ec2_instances:\n  - instance_id: {id}\n    region: {REGION}\n"),
    );
    let d = start(&sway, &cfg);
    let state = || async { ec2_state(REGION, &id).await.0 };

    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(40) {
        sway.wtype("x");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(state().await, "running", "slept while typing");
    }
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["last_activity"]["kind"], "wayland_idle");

    let last_key = Instant::now();
    while state().await != "stopped" {
        assert!(
            last_key.elapsed() < Duration::from_secs(18 + 5 + 5),
            "not asleep long after the timeout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slept_after = last_key.elapsed();
    eprintln!("asleep {slept_after:?} after the last key");
    assert!(
        slept_after >= Duration::from_secs(16),
        "slept before the timeout"
    );
    d.wait_status(Duration::from_secs(5), "asleep", |s| s["state"] == "asleep")
        .await;

    // The seat is idle again by now: one key wakes it.
    tokio::time::sleep(NOTIFY).await;
    let pressed = Instant::now();
    sway.wtype("w");
    while state().await != "running" {
        assert!(
            pressed.elapsed() < Duration::from_secs(3),
            "not awake after one key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("one key to running: {:?}", pressed.elapsed());
    d.wait_status(Duration::from_secs(3), "awake", |s| {
        s["state"] == "active" && s["asleep"].as_array().unwrap().is_empty()
    })
    .await;
}

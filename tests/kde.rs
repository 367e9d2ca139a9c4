//! KDE Plasma: the Wayland idle source in the real `cloudnap run`, in
//! headless kwin_wayland (started by build/test.sh with a session bus of its
//! own and its lock screen, so org.freedesktop.ScreenSaver is KWin's), with
//! key presses through `org_kde_kwin_fake_input` (build/kwin/fake-input.c).
//! KWin offers `ext_idle_notifier_v1`, so that is what this exercises
//! (tests/wayland.rs, sway 1.7, the older `org_kde_kwin_idle`). KWin's
//! own `org.freedesktop.ScreenSaver.Lock` is the screen lock source's, in a
//! KWin of its own (it stays locked: unlocking takes the greeter).
// D-Bus and Wayland: Linux desktops only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The source's notification timeout (`detect::wayland::NOTIFY_TIMEOUT`).
const NOTIFY: Duration = Duration::from_secs(5);

/// Starts `cloudnap run` in the KWin session and waits until its Wayland
/// source listens through `ext_idle_notifier_v1` and the seat has gone idle
/// (a notification reports nothing until its first idle → active transition).
fn start(kwin: &Kwin, cfg: &ConfigDir) -> Daemon {
    let mut command = cfg.command(&["run"]);
    kwin.session(&mut command);
    let d = Daemon::spawn(command);
    wait_log(
        &d.log,
        "wayland_idle: ext_idle_notifier_v1",
        // Slack for a loaded machine (the daemon probes the session first).
        Duration::from_secs(20),
    );
    std::thread::sleep(NOTIFY + Duration::from_millis(500));
    d
}

#[tokio::test]
async fn one_fake_input_key_is_wayland_activity_and_it_stops_when_idle() {
    let kwin = Kwin::from_env();
    let _seat = SEAT.lock().await;
    let cfg = ConfigDir::with_settings(&daemon_settings(&["eu-south-1"], only_session_idle()), "");
    let d = start(&kwin, &cfg);
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.contains("Wayland session (Kde desktop); detectors for it: wayland_idle"),
        "{log}"
    );
    assert!(
        d.ok("STATUS").await["last_activity"].is_null(),
        "nothing reported without input"
    );

    kwin.key();
    let status = d
        .wait_status(Duration::from_secs(1), "wayland activity", |s| {
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

/// The scenario, through AWS (moto): a key every 2 s for 40 s with
/// an 18 s timeout sleeps nothing; without keys it sleeps after the
/// timeout; one key wakes it.
#[tokio::test]
async fn typing_keeps_it_awake_idleness_sleeps_it_and_one_key_wakes_it() {
    const REGION: &str = "eu-south-1";
    let kwin = Kwin::from_env();
    let _seat = SEAT.lock().await;
    let id = ec2_instance(REGION, false, &[]).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[REGION], scenario_settings(Duration::from_secs(3))),
        &format!("ec2_instances:\n  - instance_id: {id}\n    region: {REGION}\n"),
    );
    let d = start(&kwin, &cfg);
    input_keeps_awake_idleness_sleeps_one_input_wakes(
        &d,
        "wayland_idle",
        NOTIFY,
        || kwin.key(),
        async || ec2_state(REGION, &id).await.0,
        ("running", "stopped"),
    )
    .await;
}

/// A KWin of its own, from `build/test-env.sh kwin`, which stops it when
/// its stdin closes (when this is dropped).
struct OwnKwin {
    kwin: Kwin,
    _script: Child,
}

fn own_kwin() -> OwnKwin {
    let mut script = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/build/test-env.sh"))
        .arg("kwin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("build/test-env.sh");
    let mut vars = std::collections::HashMap::new();
    for line in BufReader::new(script.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "READY" {
            break;
        }
        assert!(!line.starts_with("ERROR"), "{line}");
        let (k, v) = line.split_once('=').expect("NAME=value");
        vars.insert(k.to_string(), v.to_string());
    }
    let var = |k: &str| vars.get(k).unwrap_or_else(|| panic!("no {k}")).clone();
    OwnKwin {
        kwin: Kwin {
            bus: var("CLOUDNAP_KWIN_BUS"),
            runtime_dir: var("CLOUDNAP_KWIN_RUNTIME_DIR"),
            display: var("CLOUDNAP_KWIN_DISPLAY"),
            key_client: var("CLOUDNAP_KWIN_KEY"),
        },
        _script: script,
    }
}

/// KWin's lock screen, asked for as a screensaver client would
/// (`org.freedesktop.ScreenSaver.Lock`), is a lock: the instance sleeps
/// after the lock grace (6 s), long before the 10 min timeout.
#[tokio::test]
async fn kwin_locking_the_screen_sleeps_it_after_the_lock_grace() {
    const REGION: &str = "eu-south-2";
    let own = own_kwin();
    let id = ec2_instance(REGION, false, &[]).await;
    let mut settings = only_session_idle();
    settings["screen_lock"] = serde_json::json!({"lock_grace_minutes": 0.1});
    settings["activity_monitor"] = serde_json::json!({"inactivity_timeout_minutes": 10});
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[REGION], settings),
        &format!("ec2_instances:\n  - instance_id: {id}\n    region: {REGION}\n"),
    );
    let d = start(&own.kwin, &cfg);
    wait_log(
        &d.log,
        "screen_lock: following ActiveChanged",
        Duration::from_secs(10),
    );
    own.kwin.key();
    d.wait_status(Duration::from_secs(2), "active", |s| {
        s["last_activity"]["kind"] == "wayland_idle"
    })
    .await;

    let lock = Command::new("gdbus")
        .args(["call", "--session", "--dest", "org.freedesktop.ScreenSaver"])
        .args(["--object-path", "/ScreenSaver"])
        .args(["--method", "org.freedesktop.ScreenSaver.Lock"])
        .env("DBUS_SESSION_BUS_ADDRESS", &own.kwin.bus)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(lock.success(), "Lock failed");
    let locked = Instant::now();
    wait_log(
        &d.log,
        "screen locked (org.freedesktop.ScreenSaver)",
        Duration::from_secs(3),
    );
    let after = ec2_stopped_within(&d, (REGION, &id), locked, Duration::from_secs(20)).await;
    eprintln!("asleep {after:?} after the lock");
    assert!(
        after >= Duration::from_millis(5500),
        "slept {after:?} after the lock, before its grace"
    );
}

//! The Wayland idle source in the real `cloudnap run`, in headless sway
//! (started by build/test.sh as an unprivileged user, foot focused) with
//! real key presses through `wtype`, and no X display at all. sway 1.7
//! offers only `org_kde_kwin_idle`, so that is what this exercises.
// D-Bus and Wayland: Linux desktops only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The source's notification timeout (`detect::wayland::NOTIFY_TIMEOUT`).
const NOTIFY: Duration = Duration::from_secs(5);

/// The source's grace for a late `idled` after the timeout
/// (`detect::wayland::GRACE`).
const GRACE: Duration = Duration::from_millis(750);

/// Starts `cloudnap run` in the sway session, without waiting for anything
/// but its UDP server.
fn spawn(sway: &Sway, cfg: &ConfigDir) -> Daemon {
    let mut command = cfg.command(&["run"]);
    sway.session(&mut command);
    Daemon::spawn(command)
}

/// Starts `cloudnap run` in the sway session and waits until its Wayland
/// source is listening and the seat has gone idle (a notification reports
/// nothing until its first idle → active transition).
fn start(sway: &Sway, cfg: &ConfigDir) -> Daemon {
    let d = spawn(sway, cfg);
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

/// A running instance in `region` (moto), registered in a config with the
/// scenario's settings (18 s timeout, 3 s warning).
async fn scenario_instance(region: &str) -> (String, ConfigDir) {
    let id = ec2_instance(region, false, &[]).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[region], scenario_settings(Duration::from_secs(3))),
        &format!("ec2_instances:\n  - instance_id: {id}\n    region: {region}\n"),
    );
    (id, cfg)
}

/// The scenario, through AWS (moto): typing every 2 s for 40 s with
/// an 18 s timeout sleeps nothing; without typing it sleeps after the
/// timeout; one key wakes it.
#[tokio::test]
async fn typing_keeps_it_awake_idleness_sleeps_it_and_one_key_wakes_it() {
    const REGION: &str = "eu-west-3";
    let sway = Sway::from_env();
    let _seat = SEAT.lock().await;
    let (id, cfg) = scenario_instance(REGION).await;
    let d = start(&sway, &cfg);
    input_keeps_awake_idleness_sleeps_one_input_wakes(
        &d,
        "wayland_idle",
        NOTIFY,
        || sway.wtype("x"),
        async || ec2_state(REGION, &id).await.0,
        ("running", "stopped"),
    )
    .await;
}

/// Someone typing a key every 2 s, on a thread of its own, until stopped.
struct Typist {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Instant>,
}

impl Typist {
    fn start() -> Typist {
        let stop = Arc::new(AtomicBool::new(false));
        let theirs = stop.clone();
        let thread = std::thread::spawn(move || {
            let sway = Sway::from_env();
            loop {
                sway.wtype("t");
                let typed = Instant::now();
                while typed.elapsed() < Duration::from_secs(2) {
                    if theirs.load(Ordering::Relaxed) {
                        return typed;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Typist { stop, thread }
    }

    /// Stops typing; returns when the last key was typed.
    fn stop(self) -> Instant {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("typist")
    }
}

/// The case: cloudnap started while the user types every 2 s. The
/// compositor never says idle, so never "resumed" either: only its silence
/// past the timeout shows the user, seen within 7 s of the start, and the
/// instance stays up past the 18 s inactivity timeout. Once the typing
/// stops it sleeps after the timeout; a restart while nobody types wakes
/// nothing (the compositor says idle within the timeout); one key does.
#[tokio::test]
async fn started_mid_typing_it_sees_the_user_and_a_restart_while_away_wakes_nothing() {
    const REGION: &str = "eu-west-3";
    let sway = Sway::from_env();
    let _seat = SEAT.lock().await;
    let (id, cfg) = scenario_instance(REGION).await;
    let read = async || ec2_state(REGION, &id).await.0;

    let typist = Typist::start();
    let t0 = Instant::now();
    let d = spawn(&sway, &cfg);
    seen_within(&d, t0, Duration::from_secs(7), "wayland_idle").await;
    assert!(
        d.log
            .lock()
            .unwrap()
            .contains("no idle notice within 5s of binding"),
        "{}",
        d.log.lock().unwrap()
    );
    // Past the inactivity timeout (counted from the start) and more.
    while t0.elapsed() < SCENARIO_TIMEOUT + NOTIFY + Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            read().await,
            "running",
            "slept while typing ({:?} in)",
            t0.elapsed()
        );
    }
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["last_activity"]["kind"], "wayland_idle", "{status}");
    assert!(
        status["last_activity"]["seconds_ago"].as_f64().unwrap() < 5.5,
        "{status}"
    );

    let last_input = typist.stop();
    idleness_sleeps(&d, last_input, NOTIFY, &read, "stopped").await;
    drop(d);

    // Nobody types: the restarted source hears "idle" within the timeout.
    let d = spawn(&sway, &cfg);
    wait_log(
        &d.log,
        "wayland_idle: org_kde_kwin_idle",
        Duration::from_secs(5),
    );
    tokio::time::sleep(NOTIFY + GRACE + Duration::from_secs(2)).await;
    assert_eq!(read().await, "stopped", "a restart while away woke it");
    let status = d.ok("STATUS").await;
    assert!(status["last_activity"].is_null(), "{status}");
    assert_eq!(status["state"], "asleep", "{status}");
    assert!(!d.log.lock().unwrap().contains("no idle notice"));
    // It does listen: one key wakes it.
    one_input_wakes(&d, Duration::ZERO, || sway.wtype("k"), &read, "running").await;
}

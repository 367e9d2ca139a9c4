//! The GNOME idle source in the real `cloudnap run`, in headless mutter 43
//! (started by build/test.sh with a session bus of its own), with input
//! through mutter's RemoteDesktop D-Bus API: mutter offers no Wayland idle
//! protocol, only `org.gnome.Mutter.IdleMonitor`.
// D-Bus and Wayland: Linux desktops only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use std::time::{Duration, Instant};

/// The source's idle watch (`detect::gnome::NOTIFY_TIMEOUT`).
const NOTIFY: Duration = Duration::from_secs(5);

/// Starts `cloudnap run` in the mutter session and waits until its GNOME
/// source follows the IdleMonitor.
fn start(mutter: &Mutter, cfg: &ConfigDir) -> Daemon {
    let mut command = cfg.command(&["run"]);
    mutter.session(&mut command);
    let d = Daemon::spawn(command);
    wait_log(
        &d.log,
        "gnome_idle: org.gnome.Mutter.IdleMonitor",
        Duration::from_secs(5),
    );
    d
}

#[tokio::test]
async fn remote_desktop_input_is_gnome_activity_until_the_idle_watch_fires() {
    let mutter = Mutter::from_env();
    let _seat = SEAT.lock().await;
    let cfg = ConfigDir::with_settings(&daemon_settings(&["eu-north-1"], only_session_idle()), "");
    let d = start(&mutter, &cfg);
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.contains("Wayland session (Gnome desktop); detectors for it: gnome_idle"),
        "{log}"
    );
    let mut input = RemoteDesktop::start(&mutter);
    // Idle for longer than the watch, so the next input is a transition.
    tokio::time::sleep(NOTIFY + Duration::from_millis(500)).await;

    input.key();
    let status = d
        .wait_status(Duration::from_secs(2), "gnome activity", |s| {
            s["last_activity"]["kind"] == "gnome_idle"
                && s["last_activity"]["seconds_ago"].as_f64().unwrap() < 1.0
        })
        .await;
    eprintln!("after a key: {status}");

    // Input every second for 8 s: re-asserted though the one-shot watch
    // fired only once.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        input.pointer();
    }
    let ago = d.ok("STATUS").await["last_activity"]["seconds_ago"]
        .as_f64()
        .unwrap();
    assert!(ago <= 5.5, "not re-asserted while active: {ago}");

    // No input: silence once the idle watch fired.
    tokio::time::sleep(NOTIFY * 2 + Duration::from_secs(1)).await;
    let ago = d.ok("STATUS").await["last_activity"]["seconds_ago"]
        .as_f64()
        .unwrap();
    assert!(ago > 5.0, "still re-asserting while idle: {ago}");

    // And the re-armed active watch sees the next input.
    input.pointer();
    d.wait_status(Duration::from_secs(2), "gnome activity again", |s| {
        s["last_activity"]["seconds_ago"].as_f64().unwrap() < 1.0
    })
    .await;
}

/// An ECS service `api` at 3 tasks in a new cluster in `region` (moto),
/// registered in a config with the scenario's settings (18 s timeout, no
/// warning); returns the cluster's name.
async fn scenario_service(region: &str) -> (String, ConfigDir) {
    let cluster = unique("gnome");
    ecs_service(region, &cluster, "api", 3).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[region], scenario_settings(Duration::ZERO)),
        &format!(
            "ecs_services:\n  - cluster_name: {cluster}\n    service_name: api\n    region: {region}\n"
        ),
    );
    (cluster, cfg)
}

/// The scenario against `d`, with keys through `input`, on the
/// service of [`scenario_service`].
async fn keys_keep_awake_idleness_sleeps_one_key_wakes(
    d: &Daemon,
    input: &mut RemoteDesktop,
    region: &str,
    cluster: &str,
) {
    input_keeps_awake_idleness_sleeps_one_input_wakes(
        d,
        "gnome_idle",
        NOTIFY,
        || input.key(),
        async || format!("desired {}", ecs_desired(region, cluster, "api").await.0),
        ("desired 3", "desired 0"),
    )
    .await;
}

/// The scenario under GNOME, through AWS (moto), with an ECS
/// service at 3 tasks: a key every 2 s for 40 s with an 18 s timeout (no
/// warning) sleeps nothing; without input it sleeps (desired 0) after the
/// timeout; one key wakes it at exactly 3.
#[tokio::test]
async fn remote_desktop_keys_keep_it_awake_idleness_sleeps_it_and_one_key_wakes_it() {
    const REGION: &str = "eu-north-1";
    let mutter = Mutter::from_env();
    let _seat = SEAT.lock().await;
    let (cluster, cfg) = scenario_service(REGION).await;
    let d = start(&mutter, &cfg);
    let mut input = RemoteDesktop::start(&mutter);
    keys_keep_awake_idleness_sleeps_one_key_wakes(&d, &mut input, REGION, &cluster).await;
}

/// GNOME without `XDG_CURRENT_DESKTOP` (a user service that did not import
/// it): the IdleMonitor is found on the bus. Started while the user types,
/// the idle time read at the start shows them at once; then the issue's
/// scenario (keys keep the ECS service up, idleness sleeps it, one key
/// wakes it).
#[tokio::test]
async fn unnamed_gnome_is_found_on_the_bus_and_sees_typing_from_the_start() {
    const REGION: &str = "eu-north-1";
    let mutter = Mutter::from_env();
    let _seat = SEAT.lock().await;
    let (cluster, cfg) = scenario_service(REGION).await;
    let mut input = RemoteDesktop::start(&mutter);
    input.key();
    let t0 = Instant::now();
    let mut command = cfg.command(&["run"]);
    mutter.session(&mut command);
    command.env_remove("XDG_CURRENT_DESKTOP");
    let d = Daemon::spawn(command);
    // The idle time read at the start shows the key.
    wait_log(&d.log, "ms before the start", Duration::from_secs(5));
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.contains("Wayland session (Gnome desktop); detectors for it: gnome_idle"),
        "{log}"
    );
    seen_within(&d, t0, Duration::from_secs(7), "gnome_idle").await;
    keys_keep_awake_idleness_sleeps_one_key_wakes(&d, &mut input, REGION, &cluster).await;
}

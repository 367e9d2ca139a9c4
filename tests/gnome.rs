//! The GNOME idle source in the real `cloudnap run`, in headless mutter 43
//! (started by build/test.sh with a session bus of its own), with input
//! through mutter's RemoteDesktop D-Bus API: mutter offers no Wayland idle
//! protocol, only `org.gnome.Mutter.IdleMonitor`.

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use std::time::Duration;

/// The source's idle watch (`detect::gnome::NOTIFY_TIMEOUT`).
const NOTIFY: Duration = Duration::from_secs(5);

#[tokio::test]
async fn remote_desktop_input_is_gnome_activity_until_the_idle_watch_fires() {
    let mutter = Mutter::from_env();
    let cfg = ConfigDir::with_settings(&daemon_settings(&["eu-north-1"], only_session_idle()), "");
    let mut command = cfg.command(&["run"]);
    mutter.session(&mut command);
    let d = Daemon::spawn(command);
    wait_log(
        &d.log,
        "gnome_idle: org.gnome.Mutter.IdleMonitor",
        Duration::from_secs(5),
    );
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

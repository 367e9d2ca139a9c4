//! The pre-sleep warning on a real D-Bus session bus, against a fake
//! notification server exported by the test (`org.freedesktop.Notifications`
//! on a private `dbus-daemon --session`): the warning says what will sleep,
//! when and why, carries the *Keep awake* / *Sleep now* buttons where the
//! server supports actions, and a button the user chooses is carried out;
//! the expired-credentials notification's *Sign in* signs the SSO profile in
//! and what waits wakes.
// D-Bus and Wayland: Linux desktops only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;
#[path = "common/notifications.rs"]
mod notifications;
#[path = "common/sso.rs"]
mod sso_server;

use common::*;
use desktop::*;
use notifications::{daemon_on, serve, Shown, IFACE, PATH};
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const R: &str = "ca-central-1";

/// A daemon on `bus` (no display, activity from `USER_ACTIVITY` only) with a
/// 12 s timeout and a 9 s warning: the warning comes 3 s after the start.
async fn daemon_warning_on(bus: &PrivateBus) -> (ConfigDir, Daemon, String) {
    let id = ec2_instance(R, false, &[]).await;
    let services = format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n");
    let settings = daemon_settings(
        &[R],
        detectors_off(json!({
            "activity_monitor": {"inactivity_timeout_minutes": 0.2, "warning_minutes": 0.15}
        })),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);
    let d = daemon_on(bus, &cfg);
    (cfg, d, id)
}

/// Waits for the warning notification.
async fn warning(shown: &Mutex<Vec<Shown>>) -> Shown {
    let t0 = Instant::now();
    loop {
        if let Some(w) = shown
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.summary.contains("will sleep"))
        {
            return w.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no warning: {:?}",
            shown.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_warning_has_buttons_and_keep_awake_1h_holds_for_an_hour() {
    let bus = PrivateBus::start();
    let (conn, shown) = serve(&bus, &["actions", "body"]);
    let (_cfg, d, id) = daemon_warning_on(&bus).await;
    let w = warning(&shown).await;
    assert!(
        w.summary
            .starts_with("Your 1 resources will sleep in 1 minute (at "),
        "{w:?}"
    );
    assert!(w.body.starts_with(&id), "what will sleep: {w:?}");
    assert!(w.body.contains("Why: no input for "), "{w:?}");
    assert!(!w.body.contains("cloudnap hold"), "buttons instead: {w:?}");
    let keys: Vec<&str> = w.actions.iter().step_by(2).map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{w:?}");
    assert_eq!(keys[0], "keep-awake-1h");
    assert!(keys[1] == "keep-awake-evening" || keys[1] == "keep-awake-morning");
    assert_eq!(keys[2], "sleep");
    assert_eq!(w.actions[1], "Keep awake 1 h");
    assert_eq!(w.actions[5], "Sleep now");
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "warning", "{status}");

    // The user clicks "Keep awake 1 h" (the daemon listens once its
    // notification is out).
    tokio::time::sleep(Duration::from_millis(500)).await;
    conn.emit_signal(
        None::<()>,
        PATH,
        IFACE,
        "ActionInvoked",
        &(w.id, "keep-awake-1h"),
    )
    .unwrap();
    let status: Value = d
        .wait_status(Duration::from_secs(3), "held", |s| s["state"] == "paused")
        .await;
    let left = status["paused_for_seconds"].as_f64().unwrap();
    assert!((3590.0..=3600.0).contains(&left), "{status}");
    let hold = &status["holds"][0];
    let ends = hold["ends_in_seconds"].as_f64().unwrap();
    assert!((3590.0..=3600.0).contains(&ends), "{status}");
    assert_eq!(hold["reason"], "you", "{status}");
    assert_eq!(ec2_state(R, &id).await.0, "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_action_support_the_warning_says_how_to_keep_awake() {
    let bus = PrivateBus::start();
    let (_conn, shown) = serve(&bus, &["body"]);
    let (_cfg, _d, _id) = daemon_warning_on(&bus).await;
    let w = warning(&shown).await;
    assert!(w.actions.is_empty(), "{w:?}");
    assert!(w.body.ends_with("cloudnap hold 1h"), "{w:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_button_of_the_expired_credentials_notification_wakes_what_waits() {
    let bus = PrivateBus::start();
    let (conn, shown) = serve(&bus, &["actions", "body"]);
    let sso = sso_server::SsoServer::start(&["--pending", "1", "--role-ttl", "5"]);
    let id = ec2_instance(R, false, &[]).await;
    let services = format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n");
    let settings = daemon_settings(
        &[R],
        detectors_off(json!({
            "aws": {"profile": "work"},
            "activity_monitor": {"inactivity_timeout_minutes": 2, "warning_minutes": 0}
        })),
    );
    let cfg = sso_server::sso_config(&settings, &services);
    assert!(sso_server::login(&cfg, &sso, &["--profile", "work"])
        .status
        .success());
    let mut command = cfg.command(&["run"]);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", cfg.file("home"))
        .env("AWS_ENDPOINT_URL_SSO", &sso.url)
        .env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url)
        .env("BROWSER", "true");
    let d = Daemon::spawn(command);
    d.ok("SLEEP_NOW").await;
    assert_eq!(ec2_state(R, &id).await.0, "stopped");

    // The session ends; the user comes back: the notification says so.
    sso_server::end_sessions(&sso);
    d.ok("USER_ACTIVITY").await;
    let t0 = Instant::now();
    let note = loop {
        let found = (shown.lock().unwrap().iter())
            .find(|s| s.summary == "cloudnap: waking failed, trying again")
            .cloned();
        if let Some(n) = found {
            break n;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no notification: {:?}",
            shown.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The portal refuses the ended session's token: "credentials expired"
    // or "not accepted", each with the sign-in to do.
    assert!(
        note.body.starts_with("Credentials ") && note.body.contains(" for profile work: sign in"),
        "{note:?}"
    );
    assert_eq!(note.actions, ["sign-in", "Sign in"], "{note:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ec2_state(R, &id).await.0,
        "stopped",
        "nothing wakes without a sign-in"
    );

    // The user clicks "Sign in" and approves in the browser.
    conn.emit_signal(
        None::<()>,
        PATH,
        IFACE,
        "ActionInvoked",
        &(note.id, "sign-in"),
    )
    .unwrap();
    let t0 = Instant::now();
    while ec2_state(R, &id).await.0 != "running" {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "not awake; log: {}",
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("awake {:?} after the click", t0.elapsed());
    let shown = shown.lock().unwrap().clone();
    assert!(
        shown.iter().any(|s| s.summary == "cloudnap: sign in"
            && s.body == format!("Open {}/device and enter the code TEST-CODE", sso.url)),
        "the code is shown: {shown:?}"
    );
    assert!(
        sso.log().contains("bearer=test-access-token-2"),
        "{}",
        sso.log()
    );
}

//! The screen lock source in the real `cloudnap run`, against a fake
//! `org.freedesktop.ScreenSaver` and a fake logind, each exported by the
//! test on a private bus (the daemon's session bus and system bus).
// D-Bus and Wayland: Linux desktops only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value as DbusValue};

const SESSION_PATH: &str = "/org/freedesktop/login1/session/c7";

struct FakeManager;

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeManager {
    fn get_session(&self, id: String) -> zbus::fdo::Result<OwnedObjectPath> {
        if id == "c7" {
            Ok(ObjectPath::try_from(SESSION_PATH).unwrap().into())
        } else {
            Err(zbus::fdo::Error::Failed(format!("no session {id}")))
        }
    }
}

struct FakeSession;

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl FakeSession {
    #[zbus(property)]
    fn locked_hint(&self) -> bool {
        false
    }
}

/// A daemon whose session bus and system bus are `session` and `system`,
/// in logind session `c7`, with only the lock source (and no X display).
fn start(session: &PrivateBus, system: &PrivateBus) -> (ConfigDir, Daemon) {
    start_with(session, system, json!({}), "")
}

/// [`start`] with more settings and a services.yaml.
fn start_with(
    session: &PrivateBus,
    system: &PrivateBus,
    extra: Value,
    services: &str,
) -> (ConfigDir, Daemon) {
    let mut settings = json!({
        "keyboard": {"enabled": false}, "mouse": {"enabled": false},
        "screen": {"enabled": false}, "audio": {"enabled": false},
        "window": {"enabled": false}, "system_idle": {"enabled": false},
        "activity_monitor": {"inactivity_timeout_minutes": 10, "warning_minutes": 1}
    });
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let cfg = ConfigDir::with_settings(&daemon_settings(&["sa-east-1"], settings), services);
    let mut command = cfg.command(&["run"]);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("XDG_SESSION_TYPE")
        .env("XDG_SESSION_ID", "c7")
        .env("DBUS_SESSION_BUS_ADDRESS", &session.address)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &system.address);
    let d = Daemon::spawn(command);
    (cfg, d)
}

/// A fake `org.freedesktop.ScreenSaver` on `bus`.
struct ScreenSaver(zbus::blocking::Connection);

fn screensaver(bus: &PrivateBus) -> ScreenSaver {
    let conn = zbus::blocking::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.ScreenSaver")
        .unwrap()
        .build()
        .unwrap();
    ScreenSaver(conn)
}

impl ScreenSaver {
    /// Emits `ActiveChanged(active)`: the screen locked (true) or unlocked.
    fn active_changed(&self, active: bool) {
        self.0
            .emit_signal(
                None::<()>,
                "/org/freedesktop/ScreenSaver",
                "org.freedesktop.ScreenSaver",
                "ActiveChanged",
                &(active,),
            )
            .unwrap()
    }
}

/// [`start_with`], once the daemon follows `ActiveChanged`, and the fake
/// ScreenSaver that emits it.
fn following_screensaver(
    session: &PrivateBus,
    system: &PrivateBus,
    extra: Value,
    services: &str,
) -> (ConfigDir, Daemon, ScreenSaver) {
    let (cfg, d) = start_with(session, system, extra, services);
    wait_log(
        &d.log,
        "screen_lock: following ActiveChanged",
        Duration::from_secs(5),
    );
    (cfg, d, screensaver(session))
}

fn last_kind(status: &Value) -> Value {
    status["last_activity"]["kind"].clone()
}

#[tokio::test]
async fn screensaver_active_changed_is_locked_then_unlocked() {
    let (session, system) = (PrivateBus::start(), PrivateBus::start());
    let (_cfg, d, saver) = following_screensaver(&session, &system, json!({}), "");
    let active_changed = |active: bool| saver.active_changed(active);
    let before = d.ok("STATUS").await;
    assert!(before["last_activity"].is_null(), "{before}");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    active_changed(true);
    wait_log(
        &d.log,
        "screen locked (org.freedesktop.ScreenSaver)",
        Duration::from_secs(2),
    );
    // Not activity: the countdown becomes the 2-minute lock grace.
    let locked = d
        .wait_status(Duration::from_secs(2), "in the lock grace", |s| {
            s["sleep_in_seconds"].as_f64().unwrap_or(f64::MAX) <= 120.0
        })
        .await;
    assert!(locked["last_activity"].is_null(), "{locked}");
    assert!(
        locked["sleep_in_seconds"].as_f64() < before["sleep_in_seconds"].as_f64(),
        "the lock reset the countdown: {before} then {locked}"
    );
    active_changed(true); // no change: not reported again
    active_changed(false);
    let unlocked = d
        .wait_status(Duration::from_secs(2), "unlocked", |s| {
            last_kind(s) == "unlocked"
        })
        .await;
    assert!(unlocked["sleep_in_seconds"].as_f64() > locked["sleep_in_seconds"].as_f64());
    assert_eq!(d.log.lock().unwrap().matches("screen locked").count(), 1);
}

#[tokio::test]
async fn logind_lock_unlock_and_locked_hint() {
    let (session, system) = (PrivateBus::start(), PrivateBus::start());
    let logind = zbus::blocking::connection::Builder::address(system.address.as_str())
        .unwrap()
        .name("org.freedesktop.login1")
        .unwrap()
        .serve_at("/org/freedesktop/login1", FakeManager)
        .unwrap()
        .serve_at(SESSION_PATH, FakeSession)
        .unwrap()
        .build()
        .unwrap();
    let (_cfg, d) = start(&session, &system);
    wait_log(
        &d.log,
        &format!("screen_lock: following logind session {SESSION_PATH}"),
        Duration::from_secs(5),
    );
    let signal = |member: &str| {
        logind
            .emit_signal(
                None::<()>,
                SESSION_PATH,
                "org.freedesktop.login1.Session",
                member,
                &(),
            )
            .unwrap()
    };
    let locked_hint = |locked: bool| {
        let changed = HashMap::from([("LockedHint", DbusValue::from(locked))]);
        logind
            .emit_signal(
                None::<()>,
                SESSION_PATH,
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                &(
                    "org.freedesktop.login1.Session",
                    changed,
                    Vec::<String>::new(),
                ),
            )
            .unwrap()
    };

    let two_s = Duration::from_secs(2);
    signal("Lock");
    wait_log_times(&d.log, "screen locked (logind)", 1, two_s);
    assert!(d.ok("STATUS").await["last_activity"].is_null());
    locked_hint(true); // the locker confirms: no change
    signal("Unlock");
    d.wait_status(two_s, "unlocked", |s| last_kind(s) == "unlocked")
        .await;
    locked_hint(true);
    wait_log_times(&d.log, "screen locked (logind)", 2, two_s);
    locked_hint(false);
    wait_log_times(&d.log, "screen unlocked (logind)", 2, two_s);
    let log = d.log.lock().unwrap().clone();
    assert_eq!(log.matches("screen locked").count(), 2, "{log}");
    assert_eq!(log.matches("screen unlocked").count(), 2, "{log}");
}

#[tokio::test]
async fn a_lock_sleeps_after_the_short_grace_and_an_unlock_wakes_exactly() {
    let (session, system) = (PrivateBus::start(), PrivateBus::start());
    let region = "sa-east-1";
    let cluster = unique("lock");
    ecs_service(region, &cluster, "api", 3).await;
    let services = format!(
        "ecs_services:\n  - cluster_name: {cluster}\n    service_name: api\n    region: {region}\n"
    );
    let extra = json!({"screen_lock": {"lock_grace_minutes": 0.05},
        "activity_monitor": {"inactivity_timeout_minutes": 30, "warning_minutes": 0}});
    let (_cfg, d, saver) = following_screensaver(&session, &system, extra, &services);
    let active_changed = |active: bool| saver.active_changed(active);
    let status = d.ok("STATUS").await;
    assert!(
        status["sleep_in_seconds"].as_f64().unwrap() > 29.0 * 60.0,
        "{status}"
    );
    let locked_at = std::time::Instant::now();
    active_changed(true);
    // A 3-second grace instead of 30 minutes.
    d.wait_status(
        Duration::from_secs(15),
        "asleep after the lock grace",
        |s| s["state"] == "asleep" && s["operation"].is_null(),
    )
    .await;
    let took = locked_at.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "slept before the grace: {took:?}"
    );
    assert_eq!(ecs_desired(region, &cluster, "api").await.0, 0);
    active_changed(false);
    d.wait_status(Duration::from_secs(10), "awake after the unlock", |s| {
        s["state"] == "active" && s["operation"].is_null() && s["asleep"] == json!([])
    })
    .await;
    assert_eq!(
        ecs_desired(region, &cluster, "api").await.0,
        3,
        "exactly as before"
    );
}

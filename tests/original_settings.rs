//! settings.json in the original cloudnap's layout (the detector sections
//! inside `activity_monitor`), read by the real binary: the detectors it
//! turns off are off in `STATUS` over real UDP, and nothing is warned about.

mod common;
use common::*;
use serde_json::json;

/// The state of each detector row in `status`, by name.
fn states(status: &serde_json::Value) -> Vec<(String, String)> {
    (status["detectors"].as_array().unwrap().iter())
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_string();
            (name, r["state"].as_str().unwrap().to_string())
        })
        .collect()
}

/// `name`'s state in `status`.
fn state(status: &serde_json::Value, name: &str) -> String {
    states(status)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} row in {status}"))
        .1
}

/// `cloudnap run` with `settings` and no display: every detector turned
/// off says `disabled`, the others `starting`, `running` or
/// `not_available`.
fn daemon(settings: serde_json::Value) -> (ConfigDir, Daemon) {
    let cfg = ConfigDir::with_settings(&daemon_settings(&["eu-north-1"], settings), "");
    let mut command = cfg.command(&["run"]);
    for var in ["DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"] {
        command.env_remove(var);
    }
    (cfg, Daemon::spawn(command))
}

/// `STATUS` once the detectors are planned (just after the start).
async fn planned(d: &Daemon) -> serde_json::Value {
    let limit = std::time::Duration::from_secs(10);
    d.wait_status(limit, "the detectors planned", |s| {
        s["detectors"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn detectors_turned_off_inside_activity_monitor_are_off_and_nothing_is_warned() {
    let (_cfg, d) = daemon(json!({"activity_monitor": {
        "inactivity_timeout_minutes": 30,
        "keyboard": {"enabled": false, "debounce_ms": 100},
        "mouse": {"enabled": false, "debounce_ms": 100, "movement_threshold": 10},
        "screen": {"enabled": false, "capture_interval_sec": 10, "change_threshold": 0.01},
        "system_idle": {"enabled": false},
        "window": {"enabled": true, "check_interval_sec": 2}
    }}));
    let status = planned(&d).await;
    for name in [
        "keyboard/mouse",
        "screen",
        "system_idle",
        "wayland_idle",
        "gnome_idle",
    ] {
        assert_eq!(state(&status, name), "disabled", "{name}: {status}");
    }
    // Left on (and with no display, not available): the layout turned off
    // only what it said.
    for name in ["window", "audio"] {
        assert_ne!(state(&status, name), "disabled", "{name}: {status}");
    }
    assert_eq!(status["inputs"], "disabled in settings", "{status}");
    let log = d.log.lock().unwrap().clone();
    assert!(!log.contains("settings.json"), "a warning: {log}");
    assert!(!log.contains("unknown key"), "a warning: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nested_section_wins_over_the_top_level_one_and_the_original_keys_are_explained() {
    let (_cfg, d) = daemon(json!({
        "activity_monitor": {"audio": {"enabled": false}},
        "audio": {"enabled": true},
        "screen": {"enabled": false},
        "aws": {"credentials": {"access_key_id": "AKIAEXAMPLE"}}
    }));
    let status = planned(&d).await;
    assert_eq!(state(&status, "audio"), "disabled", "{status}");
    // A top-level section alone still counts (older cloudnap files).
    assert_eq!(state(&status, "screen"), "disabled", "{status}");
    assert_ne!(state(&status, "window"), "disabled", "{status}");
    let log = d.log.lock().unwrap().clone();
    assert!(
        log.contains("`audio` is set both inside `activity_monitor` and at the top level"),
        "{log}"
    );
    assert!(
        log.contains("`aws.credentials` (a key of the original cloudnap) is not used"),
        "{log}"
    );
    assert!(!log.contains("AKIAEXAMPLE"), "{log}");
    assert!(!log.contains("unknown key"), "{log}");
}

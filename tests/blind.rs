//! A cloudnap that cannot see the user never sleeps by itself: the real
//! binary with no display, no Wayland and no session bus, against moto.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn with_no_display_it_is_blind_sleeps_nothing_and_sleep_now_still_works() {
    let region = "eu-north-1";
    let cluster = unique("blind");
    ecs_service(region, &cluster, "api", 2).await;
    let services = format!(
        "ecs_services:\n  - cluster_name: {cluster}\n    service_name: api\n    region: {region}\n"
    );
    // A 3-second timeout; every detector left on, as a new user would; a
    // fixed port, so that `cloudnap status` finds the daemon.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = daemon_settings(
        &[region],
        json!({"activity_monitor": {"inactivity_timeout_minutes": 0.05, "warning_minutes": 0},
               "udp_server": {"port": port}}),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);
    let mut command = cfg.command(&["run"]);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("XDG_SESSION_TYPE")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let d = Daemon::spawn(command);

    let status = d
        .wait_status(Duration::from_secs(10), "blind", |s| s["state"] == "blind")
        .await;
    assert_eq!(status["inputs"], "blind", "{status}");
    let detectors = status["detectors"].as_array().unwrap();
    for name in [
        "keyboard/mouse",
        "system_idle",
        "wayland_idle",
        "gnome_idle",
    ] {
        let row = detectors
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {status}"));
        assert_eq!(row["input"], true, "{row}");
        assert_eq!(row["state"], "not_available", "{row}");
        assert!(
            row["why"].as_str().unwrap().contains("without a display"),
            "{row}"
        );
    }
    // The log line is read from the daemon's stderr by another thread.
    let logged = std::time::Instant::now();
    while !d
        .log
        .lock()
        .unwrap()
        .contains("no detector can see user input")
    {
        assert!(
            logged.elapsed() < Duration::from_secs(5),
            "no blind warning in the log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // `cloudnap status` shows the running daemon's detectors too.
    let out = cfg.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("inputs blind"), "{text}");
    assert!(
        text.contains("system_idle      not available (not used in a session without a display)"),
        "{text}"
    );

    // Three times the timeout: nothing was stopped.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "blind", "{status}");
    assert_eq!(ecs_desired(region, &cluster, "api").await.0, 2);

    // SLEEP_NOW still works, and WAKE_NOW restores exactly.
    let report = d.ok("SLEEP_NOW").await;
    assert_eq!(report[0]["action"], "stopped", "{report}");
    assert_eq!(ecs_desired(region, &cluster, "api").await.0, 0);
    d.ok("WAKE_NOW").await;
    assert_eq!(ecs_desired(region, &cluster, "api").await.0, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn input_detectors_turned_off_on_purpose_are_not_blind() {
    let settings = daemon_settings(
        &["eu-north-1"],
        json!({"keyboard": {"enabled": false}, "mouse": {"enabled": false},
               "system_idle": {"enabled": false}}),
    );
    let cfg = ConfigDir::with_settings(&settings, "");
    let mut command = cfg.command(&["run"]);
    command.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let d = Daemon::spawn(command);
    let status = d.ok("STATUS").await;
    assert_eq!(status["inputs"], "disabled in settings", "{status}");
    assert_eq!(status["state"], "active", "{status}");
}

//! The tray icon and the warning under a panel and a notification daemon
//! users run, on an X display of their own (build/env.sh start_xfce_panel):
//! xfce4-panel's notification area shows the icon and opens its menu on a
//! click, whose "Sleep now" puts the instance to sleep; dunst shows the
//! warning, and its own control command (`dunstctl context`, the context
//! menu of the notification's actions) invoking "Keep awake 1 h" creates the
//! hold. Screenshots are kept under $CLOUDNAP_ARTIFACTS.
// D-Bus and X11 desktops: Linux only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use serde_json::json;
use std::time::{Duration, Instant};

const R: &str = "ap-south-1";

/// `cloudnap run` on the xfce display and bus, one instance registered, no
/// detector on: only the timer and the buttons act.
async fn daemon(xfce: &Xfce, monitor: serde_json::Value) -> (ConfigDir, Daemon, String) {
    let id = ec2_instance(R, false, &[]).await;
    let services = format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n");
    let settings = daemon_settings(
        &[R],
        detectors_off(json!({"desktop": {"tray": true}, "activity_monitor": monitor})),
    );
    let cfg = ConfigDir::with_settings(&settings, &services);
    let mut command = cfg.command(&["run"]);
    xfce.session(&mut command);
    (cfg, Daemon::spawn(command), id)
}

/// The centre of the green (active) icon in the panel at the top, if shown.
fn green_icon(screen: &image::RgbImage) -> Option<(u32, u32)> {
    let (mut n, mut sx, mut sy) = (0u32, 0u32, 0u32);
    for (x, y, p) in screen.enumerate_pixels().filter(|(_, y, _)| *y < 40) {
        let [r, g, b] = p.0.map(i32::from);
        if g > r + 30 && g > b + 30 {
            (n, sx, sy) = (n + 1, sx + x, sy + y);
        }
    }
    (n > 30).then(|| (sx / n, sy / n))
}

/// Mean brightness of the area just below `(x, y)`: where the menu opens
/// (the bare root window is black).
fn brightness_below(screen: &image::RgbImage, (x, y): (u32, u32)) -> f64 {
    let (mut n, mut sum) = (0.0, 0.0);
    for px in x.saturating_sub(60)..(x + 60).min(screen.width()) {
        for py in y + 40..y + 100 {
            sum += screen
                .get_pixel(px, py)
                .0
                .iter()
                .map(|c| f64::from(*c))
                .sum::<f64>()
                / 3.0;
            n += 1.0;
        }
    }
    sum / n
}

#[tokio::test(flavor = "multi_thread")]
async fn the_icon_in_xfce4_panel_opens_its_menu_and_sleep_now_sleeps() {
    let xfce = Xfce::from_env();
    let _seat = SEAT.lock().await;
    let (_cfg, d, id) = daemon(&xfce, json!({"inactivity_timeout_minutes": 30})).await;
    let t0 = Instant::now();
    let at = loop {
        if let Some(at) = green_icon(&xfce.capture()) {
            break at;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no icon in xfce4-panel:\n{}",
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    xfce.screenshot("xfce4-panel-tray.png");
    let before = brightness_below(&xfce.capture(), at);
    assert!(
        before < 40.0,
        "something is already below the icon: {before}"
    );

    // A right click opens the menu the panel builds from our D-Bus menu.
    let (x, y) = (at.0.to_string(), at.1.to_string());
    xfce.run("xdotool", &["mousemove", &x, &y, "click", "3"]);
    let t0 = Instant::now();
    while brightness_below(&xfce.capture(), at) < 150.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the menu did not open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    xfce.screenshot("xfce4-panel-menu.png");
    // Its first item under the (disabled) status line: Sleep now.
    for key in ["Down", "Return"] {
        xfce.run("xdotool", &["key", key]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ec2_stopped_within(&d, (R, &id), Instant::now(), Duration::from_secs(10)).await;
    d.wait_status(Duration::from_secs(5), "asleep", |s| s["state"] == "asleep")
        .await;
    d.logged("SleepNow: SleepNow").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dunst_shows_the_warning_and_dunstctl_keep_awake_1h_holds() {
    let xfce = Xfce::from_env();
    let _seat = SEAT.lock().await;
    xfce.run("dunstctl", &["close-all"]);
    // A 12 s timeout and a 9 s warning: the warning comes 3 s after the start.
    let monitor = json!({"inactivity_timeout_minutes": 0.2, "warning_minutes": 0.15});
    let (_cfg, d, id) = daemon(&xfce, monitor).await;
    d.wait_status(Duration::from_secs(15), "warning", |s| {
        s["state"] == "warning"
    })
    .await;
    let t0 = Instant::now();
    while xfce.run("dunstctl", &["count", "displayed"]) == "0" {
        assert!(t0.elapsed() < Duration::from_secs(5), "dunst shows nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    xfce.screenshot("dunst-warning.png");

    // The entry a user picks from dunst's context menu (dunst's dmenu reads
    // it from dunst-pick): the warning's "Keep awake 1 h".
    std::fs::write(
        format!("{}/dunst-pick", xfce.home),
        "Keep awake 1 h (Your 1 resources will sleep",
    )
    .unwrap();
    xfce.run("dunstctl", &["context"]);
    let status = d
        .wait_status(Duration::from_secs(5), "held", |s| s["state"] == "paused")
        .await;
    let hold = &status["holds"][0];
    let ends = hold["ends_in_seconds"].as_f64().unwrap();
    assert!((3580.0..=3600.0).contains(&ends), "{status}");
    assert_eq!(hold["reason"], "you", "{status}");
    d.logged("KeepAwakeHour: Hold").await;
    // Held past the timeout: still up.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(ec2_state(R, &id).await.0, "running");
    assert_eq!(d.ok("STATUS").await["state"], "paused");
}

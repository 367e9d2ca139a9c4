//! The activity detectors against a real X server (Xvfb with openbox) and
//! PulseAudio, and real input injected with xdotool.

mod common;
// The detectors run in this process: its environment names the X server
// and PulseAudio.
common::before_main!(X, Pulse);
use cloudnap::core::config::settings::Settings;
use cloudnap::core::model::activity::{Activity, ActivityKind};
use cloudnap::detect::{self, session::SessionEnv};
use common::{require_display, require_pulse, xdotool};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// One test at a time: they share the X server's input.
static X: Mutex<()> = Mutex::new(());

/// Starts the sources enabled by `settings_json` (all others disabled).
fn start(settings_json: &str) -> mpsc::UnboundedReceiver<Activity> {
    require_display();
    let base = r#"{"keyboard":{"enabled":false},"mouse":{"enabled":false},"window":{"enabled":false},
        "system_idle":{"enabled":false},"screen":{"enabled":false},"audio":{"enabled":false},
        "microphone":{"enabled":false},"screen_lock":{"enabled":false}}"#;
    let mut merged: serde_json::Value = serde_json::from_str(base).unwrap();
    let extra: serde_json::Value = serde_json::from_str(settings_json).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        merged[k] = v.clone();
    }
    let (settings, _) = Settings::parse(&merged.to_string()).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let x11 = SessionEnv {
        session_type: Some("x11".into()),
        display: true,
        ..SessionEnv::default()
    };
    let (rows, planned) = detect::plan(&settings, &x11);
    detect::start(
        planned,
        &detect::Sink::new(tx),
        &detect::Health::new(rows, |_| {}),
    );
    rx
}

/// The kinds seen within `wait`.
fn seen(rx: &mut mpsc::UnboundedReceiver<Activity>, wait: Duration) -> Vec<ActivityKind> {
    std::thread::sleep(wait);
    let mut out = Vec::new();
    while let Ok(a) = rx.try_recv() {
        out.push(a.kind);
    }
    out
}

/// Waits up to 1 s for `kind`.
fn within_1s(rx: &mut mpsc::UnboundedReceiver<Activity>, kind: ActivityKind) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        if let Ok(a) = rx.try_recv() {
            if a.kind == kind {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no {kind:?} activity within 1 s");
}

#[test]
fn keyboard_and_mouse_are_seen_and_a_jiggle_is_not() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    let mut rx = start(
        r#"{"keyboard":{"enabled":true,"debounce_ms":50},
        "mouse":{"enabled":true,"debounce_ms":50,"movement_threshold":10}}"#,
    );
    std::thread::sleep(Duration::from_millis(500)); // the RECORD context starts
    xdotool(&["mousemove", "100", "100"]);
    seen(&mut rx, Duration::from_millis(200));

    xdotool(&["key", "a"]);
    within_1s(&mut rx, ActivityKind::Keyboard);

    seen(&mut rx, Duration::from_millis(100));
    xdotool(&["mousemove_relative", "3", "2"]);
    xdotool(&["mousemove_relative", "--", "-2", "3"]);
    assert_eq!(
        seen(&mut rx, Duration::from_secs(1)),
        vec![],
        "a sub-threshold jiggle"
    );

    xdotool(&["mousemove", "400", "300"]);
    within_1s(&mut rx, ActivityKind::Mouse);
    std::thread::sleep(Duration::from_millis(100));
    xdotool(&["click", "1"]);
    within_1s(&mut rx, ActivityKind::Mouse);
}

#[test]
fn the_x_server_idle_time_reports_input() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    let mut rx = start(r#"{"system_idle":{"enabled":true,"check_interval_sec":0.2}}"#);
    std::thread::sleep(Duration::from_millis(800));
    seen(&mut rx, Duration::ZERO);
    assert_eq!(
        seen(&mut rx, Duration::from_secs(1)),
        vec![],
        "no input, no activity"
    );
    xdotool(&["key", "b"]);
    within_1s(&mut rx, ActivityKind::SystemIdle);
}

#[test]
fn switching_focus_is_activity_and_keeping_it_is_not() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    require_display();
    let spawn = |title: &str| {
        Command::new("xmessage")
            .args(["-title", title, title])
            .spawn()
            .unwrap()
    };
    let mut one = spawn("cloudnap-one");
    let mut two = spawn("cloudnap-two");
    let activate = |title: &str| {
        for _ in 0..50 {
            let ok = Command::new("xdotool")
                .args([
                    "search",
                    "--sync",
                    "--name",
                    title,
                    "windowactivate",
                    "--sync",
                ])
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot activate {title}");
    };
    // Both windows mapped (a late one would take the focus), then one focused.
    activate("cloudnap-two");
    activate("cloudnap-one");
    std::thread::sleep(Duration::from_millis(300));
    let mut rx = start(r#"{"window":{"enabled":true,"check_interval_sec":0.2}}"#);
    assert_eq!(seen(&mut rx, Duration::from_secs(1)), vec![], "focus kept");
    activate("cloudnap-two");
    within_1s(&mut rx, ActivityKind::Window);
    activate("cloudnap-one");
    within_1s(&mut rx, ActivityKind::Window);
    // The focused window's title changing (a browser's tab) is activity;
    // another window's is not.
    let rename = |from: &str, to: &str| {
        let ok = Command::new("xdotool")
            .args(["search", "--name", from, "set_window", "--name", to])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot rename {from}");
    };
    seen(&mut rx, Duration::from_millis(500));
    rename("^cloudnap-two$", "cloudnap-two, renamed");
    assert_eq!(
        seen(&mut rx, Duration::from_secs(1)),
        vec![],
        "another's title"
    );
    rename("^cloudnap-one$", "cloudnap-one, renamed");
    within_1s(&mut rx, ActivityKind::Window);
    for w in [&mut one, &mut two] {
        let _ = w.kill();
        let _ = w.wait();
    }
}

#[test]
fn a_key_press_reaches_the_running_app() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    require_display();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(key_press_reaches_the_app());
}

async fn key_press_reaches_the_app() {
    let cfg = common::ConfigDir::with_settings(
        &common::daemon_settings(&["us-east-1"], serde_json::json!({})),
        "",
    );
    let d = common::Daemon::start(&cfg);
    tokio::time::sleep(Duration::from_millis(800)).await; // detectors start
    let pressed = std::time::Instant::now();
    xdotool(&["key", "c"]);
    loop {
        let status = d.ok("STATUS").await;
        if status["last_activity"]["kind"] == "keyboard" {
            break;
        }
        assert!(pressed.elapsed() < Duration::from_secs(1), "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn drawing_a_window_changes_the_screen_and_a_static_screen_does_not() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    let mut rx =
        start(r#"{"screen":{"enabled":true,"capture_interval_sec":0.3,"change_threshold":0.01}}"#);
    assert_eq!(
        seen(&mut rx, Duration::from_secs(2)),
        vec![],
        "a static screen over several intervals"
    );
    let mut big = Command::new("xmessage")
        .args([
            "-geometry",
            "900x600+100+100",
            "-title",
            "cloudnap-big",
            "a big window",
        ])
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut fired = false;
    while t0.elapsed() < Duration::from_secs(3) && !fired {
        fired = seen(&mut rx, Duration::from_millis(100)).contains(&ActivityKind::Screen);
    }
    let _ = big.kill();
    let _ = big.wait();
    assert!(fired, "opening a window fires the screen source");
}

/// A 440 Hz tone, generated with sox.
fn tone() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cloudnap-tone-{}.wav", std::process::id()));
    let ok = Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2"])
        .arg(&path)
        .args(["synth", "6", "sine", "440"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "sox");
    path
}

#[test]
fn sound_playing_on_the_output_is_activity_but_silence_and_a_microphone_are_not() {
    require_pulse();
    let wav = tone();
    let mut rx =
        start(r#"{"audio":{"enabled":true,"check_interval_sec":0.5,"volume_threshold":0.01}}"#);
    // The capture stream takes a moment to deliver; then silence must not count.
    std::thread::sleep(Duration::from_secs(3));
    seen(&mut rx, Duration::ZERO);
    assert_eq!(seen(&mut rx, Duration::from_secs(2)), vec![], "silence");

    // The tone into the stand-in microphone (another sink) is not output.
    let played = Command::new("paplay")
        .args(["--device", "micsink"])
        .arg(&wav)
        .status()
        .unwrap();
    assert!(played.success());
    assert_eq!(
        seen(&mut rx, Duration::from_millis(500)),
        vec![],
        "microphone"
    );

    // The tone on the default output is.
    let mut player = Command::new("paplay").arg(&wav).spawn().unwrap();
    let t0 = std::time::Instant::now();
    let mut fired = false;
    while t0.elapsed() < Duration::from_secs(6) && !fired {
        fired = seen(&mut rx, Duration::from_millis(100)).contains(&ActivityKind::Audio);
    }
    let _ = player.kill();
    let _ = player.wait();
    let _ = std::fs::remove_file(&wav);
    assert!(fired, "a tone on the output fires the audio source");
}

//! The Windows build, run: `cloudnap.exe` (cross-built by
//! `build/windows.sh build`, whose path build/test.sh passes as
//! `CLOUDNAP_WINDOWS_EXE`) under Wine, against moto, driven from Linux.
//!
//! Fails, never skips, when the exe or Wine is missing. The X server (Xvfb
//! with openbox) is for the detector test only; the others run Wine with no
//! display.
#![cfg(target_os = "linux")]

mod common;
common::before_main!(X);
use common::*;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const REGION: &str = "eu-north-1";
const WINE: &str = "/usr/lib/wine/wine64";

/// The cross-built exe, with the test-only `bcryptprimitives.dll` beside it.
fn exe() -> PathBuf {
    let exe = std::env::var_os("CLOUDNAP_WINDOWS_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("target-win/x86_64-pc-windows-gnu/debug/cloudnap.exe"));
    for f in [exe.clone(), exe.with_file_name("bcryptprimitives.dll")] {
        assert!(
            f.is_file(),
            "{} is missing: run build/windows.sh build (build/test.sh does)",
            f.display()
        );
    }
    exe
}

/// A private Wine prefix with no display, created once (kept between runs
/// in the target dir).
fn prefix() -> &'static PathBuf {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| init_prefix("wineprefix", false))
}

/// A Wine prefix (own wineserver) on the test's X display.
fn x_prefix() -> &'static PathBuf {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| init_prefix("wineprefix-x", true))
}

fn init_prefix(name: &str, display: bool) -> PathBuf {
    assert!(
        std::path::Path::new(WINE).is_file(),
        "{WINE} is missing: apt-get install wine64 (build/test.sh does)"
    );
    let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let ok = wine_env(&mut Command::new(WINE), &prefix, display)
        .args(["wineboot", "--init"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "wineboot --init failed in {}", prefix.display());
    prefix
}

/// Wine's environment: `prefix`, no debug channels, no Mono/Gecko
/// installers, and the test's X display or none.
fn wine_env<'a>(c: &'a mut Command, prefix: &PathBuf, display: bool) -> &'a mut Command {
    c.env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("WAYLAND_DISPLAY");
    if !display {
        c.env_remove("DISPLAY");
    }
    c
}

/// `wine64 cloudnap.exe --config-dir DIR args...` with moto credentials. A
/// Unix path such as the config dir's `/tmp/...` is, to a Windows program,
/// a path on the current drive, which Wine maps to `/` (`Z:`).
fn exe_command(cfg: &ConfigDir, args: &[&str]) -> Command {
    let exe = exe();
    let mut c = cfg.command_via(WINE, &[exe.to_str().unwrap()], args);
    wine_env(&mut c, prefix(), false);
    c
}

fn run(cfg: &ConfigDir, args: &[&str]) -> Output {
    let out = exe_command(cfg, args).output().unwrap();
    eprintln!(
        "$ wine64 cloudnap.exe {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An EC2 instance and an ECS service at 3 tasks, registered in a config dir.
struct Fleet {
    instance: String,
    cluster: String,
}

impl Fleet {
    async fn create() -> Fleet {
        let cluster = unique("win");
        ecs_service(REGION, &cluster, "web", 3).await;
        Fleet {
            instance: ec2_instance(REGION, false, &[]).await,
            cluster,
        }
    }

    fn services_yaml(&self) -> String {
        format!(
            "ec2_instances:\n  - instance_id: {}\n    region: {REGION}\necs_services:\n  - cluster_name: {}\n    service_name: web\n    region: {REGION}\n",
            self.instance, self.cluster
        )
    }

    /// (EC2 state, ECS desired count).
    async fn state(&self) -> (String, i32) {
        (
            ec2_state(REGION, &self.instance).await.0,
            ecs_desired(REGION, &self.cluster, "web").await.0,
        )
    }

    async fn assert_asleep(&self) {
        assert_eq!(self.state().await, ("stopped".to_string(), 0));
    }

    async fn assert_awake(&self) {
        assert_eq!(self.state().await, ("running".to_string(), 3));
    }
}

/// Settings for `run`: moto, detectors off, an ephemeral UDP port, and
/// commands from other users accepted (see
/// [`a_linux_client_is_refused_when_the_owner_check_cannot_see_it`]).
fn run_settings(extra: serde_json::Value) -> String {
    let mut extra = detectors_off(extra);
    extra["udp_server"]["allow_other_users"] = true.into();
    daemon_settings(&[REGION], extra)
}

#[tokio::test(flavor = "multi_thread")]
async fn check_sleep_status_and_wake_are_exact() {
    let fleet = Fleet::create().await;
    let cfg = ConfigDir::new(&[REGION], &fleet.services_yaml());

    let out = run(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("123456789012"),
        "the account from STS"
    );

    let out = run(&cfg, &["sleep"]);
    assert_eq!(out.status.code(), Some(0));
    fleet.assert_asleep().await;
    assert!(cfg.file("state.json").is_file());

    let out = run(&cfg, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let web = status_row(&out, "web");
    assert_eq!(web["asleep"]["desired"], 3, "{web}");

    let out = run(&cfg, &["wake"]);
    assert_eq!(out.status.code(), Some(0));
    fleet.assert_awake().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_answers_status_over_udp_and_a_second_run_is_refused() {
    let cfg = ConfigDir::with_settings(&run_settings(serde_json::json!({})), "");
    let d = Daemon::spawn(exe_command(&cfg, &["run"]));
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");

    let out = run(&cfg, &["run"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cloudnap is already running (use `cloudnap send STATUS`)"),
        "the same refusal as on Linux"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_while_asleep_still_wakes_exactly() {
    let fleet = Fleet::create().await;
    let cfg =
        ConfigDir::with_settings(&run_settings(serde_json::json!({})), &fleet.services_yaml());
    let mut d = Daemon::spawn(exe_command(&cfg, &["run"]));
    d.ok("SLEEP_NOW").await;
    d.wait_status(Duration::from_secs(60), "asleep", |s| {
        s["state"] == "asleep"
    })
    .await;
    fleet.assert_asleep().await;

    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let d = Daemon::spawn(exe_command(&cfg, &["run"]));
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "asleep", "{status}");
    d.ok("WAKE_NOW").await;
    d.wait_status(Duration::from_secs(60), "awake", |s| s["state"] == "active")
        .await;
    fleet.assert_awake().await;
}

/// Fail safe: Wine cannot say which process owns a Linux socket, so by
/// default (no `allow_other_users`) a Linux client's command is refused
/// with the owner check's error, and nothing is done.
#[tokio::test(flavor = "multi_thread")]
async fn a_linux_client_is_refused_when_the_owner_check_cannot_see_it() {
    let settings = daemon_settings(&[REGION], detectors_off(serde_json::json!({})));
    let cfg = ConfigDir::with_settings(&settings, "");
    let d = Daemon::spawn(exe_command(&cfg, &["run"]));
    let error = d.err("SLEEP_NOW").await;
    assert_eq!(
        error,
        "permission denied: could not tell which user sent this (the system names no process owning the sending socket)"
    );
    // The log line may come a moment after the reply.
    let t0 = std::time::Instant::now();
    while !d.log.lock().unwrap().contains("refused a command from") {
        let log = d.log.lock().unwrap().clone();
        assert!(t0.elapsed() < Duration::from_secs(5), "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With the tray on, under Wine on an X display: tray-icon's Windows
/// backend publishes the icon (`Shell_NotifyIcon` accepts it) from its
/// winit loop on the tray thread, and the daemon answers meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn the_tray_icon_is_published_by_the_windows_backend() {
    require_display();
    let _turn = X_DISPLAY.lock().await;
    let (_cfg, d) = x_daemon(serde_json::json!({ "desktop": { "tray": true } }));
    let t0 = std::time::Instant::now();
    while !d.log.lock().unwrap().contains("tray icon shown") {
        let log = d.log.lock().unwrap().clone();
        assert!(!log.contains("no tray icon"), "{log}");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no tray after 30 s: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
}

/// A child process killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tests on the X display take turns (each finds its notepad by name).
static X_DISPLAY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The ids of the windows named Notepad on the test's X display.
fn notepad_windows() -> Vec<String> {
    let out = Command::new("xdotool")
        .args(["search", "--name", "Notepad"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Wine's notepad on the test's X display, and its window id: a window
/// that was not there before (an earlier test's may still be closing).
fn notepad() -> (Killed, String) {
    require_display();
    let before = notepad_windows();
    let notepad = Killed(
        wine_env(&mut Command::new(WINE), x_prefix(), true)
            .arg("notepad")
            .spawn()
            .unwrap(),
    );
    let t0 = std::time::Instant::now();
    loop {
        if let Some(w) = notepad_windows().into_iter().find(|w| !before.contains(w)) {
            return (notepad, w);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no notepad window within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `cloudnap.exe run` under Wine on the test's X display, with only the
/// detectors `enabled` turned on and Linux clients allowed; its config dir.
fn x_daemon(enabled: serde_json::Value) -> (ConfigDir, Daemon) {
    let mut extra = detectors_off(enabled);
    extra["udp_server"]["allow_other_users"] = true.into();
    let cfg = ConfigDir::with_settings(&daemon_settings(&[REGION], extra), "");
    let exe = exe();
    let mut run = cfg.command_via(WINE, &[exe.to_str().unwrap()], &["run"]);
    wine_env(&mut run, x_prefix(), true);
    let d = Daemon::spawn(run);
    (cfg, d)
}

/// The session idle time (`GetLastInputInfo`), under Wine on an X display:
/// xdotool typing into notepad shows as `system_idle` activity.
#[tokio::test(flavor = "multi_thread")]
async fn get_last_input_info_sees_xdotool_typing() {
    let _turn = X_DISPLAY.lock().await;
    let (notepad, window) = notepad();
    let (_cfg, d) = x_daemon(serde_json::json!({
        "system_idle": {"enabled": true, "check_interval_sec": 0.5}
    }));
    let limit = Duration::from_secs(30);
    d.wait_status(limit, "with the session idle detector running", |s| {
        s["detectors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == "system_idle" && r["state"] == "running")
    })
    .await;
    xdotool(&["windowactivate", "--sync", &window]);
    // Nothing happens for 3 s: nothing is seen (or only what came before).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = d.ok("STATUS").await;
    let ago = quiet["last_activity"]["seconds_ago"].as_f64();
    assert!(
        ago.is_none_or(|a| a >= 2.0),
        "activity with no input: {quiet}"
    );
    xdotool(&["type", "--delay", "100", "cloudnap naps"]);
    d.wait_status(limit, "seeing the keys", |s| {
        s["last_activity"]["kind"] == "system_idle"
            && s["last_activity"]["seconds_ago"].as_f64() < Some(1.5)
    })
    .await;
    drop(notepad);
}

/// Under Wine on an X display, what xdotool types into a Wine window
/// (notepad) and its pointer moves reach the keyboard/mouse detector
/// (rdev's low-level Windows hooks), as keyboard and mouse activity.
#[tokio::test(flavor = "multi_thread")]
async fn xdotool_input_into_a_wine_window_is_seen_by_the_input_detector() {
    let _turn = X_DISPLAY.lock().await;
    let (notepad, window) = notepad();
    let (_cfg, d) = x_daemon(serde_json::json!({
        "keyboard": {"enabled": true}, "mouse": {"enabled": true}
    }));
    let limit = Duration::from_secs(30);
    d.wait_status(limit, "with its input detector running", |s| {
        s["detectors"][0]["name"] == "keyboard/mouse" && s["detectors"][0]["state"] == "running"
    })
    .await;

    xdotool(&["windowactivate", "--sync", &window]);
    xdotool(&["type", "--delay", "50", "cloudnap"]);
    d.wait_status(limit, "seeing the keys", |s| {
        s["last_activity"]["kind"] == "keyboard"
    })
    .await;
    // The first position the detector sees only anchors the movement
    // threshold, and a move to where the pointer already is (an earlier
    // test may have left it there) makes no event: three moves.
    for (x, y) in ["40", "80", "120"].into_iter().zip(["40", "60", "90"]) {
        xdotool(&["mousemove", "--window", &window, x, y]);
    }
    d.wait_status(limit, "seeing the pointer", |s| {
        s["last_activity"]["kind"] == "mouse"
    })
    .await;
    drop(notepad);
}

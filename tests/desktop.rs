//! The desktop shell with the real binary: single instance, live reload of
//! services.yaml and settings.json, log files that never hold the secret, and
//! the tray icon and menu under Xvfb with a StatusNotifierItem host
//! (gtk-sni-tray-standalone), its SSO sign-in against a test SSO server.

mod common;
#[path = "common/sso.rs"]
mod sso_server;
// Every daemon here runs on the test desktop, as under build/test.sh.
common::before_main!(X, Tray);
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const R: &str = "eu-central-1";

fn daemon(extra: serde_json::Value, services: &str) -> (ConfigDir, Daemon) {
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], extra), services);
    let d = Daemon::start(&cfg);
    (cfg, d)
}

#[tokio::test]
async fn a_second_instance_exits_with_code_4_and_the_first_keeps_running() {
    let (cfg, d) = daemon(json!({}), "");
    let out = cfg.run(&["run"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cloudnap is already running (use `cloudnap send STATUS`)"));
    assert_eq!(d.ok("STATUS").await["state"], "active");
    // Other subcommands are not blocked.
    let check = cfg.run(&["send", "--to", &d.addr.to_string(), "STATUS"]);
    assert_eq!(check.status.code(), Some(0));
    // Another config dir is another instance.
    let (_cfg2, d2) = daemon(json!({}), "");
    assert_eq!(d2.ok("STATUS").await["state"], "active");
}

async fn registered(d: &Daemon) -> (Vec<String>, Option<String>) {
    let r = d.ok("LIST_REGISTERED_SERVICES").await;
    let names = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["resource"]["instance_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    (names, r["config_error"].as_str().map(String::from))
}

/// Polls until `done` holds; returns how long it took.
async fn within(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !done().await {
        assert!(t0.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    t0.elapsed()
}

#[tokio::test]
async fn services_yaml_edits_are_live_and_an_invalid_edit_keeps_the_last_good_one() {
    let yaml = format!("ec2_instances:\n  - instance_id: i-0000000000000000a\n    region: {R}\n");
    let (cfg, d) = daemon(json!({}), &yaml);
    assert_eq!(registered(&d).await.0, ["i-0000000000000000a"]);

    // Append an entry by hand: listed within 2 s.
    let appended = format!("{yaml}  - instance_id: i-0000000000000000b\n    region: {R}\n");
    std::fs::write(cfg.file("services.yaml"), &appended).unwrap();
    let took = within(Duration::from_secs(2), async || {
        registered(&d).await.0.len() == 2
    })
    .await;
    eprintln!("appended entry listed after {took:?}");

    // Invalid YAML: old entries stay, the error names the line, the file is untouched.
    let broken = format!("{appended}  - instance_id: [oops\n");
    std::fs::write(cfg.file("services.yaml"), &broken).unwrap();
    let status = d
        .wait_status(Duration::from_secs(2), "showing the config error", |s| {
            s["config_error"].is_string()
        })
        .await;
    let error = status["config_error"].as_str().unwrap();
    assert!(error.contains("line"), "{error}");
    let (names, listed_error) = registered(&d).await;
    assert_eq!(names, ["i-0000000000000000a", "i-0000000000000000b"]);
    assert!(listed_error.is_some());
    assert_eq!(
        std::fs::read_to_string(cfg.file("services.yaml")).unwrap(),
        broken
    );
    // The log reaches the test through a pipe, a moment after STATUS.
    within(Duration::from_secs(2), async || {
        d.log.lock().unwrap().contains("services.yaml is invalid")
    })
    .await;

    // Fixing it clears the error.
    std::fs::write(cfg.file("services.yaml"), &yaml).unwrap();
    d.wait_status(Duration::from_secs(2), "valid again", |s| {
        s["config_error"].is_null()
    })
    .await;
    assert_eq!(registered(&d).await.0, ["i-0000000000000000a"]);
}

#[tokio::test]
async fn settings_json_edits_apply_live_and_an_invalid_edit_is_refused() {
    let (cfg, d) = daemon(json!({}), "");
    let before = d.ok("STATUS").await["sleep_in_seconds"].as_f64().unwrap();
    assert!(before > 29.0 * 60.0, "{before}");

    let settings = daemon_settings(
        &[R],
        json!({"activity_monitor": {"inactivity_timeout_minutes": 90}}),
    );
    std::fs::write(cfg.file("settings.json"), &settings).unwrap();
    d.wait_status(Duration::from_secs(2), "on the 90 min timeout", |s| {
        s["sleep_in_seconds"].as_f64().unwrap() > 89.0 * 60.0
    })
    .await;

    let broken = settings.replace("90", "\"ninety\"");
    std::fs::write(cfg.file("settings.json"), &broken).unwrap();
    let status = d
        .wait_status(Duration::from_secs(2), "showing the config error", |s| {
            s["config_error"].is_string()
        })
        .await;
    let error = status["config_error"].as_str().unwrap();
    assert!(
        error.contains("activity_monitor.inactivity_timeout_minutes"),
        "{error}"
    );
    assert!(
        status["sleep_in_seconds"].as_f64().unwrap() > 89.0 * 60.0,
        "old settings kept"
    );
    assert_eq!(
        std::fs::read_to_string(cfg.file("settings.json")).unwrap(),
        broken
    );
}

#[tokio::test]
async fn logs_go_to_a_daily_file_and_never_hold_the_secret_key() {
    const SECRET: &str = "cloudnapTestSecret/9f8e7d6c5b4a39281706";
    let id = ec2_instance(R, false, &[]).await;
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[R], json!({})),
        &format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n"),
    );
    let mut cmd = cfg.command(&["run"]);
    cmd.env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "debug");
    let d = Daemon::spawn(cmd);
    d.ok("SLEEP_NOW").await;
    d.ok("WAKE_NOW").await;
    d.ok("LIST_EC2").await;
    drop(d);

    let logs: Vec<_> = std::fs::read_dir(cfg.file("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let today = chrono::Local::now()
        .format("cloudnap.%Y-%m-%d.log")
        .to_string();
    assert!(
        logs.iter()
            .any(|p| p.file_name().unwrap() == today.as_str()),
        "{logs:?}"
    );
    let mut all = String::new();
    for p in &logs {
        all.push_str(&std::fs::read_to_string(p).unwrap());
    }
    assert!(all.contains("listening on"), "the log file has the run");
    assert!(all.contains("asleep"), "and the sleep");
    assert!(all.lines().count() > 20, "debug lines were written");
    assert!(!all.contains(SECRET), "the secret key is in the log");
}

/// Where the tray host draws our icon, and its mean colour: the host's bar
/// is captured and the non-black pixels of its right end (the host packs
/// icons from the end, and ours is the only one) are averaged.
/// The tray host shows one icon at a time to these tests: the tests that
/// click it take turns.
static TRAY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tray_icon() -> Option<((i32, i32), [f64; 3])> {
    let bar = xdotool_out(&[
        "search",
        "--onlyvisible",
        "--class",
        "gtk-sni-tray-standalone",
    ]);
    let bar = bar.lines().next()?;
    let geo = xdotool_out(&["getwindowgeometry", "--shell", bar]);
    let val = |key: &str| -> Option<i32> {
        geo.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let (bx, by) = (val("X")?, val("Y")?);
    let png = std::process::Command::new("import")
        .args(["-window", bar, "png:-"])
        .output()
        .ok()?
        .stdout;
    let img = image::load_from_memory(&png).ok()?.into_rgb8();
    let (mut n, mut sx, mut sy, mut sum) = (0.0, 0.0, 0.0, [0.0; 3]);
    for (x, y, p) in img.enumerate_pixels() {
        if x + 64 >= img.width() && p.0.iter().any(|c| *c > 40) {
            n += 1.0;
            sx += f64::from(x);
            sy += f64::from(y);
            for (s, c) in sum.iter_mut().zip(p.0) {
                *s += f64::from(c);
            }
        }
    }
    (n > 50.0).then(|| {
        let at = (bx + (sx / n) as i32, by + (sy / n) as i32);
        (at, sum.map(|s| s / n))
    })
}

/// Saves a screenshot of the whole screen under [`artifacts_dir`].
fn screenshot(name: &str) {
    let shot = artifacts_dir().join(name);
    let ok = std::process::Command::new("import")
        .args(["-window", "root"])
        .arg(&shot)
        .status()
        .unwrap()
        .success();
    assert!(ok && shot.exists(), "screenshot saved");
    eprintln!("screenshot: {}", shot.display());
}

#[tokio::test]
async fn the_tray_menu_pauses_the_app_and_the_icon_follows() {
    require_tray_host();
    let _turn = TRAY.lock().await;
    let (_cfg, d) = daemon(json!({"desktop": {"tray": true}}), "");
    let t0 = Instant::now();
    let ((x, y), active) = loop {
        if let Some(icon) = tray_icon() {
            break icon;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no tray icon in the StatusNotifier host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let [r, g, b] = active;
    assert!(
        g > r + 20.0 && g > b + 20.0,
        "the active icon is green: {active:?}"
    );
    // A right click opens the menu, which the host builds from our D-Bus menu.
    xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "3"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    screenshot("tray-menu.png");
    // Keyboard through the open menu: Sleep now, Wake now, Keep awake 1 h.
    for key in ["Down", "Down", "Down", "Return"] {
        xdotool(&["key", key]);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let status = d
        .wait_status(Duration::from_secs(3), "paused", |s| s["state"] == "paused")
        .await;
    let left = status["paused_for_seconds"].as_f64().unwrap();
    assert!((3590.0..=3600.0).contains(&left), "{left}");
    d.logged("KeepAwakeHour: Hold").await;
    // Within a couple of seconds the icon turns to the grey "paused" one.
    let t0 = Instant::now();
    loop {
        let [r, g, b] = tray_icon().expect("the icon is still there").1;
        if (r - g).abs() < 12.0 && (g - b).abs() < 12.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the icon did not turn grey: {:?}",
            [r, g, b]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot("tray-paused.png");
}

#[tokio::test]
async fn notifications_go_out_on_the_session_bus_and_can_be_turned_off() {
    // dbus-monitor sees the Notify calls even with no notification daemon.
    require_display(); // and its session bus
    let mut monitor = std::process::Command::new("dbus-monitor")
        .args([
            "--session",
            "interface='org.freedesktop.Notifications',member='Notify'",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = monitor.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = ec2_instance(R, false, &[]).await;
    let services = format!("ec2_instances:\n  - instance_id: {id}\n    region: {R}\n");
    let (_cfg, d) = daemon(
        json!({"desktop": {"notifications": {"awake": false}}}),
        &services,
    );
    d.ok("SLEEP_NOW").await;
    d.ok("WAKE_NOW").await;
    let t0 = Instant::now();
    while !seen.lock().unwrap().contains("Asleep: 1 resources stopped") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no notification: {}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = monitor.kill();
    let _ = monitor.wait();
    let seen = seen.lock().unwrap().clone();
    // Other tests' daemons notify on the same bus: count this instance only.
    assert_eq!(
        seen.matches(id.as_str()).count(),
        1,
        "one notification (asleep) names the instance; awake ones are off: {seen}"
    );
}

#[tokio::test]
async fn cloudnap_credentials_opens_the_dialog_window() {
    require_display();
    let cfg = ConfigDir::with_settings(&daemon_settings(&[R], json!({})), "");
    let mut child = cfg.command(&["credentials"]).spawn().unwrap();
    let t0 = Instant::now();
    let window = loop {
        let found = xdotool_out(&[
            "search",
            "--onlyvisible",
            "--name",
            "cloudnap: AWS credentials",
        ]);
        if let Some(w) = found.lines().next() {
            break w.to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the dialog exited: {status}");
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no dialog window");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Closing the window the way a user does (Alt+F4 in openbox) ends
    // `cloudnap credentials` cleanly.
    xdotool(&["windowactivate", "--sync", &window, "key", "alt+F4"]);
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_tray_s_sign_in_signs_the_sso_profile_in_and_shows_the_code() {
    require_tray_host();
    let _turn = TRAY.lock().await;
    let sso = sso_server::SsoServer::start(&["--pending", "1"]);
    let cfg = ConfigDir::with_settings(
        &daemon_settings(&[R], json!({"desktop": {"tray": true}})),
        "",
    );
    std::fs::write(
        cfg.file("aws-config"),
        "[profile work]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Dev\n\n\
         [sso-session corp]\nsso_start_url = https://corp.test/start\nsso_region = us-east-1\n",
    )
    .unwrap();
    std::fs::create_dir_all(cfg.file("home")).unwrap();
    // The notifications, as the notification server gets them.
    let mut monitor = std::process::Command::new("dbus-monitor")
        .args([
            "--session",
            "interface='org.freedesktop.Notifications',member='Notify'",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = monitor.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let mut run = cfg.command(&["run"]);
    run.env("HOME", cfg.file("home"))
        .env("AWS_ENDPOINT_URL_SSO_OIDC", &sso.url)
        // No browser on the test desktop: xdg-open runs `true`.
        .env("BROWSER", "true");
    let d = Daemon::spawn(run);
    let t0 = Instant::now();
    let ((x, y), _) = loop {
        if let Some(icon) = tray_icon() {
            break icon;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no tray icon");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "3"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Down to the tenth item, Sign in (SSO)….
    for _ in 0..10 {
        xdotool(&["key", "Down"]);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    screenshot("tray-menu-sign-in.png");
    xdotool(&["key", "Return"]);
    let file = cfg.file("home/.aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json");
    let t0 = Instant::now();
    while !file.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no token cache; log: {}",
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(token["accessToken"], "test-access-token-1", "{token}");
    let log = d.log.lock().unwrap().clone();
    assert!(log.contains("sign-in: Open "), "{log}");
    assert!(
        log.contains("signed in: profile work (session corp)"),
        "{log}"
    );
    let t0 = Instant::now();
    while !seen.lock().unwrap().contains("cloudnap: signed in") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no notification: {}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!(
            "Open {}/device and enter the code TEST-CODE",
            sso.url
        )),
        "the code is shown in a notification: {seen}"
    );
}

//! Helpers for the Wayland, GNOME and screen lock tests: the sessions
//! (headless sway and mutter, from build/test.sh or started on first use),
//! input into them, and private D-Bus buses.
#![allow(dead_code)] // each test binary uses a different subset

use crate::common::Daemon;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{var_of, Part};

/// One test at a time per session: they share the seat's idle state.
pub static SEAT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Settings with every detector off but the session's idle time
/// (`system_idle`, which also switches the Wayland and GNOME sources).
pub fn only_session_idle() -> serde_json::Value {
    serde_json::json!({
        "keyboard": {"enabled": false}, "mouse": {"enabled": false},
        "screen": {"enabled": false}, "audio": {"enabled": false},
        "window": {"enabled": false}, "system_idle": {"enabled": true}
    })
}

/// The inactivity timeout of [`input_keeps_awake_idleness_sleeps_one_input_wakes`].
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(18);

/// [`only_session_idle`] with the scenario's 18 s timeout and `warning`.
pub fn scenario_settings(warning: Duration) -> serde_json::Value {
    let mut settings = only_session_idle();
    settings["activity_monitor"] = serde_json::json!({
        "inactivity_timeout_minutes": SCENARIO_TIMEOUT.as_secs_f64() / 60.0,
        "warning_minutes": warning.as_secs_f64() / 60.0
    });
    settings
}

/// The issue's scenario, through AWS (moto), against a daemon `d` started
/// with [`scenario_settings`] and one resource registered: `input` (one
/// key or pointer motion in the session) every 2 s for 40 s sleeps nothing
/// and is reported as `kind`; without input the resource sleeps after the
/// timeout; one input wakes it. `read` reads the resource back through the
/// SDK, `up` when at its capacity, `down` when asleep. `notify` is the
/// session source's idle timeout, waited before the waking input so that it
/// is an idle → active transition.
pub async fn input_keeps_awake_idleness_sleeps_one_input_wakes(
    d: &Daemon,
    kind: &str,
    notify: Duration,
    mut input: impl FnMut(),
    read: impl AsyncFn() -> String,
    (up, down): (&str, &str),
) {
    let t0 = Instant::now();
    let mut last_input = t0;
    while t0.elapsed() < Duration::from_secs(40) {
        last_input = Instant::now();
        input();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            read().await,
            up,
            "slept during input ({:?} in)",
            t0.elapsed()
        );
    }
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["last_activity"]["kind"], kind, "{status}");
    idleness_sleeps(d, last_input, notify, &read, down).await;
    one_input_wakes(d, notify, input, &read, up).await;
}

/// Waits until STATUS shows activity of `kind`, at most `limit` after `t0`
/// (when the daemon was started).
pub async fn seen_within(d: &Daemon, t0: Instant, limit: Duration, kind: &str) {
    let status = d
        .wait_status(limit.saturating_sub(t0.elapsed()), "the user seen", |s| {
            s["last_activity"]["kind"] == kind
        })
        .await;
    eprintln!("seen {:?} after the start: {status}", t0.elapsed());
}

/// Waits until EC2 instance `id` in `region` is `stopped`, at most `limit`
/// after `since`; how long after `since` it was. Fails with the daemon's log.
pub async fn ec2_stopped_within(
    d: &Daemon,
    (region, id): (&str, &str),
    since: Instant,
    limit: Duration,
) -> Duration {
    while crate::common::ec2_state(region, id).await.0 != "stopped" {
        assert!(
            since.elapsed() < limit,
            "{id} not stopped within {limit:?}:\n{}",
            d.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    since.elapsed()
}

/// With no input since `last_input`, the resource that `read` reads back
/// goes `down` after the scenario's timeout, neither before nor much later
/// (the last re-assertion can come up to `notify` after the last input).
pub async fn idleness_sleeps(
    d: &Daemon,
    last_input: Instant,
    notify: Duration,
    read: &impl AsyncFn() -> String,
    down: &str,
) {
    let limit = SCENARIO_TIMEOUT + notify + Duration::from_secs(5);
    loop {
        let now = read().await;
        if now == down {
            break;
        }
        assert!(
            last_input.elapsed() < limit,
            "not asleep {limit:?} after the last input (timeout {SCENARIO_TIMEOUT:?}): {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slept_after = last_input.elapsed();
    eprintln!("asleep {slept_after:?} after the last input");
    assert!(
        slept_after >= SCENARIO_TIMEOUT - Duration::from_millis(500),
        "slept {slept_after:?} after the last input, before the timeout"
    );
    d.wait_status(Duration::from_secs(5), "asleep", |s| s["state"] == "asleep")
        .await;
}

/// Once the seat is idle (`notify` without input), one `input` brings the
/// resource that `read` reads back `up` within 3 s.
pub async fn one_input_wakes(
    d: &Daemon,
    notify: Duration,
    mut input: impl FnMut(),
    read: &impl AsyncFn() -> String,
    up: &str,
) {
    tokio::time::sleep(notify).await;
    let pressed = Instant::now();
    input();
    loop {
        let now = read().await;
        if now == up {
            break;
        }
        assert!(
            pressed.elapsed() < Duration::from_secs(3),
            "not awake 3 s after one input: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("one input to {up}: {:?}", pressed.elapsed());
    d.wait_status(Duration::from_secs(3), "awake", |s| {
        s["state"] == "active" && s["asleep"].as_array().unwrap().is_empty()
    })
    .await;
}

/// Makes `command` (a `cloudnap ...`) run in a Wayland session: no X display
/// and no session type or desktop inherited from the test's environment.
pub fn wayland_env(command: &mut Command, runtime_dir: &str, display: &str) {
    command
        .env_remove("DISPLAY")
        .env_remove("XDG_SESSION_TYPE")
        .env_remove("XDG_CURRENT_DESKTOP")
        .env_remove("XDG_SESSION_ID")
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env("WAYLAND_DISPLAY", display);
}

/// The headless sway session started by `start_sway`.
pub struct Sway {
    pub runtime_dir: String,
    pub display: String,
}

impl Sway {
    pub fn from_env() -> Sway {
        Sway {
            runtime_dir: var_of(Part::Sway, "CLOUDNAP_SWAY_RUNTIME_DIR"),
            display: var_of(Part::Sway, "CLOUDNAP_SWAY_DISPLAY"),
        }
    }

    /// Makes `command` run in this session.
    pub fn session(&self, command: &mut Command) {
        wayland_env(command, &self.runtime_dir, &self.display);
    }

    /// Types `text` into the focused window (foot) through the
    /// virtual-keyboard protocol.
    pub fn wtype(&self, text: &str) {
        let mut c = Command::new("wtype");
        self.session(&mut c);
        let ok = c.arg(text).status().expect("wtype").success();
        assert!(ok, "wtype {text:?} failed");
    }
}

/// The headless mutter started by `start_mutter`, with its own session bus.
pub struct Mutter {
    pub bus: String,
    pub runtime_dir: String,
    pub display: String,
}

impl Mutter {
    pub fn from_env() -> Mutter {
        Mutter {
            bus: var_of(Part::Mutter, "CLOUDNAP_MUTTER_BUS"),
            runtime_dir: var_of(Part::Mutter, "CLOUDNAP_MUTTER_RUNTIME_DIR"),
            display: var_of(Part::Mutter, "CLOUDNAP_MUTTER_DISPLAY"),
        }
    }

    /// Makes `command` run in this GNOME Wayland session.
    pub fn session(&self, command: &mut Command) {
        wayland_env(command, &self.runtime_dir, &self.display);
        command
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("XDG_SESSION_TYPE", "wayland")
            .env("XDG_CURRENT_DESKTOP", "GNOME");
    }
}

/// The headless kwin_wayland (KDE Plasma) started by `start_kwin`, with its
/// own session bus and a fake-input client.
pub struct Kwin {
    pub bus: String,
    pub runtime_dir: String,
    pub display: String,
    /// build/kwin/fake-input.c, built: one key per run.
    pub key_client: String,
}

impl Kwin {
    pub fn from_env() -> Kwin {
        Kwin {
            bus: var_of(Part::Kwin, "CLOUDNAP_KWIN_BUS"),
            runtime_dir: var_of(Part::Kwin, "CLOUDNAP_KWIN_RUNTIME_DIR"),
            display: var_of(Part::Kwin, "CLOUDNAP_KWIN_DISPLAY"),
            key_client: var_of(Part::Kwin, "CLOUDNAP_KWIN_KEY"),
        }
    }

    /// Makes `command` run in this KDE Plasma Wayland session.
    pub fn session(&self, command: &mut Command) {
        wayland_env(command, &self.runtime_dir, &self.display);
        command
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("XDG_SESSION_TYPE", "wayland")
            .env("XDG_CURRENT_DESKTOP", "KDE");
    }

    /// One key press (KEY_A) through `org_kde_kwin_fake_input`.
    pub fn key(&self) {
        let mut c = Command::new(&self.key_client);
        wayland_env(&mut c, &self.runtime_dir, &self.display);
        let ok = c.status().expect("kwin-fake-input").success();
        assert!(ok, "kwin-fake-input failed");
    }
}

/// The X display of its own with xfce4-panel and dunst started by
/// `start_xfce_panel`, and its session bus.
pub struct Xfce {
    pub display: String,
    pub bus: String,
    /// dunst's HOME, where `dunst-pick` names the context menu entry its
    /// dmenu (build/xfce/dunst-pick.sh) chooses.
    pub home: String,
}

impl Xfce {
    pub fn from_env() -> Xfce {
        Xfce {
            display: var_of(Part::Xfce, "CLOUDNAP_XFCE_DISPLAY"),
            bus: var_of(Part::Xfce, "CLOUDNAP_XFCE_BUS"),
            home: var_of(Part::Xfce, "CLOUDNAP_XFCE_HOME"),
        }
    }

    /// Makes `command` run on this display and session bus.
    pub fn session(&self, command: &mut Command) -> &Self {
        command
            .env_remove("WAYLAND_DISPLAY")
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus);
        self
    }

    /// Runs `program args` in this session; its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let mut c = Command::new(program);
        self.session(&mut c);
        let out = c.args(args).output().expect(program);
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The whole screen, as an image.
    pub fn capture(&self) -> image::RgbImage {
        let mut c = Command::new("import");
        self.session(&mut c);
        let png = c
            .args(["-window", "root", "png:-"])
            .output()
            .unwrap()
            .stdout;
        image::load_from_memory(&png)
            .expect("a screenshot")
            .into_rgb8()
    }

    /// Saves the whole screen as `name` under [`crate::common::artifacts_dir`].
    pub fn screenshot(&self, name: &str) {
        let shot = crate::common::artifacts_dir().join(name);
        self.capture().save(&shot).unwrap();
        eprintln!("screenshot: {}", shot.display());
    }
}

/// Input into mutter through its RemoteDesktop API: one python3-dbus
/// process keeps the one connection the remote desktop session lives in.
pub struct RemoteDesktop {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const REMOTE_DESKTOP_PY: &str = r#"
import sys, dbus
bus = dbus.SessionBus()
name = 'org.gnome.Mutter.RemoteDesktop'
rd = dbus.Interface(bus.get_object(name, '/org/gnome/Mutter/RemoteDesktop'), name)
session = dbus.Interface(bus.get_object(name, rd.CreateSession()), name + '.Session')
session.Start()
print('ready', flush=True)
for line in sys.stdin:
    if line.strip() == 'key':  # KEY_A, evdev code 30
        session.NotifyKeyboardKeycode(dbus.UInt32(30), True)
        session.NotifyKeyboardKeycode(dbus.UInt32(30), False)
    elif line.strip() == 'move':
        session.NotifyPointerMotionRelative(dbus.Double(7), dbus.Double(5))
    print('done', flush=True)
"#;

impl RemoteDesktop {
    /// Opens a remote desktop session in `mutter`.
    pub fn start(mutter: &Mutter) -> RemoteDesktop {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", REMOTE_DESKTOP_PY])
            .env("DBUS_SESSION_BUS_ADDRESS", &mutter.bus)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut rd = RemoteDesktop {
            child,
            stdin,
            stdout,
        };
        assert_eq!(rd.line(), "ready", "RemoteDesktop session did not start");
        rd
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    fn send(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").unwrap();
        assert_eq!(self.line(), "done", "RemoteDesktop {what}");
    }

    /// Presses and releases one key.
    pub fn key(&mut self) {
        self.send("key");
    }

    /// Moves the pointer a few pixels.
    pub fn pointer(&mut self) {
        self.send("move");
    }
}

impl Drop for RemoteDesktop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private D-Bus bus (session configuration), stopped on drop.
pub struct PrivateBus {
    pub address: String,
    pid: i32,
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        let out = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .output()
            .expect("dbus-daemon");
        assert!(out.status.success(), "dbus-daemon: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let address = lines.next().unwrap().trim().to_string();
        let pid = lines.next().unwrap().trim().parse().unwrap();
        PrivateBus { address, pid }
    }

    /// A connection to this bus.
    pub fn connect(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .unwrap()
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// Waits up to `limit` until the daemon's log contains `text`.
pub fn wait_log(log: &std::sync::Mutex<String>, text: &str, limit: Duration) {
    wait_log_times(log, text, 1, limit);
}

/// Waits up to `limit` until the daemon's log contains `text` `n` times.
pub fn wait_log_times(log: &std::sync::Mutex<String>, text: &str, n: usize, limit: Duration) {
    let t0 = Instant::now();
    while log.lock().unwrap().matches(text).count() < n {
        assert!(
            t0.elapsed() < limit,
            "no {text:?} in the log after {limit:?}:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

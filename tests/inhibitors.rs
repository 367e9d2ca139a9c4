//! Idle inhibitors of other programs in the real `cloudnap run`, against
//! test doubles of the services that hold them, each on a private bus (the
//! daemon's system bus and session bus), and moto: logind (taken by the
//! real `systemd-inhibit`), GNOME's `org.gnome.SessionManager` and KDE's
//! `org.freedesktop.PowerManagement.Inhibit`. An inhibitor keeps the
//! resource up past the idle timeout, `STATUS`, the tray line and
//! `cloudnap status` name it, and the resource sleeps a timeout after it
//! ends, or after `inhibitors.max_minutes` without input while it is held.
// D-Bus: Linux only (zbus is a Linux dependency).
#![cfg(target_os = "linux")]

mod common;
#[path = "common/desktop.rs"]
mod desktop;

use common::*;
use desktop::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zbus::message::Header;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value as DbusValue};

const R: &str = "ap-south-1";
const TIMEOUT: Duration = Duration::from_secs(6);

/// One logind inhibitor: (what, who, why, mode, uid, pid).
type Row = (String, String, String, String, u32, u32);

/// A fake logind manager: `Inhibit` hands out one end of a socket pair and
/// lists the inhibitor in `ListInhibitors` until the other end reads
/// end-of-file (the holder closed it, as logind's FIFO sees it), with
/// `PropertiesChanged(BlockInhibited)` after each change.
#[derive(Clone, Default)]
struct FakeLogind {
    held: Arc<Mutex<Vec<(u64, Row)>>>,
}

impl FakeLogind {
    /// Tells the bus the manager's inhibitors changed.
    fn changed(&self, conn: &zbus::blocking::Connection) {
        let what: Vec<String> = (self.held.lock().unwrap().iter())
            .map(|(_, r)| r.0.clone())
            .collect();
        let changed = HashMap::from([("BlockInhibited", DbusValue::from(what.join(":")))]);
        conn.emit_signal(
            None::<()>,
            "/org/freedesktop/login1",
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            &(
                "org.freedesktop.login1.Manager",
                changed,
                Vec::<String>::new(),
            ),
        )
        .unwrap();
    }
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    async fn inhibit(
        &self,
        what: String,
        who: String,
        why: String,
        mode: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<zbus::zvariant::OwnedFd> {
        let failed = |e: &dyn std::fmt::Display| zbus::fdo::Error::Failed(e.to_string());
        let sender = header
            .sender()
            .ok_or_else(|| failed(&"no sender"))?
            .to_owned();
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let pid = dbus
            .get_connection_unix_process_id(sender.clone().into())
            .await?;
        let uid = dbus.get_connection_unix_user(sender.into()).await?;
        let (mut ours, theirs) = UnixStream::pair().map_err(|e| failed(&e))?;
        let id = rand_id();
        self.held
            .lock()
            .unwrap()
            .push((id, (what, who, why, mode, uid, pid)));
        let (me, conn) = (self.clone(), zbus::blocking::Connection::from(conn.clone()));
        std::thread::spawn(move || {
            me.changed(&conn);
            let _ = ours.read(&mut [0u8; 1]);
            me.held.lock().unwrap().retain(|(i, _)| *i != id);
            me.changed(&conn);
        });
        Ok(std::os::fd::OwnedFd::from(theirs).into())
    }

    fn list_inhibitors(&self) -> Vec<Row> {
        (self.held.lock().unwrap().iter())
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One inhibitor of the GNOME session manager double.
struct GnomeInhibitor {
    app: String,
    reason: String,
    flags: u32,
}

#[zbus::interface(name = "org.gnome.SessionManager.Inhibitor")]
impl GnomeInhibitor {
    fn get_app_id(&self) -> String {
        self.app.clone()
    }
    fn get_reason(&self) -> String {
        self.reason.clone()
    }
    fn get_flags(&self) -> u32 {
        self.flags
    }
}

/// A fake `org.gnome.SessionManager`: `Inhibit` serves an inhibitor
/// object and says `InhibitorAdded`; `Uninhibit` removes it and says
/// `InhibitorRemoved`.
#[derive(Default)]
struct FakeGnomeSession {
    paths: Vec<(u32, OwnedObjectPath)>,
}

const GNOME_PATH: &str = "/org/gnome/SessionManager";
const GNOME: &str = "org.gnome.SessionManager";

#[zbus::interface(name = "org.gnome.SessionManager")]
impl FakeGnomeSession {
    async fn inhibit(
        &mut self,
        app_id: String,
        _toplevel_xid: u32,
        reason: String,
        flags: u32,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<u32> {
        let cookie = rand_id() as u32;
        let path = format!("{GNOME_PATH}/Inhibitor{cookie}");
        let inhibitor = GnomeInhibitor {
            app: app_id,
            reason,
            flags,
        };
        conn.object_server().at(path.as_str(), inhibitor).await?;
        let path = ObjectPath::try_from(path).unwrap();
        self.paths.push((cookie, path.clone().into()));
        conn.emit_signal(None::<()>, GNOME_PATH, GNOME, "InhibitorAdded", &(path,))
            .await?;
        Ok(cookie)
    }

    async fn uninhibit(
        &mut self,
        cookie: u32,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<()> {
        let Some(i) = self.paths.iter().position(|(c, _)| *c == cookie) else {
            return Err(zbus::fdo::Error::Failed("no such cookie".into()));
        };
        let (_, path) = self.paths.remove(i);
        (conn.object_server())
            .remove::<GnomeInhibitor, _>(path.as_str())
            .await?;
        conn.emit_signal(None::<()>, GNOME_PATH, GNOME, "InhibitorRemoved", &(path,))
            .await?;
        Ok(())
    }

    fn get_inhibitors(&self) -> Vec<OwnedObjectPath> {
        self.paths.iter().map(|(_, p)| p.clone()).collect()
    }
}

const PM: &str = "org.freedesktop.PowerManagement.Inhibit";
const PM_PATH: &str = "/org/freedesktop/PowerManagement/Inhibit";
const AGENT: &str = "org.kde.Solid.PowerManagement.PolicyAgent";
const AGENT_PATH: &str = "/org/kde/Solid/PowerManagement/PolicyAgent";

/// The inhibitions of the KDE double: (cookie, app, reason).
type Inhibitions = Arc<Mutex<Vec<(u32, String, String)>>>;

/// A fake `org.freedesktop.PowerManagement.Inhibit` as KDE's PowerDevil
/// offers it: `Inhibit`/`UnInhibit`, `HasInhibit`, and `HasInhibitChanged`
/// only when `HasInhibit` changes; each inhibition is also in the
/// policy agent's list ([`FakePolicyAgent`]), which says
/// `InhibitionsChanged` at each.
#[derive(Default)]
struct FakePowerManagement {
    held: Inhibitions,
}

impl FakePowerManagement {
    /// Says what changed, as PowerDevil does.
    async fn said(
        &self,
        was: bool,
        added: Vec<(String, String)>,
        removed: Vec<String>,
        conn: &zbus::Connection,
    ) -> zbus::Result<()> {
        conn.emit_signal(
            None::<()>,
            AGENT_PATH,
            AGENT,
            "InhibitionsChanged",
            &(added, removed),
        )
        .await?;
        let has = !self.held.lock().unwrap().is_empty();
        if has != was {
            conn.emit_signal(None::<()>, PM_PATH, PM, "HasInhibitChanged", &(has,))
                .await?;
        }
        Ok(())
    }
}

#[zbus::interface(name = "org.freedesktop.PowerManagement.Inhibit")]
impl FakePowerManagement {
    async fn inhibit(
        &mut self,
        application: String,
        reason: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<u32> {
        let cookie = rand_id() as u32;
        let was = {
            let mut held = self.held.lock().unwrap();
            let was = !held.is_empty();
            held.push((cookie, application.clone(), reason.clone()));
            was
        };
        self.said(was, vec![(application, reason)], vec![], conn)
            .await?;
        Ok(cookie)
    }

    async fn un_inhibit(
        &mut self,
        cookie: u32,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> zbus::fdo::Result<()> {
        let (was, removed) = {
            let mut held = self.held.lock().unwrap();
            let was = !held.is_empty();
            let removed: Vec<String> = (held.iter())
                .filter(|(c, ..)| *c == cookie)
                .map(|(_, app, _)| app.clone())
                .collect();
            held.retain(|(c, ..)| *c != cookie);
            (was, removed)
        };
        self.said(was, vec![], removed, conn).await?;
        Ok(())
    }

    fn has_inhibit(&self) -> bool {
        !self.held.lock().unwrap().is_empty()
    }
}

/// PowerDevil's policy agent: `ListInhibitions`.
struct FakePolicyAgent {
    held: Inhibitions,
}

#[zbus::interface(name = "org.kde.Solid.PowerManagement.PolicyAgent")]
impl FakePolicyAgent {
    fn list_inhibitions(&self) -> Vec<(String, String)> {
        (self.held.lock().unwrap().iter())
            .map(|(_, a, r)| (a.clone(), r.clone()))
            .collect()
    }
}

/// Ends the command `systemd-inhibit` runs (its only child, by pid), so
/// that it exits and its lock closes.
fn end_job(inhibit: &mut std::process::Child) {
    let pid = inhibit.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    for child in children.split_whitespace() {
        let _ = Command::new("kill").arg(child).status();
    }
    inhibit.wait().unwrap();
}

/// An ECS service at 2 tasks, and the services.yaml registering it.
async fn service(prefix: &str) -> (String, String) {
    let cluster = unique(prefix);
    ecs_service(R, &cluster, "web", 2).await;
    let yaml = format!(
        "ecs_services:\n  - cluster_name: {cluster}\n    service_name: web\n    region: {R}\n"
    );
    (cluster, yaml)
}

/// `cloudnap run` with every activity detector off but the inhibitors (and
/// power, which takes its delay lock), the 6 s timeout and `extra`, whose
/// system and session buses are `system` and `session`; once it follows
/// `followed`.
fn start(
    system: &PrivateBus,
    session: &PrivateBus,
    extra: Value,
    yaml: &str,
    followed: &str,
) -> (ConfigDir, Daemon) {
    // A port of its own, for `cloudnap status` to ask.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings: Value = serde_json::from_str(&timeout_settings(R, TIMEOUT, extra)).unwrap();
    settings["udp_server"]["port"] = port.into();
    let cfg = ConfigDir::with_settings(&settings.to_string(), yaml);
    let mut command = cfg.command(&["run"]);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &system.address)
        .env("DBUS_SESSION_BUS_ADDRESS", &session.address);
    let d = Daemon::spawn(command);
    wait_log(
        &d.log,
        &format!("inhibitors: following {followed}"),
        Duration::from_secs(10),
    );
    (cfg, d)
}

/// A connection to `bus` owning `name`, serving `object` at `path`.
fn serve<I: zbus::object_server::Interface>(
    bus: &PrivateBus,
    name: &str,
    path: &str,
    object: I,
) -> zbus::blocking::Connection {
    zbus::blocking::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name(name.to_string())
        .unwrap()
        .serve_at(path, object)
        .unwrap()
        .build()
        .unwrap()
}

async fn desired(cluster: &str) -> i32 {
    ecs_desired(R, cluster, "web").await.0
}

/// While an inhibitor `kept` names is held: STATUS and the tray line name
/// it within 5 s, and the service stays up for three timeouts; returns the
/// last STATUS.
async fn kept_awake(d: &Daemon, cluster: &str, kept: &str) -> Value {
    d.wait_status(Duration::from_secs(5), "kept awake", |s| {
        s["kept_awake_by"] == kept
    })
    .await;
    let t0 = Instant::now();
    while t0.elapsed() < TIMEOUT * 3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(desired(cluster).await, 2, "slept while {kept}");
    }
    let status = d.ok("STATUS").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["kept_awake_by"], kept, "{status}");
    let line = status["tray"]["line"].as_str().unwrap();
    assert!(line.contains(&format!("; {kept}")), "{line}");
    status
}

/// Once the inhibitor is gone (at about `ended`): the service sleeps a
/// timeout later, neither before nor much after.
async fn sleeps_after(d: &Daemon, cluster: &str, ended: Instant) {
    let status = d
        .wait_status(TIMEOUT + Duration::from_secs(15), "asleep", |s| {
            s["state"] == "asleep" && s["operation"].is_null()
        })
        .await;
    let after = ended.elapsed();
    assert!(
        after >= TIMEOUT - Duration::from_millis(500),
        "asleep {after:?} after the inhibitor ended"
    );
    assert!(status["kept_awake_by"].is_null(), "{status}");
    assert_eq!(desired(cluster).await, 0);
    eprintln!("asleep {after:?} after the inhibitor ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_inhibit_keeps_awake_past_the_timeout_and_sleep_follows_its_end() {
    let (system, session) = (PrivateBus::start(), PrivateBus::start());
    let logind = FakeLogind::default();
    let _logind = serve(
        &system,
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        logind.clone(),
    );
    let (cluster, yaml) = service("inhibit-logind").await;
    let (cfg, d) = start(
        &system,
        &session,
        json!({}),
        &yaml,
        "org.freedesktop.login1",
    );
    // cloudnap's own delay lock (power) is in the list, and never counts.
    let t0 = Instant::now();
    while !logind.list_inhibitors().iter().any(|r| r.1 == "cloudnap") {
        assert!(t0.elapsed() < Duration::from_secs(10), "no delay lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut inhibit = Command::new("systemd-inhibit")
        .args([
            "--what=idle",
            "--who=test",
            "--why=long build",
            "sleep",
            "60",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &system.address)
        .spawn()
        .unwrap();
    let kept = r#"kept awake by test: "long build""#;
    let status = kept_awake(&d, &cluster, kept).await;
    assert_eq!(
        status["inhibitors"],
        json!([{"app": "test", "reason": "long build", "via": "logind", "verdict": "counts"}]),
        "the delay lock is not counted: {status}"
    );
    let out = cfg.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(kept), "{text}");
    assert!(
        text.contains(r#"test: "long build" (logind): counts"#),
        "{text}"
    );

    // The job ends: systemd-inhibit exits, its lock closes.
    end_job(&mut inhibit);
    let ended = Instant::now();
    sleeps_after(&d, &cluster, ended).await;
    assert_eq!(d.ok("STATUS").await["inhibitors"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn gnome_session_idle_inhibitors_keep_awake_and_others_do_not() {
    let (system, session) = (PrivateBus::start(), PrivateBus::start());
    let _gnome = serve(&session, GNOME, GNOME_PATH, FakeGnomeSession::default());
    let (cluster, yaml) = service("inhibit-gnome").await;
    let (_cfg, d) = start(&system, &session, json!({}), &yaml, GNOME);
    // Firefox, as a browser in a video call does (through the portal).
    let app = session.connect();
    let manager =
        zbus::blocking::Proxy::new(&app, GNOME, GNOME_PATH, "org.gnome.SessionManager").unwrap();
    let inhibit = |who: &str, why: &str, flags: u32| -> u32 {
        manager.call("Inhibit", &(who, 0u32, why, flags)).unwrap()
    };
    let suspend_only = inhibit("org.gnome.Nautilus", "copying files", 4);
    let firefox = inhibit("Firefox", "video call", 8);
    let status = kept_awake(&d, &cluster, r#"kept awake by Firefox: "video call""#).await;
    assert_eq!(
        status["inhibitors"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert_eq!(status["inhibitors"][0]["via"], "gnome_session");

    manager.call::<_, _, ()>("Uninhibit", &(firefox,)).unwrap();
    let ended = Instant::now();
    sleeps_after(&d, &cluster, ended).await;
    manager
        .call::<_, _, ()>("Uninhibit", &(suspend_only,))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kde_power_management_inhibitions_keep_awake_unless_ignored() {
    let (system, session) = (PrivateBus::start(), PrivateBus::start());
    let pm = FakePowerManagement::default();
    let agent = FakePolicyAgent {
        held: pm.held.clone(),
    };
    let _pm = zbus::blocking::connection::Builder::address(session.address.as_str())
        .unwrap()
        .name(PM)
        .unwrap()
        .name(AGENT)
        .unwrap()
        .serve_at(PM_PATH, pm)
        .unwrap()
        .serve_at(AGENT_PATH, agent)
        .unwrap()
        .build()
        .unwrap();
    let (cluster, yaml) = service("inhibit-kde").await;
    let extra = json!({"inhibitors": {"ignore": ["dolphin"]}});
    let (_cfg, d) = start(&system, &session, extra, &yaml, PM);
    let app = session.connect();
    let inhibit = zbus::blocking::Proxy::new(&app, PM, PM_PATH, PM).unwrap();
    let dolphin: u32 = inhibit.call("Inhibit", &("Dolphin", "copying")).unwrap();
    let ignored = d
        .wait_status(Duration::from_secs(5), "Dolphin seen", |s| {
            s["inhibitors"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    assert_eq!(ignored["inhibitors"][0]["verdict"], "ignored", "{ignored}");
    assert!(ignored["kept_awake_by"].is_null(), "{ignored}");
    let vlc: u32 = inhibit.call("Inhibit", &("VLC", "playing")).unwrap();
    kept_awake(&d, &cluster, r#"kept awake by VLC: "playing""#).await;

    inhibit.call::<_, _, ()>("UnInhibit", &(vlc,)).unwrap();
    let ended = Instant::now();
    // Dolphin still holds one (HasInhibit stays true): ignored, it keeps
    // nothing up.
    sleeps_after(&d, &cluster, ended).await;
    inhibit.call::<_, _, ()>("UnInhibit", &(dolphin,)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inhibitor_held_longer_than_max_minutes_without_input_no_longer_counts() {
    let (system, session) = (PrivateBus::start(), PrivateBus::start());
    let _logind = serve(
        &system,
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        FakeLogind::default(),
    );
    let (cluster, yaml) = service("inhibit-limit").await;
    // 12 s: then the 6 s timeout, the inhibitor still held.
    let limit = Duration::from_secs(12);
    let extra = json!({"inhibitors": {"max_minutes": limit.as_secs_f64() / 60.0}});
    let (_cfg, d) = start(&system, &session, extra, &yaml, "org.freedesktop.login1");
    let input = Instant::now();
    d.ok("USER_ACTIVITY").await;
    let mut inhibit = Command::new("systemd-inhibit")
        .args([
            "--what=idle:sleep",
            "--who=Firefox",
            "--why=video call",
            "sleep",
            "120",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &system.address)
        .spawn()
        .unwrap();
    let kept = r#"kept awake by Firefox: "video call""#;
    d.wait_status(Duration::from_secs(5), "kept awake", |s| {
        s["kept_awake_by"] == kept
    })
    .await;
    // Past the timeout, before the limit: kept awake.
    tokio::time::sleep(
        (input + TIMEOUT + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    )
    .await;
    let status = d.ok("STATUS").await;
    assert_eq!(status["kept_awake_by"], kept, "{status}");
    assert_eq!(desired(&cluster).await, 2);
    // The limit, then the timeout: asleep, the inhibitor still held.
    let status = d
        .wait_status(limit + TIMEOUT + Duration::from_secs(15), "asleep", |s| {
            s["state"] == "asleep" && s["operation"].is_null()
        })
        .await;
    let after = input.elapsed();
    assert!(
        after >= limit + TIMEOUT - Duration::from_secs(1),
        "{after:?}"
    );
    assert_eq!(desired(&cluster).await, 0);
    assert_eq!(status["inhibitors"][0]["verdict"], "too_long", "{status}");
    assert!(inhibit.try_wait().unwrap().is_none(), "still held");
    end_job(&mut inhibit);
}

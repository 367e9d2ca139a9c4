//! A fake notification server (`org.freedesktop.Notifications`) on a
//! private D-Bus bus: it records what cloudnap asks it to show.
#![allow(dead_code)] // each test binary uses part of it

use crate::common::{ConfigDir, Daemon};
use crate::desktop::PrivateBus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zbus::zvariant::OwnedValue;

pub const PATH: &str = "/org/freedesktop/Notifications";
pub const IFACE: &str = "org.freedesktop.Notifications";

/// One `Notify` call: summary, body, actions (key, label, key, label...).
#[derive(Debug, Clone)]
pub struct Shown {
    pub id: u32,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
}

/// A notification server that records what it is asked to show.
struct FakeServer {
    capabilities: Vec<String>,
    shown: Arc<Mutex<Vec<Shown>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl FakeServer {
    fn get_capabilities(&self) -> Vec<String> {
        self.capabilities.clone()
    }

    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().unwrap();
        let id = shown.len() as u32 + 1;
        shown.push(Shown {
            id,
            summary,
            body,
            actions,
        });
        id
    }

    fn close_notification(&self, _id: u32) {}

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "fake".into(),
            "cloudnap tests".into(),
            "1.0".into(),
            "1.2".into(),
        )
    }
}

/// The server on `bus`, with `capabilities`, and what it was asked to show.
pub fn serve(
    bus: &PrivateBus,
    capabilities: &[&str],
) -> (zbus::blocking::Connection, Arc<Mutex<Vec<Shown>>>) {
    let shown = Arc::new(Mutex::new(Vec::new()));
    let server = FakeServer {
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        shown: shown.clone(),
    };
    let conn = zbus::blocking::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name(IFACE)
        .unwrap()
        .serve_at(PATH, server)
        .unwrap()
        .build()
        .unwrap();
    (conn, shown)
}

/// `cloudnap run` in `cfg` with no display, its notifications going to `bus`.
pub fn daemon_on(bus: &PrivateBus, cfg: &ConfigDir) -> Daemon {
    let mut command = cfg.command(&["run"]);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    Daemon::spawn(command)
}

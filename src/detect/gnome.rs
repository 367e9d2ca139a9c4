//! GNOME's idle monitor on the session bus (`org.gnome.Mutter.IdleMonitor`):
//! on GNOME Wayland the only way to see input in every window.
//!
//! An idle watch ([`NOTIFY_TIMEOUT`], persistent) says when the user went
//! idle; a user-active watch (one-shot, armed only while idle, so typing
//! costs no D-Bus traffic) says when they came back. Between the two the
//! [`Heartbeat`] re-asserts activity. Mutter sends `WatchFired` only to the
//! connection that added the watch, so one connection does everything.
//! Unlike a Wayland idle notification the idle time is known at the start
//! ([`input_before_start`]): someone typing when the source starts (or
//! reconnects) counts at once, and a restart long after the last input
//! reports nothing.
//!
//! Without IdleMonitor (KDE, other desktops) it falls back to polling
//! `org.freedesktop.ScreenSaver.GetSessionIdleTime` every
//! `system_idle.check_interval_sec`.

use super::definition::{Detector, Fit, Session, SessionKind};
use super::heartbeat::Heartbeat;
use super::source::{ActivitySource, DetectError, Sink};
use super::system_idle::{self, SystemIdleSettings};
use crate::core::model::activity::{idle_shows_input, ActivityKind};
use std::time::Duration;
use zbus::blocking::{Connection, Proxy};

/// Idle time after which the user counts as idle, and the period of "still
/// active" until then (see [`super::heartbeat`]).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

const KIND: ActivityKind = ActivityKind::GnomeIdle;

/// The idle monitor's bus name.
const IDLE_MONITOR: &str = "org.gnome.Mutter.IdleMonitor";

/// Watches the desktop's idle time over D-Bus.
pub struct GnomeIdleSource {
    poll_interval: Duration,
}

impl GnomeIdleSource {
    /// A source whose ScreenSaver fallback polls at the system idle interval.
    pub fn new(settings: &SystemIdleSettings) -> Self {
        GnomeIdleSource {
            poll_interval: Duration::from_secs_f64(settings.check_interval_sec),
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new("gnome_idle", message)
}

/// Whether Mutter's IdleMonitor is on the session bus (whatever
/// `XDG_CURRENT_DESKTOP` says); false when the bus cannot be reached.
pub(super) fn idle_monitor_on_bus() -> bool {
    let has_owner = || -> zbus::Result<bool> {
        let conn = Connection::session()?;
        let name = zbus::names::BusName::try_from(IDLE_MONITOR)?;
        zbus::blocking::fdo::DBusProxy::new(&conn)?
            .name_has_owner(name)
            .map_err(Into::into)
    };
    has_owner().unwrap_or(false)
}

/// Whether an idle time of `idle` at the start shows input: within the
/// idle watch's timeout, the user is there (and the watch will say when
/// they leave).
fn input_before_start(idle: Duration) -> bool {
    idle < NOTIFY_TIMEOUT
}

impl ActivitySource for GnomeIdleSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let conn = Connection::session().map_err(fail)?;
        let monitor = Proxy::new(
            &conn,
            IDLE_MONITOR,
            "/org/gnome/Mutter/IdleMonitor/Core",
            "org.gnome.Mutter.IdleMonitor",
        )
        .map_err(fail)?;
        match monitor.call::<_, _, u64>("GetIdletime", &()) {
            Ok(idle_ms) => watch(&monitor, idle_ms, &sink),
            Err(e) => {
                tracing::info!(
                    "gnome_idle: no org.gnome.Mutter.IdleMonitor ({e}); polling org.freedesktop.ScreenSaver"
                );
                poll_screensaver(&conn, self.poll_interval, &sink)
            }
        }
    }
}

/// Follows IdleMonitor's watches; `idle_ms` is the idle time now.
fn watch(monitor: &Proxy, idle_ms: u64, sink: &Sink) -> Result<(), DetectError> {
    // Subscribed before any watch exists, so no firing is missed.
    let fired = monitor.receive_signal("WatchFired").map_err(fail)?;
    let timeout_ms = NOTIFY_TIMEOUT.as_millis() as u64;
    let idle_watch: u32 = monitor.call("AddIdleWatch", &(timeout_ms,)).map_err(fail)?;
    let add_active =
        || -> Result<u32, DetectError> { monitor.call("AddUserActiveWatch", &()).map_err(fail) };
    tracing::info!(
        "gnome_idle: org.gnome.Mutter.IdleMonitor, idle after {}s",
        NOTIFY_TIMEOUT.as_secs()
    );
    let heartbeat = Heartbeat::start(sink.clone(), KIND, NOTIFY_TIMEOUT);
    let mut active_watch = None;
    if input_before_start(Duration::from_millis(idle_ms)) {
        tracing::info!("gnome_idle: input {idle_ms} ms before the start");
        sink.emit(KIND);
        heartbeat.resumed();
    } else {
        active_watch = Some(add_active()?);
    }
    for message in fired {
        if sink.is_closed() {
            return Ok(());
        }
        let Ok(id) = message.body().deserialize::<u32>() else {
            continue;
        };
        if id == idle_watch {
            heartbeat.idled();
            if active_watch.is_none() {
                active_watch = Some(add_active()?);
            }
        } else if Some(id) == active_watch {
            active_watch = None;
            sink.emit(KIND);
            heartbeat.resumed();
        }
    }
    Err(fail("the session bus connection closed"))
}

/// Polls `org.freedesktop.ScreenSaver.GetSessionIdleTime` (seconds, as the
/// specification says) and reports input when it went down.
fn poll_screensaver(conn: &Connection, interval: Duration, sink: &Sink) -> Result<(), DetectError> {
    let saver = Proxy::new(
        conn,
        "org.freedesktop.ScreenSaver",
        "/org/freedesktop/ScreenSaver",
        "org.freedesktop.ScreenSaver",
    )
    .map_err(fail)?;
    let idle_ms = || -> Result<u64, DetectError> {
        let seconds: u32 = saver
            .call("GetSessionIdleTime", &())
            .map_err(|e| fail(format!("neither IdleMonitor nor ScreenSaver answers: {e}")))?;
        Ok(u64::from(seconds) * 1000)
    };
    let mut previous = Some(idle_ms()?);
    while !sink.is_closed() {
        std::thread::sleep(interval);
        let now = idle_ms()?;
        if idle_shows_input(previous, now, interval) {
            sink.emit(KIND);
        }
        previous = Some(now);
    }
    Ok(())
}

/// GNOME's IdleMonitor over D-Bus: on GNOME Wayland. Turned on and off
/// with `system_idle`, whose interval its fallback polls at.
pub static DETECTOR: Detector = Detector {
    name: "gnome_idle",
    input: true,
    fits: |session: &Session| match session.kind {
        SessionKind::Wayland if session.gnome_idle => Fit::Yes,
        _ => Fit::No,
    },
    sections: &[&system_idle::SECTION],
    make: Some(|s| Box::new(GnomeIdleSource::new(&SystemIdleSettings::read(s)))),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_idle_time_at_the_start_is_input() {
        // Someone typing every 2 s: at most 2 s idle whenever it starts.
        assert!(input_before_start(Duration::ZERO));
        assert!(input_before_start(Duration::from_millis(2_000)));
        assert!(input_before_start(
            NOTIFY_TIMEOUT - Duration::from_millis(1)
        ));
        // A restart while the user is away: the watch's timeout has passed.
        assert!(!input_before_start(NOTIFY_TIMEOUT));
        assert!(!input_before_start(Duration::from_secs(3_600)));
    }
}

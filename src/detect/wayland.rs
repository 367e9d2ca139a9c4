//! The Wayland compositor's own idle notification: every input the
//! compositor sees, whichever client (native or Xwayland) has the focus.
//!
//! Binds `ext_idle_notifier_v1` (the standard, staging protocol) or, where
//! only that exists (sway 1.7, older KWin), `org_kde_kwin_idle`, and asks for
//! a notification after [`NOTIFY_TIMEOUT`] without input on the first
//! `wl_seat`. Each `resumed` is activity; between `resumed` and the next
//! `idled` the [`Heartbeat`] re-asserts activity every [`NOTIFY_TIMEOUT`].
//! The thread blocks on the Wayland socket: no polling. The initial state is
//! not reported: an idle notification says nothing until the first
//! transition, and a restart while the user is away must not wake anything.

use super::definition::{Desktop, Detector, Fit, Session, SessionKind};
use super::heartbeat::Heartbeat;
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::activity::ActivityKind;
use std::time::Duration;
use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::{wl_registry, wl_seat};
use wayland_client::{delegate_noop, Connection, Dispatch, Proxy as _, QueueHandle};
use wayland_protocols::ext::idle_notify::v1::client::{
    ext_idle_notification_v1, ext_idle_notifier_v1,
};
use wayland_protocols_plasma::idle::client::{org_kde_kwin_idle, org_kde_kwin_idle_timeout};

/// Input-free time after which the compositor reports the seat idle, and
/// the period of "still active" while it is not. Short, so the orchestrator's
/// idle countdown is at most this late; long enough that someone typing
/// causes no idle/resume traffic between keys.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

const KIND: ActivityKind = ActivityKind::WaylandIdle;

/// Listens to the compositor's idle notifications.
pub struct WaylandIdleSource;

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new("wayland_idle", message)
}

struct State {
    sink: Sink,
    heartbeat: Heartbeat,
}

impl State {
    fn resumed(&self) {
        self.sink.emit(KIND);
        self.heartbeat.resumed();
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for State {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<ext_idle_notification_v1::ExtIdleNotificationV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &ext_idle_notification_v1::ExtIdleNotificationV1,
        event: ext_idle_notification_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            ext_idle_notification_v1::Event::Idled => state.heartbeat.idled(),
            ext_idle_notification_v1::Event::Resumed => state.resumed(),
            _ => {}
        }
    }
}

impl Dispatch<org_kde_kwin_idle_timeout::OrgKdeKwinIdleTimeout, ()> for State {
    fn event(
        state: &mut Self,
        _: &org_kde_kwin_idle_timeout::OrgKdeKwinIdleTimeout,
        event: org_kde_kwin_idle_timeout::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            org_kde_kwin_idle_timeout::Event::Idle => state.heartbeat.idled(),
            org_kde_kwin_idle_timeout::Event::Resumed => state.resumed(),
            _ => {}
        }
    }
}

delegate_noop!(State: ignore wl_seat::WlSeat);
delegate_noop!(State: ext_idle_notifier_v1::ExtIdleNotifierV1);
delegate_noop!(State: org_kde_kwin_idle::OrgKdeKwinIdle);

impl ActivitySource for WaylandIdleSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let conn = Connection::connect_to_env().map_err(fail)?;
        let (globals, mut queue) = registry_queue_init::<State>(&conn).map_err(fail)?;
        let qh = queue.handle();
        let seat: wl_seat::WlSeat = globals
            .bind(&qh, 1..=1, ())
            .map_err(|e| fail(format!("no wl_seat: {e}")))?;
        let timeout_ms = NOTIFY_TIMEOUT.as_millis() as u32;
        // The notification objects are what the events arrive on: keep them.
        let (protocol, _notification, _kde_timeout) = match globals
            .bind::<ext_idle_notifier_v1::ExtIdleNotifierV1, _, _>(
            &qh,
            1..=2,
            (),
        ) {
            // Version 2: input only, so an idle inhibitor (a video player)
            // does not pass for someone at the keyboard.
            Ok(notifier) if notifier.version() >= 2 => (
                "ext_idle_notifier_v1 (input)",
                Some(notifier.get_input_idle_notification(timeout_ms, &seat, &qh, ())),
                None,
            ),
            Ok(notifier) => (
                "ext_idle_notifier_v1",
                Some(notifier.get_idle_notification(timeout_ms, &seat, &qh, ())),
                None,
            ),
            Err(_) => {
                let kde: org_kde_kwin_idle::OrgKdeKwinIdle =
                    globals.bind(&qh, 1..=1, ()).map_err(|_| {
                        fail("the compositor offers neither ext_idle_notifier_v1 nor org_kde_kwin_idle")
                    })?;
                (
                    "org_kde_kwin_idle",
                    None,
                    Some(kde.get_idle_timeout(&seat, timeout_ms, &qh, ())),
                )
            }
        };
        tracing::info!(
            "wayland_idle: {protocol}, idle after {}s",
            NOTIFY_TIMEOUT.as_secs()
        );
        let mut state = State {
            heartbeat: Heartbeat::start(sink.clone(), KIND, NOTIFY_TIMEOUT),
            sink,
        };
        while !state.sink.is_closed() {
            queue
                .blocking_dispatch(&mut state)
                .map_err(|e| fail(format!("connection to the compositor lost: {e}")))?;
        }
        Ok(())
    }
}

/// The compositor's idle notification: on Wayland, except GNOME (whose
/// mutter has its own IdleMonitor). Turned on and off with `system_idle`.
pub static DETECTOR: Detector = Detector {
    name: "wayland_idle",
    input: true,
    fits: |session: &Session| match session.kind {
        SessionKind::Wayland if session.desktop != Desktop::Gnome => Fit::Yes,
        _ => Fit::No,
    },
    sections: &[&super::system_idle::SECTION],
    make: Some(|_| Box::new(WaylandIdleSource)),
};

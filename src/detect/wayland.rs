//! The Wayland compositor's own idle notification: every input the
//! compositor sees, whichever client (native or Xwayland) has the focus.
//!
//! Binds `ext_idle_notifier_v1` (the standard, staging protocol) or, where
//! only that exists (sway 1.7, older KWin), `org_kde_kwin_idle`, and asks for
//! a notification after [`NOTIFY_TIMEOUT`] without input on the first
//! `wl_seat`. Each `resumed` is activity; between `resumed` and the next
//! `idled` the [`Heartbeat`] re-asserts activity every [`NOTIFY_TIMEOUT`].
//! The thread blocks on the Wayland socket: no polling.
//!
//! The compositor's timer starts at the bind, and it says nothing but
//! `idled` first: a seat left alone is reported idle within the timeout (so
//! a restart while the user is away wakes nothing), and only input since
//! the bind keeps it silent. So silence past the timeout is presence
//! ([`FirstWord`]): someone typing from the moment the source starts counts
//! from then, not from their first pause.

use super::definition::{Detector, Fit, Session, SessionKind};
use super::heartbeat::Heartbeat;
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::model::activity::ActivityKind;
use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::time::{Duration, Instant};
use wayland_client::backend::WaylandError;
use wayland_client::globals::{registry_queue_init, GlobalList, GlobalListContents};
use wayland_client::protocol::{wl_registry, wl_seat};
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, Proxy as _, QueueHandle};
use wayland_protocols::ext::idle_notify::v1::client::{
    ext_idle_notification_v1, ext_idle_notifier_v1,
};
use wayland_protocols_plasma::idle::client::{org_kde_kwin_idle, org_kde_kwin_idle_timeout};

/// Input-free time after which the compositor reports the seat idle, and
/// the period of "still active" while it is not. Short, so the orchestrator's
/// idle countdown is at most this late; long enough that someone typing
/// causes no idle/resume traffic between keys.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after the timeout an `idled` may still arrive: the compositor's
/// timer starts when it reads the request, and the event travels back.
const GRACE: Duration = Duration::from_millis(750);

/// The idle protocols this source binds, as the registry names them.
const IDLE_PROTOCOLS: [&str; 2] = ["ext_idle_notifier_v1", "org_kde_kwin_idle"];

const KIND: ActivityKind = ActivityKind::WaylandIdle;

/// Listens to the compositor's idle notifications.
pub struct WaylandIdleSource;

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new("wayland_idle", message)
}

fn lost(e: impl std::fmt::Display) -> DetectError {
    fail(format!("connection to the compositor lost: {e}"))
}

/// Whether the session's compositor (`WAYLAND_DISPLAY`) offers an idle
/// protocol this source binds; false when it cannot be reached.
pub(super) fn compositor_offers_idle() -> bool {
    let globals = || -> Option<Vec<String>> {
        let conn = Connection::connect_to_env().ok()?;
        let (globals, _) = registry_queue_init::<State>(&conn).ok()?;
        Some(
            globals
                .contents()
                .with_list(|list| list.iter().map(|g| g.interface.clone()).collect()),
        )
    };
    globals().is_some_and(|names| names.iter().any(|n| IDLE_PROTOCOLS.contains(&n.as_str())))
}

/// The compositor's first word after a bind: until it says anything, its
/// silence past the timeout (plus [`GRACE`]) is input since the bind, which
/// it will never announce (no `resumed` without an `idled` first).
#[derive(Debug, Clone, Copy)]
struct FirstWord {
    bound_at: Instant,
    timeout: Duration,
    /// Whether the compositor spoke, or its silence already counted.
    settled: bool,
}

impl FirstWord {
    /// Waits for the compositor's word on a notification of `timeout`
    /// made at `bound_at`.
    fn new(bound_at: Instant, timeout: Duration) -> Self {
        FirstWord {
            bound_at,
            timeout,
            settled: false,
        }
    }

    /// The compositor spoke (`idled` or `resumed`): its events tell the rest.
    fn heard(&mut self) {
        self.settled = true;
    }

    /// When its silence becomes presence; `None` once settled.
    fn deadline(&self) -> Option<Instant> {
        (!self.settled).then(|| self.bound_at + self.timeout + GRACE)
    }

    /// Whether the silence until `now` shows input: true once, at the first
    /// call past the deadline.
    fn silence_is_presence(&mut self, now: Instant) -> bool {
        let due = self.deadline().is_some_and(|deadline| now >= deadline);
        self.settled |= due;
        due
    }
}

struct State {
    sink: Sink,
    heartbeat: Heartbeat,
    first_word: FirstWord,
}

impl State {
    fn idled(&mut self) {
        self.first_word.heard();
        self.heartbeat.idled();
    }

    fn resumed(&mut self) {
        self.first_word.heard();
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
            ext_idle_notification_v1::Event::Idled => state.idled(),
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
            org_kde_kwin_idle_timeout::Event::Idle => state.idled(),
            org_kde_kwin_idle_timeout::Event::Resumed => state.resumed(),
            _ => {}
        }
    }
}

delegate_noop!(State: ignore wl_seat::WlSeat);
delegate_noop!(State: ext_idle_notifier_v1::ExtIdleNotifierV1);
delegate_noop!(State: org_kde_kwin_idle::OrgKdeKwinIdle);

/// The notification the events arrive on (kept for as long as they should),
/// and its protocol's name.
struct Bound {
    protocol: &'static str,
    _ext: Option<ext_idle_notification_v1::ExtIdleNotificationV1>,
    _kde: Option<org_kde_kwin_idle_timeout::OrgKdeKwinIdleTimeout>,
}

/// Asks for an idle notification after [`NOTIFY_TIMEOUT`] on the first seat.
fn bind(globals: &GlobalList, qh: &QueueHandle<State>) -> Result<Bound, DetectError> {
    let seat: wl_seat::WlSeat = globals
        .bind(qh, 1..=1, ())
        .map_err(|e| fail(format!("no wl_seat: {e}")))?;
    let timeout_ms = NOTIFY_TIMEOUT.as_millis() as u32;
    let ext = |protocol, notification| Bound {
        protocol,
        _ext: Some(notification),
        _kde: None,
    };
    match globals.bind::<ext_idle_notifier_v1::ExtIdleNotifierV1, _, _>(qh, 1..=2, ()) {
        // Version 2: input only, so an idle inhibitor (a video player) does
        // not pass for someone at the keyboard.
        Ok(notifier) if notifier.version() >= 2 => Ok(ext(
            "ext_idle_notifier_v1 (input)",
            notifier.get_input_idle_notification(timeout_ms, &seat, qh, ()),
        )),
        Ok(notifier) => Ok(ext(
            "ext_idle_notifier_v1",
            notifier.get_idle_notification(timeout_ms, &seat, qh, ()),
        )),
        Err(_) => {
            let kde: org_kde_kwin_idle::OrgKdeKwinIdle =
                globals.bind(qh, 1..=1, ()).map_err(|_| {
                    fail("the compositor offers neither ext_idle_notifier_v1 nor org_kde_kwin_idle")
                })?;
            Ok(Bound {
                protocol: "org_kde_kwin_idle",
                _ext: None,
                _kde: Some(kde.get_idle_timeout(&seat, timeout_ms, qh, ())),
            })
        }
    }
}

/// Dispatches the compositor's events, waiting for some until `deadline`
/// at most (without one, for as long as it takes).
fn dispatch(
    queue: &mut EventQueue<State>,
    state: &mut State,
    deadline: Option<Instant>,
) -> Result<(), DetectError> {
    let Some(deadline) = deadline else {
        return queue.blocking_dispatch(state).map(drop).map_err(lost);
    };
    if queue.dispatch_pending(state).map_err(lost)? > 0 {
        return Ok(());
    }
    queue.flush().map_err(lost)?;
    if let Some(guard) = queue.prepare_read() {
        let wait = deadline.saturating_duration_since(Instant::now());
        if readable(guard.connection_fd(), wait) {
            match guard.read() {
                Err(WaylandError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(lost(e)),
                Ok(_) => {}
            }
        }
    }
    queue.dispatch_pending(state).map_err(lost)?;
    Ok(())
}

/// Whether `fd` has something to read (or an error) within `wait`.
fn readable(fd: BorrowedFd<'_>, wait: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLERR,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, alive for the whole call; the fd is borrowed
    // from the connection, which outlives it.
    unsafe { libc::poll(&mut poll, 1, ms) > 0 }
}

impl ActivitySource for WaylandIdleSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let conn = Connection::connect_to_env().map_err(fail)?;
        let (globals, mut queue) = registry_queue_init::<State>(&conn).map_err(fail)?;
        // Held until the end: the events arrive on its notification.
        let bound = bind(&globals, &queue.handle())?;
        queue.flush().map_err(lost)?;
        let mut state = State {
            heartbeat: Heartbeat::start(sink.clone(), KIND, NOTIFY_TIMEOUT),
            sink,
            first_word: FirstWord::new(Instant::now(), NOTIFY_TIMEOUT),
        };
        tracing::info!(
            "wayland_idle: {}, idle after {}s",
            bound.protocol,
            NOTIFY_TIMEOUT.as_secs()
        );
        while !state.sink.is_closed() {
            let deadline = state.first_word.deadline();
            dispatch(&mut queue, &mut state, deadline)?;
            if state.first_word.silence_is_presence(Instant::now()) {
                tracing::info!(
                    "wayland_idle: no idle notice within {}s of binding: input meanwhile",
                    NOTIFY_TIMEOUT.as_secs()
                );
                state.resumed();
            }
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
        SessionKind::Wayland if !session.gnome_idle => Fit::Yes,
        _ => Fit::No,
    },
    sections: &[&super::system_idle::SECTION],
    make: Some(|_| Box::new(WaylandIdleSource)),
};

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = NOTIFY_TIMEOUT;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn silence_past_the_timeout_is_presence_once() {
        let t0 = Instant::now();
        let mut word = FirstWord::new(t0, T);
        assert_eq!(word.deadline(), Some(t0 + T + GRACE));
        assert!(!word.silence_is_presence(t0));
        // An idled may still be on its way just after the timeout.
        assert!(!word.silence_is_presence(t0 + T));
        assert!(!word.silence_is_presence(t0 + T + GRACE - Duration::from_millis(1)));
        assert!(word.silence_is_presence(t0 + T + GRACE));
        // Said once: from then on the heartbeat re-asserts it until idled.
        assert!(!word.silence_is_presence(at(t0, 60_000)));
        assert_eq!(word.deadline(), None);
    }

    #[test]
    fn an_idled_within_the_timeout_means_nobody_is_there() {
        // A restart while the user is away: the compositor says idled at
        // the timeout, and nothing counts as presence afterwards.
        let t0 = Instant::now();
        let mut word = FirstWord::new(t0, T);
        assert!(!word.silence_is_presence(at(t0, 5_000)));
        word.heard();
        assert_eq!(word.deadline(), None);
        assert!(!word.silence_is_presence(at(t0, 5_750)));
        assert!(!word.silence_is_presence(at(t0, 3_600_000)));
    }

    #[test]
    fn a_resumed_after_an_idled_is_the_events_business() {
        // Idled then resumed (the user left and came back): each event
        // speaks for itself; silence after them never becomes presence.
        let t0 = Instant::now();
        let mut word = FirstWord::new(t0, T);
        word.heard();
        word.heard();
        assert!(!word.silence_is_presence(at(t0, 20_000)));
    }

    #[test]
    fn a_rebind_waits_for_a_word_of_its_own() {
        // After a lost connection the source binds again: a new first word,
        // with its own deadline from the new bind.
        let t0 = Instant::now();
        let mut first = FirstWord::new(t0, T);
        first.heard();
        let rebound = at(t0, 120_000);
        let mut second = FirstWord::new(rebound, T);
        assert!(!second.silence_is_presence(at(rebound, 5_000)));
        assert!(second.silence_is_presence(at(rebound, 5_750)));
    }
}

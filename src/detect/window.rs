//! The focused window: a change of window (or of the focused window's
//! title) is activity; the same window staying focused is not. On X11 the X
//! server says so itself (property events on the root window and the focused
//! one, over one connection kept open), so a look costs no round trip;
//! elsewhere the focused window is polled.

use super::definition::{x_clients, Detector, DetectorSettings, Field, Section};
use super::source::{ActivitySource, DetectError, Sink};
use crate::core::model::activity::ActivityKind;
use std::time::Duration;

/// The focused window: every window on X11, X clients' only through
/// Xwayland.
pub static DETECTOR: Detector = Detector {
    name: "window",
    input: false,
    fits: x_clients,
    sections: &[&SECTION],
    make: Some(|s| Box::new(WindowSource::new(s))),
};

const INTERVAL: Field = Field::number("check_interval_sec", 2.0, 0.1, 3600.0);

/// The `window` section.
pub static SECTION: Section = Section {
    name: "window",
    fields: &[INTERVAL],
};

/// Watches the focused window.
pub struct WindowSource {
    interval: Duration,
}

impl WindowSource {
    pub fn new(settings: &DetectorSettings) -> Self {
        WindowSource {
            interval: Duration::from_secs_f64(settings.of(&SECTION).get(&INTERVAL)),
        }
    }
}

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new(DETECTOR.name, message)
}

impl ActivitySource for WindowSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let mut changed = focus_changes()?;
        while !sink.is_closed() {
            std::thread::sleep(self.interval);
            if changed()? {
                sink.emit(ActivityKind::Window);
            }
        }
        Ok(())
    }
}

/// Whether the focused window (or its title) changed since the last call:
/// from the X server's `PropertyNotify` events for `_NET_ACTIVE_WINDOW` on
/// the root window and for the title of the focused window.
#[cfg(target_os = "linux")]
fn focus_changes() -> Result<impl FnMut() -> Result<bool, DetectError>, DetectError> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{
        AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Window,
    };
    use x11rb::protocol::Event;

    let (conn, screen) = x11rb::connect(None).map_err(fail)?;
    let root = conn.setup().roots[screen].root;
    let atom = |name: &[u8]| -> Result<u32, DetectError> {
        Ok(conn
            .intern_atom(false, name)
            .map_err(fail)?
            .reply()
            .map_err(fail)?
            .atom)
    };
    let active = atom(b"_NET_ACTIVE_WINDOW")?;
    let titles = [atom(b"_NET_WM_NAME")?, AtomEnum::WM_NAME.into()];
    let watch = move |conn: &x11rb::rust_connection::RustConnection, w: Window, on: bool| {
        let mask = if on {
            EventMask::PROPERTY_CHANGE
        } else {
            EventMask::NO_EVENT
        };
        // None focused: nothing to watch. A window gone already answers
        // with an error event: ignored.
        if w != x11rb::NONE {
            let _ = conn
                .change_window_attributes(w, &ChangeWindowAttributesAux::new().event_mask(mask));
        }
    };
    let focused =
        move |conn: &x11rb::rust_connection::RustConnection| -> Result<Window, DetectError> {
            let reply = (conn.get_property(false, root, active, AtomEnum::WINDOW, 0, 1))
                .map_err(fail)?
                .reply()
                .map_err(fail)?;
            Ok(reply.value32().and_then(|mut v| v.next()).unwrap_or(0))
        };
    watch(&conn, root, true);
    let mut now = focused(&conn)?;
    watch(&conn, now, true);
    conn.flush().map_err(fail)?;
    Ok(move || {
        let mut changed = false;
        while let Some(event) = conn.poll_for_event().map_err(fail)? {
            let Event::PropertyNotify(e) = event else {
                continue;
            };
            if e.window == root && e.atom == active {
                let next = focused(&conn)?;
                if next != now {
                    watch(&conn, now, false);
                    watch(&conn, next, true);
                    changed |= next != x11rb::NONE;
                    now = next;
                }
            } else if e.window == now && titles.contains(&e.atom) {
                changed = true;
            }
        }
        conn.flush().map_err(fail)?;
        Ok(changed)
    })
}

/// Whether the focused window (app, process, window id or title) changed
/// since the last call, polled.
#[cfg(not(target_os = "linux"))]
fn focus_changes() -> Result<impl FnMut() -> Result<bool, DetectError>, DetectError> {
    let focused = || {
        active_win_pos_rs::get_active_window()
            .ok()
            .map(|w| (w.app_name, w.process_id, w.window_id, w.title))
    };
    let mut last = focused();
    Ok(move || {
        let now = focused();
        let changed = now.is_some() && now != last;
        last = now;
        Ok(changed)
    })
}

//! The focused window: a change of window (or of the focused window's
//! title) is activity; the same window staying focused is not. On X11 the X
//! server says so itself (property events on the root window and the focused
//! one, over one connection kept open): the detector sleeps until an event
//! comes, then looks at most once per `check_interval_sec`; elsewhere the
//! focused window is polled every `check_interval_sec`.

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

#[cfg(target_os = "linux")]
fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new(DETECTOR.name, message)
}

impl ActivitySource for WindowSource {
    fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
        let mut focus = Focus::open()?;
        while !sink.is_closed() {
            if focus.changed()? {
                sink.emit(ActivityKind::Window);
                // At most one look per interval, however busy the focus.
                std::thread::sleep(self.interval);
            }
            focus.wait(self.interval);
        }
        Ok(())
    }
}

/// How long to wait for the X server's next event before looking whether
/// the detector is still wanted.
#[cfg(target_os = "linux")]
const QUIET_WAIT: Duration = Duration::from_secs(30);

/// The focused window as the X server reports its changes: `PropertyNotify`
/// events for `_NET_ACTIVE_WINDOW` on the root window and for the title of
/// the focused window, over one connection.
#[cfg(target_os = "linux")]
struct Focus {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    active: u32,
    titles: [u32; 2],
    now: u32,
}

#[cfg(target_os = "linux")]
impl Focus {
    fn open() -> Result<Focus, DetectError> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _};
        let (conn, screen) = x11rb::connect(None).map_err(fail)?;
        let root = conn.setup().roots[screen].root;
        let atom = |name: &[u8]| -> Result<u32, DetectError> {
            let reply = conn.intern_atom(false, name).map_err(fail)?.reply();
            Ok(reply.map_err(fail)?.atom)
        };
        let active = atom(b"_NET_ACTIVE_WINDOW")?;
        let titles = [atom(b"_NET_WM_NAME")?, AtomEnum::WM_NAME.into()];
        let mut focus = Focus {
            conn,
            root,
            active,
            titles,
            now: x11rb::NONE,
        };
        focus.watch(root, true);
        focus.now = focus.focused()?;
        focus.watch(focus.now, true);
        focus.conn.flush().map_err(fail)?;
        Ok(focus)
    }

    /// Starts (`on`) or stops hearing of `w`'s property changes. None
    /// focused: nothing to watch; a window gone already answers with an
    /// error event, ignored.
    fn watch(&self, w: u32, on: bool) {
        use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _, EventMask};
        let mask = if on {
            EventMask::PROPERTY_CHANGE
        } else {
            EventMask::NO_EVENT
        };
        if w != x11rb::NONE {
            let aux = ChangeWindowAttributesAux::new().event_mask(mask);
            let _ = self.conn.change_window_attributes(w, &aux);
        }
    }

    /// The focused window (`_NET_ACTIVE_WINDOW`), or none.
    fn focused(&self) -> Result<u32, DetectError> {
        use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _};
        let cookie = (self.conn)
            .get_property(false, self.root, self.active, AtomEnum::WINDOW, 0, 1)
            .map_err(fail)?;
        let reply = cookie.reply().map_err(fail)?;
        Ok(reply
            .value32()
            .and_then(|mut v| v.next())
            .unwrap_or(x11rb::NONE))
    }

    /// Whether the focus (or the focused window's title) changed since the
    /// last call: the events that came meanwhile.
    fn changed(&mut self) -> Result<bool, DetectError> {
        use x11rb::connection::Connection;
        use x11rb::protocol::Event;
        let mut changed = false;
        while let Some(event) = self.conn.poll_for_event().map_err(fail)? {
            let Event::PropertyNotify(e) = event else {
                continue;
            };
            if e.window == self.root && e.atom == self.active {
                let next = self.focused()?;
                if next != self.now {
                    self.watch(self.now, false);
                    self.watch(next, true);
                    changed |= next != x11rb::NONE;
                    self.now = next;
                }
            } else if e.window == self.now && self.titles.contains(&e.atom) {
                changed = true;
            }
        }
        self.conn.flush().map_err(fail)?;
        Ok(changed)
    }

    /// Waits until the X server has something to say (or a while passed).
    fn wait(&self, _interval: Duration) {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: self.conn.stream().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the connection's open socket.
        unsafe { libc::poll(&mut fd, 1, QUIET_WAIT.as_millis() as libc::c_int) };
    }
}

/// The focused window (app, process, window id and title), polled.
#[cfg(not(target_os = "linux"))]
struct Focus(Option<(String, u64, String, String)>);

#[cfg(not(target_os = "linux"))]
impl Focus {
    fn now() -> Option<(String, u64, String, String)> {
        active_win_pos_rs::get_active_window()
            .ok()
            .map(|w| (w.app_name, w.process_id, w.window_id, w.title))
    }

    fn open() -> Result<Focus, DetectError> {
        Ok(Focus(Self::now()))
    }

    /// Whether the focused window changed since the last call.
    fn changed(&mut self) -> Result<bool, DetectError> {
        let now = Self::now();
        let changed = now.is_some() && now != self.0;
        self.0 = now;
        Ok(changed)
    }

    /// The next look is an interval away.
    fn wait(&self, interval: Duration) {
        std::thread::sleep(interval);
    }
}

//! Which detectors fit the graphical session: a pure choice from the
//! session's environment variables and what probing the session found.
//!
//! On Wayland the X-based detectors see only Xwayland clients (X RECORD),
//! or nothing at all (Xwayland has no MIT-SCREEN-SAVER, and its root window
//! cannot be read), so the compositor's own idle notification (or GNOME's
//! IdleMonitor) is the source of truth for input there.

use std::fmt;
use std::time::Duration;

/// The kind of graphical session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    X11,
    Wayland,
    /// No display at all (a text console, SSH, a service).
    Headless,
}

/// The desktop, from `XDG_CURRENT_DESKTOP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desktop {
    Gnome,
    Kde,
    /// Anything else: sway and other wlroots compositors, X window managers.
    Other,
}

/// One detector, by its name in settings.json and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// Keyboard and mouse through X RECORD (rdev).
    Input,
    /// Screen sampling (xcap).
    Screen,
    Audio,
    /// A microphone in use, from the sound server's recordings.
    Microphone,
    /// The active window (active-win-pos-rs).
    Window,
    /// X's MIT-SCREEN-SAVER idle time.
    SystemIdle,
    /// The compositor's idle notification.
    WaylandIdle,
    /// GNOME's IdleMonitor over D-Bus.
    GnomeIdle,
    /// logind and screensaver lock signals.
    ScreenLock,
}

impl Detector {
    /// The detector's name.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Input => "keyboard/mouse",
            Detector::Screen => "screen",
            Detector::Audio => "audio",
            Detector::Microphone => "microphone",
            Detector::Window => "window",
            Detector::SystemIdle => "system_idle",
            Detector::WaylandIdle => "wayland_idle",
            Detector::GnomeIdle => "gnome_idle",
            Detector::ScreenLock => "screen_lock",
        }
    }
}

/// What the environment says about the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionEnv {
    /// `XDG_SESSION_TYPE`.
    pub session_type: Option<String>,
    /// Whether `WAYLAND_DISPLAY` is set.
    pub wayland_display: bool,
    /// Whether `DISPLAY` is set (on Wayland: Xwayland).
    pub display: bool,
    /// `XDG_CURRENT_DESKTOP`.
    pub current_desktop: Option<String>,
    /// What the session offers, whatever its name says.
    pub probed: Probed,
}

/// The idle services found by asking the session itself (none when it was
/// not asked, or did not answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probed {
    /// GNOME's `org.gnome.Mutter.IdleMonitor` is on the session bus.
    pub mutter_idle_monitor: bool,
    /// The compositor offers `ext_idle_notifier_v1` or `org_kde_kwin_idle`.
    pub wayland_idle: bool,
}

/// How long the probes may take: a session that does not answer by then
/// is left to its name.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// Asks the session bus and the Wayland compositor which idle services
/// they offer, both at once, each for up to [`PROBE_LIMIT`].
#[cfg(target_os = "linux")]
fn probe() -> Probed {
    let ask = |question: fn() -> bool| {
        let (tx, rx) = std::sync::mpsc::channel();
        let asked = std::thread::Builder::new()
            .name("detect-probe".into())
            .spawn(move || tx.send(question()));
        (rx, asked.is_ok())
    };
    let limit = std::time::Instant::now() + PROBE_LIMIT;
    let answer = |(rx, asked): (std::sync::mpsc::Receiver<bool>, bool)| {
        let wait = limit.saturating_duration_since(std::time::Instant::now());
        asked && rx.recv_timeout(wait).unwrap_or(false)
    };
    let bus = ask(super::gnome::idle_monitor_on_bus);
    let registry = ask(super::wayland::compositor_offers_idle);
    Probed {
        mutter_idle_monitor: answer(bus),
        wayland_idle: answer(registry),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Probed {
    Probed::default()
}

impl SessionEnv {
    /// This process's environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let wayland_display = var("WAYLAND_DISPLAY").is_some();
        SessionEnv {
            session_type: var("XDG_SESSION_TYPE"),
            wayland_display,
            display: var("DISPLAY").is_some(),
            current_desktop: var("XDG_CURRENT_DESKTOP"),
            probed: if wayland_display {
                probe()
            } else {
                Probed::default()
            },
        }
    }
}

/// The detectors to start in a session, before the settings' own switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub session: SessionKind,
    pub desktop: Desktop,
    /// The detectors that can work here.
    pub start: Vec<Detector>,
    /// Of those, the ones that do not see all input here (on Wayland: the
    /// X-based ones): they add activity they saw, but their silence proves
    /// nothing (for a "blind" rule).
    pub not_input_truth: Vec<Detector>,
}

/// Chooses the detectors for the session described by `env`.
///
/// `XDG_SESSION_TYPE` decides when it says `x11` or `wayland`; otherwise
/// (`tty`, unset) `WAYLAND_DISPLAY` means Wayland and `DISPLAY` means X11.
/// On Wayland the idle service found by probing decides between GNOME's
/// IdleMonitor and the compositor's idle protocol; the desktop's name only
/// when neither was found.
pub fn plan(env: &SessionEnv) -> Plan {
    let session = match env.session_type.as_deref() {
        Some("wayland") => SessionKind::Wayland,
        Some("x11") if env.display => SessionKind::X11,
        _ if env.wayland_display => SessionKind::Wayland,
        _ if env.display => SessionKind::X11,
        _ => SessionKind::Headless,
    };
    let named = env.current_desktop.as_deref().map_or(Desktop::Other, |d| {
        let has = |name: &str| d.split(':').any(|part| part.eq_ignore_ascii_case(name));
        if has("GNOME") {
            Desktop::Gnome
        } else if has("KDE") {
            Desktop::Kde
        } else {
            Desktop::Other
        }
    });
    // Mutter is GNOME's compositor, whatever the session is called.
    let desktop = if env.probed.mutter_idle_monitor {
        Desktop::Gnome
    } else {
        named
    };
    use Detector::*;
    let (start, not_input_truth) = match session {
        SessionKind::X11 => (
            vec![
                Input, Screen, Audio, Microphone, Window, SystemIdle, ScreenLock,
            ],
            vec![],
        ),
        SessionKind::Wayland => {
            let idle = match (env.probed.mutter_idle_monitor, env.probed.wayland_idle) {
                (true, _) => GnomeIdle,
                (false, true) => WaylandIdle,
                (false, false) if desktop == Desktop::Gnome => GnomeIdle,
                (false, false) => WaylandIdle,
            };
            let mut start = vec![idle];
            // Through Xwayland: what X clients see, nothing more.
            if env.display {
                start.extend([Input, Window]);
            }
            // xcap captures through wlroots' screencopy; on GNOME and KDE it
            // would go through the screenshot portal (a prompt or a flash).
            if desktop == Desktop::Other {
                start.push(Screen);
            }
            start.extend([Audio, Microphone, ScreenLock]);
            let blind = start
                .iter()
                .copied()
                .filter(|d| matches!(d, Input | Window | Screen | SystemIdle))
                .collect();
            (start, blind)
        }
        SessionKind::Headless => (vec![Audio, Microphone, ScreenLock], vec![]),
    };
    Plan {
        session,
        desktop,
        start,
        not_input_truth,
    }
}

impl Plan {
    /// "an X11 session", "a Wayland session", "a session without a display".
    pub fn session_name(&self) -> &'static str {
        match self.session {
            SessionKind::X11 => "an X11 session",
            SessionKind::Wayland => "a Wayland session",
            SessionKind::Headless => "a session without a display",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names =
            |list: &[Detector]| list.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ");
        write!(f, "{:?} session ({:?} desktop)", self.session, self.desktop)?;
        write!(f, "; detectors for it: {}", names(&self.start))?;
        if !self.not_input_truth.is_empty() {
            write!(
                f,
                "; not sources of truth for input here: {}",
                names(&self.not_input_truth)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Detector::*;
    use super::*;

    fn env(
        session_type: Option<&str>,
        wayland: bool,
        x: bool,
        desktop: Option<&str>,
    ) -> SessionEnv {
        SessionEnv {
            session_type: session_type.map(str::to_string),
            wayland_display: wayland,
            display: x,
            current_desktop: desktop.map(str::to_string),
            probed: Probed::default(),
        }
    }

    #[test]
    fn x11_uses_the_x_detectors() {
        let p = plan(&env(Some("x11"), false, true, Some("XFCE")));
        assert_eq!(p.session, SessionKind::X11);
        assert_eq!(
            p.start,
            vec![Input, Screen, Audio, Microphone, Window, SystemIdle, ScreenLock]
        );
        assert!(p.not_input_truth.is_empty());
        // GNOME on X11: X's idle time works, no need for IdleMonitor.
        let p = plan(&env(Some("x11"), false, true, Some("ubuntu:GNOME")));
        assert!(p.start.contains(&SystemIdle) && !p.start.contains(&GnomeIdle));
    }

    #[test]
    fn sway_uses_the_idle_protocol_and_distrusts_xwayland() {
        let p = plan(&env(Some("wayland"), true, true, Some("sway")));
        assert_eq!(p.session, SessionKind::Wayland);
        assert_eq!(p.desktop, Desktop::Other);
        assert_eq!(
            p.start,
            vec![
                WaylandIdle,
                Input,
                Window,
                Screen,
                Audio,
                Microphone,
                ScreenLock
            ]
        );
        assert!(!p.start.contains(&SystemIdle), "Xwayland has no idle time");
        assert_eq!(p.not_input_truth, vec![Input, Window, Screen]);
        // No Xwayland: nothing X-based at all.
        let p = plan(&env(Some("wayland"), true, false, None));
        assert_eq!(
            p.start,
            vec![WaylandIdle, Screen, Audio, Microphone, ScreenLock]
        );
        assert_eq!(p.not_input_truth, vec![Screen]);
    }

    #[test]
    fn gnome_and_kde_on_wayland() {
        let p = plan(&env(Some("wayland"), true, true, Some("GNOME")));
        assert_eq!(p.desktop, Desktop::Gnome);
        assert_eq!(
            p.start,
            vec![GnomeIdle, Input, Window, Audio, Microphone, ScreenLock]
        );
        assert_eq!(p.not_input_truth, vec![Input, Window]);
        let p = plan(&env(Some("wayland"), true, true, Some("KDE")));
        assert_eq!(p.desktop, Desktop::Kde);
        assert_eq!(
            p.start,
            vec![WaylandIdle, Input, Window, Audio, Microphone, ScreenLock]
        );
    }

    #[test]
    fn the_idle_service_found_decides_over_the_name() {
        let probed = |mutter_idle_monitor, wayland_idle, desktop: Option<&str>| {
            plan(&SessionEnv {
                probed: Probed {
                    mutter_idle_monitor,
                    wayland_idle,
                },
                ..env(Some("wayland"), true, false, desktop)
            })
        };
        // Mutter without XDG_CURRENT_DESKTOP (a service that did not
        // import it): GNOME, as if it had been named.
        let p = probed(true, false, None);
        assert_eq!(p.desktop, Desktop::Gnome);
        assert_eq!(p.start, vec![GnomeIdle, Audio, Microphone, ScreenLock]);
        assert_eq!(p, plan(&env(Some("wayland"), true, false, Some("GNOME"))));
        // A compositor with an idle protocol under a GNOME name left over.
        let p = probed(false, true, Some("GNOME"));
        assert_eq!(p.start[0], WaylandIdle);
        // KDE or wlroots, unnamed: the idle protocol.
        let p = probed(false, true, None);
        assert_eq!(p.desktop, Desktop::Other);
        assert_eq!(p.start[0], WaylandIdle);
        // Nothing answered: the name decides, as before.
        assert_eq!(probed(false, false, Some("GNOME")).start[0], GnomeIdle);
        assert_eq!(probed(false, false, None).start[0], WaylandIdle);
    }

    #[test]
    fn without_a_session_type_the_displays_decide() {
        assert_eq!(
            plan(&env(None, true, false, None)).session,
            SessionKind::Wayland
        );
        assert_eq!(
            plan(&env(Some("tty"), true, true, None)).session,
            SessionKind::Wayland
        );
        assert_eq!(
            plan(&env(None, false, true, None)).session,
            SessionKind::X11
        );
        // A stale x11 type with no DISPLAY left but a Wayland socket.
        assert_eq!(
            plan(&env(Some("x11"), true, false, None)).session,
            SessionKind::Wayland
        );
        let p = plan(&env(Some("tty"), false, false, None));
        assert_eq!(p.session, SessionKind::Headless);
        assert_eq!(p.start, vec![Audio, Microphone, ScreenLock]);
    }

    #[test]
    fn the_plan_reads_as_one_log_line() {
        let p = plan(&env(Some("wayland"), true, true, Some("sway")));
        assert_eq!(
            p.to_string(),
            "Wayland session (Other desktop); detectors for it: wayland_idle, keyboard/mouse, \
             window, screen, audio, microphone, screen_lock; not sources of truth for input here: \
             keyboard/mouse, window, screen"
        );
        let p = plan(&env(Some("wayland"), true, false, Some("GNOME")));
        assert_eq!(
            p.to_string(),
            "Wayland session (Gnome desktop); detectors for it: gnome_idle, audio, microphone, screen_lock"
        );
    }
}

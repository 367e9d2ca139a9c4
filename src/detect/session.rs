//! Which detectors fit the graphical session: a pure choice from the
//! session's environment variables and what probing the session found.
//!
//! On Wayland the X-based detectors see only Xwayland clients (X RECORD),
//! or nothing at all (Xwayland has no MIT-SCREEN-SAVER, and its root window
//! cannot be read), so the compositor's own idle notification (or GNOME's
//! IdleMonitor) is the source of truth for input there.

pub use super::definition::{Desktop, SessionKind};
use super::definition::{Detector, Fit, Session};
use super::list::DETECTORS;
use std::fmt;

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
#[cfg(target_os = "linux")]
const PROBE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// The detectors that can work here, in the list's order.
    pub start: Vec<&'static Detector>,
    /// Of those, the ones that do not see all input here (on Wayland: the
    /// X-based ones): they add activity they saw, but their silence proves
    /// nothing (for a "blind" rule).
    pub not_input_truth: Vec<&'static Detector>,
}

/// Chooses the detectors for the session described by `env`: each one of
/// [`DETECTORS`] with a source says whether it fits.
///
/// `XDG_SESSION_TYPE` decides when it says `x11` or `wayland`; otherwise
/// (`tty`, unset) `WAYLAND_DISPLAY` means Wayland and `DISPLAY` means X11.
/// On Wayland the idle service found by probing decides between GNOME's
/// IdleMonitor and the compositor's idle protocol; the desktop's name only
/// when neither was found.
pub fn plan(env: &SessionEnv) -> Plan {
    let session = session(env);
    let fitting = |fit: fn(Fit) -> bool| {
        DETECTORS
            .iter()
            .copied()
            .filter(|d| d.make.is_some() && fit((d.fits)(&session)))
            .collect()
    };
    Plan {
        session: session.kind,
        desktop: session.desktop,
        start: fitting(|f| f != Fit::No),
        not_input_truth: fitting(|f| f == Fit::Partly),
    }
}

/// The session described by `env`.
fn session(env: &SessionEnv) -> Session {
    let kind = match env.session_type.as_deref() {
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
    // The idle service found decides; the name only when none was found.
    let gnome_idle = match (env.probed.mutter_idle_monitor, env.probed.wayland_idle) {
        (true, _) => true,
        (false, true) => false,
        (false, false) => desktop == Desktop::Gnome,
    };
    Session {
        kind,
        gnome_idle,
        desktop,
        xwayland: env.display,
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
        let names = |list: &[&Detector]| list.iter().map(|d| d.name).collect::<Vec<_>>().join(", ");
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

// The session plan is Linux's (elsewhere every detector with a source
// runs), and the Wayland and GNOME detectors exist only there.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::detect::{audio, gnome, inhibitors, input, lock, microphone, screen, system_idle};
    use crate::detect::{wayland, window};

    const INPUT: &Detector = &input::DETECTOR;
    const SCREEN: &Detector = &screen::DETECTOR;
    const AUDIO: &Detector = &audio::DETECTOR;
    const MICROPHONE: &Detector = &microphone::DETECTOR;
    const WINDOW: &Detector = &window::DETECTOR;
    const SYSTEM_IDLE: &Detector = &system_idle::DETECTOR;
    const WAYLAND_IDLE: &Detector = &wayland::DETECTOR;
    const GNOME_IDLE: &Detector = &gnome::DETECTOR;
    const SCREEN_LOCK: &Detector = &lock::DETECTOR;
    const INHIBITORS: &Detector = &inhibitors::DETECTOR;

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
            vec![
                INPUT,
                SCREEN,
                AUDIO,
                WINDOW,
                MICROPHONE,
                SYSTEM_IDLE,
                SCREEN_LOCK,
                INHIBITORS
            ]
        );
        assert!(p.not_input_truth.is_empty());
        // GNOME on X11: X's idle time works, no need for IdleMonitor.
        let p = plan(&env(Some("x11"), false, true, Some("ubuntu:GNOME")));
        assert!(p.start.contains(&SYSTEM_IDLE) && !p.start.contains(&GNOME_IDLE));
    }

    #[test]
    fn sway_uses_the_idle_protocol_and_distrusts_xwayland() {
        let p = plan(&env(Some("wayland"), true, true, Some("sway")));
        assert_eq!(p.session, SessionKind::Wayland);
        assert_eq!(p.desktop, Desktop::Other);
        assert_eq!(
            p.start,
            vec![
                WAYLAND_IDLE,
                INPUT,
                SCREEN,
                AUDIO,
                WINDOW,
                MICROPHONE,
                SCREEN_LOCK,
                INHIBITORS
            ]
        );
        assert!(!p.start.contains(&SYSTEM_IDLE), "Xwayland has no idle time");
        assert_eq!(p.not_input_truth, vec![INPUT, SCREEN, WINDOW]);
        // No Xwayland: nothing X-based at all.
        let p = plan(&env(Some("wayland"), true, false, None));
        assert_eq!(
            p.start,
            vec![
                WAYLAND_IDLE,
                SCREEN,
                AUDIO,
                MICROPHONE,
                SCREEN_LOCK,
                INHIBITORS
            ]
        );
        assert_eq!(p.not_input_truth, vec![SCREEN]);
    }

    #[test]
    fn gnome_and_kde_on_wayland() {
        let p = plan(&env(Some("wayland"), true, true, Some("GNOME")));
        assert_eq!(p.desktop, Desktop::Gnome);
        assert_eq!(
            p.start,
            vec![
                GNOME_IDLE,
                INPUT,
                AUDIO,
                WINDOW,
                MICROPHONE,
                SCREEN_LOCK,
                INHIBITORS
            ]
        );
        assert_eq!(p.not_input_truth, vec![INPUT, WINDOW]);
        let p = plan(&env(Some("wayland"), true, true, Some("KDE")));
        assert_eq!(p.desktop, Desktop::Kde);
        assert_eq!(
            p.start,
            vec![
                WAYLAND_IDLE,
                INPUT,
                AUDIO,
                WINDOW,
                MICROPHONE,
                SCREEN_LOCK,
                INHIBITORS
            ]
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
        assert_eq!(
            p.start,
            vec![GNOME_IDLE, AUDIO, MICROPHONE, SCREEN_LOCK, INHIBITORS]
        );
        assert_eq!(p, plan(&env(Some("wayland"), true, false, Some("GNOME"))));
        // A compositor with an idle protocol under a GNOME name left over.
        let p = probed(false, true, Some("GNOME"));
        assert_eq!(p.start[0], WAYLAND_IDLE);
        // KDE or wlroots, unnamed: the idle protocol.
        let p = probed(false, true, None);
        assert_eq!(p.desktop, Desktop::Other);
        assert_eq!(p.start[0], WAYLAND_IDLE);
        // Nothing answered: the name decides, as before.
        assert_eq!(probed(false, false, Some("GNOME")).start[0], GNOME_IDLE);
        assert_eq!(probed(false, false, None).start[0], WAYLAND_IDLE);
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
        assert_eq!(p.start, vec![AUDIO, MICROPHONE, SCREEN_LOCK, INHIBITORS]);
    }

    #[test]
    fn the_plan_reads_as_one_log_line() {
        let p = plan(&env(Some("wayland"), true, true, Some("sway")));
        assert_eq!(
            p.to_string(),
            "Wayland session (Other desktop); detectors for it: wayland_idle, keyboard/mouse, \
             screen, audio, window, microphone, screen_lock, inhibitors; not sources of truth for \
             input here: keyboard/mouse, screen, window"
        );
        let p = plan(&env(Some("wayland"), true, false, Some("GNOME")));
        assert_eq!(
            p.to_string(),
            "Wayland session (Gnome desktop); detectors for it: gnome_idle, audio, microphone, \
             screen_lock, inhibitors"
        );
    }
}

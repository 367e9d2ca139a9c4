//! What a detector is: its identity, whether it sees input, the sessions it
//! suits, its settings sections with their defaults, and how its source is
//! made. Each detector's file holds its own [`Detector`];
//! [`super::list::DETECTORS`] orders them, and the session plan, the
//! settings parser, the `STATUS` rows and the restart rule all read that list.

use super::source::ActivitySource;
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

/// What a detector's fit depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub kind: SessionKind,
    pub desktop: Desktop,
    /// Whether X clients can be reached (`DISPLAY`; on Wayland: Xwayland).
    pub xwayland: bool,
    /// On Wayland: whether GNOME's IdleMonitor is the idle service (found
    /// on the bus, or by the desktop's name when probing found nothing),
    /// rather than the compositor's idle protocol.
    pub gnome_idle: bool,
}

/// How well a detector suits a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It cannot work there.
    No,
    /// It works and sees what it is meant to.
    Yes,
    /// It works but sees only part of the session (X clients through
    /// Xwayland): what it sees counts, its silence proves nothing.
    Partly,
}

/// For a detector that works in any session.
pub fn everywhere(_: &Session) -> Fit {
    Fit::Yes
}

/// For a detector of X clients: all of them on X11, only those of Xwayland
/// on Wayland (native windows are out of its sight), none without X.
pub fn x_clients(session: &Session) -> Fit {
    match session.kind {
        SessionKind::X11 => Fit::Yes,
        SessionKind::Wayland if session.xwayland => Fit::Partly,
        _ => Fit::No,
    }
}

/// Makes a detector's source from the settings, once per (re)start.
pub type Make = fn(&DetectorSettings) -> Box<dyn ActivitySource>;

/// One detector. Its identity is the definition itself (a `static`):
/// two are equal only if they are the same one.
pub struct Detector {
    /// Its name in `STATUS`, logs and thread names.
    pub name: &'static str,
    /// Whether it is a source of truth for user input where it fits fully.
    pub input: bool,
    /// How well it suits a session (on Linux; elsewhere every detector
    /// with a source runs).
    pub fits: fn(&Session) -> Fit,
    /// Its settings sections: it is on while any of them is `enabled`.
    pub sections: &'static [&'static Section],
    /// Makes its source. `None`: no activity source here, and no `STATUS`
    /// row (not on this platform, or power events, which the daemon
    /// follows itself).
    pub make: Option<Make>,
}

impl Detector {
    /// Whether `settings` turn it on.
    pub fn enabled(&self, settings: &DetectorSettings) -> bool {
        self.sections.iter().any(|s| settings.of(s).enabled)
    }

    /// Whether going from `old` to `new` changes something it reads only
    /// when it starts.
    pub fn needs_restart(&self, old: &DetectorSettings, new: &DetectorSettings) -> bool {
        self.sections
            .iter()
            .any(|s| s.differs_at_start(&old.of(s), &new.of(s)))
    }
}

impl PartialEq for Detector {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Detector {}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Detector").field(&self.name).finish()
    }
}

/// A settings section: `enabled` (default true) and its own numbers.
pub struct Section {
    /// Its key in settings.json (inside `activity_monitor`, or at the top
    /// level).
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Section {
    /// Whether `old` and `new` differ in `enabled` or in a field that is
    /// read only at start.
    fn differs_at_start(&self, old: &Values, new: &Values) -> bool {
        old.enabled != new.enabled
            || self
                .fields
                .iter()
                .any(|f| !f.live && old.reading(f) != new.reading(f))
    }
}

/// A number in a section, with its default and its allowed range.
pub struct Field {
    pub key: &'static str,
    /// A whole number (else any number in range).
    pub whole: bool,
    pub default: f64,
    pub min: f64,
    pub max: f64,
    /// Applies at once when settings.json changes (else at restart).
    pub live: bool,
    /// A list of words (strings), empty by default, instead of a number.
    pub words: bool,
}

impl Field {
    /// A number from `min` to `max`, read at start.
    pub const fn number(key: &'static str, default: f64, min: f64, max: f64) -> Field {
        Field {
            key,
            whole: false,
            default,
            min,
            max,
            live: false,
            words: false,
        }
    }

    /// A whole number from `min` to `max`, read at start.
    pub const fn whole(key: &'static str, default: u32, min: u32, max: u32) -> Field {
        Field {
            whole: true,
            ..Field::number(key, default as f64, min as f64, max as f64)
        }
    }

    /// A list of words (strings; empty by default), read at start.
    pub const fn words(key: &'static str) -> Field {
        Field {
            words: true,
            ..Field::number(key, 0.0, 0.0, 0.0)
        }
    }

    /// The same field, applied at once when settings.json changes.
    pub const fn live(self) -> Field {
        Field { live: true, ..self }
    }

    /// Its default value.
    fn default_reading(&self) -> Reading {
        match self.words {
            true => Reading::Words(Vec::new()),
            false => Reading::Number(self.default),
        }
    }
}

/// A field's value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    Words(Vec<String>),
}

/// One section's values as read, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// The section's name.
    pub section: &'static str,
    pub enabled: bool,
    readings: Vec<(&'static str, Reading)>,
}

impl Values {
    /// `section`'s values: `enabled`, then `readings` in its fields' order.
    pub fn new(section: &'static Section, enabled: bool, readings: Vec<Reading>) -> Values {
        Values {
            section: section.name,
            enabled,
            readings: section.fields.iter().map(|f| f.key).zip(readings).collect(),
        }
    }

    /// `section` with every default.
    pub fn defaults(section: &'static Section) -> Values {
        let readings = section.fields.iter().map(Field::default_reading).collect();
        Values::new(section, true, readings)
    }

    fn reading(&self, field: &Field) -> Option<&Reading> {
        self.readings
            .iter()
            .find(|(key, _)| *key == field.key)
            .map(|(_, v)| v)
    }

    /// `field`'s number (its default if this section has no such number).
    pub fn get(&self, field: &Field) -> f64 {
        match self.reading(field) {
            Some(Reading::Number(v)) => *v,
            _ => field.default,
        }
    }

    /// `field`'s words (none if this section has no such list).
    pub fn words(&self, field: &Field) -> &[String] {
        match self.reading(field) {
            Some(Reading::Words(w)) => w,
            _ => &[],
        }
    }

    /// `field`'s value, a number of minutes, as a duration.
    pub fn minutes(&self, field: &Field) -> Duration {
        Duration::from_secs_f64(self.get(field) * 60.0)
    }
}

/// Every detector section of settings.json, read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectorSettings(Vec<Values>);

impl DetectorSettings {
    /// From each section's values.
    pub fn new(sections: Vec<Values>) -> Self {
        DetectorSettings(sections)
    }

    /// `section`'s values (its defaults if it was not read).
    pub fn of(&self, section: &'static Section) -> Values {
        self.0
            .iter()
            .find(|v| v.section == section.name)
            .cloned()
            .unwrap_or_else(|| Values::defaults(section))
    }
}

//! Idle inhibitors other programs hold, followed on D-Bus (never claimed):
//! - logind's (`ListInhibitors`, system bus) whose `what` includes `idle`,
//!   of this user, not cloudnap's own; re-listed on the manager's
//!   `PropertiesChanged` (`BlockInhibited`, `DelayInhibited`);
//! - GNOME's `org.gnome.SessionManager` with the idle flag (8):
//!   `GetInhibitors`, then each one's `GetAppId`, `GetReason`, `GetFlags`;
//!   re-listed on `InhibitorAdded`/`InhibitorRemoved`;
//! - KDE's `org.freedesktop.PowerManagement.Inhibit`: `HasInhibit`, and
//!   `ListInhibitions` where it is offered; re-listed on
//!   `HasInhibitChanged`/`InhibitionsChanged`.
//!
//! The desktops' `org.freedesktop.ScreenSaver` inhibitors reach these
//! services (gnome-shell hands them to the session manager, KDE to
//! PowerDevil); the ScreenSaver interface itself lists none. What counts,
//! and for how long, is decided by [`crate::core::policy::inhibitors`].

use super::definition::{everywhere, Detector, DetectorSettings, Field, Section};
use crate::core::policy::inhibitors::Rules;

/// Idle inhibitors of other programs (Linux): presence, with a limit. Not
/// an input detector: what it reports never wakes what is asleep.
pub static DETECTOR: Detector = Detector {
    name: "inhibitors",
    input: false,
    fits: everywhere,
    sections: &[&SECTION],
    #[cfg(target_os = "linux")]
    make: Some(|_| Box::new(imp::InhibitorSource)),
    #[cfg(not(target_os = "linux"))]
    make: None,
};

/// An inhibitor counts for at most this long after the last real input.
const MAX: Field = Field::number("max_minutes", 120.0, 0.0, 10_080.0).live();
/// Apps whose inhibitors never count (compared without case).
const IGNORE: Field = Field::words("ignore").live();

/// The `inhibitors` section.
pub static SECTION: Section = Section {
    name: "inhibitors",
    fields: &[MAX, IGNORE],
};

/// What the settings say about inhibitors.
pub fn rules(settings: &DetectorSettings) -> Rules {
    let values = settings.of(&SECTION);
    Rules {
        max: values.minutes(&MAX),
        ignore: values.words(&IGNORE).to_vec(),
    }
}

/// Whether one of logind's inhibitors (`what`, held by `uid` and `pid`)
/// is an idle inhibitor of another program of this user (`me`: this
/// user's uid and this process's pid).
pub fn logind_counts(what: &str, uid: u32, pid: u32, me: (u32, u32)) -> bool {
    what.split(':').any(|w| w == "idle") && uid == me.0 && pid != me.1
}

/// The source, where it can run.
#[cfg(target_os = "linux")]
mod imp {
    use crate::core::policy::inhibitors::{Inhibitor, Via};
    use crate::detect::source::{ActivitySource, DetectError, Sink};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use zbus::blocking::{Connection, MessageIterator, Proxy};
    use zbus::zvariant::OwnedObjectPath;

    /// Follows the inhibitors of every service, each on its own thread.
    pub struct InhibitorSource;

    fn fail(message: impl std::fmt::Display) -> DetectError {
        DetectError::new(super::DETECTOR.name, message)
    }

    /// One service whose inhibitors are followed.
    struct Service {
        via: Via,
        /// On the system bus (else the session bus).
        system: bool,
        name: &'static str,
        path: &'static str,
        /// The signals on `path` after which it is listed again.
        signals: &'static [&'static str],
        list: fn(&Connection) -> zbus::Result<Vec<Inhibitor>>,
    }

    static SERVICES: [Service; 3] = [
        Service {
            via: Via::Logind,
            system: true,
            name: "org.freedesktop.login1",
            path: "/org/freedesktop/login1",
            signals: &["PropertiesChanged"],
            list: logind,
        },
        Service {
            via: Via::GnomeSession,
            system: false,
            name: "org.gnome.SessionManager",
            path: "/org/gnome/SessionManager",
            signals: &["InhibitorAdded", "InhibitorRemoved"],
            list: gnome,
        },
        Service {
            via: Via::PowerManagement,
            system: false,
            name: "org.freedesktop.PowerManagement.Inhibit",
            path: "/org/freedesktop/PowerManagement/Inhibit",
            signals: &["HasInhibitChanged", "InhibitionsChanged"],
            list: power_management,
        },
    ];

    /// Every service's inhibitors as last listed, reported together.
    #[derive(Clone)]
    struct Held {
        sink: Sink,
        by_service: Arc<Mutex<BTreeMap<Via, Vec<Inhibitor>>>>,
    }

    impl Held {
        fn set(&self, via: Via, now: Vec<Inhibitor>) {
            let all = {
                let mut by = self.by_service.lock().expect("inhibitors");
                if by.get(&via) == Some(&now) {
                    return;
                }
                by.insert(via, now);
                by.values().flatten().cloned().collect()
            };
            self.sink.set_inhibitors(all);
        }
    }

    impl ActivitySource for InhibitorSource {
        fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
            let held = Held {
                sink,
                by_service: Arc::default(),
            };
            let threads: Vec<_> = (SERVICES.iter())
                .map(|service| {
                    let held = held.clone();
                    std::thread::Builder::new()
                        .name(format!("detect-inhibitors-{:?}", service.via))
                        .spawn(move || {
                            let followed = follow(service, &held);
                            if let Err(e) = &followed {
                                tracing::info!("inhibitors: {}: {}", service.name, e.message);
                            }
                            // Gone: what it listed no longer holds.
                            held.set(service.via, Vec::new());
                            followed
                        })
                })
                .collect();
            let mut errors = Vec::new();
            for thread in threads {
                let result = match thread {
                    Ok(t) => t
                        .join()
                        .unwrap_or_else(|_| Err(fail("a thread panicked"))),
                    Err(e) => Err(fail(e)),
                };
                if let Err(e) = result {
                    errors.push(e.message);
                }
            }
            // Any bus alone is enough; the source fails only if all do.
            match errors.len() == SERVICES.len() {
                true => Err(fail(errors.join("; "))),
                false => Ok(()),
            }
        }
    }

    /// Lists `service`'s inhibitors now, and again after each of its
    /// signals and each change of its owner, until the sink closes.
    fn follow(service: &Service, held: &Held) -> Result<(), DetectError> {
        let conn = match service.system {
            true => Connection::system(),
            false => Connection::session(),
        }
        .map_err(fail)?;
        let messages = MessageIterator::from(&conn);
        let dbus = zbus::blocking::fdo::DBusProxy::new(&conn).map_err(fail)?;
        let signals = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path(service.path)
            .map_err(fail)?
            .build();
        let owner = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.DBus")
            .map_err(fail)?
            .member("NameOwnerChanged")
            .map_err(fail)?
            .arg(0, service.name)
            .map_err(fail)?
            .build();
        for rule in [signals, owner] {
            dbus.add_match_rule(rule).map_err(fail)?;
        }
        let list = || {
            // Not there (yet): nothing held through it.
            let now = (service.list)(&conn).unwrap_or_default();
            held.set(service.via, now);
        };
        list();
        tracing::info!("inhibitors: following {}", service.name);
        for message in messages {
            let Ok(message) = message else { continue };
            let header = message.header();
            let member = header.member().map(|m| m.as_str().to_owned());
            let ours = header.path().is_some_and(|p| p.as_str() == service.path)
                && member.as_deref().is_some_and(|m| service.signals.contains(&m));
            let owner = member.as_deref() == Some("NameOwnerChanged")
                && message
                    .body()
                    .deserialize::<(String, String, String)>()
                    .is_ok_and(|(name, _, _)| name == service.name);
            if ours || owner {
                list();
            }
            if held.sink.is_closed() {
                return Ok(());
            }
        }
        Err(fail(format!("{}: the bus connection closed", service.name)))
    }

    fn logind(conn: &Connection) -> zbus::Result<Vec<Inhibitor>> {
        let manager = Proxy::new(
            conn,
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
        )?;
        let all: Vec<(String, String, String, String, u32, u32)> =
            manager.call("ListInhibitors", &())?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = (unsafe { libc::getuid() }, std::process::id());
        Ok(all
            .into_iter()
            .filter(|(what, _, _, _, uid, pid)| super::logind_counts(what, *uid, *pid, me))
            .map(|(_, who, why, ..)| Inhibitor {
                via: Via::Logind,
                app: who,
                reason: why,
            })
            .collect())
    }

    /// GNOME's idle flag.
    const GNOME_IDLE: u32 = 8;

    fn gnome(conn: &Connection) -> zbus::Result<Vec<Inhibitor>> {
        let manager = Proxy::new(
            conn,
            "org.gnome.SessionManager",
            "/org/gnome/SessionManager",
            "org.gnome.SessionManager",
        )?;
        let paths: Vec<OwnedObjectPath> = manager.call("GetInhibitors", &())?;
        let one = |path: OwnedObjectPath| -> zbus::Result<Option<Inhibitor>> {
            let inhibitor = Proxy::new(
                conn,
                "org.gnome.SessionManager",
                path,
                "org.gnome.SessionManager.Inhibitor",
            )?;
            let flags: u32 = inhibitor.call("GetFlags", &())?;
            if flags & GNOME_IDLE == 0 {
                return Ok(None);
            }
            Ok(Some(Inhibitor {
                via: Via::GnomeSession,
                app: inhibitor.call("GetAppId", &())?,
                reason: inhibitor.call("GetReason", &())?,
            }))
        };
        // One released meanwhile is skipped.
        Ok(paths.into_iter().filter_map(|p| one(p).ok().flatten()).collect())
    }

    fn power_management(conn: &Connection) -> zbus::Result<Vec<Inhibitor>> {
        let inhibit = Proxy::new(
            conn,
            "org.freedesktop.PowerManagement.Inhibit",
            "/org/freedesktop/PowerManagement/Inhibit",
            "org.freedesktop.PowerManagement.Inhibit",
        )?;
        if !inhibit.call::<_, _, bool>("HasInhibit", &())? {
            return Ok(Vec::new());
        }
        let named: Vec<(String, String)> = inhibit
            .call("ListInhibitions", &())
            .unwrap_or_else(|_| vec![("an application".into(), String::new())]);
        Ok(named
            .into_iter()
            .map(|(app, reason)| Inhibitor {
                via: Via::PowerManagement,
                app,
                reason,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idle_inhibitors_of_other_programs_of_this_user_count() {
        let me = (1000, 4242);
        assert!(logind_counts("idle", 1000, 77, me));
        assert!(logind_counts("sleep:idle", 1000, 77, me));
        // cloudnap's own delay lock, and anything of its own.
        assert!(!logind_counts("sleep:shutdown", 1000, 4242, me));
        assert!(!logind_counts("idle", 1000, 4242, me));
        // Not idle, or another user's (the greeter's).
        assert!(!logind_counts("handle-lid-switch", 1000, 77, me));
        assert!(!logind_counts("idle", 118, 77, me));
        assert!(!logind_counts("idlex", 1000, 77, me));
    }

    #[test]
    fn the_rules_come_from_the_section() {
        use crate::core::config::settings::Settings;
        let (s, w) = Settings::parse(
            r#"{"activity_monitor":{"inhibitors":{"max_minutes":0.1,"ignore":["Firefox"]}}}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let r = rules(&s.detectors);
        assert_eq!(r.max, std::time::Duration::from_secs(6));
        assert_eq!(r.ignore, vec!["Firefox".to_string()]);
        let d = rules(&Settings::default().detectors);
        assert_eq!(d.max, std::time::Duration::from_secs(7200));
        assert!(d.ignore.is_empty());
        let err = Settings::parse(r#"{"inhibitors":{"ignore":"Firefox"}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("`inhibitors.ignore` must be a list of strings"),
            "{err}"
        );
    }
}

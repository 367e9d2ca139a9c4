//! Idle inhibitors other programs hold, followed on D-Bus (never claimed):
//! - logind's (`ListInhibitors`, system bus) whose `what` includes `idle`,
//!   of this user, not cloudnap's own; re-listed on the manager's
//!   `PropertiesChanged` (`BlockInhibited`, `DelayInhibited`);
//! - GNOME's `org.gnome.SessionManager` with the idle flag (8):
//!   `GetInhibitors`, then each one's `GetAppId`, `GetReason`, `GetFlags`;
//!   re-listed on `InhibitorAdded`/`InhibitorRemoved`;
//! - KDE's: `org.freedesktop.PowerManagement.Inhibit` (`HasInhibit`,
//!   `HasInhibitChanged`), named by PowerDevil's
//!   `org.kde.Solid.PowerManagement.PolicyAgent` (`ListInhibitions`,
//!   `InhibitionsChanged`), which also holds the ScreenSaver inhibitors;
//!   without it, `HasInhibit` alone (one unnamed inhibitor).
//!
//! The desktops' `org.freedesktop.ScreenSaver` inhibitors reach these
//! services (gnome-shell hands them to the session manager, KDE to
//! PowerDevil's policy agent); the ScreenSaver interface itself lists none. What counts,
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

    /// One desktop service whose inhibitors are followed.
    struct Service {
        via: Via,
        /// On the system bus (else the session bus).
        system: bool,
        /// Its bus names, each with the object path whose signals (of
        /// these names) make it listed again.
        watch: &'static [(&'static str, &'static str, &'static [&'static str])],
        list: fn(&Connection) -> zbus::Result<Vec<Inhibitor>>,
    }

    const LOGIND: &str = "org.freedesktop.login1";
    const GNOME: &str = "org.gnome.SessionManager";
    const FDO_PM: &str = "org.freedesktop.PowerManagement.Inhibit";
    const KDE_AGENT: &str = "org.kde.Solid.PowerManagement.PolicyAgent";

    static SERVICES: [Service; 3] = [
        Service {
            via: Via::Logind,
            system: true,
            watch: &[(LOGIND, "/org/freedesktop/login1", &["PropertiesChanged"])],
            list: logind,
        },
        Service {
            via: Via::GnomeSession,
            system: false,
            watch: &[(
                GNOME,
                "/org/gnome/SessionManager",
                &["InhibitorAdded", "InhibitorRemoved"],
            )],
            list: gnome,
        },
        Service {
            via: Via::PowerManagement,
            system: false,
            watch: &[
                (
                    FDO_PM,
                    "/org/freedesktop/PowerManagement/Inhibit",
                    &["HasInhibitChanged"],
                ),
                (
                    KDE_AGENT,
                    "/org/kde/Solid/PowerManagement/PolicyAgent",
                    &["InhibitionsChanged"],
                ),
            ],
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
                                tracing::info!("inhibitors: {:?}: {}", service.via, e.message);
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
                    Ok(t) => t.join().unwrap_or_else(|_| Err(fail("a thread panicked"))),
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
        let connect = || match service.system {
            true => Connection::system(),
            false => Connection::session(),
        };
        // Signals come on one connection, replies on another: a reply never
        // waits behind signals not read yet.
        let (conn, calls) = (connect().map_err(fail)?, connect().map_err(fail)?);
        let messages = MessageIterator::from(&conn);
        let dbus = zbus::blocking::fdo::DBusProxy::new(&conn).map_err(fail)?;
        for &(name, path, _) in service.watch {
            let signals = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .path(path)
                .map_err(fail)?
                .build();
            let owner = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface("org.freedesktop.DBus")
                .map_err(fail)?
                .member("NameOwnerChanged")
                .map_err(fail)?
                .arg(0, name)
                .map_err(fail)?
                .build();
            for rule in [signals, owner] {
                dbus.add_match_rule(rule).map_err(fail)?;
            }
        }
        let list = || {
            // Not there (yet): nothing held through it.
            let now = (service.list)(&calls).unwrap_or_default();
            held.set(service.via, now);
        };
        list();
        let names: Vec<&str> = service.watch.iter().map(|w| w.0).collect();
        tracing::info!("inhibitors: following {}", names.join(", "));
        for message in messages {
            let Ok(message) = message else { continue };
            if is_change(service, &message) {
                list();
            }
            if held.sink.is_closed() {
                return Ok(());
            }
        }
        Err(fail(format!(
            "{}: the bus connection closed",
            names.join(", ")
        )))
    }

    /// Whether `message` says `service`'s inhibitors may have changed: one
    /// of its signals, or a change of owner of one of its names.
    fn is_change(service: &Service, message: &zbus::Message) -> bool {
        let header = message.header();
        let (Some(path), Some(member)) = (header.path(), header.member()) else {
            return false;
        };
        if member.as_str() == "NameOwnerChanged" {
            let body = message.body().deserialize::<(String, String, String)>();
            return body.is_ok_and(|(name, ..)| service.watch.iter().any(|w| w.0 == name));
        }
        (service.watch.iter())
            .any(|(_, p, signals)| path.as_str() == *p && signals.contains(&member.as_str()))
    }

    fn logind(conn: &Connection) -> zbus::Result<Vec<Inhibitor>> {
        let manager = Proxy::new(
            conn,
            LOGIND,
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
        let manager = Proxy::new(conn, GNOME, "/org/gnome/SessionManager", GNOME)?;
        let paths: Vec<OwnedObjectPath> = manager.call("GetInhibitors", &())?;
        let one = |path: OwnedObjectPath| -> zbus::Result<Option<Inhibitor>> {
            let inhibitor = Proxy::new(conn, GNOME, path, "org.gnome.SessionManager.Inhibitor")?;
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
        Ok(paths
            .into_iter()
            .filter_map(|p| one(p).ok().flatten())
            .collect())
    }

    fn power_management(conn: &Connection) -> zbus::Result<Vec<Inhibitor>> {
        let named = |(app, reason)| Inhibitor {
            via: Via::PowerManagement,
            app,
            reason,
        };
        // PowerDevil's own list names every inhibition, ScreenSaver ones too.
        let agent = Proxy::new(
            conn,
            KDE_AGENT,
            "/org/kde/Solid/PowerManagement/PolicyAgent",
            KDE_AGENT,
        )?;
        if let Ok(reply) = agent.call_method("ListInhibitions", &()) {
            let body = reply.body();
            let listed: Vec<(String, String)> = match body.deserialize() {
                Ok(pairs) => pairs,
                Err(_) => body
                    .deserialize::<std::collections::HashMap<String, String>>()?
                    .into_iter()
                    .collect(),
            };
            return Ok(listed.into_iter().map(named).collect());
        }
        let inhibit = Proxy::new(
            conn,
            FDO_PM,
            "/org/freedesktop/PowerManagement/Inhibit",
            FDO_PM,
        )?;
        Ok(match inhibit.call::<_, _, bool>("HasInhibit", &())? {
            true => vec![named(("an application".into(), String::new()))],
            false => Vec::new(),
        })
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

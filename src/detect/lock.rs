//! Screen lock and unlock: logind's session (`Lock`/`Unlock` signals and
//! the `LockedHint` property, system bus) and the desktop's screensaver
//! (`ActiveChanged` of `org.freedesktop.ScreenSaver` or
//! `org.gnome.ScreenSaver`, session bus).
//!
//! Reports [`ActivityKind::Locked`] (not activity: the orchestrator is to
//! start its lock grace countdown) and [`ActivityKind::Unlocked`] (the user
//! is back: activity), each only when the state changes, whichever bus said
//! it first. A screen already locked at start is reported as locked; an
//! unlocked one is not reported (that would count as activity).

use super::definition::{everywhere, Detector, DetectorSettings, Field, Section};
use std::time::Duration;

/// The session's screen lock: logind and screensaver signals (Linux). A
/// lock means the user is away.
pub static DETECTOR: Detector = Detector {
    name: "screen_lock",
    input: false,
    fits: everywhere,
    sections: &[&SECTION],
    #[cfg(target_os = "linux")]
    make: Some(|_| Box::new(imp::LockSource)),
    #[cfg(not(target_os = "linux"))]
    make: None,
};

/// Sleep this long after the lock (if sooner than the timeout).
const GRACE: Field = Field::number("lock_grace_minutes", 2.0, 0.0, 1440.0).live();

/// The `screen_lock` section.
pub static SECTION: Section = Section {
    name: "screen_lock",
    fields: &[GRACE],
};

/// How long after a lock resources sleep (if sooner than the timeout).
pub fn grace(settings: &DetectorSettings) -> Duration {
    settings.of(&SECTION).minutes(&GRACE)
}

/// The source, where it can run.
#[cfg(target_os = "linux")]
mod imp {
    use crate::core::model::activity::ActivityKind;
    use crate::detect::source::{ActivitySource, DetectError, Sink};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use zbus::blocking::{Connection, MessageIterator, Proxy};
    use zbus::zvariant::{OwnedObjectPath, OwnedValue};

    /// Follows the session's lock state on both buses.
    pub struct LockSource;

    fn fail(message: impl std::fmt::Display) -> DetectError {
        DetectError::new(super::DETECTOR.name, message)
    }

    /// The last state reported, shared by both buses' threads.
    #[derive(Clone)]
    struct Reporter {
        sink: Sink,
        locked: Arc<Mutex<Option<bool>>>,
    }

    impl Reporter {
        /// Reports `locked` (seen through `via`) if it is a change.
        fn report(&self, locked: bool, via: &str) {
            let mut last = self.locked.lock().expect("lock state");
            if *last == Some(locked) {
                return;
            }
            *last = Some(locked);
            tracing::info!(
                "screen {} ({via})",
                if locked { "locked" } else { "unlocked" }
            );
            self.sink.emit(if locked {
                ActivityKind::Locked
            } else {
                ActivityKind::Unlocked
            });
        }
    }

    impl ActivitySource for LockSource {
        fn run(self: Box<Self>, sink: Sink) -> Result<(), DetectError> {
            let reporter = Reporter {
                sink,
                locked: Arc::new(Mutex::new(None)),
            };
            let theirs = reporter.clone();
            let logind = std::thread::Builder::new()
                .name("detect-screen_lock-logind".into())
                .spawn(move || {
                    let followed = follow_logind(&theirs);
                    if let Err(e) = &followed {
                        tracing::info!("screen_lock: logind: {}", e.message);
                    }
                    followed
                })
                .map_err(fail)?;
            // Either bus alone is enough; the source fails only if both do.
            let saver = follow_screensaver(&reporter);
            if let Err(e) = &saver {
                tracing::info!("screen_lock: session bus: {}", e.message);
            }
            let logind = logind
                .join()
                .unwrap_or_else(|_| Err(fail("the logind thread panicked")));
            match (saver, logind) {
                (Err(a), Err(b)) => Err(fail(format!(
                    "session bus: {}; logind: {}",
                    a.message, b.message
                ))),
                _ => Ok(()),
            }
        }
    }

    /// Follows `ActiveChanged` of either screensaver interface, from any sender.
    fn follow_screensaver(reporter: &Reporter) -> Result<(), DetectError> {
        let conn = Connection::session().map_err(fail)?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .member("ActiveChanged")
            .map_err(fail)?
            .build();
        let signals = MessageIterator::for_match_rule(rule, &conn, None).map_err(fail)?;
        tracing::info!("screen_lock: following ActiveChanged on the session bus");
        for message in signals {
            let Ok(message) = message else { continue };
            let header = message.header();
            let Some(interface) = header.interface() else {
                continue;
            };
            if !matches!(
                interface.as_str(),
                "org.freedesktop.ScreenSaver" | "org.gnome.ScreenSaver"
            ) {
                continue;
            }
            if let Ok(active) = message.body().deserialize::<bool>() {
                reporter.report(active, interface.as_str());
            }
            if reporter.sink.is_closed() {
                return Ok(());
            }
        }
        Err(fail("the session bus connection closed"))
    }

    /// This process's logind session: `XDG_SESSION_ID`, else the session of
    /// this process, else the user's display session.
    fn session_path(conn: &Connection) -> zbus::Result<OwnedObjectPath> {
        let manager = Proxy::new(
            conn,
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
        )?;
        if let Some(id) = std::env::var("XDG_SESSION_ID")
            .ok()
            .filter(|s| !s.is_empty())
        {
            if let Ok(path) = manager.call("GetSession", &(id,)) {
                return Ok(path);
            }
        }
        if let Ok(path) = manager.call("GetSessionByPID", &(std::process::id(),)) {
            return Ok(path);
        }
        let uid = std::fs::metadata("/proc/self").map_or(u32::MAX, |m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        let user: OwnedObjectPath = manager.call("GetUser", &(uid,))?;
        let user = Proxy::new(
            conn,
            "org.freedesktop.login1",
            user,
            "org.freedesktop.login1.User",
        )?;
        let (_, path): (String, OwnedObjectPath) = user.get_property("Display")?;
        Ok(path)
    }

    /// Follows logind's `Lock`/`Unlock` and `LockedHint` for this session.
    fn follow_logind(reporter: &Reporter) -> Result<(), DetectError> {
        let conn = Connection::system().map_err(fail)?;
        let path = session_path(&conn).map_err(|e| fail(format!("no session: {e}")))?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path(path.clone())
            .map_err(fail)?
            .build();
        let signals = MessageIterator::for_match_rule(rule, &conn, None).map_err(fail)?;
        let session = Proxy::new(
            &conn,
            "org.freedesktop.login1",
            path.clone(),
            "org.freedesktop.login1.Session",
        )
        .map_err(fail)?;
        if let Ok(true) = session.get_property::<bool>("LockedHint") {
            reporter.report(true, "logind");
        }
        tracing::info!("screen_lock: following logind session {}", path.as_str());
        for message in signals {
            let Ok(message) = message else { continue };
            let header = message.header();
            match header.member().map(|m| m.as_str()) {
                Some("Lock") => reporter.report(true, "logind"),
                Some("Unlock") => reporter.report(false, "logind"),
                Some("PropertiesChanged") => {
                    let Ok((_, changed, _)) =
                        message
                            .body()
                            .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
                    else {
                        continue;
                    };
                    if let Some(Ok(locked)) = changed.get("LockedHint").map(bool::try_from) {
                        reporter.report(locked, "logind");
                    }
                }
                _ => {}
            }
            if reporter.sink.is_closed() {
                return Ok(());
            }
        }
        Err(fail("the system bus connection closed"))
    }
}

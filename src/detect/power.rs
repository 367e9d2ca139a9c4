//! Suspend, resume and shutdown, as the OS announces them, so the AWS-side
//! deadline can be moved before the machine goes down:
//! - Linux: logind's `PrepareForSleep`/`PrepareForShutdown` (system bus),
//!   with a *delay* inhibitor lock, released once cloudnap is ready;
//! - Windows: `PowerRegisterSuspendResumeNotification` (its callback may
//!   take a moment before the machine suspends). Untested here: Wine does
//!   not suspend;
//! - elsewhere: none (the deadline then stays where the idle time put it).

use super::definition::{everywhere, Detector, DetectorSettings, Field, Section};
use super::source::DetectError;
use std::sync::mpsc::SyncSender;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Suspend and shutdown. Not an activity source (no `STATUS` row): the
/// daemon follows it itself, for the AWS-side deadline.
pub static DETECTOR: Detector = Detector {
    name: "power",
    input: false,
    fits: everywhere,
    sections: &[&SECTION],
    make: None,
};

/// Before a suspend or shutdown, the AWS-side deadline moves to this long
/// from then (if sooner than it was).
const GRACE: Field = Field::number("suspend_grace_minutes", 15.0, 0.0, 1440.0).live();

/// The `power` section.
pub static SECTION: Section = Section {
    name: "power",
    fields: &[GRACE],
};

/// How long after a suspend or shutdown the AWS-side deadline comes, at
/// the latest: a short suspend costs nothing, a night's sleeps the
/// resources too.
pub fn suspend_grace(settings: &DetectorSettings) -> Duration {
    settings.of(&SECTION).minutes(&GRACE)
}

/// What the OS said.
#[derive(Debug)]
pub enum PowerEvent {
    /// The machine is about to suspend (or shut down, if `shutdown`). The
    /// OS waits (a few seconds at most) until `ready` is answered or
    /// dropped.
    Leaving {
        shutdown: bool,
        ready: SyncSender<()>,
    },
    /// The machine resumed from suspend.
    Resumed,
}

/// How long the OS is kept waiting for cloudnap before a suspend: logind
/// waits at most `InhibitDelayMaxSec` (5 s by default) anyway.
const READY_WAIT: Duration = Duration::from_secs(5);

fn fail(message: impl std::fmt::Display) -> DetectError {
    DetectError::new(DETECTOR.name, message)
}

/// Sends `Leaving` and waits for the answer (or [`READY_WAIT`]).
fn leaving(events: &UnboundedSender<PowerEvent>, shutdown: bool) {
    let (ready, answered) = std::sync::mpsc::sync_channel(1);
    if events.send(PowerEvent::Leaving { shutdown, ready }).is_ok()
        && answered.recv_timeout(READY_WAIT).is_err()
    {
        tracing::warn!("power: not ready after {READY_WAIT:?}: the machine goes down anyway");
    }
}

/// Follows the OS's power events until `events` closes (blocking: run it
/// on its own thread).
#[cfg(target_os = "linux")]
pub fn follow(events: UnboundedSender<PowerEvent>) -> Result<(), DetectError> {
    use zbus::blocking::{Connection, MessageIterator, Proxy};
    use zbus::zvariant::OwnedFd;

    let conn = Connection::system().map_err(fail)?;
    let manager = Proxy::new(
        &conn,
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
    )
    .map_err(fail)?;
    let inhibit = || -> Result<OwnedFd, DetectError> {
        manager
            .call(
                "Inhibit",
                &(
                    "sleep:shutdown",
                    "cloudnap",
                    "moves the AWS-side deadline before the machine goes down",
                    "delay",
                ),
            )
            .map_err(|e| fail(format!("logind refused a delay lock: {e}")))
    };
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.freedesktop.login1.Manager")
        .map_err(fail)?
        .path("/org/freedesktop/login1")
        .map_err(fail)?
        .build();
    let signals = MessageIterator::for_match_rule(rule, &conn, None).map_err(fail)?;
    let mut lock = Some(inhibit()?);
    tracing::info!("power: following logind's PrepareForSleep and PrepareForShutdown");
    for message in signals {
        let Ok(message) = message else { continue };
        let header = message.header();
        let shutdown = match header.member().map(|m| m.as_str()) {
            Some("PrepareForSleep") => false,
            Some("PrepareForShutdown") => true,
            _ => continue,
        };
        let Ok(start) = message.body().deserialize::<bool>() else {
            continue;
        };
        if start {
            leaving(&events, shutdown);
            // Dropping the descriptor releases the lock: logind goes on.
            if lock.take().is_some() {
                tracing::info!("power: delay lock released");
            }
        } else {
            if !shutdown {
                let _ = events.send(PowerEvent::Resumed);
            }
            match inhibit() {
                Ok(fd) => lock = Some(fd),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        if events.is_closed() {
            return Ok(());
        }
    }
    Err(fail("the system bus connection closed"))
}

/// Follows the OS's power events until `events` closes (blocking: run it
/// on its own thread).
#[cfg(windows)]
pub fn follow(events: UnboundedSender<PowerEvent>) -> Result<(), DetectError> {
    use windows_sys::Win32::System::Power::{
        PowerRegisterSuspendResumeNotification, DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS,
    };
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        DEVICE_NOTIFY_CALLBACK, PBT_APMRESUMEAUTOMATIC, PBT_APMSUSPEND,
    };

    /// Called by Windows on its own thread; `context` is the `events`
    /// sender below.
    unsafe extern "system" fn callback(
        context: *const core::ffi::c_void,
        kind: u32,
        _setting: *const core::ffi::c_void,
    ) -> u32 {
        // SAFETY: `context` points at the sender `follow` leaked.
        let events = unsafe { &*context.cast::<UnboundedSender<PowerEvent>>() };
        match kind {
            PBT_APMSUSPEND => leaving(events, false),
            PBT_APMRESUMEAUTOMATIC => {
                let _ = events.send(PowerEvent::Resumed);
            }
            _ => {}
        }
        0
    }

    // The registration lasts as long as the process: so does the sender.
    let events: &'static UnboundedSender<PowerEvent> = Box::leak(Box::new(events));
    let mut params = DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS {
        Callback: Some(callback),
        Context: std::ptr::from_ref(events).cast_mut().cast(),
    };
    let mut handle = std::ptr::null_mut();
    // SAFETY: `params` is read during the call; the sender it points at
    // is never freed.
    let error = unsafe {
        PowerRegisterSuspendResumeNotification(
            DEVICE_NOTIFY_CALLBACK,
            std::ptr::from_mut(&mut params).cast(),
            &mut handle,
        )
    };
    if error != 0 {
        return Err(fail(format!(
            "PowerRegisterSuspendResumeNotification failed ({error})"
        )));
    }
    tracing::info!("power: following suspend and resume (PowerRegisterSuspendResumeNotification)");
    loop {
        std::thread::park();
    }
}

/// Follows the OS's power events: none on this platform.
#[cfg(not(any(target_os = "linux", windows)))]
pub fn follow(_events: UnboundedSender<PowerEvent>) -> Result<(), DetectError> {
    Err(fail("suspend and resume are not followed on this platform"))
}

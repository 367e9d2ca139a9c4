//! Desktop notifications (freedesktop D-Bus on Linux) for app events.

use crate::core::config::settings::NotificationSettings;
use crate::core::protocol::status::Event;
use crate::ui::view::{note_for, Note, NoteKind};

/// Whether the user wants notifications of this kind.
pub fn wanted(kind: NoteKind, prefs: &NotificationSettings) -> bool {
    match kind {
        NoteKind::Warning => prefs.warning,
        NoteKind::Asleep => prefs.asleep,
        NoteKind::Awake => prefs.awake,
        NoteKind::Error => prefs.errors,
    }
}

/// Shows the notification for `event` if it has one and it is enabled.
/// A button the user chooses is passed to `act` as its key (a tray menu
/// id), from a thread of its own. Blocks on D-Bus: call it off the async
/// workers.
pub fn notify(
    event: &Event,
    prefs: &NotificationSettings,
    act: impl FnOnce(&str) + Send + 'static,
) {
    let now = chrono::Local::now().naive_local();
    let Some(note) = note_for(event, now).filter(|n| wanted(n.kind, prefs)) else {
        return;
    };
    if note.actions.is_empty() {
        if let Err(e) = show(&note, |_| {}) {
            tracing::debug!("notification not shown ({e}): {}", note.summary);
        }
        return;
    }
    // The D-Bus handle stays on the thread that waits for a button.
    let waiter = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            if let Err(e) = show(&note, act) {
                tracing::debug!("notification not shown ({e}): {}", note.summary);
            }
        });
    if let Err(e) = waiter {
        tracing::warn!("notification not shown: {e}");
    }
}

/// Shows a plain notification `summary` / `body` (one the user asked for,
/// whatever the preferences), from a thread of its own.
pub fn message(summary: &str, body: &str) {
    let (summary, body) = (summary.to_string(), body.to_string());
    let shown = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let shown = notify_rust::Notification::new()
                .appname("cloudnap")
                .summary(&summary)
                .body(&body)
                .show();
            if let Err(e) = shown {
                tracing::debug!("notification not shown ({e}): {summary}");
            }
        });
    if let Err(e) = shown {
        tracing::warn!("notification not shown: {e}");
    }
}

/// Whether the notification server shows buttons (its capability "actions");
/// only freedesktop servers say, so elsewhere the text says what to do.
fn actions_supported() -> bool {
    #[cfg(all(unix, not(target_os = "macos")))]
    return notify_rust::get_capabilities().is_ok_and(|caps| caps.iter().any(|c| c == "actions"));
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    false
}

/// Shows `note`; with buttons, waits until one is chosen (passed to `act`)
/// or the notification is closed.
fn show(note: &Note, act: impl FnOnce(&str)) -> Result<(), notify_rust::error::Error> {
    let buttons = !note.actions.is_empty() && actions_supported();
    let mut n = notify_rust::Notification::new();
    n.appname("cloudnap")
        .summary(&note.summary)
        .body(&note.body_for(buttons));
    if note.kind == NoteKind::Error {
        n.icon("dialog-error");
    }
    for (key, label) in note.actions.iter().filter(|_| buttons) {
        n.action(key, label);
    }
    let handle = n.show()?;
    #[cfg(all(unix, not(target_os = "macos")))]
    if buttons {
        handle.wait_for_action(act);
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    let _ = (handle, act); // no buttons there
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_follows_its_setting() {
        let mut prefs = crate::core::config::settings::Settings::default()
            .desktop
            .notifications;
        assert!(wanted(NoteKind::Warning, &prefs));
        prefs.warning = false;
        prefs.errors = false;
        assert!(!wanted(NoteKind::Warning, &prefs));
        assert!(!wanted(NoteKind::Error, &prefs));
        assert!(wanted(NoteKind::Asleep, &prefs) && wanted(NoteKind::Awake, &prefs));
    }
}

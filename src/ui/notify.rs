//! Desktop notifications (freedesktop D-Bus on Linux) for app events.

use crate::core::settings::NotificationSettings;
use crate::core::status::Event;
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
/// Blocks on D-Bus: call it off the async workers.
pub fn notify(event: &Event, prefs: &NotificationSettings) {
    let Some(note) = note_for(event).filter(|n| wanted(n.kind, prefs)) else {
        return;
    };
    if let Err(e) = show(&note) {
        tracing::debug!("notification not shown ({e}): {}", note.summary);
    }
}

fn show(note: &Note) -> Result<(), notify_rust::error::Error> {
    let mut n = notify_rust::Notification::new();
    n.appname("cloudnap")
        .summary(&note.summary)
        .body(&note.body);
    if note.kind == NoteKind::Error {
        n.icon("dialog-error");
    }
    n.show().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_follows_its_setting() {
        let mut prefs = crate::core::settings::Settings::default()
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

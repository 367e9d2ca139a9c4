//! What the tray shows and what notifications say, computed from the app's
//! STATUS and events. Pure: no tray library, no D-Bus.

use serde_json::Value;

/// The tray icon's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IconState {
    Active,
    /// Sleep is coming soon.
    Warning,
    /// Resources are stopped.
    Asleep,
    Paused,
    /// A config file is invalid or the last operation failed.
    Error,
}

impl IconState {
    /// Every state, for loading the icons.
    pub const ALL: [IconState; 5] = [
        IconState::Active,
        IconState::Warning,
        IconState::Asleep,
        IconState::Paused,
        IconState::Error,
    ];

    /// The icon's file name in `assets/`.
    pub fn file(self) -> &'static str {
        match self {
            IconState::Active => "active.png",
            IconState::Warning => "warning.png",
            IconState::Asleep => "asleep.png",
            IconState::Paused => "paused.png",
            IconState::Error => "error.png",
        }
    }
}

/// The tray's icon and status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub icon: IconState,
    pub line: String,
}

fn secs(v: &Value) -> Option<u64> {
    v.as_f64().map(|s| s.max(0.0).round() as u64)
}

/// "1 h 5 min", "4 min", "30 s".
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The tray view for a STATUS reply.
pub fn tray_view(status: &Value) -> TrayView {
    let asleep = status["asleep"].as_array().map_or(0, Vec::len);
    let registered = status["registered"].as_u64().unwrap_or(0);
    let (mut icon, mut line) = match status["state"].as_str().unwrap_or("") {
        "warning" => (
            IconState::Warning,
            format!(
                "Sleeping in {} ({registered} resources)",
                human(secs(&status["sleep_in_seconds"]).unwrap_or(0))
            ),
        ),
        "asleep" => (
            IconState::Asleep,
            format!("Asleep: {asleep} resources stopped"),
        ),
        "paused" => (
            IconState::Paused,
            format!(
                "Paused for {}",
                human(secs(&status["paused_for_seconds"]).unwrap_or(0))
            ),
        ),
        _ => (
            IconState::Active,
            format!(
                "Active: sleep in {} ({registered} resources)",
                human(secs(&status["sleep_in_seconds"]).unwrap_or(0))
            ),
        ),
    };
    if let Some(op) = status["operation"].as_str() {
        line = format!("{}…", capitalize(op));
    }
    if let Some(e) = status["config_error"].as_str() {
        icon = IconState::Error;
        let first = e.lines().next().unwrap_or(e);
        line = format!("Config error: {first}");
    }
    TrayView { icon, line }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Minutes from `now` (local time) to the next 08:00: "Pause until
/// tomorrow" means until the next working morning, even after midnight.
pub fn minutes_until_morning(now: chrono::NaiveDateTime) -> f64 {
    let today = now.date().and_hms_opt(8, 0, 0).expect("08:00 exists");
    let target = if today > now {
        today
    } else {
        today + chrono::Days::new(1)
    };
    (target - now).num_seconds() as f64 / 60.0
}

/// A desktop notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub summary: String,
    pub body: String,
    pub kind: NoteKind,
}

/// Which setting enables a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    Warning,
    Asleep,
    Awake,
    Error,
}

fn names(outcomes: &Value, actions: &[&str]) -> Vec<String> {
    outcomes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| actions.contains(&o["action"].as_str().unwrap_or("")))
        .map(|o| {
            let r = &o["resource"];
            ["instance_id", "service_name", "nodegroup_name"]
                .iter()
                .find_map(|k| r[k].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// The notification for an app event, if it deserves one.
pub fn note_for(event: &Value) -> Option<Note> {
    let detail = &event["detail"];
    let note = |kind, summary: String, body: String| {
        Some(Note {
            summary,
            body,
            kind,
        })
    };
    match event["event"].as_str()? {
        "warning" => {
            let n = detail["resources"].as_u64().unwrap_or(0);
            let mins = (detail["sleep_in_seconds"].as_f64().unwrap_or(0.0) / 60.0).ceil() as u64;
            let when = if mins <= 1 {
                "1 minute".to_string()
            } else {
                format!("{mins} minutes")
            };
            note(
                NoteKind::Warning,
                format!("Your {n} resources will sleep in {when}"),
                "Move the mouse to keep them awake.".into(),
            )
        }
        "asleep" => {
            let stopped = names(detail, &["stopped", "would_stop"]);
            (!stopped.is_empty()).then_some(())?;
            note(
                NoteKind::Asleep,
                format!("Asleep: {} resources stopped", stopped.len()),
                list(&stopped),
            )
        }
        "awake" => {
            let started = names(detail, &["restored", "would_restore"]);
            (!started.is_empty()).then_some(())?;
            note(
                NoteKind::Awake,
                format!("Awake again: {} resources started", started.len()),
                list(&started),
            )
        }
        "error" => {
            let failed = names(&detail["failed"], &["failed"]);
            let body = if failed.is_empty() {
                detail["error"].as_str().unwrap_or("").to_string()
            } else {
                format!("Failed: {}", list(&failed))
            };
            note(
                NoteKind::Error,
                format!(
                    "cloudnap: {} failed",
                    detail["operation"].as_str().unwrap_or("an operation")
                ),
                body,
            )
        }
        "config_error" => note(
            NoteKind::Error,
            format!(
                "cloudnap: {} is invalid",
                detail["file"].as_str().unwrap_or("a config file")
            ),
            format!(
                "{}\nThe last valid version stays in use.",
                detail["error"].as_str().unwrap_or("")
            ),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_status_line_follows_the_state() {
        let v = tray_view(
            &json!({"state": "active", "sleep_in_seconds": 1530.4, "registered": 3, "asleep": []}),
        );
        assert_eq!(
            v,
            TrayView {
                icon: IconState::Active,
                line: "Active: sleep in 26 min (3 resources)".into()
            }
        );
        let v = tray_view(&json!({"state": "warning", "sleep_in_seconds": 45.0, "registered": 3}));
        assert_eq!(v.icon, IconState::Warning);
        assert_eq!(v.line, "Sleeping in 45 s (3 resources)");
        let v = tray_view(&json!({"state": "asleep", "asleep": [{}, {}]}));
        assert_eq!(v.line, "Asleep: 2 resources stopped");
        let v = tray_view(&json!({"state": "paused", "paused_for_seconds": 3600.0}));
        assert_eq!(
            (v.icon, v.line.as_str()),
            (IconState::Paused, "Paused for 1 h 0 min")
        );
        let v = tray_view(&json!({"state": "asleep", "operation": "waking"}));
        assert_eq!(v.line, "Waking…");
    }

    #[test]
    fn pause_until_tomorrow_ends_at_the_next_morning() {
        let at = |h, m| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
        };
        assert_eq!(minutes_until_morning(at(22, 0)), 600.0);
        assert_eq!(minutes_until_morning(at(2, 30)), 330.0);
        assert_eq!(minutes_until_morning(at(8, 0)), 1440.0);
    }

    #[test]
    fn a_config_error_wins_and_shows_its_first_line() {
        let v = tray_view(
            &json!({"state": "active", "config_error": "services.yaml line 3: bad\nmore"}),
        );
        assert_eq!(v.icon, IconState::Error);
        assert_eq!(v.line, "Config error: services.yaml line 3: bad");
    }

    #[test]
    fn notifications_say_what_happened() {
        let w = note_for(
            &json!({"event": "warning", "detail": {"resources": 4, "sleep_in_seconds": 120.0}}),
        )
        .unwrap();
        assert_eq!(w.summary, "Your 4 resources will sleep in 2 minutes");
        assert_eq!(w.body, "Move the mouse to keep them awake.");
        let outcomes = json!([
            {"resource": {"type": "ECS", "service_name": "web"}, "action": "stopped"},
            {"resource": {"type": "EC2", "instance_id": "i-1"}, "action": "already_asleep"},
            {"resource": {"type": "EKS", "nodegroup_name": "ng"}, "action": "stopped"}
        ]);
        let a = note_for(&json!({"event": "asleep", "detail": outcomes})).unwrap();
        assert_eq!(
            (a.kind, a.summary.as_str(), a.body.as_str()),
            (NoteKind::Asleep, "Asleep: 2 resources stopped", "web, ng")
        );
        assert_eq!(
            note_for(&json!({"event": "awake", "detail": []})),
            None,
            "nothing woke: no note"
        );
        let w = note_for(&json!({"event": "awake", "detail": [{"resource": {"instance_id": "i-9"}, "action": "restored"}]})).unwrap();
        assert_eq!(
            (w.summary.as_str(), w.body.as_str()),
            ("Awake again: 1 resources started", "i-9")
        );
        let e = note_for(&json!({"event": "config_error", "detail": {"file": "services.yaml", "error": "line 2: x"}})).unwrap();
        assert_eq!(e.kind, NoteKind::Error);
        assert!(e.body.starts_with("line 2: x"));
        let many: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        assert_eq!(list(&many), "r0, r1, r2, r3, r4 and 3 more");
    }
}

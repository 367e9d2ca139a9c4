//! What the tray shows and what notifications say, computed from the app's
//! STATUS and events. Pure: no tray library, no D-Bus.

use crate::core::model::outcome::{Action, Outcome};
use crate::core::policy::decide::Phase;
use crate::core::policy::readiness::ReadyState;
use crate::core::policy::retry::Cause;
use crate::core::protocol::status::{describe, Event, Operation, StateName, Status};
use crate::core::savings::waits::exact;

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

    /// The state's name, as STATUS shows it (`error` is the red icon).
    pub fn name(self) -> &'static str {
        match self {
            IconState::Active => "active",
            IconState::Warning => "warning",
            IconState::Asleep => "asleep",
            IconState::Paused => "paused",
            IconState::Error => "error",
        }
    }

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

fn secs(v: Option<f64>) -> u64 {
    v.map_or(0, |s| s.max(0.0).round() as u64)
}

/// "1 h 5 min", "4 min", "30 s".
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// How long the tray's view of `status` stays as it is while the state
/// does not change: until a countdown it shows turns (each second below a
/// minute, at the next whole minute above), a second while an operation,
/// a retry or a wake's readiness is under way, and at most a minute (this
/// week's saving, a hold's end).
pub fn unchanged_for(status: &Status) -> std::time::Duration {
    let turns = |left: f64| match left {
        l if l < 61.0 => 1.0,
        l => (l % 60.0).max(1.0),
    };
    let busy = status.operation.is_some()
        || status.retrying.is_some()
        || (status.readiness.iter()).any(|r| r.state != ReadyState::Ready);
    let soonest = [status.sleep_in_seconds, status.paused_for_seconds]
        .into_iter()
        .flatten()
        .map(turns)
        .chain(busy.then_some(1.0))
        .fold(60.0, f64::min);
    std::time::Duration::from_secs_f64(soonest)
}

/// Whether the user is not back: something is asleep by the idle timer.
fn away(state: StateName) -> bool {
    matches!(state, StateName::Asleep | StateName::PartlyAsleep)
}

/// The tray view for a STATUS reply.
pub fn tray_view(status: &Status) -> TrayView {
    let registered = status.registered;
    let (mut icon, mut line) = match status.state {
        StateName::Warning => (
            IconState::Warning,
            format!(
                "Sleeping in {} ({registered} resources)",
                human(secs(status.sleep_in_seconds))
            ),
        ),
        StateName::Asleep => (
            IconState::Asleep,
            format!("Asleep: {} resources stopped", status.asleep.len()),
        ),
        StateName::PartlyAsleep => (
            IconState::Asleep,
            format!(
                "Partly asleep: {} resources stopped, more in {}",
                status.asleep.len(),
                human(secs(status.sleep_in_seconds))
            ),
        ),
        StateName::Paused => (
            IconState::Paused,
            format!("Paused for {}", human(secs(status.paused_for_seconds))),
        ),
        StateName::Blind => (
            IconState::Error,
            format!(
                "Blind: nothing sleeps by itself; fix {}",
                describe(&status.detectors)
            ),
        ),
        StateName::Active => (
            IconState::Active,
            format!(
                "Active: sleep in {} ({registered} resources)",
                human(secs(status.sleep_in_seconds))
            ),
        ),
    };
    if let Some(kept) = &status.kept_awake_by {
        line = format!("{line}; {kept}");
    }
    if !status.holds.is_empty() {
        let by: Vec<&str> = status.holds.iter().map(|h| h.reason.as_str()).collect();
        line = format!("{line}; held by {}", by.join(", "));
    }
    if !status.awake.is_empty() {
        let up: Vec<String> = status
            .awake
            .iter()
            .map(|r| format!("{} ({})", r.resource.name(), r.why.join("; ")))
            .collect();
        line = format!("{line}; up: {}", list(&up));
    }
    // A wake given up (or cut short): the user is back, these are not.
    let not_woken: Vec<String> = (status.asleep.iter())
        .filter(|r| r.phase == Phase::Waking && !away(status.state))
        .map(|r| r.resource.short_name().to_string())
        .collect();
    if !not_woken.is_empty() && status.operation.is_none() {
        icon = IconState::Error;
        line = format!(
            "{line}; not woken: {} (Wake now tries again)",
            list(&not_woken)
        );
    }
    // Left asleep at the return by their policy: woken by hand only.
    let by_hand: Vec<String> = (status.asleep.iter())
        .filter(|r| r.wake.is_some() && !away(status.state))
        .map(|r| r.resource.short_name().to_string())
        .collect();
    if !by_hand.is_empty() {
        line = format!("{line}; asleep until woken by hand: {}", list(&by_hand));
    }
    if let Some(team) = &status.team {
        line = format!("{line}; team: {}", team.presence_line);
    }
    if let Some(e) = &status.team_error {
        icon = IconState::Error;
        line = format!("{line}; team table unreachable, shared resources stay up: {e}");
    }
    if let Some(plan) = &status.prewake {
        line = format!("{line}; {plan}");
    }
    if let Some(sign_in) = &status.sign_in {
        line = format!("{line}; {sign_in}");
    }
    if let Some(saved) = status.saved_this_week_usd.filter(|s| *s >= 0.005) {
        line = format!("{line}; Saved ≈ ${saved:.2} this week");
    }
    line = with_waking(line, status);
    if let Some(op) = status.operation {
        line = format!("{}…", capitalize(op.name()));
    }
    if let Some(retry) = &status.retrying {
        icon = IconState::Error;
        line = capitalize(retry.advice.as_deref().unwrap_or(&retry.text));
    }
    if let Some(e) = &status.config_error {
        icon = IconState::Error;
        let first = e.lines().next().unwrap_or(e);
        line = format!("Config error: {first}");
    }
    TrayView { icon, line }
}

/// `line; waking: 2 of 4 ready` while resources of the last wake are
/// starting, else `line`.
fn with_waking(line: String, status: &Status) -> String {
    let total = status.readiness.len();
    let ready = (status.readiness.iter())
        .filter(|r| r.state == ReadyState::Ready)
        .count();
    match ready < total {
        true => format!("{line}; waking: {ready} of {total} ready"),
        false => line,
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Minutes from `now` (local time) to the next `hour`:00 ("Keep awake until
/// tomorrow 08:00" means until the next working morning, even after
/// midnight).
pub fn minutes_until(now: chrono::NaiveDateTime, hour: u32) -> f64 {
    let Some(today) = now.date().and_hms_opt(hour.min(23), 0, 0) else {
        return 0.0;
    };
    let target = if today > now {
        today
    } else {
        today + chrono::Days::new(1)
    };
    (target - now).num_seconds() as f64 / 60.0
}

/// The evening hour of "Keep awake until 18:00".
pub const EVENING: u32 = 18;
/// The morning hour of "Keep awake until tomorrow 08:00".
pub const MORNING: u32 = 8;

/// A desktop notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub summary: String,
    pub body: String,
    pub kind: NoteKind,
    /// Buttons: the key sent back when chosen (a tray menu id) and the label.
    pub actions: Vec<(&'static str, String)>,
    /// What to add to the body where the notification server shows no
    /// buttons.
    pub no_actions_hint: Option<String>,
}

impl Note {
    /// The body to show, with or without the server's support for buttons.
    pub fn body_for(&self, actions_supported: bool) -> String {
        match &self.no_actions_hint {
            Some(hint) if !actions_supported => format!("{}\n{hint}", self.body),
            _ => self.body.clone(),
        }
    }
}

/// Which setting enables a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    Warning,
    Asleep,
    Awake,
    Error,
}

/// The short names of the resources whose action is one of `actions`.
fn names(outcomes: &[Outcome], actions: &[Action]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| actions.contains(&o.action))
        .map(|o| o.resource.short_name().to_string())
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

/// The notification that the last wake's resources are all ready, or that
/// one is still starting.
fn readiness_note(event: &Event) -> Option<Note> {
    let (summary, body) = match event {
        Event::Ready {
            resources,
            after_seconds,
        } => (
            format!(
                "All {resources} ready after {}",
                exact(secs(Some(*after_seconds)))
            ),
            "Every resource of the wake is usable.",
        ),
        Event::StillStarting {
            resource,
            after_seconds,
        } => (
            format!(
                "{resource} still starting after {}",
                human(secs(Some(*after_seconds)))
            ),
            "The others are followed as before; cloudnap says nothing more about it.",
        ),
        _ => return None,
    };
    Some(Note {
        summary,
        body: body.into(),
        kind: NoteKind::Awake,
        actions: Vec::new(),
        no_actions_hint: None,
    })
}

/// The body of the notification of a failed try that is tried again.
fn retrying_body(
    operation: Operation,
    cause: Cause,
    resources: &[String],
    advice: Option<&str>,
) -> String {
    match advice {
        Some(advice) => format!(
            "{}.\n{}: tried again by itself, at once when it is fixed.",
            capitalize(advice),
            list(resources)
        ),
        None => format!(
            "{}: {}\nTried again by itself until it works{}.",
            capitalize(cause.text()),
            list(resources),
            match operation {
                Operation::Sleeping => ", for up to 30 minutes",
                Operation::Waking => ", as long as you are here",
            }
        ),
    }
}

/// The notification for an app event at local time `now`, if it deserves one.
pub fn note_for(event: &Event, now: chrono::NaiveDateTime) -> Option<Note> {
    let note = |kind, summary: String, body: String| {
        Some(Note {
            summary,
            body,
            kind,
            actions: Vec::new(),
            no_actions_hint: None,
        })
    };
    match event {
        Event::Warning { .. } => warning_note(event, now),
        Event::Asleep(outcomes) => {
            let stopped = names(outcomes, &[Action::Stopped, Action::WouldStop]);
            (!stopped.is_empty()).then_some(())?;
            note(
                NoteKind::Asleep,
                format!("Asleep: {} resources stopped", stopped.len()),
                list(&stopped),
            )
        }
        Event::Awake(outcomes) => {
            let started = names(outcomes, &[Action::Restored, Action::WouldRestore]);
            (!started.is_empty()).then_some(())?;
            note(
                NoteKind::Awake,
                format!("Awake again: {} resources started", started.len()),
                list(&started),
            )
        }
        Event::Retrying {
            operation,
            cause,
            resources,
            advice,
        } => {
            let mut n = note(
                NoteKind::Error,
                format!("cloudnap: {} failed, trying again", operation.name()),
                retrying_body(*operation, *cause, resources, advice.as_deref()),
            )?;
            // Credentials: the sign-in (SSO) is one click away.
            if matches!(cause, Cause::CredentialsExpired | Cause::Credentials) {
                n.actions = vec![("sign-in", "Sign in".into())];
                n.no_actions_hint = Some("Or sign in: cloudnap login".into());
            }
            Some(n)
        }
        Event::Error {
            operation,
            failed,
            error,
        } => {
            let failed = names(failed, &[Action::Failed, Action::DidNotReach]);
            let body = if failed.is_empty() {
                error.clone().unwrap_or_default()
            } else {
                format!("Failed: {}", list(&failed))
            };
            note(
                NoteKind::Error,
                format!("cloudnap: {} failed", operation.name()),
                body,
            )
        }
        Event::Blind { detectors } => note(
            NoteKind::Error,
            "cloudnap cannot see you: nothing sleeps by itself".into(),
            format!(
                "No detector sees keyboard, mouse or idle time here. {}. Sleep now still works.",
                describe(detectors)
            ),
        ),
        Event::Ready { .. } | Event::StillStarting { .. } => readiness_note(event),
        Event::DeadlineOff { why } => note(
            NoteKind::Error,
            "cloudnap: no AWS-side deadline".into(),
            format!(
                "{why}.\nIf this machine sleeps or cloudnap stops, your resources keep running \
                 until it is back. See aws.deadline_role_arn in docs/deadline.md."
            ),
        ),
        Event::ConfigError { file, error } => note(
            NoteKind::Error,
            format!("cloudnap: {} is invalid", file.name()),
            format!("{error}\nThe last valid version stays in use."),
        ),
        _ => None,
    }
}

/// The warning before a sleep, with its buttons.
fn warning_note(event: &Event, now: chrono::NaiveDateTime) -> Option<Note> {
    let Event::Warning {
        sleep_in_seconds,
        resources,
        names,
        sleep_at,
        idle_seconds,
        last_input,
    } = event
    else {
        return None;
    };
    let mins = (sleep_in_seconds / 60.0).ceil() as u64;
    let when = if mins <= 1 {
        "1 minute".to_string()
    } else {
        format!("{mins} minutes")
    };
    let mut why = format!("no input for {}", human(secs(Some(*idle_seconds))));
    if let Some(last) = last_input {
        why = format!("{why}; last: {last}");
    }
    let until = if minutes_until(now, EVENING) < minutes_until(now, MORNING) {
        (
            "keep-awake-evening",
            format!("Keep awake until {EVENING}:00"),
        )
    } else {
        (
            "keep-awake-morning",
            format!("Keep awake until tomorrow {MORNING:02}:00"),
        )
    };
    Some(Note {
        kind: NoteKind::Warning,
        summary: format!("Your {resources} resources will sleep in {when} (at {sleep_at})"),
        body: format!(
            "{}\nWhy: {why}.\nMove the mouse to keep them awake.",
            list(names)
        ),
        actions: vec![
            ("keep-awake-1h", "Keep awake 1 h".into()),
            until,
            ("sleep", "Sleep now".into()),
        ],
        no_actions_hint: Some("Or keep them awake for an hour: cloudnap hold 1h".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Capacity;
    use crate::core::model::resource::{Kind, ResourceId, Running};
    use crate::core::protocol::status::{AsleepRow, ConfigFile, Operation};

    fn status(state: StateName) -> Status {
        Status {
            state,
            last_activity: None,
            locked: false,
            sleep_in_seconds: None,
            timeouts: vec![],
            paused_for_seconds: None,
            asleep: vec![],
            busy: vec![],
            registered: 0,
            operation: None,
            retrying: None,
            dry_run: false,
            config_error: None,
            inputs: crate::core::protocol::status::Inputs::Seen,
            detectors: vec![],
            holds: vec![],
            inhibitors: vec![],
            kept_awake_by: None,
            awake: vec![],
            readiness: vec![],
            saved_this_week_usd: None,
            deadline_off: None,
            prewake: None,
            team: None,
            team_error: None,
            sign_in: None,
            tray: Default::default(),
        }
    }

    #[test]
    fn the_tray_looks_again_when_its_countdown_turns_and_at_least_each_minute() {
        let secs = |s: &Status| unchanged_for(s).as_secs_f64();
        let mut s = status(StateName::Active);
        s.sleep_in_seconds = Some(29.0 * 60.0 + 20.0); // "30 min" until 29 min
        assert_eq!(secs(&s), 20.0);
        assert_eq!(human(29 * 60 + 20), "30 min");
        assert_eq!(human(29 * 60), "29 min");
        s.sleep_in_seconds = Some(45.0); // each second
        assert_eq!(secs(&s), 1.0);
        s.sleep_in_seconds = None; // asleep: this week's saving grows
        assert_eq!(secs(&s), 60.0);
        s.paused_for_seconds = Some(3600.0 + 7.5);
        assert_eq!(secs(&s), 7.5);
        s.operation = Some(Operation::Waking);
        assert_eq!(secs(&s), 1.0);
    }

    #[test]
    fn the_status_line_counts_what_is_ready_after_a_wake_and_notes_say_when_all_are() {
        use crate::core::policy::readiness::{ReadinessRow, ReadyState};
        let row = |id: &str, ready: Option<f64>| ReadinessRow {
            resource: ResourceId::new(Kind::Ec2, [id], "us-east-1"),
            state: match ready {
                Some(_) => ReadyState::Ready,
                None => ReadyState::Starting,
            },
            ready_after_seconds: ready,
        };
        let mut s = Status {
            readiness: vec![
                row("i-1", Some(30.0)),
                row("i-2", None),
                row("i-3", Some(41.0)),
                row("i-4", None),
            ],
            sleep_in_seconds: Some(600.0),
            ..status(StateName::Active)
        };
        assert_eq!(
            tray_view(&s).line,
            "Active: sleep in 10 min (0 resources); waking: 2 of 4 ready"
        );
        s.readiness = vec![row("i-1", Some(30.0))];
        assert_eq!(tray_view(&s).line, "Active: sleep in 10 min (0 resources)");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let all = Event::Ready {
            resources: 4,
            after_seconds: 72.4,
        };
        let n = note_for(&all, at).unwrap();
        assert_eq!(n.summary, "All 4 ready after 1 min 12 s");
        assert_eq!(n.kind, NoteKind::Awake);
        let lag = Event::StillStarting {
            resource: "dev-postgres".into(),
            after_seconds: 720.0,
        };
        let n = note_for(&lag, at).unwrap();
        assert_eq!(n.summary, "dev-postgres still starting after 12 min");
        assert_eq!(exact(45), "45 s");
        assert_eq!(exact(120), "2 min");
        assert_eq!(exact(3720), "1 h 2 min");
    }

    #[test]
    fn the_status_line_shows_this_weeks_saving() {
        let v = tray_view(&Status {
            saved_this_week_usd: Some(12.404),
            ..status(StateName::Asleep)
        });
        assert_eq!(
            v.line,
            "Asleep: 0 resources stopped; Saved ≈ $12.40 this week"
        );
        let v = tray_view(&Status {
            saved_this_week_usd: Some(0.001),
            ..status(StateName::Asleep)
        });
        assert_eq!(v.line, "Asleep: 0 resources stopped");
    }

    #[test]
    fn the_status_line_says_which_inhibitors_keep_resources_awake() {
        let v = tray_view(&Status {
            sleep_in_seconds: Some(7260.0),
            registered: 3,
            kept_awake_by: Some("kept awake by Firefox: \"video call\"".into()),
            ..status(StateName::Active)
        });
        assert_eq!(
            v.line,
            "Active: sleep in 2 h 1 min (3 resources); kept awake by Firefox: \"video call\""
        );
        assert_eq!(v.icon, IconState::Active);
    }

    #[test]
    fn the_status_line_shows_the_team_and_an_unreachable_table() {
        let team = crate::core::protocol::status::TeamStatus {
            member: "dev-a@laptop-1".into(),
            presence_line: "1 of 2 present: dev-b@laptop-2".into(),
            resources: vec![],
        };
        let v = tray_view(&Status {
            team: Some(team),
            ..status(StateName::Asleep)
        });
        assert_eq!(
            v.line,
            "Asleep: 0 resources stopped; team: 1 of 2 present: dev-b@laptop-2"
        );
        assert_eq!(v.icon, IconState::Asleep);
        let v = tray_view(&Status {
            team_error: Some("dispatch failure".into()),
            ..status(StateName::Asleep)
        });
        assert_eq!(
            v.line,
            "Asleep: 0 resources stopped; team table unreachable, shared resources stay up: dispatch failure"
        );
        assert_eq!(v.icon, IconState::Error);
    }

    fn outcome(resource: ResourceId, action: Action) -> Outcome {
        Outcome {
            resource,
            action,
            before: None,
            saved: None,
            error: None,
            retrying: None,
        }
    }

    fn ec2(id: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [id], "us-east-1")
    }

    #[test]
    fn the_status_line_follows_the_state() {
        let v = tray_view(&Status {
            sleep_in_seconds: Some(1530.4),
            registered: 3,
            ..status(StateName::Active)
        });
        assert_eq!(
            v,
            TrayView {
                icon: IconState::Active,
                line: "Active: sleep in 26 min (3 resources)".into()
            }
        );
        let v = tray_view(&Status {
            sleep_in_seconds: Some(45.0),
            registered: 3,
            ..status(StateName::Warning)
        });
        assert_eq!(v.icon, IconState::Warning);
        assert_eq!(v.line, "Sleeping in 45 s (3 resources)");
        let row = AsleepRow {
            resource: ec2("i-1"),
            saved: Capacity::of(Kind::Ec2, Running(true)),
            phase: crate::core::policy::decide::Phase::Asleep,
            since: 0,
            retrying: None,
            wake: None,
        };
        let v = tray_view(&Status {
            asleep: vec![row.clone(), row],
            ..status(StateName::Asleep)
        });
        assert_eq!(v.line, "Asleep: 2 resources stopped");
        let v = tray_view(&Status {
            paused_for_seconds: Some(3600.0),
            ..status(StateName::Paused)
        });
        assert_eq!(
            (v.icon, v.line.as_str()),
            (IconState::Paused, "Paused for 1 h 0 min")
        );
        let v = tray_view(&Status {
            operation: Some(Operation::Waking),
            ..status(StateName::Asleep)
        });
        assert_eq!(v.line, "Waking…");
    }

    /// A wake retried for `cause`, as STATUS shows it.
    fn retrying(
        cause: crate::core::policy::retry::Cause,
        text: &str,
        advice: Option<&str>,
    ) -> Status {
        Status {
            operation: Some(Operation::Waking),
            retrying: Some(crate::core::protocol::status::RetryRow {
                operation: Operation::Waking,
                attempts: 4,
                cause,
                next_in_seconds: 4.0,
                failing_for_seconds: 7.0,
                text: text.into(),
                advice: advice.map(String::from),
                resources: Vec::new(),
            }),
            ..status(StateName::Active)
        }
    }

    /// Monday 09:00.
    fn morning() -> chrono::NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
    }

    #[test]
    fn a_retried_wake_shows_in_the_tray_and_is_notified_once() {
        use crate::core::policy::retry::Cause;
        let v = tray_view(&retrying(
            Cause::Network,
            "waking: retrying (network unreachable, attempt 4)",
            None,
        ));
        assert_eq!(
            (v.icon, v.line.as_str()),
            (
                IconState::Error,
                "Waking: retrying (network unreachable, attempt 4)"
            )
        );
        // Given up: the tray does not say all is awake.
        let row = AsleepRow {
            resource: ec2("i-1"),
            saved: Capacity::of(Kind::Ec2, Running(true)),
            phase: Phase::Waking,
            since: 0,
            retrying: None,
            wake: None,
        };
        let v = tray_view(&Status {
            sleep_in_seconds: Some(600.0),
            registered: 2,
            asleep: vec![row],
            ..status(StateName::Active)
        });
        assert_eq!(
            (v.icon, v.line.as_str()),
            (
                IconState::Error,
                "Active: sleep in 10 min (2 resources); not woken: i-1 (Wake now tries again)"
            )
        );
        let note = note_for(
            &Event::Retrying {
                operation: Operation::Waking,
                cause: Cause::Network,
                resources: vec!["i-1".into(), "web".into()],
                advice: None,
            },
            morning(),
        )
        .unwrap();
        assert_eq!(note.kind, NoteKind::Error);
        assert_eq!(note.summary, "cloudnap: waking failed, trying again");
        assert_eq!(
            note.body,
            "Network unreachable: i-1, web\nTried again by itself until it works, as long as you are here."
        );
    }

    #[test]
    fn a_wake_waiting_for_the_user_says_what_to_do_in_red_and_in_one_notification() {
        use crate::core::policy::retry::Cause;
        let advice = "credentials expired for profile work: sign in to wake 2 resources";
        let v = tray_view(&retrying(
            Cause::CredentialsExpired,
            "waking: retrying (credentials expired, attempt 3)",
            Some(advice),
        ));
        assert_eq!(
            (v.icon, v.line.as_str()),
            (
                IconState::Error,
                "Credentials expired for profile work: sign in to wake 2 resources"
            )
        );
        let note = note_for(
            &Event::Retrying {
                operation: Operation::Waking,
                cause: Cause::CredentialsExpired,
                resources: vec!["i-1".into(), "web".into()],
                advice: Some(advice.into()),
            },
            morning(),
        )
        .unwrap();
        assert_eq!(note.kind, NoteKind::Error);
        assert_eq!(
            note.body,
            "Credentials expired for profile work: sign in to wake 2 resources.\n\
             i-1, web: tried again by itself, at once when it is fixed."
        );
        // Its button starts the sign-in, as the tray's menu item does.
        assert_eq!(note.actions, [("sign-in", "Sign in".to_string())]);
        assert_eq!(
            crate::ui::tray::action_for(note.actions[0].0),
            Some(crate::ui::tray::MenuAction::SignIn)
        );
        assert!(note.body_for(false).ends_with("Or sign in: cloudnap login"));
    }

    #[test]
    fn asleep_under_an_sso_profile_the_line_says_by_when_to_sign_in() {
        let mut s = status(StateName::Asleep);
        s.sign_in = Some("sign-in needed by 17:40 to wake (profile work)".into());
        let v = tray_view(&s);
        assert_eq!(
            (v.icon, v.line.as_str()),
            (
                IconState::Asleep,
                "Asleep: 0 resources stopped; sign-in needed by 17:40 to wake (profile work)"
            )
        );
    }

    #[test]
    fn pause_until_tomorrow_ends_at_the_next_morning() {
        let at = |h, m| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
        };
        assert_eq!(minutes_until(at(22, 0), MORNING), 600.0);
        assert_eq!(minutes_until(at(2, 30), MORNING), 330.0);
        assert_eq!(minutes_until(at(8, 0), MORNING), 1440.0);
        assert_eq!(minutes_until(at(13, 30), EVENING), 270.0);
    }

    #[test]
    fn a_config_error_wins_and_shows_its_first_line() {
        let v = tray_view(&Status {
            config_error: Some("services.yaml line 3: bad\nmore".into()),
            ..status(StateName::Active)
        });
        assert_eq!(v.icon, IconState::Error);
        assert_eq!(v.line, "Config error: services.yaml line 3: bad");
    }

    #[test]
    fn notifications_say_what_happened() {
        let morning = chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
            .unwrap()
            .and_hms_opt(9, 16, 0)
            .unwrap();
        let note_for = |e: &Event| super::note_for(e, morning);
        let w = note_for(&Event::Warning {
            resources: 2,
            sleep_in_seconds: 120.0,
            names: vec!["web".into(), "i-1".into()],
            sleep_at: "09:18".into(),
            idle_seconds: 28.0 * 60.0,
            last_input: Some("keyboard 08:48".into()),
        })
        .unwrap();
        assert_eq!(
            w.summary,
            "Your 2 resources will sleep in 2 minutes (at 09:18)"
        );
        assert_eq!(
            w.body,
            "web, i-1\nWhy: no input for 28 min; last: keyboard 08:48.\nMove the mouse to keep them awake."
        );
        let keys: Vec<&str> = w.actions.iter().map(|a| a.0).collect();
        assert_eq!(keys, ["keep-awake-1h", "keep-awake-evening", "sleep"]);
        assert_eq!(w.actions[1].1, "Keep awake until 18:00");
        assert_eq!(w.body_for(true), w.body);
        assert!(w.body_for(false).ends_with("cloudnap hold 1h"));
        let late = super::note_for(
            &Event::Warning {
                resources: 0,
                sleep_in_seconds: 30.0,
                names: vec![],
                sleep_at: "19:00".into(),
                idle_seconds: 60.0,
                last_input: None,
            },
            morning + chrono::Duration::hours(10),
        )
        .unwrap();
        assert_eq!(late.actions[1].1, "Keep awake until tomorrow 08:00");
        assert!(
            late.body.contains("Why: no input for 1 min."),
            "{}",
            late.body
        );
        let ecs = ResourceId::new(Kind::Ecs, ["c", "web"], "us-east-1");
        let eks = ResourceId::new(Kind::Eks, ["c", "ng"], "us-east-1");
        let outcomes = vec![
            outcome(ecs, Action::Stopped),
            outcome(ec2("i-1"), Action::AlreadyAsleep),
            outcome(eks, Action::Stopped),
        ];
        let a = note_for(&Event::Asleep(outcomes)).unwrap();
        assert_eq!(
            (a.kind, a.summary.as_str(), a.body.as_str()),
            (NoteKind::Asleep, "Asleep: 2 resources stopped", "web, ng")
        );
        assert_eq!(
            note_for(&Event::Awake(vec![])),
            None,
            "nothing woke: no note"
        );
        let w = note_for(&Event::Awake(vec![outcome(ec2("i-9"), Action::Restored)])).unwrap();
        assert_eq!(
            (w.summary.as_str(), w.body.as_str()),
            ("Awake again: 1 resources started", "i-9")
        );
        let e = note_for(&Event::ConfigError {
            file: ConfigFile::Services,
            error: "line 2: x".into(),
        })
        .unwrap();
        assert_eq!(e.kind, NoteKind::Error);
        assert!(e.body.starts_with("line 2: x"));
        let many: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        assert_eq!(list(&many), "r0, r1, r2, r3, r4 and 3 more");
    }
}

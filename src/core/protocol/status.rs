//! What the app says about itself: the `STATUS` reply and the events it
//! reports (state changes and errors). Types only; the app fills them, the
//! server, tray and notifications read them.

use crate::core::model::activity::ActivityKind;
pub use crate::core::model::operation::Operation;
use crate::core::model::outcome::Outcome;
use crate::core::model::resource::{Capacity, ResourceId};
use crate::core::policy::decide::Phase;
use crate::core::policy::holds::{AwakeRow, HoldRow};
pub use crate::core::policy::inhibitors::InhibitorRow;
pub use crate::core::policy::readiness::ReadinessRow;
use crate::core::policy::retry::Cause;
pub use crate::core::policy::retry::{PendingRow, RetryRow};
use crate::detect::definition::Detector;
use crate::detect::list;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The idle timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    /// Counting down to sleep.
    Active,
    /// Sleep is coming within `warning_minutes`.
    Warning,
    /// The resources of some timeouts were put to sleep; the others'
    /// countdowns run (see [`TimeoutRow`]).
    #[serde(rename = "partly_asleep")]
    PartlyAsleep,
    /// Every resource was put to sleep: the user is away.
    Asleep,
    /// Kept awake until a time.
    Paused,
    /// No input source runs: nothing sleeps by itself.
    Blind,
}

/// The latest activity seen ("what keeps me awake?").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastActivity {
    pub kind: ActivityKind,
    /// Whether it shows the user is there (input, a microphone in use), or
    /// is a weaker signal that only keeps resources awake (sound playing).
    pub presence: bool,
    pub seconds_ago: f64,
}

/// A resource cloudnap holds asleep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsleepRow {
    pub resource: ResourceId,
    /// The capacity a wake restores.
    pub saved: Capacity,
    pub phase: Phase,
    /// Unix seconds when the sleep was recorded.
    pub since: u64,
    /// While its wake (or sleep) is tried again: "waking: retrying
    /// (network unreachable, attempt 4)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrying: Option<String>,
    /// Its wake policy when the user's return leaves it asleep: `manual`
    /// or `on_connect` (services.yaml's `wake:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake: Option<&'static str>,
}

/// A resource a sleep left running because it is at work; it is checked
/// again while the user stays away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusyRow {
    pub resource: ResourceId,
    /// `busy: CPU 63 % over 10 min`.
    pub reason: String,
}

/// How an activity detector is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "why", rename_all = "snake_case")]
pub enum DetectorState {
    /// Being started (counted as running until it fails).
    Starting,
    Running,
    /// Cannot work in this session (no display, no D-Bus service, ...).
    NotAvailable(String),
    /// Ran, then failed; restarted with backoff.
    Failed(String),
    /// Turned off in settings.json.
    Disabled,
}

impl DetectorState {
    /// "running", "not available", ... as `cloudnap status` prints it.
    pub fn words(&self) -> &'static str {
        match self {
            DetectorState::Starting => "starting",
            DetectorState::Running => "running",
            DetectorState::NotAvailable(_) => "not available",
            DetectorState::Failed(_) => "failed",
            DetectorState::Disabled => "disabled",
        }
    }

    /// Why it does not run, if it says.
    pub fn why(&self) -> Option<&str> {
        match self {
            DetectorState::NotAvailable(why) | DetectorState::Failed(why) => Some(why),
            _ => None,
        }
    }
}

/// One detector in `STATUS`; on the wire its identity is its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorRow {
    #[serde(
        rename = "name",
        serialize_with = "detector_name",
        deserialize_with = "detector_named"
    )]
    pub detector: &'static Detector,
    /// Whether it is a source of truth for user input here (keyboard,
    /// mouse, the session's idle time).
    pub input: bool,
    #[serde(flatten)]
    pub state: DetectorState,
}

fn detector_name<S: Serializer>(d: &&'static Detector, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name)
}

fn detector_named<'de, D: Deserializer<'de>>(d: D) -> Result<&'static Detector, D::Error> {
    let name = String::deserialize(d)?;
    list::by_name(&name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown detector `{name}`")))
}

/// Whether cloudnap can see the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inputs {
    /// At least one input detector runs.
    #[serde(rename = "seen")]
    Seen,
    /// Input detectors are enabled but none runs: nothing sleeps by itself.
    #[serde(rename = "blind")]
    Blind,
    /// Every input detector is off in settings.json on purpose: activity
    /// comes from `USER_ACTIVITY` (and the other detectors) alone.
    #[serde(rename = "disabled in settings")]
    DisabledInSettings,
}

impl Inputs {
    /// As `STATUS` says it: "seen", "blind", "disabled in settings".
    pub fn words(self) -> &'static str {
        match self {
            Inputs::Seen => "seen",
            Inputs::Blind => "blind",
            Inputs::DisabledInSettings => "disabled in settings",
        }
    }

    /// The blind rule over the detectors' states.
    pub fn of(detectors: &[DetectorRow]) -> Inputs {
        let inputs = || detectors.iter().filter(|d| d.input);
        if inputs().all(|d| d.state == DetectorState::Disabled) {
            Inputs::DisabledInSettings
        } else if inputs()
            .any(|d| matches!(d.state, DetectorState::Running | DetectorState::Starting))
        {
            Inputs::Seen
        } else {
            Inputs::Blind
        }
    }
}

/// "keyboard/mouse: failed (no X display); system_idle: not available here
/// (...)": the input detectors that do not run, and why.
pub fn describe(detectors: &[DetectorRow]) -> String {
    detectors
        .iter()
        .filter(|d| d.input)
        .filter_map(|d| {
            let what = match &d.state {
                DetectorState::Failed(why) => format!("failed ({why})"),
                DetectorState::NotAvailable(why) => format!("not available here ({why})"),
                DetectorState::Disabled => "disabled in settings".into(),
                DetectorState::Starting | DetectorState::Running => return None,
            };
            Some(format!("{}: {what}", d.detector.name))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One idle timeout in `STATUS`: the resources that sleep together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeoutRow {
    pub timeout_minutes: f64,
    /// Whether it is `activity_monitor.inactivity_timeout_minutes`: the
    /// timeout of every resource without its own (and of those found by
    /// tag), and the one after which the user counts as away for the team.
    pub default: bool,
    /// The registered resources it puts to sleep.
    pub resources: Vec<ResourceId>,
    /// Put to sleep (until the user's return).
    pub asleep: bool,
    /// Its warning is out.
    pub warned: bool,
    /// Seconds until it sleeps without activity (after a pause: its end
    /// plus the timeout); none once asleep, or while blind.
    pub sleep_in_seconds: Option<f64>,
}

/// The `STATUS` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub state: StateName,
    pub last_activity: Option<LastActivity>,
    /// Whether the screen is locked (the user is away).
    pub locked: bool,
    /// Seconds until the next sleep (active, warning, partly asleep).
    pub sleep_in_seconds: Option<f64>,
    /// Each idle timeout in use (services.yaml's `timeout_minutes`, and
    /// `inactivity_timeout_minutes` for the rest), shortest first: its
    /// resources, and whether and when they sleep.
    pub timeouts: Vec<TimeoutRow>,
    /// Seconds until a pause ends.
    pub paused_for_seconds: Option<f64>,
    pub asleep: Vec<AsleepRow>,
    /// What the last sleep left running because it is at work.
    pub busy: Vec<BusyRow>,
    /// Entries in services.yaml.
    pub registered: usize,
    /// The sleep or wake in progress, also while it waits to be tried again.
    pub operation: Option<Operation>,
    /// The sleep or wake waiting to be tried again, if one is.
    pub retrying: Option<RetryRow>,
    pub dry_run: bool,
    /// Every invalid config file's error, one per line.
    pub config_error: Option<String>,
    /// Whether any detector can see user input.
    pub inputs: Inputs,
    /// Every activity detector and how it is doing.
    pub detectors: Vec<DetectorRow>,
    /// The active holds.
    pub holds: Vec<HoldRow>,
    /// The idle inhibitors other programs hold, and whether each counts.
    pub inhibitors: Vec<InhibitorRow>,
    /// `kept awake by Firefox: "video call"`: the inhibitors that count
    /// now, while resources are awake.
    pub kept_awake_by: Option<String>,
    /// While asleep: each resource the sleep left up, and why.
    pub awake: Vec<AwakeRow>,
    /// Dollars sleeping saved over the last 7 days (see `REPORT`), if a
    /// history is kept.
    pub saved_this_week_usd: Option<f64>,
    /// Why the AWS-side deadline cannot be armed, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_off: Option<String>,
    /// Team mode, when it is on: who is present, and each shared resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamStatus>,
    /// Why the team table cannot be used now (unreachable, throttled):
    /// meanwhile no shared resource is put to sleep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_error: Option<String>,
    /// Each resource of the last wake: `starting` until it is usable,
    /// then `ready` with `ready_after_seconds` (see
    /// [`crate::core::policy::readiness`]).
    pub readiness: Vec<ReadinessRow>,
    /// The pre-wake planned while asleep: "pre-wake Mon 08:41 for your
    /// usual 08:55".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prewake: Option<String>,
    /// While resources sleep under an SSO profile: by when it must be
    /// signed in again for them to wake ("sign-in needed by 17:40 to wake
    /// (profile work)").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<String>,
    /// What the tray shows for this status (its icon and line).
    pub tray: TrayLine,
}

/// The tray's icon and status line, as STATUS repeats them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrayLine {
    /// `active`, `warning`, `asleep`, `paused`, or `error` (red).
    pub icon: &'static str,
    pub line: String,
}

/// Team mode in `STATUS` (see [`crate::core::policy::team`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamStatus {
    /// This member, as people read it (`dev-a@laptop-1`); empty until known.
    pub member: String,
    /// `2 of 3 present: dev-a@laptop-1, dev-b@laptop-2`, or `all away since
    /// 14:05`, as of the last read of the table.
    pub presence_line: String,
    pub resources: Vec<TeamRow>,
}

/// One shared resource in `STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamRow {
    pub resource: ResourceId,
    /// Its lock's phase: `idle`, `sleeping`, `asleep`, `waking`.
    pub phase: String,
    /// The team's presence, as [`TeamStatus::presence_line`].
    pub presence_line: String,
    /// Who did its last sleep or wake (`dev-c@laptop-3`), if anyone.
    pub by: Option<String>,
    /// What this member saw or did at its last step: `done by
    /// dev-c@laptop-3`, `held by ...`, `asleep (slept by this member)`, ...
    pub note: Option<String>,
}

/// One of the two config files cloudnap watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigFile {
    Settings,
    Services,
}

impl ConfigFile {
    /// The file's name.
    pub fn name(self) -> &'static str {
        match self {
            ConfigFile::Settings => "settings.json",
            ConfigFile::Services => "services.yaml",
        }
    }
}

impl Serialize for ConfigFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Something the app reports: a state change or an error. On the events
/// port it is `{"event": "<name>", "detail": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Event {
    /// Sleep is coming.
    Warning {
        sleep_in_seconds: f64,
        resources: usize,
        /// The short names of what will sleep.
        names: Vec<String>,
        /// The local time it will sleep, e.g. "09:46".
        sleep_at: String,
        /// How long no input was seen.
        idle_seconds: f64,
        /// The last input and its local time, e.g. "keyboard 09:14".
        last_input: Option<String>,
    },
    /// Activity during the warning: no sleep.
    WarningCancelled,
    /// Kept awake for this long.
    Paused { minutes: f64 },
    /// A sleep finished: its report.
    Asleep(Vec<Outcome>),
    /// A wake finished: its report.
    Awake(Vec<Outcome>),
    /// The periodic check let go of resources started by hand, or stopped
    /// again databases AWS started by itself while the user is away.
    Refreshed(Vec<Outcome>),
    /// A sleep or wake failed for `resources` (short names): it is tried
    /// again (a sleep until 30 minutes have passed, then an
    /// [`Event::Error`] follows; a wake while the user is present). Sent at
    /// the first failure, and when the cause changes.
    Retrying {
        operation: Operation,
        cause: Cause,
        resources: Vec<String>,
        /// What the user can do (see [`RetryRow::advice`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        advice: Option<String>,
    },
    /// A sleep or wake failed, in whole (`error`) or for some resources.
    Error {
        operation: Operation,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        failed: Vec<Outcome>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A config file became invalid; the last valid version stays in use.
    ConfigError { file: ConfigFile, error: String },
    /// A config file is valid again.
    ConfigOk { file: ConfigFile },
    /// No detector that sees input runs: nothing sleeps by itself.
    Blind { detectors: Vec<DetectorRow> },
    /// An input detector runs again.
    Seeing,
    /// The AWS-side deadline cannot be armed (`why`): said once.
    DeadlineOff { why: String },
    /// Every resource of the last wake is usable, the last one this long
    /// after the wake.
    Ready {
        resources: usize,
        after_seconds: f64,
    },
    /// A resource of the last wake (its short name) is still not usable
    /// after its kind's time: said once.
    StillStarting {
        resource: String,
        after_seconds: f64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A row of the detector named `name` (a made-up one where this
    /// platform has none of that name).
    fn row(name: &'static str, input: bool, state: DetectorState) -> DetectorRow {
        let detector = list::by_name(name).unwrap_or_else(|| {
            Box::leak(Box::new(Detector {
                name,
                input,
                fits: crate::detect::definition::everywhere,
                sections: &[],
                make: None,
            }))
        });
        DetectorRow {
            detector,
            input,
            state,
        }
    }

    #[test]
    fn blind_only_when_no_enabled_input_detector_runs() {
        use DetectorState::*;
        let audio = row("audio", false, Running);
        let failed = row("keyboard/mouse", true, Failed("no X".into()));
        let absent = row("wayland_idle", true, NotAvailable("not Wayland".into()));
        assert_eq!(
            Inputs::of(&[audio.clone(), failed.clone(), absent.clone()]),
            Inputs::Blind
        );
        let idle = row("system_idle", true, Running);
        assert_eq!(Inputs::of(&[failed.clone(), idle]), Inputs::Seen);
        let starting = row("system_idle", true, Starting);
        assert_eq!(Inputs::of(&[failed.clone(), starting]), Inputs::Seen);
        let off = |name| row(name, true, Disabled);
        assert_eq!(
            Inputs::of(&[audio.clone(), off("keyboard/mouse"), off("system_idle")]),
            Inputs::DisabledInSettings
        );
        assert_eq!(
            Inputs::of(&[off("keyboard/mouse"), absent]),
            Inputs::Blind,
            "one enabled input detector that cannot run"
        );
        // Not a source of truth for input (X RECORD on Wayland): its running
        // does not make cloudnap see.
        let xrecord = row("keyboard/mouse", false, Running);
        assert_eq!(Inputs::of(&[xrecord, failed]), Inputs::Blind);
        assert_eq!(
            serde_json::to_value(row("screen", false, Failed("x".into()))).unwrap(),
            json!({"name": "screen", "input": false, "state": "failed", "why": "x"})
        );
        assert_eq!(
            serde_json::to_value(Inputs::DisabledInSettings).unwrap(),
            "disabled in settings"
        );
    }

    #[test]
    fn a_detector_row_is_read_back_as_the_same_detector() {
        let screen = list::by_name("screen").unwrap();
        let rows = vec![
            row("screen", false, DetectorState::Failed("x".into())),
            row("keyboard/mouse", true, DetectorState::Running),
        ];
        let back: Vec<DetectorRow> =
            serde_json::from_value(serde_json::to_value(&rows).unwrap()).unwrap();
        assert_eq!(back, rows);
        assert!(std::ptr::eq(back[0].detector, screen));
        assert_eq!(
            (back[0].state.words(), back[0].state.why()),
            ("failed", Some("x"))
        );
        let unknown = json!([{"name": "telepathy", "input": true, "state": "running"}]);
        let err = serde_json::from_value::<Vec<DetectorRow>>(unknown).unwrap_err();
        assert!(
            err.to_string().contains("unknown detector `telepathy`"),
            "{err}"
        );
        for inputs in [Inputs::Seen, Inputs::Blind, Inputs::DisabledInSettings] {
            assert_eq!(serde_json::to_value(inputs).unwrap(), inputs.words());
        }
    }

    #[test]
    fn events_keep_their_wire_shape() {
        let warning = Event::Warning {
            sleep_in_seconds: 120.0,
            resources: 1,
            names: vec!["web".into()],
            sleep_at: "09:46".into(),
            idle_seconds: 1680.0,
            last_input: Some("keyboard 09:14".into()),
        };
        assert_eq!(
            serde_json::to_value(warning).unwrap(),
            json!({"event": "warning", "detail": {"sleep_in_seconds": 120.0, "resources": 1,
                "names": ["web"], "sleep_at": "09:46", "idle_seconds": 1680.0,
                "last_input": "keyboard 09:14"}})
        );
        assert_eq!(
            serde_json::to_value(Event::WarningCancelled).unwrap(),
            json!({"event": "warning_cancelled"})
        );
        let bad = Event::ConfigError {
            file: ConfigFile::Services,
            error: "line 3: ...".into(),
        };
        assert_eq!(
            serde_json::to_value(bad).unwrap(),
            json!({"event": "config_error", "detail": {"file": "services.yaml", "error": "line 3: ..."}})
        );
        let failed = Event::Error {
            operation: Operation::Waking,
            failed: vec![],
            error: Some("state file: denied".into()),
        };
        assert_eq!(
            serde_json::to_value(failed).unwrap(),
            json!({"event": "error", "detail": {"operation": "waking", "error": "state file: denied"}})
        );
    }
}

//! Reports of what sleep, wake and status found and did, and their plain-text
//! tables. Pure: built by the manager, shown by the CLI, STATUS and the tray.

use crate::core::model::resource::{Capacity, ResourceId};
use crate::core::policy::retry::Cause;
use serde::Serialize;
use std::fmt::Write as _;

/// What happened to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stopped,
    WouldStop,
    AlreadyAsleep,
    LeftDown,
    Protected,
    /// Skipped: a hold keeps it awake.
    Held,
    /// At work: left running by a sleep (the reason is in the outcome's note).
    Busy,
    /// Left up, or woken back, by a sleep the user's return cut short.
    Cancelled,
    StartedByHand,
    Restored,
    WouldRestore,
    AlreadyUp,
    Failed,
    /// AWS took the call, but the resource did not show the capacity set
    /// within the bounded read-back (what it shows is in the error).
    DidNotReach,
}

impl Action {
    /// The action's name, as in JSON replies.
    pub fn name(self) -> &'static str {
        match self {
            Action::Stopped => "stopped",
            Action::WouldStop => "would_stop",
            Action::AlreadyAsleep => "already_asleep",
            Action::LeftDown => "left_down",
            Action::Protected => "protected",
            Action::Held => "held",
            Action::Busy => "busy",
            Action::Cancelled => "cancelled",
            Action::StartedByHand => "started_by_hand",
            Action::Restored => "restored",
            Action::WouldRestore => "would_restore",
            Action::AlreadyUp => "already_up",
            Action::Failed => "failed",
            Action::DidNotReach => "did_not_reach",
        }
    }

    /// Whether the row is an error: exit code, notification, tray.
    pub fn is_failure(self) -> bool {
        matches!(self, Action::Failed | Action::DidNotReach)
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One row of a sleep or wake report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub resource: ResourceId,
    pub action: Action,
    /// Capacity before the operation, if known.
    pub before: Option<Capacity>,
    /// Capacity saved or restored.
    pub saved: Option<Capacity>,
    /// Why it failed, why it is busy, or a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it failed, when the failure passes by itself: the sleep or wake
    /// is tried again (see [`crate::core::policy::retry`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrying: Option<Cause>,
}

/// One row of a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    pub resource: ResourceId,
    pub description: String,
    pub status: String,
    pub capacity: Option<Capacity>,
    /// The capacity cloudnap will restore, if it put the resource to sleep.
    pub asleep: Option<Capacity>,
    pub protected: bool,
    /// `services.yaml`, or `tag` (see [`crate::core::config::registry::Entry::source`]).
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn cap(c: &Option<Capacity>) -> String {
    c.map_or_else(|| "-".into(), |c| c.to_string())
}

/// A plain-text table of a sleep or wake report.
pub fn format_outcomes(outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "{:<4} {:<14} {:<40} {:<15} {:<12} {:<12}\n",
        "KIND", "REGION", "RESOURCE", "RESULT", "BEFORE", "SAVED"
    );
    for o in outcomes {
        let _ = writeln!(
            s,
            "{:<4} {:<14} {:<40} {:<15} {:<12} {:<12}{}",
            o.resource.kind(),
            o.resource.region(),
            o.resource.name(),
            o.action.name(),
            cap(&o.before),
            cap(&o.saved),
            o.error
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default()
        );
    }
    s
}

/// A plain-text table of a status report.
pub fn format_status(rows: &[StatusRow]) -> String {
    let mut s = format!(
        "{:<4} {:<14} {:<40} {:<12} {:<12} {:<12} {}\n",
        "KIND", "REGION", "RESOURCE", "STATUS", "CAPACITY", "ASLEEP(SAVED)", "NOTE"
    );
    for r in rows {
        let note = match (&r.error, r.protected) {
            (Some(e), _) => e.clone(),
            (None, true) => "protected".into(),
            _ => r.description.clone(),
        };
        let _ = writeln!(
            s,
            "{:<4} {:<14} {:<40} {:<12} {:<12} {:<12} {}",
            r.resource.kind(),
            r.resource.region(),
            r.resource.name(),
            r.status,
            cap(&r.capacity),
            cap(&r.asleep),
            note
        );
    }
    s
}

//! What a command returns: [`Reply`] on success, [`CommandError`] on
//! failure. The server turns them into JSON; the tray and tests read the
//! fields.

use crate::core::model::outcome::Outcome;
use crate::core::model::resource::{Capacity, ResourceId};
use crate::core::policy::holds::HoldRow;
use crate::core::protocol::status::Status;
pub use crate::kinds::listing::Listing;
use serde::Serialize;

/// A command's result. Serialized untagged: each variant has its own keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `STATUS`, `PAUSE`, `RESUME`, `USER_ACTIVITY`.
    Status(Box<Status>),
    /// `SLEEP_NOW`, `WAKE_NOW`: one row per resource.
    Report(Vec<Outcome>),
    /// `LIST_*`.
    Listing(Listing),
    /// `START_*`, `STOP_*`, `SCALE_EKS`: the capacity set.
    Changed {
        resource: ResourceId,
        capacity: Capacity,
        dry_run: bool,
    },
    /// `REGISTER_*`.
    Registered {
        registered: ResourceId,
        count: usize,
    },
    /// `UNREGISTER_*`.
    Unregistered {
        unregistered: ResourceId,
        count: usize,
    },
    /// `LIST_REGISTERED_SERVICES`.
    Registry {
        services: Vec<RegisteredRow>,
        config_error: Option<String>,
    },
    /// `HOLD`, `HOLD_RENEW`: the hold.
    Hold { hold: HoldRow },
    /// `HOLD_RELEASE`: the hold that ended.
    Released { released: HoldRow },
    /// `LIST_HOLDS`.
    Holds { holds: Vec<HoldRow> },
    /// `REPORT`: the savings report.
    Savings(Box<crate::core::savings::report::SavingsReport>),
    /// `HELP`: every text command and JSON type.
    Help {
        commands: Vec<HelpRow>,
        json_types: Vec<HelpRow>,
    },
    /// `USER_ACTIVITY` from a sender that could not be identified: counted
    /// as presence, and nothing more said (`{"activity": "counted"}`).
    Counted { activity: &'static str },
}

impl Reply {
    /// [`Reply::Counted`].
    pub fn counted() -> Reply {
        Reply::Counted {
            activity: "counted",
        }
    }
}

/// One entry of services.yaml, as `LIST_REGISTERED_SERVICES` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredRow {
    pub resource: ResourceId,
    pub description: String,
    pub profile: Option<String>,
    pub desired_size: Option<i32>,
    /// What may wake it: `auto`, `manual` or `on_connect` (services.yaml's
    /// `wake:`).
    pub wake: &'static str,
    /// Its idle timeout: its own `timeout_minutes`, else
    /// `activity_monitor.inactivity_timeout_minutes`.
    pub timeout_minutes: f64,
    /// The resource it starts after (services.yaml's `after:`), as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `services.yaml`, or `tag` for a resource found by its
    /// `cloudnap:managed=true` tag.
    pub source: &'static str,
}

/// One command of the protocol, as `HELP` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelpRow {
    pub form: String,
    pub does: String,
}

/// Why a command failed. Bad input changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The datagram or its fields are not a valid command.
    #[error("{0}")]
    Invalid(String),
    /// Refused before running: wrong token, rate limit, busy, too large.
    #[error("{0}")]
    Refused(String),
    /// An AWS call failed; `code` is AWS's error code when it sent one.
    #[error("{subject}: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Cloud {
        /// The resource or region the call was about.
        subject: String,
        code: Option<String>,
        message: String,
    },
    /// services.yaml could not be changed.
    #[error("{0}")]
    Registry(String),
    /// A hold could not be made or was not found.
    #[error("{0}")]
    Hold(String),
    /// The state file could not be read or written.
    #[error("{0}")]
    State(String),
}

impl CommandError {
    /// AWS's error code, if the failure came from AWS.
    pub fn code(&self) -> Option<&str> {
        match self {
            CommandError::Cloud { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_errors_keep_their_code() {
        let e = CommandError::Cloud {
            subject: "EC2 i-1 (us-east-1)".into(),
            code: Some("UnauthorizedOperation".into()),
            message: "not allowed".into(),
        };
        assert_eq!(e.code(), Some("UnauthorizedOperation"));
        assert_eq!(
            e.to_string(),
            "EC2 i-1 (us-east-1): UnauthorizedOperation: not allowed"
        );
    }
}

//! Pure logic: domain types, configuration validation and the sleep/wake
//! policy. Nothing here touches the OS, the network or AWS.

pub mod activity;
pub mod auth;
pub mod busy;
pub mod deadline;
pub mod history;
pub mod holds;
pub mod iam;
pub mod idle;
pub mod ini;
pub mod operation;
pub mod policy;
pub mod prices;
pub mod protocol;
pub mod registry;
pub mod registry_edit;
pub mod reply;
pub mod report;
pub mod resource;
pub mod retry;
pub mod savings;
pub mod settings;
pub mod settings_edit;
pub mod status;
pub mod team;

/// FNV-1a of `bytes`: a hash that is the same on every build and machine
/// (unlike std's), for names that must stay stable.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

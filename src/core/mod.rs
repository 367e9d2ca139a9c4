//! Pure logic: domain types, configuration validation and the sleep/wake
//! policy. Nothing here touches the OS, the network or AWS.

pub mod activity;
pub mod auth;
pub mod busy;
pub mod deadline;
pub mod history;
pub mod holds;
pub mod idle;
pub mod ini;
pub mod kinds;
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

//! The UDP protocol: command tables and parsing, replies, signed-command checks, the STATUS view.

pub mod auth;
pub mod commands;
pub mod reply;
pub mod status;

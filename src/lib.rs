//! cloudnap: puts a developer's AWS resources to sleep while they are away and
//! wakes them, exactly as they were, when they come back.
//!
//! Layout: [`core`] is pure logic (domain types, config validation, policy);
//! [`store`] owns files; [`cloud`] talks to AWS; [`manager`] carries out sleep
//! and wake; [`detect`] watches for activity; [`server`] answers UDP
//! commands; [`ui`] is the tray, dialog and notifications; [`app`] is the one
//! orchestrator that owns the state; [`memory`] gives memory back once idle;
//! `main.rs` is the command line and wiring.

pub mod app;
pub mod cloud;
pub mod core;
pub mod daemon;
pub mod detect;
pub mod kinds;
pub mod manager;
pub mod memory;
pub mod server;
pub mod store;
pub mod ui;

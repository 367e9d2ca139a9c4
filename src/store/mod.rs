//! Files: configuration paths and loading, the state file, atomic writes.

pub mod atomic;
pub mod config;
pub mod services;
pub mod state;

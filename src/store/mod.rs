//! Files: configuration paths and loading, the state file, atomic writes,
//! AWS credential files, logs and watching for edits.

pub mod atomic;
pub mod aws_files;
pub mod config;
pub mod services;
pub mod state;
pub mod watch;

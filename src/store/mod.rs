//! Files: configuration paths and loading, the sleep records (state.json), services.yaml (the registry), atomic writes,
//! the sleep history, the price cache, AWS credential files, the SSO token cache, logs and watching for edits.

pub mod atomic;
pub mod aws_files;
pub mod config;
pub mod history;
pub mod price_cache;
pub mod records;
pub mod registry;
pub mod sso_cache;
pub mod watch;

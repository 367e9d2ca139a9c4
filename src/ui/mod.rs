//! The desktop shell: tray icon and menu, the AWS credentials dialog, and
//! notifications. What they show is computed in [`view`], which is pure.

pub mod credentials;
pub mod notify;
pub mod shell;
pub mod tray;
pub mod view;

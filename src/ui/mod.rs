//! The desktop shell: tray icon and menu, the AWS credentials dialog (with
//! its SSO sign-in tab), and
//! notifications. What they show is computed in [`view`], which is pure.

pub mod credentials;
pub mod notify;
pub mod shell;
pub mod sso_tab;
pub mod tray;
pub mod view;

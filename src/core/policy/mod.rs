//! Decisions, pure and clock-driven: idle, holds, sleep/wake/refresh, busy veto, retries, team rules, the AWS-side deadline, the SSO sign-in's polling and when a sign-in is needed.

pub mod busy;
pub mod deadline;
pub mod decide;
pub mod holds;
pub mod idle;
pub mod retry;
pub mod sign_in;
pub mod team;

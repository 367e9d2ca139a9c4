//! Decisions, pure and clock-driven: idle, idle inhibitors, holds, sleep/wake/refresh, busy veto, retries, team rules, the AWS-side deadline.

pub mod busy;
pub mod deadline;
pub mod decide;
pub mod holds;
pub mod idle;
pub mod inhibitors;
pub mod retry;
pub mod team;

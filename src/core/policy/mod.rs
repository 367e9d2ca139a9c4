//! Decisions, pure and clock-driven: idle, idle inhibitors, holds, sleep/wake/refresh, busy veto, a sleep cut short by the return, retries, team rules, the AWS-side deadline, readiness, wake on connect, the pre-wake, the SSO sign-in's polling, each resource's wake policy and start order.

pub mod busy;
pub mod connect;
pub mod cut_short;
pub mod deadline;
pub mod decide;
pub mod holds;
pub mod idle;
pub mod inhibitors;
pub mod order;
pub mod prewake;
pub mod readiness;
pub mod retry;
pub mod sign_in;
pub mod team;

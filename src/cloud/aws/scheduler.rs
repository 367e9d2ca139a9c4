//! EventBridge Scheduler: the one-time schedules of the AWS-side deadline
//! (see [`crate::core::policy::deadline`]), in the schedule group
//! [`GROUP`], each calling one API through a universal target. The API has
//! no batch call: one call per schedule set or deleted.

use super::all_items;
use super::error::aws_err;
use crate::cloud::{CloudError, ErrorKind};
use crate::core::policy::deadline::{Schedule, GROUP};
use aws_sdk_scheduler::primitives::DateTime;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;

/// The `at(...)` expression of a one-time schedule at `at` (Unix seconds,
/// UTC).
fn at_expression(at: u64) -> String {
    let secs = i64::try_from(at).unwrap_or(i64::MAX);
    let text = DateTime::from_secs(secs)
        .fmt(aws_sdk_scheduler::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    format!("at({})", text.trim_end_matches('Z'))
}

/// `$request` (a create or an update of a schedule) with every field of
/// `$schedule`, run as `$role`.
macro_rules! filled {
    ($request:expr, $schedule:expr, $role:expr) => {
        $request
            .group_name(GROUP)
            .name(&$schedule.name)
            .schedule_expression(at_expression($schedule.at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(off()?)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target($schedule, $role)?)
            .description("cloudnap deadline: sleeps the resource unless cloudnap moves it on")
    };
}

/// Moves `schedule` or creates it, run as `role_arn`: one call to move it
/// (the frequent case), two to create it.
pub(super) async fn put(
    client: &Client,
    schedule: &Schedule,
    role_arn: &str,
) -> Result<(), CloudError> {
    let update = filled!(client.update_schedule(), schedule, role_arn);
    match update.send().await.map_err(aws_err) {
        Err(e) if e.kind == ErrorKind::NotFound => {
            let create = filled!(client.create_schedule(), schedule, role_arn);
            create.send().await.map_err(aws_err)?;
            Ok(())
        }
        done => done.map(|_| ()),
    }
}

/// The target: the universal target's ARN and input, run as `role_arn`,
/// tried for up to an hour.
fn target(schedule: &Schedule, role_arn: &str) -> Result<Target, CloudError> {
    Target::builder()
        .arn(schedule.call.arn())
        .role_arn(role_arn)
        .input(schedule.call.input.to_string())
        .retry_policy(
            RetryPolicy::builder()
                .maximum_event_age_in_seconds(3600)
                .maximum_retry_attempts(10)
                .build(),
        )
        .build()
        .map_err(|e| CloudError::new(ErrorKind::Other, e.to_string()))
}

/// No flexible window: the schedule fires at its time.
fn off() -> Result<FlexibleTimeWindow, CloudError> {
    FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| CloudError::new(ErrorKind::Other, e.to_string()))
}

/// Creates the schedule group unless it exists.
pub(super) async fn ensure_group(client: &Client) -> Result<(), CloudError> {
    match client.get_schedule_group().name(GROUP).send().await {
        Ok(_) => return Ok(()),
        Err(e) => match aws_err(e) {
            e if e.kind == ErrorKind::NotFound => {}
            e => return Err(e),
        },
    }
    match client.create_schedule_group().name(GROUP).send().await {
        Ok(_) => Ok(()),
        Err(e) => match aws_err(e) {
            e if e.code.as_deref() == Some("ConflictException") => Ok(()),
            e => Err(e),
        },
    }
}

/// Deletes the schedule `name`; one already gone is fine.
pub(super) async fn delete(client: &Client, name: &str) -> Result<(), CloudError> {
    match client
        .delete_schedule()
        .group_name(GROUP)
        .name(name)
        .send()
        .await
        .map_err(aws_err)
    {
        Err(e) if e.kind != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The names of the schedules in the group that start with `prefix` (none
/// when the group does not exist).
pub(super) async fn list(client: &Client, prefix: &str) -> Result<Vec<String>, CloudError> {
    match all_items!(client
        .list_schedules()
        .group_name(GROUP)
        .name_prefix(prefix))
    {
        Ok(found) => Ok(found
            .iter()
            .filter_map(|s| s.name().map(String::from))
            .collect()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_an_at_expression_in_utc() {
        assert_eq!(at_expression(0), "at(1970-01-01T00:00:00)");
        assert_eq!(at_expression(1_795_000_000), "at(2026-11-18T11:06:40)");
    }
}

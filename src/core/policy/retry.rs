//! Sleeps and wakes that failed for a passing reason are tried again: 1 s
//! after the first failure, the pause doubling up to 30 s, until 30 minutes
//! after the first failure. Pure: every function takes `now`.

use crate::core::model::history::Trigger;
pub use crate::core::model::operation::Operation;
use crate::core::model::resource::ResourceId;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The pause after the first failed try.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between tries.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);
/// No try is made later than this after the first failure.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30 * 60);

/// Why a cloud call failed for now: trying again later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No connection to AWS (refused, reset, no route).
    Network,
    /// The endpoint's name did not resolve.
    Dns,
    /// A connection or an attempt timed out.
    Timeout,
    /// AWS throttled the calls, beyond the SDK's own retries.
    Throttled,
    /// AWS answered with a server error (5xx), beyond the SDK's own retries.
    Unavailable,
    /// AWS took the call, but the resource did not show the capacity set yet.
    NotConfirmed,
}

impl Cause {
    /// The cause in a few words, as STATUS shows it.
    pub fn text(self) -> &'static str {
        match self {
            Cause::Network => "network unreachable",
            Cause::Dns => "DNS",
            Cause::Timeout => "timeout",
            Cause::Throttled => "throttled",
            Cause::Unavailable => "AWS unavailable",
            Cause::NotConfirmed => "not confirmed yet",
        }
    }

    /// Whether the network is the cause: its return can be watched for
    /// cheaply (a TCP connection), and the try made at once.
    pub fn is_network(self) -> bool {
        matches!(self, Cause::Network | Cause::Dns | Cause::Timeout)
    }
}

impl Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text())
    }
}

/// The pause after the `attempts`-th failed try in a row: 1, 2, 4, 8, 16,
/// then 30 s.
pub fn pause(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE)
}

/// A sleep or wake waiting to be tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub operation: Operation,
    /// What caused the first try (logged with the one that succeeds).
    pub trigger: Trigger,
    /// Tries made so far, all failed.
    pub attempts: u32,
    /// Why the last try failed.
    pub cause: Cause,
    /// What the last try did not get done.
    pub resources: Vec<ResourceId>,
    /// When the first try failed.
    pub since: Instant,
    /// When to try again.
    pub at: Instant,
}

impl Retry {
    /// After a try of `operation` at `now` that left `resources` undone for
    /// a passing `cause`: the next try, counted on from `previous` when that
    /// was a retry of the same operation. `Err` (with the count so far) when
    /// 30 minutes have passed since the first failure: no more tries.
    pub fn after_failure(
        previous: Option<&Retry>,
        operation: Operation,
        trigger: Trigger,
        cause: Cause,
        resources: Vec<ResourceId>,
        now: Instant,
    ) -> Result<Retry, Retry> {
        let (since, attempts, trigger) = match previous {
            Some(p) if p.operation == operation => (p.since, p.attempts + 1, p.trigger),
            _ => (now, 1, trigger),
        };
        let retry = Retry {
            operation,
            trigger,
            attempts,
            cause,
            resources,
            since,
            at: now + pause(attempts),
        };
        if now.saturating_duration_since(since) >= GIVE_UP_AFTER
            || retry.at.saturating_duration_since(since) > GIVE_UP_AFTER
        {
            return Err(retry);
        }
        Ok(retry)
    }

    /// When to look at the network (`Some` when it is the cause): at most
    /// `every` from `now`, and never after the try itself.
    pub fn probe_at(&self, now: Instant, every: Duration) -> Option<Instant> {
        (self.cause.is_network() && now + every < self.at).then(|| now + every)
    }

    /// "waking: retrying (network unreachable, attempt 4)".
    pub fn text(&self) -> String {
        format!(
            "{}: retrying ({}, attempt {})",
            self.operation.name(),
            self.cause.text(),
            self.attempts
        )
    }

    /// The retry as STATUS shows it at `now`.
    pub fn row(&self, now: Instant) -> RetryRow {
        RetryRow {
            operation: self.operation,
            attempts: self.attempts,
            cause: self.cause,
            next_in_seconds: self.at.saturating_duration_since(now).as_secs_f64(),
            failing_for_seconds: now.saturating_duration_since(self.since).as_secs_f64(),
            text: self.text(),
        }
    }
}

/// A sleep or wake that failed for a passing reason, waiting to be tried
/// again (see [`crate::core::policy::retry`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryRow {
    pub operation: Operation,
    /// Tries made so far, all failed.
    pub attempts: u32,
    /// Why the last one failed: "network unreachable".
    pub cause: Cause,
    pub next_in_seconds: f64,
    /// Since the first failure.
    pub failing_for_seconds: f64,
    /// "waking: retrying (network unreachable, attempt 4)".
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;

    fn after(previous: Option<&Retry>, op: Operation, now: Instant) -> Result<Retry, Retry> {
        let id = ResourceId::new(Kind::Ecs, ["c", "s"], "us-east-1");
        Retry::after_failure(previous, op, Trigger::Idle, Cause::Network, vec![id], now)
    }

    #[test]
    fn pauses_double_from_one_second_to_thirty() {
        let secs: Vec<u64> = (1..=8).map(|n| pause(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(pause(0), FIRST_PAUSE);
        assert_eq!(pause(u32::MAX), MAX_PAUSE);
    }

    #[test]
    fn each_failure_schedules_the_next_try_until_thirty_minutes_have_passed() {
        // A fake clock: each try fails the moment it is made.
        let t0 = Instant::now();
        let mut now = t0;
        let mut retry = after(None, Operation::Waking, now).unwrap();
        assert_eq!((retry.attempts, retry.since), (1, t0));
        assert_eq!(retry.at - now, Duration::from_secs(1));
        assert_eq!(
            retry.text(),
            "waking: retrying (network unreachable, attempt 1)"
        );
        let mut tries = vec![0u64];
        let gave_up = loop {
            now = retry.at;
            tries.push((now - t0).as_secs());
            match after(Some(&retry), Operation::Waking, now) {
                Ok(next) => retry = next,
                Err(last) => break last,
            }
        };
        assert_eq!(&tries[..8], [0, 1, 3, 7, 15, 31, 61, 91]);
        // Every try is within 30 minutes of the first failure, the last
        // one less than a pause before its end.
        let last = *tries.last().unwrap();
        assert!(last <= 30 * 60 && last > 30 * 60 - 30, "{tries:?}");
        assert_eq!(gave_up.attempts as usize, tries.len());
        assert_eq!(gave_up.since, t0);
        assert_eq!(
            retry.row(retry.at - Duration::from_secs(3)).next_in_seconds,
            3.0
        );
    }

    #[test]
    fn another_operation_starts_counting_again() {
        let t0 = Instant::now();
        let wake = after(None, Operation::Waking, t0).unwrap();
        let wake = after(Some(&wake), Operation::Waking, wake.at).unwrap();
        assert_eq!(wake.attempts, 2);
        let later = wake.at + Duration::from_secs(40 * 60);
        let sleep = after(Some(&wake), Operation::Sleeping, later).unwrap();
        assert_eq!((sleep.attempts, sleep.since), (1, later));
        assert_eq!(
            sleep.text(),
            "sleeping: retrying (network unreachable, attempt 1)"
        );
        // And the same operation late: it gives up.
        assert!(after(Some(&wake), Operation::Waking, later).is_err());
    }

    #[test]
    fn the_network_is_watched_for_only_when_it_is_the_cause() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut r = after(None, Operation::Waking, t0).unwrap();
        r.at = t0 + Duration::from_secs(8);
        assert_eq!(r.probe_at(t0, second), Some(t0 + second));
        assert_eq!(
            r.probe_at(t0 + Duration::from_secs(7), second),
            None,
            "the try comes first"
        );
        for cause in [Cause::Throttled, Cause::Unavailable, Cause::NotConfirmed] {
            r.cause = cause;
            assert_eq!(r.probe_at(t0, second), None, "{cause:?}");
        }
        r.cause = Cause::Dns;
        assert!(r.probe_at(t0, second).is_some());
    }
}

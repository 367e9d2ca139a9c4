//! Sleeps and wakes that failed are tried again. A sleep is tried again only
//! for a passing reason (the network, throttling, ...), 1 s after the first
//! failure, the pause doubling up to 30 s, until 30 minutes after the first
//! failure. A wake is never abandoned while the user is present, whatever
//! failed (expired credentials, access denied, a full disk, an AWS error):
//! only a resource that no longer exists, or that the user started or
//! stopped by hand, leaves it, and a user who is away again ends it (the
//! sleep takes its place). Pure: every function takes `now`.

use crate::core::model::history::Trigger;
use crate::core::model::operation::Operation;
use crate::core::model::resource::ResourceId;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The pause after the first failed try.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between tries.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);
/// The longest pause while credentials fail: a try then fails on this
/// machine, before any AWS call, and a sign-in should show within seconds.
pub const CREDENTIALS_MAX_PAUSE: Duration = Duration::from_secs(5);
/// No sleep is tried later than this after its first failure.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30 * 60);
/// Something that may have fixed the cause (an activity, an AWS file
/// edited) makes the next try come at once, but never sooner than this
/// after the last one.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// Why a sleep or wake of a resource failed, as the retry policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// The credentials have expired (an SSO session that ended, a
    /// credential process that says so).
    CredentialsExpired,
    /// No credentials, or credentials AWS does not accept.
    Credentials,
    /// The credentials are not allowed to do this.
    AccessDenied,
    /// The state file cannot be written: the disk is full.
    DiskFull,
    /// The state file cannot be written for another reason.
    StateDir,
    /// Any other AWS error.
    Aws,
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
            Cause::CredentialsExpired => "credentials expired",
            Cause::Credentials => "credentials not accepted",
            Cause::AccessDenied => "access denied",
            Cause::DiskFull => "cannot write the state dir (disk full)",
            Cause::StateDir => "cannot write the state dir",
            Cause::Aws => "AWS error",
        }
    }

    /// Whether the network is the cause: its return can be watched for
    /// cheaply (a TCP connection), and the try made at once.
    pub fn is_network(self) -> bool {
        matches!(self, Cause::Network | Cause::Dns | Cause::Timeout)
    }

    /// Whether the cause passes by itself (the network, throttling, a
    /// server error, a slow transition): only such a sleep is tried again.
    pub fn passes(self) -> bool {
        self.is_network()
            || matches!(
                self,
                Cause::Throttled | Cause::Unavailable | Cause::NotConfirmed
            )
    }

    /// Whether the state file is the cause: whether it can be written is
    /// watched for (by writing it), and the records written at once.
    pub fn is_state(self) -> bool {
        matches!(self, Cause::DiskFull | Cause::StateDir)
    }

    /// Whether the user must do something: the tray and the notification
    /// say what (see [`advice`]).
    pub fn needs_user(self) -> bool {
        !self.passes() && self != Cause::Aws
    }

    /// The longest pause between tries for this cause.
    fn max_pause(self) -> Duration {
        match self {
            Cause::CredentialsExpired | Cause::Credentials => CREDENTIALS_MAX_PAUSE,
            _ => MAX_PAUSE,
        }
    }

    /// Which cause a retry is named by when resources fail for several:
    /// what the user must act on first, then the network (watched for).
    fn rank(self) -> u8 {
        match self {
            Cause::CredentialsExpired => 0,
            Cause::Credentials => 1,
            Cause::AccessDenied => 2,
            Cause::DiskFull => 3,
            Cause::StateDir => 4,
            c if c.is_network() => 5,
            Cause::Aws => 6,
            _ => 7,
        }
    }
}

impl Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text())
    }
}

/// Whether a failed try of `operation` for `cause` is tried again: a wake
/// always (while the user is present; see [`Retry::wanted`]), a sleep only
/// for a passing cause. A resource that no longer exists is no failure
/// with a cause: its record is dropped, and the attempt ends for it.
pub fn tried_again(operation: Operation, cause: Cause) -> bool {
    operation == Operation::Waking || cause.passes()
}

/// "2 resources", "1 resource".
fn count(n: usize) -> String {
    if n == 1 {
        "1 resource".into()
    } else {
        format!("{n} resources")
    }
}

/// What the user reads, and can act on, when `n` resources of `profile`
/// (`None`: the default credentials) do not wake for `cause`: "credentials
/// expired for profile work: sign in to wake 2 resources". `None` for a
/// cause that passes by itself (the retry's text says it all).
pub fn advice(cause: Cause, profile: Option<&str>, n: usize) -> Option<String> {
    let of = profile.map_or(String::new(), |p| format!(" for profile {p}"));
    let n = count(n);
    Some(match cause {
        Cause::CredentialsExpired => format!("credentials expired{of}: sign in to wake {n}"),
        Cause::Credentials => {
            format!("credentials not accepted{of}: sign in or fix them to wake {n}")
        }
        Cause::AccessDenied => format!("access denied{of}: get permission to wake {n}"),
        Cause::DiskFull => {
            "cannot write the state dir (disk full): free space to finish waking".to_string()
        }
        Cause::StateDir => {
            "cannot write the state dir: make it writable to finish waking".to_string()
        }
        Cause::Aws => format!("AWS error waking {n}: tried again until it works"),
        _ => return None,
    })
}

/// One resource a try did not get done, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub resource: ResourceId,
    pub cause: Cause,
    /// The profile its calls use (`None`: the default credentials).
    pub profile: Option<String>,
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
    /// Why the last try failed: the cause the retry is named by (see
    /// [`Cause::rank`]).
    pub cause: Cause,
    /// What the last try did not get done, and why.
    pub pending: Vec<Pending>,
    /// When the first try failed.
    pub since: Instant,
    /// When the last try failed.
    pub last: Instant,
    /// When to try again.
    pub at: Instant,
}

impl Retry {
    /// After a try of `operation` at `now` that left `pending` undone (each
    /// for a cause [`tried_again`] accepts; not empty): the next try,
    /// counted on from `previous` when that was a retry of the same
    /// operation. `Err` (with the count so far) when no more tries come: a
    /// sleep 30 minutes after its first failure. A wake is tried as long as
    /// the user is present.
    pub fn after_failure(
        previous: Option<&Retry>,
        operation: Operation,
        trigger: Trigger,
        pending: Vec<Pending>,
        now: Instant,
    ) -> Result<Retry, Retry> {
        let (since, attempts, trigger) = match previous {
            Some(p) if p.operation == operation => (p.since, p.attempts + 1, p.trigger),
            _ => (now, 1, trigger),
        };
        let cause = (pending.iter().map(|p| p.cause))
            .min_by_key(|c| c.rank())
            .unwrap_or(Cause::Aws);
        let retry = Retry {
            operation,
            trigger,
            attempts,
            cause,
            pending,
            since,
            last: now,
            at: now + pause(attempts).min(cause.max_pause()),
        };
        let late = now.saturating_duration_since(since) >= GIVE_UP_AFTER
            || retry.at.saturating_duration_since(since) > GIVE_UP_AFTER;
        if operation == Operation::Sleeping && late {
            return Err(retry);
        }
        Ok(retry)
    }

    /// Whether the user's state still wants this retry: a wake while the
    /// user is present, a sleep while away. Otherwise the sleep or wake
    /// that followed has taken its place.
    pub fn wanted(&self, away: bool) -> bool {
        away == (self.operation == Operation::Sleeping)
    }

    /// Something at `now` may have fixed the cause (an activity, an AWS
    /// file edited, a sign-in): the next try comes at once, though never
    /// sooner than [`MIN_GAP`] after the last. Returns whether it moved.
    pub fn hurry(&mut self, now: Instant) -> bool {
        let at = now.max(self.last + MIN_GAP);
        let moved = at < self.at;
        self.at = self.at.min(at);
        moved
    }

    /// The resource `id` was started or stopped by hand: the retry no
    /// longer covers it. Returns whether anything is left to try.
    pub fn let_go(&mut self, id: &ResourceId) -> bool {
        self.pending.retain(|p| &p.resource != id);
        !self.pending.is_empty()
    }

    /// Whether `id` is one of what the retry waits for.
    pub fn covers(&self, id: &ResourceId) -> bool {
        self.pending.iter().any(|p| &p.resource == id)
    }

    /// When to look at what the cause is (`Some` for the network, probed
    /// with a TCP connection, and the state dir, probed by writing the
    /// records): at most `every` from `now`, and never after the try.
    pub fn probe_at(&self, now: Instant, every: Duration) -> Option<Instant> {
        let probed = self
            .pending
            .iter()
            .any(|p| p.cause.is_network() || p.cause.is_state());
        (probed && now + every < self.at).then(|| now + every)
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

    /// What the user can do, for the headline cause: "credentials expired
    /// for profile work: sign in to wake 2 resources" (see [`advice`]).
    pub fn advice(&self) -> Option<String> {
        let first = self.pending.iter().find(|p| p.cause == self.cause)?;
        let n = (self.pending.iter())
            .filter(|p| p.cause == first.cause && p.profile == first.profile)
            .count();
        advice(first.cause, first.profile.as_deref(), n)
    }

    /// What `id` waits for: "waking: retrying (credentials expired for
    /// profile work, attempt 3)".
    pub fn text_for(&self, id: &ResourceId) -> Option<String> {
        let p = self.pending.iter().find(|p| &p.resource == id)?;
        let of = match (&p.profile, p.cause) {
            (
                Some(profile),
                Cause::CredentialsExpired | Cause::Credentials | Cause::AccessDenied,
            ) => {
                format!(" for profile {profile}")
            }
            _ => String::new(),
        };
        Some(format!(
            "{}: retrying ({}{of}, attempt {})",
            self.operation.name(),
            p.cause.text(),
            self.attempts
        ))
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
            advice: self.advice(),
            resources: (self.pending.iter())
                .map(|p| PendingRow {
                    resource: p.resource.clone(),
                    cause: p.cause,
                    profile: p.profile.clone(),
                })
                .collect(),
        }
    }
}

/// A sleep or wake that failed, waiting to be tried again (see
/// [`self`]).
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
    /// What the user can do about it, when it does not pass by itself:
    /// "credentials expired for profile work: sign in to wake 2 resources".
    pub advice: Option<String>,
    /// Each resource the retry waits for, and why.
    pub resources: Vec<PendingRow>,
}

/// A resource a retry waits for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingRow {
    pub resource: ResourceId,
    pub cause: Cause,
    /// The profile its calls use (`null`: the default credentials).
    pub profile: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;

    fn svc(name: &str) -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", name], "us-east-1")
    }

    fn pending(cause: Cause, profile: Option<&str>, names: &[&str]) -> Vec<Pending> {
        (names.iter())
            .map(|n| Pending {
                resource: svc(n),
                cause,
                profile: profile.map(String::from),
            })
            .collect()
    }

    fn failed(
        previous: Option<&Retry>,
        op: Operation,
        cause: Cause,
        now: Instant,
    ) -> Result<Retry, Retry> {
        Retry::after_failure(
            previous,
            op,
            Trigger::Idle,
            pending(cause, None, &["s"]),
            now,
        )
    }

    fn after(previous: Option<&Retry>, op: Operation, now: Instant) -> Result<Retry, Retry> {
        failed(previous, op, Cause::Network, now)
    }

    const ALL: [Cause; 12] = [
        Cause::Network,
        Cause::Dns,
        Cause::Timeout,
        Cause::Throttled,
        Cause::Unavailable,
        Cause::NotConfirmed,
        Cause::CredentialsExpired,
        Cause::Credentials,
        Cause::AccessDenied,
        Cause::DiskFull,
        Cause::StateDir,
        Cause::Aws,
    ];

    #[test]
    fn pauses_double_from_one_second_to_thirty() {
        let secs: Vec<u64> = (1..=8).map(|n| pause(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(pause(0), FIRST_PAUSE);
        assert_eq!(pause(u32::MAX), MAX_PAUSE);
    }

    #[test]
    fn a_wake_is_tried_again_whatever_failed_a_sleep_only_for_a_passing_cause() {
        for cause in ALL {
            assert!(tried_again(Operation::Waking, cause), "{cause:?}");
        }
        let passing: Vec<Cause> = ALL
            .into_iter()
            .filter(|c| tried_again(Operation::Sleeping, *c))
            .collect();
        assert_eq!(
            passing,
            [
                Cause::Network,
                Cause::Dns,
                Cause::Timeout,
                Cause::Throttled,
                Cause::Unavailable,
                Cause::NotConfirmed
            ]
        );
    }

    #[test]
    fn each_failed_sleep_schedules_the_next_try_until_thirty_minutes_have_passed() {
        // A fake clock: each try fails the moment it is made.
        let t0 = Instant::now();
        let mut now = t0;
        let mut retry = after(None, Operation::Sleeping, now).unwrap();
        assert_eq!((retry.attempts, retry.since), (1, t0));
        assert_eq!(retry.at - now, Duration::from_secs(1));
        assert_eq!(
            retry.text(),
            "sleeping: retrying (network unreachable, attempt 1)"
        );
        let mut tries = vec![0u64];
        let gave_up = loop {
            now = retry.at;
            tries.push((now - t0).as_secs());
            match after(Some(&retry), Operation::Sleeping, now) {
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
    fn a_wake_is_never_abandoned_while_the_user_is_present() {
        // A fake clock over a working day: whatever the cause, every try
        // schedules the next one, credentials within 5 s, the rest within
        // 30 s.
        for cause in ALL {
            let t0 = Instant::now();
            let mut retry = failed(None, Operation::Waking, cause, t0).unwrap();
            let mut longest = Duration::ZERO;
            while retry.at - t0 < Duration::from_secs(8 * 3600) {
                let now = retry.at;
                let next = failed(Some(&retry), Operation::Waking, cause, now)
                    .unwrap_or_else(|r| panic!("{cause:?} given up after {} tries", r.attempts));
                longest = longest.max(next.at - now);
                retry = next;
            }
            assert!(retry.wanted(false), "{cause:?}");
            assert_eq!(retry.cause, cause);
            let cap = match cause {
                Cause::CredentialsExpired | Cause::Credentials => 5,
                _ => 30,
            };
            assert_eq!(longest, Duration::from_secs(cap), "{cause:?}");
        }
    }

    #[test]
    fn a_wake_ends_when_the_user_is_away_again_and_a_sleep_when_back() {
        let t0 = Instant::now();
        let wake = failed(None, Operation::Waking, Cause::AccessDenied, t0).unwrap();
        assert!(wake.wanted(false));
        assert!(!wake.wanted(true), "away again: the sleep takes its place");
        let sleep = after(None, Operation::Sleeping, t0).unwrap();
        assert!(sleep.wanted(true));
        assert!(!sleep.wanted(false));
    }

    #[test]
    fn only_what_the_user_set_by_hand_leaves_the_retry() {
        let t0 = Instant::now();
        let mut r = Retry::after_failure(
            None,
            Operation::Waking,
            Trigger::Idle,
            pending(Cause::CredentialsExpired, Some("work"), &["a", "b"]),
            t0,
        )
        .unwrap();
        assert!(r.covers(&svc("a")) && r.covers(&svc("b")));
        assert!(r.let_go(&svc("a")), "b still waits");
        assert!(!r.covers(&svc("a")));
        assert!(!r.let_go(&svc("b")), "nothing left: the attempt ends");
    }

    #[test]
    fn what_may_have_fixed_it_brings_the_next_try_forward_but_not_before_a_second() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut r = failed(None, Operation::Waking, Cause::Aws, t0).unwrap();
        for _ in 0..5 {
            r = failed(Some(&r), Operation::Waking, Cause::Aws, r.at).unwrap();
        }
        let last = r.last;
        assert_eq!(r.at - last, Duration::from_secs(30));
        // An activity right after the failed try: a second after it.
        assert!(r.hurry(last + Duration::from_millis(200)));
        assert_eq!(r.at, last + second);
        // Later ones do not push it back.
        assert!(!r.hurry(last + Duration::from_millis(900)));
        assert_eq!(r.at, last + second);
        let mut r = failed(Some(&r), Operation::Waking, Cause::Aws, r.at).unwrap();
        let now = r.last + Duration::from_secs(12);
        assert!(r.hurry(now));
        assert_eq!(r.at, now, "at once");
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
        // The same operation late: a sleep gives up, a wake does not.
        assert!(after(Some(&sleep), Operation::Sleeping, later + GIVE_UP_AFTER).is_err());
        assert!(after(Some(&wake), Operation::Waking, later).is_ok());
    }

    #[test]
    fn the_network_and_the_state_dir_are_watched_for_the_rest_waited_out() {
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
        for cause in ALL {
            r.pending[0].cause = cause;
            let probed = r.probe_at(t0, second).is_some();
            assert_eq!(probed, cause.is_network() || cause.is_state(), "{cause:?}");
        }
    }

    #[test]
    fn the_user_is_told_what_to_do_named_by_what_needs_them_first() {
        let t0 = Instant::now();
        let mut all = pending(Cause::Network, None, &["n"]);
        all.extend(pending(
            Cause::CredentialsExpired,
            Some("work"),
            &["a", "b"],
        ));
        all.extend(pending(Cause::CredentialsExpired, Some("other"), &["c"]));
        let r = Retry::after_failure(None, Operation::Waking, Trigger::Idle, all, t0).unwrap();
        assert_eq!(r.cause, Cause::CredentialsExpired);
        assert_eq!(r.at - t0, Duration::from_secs(1));
        assert_eq!(
            r.advice().as_deref(),
            Some("credentials expired for profile work: sign in to wake 2 resources")
        );
        assert_eq!(
            r.text_for(&svc("c")).as_deref(),
            Some("waking: retrying (credentials expired for profile other, attempt 1)")
        );
        assert_eq!(
            r.text_for(&svc("n")).as_deref(),
            Some("waking: retrying (network unreachable, attempt 1)")
        );
        assert_eq!(r.text_for(&svc("x")), None);
        let row = r.row(t0);
        assert_eq!(row.resources.len(), 4);
        assert_eq!(row.advice, r.advice());
        assert_eq!(
            advice(Cause::DiskFull, None, 2).as_deref(),
            Some("cannot write the state dir (disk full): free space to finish waking")
        );
        assert_eq!(
            advice(Cause::AccessDenied, None, 1).as_deref(),
            Some("access denied: get permission to wake 1 resource")
        );
        assert_eq!(advice(Cause::Network, None, 2), None, "passes by itself");
        assert!(Cause::DiskFull.needs_user() && !Cause::Aws.needs_user());
    }
}

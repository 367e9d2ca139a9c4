//! The SSO sign-in (OAuth device authorization): when to poll `CreateToken`
//! again, when the sign-in has failed for good, and when a sign-in will be
//! needed to wake what sleeps. Pure: every function takes `now`.

use chrono::NaiveDateTime;
use std::time::{Duration, Instant};

/// What a `SlowDownException` adds to the polling interval (RFC 8628).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The interval when the service names none (RFC 8628's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How one `CreateToken` poll failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// `AuthorizationPendingException`: the user has not approved yet.
    Pending,
    /// `SlowDownException`: polling too fast.
    SlowDown,
    /// `ExpiredTokenException`: the device code expired.
    Expired,
    /// `AccessDeniedException`: the user denied the request.
    Denied,
    /// Any other error, in words.
    Other(String),
}

/// Why a sign-in ended without a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("the sign-in code expired before it was approved: sign in again")]
    Expired,
    #[error("the sign-in was denied in the browser")]
    Denied,
    #[error("sign-in failed: {0}")]
    Failed(String),
}

/// The polling interval the service asked for (`interval` seconds; 0 or
/// less: [`DEFAULT_INTERVAL`]).
pub fn first_interval(interval: i32) -> Duration {
    match u64::try_from(interval) {
        Ok(s) if s > 0 => Duration::from_secs(s),
        _ => DEFAULT_INTERVAL,
    }
}

/// After a poll failed with `error` at `now`: the interval to wait before
/// the next poll (the same while pending, 5 s longer after a slow-down), or
/// why the sign-in ends (the code expired, was denied, any other error, or
/// the next poll would come after the code's `deadline`).
pub fn after_poll(
    error: &PollError,
    interval: Duration,
    now: Instant,
    deadline: Instant,
) -> Result<Duration, SignInError> {
    let next = match error {
        PollError::Pending => interval,
        PollError::SlowDown => interval + SLOW_DOWN_STEP,
        PollError::Expired => return Err(SignInError::Expired),
        PollError::Denied => return Err(SignInError::Denied),
        PollError::Other(e) => return Err(SignInError::Failed(e.clone())),
    };
    if now + next >= deadline {
        return Err(SignInError::Expired);
    }
    Ok(next)
}

/// What the tray and STATUS say about the SSO session of `profile`, which
/// resources asleep need to wake, ending at `expires` (local time), at
/// local time `now`: "sign-in needed by 17:40 to wake (profile work)", or
/// once it has ended "SSO session of profile work ended at 17:40: sign in
/// to wake".
pub fn sign_in_line(profile: &str, expires: NaiveDateTime, now: NaiveDateTime) -> String {
    let when = if expires.date() == now.date() {
        expires.format("%H:%M").to_string()
    } else if expires.date() == now.date() + chrono::Days::new(1) {
        expires.format("tomorrow %H:%M").to_string()
    } else {
        expires.format("%Y-%m-%d %H:%M").to_string()
    };
    if expires > now {
        format!("sign-in needed by {when} to wake (profile {profile})")
    } else {
        format!("SSO session of profile {profile} ended at {when}: sign in to wake")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keeps_the_interval_and_slow_down_adds_five_seconds() {
        let t = Instant::now();
        let end = t + Duration::from_secs(600);
        let i = first_interval(1);
        assert_eq!(i, Duration::from_secs(1));
        assert_eq!(after_poll(&PollError::Pending, i, t, end), Ok(i));
        let slower = after_poll(&PollError::SlowDown, i, t, end).unwrap();
        assert_eq!(slower, Duration::from_secs(6));
        let slowest = after_poll(&PollError::SlowDown, slower, t, end).unwrap();
        assert_eq!(slowest, Duration::from_secs(11));
        assert_eq!(first_interval(0), DEFAULT_INTERVAL);
        assert_eq!(first_interval(-3), DEFAULT_INTERVAL);
    }

    #[test]
    fn expired_denied_and_other_errors_end_the_sign_in() {
        let t = Instant::now();
        let end = t + Duration::from_secs(600);
        let i = Duration::from_secs(5);
        assert_eq!(
            after_poll(&PollError::Expired, i, t, end),
            Err(SignInError::Expired)
        );
        assert_eq!(
            after_poll(&PollError::Denied, i, t, end),
            Err(SignInError::Denied)
        );
        assert_eq!(
            after_poll(&PollError::Other("boom".into()), i, t, end),
            Err(SignInError::Failed("boom".into()))
        );
    }

    #[test]
    fn a_poll_after_the_code_expires_is_not_made() {
        let t = Instant::now();
        let i = Duration::from_secs(5);
        let end = t + Duration::from_secs(8);
        assert_eq!(after_poll(&PollError::Pending, i, t, end), Ok(i));
        let later = t + Duration::from_secs(4);
        assert_eq!(
            after_poll(&PollError::Pending, i, later, end),
            Err(SignInError::Expired)
        );
        assert_eq!(
            SignInError::Expired.to_string(),
            "the sign-in code expired before it was approved: sign in again"
        );
    }

    #[test]
    fn the_line_says_by_when_to_sign_in_or_that_the_session_ended() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let now = at("2026-12-06 09:00");
        assert_eq!(
            sign_in_line("work", at("2026-12-06 17:40"), now),
            "sign-in needed by 17:40 to wake (profile work)"
        );
        assert_eq!(
            sign_in_line("work", at("2026-12-07 01:05"), now),
            "sign-in needed by tomorrow 01:05 to wake (profile work)"
        );
        assert_eq!(
            sign_in_line("work", at("2026-12-09 08:00"), now),
            "sign-in needed by 2026-12-09 08:00 to wake (profile work)"
        );
        assert_eq!(
            sign_in_line("work", at("2026-12-06 08:30"), now),
            "SSO session of profile work ended at 08:30: sign in to wake"
        );
    }
}

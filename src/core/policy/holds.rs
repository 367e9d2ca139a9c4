//! Holds: "keep these resources awake" for a time, or for as long as a
//! `cloudnap hold` process renews its lease. A hold covers every resource or
//! only one; while a hold on everything is active nothing sleeps by itself,
//! and a sleep skips the resources a hold covers.
//!
//! A hold ends at its `until` (if it has one), when it is released, or when
//! its lease runs out without being renewed (a crashed client): every hold
//! with a lease expires at most [`MAX_LEASE`] after its last renewal.
//!
//! Pure: every method takes `now`.

use crate::core::model::outcome::{Action, Outcome};
use crate::core::model::resource::ResourceId;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The longest lease a client may ask for: a crashed `cloudnap hold`
/// releases its hold at most this long after its last renewal.
pub const MAX_LEASE: Duration = Duration::from_secs(120);

/// The reason given to the hold `PAUSE` makes; a new `PAUSE` replaces it.
pub const PAUSE_REASON: &str = "PAUSE";

/// What a hold keeps awake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every registered resource: nothing sleeps by itself.
    All,
    /// This resource only.
    Only(ResourceId),
}

/// One hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub id: u64,
    pub reason: String,
    pub scope: Scope,
    /// Its end, if it has one (else it lasts as long as its lease is renewed).
    pub until: Option<Instant>,
    /// Renewed leases last this long; `None`: no lease (ends at `until`).
    pub lease: Option<Duration>,
    /// When it ends unless renewed: `until`, or earlier with a lease.
    pub expires: Instant,
}

/// A hold as `STATUS`, `LIST_HOLDS` and `HOLD` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldRow {
    pub id: u64,
    pub reason: String,
    /// The one resource it keeps awake (`null`: every resource).
    pub only: Option<ResourceId>,
    /// Its lease, renewed by a `cloudnap hold` process (`null`: none).
    pub lease_seconds: Option<f64>,
    /// Seconds until it ends unless renewed.
    pub expires_in_seconds: f64,
    /// Seconds until its end (`null`: as long as it is renewed).
    pub ends_in_seconds: Option<f64>,
}

impl Hold {
    /// The hold as replies show it at `now`.
    pub fn row(&self, now: Instant) -> HoldRow {
        HoldRow {
            id: self.id,
            reason: self.reason.clone(),
            only: match &self.scope {
                Scope::All => None,
                Scope::Only(id) => Some(id.clone()),
            },
            lease_seconds: self.lease.map(|l| l.as_secs_f64()),
            expires_in_seconds: self.expires.saturating_duration_since(now).as_secs_f64(),
            ends_in_seconds: self
                .until
                .map(|u| u.saturating_duration_since(now).as_secs_f64()),
        }
    }

    fn covers(&self, id: &ResourceId) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Only(only) => only == id,
        }
    }
}

/// Why a hold could not be made or found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error("a hold needs a duration or a lease (it would never end)")]
    Endless,
    #[error("no hold {0} (it ended or was released)")]
    Unknown(u64),
}

/// The active holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holds {
    holds: Vec<Hold>,
    next_id: u64,
}

impl Holds {
    /// Drops the holds that ended by `now`.
    fn prune(&mut self, now: Instant) {
        self.holds.retain(|h| h.expires > now);
    }

    /// Adds a hold lasting `duration` (if given), with a lease of `lease`
    /// (capped at [`MAX_LEASE`]); returns it.
    pub fn add(
        &mut self,
        now: Instant,
        reason: String,
        scope: Scope,
        duration: Option<Duration>,
        lease: Option<Duration>,
    ) -> Result<Hold, HoldError> {
        self.prune(now);
        let until = duration.map(|d| now + d);
        let lease = lease.map(|l| l.clamp(Duration::from_secs(1), MAX_LEASE));
        let expires = match (until, lease) {
            (Some(u), Some(l)) => u.min(now + l),
            (Some(u), None) => u,
            (None, Some(l)) => now + l,
            (None, None) => return Err(HoldError::Endless),
        };
        Ok(self.push(reason, scope, until, lease, expires))
    }

    fn push(
        &mut self,
        reason: String,
        scope: Scope,
        until: Option<Instant>,
        lease: Option<Duration>,
        expires: Instant,
    ) -> Hold {
        self.next_id += 1;
        let hold = Hold {
            id: self.next_id,
            reason,
            scope,
            until,
            lease,
            expires,
        };
        self.holds.push(hold.clone());
        hold
    }

    /// `PAUSE`: a hold on everything until `until`, replacing an earlier
    /// `PAUSE` (a new pause sets the time, as before holds existed).
    pub fn pause(&mut self, now: Instant, duration: Duration) -> Hold {
        self.prune(now);
        self.holds.retain(|h| h.reason != PAUSE_REASON);
        let until = now + duration;
        self.push(PAUSE_REASON.into(), Scope::All, Some(until), None, until)
    }

    /// Renews a hold's lease from `now` (never past its `until`).
    pub fn renew(&mut self, now: Instant, id: u64) -> Result<Hold, HoldError> {
        self.prune(now);
        let hold = self
            .holds
            .iter_mut()
            .find(|h| h.id == id)
            .ok_or(HoldError::Unknown(id))?;
        if let Some(lease) = hold.lease {
            let renewed = now + lease;
            hold.expires = hold.until.map_or(renewed, |u| u.min(renewed));
        }
        Ok(hold.clone())
    }

    /// Ends a hold.
    pub fn release(&mut self, now: Instant, id: u64) -> Result<Hold, HoldError> {
        self.prune(now);
        let at = self
            .holds
            .iter()
            .position(|h| h.id == id)
            .ok_or(HoldError::Unknown(id))?;
        Ok(self.holds.remove(at))
    }

    /// Ends every hold; returns how many there were.
    pub fn clear(&mut self, now: Instant) -> usize {
        self.prune(now);
        std::mem::take(&mut self.holds).len()
    }

    /// The holds active at `now`, oldest first.
    pub fn active(&self, now: Instant) -> Vec<Hold> {
        self.holds
            .iter()
            .filter(|h| h.expires > now)
            .cloned()
            .collect()
    }

    /// Until when nothing sleeps by itself: the latest expiry of the holds
    /// on everything (`None`: no such hold).
    pub fn all_held_until(&self, now: Instant) -> Option<Instant> {
        self.holds
            .iter()
            .filter(|h| h.scope == Scope::All && h.expires > now)
            .map(|h| h.expires)
            .max()
    }

    /// The active holds covering `id`, oldest first.
    pub fn covering(&self, now: Instant, id: &ResourceId) -> Vec<Hold> {
        self.holds
            .iter()
            .filter(|h| h.expires > now && h.covers(id))
            .cloned()
            .collect()
    }
}

/// What a hold says about a resource: "held by make test until 14:00", or
/// "held by make test while it runs"; `clock` turns an instant into a
/// wall-clock time such as "14:00".
pub fn held_by(hold: &Hold, clock: &impl Fn(Instant) -> String) -> String {
    match hold.until {
        Some(until) => format!("held by {} until {}", hold.reason, clock(until)),
        None => format!("held by {} while it runs", hold.reason),
    }
}

/// Whether an outcome of a sleep leaves the resource asleep (or down, as
/// it was): every other outcome is a reason it is still up.
fn asleep_after(action: Action) -> bool {
    matches!(
        action,
        Action::Stopped | Action::WouldStop | Action::AlreadyAsleep | Action::LeftDown
    )
}

/// One resource that is up while the user is away, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwakeRow {
    pub resource: ResourceId,
    /// Every reason, most telling first: holds, then what the last sleep
    /// did with it (`protected`, `failed: ...`, or any other outcome).
    pub why: Vec<String>,
}

/// Why each resource the last sleep did not put to sleep is up: the holds
/// covering it first, then the sleep's outcome and its detail. A new kind
/// of outcome shows up by its name.
pub fn why_awake(
    last_sleep: &[Outcome],
    holds: &Holds,
    now: Instant,
    clock: &impl Fn(Instant) -> String,
) -> Vec<AwakeRow> {
    last_sleep
        .iter()
        .filter(|o| !asleep_after(o.action))
        .map(|o| {
            let mut why: Vec<String> = holds
                .covering(now, &o.resource)
                .iter()
                .map(|h| held_by(h, clock))
                .collect();
            if o.action != Action::Held || why.is_empty() {
                why.push(match &o.error {
                    Some(detail) => format!("{}: {detail}", o.action.name()),
                    None => o.action.name().replace('_', " "),
                });
            }
            AwakeRow {
                resource: o.resource.clone(),
                why,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;

    const S: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);

    fn ec2(id: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [id], "us-east-1")
    }

    /// "+Ns": the instant as seconds after `t0`.
    fn clock(t0: Instant) -> impl Fn(Instant) -> String {
        move |t| format!("+{}s", t.saturating_duration_since(t0).as_secs())
    }

    #[test]
    fn a_timed_hold_holds_everything_until_its_end() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let hold = h
            .add(t0, "meeting".into(), Scope::All, Some(60 * MIN), None)
            .unwrap();
        assert_eq!(hold.expires, t0 + 60 * MIN);
        assert_eq!(h.all_held_until(t0 + MIN), Some(t0 + 60 * MIN));
        assert_eq!(h.active(t0 + 59 * MIN).len(), 1);
        assert_eq!(h.all_held_until(t0 + 60 * MIN), None, "ended");
        assert!(h.active(t0 + 60 * MIN).is_empty());
        assert_eq!(
            h.add(t0, "x".into(), Scope::All, None, None),
            Err(HoldError::Endless)
        );
    }

    #[test]
    fn a_lease_expires_unless_renewed_and_never_outlives_its_end() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        // A client asking for a 10-minute lease gets the 2-minute maximum.
        let hold = h
            .add(t0, "make".into(), Scope::All, None, Some(10 * MIN))
            .unwrap();
        assert_eq!(hold.lease, Some(MAX_LEASE));
        assert_eq!(hold.expires, t0 + MAX_LEASE);
        // Renewed every minute for an hour: still held.
        for m in 1..=60 {
            h.renew(t0 + m * MIN, hold.id).unwrap();
        }
        assert_eq!(h.all_held_until(t0 + 61 * MIN), Some(t0 + 62 * MIN));
        // The client crashed after its last renewal: released by the lease.
        assert!(h.active(t0 + 62 * MIN).is_empty());
        assert_eq!(
            h.renew(t0 + 62 * MIN, hold.id),
            Err(HoldError::Unknown(hold.id))
        );
        // A lease with a duration ends at the duration, renewed or not.
        let short = h
            .add(t0, "test".into(), Scope::All, Some(3 * S), Some(2 * S))
            .unwrap();
        assert_eq!(short.expires, t0 + 2 * S);
        assert_eq!(h.renew(t0 + S, short.id).unwrap().expires, t0 + 3 * S);
        assert!(h.active(t0 + 3 * S).is_empty());
    }

    #[test]
    fn release_ends_one_hold_and_pause_replaces_the_last_pause() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let a = h
            .add(t0, "a".into(), Scope::All, Some(10 * MIN), None)
            .unwrap();
        let b = h
            .add(t0, "b".into(), Scope::Only(ec2("i-1")), Some(MIN), None)
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(h.release(t0 + S, a.id).unwrap().reason, "a");
        assert_eq!(h.release(t0 + S, a.id), Err(HoldError::Unknown(a.id)));
        assert_eq!(h.all_held_until(t0 + S), None, "only one resource held");
        assert_eq!(h.covering(t0 + S, &ec2("i-1")).len(), 1);
        assert!(h.covering(t0 + S, &ec2("i-2")).is_empty());
        h.pause(t0, 60 * MIN);
        h.pause(t0, 5 * MIN);
        assert_eq!(h.all_held_until(t0), Some(t0 + 5 * MIN), "the last pause");
        assert_eq!(h.clear(t0 + S), 2);
        assert!(h.active(t0 + S).is_empty());
    }

    fn outcome(id: &str, action: Action, error: Option<&str>) -> Outcome {
        Outcome {
            resource: ec2(id),
            action,
            before: None,
            saved: None,
            error: error.map(String::from),
            retrying: None,
        }
    }

    #[test]
    fn why_lists_holds_first_then_the_outcome_of_the_last_sleep() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.add(
            t0,
            "make test".into(),
            Scope::Only(ec2("i-held")),
            Some(MIN),
            None,
        )
        .unwrap();
        h.add(
            t0,
            "sleep 20".into(),
            Scope::Only(ec2("i-prot")),
            None,
            Some(MIN),
        )
        .unwrap();
        let last = vec![
            outcome("i-ok", Action::Stopped, None),
            outcome("i-down", Action::LeftDown, None),
            outcome("i-held", Action::Held, None),
            outcome("i-prot", Action::Protected, None),
            outcome("i-bad", Action::Failed, Some("AccessDenied: no")),
            outcome("i-hand", Action::StartedByHand, None),
        ];
        let rows = why_awake(&last, &h, t0 + S, &clock(t0));
        let why: Vec<(String, Vec<String>)> = rows
            .into_iter()
            .map(|r| (r.resource.name(), r.why))
            .collect();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            why,
            vec![
                ("i-held".into(), s(&["held by make test until +60s"])),
                (
                    "i-prot".into(),
                    s(&["held by sleep 20 while it runs", "protected"])
                ),
                ("i-bad".into(), s(&["failed: AccessDenied: no"])),
                ("i-hand".into(), s(&["started by hand"])),
            ]
        );
        // Once the hold ended, the report's own word remains.
        let later = why_awake(&last, &h, t0 + 2 * MIN, &clock(t0));
        assert_eq!(later[0].why, s(&["held"]));
    }
}

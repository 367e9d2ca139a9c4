//! Readiness after a wake: which woken resources are usable yet, when to
//! look again (bounded backoff), and what to tell the user (all ready, or
//! the one still starting after its kind's time). Pure: every call takes
//! `now`; the loop that asks AWS is `crate::app` (app/readiness.rs), each
//! kind's rule its adapter's `ready`.

use crate::core::model::history::Trigger;
use crate::core::model::resource::ResourceId;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The first look after a wake comes this soon, then the wait doubles...
pub const FIRST_POLL: Duration = Duration::from_secs(2);
/// ...up to this.
pub const MAX_POLL: Duration = Duration::from_secs(15);
/// After this long, what is still starting is no longer looked at (it stays
/// `starting` in `STATUS`).
pub const GIVE_UP: Duration = Duration::from_secs(3600);

/// What one readiness check of a resource found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Usable by its kind's rule (or its `ready_port` answers).
    pub ready: bool,
    /// What AWS says, for the log: `running, checks initializing`.
    pub detail: String,
}

/// `starting` or `ready`, as `STATUS` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadyState {
    Starting,
    Ready,
}

/// One resource of the last wake in `STATUS`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadinessRow {
    pub resource: ResourceId,
    pub state: ReadyState,
    /// Seconds from the wake to ready; `None` while starting.
    pub ready_after_seconds: Option<f64>,
}

/// What the user is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Every resource of the wake is ready, the last after this long.
    AllReady { resources: usize, after: Duration },
    /// `resource` is still starting after this long (its kind's time).
    StillStarting {
        resource: ResourceId,
        after: Duration,
    },
}

/// One followed resource.
#[derive(Debug, Clone)]
struct Followed {
    resource: ResourceId,
    /// What woke it.
    trigger: Trigger,
    woken_at: Instant,
    /// When it was seen ready.
    ready_at: Option<Instant>,
    /// Whether the laggard notice about it was given.
    lag_told: bool,
}

impl Followed {
    fn ready_after(&self) -> Option<Duration> {
        Some(self.ready_at?.saturating_duration_since(self.woken_at))
    }
}

/// The resources of the last wake, followed until each is usable.
#[derive(Debug, Clone)]
pub struct Follow {
    started: Instant,
    rows: Vec<Followed>,
    /// Looks since the last wake (for the backoff).
    polls: u32,
    /// The last look (or wake).
    last: Instant,
    all_told: bool,
}

/// The wait before look number `polls + 1`: [`FIRST_POLL`] doubling to
/// [`MAX_POLL`].
pub fn backoff(polls: u32) -> Duration {
    FIRST_POLL
        .saturating_mul(1u32 << polls.min(8))
        .min(MAX_POLL)
}

/// After how long a resource still starting is named (its kind's
/// [`crate::kinds::Spec::ready_within`]).
pub fn laggard_after(resource: &ResourceId) -> Duration {
    Duration::from_secs(resource.kind().spec().ready_within)
}

impl Follow {
    /// Follows `resources`, woken at `now` by `trigger`.
    pub fn new(
        resources: impl IntoIterator<Item = ResourceId>,
        trigger: Trigger,
        now: Instant,
    ) -> Follow {
        let mut f = Follow {
            started: now,
            rows: Vec::new(),
            polls: 0,
            last: now,
            all_told: false,
        };
        f.add(resources, trigger, now);
        f
    }

    /// After a wake of `resources` at `now`: added to `current` while it
    /// is still following a wake (a team wakes its resources one by one),
    /// else followed anew. Looks start over at [`FIRST_POLL`].
    pub fn after_wake(
        current: Option<Follow>,
        resources: Vec<ResourceId>,
        trigger: Trigger,
        now: Instant,
    ) -> Follow {
        match current {
            Some(mut f) if !f.all_told && !f.rows.is_empty() => {
                f.add(resources, trigger, now);
                f
            }
            _ => Follow::new(resources, trigger, now),
        }
    }

    fn add(
        &mut self,
        resources: impl IntoIterator<Item = ResourceId>,
        trigger: Trigger,
        now: Instant,
    ) {
        for resource in resources {
            self.rows.retain(|r| r.resource != resource);
            self.rows.push(Followed {
                resource,
                trigger,
                woken_at: now,
                ready_at: None,
                lag_told: false,
            });
        }
        self.polls = 0;
        self.last = now;
    }

    /// The resources still starting.
    pub fn starting(&self) -> Vec<ResourceId> {
        (self.rows.iter())
            .filter(|r| r.ready_at.is_none())
            .map(|r| r.resource.clone())
            .collect()
    }

    /// When to look next: `None` once all are ready or after [`GIVE_UP`].
    pub fn next_poll(&self, now: Instant) -> Option<Instant> {
        let done = self.rows.iter().all(|r| r.ready_at.is_some());
        let woken = self
            .rows
            .iter()
            .map(|r| r.woken_at)
            .max()
            .unwrap_or(self.started);
        if done || now.saturating_duration_since(woken) >= GIVE_UP {
            return None;
        }
        Some(self.last + backoff(self.polls))
    }

    /// A look at `now` found `ready` (each resource looked at, and whether
    /// it is ready); returns what to tell the user now. A resource not in
    /// `ready` (its check failed) stays starting.
    pub fn looked(&mut self, now: Instant, ready: &[(ResourceId, bool)]) -> Vec<Notice> {
        self.polls += 1;
        self.last = now;
        for (id, is_ready) in ready {
            if let Some(row) = self.rows.iter_mut().find(|r| &r.resource == id) {
                if *is_ready && row.ready_at.is_none() {
                    row.ready_at = Some(now);
                }
            }
        }
        self.notices(now)
    }

    /// What to tell the user at `now`, each notice once: all ready, or each
    /// resource still starting after its kind's time.
    pub fn notices(&mut self, now: Instant) -> Vec<Notice> {
        let mut out = Vec::new();
        for row in self.rows.iter_mut().filter(|r| r.ready_at.is_none()) {
            let after = now.saturating_duration_since(row.woken_at);
            if !row.lag_told && after >= laggard_after(&row.resource) {
                row.lag_told = true;
                out.push(Notice::StillStarting {
                    resource: row.resource.clone(),
                    after,
                });
            }
        }
        let all = self.ready_count() == self.rows.len();
        let last = self.rows.iter().filter_map(|r| r.ready_at).max();
        if let (false, true, Some(last)) = (self.all_told, all, last) {
            self.all_told = true;
            out.push(Notice::AllReady {
                resources: self.rows.len(),
                after: last.saturating_duration_since(self.started),
            });
        }
        out
    }

    /// When a laggard notice is due next (none: no more to give).
    pub fn next_notice(&self) -> Option<Instant> {
        (self.rows.iter())
            .filter(|r| r.ready_at.is_none() && !r.lag_told)
            .map(|r| r.woken_at + laggard_after(&r.resource))
            .min()
    }

    /// How many are ready.
    pub fn ready_count(&self) -> usize {
        self.rows.iter().filter(|r| r.ready_at.is_some()).count()
    }

    /// Each resource that became ready at `at` (a look's `now`), with what
    /// woke it and its time to ready: the history's lines.
    pub fn ready_at(&self, at: Instant) -> Vec<(ResourceId, Trigger, Duration)> {
        (self.rows.iter())
            .filter(|r| r.ready_at == Some(at))
            .filter_map(|r| Some((r.resource.clone(), r.trigger, r.ready_after()?)))
            .collect()
    }

    /// The rows of `STATUS`.
    pub fn rows(&self) -> Vec<ReadinessRow> {
        (self.rows.iter())
            .map(|r| ReadinessRow {
                resource: r.resource.clone(),
                state: match r.ready_at {
                    Some(_) => ReadyState::Ready,
                    None => ReadyState::Starting,
                },
                ready_after_seconds: r.ready_after().map(|d| d.as_secs_f64()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::Kind;

    fn ec2(id: &str) -> ResourceId {
        ResourceId::new(Kind::Ec2, [id], "us-east-1")
    }

    fn db() -> ResourceId {
        ResourceId::new(Kind::Rds, ["dev-postgres"], "us-east-1")
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_backoff_doubles_from_two_seconds_to_fifteen() {
        let waits: Vec<u64> = (0..6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 15, 15, 15]);
        assert_eq!(backoff(u32::MAX), MAX_POLL);
    }

    #[test]
    fn looks_come_at_the_backoff_and_stop_when_all_are_ready() {
        let t0 = Instant::now();
        let mut f = Follow::new([ec2("i-1"), ec2("i-2")], Trigger::Idle, t0);
        assert_eq!(f.next_poll(t0), Some(t0 + S(2)));
        assert!(f.looked(t0 + S(2), &[(ec2("i-1"), false)]).is_empty());
        assert_eq!(f.next_poll(t0 + S(2)), Some(t0 + S(6)));
        f.looked(t0 + S(6), &[(ec2("i-1"), true), (ec2("i-2"), false)]);
        assert_eq!(f.next_poll(t0 + S(6)), Some(t0 + S(14)));
        assert_eq!(f.starting(), vec![ec2("i-2")]);
        f.looked(t0 + S(14), &[(ec2("i-2"), false)]);
        assert_eq!(f.next_poll(t0 + S(14)), Some(t0 + S(29)));
        let told = f.looked(t0 + S(29), &[(ec2("i-2"), true)]);
        assert_eq!(
            told,
            vec![Notice::AllReady {
                resources: 2,
                after: S(29)
            }]
        );
        assert_eq!(f.next_poll(t0 + S(29)), None);
        // Said once.
        assert!(f.notices(t0 + S(40)).is_empty());
        let rows = f.rows();
        assert_eq!(rows[0].ready_after_seconds, Some(6.0));
        assert_eq!(rows[1].state, ReadyState::Ready);
        assert_eq!(
            f.ready_at(t0 + S(29)),
            vec![(ec2("i-2"), Trigger::Idle, S(29))]
        );
    }

    #[test]
    fn a_laggard_is_named_once_after_its_kinds_time_and_all_ready_still_follows() {
        let t0 = Instant::now();
        let mut f = Follow::new([ec2("i-1"), db()], Trigger::Idle, t0);
        assert!(f.looked(t0 + S(30), &[(ec2("i-1"), true)]).is_empty());
        assert_eq!(f.ready_count(), 1);
        // RDS: 20 minutes.
        assert_eq!(f.next_notice(), Some(t0 + S(20 * 60)));
        assert!(f.notices(t0 + S(20 * 60 - 1)).is_empty());
        let told = f.notices(t0 + S(20 * 60));
        assert_eq!(
            told,
            vec![Notice::StillStarting {
                resource: db(),
                after: S(1200)
            }]
        );
        assert!(f.notices(t0 + S(25 * 60)).is_empty(), "not repeated");
        assert_eq!(f.next_notice(), None);
        let rows = f.rows();
        assert_eq!(rows[1].state, ReadyState::Starting);
        assert_eq!(rows[1].ready_after_seconds, None);
        let told = f.looked(t0 + S(26 * 60), &[(db(), true)]);
        assert!(matches!(told[..], [Notice::AllReady { resources: 2, .. }]));
    }

    #[test]
    fn a_team_wake_one_by_one_is_one_follow_and_a_new_wake_after_all_ready_starts_over() {
        let t0 = Instant::now();
        let f = Follow::new([ec2("i-1")], Trigger::Team, t0);
        let mut f = Follow::after_wake(Some(f), vec![ec2("i-2")], Trigger::Team, t0 + S(5));
        assert_eq!(f.rows().len(), 2);
        assert_eq!(f.next_poll(t0 + S(5)), Some(t0 + S(7)), "looks start over");
        f.looked(t0 + S(7), &[(ec2("i-1"), true)]);
        let told = f.looked(t0 + S(11), &[(ec2("i-2"), true)]);
        // i-2 took 6 s from its own wake; all took 11 s from the first.
        assert_eq!(f.rows()[1].ready_after_seconds, Some(6.0));
        assert_eq!(
            told,
            vec![Notice::AllReady {
                resources: 2,
                after: S(11)
            }]
        );
        let f = Follow::after_wake(Some(f), vec![db()], Trigger::Idle, t0 + S(60));
        assert_eq!(f.rows().len(), 1, "a new wake: only its resources");
        assert_eq!(f.starting(), vec![db()]);
    }

    #[test]
    fn looks_stop_after_an_hour_and_a_failed_check_stays_starting() {
        let t0 = Instant::now();
        let mut f = Follow::new([ec2("i-1")], Trigger::Idle, t0);
        f.looked(t0 + S(2), &[]);
        assert_eq!(f.ready_count(), 0);
        assert!(f.next_poll(t0 + S(3599)).is_some());
        assert_eq!(f.next_poll(t0 + GIVE_UP), None);
        let rows = serde_json::to_value(f.rows()).unwrap();
        assert_eq!(rows[0]["state"], "starting");
        assert!(rows[0]["ready_after_seconds"].is_null());
    }
}

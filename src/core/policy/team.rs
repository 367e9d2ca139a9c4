//! Team mode, pure: a shared resource sleeps only when every member of the
//! team is away, and exactly one member puts it to sleep and exactly one
//! wakes it, coordinated through items of the team table (DynamoDB,
//! conditional writes; see docs/team.md).
//!
//! Every time here is **table time**: the team table's own clock as the
//! adapter reads it back ([`TableClock`]), never a member's own clock, so a
//! member whose clock is off by minutes is judged right.

use crate::core::model::resource::{Capacity, ResourceId};
use crate::core::policy::holds::Scope;
use std::time::{Duration, SystemTime};

/// Whether a member is at its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At the machine (by cloudnap's own idle tracking).
    Active,
    /// Idle past the timeout, or the screen locked.
    Away,
}

/// A member's presence item: a lease it renews every heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    /// The member id (`team.member`, else the STS caller ARN `@` the host).
    pub member: String,
    pub state: State,
    /// When `state` last changed.
    pub since: SystemTime,
    /// When the lease ends unless renewed: a member whose laptop sleeps,
    /// crashes or loses the network is away from then on.
    pub expires: SystemTime,
    /// What the member's holds (`cloudnap hold`) keep awake, for as long as
    /// its lease lasts.
    pub holds: Vec<Scope>,
}

impl Presence {
    /// Whether the lease is still running at `now`.
    pub fn live(&self, now: SystemTime) -> bool {
        self.expires > now
    }

    /// Whether the member counts as present at `now`: active, lease running.
    pub fn present(&self, now: SystemTime) -> bool {
        self.state == State::Active && self.live(now)
    }

    /// Whether one of the member's holds keeps `id` awake at `now`.
    pub fn holds_on(&self, id: &ResourceId, now: SystemTime) -> bool {
        self.live(now)
            && self
                .holds
                .iter()
                .any(|s| matches!(s, Scope::All) || matches!(s, Scope::Only(h) if h == id))
    }
}

/// The members present at `now`, in the order given.
pub fn present(members: &[Presence], now: SystemTime) -> Vec<&Presence> {
    members.iter().filter(|m| m.present(now)).collect()
}

/// A member id as people read it: `dev-a@laptop-1` for
/// `arn:aws:iam::123456789012:user/dev-a@laptop-1` (the last part of the
/// ARN, then the host); any other id as it is.
pub fn display_name(member: &str) -> String {
    match member.rsplit_once('@') {
        Some((principal, host)) if principal.starts_with("arn:") => {
            let short = principal.rsplit(['/', ':']).next().unwrap_or(principal);
            format!("{short}@{host}")
        }
        _ => member.to_string(),
    }
}

/// The member id when `team.member` is not set: the STS caller ARN `@` the
/// host name.
pub fn default_member(caller_arn: &str, host: &str) -> String {
    format!("{caller_arn}@{host}")
}

/// Who is present, for `STATUS` and the tray: `2 of 3 present: dev-a@laptop-1,
/// dev-b@laptop-2`, or `all away since 14:05` (`clock` turns a table time
/// into a wall-clock time such as "14:05").
pub fn presence_line(
    members: &[Presence],
    now: SystemTime,
    clock: &impl Fn(SystemTime) -> String,
) -> String {
    let here = present(members, now);
    if !here.is_empty() {
        let names: Vec<String> = here.iter().map(|m| display_name(&m.member)).collect();
        return format!(
            "{} of {} present: {}",
            here.len(),
            members.len(),
            names.join(", ")
        );
    }
    // Each member left at its change to away, or when its lease ran out.
    let left = members
        .iter()
        .map(|m| match m.state {
            State::Away => m.since.min(m.expires),
            State::Active => m.expires,
        })
        .max();
    match left {
        Some(at) => format!("all away since {}", clock(at)),
        None => "no member has joined yet".to_string(),
    }
}

/// `cloudnap team status`: the presence line, every member (state, since
/// when, what is left of its lease, holds) and every lock item.
pub fn format_table(
    members: &[Presence],
    locks: &[Lock],
    now: SystemTime,
    clock: &impl Fn(SystemTime) -> String,
) -> String {
    let mut out = format!("{}\n", presence_line(members, now, clock));
    out += &format!("members ({}):\n", members.len());
    for m in members {
        let lease = match m.expires.duration_since(now) {
            Ok(left) => format!("lease {} s left", left.as_secs()),
            Err(_) => format!("lease ran out at {}", clock(m.expires)),
        };
        let state = match (m.present(now), m.state) {
            (true, _) => "present",
            (false, State::Active) => "gone",
            (false, State::Away) => "away",
        };
        let holds = if m.holds.is_empty() {
            String::new()
        } else {
            format!(", {} hold(s)", m.holds.len())
        };
        out += &format!(
            "  {}: {state} since {}, {lease}{holds}\n",
            display_name(&m.member),
            clock(m.since)
        );
    }
    out += &format!("locks ({}):\n", locks.len());
    for l in locks {
        let saved = l.saved.map(|c| format!(", saved {c}")).unwrap_or_default();
        out += &format!(
            "  {}: {} v{} by {} at {}{saved}\n",
            l.resource,
            l.phase.as_str(),
            l.version,
            display_name(&l.owner),
            clock(l.updated)
        );
    }
    out
}

/// `cloudnap team status --json`.
pub fn table_json(members: &[Presence], locks: &[Lock], now: SystemTime) -> serde_json::Value {
    let ms = |t: SystemTime| millis(t);
    serde_json::json!({
        "members": members.iter().map(|m| serde_json::json!({
            "member": m.member,
            "name": display_name(&m.member),
            "state": match m.state { State::Active => "active", State::Away => "away" },
            "present": m.present(now),
            "since_ms": ms(m.since),
            "expires_ms": ms(m.expires),
            "holds": m.holds.len(),
        })).collect::<Vec<_>>(),
        "locks": locks.iter().map(|l| serde_json::json!({
            "resource": l.resource,
            "phase": l.phase.as_str(),
            "version": l.version,
            "owner": l.owner,
            "saved": l.saved,
            "updated_ms": ms(l.updated),
        })).collect::<Vec<_>>(),
        "now_ms": ms(now),
    })
}

/// Where a shared resource is in its sleep/wake cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Up (or never slept by the team).
    Idle,
    /// The owner is putting it to sleep.
    Sleeping,
    /// Asleep at `saved`: any member may wake it.
    Asleep,
    /// The owner is waking it.
    Waking,
}

impl Phase {
    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Sleeping => "sleeping",
            Phase::Asleep => "asleep",
            Phase::Waking => "waking",
        }
    }

    /// The phase named `name` in the table.
    pub fn from_name(name: &str) -> Option<Phase> {
        [Phase::Idle, Phase::Sleeping, Phase::Asleep, Phase::Waking]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// A shared resource's lock item. Every write makes `version` one higher
/// and is conditional on the version before it (none for version 1), so of
/// two members racing from one version exactly one wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub resource: ResourceId,
    /// 0: no item yet.
    pub version: u64,
    pub phase: Phase,
    /// The capacity to wake it to. Set from before the stop until the wake
    /// is done: while it is set, the resource may be below it.
    pub saved: Option<Capacity>,
    /// The member that wrote the item last (and owns a sleep or a wake in
    /// progress).
    pub owner: String,
    /// When it was written.
    pub updated: SystemTime,
}

impl Lock {
    /// The lock of a resource whose item does not exist yet: idle, version 0.
    pub fn none(resource: ResourceId) -> Lock {
        Lock {
            resource,
            version: 0,
            phase: Phase::Idle,
            saved: None,
            owner: String::new(),
            updated: SystemTime::UNIX_EPOCH,
        }
    }

    /// The next version of this item, written by `me` at `now`.
    fn next(&self, me: &str, phase: Phase, saved: Option<Capacity>, now: SystemTime) -> Lock {
        Lock {
            resource: self.resource.clone(),
            version: self.version + 1,
            phase,
            saved,
            owner: me.to_string(),
            updated: now,
        }
    }

    /// `me`'s sleep, before the stop: the capacity to wake it to, the
    /// `observed` one unless a capacity is saved already (a sleep taken
    /// over: the resource may be down by now).
    pub fn saving(&self, me: &str, observed: Capacity, now: SystemTime) -> Lock {
        let saved = self.saved.unwrap_or(observed);
        self.next(me, Phase::Sleeping, Some(saved), now)
    }

    /// After `me`'s stop: asleep at the saved capacity. If this write is
    /// refused, another member took the lock over while `me` was stopping
    /// it (`me` was cut off longer than its lease): `me` restores the saved
    /// capacity (fail safe) and steps again.
    pub fn asleep(&self, me: &str, now: SystemTime) -> Lock {
        self.next(me, Phase::Asleep, self.saved, now)
    }

    /// After `me`'s wake: idle, nothing saved.
    pub fn woken(&self, me: &str, now: SystemTime) -> Lock {
        self.next(me, Phase::Idle, None, now)
    }

    /// `me` gives the lock back without sleeping: idle, or asleep when a
    /// capacity is saved (a stop may have begun, so it must be woken).
    pub fn release(&self, me: &str, now: SystemTime) -> Lock {
        match self.saved {
            Some(_) => self.next(me, Phase::Asleep, self.saved, now),
            None => self.next(me, Phase::Idle, None, now),
        }
    }

    /// Whether the owner of a sleep or wake in progress is gone: its
    /// presence lease ran out (or it has none), so another member may take
    /// over.
    pub fn orphaned(&self, members: &[Presence], now: SystemTime) -> bool {
        !members
            .iter()
            .any(|m| m.member == self.owner && m.live(now))
    }
}

/// The outcome of a conditional lock write.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Written (or found already written: a retry of a write that had
    /// gone through).
    Done,
    /// Another member wrote first; the lock as it is now.
    Conflict(Lock),
}

/// What a member does about one shared resource, from the lock item and a
/// read of every presence item.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing: it is up while someone is present, or a veto keeps it up.
    Stay,
    /// A member's hold keeps it awake.
    HeldBy(String),
    /// Another member put it to sleep, or is doing it (or waking it):
    /// `done by C`.
    DoneBy(String),
    /// Someone is present and another member's sleep is in progress: wait
    /// for it to finish, then look again (to wake it).
    Wait,
    /// Write this lock item (conditional on the version before it). Its
    /// phase says what follows: [`Phase::Sleeping`] (confirm with
    /// [`confirm_sleep`], then sleep) or [`Phase::Waking`] (wake to
    /// `saved`; with none saved nothing was stopped, so it is only marked
    /// [`Lock::woken`]). A refused write means another member was first: read the
    /// lock again and step again.
    Take(Lock),
}

/// The step of member `me` for the resource of `lock`, given every presence
/// item, whether `me` vetoes its sleep (busy, or its own hold not yet in its
/// presence item), at table time `now`. Called only while `me` has no sleep
/// or wake of this resource under way.
///
/// Nobody present: the resource is put to sleep (unless held or vetoed); a
/// sleep or wake whose owner is gone is taken over, keeping the saved
/// capacity. Someone present: an asleep resource is woken; a sleep in
/// progress is waited for; an orphaned one is taken over as a wake.
pub fn step(me: &str, lock: &Lock, members: &[Presence], vetoed: bool, now: SystemTime) -> Step {
    let anyone = members.iter().any(|m| m.present(now));
    // `me` has nothing under way when it steps: a sleep or wake of its own
    // is from before a restart, and as orphaned as a dead member's.
    let orphaned = lock.owner == me || lock.orphaned(members, now);
    let take = |phase| Step::Take(lock.next(me, phase, lock.saved, now));
    match (anyone, lock.phase) {
        (true, Phase::Idle) => Step::Stay,
        (true, Phase::Asleep) => take(Phase::Waking),
        (true, Phase::Sleeping | Phase::Waking) if orphaned => take(Phase::Waking),
        (true, Phase::Sleeping) => Step::Wait,
        (true, Phase::Waking) => Step::DoneBy(lock.owner.clone()),
        (false, Phase::Asleep) => Step::DoneBy(lock.owner.clone()),
        (false, Phase::Sleeping | Phase::Waking) if !orphaned => Step::DoneBy(lock.owner.clone()),
        (false, _) => match members.iter().find(|m| m.holds_on(&lock.resource, now)) {
            Some(m) => Step::HeldBy(m.member.clone()),
            None if vetoed => Step::Stay,
            None => take(Phase::Sleeping),
        },
    }
}

/// What the member that took the lock for a sleep does after reading every
/// presence item again (a consistent read).
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    /// Still nobody present and nothing held: sleep it.
    Sleep,
    /// Someone came back (or holds it) meanwhile: write this lock (the lock
    /// given back) and do nothing.
    Release(Lock),
}

/// Whether `me`, holding `taken` (phase [`Phase::Sleeping`]), goes ahead.
pub fn confirm_sleep(me: &str, taken: &Lock, members: &[Presence], now: SystemTime) -> Confirm {
    let back = members
        .iter()
        .any(|m| m.present(now) || m.holds_on(&taken.resource, now));
    if back {
        Confirm::Release(taken.release(me, now))
    } else {
        Confirm::Sleep
    }
}

/// The team table's clock as this machine sees it: the offset between the
/// local clock and the table's, learnt from the time the table's answers
/// carry (the HTTP `Date` header, whole seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableClock {
    /// Table time minus local time, in milliseconds; `None` before any
    /// answer.
    offset_ms: Option<i64>,
}

impl TableClock {
    /// Learns from an answer dated `date` (whole seconds, truncated)
    /// received at local time `local`. The middle of the second is the
    /// best guess; the latest answer wins.
    pub fn learn(&mut self, date: SystemTime, local: SystemTime) {
        let date = millis(date) + 500;
        self.offset_ms = Some(date - millis(local));
    }

    /// Whether any answer has been seen.
    pub fn known(&self) -> bool {
        self.offset_ms.is_some()
    }

    /// Table time at local time `local` (the local time until an answer is
    /// seen).
    pub fn now(&self, local: SystemTime) -> SystemTime {
        let ms = millis(local) + self.offset_ms.unwrap_or(0);
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
    }
}

/// Milliseconds since the epoch (negative before it).
fn millis(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::{Desired, Kind};

    const A: &str = "arn:aws:iam::123456789012:user/dev-a@laptop-1";
    const B: &str = "arn:aws:iam::123456789012:user/dev-b@laptop-2";
    const C: &str = "arn:aws:sts::123456789012:assumed-role/Dev/dev-c@laptop-3";
    const LEASE: Duration = Duration::from_secs(180);

    /// A fake clock: `s` seconds after a fixed table time.
    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn member(id: &str, state: State, renewed: u64) -> Presence {
        Presence {
            member: id.into(),
            state,
            since: at(renewed),
            expires: at(renewed) + LEASE,
            holds: vec![],
        }
    }

    fn api() -> ResourceId {
        ResourceId::new(Kind::Ecs, ["c", "api"], "us-east-1")
    }

    fn three() -> Capacity {
        Capacity::of(Kind::Ecs, Desired(3))
    }

    #[test]
    fn present_means_active_with_a_running_lease() {
        let team = [
            member(A, State::Active, 0),
            member(B, State::Away, 0),
            member(C, State::Active, 100),
        ];
        let ids = |now| -> Vec<&str> {
            present(&team, now)
                .iter()
                .map(|m| m.member.as_str())
                .collect()
        };
        assert_eq!(ids(at(10)), [A, C]);
        // A's lease ran out at 180 (it stopped renewing: a crash).
        assert_eq!(ids(at(180)), [C]);
        assert!(ids(at(280)).is_empty());
    }

    #[test]
    fn names_and_the_status_line() {
        assert_eq!(display_name(A), "dev-a@laptop-1");
        assert_eq!(display_name(C), "dev-c@laptop-3");
        assert_eq!(display_name("alice"), "alice");
        assert_eq!(
            default_member("arn:aws:iam::1:user/x", "box"),
            "arn:aws:iam::1:user/x@box"
        );
        let clock = |t: SystemTime| format!("t+{}", millis(t) / 1000 - 1_800_000_000);
        let mut team = vec![
            member(A, State::Active, 0),
            member(B, State::Active, 0),
            member(C, State::Away, 30),
        ];
        assert_eq!(
            presence_line(&team, at(60), &clock),
            "2 of 3 present: dev-a@laptop-1, dev-b@laptop-2"
        );
        // B goes away at 90; A's lease runs out at 180: away since then.
        team[1] = member(B, State::Away, 90);
        assert_eq!(
            presence_line(&team, at(200), &clock),
            "all away since t+180"
        );
        assert_eq!(
            presence_line(&[], at(0), &clock),
            "no member has joined yet"
        );
    }

    #[test]
    fn the_last_one_to_leave_takes_the_lock_to_sleep() {
        let team = [member(A, State::Away, 0), member(B, State::Away, 5)];
        let Step::Take(taken) = step(B, &Lock::none(api()), &team, false, at(5)) else {
            panic!()
        };
        assert_eq!(
            (
                taken.version,
                taken.phase,
                taken.owner.as_str(),
                taken.updated
            ),
            (1, Phase::Sleeping, B, at(5))
        );
        // Still nobody present on the re-read: go ahead, save, stop, asleep.
        assert_eq!(confirm_sleep(B, &taken, &team, at(6)), Confirm::Sleep);
        let saving = taken.saving(B, three(), at(6));
        let asleep = saving.asleep(B, at(8));
        assert_eq!(
            (asleep.version, asleep.phase, asleep.saved),
            (3, Phase::Asleep, Some(three()))
        );
        // A, racing from the same version, lost the write and reads it again.
        assert_eq!(
            step(A, &asleep, &team, false, at(9)),
            Step::DoneBy(B.into())
        );
        assert_eq!(
            step(A, &saving, &team, false, at(7)),
            Step::DoneBy(B.into())
        );
    }

    #[test]
    fn someone_back_between_the_take_and_the_reread_releases_it() {
        let away = [member(A, State::Away, 0), member(B, State::Away, 0)];
        let Step::Take(taken) = step(B, &Lock::none(api()), &away, false, at(1)) else {
            panic!()
        };
        let back = [member(A, State::Active, 2), member(B, State::Away, 0)];
        let Confirm::Release(released) = confirm_sleep(B, &taken, &back, at(2)) else {
            panic!()
        };
        assert_eq!((released.version, released.phase), (2, Phase::Idle));
        assert_eq!(released.saved, None);
        // A taken-over sleep with a capacity saved is released as asleep,
        // so the member present wakes it.
        let saving = taken.saving(B, three(), at(1));
        let Confirm::Release(r) = confirm_sleep(B, &saving, &back, at(2)) else {
            panic!()
        };
        assert_eq!((r.phase, r.saved), (Phase::Asleep, Some(three())));
        assert!(
            matches!(step(A, &r, &back, false, at(3)), Step::Take(l) if l.phase == Phase::Waking)
        );
    }

    #[test]
    fn nobody_sleeps_it_while_someone_is_present() {
        let team = [member(A, State::Active, 0), member(B, State::Away, 0)];
        assert_eq!(
            step(B, &Lock::none(api()), &team, false, at(10)),
            Step::Stay
        );
        // ... until A's lease runs out (kill -9).
        assert!(matches!(
            step(B, &Lock::none(api()), &team, false, at(181)),
            Step::Take(l) if l.phase == Phase::Sleeping
        ));
    }

    #[test]
    fn holds_and_vetoes_keep_it_up() {
        let mut team = [member(A, State::Away, 0), member(B, State::Away, 0)];
        let lock = Lock::none(api());
        assert_eq!(step(B, &lock, &team, true, at(1)), Step::Stay);
        team[0].holds = vec![Scope::Only(api())];
        assert_eq!(step(B, &lock, &team, false, at(1)), Step::HeldBy(A.into()));
        team[0].holds = vec![Scope::Only(ResourceId::new(
            Kind::Ec2,
            ["i-1"],
            "us-east-1",
        ))];
        assert!(matches!(step(B, &lock, &team, false, at(1)), Step::Take(_)));
        team[0].holds = vec![Scope::All];
        assert_eq!(step(B, &lock, &team, false, at(1)), Step::HeldBy(A.into()));
        // A hold made between the take and the re-read releases the lock.
        let Step::Take(taken) = step(B, &lock, &[member(B, State::Away, 0)], false, at(1)) else {
            panic!()
        };
        assert!(matches!(
            confirm_sleep(B, &taken, &team, at(2)),
            Confirm::Release(_)
        ));
        // A hold lasts as long as its member's lease.
        assert!(matches!(
            step(B, &lock, &team, false, at(200)),
            Step::Take(_)
        ));
    }

    #[test]
    fn the_first_one_back_wakes_it_after_a_sleep_in_progress() {
        let sleeping = Lock::none(api())
            .next(B, Phase::Sleeping, None, at(1))
            .saving(B, three(), at(1));
        let back = [member(A, State::Active, 2), member(B, State::Away, 0)];
        // B is still stopping it: A waits ...
        assert_eq!(step(A, &sleeping, &back, false, at(2)), Step::Wait);
        // ... then wakes it: asleep -> waking, with the saved capacity.
        let asleep = sleeping.asleep(B, at(3));
        let Step::Take(waking) = step(A, &asleep, &back, false, at(4)) else {
            panic!()
        };
        assert_eq!(
            (
                waking.phase,
                waking.saved,
                waking.owner.as_str(),
                waking.version
            ),
            (Phase::Waking, Some(three()), A, asleep.version + 1)
        );
        // C, back at the same time, lost the race and sees A's wake.
        assert_eq!(
            step(C, &waking, &back, false, at(4)),
            Step::DoneBy(A.into())
        );
        let woken = waking.woken(A, at(5));
        assert_eq!((woken.phase, woken.saved), (Phase::Idle, None));
        assert_eq!(step(A, &woken, &back, false, at(6)), Step::Stay);
    }

    #[test]
    fn an_orphaned_sleep_or_wake_is_taken_over_with_its_saved_capacity() {
        // B began a sleep, saved the capacity, and died (no more renewals).
        let sleeping = Lock::none(api())
            .next(B, Phase::Sleeping, None, at(0))
            .saving(B, three(), at(0));
        let team = [member(A, State::Active, 100), member(B, State::Away, 0)];
        // While B's lease runs, A waits; after it, A wakes at B's capacity.
        assert_eq!(step(A, &sleeping, &team, false, at(150)), Step::Wait);
        let Step::Take(l) = step(A, &sleeping, &team, false, at(181)) else {
            panic!()
        };
        assert_eq!((l.phase, l.saved), (Phase::Waking, Some(three())));
        // Nobody present: a waker that died is taken over as a sleep, which
        // keeps the capacity saved before.
        let waking = sleeping
            .asleep(B, at(1))
            .next(B, Phase::Waking, Some(three()), at(2));
        let away = [member(A, State::Away, 100), member(B, State::Away, 0)];
        assert_eq!(
            step(A, &waking, &away, false, at(150)),
            Step::DoneBy(B.into())
        );
        let Step::Take(l) = step(A, &waking, &away, false, at(200)) else {
            panic!()
        };
        assert_eq!((l.phase, l.saved), (Phase::Sleeping, Some(three())));
    }

    #[test]
    fn the_table_clock_corrects_a_member_clock_off_by_minutes() {
        let mut clock = TableClock::default();
        // The local clock is 5 minutes fast.
        let local = at(300);
        assert_eq!(clock.now(local), local);
        clock.learn(at(0), local);
        assert!(clock.known());
        assert_eq!(clock.now(at(310)), at(10) + Duration::from_millis(500));
        // A clock behind the table works too.
        clock.learn(at(400), at(100));
        assert_eq!(clock.now(at(101)), at(401) + Duration::from_millis(500));
    }

    #[test]
    fn a_taken_over_sleep_keeps_the_capacity_saved_first() {
        let taken = Lock::none(api())
            .next(B, Phase::Sleeping, None, at(0))
            .saving(B, three(), at(0));
        // B died after its stop: A, taking over, sees the resource at 0.
        let zero = Capacity::of(Kind::Ecs, Desired(0));
        let again = taken
            .next(A, Phase::Sleeping, taken.saved, at(200))
            .saving(A, zero, at(200));
        assert_eq!(again.saved, Some(three()));
    }

    #[test]
    fn a_member_restarted_mid_sleep_takes_its_own_lock_over() {
        let team = [member(A, State::Away, 0), member(B, State::Away, 0)];
        let sleeping = Lock::none(api()).next(A, Phase::Sleeping, None, at(0));
        assert!(matches!(
            step(A, &sleeping, &team, false, at(1)),
            Step::Take(l) if l.phase == Phase::Sleeping && l.version == 2
        ));
        assert_eq!(
            step(B, &sleeping, &team, false, at(1)),
            Step::DoneBy(A.into())
        );
    }

    #[test]
    fn phases_round_trip_their_names() {
        for p in [Phase::Idle, Phase::Sleeping, Phase::Asleep, Phase::Waking] {
            assert_eq!(Phase::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Phase::from_name("gone"), None);
    }

    /// The protocol as members run it, one table operation at a time,
    /// interleaved at random, against a model table (compare-and-set on
    /// the version) and one resource; members go away, come back, die, and
    /// (`zombies`) come back from the dead with their half-done work.
    mod model {
        use super::*;
        use proptest::prelude::*;

        const N: usize = 3;
        const LEASE: u64 = 10;
        const IDS: [&str; N] = [A, B, C];

        #[derive(Debug, Clone)]
        enum Ev {
            Toggle(usize),
            Kill(usize),
            Revive(usize),
            Tick(usize),
            Advance(u64),
        }

        /// A member's work in progress, after a successful lock write.
        #[derive(Debug, Clone)]
        enum Work {
            None,
            Took(Lock),
            Saved(Lock),
            Stopped(Lock),
            Waking(Lock),
            Woke(Lock),
        }

        struct World {
            now: u64,
            table: Vec<Option<Presence>>,
            lock: Lock,
            up: bool,
            /// The last lock write gave back a sleep as asleep: a stop may
            /// have begun, or not (fail safe: the next one back wakes it).
            given_back: bool,
            state: [State; N],
            alive: [bool; N],
            work: Vec<Work>,
        }

        impl World {
            fn new() -> World {
                let mut w = World {
                    now: 0,
                    table: vec![None; N],
                    lock: Lock::none(api()),
                    up: true,
                    given_back: false,
                    state: [State::Active; N],
                    alive: [true; N],
                    work: vec![Work::None; N],
                };
                (0..N).for_each(|m| w.renew(m, true));
                w
            }

            fn renew(&mut self, m: usize, changed: bool) {
                let since = match (&self.table[m], changed) {
                    (Some(p), false) => p.since,
                    _ => at(self.now),
                };
                self.table[m] = Some(Presence {
                    since,
                    ..member(IDS[m], self.state[m], self.now)
                });
                self.table[m].as_mut().unwrap().expires = at(self.now + LEASE);
            }

            fn members(&self) -> Vec<Presence> {
                self.table.iter().flatten().cloned().collect()
            }

            /// The table's conditional write.
            fn put(&mut self, lock: &Lock) -> bool {
                let ok = self.lock.version + 1 == lock.version;
                if ok {
                    self.lock = lock.clone();
                    self.given_back = false;
                }
                ok
            }

            /// Member `m` does its next table operation (or resource call).
            fn tick(&mut self, m: usize) -> bool {
                let me = IDS[m];
                let now = at(self.now);
                let members = self.members();
                let (next, acted) = match self.work[m].clone() {
                    Work::None => match step(me, &self.lock, &members, false, now) {
                        Step::Take(l) if self.put(&l) => match l.phase {
                            Phase::Sleeping => (Work::Took(l), true),
                            _ => (Work::Waking(l), true),
                        },
                        Step::Take(_) => (Work::None, true),
                        _ => (Work::None, false),
                    },
                    Work::Took(l) => match confirm_sleep(me, &l, &members, now) {
                        Confirm::Sleep => {
                            let saving = l.saving(me, three(), now);
                            let next = if self.put(&saving) {
                                Work::Saved(saving)
                            } else {
                                Work::None
                            };
                            (next, true)
                        }
                        Confirm::Release(r) => {
                            self.given_back = self.put(&r) && r.phase == Phase::Asleep;
                            (Work::None, true)
                        }
                    },
                    // The lock read right before the stop (team_sleep).
                    Work::Saved(l) if self.lock.version != l.version => (Work::None, true),
                    Work::Saved(l) => {
                        self.up = false;
                        (Work::Stopped(l), true)
                    }
                    Work::Stopped(l) => {
                        if !self.put(&l.asleep(me, now)) {
                            self.up = true;
                        }
                        (Work::None, true)
                    }
                    Work::Waking(l) => {
                        if l.saved.is_some() {
                            self.up = true;
                        }
                        (Work::Woke(l), true)
                    }
                    Work::Woke(l) => {
                        self.put(&l.woken(me, now));
                        (Work::None, true)
                    }
                };
                self.work[m] = next;
                acted
            }

            fn apply(&mut self, ev: &Ev, zombies: bool) {
                match *ev {
                    Ev::Toggle(m) if self.alive[m] => {
                        self.state[m] = match self.state[m] {
                            State::Active => State::Away,
                            State::Away => State::Active,
                        };
                        self.renew(m, true);
                    }
                    Ev::Kill(m) => self.alive[m] = false,
                    Ev::Revive(m) if !self.alive[m] => {
                        self.alive[m] = true;
                        if !zombies {
                            self.work[m] = Work::None;
                        }
                        self.renew(m, false);
                    }
                    Ev::Tick(m) if self.alive[m] => {
                        self.tick(m);
                    }
                    Ev::Advance(s) => {
                        self.now += s;
                        for m in 0..N {
                            if self.alive[m] {
                                self.renew(m, false);
                            }
                        }
                    }
                    _ => {}
                }
            }

            /// Every lease of the dead runs out; the living act until
            /// nothing changes.
            fn settle(&mut self) {
                self.apply(&Ev::Advance(LEASE + 1), false);
                for _ in 0..100 {
                    let mut acted = false;
                    for m in 0..N {
                        if self.alive[m] {
                            acted |= self.tick(m);
                        }
                    }
                    if !acted {
                        return;
                    }
                }
                panic!("never settled: {:?}", self.lock);
            }

            fn anyone(&self) -> bool {
                (0..N).any(|m| self.alive[m] && self.state[m] == State::Active)
            }
        }

        fn events() -> impl Strategy<Value = Vec<Ev>> {
            let m = 0..N;
            let ev = prop_oneof![
                1 => m.clone().prop_map(Ev::Toggle),
                1 => m.clone().prop_map(Ev::Kill),
                1 => m.clone().prop_map(Ev::Revive),
                4 => m.prop_map(Ev::Tick),
                1 => (1..2 * LEASE).prop_map(Ev::Advance),
            ];
            proptest::collection::vec(ev, 0..60)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// After things settle: up and idle while anyone is present,
            /// asleep once every lease has run out (if any member is still
            /// running to do it; a sleep given back as asleep is left to
            /// the next one back); at most one living
            /// member has a sleep or wake under way at any time.
            #[test]
            fn one_sleeper_one_waker_and_never_asleep_while_present(evs in events()) {
                let mut w = World::new();
                for ev in &evs {
                    w.apply(ev, false);
                    let busy = (0..N)
                        .filter(|m| w.alive[*m] && !matches!(w.work[*m], Work::None))
                        .count();
                    prop_assert!(busy <= 1, "{busy} at once after {ev:?}");
                }
                w.settle();
                if w.anyone() {
                    prop_assert!(w.up && w.lock.phase == Phase::Idle, "{:?}", w.lock);
                } else if w.alive.contains(&true) {
                    // Up while marked asleep only when the one who came
                    // back left again before waking it: a sleep missed,
                    // never a resource down.
                    prop_assert!(!w.up || w.given_back, "{:?}", w.lock);
                    prop_assert!(w.lock.phase == Phase::Asleep, "{:?}", w.lock);
                    prop_assert_eq!(w.lock.saved, Some(three()));
                }
            }

            /// Members cut off for longer than their lease that come back
            /// and finish what they were doing never leave it down while
            /// anyone is present.
            #[test]
            fn zombies_never_leave_it_down_while_someone_is_present(evs in events()) {
                let mut w = World::new();
                for ev in &evs {
                    w.apply(ev, true);
                }
                w.settle();
                if w.anyone() {
                    prop_assert!(w.up, "{:?}", w.lock);
                }
            }
        }
    }
}

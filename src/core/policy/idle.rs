//! The idle tracker: Active → Warning → Asleep → (first activity) → Active.
//!
//! Two more inputs change the countdown: while the tracker is *blind* (no
//! source that can see user input is running) it never sleeps by itself,
//! since it cannot tell an absent user from one it cannot see; and while the
//! session is *locked* the user is away, so sleep comes after the shorter
//! `lock_grace`. Only the unlock ends a lock: input at the lock screen (or
//! the compositor's own, as KWin's screen locker makes) restarts the grace
//! and wakes what is asleep, but the grace still follows it. Another program's idle inhibitor
//! (see [`super::inhibitors`]) is presence until a moment the caller
//! gives: the countdown starts from then at the latest; it never wakes
//! what is asleep, and a lock's grace ignores it.
//!
//! Resources may have their own timeout (services.yaml's `timeout_minutes`):
//! the tracker counts one idle time and puts each *timeout group* (the
//! resources of one timeout; [`IdleConfig::timeout`] is the group of every
//! resource without its own) to sleep when its timeout has passed, each
//! with its own warning. The user's return wakes every group at once; the
//! user is away ([`IdleState::Asleep`]) once every group is asleep.
//!
//! Pure: every method takes `now`; nothing here reads a clock. The caller
//! ticks it at [`IdleTracker::next_deadline`], which is never more than
//! `max_tick` away, so a gap much longer than that between two calls means
//! the machine itself was suspended.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Idle timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConfig {
    /// No activity for this long means the user is away: the timeout of
    /// every resource without its own.
    pub timeout: Duration,
    /// How long before a timeout the user is warned (0: no warning).
    pub warning: Duration,
    /// The longest the caller waits between ticks.
    pub max_tick: Duration,
    /// Sleep this long after the session locks (if sooner than the timeout).
    pub lock_grace: Duration,
}

/// What the tracker reports at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// The user is here; the next group sleeps in `sleep_in` without activity.
    Active { sleep_in: Duration },
    /// The warning of the next group is out; it sleeps in `sleep_in`.
    Warning { sleep_in: Duration },
    /// Some groups are asleep; the next of the others sleeps in `sleep_in`.
    PartlyAsleep { sleep_in: Duration },
    /// Every group is asleep until the next activity: the user is away.
    Asleep,
    /// Kept awake for `remaining`.
    Paused { remaining: Duration },
    /// No input source runs: nothing sleeps by itself.
    Blind,
}

/// A change the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdleEvent {
    /// Warn the user: the group of `timeout` sleeps in `sleep_in`.
    Warn {
        timeout: Duration,
        sleep_in: Duration,
    },
    /// Activity (or a pause) cancelled the warnings.
    WarningCancelled,
    /// Put the groups of these timeouts to sleep.
    Sleep(Vec<Duration>),
    /// Wake resources.
    Wake,
}

/// A timeout group at a moment (see [`IdleTracker::groups`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Its timeout.
    pub timeout: Duration,
    /// Put to sleep since the last activity.
    pub asleep: bool,
    /// Its warning is out.
    pub warned: bool,
    /// When it sleeps at the earliest without activity (a pause: after
    /// it); `None` when asleep, or blind (it does not sleep by itself).
    pub sleep_in: Option<Duration>,
}

/// Tracks activity and decides when the user is away.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleTracker {
    cfg: IdleConfig,
    /// The resources' own timeouts (besides `cfg.timeout`).
    own: BTreeSet<Duration>,
    last_activity: Instant,
    last_seen: Instant,
    paused_until: Option<Instant>,
    /// The groups whose warning is out.
    warned: BTreeSet<Duration>,
    /// The groups put to sleep since the last activity.
    slept: BTreeSet<Duration>,
    /// Everything is asleep, whatever its timeout (`SLEEP_NOW`, a start
    /// with records).
    all_asleep: bool,
    blind: bool,
    /// When the session locked, while it is locked.
    locked_at: Option<Instant>,
    /// While inhibitors count: the user is present until then.
    present_until: Option<Instant>,
}

impl IdleTracker {
    /// A tracker that counts from `now`.
    pub fn new(cfg: IdleConfig, now: Instant) -> Self {
        IdleTracker {
            cfg,
            own: BTreeSet::new(),
            last_activity: now,
            last_seen: now,
            paused_until: None,
            warned: BTreeSet::new(),
            slept: BTreeSet::new(),
            all_asleep: false,
            blind: false,
            locked_at: None,
            present_until: None,
        }
    }

    /// Applies new timings (live reload); the idle time so far is kept.
    pub fn set_config(&mut self, cfg: IdleConfig) {
        self.cfg = cfg;
    }

    /// Sets the resources' own timeouts (services.yaml changed); the idle
    /// time so far is kept, and so is what is asleep.
    pub fn set_timeouts(&mut self, own: BTreeSet<Duration>) {
        self.own = own;
    }

    /// The resources' own timeouts, as last set.
    pub fn own_timeouts(&self) -> &BTreeSet<Duration> {
        &self.own
    }

    /// The current timings.
    pub fn config(&self) -> IdleConfig {
        self.cfg
    }

    /// Every timeout group, shortest first: the resources' own timeouts
    /// and [`IdleConfig::timeout`].
    pub fn timeouts(&self) -> Vec<Duration> {
        let mut all = self.own.clone();
        all.insert(self.cfg.timeout);
        all.into_iter().collect()
    }

    fn warning(&self, timeout: Duration) -> Duration {
        self.cfg.warning.min(timeout)
    }

    /// Whether the group of `timeout` is asleep.
    pub fn sleeps(&self, timeout: Duration) -> bool {
        self.all_asleep || self.slept.contains(&timeout)
    }

    /// Whether any group is asleep (the user's return wakes it).
    pub fn anything_asleep(&self) -> bool {
        self.all_asleep || !self.slept.is_empty()
    }

    /// Whether every group is asleep: the user is away.
    fn all_groups_asleep(&self) -> bool {
        self.all_asleep || self.timeouts().iter().all(|t| self.slept.contains(t))
    }

    /// Nothing sleeps by itself: no input source runs and the session is
    /// not locked.
    fn blinded(&self) -> bool {
        self.blind && self.locked_at.is_none()
    }

    /// A call long after the previous one means the machine was suspended:
    /// the user opening the laptop is activity, not a reason to sleep at once.
    fn observe(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_seen) > self.cfg.max_tick * 3;
        if gap && !self.all_groups_asleep() {
            self.last_activity = self.last_activity.max(now);
        }
        self.last_seen = self.last_seen.max(now);
    }

    fn cancel_warning(&mut self) -> Option<IdleEvent> {
        let was = std::mem::take(&mut self.warned);
        (!was.is_empty()).then_some(IdleEvent::WarningCancelled)
    }

    /// Wakes every group if any is asleep.
    fn wake(&mut self) -> Option<IdleEvent> {
        if !self.anything_asleep() {
            return None;
        }
        self.all_asleep = false;
        self.slept.clear();
        self.warned.clear();
        Some(IdleEvent::Wake)
    }

    /// Whether any source can see user input. Going blind cancels a
    /// warning; seeing again restarts the countdown from `now` (while blind,
    /// the user may have been there all along).
    pub fn set_blind(&mut self, now: Instant, blind: bool) -> Option<IdleEvent> {
        self.observe(now);
        if self.blind == blind {
            return None;
        }
        self.blind = blind;
        if blind {
            self.cancel_warning()
        } else {
            self.last_activity = self.last_activity.max(now);
            None
        }
    }

    /// The session locked: the user is away; sleep comes after the lock
    /// grace unless the timeout comes first.
    pub fn lock(&mut self, now: Instant) {
        self.observe(now);
        self.locked_at.get_or_insert(now);
    }

    /// Idle inhibitors keep the user present until `until` (`None`: none
    /// counts any more; the presence they gave lasts until `now` at most).
    /// Never wakes what is asleep; a later `until` cancels a warning.
    pub fn inhibit(&mut self, now: Instant, until: Option<Instant>) -> Option<IdleEvent> {
        self.observe(now);
        // A limit already past gives no presence at all.
        let until = until.filter(|u| *u > now);
        let was = std::mem::replace(&mut self.present_until, until);
        match (was, until) {
            (Some(was), None) => self.last_activity = self.last_activity.max(was.min(now)),
            (_, Some(_)) if !self.all_groups_asleep() => return self.cancel_warning(),
            _ => {}
        }
        None
    }

    /// The session unlocked: the user is back, and the lock is over.
    pub fn unlock(&mut self, now: Instant) -> Option<IdleEvent> {
        self.locked_at = None;
        self.activity(now)
    }

    /// The user did something. While locked, the lock stays: sleep comes
    /// the lock grace after this, unless the session unlocks.
    pub fn activity(&mut self, now: Instant) -> Option<IdleEvent> {
        self.observe(now);
        self.last_activity = self.last_activity.max(now);
        self.wake().or_else(|| self.cancel_warning())
    }

    /// Whether the session is locked now (the user is away).
    pub fn locked(&self) -> bool {
        self.locked_at.is_some()
    }

    /// When the group of `timeout` sleeps without activity: the timeout
    /// after the last activity (or the pause's end), or the lock grace
    /// after a lock.
    fn sleep_at(&self, timeout: Duration) -> Instant {
        let start = match self.paused_until {
            Some(until) => self.last_activity.max(until),
            None => self.last_activity,
        };
        let present = self.present_until.map_or(start, |until| start.max(until));
        let by_timeout = present + timeout;
        match self.locked_at {
            Some(locked) => by_timeout.min(locked.max(start) + self.cfg.lock_grace),
            None => by_timeout,
        }
    }

    /// The groups still awake, shortest timeout first.
    fn awake(&self) -> Vec<Duration> {
        let mut awake = self.timeouts();
        awake.retain(|t| !self.sleeps(*t));
        awake
    }

    /// The timeout groups due at `now`: awake, their timeout (or the lock
    /// grace) passed, not paused, not blind.
    pub fn due(&self, now: Instant) -> Vec<Duration> {
        if self.blinded() || self.paused_until.is_some_and(|u| now < u) {
            return Vec::new();
        }
        let mut due = self.awake();
        due.retain(|t| self.sleep_at(*t) <= now);
        due
    }

    /// When the next awake group is due (`None`: nothing sleeps by itself
    /// now: all asleep, or blind).
    pub fn next_due(&self) -> Option<Instant> {
        if self.blinded() {
            return None;
        }
        self.awake().into_iter().map(|t| self.sleep_at(t)).min()
    }

    /// Advances time; returns a warning or a sleep when one is due.
    pub fn tick(&mut self, now: Instant) -> Option<IdleEvent> {
        self.observe(now);
        if let Some(until) = self.paused_until {
            if now < until {
                return None;
            }
            self.paused_until = None;
            self.last_activity = self.last_activity.max(until);
        }
        let due = self.due(now);
        if !due.is_empty() {
            self.slept.extend(due.iter().copied());
            self.warned.retain(|t| !due.contains(t));
            return Some(IdleEvent::Sleep(due));
        }
        if self.blinded() {
            return None;
        }
        let warn = (self.awake().into_iter())
            .filter(|t| !self.warned.contains(t) && !self.warning(*t).is_zero())
            .map(|t| (t, self.sleep_at(t).saturating_duration_since(now)))
            .find(|(t, left)| *left <= self.warning(*t));
        let (timeout, sleep_in) = warn?;
        self.warned.insert(timeout);
        Some(IdleEvent::Warn { timeout, sleep_in })
    }

    /// Whether `self` says more than `before` did than when the clock was
    /// last looked at (what a [`Self::tick`] that changed nothing changes).
    pub fn moved_on_from(&self, before: &IdleTracker) -> bool {
        *self
            != IdleTracker {
                last_seen: self.last_seen,
                ..before.clone()
            }
    }

    /// Keeps resources awake until `until`. Wakes them if asleep.
    pub fn pause_until(&mut self, now: Instant, until: Instant) -> Option<IdleEvent> {
        self.observe(now);
        self.paused_until = Some(until);
        if self.anything_asleep() {
            self.last_activity = now;
            return self.wake();
        }
        self.cancel_warning()
    }

    /// Ends a pause; the idle countdown starts again from `now`.
    pub fn resume(&mut self, now: Instant) {
        self.observe(now);
        if self.paused_until.take().is_some() {
            self.last_activity = self.last_activity.max(now);
        }
    }

    /// Marks every resource as put to sleep by hand (`SLEEP_NOW`).
    pub fn force_sleep(&mut self, now: Instant) {
        self.observe(now);
        self.paused_until = None;
        self.warned.clear();
        self.all_asleep = true;
    }

    /// Each timeout group at `now`, shortest timeout first.
    pub fn groups(&self, now: Instant) -> Vec<Group> {
        let paused = self.paused_until.filter(|u| now < *u);
        (self.timeouts().into_iter())
            .map(|timeout| {
                let asleep = self.sleeps(timeout);
                let sleep_in = match paused {
                    _ if asleep || self.blinded() => None,
                    Some(until) => Some(until - now + timeout),
                    None => Some(self.sleep_at(timeout).saturating_duration_since(now)),
                };
                Group {
                    timeout,
                    asleep,
                    warned: self.warned.contains(&timeout),
                    sleep_in,
                }
            })
            .collect()
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> IdleState {
        if self.all_groups_asleep() {
            return IdleState::Asleep;
        }
        if let Some(until) = self.paused_until.filter(|u| now < *u) {
            return IdleState::Paused {
                remaining: until - now,
            };
        }
        if self.blinded() {
            return IdleState::Blind;
        }
        let next = self.next_due().unwrap_or(now);
        let sleep_in = next.saturating_duration_since(now);
        if self.anything_asleep() {
            IdleState::PartlyAsleep { sleep_in }
        } else if !self.warned.is_empty() {
            IdleState::Warning { sleep_in }
        } else {
            IdleState::Active { sleep_in }
        }
    }

    /// When `tick` must be called next (never more than `max_tick` away):
    /// the end of a pause, else the next group's warning or sleep.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let cap = now + self.cfg.max_tick;
        let due = if let Some(until) = self.paused_until.filter(|u| now < *u) {
            Some(until)
        } else if self.blinded() {
            None
        } else {
            (self.awake().into_iter())
                .map(|t| {
                    let at = self.sleep_at(t);
                    match self.warned.contains(&t) || self.warning(t).is_zero() {
                        true => at,
                        false => at.checked_sub(self.warning(t)).unwrap_or(now),
                    }
                })
                .min()
        };
        due.map_or(cap, |d| d.max(now).min(cap))
    }
}

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;

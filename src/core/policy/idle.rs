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
//! Pure: every method takes `now`; nothing here reads a clock. The caller
//! ticks it at [`IdleTracker::next_deadline`], which is never more than
//! `max_tick` away, so a gap much longer than that between two calls means
//! the machine itself was suspended.

use std::time::{Duration, Instant};

/// Idle timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConfig {
    /// No activity for this long means the user is away.
    pub timeout: Duration,
    /// How long before the timeout the user is warned (0: no warning).
    pub warning: Duration,
    /// The longest the caller waits between ticks.
    pub max_tick: Duration,
    /// Sleep this long after the session locks (if sooner than the timeout).
    pub lock_grace: Duration,
}

/// What the tracker reports at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// The user is here; sleep in `sleep_in` without activity.
    Active { sleep_in: Duration },
    /// The warning is out; sleep in `sleep_in` without activity.
    Warning { sleep_in: Duration },
    /// Resources are asleep until the next activity.
    Asleep,
    /// Kept awake for `remaining`.
    Paused { remaining: Duration },
    /// No input source runs: nothing sleeps by itself.
    Blind,
}

/// A change the caller must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEvent {
    /// Warn the user: sleep in `sleep_in`.
    Warn { sleep_in: Duration },
    /// Activity (or a pause) cancelled the warning.
    WarningCancelled,
    /// Put resources to sleep.
    Sleep,
    /// Wake resources.
    Wake,
}

/// Tracks activity and decides when the user is away.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleTracker {
    cfg: IdleConfig,
    last_activity: Instant,
    last_seen: Instant,
    paused_until: Option<Instant>,
    warned: bool,
    asleep: bool,
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
            last_activity: now,
            last_seen: now,
            paused_until: None,
            warned: false,
            asleep: false,
            blind: false,
            locked_at: None,
            present_until: None,
        }
    }

    /// Applies new timings (live reload); the idle time so far is kept.
    pub fn set_config(&mut self, cfg: IdleConfig) {
        self.cfg = cfg;
    }

    /// The current timings.
    pub fn config(&self) -> IdleConfig {
        self.cfg
    }

    fn warning(&self) -> Duration {
        self.cfg.warning.min(self.cfg.timeout)
    }

    /// A call long after the previous one means the machine was suspended:
    /// the user opening the laptop is activity, not a reason to sleep at once.
    fn observe(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_seen) > self.cfg.max_tick * 3 && !self.asleep {
            self.last_activity = self.last_activity.max(now);
        }
        self.last_seen = self.last_seen.max(now);
    }

    fn cancel_warning(&mut self) -> Option<IdleEvent> {
        std::mem::take(&mut self.warned).then_some(IdleEvent::WarningCancelled)
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
            (_, Some(_)) if !self.asleep => return self.cancel_warning(),
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
        if std::mem::take(&mut self.asleep) {
            self.warned = false;
            return Some(IdleEvent::Wake);
        }
        self.cancel_warning()
    }

    /// Whether the session is locked now (the user is away).
    pub fn locked(&self) -> bool {
        self.locked_at.is_some()
    }

    /// When sleep is due without activity: the timeout after the last
    /// activity (or the pause's end), or the lock grace after a lock.
    fn sleep_at(&self) -> Instant {
        let start = match self.paused_until {
            Some(until) => self.last_activity.max(until),
            None => self.last_activity,
        };
        let present = self.present_until.map_or(start, |until| start.max(until));
        let by_timeout = present + self.cfg.timeout;
        match self.locked_at {
            Some(locked) => by_timeout.min(locked.max(start) + self.cfg.lock_grace),
            None => by_timeout,
        }
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
        let locked = self.locked_at.is_some();
        if self.asleep || (self.blind && !locked) {
            return None;
        }
        let left = self.sleep_at().saturating_duration_since(now);
        if left.is_zero() {
            self.asleep = true;
            self.warned = false;
            Some(IdleEvent::Sleep)
        } else if !self.warned && !self.warning().is_zero() && left <= self.warning() {
            self.warned = true;
            Some(IdleEvent::Warn { sleep_in: left })
        } else {
            None
        }
    }

    /// Keeps resources awake until `until`. Wakes them if asleep.
    pub fn pause_until(&mut self, now: Instant, until: Instant) -> Option<IdleEvent> {
        self.observe(now);
        self.paused_until = Some(until);
        if std::mem::take(&mut self.asleep) {
            self.last_activity = now;
            return Some(IdleEvent::Wake);
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

    /// Marks resources as put to sleep by hand (`SLEEP_NOW`).
    pub fn force_sleep(&mut self, now: Instant) {
        self.observe(now);
        self.paused_until = None;
        self.warned = false;
        self.asleep = true;
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> IdleState {
        if self.asleep {
            return IdleState::Asleep;
        }
        if let Some(until) = self.paused_until.filter(|u| now < *u) {
            return IdleState::Paused {
                remaining: until - now,
            };
        }
        if self.blind && self.locked_at.is_none() {
            return IdleState::Blind;
        }
        let sleep_in = self.sleep_at().saturating_duration_since(now);
        if self.warned {
            IdleState::Warning { sleep_in }
        } else {
            IdleState::Active { sleep_in }
        }
    }

    /// When `tick` must be called next (never more than `max_tick` away).
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let cap = now + self.cfg.max_tick;
        let due = if self.asleep || (self.blind && self.locked_at.is_none()) {
            cap
        } else if let Some(until) = self.paused_until.filter(|u| now < *u) {
            until
        } else if self.warned || self.warning().is_zero() {
            self.sleep_at()
        } else {
            self.sleep_at().checked_sub(self.warning()).unwrap_or(now)
        };
        due.max(now).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const STEP: Duration = Duration::from_secs(10);

    fn tracker(t0: Instant) -> IdleTracker {
        IdleTracker::new(
            IdleConfig {
                timeout: 30 * MIN,
                warning: 2 * MIN,
                max_tick: Duration::from_secs(30),
                lock_grace: 2 * MIN,
            },
            t0,
        )
    }

    /// Ticks every 10 s after `from` up to `to`, collecting (time since t0, event).
    fn run(
        t: &mut IdleTracker,
        t0: Instant,
        from: Duration,
        to: Duration,
    ) -> Vec<(Duration, IdleEvent)> {
        let mut out = Vec::new();
        let mut at = from + STEP;
        while at <= to {
            if let Some(e) = t.tick(t0 + at) {
                out.push((at, e));
            }
            at += STEP;
        }
        out
    }

    #[test]
    fn warns_then_sleeps_at_the_timeout() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        assert_eq!(
            run(&mut t, t0, Duration::ZERO, 31 * MIN),
            vec![
                (28 * MIN, IdleEvent::Warn { sleep_in: 2 * MIN }),
                (30 * MIN, IdleEvent::Sleep)
            ]
        );
        assert_eq!(t.state(t0 + 31 * MIN), IdleState::Asleep);
    }

    #[test]
    fn activity_cancels_the_warning_and_restarts_the_countdown() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        assert_eq!(run(&mut t, t0, Duration::ZERO, 29 * MIN).len(), 1);
        assert_eq!(t.state(t0 + 29 * MIN), IdleState::Warning { sleep_in: MIN });
        assert_eq!(t.activity(t0 + 29 * MIN), Some(IdleEvent::WarningCancelled));
        assert_eq!(run(&mut t, t0, 29 * MIN, 50 * MIN), vec![]);
        assert_eq!(
            t.state(t0 + 50 * MIN),
            IdleState::Active { sleep_in: 9 * MIN }
        );
        assert_eq!(t.activity(t0 + 50 * MIN), None, "no warning to cancel");
    }

    #[test]
    fn first_activity_after_sleep_wakes_immediately() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        run(&mut t, t0, Duration::ZERO, 30 * MIN);
        assert_eq!(t.state(t0 + 30 * MIN), IdleState::Asleep);
        assert_eq!(run(&mut t, t0, 30 * MIN, 40 * MIN), vec![], "sleeps once");
        assert_eq!(t.activity(t0 + 41 * MIN), Some(IdleEvent::Wake));
        assert_eq!(t.activity(t0 + 41 * MIN), None, "wakes once");
        assert_eq!(
            t.state(t0 + 41 * MIN),
            IdleState::Active { sleep_in: 30 * MIN }
        );
    }

    #[test]
    fn pause_keeps_awake_until_its_end_then_counts_from_there() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        run(&mut t, t0, Duration::ZERO, 29 * MIN);
        assert_eq!(
            t.pause_until(t0 + 29 * MIN, t0 + 89 * MIN),
            Some(IdleEvent::WarningCancelled)
        );
        assert_eq!(run(&mut t, t0, 29 * MIN, 60 * MIN), vec![]);
        assert_eq!(
            t.state(t0 + 60 * MIN),
            IdleState::Paused {
                remaining: 29 * MIN
            }
        );
        // After the pause: 30 minutes from its end.
        let ev = run(&mut t, t0, 60 * MIN, 120 * MIN);
        assert_eq!(
            ev.first(),
            Some(&(117 * MIN, IdleEvent::Warn { sleep_in: 2 * MIN }))
        );
        assert_eq!(ev.last(), Some(&(119 * MIN, IdleEvent::Sleep)));
    }

    #[test]
    fn pause_while_asleep_wakes_and_resume_restarts_the_countdown() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        t.force_sleep(t0);
        assert_eq!(
            t.pause_until(t0 + MIN, t0 + 61 * MIN),
            Some(IdleEvent::Wake)
        );
        t.resume(t0 + 2 * MIN);
        assert_eq!(
            t.state(t0 + 2 * MIN),
            IdleState::Active { sleep_in: 30 * MIN }
        );
        assert_eq!(
            run(&mut t, t0, 2 * MIN, 32 * MIN).last(),
            Some(&(32 * MIN, IdleEvent::Sleep))
        );
    }

    #[test]
    fn a_clock_jump_from_suspend_does_not_sleep_at_once() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        run(&mut t, t0, Duration::ZERO, 10 * MIN);
        // The laptop was suspended for 8 hours; the first tick after it must not sleep.
        let resumed = t0 + 490 * MIN;
        assert_eq!(t.tick(resumed), None);
        assert_eq!(t.state(resumed), IdleState::Active { sleep_in: 30 * MIN });
        // A key press right after resume is plain activity, and without one
        // the full timeout runs again from the resume.
        assert_eq!(t.activity(resumed + Duration::from_secs(1)), None);
        let ev = run(&mut t, t0, 490 * MIN, 530 * MIN);
        assert_eq!(ev.last().map(|e| e.1), Some(IdleEvent::Sleep));
    }

    #[test]
    fn next_deadline_is_the_warning_then_the_timeout_capped_by_max_tick() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let s = Duration::from_secs;
        assert_eq!(t.next_deadline(t0), t0 + s(30));
        assert_eq!(t.next_deadline(t0 + 27 * MIN + s(40)), t0 + 28 * MIN);
        run(&mut t, t0, Duration::ZERO, 28 * MIN);
        assert_eq!(t.next_deadline(t0 + 29 * MIN + s(45)), t0 + 30 * MIN);
        let short = IdleConfig {
            timeout: s(6),
            warning: Duration::ZERO,
            max_tick: s(30),
            lock_grace: s(120),
        };
        t = IdleTracker::new(short, t0);
        assert_eq!(t.next_deadline(t0), t0 + s(6));
        assert_eq!(t.tick(t0 + s(6)), Some(IdleEvent::Sleep));
    }

    #[test]
    fn a_blind_tracker_never_sleeps_by_itself_and_seeing_again_restarts_the_countdown() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        // Warned at 28 min, then every input source dies.
        assert_eq!(run(&mut t, t0, Duration::ZERO, 28 * MIN).len(), 1);
        assert_eq!(
            t.set_blind(t0 + 28 * MIN, true),
            Some(IdleEvent::WarningCancelled)
        );
        assert_eq!(t.state(t0 + 29 * MIN), IdleState::Blind);
        assert!(
            run(&mut t, t0, 28 * MIN, 180 * MIN).is_empty(),
            "3x the timeout: nothing"
        );
        assert_eq!(
            t.next_deadline(t0 + 180 * MIN),
            t0 + 180 * MIN + t.config().max_tick
        );
        // SLEEP_NOW still works, and the first activity wakes.
        t.force_sleep(t0 + 181 * MIN);
        assert_eq!(t.state(t0 + 181 * MIN), IdleState::Asleep);
        assert_eq!(t.activity(t0 + 182 * MIN), Some(IdleEvent::Wake));
        assert_eq!(t.state(t0 + 182 * MIN), IdleState::Blind);
        // A source comes back: a full timeout from then.
        assert_eq!(t.set_blind(t0 + 190 * MIN, false), None);
        let events = run(&mut t, t0, 190 * MIN, 221 * MIN);
        assert_eq!(
            events,
            vec![
                (218 * MIN, IdleEvent::Warn { sleep_in: 2 * MIN }),
                (220 * MIN, IdleEvent::Sleep)
            ]
        );
    }

    #[test]
    fn a_lock_sleeps_after_the_grace_and_an_unlock_wakes() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        t.lock(t0 + 5 * MIN);
        assert_eq!(
            t.state(t0 + 5 * MIN),
            IdleState::Active { sleep_in: 2 * MIN },
            "the grace, not the 25 min left"
        );
        let events = run(&mut t, t0, 5 * MIN, 8 * MIN);
        assert_eq!(
            events,
            vec![
                (
                    5 * MIN + STEP,
                    IdleEvent::Warn {
                        sleep_in: 2 * MIN - STEP
                    }
                ),
                (7 * MIN, IdleEvent::Sleep)
            ]
        );
        assert_eq!(t.unlock(t0 + 60 * MIN), Some(IdleEvent::Wake), "unlock");
        assert_eq!(
            t.state(t0 + 60 * MIN),
            IdleState::Active { sleep_in: 30 * MIN }
        );
        // A lock close to the timeout does not push it later.
        run(&mut t, t0, 60 * MIN, 89 * MIN);
        t.lock(t0 + 89 * MIN);
        assert_eq!(t.state(t0 + 89 * MIN), IdleState::Warning { sleep_in: MIN });
        // Locked while blind: the lock is a sign of absence the tracker can see.
        let mut b = tracker(t0);
        b.set_blind(t0, true);
        b.lock(t0 + MIN);
        assert_eq!(
            run(&mut b, t0, MIN, 3 * MIN).last(),
            Some(&(3 * MIN, IdleEvent::Sleep))
        );
    }

    #[test]
    fn input_at_the_lock_screen_restarts_the_grace_and_only_the_unlock_ends_it() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        t.lock(t0 + 5 * MIN);
        // A key at the lock screen a minute later: the grace starts again,
        // the 30 min timeout does not come back.
        assert_eq!(t.activity(t0 + 6 * MIN), None);
        assert!(t.locked());
        assert_eq!(
            run(&mut t, t0, 6 * MIN, 9 * MIN).last(),
            Some(&(8 * MIN, IdleEvent::Sleep))
        );
        // Asleep and locked: input wakes, and sleep follows the grace again.
        assert_eq!(t.activity(t0 + 20 * MIN), Some(IdleEvent::Wake));
        assert_eq!(
            t.state(t0 + 20 * MIN),
            IdleState::Active { sleep_in: 2 * MIN }
        );
        // The unlock ends the lock: the full timeout again.
        assert_eq!(t.unlock(t0 + 21 * MIN), None);
        assert!(!t.locked());
        assert_eq!(
            t.state(t0 + 21 * MIN),
            IdleState::Active { sleep_in: 30 * MIN }
        );
    }

    #[test]
    fn an_inhibitor_is_presence_until_its_limit_then_the_countdown_runs() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        // Held from 10 min, counting until 120 min after the input at t0.
        assert_eq!(t.inhibit(t0 + 10 * MIN, Some(t0 + 120 * MIN)), None);
        assert_eq!(
            t.state(t0 + 10 * MIN),
            IdleState::Active {
                sleep_in: 140 * MIN
            }
        );
        assert_eq!(
            run(&mut t, t0, 10 * MIN, 151 * MIN),
            vec![
                (148 * MIN, IdleEvent::Warn { sleep_in: 2 * MIN }),
                (150 * MIN, IdleEvent::Sleep)
            ],
            "the timeout after the limit, with its warning"
        );
        // Asleep: an inhibitor never wakes.
        assert_eq!(t.inhibit(t0 + 160 * MIN, Some(t0 + 300 * MIN)), None);
        assert_eq!(t.state(t0 + 160 * MIN), IdleState::Asleep);
    }

    #[test]
    fn a_released_inhibitor_counts_until_its_release_and_cancels_no_more() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        assert_eq!(run(&mut t, t0, Duration::ZERO, 29 * MIN).len(), 1, "warned");
        // Taken during the warning: it cancels it.
        assert_eq!(
            t.inhibit(t0 + 29 * MIN, Some(t0 + 120 * MIN)),
            Some(IdleEvent::WarningCancelled)
        );
        assert_eq!(run(&mut t, t0, 29 * MIN, 40 * MIN), vec![]);
        // Released at 40 min: the countdown starts there.
        assert_eq!(t.inhibit(t0 + 40 * MIN, None), None);
        assert_eq!(
            t.state(t0 + 40 * MIN),
            IdleState::Active { sleep_in: 30 * MIN }
        );
        assert_eq!(
            run(&mut t, t0, 40 * MIN, 71 * MIN).last(),
            Some(&(70 * MIN, IdleEvent::Sleep))
        );
        // A limit already past changes nothing.
        let mut late = tracker(t0);
        run(&mut late, t0, Duration::ZERO, 5 * MIN);
        assert_eq!(late.inhibit(t0 + 5 * MIN, Some(t0 + MIN)), None);
        assert_eq!(
            late.state(t0 + 5 * MIN),
            IdleState::Active { sleep_in: 25 * MIN }
        );
    }

    #[test]
    fn a_lock_sleeps_after_its_grace_whatever_the_inhibitors() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        t.inhibit(t0, Some(t0 + 120 * MIN));
        t.lock(t0 + 5 * MIN);
        assert_eq!(
            t.state(t0 + 5 * MIN),
            IdleState::Active { sleep_in: 2 * MIN }
        );
    }
}

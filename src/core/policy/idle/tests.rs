//! The idle tracker's tests: one timeout (the groups' are in groups.rs).

use super::*;

const MIN: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(10);

/// The sleep of the one group (30 minutes).
fn sleep() -> IdleEvent {
    IdleEvent::Sleep(vec![30 * MIN])
}

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
            (
                28 * MIN,
                IdleEvent::Warn {
                    timeout: 30 * MIN,
                    sleep_in: 2 * MIN
                }
            ),
            (30 * MIN, sleep())
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
        Some(&(
            117 * MIN,
            IdleEvent::Warn {
                timeout: 30 * MIN,
                sleep_in: 2 * MIN
            }
        ))
    );
    assert_eq!(ev.last(), Some(&(119 * MIN, sleep())));
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
        Some(&(32 * MIN, sleep()))
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
    assert_eq!(ev.last().map(|e| e.1.clone()), Some(sleep()));
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
    assert_eq!(t.tick(t0 + s(6)), Some(IdleEvent::Sleep(vec![s(6)])));
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
            (
                218 * MIN,
                IdleEvent::Warn {
                    timeout: 30 * MIN,
                    sleep_in: 2 * MIN
                }
            ),
            (220 * MIN, sleep())
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
                    timeout: 30 * MIN,
                    sleep_in: 2 * MIN - STEP
                }
            ),
            (7 * MIN, sleep())
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
        Some(&(3 * MIN, sleep()))
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
        Some(&(8 * MIN, sleep()))
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
            (
                148 * MIN,
                IdleEvent::Warn {
                    timeout: 30 * MIN,
                    sleep_in: 2 * MIN
                }
            ),
            (150 * MIN, sleep())
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
        Some(&(70 * MIN, sleep()))
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

#[test]
fn a_tick_that_changes_nothing_but_the_clock_it_saw_has_not_moved_on() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    let before = t.clone();
    assert_eq!(t.tick(t0 + STEP), None);
    assert!(!t.moved_on_from(&before), "only the time seen");
    assert_ne!(t, before);
    // The warning's tick has.
    let mut at = STEP;
    loop {
        at += STEP;
        let before = t.clone();
        match t.tick(t0 + at) {
            None => assert!(!t.moved_on_from(&before), "at {at:?}"),
            Some(e) => {
                assert!(matches!(e, IdleEvent::Warn { .. }), "{e:?}");
                assert!(t.moved_on_from(&before));
                break;
            }
        }
    }
}

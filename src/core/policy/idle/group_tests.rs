//! The idle tracker's timeout groups (services.yaml's `timeout_minutes`),
//! on an explicit clock.

use super::*;

const S: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

/// Default 30 min, warning 3 s, and resources of their own 6 s and 20 s.
fn tracker(t0: Instant) -> IdleTracker {
    let mut t = IdleTracker::new(
        IdleConfig {
            timeout: 30 * MIN,
            warning: 3 * S,
            max_tick: 30 * S,
            lock_grace: 2 * MIN,
        },
        t0,
    );
    t.set_timeouts([6 * S, 20 * S].into());
    t
}

/// Ticks at each `next_deadline` from `t0` until `to`: (time since t0, event).
fn run(t: &mut IdleTracker, t0: Instant, to: Duration) -> Vec<(Duration, IdleEvent)> {
    let mut out = Vec::new();
    let mut at = t0;
    while at <= t0 + to {
        if let Some(e) = t.tick(at) {
            out.push((at - t0, e));
        }
        at = t.next_deadline(at).max(at + Duration::from_millis(1));
    }
    out
}

fn warn(timeout: Duration, sleep_in: Duration) -> IdleEvent {
    IdleEvent::Warn { timeout, sleep_in }
}

#[test]
fn each_group_is_warned_and_sleeps_at_its_own_timeout() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    assert_eq!(t.timeouts(), [6 * S, 20 * S, 30 * MIN]);
    assert_eq!(t.next_due(), Some(t0 + 6 * S));
    assert_eq!(t.next_deadline(t0), t0 + 3 * S, "the first warning");
    assert_eq!(
        run(&mut t, t0, 21 * S),
        [
            (3 * S, warn(6 * S, 3 * S)),
            (6 * S, IdleEvent::Sleep(vec![6 * S])),
            (17 * S, warn(20 * S, 3 * S)),
            (20 * S, IdleEvent::Sleep(vec![20 * S])),
        ]
    );
    assert!(t.sleeps(6 * S) && t.sleeps(20 * S) && !t.sleeps(30 * MIN));
    assert_eq!(t.due(t0 + 21 * S), Vec::<Duration>::new(), "each once");
    assert_eq!(t.next_due(), Some(t0 + 30 * MIN));
    // The default group still counts: partly asleep, not away.
    let left = 30 * MIN - 21 * S;
    assert_eq!(
        t.state(t0 + 21 * S),
        IdleState::PartlyAsleep { sleep_in: left }
    );
    let rows: Vec<(bool, Option<Duration>)> = (t.groups(t0 + 21 * S).iter())
        .map(|g| (g.asleep, g.sleep_in))
        .collect();
    assert_eq!(rows, [(true, None), (true, None), (false, Some(left))]);
    // At 30 min the last one (its warning 3 s before): away.
    assert_eq!(
        run(&mut t, t0, 30 * MIN),
        [
            (30 * MIN - 3 * S, warn(30 * MIN, 3 * S)),
            (30 * MIN, IdleEvent::Sleep(vec![30 * MIN]))
        ]
    );
    assert_eq!(t.state(t0 + 30 * MIN), IdleState::Asleep);
}

#[test]
fn the_return_wakes_every_group_at_once_and_the_countdowns_restart() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    run(&mut t, t0, 7 * S);
    assert!(t.sleeps(6 * S) && t.anything_asleep());
    assert_eq!(
        t.groups(t0 + 7 * S)[1],
        Group {
            timeout: 20 * S,
            asleep: false,
            warned: false,
            sleep_in: Some(13 * S)
        }
    );
    assert_eq!(t.activity(t0 + 8 * S), Some(IdleEvent::Wake));
    assert_eq!(t.activity(t0 + 8 * S), None, "wakes once");
    assert!(!t.anything_asleep());
    assert_eq!(t.state(t0 + 8 * S), IdleState::Active { sleep_in: 6 * S });
    assert_eq!(t.due(t0 + 14 * S), [6 * S]);
    assert_eq!(t.due(t0 + 28 * S), [6 * S, 20 * S], "due together if late");
}

#[test]
fn a_warning_of_the_later_group_is_cancelled_by_activity() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    run(&mut t, t0, 18 * S);
    assert_eq!(
        t.state(t0 + 18 * S),
        IdleState::PartlyAsleep { sleep_in: 2 * S }
    );
    assert!(t.groups(t0 + 18 * S)[1].warned);
    // The first group asleep: the return is a wake (which ends the warning).
    assert_eq!(t.activity(t0 + 18 * S), Some(IdleEvent::Wake));
    assert!(!t.groups(t0 + 18 * S)[1].warned);
}

#[test]
fn a_lock_sleeps_every_group_longer_than_its_grace_together() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    t.set_timeouts([6 * S, 60 * MIN].into());
    t.lock(t0);
    assert_eq!(t.next_due(), Some(t0 + 6 * S));
    let events = run(&mut t, t0, 2 * MIN);
    assert!(events.contains(&(6 * S, IdleEvent::Sleep(vec![6 * S]))));
    assert_eq!(
        events.last(),
        Some(&(2 * MIN, IdleEvent::Sleep(vec![30 * MIN, 60 * MIN])))
    );
    assert_eq!(t.next_due(), None);
    assert_eq!(t.state(t0 + 2 * MIN), IdleState::Asleep);
}

#[test]
fn a_pause_holds_every_group_and_sleep_now_sleeps_every_group() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    run(&mut t, t0, 7 * S);
    // A hold on everything wakes the asleep group and holds them all.
    assert_eq!(
        t.pause_until(t0 + 7 * S, t0 + 60 * S),
        Some(IdleEvent::Wake)
    );
    assert!(t.due(t0 + 59 * S).is_empty());
    let ins: Vec<Option<Duration>> = (t.groups(t0 + 10 * S).iter()).map(|g| g.sleep_in).collect();
    assert_eq!(ins, [Some(56 * S), Some(70 * S), Some(50 * S + 30 * MIN)]);
    assert_eq!(t.next_deadline(t0 + 10 * S), t0 + 40 * S, "max tick");
    assert_eq!(t.tick(t0 + 66 * S), Some(IdleEvent::Sleep(vec![6 * S])));
    // SLEEP_NOW: every group, and one added later too.
    t.force_sleep(t0 + 70 * S);
    assert_eq!(t.state(t0 + 70 * S), IdleState::Asleep);
    t.set_timeouts([6 * S, 20 * S, 90 * MIN].into());
    assert!(t.sleeps(90 * MIN) && t.due(t0 + 200 * MIN).is_empty());
    assert_eq!(t.next_due(), None);
    assert_eq!(t.activity(t0 + 80 * S), Some(IdleEvent::Wake));
    assert_eq!(t.next_due(), Some(t0 + 86 * S));
}

#[test]
fn blind_nothing_is_due_and_nothing_has_a_time() {
    let t0 = Instant::now();
    let mut t = tracker(t0);
    t.set_blind(t0, true);
    assert!(t.due(t0 + 60 * MIN).is_empty());
    assert_eq!(t.next_due(), None);
    assert!(t.groups(t0).iter().all(|g| g.sleep_in.is_none()));
    assert_eq!(t.tick(t0 + 60 * MIN), None);
}

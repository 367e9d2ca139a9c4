//! The sleep/wake policy: given what a resource looks like now and what
//! cloudnap recorded about it, decide what to do. Pure: no I/O.

use crate::core::model::resource::{Capacity, Desired, Observed, ResourceId, Running, Scaling};
use serde::{Deserialize, Serialize};

/// Where a sleep of one resource has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Recorded; the stop call may or may not have happened.
    Stopping,
    /// The stop call succeeded.
    Asleep,
    /// A wake has begun; it stays so until the wake is confirmed (and the
    /// record dropped), however often it has to be tried again.
    Waking,
}

/// What cloudnap remembers about a resource it put to sleep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepRecord {
    pub resource: ResourceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The capacity to restore on wake.
    pub saved: Capacity,
    pub phase: Phase,
    /// Unix seconds when the sleep was recorded.
    pub since: u64,
}

/// What sleep does with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepDecision {
    /// Record `saved`, tag, then stop.
    Stop { saved: Capacity },
    /// Already down because cloudnap put it there: keep (or adopt) the record.
    AlreadyAsleep { saved: Capacity },
    /// Already down and not ours: left alone, and not woken later.
    LeaveDown,
    /// Tagged `cloudnap:protect=true`.
    Protected,
    /// Up, and part of a group that manages it (see [`Observed::part_of`]):
    /// stopping it alone would make the group replace it. Left running.
    NotAlone,
    /// cloudnap put it to sleep but someone started it again by hand: the
    /// user has taken over, so forget the record and do not stop it twice.
    StartedByHand,
}

/// Decides what sleep does with a resource.
pub fn decide_sleep(observed: &Observed, record: Option<&SleepRecord>) -> SleepDecision {
    let up = observed.capacity.is_up();
    match (record, observed.sleep_tag) {
        (Some(r), _) if !up => SleepDecision::AlreadyAsleep { saved: r.saved },
        (None, Some(saved)) if !up => SleepDecision::AlreadyAsleep { saved },
        (Some(r), _) if r.phase == Phase::Asleep => SleepDecision::StartedByHand,
        _ if up && observed.part_of.is_some() => SleepDecision::NotAlone,
        // A sleep that was recorded but cut short (crash): finish it with the
        // capacity saved before the crash.
        (Some(r), _) if !observed.protected => SleepDecision::Stop { saved: r.saved },
        _ if observed.protected => SleepDecision::Protected,
        _ if !up => SleepDecision::LeaveDown,
        // What sleep saves is what runs now, with the target a sleep cut
        // short may have held down.
        _ => SleepDecision::Stop {
            saved: observed
                .sleep_tag
                .and_then(|tag| released(observed.capacity, tag))
                .unwrap_or(observed.capacity),
        },
    }
}

/// The capacity a resource's sleep tag says it sleeps at, when the resource
/// shows it asleep: down, or its scaling still held down the way sleep holds
/// it. A tag on a resource that is up is not a sleep: it is written ahead by
/// the AWS-side deadline (see [`crate::core::policy::deadline`]), so that a sleep
/// AWS does by itself is restored exactly; such a tag is left in place.
pub fn tagged_asleep(observed: &Observed) -> Option<Capacity> {
    let tag = observed.sleep_tag?;
    (!observed.capacity.is_up() || released(observed.capacity, tag).is_some()).then_some(tag)
}

/// What the periodic state check does with a resource cloudnap holds asleep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Still asleep (or its sleep is not finished): nothing to do.
    Keep,
    /// Up again and the user took over: forget the record and the tag.
    LetGo,
    /// Up again while the user is away, and of a kind AWS starts again by
    /// itself: stop it again, keeping the record; `why` is for the log.
    StopAgain { why: String },
}

/// Decides what the state check at `now` (Unix seconds) does with a
/// resource cloudnap holds asleep: one found up again is let go, unless the
/// user is `away` and its kind is one AWS starts by itself (an RDS database
/// after 7 days stopped): then it is stopped again. A protected one is let
/// go.
pub fn decide_refresh(
    observed: &Observed,
    record: &SleepRecord,
    away: bool,
    now: u64,
) -> RefreshDecision {
    if decide_sleep(observed, Some(record)) != SleepDecision::StartedByHand {
        return RefreshDecision::Keep;
    }
    let restarts_after = record.resource.kind().spec().restarts_after;
    match restarts_after {
        Some(after) if away && !observed.protected => {
            let asleep = now.saturating_sub(record.since);
            let days = asleep as f64 / 86_400.0;
            let why = if asleep >= after {
                format!("AWS started it again after {days:.1} days asleep")
            } else {
                format!("started while you are away ({days:.1} days asleep)")
            };
            RefreshDecision::StopAgain { why }
        }
        _ => RefreshDecision::LetGo,
    }
}

/// What wake does with one resource cloudnap saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeDecision {
    /// Set it back to exactly `saved`.
    Restore { saved: Capacity },
    /// Already up (restored earlier, or started by hand): leave the capacity
    /// as it is and forget the record.
    AlreadyUp,
}

/// Decides what wake does with a resource that has a saved capacity.
pub fn decide_wake(observed: &Observed, saved: Capacity) -> WakeDecision {
    if !observed.capacity.is_up() {
        return WakeDecision::Restore { saved };
    }
    // Up, but its scaling still held down as sleep left it (a crash between
    // the target and the count, or a start by hand): the target is restored,
    // the count left as it is.
    match released(observed.capacity, saved) {
        Some(saved) => WakeDecision::Restore { saved },
        None => WakeDecision::AlreadyUp,
    }
}

/// Whether a resource read back at `now` shows the capacity `set` on it: the
/// same level, and the same scalable target when one was set.
pub fn reached(now: Capacity, set: Capacity) -> bool {
    now.level == set.level && (set.target.is_none() || now.target == set.target)
}

/// `now` with the scalable target of `saved`, when `now`'s target is still
/// held down the way sleep holds `saved`'s (min 0, scaling suspended).
fn released(now: Capacity, saved: Capacity) -> Option<Capacity> {
    let held = saved.asleep().target;
    (held.is_some() && now.target == held && now.target != saved.target)
        .then(|| now.with_target(saved.target))
}

/// The capacity a manual START sets: an explicit `count` first, else the
/// capacity cloudnap saved at sleep, else 1 task (ECS) or the entry's
/// `desired_size` (EKS, default 1). An EC2 instance simply runs.
pub fn start_target(
    current: Capacity,
    saved: Option<Capacity>,
    count: Option<i32>,
    entry_desired: Option<i32>,
) -> Capacity {
    let saved = saved.filter(|s| s.kind == current.kind);
    match (current.level, count, saved) {
        (Running(_), _, _) => Capacity::of(current.kind, Running(true)),
        (Desired(_), Some(n), _) => {
            Capacity::of(current.kind, Desired(n)).with_target(saved.and_then(|s| s.target))
        }
        (_, None, Some(s)) => s,
        (Desired(_), None, None) => Capacity::of(current.kind, Desired(1)),
        (Scaling { .. }, Some(n), _) => scale_target(current, n),
        (Scaling { .. }, None, None) => scale_target(current, entry_desired.unwrap_or(1)),
    }
}

/// A nodegroup scaled to `desired`: min lowered and max raised as needed
/// (max stays at least 1: AWS rejects 0). Other kinds are unchanged.
pub fn scale_target(current: Capacity, desired: i32) -> Capacity {
    match current.level {
        Scaling { min, max, .. } => Capacity::of(
            current.kind,
            Scaling {
                min: min.min(desired),
                desired,
                max: max.max(desired).max(1),
            },
        ),
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::resource::{Kind, ScalableTarget, Suspended};

    fn obs(capacity: Capacity) -> Observed {
        Observed {
            capacity,
            protected: false,
            sleep_tag: None,
            status: String::new(),
            deployments: Vec::new(),
            part_of: None,
        }
    }

    fn rec(saved: Capacity, phase: Phase) -> SleepRecord {
        SleepRecord {
            resource: ResourceId::new(Kind::Ecs, ["c", "s"], "us-east-1"),
            profile: None,
            saved,
            phase,
            since: 0,
        }
    }

    const ECS3: Capacity = Capacity::of(Kind::Ecs, Desired(3));
    const ECS0: Capacity = Capacity::of(Kind::Ecs, Desired(0));

    #[test]
    fn up_resources_are_stopped_with_their_capacity_saved() {
        assert_eq!(
            decide_sleep(&obs(ECS3), None),
            SleepDecision::Stop { saved: ECS3 }
        );
        let ng = Capacity::of(
            Kind::Eks,
            Scaling {
                min: 1,
                desired: 2,
                max: 4,
            },
        );
        assert_eq!(
            decide_sleep(&obs(ng), None),
            SleepDecision::Stop { saved: ng }
        );
    }

    #[test]
    fn a_stale_sleep_tag_on_a_resource_that_is_up_does_not_block_a_sleep() {
        let stale = Observed {
            sleep_tag: Some(Capacity::of(Kind::Ecs, Desired(7))),
            ..obs(ECS3)
        };
        assert_eq!(
            decide_sleep(&stale, None),
            SleepDecision::Stop { saved: ECS3 }
        );
    }

    #[test]
    fn a_tag_written_ahead_on_a_resource_that_is_up_is_no_sleep() {
        let ahead = Observed {
            sleep_tag: Some(ECS3),
            ..obs(ECS3)
        };
        assert_eq!(tagged_asleep(&ahead), None);
        assert_eq!(
            decide_sleep(&ahead, None),
            SleepDecision::Stop { saved: ECS3 }
        );
        // Slept by the deadline: the tag is what wake restores.
        let slept = Observed {
            sleep_tag: Some(ECS3),
            ..obs(ECS0)
        };
        assert_eq!(tagged_asleep(&slept), Some(ECS3));
        assert_eq!(
            decide_sleep(&slept, None),
            SleepDecision::AlreadyAsleep { saved: ECS3 }
        );
    }

    #[test]
    fn down_resources_are_left_alone() {
        assert_eq!(decide_sleep(&obs(ECS0), None), SleepDecision::LeaveDown);
        let member = Observed {
            part_of: Some("in_autoscaling_group: web".into()),
            ..obs(ECS3)
        };
        assert_eq!(decide_sleep(&member, None), SleepDecision::NotAlone);
        let stopped_member = Observed {
            part_of: Some("in_autoscaling_group: web".into()),
            ..obs(ECS0)
        };
        assert_eq!(
            decide_sleep(&stopped_member, None),
            SleepDecision::LeaveDown
        );
        let stopped = Capacity::of(Kind::Ec2, Running(false));
        assert_eq!(decide_sleep(&obs(stopped), None), SleepDecision::LeaveDown);
    }

    #[test]
    fn protected_resources_are_never_stopped() {
        let mut o = obs(ECS3);
        o.protected = true;
        assert_eq!(decide_sleep(&o, None), SleepDecision::Protected);
        let r = rec(ECS3, Phase::Stopping);
        assert_eq!(decide_sleep(&o, Some(&r)), SleepDecision::Protected);
    }

    #[test]
    fn a_tag_alone_marks_a_resource_as_ours() {
        let mut o = obs(ECS0);
        o.sleep_tag = Some(ECS3);
        assert_eq!(
            decide_sleep(&o, None),
            SleepDecision::AlreadyAsleep { saved: ECS3 }
        );
    }

    #[test]
    fn second_sleep_keeps_the_first_saved_capacity() {
        let r = rec(ECS3, Phase::Asleep);
        assert_eq!(
            decide_sleep(&obs(ECS0), Some(&r)),
            SleepDecision::AlreadyAsleep { saved: ECS3 }
        );
    }

    #[test]
    fn interrupted_sleep_is_finished_with_the_recorded_capacity() {
        let r = rec(ECS3, Phase::Stopping);
        let now = Capacity::of(Kind::Ecs, Desired(5));
        assert_eq!(
            decide_sleep(&obs(now), Some(&r)),
            SleepDecision::Stop { saved: ECS3 }
        );
    }

    #[test]
    fn started_by_hand_while_asleep_is_not_stopped_twice() {
        let r = rec(ECS3, Phase::Asleep);
        assert_eq!(
            decide_sleep(&obs(ECS3), Some(&r)),
            SleepDecision::StartedByHand
        );
    }

    #[test]
    fn manual_start_prefers_count_then_saved_then_defaults() {
        let saved = Some(ECS3);
        assert_eq!(
            start_target(ECS0, saved, Some(5), None),
            Capacity::of(Kind::Ecs, Desired(5))
        );
        assert_eq!(start_target(ECS0, saved, None, None), ECS3);
        assert_eq!(
            start_target(ECS0, None, None, None),
            Capacity::of(Kind::Ecs, Desired(1))
        );
        let down = Capacity::of(
            Kind::Eks,
            Scaling {
                min: 0,
                desired: 0,
                max: 4,
            },
        );
        let ng = Capacity::of(
            Kind::Eks,
            Scaling {
                min: 1,
                desired: 2,
                max: 4,
            },
        );
        assert_eq!(start_target(down, Some(ng), None, Some(3)), ng);
        assert_eq!(
            start_target(down, None, None, Some(3)),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 0,
                    desired: 3,
                    max: 4
                }
            )
        );
        assert_eq!(
            start_target(down, None, Some(6), None),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 0,
                    desired: 6,
                    max: 6
                }
            )
        );
        let ec2 = Capacity::of(Kind::Ec2, Running(false));
        assert_eq!(
            start_target(ec2, None, None, None),
            Capacity::of(Kind::Ec2, Running(true))
        );
    }

    #[test]
    fn scaling_keeps_min_le_desired_le_max() {
        let ng = Capacity::of(
            Kind::Eks,
            Scaling {
                min: 2,
                desired: 2,
                max: 4,
            },
        );
        assert_eq!(
            scale_target(ng, 1),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 1,
                    desired: 1,
                    max: 4
                }
            )
        );
        assert_eq!(
            scale_target(ng, 0),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 0,
                    desired: 0,
                    max: 4
                }
            )
        );
        let zero = Capacity::of(
            Kind::Eks,
            Scaling {
                min: 0,
                desired: 0,
                max: 0,
            },
        );
        assert_eq!(
            scale_target(zero, 0),
            Capacity::of(
                Kind::Eks,
                Scaling {
                    min: 0,
                    desired: 0,
                    max: 1
                }
            )
        );
    }

    #[test]
    fn a_database_aws_restarted_is_stopped_again_only_while_the_user_is_away() {
        let db = ResourceId::new(Kind::Rds, ["db1"], "us-east-1");
        let (up, down) = (
            Capacity::of(Kind::Rds, Running(true)),
            Capacity::of(Kind::Rds, Running(false)),
        );
        let slept_at = 1_700_000_000;
        let record = SleepRecord {
            resource: db,
            profile: None,
            saved: up,
            phase: Phase::Asleep,
            since: slept_at,
        };
        let week_later = slept_at + 7 * 86_400 + 60;
        let away = true;
        assert_eq!(
            decide_refresh(&obs(down), &record, away, week_later),
            RefreshDecision::Keep
        );
        assert_eq!(
            decide_refresh(&obs(up), &record, away, week_later),
            RefreshDecision::StopAgain {
                why: "AWS started it again after 7.0 days asleep".into()
            }
        );
        assert_eq!(
            decide_refresh(&obs(up), &record, !away, week_later),
            RefreshDecision::LetGo,
            "the user is here: they started it"
        );
        let protected = Observed {
            protected: true,
            ..obs(up)
        };
        assert_eq!(
            decide_refresh(&protected, &record, away, week_later),
            RefreshDecision::LetGo
        );
        assert_eq!(
            decide_refresh(&obs(up), &record, away, slept_at + 3 * 3600),
            RefreshDecision::StopAgain {
                why: "started while you are away (0.1 days asleep)".into()
            }
        );
        // Other kinds are let go as before, away or not.
        let svc = rec(ECS3, Phase::Asleep);
        assert_eq!(
            decide_refresh(&obs(ECS3), &svc, away, week_later),
            RefreshDecision::LetGo
        );
    }

    #[test]
    fn wake_restores_only_what_is_down() {
        assert_eq!(
            decide_wake(&obs(ECS0), ECS3),
            WakeDecision::Restore { saved: ECS3 }
        );
        assert_eq!(decide_wake(&obs(ECS3), ECS3), WakeDecision::AlreadyUp);
    }

    #[test]
    fn wake_restores_a_scalable_target_that_sleep_left_held_down() {
        let target = |min, suspended| {
            Some(ScalableTarget {
                min,
                max: 6,
                suspended,
            })
        };
        let saved = ECS3.with_target(target(2, Suspended::default()));
        // Cut between the target and the count: the count is still 3.
        let cut = ECS3.with_target(target(0, Suspended::ALL));
        assert_eq!(
            decide_wake(&obs(cut), saved),
            WakeDecision::Restore { saved }
        );
        // Started by hand at 5 while asleep: 5 stays, the target comes back.
        let by_hand = Capacity::of(Kind::Ecs, Desired(5)).with_target(target(0, Suspended::ALL));
        assert_eq!(
            decide_wake(&obs(by_hand), saved),
            WakeDecision::Restore {
                saved: Capacity::of(Kind::Ecs, Desired(5)).with_target(saved.target)
            }
        );
        // Asleep: everything comes back.
        assert_eq!(
            decide_wake(&obs(saved.asleep()), saved),
            WakeDecision::Restore { saved }
        );
        // Up with a target someone changed: theirs.
        let changed = ECS3.with_target(target(1, Suspended::default()));
        assert_eq!(decide_wake(&obs(changed), saved), WakeDecision::AlreadyUp);
        // A sleep cut short whose record was lost: the tag knows the target.
        let tagged = Observed {
            sleep_tag: Some(saved),
            ..obs(cut)
        };
        assert_eq!(decide_sleep(&tagged, None), SleepDecision::Stop { saved });
        // A manual start with a count restores the saved target too.
        assert_eq!(
            start_target(saved.asleep(), Some(saved), Some(4), None),
            Capacity::of(Kind::Ecs, Desired(4)).with_target(saved.target)
        );
    }
}

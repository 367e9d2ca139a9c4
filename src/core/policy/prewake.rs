//! Waking before the user arrives: when they usually come back on each
//! weekday after a long absence, learnt from the history, and the plan that
//! has each asleep resource ready by then. Pure: local times in, a plan out.

use crate::core::config::settings::PrewakeSettings;
use crate::core::model::history::{Change, HistoryEvent, Trigger};
use crate::core::model::resource::ResourceId;
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use std::collections::BTreeMap;

/// An absence at least this long ends in an arrival worth learning from
/// (a night, a weekend; not lunch).
pub const LONG_ABSENCE: Duration = Duration::hours(4);

/// How many past occurrences of a weekday are looked at.
const WEEKS_LOOKED_AT: usize = 6;

/// How many recent arrivals the usual time is the median of: a changed
/// habit is learnt within two weeks.
const RECENT: usize = 3;

/// The user's arrivals after a long absence, at local times (`local` turns
/// a Unix time into one), at most one a day (the first): a wake by the
/// user's return (activity or a resume) of a resource that had been asleep
/// for [`LONG_ABSENCE`] or more.
pub fn arrivals(
    events: &[HistoryEvent],
    local: impl Fn(f64) -> NaiveDateTime,
) -> Vec<NaiveDateTime> {
    let mut events: Vec<&HistoryEvent> = events.iter().collect();
    events.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut slept: BTreeMap<&ResourceId, f64> = BTreeMap::new();
    let mut by_day: BTreeMap<NaiveDate, NaiveDateTime> = BTreeMap::new();
    for e in events {
        match e.change {
            Change::Sleep => {
                slept.entry(&e.resource).or_insert(e.at);
            }
            Change::Ready => {}
            Change::Wake => {
                let since = slept.remove(&e.resource);
                let returned = matches!(e.trigger, Trigger::Idle | Trigger::Resume);
                let long = since.is_some_and(|s| e.at - s >= LONG_ABSENCE.num_seconds() as f64);
                if returned && long {
                    let at = local(e.at);
                    by_day.entry(at.date()).or_insert(at);
                }
            }
        }
    }
    by_day.into_values().collect()
}

/// How long each resource took to be usable after its last wake that was
/// followed (see [`crate::core::policy::readiness`]).
pub fn measured(events: &[HistoryEvent]) -> BTreeMap<ResourceId, std::time::Duration> {
    (events.iter())
        .filter(|e| e.change == Change::Ready)
        .filter_map(|e| {
            let secs = e
                .ready_after_seconds
                .filter(|s| s.is_finite() && *s >= 0.0)?;
            Some((e.resource.clone(), std::time::Duration::from_secs_f64(secs)))
        })
        .collect()
}

/// When the user usually arrives on `day`'s weekday, as of `day` (only the
/// arrivals before it count): the median of the last [`RECENT`] arrivals on
/// that weekday, if they came on most of the past such days the history
/// covers (those after `first_day`, the day of its first event), and on at
/// least `min_weeks` of them.
pub fn usual_on(
    arrivals: &[NaiveDateTime],
    first_day: NaiveDate,
    day: NaiveDate,
    min_weeks: u32,
) -> Option<NaiveTime> {
    let past_days: Vec<NaiveDate> = (1..=WEEKS_LOOKED_AT as i64)
        .map(|w| day - Duration::weeks(w))
        .filter(|d| *d > first_day)
        .collect();
    let came: Vec<NaiveTime> = past_days
        .iter()
        .filter_map(|d| arrivals.iter().find(|a| a.date() == *d).map(|a| a.time()))
        .collect();
    let enough = came.len() >= min_weeks.max(1) as usize;
    if !enough || came.len() * 2 <= past_days.len() {
        return None;
    }
    let mut recent: Vec<NaiveTime> = came.into_iter().take(RECENT).collect();
    recent.sort();
    Some(recent[recent.len() / 2])
}

/// An asleep resource and how long it takes to be usable once started.
#[derive(Debug, Clone, PartialEq)]
pub struct Sleeper {
    pub resource: ResourceId,
    pub ready_in: std::time::Duration,
    /// Local time its sleep began.
    pub since: NaiveDateTime,
}

/// What is planned: the usual arrival, and when each resource is woken.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub usual: NaiveDateTime,
    /// Each resource and when it is started, earliest first.
    pub wakes: Vec<(ResourceId, NaiveDateTime)>,
    /// When what was woken goes back to sleep if the user has not come.
    pub give_up: NaiveDateTime,
}

impl Plan {
    /// The first start.
    pub fn first(&self) -> Option<NaiveDateTime> {
        self.wakes.first().map(|(_, at)| *at)
    }

    /// The resources due at `now`.
    pub fn due(&self, now: NaiveDateTime) -> Vec<ResourceId> {
        (self.wakes.iter())
            .filter(|(_, at)| *at <= now)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// How STATUS and the tray say it: "pre-wake Mon 08:41 for your usual
    /// 08:55".
    pub fn line(&self) -> String {
        let first = self.first().unwrap_or(self.usual);
        format!(
            "pre-wake {} for your usual {}",
            first.format("%a %H:%M"),
            self.usual.format("%H:%M")
        )
    }
}

/// The next pre-wake at local time `now` for `asleep` (empty: none), from
/// the user's `arrivals` since `first_day`: the next usual arrival within a
/// week that is still to come (or whose grace has not run out), on a
/// weekday the user usually comes, after a long absence; each resource
/// started its `ready_in` ahead of it.
pub fn plan(
    now: NaiveDateTime,
    arrivals: &[NaiveDateTime],
    first_day: NaiveDate,
    asleep: &[Sleeper],
    settings: &PrewakeSettings,
) -> Option<Plan> {
    if !settings.enabled || asleep.is_empty() {
        return None;
    }
    let grace = Duration::from_std(settings.grace).ok()?;
    let covered = now.date() - first_day >= Duration::weeks(settings.min_weeks_of_history.into());
    if !covered {
        return None;
    }
    let slept_at = asleep.iter().map(|s| s.since).max()?;
    let usual = (0..=7)
        .map(|d| now.date() + Duration::days(d))
        .filter_map(|day| {
            let t = usual_on(arrivals, first_day, day, settings.min_weeks_of_history)?;
            Some(day.and_time(t))
        })
        .find(|usual| *usual + grace > now && *usual - slept_at >= LONG_ABSENCE)?;
    let mut wakes: Vec<(ResourceId, NaiveDateTime)> = asleep
        .iter()
        .map(|s| {
            let lead = Duration::from_std(s.ready_in).unwrap_or_default();
            (s.resource.clone(), usual - lead)
        })
        .collect();
    wakes.sort_by_key(|(r, at)| (*at, r.clone()));
    Some(Plan {
        usual,
        wakes,
        give_up: usual + grace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::settings::Settings;
    use crate::core::model::resource::Kind;
    use chrono::Datelike;

    /// Local time = UTC in these tests.
    fn local(at: f64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(at as i64, 0)
            .unwrap()
            .naive_utc()
    }

    fn unix(t: NaiveDateTime) -> f64 {
        t.and_utc().timestamp() as f64
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn at(d: &str, hm: &str) -> NaiveDateTime {
        day(d).and_time(NaiveTime::parse_from_str(hm, "%H:%M").unwrap())
    }

    fn vm() -> ResourceId {
        ResourceId::new(Kind::Ec2, ["i-1"], "us-east-1")
    }

    fn db() -> ResourceId {
        ResourceId::new(Kind::Rds, ["dev-postgres"], "us-east-1")
    }

    fn event(t: NaiveDateTime, change: Change, trigger: Trigger, r: &ResourceId) -> HistoryEvent {
        HistoryEvent {
            at: unix(t),
            change,
            resource: r.clone(),
            saved: None,
            trigger,
            facts: None,
            ready_after_seconds: None,
        }
    }

    /// Evenings asleep at 19:00, back at `back(date)` (None: did not come;
    /// that day's resources stay asleep into the next).
    fn history(days: &[(&str, Option<&str>)]) -> Vec<HistoryEvent> {
        let mut out = Vec::new();
        let mut asleep = false;
        for (d, back) in days {
            if let Some(hm) = back {
                if asleep {
                    out.push(event(at(d, hm), Change::Wake, Trigger::Idle, &vm()));
                }
                out.push(event(at(d, "19:00"), Change::Sleep, Trigger::Idle, &vm()));
                asleep = true;
            }
        }
        out
    }

    /// Every day from `from` for `n` days, back at `hm` on weekdays in
    /// `days` (Mon = 0), and not at all on the others.
    fn weeks(
        from: &str,
        n: i64,
        hm: &'static str,
        days: &[u32],
    ) -> Vec<(String, Option<&'static str>)> {
        (0..n)
            .map(|i| {
                let d = day(from) + Duration::days(i);
                let back = days
                    .contains(&d.weekday().num_days_from_monday())
                    .then_some(hm);
                (d.format("%Y-%m-%d").to_string(), back)
            })
            .collect()
    }

    fn plan_at(now: NaiveDateTime, days: &[(String, Option<&str>)]) -> Option<Plan> {
        let days: Vec<(&str, Option<&str>)> = days.iter().map(|(d, b)| (d.as_str(), *b)).collect();
        let events = history(&days);
        let arrivals = arrivals(&events, local);
        let first = day(days[0].0);
        let since = local(events.last().unwrap().at);
        let asleep = [
            Sleeper {
                resource: vm(),
                ready_in: std::time::Duration::from_secs(60),
                since,
            },
            Sleeper {
                resource: db(),
                ready_in: std::time::Duration::from_secs(14 * 60),
                since,
            },
        ];
        plan(now, &arrivals, first, &asleep, &Settings::default().prewake)
    }

    const WEEKDAYS: [u32; 5] = [0, 1, 2, 3, 4];

    #[test]
    fn a_regular_weekday_arrival_is_planned_with_each_resource_ready_by_then() {
        // 2026-11-02 is a Monday; three weeks of 08:55 arrivals.
        let days = weeks("2026-11-02", 21, "08:55", &WEEKDAYS);
        let p = plan_at(at("2026-11-22", "20:00"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-23", "08:55"));
        assert_eq!(
            p.wakes,
            vec![
                (db(), at("2026-11-23", "08:41")),
                (vm(), at("2026-11-23", "08:54"))
            ]
        );
        assert_eq!(p.give_up, at("2026-11-23", "09:25"));
        assert_eq!(p.line(), "pre-wake Mon 08:41 for your usual 08:55");
        assert_eq!(p.due(at("2026-11-23", "08:45")), vec![db()]);
        assert!(p.due(at("2026-11-23", "08:00")).is_empty());
    }

    #[test]
    fn weekends_off_skip_to_monday() {
        let days = weeks("2026-11-02", 19, "09:10", &WEEKDAYS);
        // Friday 2026-11-20 evening: Saturday and Sunday are never planned.
        let p = plan_at(at("2026-11-20", "19:30"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-23", "09:10"));
    }

    #[test]
    fn a_holiday_does_not_unlearn_the_weekday() {
        let mut days = weeks("2026-11-02", 28, "08:30", &WEEKDAYS);
        // Monday 2026-11-16: a holiday, nobody came (asleep until Tuesday).
        days[14].1 = None;
        let p = plan_at(at("2026-11-29", "21:00"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-30", "08:30"));
    }

    #[test]
    fn a_changed_habit_is_followed_within_two_weeks() {
        let mut days = weeks("2026-11-02", 14, "09:30", &WEEKDAYS);
        days.extend(weeks("2026-11-16", 14, "07:45", &WEEKDAYS));
        let p = plan_at(at("2026-11-29", "21:00"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-30", "07:45"));
        // One week into the new habit, the old one still wins.
        let p = plan_at(at("2026-11-22", "21:00"), &days[..21]).expect("a plan");
        assert_eq!(p.usual, at("2026-11-23", "09:30"));
    }

    #[test]
    fn a_user_who_never_comes_back_on_fridays_gets_no_friday_pre_wake() {
        let days = weeks("2026-11-02", 25, "08:55", &[0, 1, 2, 3]);
        // Thursday 2026-11-26 evening: no Friday plan, Monday's instead.
        let p = plan_at(at("2026-11-26", "19:30"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-30", "08:55"));
    }

    #[test]
    fn too_little_history_short_absences_and_off_plan_nothing() {
        let days = weeks("2026-11-16", 7, "08:55", &WEEKDAYS);
        assert_eq!(plan_at(at("2026-11-22", "20:00"), &days), None, "one week");
        let days = weeks("2026-11-02", 21, "08:55", &WEEKDAYS);
        // Asleep since 07:00 on the day: not a long absence before 08:55.
        let events: Vec<HistoryEvent> = history(
            &days
                .iter()
                .map(|(d, b)| (d.as_str(), *b))
                .collect::<Vec<_>>(),
        );
        let arrivals = arrivals(&events, local);
        let lunch = [Sleeper {
            resource: vm(),
            ready_in: std::time::Duration::from_secs(60),
            since: at("2026-11-23", "07:00"),
        }];
        let now = at("2026-11-23", "07:30");
        let settings = Settings::default().prewake;
        let p = plan(now, &arrivals, day("2026-11-02"), &lunch, &settings).unwrap();
        assert_eq!(
            p.usual,
            at("2026-11-24", "08:55"),
            "not today's: tomorrow's"
        );
        let off = PrewakeSettings {
            enabled: false,
            ..settings
        };
        let night = [Sleeper {
            since: at("2026-11-22", "19:00"),
            ..lunch[0].clone()
        }];
        assert!(plan(now, &arrivals, day("2026-11-02"), &night, &settings).is_some());
        assert_eq!(plan(now, &arrivals, day("2026-11-02"), &night, &off), None);
        assert_eq!(
            plan(now, &arrivals, day("2026-11-02"), &[], &settings),
            None
        );
    }

    #[test]
    fn only_the_users_own_returns_after_long_absences_are_arrivals() {
        let r = vm();
        let events = [
            event(at("2026-11-02", "19:00"), Change::Sleep, Trigger::Idle, &r),
            // Woken by a command at night: not the user's arrival.
            event(
                at("2026-11-03", "02:00"),
                Change::Wake,
                Trigger::Command,
                &r,
            ),
            event(at("2026-11-03", "03:00"), Change::Sleep, Trigger::Idle, &r),
            event(at("2026-11-03", "08:50"), Change::Wake, Trigger::Idle, &r),
            // Lunch: short.
            event(at("2026-11-03", "12:00"), Change::Sleep, Trigger::Idle, &r),
            event(at("2026-11-03", "13:00"), Change::Wake, Trigger::Idle, &r),
            event(at("2026-11-03", "19:00"), Change::Sleep, Trigger::Idle, &r),
            event(at("2026-11-04", "09:05"), Change::Wake, Trigger::Resume, &r),
        ];
        assert_eq!(
            arrivals(&events, local),
            vec![at("2026-11-03", "08:50"), at("2026-11-04", "09:05")]
        );
    }

    #[test]
    fn the_last_measured_time_to_ready_is_each_resources_lead() {
        let t = at("2026-11-03", "08:50");
        let ready = |secs| HistoryEvent {
            ready_after_seconds: Some(secs),
            ..event(t, Change::Ready, Trigger::Idle, &db())
        };
        let m = measured(&[
            ready(700.0),
            ready(840.0),
            event(t, Change::Wake, Trigger::Idle, &vm()),
        ]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[&db()], std::time::Duration::from_secs(840));
    }

    #[test]
    fn within_the_grace_the_plan_stands_and_after_it_moves_on() {
        let days = weeks("2026-11-02", 21, "08:55", &WEEKDAYS);
        let p = plan_at(at("2026-11-23", "09:20"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-23", "08:55"), "still waiting");
        let p = plan_at(at("2026-11-23", "09:26"), &days).expect("a plan");
        assert_eq!(p.usual, at("2026-11-24", "08:55"), "tomorrow's");
    }
}

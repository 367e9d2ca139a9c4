//! How long the user waited after a wake: the time to ready of each woken
//! resource (the history's `ready` lines), for the savings report. Pure.

use crate::core::model::history::{Change, HistoryEvent};
use serde::Serialize;

/// Times to ready over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waits {
    /// Resources that became ready in the period.
    pub resources: usize,
    /// The median time to ready, in seconds.
    pub median_seconds: f64,
    /// The most recent one's.
    pub last_seconds: f64,
    /// The longest.
    pub longest_seconds: f64,
}

/// The waits of the `ready` lines of `events` in `[since, now]`, if any.
pub fn waits(events: &[HistoryEvent], since: f64, now: f64) -> Option<Waits> {
    let mut ready: Vec<(f64, f64)> = (events.iter())
        .filter(|e| e.change == Change::Ready && (since..=now).contains(&e.at))
        .filter_map(|e| Some((e.at, e.ready_after_seconds?)))
        .filter(|(_, s)| s.is_finite() && *s >= 0.0)
        .collect();
    ready.sort_by(|a, b| a.0.total_cmp(&b.0));
    let last_seconds = ready.last()?.1;
    let mut times: Vec<f64> = ready.iter().map(|(_, s)| *s).collect();
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median_seconds = match n % 2 {
        1 => times[n / 2],
        _ => (times[n / 2 - 1] + times[n / 2]) / 2.0,
    };
    Some(Waits {
        resources: n,
        median_seconds,
        last_seconds,
        longest_seconds: times[n - 1],
    })
}

impl Waits {
    /// "Waiting after a wake: 18 resources ready after 1 min 12 s (median),
    /// last 45 s, longest 12 min."
    pub fn text(&self) -> String {
        let t = |s: f64| exact(s.round() as u64);
        format!(
            "Waiting after a wake: {} resources ready after {} (median), last {}, longest {}.",
            self.resources,
            t(self.median_seconds),
            t(self.last_seconds),
            t(self.longest_seconds)
        )
    }
}

/// "1 min 12 s", "12 min", "45 s", "1 h 3 min": to the second under an hour.
pub fn exact(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s % 60 == 0 && s < 3600 => format!("{} min", s / 60),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::history::Trigger;
    use crate::core::model::resource::{Kind, ResourceId};

    fn line(at: f64, change: Change, after: Option<f64>) -> HistoryEvent {
        HistoryEvent {
            at,
            change,
            resource: ResourceId::new(Kind::Ec2, ["i-1"], "us-east-1"),
            saved: None,
            trigger: Trigger::Idle,
            facts: None,
            ready_after_seconds: after,
        }
    }

    #[test]
    fn the_median_last_and_longest_time_to_ready_of_the_period() {
        let events = [
            line(50.0, Change::Ready, Some(999.0)), // before the period
            line(100.0, Change::Wake, None),
            line(172.0, Change::Ready, Some(72.0)),
            line(300.0, Change::Ready, Some(720.0)),
            line(200.0, Change::Ready, Some(30.0)),
            line(400.0, Change::Ready, Some(45.0)),
        ];
        let w = waits(&events, 100.0, 1000.0).unwrap();
        assert_eq!(w.resources, 4);
        assert_eq!(w.median_seconds, 58.5);
        assert_eq!(w.last_seconds, 45.0);
        assert_eq!(w.longest_seconds, 720.0);
        assert_eq!(
            w.text(),
            "Waiting after a wake: 4 resources ready after 59 s (median), last 45 s, longest 12 min."
        );
        assert_eq!(waits(&events[1..2], 0.0, 1000.0), None);
        assert_eq!(exact(72), "1 min 12 s");
        assert_eq!(exact(3720), "1 h 2 min");
    }
}

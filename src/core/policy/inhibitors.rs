//! Idle inhibitors held by other programs (a video call in a browser, a
//! presentation, `systemd-inhibit --what=idle make`): the desktop's own word
//! for "someone is here, do not go idle". One counts as presence, but only
//! for `max` after the last real input, so a paused video left open cannot
//! keep resources up all night; apps the user lists in `ignore` never
//! count.
//!
//! Pure: which inhibitors count at `now`, until when they keep resources
//! awake, and how that is said (`kept awake by Firefox: "video call"`).

use serde::Serialize;
use std::time::{Duration, Instant};

/// Where an inhibitor was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// logind (`ListInhibitors`, `what` including `idle`).
    Logind,
    /// GNOME's `org.gnome.SessionManager` (the idle flag).
    GnomeSession,
    /// KDE's `org.freedesktop.PowerManagement.Inhibit`.
    PowerManagement,
}

/// One idle inhibitor another program holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Inhibitor {
    pub via: Via,
    /// The program, as it named itself (`Firefox`, `org.gnome.Totem`).
    pub app: String,
    /// Why, as it said (may be empty).
    pub reason: String,
}

/// What settings.json says about inhibitors.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// How long after the last real input an inhibitor still counts.
    pub max: Duration,
    /// Apps never honoured (compared without case).
    pub ignore: Vec<String>,
}

impl Rules {
    /// Whether `app` is one the user does not honour.
    fn ignores(&self, app: &str) -> bool {
        self.ignore
            .iter()
            .any(|i| i.trim().eq_ignore_ascii_case(app))
    }
}

/// Whether an inhibitor counts at a moment, and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It keeps resources awake.
    Counts,
    /// Its app is in `inhibitors.ignore`.
    Ignored,
    /// No input for `max_minutes`: it no longer counts.
    TooLong,
}

/// One inhibitor in `STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InhibitorRow {
    pub app: String,
    pub reason: String,
    pub via: Via,
    pub verdict: Verdict,
}

/// Whether `inhibitor` counts at `now`, the last real input at `last_input`.
pub fn verdict(inhibitor: &Inhibitor, rules: &Rules, last_input: Instant, now: Instant) -> Verdict {
    if rules.ignores(&inhibitor.app) {
        Verdict::Ignored
    } else if now >= last_input + rules.max {
        Verdict::TooLong
    } else {
        Verdict::Counts
    }
}

/// Until when `inhibitors` keep resources awake: `max` after the last
/// input, if any of them is honoured (`None`: none is).
pub fn until(inhibitors: &[Inhibitor], rules: &Rules, last_input: Instant) -> Option<Instant> {
    inhibitors
        .iter()
        .any(|i| !rules.ignores(&i.app))
        .then(|| last_input + rules.max)
}

/// Every inhibitor with its verdict at `now`, one row per app and reason
/// (the same one seen through two services is shown once).
pub fn rows(
    inhibitors: &[Inhibitor],
    rules: &Rules,
    last_input: Instant,
    now: Instant,
) -> Vec<InhibitorRow> {
    let mut rows: Vec<InhibitorRow> = Vec::new();
    for i in inhibitors {
        let seen = |r: &InhibitorRow| r.app.eq_ignore_ascii_case(&i.app) && r.reason == i.reason;
        if !rows.iter().any(seen) {
            rows.push(InhibitorRow {
                app: i.app.clone(),
                reason: i.reason.clone(),
                via: i.via,
                verdict: verdict(i, rules, last_input, now),
            });
        }
    }
    rows
}

/// `kept awake by Firefox: "video call", make: "long build"` for the rows
/// that count; `None` if none does.
pub fn kept_awake_by(rows: &[InhibitorRow]) -> Option<String> {
    let by: Vec<String> = (rows.iter())
        .filter(|r| r.verdict == Verdict::Counts)
        .map(|r| match r.reason.trim() {
            "" => r.app.clone(),
            why => format!("{}: \"{why}\"", r.app),
        })
        .collect();
    (!by.is_empty()).then(|| format!("kept awake by {}", by.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn inhibitor(via: Via, app: &str, reason: &str) -> Inhibitor {
        Inhibitor {
            via,
            app: app.into(),
            reason: reason.into(),
        }
    }

    fn rules(max_minutes: u32, ignore: &[&str]) -> Rules {
        Rules {
            max: MIN * max_minutes,
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_inhibitor_counts_until_max_after_the_last_input() {
        let input = tokio::time::Instant::now().into_std();
        let firefox = [inhibitor(Via::GnomeSession, "Firefox", "video call")];
        let rules = rules(120, &[]);
        let text = |now| kept_awake_by(&rows(&firefox, &rules, input, now));
        assert_eq!(until(&firefox, &rules, input), Some(input + 120 * MIN));

        tokio::time::advance(119 * MIN).await;
        let now = tokio::time::Instant::now().into_std();
        assert_eq!(
            text(now).as_deref(),
            Some("kept awake by Firefox: \"video call\"")
        );
        tokio::time::advance(MIN).await;
        let now = tokio::time::Instant::now().into_std();
        assert_eq!(verdict(&firefox[0], &rules, input, now), Verdict::TooLong);
        assert_eq!(text(now), None, "older than max_minutes without input");
        // Input again: it counts again, for max from then.
        assert_eq!(verdict(&firefox[0], &rules, now, now), Verdict::Counts);
        assert_eq!(until(&firefox, &rules, now), Some(now + 120 * MIN));
    }

    #[test]
    fn ignored_apps_never_count_whatever_their_case() {
        let t = Instant::now();
        let held = [
            inhibitor(Via::Logind, "firefox", "video"),
            inhibitor(Via::PowerManagement, "Totem", ""),
        ];
        let r = rules(120, &["Firefox ", "totem"]);
        assert_eq!(until(&held, &r, t), None);
        let rows = rows(&held, &r, t, t);
        assert!(
            rows.iter().all(|r| r.verdict == Verdict::Ignored),
            "{rows:?}"
        );
        assert_eq!(kept_awake_by(&rows), None);
        // One honoured app is enough.
        let r = rules(120, &["firefox"]);
        assert_eq!(until(&held, &r, t), Some(t + 120 * MIN));
        assert_eq!(
            kept_awake_by(&super::rows(&held, &r, t, t)).as_deref(),
            Some("kept awake by Totem")
        );
    }

    #[test]
    fn the_same_inhibitor_through_two_services_is_one_row_and_several_are_listed() {
        let t = Instant::now();
        let held = [
            inhibitor(Via::Logind, "make", "long build"),
            inhibitor(Via::GnomeSession, "Firefox", "video call"),
            inhibitor(Via::PowerManagement, "Make", "long build"),
        ];
        let rows = rows(&held, &rules(120, &[]), t, t);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            kept_awake_by(&rows).as_deref(),
            Some("kept awake by make: \"long build\", Firefox: \"video call\"")
        );
    }

    #[test]
    fn a_zero_limit_never_counts() {
        let t = Instant::now();
        let held = [inhibitor(Via::Logind, "test", "x")];
        let r = rules(0, &[]);
        assert_eq!(verdict(&held[0], &r, t, t), Verdict::TooLong);
        assert_eq!(until(&held, &r, t), Some(t), "already over");
    }
}

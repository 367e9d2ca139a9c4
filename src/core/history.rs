//! The sleep/wake history: one JSON line per sleep or wake of a resource,
//! what parsing tolerates (a torn last line, a damaged line) and how the file
//! is compacted into one file per month. Pure: the files are in
//! [`crate::store::history`].

use crate::core::resource::{Capacity, Facts, ResourceId};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sleep or a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Sleep,
    Wake,
}

/// What made it happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The idle timer, activity or the screen lock.
    Idle,
    /// A command: `cloudnap sleep|wake`, UDP `SLEEP_NOW`/`WAKE_NOW`/`START_*`.
    Command,
    /// The tray menu.
    Tray,
    /// The last hold ended.
    HoldEnded,
    /// A refresh found it started by someone else.
    Refresh,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Unix time in seconds (fractional).
    pub at: f64,
    pub change: Change,
    pub resource: ResourceId,
    /// The capacity saved by a sleep (or restored by a wake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<Capacity>,
    pub trigger: Trigger,
    /// What the resource is made of (sleeps only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
}

impl HistoryEvent {
    /// The event as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// The events of one file's text, in order, and a warning for each line
/// skipped: a torn last line (a crash while writing it) or a damaged line.
pub fn parse(name: &str, text: &str) -> (Vec<HistoryEvent>, Vec<String>) {
    let mut events = Vec::new();
    let mut warnings = Vec::new();
    let ends_clean = text.is_empty() || text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<HistoryEvent>(line) {
            Ok(e) if e.at.is_finite() => events.push(e),
            _ if i + 1 == lines.len() && !ends_clean => warnings.push(format!(
                "{name}: torn last line ({} bytes) skipped",
                line.len()
            )),
            _ => warnings.push(format!(
                "{name}: line {} is not a history entry, skipped",
                i + 1
            )),
        }
    }
    (events, warnings)
}

/// The UTC month (`2026-11`) of a unix time.
pub fn month_of(at: f64) -> String {
    let t: DateTime<Utc> = Utc
        .timestamp_opt(at.clamp(0.0, 1e11) as i64, 0)
        .single()
        .unwrap_or_default();
    format!("{:04}-{:02}", t.year(), t.month())
}

/// How to compact the current file at time `now`: the lines of earlier
/// months, by month (to append to that month's file), and the lines that
/// stay. `None` when nothing would move. Unparseable lines stay (a torn
/// last line is dropped once a later line follows it anyway).
pub fn compaction(text: &str, now: f64) -> Option<(BTreeMap<String, String>, String)> {
    let current = month_of(now);
    let mut moved: BTreeMap<String, String> = BTreeMap::new();
    let mut keep = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<HistoryEvent>(line) {
            Ok(e) if month_of(e.at) < current => {
                let m = moved.entry(month_of(e.at)).or_default();
                m.push_str(line);
                m.push('\n');
            }
            Ok(_) => {
                keep.push_str(line);
                keep.push('\n');
            }
            Err(_) => {}
        }
    }
    (!moved.is_empty()).then_some((moved, keep))
}

/// Sorts events by time and drops exact repeats (a compaction interrupted
/// between its two writes leaves a line in both files).
pub fn merge(mut events: Vec<HistoryEvent>) -> Vec<HistoryEvent> {
    events.sort_by(|a, b| a.at.total_cmp(&b.at));
    events.dedup_by(|a, b| a == b);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resource::{Kind, Running};

    fn ev(at: f64, change: Change) -> HistoryEvent {
        HistoryEvent {
            at,
            change,
            resource: ResourceId::new(Kind::Ec2, ["i-1"], "us-east-1"),
            saved: Some(Capacity::of(Kind::Ec2, Running(true))),
            trigger: Trigger::Idle,
            facts: None,
        }
    }

    #[test]
    fn a_torn_last_line_is_skipped_with_a_warning() {
        let good = ev(1.0, Change::Sleep).to_line();
        let text = format!("{good}{}", &good[..good.len() / 2]);
        let (events, warnings) = parse("h", &text);
        assert_eq!(events.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("torn last line"), "{warnings:?}");
        let (events, warnings) = parse("h", &format!("garbage\n{good}"));
        assert_eq!(events.len(), 1);
        assert!(warnings[0].contains("line 1"));
    }

    #[test]
    fn compaction_moves_earlier_months_only() {
        // 2025-10-15 and 2025-11-02.
        let (oct, nov) = (1_760_486_400.0, 1_762_041_600.0);
        let text = format!(
            "{}{}",
            ev(oct, Change::Sleep).to_line(),
            ev(nov, Change::Wake).to_line()
        );
        let (moved, keep) = compaction(&text, nov + 10.0).unwrap();
        assert_eq!(moved.keys().collect::<Vec<_>>(), ["2025-10"]);
        assert_eq!(keep, ev(nov, Change::Wake).to_line());
        assert!(compaction(&keep, nov + 10.0).is_none());
        let merged = merge(vec![
            ev(nov, Change::Wake),
            ev(oct, Change::Sleep),
            ev(oct, Change::Sleep),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].at, oct);
    }
}

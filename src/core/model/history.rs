//! The sleep/wake history: one JSON line per sleep or wake of a resource,
//! what parsing tolerates (a torn last line, a damaged line) and how the file
//! is compacted into one file per month. Pure: the files are in
//! [`crate::store::history`].

use crate::core::model::resource::{Capacity, Facts, ResourceId};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sleep or a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Sleep,
    Wake,
    /// A woken resource became usable (see
    /// [`crate::core::policy::readiness`]), `ready_after_seconds` after its wake.
    Ready,
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
    /// The machine resumed after the AWS-side deadline had come.
    Resume,
    /// Team mode: every member away (a shared resource's sleep), or the
    /// first one back (its wake).
    Team,
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
    /// Seconds from its wake until it was usable (`ready` lines only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_after_seconds: Option<f64>,
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
///
/// A sleep is filed with the month of the wake that ends it, and a sleep
/// not ended yet stays in the current file: so a monthly file holds whole
/// sleeps, and a report that starts after a month ends never needs its
/// file ([`needed_for`]).
pub fn compaction(text: &str, now: f64) -> Option<(BTreeMap<String, String>, String)> {
    let current = month_of(now);
    let lines: Vec<(&str, Option<HistoryEvent>)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l, serde_json::from_str::<HistoryEvent>(l).ok()))
        .collect();
    // The month each line is filed under: a wake's own; a sleep's, that of
    // the next wake of its resource (none yet: it stays).
    let mut filed: Vec<Option<String>> = vec![None; lines.len()];
    let mut waiting: BTreeMap<&ResourceId, Vec<usize>> = BTreeMap::new();
    let mut order: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].1.is_some()).collect();
    order.sort_by(|&a, &b| {
        let at = |i: usize| lines[i].1.as_ref().map_or(0.0, |e| e.at);
        at(a).total_cmp(&at(b))
    });
    for i in order {
        let Some(e) = &lines[i].1 else { continue };
        match e.change {
            Change::Sleep => waiting.entry(&e.resource).or_default().push(i),
            Change::Ready => filed[i] = Some(month_of(e.at)),
            Change::Wake => {
                let month = month_of(e.at);
                for j in waiting.remove(&e.resource).unwrap_or_default() {
                    filed[j] = Some(month.clone());
                }
                filed[i] = Some(month);
            }
        }
    }
    let mut moved: BTreeMap<String, String> = BTreeMap::new();
    let mut keep = String::new();
    for ((line, event), month) in lines.iter().zip(filed) {
        let out = match (event, month) {
            (None, _) => continue,
            (Some(_), Some(m)) if m < current => moved.entry(m).or_default(),
            (Some(_), _) => &mut keep,
        };
        out.push_str(line);
        out.push('\n');
    }
    (!moved.is_empty()).then_some((moved, keep))
}

/// Whether a monthly file of `month` (`2026-10`) can hold anything of a
/// period starting at `since`: every sleep in it ended in that month.
pub fn needed_for(month: &str, since: f64) -> bool {
    month >= month_of(since).as_str()
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
    use crate::core::model::resource::{Kind, Running};

    fn ev(at: f64, change: Change) -> HistoryEvent {
        HistoryEvent {
            at,
            change,
            resource: ResourceId::new(Kind::Ec2, ["i-1"], "us-east-1"),
            saved: Some(Capacity::of(Kind::Ec2, Running(true))),
            trigger: Trigger::Idle,
            facts: None,
            ready_after_seconds: None,
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

    fn on(id: &str, at: f64, change: Change) -> HistoryEvent {
        let mut e = ev(at, change);
        e.resource = ResourceId::new(Kind::Ec2, [id], "us-east-1");
        e
    }

    #[test]
    fn compaction_files_whole_sleeps_under_the_month_they_ended() {
        // 2025-09-30, 2025-10-10, 2025-10-11, 2025-10-30, 2025-11-02, 2025-12-01.
        let (sep30, oct10, oct11, oct30, nov2, dec1) = (
            1_759_190_400.0,
            1_760_054_400.0,
            1_760_140_800.0,
            1_761_782_400.0,
            1_762_041_600.0,
            1_764_547_200.0,
        );
        let lines = [
            on("i-open", sep30, Change::Sleep),
            on("i-a", oct10, Change::Sleep),
            on("i-a", oct11, Change::Wake),
            on("i-b", oct30, Change::Sleep),
            on("i-b", nov2, Change::Wake),
        ];
        let text: String = lines.iter().map(HistoryEvent::to_line).collect();
        let (moved, keep) = compaction(&text, nov2 + 10.0).unwrap();
        // i-a's sleep ended in October; i-b's in November; i-open's not yet.
        assert_eq!(moved.keys().collect::<Vec<_>>(), ["2025-10"]);
        assert_eq!(
            moved["2025-10"],
            format!("{}{}", lines[1].to_line(), lines[2].to_line())
        );
        let stay = |ls: &[&HistoryEvent]| ls.iter().map(|e| e.to_line()).collect::<String>();
        assert_eq!(keep, stay(&[&lines[0], &lines[3], &lines[4]]));
        assert!(compaction(&keep, nov2 + 10.0).is_none());
        let (moved, keep) = compaction(&keep, dec1).unwrap();
        assert_eq!(moved.keys().collect::<Vec<_>>(), ["2025-11"]);
        assert_eq!(
            keep,
            lines[0].to_line(),
            "an open sleep stays in the current file"
        );
        // A period from November 2 needs no file of October.
        assert!(!needed_for("2025-10", nov2));
        assert!(needed_for("2025-11", nov2));
        let merged = merge(vec![
            ev(nov2, Change::Wake),
            ev(oct10, Change::Sleep),
            ev(oct10, Change::Sleep),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].at, oct10);
    }
}

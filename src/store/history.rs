//! The history files in the state directory: `history.jsonl` (this month),
//! appended to and fsync'd, never rewritten in place; earlier months are
//! moved into `history-YYYY-MM.jsonl` with atomic writes. See
//! [`crate::core::model::history`] for the line format and what parsing tolerates.

use crate::core::model::history::{self, HistoryEvent};
use crate::core::savings::prices::PriceBook;
use crate::core::savings::report::{self as savings, SavingsReport};
use crate::store::atomic::write_atomic;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Errors reading or writing the history.
#[derive(Debug, thiserror::Error)]
#[error("history {path}: {source}")]
pub struct HistoryError {
    path: PathBuf,
    source: io::Error,
}

/// The history files of one state directory.
#[derive(Debug, Clone)]
pub struct HistoryFile {
    dir: PathBuf,
}

const CURRENT: &str = "history.jsonl";

impl HistoryFile {
    /// The history beside the state file `state` (in the same directory).
    pub fn beside(state: &Path) -> Self {
        let dir = state
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        HistoryFile {
            dir: dir.to_path_buf(),
        }
    }

    /// The file appended to.
    pub fn current(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    fn err(&self, path: &Path) -> impl Fn(io::Error) -> HistoryError + '_ {
        let path = path.to_path_buf();
        move |source| HistoryError {
            path: path.clone(),
            source,
        }
    }

    /// Appends `events` and fsyncs. A torn last line left by a crash is
    /// ended first, so it stays one skipped line.
    pub fn append(&self, events: &[HistoryEvent]) -> Result<(), HistoryError> {
        if events.is_empty() {
            return Ok(());
        }
        let path = self.current();
        let err = self.err(&path);
        fs::create_dir_all(&self.dir).map_err(&err)?;
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(&err)?;
        let mut text = String::new();
        let len = f.metadata().map_err(&err)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1)).map_err(&err)?;
            f.read_exact(&mut last).map_err(&err)?;
            if last[0] != b'\n' {
                text.push('\n');
            }
        }
        for e in events {
            text.push_str(&e.to_line());
        }
        f.write_all(text.as_bytes()).map_err(&err)?;
        f.sync_data().map_err(&err)
    }

    /// Moves the lines of months before `now`'s into their monthly files
    /// (each written atomically, the current file last). Returns how many
    /// monthly files were written.
    pub fn compact(&self, now: f64) -> Result<usize, HistoryError> {
        let path = self.current();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err(&path)(e)),
        };
        let Some((moved, keep)) = history::compaction(&text, now) else {
            return Ok(0);
        };
        for (month, lines) in &moved {
            let file = self.dir.join(format!("history-{month}.jsonl"));
            let mut body = match fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(self.err(&file)(e)),
            };
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(lines);
            write_atomic(&file, body.as_bytes()).map_err(self.err(&file))?;
        }
        write_atomic(&path, keep.as_bytes()).map_err(self.err(&path))?;
        Ok(moved.len())
    }

    /// The events of every history file that can hold part of a period
    /// starting at `since` (monthly files that ended before it are not
    /// read: [`history::needed_for`]), in time order, and a warning for
    /// each skipped line. No files: no events.
    pub fn events_since(
        &self,
        since: f64,
    ) -> Result<(Vec<HistoryEvent>, Vec<String>), HistoryError> {
        let mut files: Vec<PathBuf> = match fs::read_dir(&self.dir) {
            Ok(d) => d
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_prefix("history"))
                        .and_then(|n| n.strip_suffix(".jsonl"))
                        .is_some_and(|n| match n.strip_prefix('-') {
                            Some(month) => history::needed_for(month, since),
                            None => n.is_empty(),
                        })
                })
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.err(&self.dir)(e)),
        };
        files.sort();
        let mut events = Vec::new();
        let mut warnings = Vec::new();
        for file in files {
            let bytes = fs::read(&file).map_err(self.err(&file))?;
            let text = String::from_utf8_lossy(&bytes);
            let (e, w) = history::parse(&file.display().to_string(), &text);
            events.extend(e);
            warnings.extend(w);
        }
        Ok((history::merge(events), warnings))
    }

    /// The savings report over `[since, now]`, with the skipped lines as
    /// warnings: the one place savings are computed. It is priced by the
    /// book `prices` makes for the events read (which may look up their
    /// prices first: [`savings::items_to_price`]).
    pub fn report(
        &self,
        since: f64,
        now: f64,
        prices: impl FnOnce(&[HistoryEvent]) -> PriceBook,
    ) -> Result<SavingsReport, HistoryError> {
        let (events, warnings) = self.events_since(since)?;
        let mut report = savings::compute(&events, since, now, &prices(&events));
        report.warnings = warnings;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::history::{Change, Trigger};
    use crate::core::model::resource::Kind;
    use crate::core::model::resource::ResourceId;

    fn ev(at: f64, change: Change) -> HistoryEvent {
        HistoryEvent {
            at,
            change,
            resource: ResourceId::new(Kind::Ec2, ["i-1"], "us-east-1"),
            saved: None,
            trigger: Trigger::Command,
            facts: None,
            ready_after_seconds: None,
        }
    }

    #[test]
    fn appends_survive_a_torn_line_and_compaction_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let h = HistoryFile::beside(&dir.path().join("state.json"));
        // A sleep on 2025-10-15 and a wake on 2025-10-16, then 2025-11-02.
        let (oct15, oct16, nov2) = (1_760_486_400.0, 1_760_572_800.0, 1_762_041_600.0);
        h.append(&[ev(oct15, Change::Sleep), ev(oct16, Change::Wake)])
            .unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(h.current())
            .unwrap()
            .write_all(b"{\"at\":17")
            .unwrap();
        h.append(&[ev(nov2, Change::Sleep)]).unwrap();
        let (events, warnings) = h.events_since(0.0).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(warnings.len(), 1, "{warnings:?}");

        assert_eq!(h.compact(nov2 + 100.0).unwrap(), 1);
        assert!(dir.path().join("history-2025-10.jsonl").exists());
        let (after, warnings) = h.events_since(0.0).unwrap();
        assert_eq!(after, events);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(h.compact(nov2 + 100.0).unwrap(), 0);
        // A period from November does not read October's file.
        let (november, _) = h.events_since(nov2 - 60.0).unwrap();
        assert_eq!(november, events[2..]);
    }
}

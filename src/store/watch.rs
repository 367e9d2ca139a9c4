//! Watches the config files for edits (debounced), so a hand edit of
//! `services.yaml` or `settings.json` is picked up within a second or two.

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the file must be quiet before a change is reported.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A running watch; dropping it stops watching.
pub struct Watch(#[allow(dead_code)] Debouncer<RecommendedWatcher>);

/// Calls `changed(file)` (from a watcher thread) whenever one of `files`
/// changes. Their directories are watched, not the files, because editors and
/// atomic writers replace a file rather than write into it.
pub fn watch(
    files: Vec<PathBuf>,
    changed: impl Fn(&Path) + Send + 'static,
) -> notify_debouncer_mini::notify::Result<Watch> {
    let watched = files.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        for file in &watched {
            if events.iter().any(|e| same_file(&e.path, file)) {
                changed(file);
            }
        }
    })?;
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(Watch(debouncer))
}

/// Event paths are absolute; configured paths may be relative.
fn same_file(event: &Path, file: &Path) -> bool {
    event == file
        || (event.file_name() == file.file_name()
            && event.parent().and_then(|p| p.canonicalize().ok())
                == file.parent().and_then(|p| p.canonicalize().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn an_atomic_replace_and_an_append_are_both_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.yaml");
        std::fs::write(&file, "a").unwrap();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = watch(vec![file.clone()], move |p| {
            tx.send(p.to_path_buf()).unwrap()
        })
        .unwrap();

        crate::store::atomic::write_atomic(&file, b"b").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(got, file);
        while rx.recv_timeout(Duration::from_millis(500)).is_ok() {}

        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"c")
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), file);
        while rx.recv_timeout(Duration::from_millis(500)).is_ok() {}

        std::fs::write(dir.path().join("other.txt"), "y").unwrap();
        assert!(
            rx.recv_timeout(Duration::from_secs(1)).is_err(),
            "other files are not reported"
        );
    }
}

//! Watches the config files for edits (debounced), so a hand edit of
//! `services.yaml` or `settings.json` is picked up within a second or two.

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a file must be quiet before its change is reported.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// How long a file written in place, and not closed yet, must be quiet
/// before its change is reported anyway: a writer that truncates, then
/// stalls before it writes, is waited for (the file is empty meanwhile).
const OPEN_QUIET: Duration = Duration::from_secs(3);

/// A running watch; dropping it stops watching (and its thread).
pub struct Watch(#[allow(dead_code)] RecommendedWatcher);

/// Calls `changed(file)` (from a watcher thread) once one of `files` has
/// changed and then stayed quiet for [`DEBOUNCE`]. Their directories are
/// watched, not the files, because editors and atomic writers replace a file
/// rather than write into it. One of `files` that is a directory stands for
/// every file in it (reported as the directory).
pub fn watch(
    files: Vec<PathBuf>,
    changed: impl Fn(&Path) + Send + 'static,
) -> notify::Result<Watch> {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if let Some(event) = event.ok().filter(|e| is_edit(&e.kind)) {
            let done = written(&event.kind);
            for path in event.paths {
                let _ = tx.send((path, done));
            }
        }
    })?;
    let mut dirs: Vec<&Path> = (files.iter())
        .filter(|f| !is_device(f))
        .filter_map(|f| {
            if f.is_dir() {
                Some(f.as_path())
            } else {
                f.parent()
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || debounce(&rx, &files, changed))?;
    Ok(Watch(watcher))
}

/// A device such as `/dev/null` (`AWS_CONFIG_FILE=/dev/null`) is never
/// edited, and watching its directory would report every write to it, by
/// any process: it is not watched. A file that does not exist yet is.
fn is_device(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Opening or reading a file is not an edit. Reacting to it would make every
/// read of a changed file (the daemon's own included) report it again: an
/// endless re-read, and reads that can land between an editor's truncate and
/// its write.
fn is_edit(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => *access == AccessKind::Close(AccessMode::Write),
        _ => true,
    }
}

/// Whether an edit event leaves the file whole: its writer closed it, or it
/// was replaced, renamed, removed or only touched. A write in place (or a
/// truncate) is followed by more until the writer closes the file.
fn written(kind: &EventKind) -> bool {
    use notify::event::ModifyKind;
    !matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
    )
}

/// Collects the watched files that events name and reports each once
/// [`DEBOUNCE`] has passed since its last event ([`OPEN_QUIET`] while that
/// was a write its writer has not closed); returns when the watcher is
/// dropped.
fn debounce(rx: &mpsc::Receiver<(PathBuf, bool)>, files: &[PathBuf], changed: impl Fn(&Path)) {
    // Each file changed, and when it is due.
    let mut pending: Vec<(&PathBuf, Instant)> = Vec::new();
    loop {
        let next = match pending.iter().map(|(_, due)| *due).min() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok((path, done)) => {
                let inside = |dir: &PathBuf| path.parent() == Some(dir) && dir.is_dir();
                if let Some(file) = files.iter().find(|f| same_file(&path, f) || inside(f)) {
                    let due = Instant::now() + if done { DEBOUNCE } else { OPEN_QUIET };
                    pending.retain(|(f, _)| *f != file);
                    pending.push((file, due));
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let (ripe, wait): (Vec<_>, Vec<_>) =
                    pending.drain(..).partition(|(_, due)| *due <= now);
                pending = wait;
                ripe.into_iter().for_each(|(f, _)| changed(f));
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
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

    #[cfg(unix)]
    #[test]
    fn a_device_is_not_watched() {
        assert!(is_device(Path::new("/dev/null")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_device(dir.path()));
        assert!(!is_device(&dir.path().join("not yet")));
        let (tx, rx) = mpsc::channel();
        let _w = watch(vec![PathBuf::from("/dev/null")], move |p| {
            tx.send(p.to_path_buf()).unwrap()
        })
        .unwrap();
        std::fs::write("/dev/null", "x").unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_watched_directory_reports_any_file_written_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = watch(vec![cache.clone()], move |p| {
            tx.send(p.to_path_buf()).unwrap()
        })
        .unwrap();
        std::fs::write(cache.join("0123abcd.json"), "{}").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), cache);
        while rx.recv_timeout(Duration::from_millis(500)).is_ok() {}
        std::fs::write(dir.path().join("beside.json"), "{}").unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(1)).is_err());
    }

    /// A watched `services.yaml` (holding `old`) whose every reported change
    /// is read, as the daemon does, and sent on the receiver.
    fn read_on_change() -> (tempfile::TempDir, PathBuf, mpsc::Receiver<String>, Watch) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.yaml");
        std::fs::write(&file, "old").unwrap();
        let (tx, rx) = mpsc::channel();
        let w = watch(vec![file.clone()], move |p| {
            let _ = tx.send(std::fs::read_to_string(p).unwrap());
        })
        .unwrap();
        (dir, file, rx, w)
    }

    /// A writer that truncates, then stalls longer than the debounce before
    /// it writes: nothing is reported before it closes the file, then the
    /// whole new content is.
    #[test]
    fn a_truncated_file_is_reported_once_its_writer_closes_it() {
        use std::io::Write;
        let (_dir, file, rx, _w) = read_on_change();

        let mut f = std::fs::File::create(&file).unwrap();
        assert!(
            rx.recv_timeout(DEBOUNCE * 3).is_err(),
            "reported while the writer still has it open"
        );
        f.write_all(b"new: content").unwrap();
        drop(f);
        let got = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(got, "new: content");
    }

    /// An editor that saves in place truncates, then writes; the callback
    /// reads the file, as the daemon does. One edit is one report, with the
    /// whole new content, and the callback's own read is not an edit.
    #[test]
    fn a_save_in_place_is_reported_once_even_when_the_callback_reads_the_file() {
        let (_dir, file, rx, _w) = read_on_change();

        std::fs::write(&file, "new: content").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(got, "new: content");
        assert!(
            rx.recv_timeout(Duration::from_secs(1)).is_err(),
            "reading the file is not an edit"
        );
    }
}

//! What the folder watcher's events say about each path: when it is due to be loaded, whether a
//! failed load still waits to be confirmed, and a rescan of every file when events were lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use tokio::sync::mpsc;

use crate::wasm::{ContentHash, Guest};

use super::paths::{function_files, is_function_file};

/// How long a finished write must stay quiet before the file is loaded.
pub const SETTLE: Duration = Duration::from_millis(10);
/// How long an unfinished write must stay quiet before the file is loaded anyway.
pub const STALLED_WRITE: Duration = Duration::from_secs(2);
/// How long a file that failed to load must stay untouched and unchanged before the failure is
/// reported: what was read may have been a write caught half-way whose events are still on their
/// way (a busy machine delays them), and such a write shows itself within this time.
pub const RECHECK: Duration = Duration::from_millis(250);

/// What the watcher last said about one path.
#[derive(Clone, Debug)]
pub(super) struct Touch {
    pub(super) last: Instant,
    /// Created or written to, and not yet closed or renamed into place.
    pub(super) writing: bool,
    /// Set when the path is pending only to confirm that a failed load stands.
    pub(super) failed: Option<Arc<Failure>>,
    /// How many times in a row reading it failed.
    pub(super) unreadable: u32,
}

/// A load that failed, waiting for `RECHECK` to tell whether the file was still being written.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) hash: ContentHash,
    pub(super) error: String,
}

impl Touch {
    /// A path touched now (`writing`: by a writer that may still hold it open), with no failed
    /// load to confirm.
    pub(super) fn now(writing: bool) -> Self {
        Self { last: Instant::now(), writing, failed: None, unreadable: 0 }
    }

    pub(super) fn due(&self) -> Instant {
        let quiet = if self.failed.is_some() {
            RECHECK
        } else if self.writing {
            STALLED_WRITE
        } else {
            SETTLE
        };
        self.last + quiet
    }
}

/// The watcher's events, as the reload task receives them.
pub(super) type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// Takes in the events that arrived meanwhile; true when `path` was touched again (or may have
/// been: the watcher lost events, and every file is looked at again).
pub(super) fn superseded(
    path: &Path,
    events: &mut Events,
    pending: &mut HashMap<PathBuf, Touch>,
    folder: &Folder<'_>,
) -> bool {
    while let Ok(event) = events.try_recv() {
        if let Ok(event) = event
            && note(pending, &event)
        {
            rescan(pending, folder.dir, folder.served.iter().map(|g| g.path.clone()));
        }
    }
    pending.contains_key(path)
}

/// The folder and the files served from it, for a rescan.
pub(super) struct Folder<'a> {
    pub(super) dir: &'a Path,
    pub(super) served: &'a [Arc<Guest>],
}

/// Marks every function file of `dir` and every file in `served` as touched: the watcher lost
/// events (its queue overflowed in a burst of changes), so any of them may have changed, and
/// a served file missing from the folder may have been deleted. Unchanged files are not
/// reloaded (their hash is compared first).
pub(super) fn rescan(pending: &mut HashMap<PathBuf, Touch>, dir: &Path, served: impl Iterator<Item = PathBuf>) {
    tracing::warn!("the folder watcher lost events in a burst of changes; looking at every file again");
    let files = function_files(dir).unwrap_or_else(|error| {
        tracing::error!("rescanning {}: {error}", dir.display());
        Vec::new()
    });
    for path in files.into_iter().chain(served) {
        pending.entry(path).or_insert(Touch::now(false));
    }
}

/// Records what `event` says about the component files it names; true when the watcher says it
/// lost events and the folder must be scanned again.
pub(super) fn note(pending: &mut HashMap<PathBuf, Touch>, event: &notify::Event) -> bool {
    if event.need_rescan() {
        return true;
    }
    let writing = match event.kind {
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Some(true),
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_) | ModifyKind::Other)
        | EventKind::Remove(_) => Some(false),
        // Reads (ours included) and opens change nothing.
        EventKind::Access(_) | EventKind::Any | EventKind::Other => None,
    };
    let Some(writing) = writing else { return false };
    for path in event.paths.iter().filter(|p| is_function_file(p)) {
        pending.insert(path.clone(), Touch::now(writing));
    }
    false
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, paths: &[&str]) -> notify::Event {
        paths.iter().fold(notify::Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    fn touch(pending: &HashMap<PathBuf, Touch>, path: &str) -> Option<Touch> {
        pending.get(Path::new(path)).cloned()
    }

    #[test]
    fn a_write_settles_once_its_writer_is_done() {
        let mut pending = HashMap::new();
        note(&mut pending, &event(EventKind::Create(CreateKind::File), &["/f/a.wasm"]));
        let created = touch(&pending, "/f/a.wasm").expect("noted");
        assert!(created.writing);
        assert_eq!(created.due(), created.last + STALLED_WRITE, "an open write waits for its close");

        note(&mut pending, &event(EventKind::Modify(ModifyKind::Data(DataChange::Content)), &["/f/a.wasm"]));
        assert!(touch(&pending, "/f/a.wasm").expect("noted").writing, "still being written");

        note(&mut pending, &event(EventKind::Access(AccessKind::Close(AccessMode::Write)), &["/f/a.wasm"]));
        let closed = touch(&pending, "/f/a.wasm").expect("noted");
        assert!(!closed.writing);
        assert_eq!(closed.due(), closed.last + SETTLE, "a closed write settles quickly");
        assert!(closed.last >= created.last);

        // Reading a file (the host's own read included) does not postpone it.
        note(&mut pending, &event(EventKind::Access(AccessKind::Close(AccessMode::Read)), &["/f/a.wasm"]));
        assert_eq!(touch(&pending, "/f/a.wasm").expect("noted").last, closed.last);
    }

    #[test]
    fn a_failed_load_waits_to_be_confirmed_and_any_touch_retries_it() {
        let mut pending = HashMap::new();
        let failed = Some(Arc::new(Failure { hash: [7; 32], error: "not a component".into() }));
        let confirming = Touch { last: Instant::now(), writing: false, failed, unreadable: 0 };
        assert_eq!(confirming.due(), confirming.last + RECHECK);
        pending.insert(PathBuf::from("/f/a.wasm"), confirming);
        note(&mut pending, &event(EventKind::Modify(ModifyKind::Data(DataChange::Content)), &["/f/a.wasm"]));
        let touched = touch(&pending, "/f/a.wasm").expect("noted");
        assert!(touched.failed.is_none(), "a write after the failure means loading again, not reporting");
        assert!(touched.writing);
    }

    #[test]
    fn renames_and_removals_are_due_at_once_and_other_files_are_ignored() {
        let mut pending = HashMap::new();
        note(
            &mut pending,
            &event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/f/.a.wasm.tmp", "/f/a.wasm"]),
        );
        note(&mut pending, &event(EventKind::Remove(RemoveKind::File), &["/f/b.wasm"]));
        note(&mut pending, &event(EventKind::Create(CreateKind::File), &["/f/notes.txt", "/f/.c.wasm"]));
        let mut noted: Vec<_> = pending.iter().map(|(p, t)| (p.display().to_string(), t.writing)).collect();
        noted.sort();
        assert_eq!(noted, [("/f/a.wasm".to_owned(), false), ("/f/b.wasm".to_owned(), false)]);
    }

    #[tokio::test]
    async fn a_path_touched_while_loading_is_superseded() {
        let (sender, mut events) = mpsc::unbounded_channel();
        let mut pending = HashMap::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = Folder { dir: dir.path(), served: &[] };
        assert!(!superseded(Path::new("/f/a.wasm"), &mut events, &mut pending, &folder));
        sender.send(Ok(event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &["/f/a.wasm"]))).expect("open");
        sender.send(Err(notify::Error::generic("overflow"))).expect("open");
        assert!(superseded(Path::new("/f/a.wasm"), &mut events, &mut pending, &folder));
        assert!(!superseded(Path::new("/f/b.wasm"), &mut events, &mut pending, &folder));
    }

    /// When the kernel's event queue overflows, notify says so with one event flagged Rescan:
    /// every function file of the folder is looked at again, and every served file (a deleted
    /// one is then dropped), whatever events were lost.
    #[tokio::test]
    async fn lost_events_make_every_file_due_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        for file in ["a.wasm", "b.py", "notes.txt", ".hidden.wasm"] {
            std::fs::write(dir.path().join(file), b"x").expect("write");
        }
        let lost = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        let mut pending = HashMap::new();
        assert!(note(&mut pending, &lost), "a rescan is asked for");
        assert!(pending.is_empty(), "note itself names no path");

        let deleted = dir.path().join("gone.wasm");
        rescan(&mut pending, dir.path(), std::iter::once(deleted.clone()));
        let mut due: Vec<_> =
            pending.keys().map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect();
        due.sort();
        assert_eq!(due, ["a.wasm", "b.py", "gone.wasm"]);
        assert!(pending.values().all(|t| !t.writing && t.due() == t.last + SETTLE), "due after the usual settle");

        // Through the events a load in progress takes in, too.
        let (sender, mut events) = mpsc::unbounded_channel();
        sender.send(Ok(lost)).expect("open");
        let mut pending = HashMap::new();
        let folder = Folder { dir: dir.path(), served: &[] };
        assert!(superseded(&dir.path().join("a.wasm"), &mut events, &mut pending, &folder));
        assert_eq!(pending.len(), 2);
    }
}

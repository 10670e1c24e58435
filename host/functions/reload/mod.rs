//! Loading the functions folder, and keeping the served functions in step with it.
//!
//! Strategy. The watcher's callback does nothing but forward events into a channel; one task owns
//! the module list and does all the work, so reloads never race each other. For every `*.wasm`
//! path touched, the task remembers when it was last touched and whether a writer may still hold
//! it open (it was created or its data modified, and no close-after-write or rename has followed).
//! A path is due once it has been quiet for `SETTLE` and its writer is done — or, when the platform
//! never reports the close, after `STALLED_WRITE` of quiet. Waiting for the close is what keeps a
//! `cp` of a 20 MB file from being compiled half-way; the short settle folds bursts of events (a
//! rename's two halves, an editor's save dance) into one reload.
//!
//! Due paths are handled together: each is read and hashed (an unchanged hash is no reload),
//! compiled on a blocking thread — or taken from the compile cache — and described. Only then is
//! one new registry built from the whole module list and swapped in atomically. A call holds the
//! registry snapshot it started with, so it finishes on the version it began on; calls that start
//! after the swap see the new one. A file that fails to load is judged again after `RECHECK`: if
//! it was touched meanwhile it is loaded again, and only if it still holds the bytes that failed
//! is the failure logged and counted; its previous version, if any, keeps serving. When two files
//! declare the same function, the file whose name sorts first keeps it, at start-up and after
//! any reload alike.

mod events;
mod paths;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::error::LoadError;
use crate::functions::registry::{Registry, SharedRegistry};
use crate::observe::metrics::LoadLabels;
use crate::wasm::{CompileCache, ContentHash, Guest, Runtime, content_hash, is_python_file};

use events::{Events, Failure, Folder, Touch, note, rescan, superseded};
pub use events::{RECHECK, SETTLE, STALLED_WRITE};
pub use paths::{canonical, function_files, is_function_file};

/// Reads of a file that fails to open before the failure is reported, `STALLED_WRITE` apart.
const READ_TRIES: u32 = 3;

/// What the reloader has done so far; tests and tools wait on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Registries published since start-up.
    pub generation: u64,
    /// Files that failed to load since start-up.
    pub failures: u64,
    /// True while no path is waiting to settle or being loaded.
    pub idle: bool,
    /// True once the first scan of the folder has loaded (or refused) every file in it.
    pub loaded: bool,
}

/// The files of the folder whose latest version failed to load, by path, with why (for the
/// status page).
pub type FailingFiles = Arc<Mutex<BTreeMap<PathBuf, String>>>;

/// The served modules and everything needed to change them.
pub struct Reloader {
    runtime: Runtime,
    dir: PathBuf,
    cache: Option<CompileCache>,
    /// In precedence order, by file name: earlier modules keep a contested function name.
    guests: Vec<Arc<Guest>>,
    registry: SharedRegistry,
    /// The files whose latest version failed to load, and why.
    failing: FailingFiles,
    status: watch::Sender<ReloadStatus>,
    /// The folder's watcher, started before the first scan so that no change is missed, and
    /// what it has reported since.
    watcher: Option<(notify::RecommendedWatcher, Events)>,
}

impl Reloader {
    /// Watches `dir` and serves nothing yet: [`Reloader::load_all`] loads what is in it.
    ///
    /// The folder is watched from before it is scanned, so a file written meanwhile is loaded by
    /// the first reload, and paths are resolved once so the watcher's and the scan's agree.
    pub fn open(runtime: Runtime, dir: &Path, cache: Option<CompileCache>) -> std::io::Result<Self> {
        let dir = canonical(dir)?;
        std::fs::read_dir(&dir)?;
        let (events, receiver) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            // Never block the watcher's thread: hand the event over and return.
            let _ = events.send(event);
        })
        .map_err(std::io::Error::other)?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(std::io::Error::other)?;
        let registry = Arc::new(ArcSwap::from_pointee(Registry::default()));
        let (status, _) = watch::channel(ReloadStatus { generation: 0, failures: 0, idle: true, loaded: false });
        let (guests, failing, watcher) = (Vec::new(), FailingFiles::default(), Some((watcher, receiver)));
        Ok(Self { runtime, dir, cache, guests, registry, failing, status, watcher })
    }

    /// Opens `dir` and loads every component in it ([`Reloader::open`], [`Reloader::load_all`]).
    pub async fn load(runtime: Runtime, dir: &Path, cache: Option<CompileCache>) -> std::io::Result<Self> {
        let mut functions = Self::open(runtime, dir, cache)?;
        functions.load_all().await?;
        Ok(functions)
    }

    /// Loads every component of the folder and publishes them together: a client never sees a
    /// partial list. One at a time, smallest first, each on a blocking thread (guest code never
    /// runs on the async runtime's threads): the compiler spreads one component over every core,
    /// so loading several at once finishes none sooner and keeps small ones waiting behind large
    /// ones. Python function files come after the components, as the data-science engine runs
    /// them. Each is logged when it starts and when it is done, with its own time. A file that
    /// fails to load is logged with the reason and skipped; the others serve.
    pub async fn load_all(&mut self) -> std::io::Result<()> {
        let mut files: Vec<(bool, u64, PathBuf)> = function_files(&self.dir)?
            .into_iter()
            .map(|path| {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                (is_python_file(&path), size, path)
            })
            .collect();
        files.sort();
        let mut guests: Vec<Arc<Guest>> = Vec::new();
        let mut engine = None;
        let mut failures = 0;
        for (python, size, path) in files {
            if python && engine.is_none() {
                // Precedence by file name: the first data-science engine runs the files.
                guests.sort_by(|a, b| a.path.cmp(&b.path));
                engine = Some(guests.iter().find(|g| g.runs_python_files()).cloned());
            }
            tracing::info!("loading {} ({})", path.display(), kib(size));
            let (runtime, cache, file) = (self.runtime.clone(), self.cache.clone(), path.clone());
            let engine = engine.clone().flatten();
            let loaded = tokio::task::spawn_blocking(move || match std::fs::read(&file) {
                Ok(bytes) => {
                    let hash = content_hash(&bytes);
                    load_file(&runtime, cache.as_ref(), engine.as_deref(), &file, &bytes, hash)
                }
                Err(source) => Err(LoadError::Read { path: file, source }.to_string()),
            });
            // A panic while loading one file (a host bug a file can trigger) is that file's
            // failure only: the others still load and serve.
            let loaded = loaded.await.unwrap_or_else(|panic| Err(load_panicked(&path, &panic)));
            match loaded {
                Ok((guest, how)) => {
                    tracing::info!("loaded {} ({how}): {}", path.display(), guest.offers());
                    self.count_load(&path, "loaded");
                    self.note_failure(&path, None);
                    guests.push(Arc::new(guest));
                }
                Err(error) => {
                    failures += 1;
                    tracing::error!("skipped: {error}");
                    self.count_load(&path, "failed");
                    self.note_failure(&path, Some(error));
                }
            }
        }
        // Precedence by file name, whatever order they loaded in.
        guests.sort_by(|a, b| a.path.cmp(&b.path));
        self.guests = guests;
        self.registry.store(Arc::new(Registry::new(self.guests.clone())));
        self.status.send_modify(|s| {
            s.failures += failures;
            s.loaded = true;
        });
        Ok(())
    }

    /// The data-science engine that runs Python function files: the first served.
    fn python_engine(&self) -> Option<Arc<Guest>> {
        self.guests.iter().find(|g| g.runs_python_files()).cloned()
    }

    /// Counts a load of `path` in the metrics, by its file name.
    fn count_load(&self, path: &Path, outcome: &'static str) {
        let file = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        self.runtime.metrics().loads.get_or_create(&LoadLabels { file, outcome }).inc();
    }

    /// Records that `path`'s latest version failed to load (`Some(why)`), or did not.
    fn note_failure(&self, path: &Path, why: Option<String>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(why) => failing.insert(path.to_owned(), why),
            None => failing.remove(path),
        };
    }

    /// A reload of `path` that failed for good, `why`: logged, counted, kept for the status page.
    fn reload_failed(&self, path: &Path, why: String) {
        tracing::error!("{why}");
        self.count_load(path, "failed");
        self.note_failure(path, Some(why));
        self.status.send_modify(|s| s.failures += 1);
    }

    /// The files whose latest version failed to load, kept up to date as the folder changes.
    pub fn failing(&self) -> FailingFiles {
        self.failing.clone()
    }

    /// The registry the server reads; it changes as the folder does once [`Reloader::watch`] runs.
    pub fn registry(&self) -> SharedRegistry {
        self.registry.clone()
    }

    /// Reload progress, for those who wait on it.
    pub fn status(&self) -> watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    /// Applies the folder's changes from now on (and those seen since the scan). The returned
    /// guard stops watching when dropped. Dropping the `Reloader` instead serves what was loaded.
    pub fn watch(self) -> notify::Result<WatchGuard> {
        let task = tokio::spawn(self.run());
        Ok(WatchGuard { task })
    }

    async fn run(mut self) {
        // Taken out of `self`, which `apply` borrows; the watcher lives as long as this task.
        let Some((_watcher, mut events)) = self.watcher.take() else { return };
        let mut pending: HashMap<PathBuf, Touch> = HashMap::new();
        loop {
            let next_due = pending.values().map(Touch::due).min();
            tokio::select! {
                // Events first: a path touched again is not due, whatever the timer says.
                biased;
                event = events.recv() => match event {
                    Some(Ok(event)) => {
                        if note(&mut pending, &event) {
                            rescan(&mut pending, &self.dir, self.guests.iter().map(|g| g.path.clone()));
                        }
                    }
                    Some(Err(error)) => tracing::warn!("watching {}: {error}", self.dir.display()),
                    None => return,
                },
                () = sleep_until(next_due) => {
                    let now = Instant::now();
                    let due: BTreeMap<PathBuf, Touch> = pending.extract_if(|_, t| t.due() <= now).collect();
                    self.status.send_modify(|s| s.idle = false);
                    self.apply(due, &mut events, &mut pending).await;
                }
            }
            let idle = pending.is_empty();
            self.status.send_if_modified(|s| std::mem::replace(&mut s.idle, idle) != idle);
        }
    }

    /// Brings the module list in line with the due `paths` and publishes the result once.
    ///
    /// A file that fails to load is not judged at once: what was read may be half of a newer write.
    /// If it was written to while it loaded, its pending reload takes over; otherwise it is pending
    /// again for `RECHECK`, with the failure, and the failure stands only if the file then still
    /// holds the same bytes.
    ///
    /// Components go first, then Python function files: when the data-science engine was loaded,
    /// replaced or deleted, every function file is loaded again by the engine now served (or
    /// stops being served, if none is), once, whether or not it changed.
    async fn apply(
        &mut self,
        paths: BTreeMap<PathBuf, Touch>,
        events: &mut Events,
        pending: &mut HashMap<PathBuf, Touch>,
    ) {
        let before = self.registry.load_full();
        let engine_before = self.python_engine();
        let (mut python, components): (BTreeMap<_, _>, BTreeMap<_, _>) =
            paths.into_iter().partition(|(path, _)| is_python_file(path));
        let mut changed = Vec::new();
        for (path, touch) in components {
            self.apply_path(path, touch, false, events, pending, &mut changed).await;
        }
        let engine = self.python_engine();
        let engine_changed = match (&engine_before, &engine) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (a, b) => a.is_some() != b.is_some(),
        };
        if engine_changed {
            let files = function_files(&self.dir).unwrap_or_default();
            let served = self.guests.iter().filter(|g| g.python().is_some()).map(|g| g.path.clone());
            for path in files.into_iter().filter(|p| is_python_file(p)).chain(served.collect::<Vec<_>>()) {
                python.entry(path).or_insert(Touch::now(false));
            }
        }
        for (path, touch) in python {
            if engine.is_none()
                && let Some(position) = self.guests.iter().position(|g| g.path == path)
            {
                self.guests.remove(position);
                tracing::error!("{} is no longer served: no data-science engine is loaded to run it", path.display());
                changed.push(path);
                continue;
            }
            self.apply_path(path, touch, engine_changed, events, pending, &mut changed).await;
        }
        if changed.is_empty() {
            return;
        }
        let after = Arc::new(Registry::succeeding(&before, self.guests.clone()));
        log_changes(&before, &after, &changed);
        self.registry.store(after);
        self.status.send_modify(|s| s.generation += 1);
    }

    /// Loads the due `path` again (or drops it, if deleted); `force` loads it even if its bytes
    /// have not changed. Adds it to `changed` if what is served changed.
    async fn apply_path(
        &mut self,
        path: PathBuf,
        touch: Touch,
        force: bool,
        events: &mut Events,
        pending: &mut HashMap<PathBuf, Touch>,
        changed: &mut Vec<PathBuf>,
    ) {
        let position = self.guests.iter().position(|m| m.path == path);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.note_failure(&path, None);
                if let Some(position) = position {
                    self.guests.remove(position);
                    tracing::info!("{} deleted", path.display());
                    changed.push(path);
                }
                return;
            }
            // Windows refuses to share a file its writer holds open (a copy in progress, an
            // editor's save): tried again after a pause, and only then reported.
            Err(error) if touch.unreadable + 1 < READ_TRIES => {
                tracing::debug!("cannot read {} yet ({error}); trying again", path.display());
                let unreadable = touch.unreadable + 1;
                pending.insert(path, Touch { last: Instant::now(), writing: true, failed: None, unreadable });
                return;
            }
            Err(error) => {
                tracing::error!("cannot read {}: {error}; its previous version, if any, keeps serving", path.display());
                self.note_failure(&path, Some(format!("cannot read it: {error}")));
                self.status.send_modify(|s| s.failures += 1);
                return;
            }
        };
        if bytes.is_empty() {
            // Never a component: a writer has truncated it and not written yet.
            tracing::info!("{} is empty; waiting for it to be written", path.display());
            return;
        }
        let hash = content_hash(&bytes);
        if let Some(failure) = touch.failed.filter(|f| f.hash == hash) {
            let keeps = if position.is_some() { "the previous version keeps serving" } else { "not served" };
            self.reload_failed(&path, format!("{}; {keeps}", failure.error));
            return;
        }
        if !force && position.is_some_and(|p| self.guests[p].hash == hash) {
            tracing::debug!("{} touched but unchanged", path.display());
            return;
        }
        let (runtime, cache, file) = (self.runtime.clone(), self.cache.clone(), path.clone());
        let engine = self.python_engine();
        let loaded = tokio::task::spawn_blocking(move || {
            load_file(&runtime, cache.as_ref(), engine.as_deref(), &file, &bytes, hash)
        })
        .await;
        match loaded {
            Ok(Ok((module, how))) => {
                let module = Arc::new(module);
                match position {
                    Some(position) => self.guests[position] = module,
                    // In file name order, as at start-up: which file serves a contested name,
                    // or runs the function files, never depends on the order files arrived in.
                    None => {
                        let at = self.guests.partition_point(|g| g.path < path);
                        self.guests.insert(at, module);
                    }
                }
                tracing::info!("{} loaded ({how})", path.display());
                self.count_load(&path, "reloaded");
                self.note_failure(&path, None);
                changed.push(path);
            }
            Ok(Err(error)) if superseded(&path, events, pending, &Folder { dir: &self.dir, served: &self.guests }) => {
                tracing::debug!("{} changed while loading ({error}); loading it again", path.display());
            }
            Ok(Err(error)) if force && position.is_some() => {
                // The engine it ran on is gone, so its previous version cannot keep serving.
                self.guests.remove(position.expect("checked"));
                self.reload_failed(&path, format!("{error}; not served"));
                changed.push(path);
            }
            Ok(Err(error)) => {
                tracing::debug!("{error}; reported if {} is still unchanged in {RECHECK:?}", path.display());
                let failed = Some(Arc::new(Failure { hash, error }));
                pending.insert(path, Touch { last: Instant::now(), writing: false, failed, unreadable: 0 });
            }
            Err(panic) => {
                let keeps = if position.is_some() { "the previous version keeps serving" } else { "not served" };
                self.reload_failed(&path, format!("{}; {keeps}", load_panicked(&path, &panic)));
            }
        }
    }
}

/// Loads the file `bytes` read from `path`, whose SHA-256 is `hash`: a component, compiled or
/// taken from `cache`, or a Python function file, run by `engine`. The guest, and how it loaded
/// for the log; or why not.
fn load_file(
    runtime: &Runtime,
    cache: Option<&CompileCache>,
    engine: Option<&Guest>,
    path: &Path,
    bytes: &[u8],
    hash: ContentHash,
) -> Result<(Guest, String), String> {
    if !is_python_file(path) {
        return Guest::from_bytes(runtime, cache, path, bytes, hash)
            .map(|(guest, compiled)| (guest, compiled.to_string()))
            .map_err(|e| e.to_string());
    }
    let Some(engine) = engine else {
        return Err(format!(
            "{}: a Python function file needs the data-science engine, and none is loaded (`make datasci` puts \
             datasci.wasm in the functions folder)",
            path.display()
        ));
    };
    let started = Instant::now();
    let guest = Guest::from_python(engine, path, bytes, hash).map_err(|e| e.to_string())?;
    Ok((guest, format!("run by {} in {:.1} ms", engine.name, started.elapsed().as_secs_f64() * 1e3)))
}

/// The failure of a load whose thread panicked, naming the file and the panic's message.
fn load_panicked(path: &Path, panic: &tokio::task::JoinError) -> String {
    format!("{}: the host failed while loading it ({panic})", path.display())
}

/// Stops watching the folder when dropped.
pub struct WatchGuard {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A file size for people.
fn kib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Logs what a reload changed: functions added, replaced (same name, new code) and removed.
fn log_changes(before: &Registry, after: &Registry, files: &[PathBuf]) {
    let names = |r: &Registry| r.entries().iter().map(|e| e.def().name.clone()).collect::<BTreeSet<_>>();
    let (old, new) = (names(before), names(after));
    let added: Vec<_> = new.difference(&old).cloned().collect();
    let removed: Vec<_> = old.difference(&new).cloned().collect();
    let replaced: Vec<_> = after
        .entries()
        .iter()
        .filter(|e| e.guest().is_some_and(|g| files.contains(&g.path)) && old.contains(&e.def().name))
        .map(|e| e.def().name.clone())
        .collect();
    let files: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
    tracing::info!(
        "reloaded {}: added [{}], replaced [{}], removed [{}]; serving {} function(s), script engines [{}]",
        files.join(", "),
        added.join(", "),
        replaced.join(", "),
        removed.join(", "),
        new.len(),
        after.script_languages().join(", ")
    );
}

//! The model store: named byte blobs (trained models) that functions save and load, scoped to
//! the Qlik app that called — the one channel between calls — plus a read-only shared folder.
//!
//! On disk, under the store's folder:
//!
//! ```text
//! apps/<sha-256 of the app id, hex>/app-id         the app id itself, for `models list`
//! apps/<sha-256 of the app id, hex>/<name>.model   a model
//! ```
//!
//! An app id is never a path: its digest is. A model is written aside, synced and renamed over
//! the old one, so a reader sees the old model or the new, whole; of two writers the last
//! rename wins. The host only stores bytes: it never reads what they hold. The shared folder
//! holds `<name>.pkl` files an operator put there; guests can read them, never write them.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::{ModelError, ModelFault};
use crate::wasm::cache::{content_hash, hex};

/// The longest model name.
pub const MAX_NAME: usize = 100;

/// How large models may grow.
#[derive(Debug, Clone, Copy)]
pub struct ModelLimits {
    /// The largest model, in bytes.
    pub per_model: u64,
    /// The most one app's models may take together, in bytes.
    pub per_app: u64,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self { per_model: 64 << 20, per_app: 512 << 20 }
    }
}

/// A model as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// From the read-only shared folder.
    pub shared: bool,
    /// When it was last written (seconds since 1970).
    pub modified: u64,
}

/// An app's models as the operator's tools list them.
#[derive(Debug, Clone)]
pub struct AppListing {
    /// The app id (as Qlik sent it).
    pub app: String,
    /// Its models, by name.
    pub models: Vec<ModelInfo>,
}

/// Counts of what the store did, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ModelCounts {
    /// Models saved.
    pub saves: u64,
    /// Models loaded.
    pub loads: u64,
}

/// The store: its folder, the optional shared folder, the limits.
#[derive(Debug)]
pub struct ModelStore {
    root: PathBuf,
    shared: Option<PathBuf>,
    limits: ModelLimits,
    /// Saves in this process one at a time, so an app's total is checked against what is there.
    writing: Mutex<()>,
    saves: AtomicU64,
    loads: AtomicU64,
}

/// Whether `name` may name a model: 1 to [`MAX_NAME`] letters, digits, `_`, `-` and `.`, not
/// starting with `.` (no path, no hidden or temporary file).
pub fn check_name(name: &str) -> Result<(), ModelError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if fine {
        Ok(())
    } else {
        Err(ModelError::new(
            ModelFault::Name,
            format!(
                "{:?} is not a model name: use 1 to {MAX_NAME} letters, digits, '_', '-' or '.', not starting with '.'",
                name.chars().take(MAX_NAME + 1).collect::<String>()
            ),
        ))
    }
}

/// The refusal of a call that has no model store: the host runs without one, or the caller is a
/// script or a component's start-up, which never have one.
pub fn no_store() -> ModelError {
    ModelError::new(
        ModelFault::Off,
        "no model store for this call: functions keep models when the host runs with --models-dir DIR; scripts \
         and a component's start-up never do"
            .into(),
    )
}

fn storage(what: &str, error: std::io::Error) -> ModelError {
    ModelError::new(ModelFault::Storage, format!("the model store could not {what}: {error}"))
}

fn modified(meta: &fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

impl ModelStore {
    /// The store in `root` (made if missing), with `shared`, a folder of read-only models.
    pub fn open(root: &Path, shared: Option<&Path>, limits: ModelLimits) -> anyhow::Result<Self> {
        fs::create_dir_all(root.join("apps"))
            .map_err(|e| anyhow::anyhow!("cannot make the model store {}: {e}", root.display()))?;
        if let Some(shared) = shared {
            anyhow::ensure!(shared.is_dir(), "the shared models folder {} is not a folder", shared.display());
        }
        Ok(Self {
            root: root.to_owned(),
            shared: shared.map(Path::to_owned),
            limits,
            writing: Mutex::new(()),
            saves: AtomicU64::new(0),
            loads: AtomicU64::new(0),
        })
    }

    /// The limits.
    pub fn limits(&self) -> ModelLimits {
        self.limits
    }

    /// What this store has done since it opened.
    pub fn counts(&self) -> ModelCounts {
        ModelCounts { saves: self.saves.load(Ordering::Relaxed), loads: self.loads.load(Ordering::Relaxed) }
    }

    /// The view of one app's models.
    pub fn app(self: &Arc<Self>, app: &str) -> AppModels {
        AppModels { store: self.clone(), app: app.into() }
    }

    fn app_dir(&self, app: &str) -> PathBuf {
        self.root.join("apps").join(hex(&content_hash(app.as_bytes())))
    }

    /// Every app's models (and, with `app`, that one's only); the shared folder's are apart.
    pub fn list_all(&self, app: Option<&str>) -> Result<Vec<AppListing>, ModelError> {
        let mut listings = Vec::new();
        let dirs: Vec<PathBuf> = match app {
            Some(app) => vec![self.app_dir(app)],
            None => {
                let entries = fs::read_dir(self.root.join("apps")).map_err(|e| storage("read its apps", e))?;
                entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect()
            }
        };
        for dir in dirs {
            let Ok(id) = fs::read_to_string(dir.join("app-id")) else { continue };
            listings.push(AppListing { models: self.own_models(&dir)?, app: id });
        }
        listings.sort_by(|a, b| a.app.cmp(&b.app));
        Ok(listings)
    }

    /// The models in `dir`, by name.
    fn own_models(&self, dir: &Path) -> Result<Vec<ModelInfo>, ModelError> {
        self.models_in(dir, "model", false)
    }

    fn models_in(&self, dir: &Path, extension: &str, shared: bool) -> Result<Vec<ModelInfo>, ModelError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(storage("list models", e)),
        };
        let mut models = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(name) = name.strip_suffix(&format!(".{extension}")) else { continue };
            if check_name(name).is_err() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                models.push(ModelInfo { name: name.to_owned(), bytes: meta.len(), shared, modified: modified(&meta) });
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    /// Deletes `name` of `app`; whether it was there.
    pub fn delete(&self, app: &str, name: &str) -> Result<bool, ModelError> {
        check_name(name)?;
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        match fs::remove_file(self.app_dir(app).join(format!("{name}.model"))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage("delete the model", e)),
        }
    }

    /// The shared folder's models.
    pub fn shared_models(&self) -> Result<Vec<ModelInfo>, ModelError> {
        match &self.shared {
            Some(shared) => self.models_in(shared, "pkl", true),
            None => Ok(Vec::new()),
        }
    }

    /// Models stored and their bytes, over every app (the shared folder aside).
    pub fn totals(&self) -> (u64, u64) {
        let listings = self.list_all(None).unwrap_or_default();
        let models = listings.iter().flat_map(|l| &l.models);
        models.fold((0, 0), |(count, bytes), m| (count + 1, bytes + m.bytes))
    }
}

/// One app's models: what a call of that app may save, load and list.
#[derive(Debug, Clone)]
pub struct AppModels {
    store: Arc<ModelStore>,
    app: Arc<str>,
}

impl AppModels {
    /// The app's id.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Saves `bytes` as `name`, replacing a model of that name whole.
    pub fn save(&self, name: &str, bytes: &[u8]) -> Result<(), ModelError> {
        check_name(name)?;
        let store = &self.store;
        let limits = store.limits;
        if bytes.len() as u64 > limits.per_model {
            return Err(ModelError::new(
                ModelFault::Limit,
                format!(
                    "model {name} is {} bytes, over the limit of {} bytes per model (--model-max)",
                    bytes.len(),
                    limits.per_model
                ),
            ));
        }
        let _writing = store.writing.lock().unwrap_or_else(|e| e.into_inner());
        let dir = store.app_dir(&self.app);
        fs::create_dir_all(&dir).map_err(|e| storage("make the app's folder", e))?;
        let id = dir.join("app-id");
        if !id.exists() {
            write_whole(&dir, &id, self.app.as_bytes())?;
        }
        let others: u64 = store.own_models(&dir)?.iter().filter(|m| m.name != name).map(|m| m.bytes).sum();
        if others + bytes.len() as u64 > limits.per_app {
            return Err(ModelError::new(
                ModelFault::Limit,
                format!(
                    "model {name} ({} bytes) would bring this app's models to {} bytes, over the limit of {} bytes \
                     per app (--models-max-per-app); delete models with `sse-wasm models delete`",
                    bytes.len(),
                    others + bytes.len() as u64,
                    limits.per_app
                ),
            ));
        }
        write_whole(&dir, &dir.join(format!("{name}.model")), bytes)?;
        store.saves.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The model `name`: the app's own, else the shared folder's `<name>.pkl`.
    pub fn load(&self, name: &str) -> Result<Vec<u8>, ModelError> {
        check_name(name)?;
        let store = &self.store;
        let own = store.app_dir(&self.app).join(format!("{name}.model"));
        let shared = store.shared.as_ref().map(|s| s.join(format!("{name}.pkl")));
        for path in std::iter::once(own).chain(shared) {
            match fs::File::open(&path) {
                Ok(file) => {
                    let mut bytes = Vec::new();
                    // No larger than a model may be, whatever was put in the folder.
                    file.take(store.limits.per_model + 1)
                        .read_to_end(&mut bytes)
                        .map_err(|e| storage("read the model", e))?;
                    if bytes.len() as u64 > store.limits.per_model {
                        return Err(ModelError::new(
                            ModelFault::Limit,
                            format!("model {name} is over the limit of {} bytes per model", store.limits.per_model),
                        ));
                    }
                    store.loads.fetch_add(1, Ordering::Relaxed);
                    return Ok(bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(storage("read the model", e)),
            }
        }
        let known: Vec<String> = self.list()?.into_iter().map(|m| m.name).collect();
        Err(ModelError::new(
            ModelFault::Missing,
            format!(
                "no model named {name} for this app (its models: {}); save it first, from the load script",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
        ))
    }

    /// The app's models, then the shared folder's.
    pub fn list(&self) -> Result<Vec<ModelInfo>, ModelError> {
        let store = &self.store;
        let mut models = store.own_models(&store.app_dir(&self.app))?;
        models.extend(store.shared_models()?);
        Ok(models)
    }
}

/// Writes `bytes` to `path` whole: into a temporary file of `dir`, synced, renamed over `path`,
/// and the folder synced.
fn write_whole(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let mut file =
        tempfile::Builder::new().prefix(".saving-").tempfile_in(dir).map_err(|e| storage("write the model", e))?;
    file.write_all(bytes).map_err(|e| storage("write the model", e))?;
    file.as_file().sync_all().map_err(|e| storage("write the model", e))?;
    file.persist(path).map_err(|e| storage("write the model", e.error))?;
    if let Ok(folder) = fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(limits: ModelLimits, shared: Option<&Path>) -> (tempfile::TempDir, Arc<ModelStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ModelStore::open(&dir.path().join("models"), shared, limits).expect("opens");
        (dir, Arc::new(store))
    }

    #[test]
    fn names_that_could_be_paths_are_refused() {
        for bad in ["", "..", "../x", "a/b", "a\\b", ".hidden", "x\0y", "é", &"n".repeat(MAX_NAME + 1)] {
            assert_eq!(check_name(bad).map_err(|e| e.fault), Err(ModelFault::Name), "{bad:?}");
        }
        for good in ["churn", "churn.v2", "A_b-3", &"n".repeat(MAX_NAME)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn apps_are_folders_by_digest_and_see_only_their_models() {
        let (_dir, store) = store(ModelLimits::default(), None);
        let (a, b) = (store.app("../../etc"), store.app("App B"));
        a.save("m", b"one").expect("saves");
        assert_eq!(a.load("m").expect("loads"), b"one");
        assert_eq!(b.load("m").map_err(|e| e.fault), Err(ModelFault::Missing));
        b.save("m", b"two").expect("saves");
        assert_eq!(a.load("m").expect("loads"), b"one", "another app's save does not replace it");
        let folders: Vec<String> = fs::read_dir(store.root.join("apps"))
            .expect("lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(folders.iter().all(|f| f.len() == 64 && f.chars().all(|c| c.is_ascii_hexdigit())), "{folders:?}");
        let apps: Vec<String> = store.list_all(None).expect("lists").into_iter().map(|l| l.app).collect();
        assert_eq!(apps, ["../../etc", "App B"]);
    }

    #[test]
    fn limits_per_model_and_per_app() {
        let (_dir, store) = store(ModelLimits { per_model: 10, per_app: 15 }, None);
        let app = store.app("a");
        assert_eq!(app.save("big", &[0; 11]).map_err(|e| e.fault), Err(ModelFault::Limit));
        app.save("one", &[0; 10]).expect("fits");
        let full = app.save("two", &[0; 6]).expect_err("over the app's limit");
        assert!(full.message.contains("15 bytes per app"), "{}", full.message);
        app.save("one", &[0; 9]).expect("a replacement counts once");
        app.save("two", &[0; 6]).expect("fits now");
    }

    #[test]
    fn the_shared_folder_is_read_after_the_apps_own() {
        let shared = tempfile::tempdir().expect("temp dir");
        fs::write(shared.path().join("rf.pkl"), b"shared").expect("writes");
        let (_dir, store) = store(ModelLimits::default(), Some(shared.path()));
        let app = store.app("a");
        assert_eq!(app.load("rf").expect("shared"), b"shared");
        app.save("rf", b"own").expect("saves");
        assert_eq!(app.load("rf").expect("own"), b"own");
        assert_eq!(fs::read(shared.path().join("rf.pkl")).expect("reads"), b"shared", "never written");
        let listed: Vec<(String, bool)> = app.list().expect("lists").into_iter().map(|m| (m.name, m.shared)).collect();
        assert_eq!(listed, [("rf".to_owned(), false), ("rf".to_owned(), true)]);
    }
}

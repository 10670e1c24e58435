//! The on-disk compile cache: compiled components keyed by the source file's content hash and the
//! engine's compatibility hash, so a restart or the reload of a file seen before skips Cranelift.
//!
//! A compiled artifact is native code that wasmtime runs without checking it, so an entry is
//! trusted only if this host wrote it for exactly this source: every entry is `MAGIC`, then an
//! HMAC-SHA-256 under the host's secret [`CacheKey`] over the source file's content hash, the
//! engine's compatibility hash and the artifact, then the artifact. Whoever can write to the cache
//! folder (or copy entries around in it) but cannot read the key cannot make an entry that passes:
//! an entry moved to another source's name, or forged without the key, fails, is deleted with a
//! warning naming it, and the component is recompiled. A different engine configuration (or
//! wasmtime version) has a different compatibility hash, so it never even looks at old entries.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Module;
use wasmtime::component::Component;

use crate::metrics::Metrics;

/// The first bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"SSEWASM2";

/// Bytes of the MAC after `MAGIC`.
const TAG_BYTES: usize = 32;

/// Takes the code of `bytes` (read from `path`, SHA-256 `hash`) from `cache`, or compiles it
/// for `engine` (a failure is `compile_error`'s); then `prepare` makes it ready to serve (linking,
/// `describe`). Only code that got ready is stored in the cache; the hit or miss is counted in
/// `metrics`.
pub(crate) fn load_or_compile<A: Artifact, T, E>(
    engine: &wasmtime::Engine,
    cache: Option<&CompileCache>,
    metrics: &Metrics,
    (path, bytes, hash): (&Path, &[u8], &ContentHash),
    compile_error: impl FnOnce(wasmtime::Error) -> E,
    prepare: impl FnOnce(&A) -> Result<T, E>,
) -> Result<(T, Compiled), E> {
    let started = Instant::now();
    let cached = cache.and_then(|c| c.load::<A>(engine, path, hash));
    let from_cache = cached.is_some();
    let code = match cached {
        Some(code) => code,
        None => A::compile(engine, bytes).map_err(compile_error)?,
    };
    let took = started.elapsed();
    let ready = prepare(&code)?;
    let whole = started.elapsed();
    let compiled = if from_cache {
        metrics.cache_hits.inc();
        Compiled::FromCache { read: took, ready: whole }
    } else {
        metrics.cache_misses.inc();
        if let Some(cache) = cache {
            cache.store(engine, hash, &code);
        }
        Compiled::Fresh { compile: took, ready: whole }
    };
    Ok((ready, compiled))
}

/// Where a module's machine code came from, how long getting it took, and how long the whole load
/// took (code, linking and `describe`): the time until it could serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled with Cranelift.
    Fresh {
        /// Compiling.
        compile: Duration,
        /// The whole load.
        ready: Duration,
    },
    /// Read from the compile cache.
    FromCache {
        /// Reading and checking the entry.
        read: Duration,
        /// The whole load.
        ready: Duration,
    },
}

impl std::fmt::Display for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        match self {
            Self::Fresh { compile, ready } => {
                write!(f, "compiled in {:.1} ms, ready in {:.1} ms", ms(compile), ms(ready))
            }
            Self::FromCache { read, ready } => {
                write!(f, "cache hit in {:.1} ms, ready in {:.1} ms", ms(read), ms(ready))
            }
        }
    }
}

/// The SHA-256 of a component file's bytes.
pub type ContentHash = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the cache key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or writing the key file failed.
    #[error("cannot use the compile cache key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("{path} is not a compile cache key (64 hexadecimal digits); delete it and a new one is made")]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// Others may read or change the key, so they could forge entries.
    #[error("the compile cache key {path} is open to other users ({how}), or delete it and a new one is made")]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// What lets them in, and how to close it.
        how: String,
    },
}

/// The secret that authenticates compile cache entries: 32 random bytes the host makes on first
/// use and keeps in a file only its user may read, outside the functions and cache folders.
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// A new random key, kept in memory only.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0; 32];
        getrandom::getrandom(&mut key)?;
        Ok(Self(key))
    }

    /// The key in `path`, made (random, readable by this user only) if the file does not exist.
    /// Two hosts starting at once agree on one key: the file appears whole or not at all.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        match std::fs::read(path) {
            Ok(bytes) => return Self::parse(path, &bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        let key = Self::random().map_err(|e| io(std::io::Error::other(e)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(io)?;
        // Written whole under a temporary name, then linked into place: a second host starting at
        // the same moment either wins the link or reads the first one's key.
        let temporary = dir.join(format!(".cache-key-{}-{}", std::process::id(), hex(&key.0[..4])));
        let written = private_file(&temporary).and_then(|mut file| {
            file.write_all(format!("{}\n", hex(&key.0)).as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!("made a new compile cache key in {}", path.display());
                Ok(key)
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::parse(path, &std::fs::read(path).map_err(io)?)
            }
            Err(error) => Err(io(error)),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        check_private(path)?;
        let malformed = || KeyError::Malformed { path: path.to_owned() };
        let text = std::str::from_utf8(bytes).map_err(|_| malformed())?.trim();
        if text.len() != 64 {
            return Err(malformed());
        }
        let mut key = [0; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| malformed())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| malformed())?;
        }
        Ok(Self(key))
    }

    /// The MAC of an entry: over what it was compiled from, for which engine, and what it holds.
    fn tag(&self, content: &ContentHash, compatibility: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"sse-wasm compile cache entry\0");
        mac.update(content);
        mac.update(compatibility.as_bytes());
        mac.update(&(artifact.len() as u64).to_le_bytes());
        mac.update(artifact);
        mac
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(windows)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    super::access::make_private(path)?;
    Ok(file)
}

#[cfg(not(any(unix, windows)))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Refuses a key file that other users may read or write.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?.permissions().mode();
    if mode & 0o077 != 0 {
        let how = format!("mode {:o}; `chmod 600` it", mode & 0o777);
        return Err(KeyError::Exposed { path: path.to_owned(), how });
    }
    Ok(())
}

/// Refuses a key file whose access list lets in accounts other than the host's own, the local
/// system and the administrators.
#[cfg(windows)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    match super::access::open_to_others(path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(KeyError::Exposed {
            path: path.to_owned(),
            how: "its access list lets other accounts in; remove them in its Security properties".to_owned(),
        }),
        Err(source) => Err(KeyError::Io { path: path.to_owned(), source }),
    }
}

#[cfg(not(any(unix, windows)))]
fn check_private(_: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// What the cache holds: compiled components, and compiled core modules (the data-science
/// engine's).
pub trait Artifact: Sized {
    /// Compiles `bytes` with Cranelift for `engine`.
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// The compiled code, as `deserialize` takes it back.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// Code `serialize` made, for `engine`.
    ///
    /// # Safety
    /// `bytes` must be exactly what `serialize` produced: the code runs as it is.
    #[allow(unsafe_code)]
    unsafe fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Artifact for Component {
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    #[allow(unsafe_code)]
    unsafe fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Component::deserialize(engine, bytes) }
    }
}

impl Artifact for Module {
    fn compile(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    #[allow(unsafe_code)]
    unsafe fn deserialize(engine: &wasmtime::Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Module::deserialize(engine, bytes) }
    }
}

/// How large the cache may grow before the entries used longest ago are deleted: room for a few
/// data-science engines (about 460 MB each) and thousands of ordinary components.
pub const DEFAULT_BUDGET: u64 = 4 << 30;

/// A folder of compiled components (and modules), for any engine: an entry's name and MAC
/// carry the compatibility hash of the engine that compiled it. Past its budget, the entries
/// used longest ago go (an entry's modification time is its last use).
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
    key: CacheKey,
    budget: u64,
}

/// What tells apart the code of two engine configurations (or versions of the host).
fn compatibility(engine: &wasmtime::Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl CompileCache {
    /// A cache in `dir` (created if missing), its entries authenticated with `key`.
    pub fn new(dir: &Path, key: CacheKey) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        Ok(Self { dir: dir.to_owned(), key, budget: DEFAULT_BUDGET })
    }

    /// The same cache, keeping at most `bytes` of entries.
    pub fn with_budget(mut self, bytes: u64) -> Self {
        self.budget = bytes;
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry file for the code `engine` compiles from the bytes that hash to `content`.
    pub fn entry(&self, engine: &wasmtime::Engine, content: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", hex(content), compatibility(engine)))
    }

    /// The cached compilation of `source`, whose bytes hash to `content`, by `engine`, if there
    /// is an authentic one.
    pub fn load<A: Artifact>(&self, engine: &wasmtime::Engine, source: &Path, content: &ContentHash) -> Option<A> {
        let path = self.entry(engine, content);
        let bytes = std::fs::read(&path).ok()?;
        match self.verified(engine, content, &bytes) {
            Ok(component) => {
                // Marks the entry used, for the budget. Failing to only makes it go sooner.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Some(component)
            }
            Err(reason) => {
                tracing::warn!(
                    "compile cache entry {} for {} is refused ({reason}); deleted, recompiling",
                    path.display(),
                    source.display()
                );
                // A failed removal only means the next start recompiles too.
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn verified<A: Artifact>(
        &self,
        engine: &wasmtime::Engine,
        content: &ContentHash,
        bytes: &[u8],
    ) -> Result<A, String> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not an entry of this version")?;
        let (tag, artifact) = rest.split_at_checked(TAG_BYTES).ok_or("truncated")?;
        self.key
            .tag(content, &compatibility(engine), artifact)
            .verify_slice(tag)
            .map_err(|_| "its MAC does not match: it was not written by this host for this file")?;
        // SAFETY: `deserialize` runs the artifact's machine code as it is, so it must be exactly
        // what `Component::serialize` produced for this file. The MAC above proves that: it is
        // keyed with a secret only this host's user can read (kept outside the functions and cache
        // folders, mode 0600), and covers the source file's content hash, the engine's
        // compatibility hash and every byte of the artifact. An entry copied from another file's
        // name, edited, torn or forged without the key fails it. wasmtime itself also refuses
        // artifacts from another version or engine configuration.
        #[allow(unsafe_code)]
        let compiled = unsafe { A::deserialize(engine, artifact) };
        compiled.map_err(|e| format!("{e:#}"))
    }

    /// Stores the compilation, by `engine`, of the bytes that hash to `content`. Failure is
    /// logged and otherwise harmless: the cache only saves time.
    pub fn store<A: Artifact>(&self, engine: &wasmtime::Engine, content: &ContentHash, compiled: &A) {
        let compatibility = compatibility(engine);
        let result = compiled.serialize().map_err(|e| format!("{e:#}")).and_then(|artifact| {
            let tag = self.key.tag(content, &compatibility, &artifact).finalize().into_bytes();
            let mut entry = Vec::with_capacity(MAGIC.len() + TAG_BYTES + artifact.len());
            entry.extend_from_slice(MAGIC);
            entry.extend_from_slice(&tag);
            entry.extend_from_slice(&artifact);
            // Written aside, then renamed: a reader never sees half an entry.
            let path = self.entry(engine, content);
            let temporary = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temporary, &entry)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
        if let Err(reason) = result {
            tracing::warn!("compile cache: {reason}");
        }
        self.keep_to_budget(&self.entry(engine, content));
    }

    /// Deletes the entries used longest ago, never `keep`, until the folder fits the budget.
    fn keep_to_budget(&self, keep: &Path) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = listing
            .filter_map(|e| {
                let e = e.ok()?;
                let path = e.path();
                let meta = e.metadata().ok()?;
                let modified = meta.modified().ok()?;
                (path.extension()? == "cwasm" && meta.is_file()).then_some((modified, meta.len(), path))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        entries.sort();
        for (_, size, path) in entries {
            if total <= self.budget {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                tracing::info!(
                    "compile cache over {} MiB: deleted {}, used longest ago",
                    self.budget >> 20,
                    path.display()
                );
                total -= size;
            }
        }
    }
}

/// Where compiled components live, and the key that authenticates them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheLocation {
    /// The folder of entries.
    pub dir: PathBuf,
    /// The key file.
    pub key: PathBuf,
}

/// `$var` if set and absolute, else `~/<fallback>`.
#[cfg(not(windows))]
fn user_folder(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback)))
}

/// `sse-wasm` in the user's cache folder.
#[cfg(not(windows))]
fn default_dir() -> Option<PathBuf> {
    user_folder("XDG_CACHE_HOME", ".cache").map(|d| d.join("sse-wasm"))
}

/// `sse-wasm/cache.key` in the user's data folder.
#[cfg(not(windows))]
fn default_key() -> Option<PathBuf> {
    user_folder("XDG_DATA_HOME", ".local/share").map(|d| d.join("sse-wasm/cache.key"))
}

/// The account's local application data (`%LOCALAPPDATA%`), which only it and the
/// administrators may read; for a service running as LocalSystem that is the system profile's.
#[cfg(windows)]
fn local_app_data() -> Option<PathBuf> {
    std::env::var_os("LOCALAPPDATA").map(PathBuf::from).filter(|p| p.is_absolute()).map(|d| d.join("sse-wasm"))
}

/// `%LOCALAPPDATA%\sse-wasm\cache`.
#[cfg(windows)]
fn default_dir() -> Option<PathBuf> {
    local_app_data().map(|d| d.join("cache"))
}

/// `%LOCALAPPDATA%\sse-wasm\cache.key`.
#[cfg(windows)]
fn default_key() -> Option<PathBuf> {
    local_app_data().map(|d| d.join("cache.key"))
}

/// `path` made absolute, with the part of it that exists resolved (symbolic links, `..`), so
/// that two paths to the same folder compare equal. On Windows, where names are compared without
/// regard to case, in lower case.
fn resolved(path: &Path) -> PathBuf {
    let resolved = resolved_as_named(path);
    if cfg!(windows) { PathBuf::from(resolved.to_string_lossy().to_lowercase()) } else { resolved }
}

fn resolved_as_named(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |path, part| path.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

impl CacheLocation {
    /// The folder and key the flags name, or the user's defaults; `None` when there is no home
    /// folder to put them in (the host then compiles at every load).
    pub fn from_flags(dir: Option<PathBuf>, key: Option<PathBuf>) -> Option<Self> {
        let dir = dir.or_else(default_dir)?;
        let key = key.or_else(default_key)?;
        Some(Self { dir, key })
    }

    /// Refuses a cache whose entries or key could be planted through the functions folder (or
    /// whose key sits among the entries): whoever may drop a module there must not be able to
    /// drop compiled code too.
    pub fn check(&self, functions_dir: &Path) -> anyhow::Result<()> {
        let (functions, dir, key) = (resolved(functions_dir), resolved(&self.dir), resolved(&self.key));
        anyhow::ensure!(
            !dir.starts_with(&functions) && !functions.starts_with(&dir),
            "the compile cache folder {} overlaps the functions folder {}: whoever may add a module could \
             plant compiled code; choose a --cache-dir outside it",
            self.dir.display(),
            functions_dir.display()
        );
        anyhow::ensure!(
            !key.starts_with(&functions) && !key.starts_with(&dir),
            "the compile cache key {} is inside the functions folder {} or the cache folder {}; choose a \
             --cache-key outside both",
            self.key.display(),
            functions_dir.display(),
            self.dir.display()
        );
        Ok(())
    }

    /// Opens the cache; `None`, with a warning saying why, when it cannot be used.
    pub fn open(&self) -> Option<CompileCache> {
        let opened = CacheKey::load_or_create(&self.key).map_err(|e| e.to_string()).and_then(|key| {
            CompileCache::new(&self.dir, key).map_err(|e| format!("cannot use the folder {}: {e}", self.dir.display()))
        });
        match opened {
            Ok(cache) => Some(cache),
            Err(reason) => {
                tracing::warn!("compile cache off, compiling at every load: {reason}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_budget_the_cache_deletes_the_entries_used_longest_ago() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = CompileCache::new(dir.path(), CacheKey::random().expect("key")).expect("cache").with_budget(250);
        let now = std::time::SystemTime::now();
        let write = |name: &str, size: usize, age: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![0; size]).expect("write");
            let file = std::fs::File::options().write(true).open(&path).expect("open");
            file.set_modified(now - std::time::Duration::from_secs(age)).expect("mtime");
            path
        };
        let oldest = write("a.cwasm", 100, 300);
        let older = write("b.cwasm", 100, 200);
        let newer = write("c.cwasm", 100, 100);
        // The newest-written entry is kept even when it alone is older than the others.
        let kept = write("d.cwasm", 100, 400);
        let other = write("key-or-note.txt", 1000, 500);
        cache.keep_to_budget(&kept);
        assert!(!oldest.exists() && !older.exists(), "the two used longest ago go");
        assert!(newer.exists() && kept.exists() && other.exists(), "the rest stays, and other files");
    }

    #[test]
    fn a_key_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys/cache.key");
        let made = CacheKey::load_or_create(&path).expect("made");
        let read = CacheKey::load_or_create(&path).expect("read");
        assert_eq!(made.0, read.0);
        assert_eq!(std::fs::read_to_string(&path).expect("text").trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let error = CacheKey::load_or_create(&path).expect_err("exposed");
            assert!(error.to_string().contains("chmod 600"), "{error}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        std::fs::write(&path, "not a key").expect("write");
        assert!(matches!(CacheKey::load_or_create(&path), Err(KeyError::Malformed { .. })));
        assert_ne!(CacheKey::random().expect("random").0, made.0);
    }

    #[test]
    fn a_cache_that_the_functions_folder_could_plant_is_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        let functions = root.path().join("functions");
        std::fs::create_dir(&functions).expect("mkdir");
        let at = |dir: &str, key: &str| CacheLocation { dir: root.path().join(dir), key: root.path().join(key) };
        at("cache", "keys/cache.key").check(&functions).expect("apart");
        // Inside, through `..`, and holding the functions folder.
        for (dir, key, named) in [
            ("functions/.cache", "k", "cache folder"),
            ("functions/../functions/x", "k", "cache folder"),
            (".", "k", "cache folder"),
            ("cache", "functions/cache.key", "key"),
            ("cache", "cache/cache.key", "key"),
        ] {
            let error = at(dir, key).check(&functions).expect_err("refused").to_string();
            assert!(error.contains(named), "{dir} {key}: {error}");
        }
    }
}

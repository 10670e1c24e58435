//! The cache's folder of entries: each `MAGIC`, an HMAC-SHA-256 under the key over the source's
//! content hash, the engine's compatibility hash and the artifact, then the artifact; the entries
//! used longest ago deleted past the budget.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::Mac;
use wasmtime::Module;
use wasmtime::component::Component;

use super::key::create_private_dir;
use super::key::{CacheKey, ContentHash, hex};

/// The first bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"SSEWASM2";

/// Bytes of the MAC after `MAGIC`.
const TAG_BYTES: usize = 32;

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

/// The code generation's own revision: the vendored compiler's changes (`vendor/README.md`) that
/// stock wasmtime's compatibility hash does not see.
const CODEGEN: &str = "epoch-check-preserve-all";

/// What tells apart the code of two engine configurations (or versions of the host).
fn compatibility(engine: &wasmtime::Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    CODEGEN.hash(&mut hasher);
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
}

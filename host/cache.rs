//! The on-disk compile cache: compiled components keyed by the source file's content hash and the
//! engine's compatibility hash, so a restart or the reload of a file seen before skips Cranelift.
//!
//! An entry is `MAGIC`, the SHA-256 of the artifact, then the artifact. Loading an entry checks the
//! digest before wasmtime sees a byte, and wasmtime checks its own header and engine settings; an
//! entry failing either is deleted and the component recompiled. A different engine configuration
//! (or wasmtime version) has a different compatibility hash, so it never even looks at old entries.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// The first bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"SSEWASM1";

/// The SHA-256 of a component file's bytes.
pub type ContentHash = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A folder of compiled components.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
    compatibility: String,
}

impl CompileCache {
    /// A cache in `dir` (created if missing) for components compiled by `engine`.
    pub fn new(dir: &Path, engine: &wasmtime::Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(Self { dir: dir.to_owned(), compatibility: format!("{:016x}", hasher.finish()) })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, content: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", hex(content), self.compatibility))
    }

    /// The cached compilation of the component whose bytes hash to `content`, if there is a sound one.
    pub fn load(&self, engine: &wasmtime::Engine, content: &ContentHash) -> Option<Component> {
        let path = self.entry(content);
        let bytes = std::fs::read(&path).ok()?;
        match Self::verified(engine, &bytes) {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!("compile cache entry {} is unusable ({reason}); recompiling", path.display());
                // A failed removal only means the next start recompiles too.
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn verified(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Component, String> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a cache entry")?;
        let (digest, artifact) = rest.split_at_checked(32).ok_or("truncated")?;
        if Sha256::digest(artifact).as_slice() != digest {
            return Err("its checksum does not match".into());
        }
        // SAFETY: `deserialize` trusts its input to be an artifact this wasmtime produced. The
        // checksum above proves the bytes are exactly those `store` wrote from `serialize` (a torn
        // write, bit rot or a stray file fails it), and wasmtime itself refuses artifacts from
        // another version or engine configuration. The cache folder is the host's own, like its binary.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component.map_err(|e| format!("{e:#}"))
    }

    /// Stores the compilation of the component whose bytes hash to `content`. Failure is logged
    /// and otherwise harmless: the cache only saves time.
    pub fn store(&self, content: &ContentHash, component: &Component) {
        let result = component.serialize().map_err(|e| format!("{e:#}")).and_then(|artifact| {
            let mut entry = Vec::with_capacity(MAGIC.len() + 32 + artifact.len());
            entry.extend_from_slice(MAGIC);
            entry.extend_from_slice(&Sha256::digest(&artifact));
            entry.extend_from_slice(&artifact);
            // Written aside, then renamed: a reader never sees half an entry.
            let path = self.entry(content);
            let temporary = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temporary, &entry)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
        if let Err(reason) = result {
            tracing::warn!("compile cache: {reason}");
        }
    }
}

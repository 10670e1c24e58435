//! Where the compile cache and its key live: the defaults in the user's folders, and the checks
//! that keep both out of the functions folder.

use std::path::{Path, PathBuf};

use super::entries::CompileCache;
use super::key::CacheKey;

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

//! Where the compile cache and its key live, and the checks that keep both out of the functions
//! folder (their defaults, in the user's folders, are the command line's: `app::cli`).

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

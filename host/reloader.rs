//! Loading the folder of components into a registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::Engine;
use crate::module::Module;
use crate::registry::Registry;

/// True for the files the host serves: `*.wasm`, not hidden (editors and copy tools write
/// temporary files as `.name.wasm` or `name.wasm.tmp`).
pub fn is_component_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    !hidden && path.extension().is_some_and(|e| e == "wasm")
}

/// The component files of `dir`, sorted by name so that load order (and so which of two
/// same-named functions wins) does not depend on the file system.
pub fn component_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| is_component_file(path) && path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every component of `dir`. A component that fails to load is logged with the reason and
/// skipped; the others serve.
pub fn load_dir(engine: &Engine, dir: &Path) -> std::io::Result<Registry> {
    let mut modules = Vec::new();
    for path in component_files(dir)? {
        let started = Instant::now();
        match Module::load(engine, &path) {
            Ok(module) => {
                let names: Vec<&str> = module.functions.iter().map(|f| f.name.as_str()).collect();
                tracing::info!(
                    file = %path.display(), ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
                    "loaded {} function(s): {}", names.len(), names.join(", ")
                );
                modules.push(Arc::new(module));
            }
            Err(error) => tracing::error!("skipped: {error}"),
        }
    }
    Ok(Registry::new(modules))
}

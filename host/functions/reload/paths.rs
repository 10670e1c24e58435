//! Which files of the functions folder are served, in which order, and paths as people write them.

use std::path::{Path, PathBuf};

use crate::wasm::is_python_file;

/// True for the files the host serves: components (`*.wasm`) and Python function files (`*.py`),
/// not hidden (copy tools and editors write their temporary files as `.name.wasm`,
/// `name.wasm.tmp` or `name.wasm~`).
pub fn is_function_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    // Windows names files without regard to case: `Stats.WASM` is a component there.
    let component = path.extension().is_some_and(|e| e == "wasm" || (cfg!(windows) && e.eq_ignore_ascii_case("wasm")));
    !hidden && (component || is_python_file(path))
}

/// `path` made absolute and resolved, as people write it: on Windows without the `\\?\` prefix
/// that resolving adds (`C:\f`, not `\\?\C:\f`) wherever the plain form means the same file
/// (`dunce`: not for names Windows reserves, nor paths longer than the plain form allows).
pub fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    dunce::canonicalize(path)
}

/// The function files of `dir`, sorted by name so that load order (and so which of two
/// same-named functions wins) does not depend on the file system.
pub fn function_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| is_function_file(path) && path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_and_py_files_are_served() {
        for yes in ["/f/stats.wasm", "f/a.b.wasm", "/f/stats.py"] {
            assert!(is_function_file(Path::new(yes)), "{yes}");
        }
        for no in [
            "/f/.stats.wasm",
            "/f/stats.wasm.tmp",
            "/f/stats.wasm~",
            "/f/stats.wat",
            "/f/.wasm",
            "/f/wasm",
            "/f/.stats.py",
            "/f/stats.pyc",
            "/f/stats.py.swp",
        ] {
            assert!(!is_function_file(Path::new(no)), "{no}");
        }
    }
}

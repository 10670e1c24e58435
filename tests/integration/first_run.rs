//! A first `make run` on a fresh machine: a system piece the guest toolchains need and that is
//! missing (Python's venv, npm) is named by the package that brings it, before anything is
//! installed, instead of surfacing as a traceback halfway through a build.

use std::process::Command;

/// Runs `make TARGET VARS...` in the project and returns its exit success and standard error.
fn make(target: &str, vars: &[&str]) -> (bool, String) {
    let output = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--no-print-directory")
        .arg(target)
        .args(vars)
        .output()
        .expect("make runs");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_python_without_venv_is_named_by_its_package() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A Python whose `import ensurepip` fails, as Debian's python3 without python3-venv.
    let python = dir.path().join("python3");
    std::fs::write(&python, "#!/bin/sh\necho 'ModuleNotFoundError: No module named ensurepip' >&2\nexit 1\n")
        .expect("write");
    let mut permissions = std::fs::metadata(&python).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&python, permissions).expect("chmod");

    let (ok, stderr) = make("need-python-venv", &[&format!("PYTHON={}", python.display())]);
    assert!(!ok, "make fails");
    assert!(stderr.contains("sudo apt install python3-venv"), "{stderr}");
    assert!(!stderr.contains("Traceback") && !stderr.contains("ModuleNotFoundError"), "{stderr}");

    let (ok, stderr) = make("need-python-venv", &["PYTHON=python3-that-is-not-installed"]);
    assert!(!ok, "make fails");
    assert!(stderr.contains("python3-that-is-not-installed is not installed"), "{stderr}");
    assert!(stderr.contains("python3-venv"), "{stderr}");

    // The machine's own Python (which `make test` has used) passes.
    let (ok, stderr) = make("need-python-venv", &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn a_missing_npm_is_named_by_its_package() {
    let (ok, stderr) = make("need-npm", &["NPM=npm-that-is-not-installed"]);
    assert!(!ok, "make fails");
    assert!(stderr.contains("npm-that-is-not-installed is not installed"), "{stderr}");
    assert!(stderr.contains("sudo apt install npm"), "{stderr}");
    let (ok, stderr) = make("need-npm", &[]);
    assert!(ok, "{stderr}");
}

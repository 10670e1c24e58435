//! The guest author's toolkit, through the real binary: `sse-wasm inspect` and `sse-wasm call`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sse_wasm::functions::registry::function_id;

use crate::util::guest_wasm;

/// The tools' compile cache and its key for this test process (`XDG_CACHE_HOME/sse-wasm`,
/// `XDG_DATA_HOME/sse-wasm/cache.key`).
fn cache_home() -> &'static std::path::Path {
    static HOME: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| crate::util::process_dir("toolkit-home"))
}

fn sse_wasm(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SSE_WASM_CACHE_DIR")
        .env_remove("SSE_WASM_CACHE_KEY")
        .env("XDG_CACHE_HOME", cache_home())
        .env("XDG_DATA_HOME", cache_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sse-wasm");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_lists_functions_with_ids_and_refuses_what_does_not_fit() {
    let module = guest_wasm("column_operations");
    let output = sse_wasm(&["inspect", module.to_str().unwrap()], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("3 function(s); fits qlik:sse/plugin@0.1.0"), "{stdout}");
    assert!(stdout.contains("SumOfRows(col1: NUMERIC, col2: NUMERIC) -> NUMERIC"), "{stdout}");
    assert!(stdout.contains(&format!("id {}, TENSOR, per-batch", function_id("SumOfRows"))), "{stdout}");
    assert!(stdout.contains("-> table MaxOfColumns(Max1: NUMERIC, Max2: NUMERIC)"), "{stdout}");

    let broken = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(broken.path(), b"not wasm").expect("write");
    let output = sse_wasm(&["inspect", broken.path().to_str().unwrap()], "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("is not a loadable WebAssembly component"), "{}", text(&output.stderr));

    let bad_names = guest_wasm("hostile_bad_names");
    let output = sse_wasm(&["inspect", bad_names.to_str().unwrap()], "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("letters, digits and underscore"), "{}", text(&output.stderr));
}

#[test]
fn call_runs_one_function_from_arguments_or_csv() {
    let module = guest_wasm("column_operations");
    let path = module.to_str().unwrap();
    let output = sse_wasm(&["call", path, "SumOfRows", "--arg", "1", "--arg", "2.5"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "SumOfRows\n3.5\n");

    let output = sse_wasm(&["call", path, "MaxOfColumns_2", "--csv"], "1,-2\n7,-9\n3,0\n");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "Max1\tMax2\n7\t0\n");

    let output = sse_wasm(&["call", path, "SumOfRows", "--arg", "1"], "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("takes 2 parameter(s)"), "{}", text(&output.stderr));
    let output = sse_wasm(&["call", path, "Nope", "--arg", "1"], "");
    assert!(
        text(&output.stderr).contains("has no function Nope; it has: MaxOfColumns_2, SumOfColumn, SumOfRows"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn call_runs_under_the_servers_limits() {
    let module = guest_wasm("hostile_calls");
    let output = sse_wasm(&["--call-timeout", "0.5", "call", module.to_str().unwrap(), "Spin", "--arg", "1"], "");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("DeadlineExceeded") && stderr.contains("Spin"), "{stderr}");
    let output = sse_wasm(&["call", module.to_str().unwrap(), "ReadFile", "--arg", "/etc/passwd"], "");
    assert!(text(&output.stdout).starts_with("ReadFile\ndenied"), "{}", text(&output.stdout));
}

#[test]
fn inspect_names_a_script_engines_language() {
    let module = guest_wasm("python_scripts");
    let output = sse_wasm(&["inspect", module.to_str().unwrap()], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("a script engine for python (scripts starting with #!python)"), "{stdout}");
    // The compiled module was kept, so trying it again skips the compile.
    let cached = std::fs::read_dir(cache_home().join("sse-wasm")).expect("the tools' cache").count();
    assert!(cached >= 1, "nothing in the tools' compile cache");
}

/// Runs `program` in `dir`, panicking with its output when it fails.
fn run_in(dir: &std::path::Path, program: &str, args: &[&str], env: &[(&str, std::ffi::OsString)]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(output.status.success(), "{program} {args:?} failed:\n{}\n{}", text(&output.stdout), text(&output.stderr));
}

/// `sse-wasm new` for `lang`, built by the command it printed (with the toolchains `make guests`
/// installed), then inspected: the five starter functions are there.
fn scaffold_builds_and_inspects(lang: &str, build: impl FnOnce(&std::path::Path), built: &str, function: &str) {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("my-guest");
    let output = sse_wasm(&["new", "--lang", lang, dir.to_str().unwrap()], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("build it with"), "{}", text(&output.stdout));
    assert!(dir.join("wit/sse.wit").is_file() && dir.join("README.md").is_file());
    build(&dir);
    let module = dir.join(built);
    let output = sse_wasm(&["inspect", module.to_str().unwrap()], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("5 function(s); fits qlik:sse/plugin@0.1.0"), "{stdout}");
    assert!(stdout.contains(function), "{stdout}");

    let again = sse_wasm(&["new", "--lang", lang, dir.to_str().unwrap()], "");
    assert!(!again.status.success() && text(&again.stderr).contains("exists already"), "{}", text(&again.stderr));
}

/// `sse-wasm new` does not read the server's settings: a server setting in the environment that
/// does not hold where it runs (the serving machine's certificate folder, say) is no reason for
/// it to fail.
#[test]
fn new_ignores_the_servers_settings() {
    let home = tempfile::tempdir().expect("temp dir");
    let dir = home.path().join("my-guest");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
            .args(args)
            .env("SSE_WASM_CERTS_DIR", home.path().join("no-such-certs"))
            .output()
            .expect("run sse-wasm")
    };
    let new = run(&["new", "--lang", "rust", dir.to_str().unwrap()]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    assert!(dir.join("README.md").is_file());
    // The server itself still refuses the setting.
    let serve = run(&["--functions-dir", home.path().to_str().unwrap()]);
    assert!(!serve.status.success() && text(&serve.stderr).contains("root_cert.pem"), "{}", text(&serve.stderr));
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn new_rust_guest_builds_and_passes_inspect() {
    scaffold_builds_and_inspects(
        "rust",
        |dir| {
            // Shares the guests' build folder, so the SDK and wit-bindgen are not built again.
            run_in(dir, "cargo", &["build", "--release"], &[("CARGO_TARGET_DIR", repo("guests/target").into())]);
            let built = repo("guests/target/wasm32-wasip2/release/my_guest.wasm");
            std::fs::create_dir_all(dir.join("target/wasm32-wasip2/release")).expect("mkdir");
            std::fs::rename(built, dir.join("target/wasm32-wasip2/release/my_guest.wasm")).expect("move");
        },
        "target/wasm32-wasip2/release/my_guest.wasm",
        "GeometricMean(values: NUMERIC) -> NUMERIC",
    );
}

#[test]
fn new_python_guest_builds_and_passes_inspect() {
    scaffold_builds_and_inspects(
        "python",
        |dir| {
            let componentize = repo("guests/.tools/venv/bin/componentize-py");
            let args = ["-d", "wit", "-w", "plugin", "componentize", "app", "-o", "my_guest.wasm"];
            run_in(dir, componentize.to_str().unwrap(), &args, &[]);
        },
        "my_guest.wasm",
        "TitleCase(text: STRING) -> STRING",
    );
}

#[test]
fn new_javascript_guest_builds_and_passes_inspect() {
    scaffold_builds_and_inspects(
        "js",
        |dir| {
            // The packages `make guests` installed, instead of downloading them again.
            std::os::unix::fs::symlink(repo("guests/js/node_modules"), dir.join("node_modules")).expect("link");
            run_in(dir, "npm", &["run", "--silent", "build"], &[]);
        },
        "my_guest.wasm",
        "Clamp(Value: NUMERIC, Low: NUMERIC, High: NUMERIC) -> NUMERIC",
    );
}

#[test]
fn new_c_guest_builds_and_passes_inspect() {
    scaffold_builds_and_inspects(
        "c",
        |dir| {
            let cc = format!("{} -m ziglang cc", repo("guests/.tools/venv/bin/python").display());
            run_in(
                dir,
                "make",
                &[],
                &[("WASM_TOOLS", repo("guests/.tools/venv/bin/wasm-tools").into()), ("CC", cc.into())],
            )
        },
        "my_guest.wasm",
        "Trim(Text: STRING) -> STRING",
    );
}

#[test]
fn new_zig_guest_builds_and_passes_inspect() {
    scaffold_builds_and_inspects(
        "zig",
        |dir| {
            let zig = format!("{} -m ziglang", repo("guests/.tools/venv/bin/python").display());
            run_in(
                dir,
                "make",
                &[],
                &[("WASM_TOOLS", repo("guests/.tools/venv/bin/wasm-tools").into()), ("ZIG", zig.into())],
            )
        },
        "my_guest.wasm",
        "Initials(Text: STRING) -> STRING",
    );
}

#[test]
fn new_go_guest_builds_and_passes_inspect() {
    scaffold_builds_and_inspects(
        "go",
        |dir| {
            run_in(
                dir,
                "make",
                &[],
                &[
                    ("WASM_TOOLS", repo("guests/.tools/venv/bin/wasm-tools").into()),
                    ("GO", repo("guests/.tools/venv/bin/go").into()),
                ],
            )
        },
        "my_guest.wasm",
        "SnakeCase(Text: STRING) -> STRING",
    );
}

/// `make clean` removes from the functions folder only the modules the build copied there: the
/// user's own modules, whatever their names, stay.
#[test]
fn make_clean_keeps_the_users_own_modules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let functions = dir.path().join("functions");
    std::fs::create_dir(&functions).expect("mkdir");
    for file in ["hello_world.wasm", "datasci.wasm", ".stats.wasm.tmp", "sales.wasm", "forecast.py", "hello_world.py"] {
        std::fs::write(functions.join(file), b"x").expect("write");
    }
    let folder = format!("FUNCTIONS={}", functions.display());
    run_in(&repo(""), "make", &["-s", "clean-functions", &folder], &[]);
    let mut left: Vec<_> =
        std::fs::read_dir(&functions).expect("the folder stays").map(|e| e.expect("entry").file_name()).collect();
    left.sort();
    assert_eq!(left, ["forecast.py", "hello_world.py", "sales.wasm"]);

    // A folder with nothing of the user's is removed, as the build made it.
    std::fs::remove_dir_all(&functions).expect("rm");
    std::fs::create_dir(&functions).expect("mkdir");
    std::fs::write(functions.join("stats.wasm"), b"x").expect("write");
    run_in(&repo(""), "make", &["-s", "clean-functions", &folder], &[]);
    assert!(!functions.exists());
}

/// `sse-wasm models` reads a store: a mistyped path is an error naming it, and nothing is made
/// there.
#[test]
fn the_models_tool_never_makes_a_store_where_a_path_was_mistyped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wrong = dir.path().join("modles");
    let output = sse_wasm(&["models", "list", "--models-dir", wrong.to_str().unwrap()], "");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no model store at") && stderr.contains("modles"), "{stderr}");
    assert!(!wrong.exists(), "the tool made a folder");
}

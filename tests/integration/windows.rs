//! The Windows build, run under Wine: `sse-wasm.exe` serves the example guests of every language
//! to this (Linux) test client over loopback, from a folder named with a drive letter and
//! backslashes, keeps a compile cache, reloads a component renamed into place, and drains on
//! Ctrl-C; and runs as a service under Wine's service manager.
//! `make windows-test` cross-builds the executable and runs these tests with
//! `SSE_WASM_WINDOWS_EXE` naming it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::util::*;

/// How long the executable may take to load under Wine: the Python and JavaScript components
/// compile from cold on a small machine.
const LOADING: Duration = Duration::from_secs(600);

/// One example of each language: a function of it, one row of arguments and the answer.
const EXAMPLES: [(&str, &str, &[f64], f64); 6] = [
    ("column_operations", "SumOfRows", &[3.0, 4.0], 7.0),
    ("python_example", "Multiply", &[3.0, 4.0], 12.0),
    ("js_example", "Clamp", &[15.0, 0.0, 10.0], 10.0),
    ("c_example", "Hypotenuse", &[3.0, 4.0], 5.0),
    ("zig_example", "ToFahrenheit", &[100.0], 212.0),
    ("go_example", "Product", &[1.5], 1.5),
];

/// The Wine command (`SSE_WASM_WINE`, else `wine64`).
fn wine() -> String {
    std::env::var("SSE_WASM_WINE").unwrap_or_else(|_| "wine64".to_owned())
}

/// The executable under test (`SSE_WASM_WINDOWS_EXE`).
fn exe() -> PathBuf {
    let exe = std::env::var_os("SSE_WASM_WINDOWS_EXE")
        .map(PathBuf::from)
        .expect("SSE_WASM_WINDOWS_EXE names sse-wasm.exe: run these tests with `make windows-test`");
    assert!(exe.is_file(), "{} is missing: run `make windows`", exe.display());
    exe
}

/// The Windows path of a Linux one under Wine, which maps `/` as drive `Z:`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// `sse-wasm.exe` run by Wine in `root`, its standard error collected.
struct WineHost {
    child: tokio::process::Child,
    port: u16,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl WineHost {
    async fn start(root: &Path, args: &[&str]) -> Self {
        let (wine, exe) = (wine(), exe());
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
        let mut child = tokio::process::Command::new(&wine)
            .arg(&exe)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .current_dir(root)
            .env("RUST_LOG", "sse_wasm=info")
            .env("NO_COLOR", "1")
            .env("WINEDEBUG", "-all")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {wine} (apt install wine64): {error}"));
        let lines = crate::util::collect_stderr(&mut child);
        Self { child, port, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Waits until the log holds `line` (the host writes its log in batches, and the reader of
    /// its stderr may lag behind).
    async fn logged(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(line) {
            assert!(Instant::now() < deadline, "the log says {line:?}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn client(&self) -> Option<sse_wasm::pb::connector_client::ConnectorClient<tonic::transport::Channel>> {
        let uri = format!("http://127.0.0.1:{}", self.port);
        let channel = tonic::transport::Channel::from_shared(uri).expect("uri").connect().await.ok()?;
        Some(sse_wasm::pb::connector_client::ConnectorClient::new(channel))
    }

    /// The function names GetCapabilities lists, sorted; empty while the port is not open.
    async fn names(&self) -> Vec<String> {
        let Some(mut client) = self.client().await else { return vec![] };
        let Ok(caps) = client.get_capabilities(sse_wasm::pb::Empty {}).await else { return vec![] };
        let mut names: Vec<String> = caps.into_inner().functions.into_iter().map(|f| f.name).collect();
        names.sort();
        names
    }

    /// Waits until `condition` holds of the served names; fails with the log after `within`.
    async fn until(&mut self, what: &str, within: Duration, condition: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if condition(&self.names().await) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sse-wasm.exe exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_build_serves_every_language_and_reloads() {
    let root = tempfile::tempdir().expect("temp dir");
    let functions = root.path().join("functions");
    std::fs::create_dir(&functions).expect("mkdir");
    for (guest, ..) in EXAMPLES {
        std::fs::copy(guest_wasm(guest), functions.join(format!("{guest}.wasm"))).expect("copy");
    }
    // The functions folder by drive letter and backslashes; the cache and its key relative.
    let folder = windows_path(&functions);
    let args = ["--functions-dir", &folder, "--cache-dir", r"cache\entries", "--cache-key", r"keys\cache.key"];
    let mut host = WineHost::start(root.path(), &args).await;
    let every = |names: &[String]| EXAMPLES.iter().all(|(_, f, ..)| names.iter().any(|n| n == f));
    host.until("every example to be served", LOADING, every).await;
    host.logged(&format!("serving 28 function(s) from {folder}")).await;

    let mut client = host.client().await.expect("connect");
    for (guest, function, args, expected) in EXAMPLES {
        let values: Vec<V> = args.iter().map(|&a| V::N(a)).collect();
        let answer = call(&mut client, function, bundles(vec![row(&values)], 1)).await;
        let answer = answer.unwrap_or_else(|status| panic!("{guest}'s {function}: {status:?}\n{}", host.log()));
        assert_eq!(answer.numbers(), [expected], "{guest}'s {function}");
    }
    // An error from a guest is still a status naming it.
    let result = call(&mut client, "Clamp", bundles(vec![row(&[V::N(1.0), V::N(5.0), V::N(2.0)])], 1)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["Low (5) is above High (2)"]);

    // A component written aside and renamed into place is served without a restart.
    replace_atomically(&functions.join("stats.wasm"), &guest_bytes("stats"));
    host.until("stats.wasm to be served", Duration::from_secs(60), |names| names.iter().any(|n| n == "Median")).await;
    let answer = call(&mut client, "Median", bundles(numbers(&[3.0, 1.0, 2.0]), 3)).await.expect("Median");
    assert_eq!(answer.numbers(), [2.0]);
    // Deleted: its functions go.
    std::fs::remove_file(functions.join("go_example.wasm")).expect("delete");
    host.until("go_example.wasm to go", Duration::from_secs(60), |names| !names.iter().any(|n| n == "Product")).await;

    // The compile cache and its key are where the flags said, relative to the folder it runs in.
    let key = std::fs::read_to_string(root.path().join("keys/cache.key")).expect("the key was made");
    assert_eq!(key.trim().len(), 64, "{key}");
    let entries = std::fs::read_dir(root.path().join("cache/entries")).expect("the cache folder was made").count();
    assert!(entries >= EXAMPLES.len(), "{entries} cache entries");
    // Ctrl-C (Wine turns SIGINT into the console's Ctrl-C event) drains and stops it.
    let pid = host.child.id().expect("running").to_string();
    let interrupted = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    assert!(interrupted.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), host.child.wait()).await.expect("stops").expect("exit");
    host.logged("stopped").await;
    let log = host.log();
    assert!(exit.success(), "{exit}:\n{log}");
    let stopping = ["shutting down", "health says NOT_SERVING", "stopped"].map(|l| log.find(l));
    assert!(stopping.is_sorted() && stopping.iter().all(Option::is_some), "drained in order:\n{log}");
    assert!(!log.contains("ERROR"), "no errors:\n{log}");
}

/// `wine <exe> args…` run to its end in `root`: its exit status and what it printed. The output
/// goes through a file, not a pipe: the first Wine program starts Wine's server and services,
/// which inherit its handles and would hold a pipe open long after the program ended.
async fn run_exe(root: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    run_exe_with(root, args, &[]).await
}

/// [`run_exe`] with the variables `env` set.
async fn run_exe_with(root: &Path, args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let (wine, exe) = (wine(), exe());
    let output = tempfile::NamedTempFile::new().expect("temp file");
    // One file description for both, so they share its offset.
    let file = output.reopen().expect("reopen");
    let mut child = tokio::process::Command::new(&wine)
        .arg(exe)
        .args(args)
        .current_dir(root)
        .env("WINEDEBUG", "-all")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("wine runs");
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await.expect("within 2 minutes");
    (status.expect("exit status"), std::fs::read_to_string(output.path()).expect("output"))
}

/// The service under Wine's service manager: installed (its flags checked first) and started,
/// serving from the folder it was installed from and logging there; uninstalled, it drains and
/// stops. Wine stops its services when no other Wine program runs, so one waits meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_installs_serves_and_drains_when_removed() {
    let wine = wine();
    let _keep_wine_running = tokio::process::Command::new(&wine)
        .arg("cmd")
        .env("WINEDEBUG", "-all")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("wine cmd");
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("functions")).expect("mkdir");
    std::fs::copy(guest_wasm("column_operations"), root.path().join("functions/column_operations.wasm")).expect("copy");
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let name = format!("sse-wasm-test-{port}");
    let listen = format!("127.0.0.1:{port}");

    // Flags the server would refuse are refused at install, naming what is wrong.
    let (status, text) =
        run_exe(root.path(), &["service", "install", "--name", &name, "--", "--certs-dir", "nowhere"]).await;
    assert!(!status.success() && text.contains("root_cert.pem"), "{status}: {text}");

    let flags = ["--listen", &listen, "--functions-dir", "functions", "--no-compile-cache", "--drain-delay", "0"];
    let install: Vec<&str> = ["service", "install", "--name", &name, "--"].into_iter().chain(flags).collect();
    // A server setting in the administrator's prompt is not the service's: it neither makes the
    // install fail nor goes unmentioned.
    let (status, text) = run_exe_with(root.path(), &install, &[("SSE_WASM_CERTS_DIR", "nowhere")]).await;
    assert!(status.success() && text.contains(&format!("installed and started the service {name}")), "{text}");
    assert!(text.contains("SSE_WASM_CERTS_DIR is set here, but the service does not read"), "{text}");
    let log = || std::fs::read_to_string(root.path().join("sse-wasm.log")).unwrap_or_default();

    let uri = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(uri.clone()).expect("uri").connect().await {
            let mut client = sse_wasm::pb::connector_client::ConnectorClient::new(channel);
            if client.get_capabilities(sse_wasm::pb::Empty {}).await.is_ok_and(|c| c.into_inner().functions.len() == 3)
            {
                break client;
            }
        }
        assert!(Instant::now() < deadline, "the service serves within a minute; its log:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let answer = call(&mut client, "SumOfRows", bundles(vec![row(&[V::N(3.0), V::N(4.0)])], 1)).await.expect("call");
    assert_eq!(answer.numbers(), [7.0]);

    let (status, text) = run_exe(root.path(), &["service", "uninstall", "--name", &name]).await;
    assert!(status.success() && text.contains(&format!("stopped and removed the service {name}")), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log().contains("INFO sse_wasm::app::run: stopped") {
        assert!(Instant::now() < deadline, "the service drains and stops; its log:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = log();
    assert!(log.contains(&format!("the service manager asked {name} to stop")), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

//! The load-balancer recipe, run for real: Debian's nginx with `deploy/nginx.conf` in front of three
//! sse-wasm replicas on loopback. Ids agree, calls spread over the replicas, and a rolling restart
//! (SIGTERM to each replica in turn, then a new one on its port) under load fails no call.
//!
//! Needs `nginx` on the PATH or in /usr/sbin. `.ci/run` installs it and sets
//! `SSE_WASM_REQUIRE_NGINX=1`, which makes its absence a failure; elsewhere (`make test` on a
//! machine without nginx) the test says it did not run and passes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::util::{bundles, call, collect_stderr, eventually, free_port, guest_wasm, numbers};

/// nginx's path: on the PATH, or in /usr/sbin (not on a normal user's PATH on Debian).
fn nginx() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file())
}

/// The lines a replica wrote to stderr.
type Lines = Arc<std::sync::Mutex<Vec<String>>>;

/// One replica: the real binary on `port`, its stderr lines collected.
struct Replica {
    port: u16,
    child: Child,
    lines: Lines,
}

impl Replica {
    /// Starts it on `port`.
    async fn start(root: &Path, port: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
            .args(["--functions-dir", &root.join("functions").display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--drain-delay", "1", "--no-watch"])
            .args(["--cache-dir", &root.join("cache").display().to_string()])
            .args(["--cache-key", &root.join("key/cache.key").display().to_string()])
            .env("RUST_LOG", "sse_wasm=info")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sse-wasm");
        let lines = collect_stderr(&mut child);
        let replica = Self { port, child, lines };
        replica.wait_serving().await;
        replica
    }

    async fn wait_serving(&self) {
        let uri = format!("http://127.0.0.1:{}", self.port);
        eventually("a replica serves", || async {
            let Ok(channel) = tonic::transport::Channel::from_shared(uri.clone()).expect("uri").connect().await else {
                return false;
            };
            sse_wasm::pb::connector_client::ConnectorClient::new(channel)
                .get_capabilities(sse_wasm::pb::Empty {})
                .await
                .is_ok()
        })
        .await;
    }

    /// SIGTERM, as a service manager stops it; waits for it to exit.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
        assert!(sent.success());
        let status =
            tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("exits").expect("wait");
        assert!(status.success(), "a drained replica exits 0: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_of_three_replicas_survives_a_rolling_restart() {
    let Some(nginx) = nginx() else {
        assert!(
            std::env::var_os("SSE_WASM_REQUIRE_NGINX").is_none(),
            "SSE_WASM_REQUIRE_NGINX is set but nginx is not installed"
        );
        eprintln!("not run: nginx is not installed (.ci/run installs Debian's nginx-light)");
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(root.path().join("functions")).expect("mkdir");
    std::fs::copy(guest_wasm("column_operations"), root.path().join("functions/column_operations.wasm")).expect("copy");

    // What each of the three replicas logged, over its restarts.
    let mut logs: Vec<Vec<Lines>> = vec![Vec::new(); 3];
    let mut replicas = Vec::new();
    for log in &mut logs {
        let replica = Replica::start(root.path(), free_port().await).await;
        log.push(replica.lines.clone());
        replicas.push(Some(replica));
    }

    // The recipe, with this test's ports and files.
    let front = free_port().await;
    let mut config = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"))
        .expect("deploy/nginx.conf");
    for (default, replica) in [50051, 50052, 50053].iter().zip(&replicas) {
        let port = replica.as_ref().expect("started").port;
        config = config.replace(&format!("127.0.0.1:{default} "), &format!("127.0.0.1:{port} "));
    }
    config = config.replace("listen 50050 http2;", &format!("listen 127.0.0.1:{front} http2;"));
    config = config.replace("worker_processes auto;", "worker_processes 1;");
    let nginx_dir = root.path().join("nginx");
    std::fs::create_dir(&nginx_dir).expect("mkdir");
    std::fs::write(nginx_dir.join("nginx.conf"), config).expect("write config");
    let prefix = format!("{}/", nginx_dir.display());
    // One process (no master and workers), so that killing it when the test ends leaves nothing
    // behind; its output goes to error.log, never to the test's pipes.
    let globals = format!("daemon off; master_process off; pid {prefix}nginx.pid; error_log {prefix}error.log;");
    let _nginx = Command::new(nginx)
        .args(["-p", &prefix, "-c", &format!("{prefix}nginx.conf"), "-g", &globals])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nginx");

    let front_uri = format!("http://127.0.0.1:{front}");
    let connect = || async {
        let channel = tonic::transport::Channel::from_shared(front_uri.clone()).expect("uri").connect().await?;
        Ok::<_, tonic::transport::Error>(sse_wasm::pb::connector_client::ConnectorClient::new(channel))
    };
    eventually("nginx forwards", || async {
        match connect().await {
            Ok(mut client) => client.get_capabilities(sse_wasm::pb::Empty {}).await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    let mut client = connect().await.expect("connect through nginx");
    let capabilities = client.get_capabilities(sse_wasm::pb::Empty {}).await.expect("capabilities").into_inner();
    let ids: Vec<i32> = capabilities.functions.iter().map(|f| f.function_id).collect();
    for _ in 0..6 {
        let again = client.get_capabilities(sse_wasm::pb::Empty {}).await.expect("capabilities").into_inner();
        assert_eq!(again.functions.iter().map(|f| f.function_id).collect::<Vec<_>>(), ids, "replicas agree on ids");
    }

    // Load: several clients calling in a loop until told to stop; every failure is kept.
    let stop = Arc::new(AtomicBool::new(false));
    // Which step of the restart the test is at (0: none yet; 2n+1: stopping replica n; 2n+2:
    // replica n restarted), so that a failure says when it happened.
    let step = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut drivers = Vec::new();
    for _ in 0..4 {
        let (mut client, stop, failures, answered, step) =
            (connect().await.expect("connect"), stop.clone(), failures.clone(), answered.clone(), step.clone());
        drivers.push(tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                sent += 1;
                let when = |what: String| {
                    format!("{what} (this client's call {sent}, at step {})", step.load(Ordering::Relaxed))
                };
                match call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0, 3.0]), 2)).await {
                    Ok(answer) if answer.numbers() == [6.0] => answered.fetch_add(1, Ordering::Relaxed),
                    Ok(answer) => {
                        failures.lock().expect("lock").push(when(format!("wrong answer {:?}", answer.numbers())));
                        0
                    }
                    Err(status) => {
                        failures.lock().expect("lock").push(when(format!("{status:?}")));
                        0
                    }
                };
            }
        }));
    }
    eventually("calls flow", || async { answered.load(Ordering::Relaxed) > 50 }).await;

    // The rolling restart: each replica in turn is stopped by SIGTERM and replaced on its port.
    for (index, log) in logs.iter_mut().enumerate() {
        let replica = replicas[index].take().expect("running");
        let port = replica.port;
        step.store(2 * index + 1, Ordering::Relaxed);
        replica.stop().await;
        let replica = Replica::start(root.path(), port).await;
        log.push(replica.lines.clone());
        replicas[index] = Some(replica);
        step.store(2 * index + 2, Ordering::Relaxed);
        let before = answered.load(Ordering::Relaxed);
        eventually("calls flow after the restart", || async { answered.load(Ordering::Relaxed) > before + 20 }).await;
    }
    stop.store(true, Ordering::Relaxed);
    for driver in drivers {
        driver.await.expect("driver");
    }

    let failures = failures.lock().expect("lock").clone();
    let errors = std::fs::read_to_string(nginx_dir.join("error.log")).unwrap_or_default();
    let first: Vec<&String> = failures.iter().take(3).collect();
    // Replica `index`'s lines that `keep` holds for, over its restarts.
    let said = |index: usize, keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        logs[index].iter().flat_map(|lines| lines.lock().expect("lines").clone()).filter(|l| keep(l)).collect()
    };
    let complaints: Vec<String> = (0..3)
        .flat_map(|index| {
            said(index, &|l| l.contains("WARN") || l.contains("ERROR"))
                .into_iter()
                .map(move |l| format!("replica {index}: {l}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} call(s) failed during the rolling restart, the first: {first:?}\nnginx said:\n{}\nthe replicas said:\n{}",
        failures.len(),
        errors.lines().filter(|l| !l.contains("[notice]")).take(20).collect::<Vec<_>>().join("\n"),
        complaints.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let per_replica: Vec<usize> = (0..3).map(|index| said(index, &|l| l.contains("call done")).len()).collect();
    assert!(per_replica.iter().all(|&n| n > 0), "calls spread over every replica: {per_replica:?}");
}

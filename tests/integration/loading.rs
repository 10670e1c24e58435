//! What the host does with the folder: broken files are skipped, duplicate names refused.

use sse_wasm::wasm::Limits;

use crate::util::{TestServer, bundles, call, eventually, function_names, guest_wasm, numbers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_skipped_and_the_others_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm but not really").expect("write");
    std::fs::write(dir.path().join("notes.txt"), b"not a component").expect("write");
    std::fs::copy(guest_wasm("column_operations"), dir.path().join("columns.wasm")).expect("copy");
    let server = TestServer::start_in(dir, Limits::default()).await;
    assert_eq!(function_names(&server).await, ["MaxOfColumns_2", "SumOfColumn", "SumOfRows"]);
    let mut client = server.client().await;
    assert_eq!(call(&mut client, "SumOfColumn", bundles(numbers(&[2.0]), 1)).await.expect("serves").numbers(), [2.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_function_is_refused_not_shadowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(guest_wasm("column_operations"), dir.path().join("a.wasm")).expect("copy");
    std::fs::copy(guest_wasm("column_operations"), dir.path().join("b.wasm")).expect("copy");
    let server = TestServer::start_in(dir, Limits::default()).await;
    assert_eq!(function_names(&server).await, ["MaxOfColumns_2", "SumOfColumn", "SumOfRows"]);
    let registry = server.registry.load();
    let entry = registry.get(sse_wasm::registry::function_id("SumOfRows")).expect("served");
    assert!(entry.guest().expect("wasm").path.ends_with("a.wasm"), "the first file by name keeps it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_clean() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut client = server.client().await;
    call(&mut client, "SumOfColumn", bundles(numbers(&[1.0]), 1)).await.expect("call");
    server.stop().await.expect("serve returns Ok after shutdown");
}

/// The real binary, started as `make run` starts it (a relative functions folder): a clean start
/// logs no error, and events for files it has loaded (its own reads, a `chmod`) reload nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_start_logs_no_errors_and_touching_loaded_files_reloads_nothing() {
    use tokio::io::AsyncBufReadExt;

    let root = tempfile::tempdir().expect("temp dir");
    let functions = root.path().join("functions");
    std::fs::create_dir(&functions).expect("mkdir");
    for guest in ["column_operations", "stats"] {
        std::fs::copy(guest_wasm(guest), functions.join(format!("{guest}.wasm"))).expect("copy");
    }
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
        .current_dir(root.path())
        .args(["--functions-dir", "functions", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--cache-dir", "cache", "--cache-key", "keys/cache.key"])
        .env("RUST_LOG", "sse_wasm=debug")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sse-wasm");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            collected.lock().expect("lines").push(line);
        }
    });
    let log = || lines.lock().expect("lines").join("\n");

    eventually("the binary serves", || async {
        let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri").connect().await
        else {
            return false;
        };
        sse_wasm::pb::connector_client::ConnectorClient::new(channel)
            .get_capabilities(sse_wasm::pb::Empty {})
            .await
            .is_ok_and(|caps| caps.into_inner().functions.len() == 8)
    })
    .await;
    for guest in ["column_operations", "stats"] {
        let path = functions.join(format!("{guest}.wasm"));
        let permissions = std::fs::metadata(&path).expect("meta").permissions();
        std::fs::set_permissions(&path, permissions).expect("chmod");
    }
    eventually("both touches are seen and judged unchanged", || async {
        log().matches("touched but unchanged").count() >= 2
    })
    .await;
    child.kill().await.expect("kill");
    let log = log();
    assert!(!log.contains("ERROR") && !log.contains("refused"), "a clean start logs no errors:\n{log}");
    assert!(!log.contains("reloaded"), "nothing was reloaded:\n{log}");
}
